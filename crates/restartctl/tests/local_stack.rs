//! On-call's rehearsal: a local stack (`local_stack::up`, the logic of `restart-local up`:
//! moto running the real state machine, the four real handlers, fleet-sim) brought up
//! in-process, its env file written, and the `restartctl` binary run through `sh` after
//! sourcing that file, as on-call would: `status` and `status --watch` during a real night,
//! `pause` taking hold mid-night (no restart starts, those in flight are still verified),
//! `resume`, `plan`, `trigger --wait` of a batch and of a service reaching SUCCEEDED,
//! `history`, `report --html` and `connect --print`. What restartctl reports is checked
//! against fleet-sim (`/_sim/stats`) and the table; at the end the stack is stopped and
//! nothing listens on its ports any more.
//!
//! `tools/with-moto` provides the venv (`VENV`); the stack starts its own moto.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use local_stack::up::{Up, env_file_text, write_env_file};
use local_stack::{Align, NightOptions, Watch, prepare};
use restart_aws::dynamodb::DynamoStore;
use restart_aws::sfn::Executions;
use restart_core::clock::SystemClock;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::NightStore;

/// Two clusters in one account whose member role needs an ExternalId. With one restart in
/// flight per cluster (`MAX_INFLIGHT_PER_CLUSTER=1`), app's three services restart one after
/// the other within the batch, so a pause taken once the first has started holds b and c back
/// while a is still watched to its end. ops/shell fails (and is rolled back) and has ECS Exec.
const FLEET: &str = r#"
seed: 3
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    external_id: rehearsal-ext
    clusters:
      - name: app
        services:
          - {name: a, desired: 2, deploy_seconds: 300, tags: {ecs_task_daily_restart: enabled}}
          - {name: b, desired: 2, deploy_seconds: 300, tags: {ecs_task_daily_restart: enabled}}
          - {name: c, desired: 2, deploy_seconds: 300, tags: {ecs_task_daily_restart: enabled}}
      - name: ops
        services:
          - {name: shell, desired: 2, on_restart: fail, deploy_seconds: 240, enable_execute_command: true, tags: {ecs_task_daily_restart: enabled}}
          - {name: spare, desired: 1, deploy_seconds: 240, tags: {ecs_task_daily_restart: enabled}}
          - {name: legacy}
"#;

const ACCOUNT: &str = "111111111111";

fn arn(cluster: &str, service: &str) -> String {
    format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:service/{cluster}/{service}")
}

