//! Snapshots of a digest and a summary as a person receives them (docs/owners.md shows them).

use crate::common;

use std::sync::Arc;

use common::*;
use notifier::Notifier;
use restart_core::clock::ManualClock;
use restart_core::night::Pause;
use restart_core::ports::RestartStore;
use serde_json::json;
use testkit::fakes::{MemoryNotices, MemoryStore, MemoryTopics};

async fn night_of_scenario() -> Notifier<MemoryStore, MemoryNotices, MemoryTopics> {
    let h = Notifier {
        config: Arc::new(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))),
        store: MemoryStore::default(),
        notices: MemoryNotices::default(),
        publisher: MemoryTopics::default(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T06:05:00Z"))),
    };
    let (catalog, records) = scenario(night());
    write_night(&h.store, night(), &catalog, &records, true).await;
    h
}

fn as_received(m: &restart_core::notice::Message) -> String {
    let attributes: Vec<String> = m
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "Subject: {}\nMessage attributes: {}\n\n{}",
        m.subject,
        attributes.join(", "),
        m.body
    )
}

#[tokio::test]
async fn a_digest_as_received() {
    let h = night_of_scenario().await;
    h.handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    let sent = h.publisher.messages(OWNERS_TOPIC);
    insta::assert_snapshot!("digest_payments_part_1", as_received(&sent[0]));
}

#[tokio::test]
async fn a_summary_as_received() {
    let h = night_of_scenario().await;
    h.store
        .set_pause(Some(&Pause {
            reason: "incident INC-4711 in eu-west-1".into(),
            by: "alice".into(),
            at: at("2026-11-22T02:14:00Z"),
        }))
        .await
        .unwrap();
    h.handle(json!({"mode": "summary", "night": "2026-11-22"}))
        .await
        .unwrap();
    let sent = h.publisher.messages(OPS_TOPIC);
    insta::assert_snapshot!("summary", as_received(&sent[0]));
}
