//! The `service` mode: on-call's restart of one service, now.

use restart_core::eligibility::{self, SkipReason, Tonight, UntaggedPolicy};
use restart_core::ids::ServiceArn;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::FleetControl;
use restart_core::tag::TagState;
use restart_core::{ErrorType, HandlerError};

use crate::claim::Begun;
use crate::event::service_id;
use crate::{Restarter, ServiceOutput, Store};

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// `service`: restarts one service now, on on-call's request.
    ///
    /// The night is the one whose window is open, else the last one that began. A service
    /// already in flight is not restarted again: the answer is that restart. One that already restarted tonight (completed, failed,
    /// ...) is restarted again only with `force`. A service that is not enrolled (untagged) is
    /// restarted, since on-call asked; one opted out or snoozed only with `force`. Every other
    /// eligibility rule (controller, desired 0, a deployment in progress, restart risk) still
    /// holds, and so do the kill switch, the night's halt (unless forced) and the cluster's cap.
    #[tracing::instrument(skip(self), fields(service = %arn))]
    pub async fn restart_service(
        &self,
        arn: &ServiceArn,
        force: bool,
    ) -> Result<ServiceOutput, HandlerError> {
        let id = service_id(arn)?;
        let now = self.clock.now();
        let window = {
            let w = self.config.window.night_at(now);
            if w.start > now {
                self.window(w.night.pred_opt().unwrap_or(w.night))
            } else {
                w
            }
        };
        let night = window.night;
        self.refuse_if_paused().await?;
        if let Some(halt) = self.store.night_tally(night).await?.halted
            && !force
        {
            return Err(HandlerError::new(
                ErrorType::Halted,
                format!(
                    "night {night} was halted: {}; use force to restart anyway",
                    halt.reason
                ),
            ));
        }
        let existing = self.store.find_record(night, &id).await?;
        if let Some(r) = &existing {
            if r.state == NightState::Started {
                // Not restarted again: the answer is the restart in flight, so that a request
                // sent twice (a Step Functions retry whose first answer was lost) is answered
                // as the first was, and its execution goes on to watch it.
                tracing::info!(service = %id, deployment = ?r.deployment_id, "restarting already; not restarted again");
                return Ok(ServiceOutput {
                    night,
                    service_arn: arn.clone(),
                    state: r.state,
                    deployment_id: r.deployment_id.clone(),
                    dry_run: self.config.dry_run,
                    wait_seconds: self.wait_seconds(),
                });
            }
            if r.state.is_restart_outcome() && !force {
                return Err(HandlerError::invalid_input(format!(
                    "{arn} was restarted tonight already ({}); use force to restart it again",
                    r.state
                )));
            }
        }
        let live = self.fleet.describe(std::slice::from_ref(&id)).await?;
        let Some(observed) = live.first() else {
            return Err(HandlerError::invalid_input(format!(
                "{arn} does not exist in ECS (or its cluster does not)"
            )));
        };
        let tag = TagState::from_tags(
            &observed.tags,
            &self.config.tag_key,
            window.start.date_naive(),
        );
        let tonight = Tonight {
            window_start: window.start,
            restarted_tonight: false,
        };
        let policy = eligibility::Policy {
            untagged: UntaggedPolicy::Restart,
            ..self.config.policy
        };
        match eligibility::check(Some(observed), &tag, &tonight, &policy) {
            Ok(()) => {}
            Err(
                SkipReason::AlreadyRestartedTonight | SkipReason::OptedOut | SkipReason::Snoozed,
            ) if force => {}
            Err(reason) => {
                return Err(HandlerError::invalid_input(format!(
                    "{arn} is not restarted: {reason}{}",
                    if matches!(
                        reason,
                        SkipReason::AlreadyRestartedTonight
                            | SkipReason::OptedOut
                            | SkipReason::Snoozed
                    ) {
                        " (use force to restart it anyway)"
                    } else {
                        ""
                    }
                )));
            }
        }
        let base = match existing.clone() {
            Some(r) => r,
            None => {
                // Account owners: the table's configuration items over ACCOUNT_OWNERS.
                let owners = self
                    .config
                    .owners()
                    .with_account_owners(self.store.account_owners().await?);
                let (owner, _) = owners.resolve(&observed.tags, &Default::default(), &id.account);
                NightRecord::unbatched(id.clone(), arn.clone(), night, owner)
            }
        };
        let base = NightRecord {
            detail: Some(format!(
                "restarted by hand{}",
                if force { ", forced" } else { "" }
            )),
            ..base
        };
        // On-call's explicit request: the window does not hold it back.
        let begun = self.begin(existing.as_ref(), base, observed, None).await?;
        let after = self.store.find_record(night, &id).await?;
        match begun {
            Begun::ClusterFull => Err(HandlerError::new(
                ErrorType::Throttled,
                format!(
                    "cluster {} has {} restarts in flight, its cap: try again when one finishes",
                    id.cluster_key(),
                    self.config.max_inflight_per_cluster
                ),
            )),
            Begun::Moved(now) => Err(HandlerError::transient(format!(
                "{arn}'s record changed meanwhile (now {}); look again",
                now.map_or("absent".into(), |s| s.to_string())
            ))),
            Begun::Unreachable(m) => Err(HandlerError::new(
                ErrorType::Misconfigured,
                format!(
                    "UpdateService on {arn} was denied ({m}): the account cannot be reached; \
                     nothing was restarted, and the record is skipped (account_unreachable)"
                ),
            )),
            _ => {
                let after = after.ok_or_else(|| {
                    HandlerError::unexpected(format!("{arn}'s record vanished after its start"))
                })?;
                Ok(ServiceOutput {
                    night,
                    service_arn: arn.clone(),
                    state: after.state,
                    deployment_id: after.deployment_id,
                    dry_run: self.config.dry_run,
                    wait_seconds: self.wait_seconds(),
                })
            }
        }
    }
}
