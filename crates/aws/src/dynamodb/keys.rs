//! The table's layout in one place: its schema ([`create_table`], [`enable_ttl`], the attribute
//! names in [`schema`]), what each item is (the `kind` values in [`kind`]), and the key of every
//! item, so that "what is this item's `pk` and `sk`" has one answer. What the items hold is
//! described in the [module documentation](super) and in the module of each port.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::operation::update_time_to_live::builders::UpdateTimeToLiveFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use chrono::NaiveDate;

use restart_core::catalog::Target;
use restart_core::ids::{AccountId, ServiceId};
use restart_core::night::NightRecord;
use restart_core::notice::FindingKind;

/// The names of the table's schema, shared with the test tables and the CloudFormation template.
pub mod schema {
    /// Partition key (S).
    pub const PK: &str = "pk";
    /// Sort key (S).
    pub const SK: &str = "sk";
    /// The global secondary index over one service's nights.
    pub const GSI_BY_SERVICE: &str = "by_service";
    /// Partition key of [`GSI_BY_SERVICE`] (S).
    pub const GSI1PK: &str = "gsi1pk";
    /// Sort key of [`GSI_BY_SERVICE`] (S).
    pub const GSI1SK: &str = "gsi1sk";
    /// The TTL attribute (N, epoch seconds), on per-night items only.
    pub const TTL_ATTRIBUTE: &str = "expires_at";
    /// What an item is: `catalog`, `inventory`, ...
    pub const KIND: &str = "kind";
}

/// The `kind` attribute values, one per item, grouped by the module that writes the item.
pub mod kind {
    // catalog.rs
    pub const CATALOG: &str = "catalog";
    pub const LISTED: &str = "listed";
    pub const INVENTORY: &str = "inventory";
    pub const LOCK: &str = "lock";
    // night.rs
    pub const NIGHT_RECORD: &str = "night_record";
    pub const BATCH: &str = "batch";
    pub const PLAN: &str = "plan";
    // restarts.rs
    pub const PAUSE: &str = "pause";
    pub const NIGHT_SUMMARY: &str = "night_summary";
    pub const INFLIGHT: &str = "inflight";
    pub const HOLD: &str = "hold";
    pub const BATCH_COUNTS: &str = "batch_counts";
    // notices.rs
    pub const NOTICE: &str = "notice";
    pub const DIGEST: &str = "digest";
    // pace.rs
    pub const PACE: &str = "pace";
    // settings.rs
    pub const ACCOUNT_OWNER: &str = "account_owner";
}

/// The CreateTable request for the table (on demand, the `by_service` index), named `name`.
/// Send it with `.send().await`; then [`enable_ttl`].
pub fn create_table(client: &Client, name: impl Into<String>) -> CreateTableFluentBuilder {
    let s = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t);
    // The builders fail only when a required field is missing, and every one is set here.
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(
            [schema::PK, schema::SK, schema::GSI1PK, schema::GSI1SK]
                .into_iter()
                .map(s)
                .collect::<Result<Vec<_>, _>>()
                .ok(),
        )
        .set_key_schema(
            [
                key(schema::PK, KeyType::Hash).build(),
                key(schema::SK, KeyType::Range).build(),
            ]
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .ok(),
        )
        .set_global_secondary_indexes(
            [
                key(schema::GSI1PK, KeyType::Hash).build(),
                key(schema::GSI1SK, KeyType::Range).build(),
            ]
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .and_then(|keys| {
                GlobalSecondaryIndex::builder()
                    .index_name(schema::GSI_BY_SERVICE)
                    .set_key_schema(Some(keys))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .ok()
            })
            .map(|gsi| vec![gsi]),
        )
}

/// The UpdateTimeToLive request that turns on expiry of per-night items on table `name`.
pub fn enable_ttl(client: &Client, name: impl Into<String>) -> UpdateTimeToLiveFluentBuilder {
    client
        .update_time_to_live()
        .table_name(name)
        .set_time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(schema::TTL_ATTRIBUTE)
                .build()
                .ok(),
        )
}

// The catalog, and a night's inventory run and lock (catalog.rs).

pub const INVENTORY_SK: &str = "INVENTORY";
/// The night's lock (one nightly run at a time).
pub const LOCK_SK: &str = "LOCK";
/// The prefix of every catalog sort key.
pub const SERVICE_SK_PREFIX: &str = "SVC#";

/// `CATALOG#<account>`: the partition holding an account's catalog.
pub fn catalog_pk(account: &AccountId) -> String {
    format!("CATALOG#{account}")
}

/// `SVC#<region>#<cluster>#<service>`. ECS names never contain `#`.
pub fn catalog_sk(id: &ServiceId) -> String {
    format!(
        "{SERVICE_SK_PREFIX}{}#{}#{}",
        id.region, id.cluster, id.service
    )
}

