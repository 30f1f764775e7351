//! Typed configuration (docs/design.md 3.9), parsed once at cold start.
//!
//! [`Config::from_vars`] takes the variables as pairs, so that this crate never reads the
//! environment itself: each `main` passes `std::env::vars()`. Every problem is collected and
//! reported at once. An empty value counts as unset, so templates may pass empty parameters.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{NaiveTime, TimeDelta};
use serde::Serialize;

use crate::eligibility::{Policy, RiskPolicy, UntaggedPolicy};
use crate::ids::{AccountId, valid_region};
use crate::owner::OwnerResolver;
use crate::tag::DEFAULT_TAG_KEY;
use crate::window::{RestartWindow, parse_time_of_day, parse_timezone};

/// Where the list of member accounts comes from (`ACCOUNTS` or `ACCOUNTS_SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountsSource {
    /// `ACCOUNTS=111111111111,222222222222`
    List(Vec<AccountId>),
    /// `ACCOUNTS_SOURCE=config-aggregator`: every account the AWS Config aggregator
    /// (`AGGREGATOR_NAME`) knows.
    ConfigAggregator,
    /// `ACCOUNTS_SOURCE=organizations`: the ACTIVE accounts of AWS Organizations under
    /// `parents` (`ORGANIZATION_UNITS`: OUs, searched with their child OUs, or a root), or of
    /// the whole organization when `parents` is empty; listed as `role`
    /// (`ORGANIZATIONS_ROLE_ARN`, a role of the management account) when set, else with the
    /// hub's own credentials (the hub is the management account or a delegated administrator).
    Organizations {
        parents: Vec<OrgParent>,
        role: Option<RoleArn>,
    },
}

/// A parent in AWS Organizations that `ORGANIZATION_UNITS` may name: an organizational unit
/// (`ou-` + 4 to 32 lowercase letters or digits + `-` + 8 to 32 more) or a root (`r-` + 4 to
/// 32 lowercase letters or digits), as the Organizations API's `ParentId` pattern has them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgParent(String);

impl OrgParent {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a root (`r-...`) rather than an OU.
    pub fn is_root(&self) -> bool {
        self.0.starts_with("r-")
    }
}

impl fmt::Display for OrgParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `s` is 4 to 32 (`min` to 32) lowercase ASCII letters or digits.
fn org_id_part(s: &str, min: usize) -> bool {
    (min..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl std::str::FromStr for OrgParent {
    type Err = String;

    /// An OU or root id; the error names the item.
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = if let Some(rest) = s.strip_prefix("ou-") {
            rest.split_once('-')
                .is_some_and(|(root, ou)| org_id_part(root, 4) && org_id_part(ou, 8))
        } else if let Some(rest) = s.strip_prefix("r-") {
            org_id_part(rest, 4)
        } else {
            false
        };
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an organizational unit id (ou-, 4 to 32 lowercase letters or \
                 digits, -, 8 to 32 more, e.g. ou-ab12-cd34ef56) or a root id (r-, 4 to 32 \
                 lowercase letters or digits, e.g. r-ab12)"
            ))
        }
    }
}

/// An IAM role's ARN, `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`
/// (`ORGANIZATIONS_ROLE_ARN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    pub partition: String,
    pub account: AccountId,
    /// The role's name after its path, if any (`path/name`): what follows `role/`.
    pub name: String,
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:role/{}",
            self.partition, self.account, self.name
        )
    }
}

impl std::str::FromStr for RoleArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)");
        let [arn, partition, "iam", "", account, resource] =
            s.splitn(6, ':').collect::<Vec<_>>()[..]
        else {
            return Err(bad());
        };
        let name = resource.strip_prefix("role/").ok_or_else(bad)?;
        // IAM: names of 1 to 64 characters of [\w+=,.@-], paths of the same characters.
        let segment_ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
        };
        let role_name = name.rsplit('/').next().unwrap_or_default();
        if arn != "arn"
            || !partition.starts_with("aws")
            || !partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
            || s.len() > 2048
            || role_name.len() > 64
            || !name.split('/').all(segment_ok)
        {
            return Err(bad());
        }
        let account = account
            .parse::<AccountId>()
            .map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Self {
            partition: partition.to_owned(),
            account,
            name: name.to_owned(),
        })
    }
}

/// How services are discovered (`INVENTORY_SOURCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InventorySource {
    /// ListClusters, DescribeClusters, ListServices, DescribeServices in each account.
    Ecs,
    /// The AWS Config aggregator (`AGGREGATOR_NAME`).
    Config,
}

/// Calls per second per account and region, below the documented ECS limits (docs/design.md 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pacing {
    pub update_service_per_sec: f64,
    pub tag_resource_per_sec: f64,
    pub describe_per_sec: f64,
}

/// The whole configuration of every function.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub table_name: String,
    pub accounts: AccountsSource,
    pub inventory_source: InventorySource,
    /// `AGGREGATOR_NAME`: required by either Config-based source.
    pub aggregator_name: Option<String>,
    pub regions: Vec<String>,
    pub member_role_name: String,
    pub external_id: Option<String>,
    pub window: RestartWindow,
    pub batch_interval: TimeDelta,
    pub tag_key: String,
    pub owner_tag_keys: Vec<String>,
    pub account_owners: BTreeMap<AccountId, String>,
    pub policy: Policy,
    /// `SKIP_IF_DEPLOYED_WITHIN_HOURS` (zero: off): a service whose PRIMARY deployment of the
    /// owners completed within it before the live check is skipped `recently_deployed`
    /// ([`crate::eligibility::recent_deployment`]).
    pub skip_if_deployed_within: TimeDelta,
    /// `CHANGE_CALENDAR`: the SSM Change Calendar (a name, or an ARN for a calendar shared from
    /// another account) whose CLOSED state is a change freeze ([`crate::guard`]).
    pub change_calendar: Option<String>,
    /// `BLOCKING_ALARM_PREFIX`: CloudWatch alarms whose names start with it hold restarts while
    /// they are in ALARM ([`crate::guard`]).
    pub blocking_alarm_prefix: Option<String>,
    /// `BLOCK_ON_SERVICE_ALARMS`: a service one of whose own deployment alarms is in ALARM is
    /// skipped `alarm_firing` at its live check, and its owner told.
    pub block_on_service_alarms: bool,
    pub notice_cooldown_days: u32,
    pub failure_threshold_percent: u32,
    pub restart_timeout: TimeDelta,
    /// `POLL_INTERVAL_SECONDS`: how long the state machine waits between two polls of a batch.
    pub poll_interval: TimeDelta,
    pub max_inflight_per_cluster: u32,
    pub account_concurrency: u32,
    pub pacing: Pacing,
    pub record_ttl_days: u32,
    pub owner_topic_arn: Option<String>,
    pub ops_topic_arn: Option<String>,
    pub dry_run: bool,
}

/// One variable's problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub var: &'static str,
    pub message: String,
}

/// Every problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.var, p.message)?;
        }
        Ok(())
    }
}

/// The lowest pacing rate accepted, in calls per second.
pub const MIN_RATE: f64 = 0.01;

