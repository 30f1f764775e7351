//! A deterministic simulation of one night's concurrency: many restarter invocations at once
//! (the state machine's starts and polls, Step Functions retries of an invocation still
//! running, `trigger --batch` of a running batch, on-call's restarts of one service) against the
//! in-memory store (held to DynamoDB by the port contract suite) and a fake ECS fleet, with a
//! fault drawn at every port call. Everything runs on one thread of a tokio runtime whose clock
//! is paused: the only source of choice is the seed, so a seed replays its run exactly.
//!
//! Interleavings come from the scheduling points every port call passes: a seeded number of
//! yields (which puts the invocation behind every other ready one) and a seeded short sleep
//! (which lets simulated time pass, and other invocations reach their own points). Lambda's
//! timeout is modelled by dropping an invocation's future at 300 s, as Lambda ends the process.
//!
//! After the night, [`check`] holds the run to the invariants the restarter promises.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use restart_core::Config;
use restart_core::clock::Clock;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::{NightRecord, Pause};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{ControlError, FleetControl, NightStore, StoreError};
use restart_core::service::{
    Deployment, DeploymentStatus, RolloutState, ServiceSnapshot, ServiceStatus,
};
use restart_core::tag::Tags;
use restarter::{Output, Restarter};
use serde_json::json;
use testkit::fakes::{BoxFuture, MemoryStore, SharedStore, StoreGate};
use testkit::fixtures::{active_snapshot, enrolled_record, service_id};

/// The Lambda timeout the templates give the restarter.
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a hung ECS call lasts before the SDK gives up (the member ECS operation timeout).
const HUNG_CALL: Duration = Duration::from_secs(90);
/// Restarts a cluster may have in flight.
const CAP: u32 = 2;
/// The tag key the restarter writes.
const TAG: &str = "ecs_task_daily_restart";

/// SplitMix64: small, fast and good enough to draw a schedule from a seed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// The night's clock: simulated time (tokio's paused clock) since the run began, plus the
/// jumps a run makes.
#[derive(Debug)]
pub struct SimClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
    jumped: Mutex<TimeDelta>,
}

impl SimClock {
    fn jump_to(&self, at: DateTime<Utc>) {
        let now = self.now();
        if at > now {
            *self.jumped.lock().unwrap() += at - now;
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.base + TimeDelta::from_std(elapsed).unwrap_or_default() + *self.jumped.lock().unwrap()
    }
}

/// What a run did, counted.
#[derive(Debug, Default)]
pub struct Stats {
    /// Port calls, each a scheduling point.
    pub points: AtomicU64,
    /// Faults answered in place of a call.
    pub faults: AtomicU64,
    /// Invocations run.
    pub invocations: AtomicU64,
}

/// What a run shares: its seeded choices, its clock and its counters.
#[derive(Debug)]
pub struct World {
    rng: Mutex<Rng>,
    pub clock: Arc<SimClock>,
    pub stats: Stats,
    /// What happened, in order, for a failing seed's report.
    pub log: Mutex<Vec<String>>,
    /// Services on-call restarted by hand: their request may start them after the window.
    manual: Mutex<Vec<ServiceId>>,
}

impl World {
    fn draw(&self, n: u64) -> u64 {
        self.rng.lock().unwrap().below(n)
    }

    fn chance(&self, per_mille: u64) -> bool {
        self.rng.lock().unwrap().chance(per_mille)
    }

    fn note(&self, what: String) {
        let at = self.clock.now().format("%H:%M:%S");
        self.log.lock().unwrap().push(format!("{at} {what}"));
    }

    /// A scheduling point: other invocations may run here, and simulated time may pass.
    async fn point(&self) {
        self.stats.points.fetch_add(1, Ordering::Relaxed);
        for _ in 0..self.draw(4) {
            tokio::task::yield_now().await;
        }
        if self.chance(300) {
            tokio::time::sleep(Duration::from_millis(1 + self.draw(3_000))).await;
        }
    }

