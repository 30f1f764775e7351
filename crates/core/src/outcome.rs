//! A service's night: its states, the moves allowed between them, and the verification of a
//! restart (docs/design.md 3.4, 3.7).
//!
//! ```text
//!            ┌─────────► skipped
//! (none) ──► planned ──► started ──► completed | failed | rolled_back | superseded | timed_out | vanished
//!    │          └─────────► halted
//!    └──► skipped   (not eligible at planning)
//! ```
//! Terminal states never move again, except that an on-call engineer may force a new start.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::service::{RolloutState, ServiceSnapshot, ServiceStatus};

/// Where one service stands in one night.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NightState {
    Planned,
    Started,
    Completed,
    Failed,
    RolledBack,
    /// A deployment with another task definition (a deploy by its owners) replaced ours:
    /// neither a success nor a failure.
    Superseded,
    TimedOut,
    Vanished,
    Skipped,
    Halted,
}

impl NightState {
    pub const ALL: [NightState; 10] = [
        Self::Planned,
        Self::Started,
        Self::Completed,
        Self::Failed,
        Self::RolledBack,
        Self::Superseded,
        Self::TimedOut,
        Self::Vanished,
        Self::Skipped,
        Self::Halted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Superseded => "superseded",
            Self::TimedOut => "timed_out",
            Self::Vanished => "vanished",
            Self::Skipped => "skipped",
            Self::Halted => "halted",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Planned | Self::Started)
    }

    /// The outcomes of a restart that ran: what the night's circuit breaker counts as finished.
    pub fn is_restart_outcome(self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Failed
                | Self::RolledBack
                | Self::Superseded
                | Self::TimedOut
                | Self::Vanished
        )
    }

    /// A finished restart that did not succeed (counted by the circuit breaker as a failure).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::RolledBack | Self::TimedOut)
    }

    /// The states a record may hold just before moving to `self`. `None` stands for "no record
    /// yet". This table is what the store's conditional writes enforce.
    pub fn allowed_from(self) -> &'static [Option<NightState>] {
        use NightState::*;
        match self {
            Planned => &[None],
            Started => &[Some(Planned)],
            Completed | Failed | RolledBack | Superseded | TimedOut | Vanished => &[Some(Started)],
            Skipped => &[None, Some(Planned)],
            Halted => &[Some(Planned)],
        }
    }
}

impl std::fmt::Display for NightState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move the contract forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a service cannot move from {} to {to}{}", from.map_or("no record", NightState::as_str), if *forced { " even when forced" } else { "" })]
pub struct TransitionError {
    pub from: Option<NightState>,
    pub to: NightState,
    pub forced: bool,
}

/// Checks one move. A forced start (on-call, explicitly) may begin again from any terminal
/// state or from no record; nothing else moves backwards or starts twice.
pub fn transition(
    from: Option<NightState>,
    to: NightState,
    forced: bool,
) -> Result<NightState, TransitionError> {
    let ok = to.allowed_from().contains(&from)
        || (forced && to == NightState::Started && from.is_none_or(NightState::is_terminal));
    if ok {
        Ok(to)
    } else {
        Err(TransitionError { from, to, forced })
    }
}

/// What one look at a restarted service says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Still rolling, inside the timeout.
    Pending,
    /// Our deployment is PRIMARY and finished; `at` is when ECS last updated it (never later
    /// than the look itself).
    Completed {
        at: DateTime<Utc>,
    },
    Failed,
    RolledBack,
    Superseded,
    TimedOut,
    Vanished,
}

impl Verdict {
    /// The night state this verdict moves a started service to, if it ends the restart.
    pub fn outcome(self) -> Option<NightState> {
        match self {
            Self::Pending => None,
            Self::Completed { .. } => Some(NightState::Completed),
            Self::Failed => Some(NightState::Failed),
            Self::RolledBack => Some(NightState::RolledBack),
            Self::Superseded => Some(NightState::Superseded),
            Self::TimedOut => Some(NightState::TimedOut),
            Self::Vanished => Some(NightState::Vanished),
        }
    }
}

