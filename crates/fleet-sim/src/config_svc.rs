//! AWS Config over awsJson1_1 (`X-Amz-Target: StarlingDoveService.<Action>`):
//! SelectAggregateResourceConfig over the fleet's ECS services and clusters.
//!
//! The query language supported is the subset an inventory sends:
//! `SELECT field[, field...] [WHERE field = 'value' [AND field = 'value' ...]]`, where a field
//! is a (dotted) path into the configuration item, e.g. `resourceId`, `configuration.serviceName`,
//! or `*`. Anything else (aggregates, GROUP BY, ORDER BY, LIKE, OR, ...) is refused with
//! `InvalidExpressionException`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::millis_to_utc;
use crate::ecs::TagWire;
use crate::error::{AwsError, parse_body};
use crate::rng::hash_parts;
use crate::spec::{Controller, LaunchType, Scheduling};
use crate::world::{Cluster, Millis, Service, World};

/// The `X-Amz-Target` prefix of AWS Config.
pub const TARGET_PREFIX: &str = "StarlingDoveService.";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct SelectRequest {
    expression: Option<String>,
    configuration_aggregator_name: Option<String>,
    limit: Option<i64>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SelectResponse {
    results: Vec<String>,
    query_info: QueryInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct QueryInfo {
    select_fields: Vec<FieldInfo>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct FieldInfo {
    name: String,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Selected field paths (`*` for the whole item).
    pub fields: Vec<String>,
    /// Equality conditions, all of which must hold.
    pub conditions: Vec<(String, String)>,
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::bad("InvalidExpressionException", message)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Comma,
    Eq,
    Star,
}

fn tokenize(expr: &str) -> Result<Vec<Tok>, AwsError> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Tok::Comma);
            }
            '=' => {
                chars.next();
                out.push(Tok::Eq);
            }
            '*' => {
                chars.next();
                out.push(Tok::Star);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(invalid("Unterminated string literal in the query.")),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':' {
                        w.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(w));
            }
            other => {
                return Err(invalid(format!(
                    "Unexpected character '{other}' in the query."
                )));
            }
        }
    }
    Ok(out)
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

const RESERVED: &[&str] = &[
    "SELECT", "WHERE", "AND", "OR", "NOT", "GROUP", "ORDER", "BY", "LIKE", "IN", "BETWEEN", "FROM",
    "AS", "COUNT", "SUM", "AVG", "MIN", "MAX", "DISTINCT", "JOIN", "HAVING", "LIMIT",
];

fn field(t: Option<&Tok>) -> Result<String, AwsError> {
    match t {
        Some(Tok::Word(w)) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => Ok(w.clone()),
        Some(Tok::Word(w)) => Err(invalid(format!(
            "'{w}' is not supported by fleet-sim's query subset."
        ))),
        _ => Err(invalid("Expected a field name.")),
    }
}

/// Parses the supported subset of the advanced query language.
pub fn parse_query(expr: &str) -> Result<Query, AwsError> {
    let toks = tokenize(expr)?;
    let mut i = 0;
    if !is_kw(toks.first(), "SELECT") {
        return Err(invalid("The query must start with SELECT."));
    }
    i += 1;
    let mut fields = Vec::new();
    loop {
        match toks.get(i) {
            Some(Tok::Star) => fields.push("*".to_owned()),
            t => fields.push(field(t)?),
        }
        i += 1;
        if toks.get(i) == Some(&Tok::Comma) {
            i += 1;
            continue;
        }
        break;
    }
    let mut conditions = Vec::new();
    if i < toks.len() {
        if !is_kw(toks.get(i), "WHERE") {
            return Err(invalid(
                "Only SELECT ... [WHERE ...] queries are supported.",
            ));
        }
        i += 1;
        loop {
            let f = field(toks.get(i))?;
            if toks.get(i + 1) != Some(&Tok::Eq) {
                return Err(invalid("Only '=' comparisons are supported."));
            }
            let Some(Tok::Str(v)) = toks.get(i + 2) else {
                return Err(invalid("Expected a quoted string after '='."));
            };
            conditions.push((f, v.clone()));
            i += 3;
            if i == toks.len() {
                break;
            }
            if !is_kw(toks.get(i), "AND") {
                return Err(invalid("Only AND between conditions is supported."));
            }
            i += 1;
        }
    }
    Ok(Query { fields, conditions })
}

fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn project(item: &Value, fields: &[String]) -> Value {
    if fields.iter().any(|f| f == "*") {
        return item.clone();
    }
    let mut out = Value::Object(Map::new());
    for f in fields {
        let Some(v) = lookup(item, f) else { continue };
        let mut cur = &mut out;
        let parts: Vec<&str> = f.split('.').collect();
        for (n, p) in parts.iter().enumerate() {
            let Value::Object(m) = cur else { break };
            if n + 1 == parts.len() {
                m.insert((*p).to_owned(), v.clone());
                break;
            }
            cur = m
                .entry((*p).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

fn matches(item: &Value, conditions: &[(String, String)]) -> bool {
    conditions.iter().all(|(f, want)| match lookup(item, f) {
        Some(Value::String(s)) => s == want,
        Some(Value::Number(n)) => n.to_string() == *want,
        Some(Value::Bool(b)) => b.to_string() == *want,
        _ => false,
    })
}

const CHEAP_FIELDS: &[&str] = &["resourceType", "accountId", "awsRegion"];

/// Evaluates conditions that are all on [`CHEAP_FIELDS`] without building the item.
fn cheap_match(
    conditions: &[(String, String)],
    resource_type: &str,
    account: &str,
    region: &str,
) -> bool {
    conditions.iter().all(|(f, v)| match f.as_str() {
        "resourceType" => v == resource_type,
        "accountId" => v == account,
        "awsRegion" => v == region,
        _ => false,
    })
}

fn tags_json(tags: &[(String, String)]) -> Vec<Value> {
    tags.iter()
        .map(|(k, v)| json!({ "key": k, "value": v, "tag": format!("{k}={v}") }))
        .collect()
}

fn iso(ms: Millis) -> String {
    millis_to_utc(ms)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn service_item(account: &str, region: &str, cl: &Cluster, svc: &Service, now: Millis) -> Value {
    let td = svc
        .primary()
        .map_or_else(|| svc.last_good.1.clone(), |p| p.task_definition.clone());
    let tags: Vec<TagWire> = svc
        .tags
        .iter()
        .map(|(k, v)| TagWire {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect();
    json!({
        "version": "1.3",
        "accountId": account,
        "configurationItemCaptureTime": iso(now),
        "configurationItemStatus": "OK",
        "configurationStateId": (now / 1000).to_string(),
        "arn": svc.arn,
        "resourceType": "AWS::ECS::Service",
        "resourceId": svc.arn,
        "resourceName": svc.name,
        "awsRegion": region,
        "availabilityZone": "Regional",
        "resourceCreationTime": iso(svc.created_at),
        "tags": tags_json(&svc.tags),
        "relationships": [],
        "supplementaryConfiguration": {},
        "configuration": {
            "serviceArn": svc.arn,
            "serviceName": svc.name,
            "name": svc.name,
            "cluster": cl.arn,
            "desiredCount": svc.desired,
            "launchType": match svc.launch_type {
                LaunchType::Fargate => "FARGATE",
                LaunchType::Ec2 => "EC2",
                LaunchType::External => "EXTERNAL",
            },
            "schedulingStrategy": match svc.scheduling {
                Scheduling::Replica => "REPLICA",
                Scheduling::Daemon => "DAEMON",
            },
            "taskDefinition": td,
            "deploymentController": {
                "type": match svc.controller {
                    Controller::Ecs => "ECS",
                    Controller::CodeDeploy => "CODE_DEPLOY",
                    Controller::External => "EXTERNAL",
                }
            },
            "deploymentConfiguration": {
                "minimumHealthyPercent": svc.min_healthy_percent,
                "maximumPercent": svc.max_percent,
                "deploymentCircuitBreaker": {
                    "enable": svc.controller == Controller::Ecs,
                    "rollback": svc.controller == Controller::Ecs,
                }
            },
            "enableExecuteCommand": svc.enable_execute_command,
            "propagateTags": "NONE",
            "enableECSManagedTags": false,
            "tags": tags,
        }
    })
}

fn cluster_item(account: &str, region: &str, cl: &Cluster, now: Millis) -> Value {
    json!({
        "version": "1.3",
        "accountId": account,
        "configurationItemCaptureTime": iso(now),
        "configurationItemStatus": "OK",
        "configurationStateId": (now / 1000).to_string(),
        "arn": cl.arn,
        "resourceType": "AWS::ECS::Cluster",
        "resourceId": cl.name,
        "resourceName": cl.name,
        "awsRegion": region,
        "availabilityZone": "Regional",
        "tags": tags_json(&cl.tags),
        "relationships": [],
        "supplementaryConfiguration": {},
        "configuration": {
            "clusterArn": cl.arn,
            "clusterName": cl.name,
            "tags": cl.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        }
    })
}

/// The aggregator a request names, as IAM authorizes it:
/// `arn:aws:config:REGION:ACCOUNT:config-aggregator/NAME` (AWS appends a generated id to the
/// name; policies grant `config-aggregator/*`). `*` when the request names none.
pub fn aggregator_arn(region: &str, account: &str, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("ConfigurationAggregatorName")
                .and_then(serde_json::Value::as_str)
                .map(|name| format!("arn:aws:config:{region}:{account}:config-aggregator/{name}"))
        })
        .unwrap_or_else(|| "*".to_owned())
}

/// Handles one Config action; returns the JSON body.
pub fn handle(world: &World, action: &str, body: &[u8], now: Millis) -> Result<String, AwsError> {
    if action != "SelectAggregateResourceConfig" {
        return Err(AwsError::bad(
            "UnknownOperationException",
            format!("Operation {action} is not supported by fleet-sim."),
        ));
    }
    let req: SelectRequest = parse_body(body)?;
    let Some(name) = req.configuration_aggregator_name.as_deref() else {
        return Err(AwsError::bad(
            "ValidationException",
            "1 validation error detected: Value null at 'configurationAggregatorName' failed to satisfy constraint: Member must not be null",
        ));
    };
    let name_ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        return Err(AwsError::bad(
            "ValidationException",
            format!(
                "1 validation error detected: Value '{name}' at 'configurationAggregatorName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w\\-]+"
            ),
        ));
    }
    if world
        .aggregators
        .as_ref()
        .is_some_and(|a| !a.contains(name))
    {
        return Err(AwsError::bad(
            "NoSuchConfigurationAggregatorException",
            "The configuration aggregator does not exist. Check the configuration aggregator name and try again.",
        ));
    }
    let Some(expr) = req.expression.as_deref() else {
        return Err(AwsError::bad(
            "ValidationException",
            "1 validation error detected: Value null at 'expression' failed to satisfy constraint: Member must not be null",
        ));
    };
    let query = parse_query(expr)?;
    let mut size = 25usize;
    for (what, v) in [("limit", req.limit), ("maxResults", req.max_results)] {
        match v {
            None | Some(0) => {}
            Some(n) if (1..=100).contains(&n) => size = n as usize,
            Some(n) => {
                return Err(AwsError::bad(
                    "ValidationException",
                    format!(
                        "1 validation error detected: Value '{n}' at '{what}' failed to satisfy constraint: Member must have value less than or equal to 100"
                    ),
                ));
            }
        }
    }
    let scope = hash_parts(world.seed, &[expr, name, "SelectAggregateResourceConfig"]);
    let from = match req.next_token.as_deref() {
        None => 0,
        Some(t) => t
            .get(..16)
            .zip(t.get(16..))
            .filter(|(s, _)| u64::from_str_radix(s, 16).ok() == Some(scope))
            .and_then(|(_, i)| usize::from_str_radix(i, 16).ok())
            .ok_or_else(|| {
                AwsError::bad(
                    "InvalidNextTokenException",
                    "The nextToken provided is invalid",
                )
            })?,
    };
    let wants_type = query
        .conditions
        .iter()
        .find(|(f, _)| f == "resourceType")
        .map(|(_, v)| v.as_str());
    let cheap = query
        .conditions
        .iter()
        .all(|(f, _)| CHEAP_FIELDS.contains(&f.as_str()));
    let mut matched = 0usize;
    let mut results = Vec::new();
    let mut more = false;
    'outer: for id in &world.account_order {
        let Some(acc) = world.accounts.get(id) else {
            continue;
        };
        for region in &acc.regions {
            let Some(reg) = acc.by_region.get(region) else {
                continue;
            };
            for cl in &reg.clusters {
                // Fast skip of whole clusters before the page when every condition is on a
                // field known without building the items (keeps deep pages cheap).
                if cheap && matched < from {
                    let keep = |t: &str| cheap_match(&query.conditions, t, id, region);
                    let n = usize::from(keep("AWS::ECS::Cluster"))
                        + if keep("AWS::ECS::Service") {
                            cl.services.iter().filter(|s| s.is_active()).count()
                        } else {
                            0
                        };
                    if matched + n <= from {
                        matched += n;
                        continue;
                    }
                }
                let mut items: Vec<Value> = Vec::new();
                if wants_type.is_none_or(|t| t == "AWS::ECS::Cluster") {
                    items.push(cluster_item(id, region, cl, now));
                }
                if wants_type.is_none_or(|t| t == "AWS::ECS::Service") {
                    for svc in cl.services.iter().filter(|s| s.is_active()) {
                        items.push(service_item(id, region, cl, svc, now));
                    }
                }
                for item in items {
                    if !matches(&item, &query.conditions) {
                        continue;
                    }
                    if matched >= from {
                        if results.len() == size {
                            more = true;
                            break 'outer;
                        }
                        results.push(project(&item, &query.fields).to_string());
                    }
                    matched += 1;
                }
            }
        }
    }
    let next_token = more.then(|| format!("{scope:016x}{:x}", from + results.len()));
    let out = SelectResponse {
        results,
        query_info: QueryInfo {
            select_fields: query
                .fields
                .iter()
                .map(|f| FieldInfo { name: f.clone() })
                .collect(),
        },
        next_token,
    };
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "{}".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_inventory_query() {
        let q = parse_query(
            "SELECT resourceId, resourceName, accountId, awsRegion, configuration, tags WHERE resourceType = 'AWS::ECS::Service'",
        )
        .expect("parsed");
        assert_eq!(q.fields.len(), 6);
        assert_eq!(
            q.conditions,
            vec![("resourceType".to_owned(), "AWS::ECS::Service".to_owned())]
        );
        let q =
            parse_query("select * where resourceType = 'AWS::ECS::Service' and accountId = '1'")
                .expect("parsed");
        assert_eq!(q.fields, vec!["*".to_owned()]);
        assert_eq!(q.conditions.len(), 2);
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        for bad in [
            "",
            "DELETE x",
            "SELECT COUNT(*) WHERE resourceType = 'AWS::ECS::Service'",
            "SELECT resourceId WHERE resourceType LIKE 'AWS::%'",
            "SELECT resourceId WHERE resourceType = 'a' OR resourceType = 'b'",
            "SELECT resourceId WHERE resourceType = 'unterminated",
            "SELECT resourceId GROUP BY resourceId",
        ] {
            let e = parse_query(bad).expect_err(bad);
            assert_eq!(e.code, "InvalidExpressionException", "{bad}");
        }
    }

    #[test]
    fn projection_keeps_nested_paths() {
        let item = json!({"a": 1, "configuration": {"serviceName": "x", "other": 2}});
        let p = project(
            &item,
            &["a".to_owned(), "configuration.serviceName".to_owned()],
        );
        assert_eq!(p, json!({"a": 1, "configuration": {"serviceName": "x"}}));
    }
}
