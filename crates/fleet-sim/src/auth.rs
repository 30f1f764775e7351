//! Who is calling: the access key and region from the SigV4 `Authorization` header, and the
//! account they act in. Signatures are not verified.
//!
//! Permissions are not checked unless an [`Authorizer`] is set on the simulator
//! ([`crate::SimHandle::set_authorizer`]): then every ECS, Organizations, Config, CloudWatch
//! and SSM request and every AssumeRole is put to it as an [`Authorization`] (who, action,
//! resource, condition keys), and a refusal is answered as AWS answers it
//! (`AccessDeniedException` for ECS and SSM, `AccessDenied` for STS and CloudWatch). The
//! policies themselves live with the authorizer: the simulator only says who asks for what
//! (the resources of each service: [`ecs_resources`], [`crate::cloudwatch::resources`],
//! [`crate::ssm::resources`]).

use std::collections::BTreeMap;

/// Prefix of the access key ids the simulator issues; the account id follows it.
pub const ISSUED_KEY_PREFIX: &str = "ASIASIM";

/// The parsed credential scope of a SigV4 Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key id.
    pub access_key: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
pub fn parse_authorization(header: &str) -> Option<Caller> {
    let rest = header.trim().strip_prefix("AWS4-HMAC-SHA256")?;
    let cred = rest
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("Credential="))?;
    let mut parts = cred.split('/');
    let access_key = parts.next()?.to_owned();
    let _date = parts.next()?;
    let region = parts.next()?.to_owned();
    let service = parts.next()?.to_owned();
    if access_key.is_empty() || region.is_empty() {
        return None;
    }
    Some(Caller {
        access_key,
        region,
        service,
    })
}

/// The access key id issued for `account` (20 characters, like a real `ASIA...` key).
pub fn issued_access_key(account: &str) -> String {
    format!("{ISSUED_KEY_PREFIX}{account}X")
}

/// The account an issued access key belongs to; `None` for keys the simulator did not issue.
pub fn account_of_issued_key(access_key: &str) -> Option<&str> {
    let rest = access_key.strip_prefix(ISSUED_KEY_PREFIX)?;
    let id = rest.get(..12)?;
    (id.bytes().all(|b| b.is_ascii_digit()) && rest.len() == 13).then_some(id)
}

/// A session the simulator issued with AssumeRole, found again by its session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account of the assumed role.
    pub account: String,
    /// The assumed role's ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
    pub role_arn: String,
    /// The role's name.
    pub role_name: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// The session's source identity (set by AssumeRole's `SourceIdentity`, or passed on
    /// from the session that assumed it), which every session chained from it carries.
    pub source_identity: Option<String>,
}

impl Session {
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, the ARN AWS names in a denial.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{}/{}",
            self.account, self.role_name, self.session_name
        )
    }
}

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A key the simulator did not issue: a hub identity, which the authorizer knows by its
    /// access key.
    Hub {
        /// The access key id.
        access_key: String,
    },
    /// A session the simulator issued.
    Session(Session),
}

/// The role an AssumeRole asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeTarget {
    /// The role's account.
    pub account: String,
    /// `RoleArn`.
    pub role_arn: String,
}

/// One request to authorize: who, which IAM action on which resource, with which condition
/// keys (`aws:RequestedRegion`, `aws:TagKeys`, `sts:ExternalId`, `aws:ResourceOrgID`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Who signed it.
    pub principal: Principal,
    /// The IAM action, e.g. `ecs:UpdateService`.
    pub action: String,
    /// The resource's ARN, or `*` for actions without a resource.
    pub resource: String,
    /// Condition keys and their values (one value for single-valued keys).
    pub context: BTreeMap<String, Vec<String>>,
    /// For `sts:AssumeRole`: the role asked for, whose trust policy must allow it too.
    pub assume: Option<AssumeTarget>,
}

/// What an authorizer allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// For AssumeRole: the source identity the new session carries (the caller's, passed on).
    pub source_identity: Option<String>,
}

/// Decides requests as IAM would. `Err` carries the message AWS would answer, e.g. `User:
/// ARN is not authorized to perform: ACTION on resource: ARN because no identity-based policy
/// allows the ACTION action`.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// Allows or refuses one request.
    fn authorize(&self, request: &Authorization) -> Result<Allowed, String>;
}