    /// A fault in `per_mille` of calls.
    fn fault(&self, per_mille: u64) -> bool {
        let hit = self.chance(per_mille);
        if hit {
            self.stats.faults.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }
}

/// The store's calls pass here: a scheduling point, and now and then DynamoDB's passing
/// errors (a transaction conflict or throttling after the SDK's retries), before the call.
#[derive(Debug)]
struct Gate(Arc<World>);

impl StoreGate for Gate {
    fn pass(&self, op: &'static str) -> BoxFuture<'static, Result<(), StoreError>> {
        let world = self.0.clone();
        Box::pin(async move {
            world.point().await;
            if world.fault(8) {
                world.note(format!("store {op}: conflict"));
                return Err(StoreError::Transient(format!(
                    "{op}: TransactionConflictException"
                )));
            }
            if world.fault(1) {
                // An answer not understood: not retried, so the invocation's batch fails for
                // good and the night's last step finds what it left.
                world.note(format!("store {op}: an unexpected answer"));
                return Err(StoreError::Unexpected(format!(
                    "{op}: an answer not understood"
                )));
            }
            Ok(())
        })
    }
}

/// One deployment as the fake ECS keeps it.
#[derive(Debug, Clone)]
struct Dep {
    d: Deployment,
    /// Made by one of our UpdateService calls.
    ours: bool,
    /// When its rollout ends (for one in progress).
    ends_at: DateTime<Utc>,
    /// Whether it ends failed (then rolled back).
    fails: bool,
}

/// One service as the fake ECS keeps it.
#[derive(Debug)]
struct Svc {
    snapshot: ServiceSnapshot,
    deps: Vec<Dep>,
    task_definition: String,
    /// When each UpdateService that ran was sent, how many of the cluster's restarts of ours
    /// were rolling when it ran, and the deployment it made.
    updates: Vec<(DateTime<Utc>, u32, String)>,
    /// When the owners deploy a new task definition, if they do tonight.
    owner_deploy_at: Option<DateTime<Utc>>,
    /// When the service is deleted, if it is tonight.
    delete_at: Option<DateTime<Utc>>,
    next: u32,
}

impl Svc {
    fn new_dep(
        &mut self,
        at: DateTime<Utc>,
        td: &str,
        ours: bool,
        rollback: bool,
        lasts: TimeDelta,
        fails: bool,
    ) -> Dep {
        self.next += 1;
        let name = &self.snapshot.id.service;
        Dep {
            d: Deployment {
                id: format!("ecs-svc/{name}-{}", self.next),
                status: DeploymentStatus::Primary,
                rollout_state: Some(RolloutState::InProgress),
                desired: 2,
                running: 0,
                created_at: Some(at),
                updated_at: Some(at),
                task_definition: Some(td.to_owned()),
                rollback,
            },
            ours,
            ends_at: at + lasts,
            fails,
        }
    }

    /// Puts `dep` first as the PRIMARY deployment; the others become ACTIVE.
    fn push_primary(&mut self, dep: Dep) {
        for d in &mut self.deps {
            d.d.status = DeploymentStatus::Active;
        }
        self.deps.insert(0, dep);
    }

    /// Plays what ECS does up to `now`: rollouts end (failed ones rolled back), a completed
    /// PRIMARY drains the others, the owners deploy, the service is deleted.
    fn advance(&mut self, now: DateTime<Utc>) {
        loop {
            let mut changed = false;
            if let Some(at) = self.owner_deploy_at.filter(|at| *at <= now) {
                self.owner_deploy_at = None;
                self.task_definition = format!("{}-next", self.task_definition);
                let td = self.task_definition.clone();
                let dep = self.new_dep(at, &td, false, false, TimeDelta::seconds(120), false);
                self.push_primary(dep);
                changed = true;
            }
            let due = self
                .deps
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.d.rollout_state == Some(RolloutState::InProgress) && d.ends_at <= now
                })
                .min_by_key(|(_, d)| d.ends_at)
                .map(|(i, _)| i);
            if let Some(i) = due {
                let at = self.deps[i].ends_at;
                if self.deps[i].fails && self.deps[i].d.status == DeploymentStatus::Primary {
                    let d = &mut self.deps[i];
                    d.d.rollout_state = Some(RolloutState::Failed);
                    d.d.updated_at = Some(at);
                    let td = d.d.task_definition.clone().unwrap_or_default();
                    let back = self.new_dep(at, &td, false, true, TimeDelta::seconds(60), false);
                    self.push_primary(back);
                } else if self.deps[i].d.status == DeploymentStatus::Primary {
                    let mut d = self.deps.remove(i);
                    d.d.rollout_state = Some(RolloutState::Completed);
                    d.d.updated_at = Some(at);
                    d.d.running = d.d.desired;
                    // A completed PRIMARY drains every other deployment.
                    self.deps = vec![d];
                } else {
                    // Replaced before it ended: it stops where it is, and drains.
                    self.deps.remove(i);
                }
                changed = true;
            }
            if !changed {
                break;
            }
        }
        if self.delete_at.is_some_and(|at| at <= now) {
            self.snapshot.status = ServiceStatus::Inactive;
        }
    }

