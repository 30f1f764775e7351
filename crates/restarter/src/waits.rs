//! How long the state machine waits between invocations (`wait_seconds`): nothing here waits
//! for a deployment.

use chrono::{DateTime, TimeDelta, Utc};

use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::FleetControl;

use crate::{Restarter, Store};

fn seconds(d: TimeDelta) -> u64 {
    u64::try_from(d.num_seconds()).unwrap_or(0)
}

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// The poll interval, in seconds: what `start` and `service` answer as `wait_seconds`.
    pub(crate) fn wait_seconds(&self) -> u64 {
        seconds(self.config.poll_interval)
    }

    /// How long the state machine waits before the next poll: the poll interval while any
    /// restart pending is younger than two thirds of the timeout (or a service waits to start);
    /// once every pending restart has run longer (a slow or stuck deployment), up to
    /// `SLOW_POLL_FACTOR` intervals, never past the earliest timeout. At the defaults a stuck
    /// deployment then costs its batch 24 polls instead of 30, which keeps a 36-batch night
    /// under 3,000 state transitions even with a stuck restart in every batch; only restarts
    /// that finish after 20 of their 30 minutes may be recorded more than one interval late.
    pub(crate) fn poll_wait(&self, records: &[NightRecord]) -> u64 {
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
}
