//! What ECS Exec needs, read from ECS in a member account: the service (DescribeServices:
//! enableExecuteCommand), its running tasks (ListTasks, DescribeTasks: enableExecuteCommand,
//! containers and their ExecuteCommandAgent) and a task definition's containers
//! (DescribeTaskDefinition: readonlyRootFilesystem). Used by on-call's `restartctl connect`.
//!
//! Errors are [`ControlError`]s carrying the SDK's words ([`crate::sdk::sdk_message`]); the caller names
//! the call and the resource in its own message.

use aws_sdk_ecs::types::{ContainerDefinition, DesiredStatus, Task};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::SdkConfig;
use aws_types::region::Region;

use restart_core::ids::AccountId;
use restart_core::ports::ControlError;

use super::sdk::control_error;
use super::sts::AccountSessions;

/// The managed agent ECS Exec talks to.
pub const EXEC_AGENT: &str = "ExecuteCommandAgent";

/// The most tasks DescribeTasks takes in one call.
pub const DESCRIBE_TASKS_MAX: usize = 100;

/// A service as ECS Exec cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecService {
    /// `enableExecuteCommand` on the service (tasks started since carry the agent).
    pub enable_execute_command: bool,
    pub desired: u32,
}

/// What DescribeServices said of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceLookup {
    /// The service, not INACTIVE.
    Found(ExecService),
    /// ECS does not have it (any more): its failure reason (`MISSING`), or `INACTIVE`.
    Missing { reason: String },
}

/// A task of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTask {
    pub arn: Option<String>,
    /// `lastStatus`: `RUNNING`, `PENDING`, `STOPPED`…
    pub last_status: Option<String>,
    /// `enableExecuteCommand` on the task (fixed when the task started).
    pub enable_execute_command: bool,
    pub task_definition_arn: Option<String>,
    pub containers: Vec<ExecContainer>,
}

impl ExecTask {
    pub fn is_running(&self) -> bool {
        self.last_status.as_deref() == Some("RUNNING")
    }

    /// The container named `name`.
    pub fn container(&self, name: &str) -> Option<&ExecContainer> {
        self.containers
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
    }
}

/// A container of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecContainer {
    pub name: Option<String>,
    /// The [`EXEC_AGENT`]'s `lastStatus` (`RUNNING`, `PENDING`, `STOPPED`), `None` when the
    /// container has no such agent or ECS gave no status.
    pub exec_agent: Option<String>,
}

impl ExecContainer {
    /// The exec agent is running in this container.
    pub fn exec_agent_running(&self) -> bool {
        self.exec_agent.as_deref() == Some("RUNNING")
    }
}

/// A container of a task definition, as ECS Exec cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: Option<String>,
    /// `readonlyRootFilesystem`, when the definition sets it.
    pub readonly_root_filesystem: Option<bool>,
}

/// ECS in one member account and region, with that account's credentials.
#[derive(Debug, Clone)]
pub struct EcsExec {
    client: aws_sdk_ecs::Client,
}

impl EcsExec {
    /// `base` carries the hub's SDK settings (endpoint overrides, HTTP client); the client
    /// gets `account`'s credentials from `sessions` and works in `region`.
    pub fn new(
        base: &SdkConfig,
        sessions: &AccountSessions,
        account: &AccountId,
        region: &str,
    ) -> Self {
        let config = aws_sdk_ecs::config::Builder::from(base)
            .region(Region::new(region.to_owned()))
            .credentials_provider(sessions.provider(account))
            .timeout_config(super::Timeouts::MEMBER_ECS.config())
            .build();
        Self {
            client: aws_sdk_ecs::Client::from_conf(config),
        }
    }

