//! The `batcher` function: the night's plan (docs/design.md 3.6).
//!
//! Reads the catalog that inventory wrote for the night, leaves out services gone or not seen
//! that night, records every service inventory judged ineligible as skipped with its reason,
//! and plans the rest into batches with [`planner::plan`], keeping last night's batch where the
//! constraints allow and expecting each restart to take as long as last night's did (read from
//! last night's records, [`LastNight`]; the default where it did not complete). It writes one
//! record per service (planned with its batch, or skipped), one item per batch, and last a plan
//! summary that marks the plan complete.
//!
//! Input: `{ "night": "YYYY-MM-DD", "replan": false }`, both optional (the night defaults to
//! the one in progress or next to begin in the configured timezone). Output: a [`NightPlan`],
//! `{ "night": "YYYY-MM-DD", "batches": [{ "batch": 0, "start_at": "...", "size": 12 }, ...] }`:
//! never a service list, so 200 batches stay near 12 KB, far under the 256 KB state payload.
//!
//! Running it again for a night whose plan is complete returns that plan and writes nothing.
//! With `replan: true` the night is planned again from the current catalog: only records still
//! `planned` move (to another batch, or to `skipped` when the service is no longer eligible);
//! records that moved on (`started`, an outcome, `skipped`) stay as they are, and new
//! services are added. A run that stopped before its summary was written is finished the same
//! way by the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;

use restart_core::catalog::CatalogRecord;
use restart_core::clock::Clock;
use restart_core::config::AccountsSource;
use restart_core::eligibility::SkipReason;
use restart_core::ids::{AccountId, ServiceId};
use restart_core::limits;
use restart_core::night::{CrowdedCluster, NightPlan, NightRecord, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::{self, PlanParams, PlanService, PlannedBatch};
use restart_core::ports::{CatalogStore, NightStore};
use restart_core::telemetry::{Emf, Unit};
use restart_core::window::NightWindow;
use restart_core::{Config, HandlerError};

pub mod aws;

/// Expected length of a restart with no recorded history.
pub const DEFAULT_RESTART_DURATION: TimeDelta = TimeDelta::minutes(10);

/// Batches of last night read at once.
const LAST_NIGHT_READS: usize = 8;

/// What last night's plan says of one service: its batch, and how long its restart took when
/// it completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastNight {
    pub batch: u32,
    pub duration: Option<TimeDelta>,
}

impl LastNight {
    /// What a record of last night's batches tells the next plan.
    pub fn of(r: &NightRecord) -> Option<(ServiceId, LastNight)> {
        let batch = r.batch?;
        let duration = match r.state {
            NightState::Completed => r.duration_seconds.map(|s| TimeDelta::seconds(i64::from(s))),
            _ => None,
        };
        Some((r.id.clone(), LastNight { batch, duration }))
    }
}

/// The batch interval as the variable that set it: `BATCH_INTERVAL_MINUTES=10`, or
/// `LOCAL_BATCH_INTERVAL_SECONDS=15` for the local stack's sub-minute batches.
fn interval_setting(interval: TimeDelta) -> String {
    let seconds = interval.num_seconds();
    if seconds % 60 == 0 {
        format!("BATCH_INTERVAL_MINUTES={}", seconds / 60)
    } else {
        format!("LOCAL_BATCH_INTERVAL_SECONDS={seconds}")
    }
}

/// The function's input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(
        default,
        deserialize_with = "restart_core::window::deserialize_optional_night"
    )]
    pub night: Option<NaiveDate>,
    #[serde(default)]
    pub replan: bool,
}

/// The handler with its ports.
#[derive(Debug)]
pub struct Batcher<S> {
    pub config: Arc<Config>,
    pub store: S,
    pub clock: Arc<dyn Clock>,
}

/// What one run did, for the log and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub planned: u64,
    pub skipped: u64,
    pub kept_previous: u64,
    pub moved: u64,
    pub created: u64,
    /// The plan was already complete and was returned as it was.
    pub reused: bool,
    /// Clusters that cannot fit the window under the cap, most crowded first.
    pub crowded: Vec<CrowdedCluster>,
}

/// How many crowded clusters the output names.
pub const CROWDED_SAMPLE: usize = 10;

