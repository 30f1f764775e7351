//! Batcher benchmark: one night's plan of a whole catalog through the real handler, for the
//! function's memory and time limits. The catalog is synthetic (no fleet-sim: the batcher reads
//! only the table): `BENCH_FLEET` = `10k` (the default: 50 accounts × 20 clusters × 10
//! services), `100k` (200 × 20 × 25) or `100k-50` (50 × 20 × 100), every fifth service
//! untagged (skipped at planning), the rest enrolled; window 00:00-06:00 UTC, 10-minute batches.
//!
//! Each run is a first plan of the night (every record created), in a process of its own so
//! that its peak memory is its own:
//! 1. `memory`: the handler over the in-memory table (`MemoryStore`), as the restarter's night
//!    benchmark runs it: the planner and the records' building, no I/O. The table's catalog is
//!    counted before the run; the records it creates are counted in the peak, so
//! 2. `store`: the same records created in a `MemoryStore` alone, whose growth is the table's
//!    share of (1): the handler's own is the difference.
//! 3. `dynamo` (10k only, or with `BENCH_BATCHER_MOTO=1`): the production handler
//!    (`batcher::aws`, the DynamoDB store) against moto, whose table the benchmark first fills
//!    with the catalog. Its peak is the handler's alone; its time is moto's (every Query scans
//!    moto's whole table: at 100,000 services the run would take hours and outlast the SDK's
//!    timeout), so the requests are counted and a time at DynamoDB's latency estimated.
//!
//! Run with `tools/with-moto cargo bench -p batcher --bench plan` (moto serves the table).

use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::bench::{BenchFleet, memory_mb};

use chrono::NaiveDate;
use restart_core::Config;
use restart_core::catalog::CatalogRecord;
use restart_core::clock::SystemClock;
use restart_core::eligibility::SkipReason;
use restart_core::night::NightRecord;
use restart_core::ports::{CatalogStore, NightStore};
use restart_core::tag::TagStateKind;
use testkit::fakes::MemoryStore;
use testkit::fixtures::{enrolled_record, service_id};

/// Set in a run's own process: which run.
const RUN: &str = "BATCHER_BENCH_RUN";
const NIGHT: &str = "2026-11-22";
/// How many records a BatchWriteItem takes.
const WRITE_CHUNK: u64 = 25;
/// The DynamoDB store's conditional PutItem requests in flight at once (`night.rs`).
const PUT_CONCURRENCY: f64 = 16.0;
/// A PutItem's round trip in DynamoDB from a Lambda of the same region, for the estimate.
const PUT_LATENCY: Duration = Duration::from_millis(10);
/// The functions' timeout (infra/template.yaml, Globals: the batcher sets none of its own).
const LAMBDA_TIMEOUT_SECONDS: f64 = 300.0;
/// The functions' memory (infra/template.yaml, Globals).
const LAMBDA_MEMORY_MB: f64 = 512.0;

fn account_ids(shape: &BenchFleet) -> Vec<String> {
    (0..shape.accounts)
        .map(|a| format!("{:012}", 100_000_000_000 + a * 7_919))
        .collect()
}

/// The catalog inventory would have written tonight.
fn catalog(shape: &BenchFleet, night: NaiveDate) -> Vec<CatalogRecord> {
    let mut records = Vec::with_capacity(shape.services() as usize);
    let mut i = 0u64;
    for account in account_ids(shape) {
        for c in 0..shape.clusters_per_account {
            let cluster = format!("cluster-{c:03}");
            for s in 0..shape.services_per_cluster {
                let id = service_id(&account, &cluster, &format!("service-{s:03}"));
                let mut r = enrolled_record(id, format!("team-{}", c % 12), night);
                if i.is_multiple_of(5) {
                    r.tag_value = None;
                    r.tag_state = TagStateKind::Untagged;
                    r.skip_reason = Some(SkipReason::Untagged);
                }
                records.push(r);
                i += 1;
            }
        }
    }
    records
}

