//! `iam-check` (`make iam-check`): the templates' IAM put to everything a night and on-call do.
//!
//! It plays a local night of `crates/fleet-sim/fleets/chaos.yaml` (in an organization, the
//! accounts listed from Organizations as samconfig's `AccountsSource=organizations` does; with
//! `ChangeCalendar` and `BlockingAlarmPrefix` set, so that the restarter reads the hub's change
//! calendar and the blocking alarms of the hub and of each member account) with every request
//! authorized ([`crate::iam`]); then runs, as the hub's on-call role, every
//! `restartctl` command and every AWS CLI command that docs/runbook.md and docs/deploy.md tell
//! on-call to run, those the local stack serves sent (Step Functions, STS), the others
//! (CloudFormation, CloudWatch Logs, the dashboard, the dead-letter queue, ECS Exec, the SSO
//! sign-in into the on-call role) evaluated as requests without being sent. Every request is
//! recorded in a trace ([`Trace`]); the report lists each denied request (principal, action,
//! resource) and each grant no request used, with the comment that keeps it.
//!
//! [`replay`] decides a recorded trace again against other templates: what
//! `tests/iam_check.rs` does with one needed action dropped from each role.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::engine::{Caller, Entry, Replay, Request};
use super::{Enforcement, LocalHub, access_key};
use crate::stack::LocalStack;
use crate::{Align, NightOptions, Watch, infra, prepare};

/// What a replay needs to name the local stack's resources again, and the requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trace {
    pub stack_name: String,
    pub table: String,
    pub topics: BTreeMap<String, String>,
    pub state_machine_arn: String,
    pub vars: BTreeMap<String, String>,
    pub organization_id: Option<String>,
    pub member_accounts: Vec<String>,
    pub entries: Vec<Entry>,
    /// Commands that did not end as expected (not a denial: their output says why).
    pub failed_commands: Vec<String>,
    /// How long the check took, seconds.
    pub seconds: f64,
}

impl Trace {
    fn local<'a>(&'a self, infra_dir: &'a Path) -> LocalHub<'a> {
        LocalHub {
            infra_dir,
            stack_name: &self.stack_name,
            account: infra::ACCOUNT,
            region: infra::REGION,
            table: &self.table,
            topics: &self.topics,
            state_machine_arn: &self.state_machine_arn,
            vars: &self.vars,
            organization_id: self.organization_id.as_deref(),
            member_accounts: &self.member_accounts,
        }
    }
}

/// Decides `trace` again against the templates in `infra_dir`.
pub fn replay(infra_dir: &Path, trace: &Trace) -> anyhow::Result<Replay> {
    let enforcement = Enforcement::load(&trace.local(infra_dir))?;
    Ok(enforcement.policies.replay(&trace.entries))
}

/// The change calendar of chaos.yaml's hub the check's night reads (`ChangeCalendar`).
pub const CHANGE_CALENDAR: &str = "ecs-restart-freeze";
/// The prefix of chaos.yaml's blocking alarms (`BlockingAlarmPrefix`).
pub const BLOCKING_ALARM_PREFIX: &str = "ecs-restart-block-";

/// The chaos fleet, in an organization whose management account is the hub.
pub fn chaos_fleet() -> anyhow::Result<fleet_sim::FleetSpec> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-sim/fleets/chaos.yaml");
    let mut fleet = fleet_sim::FleetSpec::from_path(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    fleet.organization.get_or_insert_with(Default::default);
    Ok(fleet)
}

/// The AWS CLI: `$AWS_CLI` (the Makefile exports it), else the project's venv's.
fn aws_cli() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("AWS_CLI").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let venv = crate::moto::find_venv()?;
    Ok(venv.join("bin/aws"))
}

