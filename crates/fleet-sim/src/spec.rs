//! The fleet spec: what the simulator serves, as written in YAML or JSON.
//!
//! Parsing is strict: unknown keys, duplicate ids and names, percentages out of range and
//! unknown behaviours are refused with a [`SpecError`] that names the offending field by its
//! path (`accounts[1].clusters[0].services[2].on_restart: ...`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The hub account used when no `hub_account` is given.
pub const DEFAULT_HUB_ACCOUNT: &str = "000000000000";
/// The region used when an account lists none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The enrollment tag key written by the generator unless `generate.tag_key` says otherwise.
pub const DEFAULT_TAG_KEY: &str = "ecs_task_daily_restart";

/// A spec that could not be read or is invalid. The message names the field.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read fleet spec {path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The document does not parse into a spec (syntax, unknown key, wrong type, unknown variant).
    #[error("{0}")]
    Parse(String),
    /// The document parses but breaks a rule (duplicates, ranges, ...).
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. `accounts[0].id`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl SpecError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The whole fleet: explicit accounts plus an optional generated part.
///
/// In YAML/JSON the account faults are keys of each account (`accounts[].server_error_rate`,
/// `accounts[].deny_ecs_after_restarts`); in Rust they live in [`FleetSpec::account_faults`],
/// keyed by account id, so that [`AccountSpec`] keeps its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FleetSpecWire", into = "FleetSpecWire")]
pub struct FleetSpec {
    /// Seed of every random choice (generated fleet, deploy durations). Default 0.
    pub seed: u64,
    /// Simulated seconds per real second. Default 1.
    pub time_scale: f64,
    /// Milliseconds added to every AWS call. Default 0.
    pub latency_ms: u64,
    /// Per account and region token buckets at the documented ECS rates. Default true.
    pub throttling: bool,
    /// The simulated time at start (and after a reset). Default: the wall clock at load.
    pub start_time: Option<DateTime<Utc>>,
    /// The account that calls signed with keys not issued by the simulator act in.
    pub hub_account: String,
    /// Names of the Config aggregators that exist. Omitted: any name is accepted.
    pub aggregators: Option<Vec<String>>,
    /// Explicit accounts.
    pub accounts: Vec<AccountSpec>,
    /// A synthetic fleet added to the explicit one.
    pub generate: Option<GenerateSpec>,
    /// Faults of explicit accounts, by account id (accounts without faults are absent).
    pub account_faults: BTreeMap<String, AccountFaults>,
    /// AWS Organizations: absent, the fleet has no organization
    /// (`AWSOrganizationsNotInUseException`).
    pub organization: Option<OrganizationSpec>,
    /// Where explicit accounts sit in the organization and their status, by account id
    /// (accounts in the root and ACTIVE are absent). In YAML/JSON: `accounts[].ou`,
    /// `accounts[].status`.
    pub account_memberships: BTreeMap<String, Membership>,
    /// CloudWatch alarms of explicit accounts, by account id (accounts without alarms are
    /// absent). In YAML/JSON: `accounts[].alarms`.
    pub account_alarms: BTreeMap<String, Vec<AlarmSpec>>,
    /// CloudWatch alarms of the hub account (`hub_alarms`); when the hub is one of the explicit
    /// accounts, they add to that account's `alarms`.
    pub hub_alarms: Vec<AlarmSpec>,
    /// SSM change calendars (`calendars`), which only the hub account has.
    pub calendars: Vec<CalendarSpec>,
}

/// A CloudWatch metric alarm whose state follows a timeline on the simulated clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmSpec {
    /// The alarm's name: 1 to 255 characters, no control characters; unique per account and
    /// region.
    pub name: String,
    /// Its region; must be one of the account's. Default: the account's first region (for the
    /// hub: its first region when it is an explicit account, else `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The state changes, in strictly increasing minutes after the simulator's start, each a
    /// different state from the one before. Before the first entry the alarm is
    /// INSUFFICIENT_DATA; an alarm without entries is OK from the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<AlarmStateAt>,
}

impl AlarmSpec {
    /// The region of the alarm: its own, else `default`.
    pub fn region_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.region.as_deref().unwrap_or(default)
    }
}

/// One entry of an alarm's timeline: from `at_minute` on, the alarm is in `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmStateAt {
    /// Minutes after the simulator's start (its `start_time`, or the wall clock at load) on the
    /// simulated clock.
    pub at_minute: u32,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: AlarmState,
    /// `StateReason` (at most 1023 characters). Default: a threshold-crossing sentence for the
    /// state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A CloudWatch alarm's `StateValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// The metric is within the threshold.
    Ok,
    /// The metric breaches the threshold.
    Alarm,
    /// Not enough data to decide.
    InsufficientData,
}

impl AlarmState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    /// The state of a wire name (`OK`, `ALARM`, `INSUFFICIENT_DATA`).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ok, Self::Alarm, Self::InsufficientData]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// An SSM change calendar (a document of type `ChangeCalendar`) of the hub account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// The document's name: 3 to 128 letters, digits, `_`, `-` and `.`; unique per region.
    pub name: String,
    /// Its region. Default: the hub's first region when the hub is an explicit account, else
    /// `us-east-1`; must be one of the hub's regions when it is an explicit account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// DEFAULT_OPEN (default): open except during events; DEFAULT_CLOSED: closed except
    /// during events.
    #[serde(default)]
    pub default: CalendarDefault,
    /// The calendar's events (they may overlap).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<CalendarEventSpec>,
}

impl CalendarSpec {
    /// The region of the calendar: its own, else `default`.
    pub fn region_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.region.as_deref().unwrap_or(default)
    }
}

/// A change calendar's default state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CalendarDefault {
    /// Open, closed during its events.
    #[default]
    DefaultOpen,
    /// Closed, open during its events.
    DefaultClosed,
}

/// An event of a change calendar, from `from_minute` (included) to `until_minute` (excluded),
/// in minutes after the simulator's start on the simulated clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarEventSpec {
    /// What the event is (at most 255 characters). Default empty.
    #[serde(default)]
    pub summary: String,
    /// Its first minute.
    pub from_minute: u32,
    /// The minute it ends (greater than `from_minute`).
    pub until_minute: u32,
}

/// The fleet's organization in AWS Organizations. Every account of the fleet is a member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSpec {
    /// The management account (listed in the root, ACTIVE; may list the organization).
    /// Default: `hub_account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_account: Option<String>,
    /// Member accounts that may list the organization too (delegated administrators).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegated_administrators: Vec<String>,
}

/// An account's place in the organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// The OU path from the root, e.g. `[Workloads, Prod]`; empty: the root.
    #[serde(default)]
    pub ou: Vec<String>,
    /// ACTIVE (default), SUSPENDED or PENDING_CLOSURE.
    #[serde(default)]
    pub status: MemberStatus,
}

impl Membership {
    /// Whether this is the default (root, ACTIVE).
    pub fn is_default(&self) -> bool {
        self.ou.is_empty() && self.status == MemberStatus::Active
    }
}

/// An account's `Status` (and `State`) in AWS Organizations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberStatus {
    /// A working account.
    #[default]
    Active,
    /// Suspended (closed, within the 90-day post-closure period).
    Suspended,
    /// Being closed.
    PendingClosure,
}

impl MemberStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::PendingClosure => "PENDING_CLOSURE",
        }
    }

    fn is_active(&self) -> bool {
        *self == Self::Active
    }
}