/// The clusters among `services` whose restarts, `cap` at a time, need longer than `window`:
/// the sum of their durations (`default` where unknown or 0) over the cap.
pub fn crowded_clusters(
    services: &[PlanService],
    cap: u32,
    window: TimeDelta,
    default: TimeDelta,
) -> Vec<CrowdedCluster> {
    let mut by_cluster: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in services {
        let d = s
            .recent_duration
            .filter(|d| *d > TimeDelta::zero())
            .unwrap_or(default);
        let e = by_cluster.entry(s.id.cluster_key()).or_default();
        e.0 += 1;
        e.1 =
            e.1.saturating_add(u64::try_from(d.num_seconds()).unwrap_or(0));
    }
    let window_seconds = u64::try_from(window.num_seconds()).unwrap_or(0);
    let mut crowded: Vec<CrowdedCluster> = by_cluster
        .into_iter()
        .filter_map(|(cluster, (services, restart_seconds))| {
            let needs_seconds = restart_seconds / u64::from(cap.max(1));
            (needs_seconds > window_seconds).then_some(CrowdedCluster {
                cluster,
                services,
                restart_seconds,
                needs_seconds,
                window_seconds,
            })
        })
        .collect();
    crowded.sort_by(|a, b| {
        b.needs_seconds
            .cmp(&a.needs_seconds)
            .then(a.cluster.cmp(&b.cluster))
    });
    crowded
}

