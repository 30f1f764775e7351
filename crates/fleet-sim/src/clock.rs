//! The simulated clock: `now = start + elapsed_real × time_scale + advanced`.

use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};

use crate::world::Millis;

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

    /// Simulated now, in ms since the epoch.
    pub fn now(&self) -> Millis {
        let real = self.started.elapsed().as_secs_f64();
        self.start + (real * self.time_scale * 1000.0) as Millis + self.advanced
    }

    /// Simulated now as a date-time.
    pub fn now_utc(&self) -> DateTime<Utc> {
        millis_to_utc(self.now())
    }

    /// Moves the clock forward by `millis` (negative values are ignored).
    pub fn advance(&mut self, millis: Millis) {
        self.advanced += millis.max(0);
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
}
