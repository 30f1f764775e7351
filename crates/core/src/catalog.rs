//! The catalog: what the orchestrator knows about each discovered service (docs/design.md 3.7).
//!
//! Inventory keeps one [`CatalogRecord`] per service it discovers; the batcher reads them to
//! plan the night. A record is written only when what it says about the service changes (new,
//! changed, gone, back): that a service was seen on a night comes from the night its account
//! and region were last listed completely ([`Listed`]), kept once per account and region, so an
//! unchanged fleet costs no write per service. A service that a reachable account no longer has
//! is marked gone (`gone_since`), never deleted, so its history stays readable. Each night's run
//! is kept as an [`InventoryRun`]: the targets reached and unreachable, and the counts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::eligibility::SkipReason;
use crate::ids::{AccountId, ServiceArn, ServiceId};
use crate::owner::OwnerSource;
use crate::service::{DeploymentController, SchedulingStrategy, ServiceSnapshot, ServiceStatus};
use crate::tag::{TagState, TagStateKind, Tags};

/// A service as discovered: its description and its cluster's tags (for owner resolution).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredService {
    pub snapshot: ServiceSnapshot,
    pub cluster_tags: Tags,
}

/// One (account, region) pair to discover.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    pub account: AccountId,
    pub region: String,
}

/// An account (in a region) that could not be inventoried, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    pub account: AccountId,
    pub region: String,
    pub error: String,
}

/// The catalog's record of one service. Field names are the table's attribute names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRecord {
    pub id: ServiceId,
    pub arn: ServiceArn,
    pub owner: String,
    pub owner_source: OwnerSource,
    /// The enrollment tag's value as discovered when the record was written (`None`: absent).
    /// A restart time replaced by a later one is not a change ([`CatalogRecord::same_facts`]):
    /// the time kept may be an earlier restart's (each restart's own is in its night record).
    pub tag_value: Option<String>,
    pub tag_state: TagStateKind,
    pub status: ServiceStatus,
    pub desired: u32,
    pub scheduling: SchedulingStrategy,
    pub controller: DeploymentController,
    pub min_healthy_percent: u32,
    pub max_percent: u32,
    /// Why it would be skipped, judged at discovery (the live check before a restart decides).
    pub skip_reason: Option<SkipReason>,
    pub first_seen: NaiveDate,
    /// The last night discovery found it: the night its record was last written, or, for a
    /// service not gone, the night its account and region were last listed completely
    /// ([`Listed`]) when that is later. The store derives it when it reads the catalog.
    pub last_seen: NaiveDate,
    /// The night discovery first missed it in a reachable account.
    pub gone_since: Option<NaiveDate>,
}

/// The last night an account and region were listed completely: every service found that night
/// has a catalog record holding what was found, so an unchanged one was seen that night
/// without its record being written again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub target: Target,
    pub night: NaiveDate,
}

impl Listed {
    /// `record` as read with its target's listing: `last_seen` is the later of the record's
    /// own and `listed` (the night the record's account and region were last listed), unless
    /// the record is gone (a gone service was not seen by a later listing).
    pub fn seen(mut record: CatalogRecord, listed: Option<NaiveDate>) -> CatalogRecord {
        if record.gone_since.is_none()
            && let Some(night) = listed
        {
            record.last_seen = record.last_seen.max(night);
        }
        record
    }
}

impl CatalogRecord {
    /// The record for a service discovered on `night`, keeping what the previous record knew
    /// (its first sighting).
    pub fn discovered(
        d: &DiscoveredService,
        tag_key: &str,
        tag: &TagState,
        owner: (String, OwnerSource),
        skip_reason: Option<SkipReason>,
        night: NaiveDate,
        previous: Option<&CatalogRecord>,
    ) -> Self {
        let s = &d.snapshot;
        Self {
            id: s.id.clone(),
            arn: s.arn.clone(),
            owner: owner.0,
            owner_source: owner.1,
            tag_value: s.tags.get(tag_key).cloned(),
            tag_state: tag.kind(),
            status: s.status,
            desired: s.desired,
            scheduling: s.scheduling,
            controller: s.controller,
            min_healthy_percent: s.min_healthy_percent,
            max_percent: s.max_percent,
            skip_reason,
            first_seen: previous.map_or(night, |p| p.first_seen),
            last_seen: night,
            gone_since: None,
        }
    }

