//! The store ports' contract, run against both implementations: the DynamoDB store on moto
//! (the reference: what AWS does) and the in-memory fakes every handler test uses
//! (`testkit::fakes`), so that a handler test can never pass on behaviour the table refuses.
//!
//! Each contract is one generic async function over the port traits; [`contracts!`] runs it
//! once on a fresh `MemoryStore` (or `MemoryNotices`) in `mod memory` and once on a
//! `DynamoStore` over its own moto table in `mod dynamo`. Run through `tools/with-moto`, as
//! `make test` does.
//!
//! What is held here: catalog and inventory round trips, `gone_since`, the listings that say
//! which records were seen on a night without rewriting them (`last_seen` derived);
//! the night lock; the plan's batches and summary; conditional creation and moves of night
//! records and what each read sees; claims (once, per-cluster cap, forced again), recorded
//! deployments, outcomes, halts, held places and their release, the night's counters and halt;
//! the kill switch; the shared UpdateService slots; owners' notices and digest progress; the
//! account owners kept as configuration items (round trip, overwrite, delete, Unicode, and
//! 2,000 accounts read over many Query pages). The
//! property test at the end drives both stores through arbitrary interleavings of two
//! invocations' moves and compares what they answer.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use proptest::prelude::*;

use aws_sdk_dynamodb::types::AttributeValue;
use restart_aws::dynamodb::{DynamoStore, keys};
use restart_core::catalog::{CatalogRecord, InventoryCounts, InventoryRun, Target, Unreachable};
use restart_core::eligibility::SkipReason;
use restart_core::ids::AccountId;
use restart_core::ids::ServiceId;
use restart_core::night::{BatchCounts, Halt, NightLock, NightRecord, Pause, PlanSummary};
use restart_core::notice::{DigestSent, FindingKind, NoticeSent};
use restart_core::outcome::NightState;
use restart_core::owner::AccountOwner;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{
    CatalogStore, Claim, HeldRestart, NightStore, NoticeStore, RestartStore, SettingsStore,
    SharedPace,
};
use restart_core::tag::TagStateKind;
use testkit::fakes::MemoryStore;

/// Days per-night items are kept (DynamoStore's TTL; nothing here depends on it).
const TTL_DAYS: u32 = 90;

/// A DynamoDB store on a table of its own in moto.
async fn dynamo() -> DynamoStore {
    let client = testkit::dynamodb_client();
    let table = testkit::create_table(&client).await;
    DynamoStore::new(client, table, TTL_DAYS)
}

/// Items per Query page of the settings contracts' table: small, so that reading every
/// account's owner takes many pages.
const SETTINGS_PAGE: i32 = 150;

