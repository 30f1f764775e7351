//! Work done cluster by cluster: records grouped by cluster, how many clusters are worked on at
//! once, and what the work came to ([`Tally`]).

use std::collections::BTreeMap;

use restart_core::HandlerError;
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;

/// How many clusters are worked on at once. Calls stay paced per account and region, so this
/// only bounds the tasks waiting for their account's tokens: a cluster keeps its slot while it
/// waits, and with too few slots the accounts' waits add up instead of overlapping (measured
/// in docs/performance.md).
pub(crate) const CLUSTER_CONCURRENCY: usize = 128;

/// What working through records did (one invocation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) started: u64,
    pub(crate) deferred: u64,
    pub(crate) skipped: u64,
    pub(crate) refused: u64,
    pub(crate) halted: u64,
    pub(crate) outcomes: BTreeMap<NightState, u64>,
    pub(crate) tag_failures: u64,
    /// 1 when a poll leaves its scheduled batch pending past the night's deadline
    /// (`Restarter::deadline`).
    pub(crate) past_deadline: u64,
    /// 1 when a poll finds its batch done (the state machine stops polling it then).
    pub(crate) batch_done: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, other: Tally) {
        self.started += other.started;
        self.deferred += other.deferred;
        self.skipped += other.skipped;
        self.refused += other.refused;
        self.halted += other.halted;
        self.tag_failures += other.tag_failures;
        self.past_deadline += other.past_deadline;
        self.batch_done += other.batch_done;
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
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

/// Records grouped by cluster (`ServiceId::cluster_key`), in a stable order.
pub(crate) fn by_cluster(records: Vec<NightRecord>) -> Vec<Vec<NightRecord>> {
    let mut groups: BTreeMap<String, Vec<NightRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.id.cluster_key()).or_default().push(r);
    }
    groups.into_values().collect()
}

/// The cluster of a group of services, for logs.
pub(crate) fn ids_cluster(ids: &[ServiceId]) -> String {
    ids.first().map_or_else(String::new, ServiceId::cluster_key)
}
