//! Forced deployments over simulated time, observed through DescribeServices.

use crate::common;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{DeploymentRolloutState, Service};
use common::{code, ecs, http, start};

const FLEET: &str = r#"
hub_account: "111111111111"
throttling: false
start_time: "2026-11-22T01:00:00Z"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: c
        services:
          - {name: ok, desired: 3, deploy_seconds: 300}
          - {name: bad, desired: 2, deploy_seconds: 300, on_restart: fail}
          - {name: hang, desired: 2, deploy_seconds: 300, on_restart: stuck}
          - {name: gone, desired: 1, deploy_seconds: 300, on_restart: vanish}
          - {name: bluegreen, controller: CODE_DEPLOY}
          - {name: thirdparty, controller: EXTERNAL}
          - {name: ranged, deploy_seconds: [100, 200]}
"#;

async fn describe(client: &Client, name: &str) -> Service {
    let out = client
        .describe_services()
        .cluster("c")
        .services(name)
        .send()
        .await
        .expect("describe");
    out.services().first().cloned().expect("service present")
}

async fn restart(client: &Client, name: &str) -> String {
    let out = client
        .update_service()
        .cluster("c")
        .service(name)
        .force_new_deployment(true)
        .send()
        .await
        .expect("update");
    let svc = out.service().expect("service");
    let primary = svc
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .expect("primary");
    assert_eq!(
        primary.rollout_state(),
        Some(&DeploymentRolloutState::InProgress)
    );
    assert_eq!(svc.deployments().len(), 2, "old deployment stays ACTIVE");
    assert!(
        svc.deployments()
            .iter()
            .any(|d| d.status() == Some("ACTIVE"))
    );
    primary.id().expect("id").to_owned()
}

fn primary(svc: &Service) -> &aws_sdk_ecs::types::Deployment {
    svc.deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .expect("primary")
}

#[tokio::test]
async fn complete_reaches_completed_after_deploy_time() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    let id = restart(&client, "ok").await;
    sim.handle().advance_seconds(150.0);
    let s = describe(&client, "ok").await;
    assert_eq!(primary(&s).id(), Some(id.as_str()));
    assert_eq!(
        primary(&s).rollout_state(),
        Some(&DeploymentRolloutState::InProgress)
    );
    assert_eq!(s.deployments().len(), 2);
    sim.handle().advance_seconds(151.0);
    let s = describe(&client, "ok").await;
    assert_eq!(s.deployments().len(), 1);
    let p = primary(&s);
    assert_eq!(p.id(), Some(id.as_str()));
    assert_eq!(p.rollout_state(), Some(&DeploymentRolloutState::Completed));
    assert_eq!(
        (s.running_count(), s.desired_count(), s.pending_count()),
        (3, 3, 0)
    );
    let messages: Vec<&str> = s.events().iter().filter_map(|e| e.message()).collect();
    assert!(
        messages[0].contains("has reached a steady state"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("has started 3 tasks")),
        "{messages:?}"
    );
    let created = p.created_at().expect("createdAt").secs();
    let updated = p.updated_at().expect("updatedAt").secs();
    assert_eq!(
        updated - created,
        300,
        "completion is stamped at its simulated time"
    );
    let stats = sim.handle().stats();
    assert_eq!(stats.restarts, 1);
    assert_eq!(
        stats.max_inflight_per_cluster["111111111111/eu-west-1/c"],
        1
    );
}

#[tokio::test]
async fn fail_ends_failed_then_rolls_back() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    let id = restart(&client, "bad").await;
    sim.handle().advance_seconds(310.0);
    let s = describe(&client, "bad").await;
    let ours = s
        .deployments()
        .iter()
        .find(|d| d.id() == Some(id.as_str()))
        .expect("ours still listed");
    assert_eq!(ours.rollout_state(), Some(&DeploymentRolloutState::Failed));
    assert!(
        ours.rollout_state_reason()
            .is_some_and(|r| r.contains("circuit breaker"))
    );
    assert!(ours.failed_tasks() >= 3);
    let p = primary(&s);
    assert_ne!(p.id(), Some(id.as_str()), "the rollback is PRIMARY");
    assert!(
        p.rollout_state_reason()
            .is_some_and(|r| r.contains("rolling back"))
    );
    assert!(
        s.events()
            .iter()
            .any(|e| e.message().is_some_and(|m| m.contains("deployment failed")))
    );
    sim.handle().advance_seconds(120.0);
    let s = describe(&client, "bad").await;
    assert_eq!(
        s.deployments().len(),
        1,
        "failed deployment gone after the rollback"
    );
    let p = primary(&s);
    assert_ne!(p.id(), Some(id.as_str()));
    assert_eq!(p.rollout_state(), Some(&DeploymentRolloutState::Completed));
    assert_eq!(s.running_count(), 2);
}

