//! The simulated fleet: accounts, regions, clusters, services and their deployments.
//!
//! Invariants:
//! - Deployment state is computed lazily: [`Service::settle`] applies every transition whose
//!   simulated time has come, stamping each with its own time (not the time of the read), so
//!   reads at any pace give the same history.
//! - Only the PRIMARY deployment moves on its own; an ACTIVE one waits for the PRIMARY to finish.
//! - Each forced deployment (restart) leaves an interval in its cluster's `restarts`, closed
//!   at the simulated time it left IN_PROGRESS (or was removed), which is what the
//!   `max_inflight_per_cluster` statistic is computed from.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::rng::{SplitMix64, hash_parts};
use crate::schedule::{Alarm, Calendar};
use crate::spec::{
    AccountFaults, AccountSpec, AlarmSpec, ClusterSpec, Controller, DeploySeconds, FleetSpec,
    GenerateSpec, GeneratedNames, LaunchType, OnRestart, Scheduling, ServiceSpec,
};

/// Simulated time in milliseconds since the Unix epoch.
pub type Millis = i64;

/// How long (simulated) a circuit-breaker rollback takes.
pub const ROLLBACK_MILLIS: Millis = 60_000;
/// How long (simulated) a deleted service stays visible as INACTIVE.
pub const INACTIVE_VISIBLE_MILLIS: Millis = 3_600_000;
/// Most events kept per service (ECS shows the latest 100).
const MAX_EVENTS: usize = 100;

/// The whole simulated fleet.
#[derive(Debug)]
pub struct World {
    /// Seed of every random choice.
    pub seed: u64,
    /// Account that calls signed with foreign keys act in.
    pub hub_account: String,
    /// Aggregator names that exist; `None`: any.
    pub aggregators: Option<HashSet<String>>,
    /// Accounts by id.
    pub accounts: HashMap<String, Account>,
    /// Account ids in spec order (explicit, then generated).
    pub account_order: Vec<String>,
    /// Forced deployments so far.
    pub restarts: u64,
    /// AWS Organizations, when the spec has an organization.
    pub organization: Option<crate::organizations::Organization>,
    /// CloudWatch alarms: account → region → name → alarm (accounts and regions without
    /// alarms are absent; the hub's are under its id).
    pub alarms: HashMap<String, HashMap<String, BTreeMap<String, Alarm>>>,
    /// The hub account's SSM change calendars: region → name → calendar.
    pub calendars: HashMap<String, BTreeMap<String, Calendar>>,
}

/// One account.
#[derive(Debug)]
pub struct Account {
    /// Twelve digits.
    pub id: String,
    /// Regions in spec order.
    pub regions: Vec<String>,
    /// AssumeRole answers AccessDenied.
    pub deny_assume_role: bool,
    /// Required ExternalId, if any.
    pub external_id: Option<String>,
    /// ECS is denied (as by an SCP) once `updates_ok` reaches this; `None`: never.
    pub deny_ecs_after_restarts: Option<u64>,
    /// Fraction of ECS calls answered with a `ServerException`.
    pub server_error_rate: f64,
    /// Successful UpdateService calls so far, all regions together.
    pub updates_ok: u64,
    /// ECS calls that passed the token bucket so far, all regions together (numbers the
    /// server-error draws).
    pub ecs_calls: u64,
    /// State per region.
    pub by_region: HashMap<String, Region>,
}

/// The ECS state of one account in one region.
#[derive(Debug, Default)]
pub struct Region {
    /// Clusters in creation order.
    pub clusters: Vec<Cluster>,
    /// Index into `clusters` by name.
    pub by_name: HashMap<String, usize>,
}

/// A closed or open interval during which a forced deployment was IN_PROGRESS.
#[derive(Debug, Clone)]
pub struct Inflight {
    /// The deployment id.
    pub deployment_id: String,
    /// When it was created.
    pub start: Millis,
    /// When it left IN_PROGRESS or was removed; `None`: still in flight.
    pub end: Option<Millis>,
}

/// One ECS cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Tags in insertion order.
    pub tags: Vec<(String, String)>,
    /// Services in creation order.
    pub services: Vec<Service>,
    /// Index into `services` by name.
    pub by_name: HashMap<String, usize>,
    /// Forced deployments of the cluster's services.
    pub restarts: Vec<Inflight>,
}

/// Whether the service exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStatus {
    /// Normal.
    Active,
    /// Deleted at this simulated time.
    Inactive(Millis),
}

/// `deployments[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// The newest deployment.
    Primary,
    /// An older one still running tasks.
    Active,
}

impl DeploymentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "PRIMARY",
            Self::Active => "ACTIVE",
        }
    }
}

/// `deployments[].rolloutState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Still rolling out.
    InProgress,
    /// Done.
    Completed,
    /// Failed (circuit breaker).
    Failed,
}

impl Rollout {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

/// Why a deployment exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentKind {
    /// The one the service was created with.
    Initial,
    /// A forced new deployment (restart).
    Restart,
    /// A rollback started by the circuit breaker.
    Rollback,
    /// Someone else's deployment (a CI deploy) that replaced a `superseded` restart.
    Superseding,
}

/// One deployment of a service.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `ecs-svc/<19 digits>`.
    pub id: String,
    /// Sequence number within the service (0 = initial), used in task ids.
    pub seq: u32,
    /// PRIMARY or ACTIVE.
    pub status: DeploymentStatus,
    /// Rollout state.
    pub rollout: Rollout,
    /// Rollout state reason.
    pub rollout_reason: String,
    /// Task definition ARN.
    pub task_definition: String,
    /// Desired tasks of this deployment.
    pub desired: u32,
    /// Failed tasks when it ended.
    pub failed_tasks: u32,
    /// Created at.
    pub created_at: Millis,
    /// Updated at.
    pub updated_at: Millis,
    /// When its outcome happens; `None`: never (stuck) or already happened.
    pub finish_at: Option<Millis>,
    /// What happens then.
    pub outcome: OnRestart,
    /// Why it exists.
    pub kind: DeploymentKind,
}

/// One service event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Event id.
    pub id: String,
    /// When.
    pub created_at: Millis,
    /// Text.
    pub message: String,
}

/// One ECS service.
#[derive(Debug)]
pub struct Service {
    /// Name.
    pub name: String,
    /// ARN (long or old format).
    pub arn: String,
    /// Position in its cluster (used in task ids).
    pub index: u32,
    /// Desired tasks.
    pub desired: u32,
    /// REPLICA or DAEMON.
    pub scheduling: Scheduling,
    /// Deployment controller.
    pub controller: Controller,
    /// Launch type.
    pub launch_type: LaunchType,
    /// minimumHealthyPercent.
    pub min_healthy_percent: u32,
    /// maximumPercent.
    pub max_percent: u32,
    /// Tags in insertion order.
    pub tags: Vec<(String, String)>,
    /// Deploy time of a restart.
    pub deploy_seconds: DeploySeconds,
    /// What a restart does.
    pub on_restart: OnRestart,
    /// Old-format ARN (cannot be tagged).
    pub old_arn_format: bool,
    /// enableExecuteCommand.
    pub enable_execute_command: bool,
    /// readonlyRootFilesystem of its container.
    pub readonly_root_filesystem: bool,
    /// CloudWatch alarms watching its deployments (`deploymentConfiguration.alarms`).
    pub deployment_alarms: Vec<String>,
    /// Created at.
    pub created_at: Millis,
    /// Active or deleted.
    pub status: ServiceStatus,
    /// Deployments, PRIMARY first.
    pub deployments: Vec<Deployment>,
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Forced deployments so far.
    pub restart_count: u32,
    /// Next deployment sequence number.
    pub next_seq: u32,
    /// The last deployment that completed: (id, task definition).
    pub last_good: (String, String),
    /// Events created so far (for unique event ids).
    pub event_seq: usize,
}

