//! The night's last step (`close`): what a batch left unfinished when it failed for good is
//! judged and ended before the owners hear and the summary counts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use restart_core::Config;
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{ControlError, FleetControl, NightStore, RestartStore};
use restart_core::service::*;
use restart_core::tag::Tags;
use restarter::{Output, Restarter};
use serde_json::json;
use testkit::fakes::SharedStore;
use testkit::fixtures::{active_snapshot, enrolled_record, primary_deployment, service_id};

/// ECS where every service's deployment `ecs-svc/<service>` completed at 00:20.
#[derive(Debug)]
struct Completed;

impl FleetControl for Completed {
    async fn describe(&self, services: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        Ok(services
            .iter()
            .map(|id| ServiceSnapshot {
                deployments: vec![primary_deployment(
                    format!("ecs-svc/{}", id.service),
                    RolloutState::Completed,
                    at("2026-11-22T00:10:00Z"),
                    at("2026-11-22T00:20:00Z"),
                )],
                ..active_snapshot(id.clone(), Tags::new())
            })
            .collect())
    }

    async fn force_new_deployment(&self, id: &ServiceId) -> Result<String, ControlError> {
        Err(ControlError::Unexpected(format!(
            "{id}: nothing may start after the window"
        )))
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

fn restarter(store: SharedStore, now: &str) -> Restarter<Completed, SharedStore> {
    Restarter {
        config: Arc::new(
            Config::from_vars([
                ("TABLE_NAME", "t"),
                ("ACCOUNTS", "111111111111"),
                ("REGIONS", "eu-west-1"),
                ("MEMBER_ROLE_NAME", "member"),
                ("WINDOW_START", "00:00"),
                ("WINDOW_END", "01:00"),
            ])
            .unwrap(),
        ),
        fleet: Completed,
        store,
        clock: Arc::new(ManualClock::new(at(now))),
        guards: std::sync::Arc::new(restart_core::guard::NoGuards),
        budget: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn the_last_step_ends_what_a_failed_batch_left() {
    let store = SharedStore::default();
    let start = at("2026-11-22T00:10:00Z");
    let batches = [0, 1].map(|batch| PlannedBatch {
        batch,
        start_at: start,
        size: 2,
    });
    store.put_batches(night(), &batches).await.unwrap();
    let record = |batch: u32, name: &str| {
        let id = service_id("111111111111", "c", name);
        NightRecord::planned(&enrolled_record(id, "team", night()), night(), batch, start)
    };
    // Batch 0 finished; batch 1 failed after one restart started, with one still planned.
    let done = NightRecord {
        state: NightState::Completed,
        ..record(0, "done")
    };
    let planned = record(1, "planned");
    let claimed = record(1, "started");
    store
        .create_records(&[done.clone(), planned.clone(), claimed.clone()])
        .await
        .unwrap();
    let started = NightRecord {
        state: NightState::Started,
        started_at: Some(start),
        deployment_id: Some("ecs-svc/started".into()),
        ..claimed.clone()
    };
    let claim = NightRecord {
        deployment_id: None,
        ..started.clone()
    };
    assert_eq!(
        store.claim(Some(&claimed), &claim, 10).await.unwrap(),
        restart_core::ports::Claim::Claimed
    );
    assert!(store.record_deployment(&started).await.unwrap());

    let out = restarter(store.clone(), "2026-11-22T01:05:00Z")
        .handle(json!({"mode": "close", "night": "2026-11-22"}))
        .await
        .unwrap();
    let Output::Poll(out) = out else {
        panic!("{out:?}")
    };
    assert!(out.done, "{out:?}");
    let left = |name: &str| store.record(night(), &service_id("111111111111", "c", name));
    assert_eq!(left("started").unwrap().state, NightState::Completed);
    let planned = left("planned").unwrap();
    assert_eq!(
        (planned.state, planned.skip_reason),
        (NightState::Skipped, Some(SkipReason::WindowClosed))
    );
    assert_eq!(left("done").unwrap(), done);

    // Done at once the next time: nothing is left.
    let again = restarter(store.clone(), "2026-11-22T01:06:00Z")
        .handle(json!({"mode": "close", "night": "2026-11-22"}))
        .await
        .unwrap();
    assert!(matches!(again, Output::Poll(p) if p.done && p.pending == 0));
}
