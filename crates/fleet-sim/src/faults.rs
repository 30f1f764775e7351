//! Faults injected into an account's ECS API, as the spec's account settings ask:
//! - `deny_ecs_after_restarts: N`: once the account has had N successful UpdateService calls
//!   (all regions together), every ECS call of the account answers `AccessDeniedException`,
//!   worded as an explicit deny in a service control policy (STS is unaffected).
//! - `server_error_rate: F`: that fraction of the account's ECS calls answers HTTP 500
//!   `ServerException` before doing anything. The n-th ECS call of an account fails when a
//!   uniform draw from `hash(seed, account, n)` is below F, so a run with the same calls in the
//!   same order fails the same ones.
//!
//! Both are checked after the token bucket (a throttled call is neither denied nor failed) and
//! before the action, so a failed UpdateService changes nothing.

use serde_json::Value;

use crate::error::AwsError;
use crate::rng::{SplitMix64, hash_parts};
use crate::world::World;

/// The ECS call being checked.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The account the call acts in.
    pub account: &'a str,
    /// The region of the call.
    pub region: &'a str,
    /// The ECS action.
    pub action: &'a str,
    /// The request body (read only to name the resource in a denial).
    pub body: &'a [u8],
}

/// The fault to answer instead of performing `call`, if any. `caller_arn` names the caller in
/// a denial. Counts the call for the server-error draws.
pub fn before_ecs_call(
    world: &mut World,
    call: Call<'_>,
    caller_arn: impl FnOnce() -> String,
) -> Option<AwsError> {
    let seed = world.seed;
    let acc = world.accounts.get_mut(call.account)?;
    let n = acc.ecs_calls;
    acc.ecs_calls = acc.ecs_calls.saturating_add(1);
    if acc
        .deny_ecs_after_restarts
        .is_some_and(|limit| acc.updates_ok >= limit)
    {
        return Some(AwsError::access_denied(format!(
            "User: {} is not authorized to perform: ecs:{} on resource: {} with an explicit deny in a service control policy",
            caller_arn(),
            call.action,
            resource_of(call)
        )));
    }
    if acc.server_error_rate > 0.0 {
        let draw = SplitMix64::new(hash_parts(
            seed,
            &[call.account, &n.to_string(), "server-error"],
        ))
        .unit();
        if draw < acc.server_error_rate {
            return Some(AwsError::server_error());
        }
    }
    None
}

/// Records a successful UpdateService of `account` (what `deny_ecs_after_restarts` counts).
pub fn update_succeeded(world: &mut World, account: &str) {
    if let Some(acc) = world.accounts.get_mut(account) {
        acc.updates_ok = acc.updates_ok.saturating_add(1);
    }
}

/// The resource a denial names, as ECS does: the service, task definition, tagged resource
/// or cluster the request is about, `*` for listings and requests that name several.
fn resource_of(call: Call<'_>) -> String {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(call.body) else {
        return "*".to_owned();
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str);
    let prefix = format!("arn:aws:ecs:{}:{}", call.region, call.account);
    let cluster = text("cluster").map(|c| {
        c.strip_prefix("arn:")
            .and_then(|r| r.rsplit_once("cluster/"))
            .map_or(c, |(_, name)| name)
            .to_owned()
    });
    if let Some(service) = text("service") {
        if service.starts_with("arn:") {
            return service.to_owned();
        }
        let cluster = cluster.as_deref().unwrap_or("default");
        return format!("{prefix}:service/{cluster}/{service}");
    }
    if let Some(arn) = text("resourceArn") {
        return arn.to_owned();
    }
    if let Some(td) = text("taskDefinition") {
        if td.starts_with("arn:") {
            return td.to_owned();
        }
        return format!("{prefix}:task-definition/{td}");
    }
    match (call.action, cluster) {
        ("ListClusters" | "DescribeClusters", _) | (_, None) => "*".to_owned(),
        (_, Some(cluster)) => format!("{prefix}:cluster/{cluster}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(action: &str, body: &str) -> String {
        resource_of(Call {
            account: "111111111111",
            region: "eu-west-1",
            action,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn denials_name_the_resource() {
        assert_eq!(
            res("UpdateService", r#"{"cluster":"c","service":"api"}"#),
            "arn:aws:ecs:eu-west-1:111111111111:service/c/api"
        );
        assert_eq!(
            res(
                "UpdateService",
                r#"{"cluster":"arn:aws:ecs:eu-west-1:111111111111:cluster/c","service":"api"}"#
            ),
            "arn:aws:ecs:eu-west-1:111111111111:service/c/api"
        );
        assert_eq!(
            res("ListServices", r#"{"cluster":"c"}"#),
            "arn:aws:ecs:eu-west-1:111111111111:cluster/c"
        );
        assert_eq!(res("ListClusters", "{}"), "*");
        assert_eq!(res("ListClusters", ""), "*");
        assert_eq!(res("DescribeServices", "not json ü"), "*");
        assert_eq!(
            res("DescribeTaskDefinition", r#"{"taskDefinition":"api:3"}"#),
            "arn:aws:ecs:eu-west-1:111111111111:task-definition/api:3"
        );
    }
}
