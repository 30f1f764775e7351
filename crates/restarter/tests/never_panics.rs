//! Nothing fed from outside makes the restarter panic: any JSON event (any value, or objects
//! with `mode`, `night`, `batch`, `service_arn`, `force` and `error` holding wrong types, odd
//! dates, numbers at their limits, ARNs of every shape and text in any script), in every mode
//! (`start`, `poll`, `service`, `failed`), gives an output or a typed error, against a planned night
//! whose owners and tags are in any script and a fleet held in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batcher::Batcher;
use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;
use restart_core::clock::{Clock, ManualClock};
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::Pause;
use restart_core::ports::{CatalogStore, ControlError, FleetControl, RestartStore};
use restart_core::service::*;
use restart_core::tag::Tags;
use restart_core::{Config, ErrorType, HandlerError};
use restarter::Restarter;
use serde_json::{Value, json};
use testkit::fakes::SharedStore;
use testkit::fixtures::{active_snapshot, enrolled_record};
use testkit::runtime;
use testkit::strategies::{any_json, object, text};

const A: &str = "111111111111";
const SERVICES: usize = 12;

/// ECS held in memory: services by id; a forced deployment becomes the PRIMARY, and
/// completes, fails or stays in progress by the service's number.
#[derive(Debug, Default)]
struct Fleet {
    services: Mutex<HashMap<ServiceId, ServiceSnapshot>>,
    deployments: Mutex<u64>,
}

impl FleetControl for Fleet {
    async fn describe(&self, services: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        let known = self.services.lock().unwrap();
        Ok(services
            .iter()
            .filter_map(|id| known.get(id).cloned())
            .collect())
    }

    async fn force_new_deployment(&self, service: &ServiceId) -> Result<String, ControlError> {
        let mut known = self.services.lock().unwrap();
        let s = known.get_mut(service).ok_or_else(|| {
            ControlError::NotFound(format!("{service}: introuvable 見つかりません"))
        })?;
        let mut n = self.deployments.lock().unwrap();
        *n += 1;
        let id = format!("ecs-svc/{n}");
        for d in &mut s.deployments {
            d.status = DeploymentStatus::Active;
        }
        let state = match s.id.service.len() % 3 {
            0 => RolloutState::Completed,
            1 => RolloutState::Failed,
            _ => RolloutState::InProgress,
        };
        s.deployments.push(deployment(&id, state));
        if state != RolloutState::InProgress {
            s.deployments
                .retain(|d| d.status == DeploymentStatus::Primary || d.id == id);
            if let Some(d) = s.deployments.iter_mut().find(|d| d.id == id) {
                d.status = DeploymentStatus::Primary;
            }
        }
        Ok(id)
    }

    async fn tag(&self, service: &ServiceArn, key: &str, value: &str) -> Result<(), ControlError> {
        let mut known = self.services.lock().unwrap();
        if let Some(s) = known.values_mut().find(|s| &s.arn == service) {
            s.tags.insert(key.to_owned(), value.to_owned());
        }
        Ok(())
    }
}

fn deployment(id: &str, state: RolloutState) -> Deployment {
    Deployment {
        id: id.to_owned(),
        status: DeploymentStatus::Primary,
        rollout_state: Some(state),
        desired: 2,
        running: 2,
        created_at: Some("2026-11-01T00:00:00Z".parse().unwrap()),
        updated_at: None,
        task_definition: None,
        rollback: false,
    }
}

fn sid(i: usize) -> ServiceId {
    ServiceId {
        account: A.parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: format!("c{}", i % 3),
        // Lengths 1, 2, 3, ...: every kind of outcome (see `Fleet`).
        service: "s".repeat(i + 1),
    }
}

