//! The DynamoDB store: the single table of docs/design.md 3.7, behind [`CatalogStore`] and [`NightStore`].
//!
//! # The table
//!
//! One table, billed on demand:
//!
//! | key | attribute | type |
//! |---|---|---|
//! | partition key | `pk` | S |
//! | sort key | `sk` | S |
//! | GSI `by_service` partition key (projection ALL) | `gsi1pk` | S |
//! | GSI `by_service` sort key | `gsi1sk` | S |
//! | TTL (per-night items only) | `expires_at` | N, epoch seconds |
//!
//! [`create_table`] builds exactly this request; the test tables use it, and the CloudFormation
//! template must agree with it (the names are in [`schema`]).
//!
//! Every item carries `kind`, which says what it is. Non-key attributes are flat and named in
//! snake case so that a person reading the table with the AWS CLI understands them.
//!
//! # Items implemented here
//!
//! | item | `pk` | `sk` | `kind` | TTL |
//! |---|---|---|---|---|
//! | catalog record of a service | `CATALOG#<account>` | `SVC#<region>#<cluster>#<service>` | `catalog` | none |
//! | a night's inventory run | `NIGHT#<YYYY-MM-DD>` | `INVENTORY` | `inventory` | night + `ttl_days` |
//! | the night's lock ([`NightLock`]: `holder`, `at`, `until`, and `until_epoch` for the condition) | `NIGHT#<YYYY-MM-DD>` | `LOCK` | `lock` | night + `ttl_days` |
//! | a service's night record (planned, started, ...) | `NIGHT#<date>#BATCH#<nnn>` | `SVC#<account>#<region>#<cluster>#<service>` | `night_record` | night + `ttl_days` |
//! | a skipped service's night record | `NIGHT#<date>#SKIPPED` | `SVC#<account>#<region>#<cluster>#<service>` | `night_record` | night + `ttl_days` |
//! | a batch of a night | `NIGHT#<date>` | `BATCH#<nnn>` | `batch` | night + `ttl_days` |
//! | a night's plan summary (written last: "the plan is complete") | `NIGHT#<date>` | `PLAN` | `plan` | night + `ttl_days` |
//! | UpdateService calls taken in one second of an account and region (`pace.rs`: the slots shared by every restarter container) | `PACE#<account>#<region>` | `<Unix second>` | `pace` | second + 5 min |
//!
//! A catalog item holds the [`CatalogRecord`] fields as attributes: `account`, `region`,
//! `cluster`, `service` (the [`restart_core::ids::ServiceId`]), `arn`, `owner`, `owner_source`,
//! `tag_value`, `tag_state`, `status`, `desired`, `scheduling`, `controller`,
//! `min_healthy_percent`, `max_percent`, `skip_reason`, `first_seen`, `last_seen`, `gone_since`,
//! `last_restart_seconds`. Enumerations are stored by their serde names (`enrolled`,
//! `REPLICA`), dates as `YYYY-MM-DD`, counts as N; an optional field that is `None` is omitted.
//! A service no longer found is marked gone (`gone_since`), never deleted. The restarter sets
//! `last_restart_seconds` (UpdateItem) when a restart completes; inventory carries it over.
//!
//! An inventory item holds the [`InventoryRun`] fields (`night`, `started_at`, `finished_at` as
//! RFC 3339; `reached`, `unreachable` as lists of maps; `counts` as a map).
//!
//! Reading the catalog of an account is one Query on its partition (`begins_with(sk, "SVC#")`).
//!
//! A night record (both partitions) carries `gsi1pk` = `SVC#<account>#<region>#<cluster>#<service>`
//! and `gsi1sk` = `NIGHT#<date>`, so one service's history across nights is one Query on the
//! `by_service` index, and holds the [`NightRecord`] fields: `account`, `region`, `cluster`,
//! `service`, `arn`, `night`, `batch` (N), `state`, `skip_reason`, `owner`, `planned_start`,
//! `deployment_id`, `started_at`, `finished_at` (times RFC 3339 UTC; `None` omitted). One batch
//! of one night is one Query on `NIGHT#<date>#BATCH#<nnn>` (`<nnn>`: the batch, zero-padded to
//! three digits); the night's skipped services are one Query on `NIGHT#<date>#SKIPPED`; the
//! batches are one Query on `NIGHT#<date>` with `begins_with(sk, "BATCH#")`. A batch item holds
//! `night`, `batch`, `start_at`, `size`; the plan summary `night`, `batches`, `planned`,
//! `skipped`, `written_at`.
//!
//! Night records are created with a conditional PutItem (`attribute_not_exists(pk)`, 16 in
//! flight; BatchWriteItem takes no condition), so a rerun never overwrites a record that has
//! moved on. A record changes batch, or goes from planned to skipped, with one
//! TransactWriteItems: Delete of the old key on condition `state = planned`, Put of the new key
//! on condition `attribute_not_exists(pk)`; a record that was started meanwhile stays where it
//! is. Batch items are written and deleted with BatchWriteItem.
//!
//! # Reserved for later issues (not implemented here)
//!
//! | item | `pk` | `sk` | GSI `by_service` |
//! |---|---|---|---|
//! | the night summary (atomic counters) | `NIGHT#<date>` | `SUMMARY` | |
//! | the night lock (conditional put) | `NIGHT#<date>` | `LOCK` | |
//! | the kill switch | `CONTROL` | `PAUSE` | |
//! | notices sent to an owner (cooldown) | `NOTICE#<owner>` | per service | |
//!
//! Per-night items carry `expires_at`.
//!
//! # Writes
//!
//! [`CatalogStore::put_catalog`] upserts with BatchWriteItem, 25 items a request, a few requests
//! at a time; the `UnprocessedItems` DynamoDB returns under load are sent again with
//! exponential backoff and jitter ([`write_until_processed`]) until written, or the write fails
//! as [`StoreError::Throttled`] after [`Backoff::max_attempts`] requests.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::operation::update_time_to_live::builders::UpdateTimeToLiveFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType, TimeToLiveSpecification,
    WriteRequest,
};
use aws_sdk_dynamodb::types::{Delete, DeleteRequest, Put, TransactWriteItem};
use chrono::{NaiveDate, NaiveTime};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::sdk::{ErrorClass, error_code, sdk_message};
use restart_core::catalog::CatalogRecord;
use restart_core::ids::{AccountId, ServiceArn, ServiceId};
use restart_core::night::{Created, NightLock, NightRecord, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{CatalogStore, InventoryRun, NightStore, StoreError};

mod notices;
mod pace;
mod restarts;
pub use pace::{PACE_TTL_SECONDS, pace_keys};
pub use restarts::restart_keys;

/// An item as the SDK reads and writes it.
pub type Item = HashMap<String, AttributeValue>;

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

/// The key formats of the items (see the module documentation).
pub mod keys {
    use chrono::NaiveDate;

    use restart_core::ids::{AccountId, ServiceId};

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

    /// `NIGHT#<YYYY-MM-DD>`: the partition of a night's items.
    pub fn night_pk(night: NaiveDate) -> String {
        format!("NIGHT#{}", night.format("%Y-%m-%d"))
    }
}

/// The `kind` attribute values.
mod kind {
    pub const CATALOG: &str = "catalog";
    pub const INVENTORY: &str = "inventory";
    pub const LOCK: &str = "lock";
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
                            .projection_type(ProjectionType::All)
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

/// Backoff between BatchWriteItem requests that left items unprocessed: exponential, with
/// jitter, capped; at most `max_attempts` requests in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 50 ms, doubling up to 5 s, 10 requests (about 20 s of retrying at most).
    fn default() -> Self {
        Self {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
            max_attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry): half of the capped
    /// exponential delay plus a random share of the other half ("equal jitter"), so waits grow
    /// and concurrent writers spread out.
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.cap);
        let half = exp / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random % spread.saturating_add(1))
    }
}

