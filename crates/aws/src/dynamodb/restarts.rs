//! The restarter's items (the [`RestartStore`] port); their keys are in [`keys`].
//!
//! | item | `pk` | `sk` | `kind` | TTL |
//! |---|---|---|---|---|
//! | the kill switch (present = on) | `CONTROL` | `PAUSE` | `pause` | none |
//! | a night's halt | `NIGHT#<date>` | `SUMMARY` | `night_summary` | night + `ttl_days` |
//! | a cluster's tally: its restarts in flight and its services' moves | `NIGHT#<date>#TALLY#<nn>` ([`keys::tally_shard`]) | `INFLIGHT#<account>#<region>#<cluster>` | `inflight` | night + `ttl_days` |
//! | a batch's records by state, for the circuit breaker | `NIGHT#<date>` | `COUNTS#<batch, 4 digits>` | `batch_counts` | night + `ttl_days` |
//!
//! The pause item holds `reason`, `by`, `at`. The summary holds, once halted, `halted_at` and
//! `halt_reason` (and, for nights recorded before the tallies, the night's counters). A tally
//! holds `inflight` (N), one counter per state its services moved to, `count_<state>` (N,
//! updated with `ADD`), and, while some finished restart still rolls, `held` (SS): one
//! `<service>#<deployment>` per restart that keeps its place in `inflight` after it was given
//! up on (ECS service names never hold `#`). The night's counters are the sum of its tallies
//! (one Query per tally partition). A batch's counts hold `at_ms` (N: when the batch was read),
//! `batch` (N), `count_<state>` and `count_lost`, one per state of its records; a put keeps
//! them only over older ones (`at_ms < :at`). The circuit breaker reads them with the halt
//! ([`RestartStore::night_tally`]): one GetItem and one Query of a few KB, whatever the
//! number of clusters.
//!
//! Counting in the cluster's tally rather than in one item for the night keeps every move a
//! transaction of two items and spreads the night's writes over [`keys::TALLY_SHARDS`]
//! partitions: one summary item written by every start and outcome would be the fleet's hot
//! spot (DynamoDB gives an item at most 1,000 write units a second, and concurrent
//! transactions on one item cancel each other).
//!
//! A record moves with one TransactWriteItems, so that the record, the counters and the
//! cluster's count never disagree:
//! - start (`claim`): Put of the started record on condition `state = <state as read>` (or
//!   `attribute_not_exists(pk)` when there was none), and on the tally `ADD inflight 1,
//!   count_started 1` on condition `attribute_not_exists(inflight) OR inflight < cap`;
//! - the deployment (`record_deployment`, one conditional PutItem): the started record with
//!   its deployment, on condition `state = started` and no deployment yet;
//! - outcome (`finish`): Put on condition `state = started` and the deployment as read, and
//!   `ADD inflight -1, count_<outcome> 1`;
//! - outcome with the deployment still rolling (`finish_holding`): the same Put, and `ADD
//!   held <service>#<deployment>, count_<outcome> 1` (inflight unchanged);
//! - release of a held restart (`release`, one UpdateItem): `DELETE held <entry>`, `ADD
//!   inflight -1`, on condition `contains(held, <entry>)`, so a place is given back once;
//! - halt (`halt_record`): Put on condition `state = planned`, `ADD count_halted 1`.
//!
//! A cancelled transaction is told apart by reading the record again: still as read means the
//! cluster was full.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, NaiveDate, Utc};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::codec::{Item, ItemError, Reader, date, expires_at, n, name, s, time};
use super::errors::{build_error, conditional_write, store_error};
use super::keys::{self, kind, schema};
use super::night::{night_item, night_record, record_key};
use super::{DynamoStore, READ_CONCURRENCY};
use restart_core::guard::HoldSeen;
use restart_core::ids::ServiceId;
use restart_core::night::{BatchCounts, Halt, NightRecord, NightStatus, NightTally, Pause};
use restart_core::outcome::NightState;
use restart_core::ports::{Claim, HeldRestart, RestartStore, StoreError};

/// The counter attribute of a state.
fn counter(state: NightState) -> String {
    format!("count_{state}")
}

