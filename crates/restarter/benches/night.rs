//! Restarter benchmark (issue 5): a whole night of a generated fleet of 10,000 services in 50
//! accounts (50 × 20 clusters × 10 services, eu-west-1), deployments of 240-600 simulated
//! seconds, fleet-sim in-process over HTTP with `latency_ms: 20` and the documented ECS
//! throttles on, `time_scale: 120` (the six-hour window in about three minutes).
//!
//! `BENCH_FLEET` chooses another fleet (the same deployments, failure mix and throttles):
//! `100k` is 200 accounts × 20 clusters × 25 services (100,000 services in 4,000 clusters),
//! `100k-50` is 50 accounts × 20 clusters × 100 services (100,000 services in 50 accounts:
//! about 44 restarts per account and batch, so the pacing floor of a batch's start reaches the
//! restarter's `START_BUDGET` and what a start leaves is started by the following polls). Both
//! run at `time_scale: 24` so that this 2-core machine keeps up (a night of about 16 minutes);
//! `BENCH_TIME_SCALE` overrides the scale of any fleet.
//!
//! The real handlers run against it through the AWS SDK: inventory, the batcher (36 batches,
//! 00:00-06:00 UTC every 10 minutes), then, for every batch as the state machine's Map does,
//! wait until its start, `start`, and `poll` every `wait_seconds` until done, each invocation
//! in a restarter container no other invocation is using at the time (`Containers`: its own
//! pacer and sessions, as Lambda runs one invocation per container; UpdateService is paced
//! across containers through the table, as in production). The three
//! handlers share one in-memory table (`MemoryStore`: moto answers every Query by scanning the
//! whole table, which would measure moto), and their clock is fleet-sim's simulated one, so
//! batch starts, the poll interval and the restart timeout are all simulated time. ECS calls are
//! paced in real time (the throttles are real-time buckets), as in AWS.
//!
//! Reports: API calls per completed restart; for each batch the time from its start to its last
//! UpdateService against the pacing floor; the delay between a deployment completing in
//! fleet-sim and the restarter recording it; throttled calls; the most restarts in flight at
//! once per cluster; outcome counts; the invocations (count, durations, their sum); the
//! inventory's and the batcher's runs (the batcher's records written and peak memory); wall
//! time; the process's peak memory. Exits non-zero when a hard invariant breaks (in-flight
//! above the cap, a throttled call, an eligible service not in exactly one terminal state, a
//! planned service never started, a service restarted twice, a tag that disagrees with its
//! record).
//!
//! The night runs in a child process (this binary, re-executed) whose standard output is
//! filtered of the handlers' EMF lines, so that the report stays readable. Run with
//! `tools/with-moto cargo bench -p restarter --bench night` (part of `make bench`;
//! `BENCH_FLEET=100k tools/with-moto cargo bench -p restarter --bench night` for the large
//! fleet): moto serves nothing here, but `testkit::hub_sdk_config` (the tests' SDK settings)
//! wants `MOTO_ENDPOINT`. Figures: docs/performance.md.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use testkit::bench::{BenchFleet, memory_mb};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, NaiveDate, Utc};
use fleet_sim::{FleetSpec, SimHandle};
use futures::stream::{self, StreamExt};
use restart_aws::ecs::EcsFleet;
use restart_aws::sts::{AccountSessions, MemberRole};
use restart_core::clock::{Clock, SystemClock};
use restart_core::eligibility::SkipReason;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::pacing::Pacer;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{ControlError, FleetControl, ListedAccounts, NightStore};
use restart_core::service::{RolloutState, ServiceSnapshot};
use restart_core::tag::restart_tag_value;
use restart_core::telemetry::ApiCalls;
use restart_core::{Config, ErrorType};
use restarter::{Output, Restarter, START_BUDGET};
use serde_json::json;
use testkit::fakes::{MemoryStore, SharedStore};

const CHILD: &str = "RESTARTER_NIGHT_BENCH_CHILD";
const BATCHES: usize = 36;
const LATENCY_MS: f64 = 20.0;
const NIGHT: &str = "2026-11-22";
const TAG_KEY: &str = "ecs_task_daily_restart";
/// How many records a BatchWriteItem takes: the unit the batcher's writes are counted in.
const WRITE_CHUNK: u64 = 25;

/// The fleet of the night, as `BENCH_FLEET` asks ([`BenchFleet`]), and how fast it runs.
#[derive(Debug, Clone)]
struct Shape {
    fleet: BenchFleet,
    /// Simulated seconds per real second.
    time_scale: f64,
    /// When simulated time starts: before the window, so that inventory and planning finish
    /// before the first batch; the clock is then moved to the window's start.
    start_time: &'static str,
}

impl std::ops::Deref for Shape {
    type Target = BenchFleet;
    fn deref(&self) -> &BenchFleet {
        &self.fleet
    }
}

impl Shape {
    fn from_env() -> anyhow::Result<Shape> {
        let fleet = BenchFleet::from_env().map_err(anyhow::Error::msg)?;
        // At 4,000 clusters and 120 simulated seconds per real second the machine cannot keep
        // up (a poll of 2,000 services would last minutes of simulated time); at 24 the night
        // lasts about 16 minutes.
        let (time_scale, start_time) = if fleet.name == "10k" {
            (120.0, "2026-11-21T23:50:00Z")
        } else {
            (24.0, "2026-11-21T23:20:00Z")
        };
        let mut shape = Shape {
            fleet,
            time_scale,
            start_time,
        };
        if let Ok(scale) = std::env::var("BENCH_TIME_SCALE") {
            shape.time_scale = scale
                .parse()
                .ok()
                .filter(|s: &f64| *s >= 1.0)
                .with_context(|| format!("BENCH_TIME_SCALE={scale}: a number ≥ 1"))?;
        }
        Ok(shape)
    }

    fn services(&self) -> u64 {
        self.fleet.services()
    }