/// A random number for jitter. `RandomState` is seeded randomly per thread and differs on each
/// call, which is all jitter needs.
fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish()
}

/// Sends `pending` with `send`, which returns what was left unprocessed, and sends the rest again
/// after a backoff until nothing is left. An error of `send` ends it at once; items still
/// unprocessed after `backoff.max_attempts` requests are [`StoreError::Throttled`] (`what` names
/// the write in that message).
pub async fn write_until_processed<T, F, Fut>(
    what: &str,
    mut pending: Vec<T>,
    backoff: Backoff,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let sent = pending.len();
        pending = send(pending).await?;
        if pending.is_empty() {
            break;
        }
        if attempt >= backoff.max_attempts {
            return Err(StoreError::Throttled(format!(
                "{what}: {} of {sent} items were still unprocessed after {attempt} requests",
                pending.len()
            )));
        }
        let wait = backoff.delay(attempt - 1, random());
        tracing::debug!(
            unprocessed = pending.len(),
            attempt,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "{what}: items unprocessed, retrying"
        );
        tokio::time::sleep(wait).await;
    }
    Ok(())
}

/// Error codes, besides denials, that mean the table or the request's shape is wrong for this
/// deployment: retrying will not help.
const MISCONFIGURED: &[&str] = &["ResourceNotFoundException", "ValidationException"];

/// A failed SDK request as a [`StoreError`] whose message names the action and the table,
/// classified by [`ErrorClass`]: a denial, an expired session or a missing table is the
/// deployment's fault (`Misconfigured`), an unknown answer is `Unexpected`.
fn store_error<E>(table: &str, action: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = sdk_message(err);
    let misconfigured = || {
        StoreError::Misconfigured(format!(
            "{action} on table {table} failed (does the table exist, and may this role use it?): {detail}"
        ))
    };
    if let SdkError::ConstructionFailure(_) = err {
        return StoreError::Misconfigured(format!(
            "{action} on table {table} could not be sent: {}",
            DisplayErrorContext(err)
        ));
    }
    match ErrorClass::of_sdk(err) {
        ErrorClass::Throttled => {
            StoreError::Throttled(format!("{action} on table {table}: {detail}"))
        }
        ErrorClass::Transient => {
            StoreError::Transient(format!("{action} on table {table}: {detail}"))
        }
        ErrorClass::Denied | ErrorClass::Expired => misconfigured(),
        ErrorClass::Other if error_code(err).is_some_and(|c| MISCONFIGURED.contains(&c)) => {
            misconfigured()
        }
        ErrorClass::Other => StoreError::Unexpected(format!("{action} on table {table}: {detail}")),
    }
}

/// A conditional write's answer: `Ok(true)` written, `Ok(false)` its condition failed (someone
/// else wrote first), any other failure as a [`StoreError`] naming the action and the table.
pub(super) fn conditional_write<T, E>(
    table: &str,
    action: &str,
    out: Result<T, SdkError<E>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match out {
        Ok(_) => Ok(true),
        Err(e) if error_code(&e) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(store_error(table, action, &e)),
    }
}

/// Why a stored item could not be read: which item, which attribute, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item pk={pk:?} sk={sk:?}: attribute `{field}` {problem}")]
pub struct ItemError {
    pub pk: String,
    pub sk: String,
    pub field: String,
    pub problem: String,
}

/// Reads typed attributes out of an item, naming the item and the attribute in errors.
struct Reader<'a> {
    item: &'a Item,
    pk: &'a str,
    sk: &'a str,
}

impl<'a> Reader<'a> {
    fn new(item: &'a Item) -> Self {
        let key = |k| match item.get(k) {
            Some(AttributeValue::S(s)) => s.as_str(),
            _ => "?",
        };
        Self {
            item,
            pk: key(schema::PK),
            sk: key(schema::SK),
        }
    }

    fn err(&self, field: &str, problem: impl Display) -> ItemError {
        ItemError {
            pk: self.pk.to_owned(),
            sk: self.sk.to_owned(),
            field: field.to_owned(),
            problem: problem.to_string(),
        }
    }

