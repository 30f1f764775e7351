//! Step Functions' hard limits, and what one night can cost of them.
//!
//! An execution's history holds at most 25,000 events. The night's shape is fixed (measured from
//! moto's execution history; docs/performance.md, "State machine"): 34 events for the night
//! itself, and per batch 11 events plus 9 per poll. A batch is polled until its last restart has
//! ended, at worst until the restart timeout, at the restarter's poll waits ([`poll_wait`]).
//! The batcher refuses a plan whose worst case passes [`HISTORY_BUDGET`].

use chrono::TimeDelta;

/// Step Functions' limit on one execution's history.
pub const HISTORY_LIMIT: u64 = 25_000;

/// The most a night may need in the worst case: 0.8 of the limit, leaving room for retries.
pub const HISTORY_BUDGET: u64 = HISTORY_LIMIT * 4 / 5;

/// History events of the night outside its batches.
pub const NIGHT_EVENTS: u64 = 34;

/// History events of one batch besides its polls (its wait, start and end).
pub const BATCH_EVENTS: u64 = 11;

/// History events of one poll (the wait, the poll task, the choice).
pub const POLL_EVENTS: u64 = 9;

/// The longest wait between two polls, in poll intervals, once only slow restarts remain.
pub const SLOW_POLL_FACTOR: i32 = 3;

/// The wait before the next poll of a batch whose oldest pending restart started `age` ago:
/// the poll interval until two thirds of the timeout, then up to [`SLOW_POLL_FACTOR`]
/// intervals, never past the timeout (and never less than one interval).
pub fn poll_wait(age: TimeDelta, interval: TimeDelta, timeout: TimeDelta) -> TimeDelta {
    if age < timeout * 2 / 3 {
        return interval;
    }
    (interval * SLOW_POLL_FACTOR).min((timeout - age).max(interval))
}

/// How many polls a batch needs, at worst, until a restart started at its first poll times out.
pub fn polls_until_timeout(interval: TimeDelta, timeout: TimeDelta) -> u64 {
    if interval <= TimeDelta::zero() {
        return u64::MAX;
    }
    let mut age = TimeDelta::zero();
    let mut polls = 0;
    while age < timeout {
        age += poll_wait(age, interval, timeout);
        polls += 1;
    }
    polls
}

/// A night's history events if every batch is polled until its timeout.
pub fn worst_case_events(batches: u64, interval: TimeDelta, timeout: TimeDelta) -> u64 {
    let per_batch = BATCH_EVENTS
        .saturating_add(POLL_EVENTS.saturating_mul(polls_until_timeout(interval, timeout)));
    NIGHT_EVENTS.saturating_add(batches.saturating_mul(per_batch))
}

/// The most batches a night can have within [`HISTORY_BUDGET`] at these poll waits, whatever
/// the batch interval (the worst case does not depend on it: batches one minute or a few
/// seconds apart are each polled until the timeout).
pub fn max_batches(interval: TimeDelta, timeout: TimeDelta) -> u64 {
    let per_batch = BATCH_EVENTS
        .saturating_add(POLL_EVENTS.saturating_mul(polls_until_timeout(interval, timeout)));
    HISTORY_BUDGET.saturating_sub(NIGHT_EVENTS) / per_batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_local_night_of_sub_minute_batches_fits() {
        // restart-local: 1-minute timeout, 2 s polls; 13 batches 15 s apart in 4 minutes.
        let (poll, timeout) = (TimeDelta::seconds(2), TimeDelta::minutes(1));
        assert_eq!(polls_until_timeout(poll, timeout), 24);
        let most = max_batches(poll, timeout);
        assert_eq!(most, (HISTORY_BUDGET - 34) / (11 + 9 * 24));
        assert!(worst_case_events(most, poll, timeout) <= HISTORY_BUDGET);
        assert!(worst_case_events(most + 1, poll, timeout) > HISTORY_BUDGET);
        assert!(worst_case_events(13, poll, timeout) <= HISTORY_BUDGET / 6);
        assert_eq!(max_batches(TimeDelta::zero(), timeout), 0);
    }

    #[test]
    fn the_default_night_fits_with_room() {
        // 00:00-06:00 every 10 minutes: 36 batches; 60 s polls, 30-minute timeout.
        let polls = polls_until_timeout(TimeDelta::seconds(60), TimeDelta::minutes(30));
        assert_eq!(
            polls, 24,
            "20 polls in the first 20 minutes, then 4 of up to 3 minutes"
        );
        let events = worst_case_events(36, TimeDelta::seconds(60), TimeDelta::minutes(30));
        assert_eq!(events, 34 + 36 * (11 + 9 * 24));
        assert!(events <= HISTORY_BUDGET / 2, "{events}");
    }

    #[test]
    fn the_worst_settings_the_configuration_accepts_do_not_fit() {
        // A 24-hour window of 1-minute batches, 720-minute timeouts, 1-second polls.
        let events = worst_case_events(1440, TimeDelta::seconds(1), TimeDelta::minutes(720));
        assert!(events > HISTORY_LIMIT, "{events}");
    }

    proptest::proptest! {
        /// Any interval and timeout the configuration accepts gives a finite, monotone count.
        #[test]
        fn polls_are_finite_and_grow_with_the_timeout(
            interval in 1i64..=3600,
            timeout in 1i64..=720,
        ) {
            let i = TimeDelta::seconds(interval);
            let a = polls_until_timeout(i, TimeDelta::minutes(timeout));
            let b = polls_until_timeout(i, TimeDelta::minutes(timeout + 1));
            proptest::prop_assert!(a >= 1 && a <= b);
            proptest::prop_assert!(a <= (timeout as u64 * 60).div_ceil(interval as u64) + 1);
        }
    }
}