/// Generates, for every contract, `memory::<contract>` (on a fresh fake) and
/// `dynamo::<contract>` (on a fresh table). `stores` contracts take the table's ports
/// (`MemoryStore`), `notices` contracts the [`NoticeStore`] (`MemoryNotices`), `settings`
/// contracts the [`SettingsStore`] (`MemoryStore`; the table read [`SETTINGS_PAGE`] items a
/// page).
macro_rules! contracts {
    (
        stores: [$($store:ident),* $(,)?],
        notices: [$($notice:ident),* $(,)?],
        settings: [$($setting:ident),* $(,)?] $(,)?
    ) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $store() {
                    super::$store(&testkit::fakes::MemoryStore::default()).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $notice() {
                    super::$notice(&testkit::fakes::MemoryNotices::default()).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $setting() {
                    super::$setting(&testkit::fakes::MemoryStore::default()).await;
                }
            )*
        }
        mod dynamo {
            $(
                #[tokio::test]
                async fn $store() {
                    super::$store(&super::dynamo().await).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $notice() {
                    super::$notice(&super::dynamo().await).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $setting() {
                    let store = super::dynamo().await.with_page_size(super::SETTINGS_PAGE);
                    super::$setting(&store).await;
                }
            )*
        }
    };
}

contracts! {
    stores: [
        the_catalog_round_trips_per_account,
        a_catalog_rerun_replaces_records_and_marks_gone_ones,
        a_listing_says_which_records_were_seen_without_rewriting_them,
        a_service_gone_and_back_is_seen_again,
        inventory_runs_round_trip_per_night,
        the_night_lock_has_one_holder_until_it_lapses,
        only_the_holder_unlocks_the_night,
        batches_and_the_plan_summary_round_trip,
        creating_records_never_overwrites_one,
        reads_see_batches_skipped_records_and_the_night,
        a_record_moves_only_while_planned,
        the_kill_switch_is_set_read_and_cleared,
        the_first_halt_of_a_night_stays,
        batch_counts_keep_the_latest_per_batch,
        a_planned_record_is_claimed_once,
        claims_respect_the_cluster_cap,
        a_deployment_is_recorded_once_on_a_started_record,
        a_lapsed_claim_is_taken_over_once,
        a_claim_given_back_is_skipped_and_frees_its_place,
        a_restart_finishes_once_from_started_with_its_deployment,
        only_a_planned_record_is_halted,
        holds_keep_their_first_and_latest_time_per_night,
        a_held_place_is_kept_until_released_once,
        the_counters_count_every_move,
        restarts_lost_with_their_account_are_counted_apart,
        a_second_of_slots_holds_at_most_its_limit_per_target,
    ],
    notices: [
        notices_and_digest_progress_round_trip_per_owner,
    ],
    settings: [
        account_owners_round_trip_in_any_script,
        an_account_owner_is_overwritten_and_others_left_alone,
        an_account_owner_is_deleted_once,
        thousands_of_account_owners_are_read_back_whole,
    ],
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn day(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

fn night() -> NaiveDate {
    day("2026-11-22")
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

const A: &str = "111111111111";
const B: &str = "222222222222";

fn sid(account: &str, region: &str, cluster: &str, service: &str) -> ServiceId {
    ServiceId {
        account: account.parse().unwrap(),
        region: region.into(),
        cluster: cluster.into(),
        service: service.into(),
    }
}

/// A service of cluster `payments` in account A, eu-west-1.
fn svc(service: &str) -> ServiceId {
    sid(A, "eu-west-1", "payments", service)
}

fn batch_start(batch: u32) -> DateTime<Utc> {
    at("2026-11-22T00:10:00Z") + TimeDelta::minutes(10 * i64::from(batch))
}

fn catalog(id: &ServiceId) -> CatalogRecord {
    testkit::fixtures::enrolled_record(id.clone(), "payments", night())
}

/// `id` planned into `batch` tonight.
fn planned(id: &ServiceId, batch: u32) -> NightRecord {
    NightRecord::planned(&catalog(id), night(), batch, batch_start(batch))
}

/// `r` started (claimed), with `deployment` once UpdateService answered.
fn started(r: &NightRecord, deployment: Option<&str>) -> NightRecord {
    NightRecord {
        state: NightState::Started,
        started_at: Some(at("2026-11-22T00:10:05.25Z")),
        previous_deployment: Some("ecs-svc/previous".into()),
        task_definition: Some("arn:aws:ecs:eu-west-1:111111111111:task-definition/api:7".into()),
        deployment_id: deployment.map(str::to_owned),
        ..r.clone()
    }
}

/// `r` moved to the outcome `state`.
fn ended(r: &NightRecord, state: NightState) -> NightRecord {
    NightRecord {
        state,
        finished_at: Some(at("2026-11-22T00:17:05Z")),
        duration_seconds: Some(420),
        detail: (state != NightState::Completed).then(|| format!("ended {state}")),
        ..r.clone()
    }
}

/// `r` halted by the night's circuit breaker.
fn halted(r: &NightRecord) -> NightRecord {
    NightRecord {
        state: NightState::Halted,
        finished_at: Some(at("2026-11-22T01:00:00Z")),
        detail: Some("the night was halted: 3 of 20 failed".into()),
        ..r.clone()
    }
}

fn by_id(mut records: Vec<NightRecord>) -> Vec<NightRecord> {
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

fn counts(pairs: &[(NightState, u64)]) -> BTreeMap<NightState, u64> {
    pairs.iter().copied().collect()
}

// ---------------------------------------------------------------------------------------------
// CatalogStore

async fn the_catalog_round_trips_per_account<S: CatalogStore>(s: &S) {
    let in_a: Vec<CatalogRecord> = ["web", "api", "worker"]
        .iter()
        .map(|n| catalog(&svc(n)))
        .collect();
    // Every optional field set, and none: both come back as written.
    let full = CatalogRecord {
        tag_value: Some("2026-11-21T01:10:00Z".into()),
        skip_reason: Some(SkipReason::NotFound),
        gone_since: Some(day("2026-11-20")),
        ..catalog(&sid(B, "us-east-1", "search", "indexer"))
    };
    let sparse = CatalogRecord {
        tag_value: None,
        tag_state: TagStateKind::Untagged,
        ..catalog(&sid(B, "eu-west-1", "search", "query"))
    };
    let other = catalog(&sid("333333333333", "eu-west-1", "x", "y"));
    let mut all = in_a.clone();
    all.extend([full.clone(), sparse.clone(), other.clone()]);
    s.put_catalog(&all).await.unwrap();

    let mut expected = in_a.clone();
    expected.extend([full, sparse]);
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let accounts = [B.parse().unwrap(), A.parse().unwrap(), A.parse().unwrap()];
    assert_eq!(
        s.read_catalog(&accounts).await.unwrap(),
        expected,
        "the asked accounts' records, each once, in service order"
    );
    assert_eq!(
        s.read_catalog(&[A.parse().unwrap()]).await.unwrap().len(),
        3
    );
    assert!(s.read_catalog(&[]).await.unwrap().is_empty());
    assert!(
        s.read_catalog(&["444444444444".parse().unwrap()])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_catalog_rerun_replaces_records_and_marks_gone_ones<S: CatalogStore>(s: &S) {
    let (web, api) = (catalog(&svc("web")), catalog(&svc("api")));
    s.put_catalog(&[web.clone(), api.clone()]).await.unwrap();
    let gone = CatalogRecord {
        gone_since: Some(night()),
        last_seen: day("2026-11-21"),
        ..web.clone()
    };
    let changed = CatalogRecord {
        desired: 5,
        owner: "search".into(),
        ..api.clone()
    };
    // Two writes of one service in one call: the last one wins.
    let first_of_two = CatalogRecord {
        desired: 9,
        ..gone.clone()
    };
    s.put_catalog(&[first_of_two, gone.clone(), changed.clone()])
        .await
        .unwrap();
    let read = s.read_catalog(&[A.parse().unwrap()]).await.unwrap();
    assert_eq!(read, by_catalog_id(vec![gone.clone(), changed]));
    // A gone record is kept, with its date.
    assert_eq!(
        read.iter().find(|r| r.id == web.id).unwrap().gone_since,
        Some(night())
    );
}

fn by_catalog_id(mut records: Vec<CatalogRecord>) -> Vec<CatalogRecord> {
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

/// What a catalog record's item holds as written, apart from what a read derives: tells a
/// record rewritten from one only listed.
trait StoredCatalog: CatalogStore {
    async fn stored_last_seen(&self, id: &ServiceId) -> Option<NaiveDate>;
}

impl StoredCatalog for MemoryStore {
    async fn stored_last_seen(&self, id: &ServiceId) -> Option<NaiveDate> {
        self.catalog.lock().unwrap().get(id).map(|r| r.last_seen)
    }
}

impl StoredCatalog for DynamoStore {
    async fn stored_last_seen(&self, id: &ServiceId) -> Option<NaiveDate> {
        let out = testkit::dynamodb_client()
            .get_item()
            .table_name(self.table())
            .key("pk", AttributeValue::S(keys::catalog_pk(&id.account)))
            .key("sk", AttributeValue::S(keys::catalog_sk(id)))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.item.map(|item| {
            item["last_seen"]
                .as_s()
                .expect("last_seen is a string")
                .parse()
                .expect("last_seen is a date")
        })
    }
}

fn target(account: &str, region: &str) -> Target {
    Target {
        account: account.parse().unwrap(),
        region: region.into(),
    }
}

fn seen_on(id: &ServiceId, night: NaiveDate) -> CatalogRecord {
    CatalogRecord {
        last_seen: night,
        ..catalog(id)
    }
}

async fn a_listing_says_which_records_were_seen_without_rewriting_them<S: StoredCatalog>(s: &S) {
    let before = day("2026-11-21");
    let (web, api) = (seen_on(&svc("web"), before), seen_on(&svc("api"), before));
    // A region of A that is not reached tonight, and another account.
    let east = seen_on(&sid(A, "us-east-1", "search", "query"), before);
    let other = seen_on(&sid(B, "eu-west-1", "x", "y"), before);
    let gone = CatalogRecord {
        gone_since: Some(before),
        ..seen_on(&svc("old"), day("2026-11-20"))
    };
    let all = [&web, &api, &east, &other, &gone].map(Clone::clone);
    s.put_catalog(&all).await.unwrap();
    let read_a = || async { s.read_catalog(&[A.parse().unwrap()]).await.unwrap() };
    assert_eq!(
        read_a().await,
        by_catalog_id(vec![web.clone(), api.clone(), east.clone(), gone.clone()]),
        "before any listing, each record as written"
    );

    s.mark_listed(&[target(A, "eu-west-1"), target(B, "eu-west-1")], night())
        .await
        .unwrap();
    assert_eq!(
        read_a().await,
        by_catalog_id(vec![
            seen_on(&web.id, night()),
            seen_on(&api.id, night()),
            // Not listed tonight (its region unreachable): last seen as before.
            east.clone(),
            // Gone: a listing does not see it.
            gone.clone(),
        ])
    );
    assert_eq!(
        s.read_catalog(&[B.parse().unwrap()]).await.unwrap(),
        vec![seen_on(&other.id, night())]
    );
    // Seen without a write: the records' items hold what was written.
    for r in &all {
        assert_eq!(
            s.stored_last_seen(&r.id).await,
            Some(r.last_seen),
            "{}",
            r.id
        );
    }

    // A listing only moves forward: an earlier night's (a rerun of an old night) is ignored;
    // the same night again is harmless; a later one moves every record not gone.
    s.mark_listed(&[target(A, "eu-west-1")], before)
        .await
        .unwrap();
    s.mark_listed(&[target(A, "eu-west-1")], night())
        .await
        .unwrap();
    let read = read_a().await;
    assert_eq!(
        read.iter().find(|r| r.id == web.id).unwrap().last_seen,
        night()
    );
    let next = day("2026-11-23");
    s.mark_listed(&[target(A, "eu-west-1"), target(A, "us-east-1")], next)
        .await
        .unwrap();
    assert_eq!(
        read_a().await,
        by_catalog_id(vec![
            seen_on(&web.id, next),
            seen_on(&api.id, next),
            seen_on(&east.id, next),
            gone,
        ])
    );
    // A record written later than its region's listing keeps its own night.
    let changed = CatalogRecord {
        desired: 7,
        ..seen_on(&web.id, day("2026-11-24"))
    };
    s.put_catalog(std::slice::from_ref(&changed)).await.unwrap();
    assert!(read_a().await.contains(&changed));
}

async fn a_service_gone_and_back_is_seen_again<S: CatalogStore>(s: &S) {
    let (n1, n2, n3) = (day("2026-11-21"), night(), day("2026-11-23"));
    let web = seen_on(&svc("web"), n1);
    s.put_catalog(std::slice::from_ref(&web)).await.unwrap();
    s.mark_listed(&[target(A, "eu-west-1")], n1).await.unwrap();

    // Missed on n2 in its reached region: marked gone, last seen n1, whatever is listed later.
    let gone = CatalogRecord {
        gone_since: Some(n2),
        ..web.clone()
    };
    s.put_catalog(std::slice::from_ref(&gone)).await.unwrap();
    s.mark_listed(&[target(A, "eu-west-1")], n2).await.unwrap();
    assert_eq!(
        s.read_catalog(&[A.parse().unwrap()]).await.unwrap(),
        vec![gone.clone()]
    );

    // Found again on n3: back, and seen by the listings from then on.
    let back = CatalogRecord {
        gone_since: None,
        ..seen_on(&web.id, n3)
    };
    s.put_catalog(std::slice::from_ref(&back)).await.unwrap();
    s.mark_listed(&[target(A, "eu-west-1")], n3).await.unwrap();
    assert_eq!(
        s.read_catalog(&[A.parse().unwrap()]).await.unwrap(),
        vec![back.clone()]
    );
    let n4 = day("2026-11-24");
    s.mark_listed(&[target(A, "eu-west-1")], n4).await.unwrap();
    assert_eq!(
        s.read_catalog(&[A.parse().unwrap()]).await.unwrap(),
        vec![seen_on(&back.id, n4)]
    );
}

fn inventory_run(night: NaiveDate, services: u64) -> InventoryRun {
    InventoryRun {
        night,
        started_at: at("2026-11-22T00:00:05.5Z"),
        finished_at: at("2026-11-22T00:01:40Z"),
        reached: vec![Target {
            account: A.parse().unwrap(),
            region: "eu-west-1".into(),
        }],
        unreachable: vec![Unreachable {
            account: B.parse().unwrap(),
            region: "eu-west-1".into(),
            error: "access denied: AssumeRole".into(),
        }],
        counts: InventoryCounts {
            services,
            by_tag_state: [(TagStateKind::Enrolled, services)].into(),
            by_skip_reason: [(SkipReason::Untagged, 1)].into(),
            eligible: services,
            gone: 0,
            written: services,
        },
    }
}

async fn inventory_runs_round_trip_per_night<S: CatalogStore>(s: &S) {
    assert_eq!(s.get_inventory_run(night()).await.unwrap(), None);
    let first = inventory_run(night(), 2);
    s.put_inventory_run(&first).await.unwrap();
    let before = inventory_run(day("2026-11-21"), 7);
    s.put_inventory_run(&before).await.unwrap();
    assert_eq!(s.get_inventory_run(night()).await.unwrap(), Some(first));
    // A rerun of the night replaces its run.
    let rerun = InventoryRun {
        reached: vec![],
        unreachable: vec![],
        ..inventory_run(night(), 3)
    };
    s.put_inventory_run(&rerun).await.unwrap();
    assert_eq!(s.get_inventory_run(night()).await.unwrap(), Some(rerun));
    assert_eq!(
        s.get_inventory_run(day("2026-11-21")).await.unwrap(),
        Some(before)
    );
}

fn lock(holder: &str, now: &str) -> NightLock {
    NightLock {
        night: night(),
        holder: holder.into(),
        at: at(now),
        until: at("2026-11-22T06:30:00Z"),
    }
}

async fn the_night_lock_has_one_holder_until_it_lapses<S: CatalogStore>(s: &S) {
    let first = lock("exec-1", "2026-11-22T00:00:00.125Z");
    assert_eq!(s.lock_night(&first).await.unwrap(), first, "taken");
    // Another execution is answered with the holder's lock, unchanged.
    let second = lock("exec-2", "2026-11-22T00:05:00Z");
    assert_eq!(s.lock_night(&second).await.unwrap(), first);
    // The holder takes it again (a retried step): its lock is now the new one.
    let again = NightLock {
        until: at("2026-11-22T06:30:00Z"),
        ..lock("exec-1", "2026-11-22T00:10:00Z")
    };
    assert_eq!(s.lock_night(&again).await.unwrap(), again);
    assert_eq!(s.lock_night(&second).await.unwrap(), again);
    // The lock lapses once its whole second `until` is over (the table compares epoch
    // seconds): not at `until`, nor inside its second.
    for refused in ["2026-11-22T06:30:00Z", "2026-11-22T06:30:00.999Z"] {
        assert_eq!(
            s.lock_night(&lock("exec-2", refused)).await.unwrap(),
            again,
            "at {refused}"
        );
    }
    let late = NightLock {
        until: at("2026-11-22T12:00:00Z"),
        ..lock("exec-2", "2026-11-22T06:30:01Z")
    };
    assert_eq!(s.lock_night(&late).await.unwrap(), late, "lapsed: taken");
    assert_eq!(
        s.lock_night(&lock("exec-1", "2026-11-22T06:31:00Z"))
            .await
            .unwrap(),
        late,
        "the first holder lost it"
    );
    // Every night has its own lock.
    let tomorrow = NightLock {
        night: day("2026-11-23"),
        ..lock("exec-3", "2026-11-22T06:40:00Z")
    };
    assert_eq!(s.lock_night(&tomorrow).await.unwrap(), tomorrow);
}

async fn only_the_holder_unlocks_the_night<S: CatalogStore>(s: &S) {
    assert!(!s.unlock_night(night(), "exec-1").await.unwrap(), "no lock");
    let first = lock("exec-1", "2026-11-22T00:00:00Z");
    s.lock_night(&first).await.unwrap();
    assert!(!s.unlock_night(night(), "exec-2").await.unwrap());
    assert!(
        !s.unlock_night(day("2026-11-23"), "exec-1").await.unwrap(),
        "another night's lock"
    );
    assert_eq!(
        s.lock_night(&lock("exec-2", "2026-11-22T00:01:00Z"))
            .await
            .unwrap(),
        first,
        "still held after a refused unlock"
    );
    assert!(s.unlock_night(night(), "exec-1").await.unwrap());
    assert!(!s.unlock_night(night(), "exec-1").await.unwrap(), "once");
    let next = lock("exec-2", "2026-11-22T00:02:00Z");
    assert_eq!(s.lock_night(&next).await.unwrap(), next, "free again");
}

// ---------------------------------------------------------------------------------------------
// NightStore

fn batch(b: u32, size: u32) -> PlannedBatch {
    PlannedBatch {
        batch: b,
        start_at: batch_start(b),
        size,
    }
}

async fn batches_and_the_plan_summary_round_trip<S: NightStore>(s: &S) {
    assert_eq!(s.plan_summary(night()).await.unwrap(), None);
    assert!(s.read_batches(night()).await.unwrap().is_empty());
    s.put_batches(night(), &[batch(2, 4), batch(0, 5), batch(1, 5)])
        .await
        .unwrap();
    s.put_batches(day("2026-11-21"), &[batch(0, 1)])
        .await
        .unwrap();
    assert_eq!(
        s.read_batches(night()).await.unwrap(),
        [batch(0, 5), batch(1, 5), batch(2, 4)],
        "in batch order"
    );
    // Upserts: a batch written again is replaced.
    s.put_batches(night(), &[batch(1, 3), batch(3, 1)])
        .await
        .unwrap();
    // Deleting a batch that is not there is fine.
    s.delete_batches(night(), &[0, 9]).await.unwrap();
    s.delete_batches(night(), &[]).await.unwrap();
    assert_eq!(
        s.read_batches(night()).await.unwrap(),
        [batch(1, 3), batch(2, 4), batch(3, 1)]
    );
    assert_eq!(
        s.read_batches(day("2026-11-21")).await.unwrap(),
        [batch(0, 1)]
    );

    let summary = PlanSummary {
        night: night(),
        batches: 3,
        planned: 8,
        skipped: 2,
        written_at: at("2026-11-22T00:02:00.5Z"),
    };
    s.put_plan_summary(&summary).await.unwrap();
    assert_eq!(
        s.plan_summary(night()).await.unwrap(),
        Some(summary.clone())
    );
    let again = PlanSummary {
        planned: 9,
        ..summary
    };
    s.put_plan_summary(&again).await.unwrap();
    assert_eq!(s.plan_summary(night()).await.unwrap(), Some(again));
    assert_eq!(s.plan_summary(day("2026-11-21")).await.unwrap(), None);
}

async fn creating_records_never_overwrites_one<S: RestartStore>(s: &S) {
    let (web, api) = (planned(&svc("web"), 0), planned(&svc("api"), 1));
    let skipped = NightRecord::skipped(&catalog(&svc("cron")), night(), SkipReason::Untagged);
    let created = s
        .create_records(&[web.clone(), api.clone(), skipped.clone()])
        .await
        .unwrap();
    assert_eq!((created.created, created.existing), (3, vec![]));
    assert_eq!(
        s.claim(Some(&web), &started(&web, None), 10).await.unwrap(),
        Claim::Claimed
    );

    // A rerun: the started record and the others stay as they are; only the new one is
    // written; the existing ones are named, in service order.
    let new = planned(&svc("new"), 1);
    let rerun = [
        skipped.now_skipped(SkipReason::OptedOut),
        NightRecord {
            owner: "search".into(),
            ..web.clone()
        },
        new.clone(),
        NightRecord {
            planned_start: Some(batch_start(7)),
            ..api.clone()
        },
    ];
    let created = s.create_records(&rerun).await.unwrap();
    assert_eq!(created.created, 1);
    assert_eq!(created.existing, [svc("api"), svc("cron"), svc("web")]);
    assert_eq!(
        s.find_record(night(), &svc("web")).await.unwrap(),
        Some(started(&web, None))
    );
    assert_eq!(
        s.find_record(night(), &svc("api")).await.unwrap(),
        Some(api)
    );
    assert_eq!(
        s.find_record(night(), &svc("cron")).await.unwrap(),
        Some(skipped)
    );
    assert_eq!(
        s.find_record(night(), &svc("new")).await.unwrap(),
        Some(new)
    );

    assert!(s.create_records(&[]).await.unwrap().existing.is_empty());
    // Creating records counts nothing.
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[(NightState::Started, 1)])
    );
}

async fn reads_see_batches_skipped_records_and_the_night<S: RestartStore>(s: &S) {
    let in_0: Vec<NightRecord> = ["a", "b", "c"]
        .iter()
        .map(|n| planned(&svc(n), 0))
        .collect();
    let in_1 = vec![
        planned(&svc("d"), 1),
        planned(&sid(B, "us-east-1", "search", "e"), 1),
    ];
    let skipped = vec![
        NightRecord::skipped(&catalog(&svc("s1")), night(), SkipReason::Untagged),
        NightRecord::skipped(&catalog(&svc("s2")), night(), SkipReason::DowntimeRisk),
    ];
    // A record of a batch that has no batch item (a plan that stopped half-way, or a stale
    // batch): reads of the night do not see it.
    let orphan = planned(&svc("orphan"), 5);
    let last_night = NightRecord {
        night: day("2026-11-21"),
        ..planned(&svc("a"), 1)
    };
    let mut all: Vec<NightRecord> = in_0.iter().chain(&in_1).chain(&skipped).cloned().collect();
    all.extend([orphan.clone(), last_night.clone()]);
    all.reverse();
    assert_eq!(s.create_records(&all).await.unwrap().created, 9);
    s.put_batches(night(), &[batch(0, 3), batch(1, 2)])
        .await
        .unwrap();

    assert_eq!(
        by_id(s.read_batch(night(), 0).await.unwrap()),
        by_id(in_0.clone())
    );
    assert_eq!(
        by_id(s.read_batch(night(), 1).await.unwrap()),
        by_id(in_1.clone())
    );
    assert_eq!(
        s.read_batch(night(), 5).await.unwrap(),
        std::slice::from_ref(&orphan)
    );
    assert!(s.read_batch(night(), 2).await.unwrap().is_empty());
    assert!(s.read_batch(day("2026-11-23"), 0).await.unwrap().is_empty());
    assert_eq!(by_id(s.read_skipped(night()).await.unwrap()), skipped);
    assert!(s.read_skipped(day("2026-11-21")).await.unwrap().is_empty());

    let mut expected: Vec<NightRecord> =
        in_0.iter().chain(&in_1).chain(&skipped).cloned().collect();
    expected = by_id(expected);
    assert_eq!(
        s.read_night(night()).await.unwrap(),
        expected,
        "every batch with a batch item, and the skipped, in service order"
    );
    let assignment: BTreeMap<ServiceId, u32> = in_0
        .iter()
        .chain(&in_1)
        .map(|r| (r.id.clone(), r.batch.unwrap()))
        .collect();
    assert_eq!(s.read_assignment(night()).await.unwrap(), assignment);
    // Last night has no batch item either: its assignment is empty.
    assert!(
        s.read_assignment(day("2026-11-21"))
            .await
            .unwrap()
            .is_empty()
    );
    s.put_batches(day("2026-11-21"), &[batch(1, 1)])
        .await
        .unwrap();
    assert_eq!(
        s.read_assignment(day("2026-11-21")).await.unwrap(),
        [(svc("a"), 1)].into()
    );
    assert_eq!(s.read_night(day("2026-11-21")).await.unwrap(), [last_night]);

    // One service's record, wherever it is.
    assert_eq!(
        s.find_record(night(), &svc("d")).await.unwrap(),
        Some(in_1[0].clone())
    );
    assert_eq!(
        s.find_record(night(), &svc("s2")).await.unwrap(),
        Some(skipped[1].clone())
    );
    assert_eq!(
        s.find_record(night(), &svc("orphan")).await.unwrap(),
        Some(orphan)
    );
    assert_eq!(s.find_record(night(), &svc("zzz")).await.unwrap(), None);
    assert_eq!(
        s.find_record(day("2026-11-20"), &svc("a")).await.unwrap(),
        None
    );
}

async fn a_record_moves_only_while_planned<S: RestartStore>(s: &S) {
    let web = planned(&svc("web"), 0);
    let api = planned(&svc("api"), 0);
    s.create_records(&[web.clone(), api.clone()]).await.unwrap();
    s.put_batches(night(), &[batch(0, 2), batch(1, 0)])
        .await
        .unwrap();

    // To another batch.
    let web_1 = web.moved_to(1, batch_start(1));
    assert!(s.move_record(&web, &web_1).await.unwrap());
    assert_eq!(
        s.read_batch(night(), 0).await.unwrap(),
        std::slice::from_ref(&api)
    );
    assert_eq!(
        s.read_batch(night(), 1).await.unwrap(),
        std::slice::from_ref(&web_1)
    );
    assert_eq!(
        s.find_record(night(), &web.id).await.unwrap(),
        Some(web_1.clone())
    );
    // The same move again, from where it was: it is not there any more.
    assert!(!s.move_record(&web, &web_1).await.unwrap());
    assert!(
        !s.move_record(&web, &web.moved_to(2, batch_start(2)))
            .await
            .unwrap()
    );
    // A move to where it already is changes nothing.
    assert!(!s.move_record(&web_1, &web_1).await.unwrap());

    // Planned → skipped.
    let web_skipped = web_1.now_skipped(SkipReason::NotFound);
    assert!(s.move_record(&web_1, &web_skipped).await.unwrap());
    assert_eq!(
        s.read_skipped(night()).await.unwrap(),
        std::slice::from_ref(&web_skipped)
    );
    assert!(s.read_batch(night(), 1).await.unwrap().is_empty());
    // A skipped record does not move back.
    assert!(!s.move_record(&web_skipped, &web_1).await.unwrap());

    // A record started meanwhile stays where it is, whatever the mover read.
    let api_started = started(&api, Some("ecs-svc/1"));
    s.claim(Some(&api), &api_started, 10).await.unwrap();
    assert!(
        !s.move_record(&api, &api.moved_to(1, batch_start(1)))
            .await
            .unwrap()
    );
    assert!(
        !s.move_record(&api, &api.now_skipped(SkipReason::NotFound))
            .await
            .unwrap()
    );
    assert_eq!(
        s.find_record(night(), &api.id).await.unwrap(),
        Some(api_started)
    );
    // No record at all.
    let ghost = planned(&svc("ghost"), 0);
    assert!(
        !s.move_record(&ghost, &ghost.moved_to(1, batch_start(1)))
            .await
            .unwrap()
    );
    assert_eq!(s.find_record(night(), &ghost.id).await.unwrap(), None);

    // Moves are not counted.
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[(NightState::Started, 1)])
    );
}

// ---------------------------------------------------------------------------------------------
// RestartStore

async fn the_kill_switch_is_set_read_and_cleared<S: RestartStore>(s: &S) {
    assert_eq!(s.pause().await.unwrap(), None);
    s.set_pause(None).await.unwrap();
    let pause = Pause {
        reason: "incident 4711: ECS control plane".into(),
        by: "arn:aws:iam::999999999999:user/oncall".into(),
        at: at("2026-11-22T00:20:00.75Z"),
    };
    s.set_pause(Some(&pause)).await.unwrap();
    assert_eq!(s.pause().await.unwrap(), Some(pause.clone()));
    let again = Pause {
        reason: "still investigating".into(),
        ..pause
    };
    s.set_pause(Some(&again)).await.unwrap();
    assert_eq!(s.pause().await.unwrap(), Some(again), "replaced");
    s.set_pause(None).await.unwrap();
    assert_eq!(s.pause().await.unwrap(), None);
}

async fn the_first_halt_of_a_night_stays<S: RestartStore>(s: &S) {
    assert_eq!(s.night_status(night()).await.unwrap(), Default::default());
    let web = planned(&svc("web"), 0);
    s.create_records(std::slice::from_ref(&web)).await.unwrap();
    s.claim(Some(&web), &started(&web, None), 10).await.unwrap();
    let first = Halt {
        reason: "3 of 20 finished restarts failed".into(),
        at: at("2026-11-22T01:00:00.5Z"),
    };
    assert!(s.halt(night(), &first).await.unwrap());
    let second = Halt {
        reason: "another reason".into(),
        at: at("2026-11-22T01:05:00Z"),
    };
    assert!(!s.halt(night(), &second).await.unwrap(), "already halted");
    let status = s.night_status(night()).await.unwrap();
    assert_eq!(status.halted, Some(first));
    assert_eq!(
        status.counts,
        counts(&[(NightState::Started, 1)]),
        "a halt keeps the counters"
    );
    assert_eq!(
        s.night_status(day("2026-11-23")).await.unwrap().halted,
        None
    );
    // A halt of a night with no counters yet.
    assert!(s.halt(day("2026-11-23"), &second).await.unwrap());
    let other = s.night_status(day("2026-11-23")).await.unwrap();
    assert_eq!((other.halted, other.counts.len()), (Some(second), 0));
}

async fn batch_counts_keep_the_latest_per_batch<S: RestartStore>(s: &S) {
    let empty = s.night_tally(night()).await.unwrap();
    assert_eq!((empty.halted, empty.batches.len()), (None, 0));
    let counted = |t: &str, c: &[(NightState, u64)], lost: u64| BatchCounts {
        at: at(t),
        counts: counts(c),
        lost,
    };
    let first = counted(
        "2026-11-22T01:00:00.250Z",
        &[
            (NightState::Completed, 3),
            (NightState::Failed, 1),
            (NightState::TimedOut, 2),
        ],
        1,
    );
    assert!(s.put_batch_counts(night(), 0, &first).await.unwrap());
    let other = counted("2026-11-22T01:00:00Z", &[(NightState::Planned, 7)], 0);
    assert!(s.put_batch_counts(night(), 1, &other).await.unwrap());
    // Counts taken earlier never replace later ones (an invocation that read before another).
    let older = counted("2026-11-22T00:59:00Z", &[(NightState::Planned, 6)], 0);
    assert!(!s.put_batch_counts(night(), 0, &older).await.unwrap());
    let tally = s.night_tally(night()).await.unwrap();
    assert_eq!(
        tally.batches,
        BTreeMap::from([(0, first.clone()), (1, other)])
    );
    let later = counted("2026-11-22T01:01:00Z", &[(NightState::Completed, 6)], 0);
    assert!(s.put_batch_counts(night(), 0, &later).await.unwrap());
    assert_eq!(s.night_tally(night()).await.unwrap().batches[&0], later);
    // The halt is part of the tally; another night's is its own.
    let halt = Halt {
        reason: "too many failed".into(),
        at: at("2026-11-22T01:02:00Z"),
    };
    assert!(s.halt(night(), &halt).await.unwrap());
    assert_eq!(s.night_tally(night()).await.unwrap().halted, Some(halt));
    let tomorrow = s.night_tally(day("2026-11-23")).await.unwrap();
    assert_eq!((tomorrow.halted, tomorrow.batches.len()), (None, 0));
    // The breaker's view: the other batches' counts, and this batch's own as given.
    let status = s.night_tally(night()).await.unwrap().status_with(1, &first);
    assert_eq!(
        (
            status.count(NightState::Completed),
            status.finished(),
            status.failures()
        ),
        (9, 11, 2),
        "completed 6 + 3; finished 6 + 3 + 1 + 2 - 1 lost; failed 1 + timed out 2 - 1 lost"
    );
}

async fn a_planned_record_is_claimed_once<S: RestartStore>(s: &S) {
    let web = planned(&svc("web"), 0);
    s.create_records(std::slice::from_ref(&web)).await.unwrap();
    let web_started = started(&web, None);
    assert_eq!(
        s.claim(Some(&web), &web_started, 10).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        s.find_record(night(), &web.id).await.unwrap(),
        Some(web_started.clone())
    );
    // A second invocation that read it planned is refused, and told what it is now.
    assert_eq!(
        s.claim(Some(&web), &web_started, 10).await.unwrap(),
        Claim::Moved(Some(NightState::Started))
    );
    // A claim "no record yet" of a service that has one is refused too.
    assert_eq!(
        s.claim(None, &web_started, 10).await.unwrap(),
        Claim::Moved(Some(NightState::Started))
    );
    // A record read in another batch than where it is: nothing there.
    let api = planned(&svc("api"), 1);
    s.create_records(std::slice::from_ref(&api)).await.unwrap();
    let stale = api.moved_to(0, batch_start(0));
    assert_eq!(
        s.claim(Some(&stale), &started(&stale, None), 10)
            .await
            .unwrap(),
        Claim::Moved(None)
    );
    assert_eq!(
        s.find_record(night(), &api.id).await.unwrap(),
        Some(api.clone()),
        "a refused claim changes nothing"
    );
    // A record read planned that is gone.
    let ghost = planned(&svc("ghost"), 0);
    assert_eq!(
        s.claim(Some(&ghost), &started(&ghost, None), 10)
            .await
            .unwrap(),
        Claim::Moved(None)
    );
    assert_eq!(s.find_record(night(), &ghost.id).await.unwrap(), None);

    // A service with no record tonight (on-call's restart of one service): created started,
    // once.
    let manual =
        NightRecord::unbatched(svc("manual"), svc("manual").arn("aws"), night(), "x".into());
    let manual_started = started(&manual, None);
    assert_eq!(
        s.claim(None, &manual_started, 10).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        s.claim(None, &manual_started, 10).await.unwrap(),
        Claim::Moved(Some(NightState::Started))
    );
    assert_eq!(
        s.find_record(night(), &manual.id).await.unwrap(),
        Some(manual_started)
    );

    // A forced start of a finished restart begins again, from the state as read.
    let done = ended(&started(&web, Some("ecs-svc/1")), NightState::Completed);
    let with_dep = started(&web, Some("ecs-svc/1"));
    assert!(s.record_deployment(&with_dep).await.unwrap());
    assert!(s.finish(&with_dep, &done).await.unwrap());
    let forced = started(&done, None);
    assert_eq!(
        s.claim(Some(&web), &forced, 10).await.unwrap(),
        Claim::Moved(Some(NightState::Completed)),
        "not from planned any more"
    );
    assert_eq!(
        s.claim(Some(&done), &forced, 10).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(s.find_record(night(), &web.id).await.unwrap(), Some(forced));

    // Counters count moves: three claims succeeded, one of them forced.
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[(NightState::Started, 3), (NightState::Completed, 1)])
    );
}

async fn claims_respect_the_cluster_cap<S: RestartStore>(s: &S) {
    let cap = 2;
    let in_payments: Vec<NightRecord> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| planned(&svc(n), 0))
        .collect();
    // The same cluster name in another account, and in another region: other clusters.
    let elsewhere = [
        planned(&sid(B, "eu-west-1", "payments", "a"), 0),
        planned(&sid(A, "us-east-1", "payments", "a"), 0),
        planned(&sid(A, "eu-west-1", "search", "a"), 0),
    ];
    let mut all = in_payments.clone();
    all.extend(elsewhere.iter().cloned());
    s.create_records(&all).await.unwrap();
    let claim = |r: &NightRecord, cap| {
        let to = started(r, None);
        let r = r.clone();
        async move { s.claim(Some(&r), &to, cap).await.unwrap() }
    };

    assert_eq!(claim(&in_payments[0], cap).await, Claim::Claimed);
    assert_eq!(claim(&in_payments[1], cap).await, Claim::Claimed);
    assert_eq!(claim(&in_payments[2], cap).await, Claim::ClusterFull);
    assert_eq!(
        s.find_record(night(), &in_payments[2].id).await.unwrap(),
        Some(in_payments[2].clone()),
        "a full cluster changes nothing"
    );
    for r in &elsewhere {
        assert_eq!(claim(r, cap).await, Claim::Claimed, "{}", r.id);
    }
    // A record that moved on is told so even when its cluster is full.
    assert_eq!(
        claim(&in_payments[0], cap).await,
        Claim::Moved(Some(NightState::Started))
    );
    // The cap is the caller's: a larger one lets one more in.
    assert_eq!(claim(&in_payments[2], cap + 1).await, Claim::Claimed);
    assert_eq!(claim(&in_payments[3], cap + 1).await, Claim::ClusterFull);
    // A finished restart gives its place back; two in flight of cap 3 leave room for one.
    let first = started(&in_payments[0], None);
    assert!(
        s.finish(&first, &ended(&first, NightState::Completed))
            .await
            .unwrap()
    );
    assert_eq!(claim(&in_payments[3], cap).await, Claim::ClusterFull);
    assert_eq!(claim(&in_payments[3], cap + 1).await, Claim::Claimed);

    let status = s.night_status(night()).await.unwrap();
    assert_eq!(
        status.counts,
        counts(&[(NightState::Started, 7), (NightState::Completed, 1)]),
        "refused claims are not counted"
    );
}

async fn a_deployment_is_recorded_once_on_a_started_record<S: RestartStore>(s: &S) {
    let web = planned(&svc("web"), 0);
    let api = planned(&svc("api"), 0);
    s.create_records(&[web.clone(), api.clone()]).await.unwrap();
    assert!(
        !s.record_deployment(&started(&web, Some("ecs-svc/1")))
            .await
            .unwrap(),
        "still planned"
    );
    s.claim(Some(&web), &started(&web, None), 10).await.unwrap();
    let first = started(&web, Some("ecs-svc/1"));
    assert!(s.record_deployment(&first).await.unwrap());
    assert_eq!(
        s.find_record(night(), &web.id).await.unwrap(),
        Some(first.clone())
    );
    assert!(
        !s.record_deployment(&started(&web, Some("ecs-svc/2")))
            .await
            .unwrap(),
        "it has one already"
    );
    assert_eq!(s.find_record(night(), &web.id).await.unwrap(), Some(first));
    // Not where it was read (another batch), and no record at all.
    let stale = started(&api.moved_to(3, batch_start(3)), Some("ecs-svc/3"));
    s.claim(Some(&api), &started(&api, None), 10).await.unwrap();
    assert!(!s.record_deployment(&stale).await.unwrap());
    let ghost = started(&planned(&svc("ghost"), 0), Some("ecs-svc/4"));
    assert!(!s.record_deployment(&ghost).await.unwrap());
    assert_eq!(s.find_record(night(), &ghost.id).await.unwrap(), None);
    // Recording a deployment is not a move: nothing is counted.
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[(NightState::Started, 2)])
    );
}

