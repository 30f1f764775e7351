//! Unicode from tags, configuration and on-call reaches people intact: owners named in other
//! scripts (accents, precomposed or with combining marks, CJK, emoji, full-width letters and
//! digits), tag values and failure details in any script arrive byte for byte in the digest
//! bodies, their JSON and the `owner` attribute; subjects stay ASCII for SNS. (ECS cluster and
//! service names are ASCII letters, digits, `-` and `_`: Unicode comes in tags and words.)

use crate::common;

use std::sync::Arc;

use common::*;
use notifier::Notifier;
use restart_aws::sns::MAX_MESSAGE_BYTES;
use restart_core::catalog::{CatalogRecord, InventoryCounts, InventoryRun, Target, Unreachable};
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use restart_core::night::{Halt, NightRecord, Pause};
use restart_core::notice::Message;
use restart_core::outcome::NightState;
use restart_core::ports::{CatalogStore, NightStore, RestartStore};
use restart_core::tag::TagStateKind;
use serde_json::{Value, json};
use testkit::fakes::{MemoryNotices, MemoryStore, MemoryTopics};

const CJK: &str = "決済チーム";
const ACCENT: &str = "équipe-paiements";
const COMBINING: &str = "e\u{301}quipe-recherche";
const EMOJI: &str = "🚀 plateforme 🛠️";
const FULL_WIDTH: &str = "ｔｅａｍ１２";
const ASCII: &str = "payments";

/// Every owner, with a failure detail and a malformed tag value in its own script.
fn people() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (CJK, "デプロイ失敗: タスクが起動しません", "はい"),
        (
            ACCENT,
            "échec du déploiement: tâche arrêtée",
            "oui, s'il vous plaît",
        ),
        (
            COMBINING,
            "e\u{301}chec: conteneur arre\u{302}te\u{301}",
            "activ\u{e9}e\u{301}",
        ),
        (EMOJI, "💥 CannotPullContainerError 🙁", "✅"),
        (
            FULL_WIDTH,
            "ＯＯＭ　ｋｉｌｌｅｄ（１３７）",
            "ｅｎａｂｌｅｄ",
        ),
        (ASCII, "rolloutState FAILED", "yes\u{200b}"),
    ]
}

struct Night {
    handler: Notifier<MemoryStore, MemoryNotices, MemoryTopics>,
    catalog: Vec<CatalogRecord>,
}

async fn night_of_unicode() -> Night {
    let handler = Notifier {
        config: Arc::new(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))),
        store: MemoryStore::default(),
        notices: MemoryNotices::default(),
        publisher: MemoryTopics::default(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T06:30:00Z"))),
    };
    let mut catalog_records = Vec::new();
    let mut records = Vec::new();
    for (i, (owner, detail, tag)) in people().into_iter().enumerate() {
        let account = if i % 2 == 0 { A } else { B };
        let failed = id(account, &format!("team-{i}"), "api");
        let tagged = id(account, &format!("team-{i}"), "worker");
        let skipped_id = id(account, &format!("team-{i}"), "batch");
        catalog_records.push(catalog(
            &failed,
            owner,
            TagStateKind::Enrolled,
            Some("enabled"),
            night(),
        ));
        catalog_records.push(catalog(
            &tagged,
            owner,
            TagStateKind::Malformed,
            Some(tag),
            night(),
        ));
        catalog_records.push(catalog(
            &skipped_id,
            owner,
            TagStateKind::Untagged,
            None,
            night(),
        ));
        records.push(restarted(
            &failed,
            owner,
            NightState::Failed,
            600,
            Some(detail),
            night(),
        ));
        records.push(restarted(
            &tagged,
            owner,
            NightState::Completed,
            300,
            None,
            night(),
        ));
        records.push(skipped(&skipped_id, owner, SkipReason::Untagged, night()));
    }
    write_night(&handler.store, night(), &catalog_records, &records, true).await;
    Night {
        handler,
        catalog: catalog_records,
    }
}

fn json_part(m: &Message) -> Value {
    let json = m.body.split("--- machine-readable ---\n").nth(1).unwrap();
    serde_json::from_str(json.trim()).unwrap()
}

