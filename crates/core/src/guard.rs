//! What holds the night's restarts back besides the window, the kill switch and the circuit
//! breaker (docs/design.md 3.3): a change freeze (the SSM Change Calendar `CHANGE_CALENDAR`
//! CLOSED) and blocking alarms (CloudWatch alarms in ALARM whose names start with
//! `BLOCKING_ALARM_PREFIX`, in the hub or in a service's member account and region).
//!
//! A freeze ends the planned restarts it meets (`skipped/change_freeze`); a blocking alarm, or
//! a guard that cannot be read, holds them: they stay planned and the next poll looks again, so
//! a hold ends by itself when the alarm clears, and the window's end ends what it still held
//! (`skipped/window_closed`, the hold named in the detail). No guard ever lets a restart through
//! that it could not check.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::eligibility::SkipReason;
use crate::ids::AccountId;
use crate::night::NightRecord;
use crate::outcome::NightState;
use crate::ports::ControlError;

/// `GetCalendarState`'s answer, in domain words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarReading {
    /// CLOSED: a change freeze.
    pub closed: bool,
    /// When the calendar's state changes next, when SSM says.
    pub next_transition: Option<DateTime<Utc>>,
}

/// An alarm in ALARM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringAlarm {
    pub name: String,
    /// When it went into ALARM (`StateUpdatedTimestamp`).
    pub since: Option<DateTime<Utc>>,
}

/// Where alarms are looked for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlarmScope {
    /// The hub account, in its own region: a firing alarm holds the whole night.
    Hub,
    /// A member account and region, through the night's member role: a firing alarm holds that
    /// account's restarts in that region.
    Member { account: AccountId, region: String },
}

impl fmt::Display for AlarmScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hub => f.write_str("the hub account"),
            Self::Member { account, region } => write!(f, "account {account} ({region})"),
        }
    }
}

/// Which alarms are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmQuery {
    /// Every alarm whose name starts with it (`BLOCKING_ALARM_PREFIX`).
    Prefix(String),
    /// These alarms (a service's deployment alarms, `BLOCK_ON_SERVICE_ALARMS`).
    Names(Vec<String>),
}

/// The detail of a restart skipped because its own deployment alarms fire.
pub fn service_alarm_detail(alarms: &[FiringAlarm]) -> String {
    let names: Vec<&str> = alarms.iter().map(|a| a.name.as_str()).collect();
    format!(
        "deployment alarm(s) in ALARM at the live check: {} (BLOCK_ON_SERVICE_ALARMS)",
        names.join(", ")
    )
}

/// The future every [`Guards`] method answers with.
pub type GuardFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ControlError>> + Send + 'a>>;

/// Reads the guards: the hub's change calendar, and alarms in the hub or a member account.
/// Object-safe (the restarter holds it as `Arc<dyn Guards>`, as it holds its clock).
pub trait Guards: Send + Sync + fmt::Debug {
    /// `GetCalendarState` of `calendar` (a name or an ARN) now.
    fn calendar_state<'a>(&'a self, calendar: &'a str) -> GuardFuture<'a, CalendarReading>;

    /// `DescribeAlarms` of the alarms `query` names that are in ALARM, in `scope`.
    fn firing_alarms<'a>(
        &'a self,
        scope: &'a AlarmScope,
        query: &'a AlarmQuery,
    ) -> GuardFuture<'a, Vec<FiringAlarm>>;
}

/// Guards that find nothing to hold: an open calendar and no alarm in ALARM. For handlers
/// configured without `CHANGE_CALENDAR` and `BLOCKING_ALARM_PREFIX`, which never ask.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGuards;

impl Guards for NoGuards {
    fn calendar_state<'a>(&'a self, _: &'a str) -> GuardFuture<'a, CalendarReading> {
        Box::pin(std::future::ready(Ok(CalendarReading {
            closed: false,
            next_transition: None,
        })))
    }

    fn firing_alarms<'a>(
        &'a self,
        _: &'a AlarmScope,
        _: &'a AlarmQuery,
    ) -> GuardFuture<'a, Vec<FiringAlarm>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

/// The detail of a restart ended by a change freeze.
pub fn freeze_detail(calendar: &str, reading: &CalendarReading) -> String {
    match reading.next_transition {
        Some(at) => format!(
            "change calendar {calendar} is CLOSED (a change freeze) until {}: no restart starts while it is",
            at.to_rfc3339()
        ),
        None => format!(
            "change calendar {calendar} is CLOSED (a change freeze): no restart starts while it is"
        ),
    }
}