/// `r` (a claim) as taken over at `t`.
fn taken(r: &NightRecord, t: &str) -> NightRecord {
    NightRecord {
        lease_at: Some(at(t)),
        ..r.clone()
    }
}

async fn a_lapsed_claim_is_taken_over_once<S: RestartStore>(s: &S) {
    let web = planned(&svc("web"), 0);
    s.create_records(std::slice::from_ref(&web)).await.unwrap();
    let claim = started(&web, None);
    // Only a claim is taken over: not a planned record.
    assert!(
        !s.take_over(&claim, &taken(&claim, "2026-11-22T00:16:00Z"))
            .await
            .unwrap()
    );
    s.claim(Some(&web), &claim, 10).await.unwrap();
    // Two invocations read the same lapsed claim: one takes it.
    let first = taken(&claim, "2026-11-22T00:16:00Z");
    let second = taken(&claim, "2026-11-22T00:16:00.5Z");
    assert!(s.take_over(&claim, &first).await.unwrap());
    assert!(!s.take_over(&claim, &second).await.unwrap());
    assert_eq!(
        s.find_record(night(), &web.id).await.unwrap(),
        Some(first.clone())
    );
    // The holder's lease lapses in turn: taken over from it, as read.
    let third = taken(&first, "2026-11-22T00:22:00Z");
    assert!(s.take_over(&first, &third).await.unwrap());
    assert!(
        !s.take_over(&first, &taken(&first, "2026-11-22T00:22:01Z"))
            .await
            .unwrap()
    );
    // With its deployment recorded it is no claim any more.
    let with = started(&third, Some("ecs-svc/1"));
    assert!(s.record_deployment(&with).await.unwrap());
    assert!(
        !s.take_over(&third, &taken(&third, "2026-11-22T00:30:00Z"))
            .await
            .unwrap()
    );
    assert_eq!(s.find_record(night(), &web.id).await.unwrap(), Some(with));
    // A takeover is no move: only the claim was counted.
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[(NightState::Started, 1)])
    );
}

