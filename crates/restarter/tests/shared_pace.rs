//! UpdateService paced across containers: eight restarter handlers (eight Lambda containers,
//! each with its own pacer) start eight batches of one account at once, against fleet-sim
//! (ECS, STS) and moto (DynamoDB). The account must never see more than twice
//! `UPDATE_SERVICE_RATE` UpdateService calls in any second of real time (fixed one-second
//! windows of the rate: a second overlaps at most two). `tools/with-moto` provides
//! `MOTO_ENDPOINT`.

use std::sync::Arc;

use fleet_sim::spec::{AccountSpec, ClusterSpec, DeploySeconds, ServiceSpec};
use fleet_sim::{FleetSpec, RunningSim};
use restart_aws::dynamodb::DynamoStore;
use restart_core::Config;
use restart_core::catalog::Target;
use restart_core::clock::{ManualClock, SystemClock};
use restart_core::ports::{SharedPace, StoreError};
use restarter::Output;
use restarter::aws::AwsRestarter;
use serde_json::json;

const A: &str = "111111111111";
const REGION: &str = "eu-west-1";
const START: &str = "2026-11-22T00:00:00Z";
const NIGHT: &str = "2026-11-22";
const RATE: u64 = 4;
/// One Lambda container per batch.
const BATCHES: usize = 8;
/// One service per cluster, so that no cluster's cap holds a restart back.
const CLUSTERS: usize = 32;