/// Faults injected into an account's ECS API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFaults {
    /// After this many successful UpdateService calls of the account (all regions together),
    /// every ECS call of the account answers `AccessDeniedException`, as under a service
    /// control policy; 0 denies ECS from the start. `None`: never.
    #[serde(default)]
    pub deny_ecs_after_restarts: Option<u64>,
    /// Fraction (0..=1) of the account's ECS calls answered HTTP 500 `ServerException`, drawn
    /// by seed. Default 0.
    #[serde(default)]
    pub server_error_rate: f64,
}

impl AccountFaults {
    /// Whether no fault is set.
    pub fn is_none(&self) -> bool {
        self.deny_ecs_after_restarts.is_none() && self.server_error_rate == 0.0
    }
}

/// The document shape of [`FleetSpec`]: the same keys, with the account faults inside each
/// account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetSpecWire {
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_time_scale")]
    time_scale: f64,
    #[serde(default)]
    latency_ms: u64,
    #[serde(default = "default_true")]
    throttling: bool,
    #[serde(default)]
    start_time: Option<DateTime<Utc>>,
    #[serde(default = "default_hub")]
    hub_account: String,
    #[serde(default)]
    aggregators: Option<Vec<String>>,
    #[serde(default)]
    accounts: Vec<AccountWire>,
    #[serde(default)]
    generate: Option<GenerateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization: Option<OrganizationSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hub_alarms: Vec<AlarmSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    calendars: Vec<CalendarSpec>,
}

/// The document shape of one account: [`AccountSpec`] plus its [`AccountFaults`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountWire {
    id: String,
    #[serde(default = "default_regions")]
    regions: Vec<String>,
    #[serde(default)]
    deny_assume_role: bool,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deny_ecs_after_restarts: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    server_error_rate: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ou: Vec<String>,
    #[serde(default, skip_serializing_if = "MemberStatus::is_active")]
    status: MemberStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    alarms: Vec<AlarmSpec>,
    #[serde(default)]
    clusters: Vec<ClusterSpec>,
}

fn is_zero(f: &f64) -> bool {
    *f == 0.0
}

impl From<FleetSpecWire> for FleetSpec {
    fn from(w: FleetSpecWire) -> Self {
        let mut account_faults = BTreeMap::new();
        let mut account_memberships = BTreeMap::new();
        let mut account_alarms = BTreeMap::new();
        let accounts = w
            .accounts
            .into_iter()
            .map(|a| {
                let faults = AccountFaults {
                    deny_ecs_after_restarts: a.deny_ecs_after_restarts,
                    server_error_rate: a.server_error_rate,
                };
                // A duplicate id keeps its first faults; validation refuses the duplicate.
                if !faults.is_none() && !account_faults.contains_key(&a.id) {
                    account_faults.insert(a.id.clone(), faults);
                }
                let membership = Membership {
                    ou: a.ou,
                    status: a.status,
                };
                if !membership.is_default() && !account_memberships.contains_key(&a.id) {
                    account_memberships.insert(a.id.clone(), membership);
                }
                if !a.alarms.is_empty() && !account_alarms.contains_key(&a.id) {
                    account_alarms.insert(a.id.clone(), a.alarms);
                }
                AccountSpec {
                    id: a.id,
                    regions: a.regions,
                    deny_assume_role: a.deny_assume_role,
                    external_id: a.external_id,
                    clusters: a.clusters,
                }
            })
            .collect();
        Self {
            seed: w.seed,
            time_scale: w.time_scale,
            latency_ms: w.latency_ms,
            throttling: w.throttling,
            start_time: w.start_time,
            hub_account: w.hub_account,
            aggregators: w.aggregators,
            accounts,
            generate: w.generate,
            account_faults,
            organization: w.organization,
            account_memberships,
            account_alarms,
            hub_alarms: w.hub_alarms,
            calendars: w.calendars,
        }
    }
}

impl From<FleetSpec> for FleetSpecWire {
    fn from(s: FleetSpec) -> Self {
        let faults = s.account_faults;
        let memberships = s.account_memberships;
        let alarms = s.account_alarms;
        let accounts = s
            .accounts
            .into_iter()
            .map(|a| {
                let f = faults.get(&a.id).cloned().unwrap_or_default();
                let m = memberships.get(&a.id).cloned().unwrap_or_default();
                let own_alarms = alarms.get(&a.id).cloned().unwrap_or_default();
                AccountWire {
                    id: a.id,
                    regions: a.regions,
                    deny_assume_role: a.deny_assume_role,
                    external_id: a.external_id,
                    deny_ecs_after_restarts: f.deny_ecs_after_restarts,
                    server_error_rate: f.server_error_rate,
                    ou: m.ou,
                    status: m.status,
                    alarms: own_alarms,
                    clusters: a.clusters,
                }
            })
            .collect();
        Self {
            seed: s.seed,
            time_scale: s.time_scale,
            latency_ms: s.latency_ms,
            throttling: s.throttling,
            start_time: s.start_time,
            hub_account: s.hub_account,
            aggregators: s.aggregators,
            accounts,
            generate: s.generate,
            organization: s.organization,
            hub_alarms: s.hub_alarms,
            calendars: s.calendars,
        }
    }
}

impl Default for FleetSpec {
    fn default() -> Self {
        Self {
            seed: 0,
            time_scale: default_time_scale(),
            latency_ms: 0,
            throttling: true,
            start_time: None,
            hub_account: default_hub(),
            aggregators: None,
            accounts: Vec::new(),
            generate: None,
            account_faults: BTreeMap::new(),
            organization: None,
            account_memberships: BTreeMap::new(),
            account_alarms: BTreeMap::new(),
            hub_alarms: Vec::new(),
            calendars: Vec::new(),
        }
    }
}

/// One member account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// Twelve digits.
    pub id: String,
    /// Regions the account uses. Default `[us-east-1]`.
    #[serde(default = "default_regions")]
    pub regions: Vec<String>,
    /// AssumeRole into this account answers AccessDenied.
    #[serde(default)]
    pub deny_assume_role: bool,
    /// When set, AssumeRole must pass this ExternalId.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The account's clusters.
    #[serde(default)]
    pub clusters: Vec<ClusterSpec>,
}

/// One ECS cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name, unique per account and region.
    pub name: String,
    /// Region of the cluster; must be one of the account's. Default: the account's first region.
    #[serde(default)]
    pub region: Option<String>,
    /// Cluster tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The cluster's services.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
}

/// One ECS service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name, unique per cluster.
    pub name: String,
    /// Desired task count. Default 1.
    #[serde(default = "default_desired")]
    pub desired: u32,
    /// REPLICA (default) or DAEMON.
    #[serde(default)]
    pub scheduling: Scheduling,
    /// ECS (default), CODE_DEPLOY or EXTERNAL.
    #[serde(default)]
    pub controller: Controller,
    /// FARGATE (default), EC2 or EXTERNAL.
    #[serde(default)]
    pub launch_type: LaunchType,
    /// deploymentConfiguration.minimumHealthyPercent, 0..=100. Default 100.
    #[serde(default = "default_min_healthy")]
    pub min_healthy_percent: u32,
    /// deploymentConfiguration.maximumPercent, min_healthy_percent..=400. Default 200.
    #[serde(default = "default_max_percent")]
    pub max_percent: u32,
    /// Service tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Simulated seconds a forced deployment takes: a number or `[min, max]`. Default `[240, 600]`.
    #[serde(default)]
    pub deploy_seconds: DeploySeconds,
    /// What a forced deployment does. Default `complete`.
    #[serde(default)]
    pub on_restart: OnRestart,
    /// The service has an old-format ARN (no cluster name) and cannot be tagged.
    #[serde(default)]
    pub old_arn_format: bool,
    /// `enableExecuteCommand` of the service and its tasks. Default false.
    #[serde(default)]
    pub enable_execute_command: bool,
    /// `readonlyRootFilesystem` of the container in its task definition (ECS Exec needs a
    /// writable one). Default false.
    #[serde(default)]
    pub readonly_root_filesystem: bool,
    /// Minutes before the fleet's start that the service's deployment (the owners' last
    /// deploy) completed; it began 5 minutes earlier. Default: none since the service was
    /// created, 1 to 400 days before the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_minutes_ago: Option<u32>,
    /// CloudWatch alarms that watch the service's deployments (DescribeServices'
    /// `deploymentConfiguration.alarms`, with `enable` and `rollback` on); each must be an
    /// alarm of the account in the cluster's region, and the controller ECS. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployment_alarms: Vec<String>,
}

