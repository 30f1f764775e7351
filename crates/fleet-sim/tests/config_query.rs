//! AWS Config SelectAggregateResourceConfig over the fleet.

use crate::common;

use common::{code, config, start};

const FLEET: &str = r#"
seed: 11
throttling: false
aggregators: [org]
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: payments
        tags: {team: payments}
        services:
          - {name: api, desired: 3, tags: {owner: payments, ecs_task_daily_restart: enabled}}
generate:
  accounts: 3
  regions: [eu-west-1, us-east-1]
  clusters_per_account: 4
  services_per_cluster: 10
  old_arn_percent: 0
"#;

const QUERY: &str = "SELECT resourceId, resourceName, accountId, awsRegion, configuration, tags WHERE resourceType = 'AWS::ECS::Service'";

#[tokio::test]
async fn select_pages_through_every_service_in_aws_shape() {
    let sim = start(FLEET).await;
    let client = config(&sim);
    let mut token: Option<String> = None;
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let out = client
            .select_aggregate_resource_config()
            .configuration_aggregator_name("org")
            .expression(QUERY)
            .limit(50)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("select");
        pages += 1;
        let fields: Vec<&str> = out
            .query_info()
            .map(|q| q.select_fields().iter().filter_map(|f| f.name()).collect())
            .unwrap_or_default();
        assert_eq!(
            fields,
            [
                "resourceId",
                "resourceName",
                "accountId",
                "awsRegion",
                "configuration",
                "tags"
            ]
        );
        for r in out.results() {
            items.push(serde_json::from_str::<serde_json::Value>(r).expect("each result is JSON"));
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(items.len(), 121);
    assert_eq!(pages, 3);
    let ids: std::collections::HashSet<&str> = items
        .iter()
        .filter_map(|i| i["resourceId"].as_str())
        .collect();
    assert_eq!(ids.len(), 121, "no item twice, none skipped");
    let api = items
        .iter()
        .find(|i| i["resourceName"] == "api")
        .expect("explicit service present");
    assert_eq!(
        api["resourceId"],
        "arn:aws:ecs:eu-west-1:111111111111:service/payments/api"
    );
    assert_eq!(api["accountId"], "111111111111");
    assert_eq!(api["awsRegion"], "eu-west-1");
    let c = &api["configuration"];
    assert_eq!(c["serviceName"], "api");
    assert_eq!(
        c["cluster"],
        "arn:aws:ecs:eu-west-1:111111111111:cluster/payments"
    );
    assert_eq!(c["desiredCount"], 3);
    assert_eq!(c["schedulingStrategy"], "REPLICA");
    assert_eq!(c["deploymentController"]["type"], "ECS");
    assert_eq!(c["deploymentConfiguration"]["minimumHealthyPercent"], 100);
    assert!(api["tags"].as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["key"] == "owner" && t["value"] == "payments")
    }));
    assert!(
        api.get("configurationItemStatus").is_none(),
        "only selected fields"
    );
    let regions: std::collections::HashSet<&str> = items
        .iter()
        .filter_map(|i| i["awsRegion"].as_str())
        .collect();
    assert_eq!(regions.len(), 2);
}

#[tokio::test]
async fn filters_limits_and_errors() {
    let sim = start(FLEET).await;
    let client = config(&sim);
    let out = client
        .select_aggregate_resource_config()
        .configuration_aggregator_name("org")
        .expression("SELECT configuration.serviceName WHERE resourceType = 'AWS::ECS::Service' AND accountId = '111111111111'")
        .send()
        .await
        .expect("filtered");
    assert_eq!(
        out.results(),
        [r#"{"configuration":{"serviceName":"api"}}"#]
    );
    let err = client
        .select_aggregate_resource_config()
        .configuration_aggregator_name("nope")
        .expression(QUERY)
        .send()
        .await
        .expect_err("unknown aggregator");
    assert_eq!(
        code(&err).as_deref(),
        Some("NoSuchConfigurationAggregatorException")
    );
    let err = client
        .select_aggregate_resource_config()
        .configuration_aggregator_name("org")
        .expression("SELECT COUNT(*) WHERE resourceType = 'AWS::ECS::Service'")
        .send()
        .await
        .expect_err("aggregate");
    assert_eq!(code(&err).as_deref(), Some("InvalidExpressionException"));
    let err = client
        .select_aggregate_resource_config()
        .configuration_aggregator_name("org")
        .expression(QUERY)
        .limit(101)
        .send()
        .await
        .expect_err("limit");
    assert_eq!(code(&err).as_deref(), Some("ValidationException"));
    let err = client
        .select_aggregate_resource_config()
        .configuration_aggregator_name("org")
        .expression(QUERY)
        .next_token("garbage")
        .send()
        .await
        .expect_err("token");
    assert_eq!(code(&err).as_deref(), Some("InvalidNextTokenException"));
}
