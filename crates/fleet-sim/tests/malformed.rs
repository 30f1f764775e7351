//! Malformed ECS requests over HTTP answer 4xx AWS errors and the server keeps serving.

use crate::common;

use common::{HUB_KEY, ecs, ecs_raw, start};

const FLEET: &str = r#"
hub_account: "111111111111"
throttling: false
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters: [{name: c, services: [{name: a}, {name: s, on_restart: superseded}]}]
"#;

#[tokio::test]
async fn malformed_bodies_get_client_errors_for_every_action() {
    let sim = start(FLEET).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00".to_vec(),
        b"[]".to_vec(),
        b"\"str\"".to_vec(),
        b"null".to_vec(),
        b"{\"maxResults\": 1e400}".to_vec(),
        b"{\"maxResults\": -9223372036854775808}".to_vec(),
        b"{\"nextToken\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}".to_vec(),
        b"{\"nextToken\": \"0000000000000000ffffffffffffffffffff\"}".to_vec(),
        b"{\"cluster\": \"arn:aws:ecs\"}".to_vec(),
        b"{\"cluster\": \"arn:::::::::\", \"service\": \"arn:\"}".to_vec(),
        b"{\"cluster\": \"c\", \"service\": \"arn:aws:ecs:eu-west-1:111111111111:service/\"}"
            .to_vec(),
        b"{\"cluster\": \"c\", \"services\": [\"\xe6\xb1\xba\xe6\xb8\x88\"], \"include\": [\"TAGS\", 1]}"
            .to_vec(),
        b"{\"cluster\": \"c\", \"tasks\": [\"ffffffffffffffffffffffffffffffff\"]}".to_vec(),
        b"{\"resourceArn\": \"arn:aws:ecs:eu-west-1:111111111111:service/c\"}".to_vec(),
        b"{\"taskDefinition\": \":\"}".to_vec(),
        b"{\"cluster\": \"c\", \"service\": \"a\", \"desiredCount\": 4294967296}".to_vec(),
        "{\"a\":".repeat(10_000).into_bytes(),
    ];
    for action in fleet_sim::ecs::ACTIONS {
        for body in &bodies {
            let (status, text) =
                ecs_raw(sim.addr, HUB_KEY, "eu-west-1", action, body.clone()).await;
            assert!(
                (400..500).contains(&status) || status == 200,
                "{action} {}: {status} {text}",
                String::from_utf8_lossy(body)
            );
            if status != 200 {
                let v: serde_json::Value = serde_json::from_str(&text).expect("JSON error");
                assert!(
                    v["__type"].as_str().is_some_and(|t| !t.is_empty()),
                    "{text}"
                );
            }
        }
    }
    // Still serving, state intact.
    let out = ecs(&sim, "eu-west-1")
        .describe_services()
        .cluster("c")
        .services("a")
        .send()
        .await
        .expect("describe");
    assert_eq!(out.services().len(), 1);
    let (status, _) =
        common::http(&sim, "POST", "/_sim/clock/advance", r#"{"seconds": 1e300}"#).await;
    assert_eq!(
        status, 200,
        "a huge advance stops the clock at the end of year 9999"
    );
    let (status, _) =
        common::http(&sim, "POST", "/_sim/clock/advance", r#"{"seconds": 1e300}"#).await;
    assert_eq!(status, 200);
    let now = sim.handle().now();
    assert_eq!(now.format("%Y").to_string(), "9999");
    ecs(&sim, "eu-west-1")
        .update_service()
        .cluster("c")
        .service("s")
        .force_new_deployment(true)
        .send()
        .await
        .expect("a restart at the end of time");
    let _ = sim.handle().stats();
}
