//! Wiring: the handler with the DynamoDB store and SNS.

use std::sync::Arc;

use restart_aws::SdkConfig;
use restart_aws::{dynamodb::DynamoStore, sns::SnsPublisher};
use restart_core::Config;
use restart_core::clock::{Clock, SystemClock};

use crate::Notifier;

/// The production handler.
pub type AwsNotifier = Notifier<DynamoStore, DynamoStore, SnsPublisher>;

/// Builds the handler from the configuration and the hub's SDK settings.
pub fn handler(config: Config, sdk: &SdkConfig) -> AwsNotifier {
    handler_with_clock(config, sdk, Arc::new(SystemClock))
}

/// [`handler`] with a chosen clock (tests).
pub fn handler_with_clock(config: Config, sdk: &SdkConfig, clock: Arc<dyn Clock>) -> AwsNotifier {
    let store = restart_aws::dynamo_store(sdk, &config.table_name, config.record_ttl_days);
    Notifier {
        config: Arc::new(config),
        notices: store.clone(),
        store,
        publisher: SnsPublisher::new(restart_aws::sns_client(sdk)),
        clock,
    }
}
