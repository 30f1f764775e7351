//! The state machine's cost, measured from moto's execution history (GetExecutionHistory):
//! history events and state transitions of a night of 36 and of 200 batches, run through the
//! real definition and the real functions by the local stack, and the Step Functions price per
//! night ($0.025 per 1,000 state transitions, Standard workflows).
//!
//! Each batch polls as it would in production: `POLL_INTERVAL_SECONDS` = 2 real seconds stand
//! for the production 60 s (fleet-sim runs 30x), so 240-600 s deployments take 4-10 polls and a
//! stuck one times out after 30 (`RESTART_TIMEOUT_MINUTES` = 1 real minute = 30 simulated
//! ones). The batches' start times are in the past (`Compression::started_long_ago`), so the
//! Map runs them as fast as its 40 concurrent iterations allow instead of one a minute; that
//! changes no event count.
//!
//! Run: `tools/with-moto cargo bench -p local-stack --bench state_machine` (or `make bench`).
//! `STATE_MACHINE_BATCHES=36,200` (default) and `SERVICES_PER_BATCH=10` (default) choose the
//! nights. Results: docs/performance.md, "State machine".

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use local_stack::bill::{NightBill, US_EAST_1};
use local_stack::infra::Template;
use local_stack::night::{history, transitions};
use local_stack::{Compression, LocalStack, StackOptions, Watch};

/// Bytes of the functions' JSON log lines since the last [`take_log_bytes`].
static LOG_BYTES: AtomicU64 = AtomicU64::new(0);

fn take_log_bytes() -> u64 {
    LOG_BYTES.swap(0, Ordering::Relaxed)
}

/// Counts the bytes of the log lines instead of printing them.
struct CountingWriter;

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG_BYTES.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fleet(services: u32) -> anyhow::Result<fleet_sim::FleetSpec> {
    // 20 accounts of 5 clusters; services spread evenly.
    let per_cluster = services.div_ceil(100).max(1);
    fleet_sim::FleetSpec::from_yaml_str(&format!(
        r#"
seed: 5
generate:
  accounts: 20
  regions: [eu-west-1]
  clusters_per_account: 5
  services_per_cluster: {per_cluster}
  tagged_percent: 100
  deploy_seconds: [240, 600]
  fail_percent: 1
  stuck_percent: 0.5
  vanish_percent: 0.5
"#
    ))
    .context("the generated fleet")
}

async fn night(batches: u32, per_batch: u32) -> anyhow::Result<(String, NightBill)> {
    let compression = Compression::started_long_ago(batches, Utc::now())?;
    let mut fleet = fleet(batches * per_batch)?;
    fleet.time_scale = compression.time_scale;
    let services = fleet.service_count();
    let stack = LocalStack::start(StackOptions {
        fleet,
        vars: compression.vars().into_iter().collect(),
        infra_dir: local_stack::infra::infra_dir().expect("infra/ is found from the crate folder"),
    })
    .await?;
    let began = Instant::now();
    let watch = Watch {
        progress: false,
        grace: Duration::from_secs(900),
    };
    let report = local_stack::run_night(&stack, &compression, &watch).await;
    let elapsed = began.elapsed();
    let sfn = aws_sdk_sfn::Client::new(&stack.sdk);
    let events = match &report {
        Ok(r) => history(&sfn, &r.execution.arn).await?,
        Err(_) => Vec::new(),
    };
    let invocations = stack.host.invocations();
    let (dynamodb, sns) = stack.host.bill();
    let log_bytes = take_log_bytes();
    let emf = restart_core::telemetry::captured();
    let emf_bytes = emf.iter().map(|l| l.len() as u64 + 1).sum();
    let metrics = local_stack::bill::emf_metrics(emf.iter().map(String::as_str));
    stack.stop().await;
    let report = report?;
    anyhow::ensure!(report.is_ok(), "the night went wrong:\n{}", report.render());
    let planned_batches = report
        .services
        .iter()
        .filter_map(|s| s.batch)
        .max()
        .map_or(0, |b| b + 1);
    anyhow::ensure!(
        planned_batches == batches,
        "planned {planned_batches} batches, not {batches}"
    );
    let n_transitions = transitions(&events);
    // The largest state input or output in the history: the 256 KB payload limit.
    let largest = events
        .iter()
        .filter_map(|e| {
            e.state_entered_event_details()
                .and_then(|d| d.input())
                .or_else(|| e.state_exited_event_details().and_then(|d| d.output()))
                .map(str::len)
        })
        .max()
        .unwrap_or(0);
    let polls: usize = events
        .iter()
        .filter(|e| {
            e.state_entered_event_details()
                .is_some_and(|d| d.name() == "PollBatch")
        })
        .count();
    let ran = report
        .services
        .iter()
        .filter(|s| s.state.is_restart_outcome())
        .count();
    let bill = NightBill {
        services,
        transitions: n_transitions as u64,
        invocations: invocations.calls,
        billed_ms: invocations.billed_ms,
        memory_mb: Template::load(&local_stack::infra::infra_dir()?)?.memory_mb()?,
        dynamodb,
        sns,
        emf_bytes,
        log_bytes,
        metrics,
        scheduler_invocations: 1,
    };
    let row = format!(
        "| {batches} | {services} | {ran} | {polls} ({:.1} a batch) | {} | {} | {:.1} | ${:.4} | {:.1} KB | {:.0} s |",
        polls as f64 / f64::from(batches),
        events.len(),
        n_transitions,
        n_transitions as f64 / f64::from(batches),
        n_transitions as f64 * US_EAST_1.transition,
        largest as f64 / 1024.0,
        elapsed.as_secs_f64()
    );
    Ok((row, bill))
}