    /// A string attribute; `None` when absent (or NULL).
    fn opt_s(&self, field: &str) -> Result<Option<&'a str>, ItemError> {
        match self.item.get(field) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, "is not a string (S)")),
        }
    }

    fn s(&self, field: &str) -> Result<&'a str, ItemError> {
        self.opt_s(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// A string attribute parsed with `FromStr` (ids, ARNs, dates).
    fn opt_parse<T>(&self, field: &str) -> Result<Option<T>, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_s(field)?
            .map(|s| {
                s.parse()
                    .map_err(|e| self.err(field, format!("{s:?} is not valid: {e}")))
            })
            .transpose()
    }

    fn parse<T>(&self, field: &str) -> Result<T, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_parse(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// A number attribute.
    fn opt_n<T>(&self, field: &str) -> Result<Option<T>, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.item.get(field) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(n)) => n
                .parse()
                .map(Some)
                .map_err(|e| self.err(field, format!("{n:?} is out of range: {e}"))),
            Some(_) => Err(self.err(field, "is not a number (N)")),
        }
    }

    fn n<T>(&self, field: &str) -> Result<T, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_n(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// An enumeration stored by its serde name.
    fn opt_name<T: DeserializeOwned>(&self, field: &str) -> Result<Option<T>, ItemError> {
        self.opt_s(field)?
            .map(|s| {
                serde_json::from_value(Value::String(s.to_owned()))
                    .map_err(|e| self.err(field, format!("{s:?} is not known: {e}")))
            })
            .transpose()
    }

    fn name<T: DeserializeOwned>(&self, field: &str) -> Result<T, ItemError> {
        self.opt_name(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// Checks the `kind` attribute.
    fn expect_kind(&self, expected: &str) -> Result<(), ItemError> {
        match self.s(schema::KIND)? {
            k if k == expected => Ok(()),
            k => Err(self.err(schema::KIND, format!("is {k:?}, expected {expected:?}"))),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn date(d: NaiveDate) -> AttributeValue {
    s(d.format("%Y-%m-%d").to_string())
}

/// An enumeration's serde name (`enrolled`, `REPLICA`).
fn name<T: Serialize>(v: &T) -> AttributeValue {
    match serde_json::to_value(v) {
        Ok(Value::String(name)) => s(name),
        // Every enumeration stored here is a unit enum, whose serde form is a string.
        Ok(other) => s(other.to_string()),
        Err(e) => s(e.to_string()),
    }
}

/// The PutRequests of a chunk of catalog records.
fn catalog_writes(chunk: &[&CatalogRecord]) -> Result<Vec<WriteRequest>, StoreError> {
    chunk
        .iter()
        .map(|r| {
            PutRequest::builder()
                .set_item(Some(catalog_item(r)))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| {
                    StoreError::Corrupt(format!(
                        "the write of {} could not be built: {}",
                        r.id,
                        DisplayErrorContext(&e)
                    ))
                })
        })
        .collect()
}

/// The attributes naming a service, shared by catalog and night items.
fn identity(id: &ServiceId, arn: &ServiceArn) -> Item {
    Item::from([
        ("account".to_owned(), s(id.account.as_str())),
        ("region".to_owned(), s(&id.region)),
        ("cluster".to_owned(), s(&id.cluster)),
        ("service".to_owned(), s(&id.service)),
        ("arn".to_owned(), s(arn.to_string())),
    ])
}

fn read_service_id(r: &Reader<'_>) -> Result<ServiceId, ItemError> {
    Ok(ServiceId {
        account: r.parse("account")?,
        region: r.s("region")?.to_owned(),
        cluster: r.s("cluster")?.to_owned(),
        service: r.s("service")?.to_owned(),
    })
}

/// Inserts the optional attributes that have a value (`None` is omitted, not stored as null).
fn insert_present<const N: usize>(item: &mut Item, optional: [(&str, Option<AttributeValue>); N]) {
    for (field, value) in optional {
        if let Some(value) = value {
            item.insert(field.to_owned(), value);
        }
    }
}

/// The item of a catalog record.
pub fn catalog_item(r: &CatalogRecord) -> Item {
    let mut item = identity(&r.id, &r.arn);
    item.extend([
        (schema::PK.to_owned(), s(keys::catalog_pk(&r.id.account))),
        (schema::SK.to_owned(), s(keys::catalog_sk(&r.id))),
        (schema::KIND.to_owned(), s(kind::CATALOG)),
        ("owner".to_owned(), s(&r.owner)),
        ("owner_source".to_owned(), name(&r.owner_source)),
        ("tag_state".to_owned(), name(&r.tag_state)),
        ("status".to_owned(), name(&r.status)),
        ("desired".to_owned(), n(r.desired)),
        ("scheduling".to_owned(), name(&r.scheduling)),
        ("controller".to_owned(), name(&r.controller)),
        ("min_healthy_percent".to_owned(), n(r.min_healthy_percent)),
        ("max_percent".to_owned(), n(r.max_percent)),
        ("first_seen".to_owned(), date(r.first_seen)),
        ("last_seen".to_owned(), date(r.last_seen)),
    ]);
    let optional = [
        ("tag_value", r.tag_value.as_deref().map(s)),
        ("skip_reason", r.skip_reason.as_ref().map(name)),
        ("gone_since", r.gone_since.map(date)),
        ("last_restart_seconds", r.last_restart_seconds.map(n)),
    ];
    insert_present(&mut item, optional);
    item
}

/// The catalog record of an item, or what is wrong with it.
pub fn catalog_record(item: &Item) -> Result<CatalogRecord, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::CATALOG)?;
    Ok(CatalogRecord {
        id: read_service_id(&r)?,
        arn: r.parse("arn")?,
        owner: r.s("owner")?.to_owned(),
        owner_source: r.name("owner_source")?,
        tag_value: r.opt_s("tag_value")?.map(str::to_owned),
        tag_state: r.name("tag_state")?,
        status: r.name("status")?,
        desired: r.n("desired")?,
        scheduling: r.name("scheduling")?,
        controller: r.name("controller")?,
        min_healthy_percent: r.n("min_healthy_percent")?,
        max_percent: r.n("max_percent")?,
        skip_reason: r.opt_name("skip_reason")?,
        first_seen: r.parse("first_seen")?,
        last_seen: r.parse("last_seen")?,
        gone_since: r.opt_parse("gone_since")?,
        last_restart_seconds: r.opt_n("last_restart_seconds")?,
    })
}

/// Epoch seconds at which a night's items expire: `ttl_days` after the night began (UTC).
pub fn expires_at(night: NaiveDate, ttl_days: u32) -> i64 {
    night.and_time(NaiveTime::MIN).and_utc().timestamp() + i64::from(ttl_days) * 86_400
}

/// A JSON value as an attribute value (objects as M, arrays as L, numbers as N).
fn to_attribute(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(x) => AttributeValue::N(x.to_string()),
        Value::String(x) => AttributeValue::S(x.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attribute).collect()),
        Value::Object(o) => AttributeValue::M(
            o.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

/// An attribute value as JSON; sets and binary are not used by this table.
fn to_json(v: &AttributeValue) -> Result<Value, String> {
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(x) => Value::String(x.clone()),
        AttributeValue::N(x) => {
            if let Ok(u) = x.parse::<u64>() {
                Value::from(u)
            } else if let Ok(i) = x.parse::<i64>() {
                Value::from(i)
            } else {
                x.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{x:?} is not a number"))?
            }
        }
        AttributeValue::L(a) => Value::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err("has a type this table does not use (a set or binary)".to_owned()),
    })
}

/// The item of a night's inventory run, expiring `ttl_days` after the night.
pub fn inventory_item(run: &InventoryRun, ttl_days: u32) -> Item {
    let mut item = match serde_json::to_value(run) {
        Ok(Value::Object(fields)) => fields
            .iter()
            .map(|(k, v)| (k.clone(), to_attribute(v)))
            .collect(),
        // A struct always serializes to an object.
        _ => Item::new(),
    };
    item.insert(schema::PK.to_owned(), s(keys::night_pk(run.night)));
    item.insert(schema::SK.to_owned(), s(keys::INVENTORY_SK));
    item.insert(schema::KIND.to_owned(), s(kind::INVENTORY));
    item.insert(
        schema::TTL_ATTRIBUTE.to_owned(),
        n(expires_at(run.night, ttl_days)),
    );
    item
}

/// The inventory run of an item, or what is wrong with it.
pub fn inventory_run(item: &Item) -> Result<InventoryRun, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::INVENTORY)?;
    let bookkeeping = [schema::PK, schema::SK, schema::KIND, schema::TTL_ATTRIBUTE];
    let mut fields = serde_json::Map::new();
    for (k, v) in item {
        if !bookkeeping.contains(&k.as_str()) {
            fields.insert(k.clone(), to_json(v).map_err(|e| r.err(k, e))?);
        }
    }
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        let path = e.path().to_string();
        r.err(&path, e.into_inner())
    })
}

