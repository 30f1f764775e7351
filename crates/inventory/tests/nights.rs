//! The catalog over many nights, through the handler with in-memory fakes: whatever the fleet
//! does from night to night (services appear, disappear, come back, have their tag changed or
//! their restart time rewritten; account-regions become unreachable and reachable again), the
//! catalog read back says what a model of the contract says, and the inventory writes a record
//! only when its facts changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use inventory::Inventory;
use proptest::prelude::*;
use restart_core::Config;
use restart_core::catalog::{CatalogRecord, DiscoveredService, Target};
use restart_core::clock::ManualClock;
use restart_core::ids::{AccountId, ServiceId};
use restart_core::ports::{CatalogStore, DiscoveryError, ListedAccounts};
use restart_core::tag::Tags;
use restart_core::telemetry::ApiCalls;
use serde_json::json;
use testkit::fakes::{MemoryFleet, MemoryStore};
use testkit::fixtures::active_snapshot;

const ACCOUNTS: [&str; 2] = ["111111111111", "222222222222"];
const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];
const SERVICES: usize = 3;
const TAG: &str = "ecs_task_daily_restart";

/// A service's enrollment tag on a night. The two restart times are what the restarter writes
/// after each restart: one is no change from the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Enabled,
    RestartedAt(u8),
    Disabled,
}

impl Tag {
    fn value(self) -> String {
        match self {
            Tag::Enabled => "enabled".into(),
            Tag::RestartedAt(h) => format!("2026-11-21T0{}:10:00Z", h % 10),
            Tag::Disabled => "disabled".into(),
        }
    }

    /// What the catalog keeps as a fact: a restart time is one fact whatever the time.
    fn fact(self) -> u8 {
        match self {
            Tag::Enabled => 0,
            Tag::RestartedAt(_) => 1,
            Tag::Disabled => 2,
        }
    }
}

/// One night of the fleet: each service's tag when it exists, and which account-regions
/// cannot be entered.
#[derive(Debug, Clone)]
struct Night {
    services: Vec<Option<Tag>>,
    unreachable: Vec<bool>,
}

fn any_tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        Just(Tag::Enabled),
        (0u8..3).prop_map(Tag::RestartedAt),
        Just(Tag::Disabled),
    ]
}

fn any_night() -> impl Strategy<Value = Night> {
    let n = ACCOUNTS.len() * REGIONS.len();
    (
        prop::collection::vec(prop::option::weighted(0.8, any_tag()), n * SERVICES),
        prop::collection::vec(prop::bool::weighted(0.2), n),
    )
        .prop_map(|(services, unreachable)| Night {
            services,
            unreachable,
        })
}

fn target(i: usize) -> Target {
    Target {
        account: ACCOUNTS[i / REGIONS.len()].parse().unwrap(),
        region: REGIONS[i % REGIONS.len()].into(),
    }
}

fn service_id(i: usize) -> ServiceId {
    let t = target(i / SERVICES);
    ServiceId {
        account: t.account,
        region: t.region,
        cluster: "app".into(),
        service: format!("svc-{}", i % SERVICES),
    }
}

fn handler(
    fleet: MemoryFleet,
    store: MemoryStore,
    night: NaiveDate,
) -> Inventory<ListedAccounts, MemoryFleet, MemoryStore> {
    let config = Config::from_vars([
        ("TABLE_NAME", "t"),
        ("ACCOUNTS", &ACCOUNTS.join(",")),
        ("REGIONS", &REGIONS.join(",")),
        ("MEMBER_ROLE_NAME", "member"),
    ])
    .unwrap();
    let accounts: Vec<AccountId> = ACCOUNTS.iter().map(|a| a.parse().unwrap()).collect();
    let evening = night
        .pred_opt()
        .unwrap()
        .and_hms_opt(23, 30, 0)
        .unwrap()
        .and_utc();
    Inventory {
        config: Arc::new(config),
        directory: ListedAccounts(accounts),
        fleet,
        store,
        clock: Arc::new(ManualClock::new(evening)),
        calls: Arc::new(ApiCalls::default()),
    }
}