/// Running/pending/failed counts of a deployment at some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// runningCount.
    pub running: u32,
    /// pendingCount.
    pub pending: u32,
    /// failedTasks.
    pub failed: u32,
}

/// Why a forced deployment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartRefused {
    /// CODE_DEPLOY or EXTERNAL controller.
    #[error("{0}")]
    Controller(String),
    /// The service is INACTIVE.
    #[error("Service was not ACTIVE.")]
    NotActive,
    /// The service refuses every update (`on_restart: reject`).
    #[error("{0}")]
    Rejected(String),
}

/// Seconds to milliseconds, saturating (deploy times are at most a week once validated).
fn secs_to_millis(secs: u64) -> Millis {
    Millis::try_from(secs).map_or(Millis::MAX, |s| s.saturating_mul(1000))
}

/// The next revision of a task definition ARN (`family:7` → `family:8`), as a CI deploy
/// registers it. A definition without a numeric revision gets `:2` (the one after an implied 1).
pub fn next_revision(task_definition: &str) -> String {
    let next = task_definition.rsplit_once(':').and_then(|(family, rev)| {
        let n = rev.parse::<u32>().ok()?.checked_add(1)?;
        Some(format!("{family}:{n}"))
    });
    next.unwrap_or_else(|| format!("{task_definition}:2"))
}

fn deployment_id(seed: u64, arn: &str, seq: u32) -> String {
    let h = hash_parts(seed, &[arn, &seq.to_string(), "deployment"]);
    format!(
        "ecs-svc/{}",
        1_000_000_000_000_000_000u64 + h % 9_000_000_000_000_000_000u64
    )
}