/// Reads variables, remembering every problem.
struct Vars {
    vars: HashMap<String, String>,
    problems: Vec<ConfigProblem>,
}

impl Vars {
    fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, var: &'static str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            var,
            message: message.into(),
        });
    }

    fn required(&mut self, var: &'static str, what: &str) -> Option<String> {
        let v = self.get(var).map(str::to_owned);
        if v.is_none() {
            self.problem(var, format!("required: {what}"));
        }
        v
    }

    /// A value parsed by `parse`, or `default` when unset.
    fn parsed<T>(
        &mut self,
        var: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.get(var).map(parse) {
            None => default,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.problem(var, e);
                default
            }
        }
    }

    fn number(&mut self, var: &'static str, default: u32, min: u32, max: u32) -> u32 {
        self.parsed(var, default, |v| match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("{v:?} is not a whole number from {min} to {max}")),
        })
    }

    fn rate(&mut self, var: &'static str, default: f64, documented_limit: f64) -> f64 {
        self.parsed(var, default, |v| match v.parse::<f64>() {
            // At least MIN_RATE: a rate such as 1e-300 would make a pause longer than any
            // `Duration` (and a Lambda function wait forever).
            Ok(r) if (MIN_RATE..documented_limit).contains(&r) => Ok(r),
            _ => Err(format!(
                "{v:?} must be a number of calls per second from {MIN_RATE} to below the \
                 documented ECS limit of {documented_limit}"
            )),
        })
    }

    fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn choice<T: Copy>(&mut self, var: &'static str, default: T, options: &[(&str, T)]) -> T {
        self.parsed(var, default, |v| {
            options
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(v))
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                    format!("{v:?} is not one of {}", names.join(", "))
                })
        })
    }

    fn topic(&mut self, var: &'static str) -> Option<String> {
        let v = self.get(var)?.to_owned();
        let parts: Vec<&str> = v.split(':').collect();
        if let ["arn", partition, "sns", region, account, name] = parts.as_slice()
            && partition.starts_with("aws")
            && valid_region(region)
            && account.parse::<AccountId>().is_ok()
            && valid_topic_name(name)
        {
            Some(v)
        } else {
            self.problem(
                var,
                format!("{v:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
            );
            None
        }
    }
}

/// An SNS topic name: 1-256 letters, digits, hyphens and underscores, and `.fifo` at the end
/// of a FIFO topic's.
fn valid_topic_name(name: &str) -> bool {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    !base.is_empty()
        && name.len() <= 256
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The parents of `ORGANIZATION_UNITS`, each checked; every bad or repeated item is a problem
/// that names it.
fn parent_list(var: &'static str, items: &[String], vars: &mut Vars) -> Vec<OrgParent> {
    let mut out = Vec::new();
    for item in items {
        match item.parse::<OrgParent>() {
            Ok(p) if !out.contains(&p) => out.push(p),
            Ok(p) => vars.problem(var, format!("{:?} is listed twice", p.as_str())),
            Err(e) => vars.problem(var, e),
        }
    }
    out
}

fn account_list(var: &'static str, items: &[String], vars: &mut Vars) -> Vec<AccountId> {
    let mut out = Vec::new();
    for item in items {
        match item.parse::<AccountId>() {
            Ok(a) if !out.contains(&a) => out.push(a),
            Ok(a) => vars.problem(var, format!("account {a} is listed twice")),
            Err(e) => vars.problem(var, e.to_string()),
        }
    }
    out
}

/// The longest batch interval, in minutes (12 hours).
pub const MAX_BATCH_INTERVAL_MINUTES: u32 = 720;

/// The variable that allows sub-minute batch intervals, in the local stack only.
pub const LOCAL_BATCH_INTERVAL_VAR: &str = "LOCAL_BATCH_INTERVAL_SECONDS";

/// The time between batch starts: `BATCH_INTERVAL_MINUTES` (whole minutes, 1 to 720), or, in
/// the local stack only, `LOCAL_BATCH_INTERVAL_SECONDS` (whole seconds, 1 to 43,200), which
/// lets `restart-local` spread a compressed night over batches less than a minute apart.
///
/// The local variable is refused where AWS Lambda runs the function (`AWS_LAMBDA_FUNCTION_NAME`
/// is set there, always) and together with `BATCH_INTERVAL_MINUTES`: a production configuration
/// keeps minute granularity whatever else it sets.
fn batch_interval(v: &mut Vars) -> TimeDelta {
    let minutes = v.parsed("BATCH_INTERVAL_MINUTES", 10, |s| match s.parse::<u32>() {
        Ok(n) if (1..=MAX_BATCH_INTERVAL_MINUTES).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a whole number of minutes from 1 to {MAX_BATCH_INTERVAL_MINUTES} \
             (batches are at least one minute apart; shorter intervals exist only in the \
             local stack, restart-local)"
        )),
    });
    let default = TimeDelta::minutes(minutes.into());
    if v.get(LOCAL_BATCH_INTERVAL_VAR).is_none() {
        return default;
    }
    if let Some(function) = v.get("AWS_LAMBDA_FUNCTION_NAME") {
        let function = function.to_owned();
        v.problem(
            "LOCAL_BATCH_INTERVAL_SECONDS",
            format!(
                "is for the local stack (restart-local) only, and this is the Lambda function \
                 {function:?}: unset it and give BATCH_INTERVAL_MINUTES (whole minutes, 1 to \
                 {MAX_BATCH_INTERVAL_MINUTES})"
            ),
        );
        return default;
    }
    if v.get("BATCH_INTERVAL_MINUTES").is_some() {
        v.problem(
            "LOCAL_BATCH_INTERVAL_SECONDS",
            "is set together with BATCH_INTERVAL_MINUTES: give one of them (the local stack \
             sets LOCAL_BATCH_INTERVAL_SECONDS alone)",
        );
        return default;
    }
    let max = MAX_BATCH_INTERVAL_MINUTES * 60;
    let seconds = v.number("LOCAL_BATCH_INTERVAL_SECONDS", 600, 1, max);
    TimeDelta::seconds(seconds.into())
}

