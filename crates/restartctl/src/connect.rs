//! `connect --service ARN [--container NAME] [--print]`: after a failed restart, a shell in a
//! running task of the service. Assumes the member role in the service's account (core's
//! `AccountSessions`), finds a running task (ListTasks, DescribeTasks), checks what ECS Exec
//! needs (enableExecuteCommand on the service and the task, the ExecuteCommandAgent running in
//! the container, a writable root filesystem in its task definition), then runs
//! `aws ecs execute-command --interactive` with those credentials, or prints the exact command.
//! The ECS calls are `restart_aws::ecs_exec`'s.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use restart_aws::ecs_exec::{EXEC_AGENT, EcsExec, ExecTask, ServiceLookup};
use restart_aws::sts::{AccountSessions, MemberRole};
use restart_aws::sts_client;
use restart_core::clock::SystemClock;
use restart_core::ids::ServiceId;
use restart_core::ports::ControlError;
use restart_core::telemetry::ApiCalls;
use serde::Serialize;

use crate::cli::ConnectArgs;
use crate::plan::service_id;
use crate::render::{print_json, table};
use crate::settings::Settings;

/// One of ECS Exec's needs, met or not.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What to do when it is not met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(check: &'static str, ok: bool, detail: String, fix: impl FnOnce() -> String) -> Self {
        Self {
            check,
            ok,
            detail,
            fix: (!ok).then(fix),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConnectView {
    pub service_arn: String,
    pub task_arn: Option<String>,
    pub container: Option<String>,
    pub checks: Vec<Check>,
    pub ready: bool,
    /// The command, program first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The member account's credentials the command runs with (with --print only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<(String, String)>>,
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+-,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn ecs_error(what: &str, e: &ControlError) -> anyhow::Error {
    anyhow!("{what} failed: {e}; check that the member role may use ECS (ecs:Describe*, ecs:List*)")
}

/// The first RUNNING task whose ECS Exec needs are all met, else the first RUNNING one.
fn pick(tasks: &[ExecTask], container: Option<&str>) -> Option<ExecTask> {
    let running = tasks.iter().filter(|t| t.is_running());
    let ready = |t: &&ExecTask| {
        t.enable_execute_command
            && t.containers.iter().any(|c| {
                container.is_none_or(|n| c.name.as_deref() == Some(n)) && c.exec_agent_running()
            })
    };
    running
        .clone()
        .find(ready)
        .or_else(|| running.clone().next())
        .cloned()
}

async fn inspect(
    settings: &Settings,
    args: &ConnectArgs,
    id: &ServiceId,
    ecs: &EcsExec,
) -> anyhow::Result<ConnectView> {
    let arn = args.service.to_string();
    let mut checks = Vec::new();
    let mut view = ConnectView {
        service_arn: arn.clone(),
        task_arn: None,
        container: None,
        checks: Vec::new(),
        ready: false,
        command: None,
        environment: None,
    };
    let service = match ecs
        .service(&id.cluster, &id.service)
        .await
        .map_err(|e| ecs_error(&format!("DescribeServices of {arn}"), &e))?
    {
        ServiceLookup::Found(service) => service,
        ServiceLookup::Missing { reason } => bail!(
            "{arn} was not found in account {} (ECS says {reason}): check the ARN; a service \
             deleted since its restart cannot be entered",
            id.account
        ),
    };
    let enabled = service.enable_execute_command;
    checks.push(Check::new(
        "service enableExecuteCommand",
        enabled,
        enabled.to_string(),
        || {
            format!(
                "in account {}: aws ecs update-service --region {} --cluster {} --service {} \
                 --enable-execute-command --force-new-deployment (tasks started after that \
                 carry the agent)",
                id.account, id.region, id.cluster, id.service
            )
        },
    ));

    let listed = ecs
        .running_task_arns(&id.cluster, &id.service)
        .await
        .map_err(|e| ecs_error(&format!("ListTasks of {arn}"), &e))?;
    let tasks = ecs
        .describe_tasks(&id.cluster, &listed)
        .await
        .map_err(|e| ecs_error(&format!("DescribeTasks of {arn}"), &e))?;
    let task = pick(&tasks, args.container.as_deref());
    checks.push(Check::new(
        "running task",
        task.is_some(),
        match &task {
            Some(t) => format!(
                "{} of {} running",
                t.arn.as_deref().unwrap_or("?"),
                tasks.len()
            ),
            None => format!("none (desired {})", service.desired),
        },
        || {
            format!(
                "the service has no RUNNING task: look at its events (aws ecs describe-services \
                 --cluster {} --services {}) and `restartctl history --service {arn}`",
                id.cluster, id.service
            )
        },
    ));
    let Some(task) = task else {
        view.checks = checks;
        return Ok(view);
    };
    let task_arn = task.arn.clone().unwrap_or_default();
    view.task_arn = Some(task_arn.clone());
    checks.push(Check::new(
        "task enableExecuteCommand",
        task.enable_execute_command,
        task.enable_execute_command.to_string(),
        || {
            format!(
                "the task started before execute-command was enabled: replace it with \
                 `restartctl trigger --service {arn} --force`"
            )
        },
    ));

    let names: Vec<&str> = task
        .containers
        .iter()
        .filter_map(|c| c.name.as_deref())
        .collect();
    let container = match &args.container {
        Some(want) => task.container(want).ok_or_else(|| {
            anyhow!(
                "the task has no container {want}: its containers are {}; pass one of \
                     them with --container",
                names.join(", ")
            )
        })?,
        None => match task.containers.as_slice() {
            [only] => only,
            _ => bail!(
                "the task has {} containers ({}): pass one with --container",
                names.len(),
                names.join(", ")
            ),
        },
    };
    let name = container.name.clone().unwrap_or_default();
    view.container = Some(name.clone());
    let agent = container
        .exec_agent
        .clone()
        .unwrap_or_else(|| "absent".to_owned());
    checks.push(Check::new(
        "exec agent running",
        agent == "RUNNING",
        format!("{EXEC_AGENT} {agent} in container {name}"),
        || {
            format!(
                "the {EXEC_AGENT} is {agent} in container {name}: the task may need a newer \
                 platform version or the SSM endpoints (ssmmessages) may be unreachable from its \
                 subnets; a fresh task often helps: `restartctl trigger --service {arn} --force`"
            )
        },
    ));

    let td = task.task_definition_arn.as_deref().unwrap_or_default();
    let specs = ecs
        .task_definition(td)
        .await
        .map_err(|e| ecs_error(&format!("DescribeTaskDefinition of {td}"), &e))?;
    let readonly = specs
        .iter()
        .find(|c| c.name.as_deref() == Some(name.as_str()))
        .and_then(|c| c.readonly_root_filesystem)
        .unwrap_or(false);
    checks.push(Check::new(
        "writable root filesystem",
        !readonly,
        format!("readonlyRootFilesystem {readonly} in {td}"),
        || {
            format!(
                "container {name} has a read-only root filesystem, where the ECS Exec agent \
                 cannot run: set readonlyRootFilesystem to false in a new revision of the task \
                 definition"
            )
        },
    ));

    view.ready = checks.iter().all(|c| c.ok);
    view.checks = checks;
    if view.ready {
        let mut command = vec![
            args.aws_cli.clone(),
            "ecs".into(),
            "execute-command".into(),
            "--region".into(),
            id.region.clone(),
            "--cluster".into(),
            id.cluster.clone(),
            "--task".into(),
            task_arn,
            "--container".into(),
            name,
            "--interactive".into(),
            "--command".into(),
            args.command.clone(),
        ];
        if let Some(url) = &settings.endpoint_url {
            command.extend(["--endpoint-url".into(), url.clone()]);
        }
        view.command = Some(command);
    }
    Ok(view)
}

pub async fn run(settings: &Settings, args: &ConnectArgs) -> anyhow::Result<ExitCode> {
    let id = service_id(&args.service)?;
    let role_name = settings.member_role_name.clone().ok_or_else(|| {
        anyhow!(
            "no member role: pass --member-role-name or set MEMBER_ROLE_NAME (the role the hub \
             assumes in member accounts; EXTERNAL_ID too if it requires one)"
        )
    })?;
    let role = MemberRole {
        partition: args.service.partition.clone(),
        role_name,
        external_id: settings.external_id.clone(),
        session_name: "restartctl-connect".into(),
    };
    let role_arn = role.arn(&id.account);
    let sessions = AccountSessions::new(
        sts_client(&settings.sdk),
        role,
        Arc::new(SystemClock),
        Arc::new(ApiCalls::default()),
    );
    let credentials = sessions.credentials(&id.account).await.map_err(|e| {
        anyhow!(
            "could not enter account {} as {role_arn}: {e}. Check MEMBER_ROLE_NAME and \
             EXTERNAL_ID, and that your identity may sts:AssumeRole it",
            id.account
        )
    })?;
    let ecs = EcsExec::new(&settings.sdk, &sessions, &id.account, &id.region);
    let mut view = inspect(settings, args, &id, &ecs).await?;
    let environment = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            credentials.access_key_id().to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            credentials.secret_access_key().to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN".to_owned(),
            credentials.session_token().unwrap_or_default().to_owned(),
        ),
    ];
    if !view.ready {
        if settings.json() {
            print_json(&view)?;
        } else {
            print_checks(&view);
        }
        let fixes: Vec<String> = view
            .checks
            .iter()
            .filter_map(|c| c.fix.as_ref().map(|f| format!("  - {}: {f}", c.check)))
            .collect();
        bail!(
            "ECS Exec cannot enter {} yet:\n{}",
            view.service_arn,
            fixes.join("\n")
        );
    }
    let command = view.command.clone().unwrap_or_default();
    // `inspect` sets the command whenever every check passed; say so rather than index an
    // empty list if that ever changes.
    let Some((program, program_args)) = command.split_first() else {
        bail!(
            "no command to run for {}: every check passed but none was built",
            view.service_arn
        );
    };
    if args.print {
        view.environment = Some(environment.clone());
        if settings.json() {
            print_json(&view)?;
        } else {
            print_checks(&view);
            let line: Vec<String> = environment
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v)))
                .chain(command.iter().map(|a| shell_quote(a)))
                .collect();
            println!(
                "\nThe member account's credentials expire within the hour; run:\n\n{}",
                line.join(" ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !settings.json() {
        print_checks(&view);
        eprintln!("\nRunning {}", command.join(" "));
    }
    let status = std::process::Command::new(program)
        .args(program_args)
        .envs(environment)
        .env_remove("AWS_PROFILE")
        .status()
        .with_context(|| {
            format!(
                "could not run {}: install the AWS CLI v2 and the Session Manager plugin, pass \
                 --aws-cli PATH, or use --print",
                program
            )
        })?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

fn print_checks(view: &ConnectView) {
    println!("{}", view.service_arn);
    let mut t = table(["check", "ok", "detail"]);
    for c in &view.checks {
        t.add_row(vec![
            c.check.to_owned(),
            if c.ok { "yes" } else { "NO" }.to_owned(),
            c.detail.clone(),
        ]);
    }
    println!("{t}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_leaves_plain_words_alone() {
        assert_eq!(
            shell_quote("arn:aws:ecs:eu-west-1:1:task/app/abc"),
            "arn:aws:ecs:eu-west-1:1:task/app/abc"
        );
        assert_eq!(shell_quote("/bin/sh"), "/bin/sh");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("abc+/="), "abc+/=");
    }
}