/// Resets the peak (`VmHWM`) to the current size, so that the next reading is one run's.
fn reset_peak() {
    // Without it the peak read is the process's so far: still a bound.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn config(shape: &BenchFleet, table: &str) -> Config {
    let accounts = account_ids(shape).join(",");
    Config::from_vars([
        ("TABLE_NAME", table),
        ("ACCOUNTS", accounts.as_str()),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
        ("WINDOW_START", "00:00"),
        ("WINDOW_END", "06:00"),
        ("TIMEZONE", "UTC"),
        ("BATCH_INTERVAL_MINUTES", "10"),
    ])
    .expect("config")
}

/// What one run of the handler came to.
struct Run {
    took: Duration,
    rss_before: f64,
    peak: f64,
    batches: usize,
    planned: u64,
}

fn run<S>(rt: &tokio::runtime::Runtime, batcher: &batcher::Batcher<S>, night: NaiveDate) -> Run
where
    S: CatalogStore + NightStore,
{
    let rss_before = memory_mb("VmRSS:");
    reset_peak();
    let t = Instant::now();
    let plan = rt
        .block_on(batcher.handle(serde_json::json!({ "night": night })))
        .unwrap_or_else(|e| panic!("batcher: {}: {}", e.error_type, e.message));
    let took = t.elapsed();
    Run {
        took,
        rss_before,
        peak: memory_mb("VmHWM:"),
        batches: plan.batches.len(),
        planned: plan.batches.iter().map(|b| u64::from(b.size)).sum(),
    }
}

fn main() {
    if let Ok(mode) = std::env::var(RUN) {
        return run_child(&mode);
    }
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.iter().any(|a| !"plan".contains(a.as_str())) {
        return;
    }
    let shape = BenchFleet::from_env().unwrap_or_else(|e| panic!("{e}"));
    // Fails with a clear message when moto is not running: use `make bench`.
    testkit::moto_endpoint();
    println!(
        "batcher benchmark: BENCH_FLEET={}: a catalog of {} accounts × {} clusters × {} \
         services = {} services (every fifth untagged), window 00:00-06:00 UTC, 10-minute \
         batches; each run in a process of its own",
        shape.name,
        shape.accounts,
        shape.clusters_per_account,
        shape.services_per_cluster,
        shape.services()
    );
    let moto = shape.name == "10k" || std::env::var("BENCH_BATCHER_MOTO").is_ok_and(|v| v == "1");
    let mut figures = std::collections::BTreeMap::new();
    for mode in ["memory", "store", "dynamo"] {
        if mode == "dynamo" && !moto {
            println!(
                "dynamo: left out at {} services (moto would take hours; BENCH_BATCHER_MOTO=1 \
                 runs it)",
                shape.services()
            );
            continue;
        }
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .env(RUN, mode)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("a run");
        assert!(out.status.success(), "the {mode} run failed");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(kv) = line.strip_prefix("FIGURE ") {
                let (k, v) = kv.split_once(' ').expect("FIGURE name value");
                figures.insert(format!("{mode}.{k}"), v.parse::<f64>().expect("a number"));
            } else if !(line.starts_with('{') && line.contains("\"_aws\"")) {
                println!("{line}");
            }
        }
    }
    let f = |k: &str| figures.get(k).copied().unwrap_or(f64::NAN);
    let own = f("memory.peak") - f("memory.before") - f("store.growth");
    println!(
        "the handler's own memory (in-memory run's growth {:.1} MB − the table's share {:.1} MB): \
         {own:.1} MB; with a process's base ({:.1} MB here) ≈ {:.1} MB against the function's \
         {LAMBDA_MEMORY_MB} MB ({:.2}×), before the SDK's requests and answers",
        f("memory.peak") - f("memory.before"),
        f("store.growth"),
        f("memory.base"),
        f("memory.base") + own,
        (f("memory.base") + own) / LAMBDA_MEMORY_MB,
    );
}

