//! The `restarter` function: starts a batch's restarts, watches them, and proves each one
//! finished (docs/design.md 3.3-3.5).
//!
//! Inputs:
//! - `{ "mode": "start", "night", "batch" }`: refuses with `Paused` while the kill switch is on
//!   and with `Halted` once the night is halted (the batch's planned services are recorded
//!   `halted` first); otherwise looks at the batch's services live (DescribeServices, 10 a
//!   call), checks eligibility again, and starts each eligible one (UpdateService with
//!   forceNewDeployment, paced per account and region).
//! - `{ "mode": "poll", "night", "batch" }` or `{ "mode": "poll", "night", "service_arn" }`:
//!   judges every started restart with [`outcome::verify`], tags the completed ones, trips the
//!   night's circuit breaker when it must, and starts what `start` deferred (a full cluster, or
//!   the invocation's time budget spent). Returns `done` once nothing is planned or in flight.
//! - `{ "mode": "service", "service_arn", "force": false }`: restarts one service now, on
//!   on-call's request (see [`Restarter::restart_service`]).
//!
//! A start is made safe against retries and crashes by its order: the record moves from
//! `planned` to `started` first (a conditional write that also takes one of the cluster's
//! `MAX_INFLIGHT_PER_CLUSTER` places and remembers the PRIMARY deployment seen live), then
//! UpdateService runs, then the new deployment's id is recorded. A start that finds a record
//! `started` without a deployment (a crash, or a timeout, between the two) leaves it to its
//! invocation for [`CLAIM_LEASE`], then looks at the service: a deployment created since the
//! claim means UpdateService ran, and that deployment is recorded; none means it did not, and it
//! runs now. So a service is never restarted twice in one night, however often a batch is
//! retried.
//!
//! One account or cluster that fails is handled alone: a cluster that cannot be described is
//! deferred (its planned restarts end `skipped/account_unreachable` when access is denied), and
//! an UpdateService denied ends the cluster's other planned restarts the same way; its claim, and
//! restarts that cannot be watched, end `timed_out` at their timeout with the reason.
//!
//! A restart given up on at its timeout while ECS still rolls its deployment keeps its place
//! among the cluster's `MAX_INFLIGHT_PER_CLUSTER` (the store's held restarts): ECS still counts
//! it. When a claim finds its cluster full, the held restarts are looked at and those whose
//! deployment has ended (or whose service is gone) give their place back.
//!
//! With `DRY_RUN=true` nothing calls UpdateService or TagResource: the "restart" is the service's
//! current PRIMARY deployment, so the same records are written and each one completes at the
//! next poll. A dry run keeps no restart duration in the catalog: it restarted nothing.
//!
//! No invocation waits for a deployment: the state machine waits `wait_seconds` between polls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use restart_core::clock::Clock;
use restart_core::eligibility::{self, SkipReason, Tonight, UntaggedPolicy};
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::{Halt, NightRecord};
use restart_core::outcome::{self, NightState, Verdict};
use restart_core::ports::{CatalogStore, Claim, ControlError, FleetControl, RestartStore};
use restart_core::service::{DeploymentStatus, RolloutState, ServiceSnapshot};
use restart_core::tag::{TagState, restart_tag_value};
use restart_core::telemetry::{Emf, Unit};
use restart_core::window::NightWindow;
use restart_core::{Config, ErrorType, HandlerError};

pub mod aws;

/// How long one invocation may spend starting restarts before it leaves the rest to the next
/// poll (the state machine waits in between; nothing here waits for a deployment).
pub const START_BUDGET: Duration = Duration::from_secs(10);

/// How many clusters are worked on at once. Calls stay paced per account and region, so this
/// only bounds the tasks waiting for their account's tokens: a cluster keeps its slot while it
/// waits, and with too few slots the accounts' waits add up instead of overlapping (32 slots:
/// batch starts at 1.7× the pacing floor in the night benchmark; 128: see docs/performance.md).
const CLUSTER_CONCURRENCY: usize = 128;

/// How long a claim (a record `started` without its deployment yet) belongs to the invocation
/// that made it. Only after this may another invocation decide whether its UpdateService ran and
/// run it: longer than any invocation lives (the state machine gives each 330 s), so two
/// invocations never both send UpdateService for one claim.
pub const CLAIM_LEASE: TimeDelta = TimeDelta::seconds(330);

/// Said of a timed-out restart whose deployment still rolls.
const HELD_DETAIL: &str =
    "its deployment still rolls and keeps its place in the cluster until ECS ends it";

/// ECS and Lambda clocks may differ by this much: a deployment created this long before a
/// claim can still be the one the claim's UpdateService made.
const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(5);

pub use restart_core::limits::SLOW_POLL_FACTOR;

/// The function's input, by `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start(StartEvent),
    Poll(PollEvent),
    Service(ServiceEvent),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartEvent {
    #[serde(deserialize_with = "restart_core::window::deserialize_night")]
    pub night: NaiveDate,
    pub batch: u32,
    /// On-call's explicit choice to start restarts after the window's end (a manual batch).
    #[serde(default)]
    pub outside_window: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollEvent {
    #[serde(deserialize_with = "restart_core::window::deserialize_night")]
    pub night: NaiveDate,
    pub batch: Option<u32>,
    pub service_arn: Option<ServiceArn>,
    /// See [`StartEvent::outside_window`].
    #[serde(default)]
    pub outside_window: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEvent {
    pub service_arn: ServiceArn,
    #[serde(default)]
    pub force: bool,
}

impl Event {
    /// Reads `mode`, then the mode's fields, so that an error names the field at fault.
    pub fn parse(event: serde_json::Value) -> Result<Self, HandlerError> {
        let serde_json::Value::Object(mut fields) = event else {
            return Err(HandlerError::invalid_input(
                "the event is not valid: expected an object with `mode`",
            ));
        };
        let mode = fields.remove("mode");
        let rest = serde_json::Value::Object(fields);
        match mode.as_ref().and_then(|m| m.as_str()) {
            Some("start") => HandlerError::parse_event(rest).map(Self::Start),
            Some("poll") => HandlerError::parse_event(rest).map(Self::Poll),
            Some("service") => HandlerError::parse_event(rest).map(Self::Service),
            _ => Err(HandlerError::invalid_input(format!(
                "the event is not valid: mode: expected one of `start`, `poll`, `service`, got {}",
                mode.map_or("nothing".to_owned(), |m| m.to_string())
            ))),
        }
    }
}

/// What `start` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutput {
    pub night: NaiveDate,
    pub batch: u32,
    /// Restarts started by this invocation.
    pub started: u64,
    /// Left planned for the next poll: a full cluster, or the time budget spent.
    pub deferred: u64,
    /// Found ineligible in the live check, recorded skipped with the reason.
    pub skipped: u64,
    /// Refused by ECS when started, recorded failed or vanished.
    pub refused: u64,
    pub dry_run: bool,
    /// How long the state machine should wait before the first poll.
    pub wait_seconds: u64,
}

/// What `poll` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOutput {
    pub night: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_arn: Option<ServiceArn>,
    /// Nothing planned or in flight any more.
    pub done: bool,
    /// Planned or in flight.
    pub pending: u64,
    /// Records per state, after this poll.
    pub counts: BTreeMap<NightState, u64>,
    pub wait_seconds: u64,
}

