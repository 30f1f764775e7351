//! The restart window in an IANA timezone, and the night's date (docs/design.md 3.6).
//!
//! A window is two wall-clock times in a timezone, e.g. 00:00-06:00 Europe/Madrid. When the
//! end is not after the start the window crosses midnight (22:00-04:00). The night's date is the
//! local date at the window's start.
//!
//! DST: a wall-clock time that does not exist on a spring-forward night (02:30 in Madrid on the
//! last Sunday of March) moves to the first instant after the gap; a time that happens twice on
//! a fall-back night is taken at its first occurrence. The window is then an hour shorter or
//! longer in real time, which the planner sees as fewer or more batch slots.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("the window starts and ends at the same time ({0}); give two different times")]
    Empty(NaiveTime),
    #[error("{0:?} is not a time of day; expected HH:MM, e.g. 00:00 or 06:30")]
    Time(String),
    #[error("{0:?} is not an IANA timezone, e.g. Europe/Madrid or UTC")]
    Timezone(String),
}

/// Parses `HH:MM` (or `HH:MM:SS`).
pub fn parse_time_of_day(s: &str) -> Result<NaiveTime, WindowError> {
    let t = s.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| WindowError::Time(s.to_owned()))
}

/// Parses an IANA timezone name.
pub fn parse_timezone(s: &str) -> Result<Tz, WindowError> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| WindowError::Timezone(s.to_owned()))
}

/// The nightly restart window: wall-clock start and end in a timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartWindow {
    start: NaiveTime,
    end: NaiveTime,
    tz: Tz,
}