/// The DynamoDB implementation of [`CatalogStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    ttl_days: u32,
    backoff: Backoff,
    page_size: Option<i32>,
}

/// How many catalog partitions (accounts) are read at once.
const READ_CONCURRENCY: usize = 8;
/// How many BatchWriteItem requests are in flight at once.
const WRITE_CONCURRENCY: usize = 4;
/// The most items BatchWriteItem takes in one request.
const BATCH_SIZE: usize = 25;

impl DynamoStore {
    /// A store on `table`, whose per-night items expire `ttl_days` after the night.
    pub fn new(client: Client, table: impl Into<String>, ttl_days: u32) -> Self {
        Self {
            client,
            table: table.into(),
            ttl_days,
            backoff: Backoff::default(),
            page_size: None,
        }
    }

    /// Uses this backoff for unprocessed items.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Asks for at most `items` items per Query page (default: DynamoDB's 1 MB pages).
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn corrupt(&self, e: ItemError) -> StoreError {
        StoreError::Corrupt(format!("table {}: {e}", self.table))
    }

    /// One account's catalog: one paginated Query on its partition.
    async fn read_account(&self, account: &AccountId) -> Result<Vec<CatalogRecord>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :svc)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#sk", schema::SK)
            .expression_attribute_values(":pk", s(keys::catalog_pk(account)))
            .expression_attribute_values(":svc", s(keys::SERVICE_SK_PREFIX))
            .set_limit(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(&self.table, "Query", &e))?;
        items
            .iter()
            .map(|item| catalog_record(item).map_err(|e| self.corrupt(e)))
            .collect()
    }

    /// One BatchWriteItem of at most 25 items, unprocessed items retried.
    async fn write_batch(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let (client, table) = (&self.client, self.table.as_str());
        let what = format!("BatchWriteItem on table {table}");
        write_until_processed(&what, requests, self.backoff, |pending| async move {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| store_error(table, "BatchWriteItem", &e))?;
            Ok(out
                .unprocessed_items
                .and_then(|mut rest| rest.remove(table))
                .unwrap_or_default())
        })
        .await
    }
}

impl CatalogStore for DynamoStore {
    async fn read_catalog(&self, accounts: &[AccountId]) -> Result<Vec<CatalogRecord>, StoreError> {
        let mut accounts = accounts.to_vec();
        accounts.sort();
        accounts.dedup();
        // Owned ids: a closure over borrowed ones trips the compiler's `Send` check (rust#110338).
        let per_account: Vec<Vec<CatalogRecord>> = stream::iter(accounts)
            .map(|account| async move { self.read_account(&account).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut records: Vec<CatalogRecord> = per_account.into_iter().flatten().collect();
        // Accounts finish in any order: return the planner's deterministic order.
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    async fn put_catalog(&self, records: &[CatalogRecord]) -> Result<(), StoreError> {
        // BatchWriteItem refuses two writes of one key in a request: the last record wins.
        let latest: BTreeMap<&ServiceId, &CatalogRecord> =
            records.iter().map(|r| (&r.id, r)).collect();
        let latest: Vec<&CatalogRecord> = latest.into_values().collect();
        // Items are built a chunk at a time, as the stream asks for them, so a night of 100,000
        // records never holds them all.
        let latest: Vec<&CatalogRecord> = latest;
        stream::iter((0..latest.len()).step_by(BATCH_SIZE))
            .map(|start| {
                let end = (start + BATCH_SIZE).min(latest.len());
                let batch = catalog_writes(&latest[start..end]);
                async move { self.write_batch(batch?).await }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn put_inventory_run(&self, run: &InventoryRun) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(inventory_item(run, self.ttl_days)))
            .send()
            .await
            .map_err(|e| store_error(&self.table, "PutItem", &e))?;
        Ok(())
    }

    async fn get_inventory_run(
        &self,
        night: NaiveDate,
    ) -> Result<Option<InventoryRun>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::night_pk(night)))
            .key(schema::SK, s(keys::INVENTORY_SK))
            .send()
            .await
            .map_err(|e| store_error(&self.table, "GetItem", &e))?;
        out.item
            .map(|item| inventory_run(&item).map_err(|e| self.corrupt(e)))
            .transpose()
    }

    async fn record_restart_duration(
        &self,
        id: &ServiceId,
        seconds: u32,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::catalog_pk(&id.account)))
            .key(schema::SK, s(keys::catalog_sk(id)))
            .update_expression("SET last_restart_seconds = :seconds")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":seconds", n(seconds))
            .send()
            .await;
        conditional_write(&self.table, "UpdateItem", out).map(drop)
    }

    async fn lock_night(&self, lock: &NightLock) -> Result<NightLock, StoreError> {
        let item = Item::from([
            (schema::PK.to_owned(), s(keys::night_pk(lock.night))),
            (schema::SK.to_owned(), s(keys::LOCK_SK)),
            (schema::KIND.to_owned(), s(kind::LOCK)),
            ("night".to_owned(), date(lock.night)),
            ("holder".to_owned(), s(&lock.holder)),
            ("at".to_owned(), time(lock.at)),
            ("until".to_owned(), time(lock.until)),
            ("until_epoch".to_owned(), n(lock.until.timestamp())),
            (
                schema::TTL_ATTRIBUTE.to_owned(),
                n(expires_at(lock.night, self.ttl_days)),
            ),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR holder = :holder OR until_epoch < :at",
            )
            .expression_attribute_values(":holder", s(&lock.holder))
            .expression_attribute_values(":at", n(lock.at.timestamp()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(lock.clone()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let key = Item::from([
                    (schema::PK.to_owned(), s(keys::night_pk(lock.night))),
                    (schema::SK.to_owned(), s(keys::LOCK_SK)),
                ]);
                // Held a moment ago; read back who holds it (a lapse in between is taken by
                // the next attempt).
                self.get(key, night_lock).await?.ok_or_else(|| {
                    StoreError::Transient(format!(
                        "{}: the lock of night {} was released while taking it; try again",
                        self.table, lock.night
                    ))
                })
            }
            Err(e) => Err(store_error(&self.table, "PutItem", &e)),
        }
    }

    async fn unlock_night(&self, night: NaiveDate, holder: &str) -> Result<bool, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::night_pk(night)))
            .key(schema::SK, s(keys::LOCK_SK))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        conditional_write(&self.table, "DeleteItem", deleted)
    }
}

