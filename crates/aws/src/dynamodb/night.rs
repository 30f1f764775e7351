//! A night's plan: the night records of the services planned (one partition per batch) and
//! skipped, the batches and the plan summary (the [`NightStore`] port). What these items hold,
//! and how a record is created and moved, is described in the [module documentation](super);
//! their keys are in [`keys`]. The restarter moves the records on (`restarts.rs`).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use chrono::NaiveDate;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::codec::{
    Item, ItemError, Reader, date, expires_at, identity, insert_present, n, name, read_service_id,
    s, time,
};
use super::errors::{build_error, conditional_write, store_error};
use super::keys::{self, kind, schema};
use super::{DynamoStore, READ_CONCURRENCY};
use restart_core::ids::ServiceId;
use restart_core::night::{Created, NightRecord, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{NightStore, StoreError};

/// The key of a night record (its partition and sort key).
pub(super) fn record_key(r: &NightRecord) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::record_pk(r))),
        (schema::SK.to_owned(), s(keys::service_key(&r.id))),
    ])
}

/// The item of a service's night record, expiring `ttl_days` after the night.
pub fn night_item(r: &NightRecord, ttl_days: u32) -> Item {
    let mut item = identity(&r.id, &r.arn);
    item.extend(record_key(r));
    item.extend([
        (schema::GSI1PK.to_owned(), s(keys::service_key(&r.id))),
        (schema::GSI1SK.to_owned(), s(keys::night_pk(r.night))),
        (schema::KIND.to_owned(), s(kind::NIGHT_RECORD)),
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
        ("lease_at", r.lease_at.map(time)),
        ("finished_at", r.finished_at.map(time)),
        (
            "previous_deployment",
            r.previous_deployment.as_deref().map(s),
        ),
        ("task_definition", r.task_definition.as_deref().map(s)),
        ("duration_seconds", r.duration_seconds.map(n)),
        ("detail", r.detail.as_deref().map(s)),
        // Written only when set: most records never are.
        (
            "account_lost",
            r.account_lost.then_some(AttributeValue::Bool(true)),
        ),
    ];
    insert_present(&mut item, optional);
    item
}

/// The night record of an item, or what is wrong with it.
pub fn night_record(item: &Item) -> Result<NightRecord, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::NIGHT_RECORD)?;
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
        lease_at: r.opt_parse("lease_at")?,
        finished_at: r.opt_parse("finished_at")?,
        previous_deployment: r.opt_s("previous_deployment")?.map(str::to_owned),
        task_definition: r.opt_s("task_definition")?.map(str::to_owned),
        duration_seconds: r.opt_n("duration_seconds")?,
        detail: r.opt_s("detail")?.map(str::to_owned),
        account_lost: r.flag("account_lost")?,
    })
}

/// The item of a batch of a night.
pub fn batch_item(night: NaiveDate, b: &PlannedBatch, ttl_days: u32) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::night_pk(night))),
        (schema::SK.to_owned(), s(keys::batch_sk(b.batch))),
        (schema::KIND.to_owned(), s(kind::BATCH)),
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
    r.expect_kind(kind::BATCH)?;
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
        (schema::SK.to_owned(), s(keys::PLAN_SK)),
        (schema::KIND.to_owned(), s(kind::PLAN)),
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
    r.expect_kind(kind::PLAN)?;
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
    fn records(&self, items: &[Item]) -> Result<Vec<NightRecord>, StoreError> {
        items
            .iter()
            .map(|item| night_record(item).map_err(|e| self.corrupt(e)))
            .collect()
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

impl NightStore for DynamoStore {
    async fn plan_summary(&self, night: NaiveDate) -> Result<Option<PlanSummary>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::night_pk(night)))
            .key(schema::SK, s(keys::PLAN_SK))
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
            .query_partition(keys::night_pk(night), Some(keys::BATCH_SK_PREFIX))
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
                    .key(schema::SK, s(keys::batch_sk(b)))
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
        let shards: Vec<Vec<Item>> = stream::iter(0..keys::BATCH_SHARDS)
            .map(|shard| self.query_partition(keys::batch_pk(night, batch, shard), None))
            .buffer_unordered(keys::BATCH_SHARDS as usize)
            .try_collect()
            .await?;
        let mut records = self.records(&shards.concat())?;
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    async fn read_skipped(&self, night: NaiveDate) -> Result<Vec<NightRecord>, StoreError> {
        let items = self.query_partition(keys::skipped_pk(night), None).await?;
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
        if keys::record_pk(from) == keys::record_pk(to) && from.id == to.id {
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
