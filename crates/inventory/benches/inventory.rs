//! Inventory benchmark (issue 4): a generated fleet of 50 accounts × 20 clusters × 10 services
//! (10,000), fleet-sim with `latency_ms: 20` and the documented throttles on, moto for the
//! table. Reports API calls per action against the minimum the fleet's shape allows, wall time
//! against the floor the pacing imposes, throttled calls, each invocation's duration, and the
//! inventory process's peak memory. fleet-sim runs in a child process (this binary,
//! re-executed), which also tells the generated account ids, and each run in a process of its
//! own, so that a memory figure is one inventory run's alone. Needs `MOTO_ENDPOINT` (run through
//! `make bench`).
//!
//! `BENCH_FLEET` chooses another fleet: `100k` is 200 accounts × 20 clusters × 25 services
//! (100,000 services), `100k-50` is 50 accounts × 20 clusters × 100 services. Those run a first
//! night (an empty catalog: every record written) at the default `ACCOUNT_CONCURRENCY`, with
//! every account at once and at 64 (the default until 2026-12-03), each into a table of its own
//! (moto's Query scans its whole table: reading 100,000 records back through it outlasts the
//! SDK's timeout); then the nightly case over the in-memory table (`SharedStore`, filled by a
//! first night, whose catalog the next run's process reads from a file): each account's
//! previous records read back, nothing changed, so no record written and one listing per
//! account-region; the table's own records are counted in the memory before the run. Each run
//! reports its catalog write units a service (records and listings written, over the services).
//! `1m` (2,000 × 20 × 25, opt-in) runs only the two in-memory nights: moto cannot take a
//! million records in a benchmark's time.
//! The 10,000-service fleet runs twice on one night, `ACCOUNT_CONCURRENCY` 50 then 16, as it
//! always did (the second run reads the catalog back and writes nothing).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use testkit::bench::{BenchFleet, memory_mb};

use restart_core::Config;
use restart_core::catalog::CatalogRecord;
use restart_core::clock::SystemClock;
use restart_core::ports::{AccountDirectory, CatalogStore, ServiceInventory, SettingsStore};
use testkit::fakes::SharedStore;

const CHILD: &str = "INVENTORY_BENCH_SIM_SPEC";
/// Set in a run's own process: the index of its plan.
const RUN: &str = "INVENTORY_BENCH_RUN";
const LATENCY_MS: u64 = 20;

/// The fleet-sim spec of `shape`: generated, throttling on, 90 % of the services enrolled.
fn spec(shape: &BenchFleet) -> String {
    format!(
        r#"
seed: 4
time_scale: 1
latency_ms: {LATENCY_MS}
throttling: true
generate:
  accounts: {}
  regions: [eu-west-1]
  clusters_per_account: {}
  services_per_cluster: {}
  tagged_percent: 90
"#,
        shape.accounts, shape.clusters_per_account, shape.services_per_cluster
    )
}

/// The runs, in order.
fn runs(shape: &BenchFleet) -> Vec<Plan> {
    let plan = |concurrency: Option<String>, night, table| Plan {
        concurrency,
        night,
        table,
        seeded: false,
        dump: false,
    };
    if shape.name == "10k" {
        return vec![
            plan(Some("50".into()), "2026-11-22", Table::Moto),
            plan(Some("16".into()), "2026-11-22", Table::Moto),
        ];
    }
    let all = Some(shape.accounts.to_string());
    let memory = vec![
        Plan {
            dump: true,
            ..plan(None, "2026-11-22", Table::Memory)
        },
        Plan {
            seeded: true,
            ..plan(None, "2026-11-23", Table::Memory)
        },
    ];
    if shape.name == "1m" {
        return memory;
    }
    let mut runs = vec![
        plan(None, "2026-11-22", Table::FreshMoto),
        plan(all.clone(), "2026-11-22", Table::FreshMoto),
        plan(Some("64".into()), "2026-11-22", Table::FreshMoto),
    ];
    runs.extend(memory);
    runs
}

/// Where a run's catalog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// moto, the table the previous run used.
    Moto,
    /// moto, a new table.
    FreshMoto,
    /// The in-memory table, shared by the runs that use it.
    Memory,
}

