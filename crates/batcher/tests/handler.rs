//! The batcher handler's logic, with the in-memory store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use batcher::Batcher;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use restart_core::catalog::InventoryRun;
use restart_core::catalog::{CatalogRecord, InventoryCounts, Target};
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::NightPlan;
use restart_core::outcome::NightState;
use restart_core::owner::OwnerSource;
use restart_core::ports::{CatalogStore, NightStore};
use restart_core::{Config, ErrorType};
use serde_json::json;
use testkit::fakes::MemoryStore;

const A: &str = "111111111111";
const B: &str = "222222222222";

fn day(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

fn night() -> NaiveDate {
    day("2026-11-22")
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("TABLE_NAME", "t"),
        ("ACCOUNTS", "111111111111,222222222222"),
        ("REGIONS", "eu-west-1"),
        ("MEMBER_ROLE_NAME", "member"),
    ];
    vars.extend_from_slice(extra);
    Config::from_vars(vars).unwrap()
}

fn id(account: &str, cluster: &str, service: &str) -> ServiceId {
    testkit::fixtures::service_id(account, cluster, service)
}

/// A catalog record seen on `seen`, eligible unless `skip` says otherwise.
fn record(sid: &ServiceId, skip: Option<SkipReason>, seen: NaiveDate) -> CatalogRecord {
    CatalogRecord {
        owner_source: OwnerSource::ClusterTag,
        skip_reason: skip,
        ..testkit::fixtures::enrolled_record(sid.clone(), format!("{}-team", sid.cluster), seen)
    }
}

fn handler(config: Config, store: MemoryStore) -> Batcher<MemoryStore> {
    Batcher {
        config: Arc::new(config),
        store,
        clock: Arc::new(ManualClock::new(at("2026-11-21T23:30:00Z"))),
    }
}

/// `n` eligible services of account A spread over clusters `c0..c{clusters}`.
fn eligible(n: usize, clusters: usize) -> Vec<ServiceId> {
    (0..n)
        .map(|i| id(A, &format!("c{}", i % clusters), &format!("s{i:02}")))
        .collect()
}

async fn put(store: &MemoryStore, records: Vec<CatalogRecord>) {
    store.put_catalog(&records).await.unwrap();
}

/// Each planned service's batch, from the store.
async fn assignment(store: &MemoryStore, night: NaiveDate) -> BTreeMap<ServiceId, u32> {
    store.read_assignment(night).await.unwrap()
}

/// Checks a returned plan against the records: every batch's size is its record count.
async fn check_sizes(store: &MemoryStore, plan: &NightPlan) {
    for b in &plan.batches {
        let records = store.read_batch(plan.night, b.batch).await.unwrap();
        assert_eq!(records.len() as u32, b.size, "batch {}", b.batch);
    }
}

#[tokio::test]
async fn plans_eligible_services_and_records_the_skipped_with_their_reasons() {
    let store = MemoryStore::default();
    let ids = eligible(10, 3);
    let mut records: Vec<CatalogRecord> = ids.iter().map(|i| record(i, None, night())).collect();
    let untagged = id(B, "x", "untagged");
    let opted_out = id(B, "x", "opted-out");
    let gone = id(B, "x", "gone");
    let unseen = id(B, "x", "unseen");
    records.push(record(&untagged, Some(SkipReason::Untagged), night()));
    records.push(record(&opted_out, Some(SkipReason::OptedOut), night()));
    records.push(CatalogRecord {
        gone_since: Some(night()),
        ..record(&gone, None, day("2026-11-21"))
    });
    records.push(record(&unseen, None, day("2026-11-21")));
    put(&store, records).await;
    let h = handler(config(&[]), store);

    // No night given: the window 00:00-06:00 UTC that starts in 30 minutes.
    let plan = h.handle(json!({})).await.unwrap();
    assert_eq!(plan.night, night());
    // 10 services and a window of 36 slots: 10 batches of one, ten minutes apart.
    assert_eq!(plan.batches.len(), 10);
    for (k, b) in plan.batches.iter().enumerate() {
        assert_eq!(b.batch, k as u32);
        assert_eq!(b.size, 1);
        assert_eq!(
            b.start_at,
            at("2026-11-22T00:00:00Z") + TimeDelta::minutes(10 * k as i64)
        );
    }
    let store = &h.store;
    let planned = assignment(store, night()).await;
    assert_eq!(
        planned.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect(),
        "exactly the eligible services are planned"
    );
    check_sizes(store, &plan).await;
    let api = store.record(night(), &ids[3]).unwrap();
    assert_eq!(api.state, NightState::Planned);
    assert_eq!(api.owner, "c0-team");
    assert_eq!(
        api.planned_start,
        Some(plan.batches[api.batch.unwrap() as usize].start_at)
    );

    let skipped: BTreeMap<ServiceId, Option<SkipReason>> = store
        .read_skipped(night())
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            assert_eq!(r.state, NightState::Skipped);
            assert_eq!(r.batch, None);
            (r.id, r.skip_reason)
        })
        .collect();
    assert_eq!(
        skipped,
        BTreeMap::from([
            (untagged, Some(SkipReason::Untagged)),
            (opted_out, Some(SkipReason::OptedOut)),
        ])
    );
    assert!(store.record(night(), &gone).is_none(), "gone: left out");
    assert!(store.record(night(), &unseen).is_none(), "unseen: left out");
    let summary = store.plan_summary(night()).await.unwrap().unwrap();
    assert_eq!(
        (summary.planned, summary.skipped, summary.batches),
        (10, 2, 10)
    );
}

