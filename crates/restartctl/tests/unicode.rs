//! The night's HTML report carries Unicode owners, details, pause and halt reasons intact and
//! escapes them correctly for any text (`<script>` in an owner name stays text), and never
//! panics on what the table holds: times at the ends of the calendar, records far off the
//! window, any timezone.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::{Halt, NightRecord, Pause, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::window::{RestartWindow, parse_time_of_day};
use restartctl::report::{AccountTime, Night, OperationTime, TimeSpent, esc};

/// Text in any script, markup and entities included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[<>&\"' a-z=/;#]{0,20}",
        prop::sample::select(vec![
            "決済チーム",
            "équipe-paiements",
            "e\u{301}quipe",
            "🚀 plateforme",
            "ｔｅａｍ１２",
            "<script>alert('x')</script>",
            "</td></tr></table><img src=x onerror=alert(1)>",
            "&lt;already&gt; &amp;",
            "\"quoted\" 'single'",
            "a\r\nb\u{0}",
        ])
        .prop_map(str::to_owned),
    ]
}

/// What `esc` undoes: the five entities it writes.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn night() -> NaiveDate {
    "2026-11-22".parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn sid(i: usize) -> ServiceId {
    ServiceId {
        account: "111111111111".parse().unwrap(),
        region: "eu-west-1".into(),
        cluster: format!("c{}", i % 2),
        service: format!("s{i}"),
    }
}

/// A record of batch `i % 2` in a state that the report lists (failures and skips).
fn record(i: usize, owner: &str, detail: &str, start: DateTime<Utc>) -> NightRecord {
    let id = sid(i);
    let mut r = NightRecord::unbatched(id.clone(), id.arn("aws"), night(), owner.to_owned());
    let states = [
        NightState::Failed,
        NightState::RolledBack,
        NightState::TimedOut,
        NightState::Vanished,
        NightState::Halted,
        NightState::Skipped,
    ];
    r.state = states[i % states.len()];
    if r.state == NightState::Skipped {
        r.skip_reason = Some(SkipReason::Untagged);
    } else {
        r.batch = Some((i % 2) as u32);
        r.started_at = Some(start);
        r.finished_at = start.checked_add_signed(TimeDelta::seconds(600));
        r.deployment_id = Some(format!("ecs-svc/{i}"));
    }
    r.detail = Some(detail.to_owned());
    r
}

fn page(
    tz: Tz,
    records: Vec<NightRecord>,
    batches: Vec<PlannedBatch>,
    pause: Option<Pause>,
    halt: Option<Halt>,
) -> String {
    let rw = RestartWindow::new(
        parse_time_of_day("22:00").unwrap(),
        parse_time_of_day("04:00").unwrap(),
        tz,
    )
    .unwrap();
    Night {
        night: night(),
        window: rw.night(night()),
        tz,
        window_label: rw.to_string(),
        plan: Some(PlanSummary {
            night: night(),
            batches: 2,
            planned: 4,
            skipped: 1,
            written_at: t("2026-11-22T00:02:00Z"),
        }),
        batches,
        records,
        halted: halt,
        paused: pause,
        holds: vec![restart_core::guard::HoldSeen {
            what: "ecs-restart-block-支払い<&>".into(),
            scope: "account 111111111111 (eu-west-1)".into(),
            first: t("2026-11-22T00:10:00Z"),
            last: t("2026-11-22T00:40:00Z"),
        }],
        generated_at: t("2026-11-22T07:00:00Z"),
    }
    .html()
}

fn batches(at: DateTime<Utc>) -> Vec<PlannedBatch> {
    (0..2)
        .map(|b| PlannedBatch {
            batch: b,
            start_at: at
                .checked_add_signed(TimeDelta::minutes(10 * i64::from(b)))
                .unwrap_or(at),
            size: 2,
        })
        .collect()
}

