//! The night's report: what `restart-local run` prints and writes as JSON, and the checks
//! that decide its exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use restart_core::catalog::InventoryRun;
use restart_core::catalog::Unreachable;
use restart_core::ids::ServiceId;
use restart_core::night::{NightRecord, NightStatus};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use serde::Serialize;

use crate::compress::Compression;
use crate::lambda_host::Invocations;
use crate::traces::{Traces, TracesSeen};

/// The nightly execution, from Step Functions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    pub arn: String,
    pub status: String,
    /// `false`: it was still running after the window's end plus the grace, and was stopped.
    pub finished_in_time: bool,
    pub started_at: String,
    pub stopped_at: Option<String>,
    /// Events in its history (GetExecutionHistory).
    pub history_events: u64,
    /// States entered: what a Standard workflow is billed for.
    pub state_transitions: u64,
    /// `state_transitions` at $0.025 per 1,000.
    pub cost_usd: f64,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// One inventoried service and how its night ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceEntry {
    pub arn: String,
    pub account: String,
    pub region: String,
    pub cluster: String,
    pub service: String,
    pub state: NightState,
    /// The skip reason, when skipped.
    pub reason: Option<String>,
    pub owner: String,
    pub batch: Option<u32>,
    pub deployment_id: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub detail: Option<String>,
}

/// One batch of the plan and how its restarts went: the night's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchEntry {
    pub batch: u32,
    /// Its planned start.
    pub start_at: DateTime<Utc>,
    /// Services planned in it.
    pub size: u32,
    /// When its first restart started and its last one ended (none when nothing started).
    pub first_started_at: Option<DateTime<Utc>>,
    pub last_finished_at: Option<DateTime<Utc>>,
    /// Its services' states at the end of the night.
    pub states: BTreeMap<String, u64>,
}

impl BatchEntry {
    fn of(batch: &PlannedBatch, records: &[NightRecord]) -> BatchEntry {
        let mine = || records.iter().filter(|r| r.batch == Some(batch.batch));
        let mut states = BTreeMap::new();
        for r in mine() {
            *states.entry(r.state.to_string()).or_default() += 1;
        }
        BatchEntry {
            batch: batch.batch,
            start_at: batch.start_at,
            size: batch.size,
            first_started_at: mine().filter_map(|r| r.started_at).min(),
            last_finished_at: mine()
                .filter(|r| r.started_at.is_some())
                .filter_map(|r| r.finished_at)
                .max(),
            states,
        }
    }
}

/// Counts per state and per skip reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub services: u64,
    pub states: BTreeMap<String, u64>,
    pub skip_reasons: BTreeMap<String, u64>,
}

/// An SNS message published during the night.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub topic: String,
    pub subject: Option<String>,
    pub message_attributes: serde_json::Value,
    pub body: String,
}

/// An account inventory could not reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreachableAccount {
    pub account: String,
    pub region: String,
    pub error: String,
}