    fn spec(&self) -> String {
        format!(
            r#"
seed: 5
time_scale: {scale}
latency_ms: {LATENCY_MS}
throttling: true
start_time: "{start}"
generate:
  accounts: {accounts}
  regions: [eu-west-1]
  clusters_per_account: {clusters}
  services_per_cluster: {services}
  tagged_percent: 90
  deploy_seconds: [240, 600]
  fail_percent: 1
  stuck_percent: 0.5
  vanish_percent: 0.3
  code_deploy_percent: 1
"#,
            scale = self.time_scale,
            start = self.start_time,
            accounts = self.accounts,
            clusters = self.clusters_per_account,
            services = self.services_per_cluster,
        )
    }

    fn describe(&self) -> String {
        format!(
            "BENCH_FLEET={}: fleet-sim generated {} accounts × {} clusters × {} services = {} \
             services in {} clusters, eu-west-1, deployments 240-600 simulated s, time_scale {}, \
             latency {LATENCY_MS} ms, throttles on",
            self.name,
            self.accounts,
            self.clusters_per_account,
            self.services_per_cluster,
            self.services(),
            self.accounts * self.clusters_per_account,
            self.time_scale,
        )
    }
}

static SHAPE: OnceLock<Shape> = OnceLock::new();

/// The fleet of this run (set once in `main`).
fn shape() -> &'static Shape {
    SHAPE.get().expect("the shape is set in main")
}

/// Peaks of resident memory, phase by phase: the kernel's peak (`VmHWM`) is read at the end of
/// each phase and reset to the current size for the next (`/proc/self/clear_refs`).
#[derive(Debug, Default)]
struct Peaks {
    phases: Vec<(&'static str, f64, f64)>,
    rss_before: f64,
}

impl Peaks {
    fn begin(&mut self) {
        self.rss_before = memory_mb("VmRSS:");
        // Without the reset the phase's peak is the process's so far (still a bound).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }

    fn end(&mut self, phase: &'static str) -> (f64, f64) {
        let peak = memory_mb("VmHWM:");
        self.phases.push((phase, self.rss_before, peak));
        (self.rss_before, peak)
    }

    fn overall(&self) -> f64 {
        self.phases.iter().map(|p| p.2).fold(0.0, f64::max)
    }

    fn line(&self) -> String {
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(p, before, peak)| format!("{p} {before:.0} → {peak:.0} MB"))
            .collect();
        format!(
            "peak RSS of the process (VmHWM; fleet-sim's world and the in-memory table \
             included): {:.0} MB; by phase (resident before → peak during): {}",
            self.overall(),
            phases.join(", ")
        )
    }
}

/// The handlers' clock: fleet-sim's simulated time.
#[derive(Debug)]
struct SimTime(SimHandle);

impl Clock for SimTime {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

/// One UpdateService, as the restarter made it.
#[derive(Debug, Clone)]
struct Update {
    id: ServiceId,
    at: Instant,
    ok: bool,
}

/// The restarter's ECS adapter, with every UpdateService's return time noted.
#[derive(Debug)]
struct Timed<F> {
    inner: F,
    /// Every container's, in one list.
    updates: Arc<Mutex<Vec<Update>>>,
}

impl<F: FleetControl> FleetControl for Timed<F> {
    async fn describe(&self, services: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        self.inner.describe(services).await
    }

    async fn pace_update(&self, service: &ServiceId) {
        self.inner.pace_update(service).await;
    }

    async fn force_new_deployment(&self, service: &ServiceId) -> Result<String, ControlError> {
        let out = self.inner.force_new_deployment(service).await;
        self.updates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Update {
                id: service.clone(),
                at: Instant::now(),
                ok: out.is_ok(),
            });
        out
    }