/// moto applies concurrent conditional writes to one item without isolation (each request
/// thread reads the item, checks the condition, then writes it), so two takes can both see
/// room for one. DynamoDB applies the writes to an item one at a time; this lock stands in for
/// that. Every take still goes to the table through the real adapter.
#[derive(Debug)]
struct Isolated {
    store: DynamoStore,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl SharedPace for Isolated {
    async fn take(&self, target: &Target, second: i64, limit: u32) -> Result<bool, StoreError> {
        let _one_at_a_time = self.lock.lock().await;
        self.store.take(target, second, limit).await
    }
}

/// Every take granted: each container paces only itself, as before the shared pace.
#[derive(Debug)]
struct Unshared;

impl SharedPace for Unshared {
    async fn take(&self, _: &Target, _: i64, _: u32) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// One account, `CLUSTERS` clusters of one enrolled service each, planned into `BATCHES`
/// batches.
struct Night {
    sim: RunningSim,
    table: String,
    clock: Arc<ManualClock>,
    batches: Vec<u32>,
}

fn vars(table: &str) -> Vec<(String, String)> {
    [
        ("TABLE_NAME", table),
        ("ACCOUNTS", A),
        ("REGIONS", REGION),
        ("MEMBER_ROLE_NAME", "ecs-restart-member"),
        // Eight batch slots: 00:00 to 01:10 every 10 minutes, the last leaving the batcher's
        // 10-minute restart allowance before 01:20.
        ("WINDOW_START", "00:00"),
        ("WINDOW_END", "01:20"),
        ("TIMEZONE", "UTC"),
        ("BATCH_INTERVAL_MINUTES", "10"),
        ("RESTART_TIMEOUT_MINUTES", "30"),
        ("UPDATE_SERVICE_RATE", "4"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

impl Night {
    async fn new() -> Night {
        let clusters = (0..CLUSTERS)
            .map(|c| ClusterSpec {
                name: format!("c{c:02}"),
                region: Some(REGION.into()),
                tags: [("team".to_owned(), "payments".to_owned())].into(),
                services: vec![ServiceSpec {
                    tags: [(
                        "ecs_task_daily_restart".to_owned(),
                        "2026-11-21T01:10:00Z".to_owned(),
                    )]
                    .into(),
                    // Nothing finishes while the test runs.
                    deploy_seconds: DeploySeconds::Fixed(600),
                    ..ServiceSpec::named("api")
                }],
            })
            .collect();
        let spec = FleetSpec {
            // Nearly frozen: only real time matters here.
            time_scale: 0.001,
            start_time: Some(START.parse().unwrap()),
            accounts: vec![AccountSpec {
                id: A.into(),
                regions: vec![REGION.into()],
                deny_assume_role: false,
                external_id: None,
                clusters,
            }],
            ..FleetSpec::default()
        };
        let sim = fleet_sim::spawn(spec).await.unwrap();
        let table = testkit::create_table(&testkit::dynamodb_client()).await;
        let mut night = Night {
            sim,
            table,
            clock: Arc::new(ManualClock::new(START.parse().unwrap())),
            batches: Vec::new(),
        };
        let sdk = night.sdk();
        // The plan this test needs: every service planned. Under a loaded shared moto (other
        // test processes hammering it) a plan was once seen with 15 of the 32 catalog records;
        // moto is not DynamoDB in this, so the night is inventoried and planned again until the
        // whole fleet is in it (a rerun writes only what is missing, a replan moves only
        // planned records).
        let mut plan = None;
        for replan in [false, true, true] {
            inventory::aws::handler_with_clock(night.config(), &sdk, Arc::new(SystemClock))
                .handle(json!({ "night": NIGHT }))
                .await
                .unwrap();
            let p = batcher::aws::handler_with_clock(night.config(), &sdk, night.clock.clone())
                .handle(json!({ "night": NIGHT, "replan": replan }))
                .await
                .unwrap();
            let planned: u32 = p.batches.iter().map(|b| b.size).sum();
            let whole = planned as usize == CLUSTERS;
            plan = Some(p);
            if whole {
                break;
            }
        }
        let plan = plan.unwrap();
        night.batches = plan.batches.iter().map(|b| b.batch).collect();
        assert_eq!(night.batches.len(), BATCHES, "{plan:?}");
        assert!(plan.batches.iter().all(|b| b.size == 4), "{plan:?}");
        night
    }

    fn config(&self) -> Config {
        Config::from_vars(vars(&self.table)).unwrap()
    }

    fn sdk(&self) -> aws_types::SdkConfig {
        testkit::hub_sdk_config(&self.sim.endpoint_url())
    }

    /// Starts every batch at once, each from its own handler built by `handler`, and answers
    /// the most UpdateService calls the account saw in one second of real time.
    async fn start_all(&self, handler: impl Fn() -> AwsRestarter) -> u64 {
        let runs: Vec<_> = self
            .batches
            .iter()
            .map(|&batch| {
                let r = handler();
                tokio::spawn(async move {
                    r.handle(json!({ "mode": "start", "night": NIGHT, "batch": batch }))
                        .await
                })
            })
            .collect();
        let mut started = 0;
        for run in runs {
            match run.await.unwrap().unwrap() {
                Output::Start(out) => started += out.started,
                other => panic!("start answered {other:?}"),
            }
        }
        let stats = self.sim.handle().stats();
        assert_eq!(started, CLUSTERS as u64, "every restart starts");
        assert_eq!(stats.total_calls("UpdateService"), CLUSTERS as u64);
        assert_eq!(stats.total_throttled("UpdateService"), 0);
        stats.max_rate[&format!("{A}/{REGION}")]["UpdateService"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_containers_together_stay_within_twice_the_rate() {
    let night = Night::new().await;
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let max_rate = night
        .start_all(|| {
            let slots = Isolated {
                store: restart_aws::dynamo_store(&night.sdk(), &night.table, 90),
                lock: lock.clone(),
            };
            restarter::aws::handler_with_pace(
                night.config(),
                &night.sdk(),
                night.clock.clone(),
                Arc::new(slots),
            )
        })
        .await;
    println!("UpdateService max_rate with the shared pace: {max_rate}");
    assert!(
        max_rate <= 2 * RATE,
        "{max_rate} UpdateService calls in one second"
    );
}

/// The same night with each container pacing only itself goes well over: the scenario above
/// does put the shared pace to the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_shared_pace_eight_containers_go_over() {
    let night = Night::new().await;
    let max_rate = night
        .start_all(|| {
            restarter::aws::handler_with_pace(
                night.config(),
                &night.sdk(),
                night.clock.clone(),
                Arc::new(Unshared),
            )
        })
        .await;
    println!("UpdateService max_rate without the shared pace: {max_rate}");
    assert!(
        max_rate > 2 * RATE,
        "only {max_rate} UpdateService calls in one second"
    );
}