/// One night's window as instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightWindow {
    pub night: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl NightWindow {
    pub fn length(&self) -> TimeDelta {
        self.end - self.start
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

impl RestartWindow {
    pub fn new(start: NaiveTime, end: NaiveTime, tz: Tz) -> Result<Self, WindowError> {
        if start == end {
            return Err(WindowError::Empty(start));
        }
        Ok(Self { start, end, tz })
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// The window of the night dated `night` (the local date at its start).
    pub fn night(&self, night: NaiveDate) -> NightWindow {
        let end_date = if self.crosses_midnight() {
            night.succ_opt().unwrap_or(night)
        } else {
            night
        };
        NightWindow {
            night,
            start: self.resolve(night, self.start),
            end: self.resolve(end_date, self.end),
        }
    }

    /// The night in progress at `now`, or, between windows, the next one to begin.
    ///
    /// Looks at three nights at most for any `now`; past the last night chrono can hold (see
    /// `latest()`) it returns that night's window although it has ended.
    pub fn night_at(&self, now: DateTime<Utc>) -> NightWindow {
        // Not `now.with_timezone(..).date_naive()`: it panics when the local time is past
        // chrono's last instant (east of UTC at the very end of the calendar).
        let utc = now.naive_utc();
        let offset = self.tz.offset_from_utc_datetime(&utc).fix();
        let local = utc
            .checked_add_offset(offset)
            .map_or(utc.date(), |t| t.date());
        let mut day = local.pred_opt().unwrap_or(local);
        loop {
            let w = self.night(day);
            match day.succ_opt() {
                Some(next) if now >= w.end && w.end < latest() => day = next,
                _ => return w,
            }
        }
    }

    /// The instant of a wall-clock time on a local date, through DST gaps and overlaps,
    /// kept between `earliest()` and `latest()`.
    fn resolve(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let mut local = date.and_time(time);
        let mut found = None;
        // A gap lasts at most a few hours; step through it a minute at a time.
        for _ in 0..=24 * 60 {
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                found = Some(t.with_timezone(&Utc));
                break;
            }
            // At chrono's last minute there is nothing after the gap to step to.
            match local.checked_add_signed(TimeDelta::minutes(1)) {
                Some(next) => local = next,
                None => break,
            }
        }
        // None is unreachable for real timezones, except for a local time that has no UTC
        // instant at the very ends of chrono's range: read the time as UTC then.
        found
            .unwrap_or_else(|| Utc.from_utc_datetime(&date.and_time(time)))
            .clamp(earliest(), latest())
    }
}

/// How far from chrono's limits a night's instants are kept, so that adding a restart timeout,
/// batch offsets or a cooldown to them never overflows.
const MARGIN_DAYS: i64 = 4_000;

/// The earliest instant of any [`NightWindow`]: 4,000 days after the first one chrono knows.
fn earliest() -> DateTime<Utc> {
    DateTime::<Utc>::MIN_UTC
        .checked_add_signed(TimeDelta::days(MARGIN_DAYS))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest instant of any [`NightWindow`]: 4,000 days before the last one chrono knows.
/// Nights that far out (year 262,131 and later) are nonsense, but must not panic.
fn latest() -> DateTime<Utc> {
    DateTime::<Utc>::MAX_UTC
        .checked_sub_signed(TimeDelta::days(MARGIN_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl fmt::Display for RestartWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} {}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M"),
            self.tz
        )
    }
}

/// The years a night named in an event may fall in. A date chrono can hold but no night will
/// ever be (`+262142-12-31`) would be accepted by the handlers and, for instance, hold back
/// every owner notice after it: refused as bad input instead.
pub const NIGHT_YEARS: std::ops::RangeInclusive<i32> = 2000..=2999;

/// Deserializes a night (`YYYY-MM-DD`) within [`NIGHT_YEARS`].
pub fn deserialize_night<'de, D>(d: D) -> Result<NaiveDate, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use chrono::Datelike;
    let night = <NaiveDate as serde::Deserialize>::deserialize(d)?;
    if NIGHT_YEARS.contains(&night.year()) {
        Ok(night)
    } else {
        Err(serde::de::Error::custom(format!(
            "{night} is not a night this orchestrator runs (years {} to {})",
            NIGHT_YEARS.start(),
            NIGHT_YEARS.end()
        )))
    }
}

/// [`deserialize_night`] for an optional night (absent or `null`: `None`).
pub fn deserialize_optional_night<'de, D>(d: D) -> Result<Option<NaiveDate>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    struct Night(#[serde(deserialize_with = "deserialize_night")] NaiveDate);
    Ok(<Option<Night> as serde::Deserialize>::deserialize(d)?.map(|Night(n)| n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};
    use proptest::prelude::*;

    /// How an error message quotes its input.
    fn quote(s: &str) -> String {
        format!("{s:?}")
    }

    fn window(start: &str, end: &str, tz: &str) -> RestartWindow {
        RestartWindow::new(
            parse_time_of_day(start).unwrap(),
            parse_time_of_day(end).unwrap(),
            parse_timezone(tz).unwrap(),
        )
        .unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn utc_window_is_six_hours() {
        let w = window("00:00", "06:00", "UTC").night(date(2026, 11, 22));
        assert_eq!(w.start, utc("2026-11-22T00:00:00Z"));
        assert_eq!(w.end, utc("2026-11-22T06:00:00Z"));
    }

    #[test]
    fn madrid_spring_forward_night_is_an_hour_shorter() {
        // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST.
        let w = window("00:00", "06:00", "Europe/Madrid").night(date(2026, 3, 29));
        assert_eq!(w.start, utc("2026-03-28T23:00:00Z"));
        assert_eq!(w.end, utc("2026-03-29T04:00:00Z"));
        assert_eq!(w.length(), TimeDelta::hours(5));
    }

    #[test]
    fn madrid_fall_back_night_is_an_hour_longer() {
        // 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET.
        let w = window("00:00", "06:00", "Europe/Madrid").night(date(2026, 10, 25));
        assert_eq!(w.start, utc("2026-10-24T22:00:00Z"));
        assert_eq!(w.end, utc("2026-10-25T05:00:00Z"));
        assert_eq!(w.length(), TimeDelta::hours(7));
    }

    #[test]
    fn a_time_inside_the_spring_gap_moves_past_it() {
        // 02:30 does not exist in Madrid on 2026-03-29; the window starts when 03:00 CEST does.
        let w = window("02:30", "05:00", "Europe/Madrid").night(date(2026, 3, 29));
        assert_eq!(w.start, utc("2026-03-29T01:00:00Z"));
        assert_eq!(w.end, utc("2026-03-29T03:00:00Z"));
    }

    #[test]
    fn a_repeated_fall_back_time_is_taken_at_its_first_occurrence() {
        // 02:30 happens twice in Madrid on 2026-10-25: first in CEST (00:30Z).
        let w = window("02:30", "05:00", "Europe/Madrid").night(date(2026, 10, 25));
        assert_eq!(w.start, utc("2026-10-25T00:30:00Z"));
        assert_eq!(w.end, utc("2026-10-25T04:00:00Z"));
    }

    #[test]
    fn new_york_window_crossing_midnight_on_fall_back() {
        // 2026-11-01 02:00 EDT -> 01:00 EST. Window 22:00-04:00 of night 2026-10-31.
        let w = window("22:00", "04:00", "America/New_York").night(date(2026, 10, 31));
        assert_eq!(w.night, date(2026, 10, 31));
        assert_eq!(w.start, utc("2026-11-01T02:00:00Z"));
        assert_eq!(w.end, utc("2026-11-01T09:00:00Z"));
        assert_eq!(w.length(), TimeDelta::hours(7));
    }

    #[test]
    fn new_york_spring_forward_crossing_midnight() {
        // 2026-03-08 02:00 EST -> 03:00 EDT.
        let w = window("23:00", "05:00", "America/New_York").night(date(2026, 3, 7));
        assert_eq!(w.start, utc("2026-03-08T04:00:00Z"));
        assert_eq!(w.end, utc("2026-03-08T09:00:00Z"));
        assert_eq!(w.length(), TimeDelta::hours(5));
    }

    #[test]
    fn bogota_has_no_dst_all_year() {
        let rw = window("00:00", "06:00", "America/Bogota");
        for (m, d) in [(3, 29), (10, 25), (11, 1), (3, 8), (7, 1)] {
            let w = rw.night(date(2026, m, d));
            assert_eq!(w.length(), TimeDelta::hours(6));
            assert_eq!(w.start.time(), parse_time_of_day("05:00").unwrap());
        }
    }

    #[test]
    fn the_night_is_the_local_date_at_window_start() {
        let rw = window("22:00", "04:00", "Europe/Madrid");
        // 01:30 local on the 22nd belongs to the night that began on the 21st.
        let w = rw.night_at(utc("2026-11-22T00:30:00Z"));
        assert_eq!(w.night, date(2026, 11, 21));
        // After the window ends, the next night is the one starting that evening.
        let w = rw.night_at(utc("2026-11-22T12:00:00Z"));
        assert_eq!(w.night, date(2026, 11, 22));
        // A schedule that fires a few minutes early still gets tonight.
        let rw = window("00:00", "06:00", "Europe/Madrid");
        let w = rw.night_at(utc("2026-11-21T22:55:00Z"));
        assert_eq!(w.night, date(2026, 11, 22));
        assert!(!w.contains(utc("2026-11-21T22:55:00Z")));
    }

    #[test]
    fn bad_windows_are_refused_with_what_was_wrong() {
        let t = parse_time_of_day("01:00").unwrap();
        let err = RestartWindow::new(t, t, Tz::UTC).unwrap_err();
        assert!(err.to_string().contains("same time"));
        assert!(
            parse_time_of_day("25:00")
                .unwrap_err()
                .to_string()
                .contains("HH:MM")
        );
        assert!(
            parse_timezone("Mars/Olympus")
                .unwrap_err()
                .to_string()
                .contains("IANA")
        );
    }

    /// Any date chrono knows, the ends included.
    fn any_date() -> impl Strategy<Value = NaiveDate> {
        prop_oneof![
            1 => Just(NaiveDate::MIN),
            1 => Just(NaiveDate::MAX),
            8 => (NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce())
                .prop_map(|d| NaiveDate::from_num_days_from_ce_opt(d).unwrap()),
        ]
    }

    /// Any instant chrono knows, the ends included.
    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            1 => Just(DateTime::<Utc>::MIN_UTC),
            1 => Just(DateTime::<Utc>::MAX_UTC),
            8 => (DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
                .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        ]
    }

    fn any_tz() -> impl Strategy<Value = Tz> {
        prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec())
    }

    fn any_time() -> impl Strategy<Value = NaiveTime> {
        (0u32..86_400).prop_map(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap())
    }

    #[test]
    fn the_ends_of_the_calendar_do_not_panic() {
        let rw = window("22:00", "04:00", "Pacific/Kiritimati");
        for night in [NaiveDate::MIN, NaiveDate::MAX] {
            let w = rw.night(night);
            assert_eq!(w.night, night);
            // Whatever a handler adds to the window (timeout, batch offsets) stays in range.
            assert!(w.end.checked_add_signed(TimeDelta::days(3_650)).is_some());
            assert!(w.start.checked_sub_signed(TimeDelta::days(3_650)).is_some());
        }
        // Past the last night chrono can hold, the last one is returned, ended.
        let w = rw.night_at(DateTime::<Utc>::MAX_UTC);
        assert_eq!(w.end, latest());
        let w = window("00:00", "06:00", "America/Adak").night_at(DateTime::<Utc>::MIN_UTC);
        assert!(w.night <= NaiveDate::MIN.succ_opt().unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text for WINDOW_START / WINDOW_END / TIMEZONE (and their restartctl flags) is a
        /// value or an error that quotes it, never a panic.
        #[test]
        fn time_and_timezone_parsing_never_panics(s in any::<String>(), t in "\\PC*") {
            for input in [&s, &t] {
                match parse_time_of_day(input) {
                    Ok(time) => prop_assert_eq!(time.nanosecond(), 0),
                    Err(e) => prop_assert!(e.to_string().contains(&quote(input))),
                }
                if let Err(e) = parse_timezone(input) {
                    prop_assert!(e.to_string().contains(&quote(input)));
                }
            }
        }

        #[test]
        fn time_parsing_of_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = parse_time_of_day(&s);
            let _ = parse_timezone(&s);
        }

        #[test]
        fn every_valid_time_of_day_parses(h in 0u32..24, m in 0u32..60, pad in "[ \\t]{0,2}") {
            let t = parse_time_of_day(&format!("{pad}{h:02}:{m:02}{pad}")).unwrap();
            prop_assert_eq!(t, NaiveTime::from_hms_opt(h, m, 0).unwrap());
        }

        /// A night's date as an event gives it (`"night": "..."`): any text parses to a date
        /// or fails, and any date chrono accepts gives a window without panicking, with
        /// instants far enough from chrono's limits for the handlers' arithmetic.
        #[test]
        fn any_night_gives_a_window(
            text in "[+-]?[0-9]{1,7}-[0-9]{1,2}-[0-9]{1,2}|\\PC{0,12}",
            night in any_date(),
            tz in any_tz(),
            start in any_time(),
            end in any_time(),
        ) {
            prop_assume!(start != end);
            let rw = RestartWindow::new(start, end, tz).unwrap();
            let parsed = serde_json::from_value::<NaiveDate>(serde_json::json!(text)).ok();
            for night in [Some(night), parsed].into_iter().flatten() {
                let w = rw.night(night);
                prop_assert_eq!(w.night, night);
                prop_assert!(w.end.checked_add_signed(TimeDelta::days(3_650)).is_some());
                prop_assert!(w.start.checked_sub_signed(TimeDelta::days(3_650)).is_some());
                let _ = w.length();
            }
        }

        /// Any instant (a clock gone wrong included) gives a night and never loops forever.
        #[test]
        fn night_at_any_instant_ends(now in any_instant(), tz in any_tz(), start in any_time(), end in any_time()) {
            prop_assume!(start != end);
            let rw = RestartWindow::new(start, end, tz).unwrap();
            let w = rw.night_at(now);
            prop_assert!(now < w.end || w.night == NaiveDate::MAX || w.end == super::latest());
        }

        /// Whatever the timezone, the night at any instant is a window that has not ended,
        /// contains the instant or starts after it, and is between 0 and 25 hours long.
        #[test]
        fn night_at_is_consistent(
            secs in 1_700_000_000i64..1_900_000_000,
            sh in 0u32..24, sm in 0u32..60, eh in 0u32..24, em in 0u32..60,
            tz in prop::sample::select(vec!["UTC", "Europe/Madrid", "America/New_York",
                "America/Bogota", "Australia/Lord_Howe", "Asia/Kolkata"]),
        ) {
            let (s, e) = (NaiveTime::from_hms_opt(sh, sm, 0).unwrap(),
                          NaiveTime::from_hms_opt(eh, em, 0).unwrap());
            prop_assume!(s != e);
            let rw = RestartWindow::new(s, e, tz.parse().unwrap()).unwrap();
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let w = rw.night_at(now);
            prop_assert!(now < w.end);
            prop_assert!(w.length() > TimeDelta::zero());
            prop_assert!(w.length() <= TimeDelta::hours(25));
            // The night's date is the local date at the window's start.
            prop_assert_eq!(w.start.with_timezone(&rw.timezone()).date_naive(), w.night);
            // The previous night had ended by now, or `now` would belong to it.
            let prev = rw.night(w.night.pred_opt().unwrap());
            prop_assert!(prev.end <= now);
        }
    }

    #[test]
    fn a_night_far_outside_any_plausible_year_is_refused() {
        #[derive(Debug, serde::Deserialize)]
        struct E {
            #[serde(deserialize_with = "super::deserialize_night")]
            #[allow(dead_code)]
            night: NaiveDate,
            #[serde(default, deserialize_with = "super::deserialize_optional_night")]
            other: Option<NaiveDate>,
        }
        let ok: E = serde_json::from_value(serde_json::json!({"night": "2026-11-22"})).unwrap();
        assert_eq!(ok.other, None);
        for bad in ["+262142-12-31", "1970-01-01", "3000-01-01"] {
            let err = serde_json::from_value::<E>(serde_json::json!({"night": bad})).unwrap_err();
            assert!(err.to_string().contains("not a night"), "{bad}: {err}");
            let err = serde_json::from_value::<E>(
                serde_json::json!({"night": "2026-11-22", "other": bad}),
            )
            .unwrap_err();
            assert!(err.to_string().contains("not a night"), "{bad}: {err}");
        }
    }
}
