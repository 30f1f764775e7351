//! Nothing fed from outside makes the batcher panic: any JSON event (any value, or objects
//! with `night` and `replan` holding wrong types, odd dates and text in any script) gives a
//! plan or a typed error, over a catalog whose owners are in any script, for windows in any
//! timezone and nights up to the ends of the calendar.

use std::sync::Arc;

use batcher::Batcher;
use chrono::{Datelike as _, NaiveDate};
use proptest::prelude::*;
use restart_core::catalog::CatalogRecord;
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{CatalogStore, NightStore};
use restart_core::{Config, ErrorType, HandlerError};
use serde_json::{Value, json};
use testkit::fakes::MemoryStore;
use testkit::fixtures::enrolled_record;
use testkit::runtime;
use testkit::strategies::{any_json, object, text, text_or_json};

/// Object keys in any JSON: often the event's own.
const KEYS: &str = "night|replan";

/// The batcher's event: any JSON, or an object with `night` and `replan` (each present or
/// not, of the right type or not) and perhaps a key it does not know.
fn event() -> impl Strategy<Value = Value> {
    let night = text_or_json(KEYS);
    let replan = prop_oneof![3 => any::<bool>().prop_map(Value::from), 1 => any_json(KEYS)];
    let extra = ("mode|execution|\\PC{1,6}", any_json(KEYS));
    prop_oneof![
        1 => any_json(KEYS),
        3 => object(
            vec![
                ("night", prop::option::of(night).boxed()),
                ("replan", prop::option::of(replan).boxed()),
            ],
            prop::option::of(extra).boxed(),
        ),
    ]
}

fn day(d: &str) -> NaiveDate {
    d.parse().unwrap()
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

/// A catalog record seen on `seen`, owned by someone named in any script.
fn record(i: usize, owner: &str, skip: Option<SkipReason>, seen: NaiveDate) -> CatalogRecord {
    let id = ServiceId {
        account: ["111111111111", "222222222222"][i % 2].parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: format!("c{}", i % 3),
        service: format!("s{i:03}"),
    };
    CatalogRecord {
        skip_reason: skip,
        ..enrolled_record(id, owner, seen)
    }
}

/// Last night's record of `r` in batch 0, completed after the longest restart a record holds:
/// the next plan's expected duration.
fn completed_last_night(r: &CatalogRecord, seen: NaiveDate) -> Option<NightRecord> {
    let last = seen.pred_opt()?;
    let start = last.and_hms_opt(23, 0, 0)?.and_utc();
    Some(NightRecord {
        state: NightState::Completed,
        started_at: Some(start),
        duration_seconds: Some(u32::MAX),
        ..NightRecord::planned(r, last, 0, start)
    })
}

async fn seeded(config: Config, owners: &[String], seen: NaiveDate) -> Batcher<MemoryStore> {
    let store = MemoryStore::default();
    let records: Vec<CatalogRecord> = owners
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let skip = (i % 5 == 4).then_some(SkipReason::Untagged);
            record(i, o, skip, seen)
        })
        .collect();
    store.put_catalog(&records).await.unwrap();
    let last_night: Vec<NightRecord> = records
        .iter()
        .step_by(4)
        .filter_map(|r| completed_last_night(r, seen))
        .collect();
    if let Some(first) = last_night.first() {
        let batch = PlannedBatch {
            batch: 0,
            start_at: first.planned_start.unwrap(),
            size: u32::try_from(last_night.len()).unwrap(),
        };
        store.put_batches(first.night, &[batch]).await.unwrap();
        store.create_records(&last_night).await.unwrap();
    }
    Batcher {
        config: Arc::new(config),
        store,
        clock: Arc::new(ManualClock::new("2026-11-21T23:30:00Z".parse().unwrap())),
    }
}

fn check<T>(event: &Value, result: Result<T, HandlerError>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(ErrorType::ALL.contains(&e.error_type));
        prop_assert!(!e.message.is_empty());
        // A bad event, or a window too short for the restarts (the configuration's fault).
        prop_assert!(
            matches!(
                e.error_type,
                ErrorType::InvalidInput | ErrorType::Misconfigured
            ),
            "{} for {}",
            e.message,
            event
        );
    }
    Ok(())
}

fn owners() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_event_gives_a_plan_or_a_typed_error(event in event(), owners in owners()) {
        let rt = runtime();
        let h = rt.block_on(seeded(config(&[]), &owners, day("2026-11-22")));
        let result = rt.block_on(h.handle(event.clone()));
        check(&event, result)?;
        // Planned again, whatever was planned before.
        let again = json!({"night": "2026-11-22", "replan": true});
        check(&again, rt.block_on(h.handle(again.clone())))?;
    }

    /// Any timezone and window, any night (the calendar's ends included): a plan or a typed
    /// error.
    #[test]
    fn any_window_and_night(
        tz in prop::sample::select(vec![
            "UTC", "Pacific/Pago_Pago", "Pacific/Kiritimati", "America/Adak", "Europe/Madrid",
            "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham",
        ]),
        start in "[01][0-9]|2[0-3]",
        end in "[01][0-9]|2[0-3]",
        interval in prop::sample::select(vec!["1", "10", "720"]),
        timeout in prop::sample::select(vec!["1", "30", "720"]),
        night in prop_oneof![
            Just(NaiveDate::MAX),
            Just(NaiveDate::MIN),
            (NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce())
                .prop_map(|d| NaiveDate::from_num_days_from_ce_opt(d).unwrap()),
            (0i64..3).prop_map(|d| day("2026-11-21") + chrono::TimeDelta::days(d)),
        ],
        owners in owners(),
    ) {
        prop_assume!(start != end);
        let (ws, we) = (format!("{start}:00"), format!("{end}:30"));
        let config = config(&[
            ("TIMEZONE", tz),
            ("WINDOW_START", &ws),
            ("WINDOW_END", &we),
            ("BATCH_INTERVAL_MINUTES", interval),
            ("RESTART_TIMEOUT_MINUTES", timeout),
        ]);
        let rt = runtime();
        let h = rt.block_on(seeded(config, &owners, night));
        for replan in [false, true] {
            let event = json!({"night": night.to_string(), "replan": replan});
            let result = rt.block_on(h.handle(event.clone()));
            check(&event, result)?;
        }
    }
}
