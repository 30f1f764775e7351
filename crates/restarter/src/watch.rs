//! Started restarts judged ([`outcome::verify`]) cluster by cluster: the completed ones tagged,
//! every outcome recorded, and a cluster that cannot be described handled alone.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use futures::stream::{self, StreamExt};
use tracing::Instrument;

use restart_core::HandlerError;
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::{self, NightState, Verdict};
use restart_core::ports::{ControlError, FleetControl};
use restart_core::service::ServiceSnapshot;
use restart_core::tag::restart_tag_value;

use crate::cluster::{CLUSTER_CONCURRENCY, Tally, account_span, by_cluster, sum};
use crate::held::{HELD_DETAIL, still_rolling};
use crate::{Restarter, Store};

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// Judges started restarts (with their deployment) and records the ones that ended.
    pub(crate) async fn watch(&self, started: Vec<NightRecord>) -> Result<Tally, HandlerError> {
        sum(stream::iter(by_cluster(started))
            .map(|group| {
                let span = account_span(&group);
                self.watch_cluster(group).instrument(span)
            })
            .buffer_unordered(CLUSTER_CONCURRENCY)
            .collect()
            .await)
    }

    async fn watch_cluster(&self, group: Vec<NightRecord>) -> Result<Tally, HandlerError> {
        if crate::out_of_time() {
            // The next poll judges them.
            return Ok(Tally::default());
        }
        let ids: Vec<ServiceId> = group.iter().map(|r| r.id.clone()).collect();
        let live = match self.fleet.describe(&ids).await {
            Ok(live) => live,
            Err(e) => return self.unwatchable(&group, &e).await,
        };
        let live: BTreeMap<&str, &ServiceSnapshot> =
            live.iter().map(|s| (s.id.service.as_str(), s)).collect();
        let mut tally = Tally::default();
        for r in &group {
            let (Some(dep), Some(started_at)) = (r.deployment_id.as_deref(), r.started_at) else {
                continue;
            };
            let now = self.clock.now();
            let observed = live.get(r.id.service.as_str()).copied();
            let verdict = outcome::verify(
                observed,
                dep,
                r.task_definition.as_deref(),
                started_at,
                now,
                self.config.restart_timeout,
            );
            let Some(state) = verdict.outcome() else {
                continue;
            };
            let to = match verdict {
                Verdict::Completed { at } => {
                    if crate::out_of_time() {
                        // Tagging may take minutes in a slow account: the next poll tags it.
                        continue;
                    }
                    // The tag is the proof owners read: written before the record says so.
                    let tagged = if self.config.dry_run {
                        Ok(())
                    } else {
                        self.fleet
                            .tag(&r.arn, &self.config.tag_key, &restart_tag_value(at))
                            .await
                    };
                    if let Err(e) = tagged {
                        if matches!(e, ControlError::Throttled(_) | ControlError::Transient(_)) {
                            tracing::warn!(service = %r.id, error = %e, "tagging failed; the next poll tries again");
                            continue;
                        }
                        tracing::error!(service = %r.id, error = %e, "the restart completed but the tag could not be written");
                        tally.tag_failures += 1;
                    }
                    let at = at.max(started_at);
                    NightRecord {
                        state,
                        finished_at: Some(at),
                        duration_seconds: u32::try_from((at - started_at).num_seconds()).ok(),
                        ..r.clone()
                    }
                }
                other => self.finished(
                    r,
                    state,
                    &describe_verdict(other, observed, self.config.restart_timeout),
                ),
            };
            // Given up on while ECS still rolls it: it keeps its place in the cluster.
            let hold = state == NightState::TimedOut
                && !self.config.dry_run
                && still_rolling(observed, dep);
            let to = if hold {
                NightRecord {
                    detail: to.detail.map(|d| format!("{d}; {HELD_DETAIL}")),
                    ..to
                }
            } else {
                to
            };
            let moved = if hold {
                self.moves().finish_holding(r, &to).await?
            } else {
                self.moves().finish(r, &to).await?
            };
            if moved {
                *tally.outcomes.entry(state).or_default() += 1;
                tracing::info!(service = %r.id, outcome = %state, held = hold, "restart finished");
            }
        }
        Ok(tally)
    }

    /// Started restarts whose cluster could not be described (the account lost, or errors
    /// after retries): each keeps being looked at until its timeout, then ends `timed_out`
    /// with the reason in its detail, marked `account_lost` when the account was lost (access
    /// denied). The rest of the batch goes on.
    async fn unwatchable(
        &self,
        group: &[NightRecord],
        e: &ControlError,
    ) -> Result<Tally, HandlerError> {
        let mut tally = Tally::default();
        let now = self.clock.now();
        let why = match e {
            ControlError::AccessDenied(m) => format!("account unreachable: {m}"),
            other => format!("ECS could not be asked: {other}"),
        };
        tracing::warn!(cluster = %group.first().map(|r| r.id.cluster_key()).unwrap_or_default(), error = %why, "restarts not watched this time");
        for r in group {
            let Some(started_at) = r.started_at else {
                continue;
            };
            if now - started_at < self.config.restart_timeout {
                continue;
            }
            let to = NightRecord {
                // Its outcome is unknown: not a failure for the circuit breaker.
                account_lost: matches!(e, ControlError::AccessDenied(_)),
                ..self.finished(
                    r,
                    NightState::TimedOut,
                    &format!(
                        "not seen finished within {} minutes: {why}",
                        self.config.restart_timeout.num_minutes()
                    ),
                )
            };
            // Whether its deployment still rolls is unknown: it keeps its place in the cluster
            // until ECS can be asked again.
            let moved = if self.config.dry_run {
                self.moves().finish(r, &to).await?
            } else {
                self.moves().finish_holding(r, &to).await?
            };
            if moved {
                *tally.outcomes.entry(NightState::TimedOut).or_default() += 1;
            }
        }
        Ok(tally)
    }
}

/// A failed restart in words, for on-call and the owner.
fn describe_verdict(v: Verdict, observed: Option<&ServiceSnapshot>, timeout: TimeDelta) -> String {
    let primary = observed
        .and_then(ServiceSnapshot::primary)
        .map_or("none".to_owned(), |d| d.id.clone());
    match v {
        Verdict::Failed => "the deployment's rolloutState is FAILED".into(),
        Verdict::RolledBack => {
            format!("the PRIMARY deployment is no longer ours (now {primary}): rolled back")
        }
        Verdict::Superseded => format!(
            "a deployment of another task definition ({}) replaced ours: superseded",
            observed
                .and_then(ServiceSnapshot::primary)
                .and_then(|d| d.task_definition.as_deref())
                .unwrap_or("unknown")
        ),
        Verdict::TimedOut => format!(
            "not finished after {} minutes (PRIMARY {primary})",
            timeout.num_minutes()
        ),
        Verdict::Vanished => "the service is gone or inactive".into(),
        Verdict::Pending | Verdict::Completed { .. } => String::new(),
    }
}
