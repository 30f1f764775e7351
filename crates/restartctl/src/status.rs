//! `status [--night D] [--watch]`: the night's progress from its records, with the kill switch
//! and the circuit breaker; `--watch` redraws until nothing is planned or in flight (and, for a
//! night whose plan is not written yet, waits for it first). `status --state S[,S...]` lists
//! the night's services in those states instead, with their ARNs.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use restart_core::eligibility::SkipReason;
use restart_core::night::{Halt, NightRecord, Pause, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use serde::Serialize;

use anyhow::Context;
use restart_core::guard::NightHolds;
use restart_core::ports::NightStore;

use crate::cli::StatusArgs;
use crate::night::{HINT, NightData, Plan};
use crate::render::{local, or_dash, print_json, table, utc_seconds};
use crate::services::{self, ServiceRow};
use crate::settings::Settings;

/// Everything the table and the JSON output show.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub night: NaiveDate,
    pub plan: Option<PlanSummary>,
    pub paused: Option<Pause>,
    pub halted: Option<Halt>,
    /// Services per state.
    pub counts: BTreeMap<NightState, u64>,
    pub batches: Vec<BatchStatus>,
    /// Restarts that failed, rolled back, timed out or vanished, and services halted.
    pub failures: Vec<Failure>,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// What the change freeze and the blocking alarms did to the night.
    pub holds: NightHolds,
    /// Nothing planned or in flight any more.
    pub over: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchStatus {
    pub batch: u32,
    pub start_at: DateTime<Utc>,
    pub size: u32,
    pub counts: BTreeMap<NightState, u64>,
    /// Services that reached an end state (anything but planned and started).
    pub done: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub service_arn: String,
    pub batch: Option<u32>,
    pub state: NightState,
    pub owner: String,
    pub deployment_id: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub detail: Option<String>,
}

/// Failed restarts and the other ends on-call looks at.
fn worth_a_look(s: NightState) -> bool {
    s.is_failure() || matches!(s, NightState::Vanished | NightState::Halted)
}

impl StatusView {
    /// The view of a night from what the table holds.
    pub fn build(
        night: NaiveDate,
        plan: Option<PlanSummary>,
        batches: &[PlannedBatch],
        records: &[NightRecord],
        halted: Option<Halt>,
        paused: Option<Pause>,
    ) -> Self {
        let mut counts = BTreeMap::new();
        let mut skipped = BTreeMap::new();
        let mut per_batch: BTreeMap<u32, BTreeMap<NightState, u64>> = BTreeMap::new();
        let mut failures = Vec::new();
        for r in records {
            *counts.entry(r.state).or_insert(0) += 1;
            if let Some(reason) = r.skip_reason {
                *skipped.entry(reason).or_insert(0) += 1;
            }
            if let Some(b) = r.batch {
                *per_batch.entry(b).or_default().entry(r.state).or_insert(0) += 1;
            }
            if worth_a_look(r.state) {
                failures.push(Failure {
                    service_arn: r.arn.to_string(),
                    batch: r.batch,
                    state: r.state,
                    owner: r.owner.clone(),
                    deployment_id: r.deployment_id.clone(),
                    finished_at: r.finished_at,
                    detail: r.detail.clone(),
                });
            }
        }
        failures.sort_by(|a, b| (a.batch, &a.service_arn).cmp(&(b.batch, &b.service_arn)));
        let batches = batches
            .iter()
            .map(|b| {
                let counts = per_batch.remove(&b.batch).unwrap_or_default();
                let done = counts
                    .iter()
                    .filter(|(s, _)| s.is_terminal())
                    .map(|(_, n)| n)
                    .sum();
                BatchStatus {
                    batch: b.batch,
                    start_at: b.start_at,
                    size: b.size,
                    counts,
                    done,
                }
            })
            .collect();
        let in_flight = counts.get(&NightState::Planned).copied().unwrap_or(0)
            + counts.get(&NightState::Started).copied().unwrap_or(0);
        Self {
            over: plan.is_some() && in_flight == 0,
            night,
            plan,
            paused,
            halted,
            counts,
            batches,
            failures,
            skipped,
            holds: NightHolds::of(records),
        }
    }

    fn count(&self, s: NightState) -> u64 {
        self.counts.get(&s).copied().unwrap_or(0)
    }

    /// Restarts that reached an outcome, and services planned in all.
    pub fn progress(&self) -> (u64, u64) {
        let planned_total: u64 = self.batches.iter().map(|b| u64::from(b.size)).sum();
        let done: u64 = self.batches.iter().map(|b| b.done).sum();
        (done, planned_total)
    }

    /// The table output.
    pub fn render(&self, settings: &Settings) -> String {
        let tz = settings.window.timezone();
        let mut out = String::new();
        out += &format!("Night {}  window {}\n", self.night, settings.window);
        out += &match &self.paused {
            Some(p) => format!(
                "Kill switch: PAUSED since {} by {}: {}\n",
                utc_seconds(p.at),
                p.by,
                p.reason
            ),
            None => "Kill switch: off\n".to_owned(),
        };
        out += &match &self.halted {
            Some(h) => format!(
                "Circuit breaker: HALTED at {}: {}\n",
                utc_seconds(h.at),
                h.reason
            ),
            None => "Circuit breaker: not tripped\n".to_owned(),
        };
        match &self.plan {
            Some(p) => {
                let (done, total) = self.progress();
                out += &format!(
                    "Plan: {} batches, {} services planned, {} skipped; {done} of {total} \
                     planned services done{}\n",
                    p.batches,
                    p.planned,
                    p.skipped,
                    if self.over { " (night over)" } else { "" }
                );
            }
            None => out += "Plan: not written yet\n",
        }

        out += "\n";
        let mut states = table(["state", "services"]);
        for s in NightState::ALL {
            if self.count(s) > 0 {
                states.add_row(vec![s.to_string(), self.count(s).to_string()]);
            }
        }
        out += &format!("{states}\n\n");

        let mut batches = table([
            "batch",
            "start",
            "size",
            "planned",
            "started",
            "completed",
            "failed",
            "rolled_back",
            "timed_out",
            "vanished",
            "halted",
            "done",
        ]);
        for b in &self.batches {
            let c = |s: NightState| b.counts.get(&s).copied().unwrap_or(0).to_string();
            batches.add_row(vec![
                b.batch.to_string(),
                local(b.start_at, tz),
                b.size.to_string(),
                c(NightState::Planned),
                c(NightState::Started),
                c(NightState::Completed),
                c(NightState::Failed),
                c(NightState::RolledBack),
                c(NightState::TimedOut),
                c(NightState::Vanished),
                c(NightState::Halted),
                format!("{}/{}", b.done, b.size),
            ]);
        }
        out += &format!("{batches}\n");

        if !self.failures.is_empty() {
            let mut f = table(["batch", "service", "state", "owner", "deployment", "detail"]);
            for x in &self.failures {
                f.add_row(vec![
                    or_dash(x.batch),
                    x.service_arn.clone(),
                    x.state.to_string(),
                    x.owner.clone(),
                    or_dash(x.deployment_id.as_deref()),
                    or_dash(x.detail.as_deref()),
                ]);
            }
            out += &format!("\nNeeds a look:\n{f}\n");
        }
        if !self.skipped.is_empty() {
            let mut s = table(["skip reason", "services"]);
            for (reason, n) in &self.skipped {
                s.add_row(vec![reason.to_string(), n.to_string()]);
            }
            out += &format!("\nSkipped:\n{s}\n");
        }
        if !self.holds.is_empty() {
            out += "\n";
            for line in self.holds.lines(20) {
                out += &line;
                out += "\n";
            }
        }
        out
    }
}

/// Reads the night from the table.
pub async fn read(settings: &Settings, night: NaiveDate) -> anyhow::Result<StatusView> {
    match try_read(settings, night).await? {
        Some(view) => Ok(view),
        None => anyhow::bail!(
            "night {night} has no plan in table {}: the batcher writes it when the night's \
             execution starts (window {}). Pick another night with --night, or look at \
             tonight's execution in Step Functions.",
            settings.store()?.table(),
            settings.window
        ),
    }
}

/// Reads the night from the table: `None` while it has no plan.
async fn try_read(settings: &Settings, night: NaiveDate) -> anyhow::Result<Option<StatusView>> {
    let store = settings.store()?;
    let data = NightData::read(&store, night).await?;
    if data.is_empty() {
        return Ok(None);
    }
    let mut view = StatusView::build(
        night,
        data.plan.summary,
        &data.plan.batches,
        &data.records,
        data.status.halted,
        data.paused,
    );
    view.holds = view.holds.with_seen(data.holds);
    Ok(Some(view))
}

/// The night's services in some states (`status --state`).
#[derive(Debug, Clone, Serialize)]
pub struct StateList {
    pub night: NaiveDate,
    pub states: Vec<NightState>,
    pub services: Vec<ServiceRow>,
}

impl StateList {
    pub fn render(&self) -> String {
        let states = services::names(&self.states);
        match self.services.len() {
            0 => format!("Night {}: no service is {states}\n", self.night),
            n => format!(
                "Night {}: {n} service{} {states}\n\n{}",
                self.night,
                if n == 1 { " is" } else { "s are" },
                services::render(&self.services)
            ),
        }
    }
}

/// Reads the night's records (one Query per batch and one for the skipped) and keeps those in
/// `states`; a night with no record and no plan is refused as `status` refuses it.
pub async fn state_list(
    settings: &Settings,
    night: NaiveDate,
    states: &[NightState],
) -> anyhow::Result<StateList> {
    let store = settings.store()?;
    let records = store
        .read_night(night)
        .await
        .with_context(|| format!("reading night {night}'s records; {HINT}"))?;
    if records.is_empty() {
        let plan = Plan::read(&store, night).await?;
        if plan.summary.is_none() && plan.batches.is_empty() {
            anyhow::bail!(
                "night {night} has no plan in table {}: the batcher writes it when the night's \
                 execution starts (window {}). Pick another night with --night, or look at \
                 tonight's execution in Step Functions.",
                store.table(),
                settings.window
            );
        }
    }
    let mut states = states.to_vec();
    states.sort_unstable();
    states.dedup();
    Ok(StateList {
        night,
        services: services::rows(&records, &states),
        states,
    })
}

pub async fn run(settings: &Settings, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let night = settings.night(args.night);
    if !args.state.is_empty() {
        let list = state_list(settings, night, &args.state).await?;
        if settings.json() {
            print_json(&list)?;
        } else {
            print!("{}", list.render());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let interval = Duration::from_secs(args.interval);
    let view = if args.watch {
        wait_for_plan(settings, night, interval).await?
    } else {
        read(settings, night).await?
    };
    if !args.watch || view.over {
        show(settings, &view)?;
        return Ok(ExitCode::SUCCESS);
    }
    let view = watch(settings, night, view, interval).await?;
    show(settings, &view)?;
    Ok(ExitCode::SUCCESS)
}

fn show(settings: &Settings, view: &StatusView) -> anyhow::Result<()> {
    if settings.json() {
        print_json(view)
    } else {
        print!("{}", view.render(settings));
        Ok(())
    }
}

/// The night once its plan is written: a night started a moment ago is still in inventory,
/// and on-call watching it from its start should not have to run `status` again.
async fn wait_for_plan(
    settings: &Settings,
    night: NaiveDate,
    interval: Duration,
) -> anyhow::Result<StatusView> {
    let mut told = false;
    loop {
        if let Some(view) = try_read(settings, night).await? {
            return Ok(view);
        }
        if !told {
            eprintln!(
                "night {night} has no plan yet: waiting for the batcher to write it (the night's \
                 execution runs inventory first; window {}). Ctrl-C to stop.",
                settings.window
            );
            told = true;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Redraws progress bars (one per batch and one for the night) on a terminal, or prints one
/// progress line per look elsewhere, until the night is over; returns the last view.
async fn watch(
    settings: &Settings,
    night: NaiveDate,
    mut view: StatusView,
    interval: Duration,
) -> anyhow::Result<StatusView> {
    let terminal = std::io::stderr().is_terminal();
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let total = bars.add(ProgressBar::new(0).with_style(style.clone()));
    total.set_prefix("night");
    let mut per_batch: BTreeMap<u32, ProgressBar> = BTreeMap::new();
    loop {
        let (done, all) = view.progress();
        let line = progress_line(&view);
        if terminal {
            total.set_length(all);
            total.set_position(done);
            total.set_message(line);
            for b in &view.batches {
                let bar = per_batch.entry(b.batch).or_insert_with(|| {
                    let bar =
                        bars.add(ProgressBar::new(u64::from(b.size)).with_style(style.clone()));
                    bar.set_prefix(format!("batch {}", b.batch));
                    bar
                });
                bar.set_length(u64::from(b.size));
                bar.set_position(b.done);
                bar.set_message(batch_message(b));
            }
        } else {
            eprintln!("{}  {line}", Utc::now().format("%H:%M:%S"));
        }
        if view.over {
            break;
        }
        tokio::time::sleep(interval).await;
        view = read(settings, night).await?;
    }
    if terminal {
        for bar in per_batch.values() {
            bar.finish();
        }
        total.finish();
    }
    Ok(view)
}

fn batch_message(b: &BatchStatus) -> String {
    let mut parts: Vec<String> = b
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    parts.sort();
    parts.join(", ")
}

/// `12/40 done: completed 10, failed 1, started 5, planned 23 [PAUSED] [HALTED]`.
pub fn progress_line(view: &StatusView) -> String {
    let (done, all) = view.progress();
    let counts: Vec<String> = view
        .counts
        .iter()
        .filter(|(s, _)| **s != NightState::Skipped)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let mut line = format!("{done}/{all} done: {}", counts.join(", "));
    if view.paused.is_some() {
        line += " [PAUSED]";
    }
    if view.halted.is_some() {
        line += " [HALTED]";
    }
    line
}