    async fn tag(&self, service: &ServiceArn, key: &str, value: &str) -> Result<(), ControlError> {
        self.inner.tag(service, key, value).await
    }
}

type Bench = Restarter<Timed<EcsFleet>, SharedStore>;

/// Lambda's containers of the restarter function. A container runs one invocation at a time,
/// so an invocation gets a container no other invocation is using (its own pacer and
/// sessions, as in production): an idle one if there is one, as Lambda reuses them, else a new
/// one. Only UpdateService is paced across containers (through the table).
struct Containers {
    idle: Mutex<Vec<Arc<Bench>>>,
    new: Box<dyn Fn() -> Bench + Send + Sync>,
    /// How many were started.
    started: std::sync::atomic::AtomicUsize,
    /// Every container's UpdateService calls.
    updates: Arc<Mutex<Vec<Update>>>,
}

impl Containers {
    fn new(
        updates: Arc<Mutex<Vec<Update>>>,
        new: impl Fn() -> Bench + Send + Sync + 'static,
    ) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            new: Box::new(new),
            started: std::sync::atomic::AtomicUsize::new(0),
            updates,
        }
    }

    /// An idle container, or a new one.
    fn take(&self) -> Arc<Bench> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        idle.unwrap_or_else(|| {
            self.started
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Arc::new((self.new)())
        })
    }

    async fn handle(&self, event: serde_json::Value) -> Result<Output, restart_core::HandlerError> {
        let container = self.take();
        let out = container.handle(event).await;
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(container);
        out
    }

    fn started(&self) -> usize {
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The ECS adapter as each function's `aws.rs` wires it.
fn ecs_fleet(
    config: &Config,
    sdk: &aws_types::SdkConfig,
    clock: Arc<dyn Clock>,
    who: &str,
) -> EcsFleet {
    let calls = Arc::new(ApiCalls::default());
    let sessions = AccountSessions::new(
        restart_aws::sts_client(sdk),
        MemberRole {
            partition: restart_aws::partition(sdk).into(),
            role_name: config.member_role_name.clone(),
            external_id: config.external_id.clone(),
            session_name: format!("ecs-nightly-restart-{who}"),
        },
        clock,
        calls.clone(),
    );
    EcsFleet::new(
        sdk.clone(),
        sessions,
        Arc::new(Pacer::new(config.pacing)),
        calls,
    )
}

/// Simulated seconds as the real time they take.
fn real(sim_seconds: f64) -> Duration {
    Duration::from_secs_f64((sim_seconds / shape().time_scale).max(0.0))
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// One poll invocation of a batch.
#[derive(Debug, Clone)]
struct Poll {
    /// The state machine's Wait before it: from the end of the previous invocation, meant to
    /// last `nominal` simulated seconds.
    waited_from: DateTime<Utc>,
    nominal: f64,
    began: DateTime<Utc>,
    ended: DateTime<Utc>,
    took: Duration,
}

/// When the bench saw a record become terminal: after the start (`poll: None`) or a poll.
#[derive(Debug, Clone, Copy)]
struct Seen {
    poll: Option<usize>,
}

/// What one batch's run through the state machine's loop came to.
#[derive(Debug)]
struct BatchRun {
    batch: u32,
    start_at: DateTime<Utc>,
    invoked: Instant,
    /// `invoked` on the wall clock, Unix seconds: where in its second the start began, which
    /// the shared pace's one-second windows depend on.
    invoked_unix: f64,
    invoked_sim: DateTime<Utc>,
    start_took: Duration,
    started: u64,
    deferred: u64,
    halted: bool,
    polls: Vec<Poll>,
    seen: HashMap<ServiceId, Seen>,
}

/// The soonest a start that began at Unix time `began` (seconds) can see the answer to its
/// `n`-th UpdateService in one account and region: one round trip (DescribeServices), then the
/// calls as both pacers allow them (the container's token bucket, `rate` a second holding
/// `burst`, full at the start; the shared pace's windows of at most `floor(rate)` calls a Unix
/// second), then the last call's round trip. In seconds after `began`.
fn windowed_floor(n: u64, rate: f64, burst: f64, began: f64, rtt: f64) -> f64 {
    let per_window = rate.floor().max(1.0) as u64;
    let mut t = began + rtt;
    let (mut tokens, mut refilled) = (burst, t);
    let (mut window, mut in_window) = (t.floor(), 0);
    for _ in 0..n {
        loop {
            tokens = (tokens + (t - refilled) * rate).min(burst);
            refilled = t;
            if tokens < 1.0 {
                t += (1.0 - tokens) / rate;
                continue;
            }
            if t.floor() > window {
                (window, in_window) = (t.floor(), 0);
            }
            if in_window >= per_window {
                t = window + 1.0;
                continue;
            }
            break;
        }
        tokens -= 1.0;
        in_window += 1;
    }
    t + rtt - began
}

/// One batch as the state machine's Map iteration runs it: wait until its start, `start`, then
/// `poll` after every `wait_seconds` until done.
async fn run_batch(
    restarter: Arc<Containers>,
    store: SharedStore,
    clock: Arc<SimTime>,
    night: NaiveDate,
    planned: PlannedBatch,
) -> anyhow::Result<BatchRun> {
    loop {
        let ahead = secs(planned.start_at - clock.now());
        if ahead <= 0.0 {
            break;
        }
        tokio::time::sleep(real(ahead)).await;
    }
    let batch = planned.batch;
    let invoked = Instant::now();
    let invoked_unix = SystemClock.now().timestamp_micros() as f64 / 1e6;
    let invoked_sim = clock.now();
    let mut run = BatchRun {
        batch,
        start_at: planned.start_at,
        invoked,
        invoked_unix,
        invoked_sim,
        start_took: Duration::ZERO,
        started: 0,
        deferred: 0,
        halted: false,
        polls: Vec::new(),
        seen: HashMap::new(),
    };
    let out = restarter
        .handle(json!({ "mode": "start", "night": night, "batch": batch }))
        .await;
    run.start_took = invoked.elapsed();
    let mut wait = match out {
        Ok(Output::Start(s)) => {
            run.started = s.started;
            run.deferred = s.deferred;
            s.wait_seconds
        }
        Err(e) if e.error_type == ErrorType::Halted => {
            run.halted = true;
            return Ok(run);
        }
        Err(e) => bail!("start of batch {batch}: {}: {}", e.error_type, e.message),
        Ok(other) => bail!("start of batch {batch} answered {other:?}"),
    };
    let mut waited_from = clock.now();
    note_terminal(&store, night, batch, None, &mut run.seen).await?;
    for i in 0.. {
        ensure!(i < 1_000, "batch {batch} is not done after 1,000 polls");
        tokio::time::sleep(real(wait as f64)).await;
        let began = clock.now();
        let t = Instant::now();
        let out = restarter
            .handle(json!({ "mode": "poll", "night": night, "batch": batch }))
            .await;
        let took = t.elapsed();
        let ended = clock.now();
        run.polls.push(Poll {
            waited_from,
            nominal: wait as f64,
            began,
            ended,
            took,
        });
        waited_from = ended;
        let poll = match out {
            Ok(Output::Poll(p)) => p,
            Err(e) if e.error_type == ErrorType::Halted => {
                run.halted = true;
                return Ok(run);
            }
            Err(e) => bail!("poll of batch {batch}: {}: {}", e.error_type, e.message),
            Ok(other) => bail!("poll of batch {batch} answered {other:?}"),
        };
        note_terminal(&store, night, batch, Some(i), &mut run.seen).await?;
        if poll.done {
            break;
        }
        wait = poll.wait_seconds;
    }
    Ok(run)
}

/// Notes the batch's records that became terminal since the last look.
async fn note_terminal(
    store: &MemoryStore,
    night: NaiveDate,
    batch: u32,
    poll: Option<usize>,
    seen: &mut HashMap<ServiceId, Seen>,
) -> anyhow::Result<()> {
    for r in store.read_batch(night, batch).await? {
        if r.state.is_terminal() && !seen.contains_key(&r.id) {
            seen.insert(r.id, Seen { poll });
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn main() -> anyhow::Result<()> {
    let shape = Shape::from_env()?;
    SHAPE.get_or_init(|| shape);
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Runtime::new()?;
        return rt.block_on(night());
    }
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.iter().any(|a| !"night".contains(a.as_str())) {
        return Ok(());
    }
    // The night in a child whose EMF lines (one per invocation) are left out of the report.
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the benchmark's child")?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut emf = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line.starts_with('{') && line.contains("\"_aws\"") {
            emf += 1;
        } else {
            println!("{line}");
        }
    }
    let status = child.wait()?;
    println!("({emf} EMF lines of the handlers left out)");
    ensure!(status.success(), "the night benchmark failed: {status}");
    Ok(())
}

/// What inventory and the batcher did before the night.
#[derive(Debug)]
struct Prepared {
    /// Inventory's invocation, in real time, and its discovery as the handler measured it (in
    /// simulated time: its clock is fleet-sim's).
    inventory: Duration,
    discovery_sim_ms: u64,
    inventory_memory: (f64, f64),
    /// The batcher's invocation, in real time.
    batcher: Duration,
    batcher_memory: (f64, f64),
    /// Night items the batcher wrote (records, batch items, the plan summary), and the
    /// records among them.
    night_items: u64,
    records: u64,
    planned: u64,
}

impl Prepared {
    fn lines(&self, shape: &Shape) -> Vec<String> {
        let chunks = self.records.div_ceil(WRITE_CHUNK);
        vec![
            format!(
                "inventory invocation: {:.0} ms ({} accounts, ACCOUNT_CONCURRENCY={}; discovery \
                 {:.0} ms of it, as the handler measured it in simulated time ÷ {}); resident \
                 memory {:.0} MB before → peak {:.0} MB during",
                self.inventory.as_secs_f64() * 1000.0,
                shape.accounts,
                shape.accounts,
                self.discovery_sim_ms as f64 / shape.time_scale,
                shape.time_scale,
                self.inventory_memory.0,
                self.inventory_memory.1,
            ),
            format!(
                "batcher invocation (planner + the night's writes into the in-memory table): \
                 {:.0} ms; {} records written ({} planned in {BATCHES} batches, {} skipped) = {} \
                 BatchWriteItem-sized chunks of {WRITE_CHUNK} (the DynamoDB store writes each \
                 record as one conditional PutItem, 16 in flight: {} requests, ≈ {:.0} s at 10 ms \
                 each); {} night items in all with the batch items and the summary; resident \
                 memory {:.0} MB before → peak {:.0} MB during (+{:.0} MB, the table's new \
                 records included)",
                self.batcher.as_secs_f64() * 1000.0,
                self.records,
                self.planned,
                self.records - self.planned,
                chunks,
                self.records,
                self.records as f64 / 16.0 * 0.010,
                self.night_items,
                self.batcher_memory.0,
                self.batcher_memory.1,
                self.batcher_memory.1 - self.batcher_memory.0,
            ),
        ]
    }
}

async fn night() -> anyhow::Result<()> {
    let wall = Instant::now();
    let shape = shape();
    println!("{}", shape.describe());
    let mut peaks = Peaks::default();
    peaks.begin();
    let spec = FleetSpec::from_yaml_str(&shape.spec())?;
    ensure!(spec.time_scale == shape.time_scale && spec.latency_ms as f64 == LATENCY_MS);
    let account_ids = fleet_sim::world::build(&spec, 0).account_order;
    ensure!(account_ids.len() as u64 == shape.accounts);
    let sim = fleet_sim::spawn(spec).await?;
    let handle = sim.handle().clone();
    let sdk = testkit::hub_sdk_config(&sim.endpoint_url());
    let clock = Arc::new(SimTime(handle.clone()));
    let store = SharedStore::default();
    let night: NaiveDate = NIGHT.parse()?;
    let config = Config::from_vars([
        ("TABLE_NAME", "in-memory"),
        ("ACCOUNTS", account_ids.join(",").as_str()),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "ecs-restart-member"),
        ("WINDOW_START", "00:00"),
        ("WINDOW_END", "06:00"),
        ("TIMEZONE", "UTC"),
        ("BATCH_INTERVAL_MINUTES", "10"),
        // Every account at once, as a deployment sized for its fleet would.
        ("ACCOUNT_CONCURRENCY", shape.accounts.to_string().as_str()),
    ])?;
    let config = Arc::new(config);

    peaks.end("fleet-sim loaded");

    // Inventory and the plan, before the window opens.
    let t = Instant::now();
    let prep_sim = clock.now();
    peaks.begin();
    let inventory = inventory::Inventory {
        config: config.clone(),
        directory: ListedAccounts(
            account_ids
                .iter()
                .map(|a| a.parse())
                .collect::<Result<_, _>>()?,
        ),
        fleet: ecs_fleet(&config, &sdk, clock.clone(), "inventory"),
        store: store.clone(),
        clock: clock.clone(),
        calls: Arc::new(ApiCalls::default()),
    };
    let found = inventory
        .handle(json!({ "night": night }))
        .await
        .map_err(|e| anyhow::anyhow!("inventory: {}: {}", e.error_type, e.message))?;
    ensure!(
        found.services_found == shape.services(),
        "inventory found {found:?}"
    );
    let inventory_took = t.elapsed();
    let inventory_memory = peaks.end("inventory");
    ensure!(
        found.unreachable_count == 0,
        "unreachable: {:?}",
        found.unreachable_sample
    );
    drop(inventory);
    let batcher = batcher::Batcher {
        config: config.clone(),
        store: store.clone(),
        clock: clock.clone(),
    };
    let items_before = store.night_writes();
    peaks.begin();
    let b = Instant::now();
    let plan = batcher
        .handle(json!({ "night": night }))
        .await
        .map_err(|e| anyhow::anyhow!("batcher: {}: {}", e.error_type, e.message))?;
    let batcher_took = b.elapsed();
    let batcher_memory = peaks.end("batcher");
    let prepared = t.elapsed();
    let prep = Prepared {
        inventory: inventory_took,
        discovery_sim_ms: found.discovery_ms,
        inventory_memory,
        batcher: batcher_took,
        batcher_memory,
        night_items: store.night_writes() - items_before,
        records: store.read_night(night).await?.len() as u64,
        planned: plan.batches.iter().map(|b| u64::from(b.size)).sum(),
    };
    for l in prep.lines(shape) {
        println!("{l}");
    }
    ensure!(
        plan.batches.len() == BATCHES,
        "{} batches planned",
        plan.batches.len()
    );
    let window_start = config.window.night(night).start;
    let early = secs(window_start - clock.now());
    ensure!(
        early >= 0.0,
        "inventory and planning took past the window's start ({prepared:?})"
    );
    println!(
        "inventory + plan took {:.1} s ({:.0} simulated s; {:.0} simulated s were left before \
         the window)",
        prepared.as_secs_f64(),
        secs(clock.now() - prep_sim),
        early,
    );
    handle.advance_seconds(early);
    let before = handle.stats();
    peaks.begin();
    let reads = Arc::new(CountedCalls::default());
    store.set_gate(reads.clone());

    // The night: every batch as a Map iteration, all at once (MaxConcurrency 40 ≥ 36).
    let updates = Arc::new(Mutex::new(Vec::new()));
    let restarter = Arc::new(Containers::new(updates.clone(), {
        let (config, sdk, clock, store) =
            (config.clone(), sdk.clone(), clock.clone(), store.clone());
        move || Restarter {
            config: config.clone(),
            fleet: Timed {
                // As production: UpdateService also waits for the slots shared through the
                // table, in seconds of the wall clock.
                inner: ecs_fleet(&config, &sdk, clock.clone(), "restarter")
                    .with_shared_pace(store.0.clone(), Arc::new(SystemClock)),
                updates: updates.clone(),
            },
            store: store.clone(),
            clock: clock.clone(),
            guards: std::sync::Arc::new(restart_core::guard::NoGuards),
            budget: START_BUDGET,
        }
    }));
    let night_wall = Instant::now();
    let night_sim = clock.now();
    let tasks: Vec<_> = plan
        .batches
        .iter()
        .map(|b| {
            tokio::spawn(run_batch(
                restarter.clone(),
                store.clone(),
                clock.clone(),
                night,
                *b,
            ))
        })
        .collect();
    let mut runs = Vec::new();
    for t in tasks {
        runs.push(t.await??);
    }
    let night_took = night_wall.elapsed();
    let night_ended = clock.now();
    let calls = reads.taken();
    println!("{}", store_reads_line(&calls, &store, night));
    let after = handle.stats();
    peaks.end("the night");

    let report = Report::new(
        &config,
        &plan.batches,
        &runs,
        &restarter,
        &store,
        night,
        &before,
        &after,
    )
    .await?;
    let tags = check_tags(&restarter.take(), &report.records).await?;
    report.print(
        &prep,
        prepared,
        night_took,
        secs(night_ended - night_sim),
        wall.elapsed(),
    );
    println!("{}", peaks.line());
    let mut broken = report.violations.clone();
    broken.extend(tags);
    sim.shutdown().await?;
    if !broken.is_empty() {
        for v in &broken {
            eprintln!("VIOLATED: {v}");
        }
        bail!("{} invariants violated", broken.len());
    }
    println!("every invariant held");
    Ok(())
}

/// Counts the in-memory table's calls by operation (the store's gate is passed before each).
#[derive(Debug, Default)]
struct CountedCalls(Mutex<BTreeMap<&'static str, u64>>);

impl CountedCalls {
    fn taken(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl testkit::fakes::StoreGate for CountedCalls {
    fn pass(
        &self,
        op: &'static str,
    ) -> testkit::fakes::BoxFuture<'static, Result<(), restart_core::ports::StoreError>> {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(op)
            .or_default() += 1;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What the restarter's invocations read of the table: the reads a start or poll makes, and
/// how many items stand behind the night's counters (the batches' counts it reads now, and the
/// clusters' tallies the night's exact counters would be summed from).
fn store_reads_line(
    calls: &BTreeMap<&'static str, u64>,
    store: &MemoryStore,
    night: NaiveDate,
) -> String {
    let count = |op: &str| calls.get(op).copied().unwrap_or(0);
    // Every start and poll checks its batch against the plan first.
    let invocations = count("read_batches").max(1) as f64;
    let n = store.nights.lock().unwrap_or_else(|e| e.into_inner());
    let batch_counts = n.batch_counts.get(&night).map_or(0, BTreeMap::len);
    let clusters = n.inflight.keys().filter(|(d, _)| *d == night).count();
    format!(
        "store reads per start or poll ({invocations:.0} invocations): the batch {:.2}, the \
         breaker's counts {:.2} (each {batch_counts} batch items), the night's exact counters \
         {:.2} (each the tallies of {clusters} clusters)",
        count("read_batch_guarded") as f64 / invocations,
        count("night_tally") as f64 / invocations,
        count("night_status") as f64 / invocations,
    )
}

/// Completed restarts carry the tag with their completion time; no other restarted service
/// carries a tag written tonight. Looks at fleet-sim after the night (not counted above).
async fn check_tags(restarter: &Bench, records: &[NightRecord]) -> anyhow::Result<Vec<String>> {
    let mut by_cluster: BTreeMap<String, Vec<&NightRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.deployment_id.is_some()) {
        by_cluster.entry(r.id.cluster_key()).or_default().push(r);
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    // Many clusters at once (the calls stay paced per account): one at a time, 4,000 clusters
    // would take minutes.
    let described: Vec<anyhow::Result<(&Vec<&NightRecord>, Vec<ServiceSnapshot>)>> =
        stream::iter(by_cluster.values())
            .map(|group| async move {
                let ids: Vec<ServiceId> = group.iter().map(|r| r.id.clone()).collect();
                let live = restarter
                    .fleet
                    .describe(&ids)
                    .await
                    .map_err(|e| anyhow::anyhow!("describe after the night: {e}"))?;
                Ok((group, live))
            })
            .buffer_unordered(64)
            .collect()
            .await;
    for described in described {
        let (group, live) = described?;
        for r in group {
            let s = live.iter().find(|s| s.id == r.id);
            let tag = s.and_then(|s| s.tags.get(TAG_KEY));
            let tonight = tag.is_some_and(|t| t.starts_with("2026-11-22T"));
            if r.state == NightState::Completed {
                checked += 1;
                let Some(at) = r.finished_at else {
                    broken.push(format!("{}: completed without finished_at", r.id));
                    continue;
                };
                if tag.map(String::as_str) != Some(restart_tag_value(at).as_str()) {
                    broken.push(format!("{}: tag {tag:?}, completed at {at}", r.id));
                }
                // The completion time recorded is the one fleet-sim reports for our deployment.
                let ours = s.and_then(|s| {
                    s.deployments
                        .iter()
                        .find(|d| Some(&d.id) == r.deployment_id.as_ref())
                });
                let matches = ours.is_some_and(|d| {
                    d.rollout_state == Some(RolloutState::Completed) && d.updated_at == Some(at)
                });
                if !matches {
                    broken.push(format!("{}: fleet-sim shows {ours:?}, record {at}", r.id));
                }
            } else if tonight {
                broken.push(format!("{} is {} but tagged {tag:?}", r.id, r.state));
            }
        }
    }
    println!("tags checked against fleet-sim: {checked} completed restarts");
    Ok(broken)
}

#[derive(Debug)]
struct Report {
    records: Vec<NightRecord>,
    violations: Vec<String>,
    lines: Vec<String>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    async fn new(
        config: &Config,
        batches: &[PlannedBatch],
        runs: &[BatchRun],
        restarter: &Containers,
        store: &MemoryStore,
        night: NaiveDate,
        before: &fleet_sim::Stats,
        after: &fleet_sim::Stats,
    ) -> anyhow::Result<Report> {
        let records = store.read_night(night).await?;
        let mut violations = Vec::new();
        let mut lines = Vec::new();
        let cap = config.max_inflight_per_cluster;
        let services = shape().services();
        let scale = shape().time_scale;

        // Outcomes: every planned service in exactly one terminal state.
        let mut counts: BTreeMap<NightState, u64> = BTreeMap::new();
        for r in &records {
            *counts.entry(r.state).or_default() += 1;
        }
        let planned: u64 = batches.iter().map(|b| u64::from(b.size)).sum();
        let batched: Vec<&NightRecord> = records.iter().filter(|r| r.batch.is_some()).collect();
        let unique: HashSet<&ServiceId> = records.iter().map(|r| &r.id).collect();
        if unique.len() != records.len() {
            violations.push(format!(
                "{} records for {} services",
                records.len(),
                unique.len()
            ));
        }
        if batched.len() as u64 != planned {
            violations.push(format!(
                "{} batched records, {planned} planned",
                batched.len()
            ));
        }
        let open: Vec<&&NightRecord> = batched.iter().filter(|r| !r.state.is_terminal()).collect();
        if !open.is_empty() {
            violations.push(format!(
                "{} planned services not in a terminal state, e.g. {} {}",
                open.len(),
                open[0].id,
                open[0].state
            ));
        }
        if records.len() as u64 != services {
            violations.push(format!("{} records for {services} services", records.len()));
        }
        let skipped_live = batched
            .iter()
            .filter(|r| r.state == NightState::Skipped)
            .count();
        // Every planned service started, or skipped at the live check for a reason of its own:
        // none left behind by the window's end (or a halt) because the starts could not keep up.
        let never_started: Vec<&&NightRecord> =
            batched.iter().filter(|r| r.started_at.is_none()).collect();
        let left_behind: Vec<&&NightRecord> = never_started
            .iter()
            .copied()
            .filter(|r| {
                r.state == NightState::Halted || r.skip_reason == Some(SkipReason::WindowClosed)
            })
            .collect();
        if let Some(r) = left_behind.first() {
            violations.push(format!(
                "{} planned services never started (left behind), e.g. {} {} {:?}",
                left_behind.len(),
                r.id,
                r.state,
                r.skip_reason
            ));
        }
        let count = |s: NightState| counts.get(&s).copied().unwrap_or(0);
        lines.push(format!(
            "services {services}: planned {planned} in {} batches, skipped at planning {}; \
             outcomes: completed {}, failed {}, rolled_back {}, timed_out {}, vanished {}, \
             skipped {} ({} of them at the live check), halted {}",
            batches.len(),
            records.len() - batched.len(),
            count(NightState::Completed),
            count(NightState::Failed),
            count(NightState::RolledBack),
            count(NightState::TimedOut),
            count(NightState::Vanished),
            count(NightState::Skipped),
            skipped_live,
            count(NightState::Halted),
        ));

        // Restarts: one UpdateService per restarted service, never two.
        let restarted: Vec<&NightRecord> = records
            .iter()
            .filter(|r| r.deployment_id.is_some())
            .collect();
        let by_starts: u64 = runs.iter().map(|r| r.started).sum();
        lines.push(format!(
            "restarts started: {} of {planned} planned ({} by the batches' starts, {} by the \
             polls that followed); never started: {} ({} skipped at the live check, {} left \
             behind by the window's end or a halt)",
            restarted.len(),
            by_starts,
            (restarted.len() as u64).saturating_sub(by_starts),
            never_started.len(),
            skipped_live,
            left_behind.len(),
        ));
        let sim_restarts = after.restarts - before.restarts;
        if sim_restarts != restarted.len() as u64 {
            violations.push(format!(
                "fleet-sim saw {sim_restarts} forced deployments for {} restarted services",
                restarted.len()
            ));
        }

        // API calls during the night, per completed restart.
        let completed = count(NightState::Completed).max(1) as f64;
        let delta = |action: &str| after.total_calls(action) - before.total_calls(action);
        let mut calls = String::from("| action | calls | per completed restart |\n|---|---|---|\n");
        let mut actions: Vec<String> = after
            .calls
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        actions.sort();
        for action in &actions {
            let n = delta(action);
            if n > 0 {
                calls.push_str(&format!(
                    "| {action} | {n} | {:.2} |\n",
                    n as f64 / completed
                ));
            }
        }
        lines.push(format!(
            "API calls during the night (fleet-sim /_sim/stats, inventory excluded), {} \
             restarts started, {} completed:\n{calls}",
            restarted.len(),
            count(NightState::Completed)
        ));

        // Throttling and the per-cluster cap, over the whole run.
        let throttled: u64 = after.throttled.values().flat_map(|m| m.values()).sum();
        if throttled > 0 {
            violations.push(format!(
                "{throttled} calls throttled: {:?}",
                after.throttled
            ));
        }
        let most = after
            .max_inflight_per_cluster
            .values()
            .copied()
            .max()
            .unwrap_or(0);
        let mut spread: BTreeMap<u64, u64> = BTreeMap::new();
        for n in after.max_inflight_per_cluster.values() {
            *spread.entry(*n).or_default() += 1;
        }
        if most > u64::from(cap) {
            violations.push(format!(
                "a cluster had {most} restarts in flight, cap {cap}"
            ));
        }
        lines.push(format!(
            "throttled calls (whole run): {throttled}; most restarts in flight at once in a \
             cluster: {most} (cap {cap}); clusters by their most: {spread:?}"
        ));

        // Batch start → last UpdateService, against the pacing floor.
        let rate = config.pacing.update_service_per_sec;
        let burst = rate.max(1.0);
        let batch_of: HashMap<&ServiceId, u32> = batched
            .iter()
            .filter_map(|r| r.batch.map(|b| (&r.id, b)))
            .collect();
        let updates = restarter
            .updates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut ratios = Vec::new();
        let mut excess = Vec::new();
        let mut tooks = Vec::new();
        let mut floors = Vec::new();
        let mut windowed = Vec::new();
        let mut worst_windowed = (0u32, 0.0f64, 0.0f64);
        // For each batch, each account's first and last UpdateService after the batch's start,
        // the accounts in the order the restarter takes clusters (by `cluster_key`: account
        // first).
        let mut timelines: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut worst = (0u32, 0.0f64, 0.0f64, 0u64);
        let mut late_updates = 0;
        let mut refused = 0;
        for run in runs {
            let mine: Vec<&Update> = updates
                .iter()
                .filter(|u| batch_of.get(&u.id) == Some(&run.batch))
                .collect();
            let Some(last) = mine.iter().map(|u| u.at).max() else {
                continue;
            };
            late_updates += mine
                .iter()
                .filter(|u| u.at > run.invoked + run.start_took)
                .count();
            let mut per_account: HashMap<(&str, &str), u64> = HashMap::new();
            for u in &mine {
                *per_account
                    .entry((u.id.account.as_str(), u.id.region.as_str()))
                    .or_default() += 1;
            }
            let busiest = per_account.values().copied().max().unwrap_or(0);
            // Paced calls beyond the burst, plus two dependent round trips (DescribeServices
            // for the live check, then UpdateService).
            let floor = (busiest as f64 - burst).max(0.0) / rate + 2.0 * LATENCY_MS / 1000.0;
            let took = (last - run.invoked).as_secs_f64();
            ratios.push(took / floor);
            excess.push(took - floor);
            tooks.push(took);
            floors.push(floor);
            if took / floor > worst.1 {
                worst = (run.batch, took / floor, took, busiest);
            }
            let floor_w =
                windowed_floor(busiest, rate, burst, run.invoked_unix, LATENCY_MS / 1000.0);
            windowed.push(took / floor_w);
            if took / floor_w > worst_windowed.1 {
                worst_windowed = (run.batch, took / floor_w, floor_w);
            }
            refused += mine.iter().filter(|u| !u.ok).count();
            let mut by_account: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
            for u in &mine {
                let t = u.at.saturating_duration_since(run.invoked).as_secs_f64();
                let e = by_account
                    .entry((u.id.account.as_str(), u.id.region.as_str()))
                    .or_insert((t, t));
                e.0 = e.0.min(t);
                e.1 = e.1.max(t);
            }
            timelines.push(by_account.into_values().collect());
        }
        // The accounts at a given place in the order, over the batches (median).
        let at_place = |q: f64, last: bool| {
            percentile(
                &sorted(
                    timelines
                        .iter()
                        .filter(|t| !t.is_empty())
                        .map(|t| {
                            let i = ((t.len() - 1) as f64 * q).round() as usize;
                            if last { t[i].1 } else { t[i].0 }
                        })
                        .collect(),
                ),
                0.5,
            )
        };
        let places = [0.0, 0.25, 0.5, 0.75, 1.0];
        let show = |last: bool| {
            places
                .iter()
                .map(|q| format!("{:.0}% {:.2} s", q * 100.0, at_place(*q, last)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        lines.push(format!(
            "each account's UpdateServices after its batch's start, by the account's place in \
             the order the restarter takes clusters (account first; median over the batches): \
             first UpdateService {}; last UpdateService {}",
            show(false),
            show(true),
        ));
        let ratios = sorted(ratios);
        let excess = sorted(excess);
        let tooks = sorted(tooks);
        let floors = sorted(floors);
        lines.push(format!(
            "batch start → its last UpdateService vs the floor (UpdateService {rate}/s per \
             account and region, burst {burst}, + 2 round trips of {LATENCY_MS} ms): ratio \
             median {:.2}×, worst {:.2}× (batch {}: {:.2} s, busiest account {} restarts); \
             time over the floor median {:.0} ms, worst {:.0} ms; UpdateService calls made after \
             the start returned (deferred to a poll): {late_updates}; refused by ECS: {refused}; \
             batch start → last UpdateService median {:.2} s, max {:.2} s (floor median {:.2} s, \
             max {:.2} s; START_BUDGET {} s)",
            percentile(&ratios, 0.5),
            worst.1,
            worst.0,
            worst.2,
            worst.3,
            percentile(&excess, 0.5) * 1000.0,
            percentile(&excess, 1.0) * 1000.0,
            percentile(&tooks, 0.5),
            percentile(&tooks, 1.0),
            percentile(&floors, 0.5),
            percentile(&floors, 1.0),
            START_BUDGET.as_secs(),
        ));

        let windowed = sorted(windowed);
        lines.push(format!(
            "the same against the floor with the shared pace's one-second windows (at most \
             {} UpdateService an account and Unix second, so the floor depends on where in its \
             second a start began; core::pacing): ratio median {:.2}×, worst {:.2}× (batch {}: \
             floor {:.2} s)",
            rate.floor(),
            percentile(&windowed, 0.5),
            worst_windowed.1,
            worst_windowed.0,
            worst_windowed.2,
        ));

        // Completion in fleet-sim → recorded by the restarter.
        let runs_by_batch: HashMap<u32, &BatchRun> = runs.iter().map(|r| (r.batch, r)).collect();
        let mut delays = Vec::new();
        let mut waits = Vec::new();
        let mut real_speed = Vec::new();
        let mut missed = 0;
        for r in records.iter().filter(|r| r.state == NightState::Completed) {
            let (Some(done), Some(batch)) = (r.finished_at, r.batch) else {
                continue;
            };
            let Some(run) = runs_by_batch.get(&batch) else {
                continue;
            };
            let Some(Seen { poll: Some(i) }) = run.seen.get(&r.id).copied() else {
                violations.push(format!("{}: completed but not seen by a poll", r.id));
                continue;
            };
            let p = &run.polls[i];
            let delay = secs(p.ended - done);
            delays.push(delay);
            waits.push(secs(p.began - done).max(0.0));
            // The same delay at real speed: each invocation since the completion takes its
            // real duration (not `scale` times it), and each Wait its nominal length (not
            // the bench's timer overshoot × `scale`).
            let after = |from: DateTime<Utc>, to: DateTime<Utc>| secs(to - from.max(done)).max(0.0);
            real_speed.push(
                run.polls[..=i]
                    .iter()
                    .map(|q| {
                        let waited = secs(q.began - q.waited_from).max(1e-9);
                        after(q.waited_from, q.began) * (q.nominal / waited).min(1.0)
                            + after(q.began, q.ended) / scale
                    })
                    .sum(),
            );
            // Polls that began after the completion and did not record it.
            missed += run.polls[..i].iter().filter(|q| q.began >= done).count();
        }
        let delays = sorted(delays);
        let waits = sorted(waits);
        let real_speed = sorted(real_speed);
        let interval = secs(config.poll_interval);
        let poll_ms = sorted(
            runs.iter()
                .flat_map(|r| r.polls.iter().map(|p| p.took.as_secs_f64() * 1000.0))
                .collect(),
        );
        let start_ms = sorted(
            runs.iter()
                .map(|r| r.start_took.as_secs_f64() * 1000.0)
                .collect(),
        );
        if missed > 0 {
            violations.push(format!(
                "{missed} polls began after a completion and did not record it"
            ));
        }
        lines.push(format!(
            "completion in fleet-sim → recorded (simulated s, poll interval {interval} s): \
             median {:.1}, p95 {:.1}, max {:.1}; of which waiting for the next poll: median \
             {:.1}, max {:.1}; at real speed (the invocations' own time not × \
             {scale}, the Waits at their nominal length): median {:.1}, p95 {:.1}, max {:.1}; polls that began after a \
             completion and missed it: {missed}",
            percentile(&delays, 0.5),
            percentile(&delays, 0.95),
            percentile(&delays, 1.0),
            percentile(&waits, 0.5),
            percentile(&waits, 1.0),
            percentile(&real_speed, 0.5),
            percentile(&real_speed, 0.95),
            percentile(&real_speed, 1.0),
        ));
        let over_budget = start_ms
            .iter()
            .chain(&poll_ms)
            .filter(|ms| **ms > START_BUDGET.as_secs_f64() * 1000.0)
            .count();
        lines.push(format!(
            "invocations longer than START_BUDGET ({} s): {over_budget}",
            START_BUDGET.as_secs()
        ));
        lines.push(format!(
            "invocations: {} starts, median {:.0} ms, max {:.0} ms; {} polls, median {:.0} ms, \
             p95 {:.0} ms, max {:.0} ms (× {scale} in simulated time); batches started \
             late by: max {:.1} simulated s; started by the starts: {}, deferred: {}; halted \
             batches: {}",
            runs.len(),
            percentile(&start_ms, 0.5),
            percentile(&start_ms, 1.0),
            poll_ms.len(),
            percentile(&poll_ms, 0.5),
            percentile(&poll_ms, 0.95),
            percentile(&poll_ms, 1.0),
            runs.iter()
                .map(|r| secs(r.invoked_sim - r.start_at))
                .fold(0.0, f64::max),
            runs.iter().map(|r| r.started).sum::<u64>(),
            runs.iter().map(|r| r.deferred).sum::<u64>(),
            runs.iter().filter(|r| r.halted).count(),
        ));
        // For the cost: every invocation is billed by its duration.
        let start_sum: f64 = start_ms.iter().sum();
        let poll_sum: f64 = poll_ms.iter().sum();
        lines.push(format!(
            "restarter invocations (cost): {} = {} starts + {} polls (at most {} polls in a \
             batch) in {} containers; summed durations {:.0} ms = starts {:.0} ms + polls {:.0} \
             ms",
            start_ms.len() + poll_ms.len(),
            start_ms.len(),
            poll_ms.len(),
            runs.iter().map(|r| r.polls.len()).max().unwrap_or(0),
            restarter.started(),
            start_sum + poll_sum,
            start_sum,
            poll_sum,
        ));
        Ok(Report {
            records,
            violations,
            lines,
        })
    }

    fn print(
        &self,
        prep: &Prepared,
        prepared: Duration,
        night: Duration,
        night_sim: f64,
        whole: Duration,
    ) {
        let shape = shape();
        println!(
            "restarter night benchmark: {}; window 00:00-06:00 UTC, {BATCHES} batches",
            shape.describe()
        );
        for l in prep.lines(shape) {
            println!("{l}");
        }
        for l in &self.lines {
            println!("{l}");
        }
        println!(
            "wall time: inventory + plan {:.1} s; the night {:.1} s ({:.2} simulated hours); \
             whole run {:.1} s",
            prepared.as_secs_f64(),
            night.as_secs_f64(),
            night_sim / 3600.0,
            whole.as_secs_f64()
        );
    }
}