    /// DescribeServices of one service of `cluster`.
    pub async fn service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<ServiceLookup, ControlError> {
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| exec_error(&e))?;
        Ok(
            match out
                .services()
                .iter()
                .find(|s| s.status() != Some("INACTIVE"))
            {
                Some(s) => ServiceLookup::Found(ExecService {
                    enable_execute_command: s.enable_execute_command(),
                    desired: u32::try_from(s.desired_count()).unwrap_or(0),
                }),
                None => ServiceLookup::Missing {
                    reason: out
                        .failures()
                        .first()
                        .and_then(|f| f.reason())
                        .unwrap_or("INACTIVE")
                        .to_owned(),
                },
            },
        )
    }

    /// ListTasks (one page): the ARNs of the service's tasks whose desired status is RUNNING.
    pub async fn running_task_arns(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<String>, ControlError> {
        let listed = self
            .client
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(DesiredStatus::Running)
            .send()
            .await
            .map_err(|e| exec_error(&e))?;
        Ok(listed.task_arns().to_vec())
    }

    /// DescribeTasks of the first [`DESCRIBE_TASKS_MAX`] of `task_arns` (none: no call).
    pub async fn describe_tasks(
        &self,
        cluster: &str,
        task_arns: &[String],
    ) -> Result<Vec<ExecTask>, ControlError> {
        if task_arns.is_empty() {
            return Ok(Vec::new());
        }
        let described = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(
                task_arns.iter().take(DESCRIBE_TASKS_MAX).cloned().collect(),
            ))
            .send()
            .await
            .map_err(|e| exec_error(&e))?;
        Ok(described.tasks().iter().map(task).collect())
    }

    /// DescribeTaskDefinition: the containers of `task_definition` (ARN or family:revision).
    pub async fn task_definition(
        &self,
        task_definition: &str,
    ) -> Result<Vec<ContainerSpec>, ControlError> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| exec_error(&e))?;
        Ok(out
            .task_definition()
            .map(|d| {
                d.container_definitions()
                    .iter()
                    .map(container_spec)
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Classifies an SDK error of an ECS call, keeping only the SDK's words as the message.
fn exec_error<E>(err: &SdkError<E, HttpResponse>) -> ControlError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    control_error("", err)
}

/// An ECS task description as an [`ExecTask`].
pub fn task(t: &Task) -> ExecTask {
    ExecTask {
        arn: t.task_arn().map(str::to_owned),
        last_status: t.last_status().map(str::to_owned),
        enable_execute_command: t.enable_execute_command(),
        task_definition_arn: t.task_definition_arn().map(str::to_owned),
        containers: t
            .containers()
            .iter()
            .map(|c| ExecContainer {
                name: c.name().map(str::to_owned),
                exec_agent: c
                    .managed_agents()
                    .iter()
                    .find(|a| a.name().map(|n| n.as_str()) == Some(EXEC_AGENT))
                    .and_then(|a| a.last_status())
                    .map(str::to_owned),
            })
            .collect(),
    }
}

fn container_spec(c: &ContainerDefinition) -> ContainerSpec {
    ContainerSpec {
        name: c.name().map(str::to_owned),
        readonly_root_filesystem: c.readonly_root_filesystem(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Container, ManagedAgent, ManagedAgentName};

    fn container(name: &str, agent: Option<&str>) -> Container {
        let mut c = Container::builder().name(name);
        if let Some(status) = agent {
            c = c
                .managed_agents(
                    ManagedAgent::builder()
                        .name(ManagedAgentName::from("SomeOtherAgent"))
                        .last_status("STOPPED")
                        .build(),
                )
                .managed_agents(
                    ManagedAgent::builder()
                        .name(ManagedAgentName::ExecuteCommandAgent)
                        .last_status(status)
                        .build(),
                );
        }
        c.build()
    }

    #[test]
    fn a_task_keeps_what_ecs_exec_checks() {
        let t = Task::builder()
            .task_arn("arn:aws:ecs:eu-west-1:111111111111:task/app/abc")
            .last_status("RUNNING")
            .enable_execute_command(true)
            .task_definition_arn("arn:aws:ecs:eu-west-1:111111111111:task-definition/shell:3")
            .containers(container("app", Some("RUNNING")))
            .containers(container("sidecar", None))
            .build();
        let t = task(&t);
        assert!(t.is_running() && t.enable_execute_command);
        assert_eq!(
            t.arn.as_deref(),
            Some("arn:aws:ecs:eu-west-1:111111111111:task/app/abc")
        );
        assert!(t.container("app").unwrap().exec_agent_running());
        let sidecar = t.container("sidecar").unwrap();
        assert_eq!(sidecar.exec_agent, None);
        assert!(!sidecar.exec_agent_running());
        assert!(t.container("other").is_none());
    }

    #[test]
    fn an_agent_not_running_is_told_by_its_status() {
        let t = task(
            &Task::builder()
                .last_status("PENDING")
                .containers(container("app", Some("PENDING")))
                .build(),
        );
        assert!(!t.is_running());
        assert!(!t.enable_execute_command);
        assert_eq!(t.containers[0].exec_agent.as_deref(), Some("PENDING"));
        assert!(!t.containers[0].exec_agent_running());
    }

    #[test]
    fn container_specs_keep_readonly_root_filesystem() {
        let c = ContainerDefinition::builder()
            .name("app")
            .readonly_root_filesystem(true)
            .build();
        assert_eq!(
            container_spec(&c),
            ContainerSpec {
                name: Some("app".into()),
                readonly_root_filesystem: Some(true)
            }
        );
        let unset = container_spec(&ContainerDefinition::builder().name("x").build());
        assert_eq!(unset.readonly_root_filesystem, None);
    }
}