async fn a_claim_given_back_is_skipped_and_frees_its_place<S: RestartStore>(s: &S) {
    let web = planned(&svc("web"), 0);
    let api = planned(&svc("api"), 0);
    s.create_records(&[web.clone(), api.clone()]).await.unwrap();
    let claim = started(&web, None);
    assert_eq!(
        s.claim(Some(&web), &claim, 1).await.unwrap(),
        Claim::Claimed
    );
    // The cluster is full (cap 1) while the claim holds its place.
    assert_eq!(
        s.claim(Some(&api), &started(&api, None), 1).await.unwrap(),
        Claim::ClusterFull
    );
    let skipped = NightRecord {
        detail: Some("the window ended before UpdateService could be sent ⏱".into()),
        started_at: None,
        previous_deployment: None,
        task_definition: None,
        ..web.now_skipped(SkipReason::WindowClosed)
    };
    // Not under another lease (a takeover happened meanwhile).
    let other = taken(&claim, "2026-11-22T00:16:00Z");
    assert!(!s.give_back(&other, &skipped).await.unwrap());
    assert!(s.give_back(&claim, &skipped).await.unwrap());
    assert!(!s.give_back(&claim, &skipped).await.unwrap(), "once");
    assert_eq!(
        s.find_record(night(), &web.id).await.unwrap(),
        Some(skipped.clone())
    );
    assert_eq!(s.read_skipped(night()).await.unwrap(), vec![skipped]);
    assert!(
        s.read_batch(night(), 0)
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != web.id),
        "it left its batch"
    );
    // Its place is free, and its start no longer counted.
    assert_eq!(
        s.claim(Some(&api), &started(&api, None), 1).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[(NightState::Started, 1)])
    );
    // A claim with its deployment is never given back.
    let with = started(&api, Some("ecs-svc/2"));
    assert!(s.record_deployment(&with).await.unwrap());
    let api_skipped = NightRecord {
        started_at: None,
        ..api.now_skipped(SkipReason::AccountUnreachable)
    };
    assert!(
        !s.give_back(&started(&api, None), &api_skipped)
            .await
            .unwrap()
    );
}

