//! Service identity: accounts, ARNs in both formats, and the canonical [`ServiceId`].
//!
//! ECS service ARNs come in two formats:
//! - long (current): `arn:aws:ecs:eu-west-1:111111111111:service/payments/api`
//! - old (short): `arn:aws:ecs:eu-west-1:111111111111:service/api`, with no cluster name.
//!
//! Services with an old-format ARN cannot carry tags (ECS refuses tagging operations on them),
//! so the orchestrator reports them as `needs_long_arn`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier could not be parsed. The message names the input and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("account id {0:?} must be exactly 12 digits")]
    Account(String),
    #[error(
        "{input:?} is not an ECS service ARN: {why} (expected arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE)"
    )]
    ServiceArn { input: String, why: &'static str },
    #[error(
        "{input:?} is not an ECS cluster ARN: {why} (expected arn:aws:ecs:REGION:ACCOUNT:cluster/CLUSTER)"
    )]
    ClusterArn { input: String, why: &'static str },
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccountId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Account(s.to_owned()))
        }
    }
}

impl TryFrom<String> for AccountId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names of clusters and services: 1-255 letters, digits, hyphens and underscores.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Regions look like `eu-west-1`, `us-gov-west-1`, `cn-north-1`.
pub(crate) fn valid_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        // Both indexings hold: `parts` has at least 3 elements here.
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

fn valid_partition(s: &str) -> bool {
    s.starts_with("aws") && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// The leading `arn:PARTITION:ecs:REGION:ACCOUNT:` fields of an ECS ARN and the resource part.
struct ArnParts<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn split_ecs_arn(s: &str) -> Result<ArnParts<'_>, &'static str> {
    let mut it = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err("it does not have the six colon-separated fields of an ARN");
    };
    if !valid_partition(partition) {
        return Err("the partition is not aws, aws-cn, aws-us-gov or similar");
    }
    if service != "ecs" {
        return Err("the service field is not ecs");
    }
    if !valid_region(region) {
        return Err("the region field is not a region such as eu-west-1");
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the account field is not a 12-digit account id");
    }
    Ok(ArnParts {
        partition,
        region,
        account,
        resource,
    })
}

/// An ECS service ARN, in the long format (with cluster) or the old short one (without).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceArn {
    pub partition: String,
    pub region: String,
    pub account: AccountId,
    /// `None` for an old-format ARN.
    pub cluster: Option<String>,
    pub service: String,
}

impl ServiceArn {
    /// Whether this is the old format, which cannot carry tags.
    pub fn is_old_format(&self) -> bool {
        self.cluster.is_none()
    }
}

impl FromStr for ServiceArn {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = |why| IdError::ServiceArn {
            input: s.to_owned(),
            why,
        };
        let parts = split_ecs_arn(s).map_err(err)?;
        let Some(path) = parts.resource.strip_prefix("service/") else {
            return Err(err("the resource is not service/..."));
        };
        let (cluster, service) = match path.split_once('/') {
            Some((cluster, service)) => (Some(cluster), service),
            None => (None, path),
        };
        if cluster.is_some_and(|c| !valid_name(c)) {
            return Err(err(
                "the cluster name is empty or has characters ECS does not allow",
            ));
        }
        if !valid_name(service) {
            return Err(err(
                "the service name is empty or has characters ECS does not allow",
            ));
        }
        Ok(Self {
            partition: parts.partition.to_owned(),
            region: parts.region.to_owned(),
            account: AccountId(parts.account.to_owned()),
            cluster: cluster.map(str::to_owned),
            service: service.to_owned(),
        })
    }
}

impl TryFrom<String> for ServiceArn {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<ServiceArn> for String {
    fn from(a: ServiceArn) -> String {
        a.to_string()
    }
}

impl fmt::Display for ServiceArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:ecs:{}:{}:service/",
            self.partition, self.region, self.account
        )?;
        if let Some(cluster) = &self.cluster {
            write!(f, "{cluster}/")?;
        }
        f.write_str(&self.service)
    }
}

