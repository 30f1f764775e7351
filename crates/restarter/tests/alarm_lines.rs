//! The EMF lines the restarter's alarms watch (infra/template.yaml, "alarms"):
//! - `BatchesFailed`: one line per batch the state machine reports failed (mode `failed`), with
//!   the night, the batch and the caught error;
//! - `BatchesPastDeadline`: a poll that leaves a scheduled batch pending after the window's end
//!   plus the longer of the restart timeout and the claim lease plus two poll intervals; never before it, never for on-call's
//!   batches outside the window. A start after the window's end is never held by a pause, so
//!   it never waits past the deadline.
//!
//! Lines are read from `restart_core::telemetry`'s capture, which is process-wide: the tests of
//! this file take turns.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use restart_core::Config;
use restart_core::ErrorType;
use restart_core::catalog::CatalogRecord;
use restart_core::clock::ManualClock;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::{NightRecord, Pause};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{ControlError, FleetControl, NightStore, RestartStore};
use restart_core::service::*;
use restart_core::tag::Tags;
use restart_core::telemetry;
use restarter::Restarter;
use serde_json::{Value, json};
use testkit::fakes::SharedStore;
use testkit::fixtures::enrolled_record;

static TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const OURS: &str = "ecs-svc/ours";

/// ECS where every service's PRIMARY deployment is ours, still rolling.
#[derive(Debug)]
struct Rolling;

impl FleetControl for Rolling {
    async fn describe(&self, services: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        Ok(services
            .iter()
            .map(|id| ServiceSnapshot {
                arn: id.arn("aws"),
                id: id.clone(),
                status: ServiceStatus::Active,
                desired: 2,
                running: 1,
                scheduling: SchedulingStrategy::Replica,
                controller: DeploymentController::Ecs,
                min_healthy_percent: 100,
                max_percent: 200,
                deployments: vec![Deployment {
                    id: OURS.into(),
                    status: DeploymentStatus::Primary,
                    rollout_state: Some(RolloutState::InProgress),
                    desired: 2,
                    running: 1,
                    created_at: None,
                    updated_at: None,
                    task_definition: None,
                    rollback: false,
                }],
                tags: Tags::new(),
                deployment_alarms: Vec::new(),
            })
            .collect())
    }

    async fn force_new_deployment(&self, _: &ServiceId) -> Result<String, ControlError> {
        Ok(OURS.into())
    }

    async fn tag(&self, _: &ServiceArn, _: &str, _: &str) -> Result<(), ControlError> {
        Ok(())
    }
}

fn night() -> NaiveDate {
    "2026-11-22".parse().unwrap()
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// Window 00:00-06:00 UTC, restart timeout 30 minutes: the deadline is 06:30.
fn config() -> Config {
    config_with_timeout("30")
}

/// The same window with a restart timeout of `minutes`.
fn config_with_timeout(minutes: &str) -> Config {
    Config::from_vars([
        ("TABLE_NAME", "t"),
        ("ACCOUNTS", "111111111111"),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
        ("WINDOW_START", "00:00"),
        ("WINDOW_END", "06:00"),
        ("RESTART_TIMEOUT_MINUTES", minutes),
    ])
    .unwrap()
}

/// Batch 0 of the night with one restart started at `started`, still rolling.
async fn store(started: DateTime<Utc>) -> SharedStore {
    store_with(started, Some(OURS)).await
}

/// Batch 0 of the night with one record started at `started` whose deployment is `deployment`
/// (`None`: a claim whose UpdateService has not answered, its lease taken at `started`).
async fn store_with(started: DateTime<Utc>, deployment: Option<&str>) -> SharedStore {
    let store = SharedStore::default();
    let id = ServiceId {
        account: "111111111111".parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: "c".into(),
        service: "s".into(),
    };
    let catalog: CatalogRecord = enrolled_record(id, "team", night());
    store
        .put_batches(
            night(),
            &[PlannedBatch {
                batch: 0,
                start_at: at("2026-11-22T00:10:00Z"),
                size: 1,
            }],
        )
        .await
        .unwrap();
    let mut record = NightRecord::planned(&catalog, night(), 0, at("2026-11-22T00:10:00Z"));
    record.state = NightState::Started;
    record.started_at = Some(started);
    record.deployment_id = deployment.map(Into::into);
    record.lease_at = deployment.is_none().then_some(started);
    store.create_records(&[record]).await.unwrap();
    store
}

fn restarter(store: SharedStore, now: &str) -> Restarter<Rolling, SharedStore> {
    Restarter {
        config: Arc::new(config()),
        fleet: Rolling,
        store,
        clock: Arc::new(ManualClock::new(at(now))),
        guards: std::sync::Arc::new(restart_core::guard::NoGuards),
        budget: Duration::from_secs(10),
    }
}

/// The captured lines that carry `metric`, as JSON.
fn with_metric(lines: &[String], metric: &str) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get(metric).is_some())
        .collect()
}

/// `BatchesPastDeadline` of the lines of one invocation: the sum of their values.
fn past_deadline(lines: &[String]) -> f64 {
    with_metric(lines, "BatchesPastDeadline")
        .iter()
        .map(|v| v["BatchesPastDeadline"].as_f64().unwrap())
        .sum()
}