async fn a_restart_finishes_once_from_started_with_its_deployment<S: RestartStore>(s: &S) {
    let cap = 1;
    let web = planned(&svc("web"), 0);
    let api = planned(&svc("api"), 0);
    let cron = planned(&svc("cron"), 1);
    s.create_records(&[web.clone(), api.clone(), cron.clone()])
        .await
        .unwrap();
    let web_claimed = started(&web, None);
    let web_started = started(&web, Some("ecs-svc/1"));
    let web_done = ended(&web_started, NightState::Failed);
    assert!(
        !s.finish(&web_started, &web_done).await.unwrap(),
        "still planned"
    );
    s.claim(Some(&web), &web_claimed, cap).await.unwrap();
    s.record_deployment(&web_started).await.unwrap();
    // Read before its deployment was recorded: not the record as it is.
    assert!(
        !s.finish(&web_claimed, &ended(&web_claimed, NightState::TimedOut))
            .await
            .unwrap()
    );
    // Another deployment than the recorded one.
    let other = started(&web, Some("ecs-svc/other"));
    assert!(
        !s.finish(&other, &ended(&other, NightState::Completed))
            .await
            .unwrap()
    );
    // Another batch than where it is.
    let elsewhere = started(&web.moved_to(4, batch_start(4)), Some("ecs-svc/1"));
    assert!(
        !s.finish(&elsewhere, &ended(&elsewhere, NightState::Completed))
            .await
            .unwrap()
    );
    assert_eq!(
        s.claim(Some(&api), &started(&api, None), cap)
            .await
            .unwrap(),
        Claim::ClusterFull,
        "refused finishes keep the place"
    );

    assert!(s.finish(&web_started, &web_done).await.unwrap());
    assert_eq!(
        s.find_record(night(), &web.id).await.unwrap(),
        Some(web_done.clone())
    );
    assert!(!s.finish(&web_started, &web_done).await.unwrap(), "once");
    assert!(
        !s.finish(&web_started, &ended(&web_started, NightState::Completed))
            .await
            .unwrap()
    );
    // Its place is free: the cluster takes the next one.
    assert_eq!(
        s.claim(Some(&api), &started(&api, None), cap)
            .await
            .unwrap(),
        Claim::Claimed
    );
    // A claim that never got its deployment finishes as read (no deployment).
    let api_claimed = started(&api, None);
    assert!(
        s.finish(&api_claimed, &ended(&api_claimed, NightState::TimedOut))
            .await
            .unwrap()
    );
    // Every outcome is counted under its own state.
    let cron_started = started(&cron, Some("ecs-svc/9"));
    s.claim(Some(&cron), &started(&cron, None), cap)
        .await
        .unwrap();
    s.record_deployment(&cron_started).await.unwrap();
    assert!(
        s.finish(&cron_started, &ended(&cron_started, NightState::Vanished))
            .await
            .unwrap()
    );
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[
            (NightState::Started, 3),
            (NightState::Failed, 1),
            (NightState::TimedOut, 1),
            (NightState::Vanished, 1),
        ])
    );
}

