//! Eligibility (docs/design.md 3.3): whether a service may be restarted tonight, and if not, why.
//!
//! Checked at planning time against the catalog and again, live, just before each restart.
//! The checks run in a fixed order and the first that applies is the recorded reason:
//!
//! 1. `not_found` / `inactive` (DRAINING counts as inactive: the service is being deleted)
//! 2. `needs_long_arn` (an old-format ARN cannot carry the enrollment tag)
//! 3. `opted_out`, `snoozed`, then `untagged` (only with `UNTAGGED_POLICY=notify`)
//! 4. `controller_code_deploy`, `controller_external` (a forced rolling deployment does not apply)
//! 5. `desired_zero`
//! 6. `already_restarted_tonight` (the tag or tonight's record says so)
//! 7. `deployment_in_progress`
//! 8. `downtime_risk`, `deployment_blocked` (REPLICA services only; skipped unless
//!    `RISK_POLICY=restart`). DAEMON services are restarted normally: ECS stops a daemon task
//!    before starting its replacement, so their percentages do not carry these risks.
//!
//! One more reason is decided only at the live check, because it depends on the moment of the
//! restart rather than on the plan: `recently_deployed` ([`recent_deployment`]), after all of
//! the above pass.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::service::{
    Deployment, DeploymentController, RolloutState, SchedulingStrategy, ServiceSnapshot,
    ServiceStatus,
};
use crate::tag::TagState;

/// Why a service is not restarted tonight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Untagged,
    OptedOut,
    Snoozed,
    ControllerCodeDeploy,
    ControllerExternal,
    DesiredZero,
    DeploymentInProgress,
    AlreadyRestartedTonight,
    NotFound,
    Inactive,
    DowntimeRisk,
    DeploymentBlocked,
    NeedsLongArn,
    /// Decided during the night: the window ended before this restart could start.
    WindowClosed,
    /// Decided during the night: the account was lost before this restart started.
    AccountUnreachable,
    /// Decided at the live check: a deployment of the owners completed within
    /// `SKIP_IF_DEPLOYED_WITHIN_HOURS`, so the service already runs fresh tasks.
    RecentlyDeployed,
    /// Decided during the night: the change calendar (`CHANGE_CALENDAR`) was CLOSED when this
    /// restart would have started.
    ChangeFreeze,
    /// Decided at the live check, with `BLOCK_ON_SERVICE_ALARMS`: one of the service's own
    /// deployment alarms is in ALARM.
    AlarmFiring,
}

impl SkipReason {
    pub const ALL: [SkipReason; 18] = [
        Self::Untagged,
        Self::OptedOut,
        Self::Snoozed,
        Self::ControllerCodeDeploy,
        Self::ControllerExternal,
        Self::DesiredZero,
        Self::DeploymentInProgress,
        Self::AlreadyRestartedTonight,
        Self::NotFound,
        Self::Inactive,
        Self::DowntimeRisk,
        Self::DeploymentBlocked,
        Self::NeedsLongArn,
        Self::WindowClosed,
        Self::AccountUnreachable,
        Self::RecentlyDeployed,
        Self::ChangeFreeze,
        Self::AlarmFiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untagged => "untagged",
            Self::OptedOut => "opted_out",
            Self::Snoozed => "snoozed",
            Self::ControllerCodeDeploy => "controller_code_deploy",
            Self::ControllerExternal => "controller_external",
            Self::DesiredZero => "desired_zero",
            Self::DeploymentInProgress => "deployment_in_progress",
            Self::AlreadyRestartedTonight => "already_restarted_tonight",
            Self::NotFound => "not_found",
            Self::Inactive => "inactive",
            Self::DowntimeRisk => "downtime_risk",
            Self::DeploymentBlocked => "deployment_blocked",
            Self::NeedsLongArn => "needs_long_arn",
            Self::WindowClosed => "window_closed",
            Self::AccountUnreachable => "account_unreachable",
            Self::RecentlyDeployed => "recently_deployed",
            Self::ChangeFreeze => "change_freeze",
            Self::AlarmFiring => "alarm_firing",
        }
    }

    /// Whether the owner can act on it and so hears about it in their digest.
    pub fn owner_actionable(self) -> bool {
        matches!(
            self,
            Self::Untagged
                | Self::ControllerCodeDeploy
                | Self::ControllerExternal
                | Self::DowntimeRisk
                | Self::DeploymentBlocked
                | Self::NeedsLongArn
                | Self::AlarmFiring
        )
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `UNTAGGED_POLICY`: what happens to services without the enrollment tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UntaggedPolicy {
    /// Not restarted; the owner is told the tag is missing.
    #[default]
    Notify,
    /// Restarted like enrolled services; the owner is still told.
    Restart,
}

/// `RISK_POLICY`: what happens to `downtime_risk` and `deployment_blocked` services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskPolicy {
    /// Skipped, and the owner is told.
    #[default]
    Skip,
    /// Restarted anyway; the owner is still told.
    Restart,
}

