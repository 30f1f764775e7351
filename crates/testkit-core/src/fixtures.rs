//! Records for seeding the fakes: the plain shape a test then changes where it matters.

use chrono::{DateTime, NaiveDate, Utc};
use restart_core::ServiceId;
use restart_core::catalog::CatalogRecord;
use restart_core::owner::OwnerSource;
use restart_core::service::{
    Deployment, DeploymentController, DeploymentStatus, RolloutState, SchedulingStrategy,
    ServiceSnapshot, ServiceStatus,
};
use restart_core::tag::TagStateKind;
use restart_core::tag::Tags;

/// The service `service` of `cluster` in `account`, in eu-west-1.
///
/// # Panics
/// When `account` is not 12 digits.
pub fn service_id(account: &str, cluster: &str, service: &str) -> ServiceId {
    ServiceId {
        account: account.parse().expect("an account id"),
        region: "eu-west-1".into(),
        cluster: cluster.into(),
        service: service.into(),
    }
}

/// A service as ECS describes it: active with two replicas running under the ECS controller
/// (100% / 200%), no deployment, the given tags. A test adds deployments where it needs them.
pub fn active_snapshot(id: ServiceId, tags: Tags) -> ServiceSnapshot {
    ServiceSnapshot {
        arn: id.arn("aws"),
        id,
        status: ServiceStatus::Active,
        desired: 2,
        running: 2,
        scheduling: SchedulingStrategy::Replica,
        controller: DeploymentController::Ecs,
        min_healthy_percent: 100,
        max_percent: 200,
        deployments: vec![],
        tags,
        deployment_alarms: vec![],
    }
}

/// The PRIMARY deployment `id` of two tasks, created at `created` and last updated at
/// `updated`, in `rollout` (all tasks running once COMPLETED, one while IN_PROGRESS, none once
/// FAILED); no task definition, not a rollback.
pub fn primary_deployment(
    id: impl Into<String>,
    rollout: RolloutState,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
) -> Deployment {
    Deployment {
        id: id.into(),
        status: DeploymentStatus::Primary,
        rollout_state: Some(rollout),
        desired: 2,
        running: match rollout {
            RolloutState::Completed => 2,
            RolloutState::InProgress => 1,
            RolloutState::Failed => 0,
        },
        created_at: Some(created),
        updated_at: Some(updated),
        task_definition: None,
        rollback: false,
    }
}

/// The catalog record of a service enrolled by its own tag (`enabled`), owned by `owner`
/// (from the service's tag), active with two replicas under the ECS controller (100% / 200%),
/// first seen on 2026-10-01 and last on `seen`, with nothing to skip it and no restart timed.
pub fn enrolled_record(id: ServiceId, owner: impl Into<String>, seen: NaiveDate) -> CatalogRecord {
    CatalogRecord {
        arn: id.arn("aws"),
        id,
        owner: owner.into(),
        owner_source: OwnerSource::ServiceTag,
        tag_value: Some("enabled".into()),
        tag_state: TagStateKind::Enrolled,
        status: ServiceStatus::Active,
        desired: 2,
        scheduling: SchedulingStrategy::Replica,
        controller: DeploymentController::Ecs,
        min_healthy_percent: 100,
        max_percent: 200,
        skip_reason: None,
        first_seen: NaiveDate::from_ymd_opt(2026, 10, 1).expect("a date"),
        last_seen: seen,
        gone_since: None,
    }
}