/// What `service` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOutput {
    pub night: NaiveDate,
    pub service_arn: ServiceArn,
    pub state: NightState,
    pub deployment_id: Option<String>,
    pub dry_run: bool,
    pub wait_seconds: u64,
}

/// The function's output, by mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Start(StartOutput),
    Poll(PollOutput),
    Service(ServiceOutput),
}

/// The handler with its ports.
#[derive(Debug)]
pub struct Restarter<F, S> {
    pub config: Arc<Config>,
    pub fleet: F,
    pub store: S,
    pub clock: Arc<dyn Clock>,
    /// See [`START_BUDGET`].
    pub budget: Duration,
}

/// What working through records did (one invocation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tally {
    started: u64,
    deferred: u64,
    skipped: u64,
    refused: u64,
    halted: u64,
    outcomes: BTreeMap<NightState, u64>,
    tag_failures: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.started += other.started;
        self.deferred += other.deferred;
        self.skipped += other.skipped;
        self.refused += other.refused;
        self.halted += other.halted;
        self.tag_failures += other.tag_failures;
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
    }
}

/// The tallies of every cluster, or the first error.
fn sum(results: Vec<Result<Tally, HandlerError>>) -> Result<Tally, HandlerError> {
    let mut tally = Tally::default();
    for r in results {
        tally.add(r?);
    }
    Ok(tally)
}

/// Records grouped by cluster (`ServiceId::cluster_key`), in a stable order.
fn by_cluster(records: Vec<NightRecord>) -> Vec<Vec<NightRecord>> {
    let mut groups: BTreeMap<String, Vec<NightRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.id.cluster_key()).or_default().push(r);
    }
    groups.into_values().collect()
}