fn assert_sns_subject(s: &str) {
    assert!(s.len() < 100, "{s:?}");
    assert!(s.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{s:?}");
    assert!(s.starts_with(|c: char| c.is_ascii_graphic()), "{s:?}");
}

#[tokio::test]
async fn owners_details_and_tag_values_in_any_script_arrive_intact() {
    let n = night_of_unicode().await;
    n.handler
        .handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    let sent = n.handler.publisher.messages(OWNERS_TOPIC);
    for (owner, detail, tag) in people() {
        let mine: Vec<&Message> = sent
            .iter()
            .filter(|m| m.attributes["owner"] == owner)
            .collect();
        assert_eq!(mine.len(), 1, "{owner}: one digest, one account");
        let m = mine[0];
        // The attribute, byte for byte (no normalization: the combining mark stays apart).
        assert_eq!(m.attributes["owner"].as_bytes(), owner.as_bytes());
        assert!(
            m.body
                .contains(&format!("notice for {owner} - night 2026-11-22"))
        );
        assert!(
            m.body.contains(detail),
            "{owner}: {detail} not in\n{}",
            m.body
        );
        assert!(
            m.body.contains(&format!("tag value \"{tag}\"")),
            "{owner}: {tag:?} not in\n{}",
            m.body
        );
        let v = json_part(m);
        assert_eq!(v["owner"], owner);
        let details: Vec<&str> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["detail"].as_str())
            .collect();
        assert!(details.contains(&detail), "{details:?}");
        assert!(
            details.contains(&format!("tag value \"{tag}\"").as_str()),
            "{details:?}"
        );
        assert_sns_subject(&m.subject);
        if owner == ASCII {
            assert!(m.subject.starts_with("[payments] "), "{}", m.subject);
        } else {
            assert!(
                m.subject.starts_with("ECS nightly restart"),
                "{}",
                m.subject
            );
        }
        assert!(m.size() < MAX_MESSAGE_BYTES);
    }
    assert_eq!(sent.len(), people().len());
    // The cooldown is kept per owner as written.
    let told = n.handler.notices.notices.lock().unwrap();
    for (owner, _, _) in people() {
        assert!(told.keys().any(|(o, _, _)| o == owner), "{owner}");
    }
    assert_eq!(n.catalog.len(), 3 * people().len());
}

#[tokio::test]
async fn the_summary_carries_unicode_owners_details_pause_halt_and_errors_intact() {
    let n = night_of_unicode().await;
    let store = &n.handler.store;
    let reason = "réseau en panne 🔧 — ネットワーク障害";
    store
        .set_pause(Some(&Pause {
            reason: reason.into(),
            by: "アリス (e\u{301}quipe d'astreinte)".into(),
            at: at("2026-11-22T02:00:00Z"),
        }))
        .await
        .unwrap();
    store
        .halt(
            night(),
            &Halt {
                reason: "3 échecs sur 20 — 停止".into(),
                at: at("2026-11-22T02:10:00Z"),
            },
        )
        .await
        .unwrap();
    store
        .put_inventory_run(&InventoryRun {
            night: night(),
            started_at: at("2026-11-22T00:00:05Z"),
            finished_at: at("2026-11-22T00:01:40Z"),
            reached: vec![Target {
                account: A.parse().unwrap(),
                region: "eu-west-1".into(),
            }],
            unreachable: vec![Unreachable {
                account: B.parse().unwrap(),
                region: "ap-northeast-1".into(),
                error: "AccessDenied: 権限がありません".into(),
            }],
            counts: InventoryCounts::default(),
        })
        .await
        .unwrap();
    n.handler
        .handle(json!({"mode": "summary", "night": "2026-11-22"}))
        .await
        .unwrap();
    let sent = n.handler.publisher.messages(OPS_TOPIC);
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_sns_subject(&m.subject);
    for text in [
        reason,
        "アリス (e\u{301}quipe d'astreinte)",
        "3 échecs sur 20 — 停止",
        "AccessDenied: 権限がありません",
    ] {
        assert!(m.body.contains(text), "{text:?} not in\n{}", m.body);
    }
    for (owner, detail, _) in people() {
        assert!(m.body.contains(&format!("(owner {owner})")), "{owner}");
        assert!(m.body.contains(detail), "{detail}");
    }
    let v = json_part(m);
    assert_eq!(v["paused"]["reason"], reason);
    assert_eq!(v["halted"]["reason"], "3 échecs sur 20 — 停止");
}

#[tokio::test]
async fn a_long_unicode_detail_is_cut_between_characters() {
    let h = Notifier {
        config: Arc::new(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))),
        store: MemoryStore::default(),
        notices: MemoryNotices::default(),
        publisher: MemoryTopics::default(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T06:30:00Z"))),
    };
    // 1,500 characters of 1 to 4 bytes each, and a combining mark at every cut point.
    let detail: String = "é失🙁e\u{301}".repeat(300);
    let sid = id(A, "pay", "api");
    let mut r = NightRecord::unbatched(sid.clone(), sid.arn("aws"), night(), CJK.into());
    r.state = NightState::Failed;
    r.detail = Some(detail.clone());
    h.store.create_records(&[r]).await.unwrap();
    for mode in ["owners", "summary"] {
        h.handle(json!({"mode": mode, "night": "2026-11-22"}))
            .await
            .unwrap();
    }
    let digest = &h.publisher.messages(OWNERS_TOPIC)[0];
    let quoted = json_part(digest)["findings"][0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = quoted.strip_suffix('…').unwrap();
    assert_eq!(kept.chars().count(), 1_000);
    assert!(detail.starts_with(kept));
    let summary = &h.publisher.messages(OPS_TOPIC)[0];
    let line = summary
        .body
        .lines()
        .find(|l| l.trim_start().starts_with('é'))
        .unwrap();
    let kept = line.trim_start().strip_suffix('…').unwrap();
    assert_eq!(kept.chars().count(), 300);
    assert!(detail.starts_with(kept));
}