fn night_lock(item: &Item) -> Result<NightLock, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::LOCK)?;
    Ok(NightLock {
        night: r.parse("night")?,
        holder: r.s("holder")?.to_owned(),
        at: r.parse("at")?,
        until: r.parse("until")?,
    })
}

/// The key formats of the night items (see the module documentation).
pub mod night_keys {
    use chrono::NaiveDate;

    use super::keys::night_pk;
    use restart_core::ids::ServiceId;

    /// The sort key of a night's plan summary.
    pub const PLAN_SK: &str = "PLAN";
    /// The prefix of a night's batch items' sort keys.
    pub const BATCH_SK_PREFIX: &str = "BATCH#";

    /// `NIGHT#<date>#BATCH#<nnn>`: the partition of one batch's records.
    pub fn batch_pk(night: NaiveDate, batch: u32) -> String {
        format!("{}#BATCH#{batch:03}", night_pk(night))
    }

    /// `NIGHT#<date>#SKIPPED`: the partition of the night's skipped services.
    pub fn skipped_pk(night: NaiveDate) -> String {
        format!("{}#SKIPPED", night_pk(night))
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
}

mod night_kind {
    pub const RECORD: &str = "night_record";
    pub const BATCH: &str = "batch";
    pub const PLAN: &str = "plan";
}

fn time(t: chrono::DateTime<chrono::Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// The partition of a night record: its batch's, or the skipped one.
fn record_pk(r: &NightRecord) -> String {
    match r.batch {
        Some(b) => night_keys::batch_pk(r.night, b),
        None => night_keys::skipped_pk(r.night),
    }
}

fn record_key(r: &NightRecord) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(record_pk(r))),
        (schema::SK.to_owned(), s(night_keys::service_key(&r.id))),
    ])
}

/// The item of a service's night record, expiring `ttl_days` after the night.
pub fn night_item(r: &NightRecord, ttl_days: u32) -> Item {
    let mut item = identity(&r.id, &r.arn);
    item.extend(record_key(r));
    item.extend([
        (schema::GSI1PK.to_owned(), s(night_keys::service_key(&r.id))),
        (schema::GSI1SK.to_owned(), s(keys::night_pk(r.night))),
        (schema::KIND.to_owned(), s(night_kind::RECORD)),
        (
            schema::TTL_ATTRIBUTE.to_owned(),
            n(expires_at(r.night, ttl_days)),
        ),
        ("night".to_owned(), date(r.night)),
        ("state".to_owned(), name(&r.state)),
        ("owner".to_owned(), s(&r.owner)),
    ]);
    let optional = [
        ("batch", r.batch.map(n)),
        ("skip_reason", r.skip_reason.as_ref().map(name)),
        ("planned_start", r.planned_start.map(time)),
        ("deployment_id", r.deployment_id.as_deref().map(s)),
        ("started_at", r.started_at.map(time)),
        ("finished_at", r.finished_at.map(time)),
        (
            "previous_deployment",
            r.previous_deployment.as_deref().map(s),
        ),
        ("task_definition", r.task_definition.as_deref().map(s)),
        ("duration_seconds", r.duration_seconds.map(n)),
        ("detail", r.detail.as_deref().map(s)),
    ];
    insert_present(&mut item, optional);
    item
}

/// The night record of an item, or what is wrong with it.
pub fn night_record(item: &Item) -> Result<NightRecord, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(night_kind::RECORD)?;
    Ok(NightRecord {
        id: read_service_id(&r)?,
        arn: r.parse("arn")?,
        night: r.parse("night")?,
        batch: r.opt_n("batch")?,
        state: r.name("state")?,
        skip_reason: r.opt_name("skip_reason")?,
        owner: r.s("owner")?.to_owned(),
        planned_start: r.opt_parse("planned_start")?,
        deployment_id: r.opt_s("deployment_id")?.map(str::to_owned),
        started_at: r.opt_parse("started_at")?,
        finished_at: r.opt_parse("finished_at")?,
        previous_deployment: r.opt_s("previous_deployment")?.map(str::to_owned),
        task_definition: r.opt_s("task_definition")?.map(str::to_owned),
        duration_seconds: r.opt_n("duration_seconds")?,
        detail: r.opt_s("detail")?.map(str::to_owned),
    })
}

/// The item of a batch of a night.
pub fn batch_item(night: NaiveDate, b: &PlannedBatch, ttl_days: u32) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::night_pk(night))),
        (schema::SK.to_owned(), s(night_keys::batch_sk(b.batch))),
        (schema::KIND.to_owned(), s(night_kind::BATCH)),
        (
            schema::TTL_ATTRIBUTE.to_owned(),
            n(expires_at(night, ttl_days)),
        ),
        ("night".to_owned(), date(night)),
        ("batch".to_owned(), n(b.batch)),
        ("start_at".to_owned(), time(b.start_at)),
        ("size".to_owned(), n(b.size)),
    ])
}

/// The batch of an item, or what is wrong with it.
pub fn planned_batch(item: &Item) -> Result<PlannedBatch, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(night_kind::BATCH)?;
    Ok(PlannedBatch {
        batch: r.n("batch")?,
        start_at: r.parse("start_at")?,
        size: r.n("size")?,
    })
}

