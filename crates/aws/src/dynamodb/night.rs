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
use restart_core::ids::{ServiceArn, ServiceId};
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

/// The service's ARN as the sort key gives it back: the long form in the `aws` partition.
fn arn_of(id: &ServiceId) -> ServiceArn {
    ServiceArn {
        partition: "aws".to_owned(),
        region: id.region.clone(),
        account: id.account.clone(),
        cluster: Some(id.cluster.clone()),
        service: id.service.clone(),
    }
}

/// The service a record's sort key names (`SVC#<account>#<region>#<cluster>#<service>`), when
/// it names one unambiguously.
fn id_of_key(sk: &str) -> Option<ServiceId> {
    let mut parts = sk.strip_prefix("SVC#")?.split('#');
    let (Some(account), Some(region), Some(cluster), Some(service), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(ServiceId {
        account: account.parse().ok()?,
        region: region.to_owned(),
        cluster: cluster.to_owned(),
        service: service.to_owned(),
    })
}

/// The item of a service's night record, expiring `ttl_days` after the night.
///
/// The service's names are in its sort key, and again in `gsi1pk`; the `account`, `region`,
/// `cluster`, `service` and `arn` attributes are written only when the sort key cannot give
/// them back (an ARN in another partition or of the old format). Each name written once less
/// keeps a record of realistic names (30-50 characters) under the 1 KB that every write of it
/// is billed by.
pub fn night_item(r: &NightRecord, ttl_days: u32) -> Item {
    let key = record_key(r);
    let derivable = key
        .get(schema::SK)
        .and_then(|sk| sk.as_s().ok())
        .and_then(|sk| id_of_key(sk))
        .is_some_and(|id| id == r.id && arn_of(&id) == r.arn);
    let mut item = if derivable {
        Item::new()
    } else {
        identity(&r.id, &r.arn)
    };
    item.extend(key);
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
    // Items written before the names were left to the sort key hold them as attributes.
    let (id, arn) = if item.contains_key("account") {
        (read_service_id(&r)?, r.parse("arn")?)
    } else {
        let id = id_of_key(r.s(schema::SK)?).ok_or_else(|| {
            r.err(
                schema::SK,
                "names no service (SVC#<account>#<region>#<cluster>#<service>)",
            )
        })?;
        let arn = match r.opt_parse("arn")? {
            Some(arn) => arn,
            None => arn_of(&id),
        };
        (id, arn)
    };
    Ok(NightRecord {
        id,
        arn,
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
        self.read_batch_with(night, batch, true).await
    }

    async fn read_batch_guarded(
        &self,
        night: NaiveDate,
        batch: u32,
    ) -> Result<Vec<NightRecord>, StoreError> {
        self.read_batch_with(night, batch, false).await
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

impl DynamoStore {
    /// A batch's records, from its partitions, in service order.
    async fn read_batch_with(
        &self,
        night: NaiveDate,
        batch: u32,
        consistent: bool,
    ) -> Result<Vec<NightRecord>, StoreError> {
        let shards: Vec<Vec<Item>> = stream::iter(0..keys::BATCH_SHARDS)
            .map(|shard| {
                self.query_partition_read(keys::batch_pk(night, batch, shard), None, consistent)
            })
            .buffer_unordered(keys::BATCH_SHARDS as usize)
            .try_collect()
            .await?;
        let mut records = self.records(&shards.concat())?;
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;

    /// DynamoDB's size of an item: each attribute's name and value in bytes (a number counted
    /// as its digits, a boolean as one byte), as write units are billed.
    fn billed_size(item: &Item) -> usize {
        item.iter()
            .map(|(name, v)| {
                name.len()
                    + match v {
                        AttributeValue::S(s) => s.len(),
                        AttributeValue::N(n) => n.len(),
                        AttributeValue::Bool(_) => 1,
                        other => panic!("unexpected attribute {other:?}"),
                    }
            })
            .sum()
    }

    fn record(cluster: &str, service: &str, arn: Option<&str>) -> NightRecord {
        let id = ServiceId {
            account: "123456789012".parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: cluster.into(),
            service: service.into(),
        };
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 1, 2, 3).unwrap();
        NightRecord {
            arn: match arn {
                Some(a) => a.parse().unwrap(),
                None => arn_of(&id),
            },
            night: "2026-12-07".parse().unwrap(),
            batch: Some(17),
            state: NightState::Completed,
            skip_reason: None,
            owner: "team-payments-settlement@example.com".into(),
            planned_start: Some(t),
            deployment_id: Some("ecs-svc/1234567890123456789".into()),
            started_at: Some(t),
            lease_at: Some(t),
            finished_at: Some(t),
            previous_deployment: Some("ecs-svc/9876543210987654321".into()),
            task_definition: Some(format!(
                "arn:aws:ecs:eu-west-1:123456789012:task-definition/{service}:42"
            )),
            duration_seconds: Some(412),
            detail: Some("the new deployment reached COMPLETED with 4 of 4 tasks running".into()),
            account_lost: false,
            id,
        }
    }

    #[test]
    fn a_completed_record_of_fifty_character_names_stays_under_one_kilobyte() {
        let name = |prefix: &str| format!("{prefix}-{}", "x".repeat(49 - prefix.len()));
        let (cluster, service) = (name("payments-prod-eu"), name("settlement-api"));
        assert_eq!((cluster.len(), service.len()), (50, 50));
        let r = record(&cluster, &service, None);
        let item = night_item(&r, 90);
        for attribute in ["account", "region", "cluster", "service", "arn"] {
            assert!(
                !item.contains_key(attribute),
                "{attribute} is in the sort key"
            );
        }
        let size = billed_size(&item);
        let mut with_names = item.clone();
        with_names.extend(identity(&r.id, &r.arn));
        // Written with its names as attributes, the same record passes 1 KB: two write units.
        assert!(
            size <= 1024 && billed_size(&with_names) > 1024,
            "{size} bytes, {} with its names",
            billed_size(&with_names)
        );
        assert_eq!(night_record(&item).unwrap(), r);
    }

    #[test]
    fn a_record_whose_arn_the_key_cannot_give_back_keeps_its_names() {
        for arn in [
            "arn:aws:ecs:eu-west-1:123456789012:service/web",
            "arn:aws-cn:ecs:eu-west-1:123456789012:service/prod/web",
        ] {
            let r = record("prod", "web", Some(arn));
            let item = night_item(&r, 90);
            assert!(
                item.contains_key("arn") && item.contains_key("cluster"),
                "{arn}"
            );
            assert_eq!(night_record(&item).unwrap(), r, "{arn}");
        }
    }

    #[test]
    fn a_record_written_with_its_names_as_attributes_still_reads() {
        let r = record("prod", "web", None);
        let mut item = night_item(&r, 90);
        item.extend(identity(&r.id, &r.arn));
        assert_eq!(night_record(&item).unwrap(), r);
    }

    proptest! {
        #[test]
        fn any_names_round_trip(
            cluster in "[A-Za-z0-9_-]{1,255}",
            service in "[A-Za-z0-9_-]{1,255}",
            old_format in any::<bool>(),
        ) {
            let arn = old_format
                .then(|| format!("arn:aws:ecs:eu-west-1:123456789012:service/{service}"));
            let r = record(&cluster, &service, arn.as_deref());
            prop_assert_eq!(night_record(&night_item(&r, 90)).unwrap(), r);
        }
    }
}