    fn snapshot(&self) -> ServiceSnapshot {
        ServiceSnapshot {
            deployments: self.deps.iter().map(|d| d.d.clone()).collect(),
            ..self.snapshot.clone()
        }
    }
}

/// The fake ECS of every member account.
#[derive(Debug)]
pub struct SimFleet {
    world: Arc<World>,
    services: Mutex<BTreeMap<ServiceId, Svc>>,
    /// The account lost tonight, and from when (an SCP, a changed role).
    lost: Option<(String, DateTime<Utc>)>,
}

impl SimFleet {
    fn denied(&self, id: &ServiceId) -> Option<ControlError> {
        let (account, at) = self.lost.as_ref()?;
        (id.account.as_str() == account && self.world.clock.now() >= *at)
            .then(|| ControlError::AccessDenied(format!("the role in {account} cannot be assumed")))
    }

    /// How many of `cluster`'s services have a deployment of ours rolling as their PRIMARY (one
    /// that another deployment replaced is drained by ECS, and its restart judged superseded).
    fn rolling_in(services: &BTreeMap<ServiceId, Svc>, cluster: &str) -> u32 {
        services
            .values()
            .filter(|s| s.snapshot.id.cluster_key() == cluster)
            .filter(|s| s.snapshot.status == ServiceStatus::Active)
            .filter(|s| {
                s.deps.iter().any(|d| {
                    d.ours
                        && d.d.status == DeploymentStatus::Primary
                        && d.d.rollout_state == Some(RolloutState::InProgress)
                })
            })
            .count() as u32
    }