async fn holds_keep_their_first_and_latest_time_per_night<S: RestartStore>(s: &S) {
    let at = |t: &str| -> chrono::DateTime<chrono::Utc> { t.parse().unwrap() };
    assert!(s.holds_seen(night()).await.unwrap().is_empty());
    // A name of 255 characters in any script still makes a key.
    let long = "ß".repeat(255);
    let scope = "account 111111111111 (eu-west-1)";
    for t in [
        "2026-11-22T00:20:00Z",
        "2026-11-22T00:10:00.250Z",
        "2026-11-22T00:40:00Z",
        // An older note arriving late changes nothing.
        "2026-11-22T00:30:00Z",
    ] {
        s.note_hold(night(), &long, scope, at(t)).await.unwrap();
    }
    s.note_hold(
        night(),
        "ecs-restart-block-db",
        "the hub account",
        at("2026-11-22T00:05:00Z"),
    )
    .await
    .unwrap();
    let next = night().succ_opt().unwrap();
    s.note_hold(next, "other", scope, at("2026-11-23T00:05:00Z"))
        .await
        .unwrap();
    let mut seen = s.holds_seen(night()).await.unwrap();
    seen.sort_by(|a, b| a.scope.cmp(&b.scope));
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (account, hub) = (&seen[0], &seen[1]);
    assert_eq!(
        (account.what.as_str(), account.scope.as_str()),
        (long.as_str(), scope)
    );
    assert_eq!(account.first, at("2026-11-22T00:20:00Z"));
    assert_eq!(account.last, at("2026-11-22T00:40:00Z"));
    assert_eq!(hub.first, hub.last);
    assert_eq!(hub.what, "ecs-restart-block-db");
    assert_eq!(s.holds_seen(next).await.unwrap().len(), 1);
}

async fn only_a_planned_record_is_halted<S: RestartStore>(s: &S) {
    let records: Vec<NightRecord> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| planned(&svc(n), 0))
        .collect();
    s.create_records(&records).await.unwrap();
    let [a, b, c, d] = [&records[0], &records[1], &records[2], &records[3]];

    assert!(s.halt_record(a, &halted(a)).await.unwrap());
    assert_eq!(
        s.find_record(night(), &a.id).await.unwrap(),
        Some(halted(a))
    );
    assert!(!s.halt_record(a, &halted(a)).await.unwrap(), "once");
    // Started meanwhile: it runs on.
    s.claim(Some(b), &started(b, None), 10).await.unwrap();
    assert!(!s.halt_record(b, &halted(b)).await.unwrap());
    assert_eq!(
        s.find_record(night(), &b.id).await.unwrap(),
        Some(started(b, None))
    );
    // Skipped meanwhile (the window closed).
    let c_skipped = c.now_skipped(SkipReason::WindowClosed);
    s.move_record(c, &c_skipped).await.unwrap();
    assert!(!s.halt_record(c, &halted(c)).await.unwrap());
    assert_eq!(
        s.find_record(night(), &c.id).await.unwrap(),
        Some(c_skipped)
    );
    // Moved to another batch: the record read is not there.
    let d_moved = d.moved_to(2, batch_start(2));
    s.move_record(d, &d_moved).await.unwrap();
    assert!(!s.halt_record(d, &halted(d)).await.unwrap());
    assert_eq!(
        s.find_record(night(), &d.id).await.unwrap(),
        Some(d_moved.clone())
    );
    assert!(s.halt_record(&d_moved, &halted(&d_moved)).await.unwrap());
    // No record.
    let ghost = planned(&svc("ghost"), 0);
    assert!(!s.halt_record(&ghost, &halted(&ghost)).await.unwrap());
    assert_eq!(s.find_record(night(), &ghost.id).await.unwrap(), None);

    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[(NightState::Started, 1), (NightState::Halted, 2)])
    );
}

fn held_sorted(mut held: Vec<HeldRestart>) -> Vec<HeldRestart> {
    held.sort();
    held
}

async fn a_held_place_is_kept_until_released_once<S: RestartStore>(s: &S) {
    let cap = 2;
    let records: Vec<NightRecord> = ["x", "y", "z"]
        .iter()
        .map(|n| planned(&svc(n), 0))
        .collect();
    let other_cluster = planned(&sid(A, "eu-west-1", "search", "x"), 0);
    let mut all = records.clone();
    all.push(other_cluster.clone());
    s.create_records(&all).await.unwrap();
    let (x, y, z) = (&records[0], &records[1], &records[2]);
    for r in [x, y, &other_cluster] {
        s.claim(Some(r), &started(r, None), cap).await.unwrap();
    }

    // A claim with no deployment has nothing that rolls: it cannot hold a place.
    let x_claimed = started(x, None);
    assert!(
        !s.finish_holding(&x_claimed, &ended(&x_claimed, NightState::TimedOut))
            .await
            .unwrap()
    );
    assert_eq!(
        s.find_record(night(), &x.id).await.unwrap(),
        Some(x_claimed),
        "nothing changed"
    );
    let (x_started, y_started) = (started(x, Some("dx")), started(y, Some("dy")));
    s.record_deployment(&x_started).await.unwrap();
    s.record_deployment(&y_started).await.unwrap();
    // Another deployment than the recorded one.
    let x_other = started(x, Some("d-other"));
    assert!(
        !s.finish_holding(&x_other, &ended(&x_other, NightState::TimedOut))
            .await
            .unwrap()
    );

    let x_out = ended(&x_started, NightState::TimedOut);
    assert!(s.finish_holding(&x_started, &x_out).await.unwrap());
    assert_eq!(
        s.find_record(night(), &x.id).await.unwrap(),
        Some(x_out.clone())
    );
    assert!(!s.finish_holding(&x_started, &x_out).await.unwrap(), "once");
    let x_held = HeldRestart {
        id: x.id.clone(),
        deployment_id: "dx".into(),
    };
    // Any service of the cluster names it.
    assert_eq!(
        s.held(night(), &svc("any")).await.unwrap(),
        std::slice::from_ref(&x_held)
    );
    assert!(s.held(night(), &other_cluster.id).await.unwrap().is_empty());
    assert!(
        s.held(day("2026-11-23"), &svc("any"))
            .await
            .unwrap()
            .is_empty()
    );
    // x holds its place and y is in flight: the cluster is full.
    assert_eq!(
        s.claim(Some(z), &started(z, None), cap).await.unwrap(),
        Claim::ClusterFull
    );
    // y held too: two held places, still full.
    let y_out = ended(&y_started, NightState::Failed);
    assert!(s.finish_holding(&y_started, &y_out).await.unwrap());
    let y_held = HeldRestart {
        id: y.id.clone(),
        deployment_id: "dy".into(),
    };
    assert_eq!(
        held_sorted(s.held(night(), &svc("any")).await.unwrap()),
        held_sorted(vec![x_held.clone(), y_held.clone()])
    );
    assert_eq!(
        s.claim(Some(z), &started(z, None), cap).await.unwrap(),
        Claim::ClusterFull
    );

    // Released once: the place is given back, the other stays held.
    assert!(s.release(night(), &x_held).await.unwrap());
    assert!(!s.release(night(), &x_held).await.unwrap(), "once");
    assert_eq!(
        s.held(night(), &svc("any")).await.unwrap(),
        std::slice::from_ref(&y_held)
    );
    // Never held: this deployment, this night, this service.
    for never in [
        HeldRestart {
            deployment_id: "d-other".into(),
            ..y_held.clone()
        },
        HeldRestart {
            id: svc("never"),
            deployment_id: "d0".into(),
        },
        HeldRestart {
            id: other_cluster.id.clone(),
            deployment_id: "dy".into(),
        },
    ] {
        assert!(!s.release(night(), &never).await.unwrap(), "{never:?}");
    }
    assert!(!s.release(day("2026-11-23"), &y_held).await.unwrap());
    assert_eq!(
        s.claim(Some(z), &started(z, None), cap).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        s.night_status(night()).await.unwrap().counts,
        counts(&[
            (NightState::Started, 4),
            (NightState::TimedOut, 1),
            (NightState::Failed, 1),
        ]),
        "holding counts the outcome; releasing counts nothing"
    );
}

