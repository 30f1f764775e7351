//! One service's history across nights (`DynamoStore::service_history`, the `by_service`
//! index) against moto, run through `tools/with-moto`.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use restart_aws::dynamodb::DynamoStore;
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::NightStore;

fn id(service: &str) -> ServiceId {
    ServiceId {
        account: "111111111111".parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: "app".into(),
        service: service.into(),
    }
}

fn record(service: &str, night: NaiveDate, batch: Option<u32>) -> NightRecord {
    let sid = id(service);
    let start: DateTime<Utc> = night.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut r = NightRecord::unbatched(sid.clone(), sid.arn("aws"), night, "payments".into());
    match batch {
        Some(b) => {
            r.batch = Some(b);
            r.state = NightState::Planned;
            r.planned_start = Some(start + TimeDelta::minutes(10 * i64::from(b)));
        }
        None => r.skip_reason = Some(SkipReason::OptedOut),
    }
    r
}

#[tokio::test]
async fn history_is_newest_first_limited_and_only_that_service() {
    let client = testkit::dynamodb_client();
    let table = testkit::create_table(&client).await;
    let store = DynamoStore::new(client, table, 90);
    let first: NaiveDate = "2026-11-10".parse().unwrap();
    let mut records = Vec::new();
    for d in 0..6u32 {
        let night = first + TimeDelta::days(i64::from(d));
        // The service is skipped on night 3, in batch d % 3 otherwise.
        let batch = (d != 3).then_some(d % 3);
        records.push(record("api", night, batch));
        records.push(record("web", night, Some(1)));
    }
    let created = store.create_records(&records).await.unwrap();
    assert_eq!(created.created, 12);

    let all = store.service_history(&id("api"), 30).await.unwrap();
    let nights: Vec<String> = all.iter().map(|r| r.night.to_string()).collect();
    assert_eq!(
        nights,
        [
            "2026-11-15",
            "2026-11-14",
            "2026-11-13",
            "2026-11-12",
            "2026-11-11",
            "2026-11-10"
        ]
    );
    assert!(all.iter().all(|r| r.id == id("api")));
    assert_eq!(all[2].state, NightState::Skipped);
    assert_eq!(all[2].skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(all[0].batch, Some(2));

    let last_two = store.service_history(&id("api"), 2).await.unwrap();
    assert_eq!(last_two, all[..2].to_vec());

    assert!(
        store
            .service_history(&id("unknown"), 5)
            .await
            .unwrap()
            .is_empty()
    );
}
