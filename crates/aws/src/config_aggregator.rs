//! Discovery through an AWS Config aggregator (`INVENTORY_SOURCE=config`,
//! `ACCOUNTS_SOURCE=config-aggregator`): SelectAggregateResourceConfig from the hub, no role
//! assumed in member accounts.
//!
//! Config records what a service is configured to be, not its deployments: snapshots from this
//! source have no deployments and report `runningCount = desiredCount`. The live check before
//! each restart (DescribeServices) judges deployments. Field names are read in both the
//! camelCase of the ECS API and the PascalCase of CloudFormation schemas, since Config has
//! recorded ECS resources in both shapes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use restart_core::catalog::{DiscoveredService, Target};
use restart_core::ids::{AccountId, ServiceArn, ServiceId};
use restart_core::ports::{AccountDirectory, DiscoveryError, ServiceInventory};
use restart_core::service::{
    DeploymentController, SchedulingStrategy, ServiceSnapshot, ServiceStatus,
};
use restart_core::tag::Tags;
use restart_core::telemetry::ApiCalls;

use super::sdk::discovery_error;

/// The largest page SelectAggregateResourceConfig returns.
pub const PAGE_LIMIT: i32 = 100;

#[derive(Debug, Clone)]
pub struct ConfigAggregator {
    client: aws_sdk_config::Client,
    aggregator: String,
    calls: Arc<ApiCalls>,
}

/// Quotes a value for the Config query language.
fn quoted(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// A field by its camelCase or PascalCase name.
fn field<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| {
        let mut pascal = camel.to_owned();
        if let Some(first) = pascal.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        v.get(&pascal)
    })
}

fn str_field<'a>(v: &'a Value, camel: &str) -> Option<&'a str> {
    field(v, camel).and_then(Value::as_str)
}

