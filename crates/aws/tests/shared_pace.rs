//! The UpdateService slots shared through the table ([`SharedPace`] on [`DynamoStore`])
//! against moto (run through `tools/with-moto`). Every test has its own table.
//!
//! moto applies concurrent conditional writes to one item without isolation: each request
//! thread reads the item, checks the condition, then writes, so two takes at once can both
//! see room for one (seen here: three slots granted of two). DynamoDB applies the writes to
//! an item one at a time. Tests of concurrent takes therefore send them through [`Isolated`],
//! whose lock stands in for that; each take is still one UpdateItem of the real adapter.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use restart_aws::dynamodb::pace::PACE_TTL_SECONDS;
use restart_aws::dynamodb::{DynamoStore, keys};
use restart_core::catalog::Target;
use restart_core::clock::SystemClock;
use restart_core::pacing::{SharedPacer, SharedWait};
use restart_core::ports::{SharedPace, StoreError};
use tokio::sync::Mutex;

const SECOND: i64 = 1_795_305_600;

fn target(account: &str, region: &str) -> Target {
    Target {
        account: account.parse().unwrap(),
        region: region.into(),
    }
}

/// One take at a time on the table, as DynamoDB isolates writes to one item.
#[derive(Debug, Clone)]
struct Isolated {
    store: DynamoStore,
    lock: Arc<Mutex<()>>,
}

impl Isolated {
    fn new(store: DynamoStore) -> Self {
        Self {
            store,
            lock: Arc::new(Mutex::new(())),
        }
    }
}

impl SharedPace for Isolated {
    async fn take(&self, target: &Target, second: i64, limit: u32) -> Result<bool, StoreError> {
        let _one_at_a_time = self.lock.lock().await;
        self.store.take(target, second, limit).await
    }
}

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    let client = testkit::dynamodb_client();
    let table = testkit::create_table(&client).await;
    (DynamoStore::new(client.clone(), table, 90), client)
}

#[tokio::test]
async fn a_second_holds_at_most_the_limit_and_is_stored_readably() {
    let (store, client) = store().await;
    let t = target("111111111111", "eu-west-1");
    for _ in 0..4 {
        assert!(store.take(&t, SECOND, 4).await.unwrap());
    }
    assert!(!store.take(&t, SECOND, 4).await.unwrap());
    assert!(!store.take(&t, SECOND, 4).await.unwrap());
    assert!(store.take(&t, SECOND + 1, 4).await.unwrap());

    let item = client
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            AttributeValue::S("PACE#111111111111#eu-west-1".into()),
        )
        .key("sk", AttributeValue::S(SECOND.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["pk"], AttributeValue::S(keys::pace_pk(&t)));
    assert_eq!(item["kind"], AttributeValue::S("pace".into()));
    assert_eq!(
        item["n"],
        AttributeValue::N("4".into()),
        "refused takes add nothing"
    );
    assert_eq!(
        item["expires_at"],
        AttributeValue::N((SECOND + PACE_TTL_SECONDS).to_string())
    );
}

#[tokio::test]
async fn accounts_and_regions_do_not_share_seconds() {
    let (store, _) = store().await;
    let a = target("111111111111", "eu-west-1");
    assert!(store.take(&a, SECOND, 1).await.unwrap());
    assert!(!store.take(&a, SECOND, 1).await.unwrap());
    assert!(
        store
            .take(&target("222222222222", "eu-west-1"), SECOND, 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .take(&target("111111111111", "us-east-1"), SECOND, 1)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn concurrent_takes_never_exceed_the_limit() {
    let (store, _) = store().await;
    let store = Isolated::new(store);
    let t = target("111111111111", "eu-west-1");
    // 48 takes at once over three seconds, as 16 containers would ask.
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let (store, t) = (store.clone(), t.clone());
            tokio::spawn(async move {
                let second = SECOND + i % 3;
                (second, store.take(&t, second, 4).await.unwrap())
            })
        })
        .collect();
    let mut taken: BTreeMap<i64, u32> = BTreeMap::new();
    for task in tasks {
        let (second, ok) = task.await.unwrap();
        *taken.entry(second).or_default() += u32::from(ok);
    }
    assert_eq!(
        taken,
        BTreeMap::from([(SECOND, 4), (SECOND + 1, 4), (SECOND + 2, 4)])
    );
}

#[tokio::test]
async fn a_missing_table_is_an_error_and_the_pacer_lets_the_call_go() {
    let store = DynamoStore::new(testkit::dynamodb_client(), "no-such-table", 90);
    let t = target("111111111111", "eu-west-1");
    let err = store.take(&t, SECOND, 4).await.unwrap_err();
    assert!(matches!(err, StoreError::Misconfigured(_)), "{err:?}");
    let pacer = SharedPacer::new(Arc::new(store), Arc::new(SystemClock), 4.0);
    assert_eq!(pacer.wait(&t).await, SharedWait::Unavailable);
}

#[tokio::test]
async fn pacers_on_one_table_share_the_wall_clock_seconds() {
    let (store, _) = store().await;
    let store = Isolated::new(store);
    let t = target("111111111111", "eu-west-1");
    // Three containers, each with its own pacer, on one table.
    let pacers: Vec<_> = (0..3)
        .map(|_| SharedPacer::new(Arc::new(store.clone()), Arc::new(SystemClock), 2.0))
        .collect();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (pacer, t) = (pacers[i % 3].clone(), t.clone());
            tokio::spawn(async move { pacer.wait(&t).await })
        })
        .collect();
    let mut per_second: BTreeMap<i64, u32> = BTreeMap::new();
    for task in tasks {
        match task.await.unwrap() {
            SharedWait::Slot(second) => *per_second.entry(second).or_default() += 1,
            SharedWait::Unavailable => panic!("the table is there"),
        }
    }
    assert_eq!(per_second.values().sum::<u32>(), 6);
    assert!(
        per_second.values().all(|&n| n <= 2),
        "at most 2 a second: {per_second:?}"
    );
    let seconds: Vec<i64> = per_second.keys().copied().collect();
    assert!(
        seconds.len() >= 3 && seconds.windows(2).all(|w| w[1] > w[0]),
        "{seconds:?}"
    );
}
