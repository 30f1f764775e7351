//! Injected faults, through the real SDK: an SCP that denies ECS after N restarts, server
//! errors at a rate, services that reject updates, restarts superseded by a CI deploy, and the
//! peak call rate statistic.

use crate::common;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{DeploymentRolloutState, Service};
use common::{HUB_KEY, code, creds, ecs, ecs_with, from_sts, http, message, start, status, sts};

const FLEET: &str = r#"
hub_account: "111111111111"
throttling: false
# Nearly frozen: simulated time moves with advance_seconds only.
time_scale: 0.001
start_time: "2026-11-22T01:00:00Z"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: c
        services:
          - {name: ok, desired: 2, deploy_seconds: 300}
          - {name: nope, desired: 2, on_restart: reject}
          - {name: ci, desired: 4, deploy_seconds: 300, on_restart: superseded}
  - id: "222222222222"
    regions: [eu-west-1, us-east-1]
    deny_ecs_after_restarts: 2
    clusters:
      - {name: west, services: [{name: a, deploy_seconds: 60}, {name: b, on_restart: reject}]}
      - {name: east, region: us-east-1, services: [{name: a, deploy_seconds: 60}]}
  - id: "333333333333"
    regions: [eu-west-1]
    deny_ecs_after_restarts: 0
    clusters: [{name: c, services: [{name: a}]}]
  - id: "444444444444"
    regions: [eu-west-1]
    server_error_rate: 0.5
    clusters: [{name: c, services: [{name: a, deploy_seconds: 60}]}]
  - id: "555555555555"
    regions: [eu-west-1]
    server_error_rate: 1
    clusters: [{name: c, services: [{name: a}]}]
"#;

/// An ECS client acting in `account` through an assumed role, `attempts` tries per call.
async fn member(sim: &fleet_sim::RunningSim, account: &str, region: &str, attempts: u32) -> Client {
    let out = sts(sim, creds(HUB_KEY))
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/restarter"))
        .role_session_name("nightly")
        .send()
        .await
        .expect("AssumeRole works whatever the SCP says");
    ecs_with(
        sim,
        from_sts(out.credentials().expect("credentials")),
        region,
        attempts,
    )
}

async fn force(client: &Client, cluster: &str, service: &str) -> Result<Service, String> {
    client
        .update_service()
        .cluster(cluster)
        .service(service)
        .force_new_deployment(true)
        .send()
        .await
        .map(|o| o.service().cloned().expect("service"))
        .map_err(|e| code(&e).unwrap_or_else(|| format!("{e:?}")))
}

async fn describe(client: &Client, cluster: &str, name: &str) -> Service {
    let out = client
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .expect("describe");
    out.services().first().cloned().expect("service present")
}

