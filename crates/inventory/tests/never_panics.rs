//! Nothing fed from outside makes inventory panic: any JSON event (any value, or objects with
//! `night` and `execution` holding wrong types, odd dates and text in any script), and a fleet
//! whose tags (enrollment, owner, cluster) hold anything, give a summary or a typed error.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use inventory::Inventory;
use proptest::prelude::*;
use restart_core::catalog::{DiscoveredService, Target};
use restart_core::clock::ManualClock;
use restart_core::ids::ServiceId;
use restart_core::ports::{CatalogStore, DiscoveryError, ListedAccounts};
use restart_core::service::*;
use restart_core::tag::Tags;
use restart_core::telemetry::ApiCalls;
use restart_core::{Config, ErrorType, HandlerError};
use serde_json::{Value, json};
use testkit::fakes::{MemoryFleet, MemoryStore};
use testkit::runtime;
use testkit::strategies::{text, text_fields_event};

const A: &str = "111111111111";
const B: &str = "222222222222";

/// Inventory's event: any JSON, or an object with `night` and `execution` (each present or
/// not, of the right type or not) and perhaps a key it does not know.
fn event() -> impl Strategy<Value = Value> {
    text_fields_event(
        "night|execution",
        &["night", "execution"],
        "mode|replan|\\PC{1,6}",
    )
}

fn config() -> Config {
    Config::from_vars([
        ("TABLE_NAME", "t"),
        ("ACCOUNTS", "111111111111,222222222222"),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
        ("ACCOUNT_OWNERS", "222222222222=équipe par défaut"),
    ])
    .unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-21T23:30:00Z".parse().unwrap()
}

/// One discovered service: its tags, its cluster's tags and its numbers are given.
#[derive(Debug, Clone)]
struct Shape {
    account: usize,
    cluster: String,
    service: String,
    old_arn: bool,
    tags: Vec<(String, String)>,
    cluster_tags: Vec<(String, String)>,
    numbers: (u32, u32, u32, u32),
    status: usize,
    deployments: Vec<(usize, Option<i64>, u32)>,
}

/// Tags: the enrollment and owner keys, or any key, each holding any text.
fn tags() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        prop::sample::select(vec!["ecs_task_daily_restart", "owner", "team", "Owner"])
            .prop_map(str::to_owned),
        "\\PC{1,8}",
    ];
    prop::collection::vec((key, text()), 0..4)
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        (
            0usize..2,
            "[A-Za-z0-9_-]{1,12}",
            "[A-Za-z0-9_-]{1,40}",
            any::<bool>(),
        ),
        (tags(), tags()),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        0usize..3,
        prop::collection::vec(
            (
                0usize..3,
                prop::option::of(-100_000_000_000i64..100_000_000_000),
                any::<u32>(),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(
                (account, cluster, service, old_arn),
                (tags, cluster_tags),
                numbers,
                status,
                deployments,
            )| Shape {
                account,
                cluster,
                service,
                old_arn,
                tags,
                cluster_tags,
                numbers,
                status,
                deployments,
            },
        )
}

fn discovered(s: &Shape) -> DiscoveredService {
    let id = ServiceId {
        account: [A, B][s.account].parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: s.cluster.clone(),
        service: s.service.clone(),
    };
    let mut arn = id.arn("aws");
    if s.old_arn {
        arn.cluster = None;
    }
    let (desired, running, min, max) = s.numbers;
    DiscoveredService {
        snapshot: ServiceSnapshot {
            arn,
            id,
            status: [
                ServiceStatus::Active,
                ServiceStatus::Draining,
                ServiceStatus::Inactive,
            ][s.status],
            desired: desired % 50,
            running,
            scheduling: if min.is_multiple_of(7) {
                SchedulingStrategy::Daemon
            } else {
                SchedulingStrategy::Replica
            },
            controller: [
                DeploymentController::Ecs,
                DeploymentController::CodeDeploy,
                DeploymentController::External,
            ][(max % 3) as usize],
            min_healthy_percent: min,
            max_percent: max,
            deployments: s
                .deployments
                .iter()
                .enumerate()
                .map(|(i, (status, at, n))| Deployment {
                    id: format!("ecs-svc/{i}"),
                    status: [
                        DeploymentStatus::Primary,
                        DeploymentStatus::Active,
                        DeploymentStatus::Inactive,
                    ][*status],
                    rollout_state: Some(RolloutState::InProgress),
                    desired: *n,
                    running: *n,
                    created_at: at.and_then(|t| DateTime::from_timestamp(t, 0)),
                    updated_at: None,
                    task_definition: None,
                    rollback: false,
                })
                .collect(),
            tags: s.tags.iter().cloned().collect::<Tags>(),
            deployment_alarms: Vec::new(),
        },
        cluster_tags: s.cluster_tags.iter().cloned().collect(),
    }
}

