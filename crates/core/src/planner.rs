//! The night planner (docs/design.md 3.6): eligible services into batches with start times.
//!
//! Invariants, each property-tested below:
//! 1. every service is in exactly one batch;
//! 2. batch sizes differ by at most one;
//! 3. no batch holds more than `ceil(n_c / B)` services of a cluster with `n_c` services;
//! 4. batch `k` starts at `window.start + k × interval`, and the last batch starts early enough
//!    that a restart of the expected length (the longest recent restart, capped at the restart
//!    timeout) finishes inside the window;
//! 5. deterministic: the same services, in any order, get the same plan;
//! 6. stable: a service keeps last night's batch when the constraints allow.
//!
//! The batch count is the number of slots the window holds, `B = min(n, slots)`, so the load is
//! spread across the whole window and no batch is empty.
//!
//! Algorithm: services are taken cluster by cluster, biggest clusters first (they are the
//! tightest to spread), each cluster's services in id order. Pass 1 keeps every service whose
//! last-night batch still has room, for the batch and for its cluster. Pass 2 places the rest,
//! each in the batch where its cluster has the fewest services, then the smallest batch. When
//! no batch has room for both, one service of another cluster is moved out of the way; if even
//! that cannot help, the plan falls back to dealing services round-robin, which always
//! satisfies invariants 1-3. The whole plan is O(n × B).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ServiceId;
use crate::window::NightWindow;

/// One eligible service, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanService {
    pub id: ServiceId,
    /// Desired tasks (informational: batches are balanced by count).
    pub desired: u32,
    /// How long its recent restarts took, if known. Zero (or less) is not a restart that took
    /// no time but a duration nobody measured, and counts as unknown.
    pub recent_duration: Option<TimeDelta>,
    /// Its batch in last night's plan, if it had one.
    pub previous_batch: Option<u32>,
}

/// How the night is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanParams {
    pub window: NightWindow,
    /// Time between batch starts (`BATCH_INTERVAL_MINUTES`).
    pub interval: TimeDelta,
    /// Expected restart length for services with no recent history.
    pub default_duration: TimeDelta,
    /// The restart timeout: a longer restart is timed out anyway, so it caps the allowance.
    pub timeout: TimeDelta,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the window {start} - {end} ({window_min} min) is shorter than the {allowance_min} min \
         a restart is expected to take; widen the window or lower RESTART_TIMEOUT_MINUTES"
    )]
    WindowTooShort {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        window_min: i64,
        allowance_min: i64,
    },
    #[error("the batch interval must be at least one second, got {0} s")]
    Interval(i64),
}

/// A batch of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBatch {
    pub batch: u32,
    pub start_at: DateTime<Utc>,
    pub size: u32,
}

/// The night's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub batches: Vec<PlannedBatch>,
    /// The batch of each input service, in input order.
    pub assignment: Vec<u32>,
    /// How many services kept last night's batch.
    pub kept_previous: usize,
    /// The time allowed for the last batch to finish.
    pub allowance: TimeDelta,
}

/// The number of batch slots the window holds for restarts of length `allowance`.
pub fn slots(params: &PlanParams, allowance: TimeDelta) -> Result<u32, PlanError> {
    let window = params.window.length();
    // Under a second, `num_seconds()` below is 0: a division by zero.
    if params.interval < TimeDelta::seconds(1) {
        return Err(PlanError::Interval(params.interval.num_seconds()));
    }
    if window < allowance {
        return Err(PlanError::WindowTooShort {
            start: params.window.start,
            end: params.window.end,
            window_min: window.num_minutes(),
            allowance_min: allowance.num_minutes(),
        });
    }
    // `window >= allowance` here, so the difference is not negative and cannot overflow.
    let room = (window - allowance).num_seconds() / params.interval.num_seconds();
    Ok(u32::try_from(room).unwrap_or(u32::MAX - 1) + 1)
}