#[tokio::test]
async fn scp_denies_every_ecs_call_after_the_nth_successful_update() {
    let sim = start(FLEET).await;
    let west = member(&sim, "222222222222", "eu-west-1", 1).await;
    let east = member(&sim, "222222222222", "us-east-1", 1).await;
    // Failed updates do not count: a rejected service and a missing one.
    assert_eq!(
        force(&west, "west", "b").await.err().as_deref(),
        Some("ClientException")
    );
    assert_eq!(
        force(&west, "west", "zzz").await.err().as_deref(),
        Some("ServiceNotFoundException")
    );
    force(&west, "west", "a").await.expect("first restart");
    west.list_clusters().send().await.expect("still allowed");
    // The second one is in another region: the count is the account's.
    force(&east, "east", "a").await.expect("second restart");
    for (client, region) in [(&west, "eu-west-1"), (&east, "us-east-1")] {
        let err = client
            .list_clusters()
            .send()
            .await
            .expect_err("denied after 2");
        assert_eq!(code(&err).as_deref(), Some("AccessDeniedException"));
        assert_eq!(status(&err), Some(400));
        let m = message(&err).unwrap_or_default();
        assert_eq!(
            m,
            "User: arn:aws:sts::222222222222:assumed-role/restarter/nightly is not authorized to perform: ecs:ListClusters on resource: * with an explicit deny in a service control policy",
            "{region}"
        );
    }
    let err = west
        .describe_services()
        .cluster("west")
        .services("a")
        .send()
        .await
        .expect_err("denied");
    assert!(
        message(&err).is_some_and(|m| m.contains(
            "ecs:DescribeServices on resource: arn:aws:ecs:eu-west-1:222222222222:cluster/west with an explicit deny"
        )),
        "{err:?}"
    );
    let err = west
        .update_service()
        .cluster("west")
        .service("a")
        .force_new_deployment(true)
        .send()
        .await
        .expect_err("denied");
    assert!(
        message(&err).is_some_and(|m| m.contains(
            "ecs:UpdateService on resource: arn:aws:ecs:eu-west-1:222222222222:service/west/a"
        )),
        "{err:?}"
    );
    // AssumeRole still works (an SCP, not the trust policy), and ECS stays denied.
    let again = member(&sim, "222222222222", "eu-west-1", 1).await;
    let err = again.list_clusters().send().await.expect_err("denied");
    assert_eq!(code(&err).as_deref(), Some("AccessDeniedException"));
    let stats = sim.handle().stats();
    assert_eq!(stats.restarts, 2, "denied calls change nothing");
    // Other accounts are not affected.
    ecs(&sim, "eu-west-1")
        .list_clusters()
        .send()
        .await
        .expect("hub account");
}

#[tokio::test]
async fn zero_denies_ecs_from_the_start() {
    let sim = start(FLEET).await;
    let client = member(&sim, "333333333333", "eu-west-1", 1).await;
    let err = client.list_clusters().send().await.expect_err("denied");
    assert_eq!(code(&err).as_deref(), Some("AccessDeniedException"));
    assert_eq!(
        force(&client, "c", "a").await.err().as_deref(),
        Some("AccessDeniedException")
    );
    assert_eq!(sim.handle().stats().restarts, 0);
}

/// The outcome of 40 forced restarts in a row in the 50 % account.
async fn forty_restarts(sim: &fleet_sim::RunningSim) -> Vec<bool> {
    let client = member(sim, "444444444444", "eu-west-1", 1).await;
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        match client
            .update_service()
            .cluster("c")
            .service("a")
            .force_new_deployment(true)
            .send()
            .await
        {
            Ok(_) => outcomes.push(true),
            Err(e) => {
                assert_eq!(code(&e).as_deref(), Some("ServerException"));
                assert_eq!(status(&e), Some(500));
                outcomes.push(false);
            }
        }
    }
    outcomes
}

#[tokio::test]
async fn server_errors_are_drawn_by_seed_and_change_nothing() {
    let sim = start(FLEET).await;
    let first = forty_restarts(&sim).await;
    let ok = first.iter().filter(|o| **o).count();
    assert!((5..=35).contains(&ok), "about half fail: {first:?}");
    let stats = sim.handle().stats();
    assert_eq!(
        stats.restarts, ok as u64,
        "a 500 is answered before the update"
    );
    // The same calls in the same order fail the same way in a fresh simulator.
    let again = start(FLEET).await;
    assert_eq!(forty_restarts(&again).await, first);

    // With the SDK's retries (ServerException is transient), calls get through.
    let retrying = member(&sim, "444444444444", "eu-west-1", 10).await;
    let retrying = Client::from_conf(
        retrying
            .config()
            .to_builder()
            .retry_config(
                aws_sdk_ecs::config::retry::RetryConfig::standard()
                    .with_max_attempts(10)
                    .with_initial_backoff(std::time::Duration::from_millis(1))
                    .with_max_backoff(std::time::Duration::from_millis(5)),
            )
            .build(),
    );
    for _ in 0..10 {
        retrying.list_clusters().send().await.expect("retried");
    }

    // Rate 1: every ECS call fails, nothing changes.
    let all = member(&sim, "555555555555", "eu-west-1", 1).await;
    for _ in 0..5 {
        let err = all.list_clusters().send().await.expect_err("500");
        assert_eq!(code(&err).as_deref(), Some("ServerException"));
    }
    assert_eq!(
        force(&all, "c", "a").await.err().as_deref(),
        Some("ServerException")
    );
    assert_eq!(sim.handle().stats().restarts, ok as u64);
}

