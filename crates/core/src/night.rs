//! A service's night record and the night's plan (docs/design.md 3.6, 3.7).
//!
//! The batcher writes one [`NightRecord`] per service it planned (state `planned`, with its
//! batch and start time) or skipped (state `skipped`, with the reason), one
//! [`PlannedBatch`] per batch, and a [`PlanSummary`] once the whole plan is written. The
//! restarter moves records on along [`NightState::allowed_from`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogRecord;
use crate::eligibility::SkipReason;
use crate::ids::{ServiceArn, ServiceId};
use crate::outcome::NightState;
use crate::planner::PlannedBatch;

/// Where one service stands in one night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightRecord {
    pub id: ServiceId,
    pub arn: ServiceArn,
    pub night: NaiveDate,
    /// Its batch; `None` for a skipped service.
    pub batch: Option<u32>,
    pub state: NightState,
    pub skip_reason: Option<SkipReason>,
    pub owner: String,
    /// When its batch starts.
    pub planned_start: Option<DateTime<Utc>>,
    /// The PRIMARY deployment UpdateService returned (restarter).
    pub deployment_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// When the invocation that holds a claim (a record `started` without its deployment) took
    /// it: `started_at` for the claim itself, later for an invocation that took a lapsed claim
    /// over. The lease runs from here, and a takeover is conditioned on it (a fencing token):
    /// of two invocations that find one lapsed claim, one takes it.
    #[serde(default)]
    pub lease_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The PRIMARY deployment seen just before the restart: how a start retried after a crash
    /// between UpdateService and its record tells whether UpdateService already ran.
    pub previous_deployment: Option<String>,
    /// The task definition of that PRIMARY deployment. A forced deployment keeps it and a
    /// circuit-breaker rollback returns to it; a PRIMARY deployment with another one is a deploy
    /// that overtook ours (`superseded`).
    #[serde(default)]
    pub task_definition: Option<String>,
    /// How long the restart took (`finished_at - started_at`), once completed.
    pub duration_seconds: Option<u32>,
    /// Why a restart failed, was refused or halted, in words for on-call and owners.
    pub detail: Option<String>,
    /// A restart that ended `timed_out` because its account could not be reached while it was
    /// in flight (AssumeRole or ECS denied): its outcome is unknown, so the circuit breaker does
    /// not count it (one account lost must not halt every other account's night), and the
    /// night's counters keep it apart ([`NightStatus::lost`]).
    #[serde(default)]
    pub account_lost: bool,
}

impl NightRecord {
    /// A service planned into `batch`, starting at `start`.
    pub fn planned(
        catalog: &CatalogRecord,
        night: NaiveDate,
        batch: u32,
        start: DateTime<Utc>,
    ) -> Self {
        Self {
            batch: Some(batch),
            state: NightState::Planned,
            planned_start: Some(start),
            ..Self::unbatched(
                catalog.id.clone(),
                catalog.arn.clone(),
                night,
                catalog.owner.clone(),
            )
        }
    }

    /// A service outside any batch (skipped, or restarted by hand), in no state yet.
    pub fn unbatched(id: ServiceId, arn: ServiceArn, night: NaiveDate, owner: String) -> Self {
        Self {
            id,
            arn,
            night,
            batch: None,
            state: NightState::Skipped,
            skip_reason: None,
            owner,
            planned_start: None,
            deployment_id: None,
            started_at: None,
            lease_at: None,
            finished_at: None,
            previous_deployment: None,
            task_definition: None,
            duration_seconds: None,
            detail: None,
            account_lost: false,
        }
    }

    /// A service not restarted tonight, and why.
    pub fn skipped(catalog: &CatalogRecord, night: NaiveDate, reason: SkipReason) -> Self {
        Self {
            skip_reason: Some(reason),
            ..Self::unbatched(
                catalog.id.clone(),
                catalog.arn.clone(),
                night,
                catalog.owner.clone(),
            )
        }
    }

    /// This record moved to `batch` (still planned).
    pub fn moved_to(&self, batch: u32, start: DateTime<Utc>) -> Self {
        Self {
            batch: Some(batch),
            planned_start: Some(start),
            ..self.clone()
        }
    }

    /// This planned record skipped for `reason` (planned → skipped).
    pub fn now_skipped(&self, reason: SkipReason) -> Self {
        Self {
            batch: None,
            planned_start: None,
            state: NightState::Skipped,
            skip_reason: Some(reason),
            ..self.clone()
        }
    }
}

/// The record that a night's plan is completely written: written last, so a plan without it
/// (a run that stopped half-way) is planned again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub night: NaiveDate,
    pub batches: u32,
    pub planned: u64,
    pub skipped: u64,
    pub written_at: DateTime<Utc>,
}

/// What the batcher returns: the night and its batches, never service lists. A night of 200
/// batches is about 12 KB, far under the 256 KB state payload limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightPlan {
    pub night: NaiveDate,
    pub batches: Vec<PlannedBatch>,
    /// Clusters whose restarts cannot all start inside the window under
    /// `MAX_INFLIGHT_PER_CLUSTER` (the first few; the batcher's log and metric have them all):
    /// what is left of them at the window's end ends `window_closed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crowded: Vec<CrowdedCluster>,
}

