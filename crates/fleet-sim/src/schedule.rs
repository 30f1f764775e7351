//! States that follow timelines on the simulated clock: CloudWatch alarms and SSM change
//! calendars.
//!
//! Times in the spec are minutes after the simulator's start (its `start_time`, or the wall
//! clock at load), as `deployed_minutes_ago` counts minutes before it; they are turned into
//! simulated milliseconds once, when the world is built. Nothing ticks: a state is computed
//! from the timeline whenever it is read, so reads at any pace agree.
//!
//! - An alarm is in the state of the last timeline entry at or before now, since that entry's
//!   time; before its first entry it is INSUFFICIENT_DATA (as a new alarm is), since the start.
//! - A calendar is open, or closed, by its default, and the other way round during any of its
//!   events (`[from, until)`); several calendars together are OPEN only when every one is.

use crate::clock::MAX_MILLIS;
use crate::spec::{AlarmSpec, AlarmState, CalendarDefault, CalendarSpec};
use crate::world::Millis;

/// Milliseconds in a minute.
const MINUTE: Millis = 60_000;

/// The simulated time `minute` minutes after `start` (never later than [`MAX_MILLIS`]).
pub fn minute_at(start: Millis, minute: u32) -> Millis {
    start
        .saturating_add(Millis::from(minute) * MINUTE)
        .min(MAX_MILLIS)
}

/// The `StateReason` of a timeline entry without its own, as a threshold alarm words it.
pub fn default_reason(state: AlarmState) -> &'static str {
    match state {
        AlarmState::Ok => {
            "Threshold Crossed: 1 datapoint [0.0] was not greater than or equal to the threshold (1.0)."
        }
        AlarmState::Alarm => {
            "Threshold Crossed: 1 datapoint [1.0] was greater than or equal to the threshold (1.0)."
        }
        AlarmState::InsufficientData => "Insufficient Data: 1 datapoint was unknown.",
    }
}

/// The reason of an alarm before its first timeline entry.
pub const INITIAL_REASON: &str = "Unchecked: Initial alarm creation";

/// One state change of an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When (simulated ms).
    pub at: Millis,
    /// The state from then on.
    pub state: AlarmState,
    /// `StateReason` from then on.
    pub reason: String,
}

/// A CloudWatch metric alarm of one account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// `AlarmName`.
    pub name: String,
    /// `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`.
    pub arn: String,
    /// When it was created and last configured (the simulator's start).
    pub created_at: Millis,
    /// Its state changes, in increasing time.
    pub transitions: Vec<Transition>,
}

/// An alarm's state at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmStatus<'a> {
    /// `StateValue`.
    pub state: AlarmState,
    /// When the state began (`StateUpdatedTimestamp`).
    pub since: Millis,
    /// `StateReason`.
    pub reason: &'a str,
}

/// `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`.
pub fn alarm_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")
}

impl Alarm {
    /// The alarm a (validated) spec entry describes, in `account` and `region`, for a
    /// simulator started at `start`. An entry without states is OK from the start.
    pub fn from_spec(spec: &AlarmSpec, account: &str, region: &str, start: Millis) -> Self {
        let mut transitions: Vec<Transition> = spec
            .states
            .iter()
            .map(|s| Transition {
                at: minute_at(start, s.at_minute),
                state: s.state,
                reason: s
                    .reason
                    .clone()
                    .unwrap_or_else(|| default_reason(s.state).to_owned()),
            })
            .collect();
        if transitions.is_empty() {
            transitions.push(Transition {
                at: start,
                state: AlarmState::Ok,
                reason: default_reason(AlarmState::Ok).to_owned(),
            });
        }
        Self {
            name: spec.name.clone(),
            arn: alarm_arn(region, account, &spec.name),
            created_at: start,
            transitions,
        }
    }

    /// The state at `now`: the last transition at or before it, else INSUFFICIENT_DATA since
    /// the alarm's creation.
    pub fn status_at(&self, now: Millis) -> AlarmStatus<'_> {
        let n = self.transitions.partition_point(|t| t.at <= now);
        match n.checked_sub(1).and_then(|i| self.transitions.get(i)) {
            Some(t) => AlarmStatus {
                state: t.state,
                since: t.at,
                reason: &t.reason,
            },
            None => AlarmStatus {
                state: AlarmState::InsufficientData,
                since: self.created_at.min(now),
                reason: INITIAL_REASON,
            },
        }
    }
}

