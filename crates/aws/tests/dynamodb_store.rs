//! The DynamoDB store against moto (run through `tools/with-moto`, as `make test` does).
//! Every test has its own table.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDate, TimeZone, Utc};
use restart_aws::dynamodb::{DynamoStore, keys};
use restart_core::catalog::InventoryRun;
use restart_core::catalog::{CatalogRecord, InventoryCounts, Target, Unreachable};
use restart_core::eligibility::SkipReason;
use restart_core::ids::{AccountId, ServiceId};
use restart_core::owner::OwnerSource;
use restart_core::ports::{CatalogStore, StoreError};
use restart_core::service::{DeploymentController, SchedulingStrategy, ServiceStatus};
use restart_core::tag::TagStateKind;
use serde_json::Value;

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

fn day(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

fn account(a: &str) -> AccountId {
    a.parse().unwrap()
}

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    let client = testkit::dynamodb_client();
    let table = testkit::create_table(&client).await;
    (DynamoStore::new(client.clone(), table, 90), client)
}

/// Record `i` of an account: a mix of tag states, optional fields set and unset.
fn record(account_id: &str, i: usize) -> CatalogRecord {
    let id = ServiceId {
        account: account(account_id),
        region: if i.is_multiple_of(2) {
            "eu-west-1"
        } else {
            "us-east-1"
        }
        .into(),
        cluster: format!("cluster-{:02}", i % 17),
        service: format!("svc-{i:04}"),
    };
    let untagged = i.is_multiple_of(5);
    CatalogRecord {
        arn: id.arn("aws"),
        id,
        owner: if untagged {
            "unowned".into()
        } else {
            format!("team-{}", i % 7)
        },
        owner_source: if untagged {
            OwnerSource::Unowned
        } else {
            OwnerSource::ClusterTag
        },
        tag_value: (!untagged).then(|| "2026-11-21T01:10:00Z".into()),
        tag_state: if untagged {
            TagStateKind::Untagged
        } else {
            TagStateKind::Enrolled
        },
        status: ServiceStatus::Active,
        desired: u32::try_from(i % 9).unwrap(),
        scheduling: if i.is_multiple_of(11) {
            SchedulingStrategy::Daemon
        } else {
            SchedulingStrategy::Replica
        },
        controller: DeploymentController::Ecs,
        min_healthy_percent: 100,
        max_percent: 200,
        skip_reason: untagged.then_some(SkipReason::Untagged),
        first_seen: day("2026-10-01"),
        last_seen: day("2026-11-21"),
        gone_since: None,
    }
}

/// 1,000 records: 400, 350 and 250 in the three accounts.
fn fleet() -> Vec<CatalogRecord> {
    let mut records = vec![];
    for (a, n) in ACCOUNTS.iter().zip([400, 350, 250]) {
        records.extend((0..n).map(|i| record(a, i)));
    }
    records
}