    /// An UpdateService sent at `sent` runs now.
    fn run_update(&self, id: &ServiceId, sent: DateTime<Utc>) -> Result<String, ControlError> {
        let now = self.world.clock.now();
        let mut services = self.services.lock().unwrap();
        // ECS's state is played lazily, service by service: the cluster's other services are
        // brought to now before their deployments are counted.
        for other in services.values_mut() {
            if other.snapshot.id.cluster_key() == id.cluster_key() {
                other.advance(now);
            }
        }
        let rolling = Self::rolling_in(&services, &id.cluster_key());
        let Some(svc) = services.get_mut(id) else {
            return Err(ControlError::NotFound(format!("{} not found", id.service)));
        };
        svc.advance(now);
        if svc.snapshot.status != ServiceStatus::Active {
            return Err(ControlError::NotFound(format!(
                "{} is inactive",
                id.service
            )));
        }
        let lasts = TimeDelta::seconds(60 + i64::try_from(self.world.draw(600)).unwrap_or(0));
        let fails = self.world.chance(150);
        let td = svc.task_definition.clone();
        let dep = svc.new_dep(now, &td, true, false, lasts, fails);
        let dep_id = dep.d.id.clone();
        svc.push_primary(dep);
        svc.updates.push((sent, rolling, dep_id.clone()));
        drop(services);
        self.world.note(format!("UpdateService {id} ran: {dep_id}"));
        Ok(dep_id)
    }
}

impl FleetControl for SimFleet {
    async fn describe(&self, ids: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        self.world.point().await;
        if let Some(e) = ids.first().and_then(|id| self.denied(id)) {
            return Err(e);
        }
        if self.world.fault(30) {
            return Err(ControlError::Throttled(
                "DescribeServices: Rate exceeded".into(),
            ));
        }
        if self.world.fault(10) {
            tokio::time::sleep(HUNG_CALL).await;
            return Err(ControlError::Transient(
                "DescribeServices: timed out".into(),
            ));
        }
        let now = self.world.clock.now();
        let mut services = self.services.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let s = services.get_mut(id)?;
                s.advance(now);
                Some(s.snapshot())
            })
            .collect())
    }

    async fn force_new_deployment(&self, id: &ServiceId) -> Result<String, ControlError> {
        // When it was sent: the window's end is held to this, not to when ECS got it.
        let sent = self.world.clock.now();
        self.world.point().await;
        if let Some(e) = self.denied(id) {
            return Err(e);
        }
        if self.world.fault(40) {
            return Err(ControlError::Throttled(
                "UpdateService: Rate exceeded".into(),
            ));
        }
        if self.world.fault(20) {
            return Err(ControlError::Transient(
                "UpdateService: 503 before it ran".into(),
            ));
        }
        if self.world.fault(40) {
            // The request ran; its answer was lost.
            let ran = self.run_update(id, sent);
            self.world
                .note(format!("UpdateService {id}: answer lost ({ran:?})"));
            return Err(ControlError::Transient(
                "UpdateService: connection reset".into(),
            ));
        }
        if self.world.fault(10) {
            // The request reached ECS; its answer never came.
            let ran = self.run_update(id, sent);
            self.world.note(format!(
                "UpdateService {id}: ran ({ran:?}), its answer hung"
            ));
            tokio::time::sleep(HUNG_CALL).await;
            return Err(ControlError::Transient("UpdateService: timed out".into()));
        }
        self.run_update(id, sent)
    }

    async fn tag(&self, arn: &ServiceArn, key: &str, value: &str) -> Result<(), ControlError> {
        self.world.point().await;
        let id = ServiceId::from_arn(arn)
            .ok_or_else(|| ControlError::Unexpected(format!("{arn} has no cluster")))?;
        if let Some(e) = self.denied(&id) {
            return Err(e);
        }
        if self.world.fault(30) {
            return Err(ControlError::Throttled("TagResource: Rate exceeded".into()));
        }
        if self.world.fault(10) {
            tokio::time::sleep(HUNG_CALL).await;
            return Err(ControlError::Transient("TagResource: timed out".into()));
        }
        let mut services = self.services.lock().unwrap();
        if let Some(s) = services.get_mut(&id) {
            s.snapshot.tags.insert(key.to_owned(), value.to_owned());
        }
        Ok(())
    }
}

/// The night every run plays.
pub fn the_night() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    the_night().and_hms_opt(h, m, 0).unwrap().and_utc()
}

/// Window 01:00-02:00 UTC, restarts time out after 20 minutes, polls every minute.
fn config() -> Config {
    Config::from_vars([
        ("TABLE_NAME", "t"),
        ("ACCOUNTS", "111111111111,222222222222"),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
        ("WINDOW_START", "01:00"),
        ("WINDOW_END", "02:00"),
        ("RESTART_TIMEOUT_MINUTES", "20"),
        ("POLL_INTERVAL_SECONDS", "60"),
        ("MAX_INFLIGHT_PER_CLUSTER", "2"),
    ])
    .unwrap()
}

type Handler = Restarter<Fleet, SharedStore>;

/// A run's fleet, store and handler.
pub struct Night {
    pub world: Arc<World>,
    pub fleet: Arc<SimFleet>,
    pub store: SharedStore,
    pub handler: Arc<Handler>,
    pub batches: Vec<PlannedBatch>,
    pub config: Arc<Config>,
}

/// The handler's view of the fleet: the run keeps the fleet too, to check it afterwards.
#[derive(Debug, Clone)]
pub struct Fleet(Arc<SimFleet>);

impl FleetControl for Fleet {
    fn describe(
        &self,
        ids: &[ServiceId],
    ) -> impl std::future::Future<Output = Result<Vec<ServiceSnapshot>, ControlError>> + Send {
        self.0.describe(ids)
    }

