//! Typed configuration (DESIGN 3.9), parsed once at cold start.
//!
//! [`Config::from_vars`] takes the variables as pairs, so that this crate never reads the
//! environment itself: each `main` passes `std::env::vars()`. Every problem is collected and
//! reported at once. An empty value counts as unset, so templates may pass empty parameters.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{NaiveTime, TimeDelta};
use serde::Serialize;

use crate::eligibility::{Policy, RiskPolicy, UntaggedPolicy};
use crate::ids::AccountId;
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

/// Calls per second per account and region, below the documented ECS limits (DESIGN 3.5).
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
            Ok(r) if r > 0.0 && r < documented_limit => Ok(r),
            _ => Err(format!(
                "{v:?} must be a number of calls per second above 0 and below the documented \
                 ECS limit of {documented_limit}"
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
        if parts.len() == 6 && parts[0] == "arn" && parts[2] == "sns" && !parts[5].is_empty() {
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
            &[("list", "list"), ("config-aggregator", "config-aggregator")],
        );
        let aggregator = v.get("AGGREGATOR_NAME").map(str::to_owned);
        let account_items = v.list("ACCOUNTS");
        let accounts = if accounts_source == "config-aggregator" {
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
                     ACCOUNTS_SOURCE=config-aggregator with AGGREGATOR_NAME)",
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
            let ok = r.split('-').count() >= 3
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
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

        let batch_interval = v.number("BATCH_INTERVAL_MINUTES", 10, 1, 720);
        let tag_key = v.get("TAG_KEY").unwrap_or(DEFAULT_TAG_KEY).to_owned();
        if tag_key.len() > 128 || tag_key.starts_with("aws:") {
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
        let notice_cooldown_days = v.number("NOTICE_COOLDOWN_DAYS", 7, 0, 365);
        let failure_threshold_percent = v.number("FAILURE_THRESHOLD_PERCENT", 10, 0, 100);
        let restart_timeout = v.number("RESTART_TIMEOUT_MINUTES", 30, 1, 720);
        let poll_interval = v.number("POLL_INTERVAL_SECONDS", 60, 1, 3600);
        let max_inflight_per_cluster = v.number("MAX_INFLIGHT_PER_CLUSTER", 10, 1, 10_000);
        let account_concurrency = v.number("ACCOUNT_CONCURRENCY", 64, 1, 256);
        let pacing = Pacing {
            update_service_per_sec: v.rate("UPDATE_SERVICE_RATE", 4.0, 5.0),
            tag_resource_per_sec: v.rate("TAG_RESOURCE_RATE", 8.0, 10.0),
            describe_per_sec: v.rate("DESCRIBE_RATE", 15.0, 20.0),
        };
        let record_ttl_days = v.number("RECORD_TTL_DAYS", 90, 1, 3650);
        let owner_topic_arn = v.topic("OWNER_TOPIC_ARN");
        let ops_topic_arn = v.topic("OPS_TOPIC_ARN");
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

        if !v.problems.is_empty() {
            return Err(ConfigError {
                problems: v.problems,
            });
        }
        let (Some(table_name), Some(member_role_name), Some(window)) =
            (table_name, member_role_name, window)
        else {
            unreachable!("a missing required value is always recorded as a problem")
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
            batch_interval: TimeDelta::minutes(batch_interval.into()),
            tag_key,
            owner_tag_keys,
            account_owners,
            policy,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.failure_threshold_percent, 10);
        assert_eq!(c.restart_timeout, TimeDelta::minutes(30));
        assert_eq!(c.poll_interval, TimeDelta::seconds(60));
        assert_eq!(c.account_concurrency, 64);
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
        assert_eq!(c.notice_cooldown_days, 3);
        assert_eq!(c.failure_threshold_percent, 25);
        assert_eq!(c.restart_timeout, TimeDelta::minutes(45));
        assert_eq!(c.max_inflight_per_cluster, 2);
        assert!(c.owner_topic_arn.unwrap().ends_with(":owners"));
        assert!(c.dry_run);
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

    #[test]
    fn empty_values_count_as_unset() {
        let mut vars = minimal();
        vars.extend([("EXTERNAL_ID", ""), ("WINDOW_START", " "), ("DRY_RUN", "")]);
        let c = Config::from_vars(vars).unwrap();
        assert_eq!(c.external_id, None);
        assert_eq!(c.window.to_string(), "00:00-06:00 UTC");
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