impl Config {
    /// Parses the configuration from variables (`std::env::vars()` in each `main`).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut v = Vars {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
        };

        let table_name = v.required("TABLE_NAME", "the DynamoDB table's name");
        let accounts_source = v.choice(
            "ACCOUNTS_SOURCE",
            "list",
            &[
                ("list", "list"),
                ("config-aggregator", "config-aggregator"),
                ("organizations", "organizations"),
            ],
        );
        let aggregator = v.get("AGGREGATOR_NAME").map(str::to_owned);
        let account_items = v.list("ACCOUNTS");
        let unit_items = v.list("ORGANIZATION_UNITS");
        if accounts_source != "organizations" {
            for var in ["ORGANIZATION_UNITS", "ORGANIZATIONS_ROLE_ARN"] {
                if v.get(var).is_some() {
                    v.problem(var, "is read only with ACCOUNTS_SOURCE=organizations");
                }
            }
        }
        let accounts = if accounts_source == "organizations" {
            AccountsSource::Organizations {
                parents: parent_list("ORGANIZATION_UNITS", &unit_items, &mut v),
                role: v.parsed("ORGANIZATIONS_ROLE_ARN", None, |s| {
                    s.parse::<RoleArn>().map(Some)
                }),
            }
        } else if accounts_source == "config-aggregator" {
            if aggregator.is_none() {
                v.problem(
                    "AGGREGATOR_NAME",
                    "required when ACCOUNTS_SOURCE=config-aggregator",
                );
            }
            AccountsSource::ConfigAggregator
        } else {
            if account_items.is_empty() {
                v.problem(
                    "ACCOUNTS",
                    "required: member account ids, comma separated (or set \
                     ACCOUNTS_SOURCE=organizations, or ACCOUNTS_SOURCE=config-aggregator with \
                     AGGREGATOR_NAME)",
                );
            }
            AccountsSource::List(account_list("ACCOUNTS", &account_items, &mut v))
        };
        let inventory_source = v.choice(
            "INVENTORY_SOURCE",
            InventorySource::Ecs,
            &[
                ("ecs", InventorySource::Ecs),
                ("config", InventorySource::Config),
            ],
        );
        if inventory_source == InventorySource::Config
            && aggregator.is_none()
            && accounts_source != "config-aggregator"
        {
            v.problem("AGGREGATOR_NAME", "required when INVENTORY_SOURCE=config");
        }

        let regions = v.list("REGIONS");
        if regions.is_empty() {
            v.problem(
                "REGIONS",
                "required: regions, comma separated, e.g. eu-west-1",
            );
        }
        for r in &regions {
            if !valid_region(r) {
                v.problem(
                    "REGIONS",
                    format!("{r:?} is not a region such as eu-west-1"),
                );
            }
        }
        let member_role_name =
            v.required("MEMBER_ROLE_NAME", "the role's name in each member account");
        let external_id = v.get("EXTERNAL_ID").map(str::to_owned);

        let before = v.problems.len();
        let time = |s: &str| parse_time_of_day(s).map_err(|e| e.to_string());
        let start = v.parsed("WINDOW_START", NaiveTime::MIN, time);
        let end = v.parsed("WINDOW_END", NaiveTime::MIN + TimeDelta::hours(6), time);
        let tz = v.parsed("TIMEZONE", chrono_tz::UTC, |s| {
            parse_timezone(s).map_err(|e| e.to_string())
        });
        let window = match RestartWindow::new(start, end, tz) {
            Ok(w) => Some(w),
            Err(e) => {
                if v.problems.len() == before {
                    v.problem("WINDOW_END", e.to_string());
                }
                None
            }
        };

        let batch_interval = batch_interval(&mut v);
        let tag_key = v.get("TAG_KEY").unwrap_or(DEFAULT_TAG_KEY).to_owned();
        // 128 characters, as AWS counts them (Unicode characters, not bytes).
        if tag_key.chars().count() > 128 || tag_key.starts_with("aws:") {
            v.problem(
                "TAG_KEY",
                format!("{tag_key:?} is not a usable tag key (at most 128 characters, not aws:)"),
            );
        }
        let mut owner_tag_keys = v.list("OWNER_TAG_KEYS");
        if owner_tag_keys.is_empty() {
            owner_tag_keys = vec!["owner".into(), "team".into()];
        }
        let mut account_owners = BTreeMap::new();
        for item in v.list("ACCOUNT_OWNERS") {
            match item.split_once('=') {
                Some((id, owner)) if !owner.trim().is_empty() => match id.trim().parse() {
                    Ok(id) => {
                        account_owners.insert(id, owner.trim().to_owned());
                    }
                    Err(e) => v.problem("ACCOUNT_OWNERS", format!("{item:?}: {e}")),
                },
                _ => v.problem(
                    "ACCOUNT_OWNERS",
                    format!("{item:?} is not ACCOUNT_ID=OWNER"),
                ),
            }
        }
        let policy = Policy {
            untagged: v.choice(
                "UNTAGGED_POLICY",
                UntaggedPolicy::Notify,
                &[
                    ("notify", UntaggedPolicy::Notify),
                    ("restart", UntaggedPolicy::Restart),
                ],
            ),
            risk: v.choice(
                "RISK_POLICY",
                RiskPolicy::Skip,
                &[("skip", RiskPolicy::Skip), ("restart", RiskPolicy::Restart)],
            ),
        };
        let skip_if_deployed_within = v.number("SKIP_IF_DEPLOYED_WITHIN_HOURS", 12, 0, 168);
        let change_calendar = v.get("CHANGE_CALENDAR").map(str::to_owned);
        if let Some(c) = &change_calendar
            && let Err(e) = check_calendar(c)
        {
            v.problem("CHANGE_CALENDAR", e);
        }
        let blocking_alarm_prefix = v.get("BLOCKING_ALARM_PREFIX").map(str::to_owned);
        if let Some(p) = &blocking_alarm_prefix
            && (p.chars().count() > 255 || p.chars().any(char::is_control))
        {
            v.problem(
                "BLOCKING_ALARM_PREFIX",
                format!(
                    "{p:?} is not an alarm name prefix (1 to 255 characters, no control characters)"
                ),
            );
        }
        let notice_cooldown_days = v.number("NOTICE_COOLDOWN_DAYS", 7, 0, 365);
        let failure_threshold_percent = v.number("FAILURE_THRESHOLD_PERCENT", 10, 0, 100);
        let restart_timeout = v.number("RESTART_TIMEOUT_MINUTES", 30, 1, 720);
        let poll_interval = v.number("POLL_INTERVAL_SECONDS", 60, 1, 3600);
        let max_inflight_per_cluster = v.number("MAX_INFLIGHT_PER_CLUSTER", 10, 1, 10_000);
        let account_concurrency = v.number("ACCOUNT_CONCURRENCY", 256, 1, 256);
        let pacing = Pacing {
            update_service_per_sec: v.rate("UPDATE_SERVICE_RATE", 4.0, 5.0),
            tag_resource_per_sec: v.rate("TAG_RESOURCE_RATE", 8.0, 10.0),
            describe_per_sec: v.rate("DESCRIBE_RATE", 15.0, 20.0),
        };
        let record_ttl_days = v.number("RECORD_TTL_DAYS", 90, 1, 3650);
        let owner_topic_arn = v.topic("OWNER_TOPIC_ARN");
        let ops_topic_arn = v.topic("OPS_TOPIC_ARN");
        let block_on_service_alarms = v.choice(
            "BLOCK_ON_SERVICE_ALARMS",
            false,
            &[("true", true), ("false", false)],
        );
        let dry_run = v.choice(
            "DRY_RUN",
            false,
            &[
                ("true", true),
                ("false", false),
                ("1", true),
                ("0", false),
                ("yes", true),
                ("no", false),
            ],
        );

        // A missing required value is always recorded as a problem, so the `else` only ever
        // sees problems; it never panics either way.
        let (Some(table_name), Some(member_role_name), Some(window), true) =
            (table_name, member_role_name, window, v.problems.is_empty())
        else {
            return Err(ConfigError {
                problems: v.problems,
            });
        };
        Ok(Self {
            table_name,
            accounts,
            inventory_source,
            aggregator_name: aggregator,
            regions,
            member_role_name,
            external_id,
            window,
            batch_interval,
            tag_key,
            owner_tag_keys,
            account_owners,
            policy,
            skip_if_deployed_within: TimeDelta::hours(skip_if_deployed_within.into()),
            change_calendar,
            blocking_alarm_prefix,
            block_on_service_alarms,
            notice_cooldown_days,
            failure_threshold_percent,
            restart_timeout: TimeDelta::minutes(restart_timeout.into()),
            poll_interval: TimeDelta::seconds(poll_interval.into()),
            max_inflight_per_cluster,
            account_concurrency,
            pacing,
            record_ttl_days,
            owner_topic_arn,
            ops_topic_arn,
            dry_run,
        })
    }

    /// The owner resolver this configuration describes.
    pub fn owners(&self) -> OwnerResolver {
        OwnerResolver::new(self.owner_tag_keys.clone(), self.account_owners.clone())
    }

    /// The configured aggregator, when one is named.
    pub fn aggregator(&self) -> Option<&str> {
        self.aggregator_name.as_deref()
    }
}