/// Plans the night.
pub fn plan(services: &[PlanService], params: &PlanParams) -> Result<Plan, PlanError> {
    let longest = services
        .iter()
        .map(|s| {
            s.recent_duration
                .filter(|d| *d > TimeDelta::zero())
                .unwrap_or(params.default_duration)
        })
        .max()
        .unwrap_or(params.default_duration);
    let allowance = longest.min(params.timeout).max(TimeDelta::zero());
    let slots = slots(params, allowance)?;
    let batch_count = slots.min(u32::try_from(services.len()).unwrap_or(u32::MAX));

    let (assignment, kept_previous) = assign(services, batch_count);
    let mut sizes = vec![0u32; batch_count as usize];
    for &b in &assignment {
        // `assign` gives every service a batch below `batch_count`.
        sizes[b as usize] += 1;
    }
    let batches = sizes
        .iter()
        .enumerate()
        .map(|(k, &size)| PlannedBatch {
            batch: k as u32,
            start_at: batch_start(params, k),
            size,
        })
        .collect();
    Ok(Plan {
        batches,
        assignment,
        kept_previous,
        allowance,
    })
}

/// When batch `k` starts: `window.start + k × interval`. `k` is below the slots the window
/// holds, so that is at most `window.end - allowance` and the fallback is never taken; it is
/// there so that no arithmetic here can panic (`TimeDelta * i32` and `DateTime + TimeDelta`
/// do on overflow).
fn batch_start(params: &PlanParams, k: usize) -> DateTime<Utc> {
    i32::try_from(k)
        .ok()
        .and_then(|k| params.interval.checked_mul(k))
        .and_then(|offset| params.window.start.checked_add_signed(offset))
        .unwrap_or(params.window.end)
}

/// Assigns services to `batch_count` batches; returns each service's batch (input order) and
/// how many kept their previous batch.
pub fn assign(services: &[PlanService], batch_count: u32) -> (Vec<u32>, usize) {
    let n = services.len();
    if n == 0 || batch_count == 0 {
        return (Vec::new(), 0);
    }
    let b = batch_count as usize;
    // Indexing below never goes out of bounds: service indices come from `0..n`, batch
    // indices from `0..b` (a previous batch is checked `p < b` first), cluster indices from
    // `clusters`, and `count` holds `clusters × b` entries.

    // Clusters, in a deterministic order: biggest first, then by id.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&x, &y| services[x].id.cmp(&services[y].id));
    let mut cluster_of = vec![0usize; n];
    let mut clusters: Vec<(usize, usize)> = Vec::new(); // (first position in `order`, size)
    {
        let mut index: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for (pos, &i) in order.iter().enumerate() {
            let id = &services[i].id;
            let key = (id.account.as_str(), id.region.as_str(), id.cluster.as_str());
            let c = *index.entry(key).or_insert_with(|| {
                clusters.push((pos, 0));
                clusters.len() - 1
            });
            clusters[c].1 += 1;
            cluster_of[i] = c;
        }
    }
    let mut cluster_rank: Vec<usize> = (0..clusters.len()).collect();
    cluster_rank.sort_by(|&x, &y| clusters[y].1.cmp(&clusters[x].1).then(x.cmp(&y)));
    // Ids are sorted, so each cluster's services are contiguous in `order`.
    let ordered: Vec<usize> = cluster_rank
        .iter()
        .flat_map(|&c| {
            order[clusters[c].0..clusters[c].0 + clusters[c].1]
                .iter()
                .copied()
        })
        .collect();
    let caps: Vec<u32> = clusters
        .iter()
        .map(|&(_, size)| size.div_ceil(b) as u32)
        .collect();

    let mut st = Fill::new(n, b, caps);
    let mut batch_of: Vec<Option<u32>> = vec![None; n];

    // Pass 1: keep last night's batch where it still fits.
    for &i in &ordered {
        if let Some(p) = services[i].previous_batch.map(|p| p as usize)
            && p < b
            && st.fits(p, cluster_of[i])
        {
            st.add(p, cluster_of[i], i);
            batch_of[i] = Some(p as u32);
        }
    }
    let kept_previous = batch_of.iter().filter(|x| x.is_some()).count();

    // Pass 2: place the rest.
    for &i in &ordered {
        if batch_of[i].is_some() {
            continue;
        }
        let c = cluster_of[i];
        let target = st
            .best_fit(c)
            .or_else(|| st.make_room(c, &cluster_of, &mut batch_of));
        match target {
            Some(k) => {
                st.add(k, c, i);
                batch_of[i] = Some(k as u32);
            }
            None => return (round_robin(&ordered, b, n), 0),
        }
    }
    let assignment = batch_of
        .into_iter()
        .map(|x| x.expect("every service is placed by pass 2"))
        .collect();
    (assignment, kept_previous)
}