/// The counter of the `timed_out` moves whose account was lost ([`NightRecord::account_lost`]).
const LOST: &str = "count_lost";

/// The counters an outcome adds to: its state's, and [`LOST`] for a restart lost with its
/// account.
fn outcome_counters(to: &NightRecord) -> Vec<(String, AttributeValue)> {
    let mut add = vec![(counter(to.state), n(1))];
    if to.account_lost {
        add.push((LOST.to_owned(), n(1)));
    }
    add
}

/// A tally's count of restarts in flight.
const INFLIGHT: &str = "inflight";

/// A tally's set of held restarts.
const HELD: &str = "held";

/// A held restart as an element of `held`.
fn held_entry(h: &HeldRestart) -> String {
    format!("{}#{}", h.id.service, h.deployment_id)
}

/// Checks that an item of a tally's key is a tally. Its key says what it is, so an item without
/// `kind` is read as one: moto, which the tests run against, has been seen to leave a tally
/// with its counters and without its `kind` while eight containers' transactions ran on it at
/// once (DynamoDB writes an item whole). An item of another kind is refused.
fn expect_tally(item: &Item) -> Result<Reader<'_>, ItemError> {
    let r = Reader::new(item);
    if item.contains_key(schema::KIND) {
        r.expect_kind(kind::INFLIGHT)?;
    }
    Ok(r)
}

/// The held restarts of an in-flight item (`cluster`: any service of its cluster).
fn held_of(item: &Item, cluster: &ServiceId) -> Result<Vec<HeldRestart>, ItemError> {
    let r = expect_tally(item)?;
    let entries = match item.get(HELD) {
        None | Some(AttributeValue::Null(_)) => return Ok(Vec::new()),
        Some(AttributeValue::Ss(entries)) => entries,
        Some(_) => return Err(r.err(HELD, "is not a string set (SS)")),
    };
    entries
        .iter()
        .map(|e| {
            let (service, deployment) = e
                .split_once('#')
                .ok_or_else(|| r.err(HELD, format!("holds {e:?}, not <service>#<deployment>")))?;
            Ok(HeldRestart {
                id: ServiceId {
                    service: service.to_owned(),
                    ..cluster.clone()
                },
                deployment_id: deployment.to_owned(),
            })
        })
        .collect()
}

impl DynamoStore {
    /// An update of the tally of `id`'s cluster: `ADD`s of `adds` (attribute, amount), its kind,
    /// night and TTL set on the way.
    fn tally(
        &self,
        night: NaiveDate,
        id: &ServiceId,
        adds: &[(impl AsRef<str>, AttributeValue)],
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        let (pk, sk) = keys::tally_key(night, id);
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(schema::PK, s(pk))
            .key(schema::SK, s(sk))
            .expression_attribute_names("#kind", schema::KIND)
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#night", "night")
            .expression_attribute_values(":kind", s(kind::INFLIGHT))
            .expression_attribute_values(":ttl", n(expires_at(night, self.ttl_days)))
            .expression_attribute_values(":night", date(night));
        let mut terms = Vec::new();
        for (i, (attribute, amount)) in adds.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#a{i}"), attribute.as_ref())
                .expression_attribute_values(format!(":a{i}"), amount.clone());
            terms.push(format!("#a{i} :a{i}"));
        }
        update.update_expression(format!(
            "SET #kind = :kind, #ttl = :ttl, #night = :night ADD {}",
            terms.join(", ")
        ))
    }

    /// The record an index item points at (the index keeps only the keys, and may lag a move:
    /// the record itself is read).
    async fn record_at(&self, index_item: &Item) -> Result<Option<NightRecord>, StoreError> {
        let at = |name: &str| match index_item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.as_str()),
            _ => Err(self.corrupt(Reader::new(index_item).err(name, "is missing or not a string"))),
        };
        self.get(key(at(schema::PK)?, at(schema::SK)?), night_record)
            .await
    }

    /// The record at `r`'s key.
    async fn read_record(&self, r: &NightRecord) -> Result<Option<NightRecord>, StoreError> {
        self.get(record_key(r), night_record).await
    }

    /// A Put of `to` on condition that the record's state is `state` (and, with `deployment`,
    /// that its deployment is that one, or absent for `Some(None)`).
    fn put_if(
        &self,
        to: &NightRecord,
        state: Option<NightState>,
        deployment: Option<Option<&str>>,
    ) -> Result<Put, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(night_item(to, self.ttl_days)));
        let put = match state {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK),
            Some(state) => {
                let put = put
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":from", name(&state));
                match deployment {
                    None => put.condition_expression("#state = :from"),
                    Some(None) => put
                        .condition_expression("#state = :from AND attribute_not_exists(#dep)")
                        .expression_attribute_names("#dep", "deployment_id"),
                    Some(Some(dep)) => put
                        .condition_expression("#state = :from AND #dep = :dep")
                        .expression_attribute_names("#dep", "deployment_id")
                        .expression_attribute_values(":dep", s(dep)),
                }
            }
        };
        put.build()
            .map_err(|e| build_error("to move a night record", e))
    }
}

