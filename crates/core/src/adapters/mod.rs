//! AWS adapters: the only code that imports `aws_sdk_*`. Each implements a port of
//! [`crate::ports`] and converts between SDK shapes and domain types; the calls only on-call's
//! `restartctl` makes (`sfn`, `ecs_exec`, `sts::caller_identity`) return domain types of their
//! own. The `*_client` functions build SDK clients from the hub's settings, so that no function
//! crate imports an SDK crate.

pub mod config_aggregator;
pub mod dynamodb;
pub mod ecs;
pub mod ecs_exec;
pub mod sdk;
pub mod sfn;
pub mod sns;
pub mod sts;

use aws_types::SdkConfig;

/// The hub's STS client (AssumeRole into member accounts).
pub fn sts_client(sdk: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(sdk)
}

/// The hub's AWS Config client (aggregator queries).
pub fn config_client(sdk: &SdkConfig) -> aws_sdk_config::Client {
    aws_sdk_config::Client::new(sdk)
}

/// The hub's SNS client (owner digests, the night summary).
pub fn sns_client(sdk: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(sdk)
}

/// The store on the hub's table.
pub fn dynamo_store(sdk: &SdkConfig, table: &str, ttl_days: u32) -> dynamodb::DynamoStore {
    dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table, ttl_days)
}
