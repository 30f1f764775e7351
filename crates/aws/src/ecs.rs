//! ECS in the member accounts: discovery (the `ServiceInventory` port) and the conversion of
//! ECS service descriptions into [`ServiceSnapshot`]s.
//!
//! Discovery makes the fewest calls the fleet's shape allows: ListClusters (100 a page),
//! DescribeClusters (100 a call, with tags: cluster owner tags), ListServices (100 a page),
//! DescribeServices (10 a call, with tags). Never a ListTagsForResource per service. Every call
//! waits for the account's and region's Describe bucket first, and the SDK retries throttling
//! with backoff on top.
//!
//! UpdateService waits for its bucket and then, when the fleet has a [`SharedPacer`]
//! ([`EcsFleet::with_shared_pace`]), for a slot of the account's and region's second shared by
//! every container (the restarter's many batches at once).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ecs::types::{
    ClusterField, DeploymentControllerType, DeploymentRolloutState, Service, ServiceField,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;
use tracing::Instrument;

use restart_core::catalog::{DiscoveredService, Target};
use restart_core::clock::Clock;
use restart_core::ids::{AccountId, ServiceArn, ServiceId};
use restart_core::pacing::{ApiClass, PaceSlots, Pacer, SharedPacer};
use restart_core::ports::{ControlError, DiscoveryError, FleetControl, ServiceInventory};
use restart_core::service::{
    Deployment, DeploymentController, DeploymentStatus, RolloutState, SchedulingStrategy,
    ServiceSnapshot, ServiceStatus,
};
use restart_core::tag::Tags;
use restart_core::telemetry::ApiCalls;

use super::sdk::{ErrorClass, control_error, discovery_error, error_code, to_chrono};
use super::sts::AccountSessions;

/// What ECS's circuit breaker writes in the `rolloutStateReason` of the deployment it starts to
/// roll a failed one back ("ECS deployment circuit breaker: rolling back to deploymentId ...").
const ROLLING_BACK: &str = "rolling back to deploymentId";

/// The most services DescribeServices takes in one call.
pub const DESCRIBE_SERVICES_MAX: usize = 10;
/// The most clusters DescribeClusters takes in one call.
pub const DESCRIBE_CLUSTERS_MAX: usize = 100;
/// The largest page ListClusters and ListServices return.
pub const LIST_PAGE_MAX: i32 = 100;

/// ECS clients for every member account and region, sharing credentials, pacing and counters.
#[derive(Debug)]
pub struct EcsFleet {
    sessions: AccountSessions,
    base: SdkConfig,
    pacer: Arc<Pacer>,
    /// UpdateService across containers; `None`: this container's pacer only.
    shared: Option<SharedPacer>,
    calls: Arc<ApiCalls>,
    clients: Mutex<HashMap<(AccountId, String), aws_sdk_ecs::Client>>,
}

