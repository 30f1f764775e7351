//! Owner resolution (DESIGN 3.2).
//!
//! The owner of a service is the first present of: the service's tags named in
//! `OWNER_TAG_KEYS` (in that order), the same keys on its cluster, the account's default owner
//! from configuration, else [`UNOWNED`] (routed to the platform team). A tag whose value is
//! blank counts as absent.

use std::collections::BTreeMap;

use crate::ids::AccountId;
use crate::tag::Tags;

/// The owner of services nobody claims.
pub const UNOWNED: &str = "unowned";

/// Where an owner was found, for reports that explain themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerSource {
    ServiceTag,
    ClusterTag,
    AccountDefault,
    Unowned,
}

/// Resolves owners with the configured tag keys and per-account defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerResolver {
    keys: Vec<String>,
    account_owners: BTreeMap<AccountId, String>,
}

impl OwnerResolver {
    pub fn new(keys: Vec<String>, account_owners: BTreeMap<AccountId, String>) -> Self {
        Self {
            keys,
            account_owners,
        }
    }

    /// The owner of a service with these tags, in this cluster and account.
    pub fn resolve(
        &self,
        service_tags: &Tags,
        cluster_tags: &Tags,
        account: &AccountId,
    ) -> (String, OwnerSource) {
        let from = |tags: &Tags| {
            self.keys
                .iter()
                .filter_map(|k| tags.get(k))
                .map(|v| v.trim())
                .find(|v| !v.is_empty())
                .map(str::to_owned)
        };
        if let Some(o) = from(service_tags) {
            return (o, OwnerSource::ServiceTag);
        }
        if let Some(o) = from(cluster_tags) {
            return (o, OwnerSource::ClusterTag);
        }
        if let Some(o) = self.account_owners.get(account) {
            return (o.clone(), OwnerSource::AccountDefault);
        }
        (UNOWNED.to_owned(), OwnerSource::Unowned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolver() -> OwnerResolver {
        let acct: AccountId = "111111111111".parse().unwrap();
        OwnerResolver::new(
            vec!["owner".into(), "team".into()],
            [(acct, "platform-a".to_owned())].into_iter().collect(),
        )
    }

    #[test]
    fn precedence_service_then_cluster_then_account_then_unowned() {
        let r = resolver();
        let a: AccountId = "111111111111".parse().unwrap();
        let b: AccountId = "222222222222".parse().unwrap();
        let svc = tags(&[("team", "svc-team")]);
        let cl = tags(&[("owner", "cluster-owner")]);
        assert_eq!(
            r.resolve(&svc, &cl, &a),
            ("svc-team".into(), OwnerSource::ServiceTag)
        );
        assert_eq!(
            r.resolve(&Tags::new(), &cl, &a),
            ("cluster-owner".into(), OwnerSource::ClusterTag)
        );
        assert_eq!(
            r.resolve(&Tags::new(), &Tags::new(), &a),
            ("platform-a".into(), OwnerSource::AccountDefault)
        );
        assert_eq!(
            r.resolve(&Tags::new(), &Tags::new(), &b),
            (UNOWNED.into(), OwnerSource::Unowned)
        );
    }

    #[test]
    fn keys_are_tried_in_configured_order_and_blank_values_skipped() {
        let r = resolver();
        let a: AccountId = "222222222222".parse().unwrap();
        let both = tags(&[("team", "t"), ("owner", "o")]);
        assert_eq!(r.resolve(&both, &Tags::new(), &a).0, "o");
        let blank_owner = tags(&[("owner", "  "), ("team", "t")]);
        assert_eq!(r.resolve(&blank_owner, &Tags::new(), &a).0, "t");
        let other_key = tags(&[("Owner", "x")]);
        assert_eq!(r.resolve(&other_key, &Tags::new(), &a).0, UNOWNED);
    }
}
