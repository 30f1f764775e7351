//! DescribeServices served on loopback with throttling off (target: at least 5,000 requests/s).
//!
//! Starts the simulator in-process on 127.0.0.1, opens `CONNECTIONS` keep-alive HTTP/1.1
//! connections and sends `REQUESTS` signed-looking DescribeServices calls (10 services each)
//! in total, then prints requests/s. Bounded in count and time; stops by itself.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

const CONNECTIONS: usize = 32;
const REQUESTS: usize = 60_000;
const TIME_LIMIT: Duration = Duration::from_secs(60);
const TARGET: f64 = 5_000.0;

fn spec() -> fleet_sim::FleetSpec {
    let mut y = String::from(
        "hub_account: \"111111111111\"\nthrottling: false\nstart_time: \"2026-11-22T00:00:00Z\"\naccounts:\n  - id: \"111111111111\"\n    regions: [eu-west-1]\n    clusters:\n      - name: bench\n        services:\n",
    );
    for i in 0..100 {
        let _ = writeln!(
            y,
            "          - {{name: svc-{i:03}, desired: 3, tags: {{owner: team-{}}}}}",
            i % 7
        );
    }
    y.push_str("generate: {accounts: 49, clusters_per_account: 20, services_per_cluster: 10}\n");
    fleet_sim::FleetSpec::from_yaml_str(&y).expect("valid spec")
}

#[tokio::main]
async fn main() {
    let sim = fleet_sim::spawn(spec()).await.expect("simulator starts");
    let addr = sim.addr;
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let sent = sent.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut n = c;
            while sent.fetch_add(1, Ordering::Relaxed) < REQUESTS && start.elapsed() < TIME_LIMIT {
                let first = (n * 10) % 100;
                let names: Vec<String> = (first..first + 10).map(|i| format!("\"svc-{i:03}\"")).collect();
                let body = format!(r#"{{"cluster":"bench","services":[{}],"include":["TAGS"]}}"#, names.join(","));
                let req = hyper::Request::builder()
                    .method("POST")
                    .uri("/")
                    .header("host", addr.to_string())
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("x-amz-target", "AmazonEC2ContainerServiceV20141113.DescribeServices")
                    .header(
                        "authorization",
                        "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20261122/eu-west-1/ecs/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=00",
                    )
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let resp = sender.send_request(req).await.expect("response");
                let ok = resp.status().is_success();
                let bytes = resp.into_body().collect().await.expect("body").to_bytes();
                if !ok || !bytes.starts_with(b"{\"services\":[{") {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                n += CONNECTIONS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let done = sent.load(Ordering::Relaxed).min(REQUESTS);
    let failed = failed.load(Ordering::Relaxed);
    let rate = done as f64 / elapsed;
    let services = sim.handle().stats().services;
    println!(
        "describe_services: {done} requests (10 services each, include TAGS) over {CONNECTIONS} keep-alive connections \
         in {elapsed:.2} s = {rate:.0} requests/s (target >= {TARGET:.0}, ratio {:.2}); fleet {services} services; {failed} failed",
        rate / TARGET
    );
    assert_eq!(failed, 0, "every request must succeed");
    sim.shutdown().await.expect("shutdown");
}
