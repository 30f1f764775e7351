//! End to end against real peers: fleet-sim (ECS, STS) and moto (DynamoDB). The inventory
//! function fills the catalog from the simulated fleet, then the batcher plans the night.
//! `tools/with-moto` provides `MOTO_ENDPOINT`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use fleet_sim::spec::{AccountSpec, ClusterSpec, Controller, ServiceSpec};
use fleet_sim::{FleetSpec, RunningSim};
use restart_core::Config;
use restart_core::clock::{ManualClock, SystemClock};
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::outcome::NightState;
use restart_core::ports::NightStore;
use serde_json::json;

const A: &str = "111111111111";
const B: &str = "222222222222";
const TAG: &str = "ecs_task_daily_restart";

/// Sends DynamoDB to moto and every other service to fleet-sim.
#[derive(Debug)]
struct Endpoints {
    moto: String,
}

impl LoadServiceConfig for Endpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        (key.service_id() == "DynamoDB" && key.profile() == "endpoint_url")
            .then(|| self.moto.clone())
    }
}

fn sdk(sim: &RunningSim) -> SdkConfig {
    SdkConfig::builder()
        .endpoint_url(sim.endpoint_url())
        .service_config(Endpoints {
            moto: testkit::moto_endpoint(),
        })
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDHUB0000000000000",
            "hub-secret",
            None,
            None,
            "test",
        )))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

fn svc(name: &str, tag: Option<&str>) -> ServiceSpec {
    ServiceSpec {
        tags: tag
            .map(|v| (TAG.to_owned(), v.to_owned()))
            .into_iter()
            .collect(),
        ..ServiceSpec::named(name)
    }
}

fn cluster(name: &str, services: Vec<ServiceSpec>) -> ClusterSpec {
    ClusterSpec {
        name: name.into(),
        region: Some("eu-west-1".into()),
        tags: BTreeMap::new(),
        services,
    }
}

/// 11 eligible services in three clusters of two accounts, and three that are skipped.
fn spec() -> FleetSpec {
    let mut pay: Vec<ServiceSpec> = (0..6)
        .map(|i| svc(&format!("pay-{i}"), Some("2026-11-21T01:10:00Z")))
        .collect();
    pay.push(svc("untagged", None));
    pay.push(svc("opted-out", Some("disabled")));
    pay.push(ServiceSpec {
        controller: Controller::CodeDeploy,
        ..svc("blue-green", Some("enabled"))
    });
    let web: Vec<ServiceSpec> = (0..3)
        .map(|i| svc(&format!("web-{i}"), Some("enabled")))
        .collect();
    let search: Vec<ServiceSpec> = (0..2)
        .map(|i| svc(&format!("search-{i}"), Some("")))
        .collect();
    FleetSpec {
        accounts: vec![
            AccountSpec {
                id: A.into(),
                regions: vec!["eu-west-1".into()],
                deny_assume_role: false,
                external_id: None,
                clusters: vec![cluster("pay", pay), cluster("web", web)],
            },
            AccountSpec {
                id: B.into(),
                regions: vec!["eu-west-1".into()],
                deny_assume_role: false,
                external_id: None,
                clusters: vec![cluster("search", search)],
            },
        ],
        ..FleetSpec::default()
    }
}

fn config(table: &str) -> Config {
    Config::from_vars([
        ("TABLE_NAME", table),
        ("ACCOUNTS", "111111111111,222222222222"),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "ecs-restart-member"),
        ("WINDOW_START", "00:00"),
        ("WINDOW_END", "01:00"),
        ("TIMEZONE", "UTC"),
    ])
    .unwrap()
}

fn sid(account: &str, cluster: &str, service: &str) -> ServiceId {
    ServiceId {
        account: account.parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: cluster.into(),
        service: service.into(),
    }
}

#[tokio::test]
async fn inventory_then_batcher_plans_every_eligible_service_once() {
    let sim = fleet_sim::spawn(spec()).await.unwrap();
    let table = testkit::create_table(&testkit::dynamodb_client()).await;
    let sdk = sdk(&sim);
    let night: NaiveDate = "2026-11-22".parse().unwrap();

    let inventory = inventory::aws::handler_with_clock(config(&table), &sdk, Arc::new(SystemClock));
    let found = inventory
        .handle(json!({ "night": "2026-11-22" }))
        .await
        .unwrap();
    assert_eq!(found.services_found, 14);

    let clock = Arc::new(ManualClock::new("2026-11-21T23:40:00Z".parse().unwrap()));
    let batcher = batcher::aws::handler_with_clock(config(&table), &sdk, clock);
    let plan = batcher.handle(json!({})).await.unwrap();
    assert_eq!(plan.night, night);

    // A one-hour window with 10-minute batches and 10-minute restarts holds 6 batches.
    let window_start: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
    assert_eq!(plan.batches.len(), 6);
    for (k, b) in plan.batches.iter().enumerate() {
        assert_eq!(b.batch, k as u32);
        assert_eq!(b.start_at, window_start + TimeDelta::minutes(10 * k as i64));
        assert!(b.size == 1 || b.size == 2, "batch {k}: {}", b.size);
    }
    assert_eq!(plan.batches.iter().map(|b| b.size).sum::<u32>(), 11);

    let store = restart_aws::dynamo_store(&sdk, &table, 90);
    let mut seen: BTreeMap<ServiceId, u32> = BTreeMap::new();
    for b in &plan.batches {
        let records = store.read_batch(night, b.batch).await.unwrap();
        assert_eq!(records.len() as u32, b.size);
        for r in records {
            assert_eq!(r.state, NightState::Planned);
            assert_eq!(r.planned_start, Some(b.start_at));
            assert!(
                seen.insert(r.id.clone(), b.batch).is_none(),
                "{} twice",
                r.id
            );
        }
    }
    let mut eligible: BTreeSet<ServiceId> =
        (0..6).map(|i| sid(A, "pay", &format!("pay-{i}"))).collect();
    eligible.extend((0..3).map(|i| sid(A, "web", &format!("web-{i}"))));
    eligible.extend((0..2).map(|i| sid(B, "search", &format!("search-{i}"))));
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), eligible);
    // No batch holds more than ceil(6 / 6) = 1 service of the pay cluster.
    let pay_batches: BTreeSet<u32> = seen
        .iter()
        .filter(|(id, _)| id.cluster == "pay")
        .map(|(_, b)| *b)
        .collect();
    assert_eq!(pay_batches.len(), 6);

    let skipped: BTreeMap<ServiceId, Option<SkipReason>> = store
        .read_skipped(night)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.skip_reason))
        .collect();
    assert_eq!(
        skipped,
        BTreeMap::from([
            (sid(A, "pay", "untagged"), Some(SkipReason::Untagged)),
            (sid(A, "pay", "opted-out"), Some(SkipReason::OptedOut)),
            (
                sid(A, "pay", "blue-green"),
                Some(SkipReason::ControllerCodeDeploy)
            ),
        ])
    );

    // A second run returns the same plan from the table.
    let again = batcher
        .handle(json!({ "night": "2026-11-22" }))
        .await
        .unwrap();
    assert_eq!(again, plan);
    sim.shutdown().await.unwrap();
}