fn night() -> NaiveDate {
    "2026-11-22".parse().unwrap()
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// Object keys in any JSON: often the event's own.
const KEYS: &str = "mode|night|batch|service_arn|force|error|Error|Cause";

/// A value for one of the restarter's fields: the right kind (often valid for the seeded
/// night), or anything.
fn field(key: &'static str) -> BoxedStrategy<Value> {
    let right = match key {
        "mode" => {
            prop::sample::select(vec!["start", "poll", "service", "failed", "batch", "Start"])
                .prop_map(Value::from)
                .boxed()
        }
        "night" => prop_oneof![
            Just(json!("2026-11-22")),
            Just(json!("+262142-12-31")),
            Just(json!("-262143-01-01")),
            text().prop_map(Value::from),
        ]
        .boxed(),
        "batch" => prop_oneof![
            (0u32..4).prop_map(Value::from),
            Just(json!(u32::MAX)),
            Just(json!(u64::from(u32::MAX) + 1)),
            Just(json!(-1)),
            Just(json!(1.5)),
            Just(json!("0")),
        ]
        .boxed(),
        "service_arn" => prop_oneof![
            (0..SERVICES + 2).prop_map(|i| json!(sid(i).arn("aws").to_string())),
            (0..SERVICES).prop_map(|i| {
                let mut arn = sid(i).arn("aws");
                arn.cluster = None;
                json!(arn.to_string())
            }),
            text().prop_map(Value::from),
        ]
        .boxed(),
        // What a Catch gives the `failed` mode: {"Error", "Cause"}, either perhaps missing.
        "error" => (
            prop::option::of(text().prop_map(Value::from)),
            prop::option::of(text().prop_map(Value::from)),
        )
            .prop_map(|(e, c)| {
                let mut o = serde_json::Map::new();
                o.extend(e.map(|e| ("Error".to_owned(), e)));
                o.extend(c.map(|c| ("Cause".to_owned(), c)));
                Value::Object(o)
            })
            .boxed(),
        _ => any::<bool>().prop_map(Value::from).boxed(),
    };
    prop_oneof![4 => right, 1 => any_json(KEYS)].boxed()
}

/// The restarter's event: any JSON, or an object with any of its fields and perhaps another.
fn event() -> impl Strategy<Value = Value> {
    let structured = object(
        vec![
            ("mode", prop::option::weighted(0.9, field("mode")).boxed()),
            ("night", prop::option::weighted(0.8, field("night")).boxed()),
            ("batch", prop::option::of(field("batch")).boxed()),
            (
                "service_arn",
                prop::option::of(field("service_arn")).boxed(),
            ),
            ("force", prop::option::of(field("force")).boxed()),
            ("error", prop::option::of(field("error")).boxed()),
        ],
        prop::option::weighted(0.1, ("\\PC{1,8}", any_json(KEYS))).boxed(),
    );
    prop_oneof![1 => any_json(KEYS), 4 => structured]
}

fn config() -> Config {
    Config::from_vars([
        ("TABLE_NAME", "t"),
        ("ACCOUNTS", A),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
        ("BATCH_INTERVAL_MINUTES", "5"),
        ("MAX_INFLIGHT_PER_CLUSTER", "2"),
    ])
    .unwrap()
}

/// Tonight planned by the batcher over services owned by people named in any script, the
/// fleet that runs them, and a restarter on both.
fn seeded(
    owners: &[String],
    paused: bool,
) -> (tokio::runtime::Runtime, Restarter<Fleet, SharedStore>) {
    let rt = runtime();
    let store = SharedStore::default();
    let fleet = Fleet::default();
    let mut catalog = Vec::new();
    for i in 0..SERVICES {
        let id = sid(i);
        let owner = owners
            .get(i)
            .cloned()
            .unwrap_or_else(|| "決済チーム".into());
        let mut tags = Tags::new();
        tags.insert("ecs_task_daily_restart".into(), "enabled".into());
        tags.insert("owner".into(), owner.clone());
        fleet.services.lock().unwrap().insert(
            id.clone(),
            ServiceSnapshot {
                deployments: vec![deployment("ecs-svc/0", RolloutState::Completed)],
                ..active_snapshot(id.clone(), tags)
            },
        );
        catalog.push(enrolled_record(id, owner, night()));
    }
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at("2026-11-21T23:30:00Z")));
    rt.block_on(async {
        store.put_catalog(&catalog).await.unwrap();
        Batcher {
            config: Arc::new(config()),
            store: store.clone(),
            clock: clock.clone(),
        }
        .handle(json!({"night": "2026-11-22"}))
        .await
        .unwrap();
        if paused {
            let pause = Pause {
                reason: "réseau 🔧".into(),
                by: "アリス".into(),
                at: at("2026-11-22T00:01:00Z"),
            };
            store.set_pause(Some(&pause)).await.unwrap();
        }
    });
    let restarter = Restarter {
        config: Arc::new(config()),
        fleet,
        store,
        clock: Arc::new(ManualClock::new(at("2026-11-22T00:20:00Z"))),
        guards: std::sync::Arc::new(restart_core::guard::NoGuards),
        budget: Duration::from_secs(10),
    };
    (rt, restarter)
}