    fn force_new_deployment(
        &self,
        id: &ServiceId,
    ) -> impl std::future::Future<Output = Result<String, ControlError>> + Send {
        self.0.force_new_deployment(id)
    }

    fn tag(
        &self,
        arn: &ServiceArn,
        key: &str,
        value: &str,
    ) -> impl std::future::Future<Output = Result<(), ControlError>> + Send {
        self.0.tag(arn, key, value)
    }
}

/// Builds the fleet and the night's plan that `seed` draws: two accounts, two clusters each,
/// two to five services a cluster, in two or three batches ten minutes apart.
pub async fn setup(seed: u64) -> Night {
    let clock = Arc::new(SimClock {
        base: at(0, 58),
        start: tokio::time::Instant::now(),
        jumped: Mutex::new(TimeDelta::zero()),
    });
    let world = Arc::new(World {
        rng: Mutex::new(Rng::new(seed)),
        clock: clock.clone(),
        stats: Stats::default(),
        log: Mutex::new(Vec::new()),
        manual: Mutex::new(Vec::new()),
    });
    let config = Arc::new(config());
    let batch_count = 2 + world.draw(2) as u32;
    let batches: Vec<PlannedBatch> = (0..batch_count)
        .map(|b| PlannedBatch {
            batch: b,
            start_at: at(1, 10 * b),
            size: 0,
        })
        .collect();
    let mut services = BTreeMap::new();
    let mut records = Vec::new();
    for account in ["111111111111", "222222222222"] {
        for cluster in ["blue", "green"] {
            for n in 0..2 + world.draw(4) {
                let id = service_id(account, cluster, &format!("{cluster}-{n}"));
                let mut snapshot = active_snapshot(id.clone(), Tags::new());
                snapshot.tags.insert(TAG.into(), "enabled".into());
                let task_definition =
                    format!("arn:aws:ecs:eu-west-1:{account}:task-definition/{cluster}-{n}:1");
                let mut svc = Svc {
                    snapshot,
                    deps: Vec::new(),
                    task_definition: task_definition.clone(),
                    updates: Vec::new(),
                    owner_deploy_at: world
                        .chance(150)
                        .then(|| at(1, 0) + TimeDelta::seconds(world.draw(3_600) as i64)),
                    delete_at: world
                        .chance(50)
                        .then(|| at(1, 0) + TimeDelta::seconds(world.draw(3_600) as i64)),
                    next: 0,
                };
                // Deployed days ago: tonight's own deploys of the owners are the only recent
                // ones (SKIP_IF_DEPLOYED_WITHIN_HOURS).
                let mut first = svc.new_dep(
                    at(0, 0) - TimeDelta::days(3),
                    &task_definition,
                    false,
                    false,
                    TimeDelta::zero(),
                    false,
                );
                first.d.rollout_state = Some(RolloutState::Completed);
                first.d.running = 2;
                svc.deps.push(first);
                services.insert(id.clone(), svc);
                let batch = world.draw(u64::from(batch_count)) as u32;
                let catalog = enrolled_record(id, "team", the_night());
                records.push(NightRecord::planned(
                    &catalog,
                    the_night(),
                    batch,
                    batches[batch as usize].start_at,
                ));
            }
        }
    }
    let lost = world.chance(200).then(|| {
        (
            "222222222222".to_owned(),
            at(1, 0) + TimeDelta::seconds(world.draw(3_600) as i64),
        )
    });
    let fleet = Arc::new(SimFleet {
        world: world.clone(),
        services: Mutex::new(services),
        lost,
    });
    let store = SharedStore(Arc::new(MemoryStore::default()));
    let mut batches = batches;
    for b in &mut batches {
        b.size = records.iter().filter(|r| r.batch == Some(b.batch)).count() as u32;
    }
    store.put_batches(the_night(), &batches).await.unwrap();
    store.create_records(&records).await.unwrap();
    store.0.set_gate(Arc::new(Gate(world.clone())));
    let handler = Arc::new(Restarter {
        config: config.clone(),
        fleet: Fleet(fleet.clone()),
        store: store.clone(),
        clock: clock.clone(),
        guards: std::sync::Arc::new(restart_core::guard::NoGuards),
        budget: Duration::from_secs(10),
    });
    Night {
        world,
        fleet,
        store,
        handler,
        batches,
        config,
    }
}

