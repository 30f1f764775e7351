//! The inventory handler's logic, with in-memory fakes for the ports.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use inventory::Inventory;
use restart_core::catalog::{DiscoveredService, Target};
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::ports::{CatalogStore, DiscoveryError, ListedAccounts};
use restart_core::tag::{TagStateKind, Tags};
use restart_core::telemetry::ApiCalls;
use restart_core::{Config, ErrorType};
use serde_json::json;
use testkit::fakes::{MemoryFleet, MemoryStore};
use testkit::fixtures::active_snapshot;

const A: &str = "111111111111";
const B: &str = "222222222222";
const C: &str = "333333333333";

fn config() -> Config {
    Config::from_vars([
        ("TABLE_NAME", "t"),
        ("ACCOUNTS", "111111111111,222222222222,333333333333"),
        ("REGIONS", "eu-west-1,us-east-1"),
        ("MEMBER_ROLE_NAME", "member"),
        ("ACCOUNT_OWNERS", "222222222222=platform-b"),
    ])
    .unwrap()
}

fn service(
    account: &str,
    region: &str,
    cluster: &str,
    name: &str,
    tag: Option<&str>,
) -> DiscoveredService {
    let mut tags = Tags::new();
    if let Some(v) = tag {
        tags.insert("ecs_task_daily_restart".into(), v.into());
    }
    let id = ServiceId {
        account: account.parse().unwrap(),
        region: region.into(),
        cluster: cluster.into(),
        service: name.into(),
    };
    DiscoveredService {
        snapshot: active_snapshot(id, tags),
        cluster_tags: [("team".to_owned(), format!("{cluster}-team"))]
            .into_iter()
            .collect(),
    }
}

fn now() -> DateTime<Utc> {
    "2026-11-21T23:30:00Z".parse().unwrap()
}

fn handler() -> Inventory<ListedAccounts, MemoryFleet, MemoryStore> {
    let c = config();
    let accounts = match &c.accounts {
        restart_core::config::AccountsSource::List(a) => a.clone(),
        _ => unreachable!(),
    };
    let fleet = MemoryFleet::default();
    fleet.add(service(
        A,
        "eu-west-1",
        "payments",
        "api",
        Some("2026-11-21T01:10:00Z"),
    ));
    fleet.add(service(A, "eu-west-1", "payments", "worker", None));
    fleet.add(service(A, "us-east-1", "edge", "proxy", Some("enabled")));
    fleet.add(service(
        B,
        "eu-west-1",
        "search",
        "indexer",
        Some("disabled"),
    ));
    fleet.add(service(
        B,
        "eu-west-1",
        "search",
        "query",
        Some("skip-until:2026-12-01"),
    ));
    fleet.add(service(B, "eu-west-1", "search", "ranker", Some("soon")));
    fleet.add(service(C, "eu-west-1", "secret", "vault", Some("enabled")));
    fleet.fail(
        Target {
            account: C.parse().unwrap(),
            region: "eu-west-1".into(),
        },
        DiscoveryError::AccessDenied(
            "AssumeRole arn:aws:iam::333333333333:role/member: AccessDenied".into(),
        ),
    );
    fleet.fail(
        Target {
            account: C.parse().unwrap(),
            region: "us-east-1".into(),
        },
        DiscoveryError::AccessDenied(
            "AssumeRole arn:aws:iam::333333333333:role/member: AccessDenied".into(),
        ),
    );
    Inventory {
        config: Arc::new(c),
        directory: ListedAccounts(accounts),
        fleet,
        store: MemoryStore::default(),
        clock: Arc::new(ManualClock::new(now())),
        calls: Arc::new(ApiCalls::default()),
    }
}

fn night() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

#[tokio::test]
async fn counts_every_tag_state_and_reports_the_denied_account() {
    let h = handler();
    // No night given: tonight's window (00:00-06:00 UTC) starts in 30 minutes.
    let s = h.handle(json!({})).await.unwrap();
    assert_eq!(s.night, night());
    assert_eq!(s.services_found, 6);
    assert_eq!(s.accounts_reached, 2);
    assert_eq!(s.unreachable_count, 2, "both regions of the denied account");
    assert!(
        s.unreachable_sample
            .iter()
            .all(|u| u.account.as_str() == C && u.error.contains("AccessDenied"))
    );
    let by_state = &s.counts.by_tag_state;
    assert_eq!(by_state[&TagStateKind::Enrolled], 2);
    assert_eq!(by_state[&TagStateKind::Untagged], 1);
    assert_eq!(by_state[&TagStateKind::OptedOut], 1);
    assert_eq!(by_state[&TagStateKind::Snoozed], 1);
    assert_eq!(by_state[&TagStateKind::Malformed], 1);
    assert_eq!(s.counts.by_skip_reason[&SkipReason::Untagged], 1);
    assert_eq!(s.counts.by_skip_reason[&SkipReason::OptedOut], 1);
    assert_eq!(s.counts.by_skip_reason[&SkipReason::Snoozed], 1);
    assert_eq!(s.counts.eligible, 3, "two enrolled and the malformed one");
    assert_eq!(s.counts.written, 6);

    let catalog = h.store.catalog.lock().unwrap().clone();
    let ranker = catalog.values().find(|r| r.id.service == "ranker").unwrap();
    assert_eq!(ranker.tag_state, TagStateKind::Malformed);
    assert_eq!(ranker.tag_value.as_deref(), Some("soon"));
    assert_eq!(ranker.owner, "search-team", "cluster tag");
    assert_eq!(ranker.first_seen, night());
    let run = h.store.runs.lock().unwrap()[&night()].clone();
    assert_eq!(run.reached.len(), 4);
    assert_eq!(run.counts, s.counts);
}