fn num_field(v: &Value, camel: &str) -> Option<u32> {
    field(v, camel)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// Tags as Config records them: a `{key: value}` map at the top level, or a list of
/// `{key, value}` pairs inside the configuration.
fn tags(v: Option<&Value>) -> Tags {
    match v {
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|t| {
                Some((
                    str_field(t, "key")?.to_owned(),
                    str_field(t, "value").unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
        _ => Tags::new(),
    }
}

impl ConfigAggregator {
    pub fn new(client: aws_sdk_config::Client, aggregator: String, calls: Arc<ApiCalls>) -> Self {
        Self {
            client,
            aggregator,
            calls,
        }
    }

    /// Every result row of a query, page by page.
    async fn select(&self, expression: &str) -> Result<Vec<Value>, DiscoveryError> {
        let mut rows = Vec::new();
        let mut token = None;
        loop {
            self.calls.record("SelectAggregateResourceConfig");
            let page = self
                .client
                .select_aggregate_resource_config()
                .configuration_aggregator_name(&self.aggregator)
                .expression(expression)
                .limit(PAGE_LIMIT)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    discovery_error(
                        &format!("SelectAggregateResourceConfig on {}", self.aggregator),
                        &e,
                    )
                })?;
            for r in page.results() {
                let row = serde_json::from_str(r).map_err(|e| {
                    DiscoveryError::Unexpected(format!("a Config result is not JSON: {e}"))
                })?;
                rows.push(row);
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(rows);
            }
        }
    }
}

impl AccountDirectory for ConfigAggregator {
    /// Every account that has an ECS cluster, as the aggregator sees it.
    async fn accounts(&self) -> Result<Vec<AccountId>, DiscoveryError> {
        let rows = self
            .select("SELECT accountId WHERE resourceType = 'AWS::ECS::Cluster'")
            .await?;
        let mut accounts = BTreeSet::new();
        for row in rows {
            let id = str_field(&row, "accountId").unwrap_or_default();
            let id = id
                .parse::<AccountId>()
                .map_err(|e| DiscoveryError::Unexpected(format!("the aggregator listed {e}")))?;
            accounts.insert(id);
        }
        Ok(accounts.into_iter().collect())
    }
}

impl ServiceInventory for ConfigAggregator {
    #[tracing::instrument(skip(self), fields(account = %target.account, region = %target.region))]
    async fn discover(&self, target: &Target) -> Result<Vec<DiscoveredService>, DiscoveryError> {
        let scope = format!(
            "accountId = {} AND awsRegion = {}",
            quoted(target.account.as_str()),
            quoted(&target.region)
        );
        let clusters: HashMap<String, (String, Tags)> = self
            .select(&format!(
                "SELECT arn, resourceName, tags WHERE resourceType = 'AWS::ECS::Cluster' AND {scope}"
            ))
            .await?
            .into_iter()
            .filter_map(|row| {
                let arn = str_field(&row, "arn")?.to_owned();
                let name = str_field(&row, "resourceName")?.to_owned();
                Some((arn, (name, tags(field(&row, "tags")))))
            })
            .collect();
        let rows = self
            .select(&format!(
                "SELECT arn, resourceName, configurationItemStatus, configuration, tags \
                 WHERE resourceType = 'AWS::ECS::Service' AND {scope}"
            ))
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            if matches!(
                str_field(&row, "configurationItemStatus"),
                Some("ResourceDeleted" | "ResourceNotRecorded" | "ResourceDeletedNotRecorded")
            ) {
                continue;
            }
            let service = service_from_item(&row, &clusters)
                .map_err(|e| DiscoveryError::Unexpected(format!("a Config item: {e}")))?;
            found.push(service);
        }
        Ok(found)
    }
}

/// A configuration item of an `AWS::ECS::Service` as a discovered service.
fn service_from_item(
    row: &Value,
    clusters: &HashMap<String, (String, Tags)>,
) -> Result<DiscoveredService, String> {
    let conf = field(row, "configuration").ok_or("no configuration")?;
    let arn_text = str_field(conf, "serviceArn")
        .or_else(|| str_field(row, "arn"))
        .ok_or("no service ARN")?;
    let arn: ServiceArn = arn_text
        .parse()
        .map_err(|e: restart_core::ids::IdError| e.to_string())?;
    let cluster_ref = str_field(conf, "cluster").unwrap_or_default();
    let (cluster_name, cluster_tags) = match clusters.get(cluster_ref) {
        Some((name, tags)) => (name.clone(), tags.clone()),
        // The cluster may be given by name, or the cluster item may not be recorded yet.
        None => (
            cluster_ref
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .or(arn.cluster.as_deref())
                .ok_or_else(|| format!("{arn}: no cluster"))?
                .to_owned(),
            Tags::new(),
        ),
    };
    let scheduling = match str_field(conf, "schedulingStrategy") {
        Some("DAEMON") => SchedulingStrategy::Daemon,
        _ => SchedulingStrategy::Replica,
    };
    let controller = match field(conf, "deploymentController").and_then(|c| str_field(c, "type")) {
        Some("CODE_DEPLOY") => DeploymentController::CodeDeploy,
        Some("EXTERNAL") => DeploymentController::External,
        _ => DeploymentController::Ecs,
    };
    let (default_min, default_max) = scheduling.default_percentages();
    let dc = field(conf, "deploymentConfiguration");
    let desired = num_field(conf, "desiredCount").unwrap_or(0);
    let mut service_tags = tags(field(row, "tags"));
    if service_tags.is_empty() {
        service_tags = tags(field(conf, "tags"));
    }
    let snapshot = ServiceSnapshot {
        id: ServiceId {
            account: arn.account.clone(),
            region: arn.region.clone(),
            cluster: cluster_name,
            service: arn.service.clone(),
        },
        arn,
        status: ServiceStatus::Active,
        desired,
        running: desired,
        scheduling,
        controller,
        min_healthy_percent: dc
            .and_then(|d| num_field(d, "minimumHealthyPercent"))
            .unwrap_or(default_min),
        max_percent: dc
            .and_then(|d| num_field(d, "maximumPercent"))
            .unwrap_or(default_max),
        // The aggregator's view is only used to plan; the live look reads the alarms.
        deployment_alarms: Vec::new(),
        deployments: Vec::new(),
        tags: service_tags,
    };
    Ok(DiscoveredService {
        snapshot,
        cluster_tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clusters() -> HashMap<String, (String, Tags)> {
        let mut tags = Tags::new();
        tags.insert("team".into(), "payments".into());
        [(
            "arn:aws:ecs:eu-west-1:111111111111:cluster/payments".to_owned(),
            ("payments".to_owned(), tags),
        )]
        .into_iter()
        .collect()
    }

    #[test]
    fn camel_case_item_from_the_ecs_shape() {
        let row = json!({
            "arn": "arn:aws:ecs:eu-west-1:111111111111:service/payments/api",
            "tags": {"ecs_task_daily_restart": "enabled"},
            "configuration": {
                "serviceArn": "arn:aws:ecs:eu-west-1:111111111111:service/payments/api",
                "cluster": "arn:aws:ecs:eu-west-1:111111111111:cluster/payments",
                "desiredCount": 3,
                "schedulingStrategy": "REPLICA",
                "deploymentController": {"type": "CODE_DEPLOY"},
                "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 150}
            }
        });
        let d = service_from_item(&row, &clusters()).unwrap();
        assert_eq!(d.snapshot.id.cluster, "payments");
        assert_eq!(d.cluster_tags["team"], "payments");
        assert_eq!(d.snapshot.desired, 3);
        assert_eq!(d.snapshot.controller, DeploymentController::CodeDeploy);
        assert_eq!(
            (d.snapshot.min_healthy_percent, d.snapshot.max_percent),
            (50, 150)
        );
        assert_eq!(d.snapshot.tags["ecs_task_daily_restart"], "enabled");
    }

    #[test]
    fn pascal_case_item_from_the_cloudformation_shape() {
        let row = json!({
            "configuration": {
                "ServiceArn": "arn:aws:ecs:eu-west-1:111111111111:service/other/worker",
                "Cluster": "other",
                "DesiredCount": 2,
                "SchedulingStrategy": "DAEMON",
                "Tags": [{"Key": "owner", "Value": "search"}]
            }
        });
        let d = service_from_item(&row, &clusters()).unwrap();
        assert_eq!(d.snapshot.id.cluster, "other");
        assert!(d.cluster_tags.is_empty());
        assert_eq!(d.snapshot.scheduling, SchedulingStrategy::Daemon);
        assert_eq!(
            (d.snapshot.min_healthy_percent, d.snapshot.max_percent),
            (0, 100)
        );
        assert_eq!(d.snapshot.tags["owner"], "search");
    }

    #[test]
    fn an_item_without_an_arn_is_an_error() {
        let err = service_from_item(&json!({"configuration": {}}), &clusters()).unwrap_err();
        assert_eq!(err, "no service ARN");
        assert_eq!(quoted("o'brien"), "'o''brien'");
    }
}