/// The policies eligibility applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub untagged: UntaggedPolicy,
    pub risk: RiskPolicy,
}

/// What tonight already knows about the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tonight {
    /// The start of tonight's window: a tag timestamp at or after it means restarted tonight.
    pub window_start: DateTime<Utc>,
    /// Tonight's record already holds a start (or an outcome) for this service.
    pub restarted_tonight: bool,
}

/// The restart risk the service's deployment configuration carries, if any. Only REPLICA
/// services are judged; DAEMON services are restarted normally.
pub fn restart_risk(s: &ServiceSnapshot) -> Option<SkipReason> {
    if s.scheduling == SchedulingStrategy::Daemon || s.desired == 0 {
        return None;
    }
    let desired = u64::from(s.desired);
    let min_healthy = (desired * u64::from(s.min_healthy_percent)).div_ceil(100);
    let max_running = desired * u64::from(s.max_percent) / 100;
    if min_healthy == 0 {
        Some(SkipReason::DowntimeRisk)
    } else if min_healthy >= desired && max_running <= desired {
        Some(SkipReason::DeploymentBlocked)
    } else {
        None
    }
}

/// Whether the service may be restarted tonight: `Ok(())`, or the first skip reason that applies.
/// `service` is `None` when ECS no longer knows the service.
pub fn check(
    service: Option<&ServiceSnapshot>,
    tag: &TagState,
    tonight: &Tonight,
    policy: &Policy,
) -> Result<(), SkipReason> {
    let Some(s) = service else {
        return Err(SkipReason::NotFound);
    };
    if s.status != ServiceStatus::Active {
        return Err(SkipReason::Inactive);
    }
    if s.arn.is_old_format() {
        return Err(SkipReason::NeedsLongArn);
    }
    match tag {
        TagState::OptedOut => return Err(SkipReason::OptedOut),
        TagState::Snoozed { .. } => return Err(SkipReason::Snoozed),
        TagState::Untagged if policy.untagged == UntaggedPolicy::Notify => {
            return Err(SkipReason::Untagged);
        }
        _ => {}
    }
    match s.controller {
        DeploymentController::CodeDeploy => return Err(SkipReason::ControllerCodeDeploy),
        DeploymentController::External => return Err(SkipReason::ControllerExternal),
        DeploymentController::Ecs => {}
    }
    if s.desired == 0 {
        return Err(SkipReason::DesiredZero);
    }
    if tonight.restarted_tonight
        || tag
            .last_restart()
            .is_some_and(|t| t >= tonight.window_start)
    {
        return Err(SkipReason::AlreadyRestartedTonight);
    }
    if s.deployment_in_progress() {
        return Err(SkipReason::DeploymentInProgress);
    }
    match restart_risk(s) {
        Some(risk) if policy.risk == RiskPolicy::Skip => Err(risk),
        _ => Ok(()),
    }
}

/// The deployment that makes a restart pointless, if any: the service's PRIMARY deployment,
/// COMPLETED (or with no rollout state and every task running), that finished (its `updatedAt`,
/// else its `createdAt`) less than `within` before `now`, and that is not our own restart (the
/// tag's last verified restart is at or after the deployment's creation: we tag only after our
/// deployment completed). A zero `within` turns the rule off. Deployments without timestamps
/// never count: a restart is not skipped on a guess.
pub fn recent_deployment<'a>(
    s: &'a ServiceSnapshot,
    tag: &TagState,
    now: DateTime<Utc>,
    within: TimeDelta,
) -> Option<&'a Deployment> {
    if within <= TimeDelta::zero() {
        return None;
    }
    let d = s.primary()?;
    let completed = match d.rollout_state {
        Some(RolloutState::Completed) => true,
        None => d.running >= d.desired,
        Some(_) => false,
    };
    let finished = d.updated_at.or(d.created_at)?;
    let ours = tag
        .last_restart()
        .zip(d.created_at)
        .is_some_and(|(tagged, created)| tagged >= created);
    (completed && !ours && finished > now - within).then_some(d)
}