/// What a night was billed, per line and per service.
fn print_bill(b: &NightBill) {
    let per = |x: f64| x / b.services as f64;
    let d = &b.dynamodb;
    println!(
        "\n{} services: {} transitions; Lambda {} invocations, {:.1} GB-s ({:?} ms billed, {:?} MB); \
         SNS {} messages, {} publishes billed, {} bytes; EMF {} bytes ({:.0} a service), {} custom metrics; \
         logs {} bytes ({:.0} a service)",
        b.services,
        b.transitions,
        b.invocations.values().sum::<u64>(),
        b.gb_seconds(),
        b.billed_ms,
        b.memory_mb,
        b.sns.messages,
        b.sns.billed_publishes,
        b.sns.bytes,
        b.emf_bytes,
        per(b.emf_bytes as f64),
        b.metrics.len(),
        b.log_bytes,
        per(b.log_bytes as f64)
    );
    println!(
        "DynamoDB: {:.0} WRU ({:.2} a service), {:.0} RRU ({:.2} a service)",
        d.total_write_units(),
        per(d.total_write_units()),
        d.total_read_units(),
        per(d.total_read_units())
    );
    println!("| operation | requests | write units | a service | read units | a service |");
    println!("|---|---|---|---|---|---|");
    for (op, n) in &d.requests {
        let w = d.write_units.get(op).copied().unwrap_or(0.0);
        let r = d.read_units.get(op).copied().unwrap_or(0.0);
        println!(
            "| {op} | {n} | {w:.0} | {:.2} | {r:.0} | {:.2} |",
            per(w),
            per(r)
        );
    }
    println!("| item kind | items written | write units | a service | largest item |");
    println!("|---|---|---|---|---|");
    for (kind, w) in &d.write_units_by_kind {
        println!(
            "| {kind} | {} | {w:.0} | {:.2} | {} B |",
            d.writes_by_kind.get(kind).copied().unwrap_or(0),
            per(*w),
            d.largest_item.get(kind).copied().unwrap_or(0)
        );
    }
    println!("| line | dollars a night | a service |");
    println!("|---|---|---|");
    let dollars = b.dollars(&US_EAST_1);
    for (line, usd) in &dollars {
        println!("| {line} | ${usd:.5} | ${:.8} |", per(*usd));
    }
    let total: f64 = dollars.values().sum();
    println!("| total | ${total:.5} | ${:.8} |", per(total));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let batches: Vec<u32> = std::env::var("STATE_MACHINE_BATCHES")
        .unwrap_or_else(|_| "36,200".into())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .context("STATE_MACHINE_BATCHES: numbers, comma separated")
        })
        .collect::<anyhow::Result<_>>()?;
    let per_batch: u32 = std::env::var("SERVICES_PER_BATCH")
        .unwrap_or_else(|_| "10".into())
        .parse()
        .context("SERVICES_PER_BATCH: a number")?;
    println!(
        "| batches | services | restarts | polls | history events | state transitions | transitions a batch | cost a night | largest state payload | run time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    // The functions' logs as Lambda would ingest them (JSON at `info`), counted; the stack's
    // and fleet-sim's own are not the functions'.
    restart_lambda::json_logs("info,local_stack=off,fleet_sim=off", || CountingWriter);
    let mut bills = Vec::new();
    for b in batches {
        // The functions print EMF lines on standard output, as in Lambda: not here (they are
        // captured and counted).
        restart_core::telemetry::capture();
        take_log_bytes();
        let quiet = gag::Gag::stdout().ok();
        let night = night(b, per_batch).await;
        drop(quiet);
        let (row, bill) = night?;
        println!("{row}");
        bills.push(bill);
    }
    for bill in &bills {
        print_bill(bill);
    }
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/night-bills.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&bills)?)?;
    println!("\nthe counts: {}", out.display());
    Ok(())
}