/// An ECS cluster ARN: `arn:aws:ecs:REGION:ACCOUNT:cluster/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterArn {
    pub partition: String,
    pub region: String,
    pub account: AccountId,
    pub cluster: String,
}

impl FromStr for ClusterArn {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = |why| IdError::ClusterArn {
            input: s.to_owned(),
            why,
        };
        let parts = split_ecs_arn(s).map_err(err)?;
        let Some(name) = parts.resource.strip_prefix("cluster/") else {
            return Err(err("the resource is not cluster/..."));
        };
        if !valid_name(name) {
            return Err(err(
                "the cluster name is empty or has characters ECS does not allow",
            ));
        }
        Ok(Self {
            partition: parts.partition.to_owned(),
            region: parts.region.to_owned(),
            account: AccountId(parts.account.to_owned()),
            cluster: name.to_owned(),
        })
    }
}

impl TryFrom<String> for ClusterArn {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<ClusterArn> for String {
    fn from(a: ClusterArn) -> String {
        a.to_string()
    }
}

impl fmt::Display for ClusterArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:ecs:{}:{}:cluster/{}",
            self.partition, self.region, self.account, self.cluster
        )
    }
}

/// The canonical identity of a service: where it lives and its name. Unlike an old-format
/// ARN it always knows the cluster, because discovery lists services cluster by cluster.
///
/// Ordering is account, region, cluster, service: the planner's deterministic order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceId {
    pub account: AccountId,
    pub region: String,
    pub cluster: String,
    pub service: String,
}

impl ServiceId {
    /// `account/region/cluster`: the unit of per-cluster limits.
    pub fn cluster_key(&self) -> String {
        format!("{}/{}/{}", self.account, self.region, self.cluster)
    }

    /// The long-format ARN of this service in the given partition.
    pub fn arn(&self, partition: &str) -> ServiceArn {
        ServiceArn {
            partition: partition.to_owned(),
            region: self.region.clone(),
            account: self.account.clone(),
            cluster: Some(self.cluster.clone()),
            service: self.service.clone(),
        }
    }

    /// The identity named by a long-format ARN; `None` for an old-format one.
    pub fn from_arn(arn: &ServiceArn) -> Option<Self> {
        Some(Self {
            account: arn.account.clone(),
            region: arn.region.clone(),
            cluster: arn.cluster.clone()?,
            service: arn.service.clone(),
        })
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.account, self.region, self.cluster, self.service
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How an error message quotes its input.
    fn quote(s: &str) -> String {
        format!("{s:?}")
    }

    #[test]
    fn long_service_arn_round_trips() {
        let s = "arn:aws:ecs:eu-west-1:111111111111:service/payments/api";
        let arn: ServiceArn = s.parse().unwrap();
        assert_eq!(arn.cluster.as_deref(), Some("payments"));
        assert_eq!(arn.service, "api");
        assert_eq!(arn.account.as_str(), "111111111111");
        assert!(!arn.is_old_format());
        assert_eq!(arn.to_string(), s);
    }

    #[test]
    fn old_service_arn_round_trips_without_cluster() {
        let s = "arn:aws-us-gov:ecs:us-gov-west-1:222222222222:service/legacy";
        let arn: ServiceArn = s.parse().unwrap();
        assert_eq!(arn.cluster, None);
        assert!(arn.is_old_format());
        assert_eq!(arn.partition, "aws-us-gov");
        assert_eq!(arn.to_string(), s);
        assert_eq!(ServiceId::from_arn(&arn), None);
    }

    #[test]
    fn bad_service_arns_say_what_is_wrong() {
        let cases = [
            ("api", "six colon-separated fields"),
            ("arn:aws:ec2:eu-west-1:111111111111:service/a/b", "not ecs"),
            ("arn:aws:ecs:eu-west-1:1111:service/a/b", "12-digit"),
            ("arn:aws:ecs:westeurope:111111111111:service/a/b", "region"),
            (
                "arn:aws:ecs:eu-west-1:111111111111:task/a/b",
                "not service/",
            ),
            (
                "arn:aws:ecs:eu-west-1:111111111111:service/a/",
                "service name",
            ),
            (
                "arn:aws:ecs:eu-west-1:111111111111:service/a b/c",
                "cluster name",
            ),
            (
                "arn:gcp:ecs:eu-west-1:111111111111:service/a/b",
                "partition",
            ),
        ];
        for (input, expected) in cases {
            let err = input.parse::<ServiceArn>().unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
            assert!(err.contains(input), "{err} should quote the input");
        }
    }

    #[test]
    fn cluster_arn_round_trips_and_rejects_service_arns() {
        let s = "arn:aws:ecs:eu-west-1:111111111111:cluster/payments";
        assert_eq!(s.parse::<ClusterArn>().unwrap().to_string(), s);
        assert!(
            "arn:aws:ecs:eu-west-1:111111111111:service/payments/api"
                .parse::<ClusterArn>()
                .is_err()
        );
    }

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!("123456789012".parse::<AccountId>().is_ok());
        assert!("12345678901".parse::<AccountId>().is_err());
        assert!("12345678901a".parse::<AccountId>().is_err());
        let json = serde_json::to_string(&"123456789012".parse::<AccountId>().unwrap()).unwrap();
        assert_eq!(json, "\"123456789012\"");
        assert!(serde_json::from_str::<AccountId>("\"12\"").is_err());
    }