impl From<&Unreachable> for UnreachableAccount {
    fn from(u: &Unreachable) -> Self {
        UnreachableAccount {
            account: u.account.to_string(),
            region: u.region.clone(),
            error: u.error.clone(),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NightReport {
    pub night: NaiveDate,
    pub window: Compression,
    pub execution: Execution,
    /// The plan's batches, in start order, with their restarts' times and outcomes.
    pub batches: Vec<BatchEntry>,
    pub counts: Counts,
    pub services: Vec<ServiceEntry>,
    pub unreachable_accounts: Vec<UnreachableAccount>,
    pub notices: Vec<Notice>,
    pub sim_stats: serde_json::Value,
    /// Lambda invocations per function, and function errors by type.
    pub invocations: Invocations,
    /// What is wrong with the night; empty when it finished and its records are consistent.
    pub problems: Vec<String>,
    /// What the X-Ray listener received, and where the night's time went (`None`: not read).
    pub xray: Option<TracesSeen>,
    /// The night's traces themselves, written beside the report (`traces.json`), not in it.
    #[serde(skip)]
    pub traces: Option<Traces>,
}

/// The first 160 characters of a long error (the JSON report has it whole).
fn short(error: &str) -> String {
    let mut out: String = error.chars().take(160).collect();
    if out.len() < error.len() {
        out.push('…');
    }
    out
}

fn dedup_key(id: &ServiceId) -> String {
    format!("{}/{}/{}/{}", id.account, id.region, id.cluster, id.service)
}

impl NightReport {
    /// Assembles the report and checks it: the execution succeeded in time; every inventoried
    /// service has exactly one record, in a terminal state; the night's counters agree with
    /// the records; fleet-sim started exactly as many forced deployments as there are
    /// restarts that ran (none in a dry run).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        night: NaiveDate,
        window: Compression,
        execution: Execution,
        batches: &[PlannedBatch],
        records: Vec<NightRecord>,
        inventory: Option<InventoryRun>,
        inventoried: &BTreeSet<ServiceId>,
        status: &NightStatus,
        notices: Vec<Notice>,
        sim_stats: serde_json::Value,
        invocations: Invocations,
        dry_run: bool,
    ) -> NightReport {
        let mut problems = Vec::new();
        if execution.status != "SUCCEEDED" {
            problems.push(format!(
                "the execution ended {}{}{}",
                execution.status,
                execution
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                execution
                    .cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ));
        }
        if !execution.finished_in_time {
            problems.push(
                "the night did not finish within its window plus the grace; it was stopped"
                    .to_owned(),
            );
        }
        if inventory.is_none() {
            problems.push(format!("no inventory run was recorded for night {night}"));
        }

        let mut counts = Counts::default();
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        let mut services = Vec::with_capacity(records.len());
        for r in &records {
            *seen.entry(dedup_key(&r.id)).or_default() += 1;
            *counts.states.entry(r.state.to_string()).or_default() += 1;
            if let Some(reason) = r.skip_reason {
                *counts.skip_reasons.entry(reason.to_string()).or_default() += 1;
            }
            if !r.state.is_terminal() {
                problems.push(format!("{} is still {} after the night", r.arn, r.state));
            }
            services.push(ServiceEntry {
                arn: r.arn.to_string(),
                account: r.id.account.to_string(),
                region: r.id.region.clone(),
                cluster: r.id.cluster.clone(),
                service: r.id.service.clone(),
                state: r.state,
                reason: r.skip_reason.map(|s| s.to_string()),
                owner: r.owner.clone(),
                batch: r.batch,
                deployment_id: r.deployment_id.clone(),
                started_at: r.started_at.map(|t| t.to_rfc3339()),
                finished_at: r.finished_at.map(|t| t.to_rfc3339()),
                detail: r.detail.clone(),
            });
        }
        counts.services = records.len() as u64;
        for (k, n) in &seen {
            if *n > 1 {
                problems.push(format!("{k} has {n} records tonight"));
            }
        }
        let recorded: BTreeSet<&ServiceId> = records.iter().map(|r| &r.id).collect();
        let missing: Vec<String> = inventoried
            .iter()
            .filter(|id| !recorded.contains(id))
            .map(dedup_key)
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} inventoried services have no record tonight: {}",
                missing.len(),
                missing
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let extra = recorded
            .iter()
            .filter(|id| !inventoried.contains(id))
            .count();
        if extra > 0 {
            problems.push(format!(
                "{extra} records are of services inventory did not find tonight"
            ));
        }

        for s in NightState::ALL
            .into_iter()
            .filter(|s| s.is_restart_outcome() || *s == NightState::Halted)
        {
            let recorded = counts.states.get(s.as_str()).copied().unwrap_or(0);
            if status.count(s) != recorded {
                problems.push(format!(
                    "the night's counter of {s} is {} but {recorded} records are {s}",
                    status.count(s)
                ));
            }
        }
        // Restarts whose UpdateService answered with a deployment: one refused by ECS, or never
        // answered (a claim that timed out), made none.
        let ran: u64 = records
            .iter()
            .filter(|r| r.state.is_restart_outcome() && r.deployment_id.is_some())
            .count() as u64;
        let expected = if dry_run { 0 } else { ran };
        let forced = sim_stats
            .get("restarts")
            .and_then(serde_json::Value::as_u64);
        if forced != Some(expected) {
            problems.push(format!(
                "fleet-sim started {} forced deployments, but {expected} restarts ran{}",
                forced.map_or("an unknown number of".to_owned(), |f| f.to_string()),
                if dry_run {
                    " (dry run: none expected)"
                } else {
                    ""
                }
            ));
        }

        let batches = batches
            .iter()
            .map(|b| BatchEntry::of(b, &records))
            .collect();
        NightReport {
            night,
            window,
            execution,
            batches,
            counts,
            services,
            unreachable_accounts: inventory
                .map(|i| i.unreachable.iter().map(UnreachableAccount::from).collect())
                .unwrap_or_default(),
            notices,
            sim_stats,
            invocations,
            problems,
            xray: None,
            traces: None,
        }
    }

    /// The night's traces: kept for `traces.json`, summed for the report.
    pub fn with_traces(mut self, traces: Traces) -> NightReport {
        self.xray = Some(TracesSeen::of(&traces));
        self.traces = Some(traces);
        self
    }

    /// Whether the night finished and its records are consistent.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = &self.window;
        let _ = writeln!(
            s,
            "Night {} (local run): window {} - {} UTC ({} min), batches {} s apart, restart timeout {} min, polls every {} s, fleet-sim at {}x",
            self.night,
            w.window_start.format("%H:%M"),
            w.window_end.format("%H:%M"),
            w.window_minutes,
            w.batch_interval_seconds,
            w.restart_timeout_minutes,
            w.poll_interval_seconds,
            w.time_scale
        );
        self.render_batches(&mut s);
        let e = &self.execution;
        let _ = writeln!(
            s,
            "Execution {}: {} history events, {} state transitions (${:.4} at $0.025 per 1,000)",
            e.status, e.history_events, e.state_transitions, e.cost_usd
        );
        let _ = writeln!(s, "Services inventoried: {}", self.counts.services);
        for state in NightState::ALL {
            if let Some(n) = self.counts.states.get(state.as_str()) {
                let _ = writeln!(s, "  {:<12} {n:>6}", state.as_str());
            }
        }
        if !self.counts.skip_reasons.is_empty() {
            let _ = writeln!(s, "Skipped, by reason:");
            for (reason, n) in &self.counts.skip_reasons {
                let _ = writeln!(s, "  {reason:<26} {n:>6}");
            }
        }
        if self.unreachable_accounts.is_empty() {
            let _ = writeln!(s, "Unreachable accounts: none");
        } else {
            let _ = writeln!(s, "Unreachable accounts:");
            for u in &self.unreachable_accounts {
                let _ = writeln!(s, "  {} ({}): {}", u.account, u.region, short(&u.error));
            }
        }
        let mut by_topic: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &self.notices {
            *by_topic
                .entry(n.topic.rsplit(':').next().unwrap_or(&n.topic))
                .or_default() += 1;
        }
        let _ = writeln!(
            s,
            "Notices: {}",
            if by_topic.is_empty() {
                "none".to_owned()
            } else {
                by_topic
                    .iter()
                    .map(|(t, n)| format!("{n} on {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let st = &self.sim_stats;
        let total_calls = sum_per_account(st, "calls");
        let throttled = sum_per_account(st, "throttled");
        let max_inflight = st
            .get("max_inflight_per_cluster")
            .and_then(|c| c.as_object())
            .and_then(|m| m.values().filter_map(serde_json::Value::as_u64).max())
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "fleet-sim: {} forced deployments, {total_calls} API calls ({throttled} throttled), at most {max_inflight} restarts in flight in one cluster",
            st.get("restarts")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        );
        if let Some(x) = &self.xray {
            x.render(&mut s);
        }
        if self.problems.is_empty() {
            let _ = writeln!(
                s,
                "Result: the night finished and its records are consistent"
            );
        } else {
            let _ = writeln!(s, "Result: {} problem(s):", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        s
    }
}

impl NightReport {
    /// The timeline: one line per batch, its planned start, its restarts' span and outcomes.
    fn render_batches(&self, s: &mut String) {
        let _ = writeln!(s, "Batches: {}", self.batches.len());
        for b in &self.batches {
            let span = match (b.first_started_at, b.last_finished_at) {
                (Some(first), Some(last)) => format!(
                    "restarts {}-{}",
                    first.format("%H:%M:%S"),
                    last.format("%H:%M:%S")
                ),
                (Some(first), None) => format!("restarts from {}", first.format("%H:%M:%S")),
                _ => "no restart started".to_owned(),
            };
            let states = b
                .states
                .iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                s,
                "  batch {:>3}  {}  {:>5} services  {span:<26} {states}",
                b.batch,
                b.start_at.format("%H:%M:%S"),
                b.size
            );
        }
    }
}

/// The sum of fleet-sim's `{account: {action: n}}` counters under `key` in `/_sim/stats`.
fn sum_per_account(stats: &serde_json::Value, key: &str) -> u64 {
    stats
        .get(key)
        .and_then(|c| c.as_object())
        .map(|accounts| {
            accounts
                .values()
                .filter_map(|a| a.as_object())
                .flat_map(|a| a.values())
                .filter_map(serde_json::Value::as_u64)
                .sum()
        })
        .unwrap_or(0)
}
