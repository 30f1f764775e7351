//! Restart verification (docs/design.md 3.4) over DescribeServices responses in the wire shape ECS
//! documents (`tests/fixtures/`), read by the real SDK client and converted by the ECS adapter:
//! the path a poll takes, minus the network.

use std::collections::BTreeMap;

use aws_smithy_types::error::display::DisplayErrorContext;
use chrono::{DateTime, TimeDelta, Utc};
use restart_aws::ecs::snapshot;
use restart_core::outcome::{Verdict, verify};

const OURS: &str = "ecs-svc/5104416528451337601";
const FIXTURE: &str = include_str!("fixtures/describe-services-after-restart.json");

/// Serves the fixture as the answer to any ECS request, on a loopback port.
async fn replay() -> String {
    let app = axum::Router::new()
        .fallback(|| async { ([("content-type", "application/x-amz-json-1.1")], FIXTURE) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn verdicts(now: DateTime<Utc>, started: DateTime<Utc>) -> BTreeMap<String, Verdict> {
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "AKID", "secret", None, None, "test",
        ))
        .endpoint_url(replay().await)
        .build();
    let out = aws_sdk_ecs::Client::from_conf(config)
        .describe_services()
        .cluster("payments")
        .services("any")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", DisplayErrorContext(&e)));
    assert_eq!(
        out.failures().len(),
        1,
        "the deleted service is a failure, not a service"
    );
    let mut v: BTreeMap<String, Verdict> = out
        .services()
        .iter()
        .map(|s| {
            let snap = snapshot(s, "payments").unwrap();
            (
                snap.id.service.clone(),
                verify(
                    Some(&snap),
                    OURS,
                    None,
                    started,
                    now,
                    TimeDelta::minutes(30),
                ),
            )
        })
        .collect();
    // ECS reports a deleted service under `failures`: the adapter leaves it out.
    v.insert(
        "deleted".into(),
        verify(None, OURS, None, started, now, TimeDelta::minutes(30)),
    );
    v
}

#[tokio::test]
async fn every_rule_over_describe_services_responses() {
    // Our restart began at 2026-11-22T00:06:40Z; ECS last updated the deployments 7 min later.
    let started = DateTime::from_timestamp(1_795_306_000, 0).unwrap();
    let updated = started + TimeDelta::seconds(420);
    let v = verdicts(started + TimeDelta::minutes(10), started).await;
    let expect = |name: &str, verdict: Verdict| assert_eq!(v[name], verdict, "{name}");
    expect("completed", Verdict::Completed { at: updated });
    expect("in-progress", Verdict::Pending);
    expect("failed-no-rollback", Verdict::Failed);
    // The circuit breaker is rolling back: ours is seen FAILED behind the new PRIMARY.
    expect("rolling-back", Verdict::Failed);
    // The rollback finished: the service looks healthy and stable, but it is not our
    // deployment. Not a success.
    expect("rolled-back-stable", Verdict::RolledBack);
    expect("no-rollout-state", Verdict::Completed { at: updated });
    expect("no-rollout-state-draining", Verdict::Pending);
    expect("inactive", Verdict::Vanished);
    expect("deleted", Verdict::Vanished);
    assert_eq!(v.len(), 9);

    // Past the timeout, what was still rolling has timed out; the rest keep their verdict.
    let late = verdicts(started + TimeDelta::minutes(30), started).await;
    assert_eq!(late["in-progress"], Verdict::TimedOut);
    assert_eq!(late["no-rollout-state-draining"], Verdict::TimedOut);
    assert_eq!(late["completed"], Verdict::Completed { at: updated });
    assert_eq!(late["rolled-back-stable"], Verdict::RolledBack);
}
