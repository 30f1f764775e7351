//! One start, made safe against retries and crashes by its order (see the crate
//! documentation): the claim (planned to started, a place in the cluster taken, the PRIMARY
//! deployment seen), UpdateService (or, in a dry run, the current PRIMARY deployment), then the
//! deployment recorded; and a claim whose lease has lapsed settled from the deployments ECS
//! shows.

use chrono::{DateTime, TimeDelta, Utc};

use restart_core::HandlerError;
use restart_core::eligibility::SkipReason;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::{Claim, ControlError, FleetControl};
use restart_core::service::{Deployment, RolloutState, ServiceSnapshot};

use crate::cluster::Tally;
use crate::held::HELD_DETAIL;
use crate::{Restarter, Store};

/// How long a claim (a record `started` without its deployment yet) belongs to the invocation
/// that made it. Only after this may another invocation decide whether its UpdateService ran and
/// run it: longer than any invocation lives (the state machine gives each 330 s), so two
/// invocations never both send UpdateService for one claim.
pub const CLAIM_LEASE: TimeDelta = TimeDelta::seconds(330);

/// ECS and Lambda clocks may differ by this much: a deployment created this long before a
/// claim can still be the one the claim's UpdateService made.
const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(5);

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// A claim whose lease has lapsed (see the crate documentation): taken over first, by a
    /// conditional write on its lease, so that of two invocations that find it only one goes
    /// on; then judged from the deployments ECS shows (`observed`). A deployment of ours made
    /// since the claim is recorded; a circuit-breaker rollback since the claim ends it
    /// `rolled_back`, and a deploy of the owners since then `superseded`: either way
    /// UpdateService is not sent again. With no deployment since the claim it ends `timed_out`
    /// once `expired`, or else UpdateService is sent when `may_deploy` (not after
    /// `not_after`).
    pub(crate) async fn settle_claim(
        &self,
        r: &NightRecord,
        observed: Option<&ServiceSnapshot>,
        expired: bool,
        may_deploy: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Tally, HandlerError> {
        let mut tally = Tally::default();
        let Some(held) = self.take_over(r).await? else {
            // Another invocation took it over, or it moved on: theirs to settle.
            return Ok(tally);
        };
        let Some(s) = observed.filter(|s| s.status == restart_core::service::ServiceStatus::Active)
        else {
            let to = self.finished(
                &held,
                NightState::Vanished,
                "the service is gone or inactive",
            );
            self.count_finish(&held, &to, &mut tally).await?;
            return Ok(tally);
        };
        if !self.config.dry_run {
            match since_claim(&held, s) {
                Since::Ours(d) => {
                    let with = NightRecord {
                        deployment_id: Some(d.id.clone()),
                        ..held
                    };
                    if self.moves().record_deployment(&with).await? {
                        tracing::info!(service = %r.id, deployment = %d.id, "recovered the deployment of an interrupted start");
                    }
                    return Ok(tally);
                }
                Since::Other(state, detail, None) => {
                    let to = self.finished(&held, state, &detail);
                    self.count_finish(&held, &to, &mut tally).await?;
                    tracing::warn!(service = %r.id, outcome = %state, detail, "an interrupted start settled without UpdateService");
                    return Ok(tally);
                }
                // Something made since the claim still rolls, and it may be ours (a deploy of
                // the owners that overtook our lost UpdateService takes ours' task definition
                // too): the claim keeps its place in the cluster until it ends, or, once the
                // restart timed out, ends holding the place under that deployment.
                Since::Other(_, _, Some(_)) if !expired => return Ok(tally),
                Since::Other(state, detail, Some(rolling)) => {
                    let with = NightRecord {
                        deployment_id: Some(rolling.id.clone()),
                        ..held
                    };
                    if self.moves().record_deployment(&with).await? {
                        let to = self.finished(&with, state, &format!("{detail}; {HELD_DETAIL}"));
                        if self.moves().finish_holding(&with, &to).await? {
                            *tally.outcomes.entry(state).or_default() += 1;
                        }
                    }
                    return Ok(tally);
                }
                Since::Nothing => {}
            }
        }
        if expired {
            let why = "UpdateService did not answer, and no deployment was made since the claim";
            return self.expire_claim(&held, why, false).await;
        }
        if may_deploy {
            tally.begun(self.deploy(&held, s, not_after).await?);
        }
        Ok(tally)
    }

    /// Takes a lapsed claim over for this invocation (a new lease from now, see
    /// `RestartStore::take_over`): the claim as held now, or `None` when another invocation
    /// took it or it moved on.
    pub(crate) async fn take_over(
        &self,
        r: &NightRecord,
    ) -> Result<Option<NightRecord>, HandlerError> {
        let held = NightRecord {
            lease_at: Some(self.clock.now()),
            ..r.clone()
        };
        Ok(self.moves().take_over(r, &held).await?.then_some(held))
    }

    /// Ends `from` as `to` (a restart outcome) and counts it.
    async fn count_finish(
        &self,
        from: &NightRecord,
        to: &NightRecord,
        tally: &mut Tally,
    ) -> Result<(), HandlerError> {
        if self.moves().finish(from, to).await? {
            *tally.outcomes.entry(to.state).or_default() += 1;
        }
        Ok(())
    }

    /// Claims `from` (as read) as started and runs the restart, not after `not_after`.
    pub(crate) async fn begin(
        &self,
        from: Option<&NightRecord>,
        base: NightRecord,
        observed: &ServiceSnapshot,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Begun, HandlerError> {
        let claimed = NightRecord {
            state: NightState::Started,
            started_at: Some(self.clock.now()),
            lease_at: None,
            previous_deployment: observed.primary().map(|d| d.id.clone()),
            task_definition: observed.primary().and_then(|d| d.task_definition.clone()),
            deployment_id: None,
            finished_at: None,
            duration_seconds: None,
            // What the caller says of this start (by hand, outside the window), else nothing.
            detail: base.detail.clone(),
            skip_reason: None,
            ..base
        };
        let cap = self.config.max_inflight_per_cluster;
        let mut claim = self.moves().claim(from, &claimed, cap).await?;
        // A full cluster may hold timed-out restarts whose deployment has ended since: their
        // places are given back, and the claim tried once more.
        if claim == Claim::ClusterFull && self.release_ended(claimed.night, &claimed.id).await? > 0
        {
            claim = self.moves().claim(from, &claimed, cap).await?;
        }
        match claim {
            Claim::Claimed => self.deploy(&claimed, observed, not_after).await,
            Claim::ClusterFull => Ok(Begun::ClusterFull),
            Claim::Moved(now) => Ok(Begun::Moved(now)),
        }
    }

    /// UpdateService for a claimed record (or, in a dry run, the current PRIMARY deployment),
    /// then the deployment recorded. The window is looked at once more right before
    /// UpdateService, after the account's pace: a claim whose window ended meanwhile
    /// (`not_after`) is given back unsent, `skipped/window_closed`.
    async fn deploy(
        &self,
        claimed: &NightRecord,
        observed: &ServiceSnapshot,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Begun, HandlerError> {
        if !self.config.dry_run {
            self.fleet.pace_update(&claimed.id).await;
        }
        if let Some(end) = not_after
            && self.clock.now() >= end
        {
            let detail = format!("the window ended at {end} before UpdateService could be sent");
            self.give_back(claimed, SkipReason::WindowClosed, &detail)
                .await?;
            return Ok(Begun::TooLate);
        }
        let deployment = if self.config.dry_run {
            observed.primary().map(|d| d.id.clone()).ok_or_else(|| {
                HandlerError::unexpected(format!("{} has no PRIMARY deployment", claimed.id))
            })
        } else {
            match self.fleet.force_new_deployment(&claimed.id).await {
                Ok(id) => Ok(id),
                Err(
                    e @ (ControlError::NotFound(_)
                    | ControlError::Refused(_)
                    | ControlError::Unexpected(_)),
                ) => {
                    // An answer that will not heal: sending it again would get the same.
                    let (state, detail) = match &e {
                        ControlError::NotFound(m) => {
                            (NightState::Vanished, format!("UpdateService: {m}"))
                        }
                        ControlError::Refused(m) | ControlError::Unexpected(m) => {
                            (NightState::Failed, format!("update_rejected: {m}"))
                        }
                        _ => (NightState::Failed, format!("update_rejected: {e}")),
                    };
                    let to = self.finished(claimed, state, &detail);
                    self.moves().finish(claimed, &to).await?;
                    tracing::warn!(service = %claimed.id, error = %e, "restart refused");
                    return Ok(Begun::Refused(state));
                }
                // Denied (an SCP, the role changed): the request certainly did not run, and
                // nothing else will in this account. The claim is given back at once, as the
                // account's other planned restarts are: skipped/account_unreachable.
                Err(ControlError::AccessDenied(m)) => {
                    tracing::warn!(service = %claimed.id, error = %m, "UpdateService denied: account unreachable");
                    self.give_back(claimed, SkipReason::AccountUnreachable, &m)
                        .await?;
                    return Ok(Begun::Unreachable(m));
                }
                // Throttled or transient: the claim stays; once its lease has lapsed a poll
                // settles it from the service's deployments, or it times out.
                Err(e) => {
                    tracing::warn!(service = %claimed.id, error = %e, "UpdateService did not answer; the next poll settles it");
                    return Ok(Begun::Pending);
                }
            }
        }?;
        let with = NightRecord {
            deployment_id: Some(deployment.clone()),
            ..claimed.clone()
        };
        if !self.moves().record_deployment(&with).await? {
            tracing::error!(service = %claimed.id, deployment = %deployment, "UpdateService ran but its claim had moved on: the deployment is not recorded");
        }
        tracing::info!(service = %claimed.id, deployment = %deployment, dry_run = self.config.dry_run, "restart started");
        Ok(Begun::Started(deployment))
    }

    /// Gives a claim back unsent: `skipped` for `reason`, with `detail`.
    async fn give_back(
        &self,
        claimed: &NightRecord,
        reason: SkipReason,
        detail: &str,
    ) -> Result<bool, HandlerError> {
        let to = NightRecord {
            detail: Some(detail.to_owned()),
            started_at: None,
            lease_at: None,
            previous_deployment: None,
            task_definition: None,
            ..claimed.now_skipped(reason)
        };
        Ok(self.moves().give_back(claimed, &to).await?)
    }

    /// A claim that got no deployment within the timeout ends `timed_out`, saying why. Its
    /// UpdateService did not run (or ECS could not show it): its place is given back.
    /// `account_lost`: ECS could not be asked because the account was lost, so whether it ran
    /// is unknown, and the circuit breaker does not count it.
    pub(crate) async fn expire_claim(
        &self,
        r: &NightRecord,
        why: &str,
        account_lost: bool,
    ) -> Result<Tally, HandlerError> {
        let mut tally = Tally::default();
        let to = NightRecord {
            account_lost,
            ..self.finished(
                r,
                NightState::TimedOut,
                &format!(
                    "no deployment was recorded for this restart within {} minutes: {why}",
                    self.config.restart_timeout.num_minutes()
                ),
            )
        };
        self.count_finish(r, &to, &mut tally).await?;
        Ok(tally)
    }
}

/// What ECS shows of a lapsed claim's UpdateService.
#[derive(Debug)]
enum Since<'a> {
    /// Ours: the oldest deployment made since the claim with the claim's task definition that
    /// is not a circuit-breaker rollback.
    Ours(&'a Deployment),
    /// No deployment of ours, but a rollback (ours failed and drained out) or a deploy of the
    /// owners since the claim: the outcome, in words, and the newest deployment since the claim
    /// that still rolls. Sending UpdateService now would restart the service a second time, or
    /// restart one that was just deployed.
    Other(NightState, String, Option<&'a Deployment>),
    /// No deployment since the claim: UpdateService did not run.
    Nothing,
}

fn since_claim<'a>(r: &NightRecord, s: &'a ServiceSnapshot) -> Since<'a> {
    let claimed_at = r.started_at.map(|t| t - CLOCK_SKEW);
    let since: Vec<&Deployment> = s
        .deployments
        .iter()
        .filter(|d| Some(&d.id) != r.previous_deployment.as_ref())
        .filter(|d| match (d.created_at, claimed_at) {
            (Some(t), Some(c)) => t >= c,
            _ => false,
        })
        .collect();
    let same_task =
        |d: &Deployment| match (r.task_definition.as_deref(), d.task_definition.as_deref()) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
    if let Some(d) = since
        .iter()
        .copied()
        .filter(|d| !d.rollback && same_task(d))
        .min_by_key(|d| d.created_at)
    {
        return Since::Ours(d);
    }
    let rolling = since
        .iter()
        .copied()
        .filter(|d| d.rollout_state == Some(RolloutState::InProgress))
        .max_by_key(|d| d.created_at);
    if let Some(back) = since.iter().find(|d| d.rollback) {
        return Since::Other(
            NightState::RolledBack,
            format!(
                "UpdateService's answer was lost; its deployment failed and ECS's circuit breaker \
                 rolled it back ({})",
                back.id
            ),
            rolling,
        );
    }
    match since.iter().max_by_key(|d| d.created_at) {
        Some(theirs) => Since::Other(
            NightState::Superseded,
            format!(
                "a deployment of another task definition ({}) was made since the claim: the \
                 service runs new tasks, and UpdateService is not sent again",
                theirs.task_definition.as_deref().unwrap_or("unknown")
            ),
            rolling,
        ),
        None => Since::Nothing,
    }
}

/// What starting one service came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Begun {
    Started(String),
    /// ECS refused it: recorded with this outcome.
    Refused(NightState),
    /// UpdateService did not answer: the claim stays for the next poll.
    Pending,
    /// UpdateService was denied (the account was lost): the claim was given back,
    /// `skipped/account_unreachable`.
    Unreachable(String),
    /// The window ended before UpdateService could be sent: the claim was given back,
    /// `skipped/window_closed`.
    TooLate,
    Moved(Option<NightState>),
    ClusterFull,
}