/// The item of a night's plan summary.
pub fn plan_item(p: &PlanSummary, ttl_days: u32) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::night_pk(p.night))),
        (schema::SK.to_owned(), s(night_keys::PLAN_SK)),
        (schema::KIND.to_owned(), s(night_kind::PLAN)),
        (
            schema::TTL_ATTRIBUTE.to_owned(),
            n(expires_at(p.night, ttl_days)),
        ),
        ("night".to_owned(), date(p.night)),
        ("batches".to_owned(), n(p.batches)),
        ("planned".to_owned(), n(p.planned)),
        ("skipped".to_owned(), n(p.skipped)),
        ("written_at".to_owned(), time(p.written_at)),
    ])
}

/// The plan summary of an item, or what is wrong with it.
pub fn plan_summary(item: &Item) -> Result<PlanSummary, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(night_kind::PLAN)?;
    Ok(PlanSummary {
        night: r.parse("night")?,
        batches: r.n("batches")?,
        planned: r.n("planned")?,
        skipped: r.n("skipped")?,
        written_at: r.parse("written_at")?,
    })
}

/// How many conditional PutItem requests are in flight at once.
const PUT_CONCURRENCY: usize = 16;

impl DynamoStore {
    /// Every item of one partition (paginated Query), optionally under a sort-key prefix.
    async fn query_partition(
        &self,
        pk: String,
        prefix: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .set_limit(self.page_size);
        q = match prefix {
            Some(p) => q
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_values(":prefix", s(p)),
            None => q.key_condition_expression("#pk = :pk"),
        };
        q.into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(&self.table, "Query", &e))
    }

    fn records(&self, items: &[Item]) -> Result<Vec<NightRecord>, StoreError> {
        items
            .iter()
            .map(|item| night_record(item).map_err(|e| self.corrupt(e)))
            .collect()
    }

    /// Sends write requests with BatchWriteItem, 25 a request, unprocessed items retried.
    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let batches: Vec<Vec<WriteRequest>> = requests
            .chunks(BATCH_SIZE)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Creates one record unless its key exists: `Ok(false)` when it did.
    async fn create_record(&self, r: &NightRecord) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(night_item(r, self.ttl_days)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await;
        conditional_write(&self.table, "PutItem", out)
    }
}

fn build_error(what: &str, e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Corrupt(format!(
        "the request {what} could not be built: {}",
        DisplayErrorContext(&e)
    ))
}