#[tokio::test]
async fn server_error_wire_shape_is_aws_json() {
    let sim = start(FLEET).await;
    let key = fleet_sim::auth::issued_access_key("555555555555");
    let (st, body) =
        common::ecs_raw(sim.addr, &key, "eu-west-1", "ListClusters", b"{}".to_vec()).await;
    assert_eq!(st, 500);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["__type"], "ServerException");
    assert!(v["message"].is_string());
}

#[tokio::test]
async fn reject_answers_client_exception_naming_the_service() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    let err = client
        .update_service()
        .cluster("c")
        .service("nope")
        .force_new_deployment(true)
        .send()
        .await
        .expect_err("rejected");
    assert_eq!(code(&err).as_deref(), Some("ClientException"));
    assert_eq!(status(&err), Some(400));
    assert!(
        message(&err).is_some_and(|m| m.contains("service nope")),
        "{err:?}"
    );
    // Every update is refused, a desired count change too, and nothing changes.
    let err = client
        .update_service()
        .cluster("c")
        .service("nope")
        .desired_count(5)
        .send()
        .await
        .expect_err("rejected");
    assert_eq!(code(&err).as_deref(), Some("ClientException"));
    let s = describe(&client, "c", "nope").await;
    assert_eq!(s.deployments().len(), 1);
    assert_eq!(s.desired_count(), 2);
    assert_eq!(sim.handle().stats().restarts, 0);
}

fn rollout(d: &aws_sdk_ecs::types::Deployment) -> (&str, &str, Option<&DeploymentRolloutState>) {
    (
        d.id().unwrap_or_default(),
        d.status().unwrap_or_default(),
        d.rollout_state(),
    )
}

fn revision(td: &str) -> u32 {
    td.rsplit_once(':')
        .and_then(|(_, r)| r.parse().ok())
        .expect("family:revision")
}