#[tokio::test]
async fn stuck_never_completes() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    let id = restart(&client, "hang").await;
    sim.handle().advance_seconds(6.0 * 3600.0);
    let s = describe(&client, "hang").await;
    let p = primary(&s);
    assert_eq!(p.id(), Some(id.as_str()));
    assert_eq!(p.rollout_state(), Some(&DeploymentRolloutState::InProgress));
    assert_eq!(p.running_count(), 0);
    assert!(p.failed_tasks() > 0);
    let stats = sim.handle().stats();
    assert_eq!(
        stats.max_inflight_per_cluster["111111111111/eu-west-1/c"],
        1
    );
}

#[tokio::test]
async fn vanish_makes_the_service_inactive_then_missing() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    restart(&client, "gone").await;
    // Advance through the admin API this time.
    let (status, body) = http(&sim, "POST", "/_sim/clock/advance", r#"{"seconds": 301}"#).await;
    assert_eq!(status, 200, "{body}");
    let s = describe(&client, "gone").await;
    assert_eq!(s.status(), Some("INACTIVE"));
    let listed = client
        .list_services()
        .cluster("c")
        .max_results(100)
        .send()
        .await
        .expect("list");
    assert!(!listed.service_arns().iter().any(|a| a.ends_with("/gone")));
    assert_eq!(listed.service_arns().len(), 6);
    let err = client
        .update_service()
        .cluster("c")
        .service("gone")
        .force_new_deployment(true)
        .send()
        .await
        .expect_err("inactive");
    assert_eq!(code(&err).as_deref(), Some("ServiceNotActiveException"));
    sim.handle().advance_seconds(3600.0);
    let out = client
        .describe_services()
        .cluster("c")
        .services("gone")
        .send()
        .await
        .expect("describe");
    assert!(out.services().is_empty());
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
}

#[tokio::test]
async fn code_deploy_and_external_refuse_force_new_deployment() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    for name in ["bluegreen", "thirdparty"] {
        let err = client
            .update_service()
            .cluster("c")
            .service(name)
            .force_new_deployment(true)
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            code(&err).as_deref(),
            Some("InvalidParameterException"),
            "{name}"
        );
        let s = describe(&client, name).await;
        assert_eq!(s.deployments().len(), 1, "nothing changed for {name}");
    }
    assert_eq!(sim.handle().stats().restarts, 0);
}

#[tokio::test]
async fn inflight_counts_overlapping_restarts_per_cluster() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    restart(&client, "ok").await;
    sim.handle().advance_seconds(100.0);
    restart(&client, "bad").await;
    restart(&client, "ranged").await;
    sim.handle().advance_seconds(1000.0);
    restart(&client, "ok").await;
    let stats = sim.handle().stats();
    assert_eq!(stats.restarts, 4);
    assert_eq!(
        stats.max_inflight_per_cluster["111111111111/eu-west-1/c"],
        3
    );
    let (status, body) = http(&sim, "GET", "/_sim/stats", "").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["max_inflight_per_cluster"]["111111111111/eu-west-1/c"], 3);
    assert_eq!(v["restarts"], 4);
    assert_eq!(v["calls"]["111111111111"]["UpdateService"], 4);
}

#[tokio::test]
async fn ranged_deploy_time_is_drawn_within_bounds_and_deterministic() {
    let mut durations = Vec::new();
    for _ in 0..2 {
        let sim = start(FLEET).await;
        let client = ecs(&sim, "eu-west-1");
        restart(&client, "ranged").await;
        sim.handle().advance_seconds(250.0);
        let s = describe(&client, "ranged").await;
        let p = primary(&s);
        assert_eq!(p.rollout_state(), Some(&DeploymentRolloutState::Completed));
        let d = p.updated_at().expect("t").secs() - p.created_at().expect("t").secs();
        assert!((100..=200).contains(&d), "{d}");
        durations.push(d);
    }
    assert_eq!(durations[0], durations[1]);
}

#[tokio::test]
async fn a_stuck_restart_stays_in_flight_after_the_orchestrator_gives_up() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    restart(&client, "hang").await;
    // Long past any orchestrator timeout, the stuck deployment is still rolling...
    sim.handle().advance_seconds(6.0 * 3600.0);
    restart(&client, "ok").await;
    let stats = sim.handle().stats();
    assert_eq!(
        stats.max_inflight_per_cluster["111111111111/eu-west-1/c"], 2,
        "the stuck restart overlaps the next one"
    );
    // ...and still overlaps restarts after that one completed.
    sim.handle().advance_seconds(400.0);
    let s = describe(&client, "ok").await;
    assert_eq!(
        primary(&s).rollout_state(),
        Some(&DeploymentRolloutState::Completed)
    );
    restart(&client, "ok").await;
    restart(&client, "ranged").await;
    let stats = sim.handle().stats();
    assert_eq!(
        stats.max_inflight_per_cluster["111111111111/eu-west-1/c"], 3,
        "stuck + ok + ranged"
    );
}
