//! `status`, `plan`, `history`, `pause`/`resume` and `completions` against a night in moto
//! (`tools/with-moto` provides MOTO_ENDPOINT).

use crate::common;

use common::{A, B, Fixture, arn, fails, json, ok, restartctl, run};

#[tokio::test]
async fn status_shows_counts_batches_failures_and_skips() {
    let f = Fixture::new().await;
    let out = ok(f.cmd().args(["status", "--night", "2026-11-22"]));
    insta::assert_snapshot!(out);

    let v = json(&ok(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--output",
        "json",
    ])));
    assert_eq!(v["night"], "2026-11-22");
    assert_eq!(v["counts"]["completed"], 1);
    assert_eq!(v["counts"]["failed"], 1);
    assert_eq!(v["counts"]["rolled_back"], 1);
    assert_eq!(v["counts"]["started"], 1);
    assert_eq!(v["counts"]["planned"], 1);
    assert_eq!(v["counts"]["skipped"], 2);
    assert_eq!(v["skipped"]["untagged"], 1);
    assert_eq!(v["skipped"]["opted_out"], 1);
    assert_eq!(v["batches"][0]["done"], 3);
    assert_eq!(v["batches"][1]["done"], 0);
    assert_eq!(v["over"], false);
    assert_eq!(v["paused"], serde_json::Value::Null);
    let failures = v["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["service_arn"], arn(A, "app", "web"));
    assert_eq!(failures[0]["state"], "failed");
    assert_eq!(failures[0]["deployment_id"], "ecs-svc/2001");
    assert!(
        failures[1]["detail"]
            .as_str()
            .unwrap()
            .contains("rolled back")
    );
}

#[tokio::test]
async fn status_shows_a_halted_night() {
    use restart_core::night::Halt;
    use restart_core::ports::RestartStore;
    let f = Fixture::new().await;
    let halt = Halt {
        reason: "3 of 20 finished restarts failed, rolled back or timed out (15.0%, threshold 10%)"
            .into(),
        at: common::t("2026-11-22T00:12:41Z"),
    };
    assert!(f.store.halt(common::night(), &halt).await.unwrap());
    let out = ok(f.cmd().args(["status", "--night", "2026-11-22"]));
    assert!(
        out.contains("Circuit breaker: HALTED at 2026-11-22T00:12:41Z: 3 of 20 finished"),
        "{out}"
    );
    let v = json(&ok(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--output",
        "json",
    ])));
    assert_eq!(v["halted"]["reason"], halt.reason);
}

#[tokio::test]
async fn status_watch_follows_the_night_to_its_end() {
    let f = Fixture::new().await;
    let mut watch = common::Watched::spawn(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--watch",
        "--interval",
        "1",
    ]));
    // A progress line per look (stderr is not a terminal here) while the night still runs.
    watch.wait_for("3/5 done");
    f.finish_the_night().await;
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || watch.finish())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("5/5 done"), "{stderr}");
    // Then the final table.
    assert!(
        stdout.contains("5 of 5 planned services done (night over)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_watch_waits_for_a_plan_not_written_yet() {
    let f = Fixture::empty().await;
    let mut watch = common::Watched::spawn(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--watch",
        "--interval",
        "1",
    ]));
    watch.wait_for("night 2026-11-22 has no plan yet: waiting for the batcher");
    f.fill().await;
    watch.wait_for("3/5 done");
    f.finish_the_night().await;
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || watch.finish())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("5 of 5 planned services done (night over)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_of_a_night_without_a_plan_says_so() {
    let f = Fixture::new().await;
    let err = fails(f.cmd().args(["status", "--night", "2026-12-01"]));
    assert!(err.contains("night 2026-12-01 has no plan"), "{err}");
    assert!(err.contains("--night"), "{err}");
}