/// Why restarts in `scope` are held by `alarms` (at least one).
pub fn alarm_hold(scope: &AlarmScope, alarms: &[FiringAlarm]) -> String {
    let names: Vec<String> = alarms
        .iter()
        .map(|a| match a.since {
            Some(t) => format!("{} (in ALARM since {})", a.name, t.to_rfc3339()),
            None => a.name.clone(),
        })
        .collect();
    let what = if alarms.len() == 1 {
        "blocking alarm"
    } else {
        "blocking alarms"
    };
    format!("held by {what} {} in {scope}", names.join(", "))
}

/// Why restarts are held because the calendar could not be read.
pub fn unreadable_calendar(calendar: &str, error: &ControlError) -> String {
    format!(
        "held: change calendar {calendar} could not be read ({error}); the night never restarts \
         through a freeze it cannot see (check CHANGE_CALENDAR and ssm:GetCalendarState)"
    )
}

/// Why restarts in `scope` are held because its alarms could not be read.
pub fn unreadable_alarms(scope: &AlarmScope, error: &ControlError) -> String {
    format!(
        "held: the blocking alarms of {scope} could not be read ({error}); no restart starts \
         there until they can be (check cloudwatch:DescribeAlarms)"
    )
}

/// How the detail of a restart the window's end found held begins.
const WINDOW_HELD: &str = "the window ended with this restart ";
/// How the detail of a restart the window's end found in a change freeze begins.
const WINDOW_FROZEN: &str = "the window ended during a change freeze: ";

/// The detail of a planned restart the window's end closed: what held it, if anything did (a
/// freeze, else the hold of its account or of the night).
pub fn window_closed_detail(freeze: Option<&str>, hold: Option<&str>) -> Option<String> {
    match (freeze, hold) {
        (Some(freeze), _) => Some(format!("{WINDOW_FROZEN}{freeze}")),
        (None, Some(hold)) => Some(format!("{WINDOW_HELD}{hold}")),
        (None, None) => None,
    }
}

/// A hold the restarter met during a night: what held restarts (a blocking alarm, or a guard
/// that could not be read), where, and the first and last invocation that met it. Kept in the
/// table, one item per hold and night, so the summary can say how long each held the night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSeen {
    /// The alarm's name, or the guard that could not be read.
    pub what: String,
    /// Where: [`AlarmScope`]'s words (`the hub account`, `account 1111… (eu-west-1)`).
    pub scope: String,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl HoldSeen {
    /// How long it held, at least: from the first to the last invocation that met it.
    pub fn held_for(&self) -> chrono::TimeDelta {
        self.last - self.first
    }
}

/// What the guards did to a night: the restarts a change freeze ended and those the window's
/// end found held (read from the records, each counted by its detail, which names the calendar
/// and until when, or the alarm, where, and since when), and every hold met during the night
/// with how long it held (from the table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightHolds {
    /// `skipped/change_freeze`, by detail.
    pub frozen: BTreeMap<String, u64>,
    /// `skipped/window_closed` that a hold or a freeze kept waiting, by detail.
    pub held: BTreeMap<String, u64>,
    /// Every hold met during the night.
    #[serde(default)]
    pub seen: Vec<HoldSeen>,
}

impl NightHolds {
    /// With the holds the table kept (`RestartStore::holds_seen`).
    pub fn with_seen(mut self, mut seen: Vec<HoldSeen>) -> Self {
        seen.sort_by(|a, b| (a.first, &a.scope, &a.what).cmp(&(b.first, &b.scope, &b.what)));
        self.seen = seen;
        self
    }