/// Whether `calendar` can name an SSM Change Calendar: a document name (3 to 128 of
/// `a-z A-Z 0-9 _ - .`), or a document ARN `arn:PARTITION:ssm:REGION:ACCOUNT:document/NAME`.
fn check_calendar(calendar: &str) -> Result<(), String> {
    let name_ok = |n: &str| {
        (3..=128).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    let ok = match calendar.strip_prefix("arn:") {
        None => name_ok(calendar),
        Some(rest) => match rest.split(':').collect::<Vec<_>>().as_slice() {
            [partition, "ssm", region, account, resource] => {
                partition.starts_with("aws")
                    && valid_region(region)
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && resource.strip_prefix("document/").is_some_and(name_ok)
            }
            _ => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{calendar:?} is not a change calendar: a document name (3 to 128 letters, digits,              _ - .) or arn:aws:ssm:REGION:ACCOUNT:document/NAME"
        ))
    }
}

/// Every variable [`Config::from_vars`] reads (docs/design.md 3.9).
pub const VARIABLES: [&str; 37] = [
    "TABLE_NAME",
    "ACCOUNTS_SOURCE",
    "AGGREGATOR_NAME",
    "ACCOUNTS",
    "ORGANIZATION_UNITS",
    "ORGANIZATIONS_ROLE_ARN",
    "INVENTORY_SOURCE",
    "REGIONS",
    "MEMBER_ROLE_NAME",
    "EXTERNAL_ID",
    "WINDOW_START",
    "WINDOW_END",
    "TIMEZONE",
    "BATCH_INTERVAL_MINUTES",
    "LOCAL_BATCH_INTERVAL_SECONDS",
    "TAG_KEY",
    "OWNER_TAG_KEYS",
    "ACCOUNT_OWNERS",
    "UNTAGGED_POLICY",
    "RISK_POLICY",
    "SKIP_IF_DEPLOYED_WITHIN_HOURS",
    "CHANGE_CALENDAR",
    "BLOCKING_ALARM_PREFIX",
    "BLOCK_ON_SERVICE_ALARMS",
    "NOTICE_COOLDOWN_DAYS",
    "FAILURE_THRESHOLD_PERCENT",
    "RESTART_TIMEOUT_MINUTES",
    "POLL_INTERVAL_SECONDS",
    "MAX_INFLIGHT_PER_CLUSTER",
    "ACCOUNT_CONCURRENCY",
    "UPDATE_SERVICE_RATE",
    "TAG_RESOURCE_RATE",
    "DESCRIBE_RATE",
    "RECORD_TTL_DAYS",
    "OWNER_TOPIC_ARN",
    "OPS_TOPIC_ARN",
    "DRY_RUN",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A value for any variable: anything at all, or something close to a real value.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "\\PC*",
            prop::collection::vec(any::<u8>(), 0..24)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            "[0-9]{1,5}",
            "[-+]?[0-9]{0,3}(\\.[0-9]{0,3})?(e-?[0-9]{1,3})?",
            prop::sample::select(vec![
                "NaN",
                "inf",
                "-inf",
                "-0",
                "1e-300",
                "4.9999",
                "0.01",
                "true",
                "Yes",
                "config-aggregator",
                "organizations",
                "config",
                "restart",
                "Europe/Madrid",
                "UTC",
                "DRY_RUN",
                " ",
                ",",
                "=",
                "aws:x",
                "eu-west-1",
                "eu--1",
                "ＵＴＣ",
                "２２:００",
            ])
            .prop_map(str::to_owned),
            "[0-9]{12}(,[0-9]{12}){0,3}",
            "[0-9]{12}=\\PC{0,12}(,[0-9]{0,13}=\\PC{0,8}){0,2}",
            "[0-2]?[0-9]:[0-6][0-9](:[0-9]{2})?",
            "arn:aws:sns:[a-z]{2}-[a-z]{4}-[0-9]:[0-9]{12}:[A-Za-z0-9_-]{1,8}(\\.fifo)?",
            "arn:\\PC{0,4}:sns:\\PC{0,4}:\\PC{0,4}:\\PC{0,4}",
            "(ou-[a-z0-9]{4}-[a-z0-9]{8}|r-[a-z0-9]{4}|\\PC{0,12})(, ?(ou-[a-z0-9]{4}-[a-z0-9]{8}|\\PC{0,6})){0,3}",
            "arn:aws:iam::[0-9]{12}:role/[A-Za-z0-9/_+=,.@-]{0,20}",
        ]
    }

    fn base() -> Vec<(String, String)> {
        minimal()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// `from_vars` on `vars`: a configuration, or an error listing problems that each name a
    /// variable it reads and are all in its message. Never a panic.
    fn check(vars: Vec<(String, String)>) -> Result<Option<Config>, TestCaseError> {
        match Config::from_vars(vars) {
            Ok(c) => {
                prop_assert!(!c.regions.is_empty());
                prop_assert!(!c.table_name.trim().is_empty());
                for r in [
                    c.pacing.update_service_per_sec,
                    c.pacing.tag_resource_per_sec,
                    c.pacing.describe_per_sec,
                ] {
                    prop_assert!(r.is_finite() && r >= MIN_RATE);
                }
                Ok(Some(c))
            }
            Err(e) => {
                prop_assert!(!e.problems.is_empty());
                let text = e.to_string();
                for p in &e.problems {
                    prop_assert!(VARIABLES.contains(&p.var), "{}", p.var);
                    prop_assert!(text.contains(&p.message));
                }
                Ok(None)
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any values for every variable, and any other keys: Ok, or Err with all problems.
        #[test]
        fn any_values_give_a_config_or_every_problem(
            values in prop::collection::vec(prop::option::of(value()), VARIABLES.len()),
            extra in prop::collection::vec((any::<String>(), value()), 0..4),
        ) {
            let mut vars: Vec<(String, String)> = VARIABLES
                .iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
                .collect();
            vars.extend(extra);
            check(vars)?;
        }

        /// One variable of a working configuration set to anything: a problem naming a
        /// variable, or a configuration.
        #[test]
        fn one_variable_set_to_anything(var in prop::sample::select(VARIABLES.to_vec()), v in value()) {
            let mut vars = base();
            vars.retain(|(k, _)| k != var);
            vars.push((var.to_owned(), v));
            check(vars)?;
        }

        /// Owners named in any script, with accents, combining marks, emoji or full-width
        /// digits, come out exactly as written (only the spaces around them trimmed).
        #[test]
        fn account_owners_keep_unicode_names_intact(
            owners in prop::collection::vec("[^,=\\s]([^,=]{0,18}[^,=\\s])?", 1..6),
            pad in "[ \\t]{0,2}",
        ) {
            let list: Vec<String> = owners
                .iter()
                .enumerate()
                .map(|(i, o)| format!("{pad}{:012}{pad}={pad}{o}{pad}", i + 1))
                .collect();
            let mut vars = base();
            vars.push(("ACCOUNT_OWNERS".into(), list.join(",")));
            let c = Config::from_vars(vars).unwrap();
            prop_assert_eq!(c.account_owners.len(), owners.len());
            for (i, o) in owners.iter().enumerate() {
                let id: AccountId = format!("{:012}", i + 1).parse().unwrap();
                prop_assert_eq!(&c.account_owners[&id], o);
            }
        }
    }

    #[test]
    fn unicode_account_owners_and_what_is_refused() {
        let mut vars = base();
        vars.push((
            "ACCOUNT_OWNERS".into(),
            "111111111111=決済チーム, 222222222222 = équipe-paiements ,\
             333333333333=e\u{301}quipe 🚀"
                .into(),
        ));
        let c = Config::from_vars(vars).unwrap();
        let owner = |a: &str| c.account_owners[&a.parse::<AccountId>().unwrap()].clone();
        assert_eq!(owner("111111111111"), "決済チーム");
        assert_eq!(owner("222222222222"), "équipe-paiements");
        assert_eq!(owner("333333333333"), "e\u{301}quipe 🚀");

        let mut vars = base();
        vars.push((
            "ACCOUNT_OWNERS".into(),
            "équipe=payments,１１１１１１１１１１１１=x".into(),
        ));
        let err = Config::from_vars(vars).unwrap_err();
        assert_eq!(err.problems.len(), 2);
        assert!(err.problems[0].message.contains("\"équipe=payments\""));
    }

    #[test]
    fn rates_too_small_to_wait_on_are_refused() {
        for rate in ["1e-300", "0.001", "5e-324", "NaN", "inf", "-1", "0"] {
            let mut vars = base();
            vars.push(("UPDATE_SERVICE_RATE".into(), rate.into()));
            let err = Config::from_vars(vars).unwrap_err();
            assert_eq!(err.problems[0].var, "UPDATE_SERVICE_RATE", "{rate}");
        }
        let mut vars = base();
        vars.push(("DESCRIBE_RATE".into(), "0.01".into()));
        assert_eq!(
            Config::from_vars(vars).unwrap().pacing.describe_per_sec,
            0.01
        );
    }

    #[test]
    fn a_tag_key_is_counted_in_characters() {
        let mut vars = base();
        vars.push(("TAG_KEY".into(), "é".repeat(128)));
        assert_eq!(
            Config::from_vars(vars).unwrap().tag_key.chars().count(),
            128
        );
        let mut vars = base();
        vars.push(("TAG_KEY".into(), "é".repeat(129)));
        assert_eq!(
            Config::from_vars(vars).unwrap_err().problems[0].var,
            "TAG_KEY"
        );
    }

    #[test]
    fn regions_and_topics_are_checked_field_by_field() {
        for region in ["eu--1", "eu-west-", "-eu-west-1", "eu-wést-1"] {
            let mut vars = base();
            vars.retain(|(k, _)| k != "REGIONS");
            vars.push(("REGIONS".into(), region.into()));
            let err = Config::from_vars(vars).unwrap_err();
            assert_eq!(err.problems[0].var, "REGIONS", "{region}");
        }
        for topic in [
            "arn:aws:sns:eu-west-1:999999999999:",
            "arn:aws:sns:eu-west-1:9999:ops",
            "arn:aws:sns:eu-west-1:999999999999:opérations",
            "arn:aws:sns::999999999999:ops",
        ] {
            let mut vars = base();
            vars.push(("OPS_TOPIC_ARN".into(), topic.into()));
            let err = Config::from_vars(vars).unwrap_err();
            assert_eq!(err.problems[0].var, "OPS_TOPIC_ARN", "{topic}");
        }
        let mut vars = base();
        vars.push((
            "OPS_TOPIC_ARN".into(),
            "arn:aws-cn:sns:cn-north-1:999999999999:ops_2.fifo".into(),
        ));
        assert!(Config::from_vars(vars).unwrap().ops_topic_arn.is_some());
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("TABLE_NAME", "restarts"),
            ("ACCOUNTS", "111111111111, 222222222222"),
            ("REGIONS", "eu-west-1,us-east-1"),
            ("MEMBER_ROLE_NAME", "ecs-restart-member"),
        ]
    }

    #[test]
    fn minimal_configuration_takes_the_documented_defaults() {
        let c = Config::from_vars(minimal()).unwrap();
        assert_eq!(c.table_name, "restarts");
        assert_eq!(
            c.accounts,
            AccountsSource::List(vec![
                "111111111111".parse().unwrap(),
                "222222222222".parse().unwrap()
            ])
        );
        assert_eq!(c.regions, ["eu-west-1", "us-east-1"]);
        assert_eq!(c.window.to_string(), "00:00-06:00 UTC");
        assert_eq!(c.batch_interval, TimeDelta::minutes(10));
        assert_eq!(c.tag_key, "ecs_task_daily_restart");
        assert_eq!(c.owner_tag_keys, ["owner", "team"]);
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.notice_cooldown_days, 7);
        assert_eq!(c.skip_if_deployed_within, TimeDelta::hours(12));
        assert_eq!(c.change_calendar, None);
        assert_eq!(c.blocking_alarm_prefix, None);
        assert!(!c.block_on_service_alarms);
        assert_eq!(c.failure_threshold_percent, 10);
        assert_eq!(c.restart_timeout, TimeDelta::minutes(30));
        assert_eq!(c.poll_interval, TimeDelta::seconds(60));
        assert_eq!(c.account_concurrency, 256);
        assert_eq!(c.pacing.update_service_per_sec, 4.0);
        assert_eq!(c.pacing.tag_resource_per_sec, 8.0);
        assert_eq!(c.pacing.describe_per_sec, 15.0);
        assert_eq!(c.record_ttl_days, 90);
        assert_eq!(c.inventory_source, InventorySource::Ecs);
        assert!(!c.dry_run);
        assert_eq!(c.external_id, None);
    }

    #[test]
    fn every_setting_is_read() {
        let mut vars = minimal();
        vars.extend([
            ("EXTERNAL_ID", "xyz"),
            ("WINDOW_START", "22:30"),
            ("WINDOW_END", "04:00"),
            ("TIMEZONE", "Europe/Madrid"),
            ("BATCH_INTERVAL_MINUTES", "5"),
            ("TAG_KEY", "restart"),
            ("OWNER_TAG_KEYS", "squad"),
            (
                "ACCOUNT_OWNERS",
                "111111111111=payments,222222222222 = search",
            ),
            ("UNTAGGED_POLICY", "restart"),
            ("RISK_POLICY", "RESTART"),
            ("SKIP_IF_DEPLOYED_WITHIN_HOURS", "0"),
            (
                "CHANGE_CALENDAR",
                "arn:aws:ssm:eu-west-1:999999999999:document/peak-freeze",
            ),
            ("BLOCKING_ALARM_PREFIX", "ecs-restart-block-"),
            ("BLOCK_ON_SERVICE_ALARMS", "true"),
            ("NOTICE_COOLDOWN_DAYS", "3"),
            ("FAILURE_THRESHOLD_PERCENT", "25"),
            ("RESTART_TIMEOUT_MINUTES", "45"),
            ("MAX_INFLIGHT_PER_CLUSTER", "2"),
            (
                "OWNER_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:999999999999:owners",
            ),
            ("OPS_TOPIC_ARN", "arn:aws:sns:eu-west-1:999999999999:ops"),
            ("DRY_RUN", "true"),
        ]);
        let c = Config::from_vars(vars).unwrap();
        assert_eq!(c.external_id.as_deref(), Some("xyz"));
        assert_eq!(c.window.to_string(), "22:30-04:00 Europe/Madrid");
        assert!(c.window.crosses_midnight());
        assert_eq!(c.batch_interval, TimeDelta::minutes(5));
        assert_eq!(c.tag_key, "restart");
        assert_eq!(c.owner_tag_keys, ["squad"]);
        assert_eq!(c.account_owners.len(), 2);
        assert_eq!(c.account_owners[&"222222222222".parse().unwrap()], "search");
        assert_eq!(c.policy.untagged, UntaggedPolicy::Restart);
        assert_eq!(c.policy.risk, RiskPolicy::Restart);
        assert_eq!(c.skip_if_deployed_within, TimeDelta::zero());
        assert_eq!(
            c.change_calendar.as_deref(),
            Some("arn:aws:ssm:eu-west-1:999999999999:document/peak-freeze")
        );
        assert_eq!(
            c.blocking_alarm_prefix.as_deref(),
            Some("ecs-restart-block-")
        );
        assert!(c.block_on_service_alarms);
        assert_eq!(c.notice_cooldown_days, 3);
        assert_eq!(c.failure_threshold_percent, 25);
        assert_eq!(c.restart_timeout, TimeDelta::minutes(45));
        assert_eq!(c.max_inflight_per_cluster, 2);
        assert!(c.owner_topic_arn.unwrap().ends_with(":owners"));
        assert!(c.dry_run);
    }

    #[test]
    fn a_calendar_is_a_document_name_or_arn_and_an_alarm_prefix_has_no_control_characters() {
        for ok in [
            "peak-freeze",
            "a.b_c",
            "arn:aws:ssm:eu-west-1:123456789012:document/peak",
            "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:document/x_y",
        ] {
            let mut vars = minimal();
            vars.push(("CHANGE_CALENDAR", ok));
            assert!(Config::from_vars(vars).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "peak freeze",
            "fréeze",
            "arn:aws:ssm:eu-west-1:123:document/peak",
            "arn:aws:sns:eu-west-1:123456789012:document/peak",
            "arn:aws:ssm:eu-west-1:123456789012:peak",
        ] {
            let mut vars = minimal();
            vars.push(("CHANGE_CALENDAR", bad));
            let err = Config::from_vars(vars).unwrap_err();
            assert_eq!(err.problems[0].var, "CHANGE_CALENDAR", "{bad}");
        }
        let mut vars = minimal();
        vars.push(("BLOCKING_ALARM_PREFIX", "блок-ecs-"));
        assert!(Config::from_vars(vars).is_ok());
        let mut vars = minimal();
        vars.push(("BLOCKING_ALARM_PREFIX", "block\u{7}er"));
        let err = Config::from_vars(vars).unwrap_err();
        assert_eq!(err.problems[0].var, "BLOCKING_ALARM_PREFIX");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::from_vars([
            ("ACCOUNTS", "111111111111,12345,111111111111"),
            ("REGIONS", "Ireland"),
            ("WINDOW_START", "25:00"),
            ("TIMEZONE", "Europe/Atlantis"),
            ("BATCH_INTERVAL_MINUTES", "0"),
            ("UNTAGGED_POLICY", "ignore"),
            ("FAILURE_THRESHOLD_PERCENT", "150"),
            ("UPDATE_SERVICE_RATE", "6"),
            ("ACCOUNT_OWNERS", "111111111111"),
            ("OPS_TOPIC_ARN", "ops-topic"),
            ("DRY_RUN", "maybe"),
        ])
        .unwrap_err();
        let vars: Vec<&str> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(
            vars,
            [
                "TABLE_NAME",
                "ACCOUNTS",
                "ACCOUNTS",
                "REGIONS",
                "MEMBER_ROLE_NAME",
                "WINDOW_START",
                "TIMEZONE",
                "BATCH_INTERVAL_MINUTES",
                "ACCOUNT_OWNERS",
                "UNTAGGED_POLICY",
                "FAILURE_THRESHOLD_PERCENT",
                "UPDATE_SERVICE_RATE",
                "OPS_TOPIC_ARN",
                "DRY_RUN",
            ]
        );
        let text = err.to_string();
        assert!(
            text.starts_with("invalid configuration (14 problems):"),
            "{text}"
        );
        assert!(text.contains("ACCOUNTS: account id \"12345\" must be exactly 12 digits"));
        assert!(text.contains("ACCOUNTS: account 111111111111 is listed twice"));
        assert!(text.contains("UNTAGGED_POLICY: \"ignore\" is not one of notify, restart"));
        assert!(text.contains("TIMEZONE: \"Europe/Atlantis\" is not an IANA timezone"));
    }

    #[test]
    fn aggregator_source_needs_its_name_and_no_account_list() {
        let vars = |extra: &[(&'static str, &'static str)]| {
            let mut v: Vec<_> = minimal()
                .into_iter()
                .filter(|(k, _)| *k != "ACCOUNTS")
                .collect();
            v.extend_from_slice(extra);
            v
        };
        let err = Config::from_vars(vars(&[("ACCOUNTS_SOURCE", "config-aggregator")])).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].var, "AGGREGATOR_NAME");
        let c = Config::from_vars(vars(&[
            ("ACCOUNTS_SOURCE", "config-aggregator"),
            ("AGGREGATOR_NAME", "org"),
            ("INVENTORY_SOURCE", "config"),
        ]))
        .unwrap();
        assert_eq!(c.aggregator(), Some("org"));
        assert_eq!(c.inventory_source, InventorySource::Config);
    }

    fn organizations(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = minimal()
            .into_iter()
            .filter(|(k, _)| *k != "ACCOUNTS")
            .collect();
        v.push(("ACCOUNTS_SOURCE", "organizations"));
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn organizations_source_reads_its_parents_and_role() {
        // The whole organization with the hub's own credentials.
        let c = Config::from_vars(organizations(&[])).unwrap();
        assert_eq!(
            c.accounts,
            AccountsSource::Organizations {
                parents: vec![],
                role: None
            }
        );
        let c = Config::from_vars(organizations(&[
            (
                "ORGANIZATION_UNITS",
                " ou-ab12-cd34ef56 ,r-0a1b,, ou-abcdefghijklmnopqrstuvwxyz012345-0123456789abcdefghijklmnopqrstuv",
            ),
            (
                "ORGANIZATIONS_ROLE_ARN",
                "arn:aws:iam::999999999999:role/org/ecs-restart-accounts",
            ),
            ("INVENTORY_SOURCE", "ecs"),
        ]))
        .unwrap();
        let AccountsSource::Organizations { parents, role } = &c.accounts else {
            panic!("{:?}", c.accounts)
        };
        let parents: Vec<&str> = parents.iter().map(OrgParent::as_str).collect();
        assert_eq!(
            parents,
            [
                "ou-ab12-cd34ef56",
                "r-0a1b",
                "ou-abcdefghijklmnopqrstuvwxyz012345-0123456789abcdefghijklmnopqrstuv"
            ]
        );
        let role = role.as_ref().unwrap();
        assert_eq!(role.account.as_str(), "999999999999");
        assert_eq!(role.name, "org/ecs-restart-accounts");
        assert_eq!(
            role.to_string(),
            "arn:aws:iam::999999999999:role/org/ecs-restart-accounts"
        );
        // No aggregator needed, ACCOUNTS not read.
        assert_eq!(c.aggregator(), None);
    }

    #[test]
    fn organization_units_name_every_bad_item_at_once() {
        let err = Config::from_vars(organizations(&[
            (
                "ORGANIZATION_UNITS",
                "ou-ab12-cd34ef56,OU-AB12-CD34EF56,ou-ab1-cd34ef56,ou-ab12-cd34ef5,r-ab,\
                 123456789012,ou-ab12-cd34ef56,ou-ab12_cd34ef56",
            ),
            ("ORGANIZATIONS_ROLE_ARN", "arn:aws:iam::9999:role/x"),
        ]))
        .unwrap_err();
        let messages: Vec<&str> = err.problems.iter().map(|p| p.message.as_str()).collect();
        assert!(
            err.problems[..7]
                .iter()
                .all(|p| p.var == "ORGANIZATION_UNITS"),
            "{err}"
        );
        for (i, item) in [
            "OU-AB12-CD34EF56",
            "ou-ab1-cd34ef56",
            "ou-ab12-cd34ef5",
            "r-ab",
            "123456789012",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                messages[i].starts_with(&format!(
                    "{item:?} is not an organizational unit id (ou-, 4 to 32"
                )),
                "{}",
                messages[i]
            );
        }
        assert_eq!(messages[5], "\"ou-ab12-cd34ef56\" is listed twice");
        assert!(messages[6].starts_with("\"ou-ab12_cd34ef56\" is not"));
        assert_eq!(err.problems[7].var, "ORGANIZATIONS_ROLE_ARN");
        assert_eq!(err.problems.len(), 8, "{err}");

        for arn in [
            "arn:aws:iam::999999999999:user/x",
            "arn:aws:iam:eu-west-1:999999999999:role/x",
            "arn:aws:sts::999999999999:role/x",
            "arn:aws:iam::999999999999:role/",
            "arn:aws:iam::999999999999:role/a//b",
            "arn:aws:iam::999999999999:role/caf\u{e9}",
            "role/x",
        ] {
            let err =
                Config::from_vars(organizations(&[("ORGANIZATIONS_ROLE_ARN", arn)])).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{arn}: {err}");
            assert_eq!(err.problems[0].var, "ORGANIZATIONS_ROLE_ARN");
            assert!(
                err.problems[0].message.contains(&format!("{arn:?}")),
                "{err}"
            );
        }
        let c = Config::from_vars(organizations(&[(
            "ORGANIZATIONS_ROLE_ARN",
            "arn:aws-cn:iam::999999999999:role/r",
        )]))
        .unwrap();
        assert!(matches!(
            c.accounts,
            AccountsSource::Organizations { role: Some(ref r), .. } if r.partition == "aws-cn"
        ));
    }

    #[test]
    fn organization_settings_are_refused_with_another_source() {
        let mut vars = minimal();
        vars.extend([
            ("ORGANIZATION_UNITS", "ou-ab12-cd34ef56"),
            ("ORGANIZATIONS_ROLE_ARN", "arn:aws:iam::999999999999:role/r"),
        ]);
        let err = Config::from_vars(vars).unwrap_err();
        let vars: Vec<&str> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(vars, ["ORGANIZATION_UNITS", "ORGANIZATIONS_ROLE_ARN"]);
        assert!(
            err.to_string()
                .contains("ORGANIZATION_UNITS: is read only with ACCOUNTS_SOURCE=organizations")
        );
        // Empty counts as unset: a template may pass empty parameters.
        let mut vars = minimal();
        vars.extend([("ORGANIZATION_UNITS", " "), ("ORGANIZATIONS_ROLE_ARN", "")]);
        Config::from_vars(vars).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// `ORGANIZATION_UNITS` set to anything: parents, or problems on that variable that
        /// each name one of its items (quoted); never a panic.
        #[test]
        fn organization_units_parser_names_the_bad_item(
            units in prop_oneof![
                any::<String>(),
                "\\PC{0,60}",
                "((ou-[a-z0-9]{3,5}-[a-z0-9]{7,9})|(r-[a-z0-9]{3,5})|[ ,]|\\PC{0,3}){0,6}",
            ],
        ) {
            let items: Vec<String> = units
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let mut vars = organizations(&[]);
            let units_owned = units.clone();
            let mut vars: Vec<(String, String)> = vars
                .drain(..)
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            vars.push(("ORGANIZATION_UNITS".to_owned(), units_owned));
            match Config::from_vars(vars) {
                Ok(c) => {
                    let AccountsSource::Organizations { parents, .. } = c.accounts else {
                        return Err(TestCaseError::fail("another source"));
                    };
                    prop_assert!(parents.len() <= items.len());
                    for p in &parents {
                        prop_assert!(items.contains(&p.as_str().to_owned()));
                        prop_assert_eq!(p.as_str().parse::<OrgParent>(), Ok(p.clone()));
                    }
                }
                Err(e) => {
                    for p in &e.problems {
                        prop_assert_eq!(p.var, "ORGANIZATION_UNITS");
                        prop_assert!(
                            items.iter().any(|i| p.message.starts_with(&format!("{i:?} is"))),
                            "{} names none of {:?}", p.message, items
                        );
                    }
                }
            }
        }
    }

    /// The Lambda environment (4 KB, every key and value together) of a hub function over 500
    /// accounts: the organization source keeps the accounts out of it; the list does not fit.
    #[test]
    fn a_500_account_organization_keeps_the_lambda_environment_small() {
        // What infra/template.yaml sets, with realistic values, ACCOUNTS empty.
        let common = [
            ("TABLE_NAME", "ecs-nightly-restart-Table-1ABCDEFGHIJKL"),
            ("ACCOUNTS_SOURCE", "organizations"),
            (
                "ORGANIZATION_UNITS",
                "ou-ab12-cd34ef56,ou-ab12-ef56gh78,ou-ab12-ij90kl12",
            ),
            (
                "ORGANIZATIONS_ROLE_ARN",
                "arn:aws:iam::999999999999:role/ecs-nightly-restart-accounts",
            ),
            ("AGGREGATOR_NAME", ""),
            ("INVENTORY_SOURCE", "ecs"),
            ("REGIONS", "eu-west-1,eu-central-1,us-east-1,us-west-2"),
            ("MEMBER_ROLE_NAME", "ecs-nightly-restart-member"),
            ("EXTERNAL_ID", "0f6c2a9e-5b1d-4c8e-9a7f-3e2d1c0b9a88"),
            ("WINDOW_START", "01:00"),
            ("WINDOW_END", "05:00"),
            ("TIMEZONE", "Europe/Madrid"),
            ("BATCH_INTERVAL_MINUTES", "10"),
            ("TAG_KEY", "ecs_task_daily_restart"),
            ("OWNER_TAG_KEYS", "owner,team"),
            ("ACCOUNT_OWNERS", ""),
            ("UNTAGGED_POLICY", "notify"),
            ("RISK_POLICY", "skip"),
            ("SKIP_IF_DEPLOYED_WITHIN_HOURS", "12"),
            ("NOTICE_COOLDOWN_DAYS", "7"),
            ("FAILURE_THRESHOLD_PERCENT", "10"),
            ("RESTART_TIMEOUT_MINUTES", "30"),
            ("MAX_INFLIGHT_PER_CLUSTER", "10"),
            ("ACCOUNT_CONCURRENCY", "256"),
            ("UPDATE_SERVICE_RATE", "4"),
            ("TAG_RESOURCE_RATE", "8"),
            ("DESCRIBE_RATE", "15"),
            ("POLL_INTERVAL_SECONDS", "60"),
            ("RECORD_TTL_DAYS", "90"),
            (
                "OWNER_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:999999999999:ecs-nightly-restart-owners",
            ),
            (
                "OPS_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:999999999999:ecs-nightly-restart-ops",
            ),
            ("DRY_RUN", "false"),
            ("RUST_LOG", "info"),
        ];
        let size =
            |vars: &[(&str, &str)]| -> usize { vars.iter().map(|(k, v)| k.len() + v.len()).sum() };
        let mut org = common.to_vec();
        org.push(("ACCOUNTS", ""));
        Config::from_vars(org.clone()).unwrap();
        let org_bytes = size(&org);
        // 1,001 bytes, whatever the number of accounts.
        assert!(org_bytes < 1024, "{org_bytes}");

        let list: Vec<String> = (0..500)
            .map(|i| format!("{:012}", 100_000_000_000u64 + i))
            .collect();
        let list = list.join(",");
        let mut listed: Vec<(&str, &str)> = common
            .iter()
            .copied()
            .filter(|(k, _)| !k.starts_with("ORGANIZATION"))
            .map(|(k, v)| {
                if k == "ACCOUNTS_SOURCE" {
                    (k, "list")
                } else {
                    (k, v)
                }
            })
            .collect();
        listed.push(("ACCOUNTS", &list));
        Config::from_vars(listed.clone()).unwrap();
        // 7,311 bytes, 6,499 of them account ids: over Lambda's 4 KB.
        assert!(size(&listed) > 4096, "{}", size(&listed));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let mut vars = minimal();
        vars.extend([("EXTERNAL_ID", ""), ("WINDOW_START", " "), ("DRY_RUN", "")]);
        let c = Config::from_vars(vars).unwrap();
        assert_eq!(c.external_id, None);
        assert_eq!(c.window.to_string(), "00:00-06:00 UTC");
    }

    #[test]
    fn a_sub_minute_interval_is_refused_in_a_production_configuration() {
        for minutes in ["0", "0.25", "0.5", "1.5", "721", "-1"] {
            let mut vars = minimal();
            vars.push(("BATCH_INTERVAL_MINUTES", minutes));
            let err = Config::from_vars(vars).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{minutes}: {err}");
            assert_eq!(err.problems[0].var, "BATCH_INTERVAL_MINUTES");
            assert!(
                err.to_string()
                    .contains("is not a whole number of minutes from 1 to 720"),
                "{err}"
            );
        }
        // In AWS Lambda the local-only variable is refused, whatever its value.
        let mut vars = minimal();
        vars.extend([
            ("LOCAL_BATCH_INTERVAL_SECONDS", "15"),
            ("AWS_LAMBDA_FUNCTION_NAME", "nightly-restart-batcher"),
        ]);
        let err = Config::from_vars(vars).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].var, "LOCAL_BATCH_INTERVAL_SECONDS");
        assert!(
            err.to_string().contains(
                "is for the local stack (restart-local) only, and this is the Lambda function \
                 \"nightly-restart-batcher\""
            ),
            "{err}"
        );
        // Both intervals at once: one of them, please.
        let mut vars = minimal();
        vars.extend([
            ("LOCAL_BATCH_INTERVAL_SECONDS", "15"),
            ("BATCH_INTERVAL_MINUTES", "10"),
        ]);
        let err = Config::from_vars(vars).unwrap_err();
        assert_eq!(err.problems[0].var, "LOCAL_BATCH_INTERVAL_SECONDS");
        assert!(err.to_string().contains("give one of them"), "{err}");
    }

    #[test]
    fn the_local_stack_may_set_a_sub_minute_interval() {
        let mut vars = minimal();
        vars.push(("LOCAL_BATCH_INTERVAL_SECONDS", "15"));
        let c = Config::from_vars(vars).unwrap();
        assert_eq!(c.batch_interval, TimeDelta::seconds(15));
        let mut vars = minimal();
        vars.push(("LOCAL_BATCH_INTERVAL_SECONDS", "43200"));
        assert_eq!(
            Config::from_vars(vars).unwrap().batch_interval,
            TimeDelta::hours(12)
        );
        for seconds in ["0", "43201", "7.5", "15s"] {
            let mut vars = minimal();
            vars.push(("LOCAL_BATCH_INTERVAL_SECONDS", seconds));
            let err = Config::from_vars(vars).unwrap_err();
            assert_eq!(
                err.problems[0].var, "LOCAL_BATCH_INTERVAL_SECONDS",
                "{seconds}"
            );
            assert!(err.to_string().contains("from 1 to 43200"), "{err}");
        }
        // Empty counts as unset, as for every variable.
        let mut vars = minimal();
        vars.push(("LOCAL_BATCH_INTERVAL_SECONDS", " "));
        assert_eq!(
            Config::from_vars(vars).unwrap().batch_interval,
            TimeDelta::minutes(10)
        );
    }

    #[test]
    fn an_empty_window_is_refused() {
        let mut vars = minimal();
        vars.extend([("WINDOW_START", "03:00"), ("WINDOW_END", "03:00")]);
        let err = Config::from_vars(vars).unwrap_err();
        assert_eq!(err.problems[0].var, "WINDOW_END");
        assert!(err.problems[0].message.contains("same time"));
    }
}