#[tokio::test]
async fn plan_shows_batches_in_the_timezone_and_utc() {
    let f = Fixture::new().await;
    let out = ok(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--timezone",
        "Europe/Madrid",
    ]));
    insta::assert_snapshot!(out);

    let v = json(&ok(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--timezone",
        "Europe/Madrid",
        "--output",
        "json",
    ])));
    assert_eq!(v["timezone"], "Europe/Madrid");
    assert_eq!(v["batches"][1]["start_at"], "2026-11-22T00:10:00Z");
    assert_eq!(v["batches"][1]["start_local"], "2026-11-22 01:10 CET");
    assert_eq!(v["batches"][0]["size"], 3);
    assert_eq!(v["batches"][0]["clusters"], 2);
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 3);
    assert_eq!(clusters[0]["cluster"], "app");
    assert_eq!(clusters[0]["services"], 3);
    assert_eq!(clusters[0]["skipped"], 1);
    assert_eq!(clusters[2]["account"], B);
}

#[tokio::test]
async fn plan_shows_one_services_slot() {
    let f = Fixture::new().await;
    let worker = arn(A, "app", "worker");
    let out = ok(f
        .cmd()
        .args(["plan", "--night", "2026-11-22", "--service", &worker]));
    insta::assert_snapshot!(out);
    let v = json(&ok(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--service",
        &worker,
        "--output",
        "json",
    ])));
    assert_eq!(v["batch"], 2);
    assert_eq!(v["state"], "started");

    let legacy = arn(B, "ops", "legacy");
    let v = json(&ok(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--service",
        &legacy,
        "--output",
        "json",
    ])));
    assert_eq!(v["batch"], serde_json::Value::Null);
    assert_eq!(v["skip_reason"], "untagged");

    let err = fails(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--service",
        &arn(A, "app", "nope"),
    ]));
    assert!(err.contains("is not in night 2026-11-22's plan"), "{err}");
}

#[tokio::test]
async fn plan_of_a_night_without_a_plan_says_so() {
    let f = Fixture::new().await;
    let err = fails(f.cmd().args(["plan", "--night", "2026-12-01"]));
    assert!(err.contains("night 2026-12-01 has no plan"), "{err}");
}

#[tokio::test]
async fn history_lists_nights_newest_first() {
    let f = Fixture::new().await;
    let api = arn(A, "app", "api");
    let out = ok(f.cmd().args(["history", "--service", &api]));
    insta::assert_snapshot!(out);

    let v = json(&ok(f.cmd().args([
        "history",
        "--service",
        &api,
        "--output",
        "json",
    ])));
    let nights = v["nights"].as_array().unwrap();
    assert_eq!(nights.len(), 2);
    assert_eq!(nights[0]["night"], "2026-11-22");
    assert_eq!(nights[0]["duration_seconds"], 425);
    assert_eq!(nights[0]["deployment_id"], "ecs-svc/1001");
    assert_eq!(nights[1]["night"], "2026-11-21");
    assert_eq!(nights[1]["previous_deployment"], "ecs-svc/0900");

    let v = json(&ok(f.cmd().args([
        "history",
        "--service",
        &api,
        "--nights",
        "1",
        "--output",
        "json",
    ])));
    assert_eq!(v["nights"].as_array().unwrap().len(), 1);

    let err = fails(
        f.cmd()
            .args(["history", "--service", &arn(A, "app", "nope")]),
    );
    assert!(err.contains("has no night records"), "{err}");
}

#[tokio::test]
async fn pause_and_resume_record_who_when_and_why() {
    let f = Fixture::new().await;
    let out = ok(f
        .cmd()
        .args(["pause", "--reason", "INC-4711: payments database failover"]));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]");
    settings.bind(|| insta::assert_snapshot!("pause", out));

    // moto's STS says who the caller is.
    let status = json(&ok(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--output",
        "json",
    ])));
    assert_eq!(
        status["paused"]["reason"],
        "INC-4711: payments database failover"
    );
    let by = status["paused"]["by"].as_str().unwrap();
    assert!(by.starts_with("arn:aws:"), "{by}");
    let table = ok(f.cmd().args(["status", "--night", "2026-11-22"]));
    assert!(table.contains("Kill switch: PAUSED since "), "{table}");

    // A second pause keeps the first reason.
    let again = json(&ok(f
        .cmd()
        .args(["pause", "--reason", "other", "--output", "json"])));
    assert_eq!(again["action"], "already_paused");
    assert_eq!(
        again["pause"]["reason"],
        "INC-4711: payments database failover"
    );

    let resumed = json(&ok(f.cmd().args(["resume", "--output", "json"])));
    assert_eq!(resumed["action"], "resumed");
    assert_eq!(resumed["pause"]["by"], by);
    let out = ok(f.cmd().args(["resume"]));
    assert_eq!(out, "Not paused: nothing to do.\n");
    let status = json(&ok(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--output",
        "json",
    ])));
    assert_eq!(status["paused"], serde_json::Value::Null);

    let err = fails(f.cmd().args(["pause", "--reason", "  "]));
    assert!(err.contains("--reason is empty"), "{err}");
}

