//! Restarts given up on at their timeout while ECS still rolls their deployment: they keep their
//! place among the cluster's `MAX_INFLIGHT_PER_CLUSTER` (the store's held restarts), since ECS
//! still counts them, until their deployment ends.

use chrono::NaiveDate;

use restart_core::HandlerError;
use restart_core::ids::ServiceId;
use restart_core::ports::FleetControl;
use restart_core::service::{RolloutState, ServiceSnapshot};

use crate::{Restarter, Store};

/// Said of a timed-out restart whose deployment still rolls.
pub(crate) const HELD_DETAIL: &str =
    "its deployment still rolls and keeps its place in the cluster until ECS ends it";

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// Releases the cluster places of `cluster`'s held restarts whose deployment ECS has ended
    /// (or that are gone). How many. A cluster that cannot be described keeps them.
    pub(crate) async fn release_ended(
        &self,
        night: NaiveDate,
        cluster: &ServiceId,
    ) -> Result<u64, HandlerError> {
        if crate::out_of_time() {
            return Ok(0);
        }
        let held = self.store.held(night, cluster).await?;
        if held.is_empty() {
            return Ok(0);
        }
        let ids: Vec<ServiceId> = held.iter().map(|h| h.id.clone()).collect();
        let live = match self.fleet.describe(&ids).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(cluster = %cluster.cluster_key(), error = %e, "held restarts not looked at; their places stay taken");
                return Ok(0);
            }
        };
        let mut released = 0;
        for h in &held {
            let observed = live.iter().find(|s| s.id.service == h.id.service);
            if still_rolling(observed, &h.deployment_id) {
                continue;
            }
            if self.store.release(night, h).await? {
                tracing::info!(service = %h.id, deployment = %h.deployment_id, "a timed-out restart's deployment ended; its place in the cluster is free");
                released += 1;
            }
        }
        Ok(released)
    }
}

/// Whether `deployment_id` still rolls on the service as observed: present and neither
/// completed nor failed. Such a restart keeps its place in the cluster even once given up on,
/// since ECS still runs it.
pub(crate) fn still_rolling(observed: Option<&ServiceSnapshot>, deployment_id: &str) -> bool {
    observed
        .filter(|s| s.status == restart_core::service::ServiceStatus::Active)
        .and_then(|s| s.deployments.iter().find(|d| d.id == deployment_id))
        .is_some_and(|d| {
            !matches!(
                d.rollout_state,
                Some(RolloutState::Completed | RolloutState::Failed)
            )
        })
}
