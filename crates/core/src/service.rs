//! What ECS says about a service, in domain words: the adapters convert DescribeServices
//! output into [`ServiceSnapshot`], and eligibility and verification read only this.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ServiceArn, ServiceId};
use crate::tag::Tags;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceStatus {
    Active,
    Draining,
    Inactive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchedulingStrategy {
    Replica,
    Daemon,
}

impl SchedulingStrategy {
    /// ECS's (minimumHealthyPercent, maximumPercent) for a service created without a
    /// deployment configuration.
    pub fn default_percentages(self) -> (u32, u32) {
        match self {
            Self::Daemon => (0, 100),
            Self::Replica => (100, 200),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentController {
    Ecs,
    CodeDeploy,
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    Primary,
    Active,
    Inactive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

/// One entry of a service's `deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub status: DeploymentStatus,
    /// ECS reports no rollout state for some deployments (older services, external ones).
    pub rollout_state: Option<RolloutState>,
    pub desired: u32,
    pub running: u32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The task definition the deployment runs (its ARN).
    #[serde(default)]
    pub task_definition: Option<String>,
    /// A deployment ECS's circuit breaker started to roll a failed one back (its
    /// `rolloutStateReason` says "rolling back to deploymentId ..."): never one of ours, though
    /// it is newer than ours and may run the same task definition.
    #[serde(default)]
    pub rollback: bool,
}

/// A service as ECS describes it at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub id: ServiceId,
    pub arn: ServiceArn,
    pub status: ServiceStatus,
    pub desired: u32,
    pub running: u32,
    pub scheduling: SchedulingStrategy,
    pub controller: DeploymentController,
    pub min_healthy_percent: u32,
    pub max_percent: u32,
    pub deployments: Vec<Deployment>,
    pub tags: Tags,
    /// The CloudWatch alarms of its deployment configuration (`deploymentConfiguration.alarms`,
    /// when enabled): with `BLOCK_ON_SERVICE_ALARMS`, one in ALARM skips its restart
    /// (`alarm_firing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployment_alarms: Vec<String>,
}

impl ServiceSnapshot {
    /// The PRIMARY deployment, if ECS reports one.
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Primary)
    }

    /// Whether a deployment is still rolling: more than one deployment, or a PRIMARY one
    /// IN_PROGRESS.
    pub fn deployment_in_progress(&self) -> bool {
        self.deployments.len() > 1
            || self
                .primary()
                .is_some_and(|d| d.rollout_state == Some(RolloutState::InProgress))
    }
}
