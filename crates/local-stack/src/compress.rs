//! How a night is compressed into a few minutes.
//!
//! The state machine waits in real time (moto's Wait states sleep), so the local night runs on
//! the real clock, and fleet-sim's simulated clock runs faster so that ECS deployments fit
//! the compressed settings. The window stays in whole minutes (`WINDOW_START`/`WINDOW_END` are
//! `HH:MM`) and the restart timeout at its minimum of one minute; the batches are 15 seconds
//! apart, through the local stack's own `LOCAL_BATCH_INTERVAL_SECONDS` (docs/design.md 3.9:
//! production configurations keep whole minutes), so that even a 4-minute night holds 13
//! batches, each with its own start time:
//!
//! | setting | production default | compressed (`--window-seconds N`) |
//! |---|---|---|
//! | window | 00:00-06:00 | `ceil(N / 60)` minutes, UTC, from the first minute boundary at least 30 s ahead (so that inventory and the plan are done before the first batch) |
//! | batch interval | `BATCH_INTERVAL_MINUTES=10` | `LOCAL_BATCH_INTERVAL_SECONDS=15`: `(window - 60 s) / 15 s + 1` batches (13 in 4 minutes); longer when that many batches could overflow the execution's history (`restart_core::limits::max_batches`): a multiple of 15 s |
//! | `RESTART_TIMEOUT_MINUTES` | 30 | 1: the last batch starts one minute before the window ends, so a stuck deployment times out at its end |
//! | `POLL_INTERVAL_SECONDS` | 60 (1/30 of the timeout) | 2 (1/30 of the timeout) |
//! | fleet-sim `time_scale` | (1) | 30: one real minute stands for the production timeout of 30 minutes, so a 240-600 s deployment takes 8-20 s, always inside the 1-minute timeout |
//!
//! Batches overlap (a batch's restarts run up to a minute, the next batch starts 15 s later),
//! as production's do when restarts outlast the interval: the per-cluster cap and the pacing
//! per account hold across them.
//!
//! The fleet file's own `time_scale` and `start_time` are replaced (the local run owns the
//! clocks: fleet-sim starts at the real now, as the functions' clock does).

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use restart_core::config::LOCAL_BATCH_INTERVAL_VAR;
use restart_core::limits;
use serde::Serialize;

/// Simulated seconds per real second in fleet-sim.
pub const TIME_SCALE: f64 = 30.0;
/// The shortest window: one minute (one batch).
pub const MIN_WINDOW_SECONDS: u64 = 60;
/// The longest window: 12 hours.
pub const MAX_WINDOW_SECONDS: u64 = 12 * 3600;
/// The batch interval of a compressed night, and the step of longer ones.
pub const BATCH_INTERVAL_SECONDS: u32 = 15;
/// The restart timeout: the configuration's minimum.
pub const RESTART_TIMEOUT_MINUTES: u32 = 1;
/// The poll interval: 1/30 of the timeout, as in production.
pub const POLL_INTERVAL_SECONDS: u32 = 2;
/// With [`Align::Ahead`], the window opens at least this long after now.
pub const LEAD_SECONDS: i64 = 30;

