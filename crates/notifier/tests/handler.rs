//! The notifier's logic with the in-memory store and topics.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeDelta;
use common::*;
use notifier::{Notifier, Output};
use restart_aws::sns::{MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES};
use restart_core::ErrorType;
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use restart_core::notice::Message;
use restart_core::outcome::NightState;
use restart_core::ports::PublishError;
use serde_json::json;
use testkit::fakes::{MemoryNotices, MemoryStore, MemoryTopics};

type Handler = Notifier<MemoryStore, MemoryNotices, MemoryTopics>;

fn handler(config: restart_core::Config) -> Handler {
    Notifier {
        config: Arc::new(config),
        store: MemoryStore::default(),
        notices: MemoryNotices::default(),
        publisher: MemoryTopics::default(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T00:03:00Z"))),
    }
}

async fn seeded() -> Handler {
    let h = handler(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC)));
    let (catalog, records) = scenario(night());
    write_night(&h.store, night(), &catalog, &records, true).await;
    h
}

fn by_owner(messages: &[Message]) -> BTreeMap<String, Vec<&Message>> {
    let mut out: BTreeMap<String, Vec<&Message>> = BTreeMap::new();
    for m in messages {
        out.entry(m.attributes["owner"].clone())
            .or_default()
            .push(m);
    }
    out
}