async fn poll(r: &Restarter<Rolling, SharedStore>, outside_window: bool) -> Vec<String> {
    telemetry::capture();
    let out = r
        .handle(json!({"mode": "poll", "night": "2026-11-22", "batch": 0,
                       "outside_window": outside_window}))
        .await
        .unwrap();
    let lines = telemetry::captured();
    let restarter::Output::Poll(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(out.pending, 1, "{out:?}");
    lines
}

#[tokio::test]
async fn a_batch_still_pending_after_the_deadline_is_counted_at_each_poll() {
    let _turn = TURNS.lock().await;
    // Started at 06:35 (a stuck record): its own timeout is far, the night's deadline is past.
    let store = store(at("2026-11-22T06:35:00Z")).await;
    let late = restarter(store.clone(), "2026-11-22T06:40:00Z");
    let lines = poll(&late, false).await;
    assert_eq!(past_deadline(&lines), 1.0, "{lines:#?}");
    assert_eq!(with_metric(&lines, "BatchesDone")[0]["BatchesDone"], 0.0);
    // Every poll while it stays stuck.
    assert_eq!(past_deadline(&poll(&late, false).await), 1.0);
    // On-call's batch outside the window has no deadline.
    assert_eq!(past_deadline(&poll(&late, true).await), 0.0);
}

#[tokio::test]
async fn a_claim_under_its_lease_after_a_short_timeout_is_not_past_the_deadline() {
    let _turn = TURNS.lock().await;
    // Claimed in the window's last seconds and its UpdateService not answered: no deployment
    // yet, and only the claim's holder may act on it until its lease (330 s) lapses, which is
    // past the window's end plus a 1-minute timeout plus two poll intervals (06:03).
    let store = store_with(at("2026-11-22T05:59:50Z"), None).await;
    let with = |now: &str| Restarter {
        config: Arc::new(config_with_timeout("1")),
        ..restarter(store.clone(), now)
    };
    // 06:04: the lease still holds it; the night is not stuck.
    assert_eq!(
        past_deadline(&poll(&with("2026-11-22T06:04:00Z"), false).await),
        0.0
    );
    // The deadline is the window's end plus the lease plus two intervals, 06:07:30: a claim
    // still held after it (its lease taken over again at 06:03) counts.
    let store = store_with(at("2026-11-22T06:03:00Z"), None).await;
    let late = Restarter {
        config: Arc::new(config_with_timeout("1")),
        ..restarter(store, "2026-11-22T06:07:40Z")
    };
    let lines = poll(&late, false).await;
    assert_eq!(past_deadline(&lines), 1.0, "{lines:#?}");
}

#[tokio::test]
async fn a_batch_pending_before_the_deadline_is_not_counted() {
    let _turn = TURNS.lock().await;
    let store = store(at("2026-11-22T06:10:00Z")).await;
    let lines = poll(&restarter(store, "2026-11-22T06:29:00Z"), false).await;
    let line = &with_metric(&lines, "BatchesPastDeadline")[0];
    assert_eq!(line["BatchesPastDeadline"], 0.0, "{line}");
    assert_eq!(line["Function"], "restarter");
}

#[tokio::test]
async fn a_start_after_the_window_is_not_held_by_a_pause() {
    let _turn = TURNS.lock().await;
    let store = store(at("2026-11-22T05:50:00Z")).await;
    store
        .set_pause(Some(&Pause {
            reason: "maintenance".into(),
            by: "alice".into(),
            at: at("2026-11-22T05:00:00Z"),
        }))
        .await
        .unwrap();
    let start = json!({"mode": "start", "night": "2026-11-22", "batch": 0});
    // Inside the window a pause holds the start.
    let err = restarter(store.clone(), "2026-11-22T05:55:00Z")
        .handle(start.clone())
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::Paused);
    // After it nothing can start: the batch goes on to judge what is in flight and ends,
    // instead of waiting on a resume (a pause that outlives the window once looped until the
    // execution's history was full), and no alarm counts it.
    for now in ["2026-11-22T06:20:00Z", "2026-11-22T06:40:00Z"] {
        telemetry::capture();
        let out = restarter(store.clone(), now)
            .handle(start.clone())
            .await
            .unwrap();
        let lines = telemetry::captured();
        assert!(matches!(out, restarter::Output::Start(_)), "{now}: {out:?}");
        assert_eq!(past_deadline(&lines), 0.0, "{now}: {lines:#?}");
    }
}

#[tokio::test]
async fn a_failed_batch_is_logged_and_counted_once_without_touching_the_store() {
    let _turn = TURNS.lock().await;
    let store = SharedStore::default();
    let r = restarter(store.clone(), "2026-11-22T02:00:00Z");
    let cause = format!("{{\"errorMessage\": \"{}\"}}", "x".repeat(5_000));
    telemetry::capture();
    let out = r
        .handle(json!({"mode": "failed", "night": "2026-11-22", "batch": 7,
                       "error": {"Error": "Unexpected", "Cause": cause}}))
        .await
        .unwrap();
    let lines = telemetry::captured();
    let restarter::Output::Failed(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (out.night, out.batch, out.error.as_str()),
        (night(), 7, "Unexpected")
    );
    let failed = with_metric(&lines, "BatchesFailed");
    assert_eq!(failed.len(), 1, "{lines:#?}");
    let line = &failed[0];
    assert_eq!(line["BatchesFailed"], 1.0);
    assert_eq!(line["Function"], "restarter");
    assert_eq!(line["night"], "2026-11-22");
    assert_eq!(line["batch"], 7);
    assert_eq!(line["error"], "Unexpected");
    assert!(line["cause"].as_str().unwrap().chars().count() <= 2_001);
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"],
        json!([{"Name": "BatchesFailed", "Unit": "Count"}])
    );
    // Nothing was read or written: a failure can be recorded whatever the store's state.
    assert_eq!(store.night_writes(), 0);

    // The state machine passes the caught object as it is: either field may be missing.
    telemetry::capture();
    let out = r
        .handle(json!({"mode": "failed", "night": "2026-11-22", "batch": 7, "error": {}}))
        .await
        .unwrap();
    let _ = telemetry::captured();
    let restarter::Output::Failed(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(out.error, "unknown");
}
