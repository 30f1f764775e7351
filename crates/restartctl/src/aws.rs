//! The SDK calls only this CLI makes: who the caller is (STS GetCallerIdentity) and the
//! state machine's executions (Step Functions). Everything the orchestrator shares (the table,
//! member-account sessions, ECS) goes through `restart_core::adapters`.

use aws_sdk_sfn::error::DisplayErrorContext;
use aws_types::SdkConfig;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Who is at the keyboard, for the pause record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The IAM identity's ARN, or `user:$USER` when STS could not tell.
    pub id: String,
    /// `sts` (GetCallerIdentity) or `user` (the `USER` variable).
    pub source: &'static str,
    /// Why STS could not tell, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sts_error: Option<String>,
}

/// The caller's IAM identity from STS GetCallerIdentity; when that fails (no credentials,
/// no network), `user:$USER`, saying why.
pub async fn caller(sdk: &SdkConfig) -> Caller {
    let sts = aws_sdk_sts::Client::new(sdk);
    match sts.get_caller_identity().send().await {
        Ok(out) => match out.arn {
            Some(arn) => Caller {
                id: arn,
                source: "sts",
                sts_error: None,
            },
            None => from_user("GetCallerIdentity returned no ARN".into()),
        },
        Err(e) => from_user(format!(
            "GetCallerIdentity failed: {}",
            aws_sdk_sts::error::DisplayErrorContext(&e)
        )),
    }
}

fn from_user(why: String) -> Caller {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    Caller {
        id: format!("user:{user}"),
        source: "user",
        sts_error: Some(why),
    }
}

/// A started execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    pub execution_arn: String,
    pub name: String,
    pub started_at: DateTime<Utc>,
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionState {
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ExecutionState {
    pub fn is_running(&self) -> bool {
        self.status == "RUNNING"
    }

    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

/// The state machine's executions.
#[derive(Debug, Clone)]
pub struct Executions {
    client: aws_sdk_sfn::Client,
    state_machine: String,
}

impl Executions {
    pub fn new(sdk: &SdkConfig, state_machine: &str) -> Self {
        Self {
            client: aws_sdk_sfn::Client::new(sdk),
            state_machine: state_machine.to_owned(),
        }
    }

    /// StartExecution with `input`, named `name`.
    pub async fn start(&self, name: &str, input: &serde_json::Value) -> anyhow::Result<Started> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "StartExecution on {} failed: {}; check --state-machine-arn (the hub \
                     stack's output StateMachineArn), the region, and that your role may \
                     states:StartExecution",
                    self.state_machine,
                    DisplayErrorContext(&e)
                )
            })?;
        let started_at =
            DateTime::from_timestamp(out.start_date.secs(), out.start_date.subsec_nanos())
                .unwrap_or_else(Utc::now);
        Ok(Started {
            execution_arn: out.execution_arn,
            name: name.to_owned(),
            started_at,
        })
    }

    /// DescribeExecution.
    pub async fn describe(&self, execution_arn: &str) -> anyhow::Result<ExecutionState> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "DescribeExecution of {execution_arn} failed: {}; the execution goes on, \
                     look at it in the Step Functions console",
                    DisplayErrorContext(&e)
                )
            })?;
        Ok(ExecutionState {
            status: out.status.as_str().to_owned(),
            output: out
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok()),
            error: out.error,
            cause: out.cause,
        })
    }
}