/// The page is the report's own markup plus escaped text: no element or attribute comes
/// from data.
fn assert_no_injected_markup(html: &str) -> Result<(), TestCaseError> {
    let lower = html.to_lowercase();
    prop_assert!(!lower.contains("<script"), "a script element");
    prop_assert!(!lower.contains("<img"), "an img element");
    // Every `<` of the page opens one of the report's own elements.
    let own = [
        "<!doctype",
        "<html",
        "</html",
        "<head",
        "</head",
        "<meta",
        "<title",
        "</title",
        "<style",
        "</style",
        "<body",
        "</body",
        "<h1",
        "</h1",
        "<h2",
        "</h2",
        "<p",
        "</p",
        "<div",
        "</div",
        "<b>",
        "</b>",
        "<svg",
        "</svg",
        "<rect",
        "</rect",
        "<line",
        "<text",
        "</text",
        "<title>",
        "<table",
        "</table",
        "<tr",
        "</tr",
        "<th",
        "</th",
        "<td",
        "</td",
        "<i ",
        "</i",
        "<span",
        "</span",
        "<ul",
        "</ul",
        "<li",
        "</li",
    ];
    for (i, _) in lower.match_indices('<') {
        let rest = &lower[i..];
        let head: String = rest.chars().take(40).collect();
        prop_assert!(own.iter().any(|o| rest.starts_with(o)), "{}", head);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `esc` leaves no markup character and loses nothing: unescaping gives the text back,
    /// whatever it is.
    #[test]
    fn escaping_is_lossless_and_leaves_no_markup(s in text()) {
        let e = esc(&s);
        prop_assert!(!e.contains(['<', '>', '"', '\'']));
        prop_assert_eq!(unescape(&e), s.clone());
        // Characters other than the five are written as they are.
        let plain: String = s.chars().filter(|c| !"<>&\"'".contains(*c)).collect();
        let kept: String = e.replace("&lt;", "").replace("&gt;", "").replace("&quot;", "")
            .replace("&#39;", "").replace("&amp;", "");
        prop_assert_eq!(kept, plain);
    }

    /// Owners, details, pause and halt reasons in any script reach the page escaped and
    /// otherwise intact.
    #[test]
    fn the_report_carries_any_text_escaped(
        rows in prop::collection::vec((text(), text()), 1..8),
        by in text(),
        why in text(),
        halt in text(),
        tz in prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec()),
    ) {
        let start = t("2026-11-22T00:10:00Z");
        let records: Vec<NightRecord> = rows
            .iter()
            .enumerate()
            .map(|(i, (o, d))| record(i, o, d, start))
            .collect();
        let pause = Pause { reason: why.clone(), by: by.clone(), at: t("2026-11-22T01:00:00Z") };
        let halted = Halt { reason: halt.clone(), at: t("2026-11-22T01:05:00Z") };
        let html = page(tz, records, batches(start), Some(pause), Some(halted));
        for (o, d) in &rows {
            prop_assert!(html.contains(&format!("<td>{}</td>", esc(o))), "owner {o:?}");
            prop_assert!(html.contains(&esc(d)), "detail {d:?}");
        }
        let banner = format!("by {}: {}</div>", esc(&by), esc(&why));
        prop_assert!(html.contains(&banner), "{}", banner);
        let banner = format!("{}</div>", esc(&halt));
        prop_assert!(html.contains(&banner), "{}", banner);
        assert_no_injected_markup(&html)?;
    }

    /// Where the night's time went: account, service and operation names in any script reach
    /// the page escaped, whatever the numbers (NaN, infinite, negative) say.
    #[test]
    fn the_time_view_carries_any_text_escaped(
        rows in prop::collection::vec((text(), text(), text(), any::<f64>(), any::<f64>()), 1..6),
    ) {
        let accounts: Vec<AccountTime> = rows
            .iter()
            .map(|(account, service, operation, calls, pace)| AccountTime {
                account: account.clone(),
                calls: 2,
                call_seconds: *calls,
                pace_waits: 1,
                pace_seconds: *pace,
                slowest: vec![OperationTime {
                    service: service.clone(),
                    operation: operation.clone(),
                    calls: 2,
                    seconds: *calls,
                    max_seconds: *pace,
                    ..OperationTime::default()
                }],
                ..AccountTime::default()
            })
            .collect();
        let start = t("2026-11-22T00:10:00Z");
        let rw = RestartWindow::new(
            parse_time_of_day("22:00").unwrap(),
            parse_time_of_day("04:00").unwrap(),
            chrono_tz::UTC,
        )
        .unwrap();
        let html = Night {
            night: night(),
            window: rw.night(night()),
            tz: chrono_tz::UTC,
            window_label: rw.to_string(),
            plan: None,
            batches: batches(start),
            records: Vec::new(),
            halted: None,
            paused: None,
            holds: Vec::new(),
            generated_at: start,
        }
        .html_with_time(&TimeSpent { traces: 1, documents: 3, accounts });
        for (account, service, operation, _, _) in &rows {
            prop_assert!(html.contains(&format!("<tr><td>{}</td>", esc(account))), "account {account:?}");
            prop_assert!(html.contains(&format!("{} {}: 2 call(s)", esc(service), esc(operation))), "operation {operation:?}");
        }
        assert_no_injected_markup(&html)?;
    }

    /// Times anywhere chrono reaches (a record far off the window, a batch at the end of the
    /// calendar) in any timezone: a page of bounded size, never a panic.
    #[test]
    fn any_times_give_a_page(
        starts in prop::collection::vec(prop_oneof![
            Just(DateTime::<Utc>::MAX_UTC),
            Just(DateTime::<Utc>::MIN_UTC),
            (DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
                .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            (1_790_000_000i64..1_800_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        ], 1..4),
        tz in prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec()),
    ) {
        let records: Vec<NightRecord> = starts
            .iter()
            .enumerate()
            .map(|(i, s)| record(i, "決済チーム", "échec", *s))
            .collect();
        let html = page(tz, records, batches(starts[0]), None, None);
        prop_assert!(html.len() < 200_000, "{} bytes", html.len());
        prop_assert!(html.contains("決済チーム"));
    }
}

#[test]
fn unicode_owners_and_details_are_intact_and_markup_is_text() {
    let start = t("2026-11-22T00:10:00Z");
    let people = [
        ("決済チーム", "デプロイ失敗: タスクが起動しません"),
        (
            "e\u{301}quipe",
            "e\u{301}chec: conteneur arre\u{302}te\u{301}",
        ),
        ("🚀 plateforme", "💥 CannotPullContainerError"),
        ("ｔｅａｍ１２", "ＯＯＭ（１３７）"),
        (
            "<script>alert('x')</script>",
            "</td><img src=x onerror=alert(1)>",
        ),
    ];
    let records: Vec<NightRecord> = people
        .iter()
        .enumerate()
        .map(|(i, (o, d))| record(i, o, d, start))
        .collect();
    let html = page(chrono_tz::Asia::Tokyo, records, batches(start), None, None);
    for (o, d) in &people[..4] {
        assert!(html.contains(&format!("<td>{o}</td>")), "{o}");
        assert!(html.contains(d), "{d}");
    }
    assert!(html.contains("<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>"));
    assert!(html.contains("&lt;/td&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("<img"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    // A hold's alarm name, any script, escaped.
    assert!(html.contains("ecs-restart-block-支払い&lt;&amp;&gt; in account 111111111111 (eu-west-1): held from 2026-11-22T00:10:00Z to 2026-11-22T00:40:00Z (at least 30 min)"), "{html}");
}