impl ServiceSpec {
    /// A service with every field at its default.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            desired: default_desired(),
            scheduling: Scheduling::default(),
            controller: Controller::default(),
            launch_type: LaunchType::default(),
            min_healthy_percent: default_min_healthy(),
            max_percent: default_max_percent(),
            tags: BTreeMap::new(),
            deploy_seconds: DeploySeconds::default(),
            on_restart: OnRestart::default(),
            old_arn_format: false,
            enable_execute_command: false,
            readonly_root_filesystem: false,
            deployed_minutes_ago: None,
            deployment_alarms: Vec::new(),
        }
    }
}

/// `schedulingStrategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scheduling {
    /// Keeps `desired` tasks.
    #[default]
    Replica,
    /// One task per container instance.
    Daemon,
}

/// `deploymentController.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Controller {
    /// Rolling update: forceNewDeployment works.
    #[default]
    Ecs,
    /// Blue/green by CodeDeploy: forceNewDeployment is refused.
    CodeDeploy,
    /// A third-party controller: forceNewDeployment is refused.
    External,
}

/// `launchType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LaunchType {
    /// Fargate.
    #[default]
    Fargate,
    /// EC2 container instances.
    Ec2,
    /// ECS Anywhere.
    External,
}

/// What a forced deployment of the service does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRestart {
    /// IN_PROGRESS for the deploy time, then COMPLETED.
    #[default]
    Complete,
    /// FAILED after the deploy time, then the circuit breaker rolls back.
    Fail,
    /// IN_PROGRESS forever.
    Stuck,
    /// The service is deleted (INACTIVE) after the deploy time.
    Vanish,
    /// UpdateService answers `ClientException` and changes nothing.
    Reject,
    /// Halfway through the deploy time, another deployment (a CI deploy: same task definition
    /// family, revision + 1) replaces ours, which leaves the deployments list.
    Superseded,
}

/// Simulated seconds a deployment takes: fixed or uniformly drawn from `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DeploySeconds {
    /// Always this many seconds.
    Fixed(u64),
    /// Drawn per restart, deterministically by seed, service and restart number.
    Range(u64, u64),
}

impl Default for DeploySeconds {
    fn default() -> Self {
        Self::Range(240, 600)
    }
}

impl DeploySeconds {
    /// The bounds `(min, max)`.
    pub fn bounds(self) -> (u64, u64) {
        match self {
            Self::Fixed(n) => (n, n),
            Self::Range(a, b) => (a, b),
        }
    }
}

impl<'de> Deserialize<'de> for DeploySeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DeploySeconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds or [min, max]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(DeploySeconds::Fixed(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(DeploySeconds::Fixed)
                    .map_err(|_| E::custom(format!("deploy seconds must not be negative, got {v}")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let min: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let max: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(DeploySeconds::Range(min, max))
            }
        }
        d.deserialize_any(V)
    }
}

/// A synthetic fleet, deterministic by the spec's seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// Number of generated accounts. Default 1.
    #[serde(default = "default_one")]
    pub accounts: u32,
    /// Regions of every generated account; clusters are spread over them. Default `[us-east-1]`.
    #[serde(default = "default_regions")]
    pub regions: Vec<String>,
    /// Clusters per account. Default 1.
    #[serde(default = "default_one")]
    pub clusters_per_account: u32,
    /// Services per cluster. Default 1.
    #[serde(default = "default_one")]
    pub services_per_cluster: u32,
    /// Percentage of services carrying the enrollment tag. Default 90.
    #[serde(default = "default_tagged")]
    pub tagged_percent: f64,
    /// The enrollment tag key. Default `ecs_task_daily_restart`.
    #[serde(default = "default_tag_key")]
    pub tag_key: String,
    /// Deploy time of generated services. Default `[240, 600]`.
    #[serde(default)]
    pub deploy_seconds: DeploySeconds,
    /// Desired count drawn uniformly from `[min, max]`. Default `[1, 4]`.
    #[serde(default = "default_desired_range")]
    pub desired: DeploySeconds,
    /// Percentage of services whose restart fails (and rolls back). Default 0.
    #[serde(default)]
    pub fail_percent: f64,
    /// Percentage of services whose restart never finishes. Default 0.
    #[serde(default)]
    pub stuck_percent: f64,
    /// Percentage of services deleted during their restart. Default 0.
    #[serde(default)]
    pub vanish_percent: f64,
    /// Percentage of services under CODE_DEPLOY. Default 0.
    #[serde(default)]
    pub code_deploy_percent: f64,
    /// Percentage of services under an EXTERNAL controller. Default 0.
    #[serde(default)]
    pub external_percent: f64,
    /// Percentage of DAEMON services. Default 0.
    #[serde(default)]
    pub daemon_percent: f64,
    /// Percentage of services with an old-format ARN. Default 0.
    #[serde(default)]
    pub old_arn_percent: f64,
    /// Percentage of services with an `owner` tag. Default 50.
    #[serde(default = "default_owner_percent")]
    pub owner_percent: f64,
    /// Percentage of clusters with a `team` tag. Default 50.
    #[serde(default = "default_owner_percent")]
    pub cluster_team_percent: f64,
    /// Percentage of services with execute command enabled. Default 50.
    #[serde(default = "default_owner_percent")]
    pub exec_percent: f64,
    /// OU paths the generated accounts are spread over, in turn (account i in
    /// `ous[i % len]`), e.g. `[[Workloads, Prod], [Workloads, Dev], [Sandbox]]`; empty: the
    /// root. Needs `organization`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ous: Vec<Vec<String>>,
    /// Percentage of generated accounts SUSPENDED in the organization, drawn by seed and
    /// account. Default 0. Needs `organization`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suspended_percent: f64,
    /// How clusters and services are named. Default `realistic`.
    #[serde(default, skip_serializing_if = "GeneratedNames::is_default")]
    pub names: GeneratedNames,
}

/// How a generated fleet names its clusters and services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratedNames {
    /// 30 to 50 characters, as real fleets name them: the domain, an area, the region, the
    /// environment and a number, e.g. cluster `payments-settlement-eu-west-1-prod-003` and its
    /// service `payments-settlement-api-eu-west-1-prod-0001`.
    #[default]
    Realistic,
    /// A word and a number: cluster `payments-003`, service `api-0001` (8 to 13 characters).
    Short,
}

impl GeneratedNames {
    pub fn is_default(&self) -> bool {
        *self == GeneratedNames::default()
    }
}

impl Default for GenerateSpec {
    fn default() -> Self {
        Self {
            accounts: 1,
            regions: default_regions(),
            clusters_per_account: 1,
            services_per_cluster: 1,
            tagged_percent: default_tagged(),
            tag_key: default_tag_key(),
            deploy_seconds: DeploySeconds::default(),
            desired: default_desired_range(),
            fail_percent: 0.0,
            stuck_percent: 0.0,
            vanish_percent: 0.0,
            code_deploy_percent: 0.0,
            external_percent: 0.0,
            daemon_percent: 0.0,
            old_arn_percent: 0.0,
            owner_percent: default_owner_percent(),
            cluster_team_percent: default_owner_percent(),
            exec_percent: default_owner_percent(),
            ous: Vec::new(),
            suspended_percent: 0.0,
            names: GeneratedNames::default(),
        }
    }
}