#[tokio::test]
async fn pause_falls_back_to_user_when_sts_cannot_say() {
    let f = Fixture::new().await;
    // DynamoDB at moto, STS at a closed port (per-service endpoint variables): the pause is
    // still recorded, as the USER, with a warning.
    let (code, stdout, stderr) = run(common::bare()
        .env("TABLE_NAME", &f.table)
        .env("AWS_REGION", testkit::REGION)
        .env("AWS_ENDPOINT_URL_DYNAMODB", testkit::moto_endpoint())
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(["pause", "--reason", "testing", "--output", "json"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("recording the pause as user:oncall"),
        "{stderr}"
    );
    let v = json(&stdout);
    assert_eq!(v["pause"]["by"], "user:oncall");
    assert_eq!(v["caller"]["source"], "user");
}

#[test]
fn bad_configuration_and_input_are_told_with_what_to_do() {
    // No table.
    let err = fails(restartctl().args(["status"]));
    assert!(
        err.contains("no table: pass --table or set TABLE_NAME"),
        "{err}"
    );
    // A bad timezone and a bad window start, both at once.
    let err = fails(restartctl().args([
        "status",
        "--timezone",
        "Mars/Olympus",
        "--window-start",
        "25:00",
    ]));
    assert!(err.contains("--timezone/TIMEZONE"), "{err}");
    assert!(err.contains("--window-start/WINDOW_START"), "{err}");
    // A malformed ARN and an old-format one.
    let err = fails(restartctl().args(["history", "--service", "api"]));
    assert!(err.contains("is not an ECS service ARN"), "{err}");
    let err = fails(restartctl().args([
        "history",
        "--table",
        "t",
        "--service",
        "arn:aws:ecs:eu-west-1:111111111111:service/api",
    ]));
    assert!(err.contains("old-format ARN"), "{err}");
    // A bad night.
    let err = fails(restartctl().args(["status", "--night", "22/11/2026"]));
    assert!(err.contains("--night"), "{err}");
    // No region at all.
    let err = fails(common::bare().args(["status", "--table", "t"]));
    assert!(err.contains("no AWS region: pass --region"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(restartctl().args(["completions", shell]));
        assert!(out.contains("restartctl"), "{shell}");
        assert!(out.contains("trigger"), "{shell}");
    }
}

#[tokio::test]
async fn a_profile_gives_the_region_and_credentials() {
    let f = Fixture::new().await;
    let dir = std::env::temp_dir().join(testkit::unique_name("restartctl-profile"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config"),
        format!("[profile oncall]\nregion = {}\n", testkit::REGION),
    )
    .unwrap();
    std::fs::write(
        dir.join("credentials"),
        "[oncall]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let v = json(&ok(common::bare()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", dir.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
        .args([
            "--profile",
            "oncall",
            "--endpoint-url",
            &testkit::moto_endpoint(),
        ])
        .args([
            "--table",
            &f.table,
            "status",
            "--night",
            "2026-11-22",
            "--output",
            "json",
        ])));
    assert_eq!(v["counts"]["completed"], 1);
    // An unknown profile has no region: said so.
    let err = fails(
        common::bare()
            .env("AWS_CONFIG_FILE", dir.join("config"))
            .args(["--profile", "nobody", "--table", &f.table, "status"]),
    );
    assert!(err.contains("no AWS region"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