/// The condition that a claim is as `held` was read: `started`, without a deployment, under
/// the same lease (none written: the claim's own).
fn lapsed_claim(
    held: &NightRecord,
) -> (
    String,
    std::collections::HashMap<String, String>,
    std::collections::HashMap<String, AttributeValue>,
) {
    let names = std::collections::HashMap::from([
        ("#state".to_owned(), "state".to_owned()),
        ("#dep".to_owned(), "deployment_id".to_owned()),
        ("#lease".to_owned(), "lease_at".to_owned()),
    ]);
    let mut values =
        std::collections::HashMap::from([(":started".to_owned(), name(&NightState::Started))]);
    let lease = match held.lease_at {
        Some(at) => {
            values.insert(":lease".to_owned(), time(at));
            "#lease = :lease"
        }
        None => "attribute_not_exists(#lease)",
    };
    (
        format!("#state = :started AND attribute_not_exists(#dep) AND {lease}"),
        names,
        values,
    )
}

fn key(pk: &str, sk: &str) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(pk)),
        (schema::SK.to_owned(), s(sk)),
    ])
}

fn put_item(put: Put) -> TransactWriteItem {
    TransactWriteItem::builder().put(put).build()
}

fn pause_of(item: &Item) -> Result<Pause, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::PAUSE)?;
    Ok(Pause {
        reason: r.s("reason")?.to_owned(),
        by: r.s("by")?.to_owned(),
        at: r.parse("at")?,
    })
}

/// The counters an item holds (`count_<state>`).
fn counters(r: &Reader<'_>) -> Result<Vec<(NightState, u64)>, ItemError> {
    let mut counts = Vec::new();
    for state in NightState::ALL {
        if let Some(c) = r.opt_n::<u64>(&counter(state))? {
            counts.push((state, c));
        }
    }
    Ok(counts)
}

/// Adds an item's counters (`count_<state>`, [`LOST`]) to `status`.
fn add_counters(status: &mut NightStatus, r: &Reader<'_>) -> Result<(), ItemError> {
    for (state, c) in counters(r)? {
        *status.counts.entry(state).or_default() += c;
    }
    status.lost += r.opt_n::<u64>(LOST)?.unwrap_or(0);
    Ok(())
}

fn status_of(item: &Item) -> Result<NightStatus, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::NIGHT_SUMMARY)?;
    let mut status = NightStatus::default();
    add_counters(&mut status, &r)?;
    if let Some(at) = r.opt_parse("halted_at")? {
        status.halted = Some(Halt {
            at,
            reason: r.s("halt_reason")?.to_owned(),
        });
    }
    Ok(status)
}

/// A batch's counts as an item of the night's partition.
fn batch_counts_item(night: NaiveDate, batch: u32, c: &BatchCounts, ttl_days: u32) -> Item {
    let mut item = Item::from([
        (schema::PK.to_owned(), s(keys::summary_pk(night))),
        (schema::SK.to_owned(), s(keys::batch_counts_sk(batch))),
        (schema::KIND.to_owned(), s(kind::BATCH_COUNTS)),
        (
            schema::TTL_ATTRIBUTE.to_owned(),
            n(expires_at(night, ttl_days)),
        ),
        ("night".to_owned(), date(night)),
        ("batch".to_owned(), n(batch)),
        ("at_ms".to_owned(), n(c.at.timestamp_millis())),
        (LOST.to_owned(), n(c.lost)),
    ]);
    for (state, count) in &c.counts {
        item.insert(counter(*state), n(count));
    }
    item
}

