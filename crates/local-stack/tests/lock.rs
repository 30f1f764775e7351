//! The night's lock is released by the state machine's failure path: an execution whose
//! inventory fails after taking the lock (here: an AWS Config aggregator that does not exist,
//! NoSuchConfigurationAggregatorException)
//! ends FAILED without holding the night, so the next start of the same night is not refused
//! until the lock lapses.

use std::time::Duration;

use chrono::Utc;
use local_stack::{Align, LocalStack, NightOptions, Watch};
use restart_core::night::NightLock;
use restart_core::ports::CatalogStore;

const FLEET: &str = r#"
seed: 3
aggregators: [fleet]
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: web
        services:
          - {name: web-0, tags: {ecs_task_daily_restart: enabled}}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_execution_releases_the_nights_lock() {
    let options = NightOptions {
        fleet: fleet_sim::FleetSpec::from_yaml_str(FLEET).unwrap(),
        window_seconds: 60,
        align: Align::CurrentMinute,
        vars: [
            ("ACCOUNTS_SOURCE", "config-aggregator"),
            ("AGGREGATOR_NAME", "no-such-aggregator"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        watch: Watch {
            progress: false,
            grace: Duration::from_secs(60),
        },
    };
    let (stack_options, compression) = local_stack::prepare(&options).unwrap();
    let stack = LocalStack::start(stack_options).await.unwrap();
    let first = local_stack::run_night(&stack, &compression, &options.watch).await;
    let store = restart_aws::dynamo_store(
        &stack.sdk,
        &stack.config.table_name,
        stack.config.record_ttl_days,
    );
    let night = stack.config.window.night_at(Utc::now()).night;
    // Whoever asks for the night's lock now gets it: nobody holds it any more.
    let probe = NightLock {
        night,
        holder: "probe".into(),
        at: Utc::now(),
        until: Utc::now() + chrono::TimeDelta::hours(1),
    };
    let held = store.lock_night(&probe).await;
    let invocations = stack.host.invocations();
    stack.stop().await;

    let first = first.unwrap();
    assert_eq!(first.execution.status, "FAILED", "{}", first.render());
    assert!(
        first
            .execution
            .error
            .as_deref()
            .is_some_and(|e| e.contains("InventoryFailed")),
        "{:?}",
        first.execution.error
    );
    // Inventory ran twice: the night itself, then the release on the failure path.
    assert_eq!(
        invocations.calls.get("inventory").copied(),
        Some(2),
        "{invocations:?}"
    );
    assert_eq!(held.unwrap().holder, "probe");
}