fn event_id(seed: u64, arn: &str, n: usize) -> String {
    let a = hash_parts(seed, &[arn, &n.to_string(), "event"]);
    let b = SplitMix64::new(a).next_u64();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

impl Service {
    /// The PRIMARY deployment, if the service has deployments.
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Primary)
    }

    /// Whether the service is visible at `now` (ACTIVE, or INACTIVE for less than an hour).
    pub fn visible(&self, now: Millis) -> bool {
        match self.status {
            ServiceStatus::Active => true,
            ServiceStatus::Inactive(t) => now < t + INACTIVE_VISIBLE_MILLIS,
        }
    }

    /// Whether the service is ACTIVE.
    pub fn is_active(&self) -> bool {
        self.status == ServiceStatus::Active
    }

    fn push_event(&mut self, seed: u64, at: Millis, message: String) {
        let id = event_id(seed, &self.arn, self.event_seq);
        self.event_seq += 1;
        self.events.push(Event {
            id,
            created_at: at,
            message,
        });
        if self.events.len() > MAX_EVENTS {
            let drop = self.events.len() - MAX_EVENTS;
            self.events.drain(..drop);
        }
    }

    /// Applies every transition due at or before `now`. Closes in-flight intervals in
    /// `inflight` (the cluster's restarts).
    pub fn settle(&mut self, seed: u64, now: Millis, inflight: &mut [Inflight]) {
        loop {
            if !self.is_active() {
                return;
            }
            let Some(pi) = self
                .deployments
                .iter()
                .position(|d| d.status == DeploymentStatus::Primary)
            else {
                return;
            };
            // `pi` was just found by position; `complete`, `fail` and `supersede` get it
            // from here.
            let p = &self.deployments[pi];
            let Some(at) = p.finish_at else { return };
            if p.rollout != Rollout::InProgress || at > now {
                return;
            }
            match p.outcome {
                // A rejected restart never starts, so `Reject` has no outcome of its own.
                OnRestart::Complete | OnRestart::Stuck | OnRestart::Reject => {
                    self.complete(seed, pi, at, inflight);
                }
                OnRestart::Fail => self.fail(seed, pi, at, inflight),
                OnRestart::Vanish => self.vanish(seed, at, inflight),
                OnRestart::Superseded => self.supersede(seed, pi, at, inflight),
            }
        }
    }

    fn close(inflight: &mut [Inflight], id: &str, at: Millis) {
        if let Some(i) = inflight.iter_mut().rev().find(|i| i.deployment_id == id)
            && i.end.is_none()
        {
            i.end = Some(at);
        }
    }

    fn complete(&mut self, seed: u64, pi: usize, at: Millis, inflight: &mut [Inflight]) {
        let name = self.name.clone();
        let p = &mut self.deployments[pi];
        p.rollout = Rollout::Completed;
        p.rollout_reason = format!("ECS deployment {} completed.", p.id);
        p.updated_at = at;
        p.finish_at = None;
        let primary = p.clone();
        for d in &self.deployments {
            Self::close(inflight, &d.id, at);
        }
        self.deployments = vec![primary.clone()];
        self.last_good = (primary.id.clone(), primary.task_definition.clone());
        self.push_event(
            seed,
            at,
            format!(
                "(service {name}) (deployment {}) deployment completed.",
                primary.id
            ),
        );
        self.push_event(
            seed,
            at,
            format!("(service {name}) has reached a steady state."),
        );
    }

    fn fail(&mut self, seed: u64, pi: usize, at: Millis, inflight: &mut [Inflight]) {
        let name = self.name.clone();
        let threshold = self.desired.div_ceil(2).clamp(3, 200);
        let p = &mut self.deployments[pi];
        p.rollout = Rollout::Failed;
        p.rollout_reason = "ECS deployment circuit breaker: tasks failed to start.".to_owned();
        p.status = DeploymentStatus::Active;
        p.failed_tasks = threshold;
        p.updated_at = at;
        p.finish_at = None;
        let failed_id = p.id.clone();
        Self::close(inflight, &failed_id, at);
        let (good_id, good_td) = self.last_good.clone();
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = deployment_id(seed, &self.arn, seq);
        let rollback = Deployment {
            id: id.clone(),
            seq,
            status: DeploymentStatus::Primary,
            rollout: Rollout::InProgress,
            rollout_reason: format!(
                "ECS deployment circuit breaker: rolling back to deploymentId {good_id}."
            ),
            task_definition: good_td,
            desired: self.desired,
            failed_tasks: 0,
            created_at: at,
            updated_at: at,
            finish_at: Some(at + ROLLBACK_MILLIS),
            outcome: OnRestart::Complete,
            kind: DeploymentKind::Rollback,
        };
        self.deployments.insert(0, rollback);
        self.push_event(
            seed,
            at,
            format!("(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."),
        );
        self.push_event(
            seed,
            at,
            format!("(service {name}) (deployment {id}) rolling back to deployment {good_id}."),
        );
    }

    /// Our deployment (PRIMARY, at `pi`) is replaced at `at` by a CI deploy of the next task
    /// definition revision: ours leaves the list (ECS drops a replaced deployment), the new one
    /// is PRIMARY and IN_PROGRESS for its own deploy time, then completes like any other.
    fn supersede(&mut self, seed: u64, pi: usize, at: Millis, inflight: &mut [Inflight]) {
        let ours = self.deployments.remove(pi);
        Self::close(inflight, &ours.id, at);
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = deployment_id(seed, &self.arn, seq);
        let (min, max) = self.deploy_seconds.bounds();
        let secs = SplitMix64::new(hash_parts(
            seed,
            &[&self.arn, &seq.to_string(), "superseding"],
        ))
        .range(min, max);
        self.deployments.insert(
            0,
            Deployment {
                id: id.clone(),
                seq,
                status: DeploymentStatus::Primary,
                rollout: Rollout::InProgress,
                rollout_reason: format!("ECS deployment {id} in progress."),
                task_definition: next_revision(&ours.task_definition),
                desired: self.desired,
                failed_tasks: 0,
                created_at: at,
                updated_at: at,
                finish_at: Some(at.saturating_add(secs_to_millis(secs))),
                outcome: OnRestart::Complete,
                kind: DeploymentKind::Superseding,
            },
        );
        self.push_started_event(seed, seq, at);
    }

    /// The "has started N tasks" event of deployment `seq`.
    fn push_started_event(&mut self, seed: u64, seq: u32, at: Millis) {
        if self.desired == 0 {
            return;
        }
        let tasks: Vec<String> = (0..self.desired.min(10))
            .map(|k| format!("(task {})", task_id(self.index, seq, k, seed)))
            .collect();
        let message = format!(
            "(service {}) has started {} tasks: {}.",
            self.name,
            self.desired,
            tasks.join(" ")
        );
        self.push_event(seed, at, message);
    }

    fn vanish(&mut self, seed: u64, at: Millis, inflight: &mut [Inflight]) {
        for d in &self.deployments {
            Self::close(inflight, &d.id, at);
        }
        self.deployments.clear();
        self.desired = 0;
        self.status = ServiceStatus::Inactive(at);
        let name = self.name.clone();
        self.push_event(seed, at, format!("(service {name}) has been deleted."));
    }

    /// Whether a forced new deployment is allowed now.
    pub fn can_restart(&self) -> Result<(), RestartRefused> {
        if !self.is_active() {
            return Err(RestartRefused::NotActive);
        }
        match self.controller {
            Controller::Ecs => {}
            Controller::CodeDeploy => {
                return Err(RestartRefused::Controller(
                    "Cannot force a new deployment on services with a CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment.".to_owned(),
                ));
            }
            Controller::External => {
                return Err(RestartRefused::Controller(
                    "Cannot force a new deployment on services with an EXTERNAL deployment controller. Use CreateTaskSet to create a new deployment.".to_owned(),
                ));
            }
        }
        if self.on_restart == OnRestart::Reject {
            return Err(RestartRefused::Rejected(format!(
                "Unable to update service {}: the update was rejected.",
                self.name
            )));
        }
        Ok(())
    }

    /// Starts a forced new deployment at `now` (call [`Service::settle`] first).
    /// Returns the new deployment's id.
    pub fn force_new_deployment(
        &mut self,
        seed: u64,
        scope: &[&str],
        now: Millis,
        inflight: &mut Vec<Inflight>,
    ) -> Result<String, RestartRefused> {
        self.can_restart()?;
        self.restart_count += 1;
        let (min, max) = self.deploy_seconds.bounds();
        let n = self.restart_count.to_string();
        let mut parts: Vec<&str> = scope.to_vec();
        parts.push(&self.name);
        parts.push(&n);
        let secs = SplitMix64::new(hash_parts(seed, &parts)).range(min, max);
        let finish_at = match self.on_restart {
            OnRestart::Stuck => None,
            // Replaced halfway through its deploy time.
            OnRestart::Superseded => Some(now.saturating_add(secs_to_millis(secs) / 2)),
            _ => Some(now.saturating_add(secs_to_millis(secs))),
        };
        for d in &mut self.deployments {
            d.status = DeploymentStatus::Active;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = deployment_id(seed, &self.arn, seq);
        let task_definition = self
            .primary_task_definition()
            .unwrap_or_else(|| self.last_good.1.clone());
        self.deployments.insert(
            0,
            Deployment {
                id: id.clone(),
                seq,
                status: DeploymentStatus::Primary,
                rollout: Rollout::InProgress,
                rollout_reason: format!("ECS deployment {id} in progress."),
                task_definition,
                desired: self.desired,
                failed_tasks: 0,
                created_at: now,
                updated_at: now,
                finish_at,
                outcome: self.on_restart,
                kind: DeploymentKind::Restart,
            },
        );
        inflight.push(Inflight {
            deployment_id: id.clone(),
            start: now,
            end: None,
        });
        self.push_started_event(seed, seq, now);
        Ok(id)
    }

    fn primary_task_definition(&self) -> Option<String> {
        self.deployments.first().map(|d| d.task_definition.clone())
    }

    /// Counts of deployment `d` at `now` (after settling).
    pub fn counts(&self, d: &Deployment, now: Millis) -> Counts {
        match (d.rollout, d.status) {
            (Rollout::Failed, _) => Counts {
                running: 0,
                pending: 0,
                failed: d.failed_tasks,
            },
            (Rollout::Completed, DeploymentStatus::Primary) => Counts {
                running: d.desired,
                pending: 0,
                failed: d.failed_tasks,
            },
            (Rollout::Completed, DeploymentStatus::Active) => {
                let taken = self.primary().map_or(0, |p| self.counts(p, now).running);
                Counts {
                    running: d.desired.saturating_sub(taken),
                    pending: 0,
                    failed: 0,
                }
            }
            (Rollout::InProgress, DeploymentStatus::Active) => Counts::default(),
            (Rollout::InProgress, DeploymentStatus::Primary) => {
                let elapsed = (now - d.created_at).max(0);
                match (d.finish_at, d.outcome) {
                    (Some(end), OnRestart::Superseded) => {
                        // Replaced at `end`, halfway: tasks ramp up as over twice the span.
                        let span = (end - d.created_at).max(1);
                        let running = (u64::from(d.desired) * elapsed.min(span) as u64
                            / (2 * span as u64)) as u32;
                        Counts {
                            running,
                            pending: d.desired - running,
                            failed: 0,
                        }
                    }
                    (
                        Some(end),
                        OnRestart::Complete
                        | OnRestart::Vanish
                        | OnRestart::Stuck
                        | OnRestart::Reject,
                    ) => {
                        let span = (end - d.created_at).max(1);
                        let running =
                            (u64::from(d.desired) * elapsed.min(span) as u64 / span as u64) as u32;
                        Counts {
                            running,
                            pending: d.desired - running,
                            failed: 0,
                        }
                    }
                    (Some(end), OnRestart::Fail) => {
                        let span = (end - d.created_at).max(1);
                        let threshold = u64::from(d.desired.div_ceil(2).clamp(3, 200));
                        Counts {
                            running: 0,
                            pending: d.desired,
                            failed: (threshold * elapsed.min(span) as u64 / span as u64) as u32,
                        }
                    }
                    (None, _) => Counts {
                        running: 0,
                        pending: d.desired,
                        failed: u32::try_from(elapsed / 60_000).unwrap_or(u32::MAX),
                    },
                }
            }
        }
    }

    /// Service-level counts at `now`.
    pub fn totals(&self, now: Millis) -> Counts {
        let mut t = Counts::default();
        for d in &self.deployments {
            let c = self.counts(d, now);
            t.running += c.running;
            t.pending += c.pending;
        }
        t
    }
}

