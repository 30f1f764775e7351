//! Reading one night from the table, as `status`, `report` and `plan` show it.

use anyhow::Context;
use chrono::NaiveDate;
use restart_aws::dynamodb::DynamoStore;
use restart_core::guard::HoldSeen;
use restart_core::night::{NightRecord, NightStatus, Pause, PlanSummary};
use restart_core::planner::PlannedBatch;
use restart_core::ports::{NightStore, RestartStore};

/// What to check when the table cannot be read.
pub const HINT: &str = "check --table, --region and your credentials";

/// A night's plan: its summary (absent while the batcher has not finished) and its batches.
#[derive(Debug)]
pub struct Plan {
    pub summary: Option<PlanSummary>,
    pub batches: Vec<PlannedBatch>,
}

impl Plan {
    pub async fn read(store: &DynamoStore, night: NaiveDate) -> anyhow::Result<Plan> {
        let summary = store
            .plan_summary(night)
            .await
            .with_context(|| format!("reading night {night}'s plan; {HINT}"))?;
        let batches = store
            .read_batches(night)
            .await
            .with_context(|| format!("reading night {night}'s batches; {HINT}"))?;
        Ok(Plan { summary, batches })
    }
}

/// Everything the table holds about a night: the plan, every record, the counters and halt,
/// and the kill switch.
#[derive(Debug)]
pub struct NightData {
    pub plan: Plan,
    pub records: Vec<NightRecord>,
    pub status: NightStatus,
    pub paused: Option<Pause>,
    /// The holds the restarter met (blocking alarms, unreadable guards).
    pub holds: Vec<HoldSeen>,
}

impl NightData {
    pub async fn read(store: &DynamoStore, night: NaiveDate) -> anyhow::Result<NightData> {
        let plan = Plan::read(store, night).await?;
        let records = store
            .read_night(night)
            .await
            .with_context(|| format!("reading night {night}'s records; {HINT}"))?;
        let status = store
            .night_status(night)
            .await
            .with_context(|| format!("reading night {night}'s summary; {HINT}"))?;
        let paused = store
            .pause()
            .await
            .with_context(|| format!("reading the kill switch; {HINT}"))?;
        let holds = store
            .holds_seen(night)
            .await
            .with_context(|| format!("reading night {night}'s holds; {HINT}"))?;
        Ok(NightData {
            plan,
            records,
            status,
            paused,
            holds,
        })
    }

    /// Nothing planned and nothing recorded: the night has not begun (or never ran).
    pub fn is_empty(&self) -> bool {
        self.plan.summary.is_none() && self.plan.batches.is_empty() && self.records.is_empty()
    }
}
