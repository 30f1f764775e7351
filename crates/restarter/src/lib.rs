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
//!   judges every started restart with [`outcome::verify`](restart_core::outcome::verify), tags
//!   the completed ones, trips the night's circuit breaker when it must, and starts what `start`
//!   deferred (a full cluster, or the invocation's time budget spent). Returns `done` once
//!   nothing is planned or in flight.
//! - `{ "mode": "service", "service_arn", "force": false }`: restarts one service now, on
//!   on-call's request (see [`Restarter::restart_service`]).
//! - `{ "mode": "failed", "night", "batch", "error": {"Error", "Cause"} }`: the state machine
//!   tells that a batch of the night ended in an error (its start or a poll failed after the
//!   retries). Logged at error level and counted (`BatchesFailed`, the metric the restarter's
//!   alarm watches); touches nothing else, so it cannot fail on the store or ECS. Errors the
//!   state machine retries, and `Paused`, which it waits on, end no batch and are not counted.
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
//! next poll. Its records complete when that deployment last changed, before the claim: a
//! duration of 0, which the next night's plan (reading last night's records) counts as unknown.
//!
//! No invocation waits for a deployment: the state machine waits `wait_seconds` between polls.
//!
//! Code map:
//! - `event`: the events and outputs (their JSON shapes, `mode`), and the service ARN checked.
//! - `gates`: what every mode checks first: the batch in the plan, the kill switch; the
//!   window's end and the night's halt, which end the planned records they stop.
//! - `guards`: the change freeze and the blocking alarms, read once per invocation.
//! - `start`: the `start` mode, and the pass over planned records (cluster by cluster, within
//!   [`START_BUDGET`], deferring what cannot start now) that `poll` shares.
//! - `claim`: one start (claim, UpdateService, deployment recorded), and a claim settled once
//!   its [`CLAIM_LEASE`] has lapsed.
//! - `held`: timed-out restarts whose deployment still rolls, and the places they give back.
//! - `poll`: the `poll` mode: judge, close the window, trip the circuit breaker, go on.
//! - `watch`: started restarts judged, tagged and recorded.
//! - `manual`: the `service` mode, on-call's restart of one service.
//! - `waits`: the `wait_seconds` the state machine waits between invocations.
//! - `cluster`: records grouped by cluster, and the `Tally` of what was done.
//! - `metrics`: the EMF lines, and the `failed` mode.
//! - [`aws`]: the production handler, with ECS and DynamoDB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use restart_core::clock::Clock;
use restart_core::guard::Guards;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::{CatalogStore, FleetControl, RestartStore, SettingsStore};
use restart_core::window::NightWindow;
use restart_core::{Config, HandlerError};

pub mod aws;
mod claim;
mod cluster;
mod event;
mod gates;
mod guards;
mod held;
mod journal;
mod manual;
mod metrics;
mod poll;
mod start;
mod waits;
mod watch;

pub use claim::CLAIM_LEASE;
pub use event::{
    CaughtError, CloseEvent, Event, FailedEvent, FailedOutput, Output, PollEvent, PollOutput,
    ServiceEvent, ServiceOutput, StartEvent, StartOutput,
};
pub use restart_core::limits::SLOW_POLL_FACTOR;

/// How long one invocation may spend starting restarts before it leaves the rest to the next
/// poll (the state machine waits in between; nothing here waits for a deployment).
pub const START_BUDGET: Duration = Duration::from_secs(10);

/// How long one invocation works before it leaves what is left (starts, judgements, tags) to
/// the next poll. Past it no new AWS call begins; one already sent may take up to the member
/// ECS operation timeout (90 s) in retries, and the Lambda timeout (300 s) leaves room for that
/// and the records' writes: an invocation that would be ended by Lambda's timeout (which the
/// state machine does not retry, failing the whole batch) ends itself instead.
pub const INVOCATION_BUDGET: Duration = Duration::from_secs(150);

tokio::task_local! {
    /// When the current invocation's [`INVOCATION_BUDGET`] ends.
    static INVOCATION_ENDS: tokio::time::Instant;
}

/// Whether the current invocation's budget is spent (never outside an invocation).
pub(crate) fn out_of_time() -> bool {
    INVOCATION_ENDS
        .try_with(|ends| tokio::time::Instant::now() >= *ends)
        .unwrap_or(false)
}

/// What the restarter needs of the table: its own side, the catalog (a manual restart's
/// service), and the account owners a manual restart's new record is given.
pub trait Store: RestartStore + CatalogStore + SettingsStore {}

impl<T: RestartStore + CatalogStore + SettingsStore> Store for T {}

/// The handler with its ports.
#[derive(Debug)]
pub struct Restarter<F, S> {
    pub config: Arc<Config>,
    pub fleet: F,
    pub store: S,
    pub clock: Arc<dyn Clock>,
    /// The change calendar and the blocking alarms (read only when configured).
    pub guards: Arc<dyn Guards>,
    /// See [`START_BUDGET`].
    pub budget: Duration,
}

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// Handles one invocation: the raw event in, the mode's output out.
    pub async fn handle(&self, event: serde_json::Value) -> Result<Output, HandlerError> {
        let ends = tokio::time::Instant::now() + INVOCATION_BUDGET;
        INVOCATION_ENDS.scope(ends, self.dispatch(event)).await
    }

    async fn dispatch(&self, event: serde_json::Value) -> Result<Output, HandlerError> {
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
            Event::Close(CloseEvent { night }) => (
                "close",
                Box::pin(self.close_night(night)).await.map(Output::Poll),
            ),
            Event::Failed(FailedEvent {
                night,
                batch,
                error,
            }) => (
                "failed",
                Ok(Output::Failed(self.batch_failed(night, batch, &error))),
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

    /// `to` as an outcome of `r`, finished now.
    fn finished(&self, r: &NightRecord, state: NightState, detail: &str) -> NightRecord {
        NightRecord {
            state,
            finished_at: Some(self.clock.now()),
            detail: Some(detail.to_owned()),
            ..r.clone()
        }
    }
}