    /// Whether two records say the same about the service, ignoring when it was last seen and
    /// which restart time an enrolled tag holds: a night (or a rerun) that finds nothing new
    /// writes nothing, and neither does the restart time the orchestrator tags every restarted
    /// service with.
    pub fn same_facts(&self, other: &CatalogRecord) -> bool {
        let tag_value = if self.restart_time() && other.restart_time() {
            other.tag_value.clone()
        } else {
            self.tag_value.clone()
        };
        Self {
            last_seen: other.last_seen,
            tag_value,
            ..self.clone()
        } == *other
    }

    /// Whether the enrollment tag holds a restart time (`enrolled`, last verified restart).
    fn restart_time(&self) -> bool {
        self.tag_state == TagStateKind::Enrolled
            && self
                .tag_value
                .as_deref()
                .is_some_and(|v| DateTime::parse_from_rfc3339(v.trim()).is_ok())
    }
}

/// Counts of an inventory run, small enough for a state payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryCounts {
    pub services: u64,
    pub by_tag_state: BTreeMap<TagStateKind, u64>,
    pub by_skip_reason: BTreeMap<SkipReason, u64>,
    pub eligible: u64,
    pub gone: u64,
    /// Catalog records written: new, changed, gone or back.
    pub written: u64,
}

impl InventoryCounts {
    /// Counts a service found tonight, by its record.
    pub fn count(&mut self, r: &CatalogRecord) {
        self.services += 1;
        *self.by_tag_state.entry(r.tag_state).or_default() += 1;
        match r.skip_reason {
            Some(reason) => *self.by_skip_reason.entry(reason).or_default() += 1,
            None => self.eligible += 1,
        }
    }

    /// Adds `other`'s counts (another account's) to these.
    pub fn add(&mut self, other: &InventoryCounts) {
        self.services += other.services;
        for (k, n) in &other.by_tag_state {
            *self.by_tag_state.entry(*k).or_default() += n;
        }
        for (k, n) in &other.by_skip_reason {
            *self.by_skip_reason.entry(*k).or_default() += n;
        }
        self.eligible += other.eligible;
        self.gone += other.gone;
        self.written += other.written;
    }
}