fn findings(m: &Message) -> Vec<(String, String)> {
    let json = m.body.split("--- machine-readable ---\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["service"].as_str().unwrap().to_owned(),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn one_digest_per_owner_split_by_account_and_a_rerun_sends_nothing() {
    let h = seeded().await;
    let out = h
        .handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    let Output::Owners(out) = out else {
        panic!("{out:?}")
    };
    let sent = h.publisher.messages(OWNERS_TOPIC);
    let owners = by_owner(&sent);
    assert_eq!(
        owners.keys().collect::<Vec<_>>(),
        ["payments", "search", "unowned"]
    );
    // payments has services in two accounts: one message per account, "part i of 2".
    let payments = &owners["payments"];
    assert_eq!(payments.len(), 2);
    assert_eq!(payments[0].attributes["account_id"], A);
    assert_eq!(payments[1].attributes["account_id"], B);
    assert!(
        payments[0].subject.contains("part 1 of 2"),
        "{}",
        payments[0].subject
    );
    assert_eq!(
        findings(payments[0]),
        [
            ("api".to_owned(), "untagged".to_owned()),
            ("worker".to_owned(), "restart_failed".to_owned())
        ]
    );
    assert!(
        payments[0]
            .body
            .contains("`ecs_task_daily_restart=enabled`")
    );
    assert!(payments[0].body.contains("CannotPullContainerError"));
    assert_eq!(
        findings(payments[1]),
        [("ledger".to_owned(), "downtime_risk".to_owned())]
    );
    assert_eq!(
        findings(owners["search"][0]),
        [
            ("indexer".to_owned(), "controller_code_deploy".to_owned()),
            ("web".to_owned(), "malformed_tag".to_owned())
        ]
    );
    assert_eq!(
        findings(owners["unowned"][0]),
        [("billing".to_owned(), "needs_long_arn".to_owned())]
    );
    for m in &sent {
        assert_eq!(m.attributes["kind"], "digest");
        assert!(m.subject.len() <= 100 && m.subject.is_ascii());
    }
    assert_eq!((out.findings, out.owners_notified, out.messages), (6, 3, 4));

    // Again, the same night: nothing more goes out.
    let again = h
        .handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    let Output::Owners(again) = again else {
        panic!()
    };
    assert_eq!(h.publisher.messages(OWNERS_TOPIC).len(), 4);
    assert_eq!((again.messages, again.owners_already_notified), (0, 3));
}

#[tokio::test]
async fn the_cooldown_holds_the_next_night_and_a_new_kind_breaks_through() {
    let h = seeded().await;
    h.handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    let first = h.publisher.messages(OWNERS_TOPIC).len();

    // Night 2: the same facts, except that api got its tag and its first restart timed out:
    // a new kind for a service already told.
    let n2 = day("2026-11-23");
    let (mut catalog, mut records) = scenario(n2);
    for c in &mut catalog {
        c.last_seen = n2;
    }
    let api = id(A, "payments", "api");
    for c in catalog.iter_mut().filter(|c| c.id == api) {
        c.tag_state = restart_core::tag::TagStateKind::Enrolled;
        c.tag_value = Some("enabled".into());
    }
    records.retain(|r| r.id != api);
    records.push(restarted(
        &api,
        "payments",
        NightState::TimedOut,
        1800,
        Some("no steady state after 30 min"),
        n2,
    ));
    write_night(&h.store, n2, &catalog, &records, true).await;
    let out = h
        .handle(json!({"mode": "owners", "night": "2026-11-23"}))
        .await
        .unwrap();
    let Output::Owners(out) = out else { panic!() };
    let sent = h.publisher.messages(OWNERS_TOPIC);
    let new: Vec<&Message> = sent[first..].iter().collect();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert_eq!(new[0].attributes["owner"], "payments");
    assert_eq!(
        findings(new[0]),
        [("api".to_owned(), "restart_timed_out".to_owned())]
    );
    // api's untagged finding is gone (it is enrolled now); worker failed last night and again
    // tonight: held, like every other repeat.
    assert_eq!(out.held_by_cooldown, 5);

    // Seven nights after the first notice, repeats are told again.
    let n8 = day("2026-11-29");
    let (mut catalog, records) = scenario(n8);
    for c in &mut catalog {
        c.last_seen = n8;
    }
    write_night(&h.store, n8, &catalog, &records, true).await;
    h.handle(json!({"mode": "owners", "night": "2026-11-29"}))
        .await
        .unwrap();
    let sent = h.publisher.messages(OWNERS_TOPIC);
    assert_eq!(by_owner(&sent[first + 1..]).len(), 3);
}

#[tokio::test]
async fn five_thousand_findings_go_out_in_parts_under_256_kib_ten_at_most_a_request() {
    let h = handler(config("t", Some(OWNERS_TOPIC), None));
    let mut records = Vec::new();
    for i in 0..5_000 {
        records.push(skipped(
            &id(A, &format!("c{:03}", i / 50), &format!("service-{i:04}")),
            "big-team",
            SkipReason::Untagged,
            night(),
        ));
    }
    write_night(&h.store, night(), &[], &records, true).await;
    h.handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    let requests = h.publisher.requests.lock().unwrap().clone();
    let messages: Vec<&Message> = requests.iter().flat_map(|(_, m)| m).collect();
    assert!(messages.len() > 1);
    let n = messages.len();
    let mut told = 0;
    for (i, m) in messages.iter().enumerate() {
        assert!(m.size() < MAX_MESSAGE_BYTES);
        assert!(m.subject.contains(&format!("part {} of {n}", i + 1)));
        told += findings(m).len();
    }
    assert_eq!(told, 5_000);
    for (_, batch) in &requests {
        assert!(batch.len() <= MAX_BATCH_ENTRIES);
        assert!(batch.iter().map(Message::size).sum::<usize>() <= MAX_MESSAGE_BYTES);
    }
}

#[tokio::test]
async fn a_failed_publish_is_retryable_and_the_retry_sends_only_the_rest() {
    let h = seeded().await;
    // Three owners, 4 small messages: one request. Make it fail.
    *h.publisher.fail_request.lock().unwrap() =
        Some((0, PublishError::Throttled("slow down".into())));
    let err = h
        .handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::Throttled);
    assert!(h.publisher.messages(OWNERS_TOPIC).is_empty());
    h.handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    assert_eq!(h.publisher.messages(OWNERS_TOPIC).len(), 4);
    h.handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    assert_eq!(h.publisher.messages(OWNERS_TOPIC).len(), 4);
}