impl NightStore for DynamoStore {
    async fn plan_summary(&self, night: NaiveDate) -> Result<Option<PlanSummary>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::night_pk(night)))
            .key(schema::SK, s(night_keys::PLAN_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&self.table, "GetItem", &e))?;
        out.item
            .map(|item| plan_summary(&item).map_err(|e| self.corrupt(e)))
            .transpose()
    }

    async fn put_plan_summary(&self, summary: &PlanSummary) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(plan_item(summary, self.ttl_days)))
            .send()
            .await
            .map_err(|e| store_error(&self.table, "PutItem", &e))?;
        Ok(())
    }

    async fn read_batches(&self, night: NaiveDate) -> Result<Vec<PlannedBatch>, StoreError> {
        let items = self
            .query_partition(keys::night_pk(night), Some(night_keys::BATCH_SK_PREFIX))
            .await?;
        let mut batches = items
            .iter()
            .map(|item| planned_batch(item).map_err(|e| self.corrupt(e)))
            .collect::<Result<Vec<_>, _>>()?;
        batches.sort_by_key(|b| b.batch);
        Ok(batches)
    }

    async fn put_batches(
        &self,
        night: NaiveDate,
        batches: &[PlannedBatch],
    ) -> Result<(), StoreError> {
        let requests = batches
            .iter()
            .map(|b| {
                PutRequest::builder()
                    .set_item(Some(batch_item(night, b, self.ttl_days)))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| build_error("to write a batch", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_all(requests).await
    }

    async fn delete_batches(&self, night: NaiveDate, batches: &[u32]) -> Result<(), StoreError> {
        let requests = batches
            .iter()
            .map(|&b| {
                DeleteRequest::builder()
                    .key(schema::PK, s(keys::night_pk(night)))
                    .key(schema::SK, s(night_keys::batch_sk(b)))
                    .build()
                    .map(|del| WriteRequest::builder().delete_request(del).build())
                    .map_err(|e| build_error("to delete a batch", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_all(requests).await
    }

    async fn read_batch(
        &self,
        night: NaiveDate,
        batch: u32,
    ) -> Result<Vec<NightRecord>, StoreError> {
        let items = self
            .query_partition(night_keys::batch_pk(night, batch), None)
            .await?;
        self.records(&items)
    }

    async fn read_skipped(&self, night: NaiveDate) -> Result<Vec<NightRecord>, StoreError> {
        let items = self
            .query_partition(night_keys::skipped_pk(night), None)
            .await?;
        self.records(&items)
    }

    async fn read_night(&self, night: NaiveDate) -> Result<Vec<NightRecord>, StoreError> {
        let batches = self.read_batches(night).await?;
        let per_batch: Vec<Vec<NightRecord>> = stream::iter(batches)
            .map(|b| async move { self.read_batch(night, b.batch).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut records: Vec<NightRecord> = per_batch.into_iter().flatten().collect();
        records.extend(self.read_skipped(night).await?);
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    async fn read_assignment(
        &self,
        night: NaiveDate,
    ) -> Result<BTreeMap<ServiceId, u32>, StoreError> {
        let batches = self.read_batches(night).await?;
        let per_batch: Vec<Vec<NightRecord>> = stream::iter(batches)
            .map(|b| async move { self.read_batch(night, b.batch).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(per_batch
            .into_iter()
            .flatten()
            .filter_map(|r| r.batch.map(|b| (r.id, b)))
            .collect())
    }

    async fn create_records(&self, records: &[NightRecord]) -> Result<Created, StoreError> {
        // Owned records: a closure over borrowed ones trips the `Send` check (rust#110338).
        let results: Vec<(ServiceId, bool)> = stream::iter(records.to_vec())
            .map(|r| async move {
                let created = self.create_record(&r).await?;
                Ok::<_, StoreError>((r.id, created))
            })
            .buffer_unordered(PUT_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out = Created::default();
        for (id, created) in results {
            if created {
                out.created += 1;
            } else {
                out.existing.push(id);
            }
        }
        out.existing.sort();
        Ok(out)
    }

    async fn move_record(&self, from: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        if record_pk(from) == record_pk(to) && from.id == to.id {
            return Ok(false);
        }
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(record_key(from)))
            .condition_expression("#state = :planned")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":planned", name(&NightState::Planned))
            .build()
            .map_err(|e| build_error("to move a record", e))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(night_item(to, self.ttl_days)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .build()
            .map_err(|e| build_error("to move a record", e))?;
        self.transact(vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().put(put).build(),
        ])
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{TimeZone, Utc};

    use super::*;
    use restart_core::catalog::{InventoryCounts, Target, Unreachable};
    use restart_core::eligibility::SkipReason;
    use restart_core::owner::OwnerSource;
    use restart_core::service::{DeploymentController, SchedulingStrategy, ServiceStatus};
    use restart_core::tag::TagStateKind;

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    fn record() -> CatalogRecord {
        let id = ServiceId {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: "payments".into(),
            service: "api".into(),
        };
        CatalogRecord {
            arn: id.arn("aws"),
            id,
            owner: "payments".into(),
            owner_source: OwnerSource::ServiceTag,
            tag_value: Some("2026-11-21T01:10:00Z".into()),
            tag_state: TagStateKind::Enrolled,
            status: ServiceStatus::Active,
            desired: 3,
            scheduling: SchedulingStrategy::Replica,
            controller: DeploymentController::Ecs,
            min_healthy_percent: 100,
            max_percent: 200,
            skip_reason: None,
            first_seen: day("2026-11-01"),
            last_seen: day("2026-11-22"),
            gone_since: None,
            last_restart_seconds: Some(420),
        }
    }

    fn run() -> InventoryRun {
        let account: AccountId = "222222222222".parse().unwrap();
        InventoryRun {
            night: day("2026-11-22"),
            started_at: Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 5).unwrap(),
            finished_at: Utc.with_ymd_and_hms(2026, 11, 22, 0, 1, 40).unwrap(),
            reached: vec![Target {
                account: "111111111111".parse().unwrap(),
                region: "eu-west-1".into(),
            }],
            unreachable: vec![Unreachable {
                account,
                region: "eu-west-1".into(),
                error: "access denied: AssumeRole".into(),
            }],
            counts: InventoryCounts {
                services: 2,
                by_tag_state: [(TagStateKind::Enrolled, 1), (TagStateKind::Untagged, 1)].into(),
                by_skip_reason: [(SkipReason::Untagged, 1)].into(),
                eligible: 1,
                gone: 0,
                written: 2,
            },
        }
    }

    fn get<'a>(item: &'a Item, k: &str) -> &'a AttributeValue {
        item.get(k).unwrap_or_else(|| panic!("no attribute {k}"))
    }

    #[test]
    fn key_formats() {
        let r = record();
        assert_eq!(keys::catalog_pk(&r.id.account), "CATALOG#111111111111");
        assert_eq!(keys::catalog_sk(&r.id), "SVC#eu-west-1#payments#api");
        assert_eq!(keys::night_pk(day("2026-01-05")), "NIGHT#2026-01-05");
        assert_eq!(keys::INVENTORY_SK, "INVENTORY");
    }

    #[test]
    fn a_catalog_item_is_flat_and_readable() {
        let item = catalog_item(&record());
        let expect_s = |k: &str, v: &str| assert_eq!(get(&item, k), &s(v), "{k}");
        expect_s("pk", "CATALOG#111111111111");
        expect_s("sk", "SVC#eu-west-1#payments#api");
        expect_s("kind", "catalog");
        expect_s("account", "111111111111");
        expect_s("region", "eu-west-1");
        expect_s("cluster", "payments");
        expect_s("service", "api");
        expect_s(
            "arn",
            "arn:aws:ecs:eu-west-1:111111111111:service/payments/api",
        );
        expect_s("owner", "payments");
        expect_s("owner_source", "service_tag");
        expect_s("tag_value", "2026-11-21T01:10:00Z");
        expect_s("tag_state", "enrolled");
        expect_s("status", "ACTIVE");
        expect_s("scheduling", "REPLICA");
        expect_s("controller", "ECS");
        expect_s("first_seen", "2026-11-01");
        expect_s("last_seen", "2026-11-22");
        assert_eq!(get(&item, "desired"), &n(3));
        assert_eq!(get(&item, "min_healthy_percent"), &n(100));
        assert_eq!(get(&item, "max_percent"), &n(200));
        assert_eq!(get(&item, "last_restart_seconds"), &n(420));
        // None is omitted; catalog items have no TTL and no index keys.
        for absent in [
            "skip_reason",
            "gone_since",
            "expires_at",
            "gsi1pk",
            "gsi1sk",
            "id",
        ] {
            assert!(!item.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn catalog_records_round_trip() {
        let full = record();
        assert_eq!(catalog_record(&catalog_item(&full)).unwrap(), full);

        let sparse = CatalogRecord {
            tag_value: None,
            tag_state: TagStateKind::Untagged,
            skip_reason: Some(SkipReason::Untagged),
            last_restart_seconds: None,
            owner_source: OwnerSource::Unowned,
            owner: "unowned".into(),
            ..record()
        };
        let item = catalog_item(&sparse);
        assert!(!item.contains_key("tag_value"));
        assert!(!item.contains_key("last_restart_seconds"));
        assert_eq!(get(&item, "skip_reason"), &s("untagged"));
        assert_eq!(catalog_record(&item).unwrap(), sparse);

        // An empty tag value ("enrolled, never restarted") is not an absent one.
        let empty_tag = CatalogRecord {
            tag_value: Some(String::new()),
            ..record()
        };
        assert_eq!(
            catalog_record(&catalog_item(&empty_tag)).unwrap(),
            empty_tag
        );
    }

    #[test]
    fn a_gone_record_round_trips() {
        let gone = CatalogRecord {
            gone_since: Some(day("2026-11-20")),
            last_seen: day("2026-11-19"),
            status: ServiceStatus::Inactive,
            skip_reason: Some(SkipReason::NotFound),
            ..record()
        };
        let item = catalog_item(&gone);
        assert_eq!(get(&item, "gone_since"), &s("2026-11-20"));
        assert_eq!(catalog_record(&item).unwrap(), gone);
    }

    #[test]
    fn an_old_format_arn_round_trips() {
        let mut r = record();
        r.arn = "arn:aws:ecs:eu-west-1:111111111111:service/api"
            .parse()
            .unwrap();
        r.skip_reason = Some(SkipReason::NeedsLongArn);
        assert_eq!(catalog_record(&catalog_item(&r)).unwrap(), r);
    }

    #[test]
    fn an_unreadable_catalog_item_names_the_item_and_the_attribute() {
        let mut item = catalog_item(&record());
        item.insert("desired".into(), s("three"));
        let err = catalog_record(&item).unwrap_err();
        assert_eq!(err.field, "desired");
        assert_eq!(err.pk, "CATALOG#111111111111");
        assert_eq!(err.sk, "SVC#eu-west-1#payments#api");
        assert_eq!(
            err.to_string(),
            "item pk=\"CATALOG#111111111111\" sk=\"SVC#eu-west-1#payments#api\": \
             attribute `desired` is not a number (N)"
        );

        let cases: [(&str, Option<AttributeValue>, &str); 7] = [
            ("owner", None, "is missing"),
            ("tag_state", Some(s("sleepy")), "\"sleepy\" is not known"),
            ("desired", Some(n(-1)), "is out of range"),
            ("first_seen", Some(s("22/11/2026")), "is not valid"),
            ("arn", Some(s("api")), "is not an ECS service ARN"),
            ("account", Some(s("1234")), "12 digits"),
            ("kind", Some(s("inventory")), "expected \"catalog\""),
        ];
        for (field, value, problem) in cases {
            let mut item = catalog_item(&record());
            match value {
                Some(v) => item.insert(field.into(), v),
                None => item.remove(field),
            };
            let err = catalog_record(&item).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.problem.contains(problem), "{field}: {err}");
        }
    }

    #[test]
    fn inventory_runs_round_trip_and_expire() {
        let run = run();
        let item = inventory_item(&run, 90);
        assert_eq!(get(&item, "pk"), &s("NIGHT#2026-11-22"));
        assert_eq!(get(&item, "sk"), &s("INVENTORY"));
        assert_eq!(get(&item, "kind"), &s("inventory"));
        assert_eq!(get(&item, "night"), &s("2026-11-22"));
        // 2026-11-22T00:00:00Z + 90 days = 2027-02-20T00:00:00Z.
        assert_eq!(get(&item, "expires_at"), &n(1_803_081_600));
        assert_eq!(
            expires_at(day("2026-11-22"), 90),
            Utc.with_ymd_and_hms(2027, 2, 20, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
        let AttributeValue::M(counts) = get(&item, "counts") else {
            panic!("counts is not a map")
        };
        assert_eq!(get(counts, "services"), &n(2));
        assert_eq!(inventory_run(&item).unwrap(), run);

        let empty = InventoryRun {
            reached: vec![],
            unreachable: vec![],
            counts: InventoryCounts::default(),
            ..run
        };
        assert_eq!(inventory_run(&inventory_item(&empty, 1)).unwrap(), empty);
    }

    #[test]
    fn an_unreadable_inventory_item_names_the_path() {
        let mut item = inventory_item(&run(), 90);
        let Some(AttributeValue::M(counts)) = item.get_mut("counts") else {
            panic!("counts is not a map")
        };
        counts.insert("eligible".into(), s("many"));
        let err = inventory_run(&item).unwrap_err();
        assert_eq!(err.field, "counts.eligible");
        assert_eq!(err.sk, "INVENTORY");

        let mut item = inventory_item(&run(), 90);
        item.insert("reached".into(), AttributeValue::Ss(vec!["x".into()]));
        assert_eq!(inventory_run(&item).unwrap_err().field, "reached");
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 5,
        };
        assert_eq!(b.delay(0, 0), Duration::from_millis(50));
        assert_eq!(b.delay(1, 0), Duration::from_millis(100));
        assert_eq!(b.delay(2, 0), Duration::from_millis(200));
        assert_eq!(b.delay(10, 0), Duration::from_millis(500));
        assert_eq!(b.delay(40, 0), Duration::from_millis(500));
        // The random share stays within the other half.
        for r in [1, 12_345, u64::MAX] {
            let d = b.delay(1, r);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
        assert_ne!(random(), random());
    }

    fn fast(max_attempts: u32) -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            max_attempts,
        }
    }

    /// A fake BatchWriteItem that leaves the last `leave[i]` items unprocessed on request `i`.
    struct Fake {
        leave: Vec<usize>,
        sent: Mutex<Vec<Vec<u32>>>,
    }

    impl Fake {
        fn new(leave: &[usize]) -> Self {
            Self {
                leave: leave.to_vec(),
                sent: Mutex::new(vec![]),
            }
        }

        async fn send(&self, items: Vec<u32>) -> Result<Vec<u32>, StoreError> {
            let mut sent = self.sent.lock().unwrap();
            let leave = self.leave.get(sent.len()).copied().unwrap_or(0);
            sent.push(items.clone());
            Ok(items[items.len().saturating_sub(leave)..].to_vec())
        }
    }

    #[tokio::test]
    async fn unprocessed_items_are_sent_again_until_written() {
        let fake = Fake::new(&[10, 4, 1]);
        let items: Vec<u32> = (0..25).collect();
        write_until_processed("test", items, fast(10), |p| fake.send(p))
            .await
            .unwrap();
        let sent = fake.sent.into_inner().unwrap();
        assert_eq!(
            sent,
            vec![
                (0..25).collect::<Vec<_>>(),
                (15..25).collect(),
                (21..25).collect(),
                vec![24],
            ]
        );
    }

    #[tokio::test]
    async fn items_left_unprocessed_too_long_are_throttled() {
        let fake = Fake::new(&[25, 25, 25, 25]);
        let err = write_until_processed(
            "BatchWriteItem on table t",
            (0..25).collect(),
            fast(3),
            |p| fake.send(p),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            StoreError::Throttled(
                "BatchWriteItem on table t: 25 of 25 items were still unprocessed after 3 requests"
                    .into()
            )
        );
        assert_eq!(fake.sent.into_inner().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_error_ends_the_write_at_once_and_nothing_is_sent_for_nothing() {
        let calls = Mutex::new(0);
        let err = write_until_processed("w", vec![1, 2], fast(5), |_| {
            *calls.lock().unwrap() += 1;
            async { Err::<Vec<u32>, _>(StoreError::Transient("down".into())) }
        })
        .await
        .unwrap_err();
        assert_eq!(err, StoreError::Transient("down".into()));
        assert_eq!(*calls.lock().unwrap(), 1);

        write_until_processed("w", Vec::<u32>::new(), fast(5), |_| async {
            panic!("nothing to send")
        })
        .await
        .unwrap();
    }
}
