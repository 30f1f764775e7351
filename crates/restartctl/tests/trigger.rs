//! `trigger` against moto's Step Functions (without execute mode moto records executions,
//! which are read back here) and a night in moto's DynamoDB.

use crate::common;

use common::{A, B, Fixture, arn, fails, json, ok};

/// A state machine in moto (its definition never runs here), and its ARN.
fn state_machine() -> String {
    let name = testkit::unique_name("nightly-restart");
    let out = testkit::run_aws_cli([
        "stepfunctions",
        "create-state-machine",
        "--name",
        &name,
        "--role-arn",
        "arn:aws:iam::123456789012:role/state-machine",
        "--definition",
        r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#,
    ]);
    json(&out)["stateMachineArn"].as_str().unwrap().to_owned()
}

fn executions(sm: &str) -> Vec<serde_json::Value> {
    let out = testkit::run_aws_cli([
        "stepfunctions",
        "list-executions",
        "--state-machine-arn",
        sm,
    ]);
    json(&out)["executions"].as_array().unwrap().clone()
}

fn input_of(execution_arn: &str) -> serde_json::Value {
    let out = testkit::run_aws_cli([
        "stepfunctions",
        "describe-execution",
        "--execution-arn",
        execution_arn,
    ]);
    json(json(&out)["input"].as_str().unwrap())
}

#[tokio::test]
async fn a_batch_is_started_with_the_manual_input_and_a_unique_name() {
    let f = Fixture::new().await;
    let sm = state_machine();
    let out = ok(f.cmd().args([
        "trigger",
        "--batch",
        "2",
        "--night",
        "2026-11-22",
        "--state-machine-arn",
        &sm,
        "--output",
        "json",
    ]));
    let v = json(&out);
    assert_eq!(
        v["input"],
        serde_json::json!({"mode": "batch", "night": "2026-11-22", "batch": 2, "outside_window": false})
    );
    let name = v["name"].as_str().unwrap();
    assert!(name.starts_with("restartctl-batch-20261122-2-"), "{name}");
    let arn = v["execution_arn"].as_str().unwrap();
    assert_eq!(input_of(arn), v["input"]);

    // A second trigger of the same batch gets another name.
    let again = json(&ok(f.cmd().args([
        "trigger",
        "--batch",
        "2",
        "--night",
        "2026-11-22",
        "--state-machine-arn",
        &sm,
        "--output",
        "json",
    ])));
    assert_ne!(again["name"], v["name"]);
    assert_eq!(executions(&sm).len(), 2);

    // Table output names the execution and its input.
    let table = ok(f.cmd().args([
        "trigger",
        "--batch",
        "1",
        "--night",
        "2026-11-22",
        "--state-machine-arn",
        &sm,
    ]));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"arn:aws:states:[^ \n]+", "[execution arn]");
    settings.bind(|| insta::assert_snapshot!(table));
}

/// `--timezone`, `--window-start` and `--window-end` of a window that is open now (UTC, from an
/// hour ago to an hour from now), so that `trigger --nightly` means tonight's night whatever the
/// time the test runs at.
fn open_window() -> Vec<String> {
    let now = chrono::Utc::now();
    let hm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    vec![
        "--timezone".into(),
        "UTC".into(),
        "--window-start".into(),
        hm(now - chrono::TimeDelta::hours(1)),
        "--window-end".into(),
        hm(now + chrono::TimeDelta::hours(1)),
    ]
}

/// The flags of a window that ended an hour ago today, so that `{}` means tomorrow's night:
/// from two hours ago to one hour ago, in UTC, or in UTC-6 (`Etc/GMT+6`) when UTC's hour is
/// before 02:00 or from 22:00 on (then UTC-6's is between 16:00 and 20:00), so that the window
/// never crosses midnight and both its ends are on today's local date.
fn ended_window() -> (Vec<String>, String) {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let tz: chrono_tz::Tz = if (2..22).contains(&now.hour()) {
        chrono_tz::UTC
    } else {
        chrono_tz::Etc::GMTPlus6
    };
    let local = now.with_timezone(&tz);
    let hm = |t: chrono::DateTime<chrono_tz::Tz>| t.format("%H:%M").to_string();
    (
        vec![
            "--timezone".into(),
            tz.name().into(),
            "--window-start".into(),
            hm(local - chrono::TimeDelta::hours(2)),
            "--window-end".into(),
            hm(local - chrono::TimeDelta::hours(1)),
        ],
        local.date_naive().to_string(),
    )
}

