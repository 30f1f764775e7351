//! Records, services, text in any script and the subject check, for this crate's unit tests.

use chrono::NaiveDate;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use restart_core::catalog::CatalogRecord;
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::notice::MAX_SUBJECT_CHARS;
use restart_core::outcome::NightState;
use restart_core::tag::TagStateKind;

pub(crate) fn night() -> NaiveDate {
    "2026-11-22".parse().unwrap()
}

pub(crate) fn sid(account: &str, cluster: &str, service: &str) -> ServiceId {
    testkit::fixtures::service_id(account, cluster, service)
}

pub(crate) fn catalog(
    id: &ServiceId,
    owner: &str,
    tag: TagStateKind,
    value: Option<&str>,
) -> CatalogRecord {
    CatalogRecord {
        tag_value: value.map(str::to_owned),
        tag_state: tag,
        first_seen: night(),
        ..testkit::fixtures::enrolled_record(id.clone(), owner, night())
    }
}

pub(crate) fn record(
    id: &ServiceId,
    owner: &str,
    state: NightState,
    reason: Option<SkipReason>,
) -> NightRecord {
    let c = catalog(id, owner, TagStateKind::Enrolled, None);
    let mut r = match reason {
        Some(reason) => NightRecord::skipped(&c, night(), reason),
        None => NightRecord::planned(&c, night(), 0, "2026-11-22T00:10:00Z".parse().unwrap()),
    };
    r.state = state;
    r
}

/// Text a person wrote, of at most `max` characters.
pub(crate) use testkit::strategies::written as text;

/// What SNS takes as a subject (see [`MAX_SUBJECT_CHARS`]).
pub(crate) fn assert_subject(s: &str) -> Result<(), TestCaseError> {
    prop_assert!(s.len() <= MAX_SUBJECT_CHARS && s.len() < 100, "{s:?}");
    prop_assert!(s.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{s:?}");
    prop_assert!(
        s.chars().next().is_none_or(|c| c.is_ascii_graphic()),
        "{s:?}"
    );
    Ok(())
}

/// A record of tonight for `id`, with an owner-actionable outcome or skip.
pub(crate) fn any_record(
    id: ServiceId,
    owner: String,
    kind: usize,
    detail: Option<String>,
) -> NightRecord {
    let mut r = NightRecord::unbatched(id.clone(), id.arn("aws"), night(), owner);
    let outcomes = [
        NightState::Failed,
        NightState::RolledBack,
        NightState::TimedOut,
    ];
    let skips = [
        SkipReason::Untagged,
        SkipReason::DowntimeRisk,
        SkipReason::DeploymentBlocked,
        SkipReason::ControllerCodeDeploy,
        SkipReason::ControllerExternal,
        SkipReason::NeedsLongArn,
        SkipReason::OptedOut,
    ];
    match outcomes.get(kind) {
        Some(&state) => r.state = state,
        None => r.skip_reason = Some(skips[(kind - outcomes.len()) % skips.len()]),
    }
    r.detail = detail;
    r
}