async fn the_counters_count_every_move<S: RestartStore>(s: &S) {
    let records: Vec<NightRecord> = (0..8)
        .map(|i| planned(&svc(&format!("s{i}")), i % 2))
        .collect();
    s.create_records(&records).await.unwrap();
    let outcomes = [
        NightState::Completed,
        NightState::Completed,
        NightState::Failed,
        NightState::RolledBack,
        NightState::Superseded,
    ];
    for (r, outcome) in records.iter().zip(outcomes) {
        let claimed = started(r, None);
        assert_eq!(
            s.claim(Some(r), &claimed, 10).await.unwrap(),
            Claim::Claimed
        );
        let with_dep = started(r, Some(&format!("d-{}", r.id.service)));
        assert!(s.record_deployment(&with_dep).await.unwrap());
        assert!(
            s.finish(&with_dep, &ended(&with_dep, outcome))
                .await
                .unwrap()
        );
    }
    // One still in flight, one halted, one skipped (not counted: a move of the plan).
    s.claim(Some(&records[5]), &started(&records[5], None), 10)
        .await
        .unwrap();
    s.halt_record(&records[6], &halted(&records[6]))
        .await
        .unwrap();
    s.move_record(
        &records[7],
        &records[7].now_skipped(SkipReason::WindowClosed),
    )
    .await
    .unwrap();
    let status = s.night_status(night()).await.unwrap();
    assert_eq!(
        status.counts,
        counts(&[
            (NightState::Started, 6),
            (NightState::Completed, 2),
            (NightState::Failed, 1),
            (NightState::RolledBack, 1),
            (NightState::Superseded, 1),
            (NightState::Halted, 1),
        ])
    );
    assert_eq!((status.finished(), status.failures()), (5, 2));
    assert!(
        s.night_status(day("2026-11-21"))
            .await
            .unwrap()
            .counts
            .is_empty()
    );
}

async fn restarts_lost_with_their_account_are_counted_apart<S: RestartStore>(s: &S) {
    let records: Vec<NightRecord> = (0..3).map(|i| planned(&svc(&format!("l{i}")), 0)).collect();
    s.create_records(&records).await.unwrap();
    let mut in_flight = Vec::new();
    for r in &records {
        assert_eq!(
            s.claim(Some(r), &started(r, None), 10).await.unwrap(),
            Claim::Claimed
        );
        let with_dep = started(r, Some(&format!("d-{}", r.id.service)));
        assert!(s.record_deployment(&with_dep).await.unwrap());
        in_flight.push(with_dep);
    }
    let lost = |r: &NightRecord| NightRecord {
        account_lost: true,
        ..ended(r, NightState::TimedOut)
    };
    // Lost and released, lost and holding its place, and one timed out with its account.
    assert!(s.finish(&in_flight[0], &lost(&in_flight[0])).await.unwrap());
    assert!(
        s.finish_holding(&in_flight[1], &lost(&in_flight[1]))
            .await
            .unwrap()
    );
    assert!(
        s.finish(&in_flight[2], &ended(&in_flight[2], NightState::TimedOut))
            .await
            .unwrap()
    );
    let status = s.night_status(night()).await.unwrap();
    assert_eq!(status.count(NightState::TimedOut), 3);
    assert_eq!(status.lost, 2);
    assert_eq!((status.finished(), status.failures()), (1, 1));
    let back = s
        .find_record(night(), &records[0].id)
        .await
        .unwrap()
        .unwrap();
    assert!(back.account_lost, "{back:?}");
}

// ---------------------------------------------------------------------------------------------
// SharedPace