/// Where the window starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// At the first minute boundary at least [`LEAD_SECONDS`] from now: inventory and the plan
    /// run before the window opens, so that the first batches start at their own times.
    Ahead,
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
    /// Seconds between two batch starts (`LOCAL_BATCH_INTERVAL_SECONDS`).
    pub batch_interval_seconds: u32,
    /// The batches the window holds: the night's batch count when it has at least as many
    /// services (the planner's slots for restarts of up to the timeout).
    pub batches: u32,
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
            Align::Ahead => (now + TimeDelta::seconds(LEAD_SECONDS) - TimeDelta::nanoseconds(1))
                .duration_trunc(minute)?
                .checked_add_signed(minute)
                .ok_or_else(|| anyhow::anyhow!("no window can start after {now}"))?,
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
        Ok(Self::of(
            window_start,
            window_start + minute * i32::try_from(window_minutes)?,
            window_minutes,
        ))
    }

    /// A window of `batches` one-minute batches that all but the last few have started
    /// already: it ends at the fourth minute boundary after `now`, which leaves a loaded
    /// machine time to start the stack and take the inventory before the window closes. The
    /// batches that started go on at once, so a night of 200 batches runs in minutes; each batch still runs its restarts and
    /// its polls as in [`Compression::new`] (measurements of the history, `benches/`).
    pub fn started_long_ago(batches: u32, now: DateTime<Utc>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=720).contains(&batches),
            "a night of {batches} batches: give 1 to 720"
        );
        let minute = TimeDelta::minutes(1);
        let window_end = now.duration_trunc(minute)? + minute * 4;
        Ok(Compression {
            window_start: window_end - minute * i32::try_from(batches)?,
            window_end,
            window_minutes: batches,
            batch_interval_seconds: 60,
            batches,
            restart_timeout_minutes: RESTART_TIMEOUT_MINUTES,
            poll_interval_seconds: POLL_INTERVAL_SECONDS,
            time_scale: TIME_SCALE,
        })
    }

    /// The settings of a window: batches [`BATCH_INTERVAL_SECONDS`] apart, or further apart
    /// (in steps of that) when the window would otherwise hold more batches than the
    /// execution's history allows at the compressed poll interval and timeout.
    fn of(window_start: DateTime<Utc>, window_end: DateTime<Utc>, window_minutes: u32) -> Self {
        let timeout = i64::from(RESTART_TIMEOUT_MINUTES) * 60;
        // At least one minute long, so never shorter than the timeout.
        let room = u64::try_from((window_end - window_start).num_seconds() - timeout).unwrap_or(0);
        let most = limits::max_batches(
            TimeDelta::seconds(POLL_INTERVAL_SECONDS.into()),
            TimeDelta::seconds(timeout),
        )
        .max(2);
        let step = u64::from(BATCH_INTERVAL_SECONDS);
        let interval = room.div_ceil(most - 1).div_ceil(step).max(1) * step;
        let batches = room / interval + 1;
        Compression {
            window_start,
            window_end,
            window_minutes,
            batch_interval_seconds: u32::try_from(interval).unwrap_or(u32::MAX),
            batches: u32::try_from(batches).unwrap_or(u32::MAX),
            restart_timeout_minutes: RESTART_TIMEOUT_MINUTES,
            poll_interval_seconds: POLL_INTERVAL_SECONDS,
            time_scale: TIME_SCALE,
        }
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
                LOCAL_BATCH_INTERVAL_VAR,
                self.batch_interval_seconds.to_string(),
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

    /// The variables the compression owns: those [`Compression::vars`] sets, and
    /// `BATCH_INTERVAL_MINUTES`, which its `LOCAL_BATCH_INTERVAL_SECONDS` replaces (the
    /// configuration refuses both at once).
    pub const VARS: [&'static str; 7] = [
        "WINDOW_START",
        "WINDOW_END",
        "TIMEZONE",
        "BATCH_INTERVAL_MINUTES",
        LOCAL_BATCH_INTERVAL_VAR,
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
    fn ahead_the_window_opens_at_the_first_minute_at_least_30_s_away() {
        for (now, start) in [
            ("2026-12-01T10:00:00Z", "2026-12-01T10:01:00Z"),
            ("2026-12-01T10:00:29Z", "2026-12-01T10:01:00Z"),
            ("2026-12-01T10:00:30Z", "2026-12-01T10:01:00Z"),
            ("2026-12-01T10:00:31Z", "2026-12-01T10:02:00Z"),
            ("2026-12-01T23:59:50Z", "2026-12-02T00:01:00Z"),
        ] {
            let c = Compression::new(240, at(now), Align::Ahead).unwrap();
            assert_eq!(c.window_start, at(start), "{now}");
            assert_eq!(c.window_end - c.window_start, TimeDelta::minutes(4));
        }
    }

    /// The table of the module's documentation (and of the crate's README): batches 15 s
    /// apart, the last one a timeout before the window's end, and never more batches than the
    /// execution's history holds.
    #[test]
    fn the_compression_table() {
        let now = at("2026-12-01T10:00:10Z");
        let most = limits::max_batches(TimeDelta::seconds(2), TimeDelta::minutes(1));
        for (seconds, minutes, interval, batches) in [
            (60, 1, 15, 1),
            (61, 2, 15, 5),
            (120, 2, 15, 5),
            (180, 3, 15, 9),
            (240, 4, 15, 13),
            (300, 5, 15, 17),
            (1320, 22, 15, 85),
            (1380, 23, 30, 45),
            (3600, 60, 45, 79),
            (43_200, 720, 510, 85),
        ] {
            let c = Compression::new(seconds, now, Align::Nearest).unwrap();
            assert_eq!(
                (
                    c.window_minutes,
                    c.batch_interval_seconds,
                    c.batches,
                    c.restart_timeout_minutes,
                    c.poll_interval_seconds,
                    c.time_scale
                ),
                (minutes, interval, batches, 1, 2, 30.0),
                "--window-seconds {seconds}"
            );
            assert!(u64::from(c.batches) <= most, "{seconds}");
            // The last batch starts a restart timeout before the window's end, at the latest.
            let last = c.window_start
                + TimeDelta::seconds(
                    i64::from(c.batch_interval_seconds) * i64::from(c.batches - 1),
                );
            assert!(last + TimeDelta::minutes(1) <= c.window_end, "{seconds}");
            assert!(
                last + TimeDelta::minutes(1) + TimeDelta::seconds(c.batch_interval_seconds.into())
                    > c.window_end,
                "{seconds}: room for one more batch"
            );
        }
        // The demo's night (DEMO_WINDOW=240): at least 12 batches in at most 4 minutes.
        let demo = Compression::new(240, now, Align::Ahead).unwrap();
        assert!(demo.batches >= 12 && demo.window_minutes <= 4);
        // The planner, given the variables the functions get, plans the same batches.
        let config = restart_core::Config::from_vars(
            demo.vars().into_iter().chain(
                [
                    ("TABLE_NAME", "t"),
                    ("ACCOUNTS", "111111111111"),
                    ("REGIONS", "eu-west-1"),
                    ("MEMBER_ROLE_NAME", "r"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
            ),
        )
        .unwrap();
        assert_eq!(config.batch_interval, TimeDelta::seconds(15));
        let window = config.window.night_at(demo.window_start);
        assert_eq!(
            (window.start, window.end),
            (demo.window_start, demo.window_end)
        );
        let params = restart_core::planner::PlanParams {
            window,
            interval: config.batch_interval,
            default_duration: TimeDelta::minutes(10),
            timeout: config.restart_timeout,
        };
        assert_eq!(
            restart_core::planner::slots(&params, config.restart_timeout).unwrap(),
            demo.batches
        );
    }

    #[test]
    fn too_short_or_too_long_windows_are_refused_with_the_range() {
        let e = Compression::new(59, Utc::now(), Align::Nearest).unwrap_err();
        assert!(e.to_string().contains("give 60 to 43200"), "{e}");
        assert!(Compression::new(43_201, Utc::now(), Align::Nearest).is_err());
    }
}