/// One run: `ACCOUNT_CONCURRENCY` (`None`: its default), the night, the table.
#[derive(Debug, Clone)]
struct Plan {
    concurrency: Option<String>,
    night: &'static str,
    table: Table,
    /// The in-memory table starts with the catalog the run before it left (`dump`).
    seeded: bool,
    /// The run leaves its in-memory catalog for the next.
    dump: bool,
}

/// What a run measured.
struct Measured {
    summary: inventory::Summary,
    whole: f64,
    rss_before: f64,
    peak: f64,
    calls: BTreeMap<String, u64>,
    throttled: u64,
}

fn measure<D, I, S>(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    handler: &inventory::Inventory<D, I, S>,
    night: &str,
) -> Measured
where
    D: AccountDirectory,
    I: ServiceInventory,
    S: CatalogStore + SettingsStore,
{
    let rss_before = memory_mb("VmRSS:");
    reset_peak();
    let before = http_get(endpoint, "/_sim/stats");
    let start = Instant::now();
    let summary = rt
        .block_on(handler.handle(serde_json::json!({ "night": night })))
        .expect("inventory");
    let whole = start.elapsed().as_secs_f64();
    let peak = memory_mb("VmHWM:");
    let after = http_get(endpoint, "/_sim/stats");
    Measured {
        summary,
        whole,
        rss_before,
        peak,
        calls: handler.calls.snapshot(),
        throttled: total(&after["throttled"]) - total(&before["throttled"]),
    }
}

