//! Wiring: the handler with the AWS adapters that the configuration chooses.

use std::sync::Arc;

use restart_aws::SdkConfig;
use restart_aws::config_aggregator::ConfigAggregator;
use restart_aws::dynamodb::DynamoStore;
use restart_aws::ecs::EcsFleet;
use restart_aws::organizations::OrganizationAccounts;
use restart_aws::sts::{AccountSessions, MemberRole};
use restart_core::Config;
use restart_core::catalog::{DiscoveredService, Target};
use restart_core::clock::{Clock, SystemClock};
use restart_core::config::{AccountsSource, InventorySource};
use restart_core::ids::AccountId;
use restart_core::pacing::Pacer;
use restart_core::ports::{AccountDirectory, DiscoveryError, ListedAccounts, ServiceInventory};
use restart_core::telemetry::ApiCalls;

use crate::Inventory;

/// Where the accounts come from.
#[derive(Debug)]
pub enum Directory {
    Listed(ListedAccounts),
    Aggregator(ConfigAggregator),
    Organizations(OrganizationAccounts),
}

impl AccountDirectory for Directory {
    async fn accounts(&self) -> Result<Vec<AccountId>, DiscoveryError> {
        match self {
            Self::Listed(d) => d.accounts().await,
            Self::Aggregator(d) => d.accounts().await,
            Self::Organizations(d) => d.accounts().await,
        }
    }
}

/// Where the services come from.
#[derive(Debug)]
pub enum Fleet {
    Ecs(Box<EcsFleet>),
    Config(ConfigAggregator),
}

impl ServiceInventory for Fleet {
    async fn discover(&self, target: &Target) -> Result<Vec<DiscoveredService>, DiscoveryError> {
        match self {
            Self::Ecs(f) => f.discover(target).await,
            Self::Config(f) => f.discover(target).await,
        }
    }
}

/// The production handler.
pub type AwsInventory = Inventory<Directory, Fleet, DynamoStore>;

/// Builds the handler from the configuration and the hub's SDK settings.
pub fn handler(config: Config, sdk: &SdkConfig) -> AwsInventory {
    handler_with_clock(config, sdk, Arc::new(SystemClock))
}

/// [`handler`] with a chosen clock (tests).
pub fn handler_with_clock(config: Config, sdk: &SdkConfig, clock: Arc<dyn Clock>) -> AwsInventory {
    let calls = Arc::new(ApiCalls::default());
    // Config::from_vars guarantees a name wherever an aggregator is used.
    let aggregator_name = config.aggregator().unwrap_or_default();
    let aggregator = |name: &str| {
        ConfigAggregator::new(
            restart_aws::config_client(sdk),
            name.to_owned(),
            calls.clone(),
        )
    };
    let directory = match &config.accounts {
        AccountsSource::List(accounts) => Directory::Listed(ListedAccounts(accounts.clone())),
        AccountsSource::ConfigAggregator => Directory::Aggregator(aggregator(aggregator_name)),
        AccountsSource::Organizations { parents, role } => {
            Directory::Organizations(OrganizationAccounts::new(
                sdk,
                parents.clone(),
                role.as_ref(),
                clock.clone(),
                calls.clone(),
            ))
        }
    };
    let fleet = match config.inventory_source {
        InventorySource::Config => Fleet::Config(aggregator(aggregator_name)),
        InventorySource::Ecs => {
            let sessions = AccountSessions::new(
                restart_aws::sts_client(sdk),
                MemberRole {
                    partition: restart_aws::partition(sdk).into(),
                    role_name: config.member_role_name.clone(),
                    external_id: config.external_id.clone(),
                    session_name: "ecs-nightly-restart-inventory".into(),
                },
                clock.clone(),
                calls.clone(),
            );
            Fleet::Ecs(Box::new(EcsFleet::new(
                sdk.clone(),
                sessions,
                Arc::new(Pacer::new(config.pacing)),
                calls.clone(),
            )))
        }
    };
    let store = restart_aws::dynamo_store(sdk, &config.table_name, config.record_ttl_days);
    Inventory {
        config: Arc::new(config),
        directory,
        fleet,
        store,
        clock,
        calls,
    }
}
