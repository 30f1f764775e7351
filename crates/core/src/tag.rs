//! The enrollment tag contract (docs/design.md 3.1).
//!
//! | tag value                         | state       |
//! |-----------------------------------|-------------|
//! | absent                            | `untagged`  |
//! | RFC 3339 timestamp                | `enrolled` (last verified restart) |
//! | empty or `enabled`                | `enrolled` (never restarted yet) |
//! | `disabled`                        | `opted_out` |
//! | `skip-until:YYYY-MM-DD`           | `snoozed` before that UTC date, `enrolled` from it on |
//! | anything else                     | `malformed` (restarted, owner told) |
//!
//! Keywords are matched case-insensitively and surrounding white space is ignored, because
//! people type tags by hand in the console. After a verified restart the orchestrator writes
//! [`restart_tag_value`]: the completion time in UTC with seconds precision.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Tags of a service or cluster, key to value.
pub type Tags = BTreeMap<String, String>;

/// The default enrollment tag key.
pub const DEFAULT_TAG_KEY: &str = "ecs_task_daily_restart";

const SNOOZE_PREFIX: &str = "skip-until:";

/// What the enrollment tag says about a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TagState {
    Untagged,
    Enrolled {
        /// The last verified restart, when the tag holds one.
        last_restart: Option<DateTime<Utc>>,
    },
    OptedOut,
    Snoozed {
        until: NaiveDate,
    },
    Malformed {
        value: String,
    },
}

/// The state's name alone, for counting and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagStateKind {
    Untagged,
    Enrolled,
    OptedOut,
    Snoozed,
    Malformed,
}

impl TagStateKind {
    pub const ALL: [TagStateKind; 5] = [
        Self::Untagged,
        Self::Enrolled,
        Self::OptedOut,
        Self::Snoozed,
        Self::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untagged => "untagged",
            Self::Enrolled => "enrolled",
            Self::OptedOut => "opted_out",
            Self::Snoozed => "snoozed",
            Self::Malformed => "malformed",
        }
    }
}

impl TagState {
    /// Reads the tag's value (`None` when the tag is absent) on the UTC date `today`.
    pub fn parse(value: Option<&str>, today: NaiveDate) -> Self {
        let Some(raw) = value else {
            return Self::Untagged;
        };
        let v = raw.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("enabled") {
            return Self::Enrolled { last_restart: None };
        }
        if v.eq_ignore_ascii_case("disabled") {
            return Self::OptedOut;
        }
        if let Some(date) = strip_prefix_ignore_ascii_case(v, SNOOZE_PREFIX) {
            return match NaiveDate::parse_from_str(date, "%Y-%m-%d") {
                Ok(until) if today < until => Self::Snoozed { until },
                Ok(_) => Self::Enrolled { last_restart: None },
                Err(_) => Self::Malformed {
                    value: raw.to_owned(),
                },
            };
        }
        match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Self::Enrolled {
                last_restart: Some(t.with_timezone(&Utc)),
            },
            Err(_) => Self::Malformed {
                value: raw.to_owned(),
            },
        }
    }

    /// Reads the enrollment tag `key` from a service's tags.
    pub fn from_tags(tags: &Tags, key: &str, today: NaiveDate) -> Self {
        Self::parse(tags.get(key).map(String::as_str), today)
    }

    pub fn kind(&self) -> TagStateKind {
        match self {
            Self::Untagged => TagStateKind::Untagged,
            Self::Enrolled { .. } => TagStateKind::Enrolled,
            Self::OptedOut => TagStateKind::OptedOut,
            Self::Snoozed { .. } => TagStateKind::Snoozed,
            Self::Malformed { .. } => TagStateKind::Malformed,
        }
    }

    /// The last verified restart the tag records, if any.
    pub fn last_restart(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Enrolled { last_restart } => *last_restart,
            _ => None,
        }
    }
}

/// `s` without `prefix` when it starts with it, ASCII case ignored. Splits only at a character
/// boundary, so a multi-byte character straddling the prefix's length is simply no match (tag
/// values are Unicode; slicing by bytes would panic on them).
fn strip_prefix_ignore_ascii_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, rest) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

