//! One nightly execution through the real state machine in moto, watched until it ends, and
//! everything the report needs read back: the night's records (DynamoDB), the inventory run,
//! the execution's history (Step Functions), the SNS messages (moto's `/moto-api/data.json`),
//! fleet-sim's statistics (`/_sim/stats`) and the X-Ray documents the functions sent.

use std::collections::{BTreeSet, VecDeque};
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_sfn::error::DisplayErrorContext;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use chrono::{DateTime, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{CatalogStore, NightStore, RestartStore};

use crate::compress::Compression;
use crate::http;
use crate::report::{Execution, NightReport, Notice};
use crate::stack::LocalStack;

/// How the night is watched.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Show an indicatif progress bar (when standard error is a terminal) or a line every
    /// 15 s (when it is not); `false`: nothing.
    pub progress: bool,
    /// Give up (and stop the execution) this long after the window's end.
    pub grace: Duration,
}

impl Watch {
    /// The grace a night of a fleet whose ECS answers HTTP 500 needs: a claim whose
    /// UpdateService got no answer in the window's last moment is judged only after its lease
    /// ([`restarter::CLAIM_LEASE`], 330 s: the lease is real time, never compressed), by the
    /// next poll; 90 s more for a loaded machine, where moto runs the state machine slower.
    pub fn lease_grace() -> Duration {
        restarter::CLAIM_LEASE.to_std().unwrap_or_default() + Duration::from_secs(90)
    }
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            progress: true,
            grace: Watch::lease_grace(),
        }
    }
}

/// The execution's history, every page.
pub async fn history(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> anyhow::Result<Vec<HistoryEvent>> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .max_results(1000)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetExecutionHistory: {}", DisplayErrorContext(&e)))?;
        events.extend(page.events);
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(events),
        }
    }
}

/// State transitions of a history as Step Functions bills them (Standard workflows): every
/// state entered and every retry of a Task ([`crate::bill::StepFunctionsBill`]).
pub fn transitions(events: &[HistoryEvent]) -> u64 {
    crate::bill::StepFunctionsBill::from_history(events).transitions
}

/// Starts the nightly execution (input `{}`) as the schedule does, with the scheduler's role,
/// and returns its ARN.
pub async fn start(stack: &LocalStack, night: NaiveDate) -> anyhow::Result<String> {
    let sfn = aws_sdk_sfn::Client::new(&stack.sdk_as("scheduler"));
    // moto calls an unnamed execution "None": always name it.
    let name = format!("nightly-{night}-{}", Utc::now().format("%H%M%S"));
    let out = sfn
        .start_execution()
        .state_machine_arn(&stack.hub.state_machine_arn)
        .name(name)
        .input("{}")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("StartExecution: {}", DisplayErrorContext(&e)))?;
    Ok(out.execution_arn)
}