fn batch_counts_of(item: &Item) -> Result<(u32, BatchCounts), ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::BATCH_COUNTS)?;
    let ms: i64 = r.n("at_ms")?;
    let at = DateTime::from_timestamp_millis(ms).ok_or_else(|| r.err("at_ms", "not a time"))?;
    Ok((
        r.n("batch")?,
        BatchCounts {
            at,
            counts: counters(&r)?.into_iter().collect(),
            lost: r.opt_n::<u64>(LOST)?.unwrap_or(0),
        },
    ))
}

fn hold_of(item: &Item) -> Result<HoldSeen, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::HOLD)?;
    let at = |field: &str| {
        let ms: i64 = r.n(field)?;
        DateTime::from_timestamp_millis(ms).ok_or_else(|| r.err(field, "not a time"))
    };
    Ok(HoldSeen {
        what: r.s("what")?.to_owned(),
        scope: r.s("scope")?.to_owned(),
        first: at("first_ms")?,
        last: at("last_ms")?,
    })
}

impl DynamoStore {
    /// One service's records across nights, newest night first, at most `nights` of them (one
    /// Query on the `by_service` index, which keeps only the keys, then each record read).
    pub async fn service_history(
        &self,
        id: &ServiceId,
        nights: u32,
    ) -> Result<Vec<NightRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(schema::GSI_BY_SERVICE)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :night)")
                .expression_attribute_names("#pk", schema::GSI1PK)
                .expression_attribute_names("#sk", schema::GSI1SK)
                .expression_attribute_values(":pk", s(keys::service_key(id)))
                .expression_attribute_values(":night", s(keys::NIGHT_PREFIX))
                .scan_index_forward(false)
                .limit(i32::try_from(nights).unwrap_or(i32::MAX).max(1))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(&self.table, "Query", &e))?;
            for item in out.items() {
                if let Some(r) = self.record_at(item).await? {
                    records.push(r);
                }
            }
            match out.last_evaluated_key {
                Some(key) if records.len() < nights as usize => start = Some(key),
                _ => break,
            }
        }
        records.truncate(nights as usize);
        Ok(records)
    }
}

impl RestartStore for DynamoStore {
    async fn pause(&self) -> Result<Option<Pause>, StoreError> {
        self.get(key(keys::CONTROL_PK, keys::PAUSE_SK), pause_of)
            .await
    }

    async fn set_pause(&self, pause: Option<&Pause>) -> Result<(), StoreError> {
        match pause {
            Some(p) => {
                let item = Item::from([
                    (schema::PK.to_owned(), s(keys::CONTROL_PK)),
                    (schema::SK.to_owned(), s(keys::PAUSE_SK)),
                    (schema::KIND.to_owned(), s(kind::PAUSE)),
                    ("reason".to_owned(), s(&p.reason)),
                    ("by".to_owned(), s(&p.by)),
                    ("at".to_owned(), time(p.at)),
                ]);
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(|e| store_error(&self.table, "PutItem", &e))?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(schema::PK, s(keys::CONTROL_PK))
                    .key(schema::SK, s(keys::PAUSE_SK))
                    .send()
                    .await
                    .map_err(|e| store_error(&self.table, "DeleteItem", &e))?;
            }
        }
        Ok(())
    }

    async fn night_status(&self, night: NaiveDate) -> Result<NightStatus, StoreError> {
        let key = key(&keys::summary_pk(night), keys::SUMMARY_SK);
        let mut status = self.get(key, status_of).await?.unwrap_or_default();
        let shards: Vec<Vec<Item>> = stream::iter(0..keys::TALLY_SHARDS)
            .map(|shard| self.query_partition(keys::tally_pk(night, shard), None))
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        for tally in shards.iter().flatten() {
            expect_tally(tally)
                .and_then(|r| add_counters(&mut status, &r))
                .map_err(|e| self.corrupt(e))?;
        }
        Ok(status)
    }

