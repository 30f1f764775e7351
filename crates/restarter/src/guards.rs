//! The change freeze and the blocking alarms (docs/design.md 3.3, [`restart_core::guard`]),
//! read once per invocation that has planned restarts to start or to end: the calendar and the
//! hub's alarms once, each member account and region of those restarts once.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use restart_core::HandlerError;
use restart_core::guard::{self, AlarmQuery, AlarmScope, FiringAlarm};
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::ports::{ControlError, FleetControl};

use crate::{Restarter, Store};

/// How many member accounts' alarms are read at once.
const ALARM_READS: usize = 16;

/// What the guards hold back in one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Holds {
    /// The change calendar is CLOSED: planned restarts end `change_freeze` with this detail.
    pub(crate) frozen: Option<String>,
    /// Every planned restart waits, for this reason (a hub alarm, an unreadable calendar).
    pub(crate) all: Option<String>,
    /// The planned restarts of an account and region wait, for this reason.
    pub(crate) scoped: BTreeMap<(String, String), Hold>,
}

/// Why one account and region's restarts wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A blocking alarm fires there.
    Firing(String),
    /// Its alarms could not be read: a hold too, unless ECS shows the account is lost.
    Unreadable(String),
}

impl Hold {
    fn text(&self) -> &str {
        match self {
            Self::Firing(m) | Self::Unreadable(m) => m,
        }
    }
}

impl Holds {
    /// Why `id` may not start now, if it may not (a freeze is handled apart).
    pub(crate) fn of(&self, id: &ServiceId) -> Option<&str> {
        if let Some(all) = &self.all {
            return Some(all);
        }
        self.scoped
            .get(&(id.account.to_string(), id.region.clone()))
            .map(Hold::text)
    }

    /// Whether `id` waits whatever ECS shows (so its cluster need not be described for it).
    pub(crate) fn firing(&self, id: &ServiceId) -> bool {
        self.all.is_some()
            || matches!(
                self.scoped
                    .get(&(id.account.to_string(), id.region.clone())),
                Some(Hold::Firing(_))
            )
    }
}

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// Reads the configured guards for `records` (those that may start now; none configured:
    /// nothing is read), and notes each hold met in the table (for the summary's "how long").
    /// A guard that cannot be read holds what it guards; none lets a restart through.
    pub(crate) async fn holds(&self, records: &[&NightRecord]) -> Result<Holds, HandlerError> {
        let Some(first) = records.first() else {
            return Ok(Holds::default());
        };
        let mut met = Vec::new();
        let holds = self.read_guards(records, &mut met).await;
        let now = self.clock.now();
        for (what, scope) in met {
            // Bookkeeping for the summary: a write that fails never holds the night up.
            if let Err(e) = self.store.note_hold(first.night, &what, &scope, now).await {
                tracing::warn!(error = %e, hold = %what, scope = %scope, "a hold could not be noted");
            }
        }
        Ok(holds)
    }

    /// The guards' holds; each hold met is pushed to `met` as (what, where).
    async fn read_guards(
        &self,
        records: &[&NightRecord],
        met: &mut Vec<(String, String)>,
    ) -> Holds {
        let mut holds = Holds::default();
        let hub = AlarmScope::Hub;
        if let Some(calendar) = &self.config.change_calendar {
            match self.guards.calendar_state(calendar).await {
                Ok(r) if r.closed => {
                    holds.frozen = Some(guard::freeze_detail(calendar, &r));
                    tracing::warn!(calendar = %calendar, next = ?r.next_transition, "change freeze: no restart starts");
                    return holds;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(calendar = %calendar, error = %e, "the change calendar cannot be read: restarts held");
                    met.push((
                        format!("change calendar {calendar} (unreadable)"),
                        hub.to_string(),
                    ));
                    holds.all = Some(guard::unreadable_calendar(calendar, &e));
                    return holds;
                }
            }
        }
        let Some(prefix) = &self.config.blocking_alarm_prefix else {
            return holds;
        };
        let query = AlarmQuery::Prefix(prefix.clone());
        if let Some(hold) = self.alarm_hold(&hub, &query, met).await {
            tracing::warn!(hold = %hold.text(), "the hub holds every restart");
            holds.all = Some(hold.text().to_owned());
            return holds;
        }
        let scopes: BTreeSet<AlarmScope> = records
            .iter()
            .map(|r| AlarmScope::Member {
                account: r.id.account.clone(),
                region: r.id.region.clone(),
            })
            .collect();
        let read: Vec<(AlarmScope, Result<Vec<FiringAlarm>, ControlError>)> = stream::iter(scopes)
            .map(|scope| {
                let query = &query;
                async move {
                    let firing = self.guards.firing_alarms(&scope, query).await;
                    (scope, firing)
                }
            })
            .buffer_unordered(ALARM_READS)
            .collect()
            .await;
        for (scope, firing) in read {
            let Some(hold) = judge(&scope, firing, met) else {
                continue;
            };
            tracing::warn!(hold = %hold.text(), "restarts held");
            if let AlarmScope::Member { account, region } = scope {
                holds.scoped.insert((account.to_string(), region), hold);
            }
        }
        holds
    }

    /// The hold of the alarms `query` names in `scope`, if they hold anything.
    async fn alarm_hold(
        &self,
        scope: &AlarmScope,
        query: &AlarmQuery,
        met: &mut Vec<(String, String)>,
    ) -> Option<Hold> {
        let firing = self.guards.firing_alarms(scope, query).await;
        judge(scope, firing, met)
    }
}

/// What the alarms read in `scope` hold: nothing, a firing alarm, or (unreadable) everything
/// there. Each hold met is pushed to `met`.
fn judge(
    scope: &AlarmScope,
    firing: Result<Vec<FiringAlarm>, ControlError>,
    met: &mut Vec<(String, String)>,
) -> Option<Hold> {
    match firing {
        Ok(firing) if firing.is_empty() => None,
        Ok(firing) => {
            met.extend(firing.iter().map(|a| (a.name.clone(), scope.to_string())));
            Some(Hold::Firing(guard::alarm_hold(scope, &firing)))
        }
        Err(e) => {
            met.push(("blocking alarms (unreadable)".into(), scope.to_string()));
            Some(Hold::Unreadable(guard::unreadable_alarms(scope, &e)))
        }
    }
}
