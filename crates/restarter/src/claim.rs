//! One start, made safe against retries and crashes by its order (see the crate
//! documentation): the claim (planned to started, a place in the cluster taken, the PRIMARY
//! deployment seen), UpdateService (or, in a dry run, the current PRIMARY deployment), then the
//! deployment recorded; and a claim whose lease has lapsed settled from the deployments ECS
//! shows.

use chrono::TimeDelta;

use restart_core::HandlerError;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::{Claim, ControlError, FleetControl};
use restart_core::service::{DeploymentStatus, ServiceSnapshot};

use crate::cluster::Tally;
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
    /// A claimed start without a deployment: did UpdateService run? (See the crate
    /// documentation.) Sends it when it did not and `may_deploy`.
    pub(crate) async fn settle_claim(
        &self,
        r: &NightRecord,
        observed: Option<&ServiceSnapshot>,
        may_deploy: bool,
    ) -> Result<Settled, HandlerError> {
        let mut out = Settled::default();
        let Some(s) = observed.filter(|s| s.status == restart_core::service::ServiceStatus::Active)
        else {
            let to = self.finished(r, NightState::Vanished, "the service is gone or inactive");
            if self.store.finish(r, &to).await? {
                *out.tally.outcomes.entry(NightState::Vanished).or_default() += 1;
            }
            out.settled = true;
            return Ok(out);
        };
        // Did the claim's UpdateService run? Only a deployment created since the claim (not the
        // one seen when claiming) with the task definition seen then says so (a deploy of
        // another one is the owners'); which deployment is PRIMARY now proves nothing.
        let claimed_at = r.started_at.unwrap_or_else(|| self.clock.now()) - CLOCK_SKEW;
        let same_task = |d: &&restart_core::service::Deployment| match (
            r.task_definition.as_deref(),
            d.task_definition.as_deref(),
        ) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        let made = s
            .deployments
            .iter()
            .filter(|d| Some(&d.id) != r.previous_deployment.as_ref())
            .filter(|d| d.created_at.is_some_and(|t| t >= claimed_at))
            .filter(same_task)
            .max_by_key(|d| (d.status == DeploymentStatus::Primary, d.created_at));
        if let Some(d) = made
            && !self.config.dry_run
        {
            let with = NightRecord {
                deployment_id: Some(d.id.clone()),
                ..r.clone()
            };
            self.store.record_deployment(&with).await?;
            tracing::info!(service = %r.id, deployment = %d.id, "recovered the deployment of an interrupted start");
            out.settled = true;
            return Ok(out);
        }
        if !may_deploy {
            return Ok(out);
        }
        out.settled = true;
        match self.deploy(r, s).await? {
            Begun::Started(_) => out.tally.started += 1,
            Begun::Refused(_) => out.tally.refused += 1,
            Begun::Unreachable(m) => out.unreachable = Some(m),
            _ => {}
        }
        Ok(out)
    }

    /// Claims `from` (as read) as started and runs the restart.
    pub(crate) async fn begin(
        &self,
        from: Option<&NightRecord>,
        base: NightRecord,
        observed: &ServiceSnapshot,
    ) -> Result<Begun, HandlerError> {
        let claimed = NightRecord {
            state: NightState::Started,
            started_at: Some(self.clock.now()),
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
        let mut claim = self.store.claim(from, &claimed, cap).await?;
        // A full cluster may hold timed-out restarts whose deployment has ended since: their
        // places are given back, and the claim tried once more.
        if claim == Claim::ClusterFull && self.release_ended(claimed.night, &claimed.id).await? > 0
        {
            claim = self.store.claim(from, &claimed, cap).await?;
        }
        match claim {
            Claim::Claimed => self.deploy(&claimed, observed).await,
            Claim::ClusterFull => Ok(Begun::ClusterFull),
            Claim::Moved(now) => Ok(Begun::Moved(now)),
        }
    }

    /// UpdateService for a claimed record (or, in a dry run, the current PRIMARY deployment),
    /// then the deployment recorded.
    async fn deploy(
        &self,
        claimed: &NightRecord,
        observed: &ServiceSnapshot,
    ) -> Result<Begun, HandlerError> {
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
                    self.store.finish(claimed, &to).await?;
                    tracing::warn!(service = %claimed.id, error = %e, "restart refused");
                    return Ok(Begun::Refused(state));
                }
                // Denied (an SCP, the role changed): the request did not run, and nothing else
                // will in this account. The claim stays and ends at its timeout with the reason.
                Err(ControlError::AccessDenied(m)) => {
                    tracing::warn!(service = %claimed.id, error = %m, "UpdateService denied: account unreachable");
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
        self.store.record_deployment(&with).await?;
        tracing::info!(service = %claimed.id, deployment = %deployment, dry_run = self.config.dry_run, "restart started");
        Ok(Begun::Started(deployment))
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
    /// UpdateService was denied (the account was lost): the claim stays until its timeout.
    Unreachable(String),
    Moved(Option<NightState>),
    ClusterFull,
}

/// What settling a claim came to.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub(crate) tally: Tally,
    /// Whether the claim was settled: its deployment found, sent, or its service gone.
    pub(crate) settled: bool,
    /// UpdateService was denied: the account was lost.
    pub(crate) unreachable: Option<String>,
}