/// The IAM requests an ECS call makes, each `(action, resource)`: the service, cluster, task or
/// tagged resource it names (each of them when it names several), `*` for listings and actions
/// without a resource-level permission (`ListClusters`, `ListServices`, `ListTasks`,
/// `DescribeTaskDefinition`).
pub fn ecs_resources(account: &str, region: &str, action: &str, body: &[u8]) -> Vec<String> {
    let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| req.get(k).and_then(serde_json::Value::as_str);
    let list = |k: &str| -> Vec<String> {
        req.get(k)
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let prefix = format!("arn:aws:ecs:{region}:{account}");
    let cluster_name = |c: &str| -> String {
        c.strip_prefix("arn:")
            .and_then(|r| r.rsplit_once("cluster/"))
            .map_or(c, |(_, name)| name)
            .to_owned()
    };
    let cluster = cluster_name(text("cluster").unwrap_or("default"));
    let named = |kind: &str, name: &str| -> String {
        if name.starts_with("arn:") {
            name.to_owned()
        } else {
            format!("{prefix}:{kind}/{cluster}/{name}")
        }
    };
    match action {
        "DescribeClusters" => {
            let clusters = list("clusters");
            if clusters.is_empty() {
                vec![format!("{prefix}:cluster/default")]
            } else {
                clusters
                    .iter()
                    .map(|c| format!("{prefix}:cluster/{}", cluster_name(c)))
                    .collect()
            }
        }
        "DescribeServices" => list("services")
            .iter()
            .map(|s| named("service", s))
            .collect(),
        "UpdateService" => vec![named("service", text("service").unwrap_or_default())],
        "DescribeTasks" => list("tasks").iter().map(|t| named("task", t)).collect(),
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            vec![text("resourceArn").unwrap_or("*").to_owned()]
        }
        _ => vec!["*".to_owned()],
    }
}

/// The condition keys of an ECS call: `aws:RequestedRegion`, and for TagResource the tag keys
/// it writes (`aws:TagKeys`, `aws:RequestTag/KEY`).
pub fn ecs_context(region: &str, action: &str, body: &[u8]) -> BTreeMap<String, Vec<String>> {
    let mut context = BTreeMap::from([("aws:RequestedRegion".to_owned(), vec![region.to_owned()])]);
    if action == "TagResource" {
        let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let tags = req
            .get("tags")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut keys = Vec::new();
        for t in &tags {
            if let Some(k) = t.get("key").and_then(serde_json::Value::as_str) {
                keys.push(k.to_owned());
                let v = t.get("value").and_then(serde_json::Value::as_str);
                context.insert(
                    format!("aws:RequestTag/{k}"),
                    vec![v.unwrap_or_default().to_owned()],
                );
            }
        }
        context.insert("aws:TagKeys".to_owned(), keys);
    }
    context
}

#[cfg(test)]
mod tests {
    #[test]
    fn ecs_calls_name_their_resources_and_tag_keys() {
        let a = "111111111111";
        let r = "eu-west-1";
        assert_eq!(
            ecs_resources(a, r, "DescribeServices", br#"{"cluster":"c","services":["x","arn:aws:ecs:eu-west-1:111111111111:service/c/y"]}"#),
            [
                "arn:aws:ecs:eu-west-1:111111111111:service/c/x",
                "arn:aws:ecs:eu-west-1:111111111111:service/c/y"
            ]
        );
        assert_eq!(
            ecs_resources(
                a,
                r,
                "UpdateService",
                br#"{"cluster":"arn:aws:ecs:eu-west-1:111111111111:cluster/c","service":"x"}"#
            ),
            ["arn:aws:ecs:eu-west-1:111111111111:service/c/x"]
        );
        assert_eq!(ecs_resources(a, r, "ListClusters", b"{}"), ["*"]);
        let ctx = ecs_context(
            r,
            "TagResource",
            br#"{"resourceArn":"x","tags":[{"key":"k","value":"v"}]}"#,
        );
        assert_eq!(ctx["aws:TagKeys"], ["k"]);
        assert_eq!(ctx["aws:RequestTag/k"], ["v"]);
        assert_eq!(ctx["aws:RequestedRegion"], ["eu-west-1"]);
    }

    use super::*;

    #[test]
    fn parses_sigv4_scope() {
        let c = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .expect("parsed");
        assert_eq!(c.access_key, "AKIDEXAMPLE");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.service, "ecs");
        assert_eq!(parse_authorization("Basic abc"), None);
    }

    #[test]
    fn issued_keys_round_trip() {
        let k = issued_access_key("123456789012");
        assert_eq!(k.len(), 20);
        assert_eq!(account_of_issued_key(&k), Some("123456789012"));
        assert_eq!(account_of_issued_key("AKIDEXAMPLE"), None);
        assert_eq!(account_of_issued_key("ASIASIM12345678901"), None);
    }
}
