//! Notices (docs/design.md 3.1-3.5): what service owners are told about a night, and when.
//!
//! Pure functions, no I/O:
//! - [`findings`]: the owner-actionable facts of a night, from its records and the catalog;
//! - [`due`]: which of them are told tonight, under the per-owner, per-service, per-kind
//!   cooldown (`NOTICE_COOLDOWN_DAYS`), from what the table knows ([`OwnerNotices`]: each
//!   [`NoticeSent`], each night's [`DigestSent`]);
//! - [`Message`]: a notice ready to publish (subject, body, attributes), what the
//!   `Publisher` port (`ports::Publisher`) takes.
//!
//! How a digest or the night's summary reads is the notifier's (its `digest` and `summary`
//! modules); the SNS limits are the SNS adapter's (`restart_aws::sns`).

mod cooldown;
mod findings;
mod message;

pub use cooldown::{DigestSent, NoticeSent, OwnerNotices, due, is_due};
pub use findings::{Finding, FindingKind, MAX_DETAIL_CHARS, UNOWNED, findings, owner_of};
pub use message::{MAX_SUBJECT_CHARS, Message};

/// Records and services for the tests of this module.
#[cfg(test)]
mod fixtures {
    use chrono::NaiveDate;

    use crate::catalog::CatalogRecord;
    use crate::eligibility::SkipReason;
    use crate::ids::ServiceId;
    use crate::night::NightRecord;
    use crate::outcome::NightState;
    use crate::owner::OwnerSource;
    use crate::service::{DeploymentController, SchedulingStrategy, ServiceStatus};
    use crate::tag::TagStateKind;

    pub fn night() -> NaiveDate {
        "2026-11-22".parse().unwrap()
    }

    pub fn sid(account: &str, cluster: &str, service: &str) -> ServiceId {
        ServiceId {
            account: account.parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: cluster.into(),
            service: service.into(),
        }
    }

    pub fn catalog(
        id: &ServiceId,
        owner: &str,
        tag: TagStateKind,
        value: Option<&str>,
    ) -> CatalogRecord {
        CatalogRecord {
            id: id.clone(),
            arn: id.arn("aws"),
            owner: owner.into(),
            owner_source: OwnerSource::ServiceTag,
            tag_value: value.map(str::to_owned),
            tag_state: tag,
            status: ServiceStatus::Active,
            desired: 2,
            scheduling: SchedulingStrategy::Replica,
            controller: DeploymentController::Ecs,
            min_healthy_percent: 100,
            max_percent: 200,
            skip_reason: None,
            first_seen: night(),
            last_seen: night(),
            gone_since: None,
        }
    }

    pub fn record(
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
}