/// Judges a restart from what ECS describes now (docs/design.md 3.4).
///
/// - `vanished`: the service is gone, INACTIVE or DRAINING.
/// - `completed`: our deployment (`deployment_id`, kept from UpdateService) is PRIMARY and its
///   rolloutState is COMPLETED, or ECS reports no rolloutState, it is the only deployment and
///   runningCount = desiredCount.
/// - `failed`: our deployment's rolloutState is FAILED, whether it is still PRIMARY (no
///   rollback configured) or already ACTIVE behind the circuit breaker's rollback.
/// - `rolled_back`: the PRIMARY deployment is no longer ours and ours is not seen failing (the
///   rollback has finished and ours is gone, or someone deployed over it). A circuit-breaker
///   rollback leaves a stable service behind; that is not success.
/// - `timed_out`: none of the above and `now - started_at` has reached `timeout`.
pub fn verify(
    observed: Option<&ServiceSnapshot>,
    deployment_id: &str,
    task_definition: Option<&str>,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    timeout: TimeDelta,
) -> Verdict {
    let Some(s) = observed.filter(|s| s.status == ServiceStatus::Active) else {
        return Verdict::Vanished;
    };
    let ours = s.deployments.iter().find(|d| d.id == deployment_id);
    if ours.is_some_and(|d| d.rollout_state == Some(RolloutState::Failed)) {
        return Verdict::Failed;
    }
    if let Some(primary) = s.primary() {
        if primary.id != deployment_id {
            // A rollback returns to the task definition we restarted; a deploy by the
            // service's owners brings another one.
            return match (task_definition, primary.task_definition.as_deref()) {
                (Some(ours), Some(now)) if ours != now => Verdict::Superseded,
                _ => Verdict::RolledBack,
            };
        }
        let finished = match primary.rollout_state {
            Some(RolloutState::Completed) => true,
            Some(RolloutState::Failed) => return Verdict::Failed,
            Some(RolloutState::InProgress) => false,
            None => s.deployments.len() == 1 && s.running == s.desired,
        };
        if finished {
            let at = primary.updated_at.map_or(now, |t| t.min(now));
            return Verdict::Completed { at };
        }
    }
    if now - started_at >= timeout {
        Verdict::TimedOut
    } else {
        Verdict::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Deployment, DeploymentStatus};
    use NightState::*;

    #[test]
    fn every_allowed_move() {
        let allowed = [
            (None, Planned),
            (None, Skipped),
            (Some(Planned), Started),
            (Some(Planned), Skipped),
            (Some(Planned), Halted),
            (Some(Started), Completed),
            (Some(Started), Failed),
            (Some(Started), RolledBack),
            (Some(Started), Superseded),
            (Some(Started), TimedOut),
            (Some(Started), Vanished),
        ];
        let all_from: Vec<Option<NightState>> = std::iter::once(None)
            .chain(NightState::ALL.iter().copied().map(Some))
            .collect();
        for from in &all_from {
            for to in NightState::ALL {
                let expected = allowed.contains(&(*from, to));
                assert_eq!(
                    transition(*from, to, false).is_ok(),
                    expected,
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn terminal_states_never_move_unless_a_start_is_forced() {
        for from in NightState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in NightState::ALL {
                assert!(transition(Some(from), to, false).is_err(), "{from} -> {to}");
            }
            assert_eq!(transition(Some(from), Started, true), Ok(Started));
            assert!(transition(Some(from), Completed, true).is_err());
        }
    }

    #[test]
    fn a_second_start_is_refused_even_when_forced() {
        let err = transition(Some(Started), Started, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a service cannot move from started to started even when forced"
        );
        assert_eq!(transition(None, Started, true), Ok(Started));
        assert!(transition(None, Started, false).is_err());
    }

    #[test]
    fn failures_and_outcomes() {
        let failures: Vec<_> = NightState::ALL
            .into_iter()
            .filter(|s| s.is_failure())
            .collect();
        assert_eq!(failures, [Failed, RolledBack, TimedOut]);
        assert!(!Vanished.is_failure() && Vanished.is_restart_outcome());
        assert!(!Skipped.is_restart_outcome() && !Halted.is_restart_outcome());
    }

    // Verification over DescribeServices-shaped snapshots. The adapter tests cover the same
    // rules over recorded wire responses.
    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + min * 60, 0).unwrap()
    }

    fn dep(id: &str, status: DeploymentStatus, rollout: Option<RolloutState>) -> Deployment {
        Deployment {
            id: id.into(),
            status,
            rollout_state: rollout,
            desired: 2,
            running: 2,
            created_at: Some(t(0)),
            updated_at: Some(t(7)),
            task_definition: Some("arn:aws:ecs:eu-west-1:111111111111:task-definition/s:7".into()),
            rollback: false,
        }
    }

    fn snapshot(deployments: Vec<Deployment>) -> ServiceSnapshot {
        ServiceSnapshot {
            id: crate::ids::ServiceId {
                account: "111111111111".parse().unwrap(),
                region: "eu-west-1".into(),
                cluster: "c".into(),
                service: "s".into(),
            },
            arn: "arn:aws:ecs:eu-west-1:111111111111:service/c/s"
                .parse()
                .unwrap(),
            status: ServiceStatus::Active,
            desired: 2,
            running: 2,
            scheduling: crate::service::SchedulingStrategy::Replica,
            controller: crate::service::DeploymentController::Ecs,
            min_healthy_percent: 100,
            max_percent: 200,
            deployments,
            tags: Default::default(),
            deployment_alarms: Vec::new(),
        }
    }

    fn judge(s: Option<&ServiceSnapshot>, now: i64) -> Verdict {
        verify(
            s,
            "ecs-svc/new",
            Some("arn:aws:ecs:eu-west-1:111111111111:task-definition/s:7"),
            t(0),
            t(now),
            TimeDelta::minutes(30),
        )
    }

    use DeploymentStatus::{Active as DActive, Primary};
    use RolloutState::{Completed as RCompleted, Failed as RFailed, InProgress};

    #[test]
    fn our_primary_completed_is_completed_at_its_update_time() {
        let s = snapshot(vec![dep("ecs-svc/new", Primary, Some(RCompleted))]);
        assert_eq!(judge(Some(&s), 10), Verdict::Completed { at: t(7) });
        // Never later than the look itself.
        assert_eq!(judge(Some(&s), 5), Verdict::Completed { at: t(5) });
    }

    #[test]
    fn in_progress_is_pending_then_timed_out() {
        let s = snapshot(vec![
            dep("ecs-svc/new", Primary, Some(InProgress)),
            dep("ecs-svc/old", DActive, Some(RCompleted)),
        ]);
        assert_eq!(judge(Some(&s), 29), Verdict::Pending);
        assert_eq!(judge(Some(&s), 30), Verdict::TimedOut);
    }

    #[test]
    fn our_primary_failed_is_failed() {
        let s = snapshot(vec![dep("ecs-svc/new", Primary, Some(RFailed))]);
        assert_eq!(judge(Some(&s), 3), Verdict::Failed);
    }

    #[test]
    fn a_rollback_that_looks_stable_is_rolled_back() {
        // The circuit breaker replaced our deployment with the previous one, now COMPLETED
        // and steady: the service looks healthy, but the restart did not happen.
        let s = snapshot(vec![dep("ecs-svc/rollback", Primary, Some(RCompleted))]);
        assert_eq!(judge(Some(&s), 12), Verdict::RolledBack);
        // While the rollback runs, ours is still seen FAILED behind it: failed.
        let s = snapshot(vec![
            dep("ecs-svc/rollback", Primary, Some(InProgress)),
            dep("ecs-svc/new", DActive, Some(RFailed)),
        ]);
        assert_eq!(judge(Some(&s), 12), Verdict::Failed);
    }

    #[test]
    fn a_deploy_with_another_task_definition_overtaking_ours_is_superseded() {
        let ci = Deployment {
            task_definition: Some("arn:aws:ecs:eu-west-1:111111111111:task-definition/s:8".into()),
            ..dep("ecs-svc/ci", Primary, Some(InProgress))
        };
        let s = snapshot(vec![ci.clone()]);
        assert_eq!(judge(Some(&s), 4), Verdict::Superseded);
        assert_eq!(Verdict::Superseded.outcome(), Some(NightState::Superseded));
        assert!(!NightState::Superseded.is_failure());
        // Without our task definition (a record from before it was kept), the rule of old.
        assert_eq!(
            verify(
                Some(&s),
                "ecs-svc/new",
                None,
                t(0),
                t(4),
                TimeDelta::minutes(30)
            ),
            Verdict::RolledBack
        );
    }

    #[test]
    fn without_rollout_state_completion_needs_one_deployment_at_desired() {
        let mut s = snapshot(vec![dep("ecs-svc/new", Primary, None)]);
        assert_eq!(judge(Some(&s), 9), Verdict::Completed { at: t(7) });
        s.running = 1;
        assert_eq!(judge(Some(&s), 9), Verdict::Pending);
        let s = snapshot(vec![
            dep("ecs-svc/new", Primary, None),
            dep("ecs-svc/old", DActive, None),
        ]);
        assert_eq!(judge(Some(&s), 9), Verdict::Pending);
    }

    #[test]
    fn gone_or_inactive_is_vanished_even_past_the_timeout() {
        assert_eq!(judge(None, 1), Verdict::Vanished);
        let mut s = snapshot(vec![dep("ecs-svc/new", Primary, Some(RCompleted))]);
        s.status = ServiceStatus::Inactive;
        assert_eq!(judge(Some(&s), 45), Verdict::Vanished);
    }

    #[test]
    fn finished_before_the_timeout_wins_over_the_timeout() {
        let s = snapshot(vec![dep("ecs-svc/new", Primary, Some(RCompleted))]);
        assert!(matches!(judge(Some(&s), 90), Verdict::Completed { .. }));
        assert_eq!(
            Verdict::Completed { at: t(1) }.outcome(),
            Some(NightState::Completed)
        );
        assert_eq!(Verdict::Pending.outcome(), None);
    }
}