/// The value written to the tag after a verified restart: RFC 3339, UTC, seconds precision.
pub fn restart_tag_value(completed_at: DateTime<Utc>) -> String {
    completed_at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn parse(v: Option<&str>) -> TagState {
        TagState::parse(v, today())
    }

    #[test]
    fn absent_tag_is_untagged() {
        assert_eq!(parse(None), TagState::Untagged);
    }

    #[test]
    fn timestamp_is_enrolled_with_last_restart() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 2, 41, 7).unwrap();
        assert_eq!(
            parse(Some("2026-11-22T02:41:07Z")),
            TagState::Enrolled {
                last_restart: Some(t)
            }
        );
        // Any RFC 3339 offset is the same instant, normalised to UTC.
        assert_eq!(
            parse(Some("2026-11-22T03:41:07+01:00")).last_restart(),
            Some(t)
        );
    }

    #[test]
    fn empty_or_enabled_is_enrolled_never_restarted() {
        for v in ["", "  ", "enabled", "Enabled", " ENABLED "] {
            assert_eq!(
                parse(Some(v)),
                TagState::Enrolled { last_restart: None },
                "{v:?}"
            );
        }
    }

    #[test]
    fn disabled_is_opted_out() {
        assert_eq!(parse(Some("disabled")), TagState::OptedOut);
        assert_eq!(parse(Some("Disabled")), TagState::OptedOut);
    }

    #[test]
    fn skip_until_is_snoozed_before_the_date_and_enrolled_from_it() {
        let until = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(
            parse(Some("skip-until:2026-11-23")),
            TagState::Snoozed { until }
        );
        assert_eq!(
            parse(Some("skip-until:2026-11-22")),
            TagState::Enrolled { last_restart: None }
        );
        assert_eq!(
            parse(Some("skip-until:2025-01-01")),
            TagState::Enrolled { last_restart: None }
        );
    }

    #[test]
    fn anything_else_is_malformed_and_keeps_the_raw_value() {
        for v in [
            "yes",
            "2026-11-22",
            "2026-11-22 02:41:07",
            "skip-until:tomorrow",
            "skip-until:2026-02-30",
            "skip-until:",
            "disabled please",
        ] {
            assert_eq!(
                parse(Some(v)),
                TagState::Malformed {
                    value: v.to_owned()
                },
                "{v:?}"
            );
        }
    }

    #[test]
    fn unicode_values_never_panic_and_are_malformed() {
        // Each has a multi-byte character across byte 11, the length of `skip-until:`.
        for v in [
            "pas-de-redémarrage",
            "skip-untilé2026-12-01",
            "再起動しないでください",
            "２０２６-１１-２２T０２:４１:０７Z",
            "skip-until:２０２６-１２-０１",
            "disabled🙂",
        ] {
            assert_eq!(
                parse(Some(v)),
                TagState::Malformed {
                    value: v.to_owned()
                },
                "{v:?}"
            );
        }
    }

    #[test]
    fn snooze_keyword_is_case_insensitive() {
        let until = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(
            parse(Some(" SKIP-UNTIL:2026-12-01 ")),
            TagState::Snoozed { until }
        );
    }

    proptest::proptest! {
        /// Any string: no panic, and only `malformed` keeps a value, which is the raw one.
        #[test]
        fn any_value_parses_without_panic(v in proptest::prelude::any::<String>()) {
            match parse(Some(&v)) {
                TagState::Malformed { value } => proptest::prop_assert_eq!(value, v),
                TagState::Untagged => proptest::prop_assert!(false, "a present tag is never untagged"),
                _ => {}
            }
        }

        /// Text shaped like the keywords, with arbitrary Unicode around and inside them.
        #[test]
        fn keyword_like_values_never_panic(
            head in "(?i)(skip-until:|skip-unti|enabled|disabled|)",
            tail in "\\PC{0,24}",
        ) {
            let v = format!("{head}{tail}");
            let _ = parse(Some(&v));
        }
    }

    #[test]
    fn restart_value_is_utc_seconds_and_parses_back() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 22, 2, 41, 7)
            .unwrap()
            .checked_add_signed(chrono::TimeDelta::milliseconds(789))
            .unwrap();
        let v = restart_tag_value(t);
        assert_eq!(v, "2026-11-22T02:41:07Z");
        assert_eq!(
            parse(Some(&v)).last_restart(),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 2, 41, 7).unwrap())
        );
    }

    #[test]
    fn reads_the_configured_key() {
        let mut tags = Tags::new();
        tags.insert("restart".into(), "disabled".into());
        assert_eq!(
            TagState::from_tags(&tags, "restart", today()),
            TagState::OptedOut
        );
        assert_eq!(
            TagState::from_tags(&tags, DEFAULT_TAG_KEY, today()),
            TagState::Untagged
        );
    }
}
