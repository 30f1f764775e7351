//! A chaos night through the real state machine definition: fleet-sim's `fleets/chaos.yaml`
//! has an account whose ECS is denied after its third restart (an SCP), an account whose ECS
//! answers 5 % of calls with HTTP 500, an account that denies AssumeRole, services whose
//! UpdateService is rejected, restarts overtaken by a deploy of another task definition, failing,
//! stuck and vanishing restarts, and enrollment tags in accented, CJK and full-width text. The
//! night must end, every service in the state the contracts give it, no service restarted twice,
//! nothing started after the window, the pacing and the cluster cap held.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use local_stack::report::ServiceEntry;
use local_stack::{Align, LocalStack, NightOptions, Watch};
use restart_core::outcome::NightState;

fn chaos_fleet() -> fleet_sim::FleetSpec {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-sim/fleets/chaos.yaml");
    fleet_sim::FleetSpec::from_path(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chaos_night_ends_every_service_in_its_contracted_state() {
    let fleet = chaos_fleet();
    let options = NightOptions {
        fleet: fleet.clone(),
        window_seconds: 120,
        align: Align::CurrentMinute,
        vars: [
            // Many failures on purpose: the breaker would halt the night and hide the rest.
            ("FAILURE_THRESHOLD_PERCENT", "100"),
            ("UNTAGGED_POLICY", "notify"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        // account 100000000003 answers 5 % of ECS calls with HTTP 500: a claim whose
        // UpdateService got one is judged after its lease.
        watch: Watch {
            progress: false,
            grace: Watch::lease_grace(),
        },
    };
    let (stack_options, compression) = local_stack::prepare(&options).unwrap();
    let stack = LocalStack::start(stack_options).await.unwrap();
    let report = local_stack::run_night(&stack, &compression, &options.watch).await;
    stack.stop().await;
    let report = report.unwrap();
    assert!(report.is_ok(), "{}", report.render());
    assert_eq!(report.execution.status, "SUCCEEDED");

    let by_name: BTreeMap<String, &ServiceEntry> = report
        .services
        .iter()
        // Account 100000000001 has an `api` in two clusters: the owner check below tells them
        // apart.
        .filter(|s| s.service != "api")
        .map(|s| (format!("{}/{}", s.account, s.service), s))
        .collect();
    let entry = |account: &str, service: &str| {
        *by_name
            .get(&format!("{account}/{service}"))
            .unwrap_or_else(|| panic!("{account}/{service} has no record"))
    };
    let state = |account: &str, service: &str| entry(account, service).state;

    // Unicode tag values: malformed (restarted, owner told), or the keyword they spell.
    for (account, service) in [
        ("100000000001", "receipts"),
        ("100000000001", "images"),
        ("100000000004", "stock-00"),
        ("100000000004", "stock-01"),
        ("100000000004", "stock-02"),
        ("100000000004", "stock-03"),
        ("100000000004", "stock-05"),
        ("100000000004", "stock-06"),
        ("100000000004", "stock-08"),
        ("100000000004", "stock-09"),
    ] {
        assert_eq!(
            state(account, service),
            NightState::Completed,
            "{account}/{service}"
        );
    }
    assert_eq!(
        entry("100000000004", "stock-07").reason.as_deref(),
        Some("opted_out")
    );
    // Owners in Unicode reach the records intact.
    for (cluster, owner) in [
        ("paiements", "équipe-paiements"),
        ("catalogue", "équipe-catalogue"),
    ] {
        let api = report
            .services
            .iter()
            .find(|s| s.cluster == cluster && s.service == "api")
            .unwrap();
        assert_eq!(api.owner, owner);
    }

    // UpdateService refused for good: failed, update_rejected, the code in the detail.
    for service in ["locked", "frozen"] {
        let e = entry("100000000001", service);
        assert_eq!(e.state, NightState::Failed, "{service}");
        let detail = e.detail.as_deref().unwrap_or_default();
        assert!(
            detail.starts_with("update_rejected") && detail.contains("ClientException"),
            "{service}: {detail}"
        );
    }
    // A deploy of another task definition overtook ours: superseded, not a failure.
    for service in ["checkout", "pricing", "fraud"] {
        assert_eq!(
            state("100000000001", service),
            NightState::Superseded,
            "{service}"
        );
    }
    for service in ["reports", "exports"] {
        assert_eq!(
            state("100000000001", service),
            NightState::TimedOut,
            "{service}"
        );
    }
    for service in ["temp", "canary"] {
        assert_eq!(
            state("100000000001", service),
            NightState::Vanished,
            "{service}"
        );
    }

    // The account lost mid-night: what had not started is skipped as unreachable, what had
    // started ends (completed before the loss, or timed out saying why); nothing failed.
    let lost: Vec<&ServiceEntry> = report
        .services
        .iter()
        .filter(|s| s.account == "100000000002")
        .collect();
    assert_eq!(lost.len(), 10);
    assert!(
        lost.iter()
            .any(|s| s.reason.as_deref() == Some("account_unreachable"))
    );
    for s in &lost {
        match s.state {
            NightState::Completed => {}
            NightState::Skipped => assert_eq!(s.reason.as_deref(), Some("account_unreachable")),
            NightState::TimedOut => assert!(
                s.detail
                    .as_deref()
                    .unwrap_or_default()
                    .contains("account unreachable")
                    || s.deployment_id.is_none(),
                "{s:?}"
            ),
            other => panic!("{}: {other}", s.service),
        }
    }
    // 500s now and then: every service still ends, none fails because of them.
    for s in report
        .services
        .iter()
        .filter(|s| s.account == "100000000003")
    {
        assert!(s.state.is_terminal(), "{s:?}");
        if !["index-00", "index-03"].contains(&s.service.as_str()) {
            assert!(
                matches!(s.state, NightState::Completed | NightState::TimedOut),
                "{s:?}"
            );
        }
    }
    assert!(
        report
            .unreachable_accounts
            .iter()
            .any(|u| u.account == "100000000005")
    );

    // Nothing started after the window's end.
    let end: DateTime<Utc> = report.window.window_end;
    for s in &report.services {
        if let Some(at) = &s.started_at {
            let at: DateTime<Utc> = at.parse().unwrap();
            assert!(at < end, "{} started at {at}, after {end}", s.arn);
        }
    }
    // One forced deployment per restart that ran (is_ok checks it equals the records with a
    // deployment), the account's UpdateService pace and the cluster cap held.
    let stats = &report.sim_stats;
    for (key, actions) in stats["max_rate"].as_object().unwrap() {
        let updates = actions["UpdateService"].as_u64().unwrap_or(0);
        assert!(updates <= 8, "{key}: {updates} UpdateService in one second");
    }
    for (cluster, n) in stats["max_inflight_per_cluster"].as_object().unwrap() {
        assert!(n.as_u64().unwrap() <= 10, "{cluster}: {n}");
    }
    // The summary says what happened.
    let summary = report
        .notices
        .iter()
        .find(|n| n.topic.ends_with("OpsTopic"))
        .expect("the ops summary");
    assert!(summary.body.contains("100000000005"), "{}", summary.body);
    assert!(
        summary.body.contains("Lost during the night") && summary.body.contains("100000000002"),
        "{}",
        summary.body
    );
}