    async fn night_tally(&self, night: NaiveDate) -> Result<NightTally, StoreError> {
        let key = key(&keys::summary_pk(night), keys::SUMMARY_SK);
        // The halt is read consistently (a start must not miss it); the counts are at most a
        // poll old anyway, and read eventually consistently.
        let (summary, items) = futures_util::try_join!(
            self.get(key, status_of),
            self.query_partition_read(
                keys::summary_pk(night),
                Some(keys::BATCH_COUNTS_SK_PREFIX),
                false
            )
        )?;
        let batches = items
            .iter()
            .map(|item| batch_counts_of(item).map_err(|e| self.corrupt(e)))
            .collect::<Result<_, _>>()?;
        Ok(NightTally {
            halted: summary.and_then(|s| s.halted),
            batches,
        })
    }

    async fn put_batch_counts(
        &self,
        night: NaiveDate,
        batch: u32,
        counts: &BatchCounts,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(batch_counts_item(night, batch, counts, self.ttl_days)))
            // Invocations of one batch may overlap: counts taken later are never replaced.
            .condition_expression("attribute_not_exists(at_ms) OR at_ms < :at")
            .expression_attribute_values(":at", n(counts.at.timestamp_millis()))
            .send()
            .await;
        conditional_write(&self.table, "PutItem", out)
    }

    async fn halt(&self, night: NaiveDate, halt: &Halt) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::summary_pk(night)))
            .key(schema::SK, s(keys::SUMMARY_SK))
            .update_expression(
                "SET #kind = :kind, #ttl = :ttl, #night = :night, halted_at = :at, \
                 halt_reason = :reason",
            )
            .condition_expression("attribute_not_exists(halted_at)")
            .expression_attribute_names("#kind", schema::KIND)
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#night", "night")
            .expression_attribute_values(":kind", s(kind::NIGHT_SUMMARY))
            .expression_attribute_values(":ttl", n(expires_at(night, self.ttl_days)))
            .expression_attribute_values(":night", date(night))
            .expression_attribute_values(":at", time(halt.at))
            .expression_attribute_values(":reason", s(&halt.reason))
            .send()
            .await;
        conditional_write(&self.table, "UpdateItem", out)
    }

    async fn note_hold(
        &self,
        night: NaiveDate,
        what: &str,
        scope: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::summary_pk(night)))
            .key(schema::SK, s(keys::hold_sk(scope, what)))
            .update_expression(
                "SET #kind = :kind, #ttl = :ttl, #night = :night, what = :what, #scope = :scope, \
                 first_ms = if_not_exists(first_ms, :at), last_ms = :at",
            )
            // Invocations may note out of order: the latest time wins (a refused write is an
            // older note, and changes nothing).
            .condition_expression("attribute_not_exists(last_ms) OR last_ms < :at")
            .expression_attribute_names("#kind", schema::KIND)
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#night", "night")
            .expression_attribute_names("#scope", "scope")
            .expression_attribute_values(":kind", s(kind::HOLD))
            .expression_attribute_values(":ttl", n(expires_at(night, self.ttl_days)))
            .expression_attribute_values(":night", date(night))
            .expression_attribute_values(":what", s(what))
            .expression_attribute_values(":scope", s(scope))
            .expression_attribute_values(":at", n(at.timestamp_millis()))
            .send()
            .await;
        conditional_write(&self.table, "UpdateItem", out).map(|_| ())
    }

    async fn holds_seen(&self, night: NaiveDate) -> Result<Vec<HoldSeen>, StoreError> {
        let items = self
            .query_partition(keys::summary_pk(night), Some(keys::HOLD_SK_PREFIX))
            .await?;
        items
            .iter()
            .map(|item| hold_of(item).map_err(|e| self.corrupt(e)))
            .collect()
    }

    async fn find_record(
        &self,
        night: NaiveDate,
        id: &ServiceId,
    ) -> Result<Option<NightRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(schema::GSI_BY_SERVICE)
            .key_condition_expression("#pk = :pk AND #sk = :sk")
            .expression_attribute_names("#pk", schema::GSI1PK)
            .expression_attribute_names("#sk", schema::GSI1SK)
            .expression_attribute_values(":pk", s(keys::service_key(id)))
            .expression_attribute_values(":sk", s(keys::night_pk(night)))
            .send()
            .await
            .map_err(|e| store_error(&self.table, "Query", &e))?;
        let Some(found) = out.items().first() else {
            return Ok(None);
        };
        self.record_at(found).await
    }

    async fn claim(
        &self,
        from: Option<&NightRecord>,
        to: &NightRecord,
        cap: u32,
    ) -> Result<Claim, StoreError> {
        let record = self.put_if(to, from.map(|f| f.state), None)?;
        let started = counter(NightState::Started);
        let inflight = self
            .tally(
                to.night,
                &to.id,
                &[(INFLIGHT, n(1)), (started.as_str(), n(1))],
            )
            .condition_expression("attribute_not_exists(#a0) OR #a0 < :cap")
            .expression_attribute_values(":cap", n(cap))
            .build()
            .map_err(|e| build_error("to count a restart in flight", e))?;
        let items = vec![
            put_item(record),
            TransactWriteItem::builder().update(inflight).build(),
        ];
        if self.transact(items).await? {
            return Ok(Claim::Claimed);
        }
        let now = self.read_record(to).await?.map(|r| r.state);
        Ok(if now == from.map(|f| f.state) {
            Claim::ClusterFull
        } else {
            Claim::Moved(now)
        })
    }

    async fn take_over(&self, held: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        let (condition, names, values) = lapsed_claim(held);
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(night_item(to, self.ttl_days)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional_write(&self.table, "PutItem", out)
    }

    async fn give_back(&self, claimed: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        let (condition, names, values) = lapsed_claim(claimed);
        let built = |e| build_error("to give a claim back", e);
        // A batch's record moves to the skipped records' key; a record by hand (no batch) is
        // there already, and is replaced in place.
        let record = if keys::record_pk(claimed) == keys::record_pk(to) {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(night_item(to, self.ttl_days)))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(built)?;
            vec![put_item(put)]
        } else {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(record_key(claimed)))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(built)?;
            let skipped = Put::builder()
                .table_name(&self.table)
                .set_item(Some(night_item(to, self.ttl_days)))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK)
                .build()
                .map_err(built)?;
            vec![
                TransactWriteItem::builder().delete(delete).build(),
                put_item(skipped),
            ]
        };
        let started = counter(NightState::Started);
        let freed = self
            .tally(
                claimed.night,
                &claimed.id,
                &[(INFLIGHT, n(-1)), (started.as_str(), n(-1))],
            )
            .build()
            .map_err(built)?;
        let mut items = record;
        items.push(TransactWriteItem::builder().update(freed).build());
        self.transact(items).await
    }

    async fn record_deployment(&self, started: &NightRecord) -> Result<bool, StoreError> {
        let put = self.put_if(started, Some(NightState::Started), Some(None))?;
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .send()
            .await;
        conditional_write(&self.table, "PutItem", out)
    }

    async fn finish(&self, started: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        let record = self.put_if(
            to,
            Some(NightState::Started),
            Some(started.deployment_id.as_deref()),
        )?;
        let mut add = outcome_counters(to);
        add.push((INFLIGHT.to_owned(), n(-1)));
        let inflight = self
            .tally(to.night, &to.id, &add)
            .build()
            .map_err(|e| build_error("to release a restart in flight", e))?;
        self.transact(vec![
            put_item(record),
            TransactWriteItem::builder().update(inflight).build(),
        ])
        .await
    }

    async fn halt_record(
        &self,
        planned: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        let record = self.put_if(to, Some(planned.state), None)?;
        let outcome = counter(to.state);
        let count = self
            .tally(to.night, &to.id, &[(outcome.as_str(), n(1))])
            .build()
            .map_err(|e| build_error("to count a halted record", e))?;
        self.transact(vec![
            put_item(record),
            TransactWriteItem::builder().update(count).build(),
        ])
        .await
    }

    async fn finish_holding(
        &self,
        started: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        // Only a restart with its deployment has something that still rolls; the Put checks
        // that the record still has this one.
        let Some(deployment_id) = started.deployment_id.clone() else {
            return Ok(false);
        };
        let record = self.put_if(to, Some(NightState::Started), Some(Some(&deployment_id)))?;
        let entry = held_entry(&HeldRestart {
            id: to.id.clone(),
            deployment_id,
        });
        let mut add = outcome_counters(to);
        add.push((HELD.to_owned(), AttributeValue::Ss(vec![entry])));
        let hold = self
            .tally(to.night, &to.id, &add)
            .build()
            .map_err(|e| build_error("to hold a restart's place in its cluster", e))?;
        self.transact(vec![
            put_item(record),
            TransactWriteItem::builder().update(hold).build(),
        ])
        .await
    }

    async fn held(
        &self,
        night: NaiveDate,
        cluster: &ServiceId,
    ) -> Result<Vec<HeldRestart>, StoreError> {
        let (pk, sk) = keys::tally_key(night, cluster);
        let key = key(&pk, &sk);
        Ok(self
            .get(key, |item| held_of(item, cluster))
            .await?
            .unwrap_or_default())
    }

    async fn release(&self, night: NaiveDate, held: &HeldRestart) -> Result<bool, StoreError> {
        let entry = held_entry(held);
        let (pk, sk) = keys::tally_key(night, &held.id);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(pk))
            .key(schema::SK, s(sk))
            .update_expression("DELETE #held :entries ADD #c :minus")
            .condition_expression("contains(#held, :entry)")
            .expression_attribute_names("#held", HELD)
            .expression_attribute_names("#c", INFLIGHT)
            .expression_attribute_values(":entries", AttributeValue::Ss(vec![entry.clone()]))
            .expression_attribute_values(":entry", s(entry))
            .expression_attribute_values(":minus", n(-1))
            .send()
            .await;
        conditional_write(&self.table, "UpdateItem", out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(kind: Option<&str>) -> Item {
        let mut item = key(
            "NIGHT#2026-11-22#TALLY#03",
            "INFLIGHT#111111111111#eu-west-1#c1",
        );
        item.insert(counter(NightState::Started), n(2));
        if let Some(k) = kind {
            item.insert(schema::KIND.to_owned(), s(k));
        }
        item
    }

    fn counts_of(item: &Item) -> Result<NightStatus, ItemError> {
        let mut status = NightStatus::default();
        add_counters(&mut status, &expect_tally(item)?)?;
        Ok(status)
    }

    #[test]
    fn a_tally_is_known_by_its_key_and_another_kind_is_refused() {
        let started = NightStatus {
            counts: [(NightState::Started, 2)].into(),
            ..NightStatus::default()
        };
        assert_eq!(counts_of(&tally(Some(kind::INFLIGHT))).unwrap(), started);
        assert_eq!(counts_of(&tally(None)).unwrap(), started);
        assert!(counts_of(&tally(Some(kind::PAUSE))).is_err());
    }

    #[test]
    fn a_restart_lost_with_its_account_adds_to_its_state_and_to_the_lost_counter() {
        let id = ServiceId {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: "c1".into(),
            service: "s".into(),
        };
        let night = "2026-11-22".parse().unwrap();
        let mut to = NightRecord::unbatched(id.clone(), id.arn("aws"), night, "team".into());
        to.state = NightState::TimedOut;
        let names = |to: &NightRecord| -> Vec<String> {
            outcome_counters(to).into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(names(&to), ["count_timed_out"]);
        to.account_lost = true;
        assert_eq!(names(&to), ["count_timed_out", LOST]);
        let mut item = tally(Some(kind::INFLIGHT));
        item.insert(counter(NightState::TimedOut), n(3));
        item.insert(LOST.to_owned(), n(2));
        let status = counts_of(&item).unwrap();
        assert_eq!((status.count(NightState::TimedOut), status.lost), (3, 2));
    }
}
