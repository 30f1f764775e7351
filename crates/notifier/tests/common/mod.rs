//! What the notifier's tests share: a night with findings for three owners, and its config.
#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, Utc};
use restart_core::Config;
use restart_core::catalog::{CatalogRecord, InventoryCounts, InventoryRun, Target, Unreachable};
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::{NightRecord, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::owner::OwnerSource;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{CatalogStore, NightStore};
use restart_core::service::{DeploymentController, SchedulingStrategy, ServiceStatus};
use restart_core::tag::TagStateKind;

pub const A: &str = "111111111111";
pub const B: &str = "222222222222";
pub const OWNERS_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:owners";
pub const OPS_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ops";

pub fn day(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

pub fn night() -> NaiveDate {
    day("2026-11-22")
}

pub fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

pub fn config(table: &str, owners: Option<&str>, ops: Option<&str>) -> Config {
    let mut vars = vec![
        ("TABLE_NAME", table),
        ("ACCOUNTS", "111111111111,222222222222"),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
    ];
    if let Some(t) = owners {
        vars.push(("OWNER_TOPIC_ARN", t));
    }
    if let Some(t) = ops {
        vars.push(("OPS_TOPIC_ARN", t));
    }
    Config::from_vars(vars).unwrap()
}

pub fn id(account: &str, cluster: &str, service: &str) -> ServiceId {
    ServiceId {
        account: account.parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: cluster.into(),
        service: service.into(),
    }
}

pub fn catalog(
    sid: &ServiceId,
    owner: &str,
    tag: TagStateKind,
    value: Option<&str>,
    seen: NaiveDate,
) -> CatalogRecord {
    CatalogRecord {
        id: sid.clone(),
        arn: sid.arn("aws"),
        owner: owner.into(),
        owner_source: if owner == "unowned" {
            OwnerSource::Unowned
        } else {
            OwnerSource::ServiceTag
        },
        tag_value: value.map(str::to_owned),
        tag_state: tag,
        status: ServiceStatus::Active,
        desired: 2,
        scheduling: SchedulingStrategy::Replica,
        controller: DeploymentController::Ecs,
        min_healthy_percent: 100,
        max_percent: 200,
        skip_reason: None,
        first_seen: day("2026-01-01"),
        last_seen: seen,
        gone_since: None,
    }
}

/// A skipped record.
pub fn skipped(sid: &ServiceId, owner: &str, reason: SkipReason, on: NaiveDate) -> NightRecord {
    let c = catalog(sid, owner, TagStateKind::Enrolled, None, on);
    NightRecord::skipped(&c, on, reason)
}

/// A record of batch 0 that ended in `state`.
pub fn restarted(
    sid: &ServiceId,
    owner: &str,
    state: NightState,
    seconds: u32,
    detail: Option<&str>,
    on: NaiveDate,
) -> NightRecord {
    let c = catalog(sid, owner, TagStateKind::Enrolled, None, on);
    let start = on.and_hms_opt(0, 10, 0).unwrap().and_utc();
    let mut r = NightRecord::planned(&c, on, 0, start);
    r.state = state;
    if state != NightState::Planned {
        r.started_at = Some(start);
        r.deployment_id = Some(format!("ecs-svc/{}", sid.service));
        r.finished_at = Some(start + chrono::TimeDelta::seconds(i64::from(seconds)));
        r.duration_seconds = (state == NightState::Completed).then_some(seconds);
        r.detail = detail.map(str::to_owned);
    }
    r
}

/// Writes a night: catalog, records, the batch, the plan summary and the inventory run.
pub async fn write_night<S: CatalogStore + NightStore>(
    store: &S,
    on: NaiveDate,
    catalog: &[CatalogRecord],
    records: &[NightRecord],
    planned: bool,
) {
    store.put_catalog(catalog).await.unwrap();
    let in_batch = records.iter().filter(|r| r.batch.is_some()).count() as u32;
    store
        .put_batches(
            on,
            &[PlannedBatch {
                batch: 0,
                start_at: on.and_hms_opt(0, 10, 0).unwrap().and_utc(),
                size: in_batch,
            }],
        )
        .await
        .unwrap();
    store.create_records(records).await.unwrap();
    if planned {
        store
            .put_plan_summary(&PlanSummary {
                night: on,
                batches: 1,
                planned: u64::from(in_batch),
                skipped: records.len() as u64 - u64::from(in_batch),
                written_at: on.and_hms_opt(0, 2, 0).unwrap().and_utc(),
            })
            .await
            .unwrap();
    }
    store
        .put_inventory_run(&InventoryRun {
            night: on,
            started_at: on.and_hms_opt(0, 0, 5).unwrap().and_utc(),
            finished_at: on.and_hms_opt(0, 1, 40).unwrap().and_utc(),
            reached: vec![Target { account: A.parse().unwrap(), region: "eu-west-1".into() }],
            unreachable: vec![Unreachable {
                account: B.parse().unwrap(),
                region: "us-east-1".into(),
                error: "access denied: AssumeRole on arn:aws:iam::222222222222:role/member: AccessDenied".into(),
            }],
            counts: InventoryCounts::default(),
        })
        .await
        .unwrap();
}

/// The night of the tests: payments in two accounts (tag missing, a failed restart, a
/// downtime risk), search (CodeDeploy, a malformed tag), an unowned service with an old ARN,
/// and services that give no finding (completed, opted out).
pub fn scenario(on: NaiveDate) -> (Vec<CatalogRecord>, Vec<NightRecord>) {
    let api = id(A, "payments", "api");
    let worker = id(A, "payments", "worker");
    let ledger = id(B, "payments-b", "ledger");
    let idx = id(B, "search", "indexer");
    let web = id(B, "search", "web");
    let legacy = id(A, "legacy", "billing");
    let quiet = id(A, "payments", "quiet");
    let out = id(B, "search", "batch");
    let catalog = vec![
        catalog(&api, "payments", TagStateKind::Untagged, None, on),
        catalog(
            &worker,
            "payments",
            TagStateKind::Enrolled,
            Some("2026-11-21T00:31:07Z"),
            on,
        ),
        catalog(
            &ledger,
            "payments",
            TagStateKind::Enrolled,
            Some("enabled"),
            on,
        ),
        catalog(&idx, "search", TagStateKind::Enrolled, Some("enabled"), on),
        catalog(&web, "search", TagStateKind::Malformed, Some("yes"), on),
        catalog(&legacy, "unowned", TagStateKind::Untagged, None, on),
        catalog(
            &quiet,
            "payments",
            TagStateKind::Enrolled,
            Some("enabled"),
            on,
        ),
        catalog(&out, "search", TagStateKind::OptedOut, Some("disabled"), on),
    ];
    let records = vec![
        skipped(&api, "payments", SkipReason::Untagged, on),
        restarted(
            &worker,
            "payments",
            NightState::Failed,
            610,
            Some(
                "deployment ecs-svc/worker: rolloutState FAILED (tasks failed to start: CannotPullContainerError)",
            ),
            on,
        ),
        skipped(&ledger, "payments", SkipReason::DowntimeRisk, on),
        skipped(&idx, "search", SkipReason::ControllerCodeDeploy, on),
        restarted(&web, "search", NightState::Completed, 312, None, on),
        skipped(&legacy, "unowned", SkipReason::NeedsLongArn, on),
        restarted(&quiet, "payments", NightState::Completed, 401, None, on),
        skipped(&out, "search", SkipReason::OptedOut, on),
    ];
    (catalog, records)
}
