//! Nothing fed from outside makes the notifier panic: any JSON event (any value, or objects
//! with the right keys holding wrong types, odd dates and text in any script) gives an output
//! or a typed error, against a night whose owners, details and tag values are in any script.

use crate::common;

use std::sync::Arc;

use common::*;
use notifier::Notifier;
use proptest::prelude::*;
use restart_core::clock::ManualClock;
use restart_core::night::NightRecord;
use restart_core::{ErrorType, HandlerError};
use serde_json::{Value, json};
use testkit::fakes::{MemoryNotices, MemoryStore, MemoryTopics};
use testkit::runtime;
use testkit::strategies::text_fields_event;

type Handler = Notifier<MemoryStore, MemoryNotices, MemoryTopics>;

/// The notifier's event: any JSON, or an object with `mode` and `night` (each present or not,
/// of the right type or not) and perhaps a key it does not know.
fn event() -> impl Strategy<Value = Value> {
    text_fields_event("mode|night", &["mode", "night"], "batch|replan|\\PC{1,6}")
}

/// A night like the tests' scenario, with owners, details and tag values in other scripts.
async fn seeded(config: restart_core::Config) -> Handler {
    let h = Notifier {
        config: Arc::new(config),
        store: MemoryStore::default(),
        notices: MemoryNotices::default(),
        publisher: MemoryTopics::default(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T00:03:00Z"))),
    };
    let unicode = |o: &str| match o {
        "payments" => "決済チーム".to_owned(),
        "search" => "e\u{301}quipe-recherche 🔎".to_owned(),
        other => other.to_owned(),
    };
    for on in [night(), day("2026-11-21")] {
        let (mut catalog, mut records) = scenario(on);
        for c in &mut catalog {
            c.owner = unicode(&c.owner);
            if c.tag_value.as_deref() == Some("yes") {
                c.tag_value = Some("ｙｅｓ\u{301} <b>\n".into());
            }
        }
        for r in &mut records {
            r.owner = unicode(&r.owner);
            r.detail = r.detail.take().map(|d| format!("{d} — échec 失敗 🙁"));
        }
        write_night(&h.store, on, &catalog, &records, true).await;
    }
    h
}

/// The handler's answer: an output, or an error of the contract with a message.
fn check<T>(event: &Value, result: Result<T, HandlerError>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => {
            prop_assert!(event.is_object(), "{event}");
            prop_assert!(matches!(event["mode"].as_str(), Some("owners" | "summary")));
        }
        Err(e) => {
            prop_assert!(ErrorType::ALL.contains(&e.error_type));
            prop_assert!(!e.message.is_empty());
            let known = matches!(event["mode"].as_str(), Some("owners" | "summary"));
            if !event.is_object() || !known {
                prop_assert_eq!(e.error_type, ErrorType::InvalidInput, "{}", e.message);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn any_event_gives_an_output_or_a_typed_error(event in event()) {
        let rt = runtime();
        let h = rt.block_on(seeded(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))));
        let result = rt.block_on(h.handle(event.clone()));
        check(&event, result)?;
    }

    /// Without topics configured the modes say so (`Misconfigured`), whatever the event.
    #[test]
    fn any_event_without_topics(event in event()) {
        let rt = runtime();
        let h = rt.block_on(seeded(config("t", None, None)));
        let result = rt.block_on(h.handle(event.clone()));
        check(&event, result)?;
    }

    /// Both modes for nights around the seeded one and at the ends of the calendar.
    #[test]
    fn both_modes_for_any_night(
        mode in prop::sample::select(vec!["owners", "summary"]),
        night in prop_oneof![
            (-3i64..3).prop_map(|d| (night() + chrono::TimeDelta::days(d)).to_string()),
            Just("+262142-12-31".to_owned()),
            Just("-262143-01-01".to_owned()),
            "[+-]?[0-9]{4,6}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
        ],
    ) {
        let rt = runtime();
        let h = rt.block_on(seeded(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))));
        let event = json!({"mode": mode, "night": night});
        let result = rt.block_on(h.handle(event.clone()));
        check(&event, result)?;
    }
}

#[test]
fn records_of_every_shape_are_summarized() {
    // A record with no owner at all and one whose detail is only control characters.
    let rt = runtime();
    let h = rt.block_on(seeded(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))));
    let sid = id(A, "edge", "proxy");
    let mut r = NightRecord::unbatched(sid.clone(), sid.arn("aws"), night(), String::new());
    r.state = restart_core::outcome::NightState::Failed;
    r.detail = Some("\u{0}\u{7}\r\n\u{1b}[31m".into());
    rt.block_on(restart_core::ports::NightStore::create_records(
        &h.store,
        &[r],
    ))
    .unwrap();
    for mode in ["owners", "summary"] {
        rt.block_on(h.handle(json!({"mode": mode, "night": "2026-11-22"})))
            .unwrap();
    }
}