/// The prefix of the sort key of an account's listings (in its catalog partition).
pub const LISTED_SK_PREFIX: &str = "LISTED#";

/// `LISTED#<region>`: the last night the account's region was listed completely.
pub fn listed_sk(region: &str) -> String {
    format!("{LISTED_SK_PREFIX}{region}")
}

/// What every night key starts with: a night's partition, and the `by_service` index's sort
/// key (a service's records, night by night).
pub const NIGHT_PREFIX: &str = "NIGHT#";

/// `NIGHT#<YYYY-MM-DD>`: the partition of a night's items.
pub fn night_pk(night: NaiveDate) -> String {
    format!("{NIGHT_PREFIX}{}", night.format("%Y-%m-%d"))
}

// Night records, batches and the plan summary (night.rs).

/// The sort key of a night's plan summary.
pub const PLAN_SK: &str = "PLAN";
/// The prefix of a night's batch items' sort keys.
pub const BATCH_SK_PREFIX: &str = "BATCH#";

/// How many partitions one batch's records are spread over. A start claims its batch's
/// services as fast as the fleet's UpdateService pacing allows (4 a second per account and
/// region: 800 a second at 200 accounts), each claim and deployment 3 write units on the
/// record; DynamoDB gives a partition 1,000 write units a second, so one partition per batch
/// would throttle the start of a large fleet. 8 partitions take 2,600 claims a second; a poll
/// reads its batch in 8 Queries.
pub const BATCH_SHARDS: u32 = 8;

/// FNV-1a of `key`: a hash that never changes between builds, unlike std's.
fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `stable_hash(key) % n`.
fn shard(key: &str, n: u32) -> u32 {
    u32::try_from(stable_hash(key) % u64::from(n)).unwrap_or(0)
}

/// `NIGHT#<date>#BATCH#<nnn>#<s>`: one of the [`BATCH_SHARDS`] partitions of a batch's records.
pub fn batch_pk(night: NaiveDate, batch: u32, shard: u32) -> String {
    format!("{}#BATCH#{batch:03}#{shard}", night_pk(night))
}

/// The batch partition of a service's record ([`BATCH_SHARDS`]): by its service key, so that
/// a record keeps its partition whatever moves it makes.
pub fn batch_shard(id: &ServiceId) -> u32 {
    shard(&service_key(id), BATCH_SHARDS)
}

/// `NIGHT#<date>#SKIPPED`: the partition of the night's skipped services.
pub fn skipped_pk(night: NaiveDate) -> String {
    format!("{}#SKIPPED", night_pk(night))
}

/// The partition of a night record: its batch's, or the skipped one.
pub fn record_pk(r: &NightRecord) -> String {
    match r.batch {
        Some(b) => batch_pk(r.night, b, batch_shard(&r.id)),
        None => skipped_pk(r.night),
    }
}

/// `SVC#<account>#<region>#<cluster>#<service>`: a record's sort key, and the `by_service`
/// partition key.
pub fn service_key(id: &ServiceId) -> String {
    format!(
        "SVC#{}#{}#{}#{}",
        id.account, id.region, id.cluster, id.service
    )
}

/// `BATCH#<nnn>`: a batch item's sort key.
pub fn batch_sk(batch: u32) -> String {
    format!("{BATCH_SK_PREFIX}{batch:03}")
}

// The restarter's items: the kill switch, a night's halt, a cluster's tally (its restarts in
// flight and the night's counters of its services) (restarts.rs).

pub const CONTROL_PK: &str = "CONTROL";
pub const PAUSE_SK: &str = "PAUSE";
pub const SUMMARY_SK: &str = "SUMMARY";

/// How many partitions a night's cluster tallies are spread over: every start and outcome
/// writes its cluster's tally, so one partition would take the whole fleet's rate (DynamoDB
/// gives a partition 1,000 write units a second); reading the night's counters takes one Query
/// per partition.
pub const TALLY_SHARDS: u32 = 16;

/// The tally partition of a cluster: a stable hash of `<account>#<region>#<cluster>`, modulo
/// [`TALLY_SHARDS`].
pub fn tally_shard(id: &ServiceId) -> u32 {
    shard(
        &format!("{}#{}#{}", id.account, id.region, id.cluster),
        TALLY_SHARDS,
    )
}

/// `NIGHT#<date>#TALLY#<nn>`: one of the night's tally partitions.
pub fn tally_pk(night: NaiveDate, shard: u32) -> String {
    format!("{}#TALLY#{shard:02}", night_pk(night))
}

/// The key of a cluster's tally (`id`: any service of the cluster): its partition and
/// `INFLIGHT#<account>#<region>#<cluster>`.
pub fn tally_key(night: NaiveDate, id: &ServiceId) -> (String, String) {
    (
        tally_pk(night, tally_shard(id)),
        format!("INFLIGHT#{}#{}#{}", id.account, id.region, id.cluster),
    )
}