fn seconds(d: TimeDelta) -> u64 {
    u64::try_from(d.num_seconds()).unwrap_or(0)
}

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: RestartStore + CatalogStore,
{
    /// Handles one invocation: the raw event in, the mode's output out.
    pub async fn handle(&self, event: serde_json::Value) -> Result<Output, HandlerError> {
        let event = Event::parse(event)?;
        let started = Instant::now();
        let (mode, result) = match event {
            Event::Start(StartEvent {
                night,
                batch,
                outside_window,
            }) => (
                "start",
                Box::pin(self.start(night, batch, outside_window))
                    .await
                    .map(Output::Start),
            ),
            Event::Poll(PollEvent {
                night,
                batch,
                service_arn,
                outside_window,
            }) => {
                let out = match (batch, service_arn) {
                    (Some(batch), None) => {
                        Box::pin(self.poll_batch(night, batch, outside_window)).await
                    }
                    (None, Some(arn)) => Box::pin(self.poll_service(night, &arn)).await,
                    _ => Err(HandlerError::invalid_input(
                        "the event is not valid: a poll names either `batch` or `service_arn`",
                    )),
                };
                ("poll", out.map(Output::Poll))
            }
            Event::Service(ServiceEvent { service_arn, force }) => (
                "service",
                Box::pin(self.restart_service(&service_arn, force))
                    .await
                    .map(Output::Service),
            ),
        };
        let ms = started.elapsed().as_millis() as f64;
        if let Err(e) = &result {
            tracing::warn!(mode, error_type = %e.error_type, error = %e.message, "refused");
        }
        tracing::debug!(mode, ms, "handled");
        result
    }

    fn window(&self, night: NaiveDate) -> NightWindow {
        self.config.window.night(night)
    }

    fn wait_seconds(&self) -> u64 {
        seconds(self.config.poll_interval)
    }

    /// The batch must be part of the night's plan.
    async fn check_batch(&self, night: NaiveDate, batch: u32) -> Result<(), HandlerError> {
        let batches = self.store.read_batches(night).await?;
        if batches.iter().any(|b| b.batch == batch) {
            return Ok(());
        }
        Err(HandlerError::invalid_input(match batches.last() {
            None => format!("night {night} has no plan: run the batcher for it first"),
            Some(last) => format!(
                "night {night} has no batch {batch}: its batches are 0 to {}",
                last.batch
            ),
        }))
    }

    /// `Paused` while the kill switch is on.
    async fn refuse_if_paused(&self) -> Result<(), HandlerError> {
        match self.store.pause().await? {
            Some(p) => Err(HandlerError::new(
                ErrorType::Paused,
                format!(
                    "restarts are paused since {} by {}: {} (resume to continue)",
                    p.at, p.by, p.reason
                ),
            )),
            None => Ok(()),
        }
    }

    /// `start`: see the module documentation.
    #[tracing::instrument(skip(self))]
    pub async fn start(
        &self,
        night: NaiveDate,
        batch: u32,
        outside_window: bool,
    ) -> Result<StartOutput, HandlerError> {
        self.check_batch(night, batch).await?;
        let records = self.store.read_batch(night, batch).await?;
        // Past the window nothing starts, paused or not: what is left ends `window_closed`, so
        // the batch ends instead of waiting for a resume that cannot start anything.
        let closed = self.close_window(night, &records, outside_window).await?;
        let records = if closed > 0 {
            self.store.read_batch(night, batch).await?
        } else {
            records
        };
        self.refuse_if_paused().await?;
        if let Some(halt) = self.store.night_status(night).await?.halted {
            let halted = self.halt_planned(&records, &halt).await?;
            tracing::warn!(night = %night, batch, halted, reason = %halt.reason, "night halted");
            return Err(HandlerError::new(
                ErrorType::Halted,
                format!(
                    "night {night} was halted at {}: {}; batch {batch}'s {halted} planned \
                     services are recorded halted",
                    halt.at, halt.reason
                ),
            ));
        }
        let pass = self.pass(night, outside_window, true);
        let mut tally = self.advance(records, &pass).await?;
        tally.skipped += closed;
        self.emit(night, Some(batch), "start", &tally);
        Ok(StartOutput {
            night,
            batch,
            started: tally.started,
            deferred: tally.deferred,
            skipped: tally.skipped,
            refused: tally.refused,
            dry_run: self.config.dry_run,
            wait_seconds: self.wait_seconds(),
        })
    }

    /// `poll` of a batch: see the module documentation.
    #[tracing::instrument(skip(self))]
    pub async fn poll_batch(
        &self,
        night: NaiveDate,
        batch: u32,
        outside_window: bool,
    ) -> Result<PollOutput, HandlerError> {
        self.check_batch(night, batch).await?;
        let records = self.store.read_batch(night, batch).await?;
        let tally = self.poll_records(night, records, outside_window).await?;
        self.emit(night, Some(batch), "poll", &tally);
        let after = self.store.read_batch(night, batch).await?;
        Ok(self.poll_output(night, Some(batch), None, &after))
    }

    /// `poll` of one service's record (a manual restart).
    #[tracing::instrument(skip(self), fields(service = %arn))]
    pub async fn poll_service(
        &self,
        night: NaiveDate,
        arn: &ServiceArn,
    ) -> Result<PollOutput, HandlerError> {
        let id = service_id(arn)?;
        let Some(record) = self.store.find_record(night, &id).await? else {
            return Err(HandlerError::invalid_input(format!(
                "night {night} has no record of {arn}"
            )));
        };
        // A manual restart is on-call's explicit request: the window does not hold it back.
        let tally = self.poll_records(night, vec![record], true).await?;
        self.emit(night, None, "poll", &tally);
        let after: Vec<NightRecord> = self
            .store
            .find_record(night, &id)
            .await?
            .into_iter()
            .collect();
        Ok(self.poll_output(night, None, Some(arn.clone()), &after))
    }

    fn poll_output(
        &self,
        night: NaiveDate,
        batch: Option<u32>,
        service_arn: Option<ServiceArn>,
        records: &[NightRecord],
    ) -> PollOutput {
        let mut counts = BTreeMap::new();
        for r in records {
            *counts.entry(r.state).or_default() += 1;
        }
        let pending = records.iter().filter(|r| !r.state.is_terminal()).count() as u64;
        PollOutput {
            night,
            batch,
            service_arn,
            done: pending == 0,
            pending,
            counts,
            wait_seconds: self.poll_wait(records),
        }
    }

    /// How long the state machine waits before the next poll: the poll interval while any
    /// restart pending is younger than two thirds of the timeout (or a service waits to start);
    /// once every pending restart has run longer (a slow or stuck deployment), up to
    /// `SLOW_POLL_FACTOR` intervals, never past the earliest timeout. At the defaults a stuck
    /// deployment then costs its batch 24 polls instead of 30, which keeps a 36-batch night
    /// under 3,000 state transitions even with a stuck restart in every batch; only restarts
    /// that finish after 20 of their 30 minutes may be recorded more than one interval late.
    fn poll_wait(&self, records: &[NightRecord]) -> u64 {
        let interval = self.config.poll_interval;
        let timeout = self.config.restart_timeout;
        let now = self.clock.now();
        let mut earliest: Option<DateTime<Utc>> = None;
        for r in records.iter().filter(|r| !r.state.is_terminal()) {
            match (r.state, r.started_at) {
                (NightState::Started, Some(at)) if now - at >= timeout * 2 / 3 => {
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                }
                _ => return seconds(interval),
            }
        }
        let Some(earliest) = earliest else {
            return seconds(interval);
        };
        seconds(restart_core::limits::poll_wait(
            now - earliest,
            interval,
            timeout,
        ))
    }

    /// Judges the started records, trips the breaker if it must, then halts or starts what is
    /// still planned (unless paused).
    async fn poll_records(
        &self,
        night: NaiveDate,
        records: Vec<NightRecord>,
        outside_window: bool,
    ) -> Result<Tally, HandlerError> {
        let (watched, rest): (Vec<_>, Vec<_>) = records
            .into_iter()
            .partition(|r| r.state == NightState::Started && r.deployment_id.is_some());
        let mut tally = self.watch(watched).await?;
        let closed = self.close_window(night, &rest, outside_window).await?;
        tally.skipped += closed;
        let rest: Vec<NightRecord> = if closed > 0 {
            rest.into_iter()
                .filter(|r| r.state != NightState::Planned)
                .collect()
        } else {
            rest
        };
        let status = self.store.night_status(night).await?;
        let halt = match status.halted {
            Some(h) => Some(h),
            None => match status.breaker_trips(self.config.failure_threshold_percent) {
                Some(reason) => {
                    let halt = Halt {
                        reason,
                        at: self.clock.now(),
                    };
                    if self.store.halt(night, &halt).await? {
                        tracing::error!(night = %night, reason = %halt.reason, "circuit breaker: night halted");
                        println!(
                            "{}",
                            Emf::new()
                                .dimension("Function", "restarter")
                                .metric("NightHalted", 1.0, Unit::Count)
                                .property("night", serde_json::json!(night))
                                .property("reason", serde_json::json!(halt.reason))
                                .line(halt.at)
                        );
                    }
                    Some(halt)
                }
                None => None,
            },
        };
        if let Some(halt) = halt {
            tally.halted += self.halt_planned(&rest, &halt).await?;
            // Claimed starts without a deployment still need one look: UpdateService may
            // have run. Halted, it is never sent now.
            let unfinished: Vec<NightRecord> = rest
                .into_iter()
                .filter(|r| r.state == NightState::Started)
                .collect();
            let pass = self.pass(night, outside_window, false);
            tally.add(self.advance(unfinished, &pass).await?);
            return Ok(tally);
        }
        if self.store.pause().await?.is_some() {
            return Ok(tally);
        }
        let pass = self.pass(night, outside_window, true);
        tally.add(self.advance(rest, &pass).await?);
        Ok(tally)
    }

    /// Moves the planned records among `records` to `halted`.
    async fn halt_planned(
        &self,
        records: &[NightRecord],
        halt: &Halt,
    ) -> Result<u64, HandlerError> {
        let mut halted = 0;
        for r in records.iter().filter(|r| r.state == NightState::Planned) {
            let to = NightRecord {
                state: NightState::Halted,
                finished_at: Some(halt.at),
                detail: Some(format!("the night was halted: {}", halt.reason)),
                ..r.clone()
            };
            if self.store.halt_record(r, &to).await? {
                halted += 1;
            }
        }
        Ok(halted)
    }

    /// Once the night's window has ended (unless on-call asked to run outside it), moves the
    /// planned records among `records` to `skipped/window_closed`: no restart starts after the
    /// window's end, whatever made it late. How many moved.
    async fn close_window(
        &self,
        night: NaiveDate,
        records: &[NightRecord],
        outside_window: bool,
    ) -> Result<u64, HandlerError> {
        if outside_window || self.clock.now() < self.window(night).end {
            return Ok(0);
        }
        let mut closed = 0;
        for r in records.iter().filter(|r| r.state == NightState::Planned) {
            if self
                .store
                .move_record(r, &r.now_skipped(SkipReason::WindowClosed))
                .await?
            {
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::warn!(night = %night, closed, "the window ended before these restarts could start");
        }
        Ok(closed)
    }

    /// How one invocation works through records.
    fn pass(&self, night: NaiveDate, outside_window: bool, may_deploy: bool) -> Pass {
        Pass {
            window: self.window(night),
            deadline: Instant::now() + self.budget,
            outside_window,
            may_deploy,
        }
    }

    /// Starts what can start among planned records (and settles claimed starts that have no
    /// deployment yet), cluster by cluster, until the pass's deadline. A cluster whose account
    /// cannot be reached or answers with errors is handled alone: every other cluster goes on.
    async fn advance(&self, records: Vec<NightRecord>, pass: &Pass) -> Result<Tally, HandlerError> {
        let todo: Vec<NightRecord> = records
            .into_iter()
            .filter(|r| {
                r.state == NightState::Planned
                    || (r.state == NightState::Started && r.deployment_id.is_none())
            })
            .collect();
        sum(stream::iter(by_cluster(todo))
            .map(|group| self.advance_cluster(pass, group))
            .buffer_unordered(CLUSTER_CONCURRENCY)
            .collect()
            .await)
    }

    async fn advance_cluster(
        &self,
        pass: &Pass,
        group: Vec<NightRecord>,
    ) -> Result<Tally, HandlerError> {
        let mut tally = Tally::default();
        let now = self.clock.now();
        // Claims another invocation may still be working on are left to it. Claims that got no
        // deployment within the timeout (`expired`) end now, after one look at ECS: a deployment
        // made since the claim is recorded instead, and the reason it could not be seen is kept.
        let mut todo = Vec::with_capacity(group.len());
        let mut expired = Vec::new();
        for r in group {
            if r.state != NightState::Started {
                todo.push(r);
                continue;
            }
            let claimed_at = r.started_at.unwrap_or(now);
            if now - claimed_at >= self.config.restart_timeout {
                expired.push(r);
            } else if now - claimed_at >= CLAIM_LEASE {
                todo.push(r);
            }
        }
        let planned = |records: &[NightRecord]| {
            records
                .iter()
                .filter(|r| r.state == NightState::Planned)
                .count() as u64
        };
        if Instant::now() >= pass.deadline {
            // Out of time: nothing starts, and no claim is sent UpdateService; expired claims
            // still end.
            tally.deferred += planned(&todo);
            todo.clear();
        }
        if todo.is_empty() && expired.is_empty() {
            return Ok(tally);
        }
        let ids: Vec<ServiceId> = todo.iter().chain(&expired).map(|r| r.id.clone()).collect();
        let live = match self.fleet.describe(&ids).await {
            Ok(live) => live,
            Err(e) => {
                let why = match &e {
                    ControlError::AccessDenied(m) => format!("account unreachable: {m}"),
                    other => format!("ECS could not be asked: {other}"),
                };
                if let ControlError::AccessDenied(m) = &e {
                    // The account was lost: its planned restarts end here; claims time out.
                    tally.skipped += self.skip_unreachable(&todo, m).await?;
                    tracing::warn!(cluster = %ids_cluster(&ids), error = %m, "account unreachable");
                } else {
                    // Throttled, a 5xx, an answer not understood: the next poll looks again.
                    tally.deferred += planned(&todo);
                    tracing::warn!(cluster = %ids_cluster(&ids), error = %e, "describe failed; deferred");
                }
                for r in &expired {
                    tally.add(self.expire_claim(r, &why).await?);
                }
                return Ok(tally);
            }
        };
        let live: BTreeMap<&str, &ServiceSnapshot> =
            live.iter().map(|s| (s.id.service.as_str(), s)).collect();
        for r in &expired {
            let observed = live.get(r.id.service.as_str()).copied();
            let settled = self.settle_claim(r, observed, false).await?;
            if settled.settled {
                tally.add(settled.tally);
            } else {
                tally.add(
                    self.expire_claim(
                        r,
                        "UpdateService did not answer, and no deployment was made since the claim",
                    )
                    .await?,
                );
            }
        }
        let closed = !pass.outside_window && now >= pass.window.end;
        let mut full = false;
        // Set once UpdateService was denied: the account was lost meanwhile.
        let mut unreachable: Option<String> = None;
        for r in &todo {
            let observed = live.get(r.id.service.as_str()).copied();
            if let Some(m) = &unreachable {
                if r.state == NightState::Planned {
                    tally.skipped += self.skip_unreachable(std::slice::from_ref(r), m).await?;
                }
                continue;
            }
            if r.state == NightState::Started {
                let settled = self
                    .settle_claim(r, observed, pass.may_deploy && !closed)
                    .await?;
                tally.add(settled.tally);
                unreachable = settled.unreachable;
                continue;
            }
            if full || Instant::now() >= pass.deadline || !pass.may_deploy || closed {
                tally.deferred += 1;
                continue;
            }
            let window = pass.window;
            let tag = observed.map_or(TagState::Untagged, |s| {
                TagState::from_tags(&s.tags, &self.config.tag_key, window.start.date_naive())
            });
            let tonight = Tonight {
                window_start: window.start,
                restarted_tonight: false,
            };
            if let Err(reason) = eligibility::check(observed, &tag, &tonight, &self.config.policy) {
                if self.store.move_record(r, &r.now_skipped(reason)).await? {
                    tracing::info!(service = %r.id, %reason, "skipped at the live check");
                    tally.skipped += 1;
                }
                continue;
            }
            let Some(observed) = observed else { continue };
            // Only on-call's explicit `outside_window` gets here after the window's end: the
            // record says so.
            let base = if now >= pass.window.end {
                NightRecord {
                    detail: Some(
                        "started after the window's end at on-call's request (outside_window)"
                            .into(),
                    ),
                    ..r.clone()
                }
            } else {
                r.clone()
            };
            match self.begin(Some(r), base, observed).await? {
                Begun::Started(_) => tally.started += 1,
                Begun::Refused(_) => tally.refused += 1,
                Begun::Unreachable(m) => unreachable = Some(m),
                Begun::Pending | Begun::Moved(_) => {}
                Begun::ClusterFull => {
                    full = true;
                    tally.deferred += 1;
                }
            }
        }
        Ok(tally)
    }

    /// Moves the planned records among `records` to `skipped/account_unreachable`, with the
    /// denial in their detail. How many moved.
    async fn skip_unreachable(
        &self,
        records: &[NightRecord],
        denial: &str,
    ) -> Result<u64, HandlerError> {
        let mut skipped = 0;
        for r in records.iter().filter(|r| r.state == NightState::Planned) {
            let to = NightRecord {
                detail: Some(denial.to_owned()),
                ..r.now_skipped(SkipReason::AccountUnreachable)
            };
            if self.store.move_record(r, &to).await? {
                skipped += 1;
            }
        }
        Ok(skipped)
    }

    /// A claim that got no deployment within the timeout ends `timed_out`, saying why. Its
    /// UpdateService did not run (or ECS could not show it): its place is given back.
    async fn expire_claim(&self, r: &NightRecord, why: &str) -> Result<Tally, HandlerError> {
        let mut tally = Tally::default();
        let to = self.finished(
            r,
            NightState::TimedOut,
            &format!(
                "no deployment was recorded for this restart within {} minutes: {why}",
                self.config.restart_timeout.num_minutes()
            ),
        );
        if self.store.finish(r, &to).await? {
            *tally.outcomes.entry(NightState::TimedOut).or_default() += 1;
        }
        Ok(tally)
    }

    /// A claimed start without a deployment: did UpdateService run? (See the module
    /// documentation.) Sends it when it did not and `may_deploy`.
    async fn settle_claim(
        &self,
        r: &NightRecord,
        observed: Option<&ServiceSnapshot>,
        may_deploy: bool,
    ) -> Result<Settled, HandlerError> {
        let mut out = Settled::default();
        let Some(s) = observed.filter(|s| s.status == restart_core::service::ServiceStatus::Active)
        else {
            let to = self.finished(r, NightState::Vanished, "the service is gone or inactive");
            if self.store.finish(r, &to).await? {
                *out.tally.outcomes.entry(NightState::Vanished).or_default() += 1;
            }
            out.settled = true;
            return Ok(out);
        };
        // Did the claim's UpdateService run? Only a deployment created since the claim (not the
        // one seen when claiming) with the task definition seen then says so (a deploy of
        // another one is the owners'); which deployment is PRIMARY now proves nothing.
        let claimed_at = r.started_at.unwrap_or_else(|| self.clock.now()) - CLOCK_SKEW;
        let same_task = |d: &&restart_core::service::Deployment| match (
            r.task_definition.as_deref(),
            d.task_definition.as_deref(),
        ) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        let made = s
            .deployments
            .iter()
            .filter(|d| Some(&d.id) != r.previous_deployment.as_ref())
            .filter(|d| d.created_at.is_some_and(|t| t >= claimed_at))
            .filter(same_task)
            .max_by_key(|d| (d.status == DeploymentStatus::Primary, d.created_at));
        if let Some(d) = made
            && !self.config.dry_run
        {
            let with = NightRecord {
                deployment_id: Some(d.id.clone()),
                ..r.clone()
            };
            self.store.record_deployment(&with).await?;
            tracing::info!(service = %r.id, deployment = %d.id, "recovered the deployment of an interrupted start");
            out.settled = true;
            return Ok(out);
        }
        if !may_deploy {
            return Ok(out);
        }
        out.settled = true;
        match self.deploy(r, s).await? {
            Begun::Started(_) => out.tally.started += 1,
            Begun::Refused(_) => out.tally.refused += 1,
            Begun::Unreachable(m) => out.unreachable = Some(m),
            _ => {}
        }
        Ok(out)
    }

    /// Releases the cluster places of `cluster`'s held restarts whose deployment ECS has ended
    /// (or that are gone). How many. A cluster that cannot be described keeps them.
    async fn release_ended(
        &self,
        night: NaiveDate,
        cluster: &ServiceId,
    ) -> Result<u64, HandlerError> {
        let held = self.store.held(night, cluster).await?;
        if held.is_empty() {
            return Ok(0);
        }
        let ids: Vec<ServiceId> = held.iter().map(|h| h.id.clone()).collect();
        let live = match self.fleet.describe(&ids).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(cluster = %cluster.cluster_key(), error = %e, "held restarts not looked at; their places stay taken");
                return Ok(0);
            }
        };
        let mut released = 0;
        for h in &held {
            let observed = live.iter().find(|s| s.id.service == h.id.service);
            if still_rolling(observed, &h.deployment_id) {
                continue;
            }
            if self.store.release(night, h).await? {
                tracing::info!(service = %h.id, deployment = %h.deployment_id, "a timed-out restart's deployment ended; its place in the cluster is free");
                released += 1;
            }
        }
        Ok(released)
    }

    /// Claims `from` (as read) as started and runs the restart.
    async fn begin(
        &self,
        from: Option<&NightRecord>,
        base: NightRecord,
        observed: &ServiceSnapshot,
    ) -> Result<Begun, HandlerError> {
        let claimed = NightRecord {
            state: NightState::Started,
            started_at: Some(self.clock.now()),
            previous_deployment: observed.primary().map(|d| d.id.clone()),
            task_definition: observed.primary().and_then(|d| d.task_definition.clone()),
            deployment_id: None,
            finished_at: None,
            duration_seconds: None,
            // What the caller says of this start (by hand, outside the window), else nothing.
            detail: base.detail.clone(),
            skip_reason: None,
            ..base
        };
        let cap = self.config.max_inflight_per_cluster;
        let mut claim = self.store.claim(from, &claimed, cap).await?;
        // A full cluster may hold timed-out restarts whose deployment has ended since: their
        // places are given back, and the claim tried once more.
        if claim == Claim::ClusterFull && self.release_ended(claimed.night, &claimed.id).await? > 0
        {
            claim = self.store.claim(from, &claimed, cap).await?;
        }
        match claim {
            Claim::Claimed => self.deploy(&claimed, observed).await,
            Claim::ClusterFull => Ok(Begun::ClusterFull),
            Claim::Moved(now) => Ok(Begun::Moved(now)),
        }
    }

    /// UpdateService for a claimed record (or, in a dry run, the current PRIMARY deployment),
    /// then the deployment recorded.
    async fn deploy(
        &self,
        claimed: &NightRecord,
        observed: &ServiceSnapshot,
    ) -> Result<Begun, HandlerError> {
        let deployment = if self.config.dry_run {
            observed.primary().map(|d| d.id.clone()).ok_or_else(|| {
                HandlerError::unexpected(format!("{} has no PRIMARY deployment", claimed.id))
            })
        } else {
            match self.fleet.force_new_deployment(&claimed.id).await {
                Ok(id) => Ok(id),
                Err(
                    e @ (ControlError::NotFound(_)
                    | ControlError::Refused(_)
                    | ControlError::Unexpected(_)),
                ) => {
                    // An answer that will not heal: sending it again would get the same.
                    let (state, detail) = match &e {
                        ControlError::NotFound(m) => {
                            (NightState::Vanished, format!("UpdateService: {m}"))
                        }
                        ControlError::Refused(m) | ControlError::Unexpected(m) => {
                            (NightState::Failed, format!("update_rejected: {m}"))
                        }
                        _ => (NightState::Failed, format!("update_rejected: {e}")),
                    };
                    let to = self.finished(claimed, state, &detail);
                    self.store.finish(claimed, &to).await?;
                    tracing::warn!(service = %claimed.id, error = %e, "restart refused");
                    return Ok(Begun::Refused(state));
                }
                // Denied (an SCP, the role changed): the request did not run, and nothing else
                // will in this account. The claim stays and ends at its timeout with the reason.
                Err(ControlError::AccessDenied(m)) => {
                    tracing::warn!(service = %claimed.id, error = %m, "UpdateService denied: account unreachable");
                    return Ok(Begun::Unreachable(m));
                }
                // Throttled or transient: the claim stays; once its lease has lapsed a poll
                // settles it from the service's deployments, or it times out.
                Err(e) => {
                    tracing::warn!(service = %claimed.id, error = %e, "UpdateService did not answer; the next poll settles it");
                    return Ok(Begun::Pending);
                }
            }
        }?;
        let with = NightRecord {
            deployment_id: Some(deployment.clone()),
            ..claimed.clone()
        };
        self.store.record_deployment(&with).await?;
        tracing::info!(service = %claimed.id, deployment = %deployment, dry_run = self.config.dry_run, "restart started");
        Ok(Begun::Started(deployment))
    }

    /// `to` as an outcome of `r`, finished now.
    fn finished(&self, r: &NightRecord, state: NightState, detail: &str) -> NightRecord {
        NightRecord {
            state,
            finished_at: Some(self.clock.now()),
            detail: Some(detail.to_owned()),
            ..r.clone()
        }
    }

    /// Judges started restarts (with their deployment) and records the ones that ended.
    async fn watch(&self, started: Vec<NightRecord>) -> Result<Tally, HandlerError> {
        sum(stream::iter(by_cluster(started))
            .map(|group| self.watch_cluster(group))
            .buffer_unordered(CLUSTER_CONCURRENCY)
            .collect()
            .await)
    }

    async fn watch_cluster(&self, group: Vec<NightRecord>) -> Result<Tally, HandlerError> {
        let ids: Vec<ServiceId> = group.iter().map(|r| r.id.clone()).collect();
        let live = match self.fleet.describe(&ids).await {
            Ok(live) => live,
            Err(e) => return self.unwatchable(&group, &e).await,
        };
        let live: BTreeMap<&str, &ServiceSnapshot> =
            live.iter().map(|s| (s.id.service.as_str(), s)).collect();
        let mut tally = Tally::default();
        for r in &group {
            let (Some(dep), Some(started_at)) = (r.deployment_id.as_deref(), r.started_at) else {
                continue;
            };
            let now = self.clock.now();
            let observed = live.get(r.id.service.as_str()).copied();
            let verdict = outcome::verify(
                observed,
                dep,
                r.task_definition.as_deref(),
                started_at,
                now,
                self.config.restart_timeout,
            );
            let Some(state) = verdict.outcome() else {
                continue;
            };
            let to = match verdict {
                Verdict::Completed { at } => {
                    // The tag is the proof owners read: written before the record says so.
                    let tagged = if self.config.dry_run {
                        Ok(())
                    } else {
                        self.fleet
                            .tag(&r.arn, &self.config.tag_key, &restart_tag_value(at))
                            .await
                    };
                    if let Err(e) = tagged {
                        if matches!(e, ControlError::Throttled(_) | ControlError::Transient(_)) {
                            tracing::warn!(service = %r.id, error = %e, "tagging failed; the next poll tries again");
                            continue;
                        }
                        tracing::error!(service = %r.id, error = %e, "the restart completed but the tag could not be written");
                        tally.tag_failures += 1;
                    }
                    let at = at.max(started_at);
                    NightRecord {
                        state,
                        finished_at: Some(at),
                        duration_seconds: u32::try_from((at - started_at).num_seconds()).ok(),
                        ..r.clone()
                    }
                }
                other => self.finished(
                    r,
                    state,
                    &describe_verdict(other, observed, self.config.restart_timeout),
                ),
            };
            // Given up on while ECS still rolls it: it keeps its place in the cluster.
            let hold = state == NightState::TimedOut
                && !self.config.dry_run
                && still_rolling(observed, dep);
            let to = if hold {
                NightRecord {
                    detail: to.detail.map(|d| format!("{d}; {HELD_DETAIL}")),
                    ..to
                }
            } else {
                to
            };
            let moved = if hold {
                self.store.finish_holding(r, &to).await?
            } else {
                self.store.finish(r, &to).await?
            };
            if moved {
                *tally.outcomes.entry(state).or_default() += 1;
                tracing::info!(service = %r.id, outcome = %state, held = hold, "restart finished");
                // For the planner's next nights; the record above is what proves the restart,
                // so a failure here is only logged. A dry run restarted nothing: it has no
                // duration to keep.
                if let (NightState::Completed, Some(seconds), false) =
                    (state, to.duration_seconds, self.config.dry_run)
                    && let Err(e) = self.store.record_restart_duration(&r.id, seconds).await
                {
                    tracing::warn!(service = %r.id, error = %e, "the restart's duration was not kept in the catalog");
                }
            }
        }
        Ok(tally)
    }

    /// Started restarts whose cluster could not be described (the account lost, or errors
    /// after retries): each keeps being looked at until its timeout, then ends `timed_out`
    /// with the reason in its detail. The rest of the batch goes on.
    async fn unwatchable(
        &self,
        group: &[NightRecord],
        e: &ControlError,
    ) -> Result<Tally, HandlerError> {
        let mut tally = Tally::default();
        let now = self.clock.now();
        let why = match e {
            ControlError::AccessDenied(m) => format!("account unreachable: {m}"),
            other => format!("ECS could not be asked: {other}"),
        };
        tracing::warn!(cluster = %group.first().map(|r| r.id.cluster_key()).unwrap_or_default(), error = %why, "restarts not watched this time");
        for r in group {
            let Some(started_at) = r.started_at else {
                continue;
            };
            if now - started_at < self.config.restart_timeout {
                continue;
            }
            let to = self.finished(
                r,
                NightState::TimedOut,
                &format!(
                    "not seen finished within {} minutes: {why}",
                    self.config.restart_timeout.num_minutes()
                ),
            );
            // Whether its deployment still rolls is unknown: it keeps its place in the cluster
            // until ECS can be asked again.
            let moved = if self.config.dry_run {
                self.store.finish(r, &to).await?
            } else {
                self.store.finish_holding(r, &to).await?
            };
            if moved {
                *tally.outcomes.entry(NightState::TimedOut).or_default() += 1;
            }
        }
        Ok(tally)
    }

    /// `service`: restarts one service now, on on-call's request.
    ///
    /// The night is the one whose window is open, else the last one that began. A service
    /// already in flight is refused. One that already restarted tonight (completed, failed,
    /// ...) is restarted again only with `force`. A service that is not enrolled (untagged) is
    /// restarted, since on-call asked; one opted out or snoozed only with `force`. Every other
    /// eligibility rule (controller, desired 0, a deployment in progress, restart risk) still
    /// holds, and so do the kill switch, the night's halt (unless forced) and the cluster's cap.
    #[tracing::instrument(skip(self), fields(service = %arn))]
    pub async fn restart_service(
        &self,
        arn: &ServiceArn,
        force: bool,
    ) -> Result<ServiceOutput, HandlerError> {
        let id = service_id(arn)?;
        let now = self.clock.now();
        let window = {
            let w = self.config.window.night_at(now);
            if w.start > now {
                self.window(w.night.pred_opt().unwrap_or(w.night))
            } else {
                w
            }
        };
        let night = window.night;
        self.refuse_if_paused().await?;
        if let Some(halt) = self.store.night_status(night).await?.halted
            && !force
        {
            return Err(HandlerError::new(
                ErrorType::Halted,
                format!(
                    "night {night} was halted: {}; use force to restart anyway",
                    halt.reason
                ),
            ));
        }
        let existing = self.store.find_record(night, &id).await?;
        if let Some(r) = &existing {
            if r.state == NightState::Started {
                return Err(HandlerError::invalid_input(format!(
                    "{arn} is restarting already (since {}, deployment {})",
                    r.started_at.map_or("?".into(), |t| t.to_rfc3339()),
                    r.deployment_id.as_deref().unwrap_or("not yet recorded")
                )));
            }
            if r.state.is_restart_outcome() && !force {
                return Err(HandlerError::invalid_input(format!(
                    "{arn} was restarted tonight already ({}); use force to restart it again",
                    r.state
                )));
            }
        }
        let live = self.fleet.describe(std::slice::from_ref(&id)).await?;
        let Some(observed) = live.first() else {
            return Err(HandlerError::invalid_input(format!(
                "{arn} does not exist in ECS (or its cluster does not)"
            )));
        };
        let tag = TagState::from_tags(
            &observed.tags,
            &self.config.tag_key,
            window.start.date_naive(),
        );
        let tonight = Tonight {
            window_start: window.start,
            restarted_tonight: false,
        };
        let policy = eligibility::Policy {
            untagged: UntaggedPolicy::Restart,
            ..self.config.policy
        };
        match eligibility::check(Some(observed), &tag, &tonight, &policy) {
            Ok(()) => {}
            Err(
                SkipReason::AlreadyRestartedTonight | SkipReason::OptedOut | SkipReason::Snoozed,
            ) if force => {}
            Err(reason) => {
                return Err(HandlerError::invalid_input(format!(
                    "{arn} is not restarted: {reason}{}",
                    if matches!(
                        reason,
                        SkipReason::AlreadyRestartedTonight
                            | SkipReason::OptedOut
                            | SkipReason::Snoozed
                    ) {
                        " (use force to restart it anyway)"
                    } else {
                        ""
                    }
                )));
            }
        }
        let base = existing.clone().unwrap_or_else(|| {
            let (owner, _) =
                self.config
                    .owners()
                    .resolve(&observed.tags, &Default::default(), &id.account);
            NightRecord::unbatched(id.clone(), arn.clone(), night, owner)
        });
        let base = NightRecord {
            detail: Some(format!(
                "restarted by hand{}",
                if force { ", forced" } else { "" }
            )),
            ..base
        };
        let begun = self.begin(existing.as_ref(), base, observed).await?;
        let after = self.store.find_record(night, &id).await?;
        match begun {
            Begun::ClusterFull => Err(HandlerError::new(
                ErrorType::Throttled,
                format!(
                    "cluster {} has {} restarts in flight, its cap: try again when one finishes",
                    id.cluster_key(),
                    self.config.max_inflight_per_cluster
                ),
            )),
            Begun::Moved(now) => Err(HandlerError::transient(format!(
                "{arn}'s record changed meanwhile (now {}); look again",
                now.map_or("absent".into(), |s| s.to_string())
            ))),
            Begun::Unreachable(m) => Err(HandlerError::new(
                ErrorType::Misconfigured,
                format!(
                    "UpdateService on {arn} was denied ({m}): the account cannot be reached; \
                     nothing was restarted, and the claim ends timed_out at its timeout"
                ),
            )),
            _ => {
                let after = after.ok_or_else(|| {
                    HandlerError::unexpected(format!("{arn}'s record vanished after its start"))
                })?;
                Ok(ServiceOutput {
                    night,
                    service_arn: arn.clone(),
                    state: after.state,
                    deployment_id: after.deployment_id,
                    dry_run: self.config.dry_run,
                    wait_seconds: self.wait_seconds(),
                })
            }
        }
    }

    /// One EMF line for an invocation's moves.
    fn emit(&self, night: NaiveDate, batch: Option<u32>, mode: &str, t: &Tally) {
        let outcome = |s: NightState| t.outcomes.get(&s).copied().unwrap_or(0) as f64;
        let mut emf = Emf::new()
            .dimension("Function", "restarter")
            .metric("RestartsStarted", t.started as f64, Unit::Count)
            .metric("RestartsDeferred", t.deferred as f64, Unit::Count)
            .metric("SkippedAtLiveCheck", t.skipped as f64, Unit::Count)
            .metric("RestartsRefused", t.refused as f64, Unit::Count)
            .metric(
                "RestartsCompleted",
                outcome(NightState::Completed),
                Unit::Count,
            )
            .metric("RestartsFailed", outcome(NightState::Failed), Unit::Count)
            .metric(
                "RestartsRolledBack",
                outcome(NightState::RolledBack),
                Unit::Count,
            )
            .metric(
                "RestartsSuperseded",
                outcome(NightState::Superseded),
                Unit::Count,
            )
            .metric(
                "RestartsTimedOut",
                outcome(NightState::TimedOut),
                Unit::Count,
            )
            .metric(
                "RestartsVanished",
                outcome(NightState::Vanished),
                Unit::Count,
            )
            .metric("RestartsHalted", t.halted as f64, Unit::Count)
            .metric("TagFailures", t.tag_failures as f64, Unit::Count)
            .property("night", serde_json::json!(night))
            .property("mode", serde_json::json!(mode))
            .property("dry_run", serde_json::json!(self.config.dry_run));
        if let Some(b) = batch {
            emf = emf.property("batch", serde_json::json!(b));
        }
        println!("{}", emf.line(self.clock.now()));
    }
}

