//! The admin API under /_sim/, the binary's command line, and spec errors.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{ecs, http, http_at, start};

const FLEET: &str = r#"
hub_account: "111111111111"
throttling: false
time_scale: 120
start_time: "2026-11-22T00:00:00Z"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters: [{name: c, services: [{name: a, deploy_seconds: 60}]}]
"#;

#[tokio::test]
async fn clock_stats_reset_and_fleet() {
    let sim = start(FLEET).await;
    let (status, body) = http(&sim, "GET", "/_sim/clock", "").await;
    assert_eq!(status, 200);
    let clock: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(clock["time_scale"], 120.0);
    let now = clock["now"].as_str().expect("now");
    assert!(now.starts_with("2026-11-22T00:0"), "{now}");

    let client = ecs(&sim, "eu-west-1");
    client
        .update_service()
        .cluster("c")
        .service("a")
        .force_new_deployment(true)
        .send()
        .await
        .expect("restart");
    assert_eq!(sim.handle().stats().restarts, 1);

    let (status, _) = http(&sim, "POST", "/_sim/reset", "").await;
    assert_eq!(status, 200);
    let stats = sim.handle().stats();
    assert_eq!(stats.restarts, 0);
    assert!(stats.calls.is_empty());
    let s = client
        .describe_services()
        .cluster("c")
        .services("a")
        .send()
        .await
        .expect("describe");
    assert_eq!(
        s.services()[0].deployments().len(),
        1,
        "back to the initial deployment"
    );

    let (status, body) = http(
        &sim,
        "POST",
        "/_sim/fleet",
        "accounts:\n  - id: \"111111111111\"\n    clusters: [{name: x, services: [{name: y, on_restart: explode}]}]\n",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("accounts[0].clusters[0].services[0].on_restart: unknown variant `explode`"),
        "{body}"
    );
    let (status, body) = http(
        &sim,
        "POST",
        "/_sim/fleet",
        r#"{"hub_account":"111111111111","accounts":[{"id":"111111111111","regions":["eu-west-1"],"clusters":[{"name":"new"}]}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let clusters = client.list_clusters().send().await.expect("list");
    assert_eq!(
        clusters.cluster_arns(),
        ["arn:aws:ecs:eu-west-1:111111111111:cluster/new"]
    );

    let (status, _) = http(&sim, "POST", "/_sim/clock/advance", r#"{"seconds": -1}"#).await;
    assert_eq!(status, 400);
    let (status, _) = http(&sim, "GET", "/elsewhere", "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn malformed_aws_requests_get_aws_errors() {
    let sim = start(FLEET).await;
    // No Authorization header at all.
    let (status, body) = http(&sim, "POST", "/", "{}").await;
    assert_eq!(status, 400);
    assert!(body.contains("MissingAction"), "{body}");
    let addr = sim.addr;
    let raw = |target: &'static str, body: &'static str| async move {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", addr.to_string())
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDX/20261122/eu-west-1/ecs/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    };
    let (status, body) = raw(
        "AmazonEC2ContainerServiceV20141113.DescribeServices",
        "{not json",
    )
    .await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json error");
    assert_eq!(v["__type"], "SerializationException");
    let (status, body) = raw(
        "AmazonEC2ContainerServiceV20141113.DescribeServices",
        r#"{"cluster":"c","services":[1]}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw("AmazonEC2ContainerServiceV20141113.DeleteCluster", "{}").await;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
    let (status, body) = raw(
        "AmazonEC2ContainerServiceV20141113.UpdateService",
        r#"{"cluster":"c"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("InvalidParameterException"), "{body}");
}

fn temp_spec(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fleet-sim-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("fleet.yaml");
    std::fs::write(&path, text).expect("write spec");
    path
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let spec = temp_spec("ok", FLEET);
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-sim"))
        .args(["--spec", spec.to_str().expect("utf-8 path"), "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("one line");
    let url = line
        .trim()
        .strip_prefix("listening on http://")
        .map(str::to_owned);
    let result = async {
        let url = url.ok_or_else(|| format!("unexpected first line {line:?}"))?;
        let addr: std::net::SocketAddr = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if !addr.ip().is_loopback() || addr.port() == 0 {
            return Err(format!("bad address {addr}"));
        }
        let (status, body) = http_at(addr, "GET", "/_sim/stats", "").await;
        if status != 200 || !body.contains("max_inflight_per_cluster") {
            return Err(format!("stats: {status} {body}"));
        }
        Ok(())
    }
    .await;
    child.kill().expect("kill the child we started");
    let _ = child.wait();
    result.expect("binary works");
}

#[test]
fn binary_refuses_a_bad_spec_naming_the_field() {
    let spec = temp_spec(
        "bad",
        "accounts:\n  - id: \"111111111111\"\n    clusters:\n      - name: a\n        services:\n          - name: b\n          - name: c\n            on_restart: explode\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fleet-sim"))
        .args(["--spec", spec.to_str().expect("utf-8 path")])
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("accounts[0].clusters[0].services[1].on_restart: unknown variant `explode`, expected one of `complete`, `fail`, `stuck`, `vanish`, `reject`, `superseded`"),
        "{stderr}"
    );
}

#[test]
fn spec_error_message_snapshot() {
    let err = fleet_sim::FleetSpec::from_yaml_str(
        "accounts:\n  - id: \"111111111111\"\n  - id: \"222222222222\"\n    clusters:\n      - name: a\n        services:\n          - name: x\n          - name: y\n          - name: z\n            on_restart: explode\n",
    )
    .expect_err("invalid");
    insta::assert_snapshot!(err.to_string(), @"accounts[1].clusters[0].services[2].on_restart: unknown variant `explode`, expected one of `complete`, `fail`, `stuck`, `vanish`, `reject`, `superseded` at line 10 column 25");
    let err = fleet_sim::FleetSpec::from_yaml_str("generate: {accounts: 2, stuck_percent: 250}\n")
        .expect_err("invalid");
    insta::assert_snapshot!(err.to_string(), @"generate.stuck_percent: must be within 0..=100, got 250");
}

#[test]
fn the_demo_fleet_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/demo.yaml");
    let spec = fleet_sim::FleetSpec::from_path(&path).expect("demo fleet is valid");
    assert_eq!(spec.service_count(), 10_009);
    let sim = fleet_sim::SimHandle::new(spec).expect("builds");
    assert_eq!(sim.stats().services, 10_009);
    let err = fleet_sim::FleetSpec::from_path("/nonexistent/fleet.yaml").expect_err("missing file");
    assert!(
        err.to_string()
            .starts_with("cannot read fleet spec /nonexistent/fleet.yaml"),
        "{err}"
    );
}