fn default_time_scale() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_hub() -> String {
    DEFAULT_HUB_ACCOUNT.to_owned()
}
fn default_regions() -> Vec<String> {
    vec![DEFAULT_REGION.to_owned()]
}
fn default_desired() -> u32 {
    1
}
fn default_min_healthy() -> u32 {
    100
}
fn default_max_percent() -> u32 {
    200
}
fn default_one() -> u32 {
    1
}
fn default_tagged() -> f64 {
    90.0
}
fn default_owner_percent() -> f64 {
    50.0
}
fn default_tag_key() -> String {
    DEFAULT_TAG_KEY.to_owned()
}
fn default_desired_range() -> DeploySeconds {
    DeploySeconds::Range(1, 4)
}

impl FleetSpec {
    /// Parses and validates a YAML (or JSON, which YAML includes) document.
    pub fn from_yaml_str(text: &str) -> Result<Self, SpecError> {
        // The YAML parser takes quadratic time on deep flow nesting (a minute for 100,000
        // levels); a spec is a few levels deep and the deserializer refuses more than 128.
        if flow_depth_exceeds(text, MAX_FLOW_DEPTH) {
            return Err(SpecError::Parse(format!(
                "the document nests more than {MAX_FLOW_DEPTH} levels of [ ] or {{ }}"
            )));
        }
        // serde_yaml_ng's messages already start with the path of the offending field.
        let spec: Self =
            serde_yaml_ng::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a JSON document.
    pub fn from_json_str(text: &str) -> Result<Self, SpecError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let spec: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                SpecError::Parse(inner.to_string())
            } else {
                SpecError::Parse(format!("{path}: {inner}"))
            }
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses a document that is JSON when it starts with `{`, YAML otherwise.
    pub fn from_str_auto(text: &str) -> Result<Self, SpecError> {
        if text.trim_start().starts_with('{') {
            Self::from_json_str(text)
        } else {
            Self::from_yaml_str(text)
        }
    }