/// How an invocation ended, as the state machine sees it.
#[derive(Debug)]
enum Ended {
    Ok(Output),
    Err(restart_core::ErrorType),
    /// Lambda ended it at its timeout.
    TimedOut,
}

/// One invocation, ended by Lambda at its timeout; now and then (a Step Functions retry of an
/// invocation whose answer was lost) a second copy of it runs beside it.
async fn invoke(night: &Night, event: serde_json::Value) -> Ended {
    let world = &night.world;
    world.stats.invocations.fetch_add(1, Ordering::Relaxed);
    if world.chance(50) {
        let handler = night.handler.clone();
        let copy = event.clone();
        let delay = Duration::from_millis(world.draw(5_000));
        world.stats.invocations.fetch_add(1, Ordering::Relaxed);
        world.note(format!("a retried copy of {copy}"));
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tokio::time::timeout(LAMBDA_TIMEOUT, handler.handle(copy)).await;
        });
    }
    match tokio::time::timeout(LAMBDA_TIMEOUT, night.handler.handle(event)).await {
        Ok(Ok(out)) => Ended::Ok(out),
        Ok(Err(e)) => Ended::Err(e.error_type),
        Err(_) => Ended::TimedOut,
    }
}

/// An invocation as a state machine Task runs it: Throttled and Transient retried (6 attempts,
/// 5 s doubling); Paused retried every minute. `None`: the batch ends here (halted or failed).
async fn task(night: &Night, event: serde_json::Value) -> Option<Output> {
    task_with(night, event, 0).await
}

