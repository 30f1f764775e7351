//! Wiring: the handler with ECS in the member accounts, the guards (the hub's change calendar,
//! CloudWatch alarms in the hub and the member accounts) and the DynamoDB store.

use std::sync::Arc;

use restart_aws::SdkConfig;
use restart_aws::guards::AwsGuards;
use restart_aws::sts::{AccountSessions, MemberRole};
use restart_aws::{dynamodb::DynamoStore, ecs::EcsFleet};
use restart_core::Config;
use restart_core::clock::{Clock, SystemClock};
use restart_core::pacing::{PaceSlots, Pacer};
use restart_core::telemetry::ApiCalls;

use crate::{Restarter, START_BUDGET};

/// The production handler.
pub type AwsRestarter = Restarter<EcsFleet, DynamoStore>;

/// Builds the handler from the configuration and the hub's SDK settings.
pub fn handler(config: Config, sdk: &SdkConfig) -> AwsRestarter {
    handler_with_clock(config, sdk, Arc::new(SystemClock))
}

/// [`handler`] with a chosen clock (tests). UpdateService is paced across every container
/// through the table ([`handler_with_pace`]).
pub fn handler_with_clock(config: Config, sdk: &SdkConfig, clock: Arc<dyn Clock>) -> AwsRestarter {
    let store = restart_aws::dynamo_store(sdk, &config.table_name, config.record_ttl_days);
    handler_with_pace(config, sdk, clock, Arc::new(store))
}

/// [`handler_with_clock`] with the UpdateService slots shared across containers taken from
/// `slots` (production: the table). The clock runs the night; the slots are counted in
/// seconds of the wall clock whatever it is, since ECS counts real time and every container
/// must agree on when a second starts.
pub fn handler_with_pace(
    config: Config,
    sdk: &SdkConfig,
    clock: Arc<dyn Clock>,
    slots: Arc<dyn PaceSlots>,
) -> AwsRestarter {
    let calls = Arc::new(ApiCalls::default());
    let sessions = AccountSessions::new(
        restart_aws::sts_client(sdk),
        MemberRole {
            partition: restart_aws::partition(sdk).into(),
            role_name: config.member_role_name.clone(),
            external_id: config.external_id.clone(),
            session_name: "ecs-nightly-restart-restarter".into(),
        },
        clock.clone(),
        calls.clone(),
    );
    let guards = AwsGuards::new(sdk, sessions.clone(), calls.clone());
    let fleet = EcsFleet::new(
        sdk.clone(),
        sessions,
        Arc::new(Pacer::new(config.pacing)),
        calls,
    )
    .with_shared_pace(slots, Arc::new(SystemClock));
    let store = restart_aws::dynamo_store(sdk, &config.table_name, config.record_ttl_days);
    Restarter {
        config: Arc::new(config),
        fleet,
        store,
        clock,
        guards: Arc::new(guards),
        budget: START_BUDGET,
    }
}