/// `restartctl ARGS` after `source ENV_FILE`, in an environment holding nothing else of AWS.
fn restartctl(env_file: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"env_file=$1; shift; . "$env_file" && exec "$@""#)
        .arg("sh")
        .arg(env_file)
        .arg(env!("CARGO_BIN_EXE_restartctl"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("USER", "oncall")
        .env(
            "AWS_CONFIG_FILE",
            "/nonexistent/restartctl-rehearsal-config",
        )
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/restartctl-rehearsal-credentials",
        )
        .kill_on_drop(true);
    cmd
}

/// Runs `restartctl ARGS`, expects success, returns its standard output.
async fn ok(env_file: &Path, args: &[&str]) -> String {
    let out = restartctl(env_file, args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "restartctl {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Polls `check` every 200 ms until it gives a value, failing after `limit`.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Forced deployments fleet-sim has seen (`/_sim/stats`).
async fn sim_restarts(up: &Up) -> u64 {
    let stats = local_stack::http::get_json(
        &local_stack::http::client(),
        &format!("{}/_sim/stats", up.stack.sim.endpoint_url()),
    )
    .await
    .unwrap();
    stats["restarts"].as_u64().unwrap()
}

fn restarter_calls(up: &Up) -> u64 {
    up.stack
        .host
        .invocations()
        .calls
        .get("restarter")
        .copied()
        .unwrap_or(0)
}

async fn records(store: &DynamoStore, up: &Up) -> BTreeMap<String, NightRecord> {
    let night = up.stack.config.window.night_at(Utc::now()).night;
    store
        .read_night(night)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (format!("{}/{}", r.id.cluster, r.id.service), r))
        .collect()
}

fn count(records: &BTreeMap<String, NightRecord>, state: NightState) -> usize {
    records.values().filter(|r| r.state == state).count()
}

/// The states in which fleet-sim was asked to restart the service.
fn restarted(state: NightState) -> bool {
    matches!(
        state,
        NightState::Started
            | NightState::Completed
            | NightState::Failed
            | NightState::RolledBack
            | NightState::TimedOut
            | NightState::Vanished
            | NightState::Superseded
    )
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_rehearses_a_night_with_restartctl_against_the_local_stack() {
    let options = NightOptions {
        fleet: fleet_sim::FleetSpec::from_yaml_str(FLEET).unwrap(),
        window_seconds: 120,
        // The window opens at the current minute: the night's batch starts at once.
        align: Align::CurrentMinute,
        vars: [
            ("MAX_INFLIGHT_PER_CLUSTER", "1"),
            ("EXTERNAL_ID", "rehearsal-ext"),
            // One failure among a few restarts must not halt the night.
            ("FAILURE_THRESHOLD_PERCENT", "100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        watch: Watch::default(),
    };
    let (mut stack_options, compression) = prepare(&options).unwrap();
    // A restart timeout as long as the window leaves the planner one batch slot: the whole
    // night is one batch, whose restarts the per-cluster cap spreads over time.
    stack_options.vars.insert(
        "RESTART_TIMEOUT_MINUTES".into(),
        compression.window_minutes.to_string(),
    );
    let up = Up::start_prepared(stack_options, compression)
        .await
        .unwrap();
    let ports = up.ports();
    assert_eq!(
        ports.len(),
        3,
        "moto, fleet-sim and the Lambda host: {ports:?}"
    );
    assert!(ports.iter().all(|p| listening(*p)), "{ports:?}");

    let dir = TempDir(std::env::temp_dir().join(format!(
        "restartctl-rehearsal-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    )));
    let env_file = dir.0.join("local.env");
    let env = up.env();
    write_env_file(&env_file, &env_file_text(&env, std::process::id())).unwrap();
    let text = std::fs::read_to_string(&env_file).unwrap();
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ECS",
        "AWS_ENDPOINT_URL_STS",
        "TABLE_NAME",
        "STATE_MACHINE_ARN",
        "OWNER_TOPIC_ARN",
        "OPS_TOPIC_ARN",
        "WINDOW_START",
        "WINDOW_END",
        "TIMEZONE",
        "MEMBER_ROLE_NAME",
        "EXTERNAL_ID",
        "RESTART_LOCAL_PID",
    ] {
        assert!(
            text.contains(&format!("export {var}=")),
            "{var} in:\n{text}"
        );
    }

    let store = restart_aws::dynamo_store(
        &up.stack.sdk,
        &up.stack.config.table_name,
        up.stack.config.record_ttl_days,
    );
    let executions = Executions::new(
        &up.stack.sdk,
        &up.stack.hub.state_machine_arn,
        Arc::new(SystemClock),
    );

    // The night starts (as the schedule starts it); once the batch's start has restarted the
    // first service of each cluster (app and ops), on-call pauses.
    let night_arn = up.start_night().await.unwrap();
    until(
        "the first restart of each cluster",
        Duration::from_secs(90),
        || async { (sim_restarts(&up).await >= 2).then_some(()) },
    )
    .await;
    let paused = ok(&env_file, &["pause", "--reason", "INC-4711 rehearsal"]).await;
    assert!(paused.contains("INC-4711 rehearsal"), "{paused}");
    let at_pause = sim_restarts(&up).await;
    assert_eq!(at_pause, 2, "one restart in flight per cluster");

    // While paused: the restarts in flight are still watched to their end, the restarter
    // keeps polling, and nothing else starts.
    let settled = until(
        "the restarts in flight at the pause to finish",
        Duration::from_secs(60),
        || async {
            let r = records(&store, &up).await;
            (count(&r, NightState::Started) == 0 && !r.is_empty()).then_some(restarter_calls(&up))
        },
    )
    .await;
    until(
        "three more restarter calls",
        Duration::from_secs(30),
        || async { (restarter_calls(&up) >= settled + 3).then_some(()) },
    )
    .await;
    let r = records(&store, &up).await;
    assert_eq!(
        sim_restarts(&up).await,
        at_pause,
        "a restart started while paused"
    );
    let ran = r.values().filter(|x| restarted(x.state)).count() as u64;
    assert_eq!(ran, at_pause, "{r:#?}");
    assert!(
        count(&r, NightState::Planned) >= 2,
        "b, c (and spare) wait: {r:#?}"
    );
    let status = ok(&env_file, &["status"]).await;
    assert!(status.contains("Kill switch: PAUSED"), "{status}");
    assert!(status.contains("INC-4711 rehearsal"), "{status}");

    // Resumed: the rest of the night goes on, followed with `status --watch` to its end.
    let resumed = ok(&env_file, &["resume"]).await;
    assert!(resumed.contains("Resumed"), "{resumed}");
    let watch = restartctl(&env_file, &["status", "--watch", "--interval", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watched = tokio::time::timeout(Duration::from_secs(150), watch.wait_with_output())
        .await
        .expect("status --watch follows the night to its end within 150 s")
        .unwrap();
    let (out, progress) = (
        String::from_utf8_lossy(&watched.stdout).into_owned(),
        String::from_utf8_lossy(&watched.stderr).into_owned(),
    );
    assert!(watched.status.success(), "{out}\n{progress}");
    assert!(out.contains("(night over)"), "{out}");
    assert!(!progress.trim().is_empty(), "one progress line per look");
    let night = until(
        "the night's execution to end",
        Duration::from_secs(90),
        || async {
            let s = executions.describe(&night_arn).await.unwrap();
            (!s.is_running()).then_some(s)
        },
    )
    .await;
    assert!(night.succeeded(), "{night:?}");
    let r = records(&store, &up).await;
    assert!(r.values().all(|x| x.state.is_terminal()), "{r:#?}");
    assert_eq!(r["app/a"].state, NightState::Completed, "{r:#?}");
    assert_eq!(r["ops/shell"].state, NightState::Failed, "{r:#?}");
    let ran = r.values().filter(|x| restarted(x.state)).count() as u64;
    assert_eq!(sim_restarts(&up).await, ran, "{r:#?}");

    // The plan, and a batch run again: nothing is restarted twice.
    let batch = r["app/a"]
        .batch
        .expect("a planned service has a batch")
        .to_string();
    let plan = ok(&env_file, &["plan"]).await;
    assert!(plan.contains("app") && plan.contains("ops"), "{plan}");
    let before = sim_restarts(&up).await;
    let out = ok(
        &env_file,
        &[
            "trigger",
            "--batch",
            &batch,
            "--wait",
            "--poll-seconds",
            "1",
        ],
    )
    .await;
    assert!(out.contains("Execution SUCCEEDED"), "{out}");
    assert_eq!(
        sim_restarts(&up).await,
        before,
        "a batch's services restarted twice"
    );

    // One service restarted on request, followed to SUCCEEDED: one more forced deployment,
    // and the record holds the new one.
    let a = arn("app", "a");
    let old_deployment = r["app/a"].deployment_id.clone();
    let out = ok(
        &env_file,
        &[
            "trigger",
            "--service",
            &a,
            "--force",
            "--wait",
            "--poll-seconds",
            "1",
        ],
    )
    .await;
    assert!(out.contains("Execution SUCCEEDED"), "{out}");
    assert_eq!(sim_restarts(&up).await, before + 1);
    let again = records(&store, &up).await.remove("app/a").unwrap();
    assert_eq!(again.state, NightState::Completed, "{again:?}");
    assert_ne!(again.deployment_id, old_deployment, "{again:?}");

    let history = ok(&env_file, &["history", "--service", &a]).await;
    assert!(history.contains("completed"), "{history}");

    let page = dir.0.join("night.html");
    let out = ok(&env_file, &["report", "--html", page.to_str().unwrap()]).await;
    assert!(out.contains("Wrote night"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<html"), "{html}");

    // The failed service: a shell in its task, through STS (ExternalId) and ECS at fleet-sim.
    let out = ok(
        &env_file,
        &["connect", "--service", &arn("ops", "shell"), "--print"],
    )
    .await;
    assert!(out.contains("aws ecs execute-command"), "{out}");
    assert!(
        out.contains(&format!("--task arn:aws:ecs:eu-west-1:{ACCOUNT}:task/ops/")),
        "{out}"
    );

    // Down: nothing listens any more.
    up.stop().await;
    until(
        "the stack's ports to close",
        Duration::from_secs(10),
        || async { ports.iter().all(|p| !listening(*p)).then_some(()) },
    )
    .await;
}
