//! Owner resolution (docs/design.md 3.2).
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
    use proptest::prelude::*;

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

    /// A tag value: anything, printable Unicode, bytes read as UTF-8, or team names in other
    /// scripts (accents, CJK, emoji, full-width digits, combining marks).
    fn tag_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "\\PC{0,256}",
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            prop::sample::select(vec![
                "équipe-paiements",
                "決済チーム",
                "🚀 platform",
                "ｔｅａｍ１２",
                "e\u{301}quipe",
                " \u{3000}",
                "\u{200b}",
                "<script>alert(1)</script>",
                "a\nb",
                "",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn tags_of(pairs: Vec<(String, String)>) -> Tags {
        pairs.into_iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any tags: the owner is the first configured tag with a value that is not blank,
        /// exactly as written but for the spaces around it, never a panic.
        #[test]
        fn any_unicode_tags_resolve_to_an_intact_owner(
            keys in prop::collection::vec(prop_oneof!["owner|team|squad", "\\PC{1,8}"], 0..4),
            service in prop::collection::vec(("owner|team|squad|\\PC{1,8}", tag_value()), 0..4),
            cluster in prop::collection::vec(("owner|team|squad|\\PC{1,8}", tag_value()), 0..4),
            default in prop::option::of(tag_value()),
        ) {
            let account: AccountId = "111111111111".parse().unwrap();
            let defaults = default.iter().map(|d| (account.clone(), d.clone())).collect();
            let r = OwnerResolver::new(keys.clone(), defaults);
            let (service, cluster) = (tags_of(service), tags_of(cluster));
            let (owner, source) = r.resolve(&service, &cluster, &account);
            let first = |tags: &Tags| {
                keys.iter()
                    .filter_map(|k| tags.get(k))
                    .map(|v| v.trim())
                    .find(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            let expected = first(&service)
                .map(|o| (o, OwnerSource::ServiceTag))
                .or_else(|| first(&cluster).map(|o| (o, OwnerSource::ClusterTag)))
                .or_else(|| default.map(|o| (o, OwnerSource::AccountDefault)))
                .unwrap_or((UNOWNED.to_owned(), OwnerSource::Unowned));
            prop_assert_eq!((owner, source), expected);
        }
    }

    #[test]
    fn unicode_owners_come_through_intact() {
        let r = resolver();
        let a: AccountId = "222222222222".parse().unwrap();
        for name in [
            "決済チーム",
            "équipe",
            "e\u{301}quipe",
            "🚀",
            "ｔｅａｍ１２",
        ] {
            let svc = tags(&[("owner", &format!(" {name}\u{3000}"))]);
            assert_eq!(r.resolve(&svc, &Tags::new(), &a).0, name);
        }
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
