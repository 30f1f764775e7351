//! ECS through aws-sdk-ecs: pagination, limits, errors, tags, tasks.

use crate::common;

use std::fmt::Write;

use aws_sdk_ecs::types::{ServiceField, Tag};
use common::{code, ecs, start};

/// Account 111111111111 (the hub here) with 130 clusters; `big` has 250 services.
fn big_fleet() -> String {
    let mut y = String::from(
        "hub_account: \"111111111111\"\nthrottling: false\naccounts:\n  - id: \"111111111111\"\n    regions: [eu-west-1]\n    clusters:\n      - name: big\n        services:\n",
    );
    for i in 0..250 {
        let _ = writeln!(y, "          - name: svc-{i:03}");
    }
    for i in 0..129 {
        let _ = writeln!(y, "      - name: c-{i:03}");
    }
    y
}

#[tokio::test]
async fn list_clusters_pages_across_more_than_100() {
    let sim = start(&big_fleet()).await;
    let client = ecs(&sim, "eu-west-1");
    let first = client.list_clusters().send().await.expect("first page");
    assert_eq!(first.cluster_arns().len(), 100, "default page is 100");
    assert!(first.next_token().is_some());
    let all: Vec<String> = client
        .list_clusters()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("all pages");
    assert_eq!(all.len(), 130);
    assert!(all.contains(&"arn:aws:ecs:eu-west-1:111111111111:cluster/big".to_owned()));
    let stats = sim.handle().stats();
    assert_eq!(stats.calls["111111111111"]["ListClusters"], 3);
    // Another region of the same account has no clusters.
    let other = ecs(&sim, "us-east-1")
        .list_clusters()
        .send()
        .await
        .expect("list");
    assert!(other.cluster_arns().is_empty());
}

#[tokio::test]
async fn list_services_pages_across_more_than_100_in_one_cluster() {
    let sim = start(&big_fleet()).await;
    let client = ecs(&sim, "eu-west-1");
    let first = client
        .list_services()
        .cluster("big")
        .send()
        .await
        .expect("first page");
    assert_eq!(first.service_arns().len(), 10, "default maxResults is 10");
    let all: Vec<String> = client
        .list_services()
        .cluster("big")
        .max_results(100)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("all pages");
    assert_eq!(all.len(), 250);
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 250);
    assert_eq!(
        all[0],
        "arn:aws:ecs:eu-west-1:111111111111:service/big/svc-000"
    );
    let err = client
        .list_services()
        .cluster("big")
        .max_results(101)
        .send()
        .await
        .expect_err("maxResults 101");
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"));
    let err = client
        .list_services()
        .cluster("big")
        .next_token("not-a-token")
        .send()
        .await
        .expect_err("bad token");
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"));
}

