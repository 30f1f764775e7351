//! The state machine's executions with Step Functions: StartExecution (a name and an input)
//! and DescribeExecution, in domain words. Used by on-call's `restartctl trigger`.
//!
//! Errors carry the SDK's words ([`sdk_message`]) classified by what the caller can do; the
//! caller names the call and the state machine or execution in its own message.

use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::SdkConfig;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use restart_core::clock::Clock;
use restart_core::ports::ControlError;

use super::sdk::{control_error, error_code, sdk_message, to_chrono};

/// A started execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    pub execution_arn: String,
    pub name: String,
    pub started_at: DateTime<Utc>,
}

/// Where an execution stands, as Step Functions names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    PendingRedrive,
    /// A status this code does not know yet, as Step Functions spelled it.
    Other(String),
}

impl ExecutionStatus {
    /// Step Functions' spelling: `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`,
    /// `PENDING_REDRIVE`.
    pub fn parse(s: &str) -> Self {
        match s {
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "TIMED_OUT" => Self::TimedOut,
            "ABORTED" => Self::Aborted,
            "PENDING_REDRIVE" => Self::PendingRedrive,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Aborted => "ABORTED",
            Self::PendingRedrive => "PENDING_REDRIVE",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ExecutionStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionState {
    pub status: ExecutionStatus,
    /// The execution's output, when it has one and it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ExecutionState {
    pub fn is_running(&self) -> bool {
        self.status == ExecutionStatus::Running
    }

    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded
    }
}

/// Error codes that mean the state machine or execution is not there.
const NOT_FOUND: &[&str] = &[
    "StateMachineDoesNotExist",
    "ExecutionDoesNotExist",
    "InvalidArn",
    "ResourceNotFound",
];

/// Error codes with which Step Functions refuses a request it understood.
const REFUSED: &[&str] = &[
    "ExecutionAlreadyExists",
    "ExecutionLimitExceeded",
    "InvalidExecutionInput",
    "InvalidName",
    "StateMachineDeleting",
    "ValidationException",
    "KmsInvalidStateException",
];

/// Classifies an SDK error of a Step Functions call: its own codes first, then [`ErrorClass`].
fn execution_error<E>(err: &SdkError<E, HttpResponse>) -> ControlError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error_code(err) {
        Some(code) if NOT_FOUND.contains(&code) => ControlError::NotFound(sdk_message(err)),
        Some(code) if REFUSED.contains(&code) => ControlError::Refused(sdk_message(err)),
        _ => control_error("", err),
    }
}

/// One state machine's executions.
#[derive(Debug, Clone)]
pub struct Executions {
    client: aws_sdk_sfn::Client,
    state_machine: String,
    clock: Arc<dyn Clock>,
}

impl Executions {
    /// The executions of `state_machine` (its ARN) with the hub's SDK settings. `clock` dates
    /// a start whose StartExecution answer carries no usable date.
    pub fn new(sdk: &SdkConfig, state_machine: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            client: crate::xray::client!(
                aws_sdk_sfn,
                &super::hub(sdk),
                crate::xray::XrayCalls::hub()
            ),
            state_machine: state_machine.to_owned(),
            clock,
        }
    }

    /// The state machine's ARN.
    pub fn state_machine(&self) -> &str {
        &self.state_machine
    }

    /// StartExecution named `name` with `input`.
    pub async fn start(
        &self,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<Started, ControlError> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| execution_error(&e))?;
        let started_at = to_chrono(&out.start_date).unwrap_or_else(|| self.clock.now());
        Ok(Started {
            execution_arn: out.execution_arn,
            name: name.to_owned(),
            started_at,
        })
    }

    /// DescribeExecution: where the execution stands, its output once it has one.
    pub async fn describe(&self, execution_arn: &str) -> Result<ExecutionState, ControlError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| execution_error(&e))?;
        Ok(ExecutionState {
            status: ExecutionStatus::parse(out.status.as_str()),
            output: out
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok()),
            error: out.error,
            cause: out.cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_step_functions_spelling() {
        for s in [
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "TIMED_OUT",
            "ABORTED",
            "PENDING_REDRIVE",
            "SOMETHING_NEW",
        ] {
            let status = ExecutionStatus::parse(s);
            assert_eq!(status.as_str(), s);
            assert_eq!(status.to_string(), s);
            assert_eq!(serde_json::to_value(&status).unwrap(), s);
        }
        assert_eq!(ExecutionStatus::parse("ABORTED"), ExecutionStatus::Aborted);
        assert!(matches!(
            ExecutionStatus::parse("SOMETHING_NEW"),
            ExecutionStatus::Other(_)
        ));
    }

    #[test]
    fn a_state_serializes_as_before() {
        let state = ExecutionState {
            status: ExecutionStatus::Failed,
            output: None,
            error: Some("States.TaskFailed".into()),
            cause: None,
        };
        assert!(!state.is_running() && !state.succeeded());
        assert_eq!(
            serde_json::to_value(&state).unwrap(),
            serde_json::json!({"status": "FAILED", "error": "States.TaskFailed"})
        );
    }
}