/// [`task`], with `Unexpected` also retried `unexpected` times (30 s, doubling), as the state
/// machine retries the night's last step.
async fn task_with(night: &Night, event: serde_json::Value, unexpected: u32) -> Option<Output> {
    let mut attempt = 0;
    let mut unexpected_tries = 0;
    loop {
        match invoke(night, event.clone()).await {
            Ended::Ok(out) => return Some(out),
            Ended::Err(restart_core::ErrorType::Unexpected) if unexpected_tries < unexpected => {
                tokio::time::sleep(Duration::from_secs(30 << unexpected_tries)).await;
                unexpected_tries += 1;
            }
            Ended::Err(restart_core::ErrorType::Throttled | restart_core::ErrorType::Transient)
                if attempt < 5 =>
            {
                tokio::time::sleep(Duration::from_secs(5 << attempt)).await;
                attempt += 1;
            }
            Ended::Err(restart_core::ErrorType::Paused) => {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            other => {
                night
                    .world
                    .note(format!("{event} ended the batch: {other:?}"));
                return None;
            }
        }
    }
}

/// One Map iteration of the state machine: wait for the batch's start, start it, then poll at
/// the restarter's `wait_seconds` until it is done.
async fn batch_flow(night: Arc<Night>, batch: u32, wait_for_start: bool) {
    if wait_for_start {
        let start_at = night.batches[batch as usize].start_at;
        let wait = (start_at - night.world.clock.now())
            .to_std()
            .unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
    let n = the_night().to_string();
    let Some(Output::Start(s)) =
        task(&night, json!({"mode": "start", "night": n, "batch": batch})).await
    else {
        return;
    };
    let mut wait = s.wait_seconds;
    loop {
        tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
        let Some(Output::Poll(p)) =
            task(&night, json!({"mode": "poll", "night": n, "batch": batch})).await
        else {
            return;
        };
        if p.done {
            return;
        }
        wait = p.wait_seconds;
    }
}

/// On-call restarts one service by hand (`restartctl restart`), then polls it until it ends.
async fn manual_restart(night: Arc<Night>, id: ServiceId, after: Duration) {
    tokio::time::sleep(after).await;
    let arn = id.arn("aws");
    night.world.note(format!("on-call restarts {id}"));
    night.world.manual.lock().unwrap().push(id.clone());
    let Some(Output::Service(_)) = task(
        &night,
        json!({"mode": "service", "service_arn": arn.to_string(), "force": false}),
    )
    .await
    else {
        return;
    };
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let event = json!({"mode": "poll", "night": the_night().to_string(), "service_arn": arn.to_string()});
        // The execution's ServicePoll retries an unexpected answer too: a poll is idempotent.
        match task_with(&night, event, 3).await {
            Some(Output::Poll(p)) if !p.done => {}
            _ => return,
        }
    }
}

/// The state machine's last step once every batch has ended: `close` until it is done, waiting
/// what it says between calls.
async fn close_night(night: &Night) {
    let event = json!({"mode": "close", "night": the_night().to_string()});
    // Bounded as the night is: the window's end plus the restart timeout at most.
    for _ in 0..200 {
        match task_with(night, event.clone(), 3).await {
            Some(Output::Poll(p)) if !p.done => {
                tokio::time::sleep(Duration::from_secs(p.wait_seconds.max(1))).await;
            }
            _ => return,
        }
    }
}

/// Plays one night from `seed`; returns it for [`check`].
pub async fn run(seed: u64) -> Arc<Night> {
    let night = Arc::new(setup(seed).await);
    let world = night.world.clone();
    let mut tasks = Vec::new();
    for b in &night.batches {
        tasks.push(tokio::spawn(batch_flow(night.clone(), b.batch, true)));
    }
    // `trigger --batch N` of a batch while it runs.
    if world.chance(400) {
        let batch = world.draw(night.batches.len() as u64) as u32;
        let after = Duration::from_secs(600 * u64::from(batch) + 120 + world.draw(900));
        let n = night.clone();
        world.note(format!("trigger --batch {batch} after {after:?}"));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            batch_flow(n, batch, false).await;
        }));
    }
    // On-call's restart of one service.
    if world.chance(300) {
        let ids: Vec<ServiceId> = night
            .fleet
            .services
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let id = ids[world.draw(ids.len() as u64) as usize].clone();
        let after = Duration::from_secs(120 + world.draw(3_000));
        tasks.push(tokio::spawn(manual_restart(night.clone(), id, after)));
    }
    // The kill switch, on for a while.
    if world.chance(250) {
        let on = Duration::from_secs(120 + world.draw(2_400));
        let lasts = Duration::from_secs(60 + world.draw(3_600));
        let n = night.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(on).await;
            n.world.note("pause".into());
            let pause = Pause {
                reason: "an incident".into(),
                by: "on-call".into(),
                at: n.world.clock.now(),
            };
            n.store.0.nights.lock().unwrap().pause = Some(pause);
            tokio::time::sleep(lasts).await;
            n.world.note("resume".into());
            n.store.0.nights.lock().unwrap().pause = None;
        }));
    }
    // The clock jumps to the window's end (a host suspended, a clock corrected).
    if world.chance(100) {
        let after = Duration::from_secs(300 + world.draw(2_400));
        let n = night.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            n.world.note("the clock jumps to the window's end".into());
            n.world
                .clock
                .jump_to(at(2, 0) - TimeDelta::seconds(n.world.draw(5) as i64));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    close_night(&night).await;
    // Copies still running end at their timeout.
    tokio::time::sleep(LAMBDA_TIMEOUT).await;
    night
}

