//! Against moto: the DynamoDB store and SNS, messages read back from moto's
//! `GET /moto-api/data.json`. Run through `tools/with-moto` (it exports `MOTO_ENDPOINT`).

use crate::common;

use std::io::{Read, Write};
use std::sync::Arc;

use common::*;
use restart_aws::sns::MAX_MESSAGE_BYTES;
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use serde_json::{Value, json};

/// A topic created in moto with the AWS CLI (an outside client).
fn create_topic(prefix: &str) -> String {
    let out = testkit::aws_cli()
        .args([
            "sns",
            "create-topic",
            "--name",
            &testkit::unique_name(prefix),
        ])
        .output()
        .expect("running the AWS CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["TopicArn"].as_str().unwrap().to_owned()
}

/// (subject, body, attributes) of every message moto holds for `topic`.
fn published(topic: &str) -> Vec<(String, String, Value)> {
    let endpoint = testkit::moto_endpoint();
    let host = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: {host}\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let data: Value = serde_json::from_str(body).unwrap();
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    let topic = topics
        .iter()
        .find(|t| t["arn"] == topic)
        .expect("the topic in moto");
    topic["sent_notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n[2].as_str().unwrap_or_default().to_owned(),
                n[1].as_str().unwrap().to_owned(),
                n[3].clone(),
            )
        })
        .collect()
}

fn attr<'a>(attributes: &'a Value, name: &str) -> &'a str {
    attributes[name]["Value"].as_str().unwrap()
}

async fn handler(owners: &str, ops: &str, at_time: &str) -> notifier::aws::AwsNotifier {
    let client = testkit::dynamodb_client();
    let table = testkit::create_table(&client).await;
    let sdk = testkit::hub_sdk_config(&testkit::moto_endpoint());
    notifier::aws::handler_with_clock(
        config(&table, Some(owners), Some(ops)),
        &sdk,
        Arc::new(ManualClock::new(at(at_time))),
    )
}

#[tokio::test]
async fn one_digest_per_owner_per_night_unowned_included_and_the_cooldown_holds() {
    let (owners, ops) = (create_topic("owners"), create_topic("ops"));
    let h = handler(&owners, &ops, "2026-11-22T00:03:00Z").await;
    let (catalog, records) = scenario(night());
    write_night(&h.store, night(), &catalog, &records, true).await;
    let event = json!({"mode": "owners", "night": "2026-11-22"});
    h.handle(event.clone()).await.unwrap();
    h.handle(event).await.unwrap();
    let sent = published(&owners);
    let who: Vec<(&str, &str)> = sent
        .iter()
        .map(|(_, _, a)| (attr(a, "owner"), attr(a, "account_id")))
        .collect();
    // payments spans two accounts: one message each; run twice, sent once.
    assert_eq!(
        who,
        [
            ("payments", A),
            ("payments", B),
            ("search", B),
            ("unowned", A)
        ]
    );
    for (subject, body, a) in &sent {
        assert_eq!(attr(a, "kind"), "digest");
        assert!(subject.len() <= 100 && subject.is_ascii(), "{subject}");
        assert!(body.contains("--- machine-readable ---"));
    }
    assert!(sent[3].1.contains("billing"));

    // The next night: the same findings are held; a new kind (api's restart timed out) goes.
    let n2 = day("2026-11-23");
    let (mut catalog, mut records) = scenario(n2);
    let api = id(A, "payments", "api");
    for c in &mut catalog {
        if c.id == api {
            c.tag_state = restart_core::tag::TagStateKind::Enrolled;
        }
    }
    records.retain(|r| r.id != api);
    records.push(restarted(
        &api,
        "payments",
        restart_core::outcome::NightState::TimedOut,
        1800,
        Some("no steady state after 30 min"),
        n2,
    ));
    write_night(&h.store, n2, &catalog, &records, true).await;
    h.handle(json!({"mode": "owners", "night": "2026-11-23"}))
        .await
        .unwrap();
    let sent = published(&owners);
    assert_eq!(sent.len(), 5);
    let (subject, body, a) = &sent[4];
    assert_eq!((attr(a, "owner"), attr(a, "account_id")), ("payments", A));
    assert!(subject.contains("1 service need"), "{subject}");
    assert!(body.contains("Restart timed out (1)") && body.contains("service api"));

    // The summary goes to the ops topic.
    h.handle(json!({"mode": "summary", "night": "2026-11-22"}))
        .await
        .unwrap();
    let summary = published(&ops);
    assert_eq!(summary.len(), 1);
    assert_eq!(attr(&summary[0].2, "kind"), "summary");
    assert!(summary[0].1.contains("Failures (1):"));
}

#[tokio::test]
async fn five_thousand_findings_arrive_in_parts_under_256_kib() {
    let (owners, ops) = (create_topic("owners"), create_topic("ops"));
    let h = handler(&owners, &ops, "2026-11-22T00:03:00Z").await;
    let records: Vec<_> = (0..5_000)
        .map(|i| {
            skipped(
                &id(
                    A,
                    &format!("cluster-{:03}", i / 50),
                    &format!("service-{i:04}"),
                ),
                "big-team",
                SkipReason::Untagged,
                night(),
            )
        })
        .collect();
    write_night(&h.store, night(), &[], &records, true).await;
    // moto refuses a PublishBatch of more than 10 entries, and a message over 256 KiB.
    h.handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    let sent = published(&owners);
    let n = sent.len();
    assert!(n > 1, "{n}");
    let mut services = 0;
    for (i, (subject, body, a)) in sent.iter().enumerate() {
        let size = body.len()
            + ["owner", "kind", "account_id"]
                .iter()
                .map(|k| k.len() + "String".len() + attr(a, k).len())
                .sum::<usize>();
        assert!(size < MAX_MESSAGE_BYTES, "part {i}: {size} bytes");
        assert!(
            subject.contains(&format!("part {} of {n}", i + 1)),
            "{subject}"
        );
        assert_eq!(attr(a, "owner"), "big-team");
        services += body.matches("\n  - account").count();
    }
    assert_eq!(services, 5_000);
}