/// Runs one night: starts the execution, watches it (progress) until it ends or the window's
/// end plus the grace has passed (then stops it), and reads back everything for the report.
pub async fn run_night(
    stack: &LocalStack,
    compression: &Compression,
    watch: &Watch,
) -> anyhow::Result<NightReport> {
    let night = stack.config.window.night_at(Utc::now()).night;
    let store = restart_aws::dynamo_store(
        &stack.sdk,
        &stack.config.table_name,
        stack.config.record_ttl_days,
    );
    let sfn = aws_sdk_sfn::Client::new(&stack.sdk);
    let execution_arn = start(stack, night).await?;
    tracing::info!(%night, %execution_arn, "nightly execution started");

    let bar = progress_bar(watch.progress);
    let deadline = compression.window_end + chrono::TimeDelta::from_std(watch.grace)?;
    let mut progress = Progress::default();
    let mut last_line: Option<Instant> = None;
    let mut finished_in_time = true;
    loop {
        let status = sfn
            .describe_execution()
            .execution_arn(&execution_arn)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeExecution: {}", DisplayErrorContext(&e)))?
            .status;
        if watch.progress {
            // A line when a batch begins and every 15 s between (every second on the bar).
            let now = Utc::now();
            let begun = progress.begun(&store, night, now).await;
            let new_batch = begun > progress.shown_begun;
            let due = last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(15));
            if !bar.is_hidden() || new_batch || due {
                let line = progress
                    .line(stack, &store, night, compression, &bar, now)
                    .await;
                if bar.is_hidden() {
                    eprintln!("{line}");
                    last_line = Some(Instant::now());
                } else {
                    if new_batch {
                        bar.println(&line);
                    }
                    bar.set_message(line);
                }
                progress.shown_begun = begun;
            }
        }
        if status != ExecutionStatus::Running {
            break;
        }
        if Utc::now() > deadline {
            finished_in_time = false;
            tracing::error!(%execution_arn, "the night did not finish in time: stopping it");
            let _ = sfn
                .stop_execution()
                .execution_arn(&execution_arn)
                .error("LocalRunTimeout")
                .cause("the local night did not finish within the grace after its window")
                .send()
                .await;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bar.finish_and_clear();

    let described = sfn
        .describe_execution()
        .execution_arn(&execution_arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("DescribeExecution: {}", DisplayErrorContext(&e)))?;
    let events = history(&sfn, &execution_arn).await?;
    let transitions = transitions(&events);
    let execution = Execution {
        arn: execution_arn.clone(),
        status: described.status.as_str().to_owned(),
        finished_in_time,
        started_at: described.start_date.to_string(),
        stopped_at: described.stop_date.map(|d| d.to_string()),
        history_events: events.len() as u64,
        state_transitions: transitions,
        cost_usd: transitions as f64 * crate::bill::US_EAST_1.transition,
        error: described.error,
        cause: described.cause,
    };

    let records = store
        .read_night(night)
        .await
        .map_err(|e| anyhow::anyhow!("reading the night's records: {e}"))?;
    let inventory = store
        .get_inventory_run(night)
        .await
        .map_err(|e| anyhow::anyhow!("reading the night's inventory run: {e}"))?;
    let accounts: Vec<_> = match &stack.config.accounts {
        restart_core::config::AccountsSource::List(a) => a.clone(),
        restart_core::config::AccountsSource::ConfigAggregator
        | restart_core::config::AccountsSource::Organizations { .. } => records
            .iter()
            .map(|r| r.id.account.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let catalog = store
        .read_catalog(&accounts)
        .await
        .map_err(|e| anyhow::anyhow!("reading the catalog: {e}"))?;
    let inventoried: BTreeSet<_> = catalog
        .iter()
        .filter(|c| c.last_seen == night && c.gone_since.is_none())
        .map(|c| c.id.clone())
        .collect();
    let status = store
        .night_status(night)
        .await
        .map_err(|e| anyhow::anyhow!("reading the night's counters: {e}"))?;
    let batches = store
        .read_batches(night)
        .await
        .map_err(|e| anyhow::anyhow!("reading the night's batches: {e}"))?;
    let notices = notices(stack).await?;
    let sim_stats = http::get_json(
        &http::client(),
        &format!("{}/_sim/stats", stack.sim.endpoint_url()),
    )
    .await
    .context("reading fleet-sim's statistics")?;
    // Every invocation has answered: what the functions sent is at the listener.
    let traces = stack.traces().await;

    let report = NightReport::build(
        night,
        compression.clone(),
        execution,
        &batches,
        records,
        inventory,
        &inventoried,
        &status,
        notices,
        sim_stats,
        stack.host.invocations(),
        stack.config.dry_run,
    );
    Ok(match traces {
        Ok(traces) => report.with_traces(traces),
        Err(e) => {
            tracing::warn!(error = %e, "the night's traces were not read");
            report
        }
    })
}

/// Every SNS message published, read back from moto's `/moto-api/data.json`.
pub async fn notices(stack: &LocalStack) -> anyhow::Result<Vec<Notice>> {
    let data = http::get_json(
        &http::client(),
        &format!("{}/moto-api/data.json", stack.moto.endpoint()),
    )
    .await
    .context("reading the published messages from moto")?;
    let mut out = Vec::new();
    let topics = data
        .pointer("/sns/Topic")
        .and_then(|t| t.as_array())
        .cloned()
        .unwrap_or_default();
    for topic in topics {
        let arn = topic
            .get("arn")
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_owned();
        if !stack.hub.topics.values().any(|t| *t == arn) {
            continue;
        }
        for sent in topic
            .get("sent_notifications")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
        {
            // (message_id, message, subject, message_attributes, group_id)
            out.push(Notice {
                topic: arn.clone(),
                subject: sent.get(2).and_then(|s| s.as_str()).map(str::to_owned),
                message_attributes: sent.get(3).cloned().unwrap_or_default(),
                body: sent
                    .get(1)
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    Ok(out)
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} restarts finished  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The night's HTML page, as `restartctl report --html` renders it from the table: the
/// timeline of the batches across the window, outcomes per batch, failures and skips; and,
/// from the night's traces, where its time went.
pub async fn html_page(
    stack: &LocalStack,
    report: &NightReport,
    compression: &Compression,
) -> anyhow::Result<String> {
    let store = restart_aws::dynamo_store(
        &stack.sdk,
        &stack.config.table_name,
        stack.config.record_ttl_days,
    );
    let data = restartctl::night::NightData::read(&store, report.night).await?;
    let window = &stack.config.window;
    let page = restartctl::report::Night {
        night: report.night,
        window: window.night(report.night),
        tz: window.timezone(),
        window_label: format!(
            "{window}, a local run: {} batches {} s apart, restart timeout {} min, fleet-sim \
             at {}x",
            data.plan.batches.len(),
            compression.batch_interval_seconds,
            compression.restart_timeout_minutes,
            compression.time_scale
        ),
        plan: data.plan.summary,
        batches: data.plan.batches,
        records: data.records,
        halted: data.status.halted,
        paused: data.paused,
        holds: data.holds,
        generated_at: Utc::now(),
    };
    Ok(match &report.xray {
        Some(xray) => page.html_with_time(&xray.time),
        None => page.html(),
    })
}

/// What the progress lines remember: the plan's batches once written, the last batch shown
/// as begun, and recent counts of forced deployments (the fleet-wide restart rate).
#[derive(Debug, Default)]
struct Progress {
    batches: Option<Vec<PlannedBatch>>,
    shown_begun: usize,
    restarts: VecDeque<(Instant, u64)>,
}

impl Progress {
    /// How many batches have reached their start time (none before the plan is written).
    async fn begun(
        &mut self,
        store: &restart_aws::dynamodb::DynamoStore,
        night: NaiveDate,
        now: DateTime<Utc>,
    ) -> usize {
        if self.batches.is_none() && matches!(store.plan_summary(night).await, Ok(Some(_))) {
            self.batches = store.read_batches(night).await.ok();
        }
        self.batches
            .as_ref()
            .map_or(0, |b| b.iter().filter(|b| b.start_at <= now).count())
    }

    /// Where the night stands: the batch that began last, the restarter's counters, the
    /// fleet-wide restart rate against the pace per account, the most restarts in flight in
    /// one cluster against the cap, and the window.
    async fn line(
        &mut self,
        stack: &LocalStack,
        store: &restart_aws::dynamodb::DynamoStore,
        night: NaiveDate,
        compression: &Compression,
        bar: &ProgressBar,
        now: DateTime<Utc>,
    ) -> String {
        let at = now.format("%H:%M:%S");
        let clock = if now < compression.window_start {
            format!(
                "window opens in {} s",
                (compression.window_start - now).num_seconds()
            )
        } else if now < compression.window_end {
            format!(
                "window closes in {} s",
                (compression.window_end - now).num_seconds()
            )
        } else {
            format!(
                "window closed {} s ago",
                (now - compression.window_end).num_seconds()
            )
        };
        let plan = match store.plan_summary(night).await {
            Ok(Some(p)) => p,
            Ok(None) => return format!("{at} night {night}: inventory and plan… ({clock})"),
            Err(e) => return format!("{at} night {night}: cannot read the plan: {e}"),
        };
        let status = match store.night_status(night).await {
            Ok(s) => s,
            Err(e) => return format!("{at} night {night}: cannot read the counters: {e}"),
        };
        let done: u64 = NightState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(|s| status.count(s))
            .sum();
        bar.set_length(plan.planned);
        bar.set_position(done.min(plan.planned));
        let batches = self.batches.as_deref().unwrap_or_default();
        let begun = batches.iter().filter(|b| b.start_at <= now).count();
        let batch = match begun.checked_sub(1).and_then(|i| batches.get(i)) {
            Some(b) => format!(
                "batch {} ({}/{}) began {} ({} services)",
                b.batch,
                begun,
                plan.batches,
                b.start_at.format("%H:%M:%S"),
                b.size
            ),
            None => match batches.first() {
                Some(b) => format!(
                    "{} batches, the first at {}",
                    plan.batches,
                    b.start_at.format("%H:%M:%S")
                ),
                None => format!("{} batches", plan.batches),
            },
        };
        let mut parts = vec![
            format!("{at} night {night}"),
            batch,
            format!("{done}/{} planned services done", plan.planned),
        ];
        for s in NightState::ALL {
            let n = status.count(s);
            if n > 0 && s != NightState::Planned {
                parts.push(format!("{s} {n}"));
            }
        }
        if status.halted.is_some() {
            parts.push("HALTED".to_owned());
        }
        if begun > 0
            && let Some(pace) = self.pace(stack).await
        {
            parts.push(pace);
        }
        parts.push(clock);
        parts.join(" · ")
    }

    /// The pacing as fleet-sim saw it: forced deployments a second across the fleet since the
    /// oldest sample of the last 20 s (lines come at least every 15 s); the most UpdateService
    /// calls one account and region made within any one second (fleet-sim's sliding window;
    /// `UPDATE_SERVICE_RATE` paces fixed one-second slots, so two slots' calls may fall in one
    /// sliding second); the most restarts in flight at once in one cluster (against
    /// `MAX_INFLIGHT_PER_CLUSTER`).
    async fn pace(&mut self, stack: &LocalStack) -> Option<String> {
        let stats = http::get_json(
            &http::client(),
            &format!("{}/_sim/stats", stack.sim.endpoint_url()),
        )
        .await
        .ok()?;
        let restarts = stats.get("restarts")?.as_u64()?;
        let now = Instant::now();
        self.restarts.push_back((now, restarts));
        while self
            .restarts
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(20))
        {
            self.restarts.pop_front();
        }
        let rate = match self.restarts.front() {
            Some((t, n)) if now.duration_since(*t) >= Duration::from_secs(1) => {
                restarts.saturating_sub(*n) as f64 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        };
        let peak_update = stats
            .get("max_rate")
            .and_then(|m| m.as_object())
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|actions| actions.get("UpdateService")?.as_u64())
            .max()
            .unwrap_or(0);
        let peak_cluster = stats
            .get("max_inflight_per_cluster")
            .and_then(|m| m.as_object())
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(serde_json::Value::as_u64)
            .max()
            .unwrap_or(0);
        let c = &stack.config;
        Some(format!(
            "{rate:.1} restarts/s fleet-wide, busiest second of one account {peak_update} \
             UpdateService (paced {} per one-second slot), at most {peak_cluster} in flight in \
             one cluster (cap {})",
            c.pacing.update_service_per_sec, c.max_inflight_per_cluster
        ))
    }
}