/// The record of one night's inventory run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRun {
    pub night: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub reached: Vec<Target>,
    pub unreachable: Vec<Unreachable>,
    pub counts: InventoryCounts,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::AccountId;

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    fn record() -> CatalogRecord {
        let id = ServiceId {
            account: "111111111111".parse::<AccountId>().unwrap(),
            region: "eu-west-1".into(),
            cluster: "payments".into(),
            service: "api".into(),
        };
        CatalogRecord {
            arn: id.arn("aws"),
            id,
            owner: "payments".into(),
            owner_source: OwnerSource::ServiceTag,
            tag_value: Some("2026-12-06T01:10:00Z".into()),
            tag_state: TagStateKind::Enrolled,
            status: ServiceStatus::Active,
            desired: 2,
            scheduling: SchedulingStrategy::Replica,
            controller: DeploymentController::Ecs,
            min_healthy_percent: 100,
            max_percent: 200,
            skip_reason: None,
            first_seen: day("2026-11-01"),
            last_seen: day("2026-12-06"),
            gone_since: None,
        }
    }

    #[test]
    fn a_new_restart_time_or_a_later_sighting_is_no_change_and_other_facts_are() {
        let r = record();
        let restarted = CatalogRecord {
            tag_value: Some(" 2026-12-07T02:33:12Z".into()),
            last_seen: day("2026-12-07"),
            ..r.clone()
        };
        assert!(r.same_facts(&restarted) && restarted.same_facts(&r));
        for changed in [
            CatalogRecord {
                tag_value: Some("enabled".into()),
                ..r.clone()
            },
            CatalogRecord {
                tag_value: Some("disabled".into()),
                tag_state: TagStateKind::OptedOut,
                ..r.clone()
            },
            CatalogRecord {
                tag_value: None,
                tag_state: TagStateKind::Untagged,
                ..r.clone()
            },
            CatalogRecord {
                desired: 3,
                ..r.clone()
            },
            CatalogRecord {
                gone_since: Some(day("2026-12-07")),
                ..r.clone()
            },
        ] {
            assert!(
                !r.same_facts(&changed) && !changed.same_facts(&r),
                "{changed:?}"
            );
        }
        // A malformed value is quoted to its owner as written: each one is a change.
        let malformed = |v: &str| CatalogRecord {
            tag_value: Some(v.into()),
            tag_state: TagStateKind::Malformed,
            ..r.clone()
        };
        assert!(!malformed("yes").same_facts(&malformed("true")));
    }

    #[test]
    fn a_listing_moves_last_seen_forward_only_for_services_not_gone() {
        let r = record();
        assert_eq!(
            Listed::seen(r.clone(), Some(day("2026-12-07"))).last_seen,
            day("2026-12-07")
        );
        assert_eq!(
            Listed::seen(r.clone(), Some(day("2026-12-01"))).last_seen,
            day("2026-12-06")
        );
        assert_eq!(Listed::seen(r.clone(), None), r);
        let gone = CatalogRecord {
            gone_since: Some(day("2026-12-07")),
            ..r
        };
        assert_eq!(Listed::seen(gone.clone(), Some(day("2026-12-08"))), gone);
    }

    fn any_record() -> impl Strategy<Value = CatalogRecord> {
        (
            prop::option::of(prop_oneof![
                Just("enabled".to_owned()),
                Just("2026-12-06T01:10:00Z".to_owned()),
                Just("2026-12-07T03:00:00+01:00".to_owned()),
                "\\PC{0,6}",
            ]),
            prop::sample::select(TagStateKind::ALL.to_vec()),
            0u32..4,
            prop::option::of(0u32..3),
            0u32..3,
        )
            .prop_map(
                |(tag_value, tag_state, desired, gone, seen)| CatalogRecord {
                    tag_value,
                    tag_state,
                    desired,
                    gone_since: gone.map(|d| day("2026-12-05") + chrono::Days::new(d.into())),
                    last_seen: day("2026-12-05") + chrono::Days::new(seen.into()),
                    ..record()
                },
            )
    }

    proptest! {
        /// `same_facts` is an equivalence that ignores `last_seen`: the inventory's "write only
        /// what changed" neither loses a change nor depends on the order it compares in.
        #[test]
        fn same_facts_is_symmetric_and_ignores_only_when_it_was_seen(
            a in any_record(),
            b in any_record(),
        ) {
            prop_assert_eq!(a.same_facts(&b), b.same_facts(&a));
            prop_assert!(a.same_facts(&a));
            let a_at_b = CatalogRecord { last_seen: b.last_seen, ..a.clone() };
            if a_at_b == b {
                prop_assert!(a.same_facts(&b));
            }
            if a.same_facts(&b) && a.tag_value == b.tag_value {
                prop_assert_eq!(a_at_b, b);
            }
        }

        /// A listing never moves `last_seen` back, and leaves a gone record as it was.
        #[test]
        fn a_listing_never_moves_last_seen_back(r in any_record(), listed in prop::option::of(0u64..5)) {
            let listed = listed.map(|d| day("2026-12-04") + chrono::Days::new(d));
            let seen = Listed::seen(r.clone(), listed);
            prop_assert!(seen.last_seen >= r.last_seen);
            prop_assert_eq!(CatalogRecord { last_seen: r.last_seen, ..seen.clone() }, r.clone());
            if r.gone_since.is_some() {
                prop_assert_eq!(seen, r);
            } else if let Some(l) = listed {
                prop_assert_eq!(seen.last_seen, r.last_seen.max(l));
            }
        }
    }
}
