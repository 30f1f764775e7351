//! Work done cluster by cluster: records grouped by cluster, how many clusters are worked on at
//! once, and what the work came to ([`Tally`]).

use std::collections::{BTreeMap, VecDeque};

use restart_core::HandlerError;
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;

use crate::claim::Begun;

/// How many clusters are worked on at once. Calls stay paced per account and region, so this
/// only bounds the tasks waiting for their account's tokens: a cluster keeps its slot while it
/// waits, and with too few slots the accounts' waits add up instead of overlapping (measured
/// in docs/performance.md). It also bounds the requests in flight, hence the sockets a
/// container opens (Lambda allows 1,024 file descriptors).
pub(crate) const CLUSTER_CONCURRENCY: usize = 256;

/// What working through records did (one invocation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) started: u64,
    pub(crate) deferred: u64,
    pub(crate) skipped: u64,
    pub(crate) refused: u64,
    pub(crate) halted: u64,
    /// Planned restarts a blocking alarm (or a guard that cannot be read) held back; counted in
    /// `deferred` too.
    pub(crate) held: u64,
    pub(crate) outcomes: BTreeMap<NightState, u64>,
    pub(crate) tag_failures: u64,
    /// 1 when a poll leaves its scheduled batch pending past the night's deadline
    /// (`Restarter::deadline`).
    pub(crate) past_deadline: u64,
    /// 1 when a poll finds its batch done (the state machine stops polling it then).
    pub(crate) batch_done: u64,
    /// UpdateService was denied: the account was lost (its other planned restarts end
    /// `skipped/account_unreachable` too).
    pub(crate) unreachable: Option<String>,
}

impl Tally {
    pub(crate) fn add(&mut self, other: Tally) {
        self.started += other.started;
        self.deferred += other.deferred;
        self.skipped += other.skipped;
        self.refused += other.refused;
        self.halted += other.halted;
        self.held += other.held;
        self.tag_failures += other.tag_failures;
        self.past_deadline += other.past_deadline;
        self.batch_done += other.batch_done;
        if self.unreachable.is_none() {
            self.unreachable = other.unreachable;
        }
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
    }
}

impl Tally {
    /// Counts what one start came to (a full cluster defers it).
    pub(crate) fn begun(&mut self, begun: Begun) {
        match begun {
            Begun::Started(_) => self.started += 1,
            Begun::Refused(_) => self.refused += 1,
            Begun::Unreachable(m) => {
                self.skipped += 1;
                self.unreachable = Some(m);
            }
            Begun::TooLate => self.skipped += 1,
            Begun::ClusterFull => self.deferred += 1,
            Begun::Pending | Begun::Moved(_) => {}
        }
    }
}

/// The tallies of every cluster, or the first error.
pub(crate) fn sum(results: Vec<Result<Tally, HandlerError>>) -> Result<Tally, HandlerError> {
    let mut tally = Tally::default();
    for r in results {
        tally.add(r?);
    }
    Ok(tally)
}

/// Records grouped by cluster (`ServiceId::cluster_key`), in a stable order that takes one
/// cluster of each account and region in turn: the [`CLUSTER_CONCURRENCY`] clusters worked on
/// at once then spread over the accounts, each paced on its own, instead of queueing on the
/// tokens of the few accounts that sort first (at 200 accounts that queueing made a batch's
/// start 8× its pacing floor).
pub(crate) fn by_cluster(records: Vec<NightRecord>) -> Vec<Vec<NightRecord>> {
    let mut groups: BTreeMap<String, Vec<NightRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.id.cluster_key()).or_default().push(r);
    }
    let mut per_target: BTreeMap<(String, String), VecDeque<Vec<NightRecord>>> = BTreeMap::new();
    for group in groups.into_values() {
        let id = &group[0].id;
        per_target
            .entry((id.account.to_string(), id.region.clone()))
            .or_default()
            .push_back(group);
    }
    let mut out = Vec::new();
    while !per_target.is_empty() {
        per_target.retain(|_, clusters| {
            out.extend(clusters.pop_front());
            !clusters.is_empty()
        });
    }
    out
}

/// The span of the work on one group of [`by_cluster`]: X-Ray's subsegment of its account and
/// region, with the cluster (a disabled span, costing nothing, when tracing is off).
pub(crate) fn account_span(group: &[NightRecord]) -> tracing::Span {
    match group.first() {
        Some(r) => tracing::trace_span!(
            "xray.account",
            account = %r.id.account,
            region = %r.id.region,
            cluster = %r.id.cluster,
        ),
        None => tracing::Span::none(),
    }
}

/// The cluster of a group of services, for logs.
pub(crate) fn ids_cluster(ids: &[ServiceId]) -> String {
    ids.first().map_or_else(String::new, ServiceId::cluster_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(account: u8, cluster: u8, service: u8) -> NightRecord {
        let id = testkit::fixtures::service_id(
            &format!("{:012}", 100_000_000_000 + u64::from(account)),
            &format!("c{cluster}"),
            &format!("s{service}"),
        );
        let night = "2026-11-22".parse().unwrap();
        let catalog = testkit::fixtures::enrolled_record(id, "team", night);
        NightRecord::planned(&catalog, night, 0, "2026-11-22T00:00:00Z".parse().unwrap())
    }

    proptest! {
        /// Every record is kept, grouped by its cluster, and the first clusters come from as
        /// many accounts as there are.
        #[test]
        fn clusters_take_turns_across_accounts(
            services in prop::collection::vec((0u8..6, 0u8..5, 0u8..4), 0..80)
        ) {
            let records: Vec<NightRecord> =
                services.iter().map(|&(a, c, s)| record(a, c, s)).collect();
            let groups = by_cluster(records.clone());
            let mut flat: Vec<ServiceId> = groups.iter().flatten().map(|r| r.id.clone()).collect();
            let mut ids: Vec<ServiceId> = records.iter().map(|r| r.id.clone()).collect();
            flat.sort();
            ids.sort();
            prop_assert_eq!(flat, ids);
            for g in &groups {
                prop_assert!(g.iter().all(|r| r.id.cluster_key() == g[0].id.cluster_key()));
            }
            let accounts: std::collections::BTreeSet<String> =
                records.iter().map(|r| r.id.account.to_string()).collect();
            let first: std::collections::BTreeSet<String> = groups
                .iter()
                .take(accounts.len())
                .map(|g| g[0].id.account.to_string())
                .collect();
            prop_assert_eq!(first, accounts);
        }
    }
}
