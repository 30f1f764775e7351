//! The night side of the DynamoDB store against moto (run through `tools/with-moto`, as
//! `make test` does). Every test has its own table.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use restart_aws::dynamodb::{self, DynamoStore, keys, schema};
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::{NightRecord, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{NightStore, RestartStore};

const TTL_DAYS: u32 = 90;

fn day(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

fn night() -> NaiveDate {
    day("2026-11-22")
}

fn start(batch: u32) -> DateTime<Utc> {
    "2026-11-22T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        + TimeDelta::minutes(10 * i64::from(batch))
}

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let client = testkit::dynamodb_client();
    let table = testkit::create_table(&client).await;
    (
        DynamoStore::new(client.clone(), table.clone(), TTL_DAYS).with_page_size(7),
        client,
        table,
    )
}

fn id(i: usize) -> ServiceId {
    ServiceId {
        account: "111111111111".parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: format!("c{}", i % 4),
        service: format!("svc-{i:03}"),
    }
}

fn planned(i: usize, night: NaiveDate, batch: u32) -> NightRecord {
    let sid = id(i);
    NightRecord {
        arn: sid.arn("aws"),
        id: sid,
        night,
        batch: Some(batch),
        state: NightState::Planned,
        skip_reason: None,
        owner: format!("team-{}", i % 3),
        planned_start: Some(start(batch)),
        deployment_id: None,
        started_at: None,
        lease_at: None,
        finished_at: None,
        previous_deployment: None,
        task_definition: None,
        duration_seconds: None,
        detail: None,
        account_lost: false,
    }
}

fn skipped(i: usize, reason: SkipReason) -> NightRecord {
    NightRecord {
        batch: None,
        state: NightState::Skipped,
        skip_reason: Some(reason),
        planned_start: None,
        ..planned(i, night(), 0)
    }
}

fn sorted(mut v: Vec<NightRecord>) -> Vec<NightRecord> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

#[tokio::test]
async fn one_query_reads_one_batch_of_one_night() {
    let (store, _, _) = store().await;
    // 30 services in 3 batches tonight, the same services in other batches last night.
    let tonight: Vec<NightRecord> = (0..30)
        .map(|i| planned(i, night(), (i % 3) as u32))
        .collect();
    let last_night: Vec<NightRecord> = (0..30)
        .map(|i| planned(i, day("2026-11-21"), ((i + 1) % 3) as u32))
        .collect();
    let skips = vec![
        skipped(100, SkipReason::Untagged),
        skipped(101, SkipReason::DowntimeRisk),
    ];
    let mut all = tonight.clone();
    all.extend(last_night.iter().cloned());
    all.extend(skips.iter().cloned());
    let created = store.create_records(&all).await.unwrap();
    assert_eq!(created.created, 62);
    assert!(created.existing.is_empty());
    let batches: Vec<PlannedBatch> = (0..3)
        .map(|b| PlannedBatch {
            batch: b,
            start_at: start(b),
            size: 10,
        })
        .collect();
    store.put_batches(night(), &batches).await.unwrap();

    let batch1 = store.read_batch(night(), 1).await.unwrap();
    let expected: Vec<NightRecord> = tonight
        .iter()
        .filter(|r| r.batch == Some(1))
        .cloned()
        .collect();
    assert_eq!(
        batch1,
        sorted(expected),
        "round trip, in key order, that batch and night only"
    );
    assert_eq!(store.read_batches(night()).await.unwrap(), batches);
    assert!(
        store
            .read_batches(day("2026-11-20"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sorted(store.read_skipped(night()).await.unwrap()), skips);
    let assignment = store.read_assignment(night()).await.unwrap();
    assert_eq!(assignment.len(), 30);
    assert_eq!(assignment[&id(4)], 1);
    let mut whole = tonight.clone();
    whole.extend(skips);
    assert_eq!(store.read_night(night()).await.unwrap(), sorted(whole));
}

#[tokio::test]
async fn a_conditional_create_never_overwrites_a_record() {
    let (store, client, table) = store().await;
    let first = planned(1, night(), 2);
    assert_eq!(
        store
            .create_records(std::slice::from_ref(&first))
            .await
            .unwrap()
            .created,
        1
    );
    // The restarter starts it (written here directly, as the restarter's record).
    let started = NightRecord {
        state: NightState::Started,
        deployment_id: Some("ecs-svc/123".into()),
        started_at: Some("2026-11-22T00:20:01.250Z".parse().unwrap()),
        ..first.clone()
    };
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(dynamodb::night::night_item(&started, TTL_DAYS)))
        .send()
        .await
        .unwrap();

    let again = store
        .create_records(&[first.clone(), planned(2, night(), 2)])
        .await
        .unwrap();
    assert_eq!(again.created, 1);
    assert_eq!(again.existing, [id(1)]);
    let batch = store.read_batch(night(), 2).await.unwrap();
    let one = batch.iter().find(|r| r.id == id(1)).unwrap();
    assert_eq!(one, &started, "the started record is untouched");

    // A started record does not move; a planned one does, atomically.
    assert!(
        !store
            .move_record(&first, &first.moved_to(0, start(0)))
            .await
            .unwrap()
    );
    assert!(store.read_batch(night(), 0).await.unwrap().is_empty());
    let two = planned(2, night(), 2);
    assert!(
        store
            .move_record(&two, &two.now_skipped(SkipReason::NotFound))
            .await
            .unwrap()
    );
    let batch = store.read_batch(night(), 2).await.unwrap();
    assert_eq!(batch.len(), 1, "moved out of batch 2");
    assert_eq!(
        store.read_skipped(night()).await.unwrap(),
        [two.now_skipped(SkipReason::NotFound)]
    );
    // Moving it again finds no planned record: nothing changes.
    assert!(
        !store
            .move_record(&two, &two.moved_to(1, start(1)))
            .await
            .unwrap()
    );
    assert!(store.read_batch(night(), 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn night_items_expire_and_carry_the_service_index() {
    let (store, client, table) = store().await;
    let r = planned(7, night(), 3);
    store
        .create_records(std::slice::from_ref(&r))
        .await
        .unwrap();
    let batch = PlannedBatch {
        batch: 3,
        start_at: start(3),
        size: 1,
    };
    store.put_batches(night(), &[batch]).await.unwrap();
    let summary = PlanSummary {
        night: night(),
        batches: 4,
        planned: 1,
        skipped: 0,
        written_at: "2026-11-21T23:31:00Z".parse().unwrap(),
    };
    assert_eq!(store.plan_summary(night()).await.unwrap(), None);
    store.put_plan_summary(&summary).await.unwrap();
    assert_eq!(store.plan_summary(night()).await.unwrap(), Some(summary));

    let expires = AttributeValue::N(dynamodb::codec::expires_at(night(), TTL_DAYS).to_string());
    let get = |pk: String, sk: String| {
        let client = client.clone();
        let table = table.clone();
        async move {
            client
                .get_item()
                .table_name(table)
                .key(schema::PK, AttributeValue::S(pk))
                .key(schema::SK, AttributeValue::S(sk))
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        }
    };
    let svc = "SVC#111111111111#eu-west-1#c3#svc-007".to_owned();
    let record_pk = keys::record_pk(&r);
    assert!(
        record_pk.starts_with("NIGHT#2026-11-22#BATCH#003#"),
        "{record_pk}"
    );
    let record = get(record_pk.clone(), svc.clone()).await;
    assert_eq!(record.get(schema::TTL_ATTRIBUTE), Some(&expires));
    assert_eq!(
        record.get(schema::GSI1PK),
        Some(&AttributeValue::S(svc.clone()))
    );
    assert_eq!(
        record.get(schema::GSI1SK),
        Some(&AttributeValue::S("NIGHT#2026-11-22".into()))
    );
    assert_eq!(
        record.get("state"),
        Some(&AttributeValue::S("planned".into()))
    );
    let batch_item = get("NIGHT#2026-11-22".into(), keys::batch_sk(3)).await;
    assert_eq!(batch_item.get(schema::TTL_ATTRIBUTE), Some(&expires));
    assert_eq!(
        batch_item.get("start_at"),
        Some(&AttributeValue::S("2026-11-22T00:30:00Z".into()))
    );
    let plan = get("NIGHT#2026-11-22".into(), keys::PLAN_SK.into()).await;
    assert_eq!(plan.get(schema::TTL_ATTRIBUTE), Some(&expires));

    // One service's history is one Query on the index, which keeps the record's keys only
    // (KEYS_ONLY: a move of the record never writes the index).
    let history = client
        .query()
        .table_name(&table)
        .index_name(schema::GSI_BY_SERVICE)
        .key_condition_expression("gsi1pk = :svc")
        .expression_attribute_values(":svc", AttributeValue::S(svc.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(history.count, 1);
    let found = &history.items()[0];
    assert_eq!(found.get(schema::PK), Some(&AttributeValue::S(record_pk)));
    assert_eq!(found.get(schema::SK), Some(&AttributeValue::S(svc)));
    assert_eq!(found.get("state"), None);
    assert_eq!(
        store.find_record(night(), &r.id).await.unwrap(),
        Some(r.clone())
    );

    // Deleted batch items are gone.
    store.delete_batches(night(), &[3]).await.unwrap();
    assert!(store.read_batches(night()).await.unwrap().is_empty());
}

#[test]
fn a_batch_spreads_its_records_over_every_partition() {
    let shards: std::collections::BTreeSet<u32> =
        (0..200).map(|i| keys::batch_shard(&id(i))).collect();
    assert_eq!(shards.len(), keys::BATCH_SHARDS as usize);
}

#[test]
fn night_items_round_trip_with_their_key_formats() {
    assert_eq!(
        keys::batch_pk(night(), 7, 3),
        "NIGHT#2026-11-22#BATCH#007#3"
    );
    assert_eq!(keys::skipped_pk(night()), "NIGHT#2026-11-22#SKIPPED");
    assert_eq!(keys::batch_sk(12), "BATCH#012");
    assert_eq!(
        keys::service_key(&id(5)),
        "SVC#111111111111#eu-west-1#c1#svc-005"
    );
    let full = NightRecord {
        state: NightState::Completed,
        deployment_id: Some("ecs-svc/9".into()),
        started_at: Some("2026-11-22T00:10:02.5Z".parse().unwrap()),
        lease_at: Some("2026-11-22T00:15:32.5Z".parse().unwrap()),
        finished_at: Some("2026-11-22T00:17:40Z".parse().unwrap()),
        ..planned(5, night(), 1)
    };
    let item = dynamodb::night::night_item(&full, TTL_DAYS);
    assert!(!item.contains_key("account_lost"), "{item:?}");
    let lost = NightRecord {
        state: NightState::TimedOut,
        account_lost: true,
        ..full.clone()
    };
    let lost_item = dynamodb::night::night_item(&lost, TTL_DAYS);
    assert_eq!(lost_item["account_lost"], AttributeValue::Bool(true));
    assert_eq!(dynamodb::night::night_record(&lost_item).unwrap(), lost);
    assert_eq!(
        item.get(schema::PK),
        Some(&AttributeValue::S(format!(
            "NIGHT#2026-11-22#BATCH#001#{}",
            keys::batch_shard(&full.id)
        )))
    );
    assert_eq!(dynamodb::night::night_record(&item).unwrap(), full);
    let skip = skipped(6, SkipReason::DeploymentBlocked);
    let item = dynamodb::night::night_item(&skip, TTL_DAYS);
    assert_eq!(
        item.get(schema::PK),
        Some(&AttributeValue::S("NIGHT#2026-11-22#SKIPPED".into()))
    );
    assert!(!item.contains_key("batch") && !item.contains_key("planned_start"));
    assert_eq!(
        item.get("skip_reason"),
        Some(&AttributeValue::S("deployment_blocked".into()))
    );
    assert_eq!(dynamodb::night::night_record(&item).unwrap(), skip);
    let b = PlannedBatch {
        batch: 4,
        start_at: start(4),
        size: 17,
    };
    assert_eq!(
        dynamodb::night::planned_batch(&dynamodb::night::batch_item(night(), &b, TTL_DAYS))
            .unwrap(),
        b
    );
    // An unknown state is named by its attribute.
    let mut wrong = dynamodb::night::night_item(&full, TTL_DAYS);
    wrong.insert("state".into(), AttributeValue::S("sleeping".into()));
    assert_eq!(
        dynamodb::night::night_record(&wrong).unwrap_err().field,
        "state"
    );
}
