//! What stops restarts from starting: a batch not in the night's plan and the kill switch refuse
//! the invocation; past the window's end the planned records end `skipped/window_closed` (with
//! the hold that kept them waiting, if one did: see `guards`), and once the night is halted they
//! end `halted`.

use chrono::NaiveDate;

use restart_core::eligibility::SkipReason;
use restart_core::guard;
use restart_core::night::{Halt, NightRecord};
use restart_core::outcome::NightState;
use restart_core::ports::FleetControl;
use restart_core::{ErrorType, HandlerError};

use crate::{Restarter, Store};

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// The batch must be part of the night's plan.
    pub(crate) async fn check_batch(
        &self,
        night: NaiveDate,
        batch: u32,
    ) -> Result<(), HandlerError> {
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
    pub(crate) async fn refuse_if_paused(&self) -> Result<(), HandlerError> {
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

    /// Moves the planned records among `records` to `halted`.
    pub(crate) async fn halt_planned(
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
            if self.moves().halt_record(r, &to).await? {
                halted += 1;
            }
        }
        Ok(halted)
    }

    /// Once the night's window has ended (unless on-call asked to run outside it), moves the
    /// planned records among `records` to `skipped/window_closed`: no restart starts after the
    /// window's end, whatever made it late. How many moved.
    pub(crate) async fn close_window(
        &self,
        night: NaiveDate,
        records: &[NightRecord],
        outside_window: bool,
    ) -> Result<u64, HandlerError> {
        if outside_window || self.clock.now() < self.window(night).end {
            return Ok(0);
        }
        let planned: Vec<&NightRecord> = records
            .iter()
            .filter(|r| r.state == NightState::Planned)
            .collect();
        // What held them until now is named in their detail.
        let holds = self.holds(&planned).await?;
        let mut closed = 0;
        for r in planned {
            let held = guard::window_closed_detail(holds.frozen.as_deref(), holds.of(&r.id));
            let to = NightRecord {
                detail: held.or_else(|| r.detail.clone()),
                ..r.now_skipped(SkipReason::WindowClosed)
            };
            if self.moves().move_record(r, &to).await? {
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::warn!(night = %night, closed, "the window ended before these restarts could start");
        }
        Ok(closed)
    }
}