/// A task id: 32 hex digits that encode the service index, deployment sequence and task number.
pub fn task_id(service_index: u32, seq: u32, k: u32, seed: u64) -> String {
    let check = (hash_parts(
        seed,
        &[&service_index.to_string(), &seq.to_string(), &k.to_string()],
    ) & 0xffff_ffff) as u32;
    format!("{service_index:08x}{seq:08x}{k:08x}{check:08x}")
}

/// Decodes a task id made by [`task_id`].
pub fn parse_task_id(id: &str, seed: u64) -> Option<(u32, u32, u32)> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let part = |i: usize| u32::from_str_radix(id.get(i * 8..i * 8 + 8)?, 16).ok();
    let (s, q, k) = (part(0)?, part(1)?, part(2)?);
    (task_id(s, q, k, seed) == id.to_ascii_lowercase()).then_some((s, q, k))
}

/// Builds the world from a validated spec, with simulated time `start` (ms).
pub fn build(spec: &FleetSpec, start: Millis) -> World {
    let mut world = World {
        seed: spec.seed,
        hub_account: spec.hub_account.clone(),
        aggregators: spec
            .aggregators
            .as_ref()
            .map(|a| a.iter().cloned().collect()),
        accounts: HashMap::new(),
        account_order: Vec::new(),
        restarts: 0,
        organization: None,
        alarms: HashMap::new(),
        calendars: HashMap::new(),
    };
    for acc in &spec.accounts {
        add_account(
            &mut world,
            spec.seed,
            acc,
            spec.account_faults.get(&acc.id),
            start,
        );
    }
    if let Some(g) = &spec.generate {
        generate(&mut world, spec, g, start);
    }
    world.organization =
        crate::organizations::Organization::build(spec, &world.account_order, start);
    add_alarms_and_calendars(&mut world, spec, start);
    world
}

/// The accounts' and the hub's alarms and the hub's calendars, each in its region.
fn add_alarms_and_calendars(world: &mut World, spec: &FleetSpec, start: Millis) {
    let mut add = |account: &str, default: &str, alarms: &[AlarmSpec]| {
        for a in alarms {
            let region = a.region_or(default);
            world
                .alarms
                .entry(account.to_owned())
                .or_default()
                .entry(region.to_owned())
                .or_default()
                .insert(a.name.clone(), Alarm::from_spec(a, account, region, start));
        }
    };
    for acc in &spec.accounts {
        if let Some(alarms) = spec.account_alarms.get(&acc.id) {
            let default = acc
                .regions
                .first()
                .map_or(crate::spec::DEFAULT_REGION, String::as_str);
            add(&acc.id, default, alarms);
        }
    }
    let hub_default = spec.hub_default_region();
    add(&spec.hub_account, hub_default, &spec.hub_alarms);
    for c in &spec.calendars {
        let region = c.region_or(hub_default);
        world
            .calendars
            .entry(region.to_owned())
            .or_default()
            .insert(
                c.name.clone(),
                Calendar::from_spec(c, &spec.hub_account, region, start),
            );
    }
}

fn add_account(
    world: &mut World,
    seed: u64,
    acc: &AccountSpec,
    faults: Option<&AccountFaults>,
    start: Millis,
) {
    let faults = faults.cloned().unwrap_or_default();
    let mut account = Account {
        id: acc.id.clone(),
        regions: acc.regions.clone(),
        deny_assume_role: acc.deny_assume_role,
        external_id: acc.external_id.clone(),
        deny_ecs_after_restarts: faults.deny_ecs_after_restarts,
        server_error_rate: faults.server_error_rate,
        updates_ok: 0,
        ecs_calls: 0,

        by_region: acc
            .regions
            .iter()
            .map(|r| (r.clone(), Region::default()))
            .collect(),
    };
    for cl in &acc.clusters {
        // A validated spec gives every account a region; `build` does not panic without one.
        let region = cl
            .region
            .clone()
            .or_else(|| acc.regions.first().cloned())
            .unwrap_or_else(|| crate::spec::DEFAULT_REGION.to_owned());
        add_cluster(&mut account, seed, &region, cl, start);
    }
    world.account_order.push(acc.id.clone());
    world.accounts.insert(acc.id.clone(), account);
}

fn add_cluster(account: &mut Account, seed: u64, region: &str, cl: &ClusterSpec, start: Millis) {
    let arn = format!("arn:aws:ecs:{region}:{}:cluster/{}", account.id, cl.name);
    let mut cluster = Cluster {
        name: cl.name.clone(),
        arn,
        tags: cl
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        services: Vec::with_capacity(cl.services.len()),
        by_name: HashMap::with_capacity(cl.services.len()),
        restarts: Vec::new(),
    };
    for sv in &cl.services {
        let svc = new_service(
            seed,
            &account.id,
            region,
            &cluster.name,
            cluster.services.len() as u32,
            sv,
            start,
        );
        cluster
            .by_name
            .insert(svc.name.clone(), cluster.services.len());
        cluster.services.push(svc);
    }
    let reg = account.by_region.entry(region.to_owned()).or_default();
    reg.by_name.insert(cluster.name.clone(), reg.clusters.len());
    reg.clusters.push(cluster);
}

fn new_service(
    seed: u64,
    account: &str,
    region: &str,
    cluster: &str,
    index: u32,
    sv: &ServiceSpec,
    start: Millis,
) -> Service {
    let arn = if sv.old_arn_format {
        format!("arn:aws:ecs:{region}:{account}:service/{}", sv.name)
    } else {
        format!(
            "arn:aws:ecs:{region}:{account}:service/{cluster}/{}",
            sv.name
        )
    };
    let mut rng = SplitMix64::new(hash_parts(
        seed,
        &[account, region, cluster, &sv.name, "service"],
    ));
    let age_ms = i64::try_from(rng.range(86_400, 400 * 86_400)).unwrap_or(86_400) * 1000;
    let created_at = start - age_ms;
    let revision = rng.range(1, 60);
    let task_definition = format!(
        "arn:aws:ecs:{region}:{account}:task-definition/{}:{revision}",
        sv.name
    );
    let id = deployment_id(seed, &arn, 0);
    // The owners' last deploy: done `deployed_minutes_ago` before the start, 5 minutes long.
    let (deployed_at, deployed_done) =
        sv.deployed_minutes_ago
            .map_or((created_at, created_at), |m| {
                let done = start - i64::from(m) * 60_000;
                (done - 300_000, done)
            });
    let initial = Deployment {
        id: id.clone(),
        seq: 0,
        status: DeploymentStatus::Primary,
        rollout: Rollout::Completed,
        rollout_reason: format!("ECS deployment {id} completed."),
        task_definition: task_definition.clone(),
        desired: sv.desired,
        failed_tasks: 0,
        created_at: deployed_at,
        updated_at: deployed_done,
        finish_at: None,
        outcome: OnRestart::Complete,
        kind: DeploymentKind::Initial,
    };
    let mut svc = Service {
        name: sv.name.clone(),
        arn,
        index,
        desired: sv.desired,
        scheduling: sv.scheduling,
        controller: sv.controller,
        launch_type: sv.launch_type,
        min_healthy_percent: sv.min_healthy_percent,
        max_percent: sv.max_percent,
        tags: sv
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        deploy_seconds: sv.deploy_seconds,
        on_restart: sv.on_restart,
        old_arn_format: sv.old_arn_format,
        enable_execute_command: sv.enable_execute_command,
        readonly_root_filesystem: sv.readonly_root_filesystem,
        deployment_alarms: sv.deployment_alarms.clone(),
        created_at,
        status: ServiceStatus::Active,
        deployments: vec![initial],
        events: Vec::new(),
        restart_count: 0,
        next_seq: 1,
        last_good: (id, task_definition),
        event_seq: 0,
    };
    svc.push_event(
        seed,
        created_at,
        format!("(service {}) has reached a steady state.", sv.name),
    );
    svc
}