/// How one invocation works through a batch's records.
#[derive(Debug, Clone, Copy)]
struct Pass {
    window: NightWindow,
    /// Nothing new starts after this (the invocation's time budget).
    deadline: Instant,
    /// On-call asked to start restarts after the window's end.
    outside_window: bool,
    /// False once the night is halted: claims are settled from what ECS shows, never by
    /// sending UpdateService.
    may_deploy: bool,
}

/// The cluster of a group of services, for logs.
fn ids_cluster(ids: &[ServiceId]) -> String {
    ids.first().map_or_else(String::new, ServiceId::cluster_key)
}

/// What starting one service came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Begun {
    Started(String),
    /// ECS refused it: recorded with this outcome.
    Refused(NightState),
    /// UpdateService did not answer: the claim stays for the next poll.
    Pending,
    /// UpdateService was denied (the account was lost): the claim stays until its timeout.
    Unreachable(String),
    Moved(Option<NightState>),
    ClusterFull,
}

/// What settling a claim came to.
#[derive(Debug, Default)]
struct Settled {
    tally: Tally,
    /// Whether the claim was settled: its deployment found, sent, or its service gone.
    settled: bool,
    /// UpdateService was denied: the account was lost.
    unreachable: Option<String>,
}

/// Whether `deployment_id` still rolls on the service as observed: present and neither
/// completed nor failed. Such a restart keeps its place in the cluster even once given up on,
/// since ECS still runs it.
fn still_rolling(observed: Option<&ServiceSnapshot>, deployment_id: &str) -> bool {
    observed
        .filter(|s| s.status == restart_core::service::ServiceStatus::Active)
        .and_then(|s| s.deployments.iter().find(|d| d.id == deployment_id))
        .is_some_and(|d| {
            !matches!(
                d.rollout_state,
                Some(RolloutState::Completed | RolloutState::Failed)
            )
        })
}

