//! The change freeze and the blocking alarms (docs/design.md 3.3, [`restart_core::guard`]),
//! read once per invocation that has planned restarts to start or to end: the calendar and the
//! hub's alarms once, each member account and region of those restarts once.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use restart_core::HandlerError;
use restart_core::guard::{self, AlarmQuery, AlarmScope};
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::ports::FleetControl;

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

impl Holds {
    /// Why `id` may not start now, if it may not (a freeze is handled apart).
    pub(crate) fn of(&self, id: &ServiceId) -> Option<&str> {
        if let Some(all) = &self.all {
            return Some(all);
        }
        match self
            .scoped
            .get(&(id.account.to_string(), id.region.clone()))?
        {
            Hold::Firing(m) | Hold::Unreadable(m) => Some(m),
        }
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
    /// nothing is read). A guard that cannot be read holds what it guards; none lets a restart
    /// through.
    pub(crate) async fn holds(&self, records: &[&NightRecord]) -> Result<Holds, HandlerError> {
        let mut holds = Holds::default();
        if records.is_empty() {
            return Ok(holds);
        }
        if let Some(calendar) = &self.config.change_calendar {
            match self.guards.calendar_state(calendar).await {
                Ok(r) if r.closed => {
                    holds.frozen = Some(guard::freeze_detail(calendar, &r));
                    tracing::warn!(calendar = %calendar, next = ?r.next_transition, "change freeze: no restart starts");
                    return Ok(holds);
                }
                Ok(_) => {}
                Err(e) => {
                    let why = guard::unreadable_calendar(calendar, &e);
                    tracing::error!(calendar = %calendar, error = %e, "the change calendar cannot be read: restarts held");
                    holds.all = Some(why);
                    return Ok(holds);
                }
            }
        }
        let Some(prefix) = &self.config.blocking_alarm_prefix else {
            return Ok(holds);
        };
        let query = AlarmQuery::Prefix(prefix.clone());
        match self.guards.firing_alarms(&AlarmScope::Hub, &query).await {
            Ok(firing) if !firing.is_empty() => {
                let why = guard::alarm_hold(&AlarmScope::Hub, &firing);
                tracing::warn!(hold = %why, "a blocking alarm in the hub holds every restart");
                holds.all = Some(why);
                return Ok(holds);
            }
            Ok(_) => {}
            Err(e) => {
                let why = guard::unreadable_alarms(&AlarmScope::Hub, &e);
                tracing::error!(error = %e, "the hub's blocking alarms cannot be read: restarts held");
                holds.all = Some(why);
                return Ok(holds);
            }
        }
        let scopes: BTreeSet<AlarmScope> = records
            .iter()
            .map(|r| AlarmScope::Member {
                account: r.id.account.clone(),
                region: r.id.region.clone(),
            })
            .collect();
        let read: Vec<(AlarmScope, Option<Hold>)> = stream::iter(scopes)
            .map(|scope| {
                let query = &query;
                async move {
                    let hold = match self.guards.firing_alarms(&scope, query).await {
                        Ok(firing) if firing.is_empty() => None,
                        Ok(firing) => Some(Hold::Firing(guard::alarm_hold(&scope, &firing))),
                        Err(e) => Some(Hold::Unreadable(guard::unreadable_alarms(&scope, &e))),
                    };
                    (scope, hold)
                }
            })
            .buffer_unordered(ALARM_READS)
            .collect()
            .await;
        for (scope, hold) in read {
            let (AlarmScope::Member { account, region }, Some(hold)) = (scope, hold) else {
                continue;
            };
            match &hold {
                Hold::Firing(m) => tracing::warn!(hold = %m, "restarts held"),
                Hold::Unreadable(m) => tracing::error!(hold = %m, "restarts held"),
            }
            holds.scoped.insert((account.to_string(), region), hold);
        }
        Ok(holds)
    }
}
