//! The time limits an invocation keeps, whatever its calls take:
//! - it ends itself inside Lambda's timeout (300 s, which the state machine does not retry: it
//!   would fail the batch for every account): a poll over an account where each TagResource
//!   takes 90 s (the member ECS operation timeout spent in retries) tags what its budget allows
//!   and leaves the rest `started`, to the next poll;
//! - it sends no UpdateService after the window's end, however long the account's pace made it
//!   wait: the window is looked at after the pace, right before each UpdateService.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use restart_core::Config;
use restart_core::catalog::CatalogRecord;
use restart_core::clock::{Clock, ManualClock};
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{ControlError, FleetControl, NightStore};
use restart_core::service::*;
use restart_core::tag::Tags;
use restarter::{INVOCATION_BUDGET, Output, Restarter, START_BUDGET};
use serde_json::json;
use testkit::fakes::SharedStore;
use testkit::fixtures::{active_snapshot, enrolled_record, primary_deployment, service_id};

const OURS: &str = "ecs-svc/ours";
const TAG: &str = "ecs_task_daily_restart";
const TAG_TAKES: Duration = Duration::from_secs(90);
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(300);

/// ECS where every restart of ours has completed, and each TagResource takes 90 s.
#[derive(Debug, Default)]
struct SlowTags {
    tagged: Mutex<Vec<String>>,
}

impl FleetControl for SlowTags {
    async fn describe(&self, services: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        Ok(services
            .iter()
            .map(|id| steady(id, OURS, "2026-11-22T00:10:00Z", Tags::new()))
            .collect())
    }

    async fn force_new_deployment(&self, _: &ServiceId) -> Result<String, ControlError> {
        Ok(OURS.into())
    }

    async fn tag(&self, arn: &ServiceArn, _: &str, _: &str) -> Result<(), ControlError> {
        tokio::time::sleep(TAG_TAKES).await;
        self.tagged.lock().unwrap().push(arn.to_string());
        Ok(())
    }
}

/// A steady service whose only deployment, `deployment`, was created at `created` and
/// completed five minutes later.
fn steady(id: &ServiceId, deployment: &str, created: &str, tags: Tags) -> ServiceSnapshot {
    let created = at(created);
    ServiceSnapshot {
        deployments: vec![primary_deployment(
            deployment,
            RolloutState::Completed,
            created,
            created + chrono::TimeDelta::minutes(5),
        )],
        ..active_snapshot(id.clone(), tags)
    }
}

/// The window 00:00-06:00 UTC.
fn config() -> Arc<Config> {
    Arc::new(
        Config::from_vars([
            ("TABLE_NAME", "t"),
            ("ACCOUNTS", "111111111111"),
            ("REGIONS", "eu-west-1"),
            ("MEMBER_ROLE_NAME", "member"),
            ("WINDOW_START", "00:00"),
            ("WINDOW_END", "06:00"),
        ])
        .unwrap(),
    )
}

