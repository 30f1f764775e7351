//! The EMF lines the function prints (namespace `EcsNightlyRestart`, dimension
//! `Function=restarter`): one for each invocation's moves, one when the circuit breaker halts
//! the night, one for a batch that ended in an error (the `failed` mode), one for a start
//! refused while paused past the night's deadline. The alarms of infra/template.yaml watch
//! `BatchesFailed`, `TagFailures` and `BatchesPastDeadline`.

use chrono::{DateTime, NaiveDate, Utc};

use restart_core::night::Halt;
use restart_core::outcome::NightState;
use restart_core::ports::FleetControl;
use restart_core::telemetry::{Emf, Unit};
use restart_core::text::cut;

use crate::claim::CLAIM_LEASE;
use crate::cluster::Tally;
use crate::event::{CaughtError, FailedOutput};
use crate::{Restarter, Store};

/// The most characters of a caught error's name and cause kept in the log and the EMF line (a
/// Step Functions cause holds up to 32,768).
const CAUSE_CHARS: usize = 2_000;

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// One EMF line for an invocation's moves.
    pub(crate) fn emit(&self, night: NaiveDate, batch: Option<u32>, mode: &str, t: &Tally) {
        let outcome = |s: NightState| t.outcomes.get(&s).copied().unwrap_or(0) as f64;
        let mut emf = Emf::new()
            .dimension("Function", "restarter")
            .metric("RestartsStarted", t.started as f64, Unit::Count)
            .metric("RestartsDeferred", t.deferred as f64, Unit::Count)
            .metric("RestartsHeld", t.held as f64, Unit::Count)
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
            .metric("BatchesDone", t.batch_done as f64, Unit::Count)
            .metric("BatchesPastDeadline", t.past_deadline as f64, Unit::Count)
            .property("night", serde_json::json!(night))
            .property("mode", serde_json::json!(mode))
            .property("dry_run", serde_json::json!(self.config.dry_run));
        if let Some(b) = batch {
            emf = emf.property("batch", serde_json::json!(b));
        }
        emf.emit(self.clock.now());
    }

    /// The night's deadline: the window's end plus the longer of the restart timeout and the
    /// claim lease, plus two poll intervals. Nothing starts after the window's end; every
    /// restart is judged by the first poll after its timeout, and a claim whose UpdateService
    /// got no answer by the first poll after its lease ([`CLAIM_LEASE`], 330 s, longer than a
    /// restart timeout of a few minutes). So a scheduled batch still pending after this is
    /// stuck.
    pub(crate) fn deadline(&self, night: NaiveDate) -> DateTime<Utc> {
        // A restart started in the window's last moment is judged by the first poll after its
        // timeout or lease, which comes up to a poll interval (and an invocation) later: the
        // deadline leaves two intervals for it, so that it means a stuck night, not a slow
        // last restart.
        self.window(night).end
            + self.config.restart_timeout.max(CLAIM_LEASE)
            + self.config.poll_interval * 2
    }

    /// The `failed` mode: a batch of the night ended in an error. Logged at error level and
    /// counted once (`BatchesFailed`); no store or ECS call, so recording cannot fail.
    pub(crate) fn batch_failed(
        &self,
        night: NaiveDate,
        batch: u32,
        caught: &CaughtError,
    ) -> FailedOutput {
        let error = cut(caught.error.as_deref().unwrap_or("unknown"), CAUSE_CHARS);
        let cause = cut(caught.cause.as_deref().unwrap_or(""), CAUSE_CHARS);
        tracing::error!(night = %night, batch, error = %error, cause = %cause, "batch failed");
        Emf::new()
            .dimension("Function", "restarter")
            .metric("BatchesFailed", 1.0, Unit::Count)
            .property("night", serde_json::json!(night))
            .property("batch", serde_json::json!(batch))
            .property("error", serde_json::json!(error))
            .property("cause", serde_json::json!(cause))
            .emit(self.clock.now());
        FailedOutput {
            night,
            batch,
            error,
        }
    }
}

/// The line the circuit breaker's halt of `night` prints.
pub(crate) fn night_halted(night: NaiveDate, halt: &Halt) {
    Emf::new()
        .dimension("Function", "restarter")
        .metric("NightHalted", 1.0, Unit::Count)
        .property("night", serde_json::json!(night))
        .property("reason", serde_json::json!(halt.reason))
        .emit(halt.at);
}
