//! `plan [--night D] [--service ARN | --batch N]`: the night's batches with start times in the
//! window's timezone and in UTC, their sizes, the services per account and cluster; or one
//! service's slot; or the services of one batch (one Query: `NightStore::read_batch`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use chrono::{DateTime, NaiveDate, Utc};
use restart_core::eligibility::SkipReason;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::{NightRecord, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{NightStore, RestartStore};
use serde::Serialize;

use crate::cli::PlanArgs;
use crate::night::{HINT, Plan};
use crate::render::{local, or_dash, print_json, table, utc};
use crate::services::{self, ServiceRow};
use crate::settings::Settings;

#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub night: NaiveDate,
    pub timezone: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub summary: Option<PlanSummary>,
    pub batches: Vec<BatchPlan>,
    pub clusters: Vec<ClusterPlan>,
    /// Restarts the night did not need: the owners deployed the service within
    /// `SKIP_IF_DEPLOYED_WITHIN_HOURS` before its live check (`recently_deployed`).
    pub saved: u64,
    /// Planned restarts a change freeze ended (`change_freeze`).
    pub frozen: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchPlan {
    pub batch: u32,
    pub start_at: DateTime<Utc>,
    pub start_local: String,
    pub size: u32,
    pub accounts: usize,
    pub clusters: usize,
}

/// One cluster's services in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterPlan {
    pub account: String,
    pub region: String,
    pub cluster: String,
    pub services: u64,
    pub skipped: u64,
    pub batches: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSlot {
    pub night: NaiveDate,
    pub service_arn: String,
    pub batch: Option<u32>,
    pub start_at: Option<DateTime<Utc>>,
    pub start_local: Option<String>,
    pub state: NightState,
    pub skip_reason: Option<SkipReason>,
    pub owner: String,
}

impl PlanView {
    pub fn build(
        settings: &Settings,
        night: NaiveDate,
        summary: Option<PlanSummary>,
        batches: &[PlannedBatch],
        records: &[NightRecord],
    ) -> Self {
        let tz = settings.window.timezone();
        let w = settings.window.night(night);
        let mut per_batch: BTreeMap<u32, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        let mut clusters: BTreeMap<(String, String, String), ClusterPlan> = BTreeMap::new();
        for r in records {
            let key = (
                r.id.account.to_string(),
                r.id.region.clone(),
                r.id.cluster.clone(),
            );
            let c = clusters.entry(key.clone()).or_insert_with(|| ClusterPlan {
                account: key.0.clone(),
                region: key.1.clone(),
                cluster: key.2.clone(),
                services: 0,
                skipped: 0,
                batches: Vec::new(),
            });
            match r.batch {
                Some(b) => {
                    c.services += 1;
                    if !c.batches.contains(&b) {
                        c.batches.push(b);
                    }
                    let e = per_batch.entry(b).or_default();
                    e.0.insert(r.id.account.to_string());
                    e.1.insert(r.id.cluster_key());
                }
                None => c.skipped += 1,
            }
        }
        for c in clusters.values_mut() {
            c.batches.sort_unstable();
        }
        let batches = batches
            .iter()
            .map(|b| {
                let (accounts, clusters) = per_batch.remove(&b.batch).unwrap_or_default();
                BatchPlan {
                    batch: b.batch,
                    start_at: b.start_at,
                    start_local: local(b.start_at, tz),
                    size: b.size,
                    accounts: accounts.len(),
                    clusters: clusters.len(),
                }
            })
            .collect();
        let skipped = |reason| {
            records
                .iter()
                .filter(|r| r.skip_reason == Some(reason))
                .count() as u64
        };
        Self {
            saved: skipped(SkipReason::RecentlyDeployed),
            frozen: skipped(SkipReason::ChangeFreeze),
            night,
            timezone: tz.name().to_owned(),
            window_start: w.start,
            window_end: w.end,
            summary,
            batches,
            clusters: clusters.into_values().collect(),
        }
    }

    pub fn render(&self, settings: &Settings) -> String {
        let tz = settings.window.timezone();
        let mut out = format!(
            "Night {}  window {} - {} ({} - {})\n",
            self.night,
            local(self.window_start, tz),
            local(self.window_end, tz),
            utc(self.window_start),
            utc(self.window_end)
        );
        out += &match &self.summary {
            Some(s) => format!(
                "{} batches, {} services planned, {} skipped\n\n",
                s.batches, s.planned, s.skipped
            ),
            None => "The plan is not completely written yet (the batcher is running or \
                     stopped half-way)\n\n"
                .to_owned(),
        };
        if self.saved > 0 {
            out += &format!(
                "{} restart(s) saved: their owners deployed them within \
                 SKIP_IF_DEPLOYED_WITHIN_HOURS before the live check (recently_deployed)\n",
                self.saved
            );
        }
        if self.frozen > 0 {
            out += &format!(
                "{} planned restart(s) not started: the change calendar was CLOSED \
                 (change_freeze)\n",
                self.frozen
            );
        }
        if self.saved + self.frozen > 0 {
            out += "\n";
        }
        let mut b = table([
            "batch",
            &format!("start ({})", self.timezone),
            "start (UTC)",
            "size",
            "accounts",
            "clusters",
        ]);
        for x in &self.batches {
            b.add_row(vec![
                x.batch.to_string(),
                x.start_local.clone(),
                utc(x.start_at),
                x.size.to_string(),
                x.accounts.to_string(),
                x.clusters.to_string(),
            ]);
        }
        out += &format!("{b}\n\n");
        let mut c = table([
            "account", "region", "cluster", "services", "skipped", "batches",
        ]);
        for x in &self.clusters {
            c.add_row(vec![
                x.account.clone(),
                x.region.clone(),
                x.cluster.clone(),
                x.services.to_string(),
                x.skipped.to_string(),
                x.batches
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ]);
        }
        out += &format!("{c}\n");
        out
    }
}

/// One batch and its services (`plan --batch N`).
#[derive(Debug, Clone, Serialize)]
pub struct BatchView {
    pub night: NaiveDate,
    pub batch: u32,
    pub start_at: DateTime<Utc>,
    pub start_local: String,
    /// The size the batcher planned.
    pub size: u32,
    pub services: Vec<ServiceRow>,
}

impl BatchView {
    pub fn render(&self) -> String {
        let mut out = format!(
            "Night {}  batch {}  starts {} ({}), {} service{} planned\n\n",
            self.night,
            self.batch,
            self.start_local,
            utc(self.start_at),
            self.size,
            if self.size == 1 { "" } else { "s" }
        );
        out += &services::render(&self.services);
        out
    }
}

/// `plan --batch N`: the batch's services, after checking that the night has that batch.
async fn batch(
    settings: &Settings,
    store: &restart_aws::dynamodb::DynamoStore,
    night: NaiveDate,
    batch: u32,
) -> anyhow::Result<BatchView> {
    let plan = Plan::read(store, night).await?;
    let Some(planned) = plan.batches.iter().find(|b| b.batch == batch) else {
        if plan.batches.is_empty() {
            anyhow::bail!(
                "night {night} has no plan in table {}: there is no batch {batch} to list. The \
                 batcher writes the plan when the night's execution starts (window {}). Pick \
                 another night with --night.",
                store.table(),
                settings.window
            );
        }
        let numbers: Vec<String> = plan.batches.iter().map(|b| b.batch.to_string()).collect();
        anyhow::bail!(
            "night {night} has no batch {batch}: its batches are {}",
            numbers.join(", ")
        );
    };
    let records = store
        .read_batch(night, batch)
        .await
        .with_context(|| format!("reading night {night}'s batch {batch}; {HINT}"))?;
    Ok(BatchView {
        night,
        batch,
        start_at: planned.start_at,
        start_local: local(planned.start_at, settings.window.timezone()),
        size: planned.size,
        services: services::rows(&records, &[]),
    })
}

/// The identity of a long-format ARN, or a message saying why there is none.
pub fn service_id(arn: &ServiceArn) -> anyhow::Result<ServiceId> {
    ServiceId::from_arn(arn).ok_or_else(|| {
        anyhow!(
            "{arn} is an old-format ARN (no cluster name): the orchestrator never restarts such \
             services (needs_long_arn). Give the long ARN, \
             arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE"
        )
    })
}

pub async fn run(settings: &Settings, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let night = settings.night(args.night);
    let store = settings.store()?;
    if let Some(arn) = &args.service {
        let id = service_id(arn)?;
        let r = store
            .find_record(night, &id)
            .await
            .with_context(|| format!("reading {arn}'s record of night {night}; {HINT}"))?
            .ok_or_else(|| {
                anyhow!(
                    "{arn} is not in night {night}'s plan (planned or skipped): inventory did not \
                     see it that night. Check the ARN, `restartctl history --service {arn}`, and \
                     that its account is one of the hub's ACCOUNTS"
                )
            })?;
        let tz = settings.window.timezone();
        let slot = ServiceSlot {
            night,
            service_arn: r.arn.to_string(),
            batch: r.batch,
            start_at: r.planned_start,
            start_local: r.planned_start.map(|t| local(t, tz)),
            state: r.state,
            skip_reason: r.skip_reason,
            owner: r.owner,
        };
        if settings.json() {
            print_json(&slot)?;
        } else {
            let mut t = table([
                "night",
                "service",
                "batch",
                "start",
                "start (UTC)",
                "state",
                "skip reason",
                "owner",
            ]);
            t.add_row(vec![
                night.to_string(),
                slot.service_arn.clone(),
                or_dash(slot.batch),
                or_dash(slot.start_local.clone()),
                or_dash(slot.start_at.map(utc)),
                slot.state.to_string(),
                or_dash(slot.skip_reason),
                slot.owner.clone(),
            ]);
            println!("{t}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(n) = args.batch {
        let view = batch(settings, &store, night, n).await?;
        if settings.json() {
            print_json(&view)?;
        } else {
            print!("{}", view.render());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let plan = Plan::read(&store, night).await?;
    if plan.summary.is_none() && plan.batches.is_empty() {
        anyhow::bail!(
            "night {night} has no plan in table {}: the batcher writes it when the night's \
             execution starts (window {}). Pick another night with --night.",
            store.table(),
            settings.window
        );
    }
    let records = store
        .read_night(night)
        .await
        .with_context(|| format!("reading night {night}'s records; {HINT}"))?;
    let view = PlanView::build(settings, night, plan.summary, &plan.batches, &records);
    if settings.json() {
        print_json(&view)?;
    } else {
        print!("{}", view.render(settings));
    }
    Ok(ExitCode::SUCCESS)
}