/// Holds a run to the invariants; each broken one, in words.
pub fn check(night: &Night) -> Vec<String> {
    let mut broken = Vec::new();
    let window_end = night.config.window.night(the_night()).end;
    let records = night.store.0.nights.lock().unwrap().records.clone();
    let services = night.fleet.services.lock().unwrap();
    for (id, svc) in services.iter() {
        let name = id;
        if svc.updates.len() > 1 {
            broken.push(format!(
                "{name}: UpdateService ran {} times: {:?}",
                svc.updates.len(),
                svc.updates
            ));
        }
        for (t, rolling, _) in &svc.updates {
            if *rolling >= CAP {
                broken.push(format!(
                    "{name}: UpdateService at {t} with {rolling} restarts of its cluster in flight (cap {CAP})"
                ));
            }
            if *t >= window_end && !night.world.manual.lock().unwrap().contains(id) {
                broken.push(format!(
                    "{name}: UpdateService at {t}, after the window's end {window_end}"
                ));
            }
        }
        let Some(r) = records.get(&(the_night(), id.clone())) else {
            broken.push(format!("{name}: no record"));
            continue;
        };
        if !r.state.is_terminal() {
            broken.push(format!("{name}: left {} ({:?})", r.state, r.detail));
        }
        let ours: Vec<&Dep> = svc.deps.iter().filter(|d| d.ours).collect();
        match r.state {
            NightState::Completed => {
                let dep = r.deployment_id.as_deref().unwrap_or_default();
                let ran = svc.updates.iter().any(|(_, _, d)| d == dep);
                let failed = ours.iter().any(|d| d.d.id == dep && d.fails);
                if !ran || failed {
                    broken.push(format!(
                        "{name}: recorded completed with {dep}, which {}",
                        if ran {
                            "failed and was rolled back"
                        } else {
                            "no UpdateService of ours made"
                        }
                    ));
                }
            }
            NightState::Skipped | NightState::Planned | NightState::Halted
                if !svc.updates.is_empty() =>
            {
                broken.push(format!(
                    "{name}: recorded {} ({:?}) though UpdateService ran",
                    r.state, r.skip_reason
                ));
            }
            _ => {}
        }
    }
    drop(services);
    // The night's counters equal its records.
    let status = night
        .store
        .0
        .nights
        .lock()
        .unwrap()
        .status
        .get(&the_night())
        .cloned()
        .unwrap_or_default();
    let mut by_state: BTreeMap<NightState, u64> = BTreeMap::new();
    for r in records.values() {
        *by_state.entry(r.state).or_default() += 1;
        if r.started_at.is_some() && r.state != NightState::Started {
            *by_state.entry(NightState::Started).or_default() += 1;
        }
    }
    for state in [
        NightState::Started,
        NightState::Completed,
        NightState::Failed,
        NightState::RolledBack,
        NightState::TimedOut,
    ] {
        let counted = status.counts.get(&state).copied().unwrap_or(0);
        let recorded = by_state.get(&state).copied().unwrap_or(0);
        if counted != recorded {
            broken.push(format!(
                "the tallies count {counted} {state}, the records {recorded}"
            ));
        }
    }
    // Lost with their account: timed out, and counted apart for the circuit breaker. A lost
    // account's restarts in flight are the only ones (manual ones included) marked so.
    let lost = records
        .values()
        .filter(|r| r.account_lost)
        .inspect(|r| {
            if r.state != NightState::TimedOut {
                broken.push(format!("{} is {} and marked account_lost", r.id, r.state));
            }
        })
        .count() as u64;
    if status.lost != lost {
        broken.push(format!(
            "the tallies count {} lost with their account, the records {lost}",
            status.lost
        ));
    }
    broken
}

/// Runs `seed` to its end on a fresh single-threaded runtime with a paused clock, and checks
/// it. The violations, and the run's log when there are any.
pub fn play(seed: u64) -> (Vec<String>, Arc<Night>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let night = run(seed).await;
        let broken = check(&night);
        (broken, night)
    })
}

/// A failing seed's report: what broke, then what happened.
pub fn report(seed: u64, broken: &[String], night: &Night) -> String {
    let mut out = format!("seed {seed} broke {} invariant(s):\n", broken.len());
    for b in broken {
        let _ = writeln!(out, "  - {b}");
    }
    let _ = writeln!(
        out,
        "replay it: SIM_SEED={seed} cargo test -p restarter --test integration races::"
    );
    let _ = writeln!(out, "the records at the end:");
    for r in night.store.0.nights.lock().unwrap().records.values() {
        let _ = writeln!(
            out,
            "  {}: {} deployment {:?} started {:?} finished {:?} {:?}",
            r.id,
            r.state,
            r.deployment_id,
            r.started_at.map(|t| t.format("%H:%M:%S").to_string()),
            r.finished_at.map(|t| t.format("%H:%M:%S").to_string()),
            r.detail
        );
    }
    let _ = writeln!(out, "what happened:");
    for line in night.world.log.lock().unwrap().iter() {
        let _ = writeln!(out, "  {line}");
    }
    out
}