const CLUSTER_WORDS: &[&str] = &[
    "payments",
    "checkout",
    "search",
    "catalog",
    "orders",
    "billing",
    "identity",
    "media",
    "analytics",
    "notify",
    "ledger",
    "pricing",
    "inventory",
    "shipping",
    "profile",
    "gateway",
];
const SERVICE_WORDS: &[&str] = &[
    "api",
    "worker",
    "web",
    "consumer",
    "scheduler",
    "indexer",
    "gateway",
    "auth",
    "cache",
    "sync",
    "export",
    "import",
    "reporter",
    "cron",
    "stream",
    "admin",
];

/// A cluster's area of its domain, in realistic names.
const AREA_WORDS: &[&str] = &[
    "settlement",
    "core",
    "platform",
    "realtime",
    "batch",
    "internal",
    "partner",
    "mobile",
    "backoffice",
    "storefront",
    "risk",
    "fulfilment",
    "reporting",
    "edge",
    "accounts",
    "events",
];
/// The environment of an account, in realistic names.
const ENV_WORDS: &[&str] = &["prod", "production", "prd", "live"];
/// Words that lengthen a realistic name short of 30 characters.
const FILLER_WORDS: &[&str] = &["blue", "green", "primary", "main", "shared"];
/// The length of a realistic name.
const REALISTIC_CHARS: std::ops::RangeInclusive<usize> = 30..=50;

/// How one generated cluster and its services are named ([`GeneratedNames`]). The choices of a
/// realistic name hash the seed, the account and the cluster's number, so that naming draws
/// nothing from the generator's stream: every other choice of a fleet is the same whatever its
/// names.
struct Names {
    style: GeneratedNames,
    word: &'static str,
    area: &'static str,
    region: String,
    env: &'static str,
    filler: &'static str,
}

impl Names {
    fn new(
        style: GeneratedNames,
        seed: u64,
        account: &str,
        ci: u32,
        word: &'static str,
        region: &str,
    ) -> Names {
        let pick = |list: &[&'static str], what: &str, ci: &str| {
            let h = hash_parts(seed, &["names", what, account, ci]);
            list[(h % list.len() as u64) as usize]
        };
        let ci = ci.to_string();
        Names {
            style,
            word,
            area: pick(AREA_WORDS, "area", &ci),
            region: region.to_owned(),
            // One environment per account, as accounts usually are.
            env: pick(ENV_WORDS, "env", ""),
            filler: pick(FILLER_WORDS, "filler", &ci),
        }
    }

    /// Cluster number `ci`: `payments-settlement-eu-west-1-prod-003`.
    fn cluster(&self, ci: u32) -> String {
        match self.style {
            GeneratedNames::Short => format!("{}-{ci:03}", self.word),
            GeneratedNames::Realistic => self.realistic(&[], &format!("{ci:03}")),
        }
    }

    /// Service number `si` of the cluster, a `service` word:
    /// `payments-settlement-api-eu-west-1-prod-0001`.
    fn service(&self, service: &str, si: u32) -> String {
        match self.style {
            GeneratedNames::Short => format!("{service}-{si:04}"),
            GeneratedNames::Realistic => self.realistic(&[service], &format!("{si:04}")),
        }
    }

    /// The domain, the area, `what`, the region, the environment and `number`, within
    /// [`REALISTIC_CHARS`]: lengthened by a filler word, shortened by leaving out the
    /// environment, then the area, then cutting the words (the number, which keeps the name
    /// unique, always stays).
    fn realistic(&self, what: &[&str], number: &str) -> String {
        let join = |parts: &[&str]| {
            let mut p = parts.to_vec();
            p.push(number);
            p.join("-")
        };
        let mut parts: Vec<&str> = vec![self.word, self.area];
        parts.extend(what);
        parts.extend([self.region.as_str(), self.env]);
        let mut name = join(&parts);
        let fillers = FILLER_WORDS
            .iter()
            .cycle()
            .skip_while(|f| **f != self.filler);
        for filler in fillers.take(FILLER_WORDS.len() * 8) {
            if name.len() >= *REALISTIC_CHARS.start() {
                break;
            }
            parts.push(filler);
            name = join(&parts);
        }
        for drop in [self.env, self.area] {
            if name.len() <= *REALISTIC_CHARS.end() {
                break;
            }
            if let Some(i) = parts.iter().position(|p| *p == drop) {
                parts.remove(i);
                name = join(&parts);
            }
        }
        if name.len() > *REALISTIC_CHARS.end() {
            let words = parts.join("-");
            let keep = REALISTIC_CHARS.end() - number.len() - 1;
            name = format!("{}-{number}", words[..keep].trim_end_matches('-'));
        }
        name
    }
}