#[tokio::test]
async fn a_night_is_started_with_the_scheduled_input() {
    let f = Fixture::new().await;
    let sm = state_machine();
    let v = json(&ok(f
        .cmd()
        .env("STATE_MACHINE_ARN", &sm)
        .args(["trigger", "--nightly", "--output", "json"])
        .args(open_window())));
    assert_eq!(v["input"], serde_json::json!({}));
    assert!(v["name"].as_str().unwrap().starts_with("restartctl-night-"));
    assert_eq!(input_of(v["execution_arn"].as_str().unwrap()), v["input"]);

    let v = json(&ok(f.cmd().env("STATE_MACHINE_ARN", &sm).args([
        "trigger",
        "--nightly",
        "--night",
        "2026-11-22",
        "--output",
        "json",
    ])));
    assert_eq!(v["input"], serde_json::json!({"night": "2026-11-22"}));
    assert!(
        v["name"]
            .as_str()
            .unwrap()
            .starts_with("restartctl-night-20261122-")
    );
    assert_eq!(executions(&sm).len(), 2);

    // The nightly run takes neither a batch nor a service.
    let err =
        fails(
            f.cmd()
                .env("STATE_MACHINE_ARN", &sm)
                .args(["trigger", "--nightly", "--batch", "1"]),
        );
    assert!(err.contains("cannot be used with"), "{err}");
    assert_eq!(executions(&sm).len(), 2);
}

#[tokio::test]
async fn nightly_after_the_window_is_refused_unless_tomorrow_is_confirmed() {
    let f = Fixture::new().await;
    let sm = state_machine();
    let (window, today) = ended_window();
    let err = fails(
        f.cmd()
            .env("STATE_MACHINE_ARN", &sm)
            .args(["trigger", "--nightly"])
            .args(&window),
    );
    assert!(err.contains("would start tomorrow's night"), "{err}");
    assert!(
        err.contains(&format!("restartctl trigger --nightly --night {today}")),
        "{err}"
    );
    assert!(err.contains("add --tomorrow"), "{err}");
    assert!(executions(&sm).is_empty());

    // --tomorrow starts it, with the schedule's input.
    let v = json(&ok(f
        .cmd()
        .env("STATE_MACHINE_ARN", &sm)
        .args(["trigger", "--nightly", "--tomorrow", "--output", "json"])
        .args(&window)));
    assert_eq!(v["input"], serde_json::json!({}));
    assert_eq!(executions(&sm).len(), 1);

    // A named night is started as asked, whatever the time; --tomorrow does not go with it, nor
    // without --nightly, nor inside the window.
    let v = json(&ok(f
        .cmd()
        .env("STATE_MACHINE_ARN", &sm)
        .args([
            "trigger",
            "--nightly",
            "--night",
            &today,
            "--output",
            "json",
        ])
        .args(&window)));
    assert_eq!(v["input"], serde_json::json!({"night": today}));
    let err = fails(f.cmd().env("STATE_MACHINE_ARN", &sm).args([
        "trigger",
        "--nightly",
        "--tomorrow",
        "--night",
        &today,
    ]));
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(f.cmd().env("STATE_MACHINE_ARN", &sm).args([
        "trigger",
        "--batch",
        "1",
        "--tomorrow",
    ]));
    assert!(err.contains("--nightly"), "{err}");
    let err = fails(
        f.cmd()
            .env("STATE_MACHINE_ARN", &sm)
            .args(["trigger", "--nightly", "--tomorrow"])
            .args(open_window()),
    );
    assert!(err.contains("not tomorrow's"), "{err}");
    assert_eq!(executions(&sm).len(), 2);
}

#[test]
fn trigger_help_names_the_nightly_run_and_what_it_picks() {
    let help = ok(common::bare().args(["trigger", "--help"]));
    assert!(help.contains("the whole night (--nightly)"), "{help}");
    assert!(help.contains("--nightly"), "{help}");
    assert!(help.contains("--tomorrow"), "{help}");
    assert!(help.contains("a missed night needs --night"), "{help}");
}

