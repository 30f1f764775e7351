//! Wiring: the handler with the DynamoDB store.

use std::sync::Arc;

use restart_aws::SdkConfig;
use restart_aws::dynamodb::DynamoStore;
use restart_core::Config;
use restart_core::clock::{Clock, SystemClock};

use crate::Batcher;

/// The production handler.
pub type AwsBatcher = Batcher<DynamoStore>;

/// Builds the handler from the configuration and the hub's SDK settings.
pub fn handler(config: Config, sdk: &SdkConfig) -> AwsBatcher {
    handler_with_clock(config, sdk, Arc::new(SystemClock))
}

/// [`handler`] with a chosen clock (tests).
pub fn handler_with_clock(config: Config, sdk: &SdkConfig, clock: Arc<dyn Clock>) -> AwsBatcher {
    let store = restart_aws::dynamo_store(sdk, &config.table_name, config.record_ttl_days);
    Batcher {
        config: Arc::new(config),
        store,
        clock,
    }
}
