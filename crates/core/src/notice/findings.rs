//! Owner findings of a night (docs/design.md 3.1-3.4): what an owner is told about a service,
//! gathered from the night's records and the catalog.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogRecord;
use crate::eligibility::SkipReason;
use crate::ids::{ServiceArn, ServiceId};
use crate::night::NightRecord;
use crate::outcome::NightState;
use crate::tag::TagStateKind;
use crate::text::cut;

/// The owner that services without one are routed to (docs/design.md 3.2).
pub const UNOWNED: &str = "unowned";
/// The longest `detail` quoted in a notice; longer ones are cut.
pub const MAX_DETAIL_CHARS: usize = 1_000;

/// What an owner is told about a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The enrollment tag is absent.
    Untagged,
    /// The enrollment tag holds a value the contract does not know (treated as enrolled).
    MalformedTag,
    /// ceil(desired × minimumHealthyPercent / 100) = 0.
    DowntimeRisk,
    /// ECS can neither start nor stop a task with these percentages.
    DeploymentBlocked,
    ControllerCodeDeploy,
    ControllerExternal,
    /// An old-format ARN: the service cannot carry tags.
    NeedsLongArn,
    /// The restart's deployment failed (rolloutState FAILED).
    RestartFailed,
    /// The restart's deployment was rolled back (circuit breaker).
    RestartRolledBack,
    /// The restart did not finish within its timeout.
    RestartTimedOut,
    /// One of the service's deployment alarms was in ALARM at its restart
    /// (`BLOCK_ON_SERVICE_ALARMS`): not restarted.
    AlarmFiring,
}

impl FindingKind {
    pub const ALL: [FindingKind; 11] = [
        Self::Untagged,
        Self::MalformedTag,
        Self::DowntimeRisk,
        Self::DeploymentBlocked,
        Self::ControllerCodeDeploy,
        Self::ControllerExternal,
        Self::NeedsLongArn,
        Self::RestartFailed,
        Self::RestartRolledBack,
        Self::RestartTimedOut,
        Self::AlarmFiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untagged => "untagged",
            Self::MalformedTag => "malformed_tag",
            Self::DowntimeRisk => "downtime_risk",
            Self::DeploymentBlocked => "deployment_blocked",
            Self::ControllerCodeDeploy => "controller_code_deploy",
            Self::ControllerExternal => "controller_external",
            Self::NeedsLongArn => "needs_long_arn",
            Self::RestartFailed => "restart_failed",
            Self::RestartRolledBack => "restart_rolled_back",
            Self::RestartTimedOut => "restart_timed_out",
            Self::AlarmFiring => "alarm_firing",
        }
    }

    /// The finding an owner-actionable skip reason makes.
    pub fn from_skip(reason: SkipReason) -> Option<Self> {
        Some(match reason {
            SkipReason::Untagged => Self::Untagged,
            SkipReason::DowntimeRisk => Self::DowntimeRisk,
            SkipReason::DeploymentBlocked => Self::DeploymentBlocked,
            SkipReason::ControllerCodeDeploy => Self::ControllerCodeDeploy,
            SkipReason::ControllerExternal => Self::ControllerExternal,
            SkipReason::NeedsLongArn => Self::NeedsLongArn,
            SkipReason::AlarmFiring => Self::AlarmFiring,
            _ => return None,
        })
    }

    /// The finding a restart outcome makes.
    pub fn from_outcome(state: NightState) -> Option<Self> {
        match state {
            NightState::Failed => Some(Self::RestartFailed),
            NightState::RolledBack => Some(Self::RestartRolledBack),
            NightState::TimedOut => Some(Self::RestartTimedOut),
            _ => None,
        }
    }

    /// A restart that ran and did not succeed (rather than a reason it was not restarted).
    pub fn is_restart_outcome(self) -> bool {
        matches!(
            self,
            Self::RestartFailed | Self::RestartRolledBack | Self::RestartTimedOut
        )
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing an owner is told about one service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub owner: String,
    pub id: ServiceId,
    pub kind: FindingKind,
    pub arn: ServiceArn,
    /// The night the fact was recorded.
    pub night: NaiveDate,
    /// Why a restart failed (restart outcomes), or the tag's value (malformed tag).
    pub detail: Option<String>,
}

/// The owner a notice about a service goes to: the owner recorded, or [`UNOWNED`] when none
/// is (blank) (docs/design.md 3.2).
pub fn owner_of(owner: &str) -> String {
    if owner.trim().is_empty() {
        UNOWNED.to_owned()
    } else {
        owner.to_owned()
    }
}

