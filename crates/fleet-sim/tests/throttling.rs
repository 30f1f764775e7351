//! The per account and region token buckets, and the SDK's retry absorbing them.

use crate::common;

use common::{HUB_KEY, creds, ecs_with, start};

const FLEET: &str = r#"
hub_account: "111111111111"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters: [{name: c, services: [{name: a}]}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_bucket_is_throttled_and_retried_by_the_sdk() {
    let sim = start(FLEET).await;
    let client = ecs_with(&sim, creds(HUB_KEY), "eu-west-1", 10);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..160 {
        let c = client.clone();
        set.spawn(async move {
            c.describe_services()
                .cluster("c")
                .services("a")
                .send()
                .await
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        let out = r.expect("task").expect("every call succeeds after retries");
        assert_eq!(out.services().len(), 1);
        ok += 1;
    }
    assert_eq!(ok, 160);
    let stats = sim.handle().stats();
    let throttled = stats.total_throttled("DescribeServices");
    assert!(throttled > 0, "the bucket holds 100, 160 were sent at once");
    assert_eq!(stats.total_calls("DescribeServices"), 160 + throttled);
    assert_eq!(
        stats.throttled["111111111111"]["DescribeServices"],
        throttled
    );
}

#[tokio::test]
async fn without_retries_the_throttling_exception_surfaces() {
    let sim = start(FLEET).await;
    let client = ecs_with(&sim, creds(HUB_KEY), "eu-west-1", 1);
    let mut codes = Vec::new();
    // UpdateService: 50 burst, 5/s; 100 calls in a row outrun the refill.
    for _ in 0..100 {
        match client
            .update_service()
            .cluster("c")
            .service("a")
            .desired_count(1)
            .send()
            .await
        {
            Ok(_) => codes.push("ok".to_owned()),
            Err(e) => codes.push(common::code(&e).unwrap_or_default()),
        }
    }
    let ok = codes.iter().filter(|c| *c == "ok").count();
    assert!((50..100).contains(&ok), "{codes:?}");
    assert!(
        codes[..50].iter().all(|c| c == "ok"),
        "the burst passes: {codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| c == "ok" || c == "ThrottlingException"),
        "{codes:?}"
    );
    // Another region has its own bucket.
    let other = ecs_with(&sim, creds(HUB_KEY), "us-east-1", 1);
    other.list_clusters().send().await.expect("fresh bucket");
    let stats = sim.handle().stats();
    assert_eq!(
        stats.throttled["111111111111"]["UpdateService"],
        (100 - ok) as u64
    );
}
