//! How a night is compressed into a few minutes.
//!
//! The configuration has minute granularity (`WINDOW_START`/`WINDOW_END` are `HH:MM`,
//! `BATCH_INTERVAL_MINUTES` and `RESTART_TIMEOUT_MINUTES` are whole minutes, at least 1), and
//! the state machine waits in real time (moto's Wait states sleep), so the local night runs on
//! the real clock with the smallest settings the configuration allows, and fleet-sim's
//! simulated clock runs faster so that ECS deployments fit them:
//!
//! | setting | production default | compressed |
//! |---|---|---|
//! | window | 00:00-06:00 | `ceil(N / 60)` minutes, starting at the minute boundary nearest to now (at most 30 s ago or ahead) |
//! | `BATCH_INTERVAL_MINUTES` | 10 | 1: the window holds `ceil(N / 60)` batches |
//! | `RESTART_TIMEOUT_MINUTES` | 30 | 1: the last batch starts one minute before the window ends, so a stuck deployment times out at its end |
//! | `POLL_INTERVAL_SECONDS` | 60 (1/30 of the timeout) | 2 (1/30 of the timeout) |
//! | fleet-sim `time_scale` | (1) | 30: one real minute stands for the production timeout of 30 minutes, so a 240-600 s deployment takes 8-20 s, always inside the 1-minute timeout |
//!
//! The fleet file's own `time_scale` and `start_time` are replaced (the local run owns the
//! clocks: fleet-sim starts at the real now, as the functions' clock does).

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use serde::Serialize;

/// Simulated seconds per real second in fleet-sim.
pub const TIME_SCALE: f64 = 30.0;
/// The shortest window: one minute (one batch).
pub const MIN_WINDOW_SECONDS: u64 = 60;
/// The longest window: 12 hours.
pub const MAX_WINDOW_SECONDS: u64 = 12 * 3600;

/// Where the window starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// At the minute boundary nearest to now.
    Nearest,
    /// At the start of the current minute: the night begins at once (tests); in the second
    /// half of the minute the window is a minute longer, so that it never ends within 30 s.
    CurrentMinute,
}

/// The compressed night's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compression {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub window_minutes: u32,
    pub batch_interval_minutes: u32,
    pub restart_timeout_minutes: u32,
    pub poll_interval_seconds: u32,
    pub time_scale: f64,
}

impl Compression {
    /// The window of `window_seconds` around `now`.
    pub fn new(window_seconds: u64, now: DateTime<Utc>, align: Align) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (MIN_WINDOW_SECONDS..=MAX_WINDOW_SECONDS).contains(&window_seconds),
            "--window-seconds {window_seconds} is out of range: give {MIN_WINDOW_SECONDS} to \
             {MAX_WINDOW_SECONDS} (the window has minute granularity and a restart times out \
             after at least 1 minute, so a night needs at least one minute; at most 12 hours)"
        );
        let minute = TimeDelta::minutes(1);
        let floor = now.duration_trunc(minute)?;
        let late = now - floor >= TimeDelta::seconds(30);
        let mut window_minutes = u32::try_from(window_seconds.div_ceil(60))?;
        let window_start = match align {
            Align::Nearest if late => floor + minute,
            Align::Nearest => floor,
            // The window must not end before inventory has run (it would take tomorrow's
            // night): late in the minute, it lasts a minute more.
            Align::CurrentMinute => {
                if late {
                    window_minutes += 1;
                }
                floor
            }
        };
        Ok(Compression {
            window_start,
            window_end: window_start + TimeDelta::minutes(i64::from(window_minutes)),
            window_minutes,
            batch_interval_minutes: 1,
            restart_timeout_minutes: 1,
            poll_interval_seconds: 2,
            time_scale: TIME_SCALE,
        })
    }

    /// A window of `batches` one-minute batches that all but the last have started already: it
    /// ends at the second minute boundary after `now`. Every batch but the last goes on at
    /// once, so a night of 200 batches runs in minutes; each batch still runs its restarts and
    /// its polls as in [`Compression::new`] (measurements of the history, `benches/`).
    pub fn started_long_ago(batches: u32, now: DateTime<Utc>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=720).contains(&batches),
            "a night of {batches} batches: give 1 to 720"
        );
        let minute = TimeDelta::minutes(1);
        let window_end = now.duration_trunc(minute)? + minute * 2;
        Ok(Compression {
            window_start: window_end - minute * i32::try_from(batches)?,
            window_end,
            window_minutes: batches,
            batch_interval_minutes: 1,
            restart_timeout_minutes: 1,
            poll_interval_seconds: 2,
            time_scale: TIME_SCALE,
        })
    }

    /// The configuration variables this compression sets (UTC window).
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            (
                "WINDOW_START",
                self.window_start.format("%H:%M").to_string(),
            ),
            ("WINDOW_END", self.window_end.format("%H:%M").to_string()),
            ("TIMEZONE", "UTC".to_owned()),
            (
                "BATCH_INTERVAL_MINUTES",
                self.batch_interval_minutes.to_string(),
            ),
            (
                "RESTART_TIMEOUT_MINUTES",
                self.restart_timeout_minutes.to_string(),
            ),
            (
                "POLL_INTERVAL_SECONDS",
                self.poll_interval_seconds.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The names of the variables [`Compression::vars`] sets.
    pub const VARS: [&'static str; 6] = [
        "WINDOW_START",
        "WINDOW_END",
        "TIMEZONE",
        "BATCH_INTERVAL_MINUTES",
        "RESTART_TIMEOUT_MINUTES",
        "POLL_INTERVAL_SECONDS",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_window_starts_at_the_nearest_minute_and_lasts_whole_minutes() {
        let c = Compression::new(150, at("2026-12-01T23:58:20Z"), Align::Nearest).unwrap();
        assert_eq!(c.window_start, at("2026-12-01T23:58:00Z"));
        assert_eq!(c.window_end, at("2026-12-02T00:01:00Z"));
        assert_eq!(c.window_minutes, 3);
        let vars = c.vars();
        assert!(vars.contains(&("WINDOW_START".into(), "23:58".into())));
        assert!(vars.contains(&("WINDOW_END".into(), "00:01".into())));

        let c = Compression::new(60, at("2026-12-01T10:00:45Z"), Align::Nearest).unwrap();
        assert_eq!(c.window_start, at("2026-12-01T10:01:00Z"));
        let c = Compression::new(60, at("2026-12-01T10:00:45Z"), Align::CurrentMinute).unwrap();
        assert_eq!(c.window_start, at("2026-12-01T10:00:00Z"));
        assert_eq!(c.window_end, at("2026-12-01T10:02:00Z"));
        let c = Compression::new(60, at("2026-12-01T10:00:10Z"), Align::CurrentMinute).unwrap();
        assert_eq!(c.window_end, at("2026-12-01T10:01:00Z"));
    }

    #[test]
    fn too_short_or_too_long_windows_are_refused_with_the_range() {
        let e = Compression::new(59, Utc::now(), Align::Nearest).unwrap_err();
        assert!(e.to_string().contains("give 60 to 43200"), "{e}");
        assert!(Compression::new(43_201, Utc::now(), Align::Nearest).is_err());
    }
}