/// `s` in double quotes, for a value quoted in a message: only `"`, `\` and control
/// characters (line breaks included) are escaped; every other character, accents, combining
/// marks, CJK and emoji included, stays as written (unlike `{:?}`, which escapes combining
/// marks and other characters it deems unprintable).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The owner-actionable findings of `night`: skipped records whose reason the owner can act
/// on, restart outcomes that did not succeed (of `records`, tonight, and of `previous`, last
/// night's records, whose outcomes came in after last night's digest), and catalog records seen
/// tonight whose tag is malformed, or absent on a service that was not skipped (restarted
/// anyway with `UNTAGGED_POLICY=restart`: still told), or whose discovery judged an
/// owner-actionable risk (told even when `RISK_POLICY=restart` restarts it).
///
/// One finding per service and kind, sorted by owner, service, kind.
pub fn findings(
    night: NaiveDate,
    records: &[NightRecord],
    previous: &[NightRecord],
    catalog: &[CatalogRecord],
) -> Vec<Finding> {
    let mut out: BTreeMap<(String, ServiceId, FindingKind), Finding> = BTreeMap::new();
    let mut add = |f: Finding| {
        out.entry((f.owner.clone(), f.id.clone(), f.kind))
            .or_insert(f);
    };
    for r in records.iter().chain(previous) {
        let kind = match r.state {
            NightState::Skipped if r.night == night => {
                r.skip_reason.and_then(FindingKind::from_skip)
            }
            state => FindingKind::from_outcome(state),
        };
        if let Some(kind) = kind {
            add(Finding {
                owner: owner_of(&r.owner),
                id: r.id.clone(),
                kind,
                arn: r.arn.clone(),
                night: r.night,
                detail: r.detail.as_deref().map(|d| cut(d, MAX_DETAIL_CHARS)),
            });
        }
    }
    // A service skipped tonight was told by its record; a missing tag on it adds nothing (it
    // may not even be taggable).
    let skipped: BTreeSet<&ServiceId> = records
        .iter()
        .filter(|r| r.state == NightState::Skipped)
        .map(|r| &r.id)
        .collect();
    for c in catalog {
        if c.last_seen != night || c.gone_since.is_some() {
            continue;
        }
        let mut kinds = Vec::new();
        match c.tag_state {
            TagStateKind::Malformed => kinds.push(FindingKind::MalformedTag),
            TagStateKind::Untagged if !skipped.contains(&c.id) => {
                kinds.push(FindingKind::Untagged);
            }
            _ => {}
        }
        if let Some(kind) = c
            .skip_reason
            .filter(|r| r.owner_actionable())
            .and_then(FindingKind::from_skip)
        {
            kinds.push(kind);
        }
        for kind in kinds {
            add(Finding {
                owner: owner_of(&c.owner),
                id: c.id.clone(),
                kind,
                arn: c.arn.clone(),
                night,
                detail: (kind == FindingKind::MalformedTag)
                    .then(|| c.tag_value.as_deref().map(|v| cut(v, 256)))
                    .flatten()
                    .map(|v| format!("tag value {}", quoted(&v))),
            });
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::fixtures::{catalog, night, record, sid};
    use proptest::prelude::*;

    #[test]
    fn findings_come_from_actionable_skips_failed_outcomes_and_the_catalog() {
        let a = sid("111111111111", "pay", "api");
        let b = sid("111111111111", "pay", "worker");
        let c = sid("222222222222", "search", "idx");
        let d = sid("222222222222", "search", "old");
        let mut failed = record(&b, "payments", NightState::Failed, None);
        failed.detail = Some("rolloutState FAILED".into());
        let records = vec![
            record(
                &a,
                "payments",
                NightState::Skipped,
                Some(SkipReason::Untagged),
            ),
            failed,
            record(&c, "", NightState::Skipped, Some(SkipReason::OptedOut)),
            record(&d, "search", NightState::Completed, None),
        ];
        let cat = vec![
            catalog(&a, "payments", TagStateKind::Untagged, None),
            catalog(&d, "search", TagStateKind::Malformed, Some("yes please")),
        ];
        let f = findings(night(), &records, &[], &cat);
        let got: Vec<(&str, &str, FindingKind)> = f
            .iter()
            .map(|f| (f.owner.as_str(), f.id.service.as_str(), f.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("payments", "api", FindingKind::Untagged),
                ("payments", "worker", FindingKind::RestartFailed),
                ("search", "old", FindingKind::MalformedTag),
            ]
        );
        assert_eq!(f[1].detail.as_deref(), Some("rolloutState FAILED"));
        assert_eq!(f[2].detail.as_deref(), Some("tag value \"yes please\""));
        // An owner-less service goes to `unowned`.
        let unowned = record(&c, " ", NightState::Skipped, Some(SkipReason::NeedsLongArn));
        assert_eq!(findings(night(), &[unowned], &[], &[])[0].owner, UNOWNED);
    }

    #[test]
    fn a_malformed_tag_value_is_quoted_as_written() {
        let a = sid("111111111111", "pay", "api");
        for (value, shown) in [
            ("e\u{301}quipe", "tag value \"e\u{301}quipe\""),
            ("決済", "tag value \"決済\""),
            ("say \"yes\"", "tag value \"say \\\"yes\\\"\""),
            ("a\nb", "tag value \"a\\nb\""),
        ] {
            let c = catalog(&a, "payments", TagStateKind::Malformed, Some(value));
            let f = findings(night(), &[], &[], &[c]);
            assert_eq!(f[0].detail.as_deref(), Some(shown));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A finding as JSON carries it (a table item, an event): any JSON decodes or fails,
        /// never panics, and what decodes encodes again.
        #[test]
        fn any_json_decodes_to_a_finding_or_fails(
            v in testkit_core::strategies::any_json("owner|id|kind|arn|night|detail|account|region|cluster|service"),
        ) {
            if let Ok(f) = serde_json::from_value::<Finding>(v) {
                serde_json::to_value(&f).unwrap();
            }
        }
    }
}