/// An event of a change calendar, `[from, until)` in simulated ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEvent {
    /// What it is.
    pub summary: String,
    /// Its start (included).
    pub from: Millis,
    /// Its end (excluded).
    pub until: Millis,
}

/// An SSM change calendar of the hub account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The document's name.
    pub name: String,
    /// `arn:aws:ssm:REGION:ACCOUNT:document/NAME`.
    pub arn: String,
    /// DEFAULT_OPEN (true) or DEFAULT_CLOSED.
    pub default_open: bool,
    /// Its events.
    pub events: Vec<CalendarEvent>,
}

/// `arn:aws:ssm:REGION:ACCOUNT:document/NAME`.
pub fn document_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:ssm:{region}:{account}:document/{name}")
}

impl Calendar {
    /// The calendar a (validated) spec entry describes, in `account` and `region`, for a
    /// simulator started at `start`.
    pub fn from_spec(spec: &CalendarSpec, account: &str, region: &str, start: Millis) -> Self {
        Self {
            name: spec.name.clone(),
            arn: document_arn(region, account, &spec.name),
            default_open: spec.default == CalendarDefault::DefaultOpen,
            events: spec
                .events
                .iter()
                .map(|e| CalendarEvent {
                    summary: e.summary.clone(),
                    from: minute_at(start, e.from_minute),
                    until: minute_at(start, e.until_minute),
                })
                .collect(),
        }
    }

    /// Whether the calendar is open at `at`.
    pub fn is_open_at(&self, at: Millis) -> bool {
        let in_event = self.events.iter().any(|e| e.from <= at && at < e.until);
        self.default_open != in_event
    }

    /// The times its state may change: every event's start and end.
    fn boundaries(&self) -> impl Iterator<Item = Millis> + '_ {
        self.events.iter().flat_map(|e| [e.from, e.until])
    }
}

