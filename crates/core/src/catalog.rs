//! The catalog: what the orchestrator knows about each discovered service (docs/design.md 3.7).
//!
//! Inventory writes one [`CatalogRecord`] per service it discovers; the batcher reads them to
//! plan the night. A service that a reachable account no longer has is marked gone
//! (`gone_since`), never deleted, so its history stays readable. Each night's run is kept as
//! an [`InventoryRun`]: the targets reached and unreachable, and the counts.

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
    /// The enrollment tag's value as discovered (`None`: absent).
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
    pub last_seen: NaiveDate,
    /// The night discovery first missed it in a reachable account.
    pub gone_since: Option<NaiveDate>,
    /// How long its last completed restart took, written by the restarter.
    pub last_restart_seconds: Option<u32>,
}

impl CatalogRecord {
    /// The record for a service discovered on `night`, keeping what the previous record knew
    /// (first sighting, restart duration).
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
            last_restart_seconds: previous.and_then(|p| p.last_restart_seconds),
        }
    }

    /// Whether two records say the same about the service, ignoring when it was last seen:
    /// a rerun that finds nothing new writes nothing.
    pub fn same_facts(&self, other: &CatalogRecord) -> bool {
        Self {
            last_seen: other.last_seen,
            ..self.clone()
        } == *other
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
    pub written: u64,
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