#[tokio::test]
async fn a_service_is_started_with_force_when_asked() {
    let f = Fixture::new().await;
    let sm = state_machine();
    let web = arn(A, "app", "web");
    let v = json(&ok(f.cmd().env("STATE_MACHINE_ARN", &sm).args([
        "trigger",
        "--service",
        &web,
        "--force",
        "--output",
        "json",
    ])));
    assert_eq!(
        v["input"],
        serde_json::json!({"mode": "service", "service_arn": web, "force": true})
    );
    assert!(
        v["name"]
            .as_str()
            .unwrap()
            .starts_with("restartctl-service-web-")
    );
    assert_eq!(input_of(v["execution_arn"].as_str().unwrap()), v["input"]);

    let v = json(&ok(f.cmd().env("STATE_MACHINE_ARN", &sm).args([
        "trigger",
        "--service",
        &arn(B, "ops", "legacy"),
        "--output",
        "json",
    ])));
    assert_eq!(v["input"]["force"], false);
}

#[tokio::test]
async fn bad_input_starts_nothing_and_says_why() {
    let f = Fixture::new().await;
    let sm = state_machine();
    let cases: [(&[&str], &str); 8] = [
        (
            &["--batch", "1", "--night", "2026-12-01"],
            "night 2026-12-01 has no plan",
        ),
        (
            &["--batch", "7", "--night", "2026-11-22"],
            "night 2026-11-22 has no batch 7: its batches are 1, 2",
        ),
        (
            &["--service", "arn:aws:ecs:eu-west-1:111111111111:task/app/x"],
            "is not an ECS service ARN",
        ),
        (
            &[
                "--service",
                "arn:aws:ecs:eu-west-1:111111111111:service/api",
            ],
            "old-format ARN",
        ),
        (
            &[
                "--service",
                "arn:aws:ecs:eu-west-1:111111111111:service/app/nope",
            ],
            "is not in the catalog",
        ),
        (&["--force", "--batch", "1"], "cannot be used with"),
        (
            &[
                "--batch",
                "1",
                "--service",
                "arn:aws:ecs:eu-west-1:111111111111:service/app/api",
            ],
            "cannot be used with",
        ),
        (&[], "--batch"),
    ];
    for (args, message) in cases {
        let err = fails(
            f.cmd()
                .arg("trigger")
                .args(args)
                .args(["--state-machine-arn", &sm]),
        );
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // No state machine configured.
    let err = fails(
        f.cmd()
            .args(["trigger", "--batch", "1", "--night", "2026-11-22"]),
    );
    assert!(
        err.contains("pass --state-machine-arn or set STATE_MACHINE_ARN"),
        "{err}"
    );
    assert!(executions(&sm).is_empty());
}

#[tokio::test]
async fn wait_follows_the_execution_to_its_end() {
    let f = Fixture::new().await;
    let sm = state_machine();
    let mut wait = common::Watched::spawn(f.cmd().args([
        "trigger",
        "--batch",
        "1",
        "--night",
        "2026-11-22",
        "--state-machine-arn",
        &sm,
        "--wait",
        "--poll-seconds",
        "1",
    ]));
    // moto without execute mode keeps it RUNNING: on-call's colleague stops it.
    wait.wait_for("RUNNING");
    let execution = executions(&sm)[0]["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    testkit::run_aws_cli([
        "stepfunctions",
        "stop-execution",
        "--execution-arn",
        &execution,
    ]);
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || wait.finish())
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("ABORTED"), "{stderr}");
    assert!(stdout.contains("Execution ABORTED"), "{stdout}");
}

#[tokio::test]
async fn a_missing_state_machine_is_named_with_what_to_check() {
    let f = Fixture::new().await;
    let sm = state_machine().replace(":stateMachine:", ":stateMachine:missing-");
    let err = fails(f.cmd().args([
        "trigger",
        "--batch",
        "1",
        "--night",
        "2026-11-22",
        "--state-machine-arn",
        &sm,
    ]));
    assert!(
        err.contains(&format!(
            "StartExecution on {sm} failed: not found: StateMachineDoesNotExist"
        )),
        "{err}"
    );
    assert!(err.contains("check --state-machine-arn"), "{err}");
}