fn check<T>(event: &Value, result: Result<T, HandlerError>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => {
            let mode = event.get("mode").and_then(Value::as_str);
            prop_assert!(
                matches!(mode, Some("start" | "poll" | "service" | "failed")),
                "{event}"
            );
        }
        Err(e) => {
            prop_assert!(ErrorType::ALL.contains(&e.error_type));
            prop_assert!(!e.message.is_empty());
            if !event.is_object() {
                prop_assert_eq!(e.error_type, ErrorType::InvalidInput, "{}", e.message);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A sequence of events against the same night: each gives an output or a typed error.
    #[test]
    fn any_events_give_an_output_or_a_typed_error(
        events in prop::collection::vec(event(), 1..6),
        owners in prop::collection::vec(text(), 0..SERVICES),
        paused in prop::bool::weighted(0.2),
    ) {
        let (rt, h) = seeded(&owners, paused);
        for event in &events {
            let result = rt.block_on(h.handle(event.clone()));
            check(event, result)?;
        }
    }

    /// Every mode with well-formed fields for the seeded night: start each batch, poll it
    /// and each service, restart services by hand (forced or not), in any order.
    #[test]
    fn every_mode_on_a_planned_night(
        steps in prop::collection::vec((0usize..5, 0u32..4, 0..SERVICES + 2, any::<bool>()), 1..10),
        owners in prop::collection::vec(text(), 0..SERVICES),
    ) {
        let (rt, h) = seeded(&owners, false);
        for (mode, batch, service, force) in steps {
            let arn = sid(service).arn("aws").to_string();
            let event = match mode {
                0 => json!({"mode": "start", "night": "2026-11-22", "batch": batch}),
                1 => json!({"mode": "poll", "night": "2026-11-22", "batch": batch}),
                2 => json!({"mode": "poll", "night": "2026-11-22", "service_arn": arn}),
                3 => json!({"mode": "service", "service_arn": arn, "force": force}),
                _ => json!({"mode": "poll", "night": "2026-11-22", "batch": batch, "service_arn": arn}),
            };
            let result = rt.block_on(h.handle(event.clone()));
            check(&event, result)?;
        }
    }
}

/// The seeded night works: a batch starts, its poll sees outcomes, a service restarts by hand.
#[test]
fn the_seeded_night_runs() {
    let (rt, h) = seeded(&["決済チーム".into(), "e\u{301}quipe".into()], false);
    let started = rt
        .block_on(h.handle(json!({"mode": "start", "night": "2026-11-22", "batch": 0})))
        .unwrap();
    assert!(format!("{started:?}").contains("started"), "{started:?}");
    rt.block_on(h.handle(json!({"mode": "poll", "night": "2026-11-22", "batch": 0})))
        .unwrap();
    let arn = sid(4).arn("aws").to_string();
    rt.block_on(h.handle(json!({"mode": "service", "service_arn": arn, "force": true})))
        .unwrap();
    let err = rt
        .block_on(h.handle(json!({"mode": "start", "night": "2026-11-22", "batch": 99})))
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidInput);
}