/// One run in a process of its own (see the module documentation).
fn run_child(mode: &str) {
    let shape = BenchFleet::from_env().unwrap_or_else(|e| panic!("{e}"));
    let night: NaiveDate = NIGHT.parse().expect("night");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let records = shape.services();
    match mode {
        "memory" => {
            let base = memory_mb("VmRSS:");
            let store = MemoryStore::default();
            // The catalog a thousand records at a time: nothing but the table's records stays.
            for chunk in catalog(&shape, night).chunks(1_000) {
                rt.block_on(store.put_catalog(chunk)).expect("catalog");
            }
            let batcher = batcher::Batcher {
                config: Arc::new(config(&shape, "in-memory")),
                store,
                clock: Arc::new(SystemClock),
            };
            let writes_before = batcher.store.night_writes();
            let run = run(&rt, &batcher, night);
            let items = batcher.store.night_writes() - writes_before;
            println!(
                "memory: invocation {:.0} ms (the planner and the records' building, no I/O); \
                 {records} records created ({} planned in {} batches, {} skipped), {items} night \
                 items with the batch items and the summary = {} BatchWriteItem-sized chunks of \
                 {WRITE_CHUNK}; the DynamoDB store sends one conditional PutItem a record, \
                 {PUT_CONCURRENCY} in flight: {records} requests, ≈ {:.0} s at {} ms each (the \
                 function's timeout is {LAMBDA_TIMEOUT_SECONDS} s: {:.2}×); resident memory \
                 {base:.1} MB at the start, {:.1} MB with the catalog in the table → peak {:.1} MB \
                 during (+{:.1} MB, the table's new records included)",
                run.took.as_secs_f64() * 1000.0,
                run.planned,
                run.batches,
                records - run.planned,
                records.div_ceil(WRITE_CHUNK),
                estimate(records),
                PUT_LATENCY.as_millis(),
                estimate(records) / LAMBDA_TIMEOUT_SECONDS,
                run.rss_before,
                run.peak,
                run.peak - run.rss_before,
            );
            println!("FIGURE base {base}");
            println!("FIGURE before {}", run.rss_before);
            println!("FIGURE peak {}", run.peak);
        }
        "store" => {
            let store = MemoryStore::default();
            let catalog = catalog(&shape, night);
            let start = night.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let before = memory_mb("VmRSS:");
            let mut chunk = Vec::with_capacity(1_000);
            for (i, r) in catalog.iter().enumerate() {
                chunk.push(match r.skip_reason {
                    Some(reason) => NightRecord::skipped(r, night, reason),
                    None => NightRecord::planned(r, night, (i % 36) as u32, start),
                });
                if chunk.len() == 1_000 {
                    rt.block_on(store.create_records(&chunk)).expect("created");
                    chunk.clear();
                }
            }
            rt.block_on(store.create_records(&chunk)).expect("created");
            let growth = memory_mb("VmRSS:") - before;
            println!(
                "store: {records} night records created in a MemoryStore alone, a thousand at a \
                 time: +{growth:.1} MB (the table's share of the memory run)"
            );
            println!("FIGURE growth {growth}");
        }
        "dynamo" => {
            let table = rt.block_on(async {
                let client = testkit::dynamodb_client();
                testkit::create_table(&client).await
            });
            // Only DynamoDB is called: the other services' endpoint is never used.
            let sdk = testkit::hub_sdk_config("http://127.0.0.1:9");
            let handler = batcher::aws::handler_with_clock(
                config(&shape, &table),
                &sdk,
                Arc::new(SystemClock),
            );
            let t = Instant::now();
            for chunk in catalog(&shape, night).chunks(1_000) {
                rt.block_on(handler.store.put_catalog(chunk))
                    .expect("catalog written");
            }
            println!(
                "dynamo: moto's table filled with the catalog ({records} records, {} \
                 BatchWriteItem) in {:.1} s",
                records.div_ceil(WRITE_CHUNK),
                t.elapsed().as_secs_f64()
            );
            let run = run(&rt, &handler, night);
            println!(
                "dynamo: invocation {:.1} s (moto's time); {records} records created ({} planned \
                 in {} batches) = {records} conditional PutItem requests; resident memory {:.1} \
                 MB before → peak {:.1} MB during (+{:.1} MB: the handler's alone; the function \
                 has {LAMBDA_MEMORY_MB} MB: {:.2}×)",
                run.took.as_secs_f64(),
                run.planned,
                run.batches,
                run.rss_before,
                run.peak,
                run.peak - run.rss_before,
                run.peak / LAMBDA_MEMORY_MB,
            );
        }
        other => panic!("unknown run {other}"),
    }
}

/// The records' writes at DynamoDB's latency: one conditional PutItem each, 16 in flight.
fn estimate(records: u64) -> f64 {
    records as f64 / PUT_CONCURRENCY * PUT_LATENCY.as_secs_f64()
}
