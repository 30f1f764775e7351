//! AWS adapters: the only code that imports `aws_sdk_*`. Each implements a port of
//! [`restart_core::ports`] and converts between SDK shapes and domain types; the calls only on-call's
//! `restartctl` makes (`sfn`, `ecs_exec`, `sts::caller_identity`) return domain types of their
//! own. The `*_client` functions build SDK clients from the hub's settings, so that no function
//! crate imports an SDK crate. Every client built here carries the [`xray::XrayCalls`]
//! interceptor: each AWS call is a subsegment of the invocation's X-Ray trace when tracing is on.

pub mod config_aggregator;
pub mod dynamodb;
pub mod ecs;
pub mod ecs_exec;
pub mod guards;
pub mod organizations;
pub mod sdk;
pub mod sfn;
pub mod sns;
pub mod sts;
pub mod xray;

use std::time::Duration;

use aws_smithy_types::timeout::TimeoutConfig;
/// The SDK's shared settings (region, credentials, endpoint) every client here is built from.
pub use aws_types::SdkConfig;

/// How long a call may take: each attempt, and all attempts with the SDK's retries together.
/// A hung endpoint then costs seconds, not the Lambda's whole timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

impl Timeouts {
    /// The hub's own services (DynamoDB, SNS, STS, Step Functions, Config): an attempt gets 20 s
    /// (a large Query page or a contended transaction answers well within it), all attempts 60 s.
    pub const HUB: Timeouts = Timeouts {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(20),
        operation: Duration::from_secs(60),
    };

    /// ECS in a member account: 10 s an attempt, 90 s with the patient throttling retries
    /// ([`ecs::EcsFleet`] allows 8 attempts).
    pub const MEMBER_ECS: Timeouts = Timeouts {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(10),
        operation: Duration::from_secs(90),
    };

    pub fn config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// The hub's SDK settings with [`Timeouts::HUB`]: every hub client is built from this.
pub fn hub(sdk: &SdkConfig) -> SdkConfig {
    with_timeouts(sdk, Timeouts::HUB)
}

/// `sdk` with `timeouts` instead of its own.
pub fn with_timeouts(sdk: &SdkConfig, timeouts: Timeouts) -> SdkConfig {
    sdk.to_builder().timeout_config(timeouts.config()).build()
}

/// The settings of a client working in a member account and region: the hub's `base` settings
/// (endpoints, HTTP client) with the account's credentials from `sessions` (which cache them per
/// account already: without a second cache in the client, a forgotten session, `ExpiredToken`,
/// is renewed at the next call), [`Timeouts::MEMBER_ECS`] and `retry`.
pub fn member_sdk(
    base: &SdkConfig,
    sessions: &sts::AccountSessions,
    account: &restart_core::ids::AccountId,
    region: &str,
    retry: aws_smithy_types::retry::RetryConfig,
) -> SdkConfig {
    base.to_builder()
        .region(aws_types::region::Region::new(region.to_owned()))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                sessions.provider(account),
            ),
        )
        .identity_cache(aws_sdk_ecs::config::IdentityCache::no_cache())
        .timeout_config(Timeouts::MEMBER_ECS.config())
        .retry_config(retry)
        .build()
}

/// The AWS partition of the hub's region (`aws`, `aws-cn`, `aws-us-gov`, ...), so that the role
/// ARNs the hub builds name the partition it runs in. An unknown or missing region is `aws`.
pub fn partition(sdk: &SdkConfig) -> &'static str {
    partition_of_region(sdk.region().map_or("", |r| r.as_ref()))
}

/// The partition a region belongs to, by its documented prefixes.
pub fn partition_of_region(region: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-iso-", "aws-iso"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// The hub's STS client (AssumeRole into member accounts).
pub fn sts_client(sdk: &SdkConfig) -> aws_sdk_sts::Client {
    xray::client!(aws_sdk_sts, &hub(sdk), xray::XrayCalls::hub())
}

/// The hub's AWS Config client (aggregator queries).
pub fn config_client(sdk: &SdkConfig) -> aws_sdk_config::Client {
    xray::client!(aws_sdk_config, &hub(sdk), xray::XrayCalls::hub())
}

/// The hub's SNS client (owner digests, the night summary).
pub fn sns_client(sdk: &SdkConfig) -> aws_sdk_sns::Client {
    xray::client!(aws_sdk_sns, &hub(sdk), xray::XrayCalls::hub())
}

/// The store on the hub's table.
pub fn dynamo_store(sdk: &SdkConfig, table: &str, ttl_days: u32) -> dynamodb::DynamoStore {
    let client = xray::client!(aws_sdk_dynamodb, &hub(sdk), xray::XrayCalls::hub());
    dynamodb::DynamoStore::new(client, table, ttl_days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_follows_the_region() {
        for (region, partition) in [
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("", "aws"),
            ("région-inconnue", "aws"),
        ] {
            assert_eq!(partition_of_region(region), partition, "{region}");
        }
        let sdk = SdkConfig::builder()
            .region(aws_types::region::Region::new("cn-north-1"))
            .build();
        assert_eq!(partition(&sdk), "aws-cn");
    }

    #[test]
    fn hub_clients_get_attempt_and_operation_timeouts() {
        let sdk = hub(&SdkConfig::builder().build());
        let t = sdk.timeout_config().expect("timeouts are set");
        assert_eq!(t.operation_attempt_timeout(), Some(Timeouts::HUB.attempt));
        assert_eq!(t.operation_timeout(), Some(Timeouts::HUB.operation));
        assert_eq!(t.connect_timeout(), Some(Timeouts::HUB.connect));
    }
}