#[tokio::test]
async fn superseded_restart_is_replaced_halfway_by_the_next_revision() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    let before = describe(&client, "c", "ci").await;
    let initial = before.deployments()[0].id().expect("id").to_owned();
    let td = before.task_definition().expect("td").to_owned();

    let updated = force(&client, "c", "ci").await.expect("restart");
    let ours = updated.deployments()[0].id().expect("id").to_owned();
    assert_eq!(
        updated
            .deployments()
            .iter()
            .map(rollout)
            .collect::<Vec<_>>(),
        [
            (
                ours.as_str(),
                "PRIMARY",
                Some(&DeploymentRolloutState::InProgress)
            ),
            (
                initial.as_str(),
                "ACTIVE",
                Some(&DeploymentRolloutState::Completed)
            ),
        ]
    );
    assert_eq!(updated.task_definition(), Some(td.as_str()));

    sim.handle().advance_seconds(149.0);
    let s = describe(&client, "c", "ci").await;
    assert_eq!(s.deployments()[0].id(), Some(ours.as_str()));

    sim.handle().advance_seconds(1.0);
    let s = describe(&client, "c", "ci").await;
    let ids: Vec<&str> = s.deployments().iter().filter_map(|d| d.id()).collect();
    assert!(!ids.contains(&ours.as_str()), "ours left the list: {ids:?}");
    assert_eq!(s.deployments().len(), 2, "{ids:?}");
    let ci = &s.deployments()[0];
    assert_eq!(ci.status(), Some("PRIMARY"));
    assert_eq!(
        ci.rollout_state(),
        Some(&DeploymentRolloutState::InProgress)
    );
    assert_ne!(ci.id(), Some(initial.as_str()));
    let new_td = ci.task_definition().expect("td");
    assert_eq!(
        new_td.rsplit_once(':').map(|(f, _)| f),
        td.rsplit_once(':').map(|(f, _)| f),
        "same family"
    );
    assert_eq!(revision(new_td), revision(&td) + 1);
    assert_eq!(s.task_definition(), Some(new_td));
    assert_eq!(
        (s.deployments()[1].id(), s.deployments()[1].status()),
        (Some(initial.as_str()), Some("ACTIVE"))
    );
    let events: Vec<&str> = s.events().iter().filter_map(|e| e.message()).collect();
    assert!(events[0].contains("has started 4 tasks"), "{events:?}");
    // The new revision is a real task definition.
    let out = client
        .describe_task_definition()
        .task_definition(new_td)
        .send()
        .await
        .expect("new revision is known");
    assert_eq!(
        out.task_definition().map(|t| t.revision()),
        Some(revision(new_td) as i32)
    );

    // Another restart in the cluster while the CI deploy rolls: ours is no longer in flight
    // and the CI deploy is not ours.
    force(&client, "c", "ok").await.expect("restart");
    let stats = sim.handle().stats();
    assert_eq!(
        stats.max_inflight_per_cluster["111111111111/eu-west-1/c"],
        1
    );

    sim.handle().advance_seconds(300.0);
    let s = describe(&client, "c", "ci").await;
    assert_eq!(s.deployments().len(), 1);
    let p = &s.deployments()[0];
    assert_eq!(p.rollout_state(), Some(&DeploymentRolloutState::Completed));
    assert_eq!(p.task_definition(), Some(new_td));
    assert_eq!(s.task_definition(), Some(new_td));
    assert_eq!((s.running_count(), s.pending_count()), (4, 0));
    let events: Vec<&str> = s.events().iter().filter_map(|e| e.message()).collect();
    assert!(events[0].contains("steady state"), "{events:?}");
    assert!(
        events.iter().any(|m| m.contains(&format!(
            "(deployment {}) deployment completed",
            p.id().unwrap_or_default()
        ))),
        "{events:?}"
    );
}

#[tokio::test]
async fn max_rate_counts_accepted_calls_per_account_region_and_action() {
    let sim = start(&FLEET.replace("throttling: false", "throttling: true")).await;
    let client = ecs(&sim, "eu-west-1");
    let began = std::time::Instant::now();
    let mut accepted = 0u64;
    // UpdateService: 50 burst, 5/s; 80 calls in a row outrun the refill.
    for _ in 0..80 {
        match client
            .update_service()
            .cluster("c")
            .service("ok")
            .desired_count(2)
            .send()
            .await
        {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(code(&e).as_deref(), Some("ThrottlingException")),
        }
    }
    let quick = began.elapsed() < std::time::Duration::from_millis(900);
    let stats = sim.handle().stats();
    let peak = stats.max_rate["111111111111/eu-west-1"]["UpdateService"];
    assert!(accepted < 80, "some were throttled");
    assert!((1..=accepted).contains(&peak), "{peak} of {accepted}");
    if quick {
        // All 80 calls fell in one second: the peak is every accepted one, none throttled.
        assert_eq!(peak, accepted);
    }
    let (code_, body) = http(&sim, "GET", "/_sim/stats", "").await;
    assert_eq!(code_, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["max_rate"]["111111111111/eu-west-1"]["UpdateService"],
        peak
    );
    assert!(v["max_rate"]["111111111111/eu-west-1"]["ListClusters"].is_null());
    // Reset forgets it.
    sim.handle().reset();
    assert!(sim.handle().stats().max_rate.is_empty());
}