fn generate(world: &mut World, spec: &FleetSpec, g: &GenerateSpec, start: Millis) {
    let mut rng = SplitMix64::new(spec.seed ^ 0x5eed_f1ee_7000_0000);
    let mut used: HashSet<String> = spec.accounts.iter().map(|a| a.id.clone()).collect();
    used.insert(spec.hub_account.clone());
    let start_dt = Utc
        .timestamp_millis_opt(start)
        .single()
        .unwrap_or_else(Utc::now);
    let night = (start_dt - Duration::days(1)).date_naive();
    let night_start = night
        .and_hms_opt(0, 0, 0)
        .map_or(start_dt, |n| Utc.from_utc_datetime(&n));
    let snooze = (start_dt + Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let region_count = g.regions.len();
    for _ in 0..g.accounts {
        let id = loop {
            let candidate = format!("{:012}", rng.range(100_000_000_000, 999_999_999_999));
            if used.insert(candidate.clone()) {
                break candidate;
            }
        };
        let mut account = Account {
            id: id.clone(),
            regions: g.regions.clone(),
            deny_assume_role: false,
            external_id: None,
            deny_ecs_after_restarts: None,
            server_error_rate: 0.0,
            updates_ok: 0,
            ecs_calls: 0,
            by_region: g
                .regions
                .iter()
                .map(|r| (r.clone(), Region::default()))
                .collect(),
        };
        for ci in 0..g.clusters_per_account {
            // A validated spec has at least one generated region; without one, no clusters.
            let Some(region) = g.regions.get(ci as usize % region_count.max(1)) else {
                break;
            };
            // The draw is within 0..len of the constant list.
            let word = CLUSTER_WORDS[rng.range(0, CLUSTER_WORDS.len() as u64 - 1) as usize];
            let mut tags = BTreeMap::new();
            if rng.percent(g.cluster_team_percent) {
                tags.insert("team".to_owned(), format!("team-{}", rng.range(1, 12)));
            }
            tags.insert("env".to_owned(), "prod".to_owned());
            let names = Names::new(g.names, spec.seed, &id, ci, word, region);
            let mut services = Vec::with_capacity(g.services_per_cluster as usize);
            for si in 0..g.services_per_cluster {
                services.push(generated_service(
                    &mut rng,
                    g,
                    si,
                    &names,
                    night_start,
                    &snooze,
                ));
            }
            let cl = ClusterSpec {
                name: names.cluster(ci),
                region: Some(region.clone()),
                tags,
                services,
            };
            add_cluster(&mut account, spec.seed, region, &cl, start);
        }
        world.account_order.push(id.clone());
        world.accounts.insert(id, account);
    }
}

fn generated_service(
    rng: &mut SplitMix64,
    g: &GenerateSpec,
    si: u32,
    names: &Names,
    night_start: DateTime<Utc>,
    snooze: &str,
) -> ServiceSpec {
    // The draw is within 0..len of the constant list.
    let word = SERVICE_WORDS[rng.range(0, SERVICE_WORDS.len() as u64 - 1) as usize];
    let mut sv = ServiceSpec::named(names.service(word, si));
    let (dmin, dmax) = g.desired.bounds();
    sv.desired = u32::try_from(rng.range(dmin, dmax)).unwrap_or(1);
    if rng.percent(g.daemon_percent) {
        sv.scheduling = Scheduling::Daemon;
        sv.launch_type = LaunchType::Ec2;
        sv.min_healthy_percent = 0;
        sv.max_percent = 100;
    } else if rng.percent(20.0) {
        sv.launch_type = LaunchType::Ec2;
    }
    let c = rng.unit() * 100.0;
    sv.controller = if c < g.code_deploy_percent {
        Controller::CodeDeploy
    } else if c < g.code_deploy_percent + g.external_percent {
        Controller::External
    } else {
        Controller::Ecs
    };
    if sv.scheduling == Scheduling::Replica {
        let m = rng.unit() * 100.0;
        (sv.min_healthy_percent, sv.max_percent) = if m < 3.0 {
            (0, 100)
        } else if m < 5.0 {
            (100, 100)
        } else if m < 15.0 {
            (50, 200)
        } else {
            (100, 200)
        };
    }
    let o = rng.unit() * 100.0;
    sv.on_restart = if o < g.fail_percent {
        OnRestart::Fail
    } else if o < g.fail_percent + g.stuck_percent {
        OnRestart::Stuck
    } else if o < g.fail_percent + g.stuck_percent + g.vanish_percent {
        OnRestart::Vanish
    } else {
        OnRestart::Complete
    };
    sv.old_arn_format = rng.percent(g.old_arn_percent);
    sv.enable_execute_command = rng.percent(g.exec_percent);
    sv.deploy_seconds = g.deploy_seconds;
    if !sv.old_arn_format && rng.percent(g.tagged_percent) {
        let v = rng.unit() * 100.0;
        let value = if v < 80.0 {
            let at = night_start
                + Duration::seconds(i64::try_from(rng.range(0, 6 * 3600 - 1)).unwrap_or(0));
            at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        } else if v < 88.0 {
            "enabled".to_owned()
        } else if v < 93.0 {
            String::new()
        } else if v < 96.0 {
            "disabled".to_owned()
        } else if v < 98.0 {
            format!("skip-until:{snooze}")
        } else {
            "every night please".to_owned()
        };
        sv.tags.insert(g.tag_key.clone(), value);
    }
    if !sv.old_arn_format && rng.percent(g.owner_percent) {
        sv.tags
            .insert("owner".to_owned(), format!("team-{}", rng.range(1, 12)));
    }
    sv
}

impl World {
    /// Settles every service up to `now` (used before statistics).
    pub fn settle_all(&mut self, now: Millis) {
        let seed = self.seed;
        for acc in self.accounts.values_mut() {
            for reg in acc.by_region.values_mut() {
                for cl in &mut reg.clusters {
                    if cl.restarts.iter().all(|r| r.end.is_some()) {
                        continue;
                    }
                    for svc in &mut cl.services {
                        svc.settle(seed, now, &mut cl.restarts);
                    }
                }
            }
        }
    }

    /// The most restarts ever in flight at once, per "account/region/cluster" (clusters that
    /// had at least one restart). Call [`World::settle_all`] first.
    pub fn max_inflight(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for acc in self.accounts.values() {
            for (region, reg) in &acc.by_region {
                for cl in &reg.clusters {
                    if cl.restarts.is_empty() {
                        continue;
                    }
                    out.insert(
                        format!("{}/{region}/{}", acc.id, cl.name),
                        max_overlap(&cl.restarts),
                    );
                }
            }
        }
        out
    }

    /// Number of services in the world.
    pub fn service_count(&self) -> usize {
        self.accounts
            .values()
            .flat_map(|a| a.by_region.values())
            .flat_map(|r| &r.clusters)
            .map(|c| c.services.len())
            .sum()
    }
}

/// Most intervals overlapping at once; an interval ending at t does not overlap one starting at t.
pub fn max_overlap(intervals: &[Inflight]) -> u64 {
    let mut points: Vec<(Millis, i32)> = Vec::with_capacity(intervals.len() * 2);
    for i in intervals {
        points.push((i.start, 1));
        if let Some(e) = i.end {
            points.push((e, -1));
        }
    }
    // Ends sort before starts at the same instant.
    points.sort_unstable();
    let (mut cur, mut best) = (0i64, 0i64);
    for (_, d) in points {
        cur += i64::from(d);
        best = best.max(cur);
    }
    u64::try_from(best).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(on_restart: OnRestart, deploy: u64) -> (World, Millis) {
        let mut sv = ServiceSpec::named("api");
        sv.desired = 3;
        sv.on_restart = on_restart;
        sv.deploy_seconds = DeploySeconds::Fixed(deploy);
        let spec = FleetSpec {
            accounts: vec![AccountSpec {
                id: "111111111111".into(),
                regions: vec!["eu-west-1".into()],
                deny_assume_role: false,
                external_id: None,
                clusters: vec![ClusterSpec {
                    name: "c".into(),
                    region: None,
                    tags: BTreeMap::new(),
                    services: vec![sv],
                }],
            }],
            ..FleetSpec::default()
        };
        let start = 1_800_000_000_000;
        (build(&spec, start), start)
    }

    fn with_svc<T>(
        w: &mut World,
        now: Millis,
        f: impl FnOnce(&mut Service, &mut Vec<Inflight>) -> T,
    ) -> T {
        let seed = w.seed;
        let cl = &mut w
            .accounts
            .get_mut("111111111111")
            .and_then(|a| a.by_region.get_mut("eu-west-1"))
            .expect("region")
            .clusters[0];
        let svc = &mut cl.services[0];
        svc.settle(seed, now, &mut cl.restarts);
        f(svc, &mut cl.restarts)
    }

    #[test]
    fn complete_goes_in_progress_then_completed() {
        let (mut w, t0) = one(OnRestart::Complete, 100);
        let seed = w.seed;
        let id = with_svc(&mut w, t0, |s, inf| {
            s.force_new_deployment(seed, &["x"], t0, inf)
        })
        .expect("restart");
        with_svc(&mut w, t0 + 50_000, |s, _| {
            assert_eq!(s.deployments.len(), 2);
            let p = s.primary().expect("primary");
            assert_eq!(
                (p.id.as_str(), p.rollout),
                (id.as_str(), Rollout::InProgress)
            );
            assert_eq!(s.counts(p, t0 + 50_000).running, 1);
            assert_eq!(s.totals(t0 + 50_000).running, 3);
        });
        with_svc(&mut w, t0 + 100_000, |s, inf| {
            assert_eq!(s.deployments.len(), 1);
            let p = s.primary().expect("primary");
            assert_eq!(
                (p.id.as_str(), p.rollout),
                (id.as_str(), Rollout::Completed)
            );
            assert_eq!(p.updated_at, t0 + 100_000);
            assert_eq!(inf[0].end, Some(t0 + 100_000));
            assert!(
                s.events
                    .last()
                    .is_some_and(|e| e.message.contains("steady state"))
            );
        });
    }

    #[test]
    fn fail_rolls_back_then_completes_the_rollback() {
        let (mut w, t0) = one(OnRestart::Fail, 100);
        let seed = w.seed;
        let id = with_svc(&mut w, t0, |s, inf| {
            s.force_new_deployment(seed, &["x"], t0, inf)
        })
        .expect("restart");
        with_svc(&mut w, t0 + 100_000 + 1, |s, _| {
            assert_eq!(s.deployments.len(), 3);
            let p = s.primary().expect("primary");
            assert_ne!(p.id, id);
            assert_eq!(p.kind, DeploymentKind::Rollback);
            let ours = s.deployments.iter().find(|d| d.id == id).expect("ours");
            assert_eq!(ours.rollout, Rollout::Failed);
            assert!(ours.rollout_reason.contains("circuit breaker"));
        });
        with_svc(&mut w, t0 + 100_000 + ROLLBACK_MILLIS, |s, _| {
            assert_eq!(s.deployments.len(), 1);
            assert_eq!(s.primary().map(|p| p.rollout), Some(Rollout::Completed));
            assert_ne!(s.primary().map(|p| p.id.clone()), Some(id.clone()));
        });
    }

    #[test]
    fn stuck_never_finishes_and_vanish_deletes() {
        let (mut w, t0) = one(OnRestart::Stuck, 100);
        let seed = w.seed;
        with_svc(&mut w, t0, |s, inf| {
            s.force_new_deployment(seed, &["x"], t0, inf)
        })
        .expect("restart");
        with_svc(&mut w, t0 + 86_400_000, |s, _| {
            assert_eq!(s.primary().map(|p| p.rollout), Some(Rollout::InProgress));
        });
        let (mut w, t0) = one(OnRestart::Vanish, 100);
        with_svc(&mut w, t0, |s, inf| {
            s.force_new_deployment(seed, &["x"], t0, inf)
        })
        .expect("restart");
        with_svc(&mut w, t0 + 100_000, |s, inf| {
            assert_eq!(s.status, ServiceStatus::Inactive(t0 + 100_000));
            assert!(s.visible(t0 + 100_000));
            assert!(!s.visible(t0 + 100_000 + INACTIVE_VISIBLE_MILLIS));
            assert_eq!(inf[0].end, Some(t0 + 100_000));
            assert_eq!(
                s.force_new_deployment(seed, &["x"], t0, inf),
                Err(RestartRefused::NotActive)
            );
        });
    }

    #[test]
    fn superseded_is_replaced_halfway_and_reject_never_starts() {
        let (mut w, t0) = one(OnRestart::Superseded, 100);
        let seed = w.seed;
        let id = with_svc(&mut w, t0, |s, inf| {
            s.force_new_deployment(seed, &["x"], t0, inf)
        })
        .expect("restart");
        let td = with_svc(&mut w, t0 + 49_999, |s, _| {
            assert_eq!(s.primary().map(|p| p.id.clone()), Some(id.clone()));
            assert_eq!(s.counts(&s.deployments[0], t0 + 49_999).running, 1);
            s.deployments[0].task_definition.clone()
        });
        with_svc(&mut w, t0 + 50_000, |s, inf| {
            assert!(s.deployments.iter().all(|d| d.id != id));
            let p = s.primary().expect("primary");
            assert_eq!(p.kind, DeploymentKind::Superseding);
            assert_eq!(p.rollout, Rollout::InProgress);
            assert_eq!(p.task_definition, next_revision(&td));
            assert_eq!(inf[0].end, Some(t0 + 50_000));
        });
        with_svc(&mut w, t0 + 150_000, |s, _| {
            assert_eq!(s.deployments.len(), 1);
            assert_eq!(s.primary().map(|p| p.rollout), Some(Rollout::Completed));
            assert_eq!(s.last_good.1, next_revision(&td));
        });
        let (mut w, t0) = one(OnRestart::Reject, 100);
        with_svc(&mut w, t0, |s, inf| {
            assert!(matches!(
                s.force_new_deployment(seed, &["x"], t0, inf),
                Err(RestartRefused::Rejected(m)) if m.contains("service api")
            ));
            assert_eq!(s.deployments.len(), 1);
            assert!(inf.is_empty());
        });
    }

    #[test]
    fn next_revision_bumps_the_revision() {
        assert_eq!(
            next_revision("arn:aws:ecs:eu-west-1:111111111111:task-definition/api:7"),
            "arn:aws:ecs:eu-west-1:111111111111:task-definition/api:8"
        );
        assert_eq!(next_revision("api:1"), "api:2");
        assert_eq!(
            next_revision("arn:aws:ecs:eu-west-1:111111111111:task-definition/api"),
            "arn:aws:ecs:eu-west-1:111111111111:task-definition/api:2"
        );
        assert_eq!(next_revision("api:4294967295"), "api:4294967295:2");
        assert_eq!(next_revision(""), ":2");
    }

    #[test]
    fn overlap_counts_concurrent_intervals() {
        let iv = |s, e| Inflight {
            deployment_id: String::new(),
            start: s,
            end: e,
        };
        assert_eq!(max_overlap(&[]), 0);
        assert_eq!(max_overlap(&[iv(0, Some(10)), iv(10, Some(20))]), 1);
        assert_eq!(
            max_overlap(&[iv(0, Some(10)), iv(5, Some(20)), iv(6, None)]),
            3
        );
        assert_eq!(
            max_overlap(&[iv(0, None), iv(100, Some(200)), iv(300, Some(400))]),
            2
        );
    }

    #[test]
    fn task_ids_round_trip() {
        let id = task_id(7, 2, 1, 42);
        assert_eq!(parse_task_id(&id, 42), Some((7, 2, 1)));
        assert_eq!(parse_task_id(&id, 43), None);
        assert_eq!(parse_task_id("nothex", 42), None);
    }

    #[test]
    fn generation_is_deterministic_and_avoids_explicit_ids() {
        let spec = FleetSpec::from_yaml_str(
            r#"
seed: 3
start_time: "2026-11-22T12:00:00Z"
accounts: [{id: "111111111111"}]
generate: {accounts: 20, clusters_per_account: 3, services_per_cluster: 5, fail_percent: 10}
"#,
        )
        .expect("valid");
        let a = build(&spec, 1_800_000_000_000);
        let b = build(&spec, 1_800_000_000_000);
        assert_eq!(a.account_order, b.account_order);
        assert_eq!(a.account_order.len(), 21);
        assert_eq!(a.service_count(), 300);
        let ids: HashSet<&String> = a.account_order.iter().collect();
        assert_eq!(ids.len(), 21);
        let names = |w: &World| -> Vec<(String, Vec<(String, String)>)> {
            w.account_order
                .iter()
                .flat_map(|id| w.accounts[id].by_region.values())
                .flat_map(|r| &r.clusters)
                .flat_map(|c| &c.services)
                .map(|s| (s.arn.clone(), s.tags.clone()))
                .collect()
        };
        assert_eq!(names(&a), names(&b));
    }

    fn snapshot(s: &Service) -> Vec<(String, &'static str, &'static str, Millis)> {
        s.deployments
            .iter()
            .map(|d| {
                (
                    d.id.clone(),
                    d.status.as_str(),
                    d.rollout.as_str(),
                    d.updated_at,
                )
            })
            .collect()
    }

    proptest::proptest! {
        /// Lazy settling: polling at any pace gives the same state as one late read.
        #[test]
        fn settling_is_independent_of_polling(
            outcome in 0usize..5,
            deploy in 1u64..1000,
            polls in proptest::collection::vec(0i64..2_000_000, 0..20),
        ) {
            let on = [OnRestart::Complete, OnRestart::Fail, OnRestart::Stuck, OnRestart::Vanish, OnRestart::Superseded][outcome];
            let (mut a, t0) = one(on, deploy);
            let (mut b, _) = one(on, deploy);
            let seed = a.seed;
            with_svc(&mut a, t0, |s, inf| s.force_new_deployment(seed, &["x"], t0, inf)).expect("restart");
            with_svc(&mut b, t0, |s, inf| s.force_new_deployment(seed, &["x"], t0, inf)).expect("restart");
            let mut polls = polls;
            polls.sort_unstable();
            for p in polls {
                with_svc(&mut a, t0 + p, |_, _| ());
            }
            let end = t0 + 2_000_000;
            let sa = with_svc(&mut a, end, |s, inf| (snapshot(s), s.status, inf[0].end));
            let sb = with_svc(&mut b, end, |s, inf| (snapshot(s), s.status, inf[0].end));
            proptest::prop_assert_eq!(sa, sb);
        }

        /// The sweep agrees with counting at every interval start.
        #[test]
        fn overlap_matches_brute_force(iv in proptest::collection::vec((0i64..100, proptest::option::of(0i64..50)), 0..30)) {
            let intervals: Vec<Inflight> = iv
                .iter()
                .map(|&(s, len)| Inflight { deployment_id: String::new(), start: s, end: len.map(|l| s + l + 1) })
                .collect();
            let brute = intervals
                .iter()
                .map(|p| intervals.iter().filter(|i| i.start <= p.start && i.end.is_none_or(|e| e > p.start)).count() as u64)
                .max()
                .unwrap_or(0);
            proptest::prop_assert_eq!(max_overlap(&intervals), brute);
        }
    }

    /// Every generated cluster (account, region, name) and its services' names, tags and
    /// outcomes, in order.
    fn generated(names: GeneratedNames, regions: &[&str]) -> Vec<(String, Vec<Service>)> {
        let spec = FleetSpec {
            seed: 11,
            generate: Some(GenerateSpec {
                accounts: 3,
                regions: regions.iter().map(|r| (*r).to_owned()).collect(),
                clusters_per_account: 6,
                services_per_cluster: 12,
                fail_percent: 10.0,
                names,
                ..GenerateSpec::default()
            }),
            ..FleetSpec::default()
        };
        let mut world = build(&spec, 1_800_000_000_000);
        let mut out = Vec::new();
        for id in world.account_order.clone() {
            let acc = world.accounts.remove(&id).unwrap();
            for (region, reg) in acc.by_region {
                for cl in reg.clusters {
                    out.push((format!("{id}/{region}/{}", cl.name), cl.services));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn valid_ecs_name(n: &str) -> bool {
        n.len() <= 255
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn generated_names_are_realistic_by_default_unique_and_deterministic() {
        let fleet = generated(GeneratedNames::default(), &["eu-west-1", "ap-southeast-2"]);
        assert_eq!(fleet.len(), 18);
        let mut clusters = HashSet::new();
        for (key, services) in &fleet {
            let cluster = key.rsplit('/').next().unwrap();
            assert!(REALISTIC_CHARS.contains(&cluster.len()), "{cluster}");
            assert!(valid_ecs_name(cluster), "{cluster}");
            assert!(clusters.insert(key.clone()), "{key} twice");
            let names: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names.len(), services.len(), "unique in {key}");
            for s in services {
                assert!(REALISTIC_CHARS.contains(&s.name.len()), "{}", s.name);
                assert!(valid_ecs_name(&s.name), "{}", s.name);
                // The service is named after its cluster's domain.
                let domain = cluster.split('-').next().unwrap();
                assert!(
                    s.name.starts_with(&format!("{domain}-")),
                    "{} in {cluster}",
                    s.name
                );
            }
        }
        let again = generated(GeneratedNames::Realistic, &["eu-west-1", "ap-southeast-2"]);
        let names = |f: &[(String, Vec<Service>)]| -> Vec<String> {
            f.iter()
                .flat_map(|(k, s)| s.iter().map(move |s| format!("{k}/{}", s.name)))
                .collect()
        };
        assert_eq!(names(&fleet), names(&again));
    }

    /// A generated service's number, outcome and tags.
    type Outcome = (u32, OnRestart, Vec<(String, String)>);

    #[test]
    fn short_names_keep_the_old_shape_and_names_change_nothing_else() {
        let realistic = generated(GeneratedNames::Realistic, &["eu-west-1"]);
        let short = generated(GeneratedNames::Short, &["eu-west-1"]);
        assert_eq!(realistic.len(), short.len());
        // Sorted by name, the clusters' orders may differ: compare by account and number.
        let by_number = |f: &[(String, Vec<Service>)]| {
            let mut v: Vec<(String, String, Vec<Outcome>)> = f
                .iter()
                .map(|(k, s)| {
                    let account = k.split('/').next().unwrap().to_owned();
                    let number = k.rsplit('-').next().unwrap().to_owned();
                    let services = s
                        .iter()
                        .map(|s| (s.index, s.on_restart, s.tags.clone()))
                        .collect();
                    (account, number, services)
                })
                .collect();
            v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            v
        };
        assert_eq!(by_number(&realistic), by_number(&short));
        for (key, services) in &short {
            let cluster = key.rsplit('/').next().unwrap();
            let (word, number) = cluster.rsplit_once('-').unwrap();
            assert!(
                CLUSTER_WORDS.contains(&word) && number.len() == 3,
                "{cluster}"
            );
            for s in services {
                let (word, number) = s.name.rsplit_once('-').unwrap();
                assert!(
                    SERVICE_WORDS.contains(&word) && number.len() == 4,
                    "{}",
                    s.name
                );
            }
        }
    }

    #[test]
    fn realistic_names_stay_within_bounds_for_any_region() {
        for region in ["x-1", "eu-west-1", "us-gov-northwest-1234567890-abcde"] {
            let names = Names::new(
                GeneratedNames::Realistic,
                3,
                "123456789012",
                7,
                "inventory",
                region,
            );
            for name in [
                names.cluster(7),
                names.service("scheduler", 12),
                names.service("web", 0),
            ] {
                assert!(REALISTIC_CHARS.contains(&name.len()), "{name} ({region})");
                assert!(valid_ecs_name(&name), "{name}");
            }
            assert!(names.cluster(7).ends_with("-007"));
            assert!(names.service("web", 12).ends_with("-0012"));
        }
    }
}
