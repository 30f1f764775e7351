//! `plan --batch N` and `status --state S` against the night in moto (tests/common: batch 1
//! api completed, web failed, etl rolled back; batch 2 worker started, reports planned; two
//! skipped): the services with their owner, state and ARN, and that ARN taken as it is by
//! `history --service`.

use crate::common;

use common::{A, B, Fixture, arn, fails, json, ok};

/// The (cluster/service, state) of each service of a JSON list, in its order.
fn listed(v: &serde_json::Value) -> Vec<(String, String)> {
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                format!(
                    "{}/{}",
                    s["cluster"].as_str().unwrap(),
                    s["service"].as_str().unwrap()
                ),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(s, st)| ((*s).to_owned(), (*st).to_owned()))
        .collect()
}

#[tokio::test]
async fn plan_lists_the_services_of_a_batch() {
    let f = Fixture::new().await;
    let out = ok(f
        .cmd()
        .args(["plan", "--night", "2026-11-22", "--batch", "1"]));
    insta::assert_snapshot!(out);

    let v = json(&ok(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--batch",
        "1",
        "--output",
        "json",
    ])));
    assert_eq!(v["night"], "2026-11-22");
    assert_eq!(v["batch"], 1);
    assert_eq!(v["start_at"], "2026-11-22T00:00:00Z");
    assert_eq!(v["size"], 3);
    assert_eq!(
        listed(&v),
        pairs(&[
            ("app/api", "completed"),
            ("app/web", "failed"),
            ("data/etl", "rolled_back"),
        ])
    );
    let web = &v["services"][1];
    assert_eq!(web["account"], A);
    assert_eq!(web["region"], "eu-west-1");
    assert_eq!(web["owner"], "payments");
    assert_eq!(web["service_arn"], arn(A, "app", "web"));
    assert_eq!(web["deployment_id"], "ecs-svc/2001");
    assert_eq!(v["services"][2]["owner"], "analytics");

    let v = json(&ok(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--batch",
        "2",
        "--output",
        "json",
    ])));
    assert_eq!(
        listed(&v),
        pairs(&[("app/worker", "started"), ("data/reports", "planned")])
    );
}

#[tokio::test]
async fn plan_batch_names_the_batches_there_are() {
    let f = Fixture::new().await;
    let err = fails(
        f.cmd()
            .args(["plan", "--night", "2026-11-22", "--batch", "7"]),
    );
    assert!(
        err.contains("night 2026-11-22 has no batch 7: its batches are 1, 2"),
        "{err}"
    );
    let err = fails(
        f.cmd()
            .args(["plan", "--night", "2026-12-01", "--batch", "1"]),
    );
    assert!(
        err.contains("night 2026-12-01 has no plan in table"),
        "{err}"
    );
    let err = fails(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--batch",
        "1",
        "--service",
        &arn(A, "app", "web"),
    ]));
    assert!(err.contains("cannot be used with"), "{err}");
}

#[tokio::test]
async fn status_lists_the_services_in_a_state_with_their_arns() {
    let f = Fixture::new().await;
    let out = ok(f
        .cmd()
        .args(["status", "--night", "2026-11-22", "--state", "failed"]));
    insta::assert_snapshot!(out);

    // What needs a look, comma separated or repeated, by batch.
    for states in [
        vec!["--state", "failed,rolled_back,timed_out"],
        vec!["--state", "timed_out", "--state", "rolled_back,failed"],
    ] {
        let v = json(&ok(f
            .cmd()
            .args(["status", "--night", "2026-11-22", "--output", "json"])
            .args(&states)));
        assert_eq!(
            v["states"],
            serde_json::json!(["failed", "rolled_back", "timed_out"])
        );
        assert_eq!(
            listed(&v),
            pairs(&[("app/web", "failed"), ("data/etl", "rolled_back")])
        );
    }

    // What is still running, and what was skipped (with the reason).
    let v = json(&ok(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--state",
        "started",
        "--output",
        "json",
    ])));
    assert_eq!(listed(&v), pairs(&[("app/worker", "started")]));
    assert_eq!(v["services"][0]["started_at"], "2026-11-22T00:10:04Z");
    let v = json(&ok(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--state",
        "skipped",
        "--output",
        "json",
    ])));
    assert_eq!(
        listed(&v),
        pairs(&[("app/batch-job", "skipped"), ("ops/legacy", "skipped")])
    );
    assert_eq!(v["services"][0]["skip_reason"], "opted_out");
    assert_eq!(v["services"][1]["account"], B);
    assert_eq!(v["services"][1]["skip_reason"], "untagged");

    // None in a state: said so, and not an error.
    let out = ok(f
        .cmd()
        .args(["status", "--night", "2026-11-22", "--state", "timed_out"]));
    assert_eq!(out, "Night 2026-11-22: no service is timed_out\n");
}

#[tokio::test]
async fn a_listed_arn_is_what_history_and_trigger_take() {
    let f = Fixture::new().await;
    let v = json(&ok(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--state",
        "failed",
        "--output",
        "json",
    ])));
    let failed = v["services"][0]["service_arn"].as_str().unwrap().to_owned();
    let history = json(&ok(f.cmd().args([
        "history",
        "--service",
        &failed,
        "--output",
        "json",
    ])));
    assert_eq!(history["service_arn"], failed, "{history}");
    assert_eq!(history["nights"][0]["state"], "failed", "{history}");
    // `plan --service` finds its slot with it too.
    let slot = json(&ok(f.cmd().args([
        "plan",
        "--night",
        "2026-11-22",
        "--service",
        &failed,
        "--output",
        "json",
    ])));
    assert_eq!(slot["state"], "failed");
    // And `trigger --service` starts its restart (moto records the execution).
    let created = json(&testkit::run_aws_cli([
        "stepfunctions",
        "create-state-machine",
        "--name",
        &testkit::unique_name("nightly-restart"),
        "--role-arn",
        "arn:aws:iam::123456789012:role/state-machine",
        "--definition",
        r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#,
    ]));
    let started = json(&ok(f.cmd().args([
        "trigger",
        "--service",
        &failed,
        "--force",
        "--state-machine-arn",
        created["stateMachineArn"].as_str().unwrap(),
        "--output",
        "json",
    ])));
    assert_eq!(started["input"]["service_arn"], failed);
}

#[tokio::test]
async fn state_names_are_checked_and_offered() {
    let f = Fixture::new().await;
    let err = fails(
        f.cmd()
            .args(["status", "--night", "2026-11-22", "--state", "broken"]),
    );
    assert!(err.contains("invalid value 'broken' for '--state"), "{err}");
    assert!(
        err.contains("possible values: planned, started, completed, failed"),
        "{err}"
    );
    let err = fails(f.cmd().args([
        "status",
        "--night",
        "2026-11-22",
        "--state",
        "failed",
        "--watch",
    ]));
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(
        f.cmd()
            .args(["status", "--night", "2026-12-01", "--state", "failed"]),
    );
    assert!(
        err.contains("night 2026-12-01 has no plan in table"),
        "{err}"
    );
}