fn night() -> NaiveDate {
    "2026-11-22".parse().unwrap()
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// Batch 0 with `n` restarts of one cluster started at 00:10, each with our deployment
/// (`started`), or planned.
async fn store(n: usize, started: bool) -> SharedStore {
    let store = SharedStore::default();
    let start_at = at("2026-11-22T00:10:00Z");
    store
        .put_batches(
            night(),
            &[PlannedBatch {
                batch: 0,
                start_at,
                size: n as u32,
            }],
        )
        .await
        .unwrap();
    let records: Vec<NightRecord> = (0..n)
        .map(|i| {
            let catalog: CatalogRecord = enrolled_record(
                service_id("111111111111", "c", &format!("s{i}")),
                "team",
                night(),
            );
            let mut record = NightRecord::planned(&catalog, night(), 0, start_at);
            if started {
                record.state = NightState::Started;
                record.started_at = Some(start_at);
                record.deployment_id = Some(OURS.into());
            }
            record
        })
        .collect();
    store.create_records(&records).await.unwrap();
    store
}

#[tokio::test(start_paused = true)]
async fn a_poll_of_a_slow_account_ends_inside_the_lambda_timeout_and_the_next_tags_the_rest() {
    let n = 6;
    let store = store(n, true).await;
    let r = Restarter {
        config: config(),
        fleet: SlowTags::default(),
        store: store.clone(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T00:20:00Z"))),
        guards: std::sync::Arc::new(restart_core::guard::NoGuards),
        budget: START_BUDGET,
    };
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(
            polls <= n,
            "the restarts were not all tagged after {n} polls"
        );
        let began = tokio::time::Instant::now();
        let out = r
            .handle(json!({ "mode": "poll", "night": night(), "batch": 0 }))
            .await
            .unwrap();
        let took = began.elapsed();
        // No call begins past the budget; the one under way may still take its 90 s.
        assert!(
            took <= INVOCATION_BUDGET + TAG_TAKES && took < LAMBDA_TIMEOUT,
            "poll {polls} took {took:?}"
        );
        let Output::Poll(out) = out else {
            panic!("a poll answered {out:?}")
        };
        let completed = out.counts.get(&NightState::Completed).copied().unwrap_or(0);
        // Each record is completed only once its tag is written, never before.
        assert_eq!(completed as usize, r.fleet.tagged.lock().unwrap().len());
        if polls == 1 {
            assert!(!out.done, "six 90 s tags fit no invocation");
            assert!(completed > 0, "the first poll tags what its budget allows");
        }
        if out.done {
            break;
        }
    }
    let records = store.read_night(night()).await.unwrap();
    assert!(records.iter().all(|r| r.state == NightState::Completed));
    let mut tagged = r.fleet.tagged.lock().unwrap().clone();
    tagged.sort();
    tagged.dedup();
    assert_eq!(tagged.len(), n, "each service is tagged once");
}

/// Wall time that moves with tokio's (paused) clock, from `base`.
#[derive(Debug)]
struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::TimeDelta::from_std(self.start.elapsed()).unwrap()
    }
}

/// ECS of steady, enrolled services, where the account's pace lets one UpdateService through
/// every 2 s; it notes when each was sent.
#[derive(Debug)]
struct Paced {
    clock: Arc<TokioClock>,
    sent: Mutex<Vec<DateTime<Utc>>>,
}

impl FleetControl for Paced {
    async fn describe(&self, services: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        let enrolled: Tags = [(TAG.to_owned(), "enabled".to_owned())].into();
        Ok(services
            .iter()
            .map(|id| steady(id, "ecs-svc/old", "2026-10-01T00:00:00Z", enrolled.clone()))
            .collect())
    }

    async fn pace_update(&self, _: &ServiceId) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    async fn force_new_deployment(&self, id: &ServiceId) -> Result<String, ControlError> {
        let mut sent = self.sent.lock().unwrap();
        sent.push(self.clock.now());
        Ok(format!("ecs-svc/{}-{}", id.service, sent.len()))
    }

    async fn tag(&self, _: &ServiceArn, _: &str, _: &str) -> Result<(), ControlError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn no_update_service_is_sent_after_the_window_however_long_the_pace_waited() {
    let n = 6;
    let store = store(n, false).await;
    let end = at("2026-11-22T06:00:00Z");
    // Five seconds before the window's end: two UpdateService fit, the third's pace ends after.
    let clock = Arc::new(TokioClock {
        base: end - chrono::TimeDelta::seconds(5),
        start: tokio::time::Instant::now(),
    });
    let r = Restarter {
        config: config(),
        fleet: Paced {
            clock: clock.clone(),
            sent: Mutex::new(Vec::new()),
        },
        store: store.clone(),
        clock,
        guards: std::sync::Arc::new(restart_core::guard::NoGuards),
        budget: START_BUDGET,
    };
    r.handle(json!({ "mode": "start", "night": night(), "batch": 0 }))
        .await
        .unwrap();
    let sent = r.fleet.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|t| *t < end), "{sent:?}");
    // The claim whose pace outlasted the window is given back unsent, and says why.
    let records = store.read_night(night()).await.unwrap();
    let given_back: Vec<&NightRecord> = records
        .iter()
        .filter(|r| r.state == NightState::Skipped)
        .collect();
    assert_eq!(given_back.len(), 1, "{records:?}");
    assert!(
        given_back[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("before UpdateService could be sent")),
        "{:?}",
        given_back[0]
    );
}