/// Deals services (grouped by cluster) to batches in turn: always within every invariant.
fn round_robin(ordered: &[usize], b: usize, n: usize) -> Vec<u32> {
    let mut out = vec![0u32; n];
    for (pos, &i) in ordered.iter().enumerate() {
        out[i] = (pos % b) as u32;
    }
    out
}

/// Batch fill state: sizes, per-cluster counts and members.
struct Fill {
    b: usize,
    /// Every batch holds `lo` or `lo + 1` services; exactly `extra` batches hold `lo + 1`.
    lo: u32,
    extra: usize,
    at_hi: usize,
    size: Vec<u32>,
    /// `count[c * b + k]`: services of cluster `c` in batch `k`.
    count: Vec<u32>,
    caps: Vec<u32>,
    members: Vec<Vec<usize>>,
}

impl Fill {
    fn new(n: usize, b: usize, caps: Vec<u32>) -> Self {
        Self {
            b,
            lo: (n / b) as u32,
            extra: n % b,
            at_hi: 0,
            size: vec![0; b],
            count: vec![0; caps.len() * b],
            caps,
            members: vec![Vec::new(); b],
        }
    }

    fn has_room(&self, k: usize) -> bool {
        let s = self.size[k];
        s < self.lo || (s == self.lo && self.at_hi < self.extra)
    }

    fn cluster_room(&self, k: usize, c: usize) -> bool {
        self.count[c * self.b + k] < self.caps[c]
    }

    fn fits(&self, k: usize, c: usize) -> bool {
        self.has_room(k) && self.cluster_room(k, c)
    }

    fn add(&mut self, k: usize, c: usize, i: usize) {
        if self.size[k] == self.lo {
            self.at_hi += 1;
        }
        self.size[k] += 1;
        self.count[c * self.b + k] += 1;
        self.members[k].push(i);
    }

    fn remove(&mut self, k: usize, c: usize, i: usize) {
        self.size[k] -= 1;
        if self.size[k] == self.lo {
            self.at_hi -= 1;
        }
        self.count[c * self.b + k] -= 1;
        let pos = self.members[k]
            .iter()
            .position(|&m| m == i)
            .expect("a removed service is a member");
        self.members[k].swap_remove(pos);
    }

    /// The batch with room where cluster `c` has the fewest services, then the smallest batch,
    /// then the earliest.
    fn best_fit(&self, c: usize) -> Option<usize> {
        (0..self.b)
            .filter(|&k| self.fits(k, c))
            .min_by_key(|&k| (self.count[c * self.b + k], self.size[k], k))
    }