fn service_id(arn: &ServiceArn) -> Result<ServiceId, HandlerError> {
    ServiceId::from_arn(arn).ok_or_else(|| {
        HandlerError::invalid_input(format!(
            "{arn} is an old-format service ARN without its cluster name: opt in to the long \
             ARN format (needs_long_arn) before it can be restarted"
        ))
    })
}

/// A failed restart in words, for on-call and the owner.
fn describe_verdict(v: Verdict, observed: Option<&ServiceSnapshot>, timeout: TimeDelta) -> String {
    let primary = observed
        .and_then(ServiceSnapshot::primary)
        .map_or("none".to_owned(), |d| d.id.clone());
    match v {
        Verdict::Failed => "the deployment's rolloutState is FAILED".into(),
        Verdict::RolledBack => {
            format!("the PRIMARY deployment is no longer ours (now {primary}): rolled back")
        }
        Verdict::Superseded => format!(
            "a deployment of another task definition ({}) replaced ours: superseded",
            observed
                .and_then(ServiceSnapshot::primary)
                .and_then(|d| d.task_definition.as_deref())
                .unwrap_or("unknown")
        ),
        Verdict::TimedOut => format!(
            "not finished after {} minutes (PRIMARY {primary})",
            timeout.num_minutes()
        ),
        Verdict::Vanished => "the service is gone or inactive".into(),
        Verdict::Pending | Verdict::Completed { .. } => String::new(),
    }
}
