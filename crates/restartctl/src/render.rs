//! Output shared by the commands: tables (comfy-table, Markdown-style so they paste into
//! tickets), JSON documents, times in the window's timezone and in UTC.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// A table with a header, laid out the same whatever the terminal's width.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    t
}

/// Prints `value` as one pretty JSON document.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Whether `t` has a local time in `tz` that chrono can hold: not within a day of the end of
/// its calendar. Formatting or changing a local time that does not panics.
pub fn has_local_time(t: DateTime<Utc>, tz: Tz) -> bool {
    let utc = t.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
        .is_some()
}

/// `2026-11-22 01:10 CET` (in UTC, `2026-11-22 00:10 UTC`, for an instant at the end of the
/// calendar that has no local time).
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    if has_local_time(t, tz) {
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// `2026-11-22 00:10Z`.
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%MZ").to_string()
}

/// `2026-11-22T00:10:42Z`.
pub fn utc_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `7m 05s`, `42s`, `1h 02m`.
pub fn duration(seconds: u32) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// An optional value, or `-`.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        let t: DateTime<Utc> = "2026-11-22T00:10:42Z".parse().unwrap();
        assert_eq!(local(t, chrono_tz::Europe::Madrid), "2026-11-22 01:10 CET");
        assert_eq!(utc(t), "2026-11-22 00:10Z");
        assert_eq!(utc_seconds(t), "2026-11-22T00:10:42Z");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(425), "7m 05s");
        assert_eq!(duration(3720), "1h 02m");
        assert_eq!(or_dash(None::<u32>), "-");
    }
}
