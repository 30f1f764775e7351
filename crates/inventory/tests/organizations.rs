//! The inventory with `ACCOUNTS_SOURCE=organizations` against fleet-sim (Organizations, STS,
//! ECS over their wire protocols) and moto (DynamoDB): the accounts come from the organization,
//! listed as a role of the management account, and only ACTIVE ones are worked in.

use std::collections::BTreeSet;
use std::sync::Arc;

use fleet_sim::{FleetSpec, RunningSim};
use inventory::Summary;
use restart_core::Config;
use restart_core::clock::SystemClock;
use restart_core::ids::AccountId;
use restart_core::ports::CatalogStore;
use serde_json::json;

const SPEC: &str = r#"
throttling: false
organization: {management_account: "999999999999"}
accounts:
  - id: "999999999999"
    regions: [eu-west-1]
  - id: "111111111111"
    ou: [Workloads, Prod]
    regions: [eu-west-1]
    clusters:
      - name: payments
        services:
          - {name: api, tags: {ecs_task_daily_restart: enabled}}
          - {name: worker, tags: {ecs_task_daily_restart: enabled}}
  - id: "222222222222"
    ou: [Workloads, Dev]
    status: SUSPENDED
    regions: [eu-west-1]
    clusters:
      - name: closed
        services: [{name: a}, {name: b}, {name: c}]
  - id: "333333333333"
    ou: [Sandbox]
    regions: [eu-west-1]
    clusters:
      - name: lab
        services: [{name: toy}]
"#;

const ROLE: &str = "arn:aws:iam::999999999999:role/ecs-restart-accounts";

fn config(table: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("TABLE_NAME", table),
        ("ACCOUNTS_SOURCE", "organizations"),
        ("ORGANIZATIONS_ROLE_ARN", ROLE),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "ecs-restart-member"),
    ];
    vars.extend_from_slice(extra);
    Config::from_vars(vars).unwrap()
}

async fn run(sim: &RunningSim, config: Config, night: &str) -> Summary {
    let sdk = testkit::hub_sdk_config(&sim.endpoint_url());
    let h = inventory::aws::handler_with_clock(config, &sdk, Arc::new(SystemClock));
    h.handle(json!({ "night": night })).await.unwrap()
}

async fn cataloged_accounts(sim: &RunningSim, table: &str) -> BTreeSet<String> {
    let store = restart_aws::dynamo_store(&testkit::hub_sdk_config(&sim.endpoint_url()), table, 90);
    let all: Vec<AccountId> = [
        "111111111111",
        "222222222222",
        "333333333333",
        "999999999999",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    store
        .read_catalog(&all)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id.account.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_of_the_organizations_active_accounts_only() {
    let spec = FleetSpec::from_yaml_str(SPEC).unwrap();
    let sim = fleet_sim::spawn(spec).await.unwrap();
    let table = testkit::create_table(&testkit::dynamodb_client()).await;

    let s = run(&sim, config(&table, &[]), "2026-11-22").await;
    // 111111111111 (2) and 333333333333 (1); neither the SUSPENDED account nor the management
    // account is listed, so neither is entered.
    assert_eq!(s.accounts_reached, 2, "{s:?}");
    assert_eq!(s.services_found, 3);
    assert_eq!(s.unreachable_count, 0, "{:?}", s.unreachable_sample);
    assert_eq!(
        cataloged_accounts(&sim, &table).await,
        BTreeSet::from(["111111111111".to_owned(), "333333333333".to_owned()])
    );
    let stats = sim.handle().stats();
    assert_eq!(stats.calls["999999999999"]["ListAccounts"], 1);
    assert!(
        !stats.calls.contains_key("222222222222"),
        "{:?}",
        stats.calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ou_limits_the_night_to_its_accounts() {
    let spec = FleetSpec::from_yaml_str(SPEC).unwrap();
    let workloads = fleet_sim::world::build(&spec, 0)
        .organization
        .unwrap()
        .ou_id(&["Workloads"])
        .unwrap()
        .to_owned();
    let sim = fleet_sim::spawn(spec).await.unwrap();
    let table = testkit::create_table(&testkit::dynamodb_client()).await;

    let s = run(
        &sim,
        config(&table, &[("ORGANIZATION_UNITS", &workloads)]),
        "2026-11-22",
    )
    .await;
    assert_eq!(s.accounts_reached, 1, "{s:?}");
    assert_eq!(s.services_found, 2);
    assert_eq!(
        cataloged_accounts(&sim, &table).await,
        BTreeSet::from(["111111111111".to_owned()])
    );
}
