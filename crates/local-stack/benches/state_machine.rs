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

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use local_stack::night::{USD_PER_TRANSITION, history, transitions};
use local_stack::{Compression, LocalStack, StackOptions, Watch};

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

async fn night(batches: u32, per_batch: u32) -> anyhow::Result<String> {
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
    Ok(format!(
        "| {batches} | {services} | {ran} | {polls} ({:.1} a batch) | {} | {} | {:.1} | ${:.4} | {:.1} KB | {:.0} s |",
        polls as f64 / f64::from(batches),
        events.len(),
        n_transitions,
        n_transitions as f64 / f64::from(batches),
        n_transitions as f64 * USD_PER_TRANSITION,
        largest as f64 / 1024.0,
        elapsed.as_secs_f64()
    ))
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
    for b in batches {
        // The functions print EMF lines on standard output, as in Lambda: not here.
        let quiet = gag::Gag::stdout().ok();
        let row = night(b, per_batch).await;
        drop(quiet);
        println!("{}", row?);
    }
    Ok(())
}
