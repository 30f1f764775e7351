//! `trigger --nightly [--night D]` / `trigger --batch N [--night D]` / `trigger --service ARN
//! [--force]` [--wait]: starts the state machine with the nightly input or a manual one, after
//! checking that the batch or service exists, so that a typo starts nothing.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use restart_aws::sfn::{ExecutionState, ExecutionStatus, Executions, Started};
use restart_core::clock::SystemClock;
use restart_core::ports::{CatalogStore, NightStore};
use serde::Serialize;
use serde_json::json;

use crate::cli::TriggerArgs;
use crate::plan::service_id;
use crate::render::print_json;
use crate::settings::Settings;

/// The longest execution name Step Functions accepts.
const NAME_MAX: usize = 80;

/// A unique execution name: `restartctl-<what>-<UTC time>-<random>`, only letters, digits,
/// `-` and `_`, at most 80 characters.
pub fn execution_name(what: &str, now: DateTime<Utc>, random: u64) -> String {
    let what: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    // A year past 9999 prints with a sign: keep only what names allow there too.
    let stamp: String = now
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let suffix = format!("-{stamp}-{:06x}", random & 0xff_ffff);
    let room = NAME_MAX
        .saturating_sub("restartctl-".len())
        .saturating_sub(suffix.len());
    let what: String = what.chars().take(room).collect();
    format!("restartctl-{what}{suffix}")
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x5bd1_e995);
    h.finish()
}

#[derive(Debug, Serialize)]
pub struct TriggerView {
    #[serde(flatten)]
    pub started: Started,
    pub input: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ExecutionState>,
}

pub async fn run(settings: &Settings, args: &TriggerArgs) -> anyhow::Result<ExitCode> {
    let state_machine = settings.state_machine_arn.as_deref().ok_or_else(|| {
        anyhow!(
            "no state machine: pass --state-machine-arn or set STATE_MACHINE_ARN (the hub \
             stack's output StateMachineArn); nothing was started"
        )
    })?;
    let store = settings.store()?;
    let hint = "check --table, --region and your credentials; nothing was started";
    let (input, what) = match (&args.batch, &args.service) {
        // The scheduled input: `{}`, or the night asked for.
        _ if args.nightly => match args.night {
            Some(night) => (
                json!({"night": night.to_string()}),
                format!("night-{}", night.format("%Y%m%d")),
            ),
            None => (json!({}), "night".to_owned()),
        },
        (Some(batch), None) => {
            let night = settings.night(args.night);
            let batches = store
                .read_batches(night)
                .await
                .with_context(|| format!("reading night {night}'s batches; {hint}"))?;
            if batches.is_empty() {
                bail!(
                    "night {night} has no plan: there is no batch {batch} to run. Nothing was \
                     started. `restartctl plan --night DATE` shows a night's batches"
                );
            }
            if !batches.iter().any(|b| b.batch == *batch) {
                let numbers: Vec<String> = batches.iter().map(|b| b.batch.to_string()).collect();
                bail!(
                    "night {night} has no batch {batch}: its batches are {}. Nothing was started",
                    numbers.join(", ")
                );
            }
            (
                json!({
                    "mode": "batch",
                    "night": night.to_string(),
                    "batch": batch,
                    "outside_window": args.outside_window,
                }),
                format!("batch-{}-{batch}", night.format("%Y%m%d")),
            )
        }
        (None, Some(arn)) => {
            let id = service_id(arn).context("nothing was started")?;
            let catalog = store
                .read_catalog(std::slice::from_ref(&id.account))
                .await
                .with_context(|| format!("reading account {}'s catalog; {hint}", id.account))?;
            let record = catalog.iter().find(|r| r.id == id).ok_or_else(|| {
                anyhow!(
                    "{arn} is not in the catalog: inventory has never seen it. Check the ARN \
                     (account, region, cluster, service) and that account {} is one of the \
                     hub's ACCOUNTS. Nothing was started",
                    id.account
                )
            })?;
            if let Some(gone) = record.gone_since {
                bail!(
                    "{arn} is gone: inventory has not found it since {gone}. Nothing was started"
                );
            }
            (
                json!({"mode": "service", "service_arn": arn.to_string(), "force": args.force}),
                format!("service-{}", id.service),
            )
        }
        _ => bail!("name one of --nightly, --batch or --service"),
    };
    let executions = Executions::new(&settings.sdk, state_machine, Arc::new(SystemClock));
    let name = execution_name(&what, Utc::now(), random());
    let started = executions.start(&name, &input).await.map_err(|e| {
        anyhow!(
            "StartExecution on {state_machine} failed: {e}; check --state-machine-arn (the hub \
             stack's output StateMachineArn), the region, and that your role may \
             states:StartExecution"
        )
    })?;
    if !settings.json() {
        println!("Started {}\n  input: {input}", started.execution_arn);
    }
    let mut view = TriggerView {
        started,
        input,
        result: None,
    };
    let mut code = ExitCode::SUCCESS;
    if args.wait {
        let state = wait(
            &executions,
            &view.started.execution_arn,
            args.poll_seconds,
            settings.json(),
        )
        .await?;
        if !state.succeeded() {
            code = ExitCode::FAILURE;
        }
        if !settings.json() {
            print_end(&state);
        }
        view.result = Some(state);
    }
    if settings.json() {
        print_json(&view)?;
    }
    Ok(code)
}

/// Looks at the execution every `poll_seconds` until it is no longer running.
async fn wait(
    executions: &Executions,
    arn: &str,
    poll_seconds: u64,
    quiet: bool,
) -> anyhow::Result<ExecutionState> {
    let mut last: Option<ExecutionStatus> = None;
    loop {
        let state = executions.describe(arn).await.map_err(|e| {
            anyhow!(
                "DescribeExecution of {arn} failed: {e}; the execution goes on, look at it in \
                 the Step Functions console"
            )
        })?;
        if last.as_ref() != Some(&state.status) && !quiet {
            eprintln!("{}  {}", Utc::now().format("%H:%M:%S"), state.status);
        }
        last = Some(state.status.clone());
        if !state.is_running() {
            return Ok(state);
        }
        tokio::time::sleep(Duration::from_secs(poll_seconds)).await;
    }
}

fn print_end(state: &ExecutionState) {
    println!("Execution {}", state.status);
    if let Some(output) = &state.output {
        println!("  output: {output}");
    }
    if let Some(error) = &state.error {
        println!("  error: {error}");
    }
    if let Some(cause) = &state.cause {
        println!("  cause: {cause}");
    }
    if !state.succeeded() {
        println!(
            "  `restartctl status` shows the records; the execution's history is in the Step \
             Functions console"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_are_valid_and_unique_enough() {
        let now: DateTime<Utc> = "2026-11-22T03:04:05Z".parse().unwrap();
        assert_eq!(
            execution_name("batch-20261122-3", now, 0xabc_def1),
            "restartctl-batch-20261122-3-20261122T030405Z-bcdef1"
        );
        let long = execution_name(&format!("service-{}", "x".repeat(255)), now, 1);
        assert_eq!(long.len(), 80);
        assert!(long.ends_with("-20261122T030405Z-000001"));
        assert!(
            execution_name("a b/c", now, 2)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
