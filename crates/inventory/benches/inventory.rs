//! Inventory benchmark (issue 4): a generated fleet of 50 accounts × 20 clusters × 10 services
//! (10,000), fleet-sim with `latency_ms: 20` and the documented throttles on, moto for the
//! table. Reports API calls per action against the minimum the fleet's shape allows, wall time
//! against the floor the pacing imposes, throttled calls, and the inventory process's peak
//! memory. fleet-sim runs in a child process (this binary, re-executed), so the memory figure
//! is the inventory's alone. Needs `MOTO_ENDPOINT` (run through `make bench`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use restart_core::Config;
use restart_core::clock::SystemClock;

const CHILD: &str = "INVENTORY_BENCH_SIM_SPEC";
const ACCOUNTS: u64 = 50;
const CLUSTERS: u64 = 20;
const SERVICES: u64 = 10;
const LATENCY_MS: u64 = 20;

const SPEC: &str = r#"
seed: 4
time_scale: 1
latency_ms: 20
throttling: true
generate:
  accounts: 50
  regions: [eu-west-1]
  clusters_per_account: 20
  services_per_cluster: 10
  tagged_percent: 90
"#;

/// Kills the simulator when the benchmark ends, however it ends.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_sim_child(spec_path: &str) {
    let text = std::fs::read_to_string(spec_path).expect("spec file");
    let spec = fleet_sim::FleetSpec::from_yaml_str(&text).expect("bench spec");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let sim = fleet_sim::spawn(spec).await.expect("sim");
        println!("listening on {}", sim.endpoint_url());
        std::io::stdout().flush().expect("flush");
        std::future::pending::<()>().await;
    });
}

fn http_get(endpoint: &str, path: &str) -> serde_json::Value {
    let host = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect to the simulator");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    let json = body.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(json).expect("stats JSON")
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    if let Ok(path) = std::env::var(CHILD) {
        return run_sim_child(&path);
    }
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.iter().any(|a| !"inventory".contains(a.as_str())) {
        return;
    }
    // Fails with a clear message when moto is not running: use `make bench`.
    testkit::moto_endpoint();
    let dir = std::env::temp_dir().join(format!("inventory-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec_path = dir.join("fleet.yaml");
    std::fs::write(&spec_path, SPEC).expect("write spec");

    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, &spec_path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let stdout = child.stdout.take().expect("stdout");
    let sim = Sim(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let endpoint = line.trim().trim_start_matches("listening on ").to_owned();

    // The generated account ids, from the same spec the simulator built.
    let spec = fleet_sim::FleetSpec::from_yaml_str(SPEC).expect("spec");
    let account_ids = fleet_sim::world::build(&spec, 0).account_order;
    assert_eq!(account_ids.len() as u64, ACCOUNTS);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let table = rt.block_on(async {
        let client = testkit::dynamodb_client();
        testkit::create_table(&client).await
    });

    let sdk = testkit::hub_sdk_config(&endpoint);

    let baseline = peak_rss_mb();
    let mut rows = Vec::new();
    for concurrency in ["50", "16"] {
        let config = Config::from_vars([
            ("TABLE_NAME", table.as_str()),
            ("ACCOUNTS", account_ids.join(",").as_str()),
            ("REGIONS", "eu-west-1"),
            ("MEMBER_ROLE_NAME", "member"),
            ("ACCOUNT_CONCURRENCY", concurrency),
        ])
        .expect("config");
        let describe_rate = config.pacing.describe_per_sec;
        let handler = inventory::aws::handler_with_clock(config, &sdk, Arc::new(SystemClock));
        let before = http_get(&endpoint, "/_sim/stats");
        let start = Instant::now();
        let summary = rt
            .block_on(handler.handle(serde_json::json!({"night": "2026-11-22"})))
            .expect("inventory");
        let whole = start.elapsed().as_secs_f64();
        let wall = summary.discovery_ms as f64 / 1000.0;
        let after = http_get(&endpoint, "/_sim/stats");
        assert_eq!(summary.services_found, ACCOUNTS * CLUSTERS * SERVICES);
        assert!(
            summary.unreachable_count == 0,
            "{:?}",
            summary.unreachable_sample
        );

        let calls = handler.calls.snapshot();
        // The minimum per account: one page of clusters, one DescribeClusters, one page of
        // services per cluster, ceil(10 / 10) DescribeServices per cluster.
        let per_account: BTreeMap<&str, u64> = [
            ("ListClusters", 1),
            ("DescribeClusters", 1),
            ("ListServices", CLUSTERS),
            ("DescribeServices", CLUSTERS * SERVICES.div_ceil(10)),
        ]
        .into_iter()
        .collect();
        let paced: u64 = per_account.values().sum();
        // Floor: every account at once, each limited by its Describe bucket (burst = one
        // second's worth), plus the four dependent round trips.
        let floor = (paced as f64 - describe_rate).max(0.0) / describe_rate
            + 4.0 * LATENCY_MS as f64 / 1000.0;
        let throttled = total(&after["throttled"]) - total(&before["throttled"]);
        let mut action_rows = String::new();
        for (action, min) in &per_account {
            let made = calls.get(*action).copied().unwrap_or(0);
            let min = min * ACCOUNTS;
            action_rows.push_str(&format!(
                "| {action} | {made} | {min} | {:.3}× |\n",
                made as f64 / min as f64
            ));
        }
        rows.push(format!(
            "ACCOUNT_CONCURRENCY={concurrency}: discovery {wall:.2} s, floor {floor:.2} s, \
             ratio {:.2}×, whole run with the table writes {whole:.2} s, \
             throttled by fleet-sim {throttled}, ListTagsForResource {}\n\
             | action | calls | minimum | ratio |\n|---|---|---|---|\n{action_rows}",
            wall / floor,
            calls.get("ListTagsForResource").copied().unwrap_or(0),
        ));
    }
    for r in rows {
        println!("{r}");
    }
    println!(
        "peak RSS of the inventory process: {:.1} MB (of which {baseline:.1} MB before the first \
         run: the runtime and the benchmark's own copy of the fleet model)",
        peak_rss_mb()
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(sim);
}

fn total(v: &serde_json::Value) -> u64 {
    v.as_object()
        .into_iter()
        .flat_map(|accounts| accounts.values())
        .filter_map(|actions| actions.as_object())
        .flat_map(|actions| actions.values())
        .filter_map(serde_json::Value::as_u64)
        .sum()
}
