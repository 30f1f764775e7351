//! A batch that ends in an error, through the real definition in moto: its start fails (the
//! batch item is gone from the plan, so the restarter answers `InvalidInput`, which no Retry
//! matches), the Map iteration's `BatchFailed` task invokes the restarter's `failed` mode (what
//! `BatchesFailedAlarm` counts), and the night goes on: the other batches restart their
//! services and the execution succeeds. `tools/with-moto` provides the venv (`VENV`); the stack
//! starts its own moto.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::HistoryEventType;
use chrono::Utc;
use local_stack::{Align, LocalStack, NightOptions, Watch};
use restart_aws::dynamodb::keys;
use restart_core::outcome::NightState;
use restart_core::ports::NightStore;

const FLEET: &str = r#"
seed: 5
throttling: false
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: app
        services:
          - {name: a-0, tags: {ecs_task_daily_restart: enabled, owner: app}}
          - {name: a-1, tags: {ecs_task_daily_restart: enabled, owner: app}}
          - {name: a-2, tags: {ecs_task_daily_restart: enabled, owner: app}}
          - {name: a-3, tags: {ecs_task_daily_restart: enabled, owner: app}}
          - {name: a-4, tags: {ecs_task_daily_restart: enabled, owner: app}}
          - {name: a-5, tags: {ecs_task_daily_restart: enabled, owner: app}}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_batch_is_recorded_and_the_night_goes_on() {
    let fleet = fleet_sim::FleetSpec::from_yaml_str(FLEET).unwrap();
    let options = NightOptions {
        fleet,
        window_seconds: 120,
        align: Align::CurrentMinute,
        vars: BTreeMap::from([("MAX_INFLIGHT_PER_CLUSTER".to_owned(), "2".to_owned())]),
        watch: Watch {
            progress: false,
            grace: Duration::from_secs(150),
        },
    };
    let (stack_options, compression) = local_stack::prepare(&options).unwrap();
    let stack = LocalStack::start(stack_options).await.unwrap();
    let night = stack.config.window.night_at(Utc::now()).night;

    // Once the plan is written, the last batch (the latest start) loses its batch item before
    // its start: the restarter's start of it then fails with InvalidInput.
    let store = restart_aws::dynamo_store(
        &stack.sdk,
        &stack.config.table_name,
        stack.config.record_ttl_days,
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = stack.config.table_name.clone();
    let sabotage = tokio::spawn(async move {
        loop {
            if store.plan_summary(night).await.unwrap().is_some() {
                let batches = store.read_batches(night).await.unwrap();
                let last = *batches.last().expect("a plan of at least one batch");
                assert!(
                    batches.len() >= 2,
                    "the plan has {} batch(es)",
                    batches.len()
                );
                assert!(last.start_at > Utc::now(), "the last batch began already");
                dynamo
                    .delete_item()
                    .table_name(&table)
                    .key(keys::schema::PK, AttributeValue::S(keys::night_pk(night)))
                    .key(
                        keys::schema::SK,
                        AttributeValue::S(keys::batch_sk(last.batch)),
                    )
                    .send()
                    .await
                    .unwrap();
                return last;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let report = local_stack::run_night(&stack, &compression, &options.watch).await;
    let history = match &report {
        Ok(r) => {
            let sfn = aws_sdk_sfn::Client::new(&stack.sdk);
            local_stack::night::history(&sfn, &r.execution.arn).await
        }
        Err(_) => Ok(vec![]),
    };
    let failed = sabotage.await;
    // The failed batch's records: its partition outlives the deleted batch item.
    let left = match &failed {
        Ok(b) => restart_aws::dynamo_store(
            &stack.sdk,
            &stack.config.table_name,
            stack.config.record_ttl_days,
        )
        .read_batch(night, b.batch)
        .await
        .map_err(|e| e.to_string()),
        Err(_) => Ok(vec![]),
    };
    stack.stop().await;
    let failed = failed.unwrap();
    let left = left.unwrap();
    let report = report.unwrap();
    let history = history.unwrap();

    assert_eq!(report.execution.status, "SUCCEEDED", "{}", report.render());
    // The start of the sabotaged batch is the restarter's only error, and was not retried.
    assert_eq!(
        report.invocations.errors.get("restarter"),
        Some(&BTreeMap::from([("InvalidInput".to_owned(), 1)])),
        "{:?}",
        report.invocations
    );

    // BatchFailed ran once, as a task that succeeded: the restarter's `failed` mode took it.
    let entered: Vec<_> = history
        .iter()
        .filter(|e| e.r#type == HistoryEventType::TaskStateEntered)
        .filter_map(|e| e.state_entered_event_details.as_ref())
        .filter(|d| d.name == "BatchFailed")
        .collect();
    assert_eq!(
        entered.len(),
        1,
        "BatchFailed entered {} times",
        entered.len()
    );
    let input: serde_json::Value =
        serde_json::from_str(entered[0].input.as_deref().unwrap_or("{}")).unwrap();
    assert_eq!(input["batch"], serde_json::json!(failed.batch), "{input}");
    assert_eq!(input["error"]["Error"], "InvalidInput", "{input}");
    let exited_to_result = history.iter().any(|e| {
        e.r#type == HistoryEventType::PassStateEntered
            && e.state_entered_event_details
                .as_ref()
                .is_some_and(|d| d.name == "BatchFailedResult")
    });
    assert!(exited_to_result, "BatchFailedResult was never entered");
    let task_failures = history
        .iter()
        .filter(|e| e.r#type == HistoryEventType::TaskFailed)
        .count();
    assert_eq!(task_failures, 1, "tasks failed besides the sabotaged start");

    // The failed batch's services were never started; every other one was restarted.
    assert_eq!(left.len(), usize::try_from(failed.size).unwrap());
    for r in &left {
        assert_eq!(r.state, NightState::Planned, "{r:?}");
    }
    let completed = report
        .services
        .iter()
        .filter(|s| s.state == NightState::Completed)
        .count();
    assert_eq!(completed + left.len(), 6, "{}", report.render());
}
