//! A service's night record and the night's plan (DESIGN 3.6, 3.7).
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
    pub finished_at: Option<DateTime<Utc>>,
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
            id: catalog.id.clone(),
            arn: catalog.arn.clone(),
            night,
            batch: Some(batch),
            state: NightState::Planned,
            skip_reason: None,
            owner: catalog.owner.clone(),
            planned_start: Some(start),
            deployment_id: None,
            started_at: None,
            finished_at: None,
        }
    }

    /// A service not restarted tonight, and why.
    pub fn skipped(catalog: &CatalogRecord, night: NaiveDate, reason: SkipReason) -> Self {
        Self {
            id: catalog.id.clone(),
            arn: catalog.arn.clone(),
            night,
            batch: None,
            state: NightState::Skipped,
            skip_reason: Some(reason),
            owner: catalog.owner.clone(),
            planned_start: None,
            deployment_id: None,
            started_at: None,
            finished_at: None,
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
}

/// What a conditional creation of records did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    /// Records written.
    pub created: u64,
    /// Services whose record already existed: left untouched.
    pub existing: Vec<ServiceId>,
}