impl<S> Batcher<S>
where
    S: CatalogStore + NightStore,
{
    /// Handles one invocation: the raw event in, the night's batches out.
    pub async fn handle(&self, event: serde_json::Value) -> Result<NightPlan, HandlerError> {
        let event: Event = if event.is_null() {
            Event::default()
        } else {
            HandlerError::parse_event(event)?
        };
        // Boxed: the planning future is deep, and the runtime's own types nest it further.
        Box::pin(self.run(event.night, event.replan)).await
    }

    #[tracing::instrument(skip(self))]
    pub async fn run(
        &self,
        night: Option<NaiveDate>,
        replan: bool,
    ) -> Result<NightPlan, HandlerError> {
        let started = self.clock.now();
        let window = match night {
            Some(n) => self.config.window.night(n),
            None => self.config.window.night_at(started),
        };
        let night = window.night;

        let (batches, counts) = match self.existing_plan(night, replan).await? {
            Some(batches) => (
                batches,
                RunCounts {
                    reused: true,
                    ..RunCounts::default()
                },
            ),
            None => self.plan_night(&window).await?,
        };

        let finished = self.clock.now();
        let duration_ms = u64::try_from((finished - started).num_milliseconds()).unwrap_or(0);
        metrics(night, &batches, &counts, replan, duration_ms).emit(finished);
        tracing::info!(
            night = %night,
            batches = batches.len(),
            planned = counts.planned,
            skipped = counts.skipped,
            kept_previous = counts.kept_previous,
            moved = counts.moved,
            created = counts.created,
            reused = counts.reused,
            "plan ready"
        );
        let crowded = counts
            .crowded
            .iter()
            .take(CROWDED_SAMPLE)
            .cloned()
            .collect();
        Ok(NightPlan {
            night,
            batches,
            crowded,
        })
    }

    /// The night's batches when its plan is complete and no replan is asked for.
    async fn existing_plan(
        &self,
        night: NaiveDate,
        replan: bool,
    ) -> Result<Option<Vec<PlannedBatch>>, HandlerError> {
        if replan || self.store.plan_summary(night).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.read_batches(night).await?))
    }

    /// Each service of `night`'s batches: its batch (kept where the constraints allow) and its
    /// restart's duration (the planner's expected length). One Query per batch partition, the
    /// reads the previous assignment always took; each batch's records are folded as they
    /// arrive, so the night's records are never all held at once.
    async fn last_night(
        &self,
        night: NaiveDate,
    ) -> Result<BTreeMap<ServiceId, LastNight>, HandlerError> {
        let batches = self.store.read_batches(night).await?;
        let store = &self.store;
        let per_batch = stream::iter(batches)
            .map(|b| async move {
                let records = store.read_batch(night, b.batch).await?;
                Ok::<_, HandlerError>(records.iter().filter_map(LastNight::of).collect::<Vec<_>>())
            })
            .buffer_unordered(LAST_NIGHT_READS);
        per_batch
            .try_fold(BTreeMap::new(), |mut all, batch| async move {
                all.extend(batch);
                Ok(all)
            })
            .await
    }

    /// Refuses a plan whose worst case (every batch polled until its restart timeout) would
    /// not fit one execution's history ([`limits::HISTORY_BUDGET`]): the execution would fail
    /// mid-night instead.
    fn check_history(&self, batches: usize) -> Result<(), HandlerError> {
        let c = &self.config;
        let events = limits::worst_case_events(
            u64::try_from(batches).unwrap_or(u64::MAX),
            c.poll_interval,
            c.restart_timeout,
        );
        if events <= limits::HISTORY_BUDGET {
            return Ok(());
        }
        Err(HandlerError::misconfigured(format!(
            "the plan has {batches} batches; polled until RESTART_TIMEOUT_MINUTES={} every \
             POLL_INTERVAL_SECONDS={}, they could need {events} Step Functions history events, \
             over the {} this night allows (the hard limit is {}): raise the batch interval \
             ({}), shorten the window ({}), lower RESTART_TIMEOUT_MINUTES or raise \
             POLL_INTERVAL_SECONDS",
            c.restart_timeout.num_minutes(),
            c.poll_interval.num_seconds(),
            limits::HISTORY_BUDGET,
            limits::HISTORY_LIMIT,
            interval_setting(c.batch_interval),
            c.window,
        )))
    }

    /// The accounts whose catalog is read: the configured list, or those inventory reached
    /// that night when the accounts come from an AWS Config aggregator or AWS Organizations
    /// (listed anew each night, so the night's inventory run is the list).
    async fn accounts(&self, night: NaiveDate) -> Result<Vec<AccountId>, HandlerError> {
        match &self.config.accounts {
            AccountsSource::List(accounts) => Ok(accounts.clone()),
            AccountsSource::ConfigAggregator | AccountsSource::Organizations { .. } => {
                let run = self.store.get_inventory_run(night).await?.ok_or_else(|| {
                    HandlerError::invalid_input(format!(
                        "night: no inventory run is recorded for {night}; run inventory for \
                         that night first"
                    ))
                })?;
                let accounts: BTreeSet<AccountId> =
                    run.reached.into_iter().map(|t| t.account).collect();
                Ok(accounts.into_iter().collect())
            }
        }
    }

    /// Plans the night (again) and writes what changed.
    async fn plan_night(
        &self,
        window: &NightWindow,
    ) -> Result<(Vec<PlannedBatch>, RunCounts), HandlerError> {
        let night = window.night;
        let accounts = self.accounts(night).await?;
        // Tonight's candidates: known to inventory tonight and not gone.
        let candidates: BTreeMap<ServiceId, CatalogRecord> = self
            .store
            .read_catalog(&accounts)
            .await?
            .into_iter()
            .filter(|r| r.gone_since.is_none() && r.last_seen == night)
            .map(|r| (r.id.clone(), r))
            .collect();
        let existing: BTreeMap<ServiceId, NightRecord> = self
            .store
            .read_night(night)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let last_night = match night.pred_opt() {
            Some(prev) => self.last_night(prev).await?,
            None => BTreeMap::new(),
        };

        // Plan the eligible services that have no record yet or are still only planned.
        let to_plan: Vec<&CatalogRecord> = candidates
            .values()
            .filter(|r| r.skip_reason.is_none())
            .filter(|r| {
                existing
                    .get(&r.id)
                    .is_none_or(|e| e.state == NightState::Planned)
            })
            .collect();
        let services: Vec<PlanService> = to_plan
            .iter()
            .map(|r| PlanService {
                id: r.id.clone(),
                desired: r.desired,
                recent_duration: last_night.get(&r.id).and_then(|l| l.duration),
                previous_batch: existing
                    .get(&r.id)
                    .and_then(|e| e.batch)
                    .or_else(|| last_night.get(&r.id).map(|l| l.batch)),
            })
            .collect();
        let params = PlanParams {
            window: *window,
            interval: self.config.batch_interval,
            default_duration: DEFAULT_RESTART_DURATION,
            timeout: self.config.restart_timeout,
        };
        let plan = planner::plan(&services, &params)
            .map_err(|e| HandlerError::misconfigured(e.to_string()))?;
        // A restart of unknown length is expected to take the default, or the restart timeout
        // when that is shorter (the local stack's compressed nights): it is judged by then.
        let crowded = crowded_clusters(
            &services,
            self.config.max_inflight_per_cluster,
            window.end - window.start,
            DEFAULT_RESTART_DURATION.min(self.config.restart_timeout),
        );
        if let Some(worst) = crowded.first() {
            tracing::warn!(
                clusters = crowded.len(),
                worst = %worst.cluster,
                worst_services = worst.services,
                worst_needs_seconds = worst.needs_seconds,
                window_seconds = worst.window_seconds,
                "clusters whose restarts cannot all start inside the window under \
                 MAX_INFLIGHT_PER_CLUSTER: what is left at its end is skipped (window_closed)"
            );
        }
        for c in &crowded {
            tracing::debug!(
                cluster = %c.cluster,
                services = c.services,
                restart_seconds = c.restart_seconds,
                needs_seconds = c.needs_seconds,
                "crowded cluster"
            );
        }
        self.check_history(plan.batches.len())?;
        // The planner computed each batch's start (checked, inside the window).
        let starts: BTreeMap<u32, chrono::DateTime<chrono::Utc>> =
            plan.batches.iter().map(|b| (b.batch, b.start_at)).collect();
        let start_of = |k: u32| starts.get(&k).copied().unwrap_or(window.start);

        // The batch items first: a run that stops half-way leaves its records findable.
        self.store.put_batches(night, &plan.batches).await?;

        let mut counts = RunCounts {
            crowded,
            kept_previous: plan.kept_previous as u64,
            ..RunCounts::default()
        };
        let mut creates = Vec::new();
        let mut moves = Vec::new();
        for (r, &batch) in to_plan.iter().zip(&plan.assignment) {
            match existing.get(&r.id) {
                None => creates.push(NightRecord::planned(r, night, batch, start_of(batch))),
                Some(e) if e.batch != Some(batch) => {
                    moves.push((e.clone(), e.moved_to(batch, start_of(batch))));
                }
                Some(_) => {}
            }
        }
        for r in candidates.values() {
            if let (Some(reason), None) = (r.skip_reason, existing.get(&r.id)) {
                creates.push(NightRecord::skipped(r, night, reason));
            }
        }
        // Planned services no longer eligible (or no longer found) are skipped.
        let planned_ids: BTreeSet<&ServiceId> = to_plan.iter().map(|r| &r.id).collect();
        for e in existing.values() {
            if e.state == NightState::Planned && !planned_ids.contains(&e.id) {
                let reason = candidates
                    .get(&e.id)
                    .and_then(|c| c.skip_reason)
                    .unwrap_or(SkipReason::NotFound);
                moves.push((e.clone(), e.now_skipped(reason)));
            }
        }
        counts.created = self.store.create_records(&creates).await?.created;
        for (from, to) in &moves {
            if self.store.move_record(from, to).await? {
                counts.moved += 1;
            } else {
                tracing::info!(service = %from.id, "not moved: it is no longer only planned");
            }
        }

        // The final batches, counted from what the table now holds.
        let records = self.store.read_night(night).await?;
        let mut sizes: BTreeMap<u32, u32> = plan.batches.iter().map(|b| (b.batch, 0)).collect();
        for r in &records {
            match r.batch {
                Some(b) => *sizes.entry(b).or_default() += 1,
                None => counts.skipped += 1,
            }
        }
        let batches: Vec<PlannedBatch> = sizes
            .iter()
            .map(|(&batch, &size)| PlannedBatch {
                batch,
                start_at: start_of(batch),
                size,
            })
            .collect();
        counts.planned = batches.iter().map(|b| u64::from(b.size)).sum();
        let stale: Vec<u32> = self
            .store
            .read_batches(night)
            .await?
            .iter()
            .map(|b| b.batch)
            .filter(|b| !sizes.contains_key(b))
            .collect();
        self.store.put_batches(night, &batches).await?;
        self.store.delete_batches(night, &stale).await?;
        self.store
            .put_plan_summary(&PlanSummary {
                night,
                batches: u32::try_from(batches.len()).unwrap_or(u32::MAX),
                planned: counts.planned,
                skipped: counts.skipped,
                written_at: self.clock.now(),
            })
            .await?;
        Ok((batches, counts))
    }
}