/// What the contract says the catalog holds of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    first_seen: NaiveDate,
    last_seen: NaiveDate,
    gone_since: Option<NaiveDate>,
    fact: u8,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_catalog_says_what_each_night_found_and_writes_only_changes(
        nights in prop::collection::vec(any_night(), 1..6),
    ) {
        let rt = testkit::runtime();
        let first = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let mut model: BTreeMap<ServiceId, Expected> = BTreeMap::new();
        let mut h = handler(MemoryFleet::default(), MemoryStore::default(), first);
        for (k, n) in nights.iter().enumerate() {
            let night = first + Days::new(k as u64);
            // Tonight's fleet, the store carried over from last night.
            let fleet = MemoryFleet::default();
            for (i, tag) in n.services.iter().enumerate() {
                if let Some(tag) = tag {
                    let mut tags = Tags::new();
                    tags.insert(TAG.into(), tag.value());
                    fleet.add(DiscoveredService {
                        snapshot: active_snapshot(service_id(i), tags),
                        cluster_tags: Tags::new(),
                    });
                }
            }
            for (t, down) in n.unreachable.iter().enumerate() {
                if *down {
                    fleet.fail(target(t), DiscoveryError::AccessDenied("denied".into()));
                }
            }
            h = handler(fleet, h.store, night);

            // The model: what changes tonight, and so what must be written.
            let mut changes = 0u64;
            for (i, tag) in n.services.iter().enumerate() {
                if n.unreachable[i / SERVICES] {
                    continue;
                }
                let id = service_id(i);
                match (tag, model.get_mut(&id)) {
                    (Some(tag), None) => {
                        changes += 1;
                        model.insert(id, Expected { first_seen: night, last_seen: night, gone_since: None, fact: tag.fact() });
                    }
                    (Some(tag), Some(e)) => {
                        if e.gone_since.is_some() || e.fact != tag.fact() {
                            changes += 1;
                        }
                        e.last_seen = night;
                        e.gone_since = None;
                        e.fact = tag.fact();
                    }
                    (None, Some(e)) if e.gone_since.is_none() => {
                        changes += 1;
                        e.gone_since = Some(night);
                    }
                    (None, _) => {}
                }
            }

            let writes_before = *h.store.catalog_writes.lock().unwrap();
            let s = rt.block_on(h.handle(json!({ "night": night }))).unwrap();
            let written = *h.store.catalog_writes.lock().unwrap() - writes_before;
            prop_assert_eq!(s.counts.written, changes, "night {}", night);
            prop_assert_eq!(written, changes, "night {}", night);

            let accounts: Vec<AccountId> = ACCOUNTS.iter().map(|a| a.parse().unwrap()).collect();
            let read: BTreeMap<ServiceId, CatalogRecord> = rt
                .block_on(h.store.read_catalog(&accounts))
                .unwrap()
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
            let seen: BTreeMap<ServiceId, Expected> = read
                .iter()
                .map(|(id, r)| {
                    let fact = Tag::fact(match r.tag_value.as_deref() {
                        Some("enabled") => Tag::Enabled,
                        Some("disabled") => Tag::Disabled,
                        _ => Tag::RestartedAt(0),
                    });
                    (id.clone(), Expected { first_seen: r.first_seen, last_seen: r.last_seen, gone_since: r.gone_since, fact })
                })
                .collect();
            prop_assert_eq!(&seen, &model, "night {}", night);
            // Tonight's candidates (what the batcher plans): exactly the services found tonight.
            let tonight: Vec<&ServiceId> = read
                .values()
                .filter(|r| r.last_seen == night && r.gone_since.is_none())
                .map(|r| &r.id)
                .collect();
            let found: Vec<ServiceId> = n
                .services
                .iter()
                .enumerate()
                .filter(|(i, tag)| tag.is_some() && !n.unreachable[i / SERVICES])
                .map(|(i, _)| service_id(i))
                .collect();
            prop_assert_eq!(tonight, found.iter().collect::<Vec<_>>());
        }
    }
}
