//! The catalog of every service found, each account and region's last complete listing, and a
//! night's inventory run and lock (the [`CatalogStore`] port). What these items hold is
//! described in the [module documentation](super); their keys are in [`keys`].

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::NaiveDate;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

use super::codec::{
    Item, ItemError, Reader, date, expires_at, identity, insert_present, n, name, read_service_id,
    s, time, to_attribute, to_json,
};
use super::errors::{conditional_write, store_error};
use super::keys::{self, kind, schema};
use super::{BATCH_SIZE, DynamoStore, READ_CONCURRENCY, WRITE_CONCURRENCY};
use restart_core::catalog::{CatalogRecord, InventoryRun, Listed, Target};
use restart_core::ids::{AccountId, ServiceId};
use restart_core::night::NightLock;
use restart_core::ports::{CatalogStore, StoreError};

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
    })
}

/// The item saying that `target` was last listed completely on `night`.
pub fn listed_item(target: &Target, night: NaiveDate) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::catalog_pk(&target.account))),
        (schema::SK.to_owned(), s(keys::listed_sk(&target.region))),
        (schema::KIND.to_owned(), s(kind::LISTED)),
        ("account".to_owned(), s(target.account.as_str())),
        ("region".to_owned(), s(&target.region)),
        ("night".to_owned(), date(night)),
    ])
}

/// The listing of an item, or what is wrong with it.
pub fn listed(item: &Item) -> Result<Listed, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::LISTED)?;
    Ok(Listed {
        target: Target {
            account: r.parse("account")?,
            region: r.s("region")?.to_owned(),
        },
        night: r.parse("night")?,
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

impl DynamoStore {
    /// One account's catalog: one paginated Query on its partition, which holds its records
    /// and its regions' listings; each record's `last_seen` is derived from its region's.
    async fn read_account(&self, account: &AccountId) -> Result<Vec<CatalogRecord>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(keys::catalog_pk(account)))
            .set_limit(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(&self.table, "Query", &e))?;
        let is_listing = |item: &Item| {
            item.get(schema::SK)
                .and_then(|sk| sk.as_s().ok())
                .is_some_and(|sk| sk.starts_with(keys::LISTED_SK_PREFIX))
        };
        let mut nights: HashMap<String, NaiveDate> = HashMap::new();
        for item in items.iter().filter(|i| is_listing(i)) {
            let l = listed(item).map_err(|e| self.corrupt(e))?;
            nights.insert(l.target.region, l.night);
        }
        items
            .iter()
            .filter(|i| !is_listing(i))
            .map(|item| {
                let r = catalog_record(item).map_err(|e| self.corrupt(e))?;
                let night = nights.get(&r.id.region).copied();
                Ok(Listed::seen(r, night))
            })
            .collect()
    }

    /// Records one target's listing, unless a later night's is already recorded.
    async fn put_listed(&self, target: &Target, night: NaiveDate) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(listed_item(target, night)))
            .condition_expression("attribute_not_exists(#pk) OR #night <= :night")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#night", "night")
            .expression_attribute_values(":night", date(night))
            .send()
            .await;
        // A condition that failed: a later night's listing stays.
        conditional_write(&self.table, "PutItem", put).map(drop)
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

    async fn mark_listed(&self, targets: &[Target], night: NaiveDate) -> Result<(), StoreError> {
        // Owned targets: a closure over borrowed ones trips the `Send` check (rust#110338).
        stream::iter(targets.to_vec())
            .map(|t| async move { self.put_listed(&t, night).await })
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
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
            owner_source: OwnerSource::Unowned,
            owner: "unowned".into(),
            ..record()
        };
        let item = catalog_item(&sparse);
        assert!(!item.contains_key("tag_value"));
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
    fn a_listing_round_trips_in_its_accounts_catalog_partition() {
        let target = Target {
            account: "111111111111".parse().unwrap(),
            region: "ap-southeast-2".into(),
        };
        let item = listed_item(&target, day("2026-12-07"));
        assert_eq!(get(&item, "pk"), &s("CATALOG#111111111111"));
        assert_eq!(get(&item, "sk"), &s("LISTED#ap-southeast-2"));
        assert_eq!(get(&item, "kind"), &s("listed"));
        assert_eq!(get(&item, "night"), &s("2026-12-07"));
        assert_eq!(
            listed(&item).unwrap(),
            Listed {
                target,
                night: day("2026-12-07")
            }
        );
        // A catalog record is not a listing, and the other way round.
        assert_eq!(listed(&catalog_item(&record())).unwrap_err().field, "kind");
        assert_eq!(catalog_record(&item).unwrap_err().field, "kind");
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
}
