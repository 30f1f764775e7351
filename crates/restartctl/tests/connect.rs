//! `connect` against fleet-sim (ECS, STS) started in-process: the member role is assumed,
//! a running task found, ECS Exec's needs checked, the command printed or run.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{fails, json, ok};
use fleet_sim::{FleetSpec, RunningSim};

const FLEET: &str = r#"
hub_account: "999999999999"
throttling: false
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    external_id: oncall-ext
    clusters:
      - name: app
        services:
          - name: shell
            desired: 2
            enable_execute_command: true
          - name: noexec
            desired: 1
          - name: locked
            desired: 1
            enable_execute_command: true
            readonly_root_filesystem: true
          - name: idle
            desired: 0
            enable_execute_command: true
  - id: "222222222222"
    regions: [eu-west-1]
    deny_assume_role: true
    clusters:
      - name: app
        services:
          - name: shell
            enable_execute_command: true
"#;

async fn sim() -> RunningSim {
    fleet_sim::spawn(FleetSpec::from_yaml_str(FLEET).unwrap())
        .await
        .unwrap()
}

fn svc(account: &str, name: &str) -> String {
    format!("arn:aws:ecs:eu-west-1:{account}:service/app/{name}")
}

/// `restartctl` with every AWS call at fleet-sim (AWS_ENDPOINT_URL), the member role set.
fn connect(sim: &RunningSim) -> Command {
    let mut cmd = common::bare();
    cmd.env("AWS_REGION", "eu-west-1")
        .env("AWS_ENDPOINT_URL", sim.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "AKIDHUB0000000000000")
        .env("MEMBER_ROLE_NAME", "ecs-restart-member")
        .env("EXTERNAL_ID", "oncall-ext")
        .arg("connect");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_shows_the_checks_and_the_exact_command() {
    let sim = sim().await;
    let out = ok(connect(&sim).args(["--service", &svc("111111111111", "shell"), "--print"]));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"task/app/[0-9a-f]+", "task/app/[task]");
    settings.add_filter(r"task-definition/shell:\d+", "task-definition/shell:[rev]");
    settings.add_filter(r"(AWS_[A-Z_]+)=\S+", "$1=[redacted]");
    // Redacted cells keep the widths of the real ones: close the gaps.
    settings.add_filter(r" {2,}\|", " |");
    settings.bind(|| insta::assert_snapshot!(out));
    assert!(out.contains("AWS_SESSION_TOKEN="));

    let v = json(&ok(connect(&sim).args([
        "--service",
        &svc("111111111111", "shell"),
        "--print",
        "--output",
        "json",
        "--container",
        "app",
        "--command",
        "/bin/bash",
    ])));
    assert_eq!(v["ready"], true);
    assert_eq!(v["container"], "app");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
    let command: Vec<&str> = v["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let task = v["task_arn"].as_str().unwrap();
    assert!(task.starts_with("arn:aws:ecs:eu-west-1:111111111111:task/app/"));
    assert_eq!(
        command,
        [
            "aws",
            "ecs",
            "execute-command",
            "--region",
            "eu-west-1",
            "--cluster",
            "app",
            "--task",
            task,
            "--container",
            "app",
            "--interactive",
            "--command",
            "/bin/bash"
        ]
    );
    // The member account's credentials, not the hub's.
    let env = v["environment"].as_array().unwrap();
    assert_eq!(env[0][0], "AWS_ACCESS_KEY_ID");
    let key = env[0][1].as_str().unwrap();
    assert!(
        key.starts_with("ASIASIM") && key.contains("111111111111"),
        "{key}"
    );
    assert_eq!(env[2][0], "AWS_SESSION_TOKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_print_the_aws_cli_runs_with_the_member_credentials() {
    let sim = sim().await;
    let dir = std::env::temp_dir().join(testkit::unique_name("restartctl-connect"));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("aws");
    let seen = dir.join("seen");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$AWS_ACCESS_KEY_ID $*\" > {}\nexit 3\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, stderr) = common::run(connect(&sim).args([
        "--service",
        &svc("111111111111", "shell"),
        "--aws-cli",
        fake.to_str().unwrap(),
    ]));
    // The AWS CLI's exit code is restartctl's.
    assert_eq!(code, 3, "{stderr}");
    let line = std::fs::read_to_string(&seen).unwrap();
    assert!(line.starts_with("ASIASIM"), "{line}");
    assert!(
        line.contains("ecs execute-command --region eu-west-1 --cluster app --task arn:aws:ecs:eu-west-1:111111111111:task/app/"),
        "{line}"
    );
    assert!(
        line.trim_end()
            .ends_with("--container app --interactive --command /bin/sh"),
        "{line}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmet_needs_are_told_with_their_fix_and_nothing_runs() {
    let sim = sim().await;
    let cases = [
        (
            "noexec",
            "service enableExecuteCommand: in account 111111111111: aws ecs update-service --region eu-west-1 --cluster app --service noexec --enable-execute-command --force-new-deployment",
        ),
        (
            "locked",
            "writable root filesystem: container app has a read-only root filesystem",
        ),
        ("idle", "running task: the service has no RUNNING task"),
    ];
    for (name, message) in cases {
        let (code, stdout, stderr) = common::run(connect(&sim).args([
            "--service",
            &svc("111111111111", name),
            "--aws-cli",
            "/nonexistent/aws",
        ]));
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(stderr.contains("ECS Exec cannot enter"), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(stdout.contains("| NO "), "{name}: {stdout}");
    }
    let v = json(
        &common::run(connect(&sim).args([
            "--service",
            &svc("111111111111", "noexec"),
            "--output",
            "json",
        ]))
        .1,
    );
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"][0]["ok"], false);
    assert_eq!(v["checks"][2]["check"], "task enableExecuteCommand");
    assert_eq!(v["checks"][2]["ok"], false);
    assert!(v.get("command").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_unreachable_accounts_say_what_to_do() {
    let sim = sim().await;
    let err = fails(connect(&sim).args([
        "--service",
        &svc("111111111111", "shell"),
        "--container",
        "sidecar",
        "--print",
    ]));
    assert!(
        err.contains("the task has no container sidecar: its containers are app"),
        "{err}"
    );

    let err = fails(connect(&sim).args(["--service", &svc("111111111111", "gone"), "--print"]));
    assert!(
        err.contains("was not found in account 111111111111"),
        "{err}"
    );

    let err = fails(connect(&sim).args(["--service", &svc("222222222222", "shell"), "--print"]));
    assert!(
        err.contains("could not enter account 222222222222 as arn:aws:iam::222222222222:role/ecs-restart-member"),
        "{err}"
    );

    let err = fails(connect(&sim).env_remove("MEMBER_ROLE_NAME").args([
        "--service",
        &svc("111111111111", "shell"),
        "--print",
    ]));
    assert!(
        err.contains("pass --member-role-name or set MEMBER_ROLE_NAME"),
        "{err}"
    );

    let err = fails(connect(&sim).args([
        "--service",
        "arn:aws:ecs:eu-west-1:111111111111:service/shell",
    ]));
    assert!(err.contains("old-format ARN"), "{err}");
}