    /// Text that looks more or less like an ECS ARN: each field valid, or anything.
    fn arn_like() -> impl Strategy<Value = String> {
        let field = |valid: &'static str| prop_oneof![3 => valid, 1 => "\\PC{0,6}"];
        (
            field("arn"),
            field("aws(-[a-z]{1,6})?"),
            field("ecs"),
            field("[a-z]{2}(-[a-z]{1,9}){1,2}-[0-9]{1,2}"),
            field("[0-9]{12}"),
            field("(service|cluster)"),
            field("[A-Za-z0-9_-]{1,12}"),
            prop::option::of(field("[A-Za-z0-9_-]{1,12}")),
            prop::sample::select(vec![":", "/", "::", "", "é"]),
        )
            .prop_map(|(arn, p, svc, region, account, kind, a, b, sep)| {
                let mut s = format!("{arn}:{p}:{svc}:{region}:{account}:{kind}{sep}{a}");
                if let Some(b) = b {
                    s.push('/');
                    s.push_str(&b);
                }
                s
            })
    }

    /// Every parser of this module on `s`: a value or an error quoting the input, never a
    /// panic; what parses prints back as it was given.
    fn parse_all(s: &str) -> Result<(), TestCaseError> {
        match s.parse::<AccountId>() {
            Ok(a) => prop_assert_eq!(a.as_str(), s),
            Err(e) => prop_assert!(e.to_string().contains(&quote(s))),
        }
        match s.parse::<ServiceArn>() {
            Ok(arn) => {
                prop_assert_eq!(arn.to_string(), s);
                prop_assert_eq!(ServiceId::from_arn(&arn).is_none(), arn.is_old_format());
            }
            Err(e) => prop_assert!(e.to_string().contains(&quote(s))),
        }
        match s.parse::<ClusterArn>() {
            Ok(arn) => prop_assert_eq!(arn.to_string(), s),
            Err(e) => prop_assert!(e.to_string().contains(&quote(s))),
        }
        // The same through serde, as an event or a table item gives them.
        let json = serde_json::json!(s);
        let _ = serde_json::from_value::<AccountId>(json.clone());
        let _ = serde_json::from_value::<ServiceArn>(json.clone());
        let _ = serde_json::from_value::<ClusterArn>(json);
        Ok(())
    }