/// The key of the night's summary.
pub fn summary_pk(night: NaiveDate) -> String {
    night_pk(night)
}

/// How the sort keys of a night's batch counts begin (in the night's partition).
pub const BATCH_COUNTS_SK_PREFIX: &str = "COUNTS#";

/// The sort key of a batch's last counts: `COUNTS#<batch, 4 digits>`.
pub fn batch_counts_sk(batch: u32) -> String {
    format!("{BATCH_COUNTS_SK_PREFIX}{batch:04}")
}

/// How the sort keys of a night's holds begin (in the night's partition).
pub const HOLD_SK_PREFIX: &str = "HOLD#";

/// The sort key of a hold met during a night: where and what, each cut to 200 characters so
/// that the key stays under DynamoDB's 1,024 bytes (an alarm's name has up to 255).
pub fn hold_sk(scope: &str, what: &str) -> String {
    let cut = |t: &str| t.chars().take(200).collect::<String>();
    format!("{HOLD_SK_PREFIX}{}#{}", cut(scope), cut(what))
}

// The notifier's items, one partition per owner (notices.rs).

pub const NOTICE_SK_PREFIX: &str = "SVC#";
pub const DIGEST_SK_PREFIX: &str = "DIGEST#";

/// `NOTICE#<owner>`.
pub fn owner_pk(owner: &str) -> String {
    format!("NOTICE#{owner}")
}

/// `SVC#<account>#<region>#<cluster>#<service>#<finding kind>`.
pub fn notice_sk(id: &ServiceId, kind: FindingKind) -> String {
    format!(
        "{NOTICE_SK_PREFIX}{}#{}#{}#{}#{kind}",
        id.account, id.region, id.cluster, id.service
    )
}

/// `DIGEST#<YYYY-MM-DD>`.
pub fn digest_sk(night: NaiveDate) -> String {
    format!("{DIGEST_SK_PREFIX}{}", night.format("%Y-%m-%d"))
}

// The UpdateService slots of one second of an account and region (pace.rs).

/// `PACE#<account>#<region>`.
pub fn pace_pk(target: &Target) -> String {
    format!("PACE#{}#{}", target.account, target.region)
}

/// `<second>`: the Unix second, in decimal.
pub fn pace_sk(second: i64) -> String {
    second.to_string()
}

// Configuration items, written by on-call (settings.rs). On-call's role may write only the
// partitions `CONTROL` (the kill switch) and `CONFIG` (dynamodb:LeadingKeys).

/// The partition of every configuration item.
pub const CONFIG_PK: &str = "CONFIG";
/// The prefix of an account owner's sort key.
pub const OWNER_SK_PREFIX: &str = "OWNER#";

/// `OWNER#<account>`: the sort key of an account's default owner.
pub fn owner_sk(account: &AccountId) -> String {
    format!("{OWNER_SK_PREFIX}{account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    fn id() -> ServiceId {
        ServiceId {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: "payments".into(),
            service: "api".into(),
        }
    }

    #[test]
    fn key_formats() {
        let id = id();
        assert_eq!(catalog_pk(&id.account), "CATALOG#111111111111");
        assert_eq!(catalog_sk(&id), "SVC#eu-west-1#payments#api");
        assert_eq!(listed_sk(&id.region), "LISTED#eu-west-1");
        assert_eq!(night_pk(day("2026-01-05")), "NIGHT#2026-01-05");
        assert_eq!(INVENTORY_SK, "INVENTORY");
        assert_eq!(CONFIG_PK, "CONFIG");
        assert_eq!(owner_sk(&id.account), "OWNER#111111111111");
    }

    #[test]
    fn a_cluster_keeps_its_tally_partition_and_the_fleet_spreads_over_all() {
        let id = id();
        let (pk, sk) = tally_key(day("2026-01-05"), &id);
        assert_eq!(sk, "INFLIGHT#111111111111#eu-west-1#payments");
        let other = ServiceId {
            service: "worker".into(),
            ..id.clone()
        };
        assert_eq!(tally_key(day("2026-01-05"), &other).0, pk);
        assert!(pk.starts_with("NIGHT#2026-01-05#TALLY#"));
        let shards: std::collections::BTreeSet<u32> = (0..400)
            .map(|c| {
                tally_shard(&ServiceId {
                    cluster: format!("cluster-{c}"),
                    ..id.clone()
                })
            })
            .collect();
        assert_eq!(shards.len(), TALLY_SHARDS as usize);
    }

    #[test]
    fn pace_key_formats() {
        let target = Target {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
        };
        assert_eq!(pace_pk(&target), "PACE#111111111111#eu-west-1");
        assert_eq!(pace_sk(1_795_305_600), "1795305600");
    }
}