    /// Reads, parses and validates a spec file (YAML or JSON).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_str_auto(&text)
    }

    /// Checks the rules that the types alone do not: ids, uniqueness and ranges.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1e6) {
            return Err(SpecError::invalid(
                "time_scale",
                format!(
                    "must be a positive number up to 1000000, got {}",
                    self.time_scale
                ),
            ));
        }
        if self.latency_ms > 60_000 {
            return Err(SpecError::invalid("latency_ms", "must be at most 60000"));
        }
        if let Some(t) = self.start_time
            && !(MIN_START..=MAX_START).contains(&t.timestamp())
        {
            return Err(SpecError::invalid(
                "start_time",
                format!("must be between 1970-01-01 and 9999-12-31, got {t}"),
            ));
        }
        check_account_id("hub_account", &self.hub_account)?;
        if let Some(aggs) = &self.aggregators {
            for (i, a) in aggs.iter().enumerate() {
                let ok = !a.is_empty()
                    && a.len() <= 256
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    return Err(SpecError::invalid(
                        format!("aggregators[{i}]"),
                        format!("{a:?} is not a valid aggregator name ([\\w-]{{1,256}})"),
                    ));
                }
            }
        }
        let mut ids = HashSet::new();
        for (ai, acc) in self.accounts.iter().enumerate() {
            let at = format!("accounts[{ai}]");
            check_account_id(&format!("{at}.id"), &acc.id)?;
            if !ids.insert(acc.id.as_str()) {
                return Err(SpecError::invalid(
                    format!("{at}.id"),
                    format!("duplicate account id {:?}", acc.id),
                ));
            }
            check_regions(&format!("{at}.regions"), &acc.regions)?;
            if let Some(f) = self.account_faults.get(&acc.id) {
                check_faults(&at, f)?;
            }
            let mut clusters = HashSet::new();
            for (ci, cl) in acc.clusters.iter().enumerate() {
                let ct = format!("{at}.clusters[{ci}]");
                check_name(&format!("{ct}.name"), &cl.name)?;
                let region = match &cl.region {
                    Some(r) if !acc.regions.contains(r) => {
                        return Err(SpecError::invalid(
                            format!("{ct}.region"),
                            format!(
                                "{r:?} is not one of the account's regions {:?}",
                                acc.regions
                            ),
                        ));
                    }
                    Some(r) => r.as_str(),
                    None => acc.regions[0].as_str(),
                };
                if !clusters.insert((region, cl.name.as_str())) {
                    return Err(SpecError::invalid(
                        format!("{ct}.name"),
                        format!("duplicate cluster name {:?} in region {region}", cl.name),
                    ));
                }
                check_tags(&format!("{ct}.tags"), &cl.tags)?;
                let mut services = HashSet::new();
                for (si, sv) in cl.services.iter().enumerate() {
                    let st = format!("{ct}.services[{si}]");
                    check_name(&format!("{st}.name"), &sv.name)?;
                    if !services.insert(sv.name.as_str()) {
                        return Err(SpecError::invalid(
                            format!("{st}.name"),
                            format!(
                                "duplicate service name {:?} in cluster {:?}",
                                sv.name, cl.name
                            ),
                        ));
                    }
                    check_service(&st, sv)?;
                }
            }
        }
        if let Some(g) = &self.generate {
            check_generate(g)?;
        }
        self.check_organization(&ids)?;
        if let Some(id) = self
            .account_faults
            .keys()
            .find(|id| !ids.contains(id.as_str()))
        {
            return Err(SpecError::invalid(
                format!("account_faults.{id}"),
                "no explicit account has this id",
            ));
        }
        let alarms = self.check_alarms(&ids)?;
        self.check_deployment_alarms(&alarms)?;
        self.check_calendars()?;
        Ok(())
    }

    /// The hub's regions when it is one of the explicit accounts (`None`: any region).
    pub fn hub_regions(&self) -> Option<&[String]> {
        self.accounts
            .iter()
            .find(|a| a.id == self.hub_account)
            .map(|a| a.regions.as_slice())
    }

    /// The region of hub alarms and calendars that name none: the hub's first region when it
    /// is an explicit account, else [`DEFAULT_REGION`].
    pub fn hub_default_region(&self) -> &str {
        self.hub_regions()
            .and_then(|r| r.first())
            .map_or(DEFAULT_REGION, String::as_str)
    }

    /// Every alarm list (the accounts', then the hub's): names, regions, timelines. Returns
    /// the `(region, name)` pairs of each account's alarms.
    fn check_alarms(
        &self,
        ids: &HashSet<&str>,
    ) -> Result<HashMap<String, HashSet<(String, String)>>, SpecError> {
        let mut index: HashMap<String, HashSet<(String, String)>> = HashMap::new();
        for (ai, acc) in self.accounts.iter().enumerate() {
            let Some(alarms) = self.account_alarms.get(&acc.id) else {
                continue;
            };
            let default = acc.regions.first().map_or(DEFAULT_REGION, String::as_str);
            let seen = index.entry(acc.id.clone()).or_default();
            let owner = RegionsOf {
                account: &acc.id,
                regions: Some(&acc.regions),
                default,
            };
            check_alarm_list(&format!("accounts[{ai}].alarms"), owner, alarms, seen)?;
        }
        if let Some(id) = self
            .account_alarms
            .keys()
            .find(|id| !ids.contains(id.as_str()))
        {
            return Err(SpecError::invalid(
                format!("account_alarms.{id}"),
                "no explicit account has this id",
            ));
        }
        let owner = RegionsOf {
            account: &self.hub_account,
            regions: self.hub_regions(),
            default: self.hub_default_region(),
        };
        let seen = index.entry(self.hub_account.clone()).or_default();
        check_alarm_list("hub_alarms", owner, &self.hub_alarms, seen)?;
        Ok(index)
    }

    /// Each service's `deployment_alarms` name alarms of its account in its cluster's region,
    /// and only ECS-controlled services have them.
    fn check_deployment_alarms(
        &self,
        alarms: &HashMap<String, HashSet<(String, String)>>,
    ) -> Result<(), SpecError> {
        for (ai, acc) in self.accounts.iter().enumerate() {
            for (ci, cl) in acc.clusters.iter().enumerate() {
                let region = cl
                    .region
                    .as_deref()
                    .or_else(|| acc.regions.first().map(String::as_str))
                    .unwrap_or(DEFAULT_REGION);
                for (si, sv) in cl.services.iter().enumerate() {
                    let st = format!("accounts[{ai}].clusters[{ci}].services[{si}]");
                    if !sv.deployment_alarms.is_empty() && sv.controller != Controller::Ecs {
                        return Err(SpecError::invalid(
                            format!("{st}.deployment_alarms"),
                            "deployment alarms need the ECS deployment controller",
                        ));
                    }
                    for (k, name) in sv.deployment_alarms.iter().enumerate() {
                        let known = alarms
                            .get(&acc.id)
                            .is_some_and(|s| s.contains(&(region.to_owned(), name.clone())));
                        if !known {
                            return Err(SpecError::invalid(
                                format!("{st}.deployment_alarms[{k}]"),
                                format!(
                                    "no alarm {name:?} in account {} region {region} (list it in the account's `alarms`)",
                                    acc.id
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The change calendars: names, regions, events.
    fn check_calendars(&self) -> Result<(), SpecError> {
        let regions = self.hub_regions();
        let default = self.hub_default_region();
        let mut seen = HashSet::new();
        for (i, c) in self.calendars.iter().enumerate() {
            let at = format!("calendars[{i}]");
            check_document_name(&format!("{at}.name"), &c.name)?;
            let region = c.region_or(default);
            check_owned_region(&format!("{at}.region"), c.region.as_deref(), regions)?;
            if !seen.insert((region, c.name.as_str())) {
                return Err(SpecError::invalid(
                    format!("{at}.name"),
                    format!("duplicate calendar name {:?} in region {region}", c.name),
                ));
            }
            for (j, e) in c.events.iter().enumerate() {
                if e.until_minute <= e.from_minute {
                    return Err(SpecError::invalid(
                        format!("{at}.events[{j}].until_minute"),
                        format!(
                            "must be greater than from_minute ({}), got {}",
                            e.from_minute, e.until_minute
                        ),
                    ));
                }
                if e.summary.chars().count() > 255 {
                    return Err(SpecError::invalid(
                        format!("{at}.events[{j}].summary"),
                        "at most 255 characters",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The organization's parts: management and delegated accounts, OU paths, memberships.
    fn check_organization(&self, ids: &HashSet<&str>) -> Result<(), SpecError> {
        let management = match &self.organization {
            Some(org) => {
                let m = org.management_account.as_deref();
                if let Some(m) = m {
                    check_account_id("organization.management_account", m)?;
                }
                for (i, d) in org.delegated_administrators.iter().enumerate() {
                    check_account_id(&format!("organization.delegated_administrators[{i}]"), d)?;
                }
                Some(m.unwrap_or(&self.hub_account))
            }
            None => None,
        };
        for (ai, acc) in self.accounts.iter().enumerate() {
            let Some(m) = self.account_memberships.get(&acc.id) else {
                continue;
            };
            let at = format!("accounts[{ai}]");
            let field = if m.ou.is_empty() { "status" } else { "ou" };
            let Some(management) = management else {
                return Err(SpecError::invalid(
                    format!("{at}.{field}"),
                    "needs `organization` at the top level (the fleet has no organization)",
                ));
            };
            check_ou_path(&format!("{at}.ou"), &m.ou)?;
            if acc.id == management {
                return Err(SpecError::invalid(
                    format!("{at}.{field}"),
                    "the management account is in the root and ACTIVE",
                ));
            }
        }
        if let Some(g) = &self.generate {
            if management.is_none() && (!g.ous.is_empty() || g.suspended_percent != 0.0) {
                let field = if g.ous.is_empty() {
                    "suspended_percent"
                } else {
                    "ous"
                };
                return Err(SpecError::invalid(
                    format!("generate.{field}"),
                    "needs `organization` at the top level (the fleet has no organization)",
                ));
            }
            for (i, path) in g.ous.iter().enumerate() {
                check_ou_path(&format!("generate.ous[{i}]"), path)?;
            }
        }
        if let Some(id) = self
            .account_memberships
            .keys()
            .find(|id| !ids.contains(id.as_str()))
        {
            return Err(SpecError::invalid(
                format!("account_memberships.{id}"),
                "no explicit account has this id",
            ));
        }
        Ok(())
    }

    /// Total number of services the spec describes (explicit plus generated).
    pub fn service_count(&self) -> u64 {
        let explicit: u64 = self
            .accounts
            .iter()
            .flat_map(|a| &a.clusters)
            .map(|c| c.services.len() as u64)
            .sum();
        let generated = self.generate.as_ref().map_or(0, generated_count);
        explicit.saturating_add(generated)
    }
}

/// Deepest `[`/`{` nesting [`FleetSpec::from_yaml_str`] hands to the YAML parser.
const MAX_FLOW_DEPTH: usize = 1000;

/// Whether `text` opens more than `limit` unclosed `[` or `{` at some point, not counting
/// brackets inside quoted scalars or comments (plain scalars may still contain some; the
/// limit is far above any real spec).
fn flow_depth_exceeds(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let mut prev = '\n';
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // '' inside a single-quoted scalar is an escaped quote.
                while let Some(q) = chars.next() {
                    if q == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '#' if prev.is_whitespace() => {
                for q in chars.by_ref() {
                    if q == '\n' {
                        break;
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    false
}

/// `accounts × clusters_per_account × services_per_cluster`, saturating (three u32 factors
/// can overflow a u64).
fn generated_count(g: &GenerateSpec) -> u64 {
    u64::from(g.accounts)
        .saturating_mul(u64::from(g.clusters_per_account))
        .saturating_mul(u64::from(g.services_per_cluster))
}

/// Earliest `start_time` accepted (1970-01-01T00:00:00Z), in seconds since the epoch.
const MIN_START: i64 = 0;
/// Latest `start_time` accepted (9999-12-31T23:59:59Z): simulated times stay far from the
/// limits of chrono and of i64 milliseconds.
const MAX_START: i64 = 253_402_300_799;

/// The deepest OU nesting AWS Organizations allows below the root.
pub const MAX_OU_DEPTH: usize = 5;

/// An OU path: at most [`MAX_OU_DEPTH`] names of 1 to 128 characters, no control characters.
fn check_ou_path(field: &str, path: &[String]) -> Result<(), SpecError> {
    if path.len() > MAX_OU_DEPTH {
        return Err(SpecError::invalid(
            field,
            format!(
                "OUs nest at most {MAX_OU_DEPTH} levels below the root, got {}",
                path.len()
            ),
        ));
    }
    for (i, name) in path.iter().enumerate() {
        let n = name.chars().count();
        if n == 0 || n > 128 || name.chars().any(char::is_control) {
            return Err(SpecError::invalid(
                format!("{field}[{i}]"),
                format!("{name:?} is not an OU name (1 to 128 characters, no control characters)"),
            ));
        }
    }
    Ok(())
}

/// Whose alarms a list holds: the account, its regions (`None`: any region, for a hub that is
/// not one of the explicit accounts) and the region of alarms that name none.
#[derive(Debug, Clone, Copy)]
struct RegionsOf<'a> {
    account: &'a str,
    regions: Option<&'a [String]>,
    default: &'a str,
}

/// Longest `StateReason` CloudWatch keeps.
const MAX_STATE_REASON: usize = 1023;

/// One account's alarms: names, regions, duplicates (recorded in `seen` as `(region, name)`),
/// timelines.
fn check_alarm_list(
    at: &str,
    owner: RegionsOf<'_>,
    alarms: &[AlarmSpec],
    seen: &mut HashSet<(String, String)>,
) -> Result<(), SpecError> {
    for (i, a) in alarms.iter().enumerate() {
        let f = format!("{at}[{i}]");
        let n = a.name.chars().count();
        if n == 0 || n > 255 || a.name.chars().any(char::is_control) {
            return Err(SpecError::invalid(
                format!("{f}.name"),
                format!(
                    "{:?} is not an alarm name (1 to 255 characters, no control characters)",
                    a.name
                ),
            ));
        }
        check_owned_region(&format!("{f}.region"), a.region.as_deref(), owner.regions)?;
        let region = a.region_or(owner.default);
        if !seen.insert((region.to_owned(), a.name.clone())) {
            return Err(SpecError::invalid(
                format!("{f}.name"),
                format!(
                    "duplicate alarm name {:?} in account {} region {region}",
                    a.name, owner.account
                ),
            ));
        }
        let mut prev: Option<&AlarmStateAt> = None;
        for (j, s) in a.states.iter().enumerate() {
            if let Some(p) = prev {
                if s.at_minute <= p.at_minute {
                    return Err(SpecError::invalid(
                        format!("{f}.states[{j}].at_minute"),
                        format!(
                            "times must increase: must be greater than the previous entry's ({}), got {}",
                            p.at_minute, s.at_minute
                        ),
                    ));
                }
                if s.state == p.state {
                    return Err(SpecError::invalid(
                        format!("{f}.states[{j}].state"),
                        format!(
                            "repeats the previous entry's state {} (a timeline lists changes)",
                            s.state.as_str()
                        ),
                    ));
                }
            }
            if s.reason
                .as_ref()
                .is_some_and(|r| r.chars().count() > MAX_STATE_REASON)
            {
                return Err(SpecError::invalid(
                    format!("{f}.states[{j}].reason"),
                    format!("at most {MAX_STATE_REASON} characters"),
                ));
            }
            prev = Some(s);
        }
    }
    Ok(())
}

/// A region an alarm or calendar names: one of the owner's `regions` when they are known,
/// else any well-formed region name.
fn check_owned_region(
    field: &str,
    region: Option<&str>,
    regions: Option<&[String]>,
) -> Result<(), SpecError> {
    let Some(r) = region else { return Ok(()) };
    match regions {
        Some(regions) if !regions.iter().any(|x| x == r) => Err(SpecError::invalid(
            field,
            format!("{r:?} is not one of the account's regions {regions:?}"),
        )),
        Some(_) => Ok(()),
        None if region_name_ok(r) => Ok(()),
        None => Err(SpecError::invalid(
            field,
            format!("{r:?} is not a region name (like eu-west-1)"),
        )),
    }
}

/// An SSM document name: 3 to 128 letters, digits, `_`, `-` and `.`.
fn check_document_name(field: &str, name: &str) -> Result<(), SpecError> {
    let ok = (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!("{name:?} is not a document name (3 to 128 letters, digits, '_', '-', '.')"),
        ))
    }
}

fn check_faults(at: &str, f: &AccountFaults) -> Result<(), SpecError> {
    if !(0.0..=1.0).contains(&f.server_error_rate) {
        return Err(SpecError::invalid(
            format!("{at}.server_error_rate"),
            format!(
                "must be a fraction within 0..=1, got {}",
                f.server_error_rate
            ),
        ));
    }
    Ok(())
}

fn check_account_id(field: &str, id: &str) -> Result<(), SpecError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!("{id:?} is not an account id (exactly 12 digits)"),
        ))
    }
}

fn check_regions(field: &str, regions: &[String]) -> Result<(), SpecError> {
    if regions.is_empty() {
        return Err(SpecError::invalid(field, "at least one region is required"));
    }
    let mut seen = HashSet::new();
    for (i, r) in regions.iter().enumerate() {
        if !region_name_ok(r) {
            return Err(SpecError::invalid(
                format!("{field}[{i}]"),
                format!("{r:?} is not a region name (like eu-west-1)"),
            ));
        }
        if !seen.insert(r) {
            return Err(SpecError::invalid(
                format!("{field}[{i}]"),
                format!("duplicate region {r:?}"),
            ));
        }
    }
    Ok(())
}

/// Whether `r` looks like a region name (`eu-west-1`).
fn region_name_ok(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && r.contains('-')
}

fn check_name(field: &str, name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!("{name:?} is not a valid name (letters, digits, '-' and '_', up to 255)"),
        ))
    }
}

fn check_tags(field: &str, tags: &BTreeMap<String, String>) -> Result<(), SpecError> {
    if tags.len() > 50 {
        return Err(SpecError::invalid(
            field,
            format!("at most 50 tags, got {}", tags.len()),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(SpecError::invalid(
                format!("{field}.{k}"),
                "tag keys have 1 to 128 characters",
            ));
        }
        if v.chars().count() > 256 {
            return Err(SpecError::invalid(
                format!("{field}.{k}"),
                "tag values have at most 256 characters",
            ));
        }
    }
    Ok(())
}

fn check_service(st: &str, sv: &ServiceSpec) -> Result<(), SpecError> {
    if sv.min_healthy_percent > 100 {
        return Err(SpecError::invalid(
            format!("{st}.min_healthy_percent"),
            format!("must be within 0..=100, got {}", sv.min_healthy_percent),
        ));
    }
    if sv.max_percent > 400 || sv.max_percent < sv.min_healthy_percent {
        return Err(SpecError::invalid(
            format!("{st}.max_percent"),
            format!(
                "must be within min_healthy_percent..=400 ({}..=400), got {}",
                sv.min_healthy_percent, sv.max_percent
            ),
        ));
    }
    if sv.desired > 5000 {
        return Err(SpecError::invalid(
            format!("{st}.desired"),
            format!("must be at most 5000, got {}", sv.desired),
        ));
    }
    check_tags(&format!("{st}.tags"), &sv.tags)?;
    check_deploy(&format!("{st}.deploy_seconds"), sv.deploy_seconds)
}

fn check_deploy(field: &str, d: DeploySeconds) -> Result<(), SpecError> {
    let (min, max) = d.bounds();
    if min > max {
        return Err(SpecError::invalid(
            field,
            format!("min {min} is greater than max {max}"),
        ));
    }
    if max > 7 * 24 * 3600 {
        return Err(SpecError::invalid(
            field,
            "must be at most one week (604800 s)",
        ));
    }
    Ok(())
}

fn check_percent(field: &str, p: f64) -> Result<(), SpecError> {
    if (0.0..=100.0).contains(&p) {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!("must be within 0..=100, got {p}"),
        ))
    }
}

fn check_generate(g: &GenerateSpec) -> Result<(), SpecError> {
    if g.accounts > 10_000 {
        return Err(SpecError::invalid(
            "generate.accounts",
            "must be at most 10000",
        ));
    }
    let total = generated_count(g);
    if total > 2_000_000 {
        return Err(SpecError::invalid(
            "generate",
            format!(
                "accounts × clusters_per_account × services_per_cluster must be at most 2000000, got {total}"
            ),
        ));
    }
    check_regions("generate.regions", &g.regions)?;
    if g.tag_key.is_empty() || g.tag_key.chars().count() > 128 {
        return Err(SpecError::invalid(
            "generate.tag_key",
            "tag keys have 1 to 128 characters",
        ));
    }
    check_deploy("generate.deploy_seconds", g.deploy_seconds)?;
    let (dmin, dmax) = g.desired.bounds();
    if dmin > dmax || dmax > 5000 {
        return Err(SpecError::invalid(
            "generate.desired",
            format!("must be [min, max] with min <= max <= 5000, got [{dmin}, {dmax}]"),
        ));
    }
    for (name, p) in [
        ("tagged_percent", g.tagged_percent),
        ("fail_percent", g.fail_percent),
        ("stuck_percent", g.stuck_percent),
        ("vanish_percent", g.vanish_percent),
        ("code_deploy_percent", g.code_deploy_percent),
        ("external_percent", g.external_percent),
        ("daemon_percent", g.daemon_percent),
        ("old_arn_percent", g.old_arn_percent),
        ("owner_percent", g.owner_percent),
        ("cluster_team_percent", g.cluster_team_percent),
        ("exec_percent", g.exec_percent),
        ("suspended_percent", g.suspended_percent),
    ] {
        check_percent(&format!("generate.{name}"), p)?;
    }
    if g.fail_percent + g.stuck_percent + g.vanish_percent > 100.0 {
        return Err(SpecError::invalid(
            "generate.fail_percent",
            "fail_percent + stuck_percent + vanish_percent must be at most 100",
        ));
    }
    if g.code_deploy_percent + g.external_percent > 100.0 {
        return Err(SpecError::invalid(
            "generate.code_deploy_percent",
            "code_deploy_percent + external_percent must be at most 100",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        match FleetSpec::from_yaml_str(yaml) {
            Ok(_) => panic!("spec was accepted: {yaml}"),
            Err(e) => e.to_string(),
        }
    }

    const ONE: &str = r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: payments
        services:
          - name: api
"#;

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec = FleetSpec::from_yaml_str(ONE).expect("valid");
        let sv = &spec.accounts[0].clusters[0].services[0];
        assert_eq!(sv, &ServiceSpec::named("api"));
        assert_eq!(spec.accounts[0].regions, vec!["us-east-1".to_owned()]);
        assert!(spec.throttling);
        assert_eq!(spec.hub_account, DEFAULT_HUB_ACCOUNT);
        assert_eq!(spec.service_count(), 1);
    }

    #[test]
    fn design_example_parses() {
        let spec = FleetSpec::from_yaml_str(
            r#"
seed: 7
time_scale: 120
latency_ms: 0
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    deny_assume_role: false
    clusters:
      - name: payments
        tags: {team: payments}
        services:
          - name: api
            desired: 3
            scheduling: REPLICA
            controller: ECS
            min_healthy_percent: 100
            max_percent: 200
            tags: {ecs_task_daily_restart: "2026-11-21T01:10:00Z", owner: payments}
            deploy_seconds: 420
            on_restart: complete
            old_arn_format: false
generate:
  accounts: 50
  regions: [eu-west-1]
  clusters_per_account: 20
  services_per_cluster: 10
  tagged_percent: 90
  deploy_seconds: [240, 600]
  fail_percent: 1
  stuck_percent: 0.5
"#,
        )
        .expect("valid");
        assert_eq!(spec.service_count(), 10_001);
        let sv = &spec.accounts[0].clusters[0].services[0];
        assert_eq!(sv.deploy_seconds, DeploySeconds::Fixed(420));
        assert_eq!(sv.desired, 3);
        assert_eq!(
            spec.generate.as_ref().map(|g| g.deploy_seconds),
            Some(DeploySeconds::Range(240, 600))
        );
    }

    #[test]
    fn unknown_behaviour_names_the_field() {
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: a
        services:
          - name: x
          - name: y
            on_restart: explode
"#);
        assert!(
            e.starts_with("accounts[0].clusters[0].services[1].on_restart: unknown variant `explode`, expected one of `complete`, `fail`, `stuck`, `vanish`, `reject`, `superseded`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusterz: []
"#);
        assert!(
            e.starts_with("accounts[0]: unknown field `clusterz`"),
            "{e}"
        );
        let e = err("seed: 1\nfoo: 2\n");
        assert!(e.contains("unknown field `foo`"), "{e}");
    }

    #[test]
    fn unknown_scheduling_and_controller_are_refused() {
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: a
        services:
          - name: x
            scheduling: SOMETIMES
"#);
        assert!(
            e.starts_with(
                "accounts[0].clusters[0].services[0].scheduling: unknown variant `SOMETIMES`"
            ),
            "{e}"
        );
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: a
        services:
          - name: x
            controller: JENKINS
"#);
        assert!(
            e.starts_with(
                "accounts[0].clusters[0].services[0].controller: unknown variant `JENKINS`"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_account_ids_are_refused() {
        assert_eq!(
            err("accounts: [{id: \"12345\"}]"),
            "accounts[0].id: \"12345\" is not an account id (exactly 12 digits)"
        );
        assert_eq!(
            err("accounts: [{id: \"11111111111a\"}]"),
            "accounts[0].id: \"11111111111a\" is not an account id (exactly 12 digits)"
        );
        assert!(err("hub_account: \"1\"").starts_with("hub_account:"));
    }

    #[test]
    fn duplicates_are_refused() {
        assert_eq!(
            err("accounts: [{id: \"111111111111\"}, {id: \"111111111111\"}]"),
            "accounts[1].id: duplicate account id \"111111111111\""
        );
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters: [{name: a}, {name: a}]
"#);
        assert_eq!(
            e,
            "accounts[0].clusters[1].name: duplicate cluster name \"a\" in region us-east-1"
        );
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: a
        services: [{name: x}, {name: y}, {name: x}]
"#);
        assert_eq!(
            e,
            "accounts[0].clusters[0].services[2].name: duplicate service name \"x\" in cluster \"a\""
        );
    }

    #[test]
    fn same_cluster_name_in_two_regions_is_fine() {
        FleetSpec::from_yaml_str(
            r#"
accounts:
  - id: "111111111111"
    regions: [eu-west-1, us-east-1]
    clusters: [{name: a}, {name: a, region: us-east-1}]
"#,
        )
        .expect("valid");
        let e = err(r#"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters: [{name: a, region: us-west-2}]
"#);
        assert!(e.starts_with("accounts[0].clusters[0].region:"), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: a
        services: [{name: x, deploy_seconds: [600, 240]}]
"#);
        assert_eq!(
            e,
            "accounts[0].clusters[0].services[0].deploy_seconds: min 600 is greater than max 240"
        );
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: a
        services: [{name: x, min_healthy_percent: 150}]
"#);
        assert_eq!(
            e,
            "accounts[0].clusters[0].services[0].min_healthy_percent: must be within 0..=100, got 150"
        );
        assert_eq!(
            err("generate: {tagged_percent: 101}"),
            "generate.tagged_percent: must be within 0..=100, got 101"
        );
        assert_eq!(
            err("generate: {fail_percent: -1}"),
            "generate.fail_percent: must be within 0..=100, got -1"
        );
        assert!(err("time_scale: 0").starts_with("time_scale:"));
        let e = err(r#"
accounts:
  - id: "111111111111"
    clusters:
      - name: a
        services: [{name: x, deploy_seconds: [1, 2, 3]}]
"#);
        assert!(
            e.starts_with("accounts[0].clusters[0].services[0].deploy_seconds: invalid length 3"),
            "{e}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_the_yaml_parser() {
        assert!(flow_depth_exceeds(&"[".repeat(1001), 1000));
        assert!(!flow_depth_exceeds(&"[]".repeat(5000), 1000));
        let quoted = format!(
            "a: \"{}\"\nb: '{}'\n# {}\n",
            "[".repeat(2000),
            "{".repeat(2000),
            "[".repeat(2000)
        );
        assert!(!flow_depth_exceeds(&quoted, 1000));
        assert!(!flow_depth_exceeds("a: 'it''s [' # [[[\nb: \"\\\" {\"", 0));
        let e = err(&"[".repeat(100_000));
        assert!(e.contains("nests more than 1000 levels"), "{e}");
    }

    #[test]
    fn account_faults_are_read_validated_and_written_back() {
        let spec = FleetSpec::from_yaml_str(
            r#"
accounts:
  - id: "111111111111"
    deny_ecs_after_restarts: 0
    server_error_rate: 0.25
  - id: "222222222222"
"#,
        )
        .expect("valid");
        assert_eq!(
            spec.account_faults.get("111111111111"),
            Some(&AccountFaults {
                deny_ecs_after_restarts: Some(0),
                server_error_rate: 0.25
            })
        );
        assert!(!spec.account_faults.contains_key("222222222222"));
        let json = serde_json::to_string(&spec).expect("serializes");
        assert!(
            json.contains(r#""deny_ecs_after_restarts":0,"server_error_rate":0.25"#),
            "{json}"
        );
        assert_eq!(FleetSpec::from_json_str(&json).expect("round trip"), spec);
        assert_eq!(
            err("accounts: [{id: \"111111111111\", server_error_rate: 1.5}]"),
            "accounts[0].server_error_rate: must be a fraction within 0..=1, got 1.5"
        );
        assert_eq!(
            err("accounts: [{id: \"1\"}, {id: \"111111111111\", server_error_rate: .nan}]"),
            "accounts[0].id: \"1\" is not an account id (exactly 12 digits)"
        );
        assert_eq!(
            err("accounts: [{id: \"111111111111\", server_error_rate: .nan}]"),
            "accounts[0].server_error_rate: must be a fraction within 0..=1, got NaN"
        );
        let e = err("accounts: [{id: \"111111111111\", deny_ecs_after_restarts: -3}]");
        assert!(
            e.starts_with(
                "accounts[0].deny_ecs_after_restarts: invalid type: integer `-3`, expected u64"
            ),
            "{e}"
        );
        let e = err("accounts: [{id: \"111111111111\", deny_ecs_after_restarts: 2.5}]");
        assert!(
            e.starts_with("accounts[0].deny_ecs_after_restarts: invalid type"),
            "{e}"
        );
        // Built in code: faults of an account that is not there.
        let mut spec = FleetSpec::default();
        spec.account_faults
            .insert("999999999999".into(), AccountFaults::default());
        assert_eq!(
            spec.validate().map_err(|e| e.to_string()),
            Err("account_faults.999999999999: no explicit account has this id".to_owned())
        );
    }

    #[test]
    fn start_time_and_generated_totals_are_bounded() {
        assert!(
            err("start_time: \"1969-12-31T23:59:59Z\"").starts_with("start_time: must be between")
        );
        FleetSpec::from_yaml_str("start_time: \"9999-12-31T23:59:59Z\"").expect("latest");
        let e = err(
            "generate: {accounts: 10000, clusters_per_account: 4294967295, services_per_cluster: 4294967295}",
        );
        assert!(
            e.starts_with("generate: accounts × clusters_per_account"),
            "{e}"
        );
    }

    #[test]
    fn the_organization_is_read_validated_and_written_back() {
        let spec = FleetSpec::from_yaml_str(
            r#"
organization: {management_account: "999999999999", delegated_administrators: ["111111111111"]}
accounts:
  - {id: "999999999999"}
  - {id: "111111111111", ou: [Workloads, Prod], status: SUSPENDED}
  - {id: "222222222222"}
generate: {accounts: 3, ous: [[Sandbox], []], suspended_percent: 50}
"#,
        )
        .expect("valid");
        assert_eq!(
            spec.account_memberships.get("111111111111"),
            Some(&Membership {
                ou: vec!["Workloads".into(), "Prod".into()],
                status: MemberStatus::Suspended
            })
        );
        assert!(!spec.account_memberships.contains_key("222222222222"));
        let json = serde_json::to_string(&spec).expect("serializes");
        assert_eq!(FleetSpec::from_json_str(&json).expect("round trip"), spec);
        // A fleet without an organization writes none of it.
        let plain = serde_json::to_string(&FleetSpec::from_yaml_str(ONE).unwrap()).unwrap();
        assert!(
            !plain.contains("organization") && !plain.contains("\"ou\""),
            "{plain}"
        );

        for (yaml, message) in [
            (
                "accounts: [{id: \"111111111111\", ou: [A]}]",
                "accounts[0].ou: needs `organization` at the top level (the fleet has no organization)",
            ),
            (
                "accounts: [{id: \"111111111111\", status: SUSPENDED}]",
                "accounts[0].status: needs `organization` at the top level (the fleet has no organization)",
            ),
            (
                "generate: {suspended_percent: 5}",
                "generate.suspended_percent: needs `organization` at the top level (the fleet has no organization)",
            ),
            (
                "organization: {}\ngenerate: {suspended_percent: 101}",
                "generate.suspended_percent: must be within 0..=100, got 101",
            ),
            (
                "organization: {}\naccounts: [{id: \"111111111111\", ou: [a, b, c, d, e, f]}]",
                "accounts[0].ou: OUs nest at most 5 levels below the root, got 6",
            ),
            (
                "organization: {}\naccounts: [{id: \"111111111111\", ou: [a, \"\"]}]",
                "accounts[0].ou[1]: \"\" is not an OU name (1 to 128 characters, no control characters)",
            ),
            (
                "organization: {management_account: \"111111111111\"}\naccounts: [{id: \"111111111111\", ou: [a]}]",
                "accounts[0].ou: the management account is in the root and ACTIVE",
            ),
            (
                "organization: {management_account: \"1\"}",
                "organization.management_account: \"1\" is not an account id (exactly 12 digits)",
            ),
        ] {
            assert_eq!(err(yaml), message, "{yaml}");
        }
        assert!(
            err("organization: {}\naccounts: [{id: \"111111111111\", status: GONE}]")
                .starts_with("accounts[0].status: unknown variant `GONE`")
        );
    }

    #[test]
    fn json_is_accepted_with_paths_too() {
        let spec = FleetSpec::from_str_auto(
            r#"{"accounts":[{"id":"111111111111","clusters":[{"name":"a"}]}]}"#,
        )
        .expect("valid json");
        assert_eq!(spec.accounts[0].clusters[0].name, "a");
        let e = FleetSpec::from_str_auto(
            r#"{"accounts":[{"id":"111111111111","deny_assume_role":"yes"}]}"#,
        )
        .expect_err("bad type");
        assert!(
            e.to_string()
                .starts_with("accounts[0].deny_assume_role: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn generated_names_are_realistic_unless_the_spec_asks_for_short_ones() {
        let names = |yaml: &str| FleetSpec::from_yaml_str(yaml).map(|s| s.generate.unwrap().names);
        assert_eq!(
            names("generate: {accounts: 1}\n").unwrap(),
            GeneratedNames::Realistic
        );
        assert_eq!(
            names("generate: {names: short}\n").unwrap(),
            GeneratedNames::Short
        );
        assert!(names("generate: {names: long}\n").is_err());
    }
}
