//! The EMF lines the function prints: one for each invocation's moves, one when the circuit
//! breaker halts the night.

use chrono::NaiveDate;

use restart_core::night::Halt;
use restart_core::outcome::NightState;
use restart_core::ports::{CatalogStore, FleetControl, RestartStore};
use restart_core::telemetry::{Emf, Unit};

use crate::Restarter;
use crate::cluster::Tally;

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: RestartStore + CatalogStore,
{
    /// One EMF line for an invocation's moves.
    pub(crate) fn emit(&self, night: NaiveDate, batch: Option<u32>, mode: &str, t: &Tally) {
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

/// The line the circuit breaker's halt of `night` prints.
pub(crate) fn night_halted(night: NaiveDate, halt: &Halt) {
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