/// The on-call environment: the on-call role's key, the stack's endpoints (the hub's through
/// the Lambda host, which authorizes), and what docs/runbook.md's "Set up once" exports.
fn oncall_env(stack: &LocalStack, compression: &crate::Compression) -> Vec<(String, String)> {
    let host = format!("http://{}", stack.host.addr);
    let sim = stack.sim.endpoint_url();
    let mut env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", access_key("oncall")),
        ("AWS_SECRET_ACCESS_KEY", "local-oncall-secret".to_owned()),
        ("AWS_REGION", infra::REGION.to_owned()),
        ("AWS_DEFAULT_REGION", infra::REGION.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        (
            "AWS_CONFIG_FILE",
            "/nonexistent/iam-check-config".to_owned(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/iam-check-credentials".to_owned(),
        ),
        ("AWS_ENDPOINT_URL", host),
        ("TABLE_NAME", stack.config.table_name.clone()),
        ("STATE_MACHINE_ARN", stack.hub.state_machine_arn.clone()),
        (
            "MEMBER_ROLE_NAME",
            stack
                .iam
                .hub_params
                .get("MemberOnCallRoleName")
                .cloned()
                .unwrap_or_default(),
        ),
        (
            "EXTERNAL_ID",
            stack.config.external_id.clone().unwrap_or_default(),
        ),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("USER", "oncall".to_owned()),
        ("HOME", std::env::temp_dir().display().to_string()),
        ("RUST_LOG", "error".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(crate::stack::fleet_sim_endpoint_vars(&sim));
    env.extend(
        compression
            .vars()
            .into_iter()
            .filter(|(k, _)| ["TIMEZONE", "WINDOW_START", "WINDOW_END"].contains(&k.as_str())),
    );
    env
}

/// Runs `program ARGS` in `env` alone; `Ok(true)` when it exited 0.
async fn run(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &mut String,
) -> anyhow::Result<bool> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    let _ = writeln!(
        log,
        "$ {} {}\n{}{}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.status.success())
}

/// The check's options.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// `infra/`.
    pub infra_dir: PathBuf,
    /// This program (it runs restartctl as `SELF restartctl ARGS`).
    pub restartctl: PathBuf,
    /// Where to write the commands' output.
    pub log: PathBuf,
}

/// Plays the night and the commands; returns the trace.
pub async fn record(options: &CheckOptions) -> anyhow::Result<Trace> {
    let began = Instant::now();
    let fleet = chaos_fleet()?;
    let world = fleet_sim::world::build(&fleet, 0);
    let root = world
        .organization
        .as_ref()
        .map(|o| o.root.clone())
        .context("the fleet has no organization")?;
    let vars: BTreeMap<String, String> = [
        // Many failures on purpose: the breaker would halt the night and hide the rest.
        ("FAILURE_THRESHOLD_PERCENT", "100".to_owned()),
        // As samconfig.example.toml: the accounts of the organization's units (here its
        // root, where the chaos fleet's accounts are).
        ("ACCOUNTS_SOURCE", "organizations".to_owned()),
        ("ORGANIZATION_UNITS", root),
        // The guards (docs/design.md 3.3), on chaos.yaml's calendar and alarms: the restarter
        // reads the hub's change calendar and alarms with its own role, each member account's
        // alarms through the night's member role.
        ("CHANGE_CALENDAR", CHANGE_CALENDAR.to_owned()),
        ("BLOCKING_ALARM_PREFIX", BLOCKING_ALARM_PREFIX.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let options_night = NightOptions {
        fleet,
        window_seconds: 60,
        align: Align::CurrentMinute,
        vars,
        watch: Watch {
            progress: false,
            // The night ends a minute after its window (the restart timeout), or after a claim's
            // lease when an UpdateService of account 100000000003 got an HTTP 500.
            grace: Watch::lease_grace(),
        },
    };
    let (mut stack_options, compression) = prepare(&options_night)?;
    stack_options.infra_dir = options.infra_dir.clone();
    let stack = LocalStack::start(stack_options).await?;
    let result = commands(&stack, &compression, &options_night, options).await;
    let trace = Trace {
        stack_name: stack.iam.names.stack_name.clone(),
        table: stack.hub.table.clone(),
        topics: stack.hub.topics.clone(),
        state_machine_arn: stack.hub.state_machine_arn.clone(),
        vars: stack.iam.vars.clone(),
        organization_id: world.organization.as_ref().map(|o| o.id.clone()),
        member_accounts: world.account_order.clone(),
        entries: stack.iam.policies.trace(),
        failed_commands: Vec::new(),
        seconds: 0.0,
    };
    stack.stop().await;
    let failed = result?;
    Ok(Trace {
        failed_commands: failed,
        seconds: began.elapsed().as_secs_f64(),
        ..trace
    })
}

async fn commands(
    stack: &LocalStack,
    compression: &crate::Compression,
    night_options: &NightOptions,
    options: &CheckOptions,
) -> anyhow::Result<Vec<String>> {
    let iam = stack.iam.clone();
    iam.set_phase("night (chaos.yaml)");
    let report = crate::run_night(stack, compression, &night_options.watch).await?;
    let night = report.night.to_string();
    let mut failed = Vec::new();
    if !report.is_ok() {
        failed.push(format!(
            "the night did not end as it should:\n{}",
            report.render()
        ));
    }
    let env = oncall_env(stack, compression);
    let mut log = String::new();
    let service = "arn:aws:ecs:eu-west-1:100000000001:service/paiements/web";
    let owners = std::env::temp_dir().join(format!("iam-check-owners-{}.txt", std::process::id()));
    std::fs::write(&owners, "100000000001=payments\n100000000004=stock\n")?;
    let html = std::env::temp_dir().join(format!("iam-check-night-{}.html", std::process::id()));
    // docs/runbook.md's and docs/deploy.md's restartctl commands, in a runbook's order.
    let restartctl: Vec<(&str, Vec<String>, bool)> = [
        ("runbook 1: status", vec!["status"], true),
        (
            "runbook 1: status --night",
            vec!["status", "--night", &night],
            true,
        ),
        (
            "runbook 2: pause",
            vec!["pause", "--reason", "INC-1 rehearsal"],
            true,
        ),
        (
            "runbook 3: plan --service",
            vec!["plan", "--night", &night, "--service", service],
            true,
        ),
        (
            "runbook 3: history",
            vec!["history", "--service", service],
            true,
        ),
        // connect's checks fail on a service without ECS Exec, after its requests.
        (
            "runbook 4: connect --print",
            vec!["connect", "--service", service, "--print"],
            false,
        ),
        ("runbook 5: resume", vec!["resume"], true),
        (
            "runbook 5: trigger --service --force --wait",
            vec!["trigger", "--service", service, "--force", "--wait"],
            true,
        ),
        (
            "runbook 5: trigger --batch --outside-window",
            vec![
                "trigger",
                // Batch 0: a night's plan always has it, however few batches the window holds.
                "--batch",
                "0",
                "--night",
                &night,
                "--outside-window",
            ],
            true,
        ),
        // The night is held by the scheduled execution: this one is refused at inventory and
        // releases nothing of the holder's on its failure path (a conditional DeleteItem). It is
        // followed to its end, so that its failure path is in the trace on every run.
        (
            "runbook 5: trigger --nightly --night",
            vec![
                "trigger",
                "--nightly",
                "--night",
                &night,
                "--wait",
                "--poll-seconds",
                "1",
            ],
            false,
        ),
        (
            "runbook 6: report --html",
            vec![
                "report",
                "--night",
                &night,
                "--html",
                &html.display().to_string(),
            ],
            true,
        ),
        (
            "runbook: config set owner",
            vec!["config", "set", "owner", "100000000001=payments"],
            true,
        ),
        ("runbook: config show", vec!["config", "show"], true),
        (
            "runbook: config unset owner",
            vec!["config", "unset", "owner", "100000000001"],
            true,
        ),
        (
            "runbook: config import",
            vec!["config", "import", &owners.display().to_string()],
            true,
        ),
        ("deploy 8: plan", vec!["plan", "--night", &night], true),
    ]
    .into_iter()
    .map(|(what, args, must)| (what, args.into_iter().map(str::to_owned).collect(), must))
    .collect();
    for (what, args, must) in restartctl {
        iam.set_phase(&format!("{what} (restartctl {})", args.join(" ")));
        let mut full = vec!["restartctl".to_owned()];
        full.extend(args);
        let ok = run(&options.restartctl, &full, &env, &mut log).await?;
        if must && !ok {
            failed.push(format!("restartctl {}", full[1..].join(" ")));
        }
    }

    // The AWS CLI commands the local stack serves.
    let cli = aws_cli()?;
    let sm = stack.hub.state_machine_arn.clone();
    let member_oncall = format!(
        "arn:aws:iam::100000000001:role/{}",
        iam.hub_params
            .get("MemberOnCallRoleName")
            .cloned()
            .unwrap_or_default()
    );
    let external_id = stack.config.external_id.clone().unwrap_or_default();
    let stamp = Utc::now().format("%H%M%S").to_string();
    let aws: Vec<(&str, Vec<String>)> = vec![
        (
            "runbook 1: the execution's history (find it)",
            vec![
                "stepfunctions",
                "list-executions",
                "--state-machine-arn",
                &sm,
            ],
        ),
        (
            "deploy 8: start-execution (night)",
            vec![
                "stepfunctions",
                "start-execution",
                "--state-machine-arn",
                &sm,
                "--name",
                &format!("night-{stamp}"),
                "--input",
                &format!("{{\"night\":\"{night}\"}}"),
            ],
        ),
        (
            "deploy 8: start-execution (batch)",
            vec![
                "stepfunctions",
                "start-execution",
                "--state-machine-arn",
                &sm,
                "--name",
                &format!("batch-1-{stamp}"),
                "--input",
                &format!("{{\"mode\":\"batch\",\"night\":\"{night}\",\"batch\":1}}"),
            ],
        ),
        (
            "deploy 8: start-execution (service)",
            vec![
                "stepfunctions",
                "start-execution",
                "--state-machine-arn",
                &sm,
                "--name",
                &format!("service-{stamp}"),
                "--input",
                &format!("{{\"mode\":\"service\",\"service_arn\":\"{service}\",\"force\":true}}"),
            ],
        ),
        (
            "deploy 7: assume-role into a member on-call role",
            vec![
                "sts",
                "assume-role",
                "--role-arn",
                &member_oncall,
                "--role-session-name",
                "check",
                "--external-id",
                &external_id,
                "--query",
                "Credentials.Expiration",
            ],
        ),
    ]
    .into_iter()
    .map(|(w, a)| (w, a.into_iter().map(|s| s.to_owned()).collect()))
    .collect();
    for (what, args) in aws {
        iam.set_phase(&format!("{what} (aws {})", args[..2].join(" ")));
        if !run(&cli, &args, &env, &mut log).await? {
            failed.push(format!("aws {}", args.join(" ")));
        }
    }
    // get-execution-history of the night's execution.
    iam.set_phase("runbook 1: the execution's history (aws stepfunctions get-execution-history)");
    let args = vec![
        "stepfunctions".to_owned(),
        "get-execution-history".to_owned(),
        "--execution-arn".to_owned(),
        report.execution.arn.clone(),
        "--max-items".to_owned(),
        "5".to_owned(),
    ];
    if !run(&cli, &args, &env, &mut log).await? {
        failed.push(format!("aws {}", args.join(" ")));
    }

    evaluated_only(&iam);
    std::fs::write(&options.log, log)
        .with_context(|| format!("writing {}", options.log.display()))?;
    let _ = std::fs::remove_file(&owners);
    let _ = std::fs::remove_file(&html);
    Ok(failed)
}

/// The runbook's requests the local stack cannot serve, evaluated as the on-call role's
/// without being sent.
fn evaluated_only(iam: &Arc<Enforcement>) {
    let oncall = iam.principals.keys[&access_key("oncall")].clone();
    let n = &iam.names;
    let region = iam.hub.region.clone();
    let att = |k: &str| n.atts.get(k).cloned().unwrap_or_default();
    let key = att("Key.Arn");
    let via = |s: &str| format!("{s}.{region}.amazonaws.com");
    let stack_id = format!(
        "arn:aws:cloudformation:{region}:{}:stack/{}/00000000-0000-4000-8000-000000000000",
        n.account, n.stack_name
    );
    let mut asks: Vec<(&str, Request)> = vec![
        (
            "runbook 0 / deploy 2, 5, 8: aws cloudformation describe-stacks",
            Request::new("cloudformation:DescribeStacks", stack_id),
        ),
        (
            "runbook 1: the dashboard",
            Request::new(
                "cloudwatch:GetDashboard",
                format!(
                    "arn:aws:cloudwatch::{}:dashboard/{}",
                    n.account,
                    n.refs.get("Dashboard").cloned().unwrap_or_default()
                ),
            ),
        ),
        (
            "runbook 1: the dashboard's alarms (aws cloudwatch describe-alarms)",
            Request::new("cloudwatch:DescribeAlarms", att("RestartsFailedAlarm.Arn")),
        ),
        (
            "runbook 1: the dashboard's metrics",
            Request::new("cloudwatch:GetMetricData", "*"),
        ),
        (
            "runbook 1 MissedNightAlarm: read the message (aws sqs receive-message)",
            Request::new("sqs:ReceiveMessage", att("ScheduleDeadLetterQueue.Arn")),
        ),
        (
            "runbook 1 MissedNightAlarm: read the message (aws sqs receive-message)",
            Request::new("kms:Decrypt", key.clone()).with("kms:ViaService", &[&via("sqs")]),
        ),
        (
            "runbook 1 MissedNightAlarm: empty the queue (aws sqs delete-message)",
            Request::new("sqs:DeleteMessage", att("ScheduleDeadLetterQueue.Arn")),
        ),
        (
            "runbook 1 MissedNightAlarm: the queue is empty (aws sqs get-queue-attributes)",
            Request::new("sqs:GetQueueAttributes", att("ScheduleDeadLetterQueue.Arn")),
        ),
    ];
    for group in [
        "InventoryLogGroup",
        "BatcherLogGroup",
        "RestarterLogGroup",
        "NotifierLogGroup",
    ] {
        let arn = att(&format!("{group}.Arn"));
        let stream = format!(
            "{}:log-stream:2026/01/01/[$LATEST]0",
            arn.trim_end_matches(":*")
        );
        asks.push((
            "runbook 1: the function's log group (aws logs filter-log-events, tail)",
            Request::new("logs:FilterLogEvents", arn.clone()),
        ));
        asks.push((
            "runbook 1: the function's log group (its streams)",
            Request::new("logs:DescribeLogStreams", arn),
        ));
        asks.push((
            "runbook 1: the function's log group (a stream)",
            Request::new("logs:GetLogEvents", stream),
        ));
    }
    for (what, mut r) in asks {
        r.context
            .insert("aws:RequestedRegion".to_owned(), vec![region.clone()]);
        iam.set_phase(&format!("{what} (evaluated, not sent)"));
        iam.evaluate_only(&oncall, r, None);
    }
    // ECS Exec: the `aws ecs execute-command` connect prints, as the member on-call role in
    // the service's account (a session chained from on-call's, with its source identity).
    let member = format!(
        "arn:aws:iam::100000000001:role/{}",
        iam.hub_params
            .get("MemberOnCallRoleName")
            .cloned()
            .unwrap_or_default()
    );
    let exec = Caller {
        role_arn: member,
        session: "restartctl-connect".into(),
        ours: true,
    };
    iam.set_phase("runbook 4: aws ecs execute-command (evaluated, not sent)");
    for resource in [
        "arn:aws:ecs:eu-west-1:100000000001:cluster/paiements",
        "arn:aws:ecs:eu-west-1:100000000001:task/paiements/0000000000000000000000000000000a",
    ] {
        iam.evaluate_only(
            &exec,
            Request::new("ecs:ExecuteCommand", resource)
                .with("aws:RequestedRegion", &["eu-west-1"]),
            None,
        );
    }
    // The sign-in: the SSO role assumes the hub on-call role (docs/runbook.md's profile),
    // passing its source identity and session tags: the on-call role's trust decides.
    let sso = Caller {
        role_arn: iam
            .hub_params
            .get("OnCallTrustedPrincipalArn")
            .cloned()
            .unwrap_or_default(),
        session: "oncall".into(),
        ours: false,
    };
    let role = oncall.role_arn.clone();
    iam.set_phase(
        "runbook 0: the hub-oncall profile (SSO into the on-call role; evaluated, not sent)",
    );
    for action in ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"] {
        iam.evaluate_only(&sso, Request::new(action, role.clone()), Some(role.clone()));
    }
}

/// The report, as markdown: what was played, the denied requests, the grants no request
/// used.
pub fn report(trace: &Trace, replay: &Replay) -> String {
    let mut out = String::new();
    let sent = trace.entries.iter().filter(|e| e.sent).count();
    let _ = writeln!(
        out,
        "{} requests authorized ({} sent, {} evaluated only) in {:.0} s.\n",
        trace.entries.len(),
        sent,
        trace.entries.len() - sent,
        trace.seconds
    );
    let mut by_role: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for e in &trace.entries {
        let role = e
            .caller
            .role_arn
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        *by_role
            .entry(role)
            .or_default()
            .entry(e.request.action.clone())
            .or_default() += 1;
    }
    let _ = writeln!(out, "| role | requests by action |\n|---|---|");
    for (role, actions) in &by_role {
        let list: Vec<String> = actions.iter().map(|(a, n)| format!("`{a}` {n}")).collect();
        let _ = writeln!(out, "| {role} | {} |", list.join(", "));
    }
    let _ = writeln!(out, "\nDenied requests: {}", replay.denied.len());
    for d in &replay.denied {
        let _ = writeln!(
            out,
            "- DENIED {} {} on {} ({}x, {}): {}",
            d.principal, d.action, d.resource, d.count, d.origin, d.message
        );
    }
    let _ = writeln!(out, "\nGrants no request used: {}", replay.unused.len());
    for u in &replay.unused {
        let _ = writeln!(
            out,
            "- {} {} {} `{}`: {}",
            u.file,
            u.role,
            u.sid,
            u.action,
            u.kept.as_deref().map_or_else(
                || "NO REASON: remove it, or keep it with a reason comment".to_owned(),
                |r| format!("kept: {r}")
            )
        );
    }
    if !trace.failed_commands.is_empty() {
        let _ = writeln!(out, "\nCommands that failed (see the log):");
        for c in &trace.failed_commands {
            let _ = writeln!(out, "- {c}");
        }
    }
    out
}