fn handler(shapes: &[Shape]) -> Inventory<ListedAccounts, MemoryFleet, MemoryStore> {
    let fleet = MemoryFleet::default();
    for s in shapes {
        fleet.add(discovered(s));
    }
    fleet.fail(
        Target {
            account: B.parse().unwrap(),
            region: "eu-west-1".into(),
        },
        DiscoveryError::AccessDenied("AssumeRole: accès refusé 拒否".into()),
    );
    Inventory {
        config: Arc::new(config()),
        directory: ListedAccounts(vec![A.parse().unwrap(), B.parse().unwrap()]),
        fleet,
        store: MemoryStore::default(),
        clock: Arc::new(ManualClock::new(now())),
        calls: Arc::new(ApiCalls::default()),
    }
}

fn check<T>(event: &Value, result: Result<T, HandlerError>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(ErrorType::ALL.contains(&e.error_type));
        prop_assert!(!e.message.is_empty());
        // Inventory's only refusals: a bad event, or another execution holding the night.
        prop_assert_eq!(
            e.error_type,
            ErrorType::InvalidInput,
            "{} for {}",
            e.message,
            event
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_event_gives_a_summary_or_a_typed_error(
        event in event(),
        shapes in prop::collection::vec(shape(), 0..4),
    ) {
        let rt = runtime();
        let h = handler(&shapes);
        let result = rt.block_on(h.handle(event.clone()));
        check(&event, result)?;
    }

    /// Tags holding anything, in any script: every service of the reachable account is in
    /// the catalog, its owner exactly the first owner tag's value (trimmed), never a panic.
    #[test]
    fn any_tags_are_cataloged_with_their_owner_intact(
        shapes in prop::collection::vec(shape(), 1..6),
    ) {
        let rt = runtime();
        let h = handler(&shapes);
        rt.block_on(h.handle(json!({"night": "2026-11-22", "execution": "run-1"}))).unwrap();
        let catalog = rt.block_on(h.store.read_catalog(&[A.parse().unwrap()])).unwrap();
        for s in shapes.iter().filter(|s| s.account == 0) {
            let d = discovered(s);
            let record = catalog.iter().find(|r| r.id == d.snapshot.id);
            prop_assert!(record.is_some(), "{:?} not cataloged", d.snapshot.id);
            let owner = ["owner", "team"]
                .iter()
                .filter_map(|k| d.snapshot.tags.get(*k))
                .map(|v| v.trim())
                .find(|v| !v.is_empty());
            if let (Some(owner), Some(r)) = (owner, record) {
                prop_assert_eq!(r.owner.as_str(), owner);
            }
        }
    }
}

/// Nights at the ends of the calendar, with windows that cross midnight far west and east of
/// UTC and the longest restart timeout: the night's lock ends past the window (window end plus
/// timeout), which must not overflow.
#[test]
fn nights_at_the_ends_of_the_calendar() {
    let rt = runtime();
    for tz in [
        "UTC",
        "Pacific/Pago_Pago",
        "Pacific/Kiritimati",
        "America/Adak",
    ] {
        for (start, end) in [("22:00", "04:00"), ("00:00", "23:59")] {
            let config = Config::from_vars([
                ("TABLE_NAME", "t"),
                ("ACCOUNTS", A),
                ("REGIONS", "eu-west-1"),
                ("MEMBER_ROLE_NAME", "member"),
                ("TIMEZONE", tz),
                ("WINDOW_START", start),
                ("WINDOW_END", end),
                ("RESTART_TIMEOUT_MINUTES", "720"),
            ])
            .unwrap();
            for night in [
                "+262142-12-31",
                "+262142-12-30",
                "-262143-01-01",
                "-262143-01-02",
            ] {
                let mut h = handler(&[]);
                h.config = Arc::new(config.clone());
                let event = json!({"night": night, "execution": "run-1"});
                let result = rt.block_on(h.handle(event.clone()));
                check(&event, result).unwrap();
            }
        }
    }
}
