//! The simulated clock: `now = start + elapsed_real × time_scale + advanced`.

use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};

use crate::world::Millis;

/// The latest simulated time (9999-12-31T23:59:59.999Z): the clock stops there, so adding a
/// deploy time or an hour to a simulated time never overflows.
pub const MAX_MILLIS: Millis = 253_402_300_799_999;

/// A simulated clock running `time_scale` times faster than the real one.
#[derive(Debug, Clone)]
pub struct SimClock {
    start: Millis,
    started: Instant,
    time_scale: f64,
    advanced: Millis,
}

impl SimClock {
    /// A clock reading `start` (ms since the epoch) now.
    pub fn new(start: Millis, time_scale: f64) -> Self {
        Self {
            start,
            started: Instant::now(),
            time_scale,
            advanced: 0,
        }
    }

    /// Simulated now, in ms since the epoch; never later than [`MAX_MILLIS`].
    pub fn now(&self) -> Millis {
        let real = self.started.elapsed().as_secs_f64();
        // The float-to-int cast saturates; the sums saturate too.
        self.start
            .saturating_add((real * self.time_scale * 1000.0) as Millis)
            .saturating_add(self.advanced)
            .min(MAX_MILLIS)
    }

    /// Simulated now as a date-time.
    pub fn now_utc(&self) -> DateTime<Utc> {
        millis_to_utc(self.now())
    }

    /// Moves the clock forward by `millis` (negative values are ignored).
    pub fn advance(&mut self, millis: Millis) {
        self.advanced = self.advanced.saturating_add(millis.max(0)).min(MAX_MILLIS);
    }

    /// Simulated seconds per real second.
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// Total manual advance so far.
    pub fn advanced(&self) -> Millis {
        self.advanced
    }
}

/// Converts ms since the epoch to a date-time (saturating at the epoch on overflow).
pub fn millis_to_utc(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now() {
        let mut c = SimClock::new(1_000_000, 1.0);
        let a = c.now();
        c.advance(60_000);
        c.advance(-5);
        assert!(c.now() >= a + 60_000);
        assert_eq!(c.advanced(), 60_000);
        assert_eq!(millis_to_utc(0).timestamp(), 0);
    }

    #[test]
    fn huge_advances_stop_at_the_end_of_year_9999() {
        let mut c = SimClock::new(1_000_000, 1e6);
        c.advance(Millis::MAX);
        c.advance(Millis::MAX);
        assert_eq!(c.now(), MAX_MILLIS);
        assert_eq!(millis_to_utc(c.now()).timestamp_millis(), MAX_MILLIS);
    }
}
