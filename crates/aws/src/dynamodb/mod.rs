//! The DynamoDB store: the single table of docs/design.md 3.7, behind the ports [`CatalogStore`],
//! [`NightStore`], [`RestartStore`], [`NoticeStore`], [`SharedPace`] and [`SettingsStore`], all
//! implemented by [`DynamoStore`].
//!
//! # The module
//!
//! | module | what it holds |
//! |---|---|
//! | `mod.rs` | this description of the table; [`DynamoStore`] and the requests its ports share (paginated Query, BatchWriteItem, consistent GetItem, TransactWriteItems) |
//! | [`keys`] | the schema ([`create_table`], [`enable_ttl`], the names in [`schema`]), every item's `kind`, and every item's key |
//! | [`codec`] | attribute values to and from Rust values ([`Item`], [`ItemError`]), and the TTL of per-night items |
//! | [`errors`] | SDK errors as [`StoreError`]s, conditional writes, and the [`Backoff`] of the requests sent again |
//! | [`catalog`] | [`CatalogStore`]: catalog records, each account-region's last listing, the night's inventory run and lock |
//! | [`night`] | [`NightStore`]: night records, batches, the plan summary |
//! | `restarts.rs` | [`RestartStore`]: the kill switch, the night's counters and halt, a cluster's restarts in flight |
//! | `notices.rs` | [`NoticeStore`]: the last notices and digests sent to each owner |
//! | [`pace`] | [`SharedPace`]: the UpdateService slots shared by every restarter container |
//! | [`settings`] | [`SettingsStore`]: configuration items on-call writes (each account's default owner) |
//!
//! # The table
//!
//! One table, billed on demand:
//!
//! | key | attribute | type |
//! |---|---|---|
//! | partition key | `pk` | S |
//! | sort key | `sk` | S |
//! | GSI `by_service` partition key (projection KEYS_ONLY: a record's keys, read by key) | `gsi1pk` | S |
//! | GSI `by_service` sort key | `gsi1sk` | S |
//! | TTL (per-night items only) | `expires_at` | N, epoch seconds |
//!
//! [`create_table`] builds exactly this request; the test tables use it, and the CloudFormation
//! template must agree with it (the names are in [`schema`]).
//!
//! Every item carries `kind`, which says what it is. Non-key attributes are flat and named in
//! snake case so that a person reading the table with the AWS CLI understands them.
//!
//! # Items
//!
//! Every item, its key (built in [`keys`]) and the module that reads and writes it:
//!
//! | item | `pk` | `sk` | `kind` | TTL | module |
//! |---|---|---|---|---|---|
//! | catalog record of a service | `CATALOG#<account>` | `SVC#<region>#<cluster>#<service>` | `catalog` | none | [`catalog`] |
//! | the last night an account's region was listed completely (`account`, `region`, `night`) | `CATALOG#<account>` | `LISTED#<region>` | `listed` | none | [`catalog`] |
//! | a night's inventory run | `NIGHT#<YYYY-MM-DD>` | `INVENTORY` | `inventory` | night + `ttl_days` | [`catalog`] |
//! | the night's lock ([`NightLock`]: `holder`, `at`, `until`, and `until_epoch` for the condition) | `NIGHT#<YYYY-MM-DD>` | `LOCK` | `lock` | night + `ttl_days` | [`catalog`] |
//! | a service's night record (planned, started, ...) | `NIGHT#<date>#BATCH#<nnn>#<s>` ([`keys::batch_shard`]) | `SVC#<account>#<region>#<cluster>#<service>` | `night_record` | night + `ttl_days` | [`night`] |
//! | a skipped service's night record | `NIGHT#<date>#SKIPPED` | `SVC#<account>#<region>#<cluster>#<service>` | `night_record` | night + `ttl_days` | [`night`] |
//! | a batch of a night | `NIGHT#<date>` | `BATCH#<nnn>` | `batch` | night + `ttl_days` | [`night`] |
//! | a night's plan summary (written last: "the plan is complete") | `NIGHT#<date>` | `PLAN` | `plan` | night + `ttl_days` | [`night`] |
//! | the kill switch (present = paused) | `CONTROL` | `PAUSE` | `pause` | none | `restarts.rs` |
//! | a night's halt | `NIGHT#<date>` | `SUMMARY` | `night_summary` | night + `ttl_days` | `restarts.rs` |
//! | a hold met during a night (a blocking alarm, a guard that could not be read): `what`, `scope`, `first_ms`, `last_ms` | `NIGHT#<date>` | `HOLD#<scope>#<what>` | `hold` | night + `ttl_days` | `restarts.rs` |
//! | a cluster's tally: restarts in flight, its services' moves counted | `NIGHT#<date>#TALLY#<nn>` | `INFLIGHT#<account>#<region>#<cluster>` | `inflight` | night + `ttl_days` | `restarts.rs` |
//! | the last notice of one kind about one service | `NOTICE#<owner>` | `SVC#<account>#<region>#<cluster>#<service>#<finding kind>` | `notice` | night told + `ttl_days` | `notices.rs` |
//! | how far one night's digest went out | `NOTICE#<owner>` | `DIGEST#<YYYY-MM-DD>` | `digest` | night + `ttl_days` | `notices.rs` |
//! | UpdateService calls taken in one second of an account and region (the slots shared by every restarter container) | `PACE#<account>#<region>` | `<Unix second>` | `pace` | second + 5 min | [`pace`] |
//! | an account's default owner (configuration: wins over `ACCOUNT_OWNERS`) | `CONFIG` | `OWNER#<account>` | `account_owner` | none | [`settings`] |
//!
//! The attributes of the restarter's, the notifier's, the pace and the configuration items are
//! described in their modules; those of the catalog and night items here. On-call's role may
//! write only the partitions `CONTROL` (the kill switch) and `CONFIG` (configuration items).
//!
//! A catalog item holds the [`CatalogRecord`] fields as attributes: `account`, `region`,
//! `cluster`, `service` (the [`restart_core::ids::ServiceId`]), `arn`, `owner`, `owner_source`,
//! `tag_value`, `tag_state`, `status`, `desired`, `scheduling`, `controller`,
//! `min_healthy_percent`, `max_percent`, `skip_reason`, `first_seen`, `last_seen`, `gone_since`.
//! Enumerations are stored by their serde names (`enrolled`, `REPLICA`), dates as
//! `YYYY-MM-DD`, counts as N; an optional field that is `None` is omitted (an item written
//! before restart durations left the catalog may still hold `last_restart_seconds`, which is
//! ignored). A service no longer found is marked gone (`gone_since`), never deleted.
//!
//! A catalog item is written only when what it holds changes (a new service, changed facts,
//! gone, back): its `last_seen` is the night it was written. That an unchanged service was seen
//! is kept once per account and region: the inventory writes the region's `LISTED#<region>`
//! item (a conditional PutItem that never moves `night` back) after that account-region's
//! changes, so a run that stops half-way never claims a listing whose changes were not written.
//! Reading the catalog derives each record's `last_seen`: the later of its own and its region's
//! listing, except for a gone record (a listing did not see it). The restarter writes nothing
//! to the catalog: the next night's plan reads restart durations from last night's records.
//!
//! An inventory item holds the [`InventoryRun`] fields (`night`, `started_at`, `finished_at` as
//! RFC 3339; `reached`, `unreachable` as lists of maps; `counts` as a map).
//!
//! Reading the catalog of an account is one Query on its partition: its listings (`LISTED#`,
//! sorted first) and its records (`SVC#`).
//!
//! A night record (both partitions) carries `gsi1pk` = `SVC#<account>#<region>#<cluster>#<service>`
//! and `gsi1sk` = `NIGHT#<date>`, so one service's history across nights is one Query on the
//! `by_service` index, and holds the [`NightRecord`] fields: `account`, `region`, `cluster`,
//! `service`, `arn`, `night`, `batch` (N), `state`, `skip_reason`, `owner`, `planned_start`,
//! `deployment_id`, `started_at`, `finished_at` (times RFC 3339 UTC; `None` omitted). One batch
//! of one night is one Query on each of its [`keys::BATCH_SHARDS`] partitions
//! `NIGHT#<date>#BATCH#<nnn>#<s>` (`<nnn>`: the batch, zero-padded to three digits; `<s>`: a
//! stable hash of the service key, so that a start's writes spread over the partitions); the night's skipped services are one Query on `NIGHT#<date>#SKIPPED`; the
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
//! Per-night items carry `expires_at`.
//!
//! # Writes
//!
//! [`CatalogStore::put_catalog`] upserts with BatchWriteItem, 25 items a request, a few requests
//! at a time; the `UnprocessedItems` DynamoDB returns under load are sent again with
//! exponential backoff and jitter ([`errors::write_until_processed`]) until written, or the
//! write fails as [`StoreError::Throttled`] after [`Backoff::max_attempts`] requests.
//!
//! [`CatalogStore`]: restart_core::ports::CatalogStore
//! [`CatalogStore::put_catalog`]: restart_core::ports::CatalogStore::put_catalog
//! [`NightStore`]: restart_core::ports::NightStore
//! [`RestartStore`]: restart_core::ports::RestartStore
//! [`NoticeStore`]: restart_core::ports::NoticeStore
//! [`SharedPace`]: restart_core::ports::SharedPace
//! [`SettingsStore`]: restart_core::ports::SettingsStore
//! [`InventoryRun`]: restart_core::catalog::InventoryRun
//! [`CatalogRecord`]: restart_core::catalog::CatalogRecord
//! [`NightLock`]: restart_core::night::NightLock
//! [`NightRecord`]: restart_core::night::NightRecord

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{TransactWriteItem, WriteRequest};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use codec::s;
use errors::{cancellation_codes, random, store_error, write_until_processed};
use restart_core::ports::StoreError;