#[tokio::test]
async fn a_rerun_of_the_same_night_writes_nothing() {
    let h = handler();
    h.handle(json!({"night": "2026-11-22"})).await.unwrap();
    let before = h.store.catalog.lock().unwrap().clone();
    let s = h.handle(json!({"night": "2026-11-22"})).await.unwrap();
    assert_eq!(s.counts.written, 0);
    assert_eq!(s.counts.gone, 0);
    assert_eq!(*h.store.catalog.lock().unwrap(), before);
}

/// The nightly case: nothing changed since last night. No record is written; each
/// account-region reached is marked listed once, and every service found reads as seen tonight.
#[tokio::test]
async fn a_following_night_over_an_unchanged_fleet_writes_only_its_listings() {
    let h = handler();
    h.handle(json!({"night": "2026-11-22"})).await.unwrap();
    let (records, listings) = (
        *h.store.catalog_writes.lock().unwrap(),
        *h.store.listed_writes.lock().unwrap(),
    );
    assert_eq!((records, listings), (6, 4), "A and B, two regions each");
    let before = h.store.catalog.lock().unwrap().clone();

    let s = h.handle(json!({"night": "2026-11-23"})).await.unwrap();
    assert_eq!(
        (s.counts.written, s.counts.gone, s.services_found),
        (0, 0, 6)
    );
    assert_eq!(*h.store.catalog_writes.lock().unwrap(), records);
    assert_eq!(*h.store.listed_writes.lock().unwrap(), listings + 4);
    assert_eq!(
        *h.store.catalog.lock().unwrap(),
        before,
        "no record rewritten"
    );
    let accounts = [A, B, C].map(|a| a.parse().unwrap());
    let read = h.store.read_catalog(&accounts).await.unwrap();
    assert_eq!(read.len(), 6);
    let next = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    assert!(
        read.iter()
            .all(|r| r.last_seen == next && r.first_seen == night())
    );
}

#[tokio::test]
async fn a_deleted_service_is_marked_gone_once_and_kept() {
    let h = handler();
    h.handle(json!({"night": "2026-11-22"})).await.unwrap();
    let worker = ServiceId {
        account: A.parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: "payments".into(),
        service: "worker".into(),
    };
    h.fleet.remove(&worker);
    let s = h.handle(json!({"night": "2026-11-23"})).await.unwrap();
    assert_eq!(s.counts.gone, 1);
    assert_eq!(s.services_found, 5);
    let record = h.store.catalog.lock().unwrap()[&worker].clone();
    assert_eq!(record.gone_since, NaiveDate::from_ymd_opt(2026, 11, 23));
    assert_eq!(record.first_seen, night());
    let s = h.handle(json!({"night": "2026-11-23"})).await.unwrap();
    assert_eq!((s.counts.gone, s.counts.written), (0, 0));
}

#[tokio::test]
async fn an_unreachable_account_keeps_its_catalog() {
    let h = handler();
    // Last night the account was reachable.
    let vault = service(C, "eu-west-1", "secret", "vault", Some("enabled"));
    h.store.catalog.lock().unwrap().insert(
        vault.snapshot.id.clone(),
        restart_core::catalog::CatalogRecord::discovered(
            &vault,
            "ecs_task_daily_restart",
            &restart_core::tag::TagState::Enrolled { last_restart: None },
            (
                "secret-team".into(),
                restart_core::owner::OwnerSource::ClusterTag,
            ),
            None,
            NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            None,
        ),
    );
    let s = h.handle(json!({"night": "2026-11-22"})).await.unwrap();
    assert_eq!(s.counts.gone, 0);
    let record = h.store.catalog.lock().unwrap()[&vault.snapshot.id].clone();
    assert_eq!(record.gone_since, None);
    assert_eq!(
        record.last_seen,
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    );
}

#[tokio::test]
async fn bad_events_are_invalid_input_naming_the_problem() {
    let h = handler();
    for (event, expected) in [
        (json!({"night": "tomorrow"}), "night"),
        (json!({"nite": "2026-11-22"}), "unknown field `nite`"),
        (json!([1, 2]), "invalid type"),
    ] {
        let err = h.handle(event).await.unwrap_err();
        assert_eq!(err.error_type, ErrorType::InvalidInput);
        assert!(err.message.contains(expected), "{}", err.message);
    }
    assert!(
        h.store.catalog.lock().unwrap().is_empty(),
        "nothing written"
    );
}

