//! The cooldown (docs/design.md 3.7): per owner, service and kind of finding, the last night it
//! was told, and how far each night's digest went out; from these, which findings are told
//! tonight (`NOTICE_COOLDOWN_DAYS`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::findings::{Finding, FindingKind};
use crate::ids::ServiceId;

/// A notice once sent: the last night `owner` was told `kind` about `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeSent {
    pub owner: String,
    pub id: ServiceId,
    pub kind: FindingKind,
    pub night: NaiveDate,
    pub sent_at: DateTime<Utc>,
}

/// How far one owner's digest of one night went out: `sent` of `parts` messages. Complete
/// when `sent >= parts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSent {
    pub owner: String,
    pub night: NaiveDate,
    pub parts: u32,
    pub sent: u32,
    pub at: DateTime<Utc>,
}

impl DigestSent {
    pub fn complete(&self) -> bool {
        self.sent >= self.parts
    }
}

/// What the table knows of one owner's notices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerNotices {
    pub notices: Vec<NoticeSent>,
    pub digests: Vec<DigestSent>,
}

impl OwnerNotices {
    /// The digest of `night`, if any part of it went out.
    pub fn digest(&self, night: NaiveDate) -> Option<&DigestSent> {
        self.digests.iter().find(|d| d.night == night)
    }

    /// The last night each (service, kind) was told.
    pub fn last_told(&self) -> BTreeMap<(ServiceId, FindingKind), NaiveDate> {
        let mut out = BTreeMap::new();
        for n in &self.notices {
            let e = out.entry((n.id.clone(), n.kind)).or_insert(n.night);
            *e = (*e).max(n.night);
        }
        out
    }
}

/// Whether a finding is told on `night`: never told before, told this same night (a rerun
/// rebuilds the same digest), or last told at least `cooldown_days` nights ago. A new kind for
/// a service is never held back by another kind's notice.
pub fn is_due(last: Option<NaiveDate>, night: NaiveDate, cooldown_days: u32) -> bool {
    match last {
        None => true,
        Some(last) if last == night => true,
        Some(last) => (night - last).num_days() >= i64::from(cooldown_days),
    }
}

/// The findings told tonight, and how many the cooldown held back.
pub fn due(
    findings: &[Finding],
    last: &BTreeMap<(ServiceId, FindingKind), NaiveDate>,
    night: NaiveDate,
    cooldown_days: u32,
) -> (Vec<Finding>, usize) {
    let (due, held): (Vec<Finding>, Vec<Finding>) = findings.iter().cloned().partition(|f| {
        is_due(
            last.get(&(f.id.clone(), f.kind)).copied(),
            night,
            cooldown_days,
        )
    });
    (due, held.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::SkipReason;
    use crate::notice::findings::findings;
    use crate::notice::fixtures::{night, record, sid};
    use crate::outcome::NightState;

    #[test]
    fn the_cooldown_holds_repeats_but_not_new_kinds_or_the_same_night() {
        let a = sid("111111111111", "pay", "api");
        let untagged = record(
            &a,
            "payments",
            NightState::Skipped,
            Some(SkipReason::Untagged),
        );
        let f = findings(night(), &[untagged], &[], &[]);
        let told: NaiveDate = "2026-11-21".parse().unwrap();
        let last = BTreeMap::from([((a.clone(), FindingKind::Untagged), told)]);
        assert_eq!(due(&f, &last, night(), 7), (vec![], 1));
        assert_eq!(due(&f, &last, told + chrono::Days::new(7), 7).1, 0);
        assert_eq!(
            due(&f, &last, told, 7).0.len(),
            1,
            "a rerun of the same night"
        );
        let other = BTreeMap::from([((a, FindingKind::DowntimeRisk), told)]);
        assert_eq!(due(&f, &other, night(), 7).0.len(), 1, "a new kind");
        assert!(is_due(Some(told), night(), 0));
    }
}