fn sorted(mut records: Vec<CatalogRecord>) -> Vec<CatalogRecord> {
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

#[tokio::test]
async fn a_thousand_records_in_three_accounts_read_back_equal() {
    let (store, _) = store().await;
    // Small pages so that reading an account takes several Query pages.
    let store = store.with_page_size(60);
    let records = fleet();
    assert_eq!(records.len(), 1000);
    store.put_catalog(&records).await.unwrap();

    let accounts: Vec<AccountId> = ACCOUNTS.iter().map(|a| account(a)).collect();
    let read = store.read_catalog(&accounts).await.unwrap();
    assert_eq!(read.len(), 1000);
    // In the planner's order.
    assert_eq!(read, sorted(records));
}

#[tokio::test]
async fn reading_some_accounts_returns_only_theirs() {
    let (store, _) = store().await;
    let records = fleet();
    store.put_catalog(&records).await.unwrap();

    let read = store
        .read_catalog(&[account(ACCOUNTS[2]), account(ACCOUNTS[0])])
        .await
        .unwrap();
    let expected: Vec<CatalogRecord> = records
        .iter()
        .filter(|r| r.id.account.as_str() != ACCOUNTS[1])
        .cloned()
        .collect();
    assert_eq!(read, sorted(expected));

    // An account named twice is read once; an account with no services has none.
    let read = store
        .read_catalog(&[account(ACCOUNTS[1]), account(ACCOUNTS[1])])
        .await
        .unwrap();
    assert_eq!(read.len(), 350);
    assert!(
        store
            .read_catalog(&[account("444444444444")])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.read_catalog(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rerun_replaces_records_without_duplicating_them() {
    let (store, _) = store().await;
    let first: Vec<CatalogRecord> = (0..60).map(|i| record(ACCOUNTS[0], i)).collect();
    store.put_catalog(&first).await.unwrap();

    let second: Vec<CatalogRecord> = first
        .iter()
        .map(|r| CatalogRecord {
            last_seen: day("2026-11-22"),
            owner: "platform".into(),
            tag_value: None,
            tag_state: TagStateKind::Untagged,
            ..r.clone()
        })
        .collect();
    store.put_catalog(&second).await.unwrap();
    // The same rerun again, with one service listed twice (the last one wins).
    let mut again = second.clone();
    let mut changed = second[7].clone();
    changed.desired = 42;
    again.push(changed.clone());
    store.put_catalog(&again).await.unwrap();

    let read = store.read_catalog(&[account(ACCOUNTS[0])]).await.unwrap();
    assert_eq!(read.len(), 60);
    let mut expected = second;
    expected[7] = changed;
    assert_eq!(read, sorted(expected));
    let ids: BTreeSet<&ServiceId> = read.iter().map(|r| &r.id).collect();
    assert_eq!(ids.len(), 60);
}

#[tokio::test]
async fn gone_marking_round_trips() {
    let (store, _) = store().await;
    let records: Vec<CatalogRecord> = (0..3).map(|i| record(ACCOUNTS[1], i)).collect();
    store.put_catalog(&records).await.unwrap();

    let gone = CatalogRecord {
        gone_since: Some(day("2026-11-22")),
        ..records[1].clone()
    };
    store
        .put_catalog(std::slice::from_ref(&gone))
        .await
        .unwrap();

    let read = store.read_catalog(&[account(ACCOUNTS[1])]).await.unwrap();
    let expected = sorted(vec![records[0].clone(), gone, records[2].clone()]);
    assert_eq!(read, expected);
    assert_eq!(
        read.iter().filter(|r| r.gone_since.is_some()).count(),
        1,
        "gone records stay, marked"
    );
}

fn inventory_run(night: &str) -> InventoryRun {
    InventoryRun {
        night: day(night),
        started_at: Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 3).unwrap(),
        finished_at: Utc.with_ymd_and_hms(2026, 11, 22, 0, 2, 10).unwrap(),
        reached: vec![
            Target {
                account: account(ACCOUNTS[0]),
                region: "eu-west-1".into(),
            },
            Target {
                account: account(ACCOUNTS[1]),
                region: "eu-west-1".into(),
            },
        ],
        unreachable: vec![Unreachable {
            account: account(ACCOUNTS[2]),
            region: "eu-west-1".into(),
            error: "access denied: AssumeRole".into(),
        }],
        counts: InventoryCounts {
            services: 750,
            by_tag_state: [(TagStateKind::Enrolled, 600), (TagStateKind::Untagged, 150)].into(),
            by_skip_reason: [(SkipReason::Untagged, 150)].into(),
            eligible: 600,
            gone: 2,
            written: 750,
        },
    }
}

#[tokio::test]
async fn inventory_runs_are_stored_per_night_and_replaced_by_a_rerun() {
    let (store, client) = store().await;
    let run = inventory_run("2026-11-22");
    store.put_inventory_run(&run).await.unwrap();
    assert_eq!(
        store.get_inventory_run(day("2026-11-22")).await.unwrap(),
        Some(run.clone())
    );
    assert_eq!(
        store.get_inventory_run(day("2026-11-21")).await.unwrap(),
        None
    );

    let rerun = InventoryRun {
        unreachable: vec![],
        ..run
    };
    store.put_inventory_run(&rerun).await.unwrap();
    assert_eq!(
        store.get_inventory_run(day("2026-11-22")).await.unwrap(),
        Some(rerun)
    );

    // It expires 90 days after the night.
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("NIGHT#2026-11-22".into()))
        .key("sk", AttributeValue::S("INVENTORY".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item.get("expires_at"),
        Some(&AttributeValue::N("1803081600".into()))
    );
}

#[tokio::test]
async fn a_missing_table_is_misconfigured_and_named() {
    let client = testkit::dynamodb_client();
    let table = testkit::unique_name("missing");
    let store = DynamoStore::new(client, table.clone(), 90);
    let errors = [
        store
            .read_catalog(&[account(ACCOUNTS[0])])
            .await
            .unwrap_err(),
        store
            .put_catalog(&[record(ACCOUNTS[0], 1)])
            .await
            .unwrap_err(),
        store
            .put_inventory_run(&inventory_run("2026-11-22"))
            .await
            .unwrap_err(),
        store
            .get_inventory_run(day("2026-11-22"))
            .await
            .unwrap_err(),
    ];
    for err in errors {
        let StoreError::Misconfigured(message) = &err else {
            panic!("expected Misconfigured, got {err}")
        };
        assert!(message.contains(&table), "{message}");
        assert!(message.contains("ResourceNotFoundException"), "{message}");
    }
}

#[tokio::test]
async fn an_unreadable_item_is_corrupt_naming_it() {
    let (store, client) = store().await;
    let r = record(ACCOUNTS[0], 3);
    store.put_catalog(std::slice::from_ref(&r)).await.unwrap();
    client
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(keys::catalog_pk(&r.id.account)))
        .key("sk", AttributeValue::S(keys::catalog_sk(&r.id)))
        .update_expression("SET desired = :d")
        .expression_attribute_values(":d", AttributeValue::S("three".into()))
        .send()
        .await
        .unwrap();
    let err = store
        .read_catalog(std::slice::from_ref(&r.id.account))
        .await
        .unwrap_err();
    let StoreError::Corrupt(message) = &err else {
        panic!("expected Corrupt, got {err}")
    };
    for part in [
        store.table(),
        "CATALOG#111111111111",
        "SVC#us-east-1#cluster-03#svc-0003",
        "`desired`",
    ] {
        assert!(message.contains(part), "{message} should name {part}");
    }
}

/// An item written before restart durations left the catalog (`last_restart_seconds`) still
/// reads, the attribute ignored.
#[tokio::test]
async fn a_catalog_item_with_a_restart_duration_still_reads() {
    let (store, client) = store().await;
    let r = record(ACCOUNTS[0], 4);
    store.put_catalog(std::slice::from_ref(&r)).await.unwrap();
    client
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(keys::catalog_pk(&r.id.account)))
        .key("sk", AttributeValue::S(keys::catalog_sk(&r.id)))
        .update_expression("SET last_restart_seconds = :s")
        .expression_attribute_values(":s", AttributeValue::N("312".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store
            .read_catalog(std::slice::from_ref(&r.id.account))
            .await
            .unwrap(),
        vec![r]
    );
}

#[tokio::test]
async fn items_are_readable_with_the_aws_cli() {
    let (store, _) = store().await;
    let tagged = record(ACCOUNTS[0], 3);
    let untagged = CatalogRecord {
        gone_since: Some(day("2026-11-22")),
        ..record(ACCOUNTS[0], 5)
    };
    store
        .put_catalog(&[tagged.clone(), untagged.clone()])
        .await
        .unwrap();
    store
        .put_inventory_run(&inventory_run("2026-11-22"))
        .await
        .unwrap();

    let get_item = |pk: &str, sk: &str| -> serde_json::Map<String, Value> {
        let key = serde_json::json!({"pk": {"S": pk}, "sk": {"S": sk}}).to_string();
        let out = testkit::run_aws_cli([
            "dynamodb",
            "get-item",
            "--table-name",
            store.table(),
            "--key",
            &key,
        ]);
        let json: Value = serde_json::from_str(&out).unwrap();
        json["Item"]
            .as_object()
            .cloned()
            .unwrap_or_else(|| panic!("no Item in {out}"))
    };

    let item = get_item("CATALOG#111111111111", "SVC#us-east-1#cluster-03#svc-0003");
    let attr = |k: &str| item.get(k).cloned().unwrap_or(Value::Null);
    assert_eq!(attr("kind"), serde_json::json!({"S": "catalog"}));
    assert_eq!(attr("account"), serde_json::json!({"S": "111111111111"}));
    assert_eq!(attr("region"), serde_json::json!({"S": "us-east-1"}));
    assert_eq!(attr("cluster"), serde_json::json!({"S": "cluster-03"}));
    assert_eq!(attr("service"), serde_json::json!({"S": "svc-0003"}));
    assert_eq!(
        attr("arn"),
        serde_json::json!({"S": "arn:aws:ecs:us-east-1:111111111111:service/cluster-03/svc-0003"})
    );
    assert_eq!(attr("owner"), serde_json::json!({"S": "team-3"}));
    assert_eq!(
        attr("owner_source"),
        serde_json::json!({"S": "cluster_tag"})
    );
    assert_eq!(attr("tag_state"), serde_json::json!({"S": "enrolled"}));
    assert_eq!(
        attr("tag_value"),
        serde_json::json!({"S": "2026-11-21T01:10:00Z"})
    );
    assert_eq!(attr("desired"), serde_json::json!({"N": "3"}));
    assert_eq!(attr("scheduling"), serde_json::json!({"S": "REPLICA"}));
    assert_eq!(attr("last_seen"), serde_json::json!({"S": "2026-11-21"}));
    for absent in ["gone_since", "skip_reason", "expires_at"] {
        assert!(!item.contains_key(absent), "{absent} in {item:?}");
    }

    let item = get_item("CATALOG#111111111111", "SVC#us-east-1#cluster-05#svc-0005");
    assert_eq!(item["tag_state"], serde_json::json!({"S": "untagged"}));
    assert_eq!(item["skip_reason"], serde_json::json!({"S": "untagged"}));
    assert_eq!(item["gone_since"], serde_json::json!({"S": "2026-11-22"}));
    assert!(!item.contains_key("tag_value"));

    store
        .mark_listed(
            &[Target {
                account: account(ACCOUNTS[0]),
                region: "us-east-1".into(),
            }],
            day("2026-11-22"),
        )
        .await
        .unwrap();
    let item = get_item("CATALOG#111111111111", "LISTED#us-east-1");
    assert_eq!(item["kind"], serde_json::json!({"S": "listed"}));
    assert_eq!(item["account"], serde_json::json!({"S": "111111111111"}));
    assert_eq!(item["region"], serde_json::json!({"S": "us-east-1"}));
    assert_eq!(item["night"], serde_json::json!({"S": "2026-11-22"}));
    assert!(
        !item.contains_key("expires_at"),
        "a listing does not expire"
    );

    let item = get_item("NIGHT#2026-11-22", "INVENTORY");
    assert_eq!(item["kind"], serde_json::json!({"S": "inventory"}));
    assert_eq!(item["expires_at"], serde_json::json!({"N": "1803081600"}));
    assert_eq!(
        item["counts"]["M"]["services"],
        serde_json::json!({"N": "750"})
    );
    assert_eq!(
        item["unreachable"]["L"][0]["M"]["account"],
        serde_json::json!({"S": "333333333333"})
    );
}

#[tokio::test]
async fn the_night_lock_is_held_by_one_execution_until_it_lapses() {
    use restart_core::night::NightLock;
    let (store, client) = store().await;
    let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap();
    let lock = |holder: &str, now| NightLock {
        night: day("2026-11-22"),
        holder: holder.into(),
        at: now,
        until: at(6, 30),
    };

    let first = lock("exec-first", at(0, 0));
    assert_eq!(store.lock_night(&first).await.unwrap(), first);
    // Another execution gets the holder back, unchanged; the holder may take it again.
    assert_eq!(
        store
            .lock_night(&lock("exec-second", at(0, 5)))
            .await
            .unwrap(),
        first
    );
    let again = lock("exec-first", at(0, 10));
    assert_eq!(store.lock_night(&again).await.unwrap(), again);
    // Lapsed: the next execution takes it.
    let late = lock("exec-second", at(6, 31));
    assert_eq!(store.lock_night(&late).await.unwrap(), late);

    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("NIGHT#2026-11-22".into()))
        .key("sk", AttributeValue::S(keys::LOCK_SK.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["holder"], AttributeValue::S("exec-second".into()));
    assert_eq!(item["kind"], AttributeValue::S("lock".into()));
    assert!(item.contains_key("expires_at"), "per-night items expire");
}