pub mod catalog;
pub mod codec;
pub mod errors;
pub mod keys;
pub mod night;
mod notices;
pub mod pace;
mod restarts;
pub mod settings;

pub use codec::{Item, ItemError};
pub use errors::Backoff;
pub use keys::{create_table, enable_ttl, schema};

/// The DynamoDB implementation of every store port (see the module documentation).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    ttl_days: u32,
    backoff: Backoff,
    page_size: Option<i32>,
}

/// How many partitions (a catalog's accounts, a night's batches) are read at once.
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

    /// Every item of one partition (paginated Query, read consistently), optionally under a
    /// sort-key prefix.
    async fn query_partition(
        &self,
        pk: String,
        prefix: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_partition_read(pk, prefix, true).await
    }

    /// [`Self::query_partition`], read consistently or not (`consistent`: an eventually
    /// consistent read costs half, and may miss the last second's writes).
    async fn query_partition_read(
        &self,
        pk: String,
        prefix: Option<&str>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(consistent)
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

    /// Sends write requests with BatchWriteItem, 25 a request, unprocessed items retried; of
    /// several requests for one key, only the last is sent ([`last_per_key`]).
    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let batches: Vec<Vec<WriteRequest>> = last_per_key(requests)
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

    /// Sends a transaction: `Ok(false)` when one of its conditions failed. A transaction
    /// cancelled for another reason (a conflict with a concurrent transaction on one of its
    /// items, throttling) says nothing about the conditions: it is sent again after a backoff,
    /// and is `Transient` if it never gets through.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        let mut retry = 0;
        loop {
            let out = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match out {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let Some(reasons) = e
                .as_service_error()
                .filter(|s| s.is_transaction_canceled_exception())
                .map(cancellation_codes)
            else {
                return Err(store_error(&self.table, "TransactWriteItems", &e));
            };
            // No reasons at all (an emulator may send none) is read as a failed condition, the
            // answer that never writes twice.
            if reasons.is_empty() || reasons.iter().any(|c| c == "ConditionalCheckFailed") {
                return Ok(false);
            }
            retry += 1;
            if retry >= self.backoff.max_attempts {
                return Err(StoreError::Transient(format!(
                    "TransactWriteItems on table {} was cancelled {retry} times ({})",
                    self.table,
                    reasons.join(", ")
                )));
            }
            tokio::time::sleep(self.backoff.delay(retry - 1, random())).await;
        }
    }

    /// The item at `key`, read consistently, converted by `read`.
    async fn get<T>(
        &self,
        key: Item,
        read: impl Fn(&Item) -> Result<T, ItemError>,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&self.table, "GetItem", &e))?;
        out.item
            .map(|item| read(&item).map_err(|e| self.corrupt(e)))
            .transpose()
    }
}