/// What a `recently_deployed` record says: which deployment, when it finished and the setting.
pub fn recent_deployment_detail(d: &Deployment, within: TimeDelta) -> String {
    let at = d.updated_at.or(d.created_at).map_or_else(
        || "?".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    format!(
        "deployment {} completed at {at}, within SKIP_IF_DEPLOYED_WITHIN_HOURS={}: the service already runs fresh tasks",
        d.id,
        within.num_hours()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Deployment, DeploymentStatus, RolloutState};
    use chrono::TimeZone;

    fn window_start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap()
    }

    fn tonight() -> Tonight {
        Tonight {
            window_start: window_start(),
            restarted_tonight: false,
        }
    }

    fn enrolled() -> TagState {
        TagState::Enrolled {
            last_restart: Some(Utc.with_ymd_and_hms(2026, 11, 21, 1, 10, 0).unwrap()),
        }
    }

    /// A healthy, steady REPLICA service that is eligible.
    fn service() -> ServiceSnapshot {
        ServiceSnapshot {
            id: crate::ids::ServiceId {
                account: "111111111111".parse().unwrap(),
                region: "eu-west-1".into(),
                cluster: "payments".into(),
                service: "api".into(),
            },
            arn: "arn:aws:ecs:eu-west-1:111111111111:service/payments/api"
                .parse()
                .unwrap(),
            status: ServiceStatus::Active,
            desired: 3,
            running: 3,
            scheduling: SchedulingStrategy::Replica,
            controller: DeploymentController::Ecs,
            min_healthy_percent: 100,
            max_percent: 200,
            deployments: vec![Deployment {
                id: "ecs-svc/1".into(),
                status: DeploymentStatus::Primary,
                rollout_state: Some(RolloutState::Completed),
                desired: 3,
                running: 3,
                created_at: None,
                updated_at: None,
                task_definition: None,
                rollback: false,
            }],
            tags: Default::default(),
            deployment_alarms: Vec::new(),
        }
    }

    fn check_default(s: &ServiceSnapshot, tag: &TagState) -> Result<(), SkipReason> {
        check(Some(s), tag, &tonight(), &Policy::default())
    }

    #[test]
    fn steady_enrolled_service_is_eligible() {
        assert_eq!(check_default(&service(), &enrolled()), Ok(()));
        let never = TagState::Enrolled { last_restart: None };
        assert_eq!(check_default(&service(), &never), Ok(()));
        let malformed = TagState::Malformed { value: "x".into() };
        assert_eq!(check_default(&service(), &malformed), Ok(()));
    }

    #[test]
    fn missing_service_is_not_found() {
        assert_eq!(
            check(None, &enrolled(), &tonight(), &Policy::default()),
            Err(SkipReason::NotFound)
        );
    }

    #[test]
    fn inactive_and_draining_services_are_inactive() {
        for status in [ServiceStatus::Inactive, ServiceStatus::Draining] {
            let s = ServiceSnapshot {
                status,
                ..service()
            };
            assert_eq!(check_default(&s, &enrolled()), Err(SkipReason::Inactive));
        }
    }

    #[test]
    fn old_arn_needs_long_arn() {
        let s = ServiceSnapshot {
            arn: "arn:aws:ecs:eu-west-1:111111111111:service/api"
                .parse()
                .unwrap(),
            ..service()
        };
        assert_eq!(
            check_default(&s, &TagState::Untagged),
            Err(SkipReason::NeedsLongArn)
        );
    }

    #[test]
    fn untagged_follows_the_policy() {
        assert_eq!(
            check_default(&service(), &TagState::Untagged),
            Err(SkipReason::Untagged)
        );
        let restart = Policy {
            untagged: UntaggedPolicy::Restart,
            ..Policy::default()
        };
        assert_eq!(
            check(Some(&service()), &TagState::Untagged, &tonight(), &restart),
            Ok(())
        );
    }

    #[test]
    fn opted_out_and_snoozed_are_skipped() {
        assert_eq!(
            check_default(&service(), &TagState::OptedOut),
            Err(SkipReason::OptedOut)
        );
        let snoozed = TagState::Snoozed {
            until: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        };
        assert_eq!(
            check_default(&service(), &snoozed),
            Err(SkipReason::Snoozed)
        );
    }

    #[test]
    fn non_ecs_controllers_are_skipped() {
        for (controller, reason) in [
            (
                DeploymentController::CodeDeploy,
                SkipReason::ControllerCodeDeploy,
            ),
            (
                DeploymentController::External,
                SkipReason::ControllerExternal,
            ),
        ] {
            let s = ServiceSnapshot {
                controller,
                ..service()
            };
            assert_eq!(check_default(&s, &enrolled()), Err(reason));
        }
    }

    #[test]
    fn desired_zero_is_skipped() {
        let s = ServiceSnapshot {
            desired: 0,
            running: 0,
            ..service()
        };
        assert_eq!(check_default(&s, &enrolled()), Err(SkipReason::DesiredZero));
    }

    #[test]
    fn a_second_deployment_or_an_in_progress_primary_is_in_progress() {
        let mut s = service();
        s.deployments[0].rollout_state = Some(RolloutState::InProgress);
        assert_eq!(
            check_default(&s, &enrolled()),
            Err(SkipReason::DeploymentInProgress)
        );
        let mut s = service();
        s.deployments.push(Deployment {
            id: "ecs-svc/0".into(),
            status: DeploymentStatus::Active,
            ..s.deployments[0].clone()
        });
        assert_eq!(
            check_default(&s, &enrolled()),
            Err(SkipReason::DeploymentInProgress)
        );
    }

    #[test]
    fn already_restarted_tonight_by_tag_or_by_record() {
        let tagged_tonight = TagState::Enrolled {
            last_restart: Some(window_start() + chrono::TimeDelta::minutes(5)),
        };
        assert_eq!(
            check_default(&service(), &tagged_tonight),
            Err(SkipReason::AlreadyRestartedTonight)
        );
        let recorded = Tonight {
            restarted_tonight: true,
            ..tonight()
        };
        assert_eq!(
            check(Some(&service()), &enrolled(), &recorded, &Policy::default()),
            Err(SkipReason::AlreadyRestartedTonight)
        );
    }

    fn with_percent(desired: u32, min: u32, max: u32) -> ServiceSnapshot {
        ServiceSnapshot {
            desired,
            running: desired,
            min_healthy_percent: min,
            max_percent: max,
            ..service()
        }
    }

    #[test]
    fn downtime_risk_when_every_task_may_stop() {
        // ceil(3 * 0 / 100) = 0; ceil(1 * 49 / 100) = 1, so 49% of one task is not a risk.
        assert_eq!(
            restart_risk(&with_percent(3, 0, 200)),
            Some(SkipReason::DowntimeRisk)
        );
        assert_eq!(restart_risk(&with_percent(1, 49, 200)), None);
        assert_eq!(
            check_default(&with_percent(3, 0, 100), &enrolled()),
            Err(SkipReason::DowntimeRisk)
        );
    }

    #[test]
    fn deployment_blocked_when_ecs_can_neither_start_nor_stop() {
        // ceil(2 * 100 / 100) = 2 = desired and floor(2 * 149 / 100) = 2 = desired.
        assert_eq!(
            restart_risk(&with_percent(2, 100, 149)),
            Some(SkipReason::DeploymentBlocked)
        );
        // floor(2 * 150 / 100) = 3 > 2: one extra task may start.
        assert_eq!(restart_risk(&with_percent(2, 100, 150)), None);
        // ceil(4 * 75 / 100) = 3 < 4: one task may stop.
        assert_eq!(restart_risk(&with_percent(4, 75, 100)), None);
        // ceil(3 * 67 / 100) = 3 = desired (rounding up blocks it too).
        assert_eq!(
            restart_risk(&with_percent(3, 67, 100)),
            Some(SkipReason::DeploymentBlocked)
        );
    }

    #[test]
    fn risk_policy_restart_lets_risky_services_through() {
        let restart = Policy {
            risk: RiskPolicy::Restart,
            ..Policy::default()
        };
        for s in [with_percent(3, 0, 200), with_percent(2, 100, 100)] {
            assert_eq!(check(Some(&s), &enrolled(), &tonight(), &restart), Ok(()));
        }
    }

    #[test]
    fn daemon_services_are_restarted_normally() {
        let s = ServiceSnapshot {
            scheduling: SchedulingStrategy::Daemon,
            ..with_percent(5, 0, 100)
        };
        assert_eq!(restart_risk(&s), None);
        assert_eq!(check_default(&s, &enrolled()), Ok(()));
    }

    #[test]
    fn reasons_have_their_contract_names() {
        for r in SkipReason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
    }

    /// The service of [`service`] whose PRIMARY deployment was created at `created` and
    /// finished (updatedAt) at `finished`, in `rollout`.
    fn deployed(
        created: DateTime<Utc>,
        finished: DateTime<Utc>,
        rollout: Option<RolloutState>,
    ) -> ServiceSnapshot {
        let mut s = service();
        s.deployments[0].created_at = Some(created);
        s.deployments[0].updated_at = Some(finished);
        s.deployments[0].rollout_state = rollout;
        s
    }

    fn hours(h: i64) -> TimeDelta {
        TimeDelta::hours(h)
    }

    #[test]
    fn a_deployment_of_the_owners_within_the_hours_makes_the_restart_pointless() {
        let now = window_start() + hours(2);
        let done = Some(RolloutState::Completed);
        // Deployed by the owners' CI at 16:00, finished at 16:10; the live check at 02:00.
        let s = deployed(
            now - hours(10),
            now - hours(10) + TimeDelta::minutes(10),
            done,
        );
        let d = recent_deployment(&s, &enrolled(), now, hours(12)).unwrap();
        assert_eq!(d.id, "ecs-svc/1");
        let detail = recent_deployment_detail(d, hours(12));
        assert!(
            detail.contains("ecs-svc/1") && detail.contains("SKIP_IF_DEPLOYED_WITHIN_HOURS=12")
        );
        assert!(detail.contains("2026-11-21T16:10:00Z"), "{detail}");
        // Older than the setting, the setting off, or still rolling: restarted (or left to
        // deployment_in_progress).
        assert!(recent_deployment(&s, &enrolled(), now, hours(9)).is_none());
        assert!(recent_deployment(&s, &enrolled(), now, TimeDelta::zero()).is_none());
        let rolling = deployed(
            now - hours(1),
            now - hours(1),
            Some(RolloutState::InProgress),
        );
        assert!(recent_deployment(&rolling, &enrolled(), now, hours(12)).is_none());
        // No rollout state: finished when every task runs.
        let mut legacy = deployed(now - hours(3), now - hours(3), None);
        assert!(recent_deployment(&legacy, &enrolled(), now, hours(12)).is_some());
        legacy.deployments[0].running = 1;
        assert!(recent_deployment(&legacy, &enrolled(), now, hours(12)).is_none());
    }

    #[test]
    fn our_own_restart_and_deployments_without_times_never_count() {
        let now = window_start() + hours(2);
        // Our restart of last night: the tag (written after it completed) is after its creation.
        let ours_at = now - hours(5);
        let s = deployed(
            ours_at,
            ours_at + TimeDelta::minutes(4),
            Some(RolloutState::Completed),
        );
        let tagged = TagState::Enrolled {
            last_restart: Some(ours_at + TimeDelta::minutes(5)),
        };
        assert!(recent_deployment(&s, &tagged, now, hours(12)).is_none());
        // An older tag: this deployment is someone else's.
        assert!(recent_deployment(&s, &enrolled(), now, hours(12)).is_some());
        let mut untimed = s.clone();
        untimed.deployments[0].created_at = None;
        untimed.deployments[0].updated_at = None;
        assert!(recent_deployment(&untimed, &enrolled(), now, hours(12)).is_none());
    }

    proptest::proptest! {
        /// Whatever the times: a deployment counts exactly when it is completed, finished less
        /// than `within` before now, and created after the tag's last restart.
        #[test]
        fn recent_exactly_when_finished_within_and_not_ours(
            created in -100_000i64..100_000,
            took in 0i64..10_000,
            tagged in proptest::option::of(-100_000i64..100_000),
            within_hours in 0i64..48,
        ) {
            let now = window_start();
            let at = |m: i64| now + TimeDelta::minutes(m);
            let s = deployed(at(created), at(created + took), Some(RolloutState::Completed));
            let tag = TagState::Enrolled { last_restart: tagged.map(at) };
            let within = hours(within_hours);
            let expected = within_hours > 0
                && at(created + took) > now - within
                && tagged.is_none_or(|t| t < created);
            proptest::prop_assert_eq!(recent_deployment(&s, &tag, now, within).is_some(), expected);
        }
    }
}