    pub fn of<'a>(records: impl IntoIterator<Item = &'a NightRecord>) -> Self {
        let mut holds = Self::default();
        for r in records {
            if r.state != NightState::Skipped {
                continue;
            }
            let detail = r.detail.clone().unwrap_or_default();
            match r.skip_reason {
                Some(SkipReason::ChangeFreeze) => {
                    *holds.frozen.entry(detail).or_default() += 1;
                }
                Some(SkipReason::WindowClosed)
                    if detail.starts_with(WINDOW_HELD) || detail.starts_with(WINDOW_FROZEN) =>
                {
                    *holds.held.entry(detail).or_default() += 1;
                }
                _ => {}
            }
        }
        holds
    }

    pub fn is_empty(&self) -> bool {
        self.frozen.is_empty() && self.held.is_empty() && self.seen.is_empty()
    }

    /// Lines for on-call (the summary, `restartctl status`): at most `max` details of each
    /// kind, the rest counted.
    pub fn lines(&self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (title, by_detail) in [
            ("Change freeze: planned restarts not started", &self.frozen),
            (
                "Held until the window's end (blocking alarms, unreadable guards)",
                &self.held,
            ),
        ] {
            if by_detail.is_empty() {
                continue;
            }
            let total: u64 = by_detail.values().sum();
            out.push(format!("{title}: {total}"));
            for (detail, n) in by_detail.iter().take(max) {
                out.push(format!("  {n:>6}  {detail}"));
            }
            if by_detail.len() > max {
                out.push(format!("  ... and {} more", by_detail.len() - max));
            }
        }
        if !self.seen.is_empty() {
            out.push(format!("Holds met during the night: {}", self.seen.len()));
            for h in self.seen.iter().take(max) {
                out.push(format!(
                    "  {} in {}: held from {} to {} (at least {} min)",
                    h.what,
                    h.scope,
                    h.first.format("%Y-%m-%dT%H:%M:%SZ"),
                    h.last.format("%Y-%m-%dT%H:%M:%SZ"),
                    h.held_for().num_minutes()
                ));
            }
            if self.seen.len() > max {
                out.push(format!("  ... and {} more", self.seen.len() - max));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn holds_name_the_alarm_its_place_and_time() {
        let scope = AlarmScope::Member {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
        };
        let since = Utc.with_ymd_and_hms(2026, 12, 7, 1, 30, 0).unwrap();
        let one = alarm_hold(
            &scope,
            &[FiringAlarm {
                name: "ecs-restart-block-db".into(),
                since: Some(since),
            }],
        );
        assert_eq!(
            one,
            "held by blocking alarm ecs-restart-block-db (in ALARM since 2026-12-07T01:30:00+00:00) in account 111111111111 (eu-west-1)"
        );
        let two = alarm_hold(
            &AlarmScope::Hub,
            &[
                FiringAlarm {
                    name: "a".into(),
                    since: None,
                },
                FiringAlarm {
                    name: "b".into(),
                    since: None,
                },
            ],
        );
        assert_eq!(two, "held by blocking alarms a, b in the hub account");
    }

    #[test]
    fn a_freeze_says_until_when_if_known() {
        let until = Utc.with_ymd_and_hms(2026, 12, 7, 4, 0, 0).unwrap();
        let d = freeze_detail(
            "peak",
            &CalendarReading {
                closed: true,
                next_transition: Some(until),
            },
        );
        assert!(d.contains("peak is CLOSED") && d.contains("2026-12-07T04:00:00+00:00"));
        let d = freeze_detail(
            "peak",
            &CalendarReading {
                closed: true,
                next_transition: None,
            },
        );
        assert!(d.contains("peak is CLOSED") && !d.contains("until"));
    }

    fn skipped(service: &str, reason: SkipReason, detail: Option<&str>) -> NightRecord {
        let id = crate::ids::ServiceId {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: "app".into(),
            service: service.into(),
        };
        let arn = id.arn("aws");
        NightRecord {
            skip_reason: Some(reason),
            detail: detail.map(str::to_owned),
            ..NightRecord::unbatched(id, arn, "2026-12-07".parse().unwrap(), "team".into())
        }
    }

    #[test]
    fn a_nights_holds_are_counted_by_detail_from_its_records() {
        let freeze =
            "change calendar peak is CLOSED (a change freeze): no restart starts while it is";
        let hold = alarm_hold(
            &AlarmScope::Hub,
            &[FiringAlarm {
                name: "ecs-restart-block-incident".into(),
                since: None,
            }],
        );
        let held = window_closed_detail(None, Some(&hold));
        let frozen_at_end = window_closed_detail(Some(freeze), Some(&hold));
        let records = [
            skipped("a", SkipReason::ChangeFreeze, Some(freeze)),
            skipped("b", SkipReason::ChangeFreeze, Some(freeze)),
            skipped("c", SkipReason::WindowClosed, held.as_deref()),
            skipped("d", SkipReason::WindowClosed, frozen_at_end.as_deref()),
            // Closed by a late night, not a hold: not listed.
            skipped("e", SkipReason::WindowClosed, None),
            skipped("f", SkipReason::OptedOut, None),
        ];
        let holds = NightHolds::of(&records);
        assert_eq!(holds.frozen, [(freeze.to_owned(), 2)].into());
        assert_eq!(holds.held.values().sum::<u64>(), 2);
        assert!(frozen_at_end.unwrap().contains("during a change freeze"));
        let lines = holds.lines(20);
        assert_eq!(lines[0], "Change freeze: planned restarts not started: 2");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("ecs-restart-block-incident"))
        );
        // Lists are bounded: the rest is counted.
        let many: Vec<NightRecord> = (0..30)
            .map(|i| {
                skipped(
                    &format!("s{i}"),
                    SkipReason::ChangeFreeze,
                    Some(&format!("calendar {i}")),
                )
            })
            .collect();
        let lines = NightHolds::of(&many).lines(5);
        assert_eq!(lines.len(), 1 + 5 + 1);
        assert_eq!(lines[6], "  ... and 25 more");
        assert!(NightHolds::of(&records[4..]).is_empty());
    }
}