#[tokio::test]
async fn describe_services_takes_at_most_ten() {
    let sim = start(&big_fleet()).await;
    let client = ecs(&sim, "eu-west-1");
    let names: Vec<String> = (0..11).map(|i| format!("svc-{i:03}")).collect();
    let err = client
        .describe_services()
        .cluster("big")
        .set_services(Some(names.clone()))
        .send()
        .await
        .expect_err("11 services");
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"));
    let ok = client
        .describe_services()
        .cluster("big")
        .set_services(Some(names[..10].to_vec()))
        .send()
        .await
        .expect("10 services");
    assert_eq!(ok.services().len(), 10);
    let s = &ok.services()[0];
    assert_eq!(s.service_name(), Some("svc-000"));
    assert_eq!(s.status(), Some("ACTIVE"));
    assert_eq!(s.desired_count(), 1);
    assert_eq!(s.running_count(), 1);
    assert_eq!(s.scheduling_strategy().map(|x| x.as_str()), Some("REPLICA"));
    assert_eq!(
        s.deployment_controller().map(|c| c.r#type().as_str()),
        Some("ECS")
    );
    let dc = s
        .deployment_configuration()
        .expect("deploymentConfiguration");
    assert_eq!(
        (dc.minimum_healthy_percent(), dc.maximum_percent()),
        (Some(100), Some(200))
    );
    assert_eq!(s.deployments().len(), 1);
    let d = &s.deployments()[0];
    assert!(d.id().is_some_and(|id| id.starts_with("ecs-svc/")));
    assert_eq!(d.status(), Some("PRIMARY"));
    assert_eq!(d.rollout_state().map(|r| r.as_str()), Some("COMPLETED"));
    assert!(s.tags().is_empty(), "no tags unless include=TAGS");
    assert!(s.created_at().is_some());
}

#[tokio::test]
async fn missing_things_get_the_real_errors() {
    let sim = start(&big_fleet()).await;
    let client = ecs(&sim, "eu-west-1");
    let out = client
        .describe_services()
        .cluster("big")
        .services("svc-000")
        .services("nope")
        .send()
        .await
        .expect("partial");
    assert_eq!(out.services().len(), 1);
    assert_eq!(out.failures().len(), 1);
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
    assert_eq!(
        out.failures()[0].arn(),
        Some("arn:aws:ecs:eu-west-1:111111111111:service/big/nope")
    );
    let err = client
        .describe_services()
        .cluster("nowhere")
        .services("x")
        .send()
        .await
        .expect_err("no cluster");
    assert_eq!(code(&err).as_deref(), Some("ClusterNotFoundException"));
    let err = client
        .update_service()
        .cluster("big")
        .service("nope")
        .force_new_deployment(true)
        .send()
        .await
        .expect_err("no service");
    assert_eq!(code(&err).as_deref(), Some("ServiceNotFoundException"));
    let err = client
        .list_services()
        .send()
        .await
        .expect_err("no default cluster");
    assert_eq!(code(&err).as_deref(), Some("ClusterNotFoundException"));
    let out = client
        .describe_clusters()
        .clusters("big")
        .clusters("ghost")
        .send()
        .await
        .expect("describe clusters");
    assert_eq!(out.clusters().len(), 1);
    assert_eq!(out.clusters()[0].active_services_count(), 250);
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
}

const TAGGED: &str = r#"
hub_account: "111111111111"
throttling: false
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: payments
        tags: {team: payments}
        services:
          - name: api
            desired: 2
            tags: {owner: payments}
            enable_execute_command: true
          - name: legacy
            old_arn_format: true
"#;

#[tokio::test]
async fn tag_resource_then_describe_with_tags() {
    let sim = start(TAGGED).await;
    let client = ecs(&sim, "eu-west-1");
    let arn = "arn:aws:ecs:eu-west-1:111111111111:service/payments/api";
    client
        .tag_resource()
        .resource_arn(arn)
        .tags(
            Tag::builder()
                .key("ecs_task_daily_restart")
                .value("2026-11-22T02:41:07Z")
                .build(),
        )
        .tags(Tag::builder().key("owner").value("platform").build())
        .send()
        .await
        .expect("tagged");
    let out = client
        .describe_services()
        .cluster("payments")
        .services(arn)
        .include(ServiceField::Tags)
        .send()
        .await
        .expect("described");
    let tags: Vec<(String, String)> = out.services()[0]
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        vec![
            ("owner".to_owned(), "platform".to_owned()),
            (
                "ecs_task_daily_restart".to_owned(),
                "2026-11-22T02:41:07Z".to_owned()
            ),
        ]
    );
    let listed = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("listed");
    assert_eq!(listed.tags().len(), 2);
    client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("owner")
        .send()
        .await
        .expect("untagged");
    let listed = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("listed");
    assert_eq!(listed.tags().len(), 1);
    // Cluster tags come with DescribeClusters include=TAGS.
    let cl = client
        .describe_clusters()
        .clusters("payments")
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .expect("cluster");
    assert_eq!(cl.clusters()[0].tags()[0].value(), Some("payments"));
}

#[tokio::test]
async fn old_format_arns_cannot_be_tagged() {
    let sim = start(TAGGED).await;
    let client = ecs(&sim, "eu-west-1");
    let out = client
        .describe_services()
        .cluster("payments")
        .services("legacy")
        .send()
        .await
        .expect("described");
    let arn = out.services()[0].service_arn().expect("arn").to_owned();
    assert_eq!(arn, "arn:aws:ecs:eu-west-1:111111111111:service/legacy");
    let err = client
        .tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("k").value("v").build())
        .send()
        .await
        .expect_err("old arn");
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"));
    let msg = err
        .as_service_error()
        .and_then(|e| aws_sdk_ecs::error::ProvideErrorMetadata::message(e))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(msg, "Long arn format must be used for tagging operations");
}

#[tokio::test]
async fn tasks_are_listed_and_described_with_exec_agent() {
    let sim = start(TAGGED).await;
    let client = ecs(&sim, "eu-west-1");
    let tasks = client
        .list_tasks()
        .cluster("payments")
        .service_name("api")
        .send()
        .await
        .expect("tasks");
    assert_eq!(tasks.task_arns().len(), 2);
    let out = client
        .describe_tasks()
        .cluster("payments")
        .set_tasks(Some(tasks.task_arns().to_vec()))
        .tasks("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .expect("described");
    assert_eq!(out.tasks().len(), 2);
    assert_eq!(out.failures().len(), 1);
    let t = &out.tasks()[0];
    assert!(t.enable_execute_command());
    assert_eq!(t.last_status(), Some("RUNNING"));
    assert_eq!(t.group(), Some("service:api"));
    let agent = &t.containers()[0].managed_agents()[0];
    assert_eq!(
        agent.name().map(|n| n.as_str()),
        Some("ExecuteCommandAgent")
    );
    assert_eq!(agent.last_status(), Some("RUNNING"));
    let all = client
        .list_tasks()
        .cluster("payments")
        .send()
        .await
        .expect("all tasks");
    assert_eq!(all.task_arns().len(), 3);
}