#[tokio::test]
async fn the_metrics_line_carries_the_counts_and_the_calls_per_action() {
    let h = handler();
    let s = h.handle(json!({"night": "2026-11-22"})).await.unwrap();
    let calls = [
        ("ListClusters".to_owned(), 4u64),
        ("DescribeServices".to_owned(), 9),
    ]
    .into_iter()
    .collect();
    let line = inventory::metrics(&s, 1, &calls).line(now());
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ServicesFound"], json!(6.0));
    assert_eq!(v["AccountsUnreachable"], json!(1.0));
    assert_eq!(v["ApiCallsListClusters"], json!(4.0));
    assert_eq!(v["ApiCallsDescribeServices"], json!(9.0));
    assert_eq!(v["Function"], json!("inventory"));
    let declared: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    for name in [
        "ServicesFound",
        "AccountsUnreachable",
        "DiscoveryMs",
        "DurationMs",
        "ApiCallsListClusters",
    ] {
        assert!(declared.contains(&name), "{name} is declared as a metric");
    }
}

#[tokio::test]
async fn one_execution_at_a_time_holds_the_night_until_its_lock_lapses() {
    let h = handler();
    let first =
        json!({"night": "2026-11-22", "execution": "arn:aws:states:eu-west-1:1:execution:n:first"});
    let second = json!({"night": "2026-11-22", "execution": "arn:aws:states:eu-west-1:1:execution:n:second"});

    h.handle(first.clone()).await.unwrap();
    let lock = h.store.locks.lock().unwrap()[&night()].clone();
    assert!(lock.holder.ends_with(":first"));
    // The window ends at 06:00 UTC; the last restarts may run 30 minutes more.
    assert_eq!(
        lock.until,
        "2026-11-22T06:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );

    // Another execution of the same night is refused before any discovery or write.
    let writes = *h.store.catalog_writes.lock().unwrap();
    let runs = h.store.runs.lock().unwrap().len();
    let err = h.handle(second.clone()).await.unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidInput);
    assert!(err.message.contains(":first"), "{}", err.message);
    assert!(
        err.message.contains("2026-11-22T06:30:00Z"),
        "{}",
        err.message
    );
    assert_eq!(*h.store.catalog_writes.lock().unwrap(), writes);
    assert_eq!(h.store.runs.lock().unwrap().len(), runs);

    // The holder's retried step goes through; without an execution (a direct call) no lock is
    // asked for.
    h.handle(first).await.unwrap();
    h.handle(json!({"night": "2026-11-22"})).await.unwrap();

    // Once the lock has lapsed, another execution takes the night.
    let h = Inventory {
        clock: Arc::new(ManualClock::new("2026-11-22T06:31:00Z".parse().unwrap())),
        ..h
    };
    h.handle(second).await.unwrap();
    assert!(
        h.store.locks.lock().unwrap()[&night()]
            .holder
            .ends_with(":second")
    );
}

/// 1,000 accounts in two regions, every one denied with a long error: the output stays a small
/// state payload (far under Step Functions' 256 KB) and the run's item under DynamoDB's 400 KB,
/// while the whole list is kept.
#[tokio::test]
async fn two_thousand_unreachable_account_regions_keep_the_output_small() {
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("{:012}", 100_000_000_000u64 + i))
        .collect();
    let c = Config::from_vars([
        ("TABLE_NAME", "t".to_owned()),
        ("ACCOUNTS", ids.join(",")),
        ("REGIONS", "eu-west-1,us-east-1".to_owned()),
        ("MEMBER_ROLE_NAME", "member".to_owned()),
    ])
    .unwrap();
    let accounts = match &c.accounts {
        restart_core::config::AccountsSource::List(a) => a.clone(),
        _ => unreachable!(),
    };
    let fleet = MemoryFleet::default();
    let long = "é".repeat(2_000);
    for a in &accounts {
        for region in ["eu-west-1", "us-east-1"] {
            fleet.fail(
                Target {
                    account: a.clone(),
                    region: region.into(),
                },
                DiscoveryError::AccessDenied(format!("AssumeRole {a}: AccessDenied: {long}")),
            );
        }
    }
    let store = MemoryStore::default();
    let h = Inventory {
        config: Arc::new(c),
        directory: ListedAccounts(accounts),
        fleet,
        store,
        clock: Arc::new(ManualClock::new(now())),
        calls: Arc::new(ApiCalls::default()),
    };
    let s = h.handle(json!({})).await.unwrap();
    assert_eq!(s.unreachable_count, 2_000);
    assert_eq!(s.unreachable_sample.len(), inventory::UNREACHABLE_SAMPLE);
    // docs/performance.md ("Step Functions' limits") records this size.
    let payload = serde_json::to_vec(&s).unwrap().len();
    assert!(payload < 4 * 1024, "output of {payload} bytes");
    let run = restart_core::ports::CatalogStore::get_inventory_run(&h.store, s.night)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.unreachable.len(), 2_000);
    assert!(
        run.unreachable
            .iter()
            .all(|u| u.error.len() <= inventory::ERROR_BYTES && u.error.contains("AccessDenied"))
    );
    let item = serde_json::to_vec(&run).unwrap().len();
    assert!(item < 400 * 1024, "inventory run of {item} bytes");
}