#[tokio::test]
async fn the_output_holds_only_the_night_and_its_batches_and_stays_small() {
    let store = MemoryStore::default();
    let ids = eligible(400, 7);
    put(
        &store,
        ids.iter().map(|i| record(i, None, night())).collect(),
    )
    .await;
    // A 24-hour window with a 5-minute interval: well over 200 batches (10-minute polls keep
    // their worst case inside one execution's history).
    let h = handler(
        config(&[
            ("WINDOW_START", "00:00"),
            ("WINDOW_END", "23:59"),
            ("BATCH_INTERVAL_MINUTES", "5"),
            ("POLL_INTERVAL_SECONDS", "600"),
        ]),
        store,
    );
    let plan = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    assert!(plan.batches.len() >= 200, "{}", plan.batches.len());
    let value = serde_json::to_value(&plan).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["batches", "night"]);
    let first: Vec<&String> = value["batches"][0].as_object().unwrap().keys().collect();
    assert_eq!(first, ["batch", "size", "start_at"]);
    assert_eq!(value["batches"][1]["start_at"], "2026-11-22T00:05:00Z");
    let bytes = serde_json::to_vec(&value).unwrap().len();
    assert!(bytes < 64 * 1024, "{bytes} bytes");
}

#[tokio::test]
async fn a_rerun_returns_the_same_plan_and_writes_nothing() {
    let store = MemoryStore::default();
    let ids = eligible(30, 4);
    put(
        &store,
        ids.iter().map(|i| record(i, None, night())).collect(),
    )
    .await;
    let h = handler(config(&[]), store);
    let first = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    let writes = h.store.night_writes();
    assert!(writes > 0);

    // Even a changed catalog does not change a complete plan without `replan`.
    put(&h.store, vec![record(&id(B, "new", "svc"), None, night())]).await;
    let again = h
        .handle(json!({ "night": "2026-11-22", "replan": false }))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(h.store.night_writes(), writes, "nothing rewritten");
    assert!(h.store.record(night(), &id(B, "new", "svc")).is_none());
}

#[tokio::test]
async fn a_run_that_stopped_half_way_is_finished_by_the_next() {
    let store = MemoryStore::default();
    let ids = eligible(12, 3);
    put(
        &store,
        ids.iter().map(|i| record(i, None, night())).collect(),
    )
    .await;
    let h = handler(config(&[]), store);
    let complete = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    // Lose the summary and two records, as if the run had stopped while writing.
    {
        let mut nights = h.store.nights.lock().unwrap();
        nights.summaries.clear();
        nights.records.remove(&(night(), ids[0].clone()));
        nights.records.remove(&(night(), ids[5].clone()));
    }
    let again = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    assert_eq!(again, complete);
    assert_eq!(assignment(&h.store, night()).await.len(), 12);
    assert!(h.store.plan_summary(night()).await.unwrap().is_some());
}