/// A cluster whose restarts, one after another `MAX_INFLIGHT_PER_CLUSTER` at a time, need
/// longer than the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrowdedCluster {
    /// `account/region/cluster`.
    pub cluster: String,
    pub services: u64,
    /// The restarts' known durations added up (the default for a service without one).
    pub restart_seconds: u64,
    /// `restart_seconds` over the cluster's cap: the least time its restarts need.
    pub needs_seconds: u64,
    pub window_seconds: u64,
}

/// What a conditional creation of records did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    /// Records written.
    pub created: u64,
    /// Services whose record already existed: left untouched.
    pub existing: Vec<ServiceId>,
}

/// The kill switch (docs/design.md 3.5): while it is on, no new restart starts anywhere; restarts in
/// flight are still watched. It is not tied to a night: on-call turns it off with `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub reason: String,
    /// Who turned it on (an IAM identity or a user name).
    pub by: String,
    pub at: DateTime<Utc>,
}

/// The night's lock (docs/design.md 3.5: one nightly run at a time per night): the Step Functions
/// execution running the night, taken by inventory, the night's first step.
///
/// Another execution may take it only once it has lapsed (`until`: the end of the night's
/// window plus the restart timeout, when no batch of the night can still be running). The
/// holder may take it again (a retried step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightLock {
    pub night: NaiveDate,
    /// The execution id (ARN) holding the night.
    pub holder: String,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Why and when the night's circuit breaker stopped the night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The night's counters (updated atomically with each move) and its halt, if any.
///
/// Counters count moves, not services: a restart forced again by on-call counts twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightStatus {
    pub counts: std::collections::BTreeMap<NightState, u64>,
    /// Of the `timed_out` moves, those whose account was lost while the restart was in flight
    /// ([`NightRecord::account_lost`]): neither finished nor failed for the breaker.
    #[serde(default)]
    pub lost: u64,
    pub halted: Option<Halt>,
}

/// A batch's records by state, as the invocation that last worked on the batch left them
/// (docs/design.md 3.5). The circuit breaker of every other batch reads these: one item per
/// batch, so what a poll reads does not grow with the fleet's clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    /// When they were counted: an older count never replaces a newer one.
    pub at: DateTime<Utc>,
    pub counts: std::collections::BTreeMap<NightState, u64>,
    /// Of the `timed_out` records, those lost with their account.
    pub lost: u64,
}

impl BatchCounts {
    /// `records` counted by state at `at`.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a NightRecord>, at: DateTime<Utc>) -> Self {
        let mut c = BatchCounts {
            at,
            ..BatchCounts::default()
        };
        for r in records {
            *c.counts.entry(r.state).or_default() += 1;
            if r.state == NightState::TimedOut && r.account_lost {
                c.lost += 1;
            }
        }
        c
    }
}

/// What a batch's circuit breaker reads: the night's halt and every batch's last counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NightTally {
    pub halted: Option<Halt>,
    pub batches: std::collections::BTreeMap<u32, BatchCounts>,
}

impl NightTally {
    /// The night's status from the batches' counts, `batch`'s own replaced by `own` (what
    /// this invocation sees now, fresher than what it last wrote).
    pub fn status_with(&self, batch: u32, own: &BatchCounts) -> NightStatus {
        let mut status = NightStatus {
            halted: self.halted.clone(),
            ..NightStatus::default()
        };
        let others = self.batches.iter().filter(|(b, _)| **b != batch);
        for c in others.map(|(_, c)| c).chain([own]) {
            for (state, n) in &c.counts {
                *status.counts.entry(*state).or_default() += n;
            }
            status.lost += c.lost;
        }
        status
    }
}

/// The fewest finished restarts before the circuit breaker may trip (docs/design.md 3.5).
pub const BREAKER_MIN_FINISHED: u64 = 20;