#[tokio::test]
async fn the_summary_counts_records_and_reports_halts_pauses_and_unreachable_accounts() {
    let h = seeded().await;
    restart_core::ports::RestartStore::halt(
        &h.store,
        night(),
        &restart_core::night::Halt {
            reason: "3 of 20 finished restarts failed".into(),
            at: at("2026-11-22T02:00:00Z"),
        },
    )
    .await
    .unwrap();
    let out = h
        .handle(json!({"mode": "summary", "night": "2026-11-22"}))
        .await
        .unwrap();
    let Output::Summary(out) = out else { panic!() };
    assert_eq!(out.metrics["RestartsCompleted"], 2);
    assert_eq!(out.metrics["RestartsFailed"], 1);
    assert_eq!(out.metrics["ServicesSkipped"], 5);
    assert_eq!(out.metrics["UnreachableAccounts"], 1);
    assert_eq!(out.metrics["NightHalted"], 1);
    let sent = h.publisher.messages(OPS_TOPIC);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].attributes,
        BTreeMap::from([("kind".to_owned(), "summary".to_owned())])
    );
    assert!(sent[0].body.contains("3 of 20 finished restarts failed"));
    assert!(
        sent[0]
            .body
            .contains("222222222222 us-east-1: access denied")
    );
}

#[tokio::test]
async fn a_night_without_a_plan_still_gets_a_summary_that_says_so() {
    let h = handler(config("t", None, Some(OPS_TOPIC)));
    let (catalog, _) = scenario(night());
    write_night(&h.store, night(), &catalog, &[], false).await;
    let out = h
        .handle(json!({"mode": "summary", "night": "2026-11-22"}))
        .await
        .unwrap();
    let Output::Summary(out) = out else { panic!() };
    assert!(out.plan_missing);
    let sent = h.publisher.messages(OPS_TOPIC);
    assert!(sent[0].body.contains("Plan: MISSING"));
    assert!(sent[0].subject.contains("NO PLAN"));
    assert!(sent[0].body.contains("1 unreachable"));
}

#[tokio::test]
async fn bad_input_and_missing_topics_are_refused_with_the_contract_types() {
    let h = handler(config("t", None, None));
    for (event, needle) in [
        (
            json!({"mode": "everyone", "night": "2026-11-22"}),
            "mode: expected one of `owners`, `summary`, got \"everyone\"",
        ),
        (
            json!({"mode": "owners", "night": "22/11/2026"}),
            "night: input contains invalid characters",
        ),
        (
            json!({"mode": "owners", "night": "2026-11-22", "force": true}),
            "unknown field `force`",
        ),
        (json!({"night": "2026-11-22"}), "mode"),
    ] {
        let err = h.handle(event.clone()).await.unwrap_err();
        assert_eq!(err.error_type, ErrorType::InvalidInput, "{event}");
        assert!(err.message.contains(needle), "{event}: {}", err.message);
    }
    let err = h
        .handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::Misconfigured);
    assert!(err.message.contains("OWNER_TOPIC_ARN"));
    let err = h
        .handle(json!({"mode": "summary", "night": "2026-11-22"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::Misconfigured);
    assert!(err.message.contains("OPS_TOPIC_ARN"));
    let _ = TimeDelta::zero();
}

#[test]
fn the_emf_line_carries_the_alarms_metrics() {
    let s = notifier::NightSummary::build(night(), &[], &Default::default(), None, None, None);
    let line = notifier::emf(&s).line(at("2026-11-22T06:00:00Z"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let d = &v["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(d["Namespace"], "EcsNightlyRestart");
    assert_eq!(d["Dimensions"], json!([["Function"]]));
    assert_eq!(v["Function"], "notifier");
    let names: Vec<&str> = d["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "RestartsCompleted",
            "RestartsFailed",
            "RestartsRolledBack",
            "RestartsSuperseded",
            "RestartsTimedOut",
            "RestartsVanished",
            "RestartsHalted",
            "ServicesSkipped",
            "RestartsWindowClosed",
            "UnreachableAccounts",
            "NightHalted"
        ]
    );
}
