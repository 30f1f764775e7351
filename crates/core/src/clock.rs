//! Time comes from a [`Clock`], so that nothing deep inside reads the wall clock and tests can
//! set the time.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock; only `main`s construct it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // `+=` panics past chrono's range; the clock stops at its end instead.
        *t = t
            .checked_add_signed(by)
            .unwrap_or(if by < TimeDelta::zero() {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stops_at_the_ends_of_time() {
        let c = ManualClock::new(DateTime::<Utc>::MAX_UTC);
        c.advance(TimeDelta::MAX);
        assert_eq!(c.now(), DateTime::<Utc>::MAX_UTC);
        c.advance(TimeDelta::MIN);
        assert_eq!(c.now(), DateTime::<Utc>::MIN_UTC);
        c.advance(TimeDelta::seconds(1));
        assert_eq!(c.now(), DateTime::<Utc>::MIN_UTC + TimeDelta::seconds(1));
    }
}