impl EcsFleet {
    /// `base` carries the hub's SDK settings (endpoint overrides, HTTP client); each client
    /// gets the member account's credentials and a patient retry policy.
    pub fn new(
        base: SdkConfig,
        sessions: AccountSessions,
        pacer: Arc<Pacer>,
        calls: Arc<ApiCalls>,
    ) -> Self {
        Self {
            sessions,
            base,
            pacer,
            shared: None,
            calls,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Paces UpdateService across every container too: windows of the configured UpdateService
    /// rate (rounded down, at least 1) per account, region and second of `clock`, counted in
    /// `slots`. `clock` must be the wall clock: every container must agree on the seconds
    /// (a clock that stands still never holds a call back for long, but its windows are not
    /// real seconds).
    pub fn with_shared_pace(mut self, slots: Arc<dyn PaceSlots>, clock: Arc<dyn Clock>) -> Self {
        let rate = self.pacer.pacing().update_service_per_sec;
        self.shared = Some(SharedPacer::new(slots, clock, rate));
        self
    }

    /// The ECS client of one account and region (built once, then shared).
    pub fn client(&self, account: &AccountId, region: &str) -> aws_sdk_ecs::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry((account.clone(), region.to_owned()))
            .or_insert_with(|| {
                let retry = RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_max_backoff(Duration::from_secs(20));
                let sdk = super::member_sdk(&self.base, &self.sessions, account, region, retry);
                crate::xray::client!(aws_sdk_ecs, &sdk, crate::xray::XrayCalls::member(account))
            })
            .clone()
    }

    /// Runs `call`, and once more with a renewed session when the account answered that the
    /// session's credentials expired.
    async fn renewing<T, E, Fut>(
        &self,
        account: &AccountId,
        call: impl Fn() -> Fut,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        match call().await {
            Err(e) if ErrorClass::of_sdk(&e) == ErrorClass::Expired => {
                tracing::info!(%account, "the session expired; renewing it");
                self.sessions.forget(account).await;
                call().await
            }
            other => other,
        }
    }

    /// Waits for the pacing bucket (and, for UpdateService, the shared window) and counts the
    /// call.
    async fn pace(&self, target: &Target, class: ApiClass, action: &str) {
        let wait = async {
            self.pacer
                .wait(&target.account, &target.region, class)
                .await;
            if class == ApiClass::Update
                && let Some(shared) = &self.shared
            {
                shared.wait(target).await;
            }
        };
        // X-Ray's subsegment of the wait (nothing when tracing is off).
        let span = tracing::trace_span!("xray.pace_wait", account = %target.account, what = action);
        wait.instrument(span).await;
        self.calls.record(action);
    }

    async fn list_cluster_arns(
        &self,
        ecs: &aws_sdk_ecs::Client,
        target: &Target,
    ) -> Result<Vec<String>, DiscoveryError> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            self.pace(target, ApiClass::Describe, "ListClusters").await;
            let page = self
                .renewing(&target.account, || {
                    ecs.list_clusters()
                        .max_results(LIST_PAGE_MAX)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .map_err(|e| discovery_error("ListClusters", &e))?;
            arns.extend(page.cluster_arns().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }

    /// Active clusters: (ARN, name, tags).
    async fn describe_clusters(
        &self,
        ecs: &aws_sdk_ecs::Client,
        target: &Target,
        arns: &[String],
    ) -> Result<Vec<(String, String, Tags)>, DiscoveryError> {
        let mut out = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_CLUSTERS_MAX) {
            self.pace(target, ApiClass::Describe, "DescribeClusters")
                .await;
            let page = self
                .renewing(&target.account, || {
                    ecs.describe_clusters()
                        .set_clusters(Some(chunk.to_vec()))
                        .include(ClusterField::Tags)
                        .send()
                })
                .await
                .map_err(|e| discovery_error("DescribeClusters", &e))?;
            for c in page.clusters() {
                if c.status() == Some("INACTIVE") {
                    continue;
                }
                let (Some(arn), Some(name)) = (c.cluster_arn(), c.cluster_name()) else {
                    continue;
                };
                out.push((arn.to_owned(), name.to_owned(), tags_of(c.tags())));
            }
        }
        Ok(out)
    }

    /// Every service ARN of a cluster; `None` when the cluster vanished meanwhile.
    async fn list_service_arns(
        &self,
        ecs: &aws_sdk_ecs::Client,
        target: &Target,
        cluster_arn: &str,
    ) -> Result<Option<Vec<String>>, DiscoveryError> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            self.pace(target, ApiClass::Describe, "ListServices").await;
            let page = match self
                .renewing(&target.account, || {
                    ecs.list_services()
                        .cluster(cluster_arn)
                        .max_results(LIST_PAGE_MAX)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
            {
                Ok(page) => page,
                Err(e) if error_code(&e) == Some("ClusterNotFoundException") => return Ok(None),
                Err(e) => return Err(discovery_error("ListServices", &e)),
            };
            arns.extend(page.service_arns().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(Some(arns));
            }
        }
    }

    /// Describes services of one cluster, 10 a call, with tags. Services ECS reports as
    /// missing are left out.
    pub async fn describe_services(
        &self,
        target: &Target,
        cluster_arn: &str,
        cluster_name: &str,
        service_arns: &[String],
    ) -> Result<Vec<ServiceSnapshot>, DiscoveryError> {
        let ecs = self.client(&target.account, &target.region);
        let mut out = Vec::with_capacity(service_arns.len());
        for chunk in service_arns.chunks(DESCRIBE_SERVICES_MAX) {
            self.pace(target, ApiClass::Describe, "DescribeServices")
                .await;
            let page = match self
                .renewing(&target.account, || {
                    ecs.describe_services()
                        .cluster(cluster_arn)
                        .set_services(Some(chunk.to_vec()))
                        .include(ServiceField::Tags)
                        .send()
                })
                .await
            {
                Ok(page) => page,
                Err(e) if error_code(&e) == Some("ClusterNotFoundException") => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(discovery_error("DescribeServices", &e)),
            };
            for s in page.services() {
                match snapshot(s, cluster_name) {
                    Ok(snap) => out.push(snap),
                    Err(e) => {
                        return Err(DiscoveryError::Unexpected(format!(
                            "DescribeServices in {cluster_arn}: {e}"
                        )));
                    }
                }
            }
        }
        Ok(out)
    }
}

impl ServiceInventory for EcsFleet {
    #[tracing::instrument(skip(self), fields(account = %target.account, region = %target.region))]
    async fn discover(&self, target: &Target) -> Result<Vec<DiscoveredService>, DiscoveryError> {
        // Enter the account first, so a denied role is reported as such.
        self.sessions.credentials(&target.account).await?;
        let ecs = self.client(&target.account, &target.region);
        let cluster_arns = self.list_cluster_arns(&ecs, target).await?;
        let clusters = self.describe_clusters(&ecs, target, &cluster_arns).await?;
        let mut found = Vec::new();
        for (cluster_arn, cluster_name, cluster_tags) in clusters {
            let Some(service_arns) = self.list_service_arns(&ecs, target, &cluster_arn).await?
            else {
                continue;
            };
            let snapshots = self
                .describe_services(target, &cluster_arn, &cluster_name, &service_arns)
                .await?;
            found.extend(snapshots.into_iter().map(|snapshot| DiscoveredService {
                snapshot,
                cluster_tags: cluster_tags.clone(),
            }));
        }
        tracing::debug!(services = found.len(), "discovered");
        Ok(found)
    }
}

fn target_of(id: &ServiceId) -> Target {
    Target {
        account: id.account.clone(),
        region: id.region.clone(),
    }
}

impl FleetControl for EcsFleet {
    async fn describe(&self, services: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        let Some(first) = services.first() else {
            return Ok(Vec::new());
        };
        self.sessions.credentials(&first.account).await?;
        let names: Vec<String> = services.iter().map(|s| s.service.clone()).collect();
        Ok(self
            .describe_services(&target_of(first), &first.cluster, &first.cluster, &names)
            .await?)
    }

    async fn pace_update(&self, service: &ServiceId) {
        self.pace(&target_of(service), ApiClass::Update, "UpdateService")
            .await;
    }

    #[tracing::instrument(skip(self), fields(service = %service))]
    async fn force_new_deployment(&self, service: &ServiceId) -> Result<String, ControlError> {
        self.sessions.credentials(&service.account).await?;
        let ecs = self.client(&service.account, &service.region);
        // Sent once: whether a lost or failed UpdateService took effect is decided by the
        // restarter from the service's deployments (the claim), never by sending it again.
        let out = self
            .renewing(&service.account, || {
                ecs.update_service()
                    .cluster(&service.cluster)
                    .service(&service.service)
                    .force_new_deployment(true)
                    .customize()
                    .config_override(
                        aws_sdk_ecs::config::Builder::default()
                            .retry_config(RetryConfig::disabled()),
                    )
                    .send()
            })
            .await
            .map_err(|e| control_error("UpdateService", &e))?;
        out.service()
            .and_then(|s| {
                s.deployments()
                    .iter()
                    .find(|d| d.status() == Some("PRIMARY"))
            })
            .and_then(|d| d.id())
            .map(str::to_owned)
            .ok_or_else(|| {
                ControlError::Unexpected(format!(
                    "UpdateService on {service} returned no PRIMARY deployment"
                ))
            })
    }

    async fn tag(&self, service: &ServiceArn, key: &str, value: &str) -> Result<(), ControlError> {
        self.sessions.credentials(&service.account).await?;
        let target = Target {
            account: service.account.clone(),
            region: service.region.clone(),
        };
        let ecs = self.client(&target.account, &target.region);
        self.pace(&target, ApiClass::Tag, "TagResource").await;
        let tag = aws_sdk_ecs::types::Tag::builder()
            .key(key)
            .value(value)
            .build();
        self.renewing(&service.account, || {
            ecs.tag_resource()
                .resource_arn(service.to_string())
                .tags(tag.clone())
                .send()
        })
        .await
        .map_err(|e| control_error("TagResource", &e))?;
        Ok(())
    }
}

fn tags_of(tags: &[aws_sdk_ecs::types::Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// An ECS service description as a [`ServiceSnapshot`]. `cluster` names the cluster it was
/// described in (old-format ARNs do not carry it).
pub fn snapshot(s: &Service, cluster: &str) -> Result<ServiceSnapshot, String> {
    let arn: ServiceArn = s
        .service_arn()
        .ok_or("a service has no serviceArn")?
        .parse()
        .map_err(|e: restart_core::ids::IdError| e.to_string())?;
    let id = ServiceId {
        account: arn.account.clone(),
        region: arn.region.clone(),
        cluster: cluster.to_owned(),
        service: arn.service.clone(),
    };
    let status = match s.status() {
        Some("ACTIVE") => ServiceStatus::Active,
        Some("DRAINING") => ServiceStatus::Draining,
        Some("INACTIVE") => ServiceStatus::Inactive,
        other => return Err(format!("{arn}: unknown service status {other:?}")),
    };
    let scheduling = match s.scheduling_strategy().map(|x| x.as_str()) {
        Some("DAEMON") => SchedulingStrategy::Daemon,
        _ => SchedulingStrategy::Replica,
    };
    let controller = match s.deployment_controller().map(|c| c.r#type()) {
        Some(DeploymentControllerType::CodeDeploy) => DeploymentController::CodeDeploy,
        Some(DeploymentControllerType::External) => DeploymentController::External,
        _ => DeploymentController::Ecs,
    };
    let (default_min, default_max) = scheduling.default_percentages();
    let dc = s.deployment_configuration();
    let min_healthy_percent = dc
        .and_then(|d| d.minimum_healthy_percent())
        .map_or(default_min, count);
    let max_percent = dc
        .and_then(|d| d.maximum_percent())
        .map_or(default_max, count);
    let deployments = s
        .deployments()
        .iter()
        .map(|d| {
            let status = match d.status() {
                Some("PRIMARY") => DeploymentStatus::Primary,
                Some("ACTIVE") => DeploymentStatus::Active,
                _ => DeploymentStatus::Inactive,
            };
            let rollout_state = d.rollout_state().and_then(|r| match r {
                DeploymentRolloutState::Completed => Some(RolloutState::Completed),
                DeploymentRolloutState::Failed => Some(RolloutState::Failed),
                DeploymentRolloutState::InProgress => Some(RolloutState::InProgress),
                _ => None,
            });
            Deployment {
                id: d.id().unwrap_or_default().to_owned(),
                status,
                rollout_state,
                desired: count(d.desired_count()),
                running: count(d.running_count()),
                created_at: d.created_at().and_then(to_chrono),
                updated_at: d.updated_at().and_then(to_chrono),
                task_definition: d.task_definition().map(str::to_owned),
                rollback: d
                    .rollout_state_reason()
                    .is_some_and(|r| r.contains(ROLLING_BACK)),
            }
        })
        .collect();
    // Only alarms ECS watches (enable) say something about this service's deployments.
    let deployment_alarms = dc
        .and_then(|d| d.alarms())
        .filter(|a| a.enable())
        .map(|a| a.alarm_names().to_vec())
        .unwrap_or_default();
    Ok(ServiceSnapshot {
        deployment_alarms,
        id,
        arn,
        status,
        desired: count(s.desired_count()),
        running: count(s.running_count()),
        scheduling,
        controller,
        min_healthy_percent,
        max_percent,
        deployments,
        tags: tags_of(s.tags()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        DeploymentConfiguration, DeploymentController as SdkController, SchedulingStrategy as Ss,
        Tag,
    };

    fn base() -> aws_sdk_ecs::types::builders::ServiceBuilder {
        Service::builder()
            .service_arn("arn:aws:ecs:eu-west-1:111111111111:service/payments/api")
            .service_name("api")
            .status("ACTIVE")
            .desired_count(3)
            .running_count(3)
            .tags(Tag::builder().key("owner").value("payments").build())
    }

    #[test]
    fn defaults_follow_ecs_when_the_configuration_is_absent() {
        let s = snapshot(&base().build(), "payments").unwrap();
        assert_eq!(s.id.cluster, "payments");
        assert_eq!(s.scheduling, SchedulingStrategy::Replica);
        assert_eq!(s.controller, DeploymentController::Ecs);
        assert_eq!((s.min_healthy_percent, s.max_percent), (100, 200));
        assert_eq!(s.tags["owner"], "payments");
        let daemon = snapshot(&base().scheduling_strategy(Ss::Daemon).build(), "p").unwrap();
        assert_eq!((daemon.min_healthy_percent, daemon.max_percent), (0, 100));
    }

    #[test]
    fn controller_and_percentages_are_read() {
        let s = base()
            .deployment_controller(
                SdkController::builder()
                    .r#type(DeploymentControllerType::CodeDeploy)
                    .build()
                    .unwrap(),
            )
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .minimum_healthy_percent(50)
                    .maximum_percent(150)
                    .build(),
            )
            .build();
        let s = snapshot(&s, "payments").unwrap();
        assert_eq!(s.controller, DeploymentController::CodeDeploy);
        assert_eq!((s.min_healthy_percent, s.max_percent), (50, 150));
    }

    #[test]
    fn old_format_arns_take_the_cluster_they_were_listed_in() {
        let s = base()
            .service_arn("arn:aws:ecs:eu-west-1:111111111111:service/legacy")
            .build();
        let s = snapshot(&s, "old-cluster").unwrap();
        assert!(s.arn.is_old_format());
        assert_eq!(s.id.cluster, "old-cluster");
    }

    #[test]
    fn a_bad_arn_or_status_is_an_error_naming_it() {
        let err = snapshot(&base().service_arn("nope").build(), "c").unwrap_err();
        assert!(err.contains("\"nope\""), "{err}");
        let err = snapshot(&base().status("PAUSED").build(), "c").unwrap_err();
        assert!(err.contains("PAUSED"), "{err}");
    }
}