    /// No batch has room for both the batch and cluster `c`: move one service of another
    /// cluster from a batch where `c` has room to a batch with room, and return the batch
    /// freed for `c`.
    fn make_room(
        &mut self,
        c: usize,
        cluster_of: &[usize],
        batch_of: &mut [Option<u32>],
    ) -> Option<usize> {
        for y in 0..self.b {
            if !self.cluster_room(y, c) {
                continue;
            }
            for x in 0..self.b {
                if x == y || !self.has_room(x) {
                    continue;
                }
                let movable = self.members[y]
                    .iter()
                    .copied()
                    .find(|&t| cluster_of[t] != c && self.cluster_room(x, cluster_of[t]));
                if let Some(t) = movable {
                    self.remove(y, cluster_of[t], t);
                    self.add(x, cluster_of[t], t);
                    batch_of[t] = Some(x as u32);
                    if self.fits(y, c) {
                        return Some(y);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn id(account: u32, cluster: u32, service: u32) -> ServiceId {
        ServiceId {
            account: format!("{account:012}").parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: format!("c{cluster}"),
            service: format!("s{service}"),
        }
    }

    fn params(hours: i64) -> PlanParams {
        let start: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        PlanParams {
            window: NightWindow {
                night: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
                start,
                end: start + TimeDelta::hours(hours),
            },
            interval: TimeDelta::minutes(10),
            default_duration: TimeDelta::minutes(10),
            timeout: TimeDelta::minutes(30),
        }
    }

    /// A fleet: `shape[c]` = services in cluster `c`; clusters spread over 3 accounts.
    fn fleet(shape: &[u32]) -> Vec<PlanService> {
        shape
            .iter()
            .enumerate()
            .flat_map(|(c, &k)| {
                (0..k).map(move |s| PlanService {
                    id: id(c as u32 % 3, c as u32, s),
                    desired: 2,
                    recent_duration: None,
                    previous_batch: None,
                })
            })
            .collect()
    }

    fn with_previous(services: &[PlanService], plan: &Plan) -> Vec<PlanService> {
        services
            .iter()
            .zip(&plan.assignment)
            .map(|(s, &b)| PlanService {
                previous_batch: Some(b),
                ..s.clone()
            })
            .collect()
    }

    /// Any instant chrono knows.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            Just(DateTime::<Utc>::MIN_UTC),
            Just(DateTime::<Utc>::MAX_UTC),
            (DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
                .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            (1_700_000_000i64..1_900_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        ]
    }

    /// Any length, sub-second and negative ones included.
    fn length() -> impl Strategy<Value = TimeDelta> {
        prop_oneof![
            Just(TimeDelta::MAX),
            Just(TimeDelta::MIN),
            Just(TimeDelta::zero()),
            (-2_000i64..2_000).prop_map(TimeDelta::milliseconds),
            (0i64..100_000).prop_map(TimeDelta::seconds),
            any::<i64>().prop_map(TimeDelta::milliseconds),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any window, interval, durations and previous batches: a plan or an error, never a
        /// panic.
        #[test]
        fn any_parameters_give_a_plan_or_an_error(
            start in instant(),
            end in instant(),
            interval in length(),
            default_duration in length(),
            timeout in length(),
            shape in prop::collection::vec(1u32..4, 0..6),
            recent in prop::collection::vec(prop::option::of(length()), 0..20),
            previous in prop::collection::vec(prop::option::of(any::<u32>()), 0..20),
        ) {
            let p = PlanParams {
                window: NightWindow { night: start.date_naive(), start, end },
                interval,
                default_duration,
                timeout,
            };
            let services: Vec<PlanService> = fleet(&shape)
                .into_iter()
                .enumerate()
                .map(|(i, s)| PlanService {
                    recent_duration: recent.get(i).copied().flatten(),
                    previous_batch: previous.get(i).copied().flatten(),
                    ..s
                })
                .collect();
            if let Ok(plan) = plan(&services, &p) {
                prop_assert_eq!(plan.assignment.len(), services.len());
                for b in &plan.batches {
                    prop_assert!(p.window.start <= b.start_at && b.start_at <= p.window.end);
                }
            }
        }
    }

    #[test]
    fn a_sub_second_interval_is_refused() {
        let mut p = params(6);
        p.interval = TimeDelta::milliseconds(500);
        assert_eq!(plan(&fleet(&[3]), &p).unwrap_err(), PlanError::Interval(0));
    }

    /// Asserts invariants 1-4; returns nothing, panics with the violated one.
    fn check_invariants(services: &[PlanService], p: &PlanParams, plan: &Plan) {
        let b = plan.batches.len();
        assert_eq!(
            plan.assignment.len(),
            services.len(),
            "one batch per service"
        );
        assert_eq!(b, b.min(services.len()));
        let mut sizes = vec![0u32; b];
        let mut per_cluster: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (s, &k) in services.iter().zip(&plan.assignment) {
            assert!((k as usize) < b, "batch {k} out of range");
            sizes[k as usize] += 1;
            per_cluster
                .entry(s.id.cluster_key())
                .or_insert_with(|| vec![0; b])[k as usize] += 1;
        }
        for (k, batch) in plan.batches.iter().enumerate() {
            assert_eq!(batch.batch as usize, k);
            assert_eq!(batch.size, sizes[k]);
            assert!(batch.size > 0, "no empty batch");
            assert_eq!(batch.start_at, p.window.start + p.interval * k as i32);
        }
        if let (Some(mn), Some(mx)) = (sizes.iter().min(), sizes.iter().max()) {
            assert!(mx - mn <= 1, "sizes {sizes:?} differ by more than one");
        }
        for (cluster, counts) in per_cluster {
            let n_c: u32 = counts.iter().sum();
            let cap = n_c.div_ceil(b as u32);
            assert!(
                counts.iter().all(|&x| x <= cap),
                "cluster {cluster} has {counts:?}, cap {cap}"
            );
        }
        if let Some(last) = plan.batches.last() {
            assert!(
                last.start_at + plan.allowance <= p.window.end,
                "last batch too late"
            );
        }
    }

    #[test]
    fn six_hour_window_with_thirty_minute_allowance_has_34_slots() {
        let p = params(6);
        assert_eq!(slots(&p, TimeDelta::minutes(30)).unwrap(), 34);
        assert_eq!(slots(&p, TimeDelta::zero()).unwrap(), 37);
        let services = fleet(&[500]);
        let plan = plan(&services, &p).unwrap();
        // Default duration 10 min: (360 - 10) / 10 + 1 = 36 batches.
        assert_eq!(plan.batches.len(), 36);
        assert_eq!(
            plan.batches[35].start_at.to_rfc3339(),
            "2026-11-22T05:50:00+00:00"
        );
        check_invariants(&services, &p, &plan);
    }

    #[test]
    fn long_recent_restarts_pull_the_last_batch_earlier_up_to_the_timeout() {
        let p = params(6);
        let mut services = fleet(&[100]);
        services[7].recent_duration = Some(TimeDelta::minutes(25));
        assert_eq!(
            plan(&services, &p).unwrap().allowance,
            TimeDelta::minutes(25)
        );
        services[7].recent_duration = Some(TimeDelta::hours(3));
        let plan = plan(&services, &p).unwrap();
        assert_eq!(plan.allowance, TimeDelta::minutes(30));
        assert_eq!(plan.batches.len(), 34);
    }

    #[test]
    fn a_recent_duration_of_zero_counts_as_unknown() {
        let p = params(6);
        let mut services = fleet(&[100]);
        for s in &mut services {
            s.recent_duration = Some(TimeDelta::zero());
        }
        // Taken at its word, zero would let the last batch start at the window's end.
        let zeros = plan(&services, &p).unwrap();
        assert_eq!(zeros.allowance, p.default_duration);
        assert_eq!(zeros.batches.len(), 36);
        assert_eq!(zeros, plan(&fleet(&[100]), &p).unwrap());
        check_invariants(&services, &p, &zeros);
        services[3].recent_duration = Some(TimeDelta::seconds(-5));
        assert_eq!(plan(&services, &p).unwrap().allowance, p.default_duration);
        // A measured duration among them still counts, short or long.
        services[7].recent_duration = Some(TimeDelta::minutes(25));
        assert_eq!(
            plan(&services, &p).unwrap().allowance,
            TimeDelta::minutes(25)
        );
        for s in &mut services {
            s.recent_duration = Some(TimeDelta::seconds(30));
        }
        assert_eq!(
            plan(&services, &p).unwrap().allowance,
            TimeDelta::seconds(30)
        );
    }

    #[test]
    fn few_services_get_one_batch_each_and_none_gets_none() {
        let p = params(6);
        let services = fleet(&[2, 1]);
        let plan = plan(&services, &p).unwrap();
        assert_eq!(plan.batches.len(), 3);
        check_invariants(&services, &p, &plan);
        assert!(super::plan(&[], &p).unwrap().batches.is_empty());
    }

    #[test]
    fn sub_minute_intervals_start_batches_between_minutes() {
        // The local stack's compressed night: a 4-minute window, batches 15 s apart, a
        // 1-minute restart timeout.
        let mut p = params(6);
        p.window.end = p.window.start + TimeDelta::minutes(4);
        p.interval = TimeDelta::seconds(15);
        p.timeout = TimeDelta::minutes(1);
        assert_eq!(slots(&p, TimeDelta::minutes(1)).unwrap(), 13);
        let services = fleet(&[55, 40, 8, 8, 8, 1]);
        let plan = plan(&services, &p).unwrap();
        assert_eq!(plan.allowance, TimeDelta::minutes(1));
        let starts: Vec<String> = plan
            .batches
            .iter()
            .map(|b| b.start_at.format("%H:%M:%S").to_string())
            .collect();
        assert_eq!(
            starts,
            [
                "00:00:00", "00:00:15", "00:00:30", "00:00:45", "00:01:00", "00:01:15", "00:01:30",
                "00:01:45", "00:02:00", "00:02:15", "00:02:30", "00:02:45", "00:03:00",
            ]
        );
        check_invariants(&services, &p, &plan);
        // An interval that does not divide the minute: 7 s, every start a whole second.
        p.interval = TimeDelta::seconds(7);
        let plan = super::plan(&services, &p).unwrap();
        assert_eq!(plan.batches.len(), 26, "(240 - 60) / 7 + 1");
        assert_eq!(
            plan.batches[25].start_at.to_rfc3339(),
            "2026-11-22T00:02:55+00:00"
        );
        check_invariants(&services, &p, &plan);
    }

    #[test]
    fn a_window_shorter_than_a_restart_is_refused() {
        let mut p = params(6);
        p.window.end = p.window.start + TimeDelta::minutes(5);
        let err = plan(&fleet(&[3]), &p).unwrap_err();
        assert!(err.to_string().contains("shorter than the 10 min"), "{err}");
    }

    #[test]
    fn the_previous_plan_is_kept_exactly_when_nothing_changed() {
        let p = params(6);
        let services = fleet(&[40, 7, 300, 1, 1, 90]);
        let first = plan(&services, &p).unwrap();
        let again = plan(&with_previous(&services, &first), &p).unwrap();
        assert_eq!(again.assignment, first.assignment);
        assert_eq!(again.kept_previous, services.len());
    }

    #[test]
    fn a_big_cluster_is_spread_evenly() {
        let p = params(6);
        let services = fleet(&[72, 1]);
        let plan = plan(&services, &p).unwrap();
        check_invariants(&services, &p, &plan);
    }

    #[test]
    fn the_round_robin_fallback_keeps_every_invariant() {
        let p = params(6);
        let services = fleet(&[100, 3, 71, 1, 36, 37]);
        let mut order: Vec<usize> = (0..services.len()).collect();
        order.sort_by(|&a, &b| services[a].id.cmp(&services[b].id));
        let assignment = round_robin(&order, 36, services.len());
        let mut batches: Vec<PlannedBatch> = (0..36u32)
            .map(|k| PlannedBatch {
                batch: k,
                start_at: p.window.start + p.interval * k as i32,
                size: 0,
            })
            .collect();
        for &k in &assignment {
            batches[k as usize].size += 1;
        }
        let plan = Plan {
            batches,
            assignment,
            kept_previous: 0,
            allowance: p.default_duration,
        };
        check_invariants(&services, &p, &plan);
    }

    fn shape() -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(
            prop_oneof![3 => 1u32..6, 2 => 6u32..40, 1 => 40u32..400],
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn invariants_hold_for_any_fleet(shape in shape(), hours in 1i64..10) {
            let p = params(hours);
            let services = fleet(&shape);
            let plan = plan(&services, &p).unwrap();
            check_invariants(&services, &p, &plan);
        }

        #[test]
        fn invariants_hold_with_any_previous_plan(
            shape in shape(),
            prev in prop::collection::vec(prop::option::of(0u32..50), 0..3000),
            hours in 1i64..10,
        ) {
            let p = params(hours);
            let mut services = fleet(&shape);
            for (s, pb) in services.iter_mut().zip(prev.iter().cycle()) {
                s.previous_batch = *pb;
            }
            let plan = plan(&services, &p).unwrap();
            check_invariants(&services, &p, &plan);
        }

        #[test]
        fn deterministic_whatever_the_input_order(shape in shape(), seed in any::<u64>()) {
            let p = params(6);
            let services = fleet(&shape);
            let first = plan(&services, &p).unwrap();
            let mut shuffled: Vec<(PlanService, u32)> =
                services.iter().cloned().zip(first.assignment.iter().copied()).collect();
            // Fisher-Yates with a splitmix64 stream.
            let mut x = seed;
            for i in (1..shuffled.len()).rev() {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                shuffled.swap(i, (z ^ (z >> 31)) as usize % (i + 1));
            }
            let input: Vec<PlanService> = shuffled.iter().map(|(s, _)| s.clone()).collect();
            let again = plan(&input, &p).unwrap();
            for ((_, expected), got) in shuffled.iter().zip(&again.assignment) {
                prop_assert_eq!(expected, got);
            }
            prop_assert_eq!(plan(&services, &p).unwrap(), first);
        }

        /// When 5% of the fleet changes (services removed and others added), at least 90% of
        /// the services that did not change keep their batch.
        #[test]
        fn stable_when_five_percent_of_the_fleet_changes(
            shape in prop::collection::vec(1u32..60, 5..60),
            pick in any::<u64>(),
            added_to_new_cluster in any::<bool>(),
        ) {
            let p = params(6);
            let services = fleet(&shape);
            prop_assume!(services.len() >= 40);
            let first = plan(&services, &p).unwrap();
            let mut tonight = with_previous(&services, &first);
            let changes = (services.len() / 20).max(1);
            let removed = changes / 2 + changes % 2;
            // Remove `removed` services spread across the fleet.
            let step = tonight.len() / removed;
            let offset = (pick as usize) % step.max(1);
            let gone: Vec<usize> = (0..removed).map(|j| offset + j * step).collect();
            tonight = tonight
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !gone.contains(i))
                .map(|(_, s)| s)
                .collect();
            for a in 0..changes - removed {
                let cluster = if added_to_new_cluster { 10_000 } else { (pick as u32 + a as u32) % shape.len() as u32 };
                tonight.push(PlanService {
                    id: id(cluster % 3, cluster, 100_000 + a as u32),
                    desired: 1,
                    recent_duration: None,
                    previous_batch: None,
                });
            }
            let second = plan(&tonight, &p).unwrap();
            check_invariants(&tonight, &p, &second);
            let unchanged: Vec<(u32, u32)> = tonight.iter().zip(&second.assignment)
                .filter_map(|(s, &b)| s.previous_batch.map(|pb| (pb, b)))
                .collect();
            let kept = unchanged.iter().filter(|(a, b)| a == b).count();
            prop_assert!(kept * 10 >= unchanged.len() * 9,
                "only {} of {} unchanged services kept their batch", kept, unchanged.len());
        }
    }
}
