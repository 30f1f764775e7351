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
//! nights. Results: docs/performance.md, "State machine" and "Cost"; each night's bill
//! ([`local_stack::bill::Statement`]: counts, line items, months of 1,000, 10,000 and 100,000
//! services) in `target/night-bills.json`.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use local_stack::bill::{LogBill, NightBill, Statement, US_EAST_1};
use local_stack::night::{history, transitions};
use local_stack::{Compression, LocalStack, StackOptions, Watch};

/// The functions' JSON log lines since the last [`take_logs`].
static LOGS: Mutex<Option<LogBill>> = Mutex::new(None);

fn take_logs() -> LogBill {
    LOGS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_default()
}

/// Counts the log lines instead of printing them.
struct CountingWriter;

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_default()
            .add(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fleets a month is projected to, and how their nights are shaped: 36 batches; a batch
/// polled 10 times (its slowest normal restart: 240-600 s deployments at 60 s polls) unless
/// one of its restarts is stuck (0.5 % of deployments), then 24 times (the slow-restart
/// waits' cap).
const MONTH_FLEETS: [u64; 3] = [1_000, 10_000, 100_000];
const PRODUCTION_BATCHES: u64 = 36;
const STUCK_SHARE: f64 = 0.005;
const NORMAL_POLLS: f64 = 10.0;
const SLOW_POLLS: f64 = 24.0;

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
    let emf = restart_core::telemetry::captured();
    let bill = match &report {
        Ok(r) => Some(
            local_stack::bill::measure(&stack, &r.execution.arn, services, &emf, Some(take_logs()))
                .await,
        ),
        Err(_) => None,
    };
    stack.stop().await;
    let report = report?;
    let bill = bill.context("the night's bill")??;
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
    let polls = bill.step_functions.polls;
    let ran = report
        .services
        .iter()
        .filter(|s| s.state.is_restart_outcome())
        .count();
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

/// What a night was billed, per line item and per service, and its months.
fn print_bill(st: &Statement) {
    let b = &st.bill;
    let per = |x: f64| x / b.services as f64;
    let d = &b.dynamodb;
    let invocations: u64 = b.invocations.values().sum();
    println!("\n{}", st.summary());
    println!(
        "Lambda: {:?} invocations, {:?} ms billed, {:?} MB; SNS {} messages; {} custom metrics",
        b.invocations,
        b.billed_ms,
        b.memory_mb,
        b.sns.messages,
        b.metrics.len()
    );
    println!(
        "Step Functions: {} transitions = {} states entered + {} retries {:?}; {} batches, {} polls",
        b.step_functions.transitions,
        b.step_functions.states_entered,
        b.step_functions.retries,
        b.step_functions.retries_by_state,
        b.step_functions.batches,
        b.step_functions.polls
    );
    println!("| function | invocations | EMF lines | EMF bytes | bytes an invocation |");
    println!("|---|---|---|---|---|");
    for (f, bytes) in &b.emf.bytes_by_function {
        let n = b.invocations.get(f).copied().unwrap_or(0);
        println!(
            "| {f} | {n} | {} | {bytes} | {:.0} |",
            b.emf.lines_by_function.get(f).copied().unwrap_or(0),
            *bytes as f64 / n.max(1) as f64
        );
    }
    println!(
        "| all | {invocations} | {} | {} | {:.0} |",
        b.emf.lines,
        b.emf.bytes,
        b.emf.bytes as f64 / invocations.max(1) as f64
    );
    if let Some(logs) = &b.logs {
        println!(
            "logs: {} lines, {} B; naming a service {} lines, {} B ({:.0} a service); others {} B ({:.0} an invocation)",
            logs.lines,
            logs.bytes,
            logs.service_lines,
            logs.service_bytes,
            per(logs.service_bytes as f64),
            logs.bytes - logs.service_bytes,
            (logs.bytes - logs.service_bytes) as f64 / invocations.max(1) as f64
        );
    }
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
    println!(
        "| item kind | items written | write units | a service | largest item | read units | a service |"
    );
    println!("|---|---|---|---|---|---|---|");
    let kinds: std::collections::BTreeSet<&String> = d
        .write_units_by_kind
        .keys()
        .chain(d.read_units_by_kind.keys())
        .collect();
    for kind in kinds {
        let w = d.write_units_by_kind.get(kind).copied().unwrap_or(0.0);
        let r = d.read_units_by_kind.get(kind).copied().unwrap_or(0.0);
        println!(
            "| {kind} | {} | {w:.0} | {:.2} | {} B | {r:.1} | {:.2} |",
            d.writes_by_kind.get(kind).copied().unwrap_or(0),
            per(w),
            d.largest_item.get(kind).copied().unwrap_or(0),
            per(r)
        );
    }
    println!("| line | item | count | unit | grows with | dollars a night |");
    println!("|---|---|---|---|---|---|");
    for i in &st.items {
        println!(
            "| {} | {} | {:.1} | {} | {:?} | ${:.6} |",
            i.line, i.item, i.count, i.unit, i.scale, i.dollars
        );
    }
    println!("| total | | | | | ${:.5} |", st.total_dollars);
    for m in &st.months {
        println!(
            "\nA month of {:.0} services ({:.0} batches, {:.1} polls a batch, {:.0} invocations a night): ${:.2}",
            m.shape.services,
            m.shape.batches,
            m.shape.polls / m.shape.batches.max(1.0),
            m.shape.invocations,
            m.total_dollars
        );
        for (line, usd) in &m.dollars {
            println!("  {line}: ${usd:.2}");
        }
    }
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
    // The handlers run inside each stack's own subscriber (for their traces): it takes them.
    local_stack::traces::function_logs("info,local_stack=off,fleet_sim=off", || {
        Box::new(CountingWriter)
    });
    let mut bills = Vec::new();
    for b in batches {
        // The functions print EMF lines on standard output, as in Lambda: not here (they are
        // captured and counted).
        restart_core::telemetry::capture();
        take_logs();
        let quiet = gag::Gag::stdout().ok();
        let night = night(b, per_batch).await;
        drop(quiet);
        let (row, bill) = night?;
        println!("{row}");
        bills.push(bill);
    }
    let statements: Vec<Statement> = bills
        .iter()
        .map(|bill| {
            let months: Vec<_> = MONTH_FLEETS
                .iter()
                .map(|n| {
                    bill.production_shape(
                        *n,
                        PRODUCTION_BATCHES,
                        STUCK_SHARE,
                        NORMAL_POLLS,
                        SLOW_POLLS,
                    )
                })
                .collect();
            bill.statement(&US_EAST_1, &months)
        })
        .collect();
    for statement in &statements {
        print_bill(statement);
    }
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/night-bills.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&statements)?)?;
    println!("\nthe bills: {}", out.display());
    Ok(())
}