/// The table key (`pk`, `sk`) a write request names.
fn request_key(r: &WriteRequest) -> Option<(&str, &str)> {
    let item = match (r.put_request(), r.delete_request()) {
        (Some(put), _) => put.item(),
        (None, Some(delete)) => delete.key(),
        (None, None) => return None,
    };
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    Some((text(schema::PK)?, text(schema::SK)?))
}

/// One request per key, the last given, in the order given: DynamoDB refuses a BatchWriteItem
/// that names a key twice, and requests in different chunks are sent concurrently, so only the
/// last write of a key may be sent.
fn last_per_key(requests: Vec<WriteRequest>) -> Vec<WriteRequest> {
    let last: HashMap<(&str, &str), usize> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((request_key(r)?, i)))
        .collect();
    let keep: Vec<bool> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| request_key(r).is_none_or(|k| last[&k] == i))
        .collect();
    requests
        .into_iter()
        .zip(keep)
        .filter_map(|(r, keep)| keep.then_some(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest};

    fn put(pk: &str, sk: &str, v: &str) -> WriteRequest {
        let put = PutRequest::builder()
            .item(schema::PK, s(pk))
            .item(schema::SK, s(sk))
            .item("v", AttributeValue::S(v.into()))
            .build()
            .unwrap();
        WriteRequest::builder().put_request(put).build()
    }

    fn delete(pk: &str, sk: &str) -> WriteRequest {
        let delete = DeleteRequest::builder()
            .key(schema::PK, s(pk))
            .key(schema::SK, s(sk))
            .build()
            .unwrap();
        WriteRequest::builder().delete_request(delete).build()
    }

    #[test]
    fn of_several_writes_of_one_key_only_the_last_is_sent_in_order() {
        let kept = last_per_key(vec![
            put("A", "1", "first"),
            put("A", "2", "only"),
            put("A", "1", "second"),
            delete("B", "1"),
            put("B", "1", "after the delete"),
            put("A", "1", "last"),
        ]);
        let seen: Vec<(String, String, Option<String>)> = kept
            .iter()
            .map(|r| {
                let (pk, sk) = request_key(r).unwrap();
                let v = r
                    .put_request()
                    .and_then(|p| p.item().get("v"))
                    .and_then(|v| v.as_s().ok())
                    .cloned();
                (pk.to_owned(), sk.to_owned(), v)
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("A".into(), "2".into(), Some("only".into())),
                ("B".into(), "1".into(), Some("after the delete".into())),
                ("A".into(), "1".into(), Some("last".into())),
            ]
        );
    }

    #[test]
    fn distinct_keys_are_all_sent() {
        let requests: Vec<_> = (0..60).map(|i| put("P", &i.to_string(), "x")).collect();
        assert_eq!(last_per_key(requests).len(), 60);
    }
}