/// Several calendars together at `at`, as GetCalendarState answers: OPEN (true) only when
/// every one is open, and the first later time when that changes, if it ever does.
pub fn combined_state(calendars: &[&Calendar], at: Millis) -> (bool, Option<Millis>) {
    let open_at = |t: Millis| calendars.iter().all(|c| c.is_open_at(t));
    let open = open_at(at);
    let mut times: Vec<Millis> = calendars
        .iter()
        .flat_map(|c| c.boundaries())
        .filter(|&t| t > at)
        .collect();
    times.sort_unstable();
    times.dedup();
    let next = times.into_iter().find(|&t| open_at(t) != open);
    (open, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AlarmStateAt, CalendarEventSpec};

    const START: Millis = 1_800_000_000_000;

    fn alarm(states: &[(u32, AlarmState)]) -> Alarm {
        let spec = AlarmSpec {
            name: "a".into(),
            region: None,
            states: states
                .iter()
                .map(|&(at_minute, state)| AlarmStateAt {
                    at_minute,
                    state,
                    reason: None,
                })
                .collect(),
        };
        Alarm::from_spec(&spec, "111111111111", "eu-west-1", START)
    }

    fn calendar(default: CalendarDefault, events: &[(u32, u32)]) -> Calendar {
        let spec = CalendarSpec {
            name: "cal".into(),
            region: None,
            default,
            events: events
                .iter()
                .map(|&(from_minute, until_minute)| CalendarEventSpec {
                    summary: String::new(),
                    from_minute,
                    until_minute,
                })
                .collect(),
        };
        Calendar::from_spec(&spec, "000000000000", "us-east-1", START)
    }

    #[test]
    fn alarms_follow_their_timeline() {
        use AlarmState::{Alarm as A, InsufficientData, Ok};
        let a = alarm(&[(10, Ok), (30, A), (90, Ok)]);
        assert_eq!(
            a.arn,
            "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:a".to_owned()
        );
        let at = |m: i64| a.status_at(START + m * MINUTE);
        assert_eq!((at(0).state, at(0).since), (InsufficientData, START));
        assert_eq!(at(0).reason, INITIAL_REASON);
        assert_eq!((at(10).state, at(10).since), (Ok, START + 10 * MINUTE));
        assert_eq!((at(29).state, at(29).since), (Ok, START + 10 * MINUTE));
        assert_eq!((at(30).state, at(30).since), (A, START + 30 * MINUTE));
        assert_eq!(at(30).reason, default_reason(A));
        assert_eq!((at(500).state, at(500).since), (Ok, START + 90 * MINUTE));
        let always = alarm(&[]);
        assert_eq!(always.status_at(START).state, Ok);
        assert_eq!(minute_at(MAX_MILLIS - 1, u32::MAX), MAX_MILLIS);
    }

    #[test]
    fn calendars_close_and_open_around_their_events() {
        let open = calendar(CalendarDefault::DefaultOpen, &[(10, 20), (15, 30)]);
        let closed = calendar(CalendarDefault::DefaultClosed, &[(60, 70)]);
        let m = |x: i64| START + x * MINUTE;
        assert_eq!(combined_state(&[&open], m(0)), (true, Some(m(10))));
        assert_eq!(combined_state(&[&open], m(12)), (false, Some(m(30))));
        assert_eq!(combined_state(&[&open], m(30)), (true, None));
        assert_eq!(combined_state(&[&closed], m(0)), (false, Some(m(60))));
        assert_eq!(combined_state(&[&closed], m(65)), (true, Some(m(70))));
        // Together: closed unless both are open.
        assert_eq!(
            combined_state(&[&open, &closed], m(0)),
            (false, Some(m(60)))
        );
        assert_eq!(
            combined_state(&[&open, &closed], m(60)),
            (true, Some(m(70)))
        );
        assert_eq!(combined_state(&[&open, &closed], m(70)), (false, None));
    }

    proptest::proptest! {
        /// At any minute an alarm answers the last timeline entry at or before it, since that
        /// entry's time (INSUFFICIENT_DATA before the first one).
        #[test]
        fn the_state_is_the_last_entry_at_or_before_the_time(
            steps in proptest::collection::vec((1u32..500, 0usize..3), 0..12),
            first in 0u32..100,
            probe in 0u32..5_000,
        ) {
            let states = [AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData];
            let mut timeline: Vec<(u32, AlarmState)> = Vec::new();
            let mut minute = first;
            for (gap, s) in steps {
                let mut state = states[s];
                if timeline.last().is_some_and(|&(_, p)| p == state) {
                    state = states[(s + 1) % 3];
                }
                timeline.push((minute, state));
                minute += gap;
            }
            let a = alarm(&timeline);
            let status = a.status_at(minute_at(START, probe));
            let expected = if timeline.is_empty() {
                Some((0, AlarmState::Ok))
            } else {
                timeline.iter().rev().find(|&&(m, _)| m <= probe).copied()
            };
            match expected {
                Some((m, s)) => {
                    proptest::prop_assert_eq!(status.state, s);
                    proptest::prop_assert_eq!(status.since, minute_at(START, m));
                }
                None => {
                    proptest::prop_assert_eq!(status.state, AlarmState::InsufficientData);
                    proptest::prop_assert_eq!(status.since, START);
                }
            }
        }

        /// The combined state holds from the asked time until the next transition, and changes
        /// there.
        #[test]
        fn the_next_transition_is_the_first_change(
            events in proptest::collection::vec((0u32..200, 1u32..50), 0..6),
            closed_default in proptest::bool::ANY,
            other in proptest::collection::vec((0u32..200, 1u32..50), 0..4),
            probe in 0i64..300,
        ) {
            let default = if closed_default { CalendarDefault::DefaultClosed } else { CalendarDefault::DefaultOpen };
            let spans = |v: &[(u32, u32)]| v.iter().map(|&(f, len)| (f, f + len)).collect::<Vec<_>>();
            let a = calendar(default, &spans(&events));
            let b = calendar(CalendarDefault::DefaultOpen, &spans(&other));
            let at = START + probe * MINUTE;
            let (open, next) = combined_state(&[&a, &b], at);
            let by_minute = |t: Millis| a.is_open_at(t) && b.is_open_at(t);
            proptest::prop_assert_eq!(open, by_minute(at));
            let end = next.unwrap_or(START + 400 * MINUTE);
            let mut t = at;
            while t < end {
                proptest::prop_assert_eq!(by_minute(t), open);
                t += MINUTE;
            }
            if let Some(n) = next {
                proptest::prop_assert_ne!(by_minute(n), open);
            }
        }
    }
}