#[tokio::test]
async fn replan_moves_only_planned_services() {
    let store = MemoryStore::default();
    let ids = eligible(12, 3);
    let was_untagged = id(B, "x", "was-untagged");
    let mut records: Vec<CatalogRecord> = ids.iter().map(|i| record(i, None, night())).collect();
    records.push(record(&was_untagged, Some(SkipReason::Untagged), night()));
    put(&store, records).await;
    // A one-hour window holds 6 batches: 12 services in batches of 2.
    let h = handler(config(&[("WINDOW_END", "01:00")]), store);
    let first = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    assert_eq!(first.batches.len(), 6);
    let before = assignment(&h.store, night()).await;

    // The restarter starts one service; then inventory finds the fleet changed: four
    // services gone (one of them already started), two new, the untagged one now tagged.
    let started_id = ids[0].clone();
    let mut started = h.store.record(night(), &started_id).unwrap();
    started.state = NightState::Started;
    started.deployment_id = Some("ecs-svc/1".into());
    started.started_at = Some(at("2026-11-22T00:00:05Z"));
    h.store.set_record(started.clone());
    let removed = [
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[7].clone(),
    ];
    let mut changes: Vec<CatalogRecord> = removed
        .iter()
        .map(|i| CatalogRecord {
            gone_since: Some(night()),
            ..record(i, None, night())
        })
        .collect();
    let added = [id(B, "y", "new-1"), id(B, "y", "new-2")];
    changes.extend(added.iter().map(|i| record(i, None, night())));
    changes.push(record(&was_untagged, None, night()));
    put(&h.store, changes).await;

    let replanned = h
        .handle(json!({ "night": "2026-11-22", "replan": true }))
        .await
        .unwrap();
    check_sizes(&h.store, &replanned).await;
    // The started service is untouched, in its batch.
    assert_eq!(h.store.record(night(), &started_id).unwrap(), started);
    // Planned services that are gone are skipped as not found.
    for gone in &removed[1..] {
        let r = h.store.record(night(), gone).unwrap();
        assert_eq!(r.state, NightState::Skipped, "{gone}");
        assert_eq!(r.skip_reason, Some(SkipReason::NotFound));
        assert_eq!(r.batch, None);
    }
    // A skipped record is final for the night, even if the service became eligible.
    let r = h.store.record(night(), &was_untagged).unwrap();
    assert_eq!(r.state, NightState::Skipped);
    let after = assignment(&h.store, night()).await;
    let mut expected: BTreeSet<ServiceId> = ids
        .iter()
        .filter(|i| !removed[1..].contains(i))
        .cloned()
        .collect();
    expected.extend(added.iter().cloned());
    assert_eq!(after.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (sid, b) in &after {
        let r = h.store.record(night(), sid).unwrap();
        assert_eq!(r.batch, Some(*b));
        assert!(r.planned_start.is_some(), "{sid}");
        if before.get(sid).is_some_and(|old| old != b) {
            assert_eq!(
                r.state,
                NightState::Planned,
                "{sid} moved but was not planned"
            );
        }
    }
    let summary = h.store.plan_summary(night()).await.unwrap().unwrap();
    assert_eq!(summary.planned, expected.len() as u64);
    assert_eq!(summary.skipped, 3 + 1);
}

#[tokio::test]
async fn services_keep_last_nights_batch() {
    let store = MemoryStore::default();
    let ids = eligible(50, 6);
    put(
        &store,
        ids.iter()
            .map(|i| record(i, None, day("2026-11-21")))
            .collect(),
    )
    .await;
    let h = handler(config(&[]), store);
    h.handle(json!({ "night": "2026-11-21" })).await.unwrap();
    let last_night = assignment(&h.store, day("2026-11-21")).await;
    assert_eq!(last_night.len(), 50);

    // Tonight the same services plus one new one.
    let mut tonight: Vec<CatalogRecord> = ids.iter().map(|i| record(i, None, night())).collect();
    tonight.push(record(&id(A, "c0", "zz-new"), None, night()));
    put(&h.store, tonight).await;
    h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    let tonight = assignment(&h.store, night()).await;
    assert_eq!(tonight.len(), 51);
    let kept = last_night
        .iter()
        .filter(|(sid, b)| tonight.get(*sid) == Some(*b))
        .count();
    assert!(kept >= 48, "only {kept} of 50 kept their batch");
}

#[tokio::test]
async fn no_eligible_service_is_an_empty_plan() {
    let store = MemoryStore::default();
    put(
        &store,
        vec![record(
            &id(A, "c", "off"),
            Some(SkipReason::OptedOut),
            night(),
        )],
    )
    .await;
    let h = handler(config(&[]), store);
    let plan = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    assert!(plan.batches.is_empty());
    assert_eq!(h.store.read_skipped(night()).await.unwrap().len(), 1);
    let writes = h.store.night_writes();
    let again = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    assert_eq!(again, plan);
    assert_eq!(h.store.night_writes(), writes);
}

/// The worst settings the configuration accepts (a 24-hour window of 1-minute batches, 720-minute
/// timeouts, 1-second polls) would overflow one execution's 25,000 history events: refused
/// before anything is written, naming the settings.
#[tokio::test]
async fn a_plan_whose_worst_case_overflows_the_execution_history_is_refused() {
    let store = MemoryStore::default();
    let ids = eligible(3000, 50);
    put(
        &store,
        ids.iter().map(|i| record(i, None, night())).collect(),
    )
    .await;
    let h = handler(
        config(&[
            ("WINDOW_START", "00:00"),
            ("WINDOW_END", "23:59"),
            ("BATCH_INTERVAL_MINUTES", "1"),
            ("RESTART_TIMEOUT_MINUTES", "720"),
            ("POLL_INTERVAL_SECONDS", "1"),
        ]),
        store,
    );
    let err = h
        .handle(json!({ "night": "2026-11-22" }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::Misconfigured);
    for setting in [
        "BATCH_INTERVAL_MINUTES",
        "RESTART_TIMEOUT_MINUTES=720",
        "POLL_INTERVAL_SECONDS=1",
        "history events",
    ] {
        assert!(err.message.contains(setting), "{setting}: {err}");
    }
    assert_eq!(h.store.night_writes(), 0);
}

#[tokio::test]
async fn a_window_shorter_than_a_restart_is_misconfigured() {
    let store = MemoryStore::default();
    put(&store, vec![record(&id(A, "c", "s"), None, night())]).await;
    let h = handler(config(&[("WINDOW_END", "00:05")]), store);
    let err = h
        .handle(json!({ "night": "2026-11-22" }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::Misconfigured);
    assert!(err.message.contains("shorter than the 10 min"), "{err}");
    assert_eq!(h.store.night_writes(), 0);
}

#[tokio::test]
async fn bad_input_is_invalid_input_naming_the_field() {
    let h = handler(config(&[]), MemoryStore::default());
    for (event, field) in [
        (json!({ "night": "22/11/2026" }), "night"),
        (json!({ "replan": "yes" }), "replan"),
        (json!({ "nite": "2026-11-22" }), "nite"),
        (json!([1, 2]), "event"),
    ] {
        let err = h.handle(event.clone()).await.unwrap_err();
        assert_eq!(err.error_type, ErrorType::InvalidInput, "{event}");
        assert!(err.message.contains(field), "{event}: {}", err.message);
    }
    assert_eq!(h.store.night_writes(), 0);
}

#[tokio::test]
async fn with_the_aggregator_the_accounts_are_those_inventory_reached() {
    let store = MemoryStore::default();
    put(
        &store,
        vec![
            record(&id(A, "c", "reached"), None, night()),
            record(&id(B, "c", "not-reached"), None, night()),
        ],
    )
    .await;
    let h = handler(
        Config::from_vars([
            ("TABLE_NAME", "t"),
            ("ACCOUNTS_SOURCE", "config-aggregator"),
            ("AGGREGATOR_NAME", "org"),
            ("REGIONS", "eu-west-1"),
            ("MEMBER_ROLE_NAME", "member"),
        ])
        .unwrap(),
        store,
    );
    let err = h
        .handle(json!({ "night": "2026-11-22" }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidInput);
    assert!(err.message.contains("no inventory run"), "{err}");

    h.store
        .put_inventory_run(&InventoryRun {
            night: night(),
            started_at: at("2026-11-21T23:00:00Z"),
            finished_at: at("2026-11-21T23:01:00Z"),
            reached: vec![Target {
                account: A.parse().unwrap(),
                region: "eu-west-1".into(),
            }],
            unreachable: vec![],
            counts: InventoryCounts::default(),
        })
        .await
        .unwrap();
    let plan = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    assert_eq!(plan.batches.len(), 1);
    let planned = assignment(&h.store, night()).await;
    assert_eq!(
        planned.keys().cloned().collect::<Vec<_>>(),
        [id(A, "c", "reached")]
    );
}

/// A cluster of 30 services restarting 10 minutes each, one at a time (cap 1), needs 5 hours
/// in a 1-hour window: the plan names it (most crowded first), the other cluster is not named.
#[tokio::test]
async fn clusters_that_cannot_fit_the_window_under_the_cap_are_named() {
    let store = MemoryStore::default();
    let mut records: Vec<CatalogRecord> = (0..30)
        .map(|i| record(&id(A, "crowded", &format!("s{i}")), None, night()))
        .collect();
    records.push(record(&id(B, "roomy", "s0"), None, night()));
    put(&store, records).await;
    let h = handler(
        config(&[
            ("WINDOW_START", "00:00"),
            ("WINDOW_END", "01:00"),
            ("MAX_INFLIGHT_PER_CLUSTER", "1"),
        ]),
        store,
    );
    let plan = h.handle(json!({ "night": "2026-11-22" })).await.unwrap();
    assert_eq!(plan.crowded.len(), 1, "{:?}", plan.crowded);
    let c = &plan.crowded[0];
    assert_eq!(c.cluster, format!("{A}/eu-west-1/crowded"));
    assert_eq!(c.services, 30);
    assert_eq!(c.needs_seconds, 30 * 600);
    assert_eq!(c.window_seconds, 3600);
    let value = serde_json::to_value(&plan).unwrap();
    assert_eq!(value["crowded"][0]["cluster"], c.cluster);
}