impl NightStatus {
    pub fn count(&self, state: NightState) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }

    /// Restarts that ran to an outcome, those lost with their account left out (their outcome
    /// is unknown).
    pub fn finished(&self) -> u64 {
        let all: u64 = NightState::ALL
            .into_iter()
            .filter(|s| s.is_restart_outcome())
            .map(|s| self.count(s))
            .sum();
        all.saturating_sub(self.lost_timed_out())
    }

    /// Finished restarts that did not succeed, those lost with their account left out.
    pub fn failures(&self) -> u64 {
        let all: u64 = NightState::ALL
            .into_iter()
            .filter(|s| s.is_failure())
            .map(|s| self.count(s))
            .sum();
        all.saturating_sub(self.lost_timed_out())
    }

    /// The lost restarts, never more than the `timed_out` moves they are part of (counters
    /// written by hand or by an older version cannot make the sums above wrap).
    fn lost_timed_out(&self) -> u64 {
        self.lost.min(self.count(NightState::TimedOut))
    }

    /// Why the night must halt, when failed / finished exceeds `threshold_percent` after at
    /// least [`BREAKER_MIN_FINISHED`] finished restarts.
    pub fn breaker_trips(&self, threshold_percent: u32) -> Option<String> {
        let (finished, failures) = (self.finished(), self.failures());
        (finished >= BREAKER_MIN_FINISHED
            && failures * 100 > u64::from(threshold_percent) * finished)
            .then(|| {
                format!(
                    "{failures} of {finished} finished restarts failed, rolled back or timed out \
                     ({:.1}%, threshold {threshold_percent}%)",
                    failures as f64 * 100.0 / finished as f64
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON: scalars of every kind (text in any script, numbers at their limits, dates and
    /// ARNs nearly right) in arrays and objects whose keys are often the fields these types
    /// have.
    fn any_json() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            any::<String>(),
            "\\PC{0,24}",
            "[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))?",
            "arn:aws:ecs:[a-z]{2}-[a-z]{4}-[0-9]:[0-9]{12}:service/[A-Za-z0-9_-]{1,8}(/[A-Za-z0-9é_-]{1,8})?",
            "planned|started|completed|failed|skipped|untagged|opted_out|ACTIVE|PRIMARY",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        let key = prop_oneof![
            prop::sample::select(vec![
                "id",
                "arn",
                "night",
                "batch",
                "state",
                "skip_reason",
                "owner",
                "planned_start",
                "deployment_id",
                "started_at",
                "finished_at",
                "previous_deployment",
                "task_definition",
                "duration_seconds",
                "detail",
                "account",
                "region",
                "cluster",
                "service",
                "batches",
                "planned",
                "skipped",
                "written_at",
                "start_at",
                "size",
                "reason",
                "by",
                "at",
                "holder",
                "until",
                "counts",
                "halted",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,8}",
        ];
        leaf.prop_recursive(4, 48, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..10)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn decode<T: serde::de::DeserializeOwned + Serialize>(v: &Value) {
        if let Ok(t) = serde_json::from_value::<T>(v.clone()) {
            // What decodes encodes again.
            serde_json::to_value(&t).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The night's types as events and table items carry them: any JSON decodes or fails,
        /// never panics.
        #[test]
        fn any_json_decodes_or_fails(v in any_json()) {
            decode::<NightRecord>(&v);
            decode::<PlanSummary>(&v);
            decode::<NightPlan>(&v);
            decode::<Pause>(&v);
            decode::<NightLock>(&v);
            decode::<Halt>(&v);
            decode::<NightStatus>(&v);
            decode::<PlannedBatch>(&v);
            decode::<CatalogRecord>(&v);
            decode::<crate::catalog::InventoryCounts>(&v);
            decode::<crate::catalog::Unreachable>(&v);
            decode::<crate::catalog::Target>(&v);
            decode::<crate::ids::ServiceId>(&v);
            decode::<crate::HandlerError>(&v);
            let _ = crate::HandlerError::parse_event::<NightRecord>(v.clone());
        }
    }

    fn status(completed: u64, failed: u64, rolled_back: u64, vanished: u64) -> NightStatus {
        NightStatus {
            counts: [
                (NightState::Completed, completed),
                (NightState::Failed, failed),
                (NightState::RolledBack, rolled_back),
                (NightState::Vanished, vanished),
                (NightState::Halted, 40),
                (NightState::Started, 100),
            ]
            .into(),
            lost: 0,
            halted: None,
        }
    }

    #[test]
    fn restarts_lost_with_their_account_are_not_counted_by_the_breaker() {
        // 15 completed, 30 timed out of which 28 with their account lost: 17 finished, 2 failed.
        let mut s = status(15, 0, 0, 0);
        s.counts.insert(NightState::TimedOut, 30);
        s.lost = 28;
        assert_eq!((s.finished(), s.failures()), (17, 2));
        assert_eq!(s.breaker_trips(10), None);
        // The same night without the lost account's restarts set apart halts.
        s.lost = 0;
        assert!(s.breaker_trips(10).is_some());
        // A lost count above the timed_out count is capped by it.
        s.lost = 1_000;
        assert_eq!((s.finished(), s.failures()), (15, 0));
    }

    #[test]
    fn the_breaker_waits_for_twenty_finished_restarts() {
        // 100% failures, but only 19 finished.
        assert_eq!(status(0, 10, 9, 0).breaker_trips(10), None);
        let reason = status(0, 10, 10, 0).breaker_trips(10).unwrap();
        assert_eq!(
            reason,
            "20 of 20 finished restarts failed, rolled back or timed out (100.0%, threshold 10%)"
        );
    }

    #[test]
    fn the_breaker_trips_only_above_the_threshold() {
        // Exactly 10% does not trip; vanished counts as finished, not as failed.
        assert_eq!(status(17, 1, 1, 1).breaker_trips(10), None);
        assert!(status(16, 2, 1, 1).breaker_trips(10).is_some());
        assert_eq!(status(16, 2, 1, 1).finished(), 20);
        assert_eq!(status(16, 2, 1, 1).failures(), 3);
        // Threshold 0: any failure trips (after 20).
        assert!(status(19, 1, 0, 0).breaker_trips(0).is_some());
        assert_eq!(status(20, 0, 0, 0).breaker_trips(0), None);
    }
}