/// The run's Embedded Metric Format record.
pub fn metrics(
    night: NaiveDate,
    batches: &[PlannedBatch],
    counts: &RunCounts,
    replan: bool,
    duration_ms: u64,
) -> Emf {
    Emf::new()
        .dimension("Function", "batcher")
        .metric("Batches", batches.len() as f64, Unit::Count)
        .metric(
            "ServicesPlanned",
            batches.iter().map(|b| f64::from(b.size)).sum(),
            Unit::Count,
        )
        .metric("ServicesSkipped", counts.skipped as f64, Unit::Count)
        .metric("CrowdedClusters", counts.crowded.len() as f64, Unit::Count)
        .metric(
            "KeptPreviousBatch",
            counts.kept_previous as f64,
            Unit::Count,
        )
        .metric("RecordsMoved", counts.moved as f64, Unit::Count)
        .metric("RecordsCreated", counts.created as f64, Unit::Count)
        .metric("DurationMs", duration_ms as f64, Unit::Milliseconds)
        .property("night", serde_json::json!(night))
        .property("replan", serde_json::json!(replan))
        .property("reused", serde_json::json!(counts.reused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_named_by_the_variable_that_sets_it() {
        assert_eq!(
            interval_setting(TimeDelta::minutes(10)),
            "BATCH_INTERVAL_MINUTES=10"
        );
        assert_eq!(
            interval_setting(TimeDelta::seconds(15)),
            "LOCAL_BATCH_INTERVAL_SECONDS=15"
        );
        assert_eq!(
            interval_setting(TimeDelta::seconds(90)),
            "LOCAL_BATCH_INTERVAL_SECONDS=90"
        );
    }
}