    #[test]
    fn unicode_in_names_is_refused_not_mangled() {
        for s in [
            "arn:aws:ecs:eu-west-1:111111111111:service/paiements/api-é",
            "arn:aws:ecs:eu-west-1:111111111111:service/決済/api",
            "arn:aws:ecs:eu-west-1:111111111111:service/pay\u{301}/api",
            "arn:aws:ecs:eu-west-1:１１１１１１１１１１１１:service/pay/api",
            "arn:aws:ecs:eu-west-1:111111111111:service/pay/🚀",
            "arn:aws:ecs:eu-west-１:111111111111:service/pay/api",
        ] {
            let err = s.parse::<ServiceArn>().unwrap_err().to_string();
            assert!(err.contains(&format!("{s:?}")), "{err}");
        }
        assert!("１１１１１１１１１１１１".parse::<AccountId>().is_err());
        assert!("11111111111é".parse::<AccountId>().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parsing_any_text_never_panics(s in any::<String>()) {
            parse_all(&s)?;
        }

        #[test]
        fn parsing_printable_unicode_never_panics(s in "\\PC*") {
            parse_all(&s)?;
        }

        #[test]
        fn parsing_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
            parse_all(&String::from_utf8_lossy(&bytes))?;
        }

        #[test]
        fn parsing_arn_like_text_never_panics(s in arn_like()) {
            parse_all(&s)?;
        }

        #[test]
        fn any_valid_service_arn_round_trips(
            partition in "aws(-[a-z]{1,6})?",
            region in "[a-z]{2}(-[a-z]{1,9}){1,2}-[0-9]{1,2}",
            account in "[0-9]{12}",
            cluster in prop::option::of("[A-Za-z0-9_-]{1,255}"),
            service in "[A-Za-z0-9_-]{1,255}",
        ) {
            let arn = ServiceArn {
                partition,
                region,
                account: account.parse().unwrap(),
                cluster,
                service,
            };
            let parsed: ServiceArn = arn.to_string().parse().unwrap();
            prop_assert_eq!(&parsed, &arn);
            let json = serde_json::to_value(&arn).unwrap();
            prop_assert_eq!(serde_json::from_value::<ServiceArn>(json).unwrap(), arn.clone());
            match ServiceId::from_arn(&parsed) {
                Some(id) => prop_assert_eq!(id.arn(&arn.partition), arn),
                None => prop_assert!(arn.is_old_format()),
            }
        }

        #[test]
        fn any_valid_cluster_arn_round_trips(
            partition in "aws(-[a-z]{1,6})?",
            region in "[a-z]{2}(-[a-z]{1,9}){1,2}-[0-9]{1,2}",
            account in "[0-9]{12}",
            cluster in "[A-Za-z0-9_-]{1,255}",
        ) {
            let arn = ClusterArn { partition, region, account: account.parse().unwrap(), cluster };
            prop_assert_eq!(arn.to_string().parse::<ClusterArn>().unwrap(), arn);
        }

        #[test]
        fn names_over_255_or_outside_the_charset_are_refused(
            long in "[A-Za-z0-9_-]{256,300}",
            odd in "[A-Za-z0-9_-]{0,5}[^A-Za-z0-9_/-][A-Za-z0-9_-]{0,5}",
        ) {
            for name in [long, odd] {
                let s = format!("arn:aws:ecs:eu-west-1:111111111111:service/c/{name}");
                prop_assert!(s.parse::<ServiceArn>().is_err(), "{}", s);
                let s = format!("arn:aws:ecs:eu-west-1:111111111111:cluster/{name}");
                prop_assert!(s.parse::<ClusterArn>().is_err(), "{}", s);
            }
        }

        #[test]
        fn any_valid_service_id_round_trips_through_its_arn(
            account in "[0-9]{12}",
            region in "(eu|us|ap)-(west|east|south)-[1-9]",
            cluster in "[A-Za-z0-9_-]{1,40}",
            service in "[A-Za-z0-9_-]{1,40}",
        ) {
            let id = ServiceId { account: account.parse().unwrap(), region, cluster, service };
            let arn = id.arn("aws");
            let parsed: ServiceArn = arn.to_string().parse().unwrap();
            prop_assert_eq!(ServiceId::from_arn(&parsed), Some(id));
        }
    }
}