/// Kills the simulator when the benchmark ends, however it ends.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The simulator's process: tells the generated account ids, then where it listens.
fn run_sim_child(spec_path: &str) {
    let text = std::fs::read_to_string(spec_path).expect("spec file");
    let spec = fleet_sim::FleetSpec::from_yaml_str(&text).expect("bench spec");
    let accounts = fleet_sim::world::build(&spec, 0).account_order;
    println!("accounts {}", accounts.join(","));
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

/// Resets the peak (`VmHWM`) to the current size, so that the next reading is one run's.
fn reset_peak() {
    // Without it the peak read is the process's so far: still a bound.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    if let Ok(path) = std::env::var(CHILD) {
        return run_sim_child(&path);
    }
    if let Ok(index) = std::env::var(RUN) {
        return run_child(index.parse().expect("a run's index"));
    }
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.iter().any(|a| !"inventory".contains(a.as_str())) {
        return;
    }
    let shape = BenchFleet::from_env().unwrap_or_else(|e| panic!("{e}"));
    // Fails with a clear message when moto is not running: use `make bench`.
    testkit::moto_endpoint();
    let dir = std::env::temp_dir().join(format!("inventory-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec_path = dir.join("fleet.yaml");
    std::fs::write(&spec_path, spec(&shape)).expect("write spec");

    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, &spec_path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let stdout = child.stdout.take().expect("stdout");
    let sim = Sim(child);
    let mut lines = BufReader::new(stdout);
    // The generated account ids, from the simulator's own build of the spec.
    let mut line = String::new();
    lines.read_line(&mut line).expect("accounts line");
    let accounts = line.trim().trim_start_matches("accounts ").to_owned();
    assert_eq!(accounts.split(',').count() as u64, shape.accounts);
    line.clear();
    lines.read_line(&mut line).expect("listening line");
    let endpoint = line.trim().trim_start_matches("listening on ").to_owned();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let new_table = || {
        rt.block_on(async {
            let client = testkit::dynamodb_client();
            testkit::create_table(&client).await
        })
    };
    println!(
        "inventory benchmark: BENCH_FLEET={}: fleet-sim generated {} accounts × {} clusters × {} \
         services = {} services, eu-west-1, latency {LATENCY_MS} ms, throttles on; moto serves \
         the table; each run in a process of its own",
        shape.name,
        shape.accounts,
        shape.clusters_per_account,
        shape.services_per_cluster,
        shape.services(),
    );
    let mut peak = 0.0f64;
    let mut rows = Vec::new();
    let mut table = new_table();
    for (i, plan) in runs(&shape).iter().enumerate() {
        if plan.table == Table::FreshMoto {
            table = new_table();
        }
        // Each run in a process of its own: its peak memory is its own, not what an earlier
        // run's allocations left behind.
        let mut run = Command::new(std::env::current_exe().expect("own path"))
            .env(RUN, i.to_string())
            .env("INVENTORY_BENCH_ENDPOINT", &endpoint)
            .env("INVENTORY_BENCH_ACCOUNTS", &accounts)
            .env("INVENTORY_BENCH_TABLE", &table)
            .env("INVENTORY_BENCH_DIR", &dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a run");
        let out = BufReader::new(run.stdout.take().expect("the run's stdout"));
        let mut row = String::new();
        for line in out.lines() {
            let line = line.expect("the run's output");
            if let Some(p) = line.strip_prefix("PEAK ") {
                peak = peak.max(p.parse().expect("a peak"));
            } else if line.starts_with('{') && line.contains("\"_aws\"") {
                // The handler's EMF line.
            } else {
                row.push_str(&line);
                row.push('\n');
            }
        }
        assert!(run.wait().expect("the run").success(), "run {i} failed");
        // Each run's headline as it ends, for long runs.
        println!("{}", row.lines().next().unwrap_or_default());
        rows.push(row);
    }
    println!("--- summary ---");
    for r in rows {
        println!("{r}");
    }
    println!(
        "peak RSS of an inventory process: {peak:.1} MB (the largest of the runs'; each \
         includes the runtime, the SDK and the benchmark's bookkeeping, not the in-memory \
         table's records; target ≤ 256 MB at 100,000 services: {:.2}×)",
        peak / 256.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(sim);
}

/// One run, in a process of its own: prints its row and `PEAK <MB>`.
fn run_child(index: usize) {
    let shape = BenchFleet::from_env().unwrap_or_else(|e| panic!("{e}"));
    let plan = runs(&shape)[index].clone();
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let endpoint = var("INVENTORY_BENCH_ENDPOINT");
    let accounts = var("INVENTORY_BENCH_ACCOUNTS");
    let table = var("INVENTORY_BENCH_TABLE");
    let dump = std::path::PathBuf::from(var("INVENTORY_BENCH_DIR")).join("catalog.json");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sdk = testkit::hub_sdk_config(&endpoint);
    // Before the in-memory table is filled: what it holds is the table's, not the handler's.
    let rss_start = memory_mb("VmRSS:");
    let mut vars = vec![
        ("TABLE_NAME", table.as_str()),
        ("ACCOUNTS", accounts.as_str()),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
    ];
    if let Some(c) = &plan.concurrency {
        vars.push(("ACCOUNT_CONCURRENCY", c.as_str()));
    }
    let config = Config::from_vars(vars).expect("config");
    let concurrency = config.account_concurrency;
    let describe_rate = config.pacing.describe_per_sec;
    let handler = inventory::aws::handler_with_clock(config, &sdk, Arc::new(SystemClock));
    let (m, store) = if plan.table == Table::Memory {
        let memory = SharedStore::default();
        let mut read = 0;
        if plan.seeded {
            // Yesterday's catalog, as a first night left it: one record a line, put a thousand
            // at a time, so that nothing but the table's own records stays behind.
            let file = std::fs::File::open(&dump).expect("the catalog of the run before");
            let mut chunk: Vec<CatalogRecord> = Vec::with_capacity(1_000);
            for line in BufReader::new(file).lines() {
                let line = line.expect("a line of the catalog");
                chunk.push(serde_json::from_str(&line).expect("a catalog record"));
                if chunk.len() == 1_000 {
                    rt.block_on(memory.put_catalog(&chunk)).expect("seeded");
                    read += chunk.len();
                    chunk.clear();
                }
            }
            rt.block_on(memory.put_catalog(&chunk)).expect("seeded");
            read += chunk.len();
        }
        let handler = inventory::Inventory {
            config: handler.config,
            directory: handler.directory,
            fleet: handler.fleet,
            store: memory.clone(),
            clock: handler.clock,
            calls: handler.calls,
        };
        let m = measure(&rt, &endpoint, &handler, plan.night);
        if plan.dump {
            let file = std::fs::File::create(&dump).expect("catalog file");
            let mut out = std::io::BufWriter::new(file);
            let catalog = memory.catalog.lock().unwrap_or_else(|e| e.into_inner());
            for r in catalog.values() {
                serde_json::to_writer(&mut out, r).expect("dumped");
                out.write_all(b"\n").expect("dumped");
            }
            out.flush().expect("dumped");
        }
        let store = if read > 0 {
            format!(
                "in-memory, holding yesterday's {read} records before the run (counted in the \
                 memory before)"
            )
        } else {
            "in-memory (the records written counted in the peak)".to_owned()
        };
        (m, store)
    } else {
        let m = measure(&rt, &endpoint, &handler, plan.night);
        (m, "moto (the DynamoDB store)".to_owned())
    };
    let summary = &m.summary;
    let wall = summary.discovery_ms as f64 / 1000.0;
    // One region: an account reached is one account-region listed.
    let listings = summary.accounts_reached as u64;
    assert_eq!(summary.services_found, shape.services());
    assert!(
        summary.unreachable_count == 0,
        "{:?}",
        summary.unreachable_sample
    );

    // The minimum per account: one page of clusters, one DescribeClusters, one page of
    // services per cluster (ListServices pages hold 100), ceil(n / 10) DescribeServices per
    // cluster.
    let per_account: BTreeMap<&str, u64> = [
        ("ListClusters", 1),
        ("DescribeClusters", 1),
        (
            "ListServices",
            shape.clusters_per_account * shape.services_per_cluster.div_ceil(100),
        ),
        (
            "DescribeServices",
            shape.clusters_per_account * shape.services_per_cluster.div_ceil(10),
        ),
    ]
    .into_iter()
    .collect();
    let paced: u64 = per_account.values().sum();
    // Floor: every account at once, each limited by its Describe bucket (burst = one second's
    // worth), plus the four dependent round trips.
    let floor =
        (paced as f64 - describe_rate).max(0.0) / describe_rate + 4.0 * LATENCY_MS as f64 / 1000.0;
    // With fewer slots than accounts, the accounts go through in waves.
    let waves = shape.accounts.div_ceil(u64::from(concurrency)).max(1);
    let mut action_rows = String::new();
    for (action, min) in &per_account {
        let made = m.calls.get(*action).copied().unwrap_or(0);
        let min = min * shape.accounts;
        action_rows.push_str(&format!(
            "| {action} | {made} | {min} | {:.3}× |\n",
            made as f64 / min as f64
        ));
    }
    print!(
        "ACCOUNT_CONCURRENCY={concurrency}{}, night {}, table {store}: discovery {wall:.2} s, \
         floor {floor:.2} s ({paced} paced calls per account at {describe_rate}/s), ratio \
         {:.2}× (with {waves} wave(s) of accounts the floor is {:.2} s: {:.2}×); invocation \
         (whole run with the catalog read and the table writes) {:.2} s ({} ms as the handler \
         measured it); catalog records written {}, listings written {} (one a reached \
         account-region): {:.4} catalog write units a service; throttled by fleet-sim {}; \
         ListTagsForResource {}; resident memory {:.1} MB before → peak {:.1} MB during the run \
         (+{:.1} MB)\n\
         | action | calls | minimum | ratio |\n|---|---|---|---|\n{action_rows}",
        if plan.concurrency.is_none() {
            " (the default)"
        } else {
            ""
        },
        plan.night,
        wall / floor,
        floor * waves as f64,
        wall / (floor * waves as f64),
        m.whole,
        summary.duration_ms,
        summary.counts.written,
        listings,
        (summary.counts.written + listings) as f64 / summary.services_found.max(1) as f64,
        m.throttled,
        m.calls.get("ListTagsForResource").copied().unwrap_or(0),
        m.rss_before,
        m.peak,
        m.peak - m.rss_before,
    );
    // The table of a deployed function is DynamoDB's: the peak without the in-memory table's
    // records is the function's.
    let table_share = if plan.seeded {
        (m.rss_before - rss_start).max(0.0)
    } else {
        0.0
    };
    if plan.seeded {
        println!(
            "the in-memory table's records took {table_share:.1} MB before the run: the peak \
             without them {:.1} MB",
            m.peak - table_share
        );
    }
    println!("PEAK {}", m.peak - table_share);
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