async fn a_second_of_slots_holds_at_most_its_limit_per_target<S: SharedPace>(s: &S) {
    let t = |account: &str, region: &str| Target {
        account: account.parse().unwrap(),
        region: region.into(),
    };
    let here = t(A, "eu-west-1");
    let second = 1_795_305_600;
    for i in 0..3 {
        assert!(s.take(&here, second, 3).await.unwrap(), "slot {i}");
    }
    assert!(!s.take(&here, second, 3).await.unwrap(), "the fourth");
    assert!(!s.take(&here, second, 3).await.unwrap());
    // Every second, account and region has its own window.
    assert!(s.take(&here, second + 1, 3).await.unwrap());
    assert!(s.take(&t(B, "eu-west-1"), second, 3).await.unwrap());
    assert!(s.take(&t(A, "us-east-1"), second, 3).await.unwrap());
    // The limit is the caller's: a larger one takes what is left, a smaller one none.
    assert!(s.take(&here, second, 4).await.unwrap());
    assert!(!s.take(&here, second, 4).await.unwrap());
    assert!(!s.take(&here, second + 1, 1).await.unwrap());
    assert!(s.take(&here, second + 1, 2).await.unwrap());
    // A window left behind is still full.
    assert!(s.take(&here, second + 2, 1).await.unwrap());
    assert!(!s.take(&here, second, 4).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// NoticeStore

async fn notices_and_digest_progress_round_trip_per_owner<N: NoticeStore>(s: &N) {
    let empty = s.owner_notices("payments").await.unwrap();
    assert!(empty.notices.is_empty() && empty.digests.is_empty());
    let notice = |owner: &str, id: ServiceId, kind, night: &str| NoticeSent {
        owner: owner.into(),
        id,
        kind,
        night: day(night),
        sent_at: at("2026-11-22T06:40:00.5Z"),
    };
    let payments = vec![
        notice("payments", svc("web"), FindingKind::Untagged, "2026-11-20"),
        notice(
            "payments",
            svc("web"),
            FindingKind::DowntimeRisk,
            "2026-11-20",
        ),
        notice(
            "payments",
            svc("api"),
            FindingKind::RestartFailed,
            "2026-11-21",
        ),
        notice(
            "payments",
            sid(B, "us-east-1", "payments", "web"),
            FindingKind::Untagged,
            "2026-11-21",
        ),
    ];
    let others = [
        notice(
            "payments-eu",
            svc("web"),
            FindingKind::Untagged,
            "2026-11-20",
        ),
        notice(
            "équipe 支付",
            svc("web"),
            FindingKind::MalformedTag,
            "2026-11-21",
        ),
    ];
    let mut all = payments.clone();
    all.extend(others.iter().cloned());
    s.put_notices(&all).await.unwrap();
    // Told again tonight: the notice of that service and kind is replaced.
    let retold = notice("payments", svc("web"), FindingKind::Untagged, "2026-11-22");
    s.put_notices(std::slice::from_ref(&retold)).await.unwrap();
    s.put_notices(&[]).await.unwrap();

    let digest = |owner: &str, night: &str, parts, sent| DigestSent {
        owner: owner.into(),
        night: day(night),
        parts,
        sent,
        at: at("2026-11-22T06:41:00Z"),
    };
    s.put_digests(&[
        digest("payments", "2026-11-22", 3, 1),
        digest("payments", "2026-11-21", 1, 1),
        digest("payments-eu", "2026-11-22", 2, 2),
    ])
    .await
    .unwrap();
    // Progress after the next PublishBatch replaces the night's digest.
    s.put_digests(&[digest("payments", "2026-11-22", 3, 3)])
        .await
        .unwrap();

    let mut expected = payments.clone();
    expected[0] = retold;
    let key = |n: &NoticeSent| (n.id.clone(), n.kind);
    expected.sort_by_key(key);
    let mut read = s.owner_notices("payments").await.unwrap();
    read.notices.sort_by_key(key);
    read.digests.sort_by_key(|d| d.night);
    assert_eq!(read.notices, expected);
    assert_eq!(
        read.digests,
        [
            digest("payments", "2026-11-21", 1, 1),
            digest("payments", "2026-11-22", 3, 3),
        ]
    );
    assert!(read.digest(night()).unwrap().complete());

    let unicode = s.owner_notices("équipe 支付").await.unwrap();
    assert_eq!(unicode.notices, [others[1].clone()]);
    assert!(unicode.digests.is_empty());
    let eu = s.owner_notices("payments-eu").await.unwrap();
    assert_eq!(
        (eu.notices, eu.digests),
        (
            vec![others[0].clone()],
            vec![digest("payments-eu", "2026-11-22", 2, 2)]
        )
    );
    assert!(s.owner_notices("pay").await.unwrap().notices.is_empty());
}

// ---------------------------------------------------------------------------------------------
// SettingsStore

fn account(i: usize) -> AccountId {
    format!("{:012}", 100_000_000_000 + i).parse().unwrap()
}

fn owner(o: &str) -> AccountOwner {
    o.parse().unwrap()
}

fn owners(pairs: &[(&str, &str)]) -> BTreeMap<AccountId, AccountOwner> {
    pairs
        .iter()
        .map(|(a, o)| (a.parse().unwrap(), owner(o)))
        .collect()
}

async fn account_owners_round_trip_in_any_script<S: SettingsStore>(s: &S) {
    assert!(s.account_owners().await.unwrap().is_empty());
    s.put_account_owners(&BTreeMap::new()).await.unwrap();
    let longest = "決".repeat(restart_core::owner::MAX_OWNER_CHARS);
    let written = owners(&[
        (A, "payments"),
        (B, "決済チーム"),
        ("333333333333", "e\u{301}quipe-paiements 🚀"),
        ("444444444444", "ｔｅａｍ１２"),
        ("555555555555", "<script>alert(\"x\")</script> & 'ops'"),
        ("666666666666", &longest),
    ]);
    s.put_account_owners(&written).await.unwrap();
    assert_eq!(s.account_owners().await.unwrap(), written);
}

async fn an_account_owner_is_overwritten_and_others_left_alone<S: SettingsStore>(s: &S) {
    s.put_account_owners(&owners(&[(A, "payments"), (B, "search")]))
        .await
        .unwrap();
    s.put_account_owners(&owners(&[(A, "ledger"), ("333333333333", "ops")]))
        .await
        .unwrap();
    assert_eq!(
        s.account_owners().await.unwrap(),
        owners(&[(A, "ledger"), (B, "search"), ("333333333333", "ops")])
    );
}

async fn an_account_owner_is_deleted_once<S: SettingsStore>(s: &S) {
    s.put_account_owners(&owners(&[(A, "payments"), (B, "search")]))
        .await
        .unwrap();
    let a: AccountId = A.parse().unwrap();
    assert!(s.delete_account_owner(&a).await.unwrap());
    assert!(!s.delete_account_owner(&a).await.unwrap(), "already gone");
    assert!(
        !s.delete_account_owner(&"999999999999".parse().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(s.account_owners().await.unwrap(), owners(&[(B, "search")]));
    s.put_account_owners(&owners(&[(A, "payments")]))
        .await
        .unwrap();
    assert_eq!(s.account_owners().await.unwrap().len(), 2, "set again");
}

async fn thousands_of_account_owners_are_read_back_whole<S: SettingsStore>(s: &S) {
    let many: BTreeMap<AccountId, AccountOwner> = (0..2_000)
        .map(|i| (account(i), owner(&format!("team-{} チーム", i % 37))))
        .collect();
    s.put_account_owners(&many).await.unwrap();
    let read = s.account_owners().await.unwrap();
    assert_eq!(read.len(), 2_000);
    assert_eq!(read, many);
}

// ---------------------------------------------------------------------------------------------
// Property: two invocations' moves, interleaved arbitrarily, leave counters equal to the
// records' states, never more restarts in flight in a cluster than the cap, and the fake
// answering every move as the table does.

/// The services the property moves: four in cluster `payments`, two in `search`.
const SERVICES: usize = 6;
/// The cap of restarts in flight per cluster in the property.
const CAP: u32 = 2;
/// The batches that have batch items (a move to any of them stays visible to `read_night`).
const BATCHES: u32 = 3;

fn property_service(i: usize) -> ServiceId {
    let cluster = if i < 4 { "payments" } else { "search" };
    sid(A, "eu-west-1", cluster, &format!("s{i}"))
}

#[derive(Debug, Clone, Copy)]
enum Move {
    /// Reads the service's record again (`find_record`).
    Read,
    Claim,
    Deploy(u8),
    Finish(NightState),
    Hold(NightState),
    Release,
    Halt,
    Skip,
    Rebatch(u32),
}

/// One move of one invocation (`who`) on one service, from that invocation's last read.
#[derive(Debug, Clone, Copy)]
struct Op {
    who: usize,
    service: usize,
    what: Move,
}

fn any_outcome() -> impl Strategy<Value = NightState> {
    prop::sample::select(vec![
        NightState::Completed,
        NightState::Failed,
        NightState::RolledBack,
        NightState::Superseded,
        NightState::TimedOut,
        NightState::Vanished,
    ])
}

fn any_op() -> impl Strategy<Value = Op> {
    let what = prop_oneof![
        2 => Just(Move::Read),
        3 => Just(Move::Claim),
        2 => (0u8..3).prop_map(Move::Deploy),
        2 => any_outcome().prop_map(Move::Finish),
        1 => any_outcome().prop_map(Move::Hold),
        1 => Just(Move::Release),
        1 => Just(Move::Halt),
        1 => Just(Move::Skip),
        1 => (0..BATCHES).prop_map(Move::Rebatch),
    ];
    (0..2usize, 0..SERVICES, what).prop_map(|(who, service, what)| Op { who, service, what })
}

/// Records in flight in `cluster` (any of its services): started records and held places.
async fn in_flight<S: RestartStore>(s: &S, cluster: &ServiceId) -> usize {
    let started = s
        .read_night(night())
        .await
        .unwrap()
        .iter()
        .filter(|r| r.id.cluster_key() == cluster.cluster_key() && r.state == NightState::Started)
        .count();
    started + s.held(night(), cluster).await.unwrap().len()
}

/// Plays `ops` on `s` (fresh) and returns what each move answered, one line each. Checks on
/// the way that a claim is refused for a full cluster only when it is full, and never lets it
/// pass the cap.
async fn play<S: RestartStore>(s: &S, ops: &[Op]) -> Result<Vec<String>, TestCaseError> {
    let initial: Vec<NightRecord> = (0..SERVICES)
        .map(|i| planned(&property_service(i), (i as u32) % 2))
        .collect();
    s.put_batches(
        night(),
        &(0..BATCHES).map(|b| batch(b, 0)).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    s.create_records(&initial).await.unwrap();
    // What each invocation last read or wrote of each service.
    let mut views = [initial.clone(), initial];
    let mut trace = Vec::with_capacity(ops.len());
    for (n, op) in ops.iter().enumerate() {
        let view = views[op.who][op.service].clone();
        let state = view.state;
        let answer: Option<(bool, String, NightRecord)> = match op.what {
            Move::Read => {
                if let Some(now) = s.find_record(night(), &view.id).await.unwrap() {
                    views[op.who][op.service] = now;
                }
                let read = &views[op.who][op.service];
                trace.push(format!("{n}: read {:?} {:?}", read.state, read.batch));
                None
            }
            Move::Claim if state == NightState::Planned => {
                let to = started(&view, None);
                let claim = s.claim(Some(&view), &to, CAP).await.unwrap();
                let inflight = in_flight(s, &view.id).await;
                match claim {
                    Claim::Claimed => prop_assert!(inflight <= CAP as usize, "{n}: {inflight}"),
                    Claim::ClusterFull => prop_assert!(
                        inflight >= CAP as usize,
                        "{n}: refused as full with {inflight} in flight"
                    ),
                    Claim::Moved(_) => {}
                }
                Some((claim == Claim::Claimed, format!("claim {claim:?}"), to))
            }
            Move::Deploy(d) if state == NightState::Started && view.deployment_id.is_none() => {
                let to = started(&view, Some(&format!("d{d}")));
                let ok = s.record_deployment(&to).await.unwrap();
                Some((ok, format!("deploy {ok}"), to))
            }
            Move::Finish(outcome) if state == NightState::Started => {
                let to = ended(&view, outcome);
                let ok = s.finish(&view, &to).await.unwrap();
                Some((ok, format!("finish {outcome} {ok}"), to))
            }
            Move::Hold(outcome) if state == NightState::Started => {
                let to = ended(&view, outcome);
                let ok = s.finish_holding(&view, &to).await.unwrap();
                Some((ok, format!("hold {outcome} {ok}"), to))
            }
            Move::Release if view.deployment_id.is_some() && state.is_terminal() => {
                let held = HeldRestart {
                    id: view.id.clone(),
                    deployment_id: view.deployment_id.clone().unwrap_or_default(),
                };
                let ok = s.release(night(), &held).await.unwrap();
                trace.push(format!("{n}: release {ok}"));
                None
            }
            Move::Halt if state == NightState::Planned => {
                let to = halted(&view);
                let ok = s.halt_record(&view, &to).await.unwrap();
                Some((ok, format!("halt {ok}"), to))
            }
            Move::Skip if state == NightState::Planned => {
                let to = view.now_skipped(SkipReason::WindowClosed);
                let ok = s.move_record(&view, &to).await.unwrap();
                Some((ok, format!("skip {ok}"), to))
            }
            Move::Rebatch(b) if state == NightState::Planned => {
                let to = view.moved_to(b, batch_start(b));
                let ok = s.move_record(&view, &to).await.unwrap();
                Some((ok, format!("rebatch {b} {ok}"), to))
            }
            _ => {
                trace.push(format!("{n}: not for a {state} record"));
                None
            }
        };
        if let Some((written, line, to)) = answer {
            trace.push(format!("{n}: {line}"));
            if written {
                views[op.who][op.service] = to;
            }
        }
    }
    Ok(trace)
}

/// The night's counters against its records: every outcome and halt counted once per record
/// in that state, every start once per record that was started (still, or to an outcome),
/// and no count for planned or skipped (the plan's moves are not counted); no cluster over
/// the cap.
async fn check_counters<S: RestartStore>(s: &S) -> Result<(), TestCaseError> {
    let records = s.read_night(night()).await.unwrap();
    prop_assert_eq!(records.len(), SERVICES, "one record per service");
    let status = s.night_status(night()).await.unwrap();
    let in_state = |state: NightState| records.iter().filter(|r| r.state == state).count() as u64;
    for state in NightState::ALL {
        let expected = match state {
            NightState::Planned | NightState::Skipped => 0,
            NightState::Started => NightState::ALL
                .into_iter()
                .filter(|s| *s == NightState::Started || s.is_restart_outcome())
                .map(in_state)
                .sum(),
            _ => in_state(state),
        };
        prop_assert_eq!(status.count(state), expected, "count of {}", state);
    }
    for cluster in [property_service(0), property_service(5)] {
        let inflight = in_flight(s, &cluster).await;
        prop_assert!(
            inflight <= CAP as usize,
            "{}: {}",
            cluster.cluster,
            inflight
        );
    }
    Ok(())
}

/// Everything the table holds at the end, for comparing two stores.
async fn end_state<S: RestartStore>(s: &S) -> (Vec<NightRecord>, String, Vec<HeldRestart>) {
    let mut held = s.held(night(), &property_service(0)).await.unwrap();
    held.extend(s.held(night(), &property_service(5)).await.unwrap());
    (
        s.read_night(night()).await.unwrap(),
        format!("{:?}", s.night_status(night()).await.unwrap()),
        held_sorted(held),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_counters_equal_the_records_states(ops in prop::collection::vec(any_op(), 1..60)) {
        let rt = testkit::runtime();
        rt.block_on(async {
            let s = MemoryStore::default();
            play(&s, &ops).await?;
            check_counters(&s).await
        })?;
    }
}

proptest! {
    // Each case is a table in moto and a few hundred requests: a handful of cases keeps the
    // file well under a minute, and the memory run above covers the breadth.
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn dynamo_answers_every_move_as_the_fake_does(ops in prop::collection::vec(any_op(), 20..60)) {
        let rt = testkit::runtime();
        rt.block_on(async {
            let real = dynamo().await;
            let fake = MemoryStore::default();
            let real_trace = play(&real, &ops).await?;
            let fake_trace = play(&fake, &ops).await?;
            prop_assert_eq!(real_trace, fake_trace);
            check_counters(&real).await?;
            prop_assert_eq!(end_state(&real).await, end_state(&fake).await);
            Ok(())
        })?;
    }
}
