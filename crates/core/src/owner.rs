//! Owner resolution (docs/design.md 3.2).
//!
//! The owner of a service is the first present of: the service's tags named in
//! `OWNER_TAG_KEYS` (in that order), the same keys on its cluster, the account's default owner
//! from configuration, else [`UNOWNED`] (routed to the platform team). A tag whose value is
//! blank counts as absent.
//!
//! An account's default owner comes from the table's configuration items (`restartctl config
//! set owner`, read through the [`SettingsStore`](crate::ports::SettingsStore) port) and, for a
//! small fleet, from `ACCOUNT_OWNERS`; the table wins ([`OwnerResolver::with_account_owners`]).
//! Owners kept in the table are [`AccountOwner`]s: checked once, where they are written.

use std::collections::BTreeMap;

use crate::ids::AccountId;
use crate::tag::Tags;

/// The owner of services nobody claims.
pub const UNOWNED: &str = "unowned";

/// The most characters an account's default owner has: as many as an ECS tag value, so that
/// an owner from the account is never longer than one from a tag.
pub const MAX_OWNER_CHARS: usize = 256;

/// Why a text is not an account's default owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("the owner is empty")]
    Blank,
    #[error("the owner is {0} characters long; at most {MAX_OWNER_CHARS}")]
    TooLong(usize),
    #[error(
        "the owner holds a control character ({0:?}); line breaks and tabs included, none is allowed"
    )]
    Control(char),
}

/// An account's default owner, as the table keeps it: the text given without the spaces around
/// it, not empty, at most [`MAX_OWNER_CHARS`] characters (as Unicode counts them: any script,
/// accents, combining marks and emoji welcome), no control character (a line break would end
/// up in subjects and message attributes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AccountOwner(String);

impl AccountOwner {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::str::FromStr for AccountOwner {
    type Err = OwnerError;

    fn from_str(raw: &str) -> Result<Self, OwnerError> {
        let owner = raw.trim();
        if owner.is_empty() {
            return Err(OwnerError::Blank);
        }
        if let Some(c) = owner.chars().find(|c| c.is_control()) {
            return Err(OwnerError::Control(c));
        }
        let n = owner.chars().count();
        if n > MAX_OWNER_CHARS {
            return Err(OwnerError::TooLong(n));
        }
        Ok(Self(owner.to_owned()))
    }
}

impl std::fmt::Display for AccountOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AccountOwner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

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

    /// The same resolver with `owners` (the table's account owners) merged over the account
    /// defaults it has (`ACCOUNT_OWNERS`): where both name an account, `owners` wins.
    #[must_use]
    pub fn with_account_owners(mut self, owners: BTreeMap<AccountId, AccountOwner>) -> Self {
        self.account_owners
            .extend(owners.into_iter().map(|(a, o)| (a, o.into_string())));
        self
    }

    /// Each account's default owner.
    pub fn account_owners(&self) -> &BTreeMap<AccountId, String> {
        &self.account_owners
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
    fn the_tables_owners_win_over_the_configured_ones() {
        let a: AccountId = "111111111111".parse().unwrap();
        let b: AccountId = "222222222222".parse().unwrap();
        let c: AccountId = "333333333333".parse().unwrap();
        let table = [
            (a.clone(), "決済チーム".parse().unwrap()),
            (b.clone(), "search".parse().unwrap()),
        ]
        .into_iter()
        .collect();
        let r = OwnerResolver::new(
            vec!["owner".into()],
            [
                (a.clone(), "from-env".to_owned()),
                (c.clone(), "ops".to_owned()),
            ]
            .into_iter()
            .collect(),
        )
        .with_account_owners(table);
        let none = Tags::new();
        assert_eq!(
            r.resolve(&none, &none, &a),
            ("決済チーム".into(), OwnerSource::AccountDefault)
        );
        assert_eq!(r.resolve(&none, &none, &b).0, "search");
        assert_eq!(r.resolve(&none, &none, &c).0, "ops", "the fallback stays");
        assert_eq!(r.account_owners().len(), 3);
        // A tag still wins over any default.
        assert_eq!(r.resolve(&tags(&[("owner", "t")]), &none, &a).0, "t");
    }

    #[test]
    fn account_owners_are_trimmed_unicode_and_refused_when_unusable() {
        for (raw, kept) in [
            ("  payments ", "payments"),
            ("決済チーム", "決済チーム"),
            ("e\u{301}quipe 🚀", "e\u{301}quipe 🚀"),
            ("ｔｅａｍ１２\u{3000}", "ｔｅａｍ１２"),
        ] {
            assert_eq!(raw.parse::<AccountOwner>().unwrap().as_str(), kept);
        }
        assert_eq!("".parse::<AccountOwner>(), Err(OwnerError::Blank));
        assert_eq!(" \u{3000} ".parse::<AccountOwner>(), Err(OwnerError::Blank));
        assert_eq!(
            "a\nb".parse::<AccountOwner>(),
            Err(OwnerError::Control('\n'))
        );
        assert_eq!(
            "a\u{7}b".parse::<AccountOwner>(),
            Err(OwnerError::Control('\u{7}'))
        );
        let longest = "é".repeat(MAX_OWNER_CHARS);
        assert!(longest.parse::<AccountOwner>().is_ok());
        assert_eq!(
            format!("{longest}x").parse::<AccountOwner>(),
            Err(OwnerError::TooLong(MAX_OWNER_CHARS + 1))
        );
        let json: AccountOwner = serde_json::from_str("\" 決済 \"").unwrap();
        assert_eq!(json.as_str(), "決済");
        assert!(serde_json::from_str::<AccountOwner>("\"\"").is_err());
    }

    proptest! {
        /// Any text: an owner is either refused or kept as written without its spaces, never
        /// longer than the limit, never holding a control character.
        #[test]
        fn any_text_is_an_owner_or_refused(raw in tag_value()) {
            if let Ok(o) = raw.parse::<AccountOwner>() {
                prop_assert_eq!(o.as_str(), raw.trim());
                prop_assert!(!o.as_str().is_empty());
                prop_assert!(o.as_str().chars().count() <= MAX_OWNER_CHARS);
                prop_assert!(!o.as_str().chars().any(char::is_control));
            }
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
