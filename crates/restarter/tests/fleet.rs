//! The restarter against real peers: fleet-sim (ECS, STS) and moto (DynamoDB). Inventory
//! fills the catalog, the batcher plans the night, and the restarter starts and watches it,
//! on a manual clock that moves with fleet-sim's simulated one (the nights of
//! [`crate::harness`]). `tools/with-moto` provides `MOTO_ENDPOINT`.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use fleet_sim::spec::{
    AccountSpec, AlarmSpec, AlarmState, AlarmStateAt, CalendarDefault, CalendarEventSpec,
    CalendarSpec, Controller, OnRestart, ServiceSpec,
};
use restart_core::ErrorType;
use restart_core::eligibility::SkipReason;
use restart_core::night::{NightRecord, Pause};
use restart_core::outcome::NightState;
use restart_core::ports::{FleetControl, NightStore, RestartStore};
use restart_core::tag::restart_tag_value;
use restarter::aws::AwsRestarter;
use restarter::{Output, ServiceOutput};
use serde_json::json;

use crate::harness::{A, B, Night, START, TAG, account, ok_services, sid, states, svc};

impl Night {
    /// On-call's restart of one service (`mode: service`), which must be accepted.
    async fn restart_by_hand(&self, r: &AwsRestarter, service: &str, force: bool) -> ServiceOutput {
        let arn = sid(A, service).arn("aws").to_string();
        let out = r
            .handle(json!({ "mode": "service", "service_arn": arn, "force": force }))
            .await
            .unwrap();
        let Output::Service(out) = out else {
            panic!("a restart by hand answered {out:?}")
        };
        out
    }
}

#[tokio::test]
async fn a_night_ends_every_service_in_its_verified_outcome() {
    let mut services = vec![
        svc("ok-0", OnRestart::Complete, 300),
        svc("ok-1", OnRestart::Complete, 420),
        svc("fail-0", OnRestart::Fail, 200),
        svc("rollback-0", OnRestart::Fail, 250),
        svc("stuck-0", OnRestart::Stuck, 300),
        svc("vanish-0", OnRestart::Vanish, 200),
        svc("busy", OnRestart::Complete, 3000),
        ServiceSpec {
            controller: Controller::CodeDeploy,
            ..svc("blue-green", OnRestart::Complete, 300)
        },
        ServiceSpec {
            min_healthy_percent: 0,
            ..svc("downtime", OnRestart::Complete, 300)
        },
    ];
    services.push(ServiceSpec {
        tags: BTreeMap::new(),
        ..svc("untagged", OnRestart::Complete, 300)
    });
    let n = Night::new(services, &[]).await;
    let r = n.restarter();
    // A tenant's own deployment begins on `busy` after planning: the live check skips it.
    r.fleet.force_new_deployment(&sid(A, "busy")).await.unwrap();
    let before = n.calls("UpdateService");

    for &b in &n.batches {
        let out = n.start(&r, b).await.unwrap();
        assert_eq!(out.wait_seconds, 120);
        assert!(!out.dry_run);
    }
    // 6 restarts started: the planned services but `busy`.
    assert_eq!(n.calls("UpdateService") - before, 6);
    // Polls every 120 s: fail-0 fails at 200 s and is seen FAILED at 240 s; rollback-0 fails at 250 s
    // and is rolled back at 310 s, before the poll at 360 s; stuck-0 times out at 30 min.
    n.poll_until_done(&r, 120).await;

    let records = n.records().await;
    let expected: BTreeMap<String, NightState> = [
        ("ok-0", NightState::Completed),
        ("ok-1", NightState::Completed),
        ("fail-0", NightState::Failed),
        ("rollback-0", NightState::RolledBack),
        ("stuck-0", NightState::TimedOut),
        ("vanish-0", NightState::Vanished),
        ("busy", NightState::Skipped),
        ("blue-green", NightState::Skipped),
        ("downtime", NightState::Skipped),
        ("untagged", NightState::Skipped),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), *v))
    .collect();
    assert_eq!(states(&records), expected);
    let reason = |s: &str| records[s].skip_reason;
    assert_eq!(reason("busy"), Some(SkipReason::DeploymentInProgress));
    assert_eq!(reason("blue-green"), Some(SkipReason::ControllerCodeDeploy));
    assert_eq!(reason("downtime"), Some(SkipReason::DowntimeRisk));
    assert_eq!(reason("untagged"), Some(SkipReason::Untagged));

    // Completed restarts carry the tag with their completion time, and a duration.
    let live = r
        .fleet
        .describe(&[
            sid(A, "ok-0"),
            sid(A, "ok-1"),
            sid(A, "fail-0"),
            sid(A, "stuck-0"),
        ])
        .await
        .unwrap();
    let tag = |name: &str| {
        live.iter()
            .find(|s| s.id.service == name)
            .and_then(|s| s.tags.get(TAG).cloned())
    };
    for name in ["ok-0", "ok-1"] {
        let rec = &records[name];
        let finished = rec.finished_at.unwrap();
        assert_eq!(tag(name), Some(restart_tag_value(finished)), "{name}");
        let live_primary = live
            .iter()
            .find(|s| s.id.service == name)
            .and_then(|s| s.primary())
            .map(|d| d.id.clone());
        assert_eq!(
            rec.deployment_id, live_primary,
            "{name}: the same deployment"
        );
        assert!(rec.duration_seconds.unwrap() >= 300, "{name}: {rec:?}");
    }
    // The next night's plan reads each completed restart's duration from these records; the
    // other outcomes have none.
    assert_eq!(records["fail-0"].duration_seconds, None);
    assert_eq!(records["stuck-0"].duration_seconds, None);
    // Only completed writes the tag.
    assert_eq!(tag("fail-0").as_deref(), Some("2026-11-21T01:10:00Z"));
    assert_eq!(tag("stuck-0").as_deref(), Some("2026-11-21T01:10:00Z"));
    assert!(
        records["rollback-0"]
            .detail
            .as_deref()
            .unwrap()
            .contains("rolled back")
    );

    // The night's counters agree with the records.
    let status = n.store().night_status(n.night).await.unwrap();
    assert_eq!(status.count(NightState::Started), 6);
    assert_eq!(status.count(NightState::Completed), 2);
    assert_eq!(status.failures(), 3);
    assert_eq!(status.finished(), 6);
    assert!(status.halted.is_none());

    // Starting every batch again restarts nothing.
    let calls = n.calls("UpdateService");
    for &b in &n.batches {
        n.start(&r, b).await.unwrap();
        assert!(n.poll(&r, b).await.done);
    }
    assert_eq!(n.calls("UpdateService"), calls);
    assert_eq!(n.sim.handle().stats().total_calls("TagResource"), 2);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn paused_starts_nothing_and_resume_continues() {
    let n = Night::new(ok_services("ok", 3, 120), &[]).await;
    let r = n.restarter();
    let pause = Pause {
        reason: "incident 4711".into(),
        by: "alice".into(),
        at: START.parse().unwrap(),
    };
    n.store().set_pause(Some(&pause)).await.unwrap();
    let err = n.start(&r, n.batches[0]).await.unwrap_err();
    assert_eq!(err.error_type, ErrorType::Paused);
    assert!(
        err.message.contains("incident 4711") && err.message.contains("alice"),
        "{}",
        err.message
    );
    // A poll while paused watches, but starts nothing either.
    let p = n.poll(&r, n.batches[0]).await;
    assert!(!p.done);
    assert_eq!(p.counts.get(&NightState::Planned), Some(&1));
    assert_eq!(n.calls("UpdateService"), 0);

    n.store().set_pause(None).await.unwrap();
    n.start_all(&r).await;
    assert_eq!(n.calls("UpdateService"), 3);
    n.poll_until_done(&r, 60).await;
    assert!(
        states(&n.records().await)
            .values()
            .all(|s| *s == NightState::Completed)
    );
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_circuit_breaker_halts_the_rest_of_the_night() {
    // 24 failing services: after 20 finished, all failed, the night halts.
    let services: Vec<ServiceSpec> = (0..24)
        .map(|i| svc(&format!("bad-{i}"), OnRestart::Fail, 60))
        .collect();
    let n = Night::new(services, &[("MAX_INFLIGHT_PER_CLUSTER", "100")]).await;
    let r = n.restarter();
    let store = n.store();
    // Start batches until at least 20 services run; the last batch waits.
    let (last, first) = n.batches.split_last().unwrap();
    for &b in first {
        n.start(&r, b).await.unwrap();
    }
    let started = n.calls("UpdateService");
    assert!(started >= 20, "{started}");
    n.advance(90);
    for &b in first {
        assert!(n.poll(&r, b).await.done);
    }
    let status = store.night_status(n.night).await.unwrap();
    let halt = status.halted.expect("halted");
    assert!(
        halt.reason
            .contains(&format!("{started} of {started} finished restarts")),
        "{}",
        halt.reason
    );

    let err = n.start(&r, *last).await.unwrap_err();
    assert_eq!(err.error_type, ErrorType::Halted);
    assert!(err.message.contains("halted"), "{}", err.message);
    assert_eq!(
        n.calls("UpdateService"),
        started,
        "nothing started after the halt"
    );
    let halted: Vec<NightRecord> = store.read_batch(n.night, *last).await.unwrap();
    assert!(!halted.is_empty());
    for rec in &halted {
        assert_eq!(rec.state, NightState::Halted);
        assert!(rec.detail.as_deref().unwrap().contains("finished restarts"));
    }
    assert!(n.poll(&r, *last).await.done);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_start_retried_after_a_crash_between_update_service_and_its_record_restarts_once() {
    let n = Night::new(ok_services("ok", 1, 120), &[]).await;
    let r = n.restarter();
    let store = n.store();
    let b = n.batches[0];
    let planned = store.read_batch(n.night, b).await.unwrap().remove(0);
    // What the crashed invocation left: the claim, then UpdateService, no deployment record.
    let live = r
        .fleet
        .describe(std::slice::from_ref(&planned.id))
        .await
        .unwrap();
    let claim = NightRecord {
        state: NightState::Started,
        started_at: Some(START.parse().unwrap()),
        previous_deployment: live[0].primary().map(|d| d.id.clone()),
        ..planned.clone()
    };
    assert_eq!(
        store.claim(Some(&planned), &claim, 10).await.unwrap(),
        restart_core::ports::Claim::Claimed
    );
    let deployment = r.fleet.force_new_deployment(&planned.id).await.unwrap();
    assert_eq!(n.calls("UpdateService"), 1);

    // While the claim's lease runs, another start leaves it to its owner.
    n.start(&r, b).await.unwrap();
    assert_eq!(n.calls("UpdateService"), 1);
    let rec = store
        .find_record(n.night, &planned.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.deployment_id, None);

    // Past the lease, the retried start finds the deployment instead of restarting again.
    n.advance(restarter::CLAIM_LEASE.num_seconds());
    n.start(&r, b).await.unwrap();
    assert_eq!(n.calls("UpdateService"), 1);
    let rec = store
        .find_record(n.night, &planned.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.deployment_id.as_deref(), Some(deployment.as_str()));
    n.poll_until_done(&r, 60).await;
    assert_eq!(n.records().await["ok-0"].state, NightState::Completed);

    // A crash before UpdateService ran: the retry runs it, once.
    let n = Night::new(ok_services("ok", 1, 120), &[]).await;
    let r = n.restarter();
    let store = n.store();
    let planned = store.read_batch(n.night, b).await.unwrap().remove(0);
    let live = r
        .fleet
        .describe(std::slice::from_ref(&planned.id))
        .await
        .unwrap();
    let claim = NightRecord {
        state: NightState::Started,
        started_at: Some(START.parse().unwrap()),
        previous_deployment: live[0].primary().map(|d| d.id.clone()),
        ..planned.clone()
    };
    store.claim(Some(&planned), &claim, 10).await.unwrap();
    n.start(&r, b).await.unwrap();
    assert_eq!(n.calls("UpdateService"), 0, "the claim's lease still runs");
    n.advance(restarter::CLAIM_LEASE.num_seconds());
    n.start(&r, b).await.unwrap();
    n.start(&r, b).await.unwrap();
    assert_eq!(n.calls("UpdateService"), 1);
    n.poll_until_done(&r, 60).await;
    assert_eq!(n.records().await["ok-0"].state, NightState::Completed);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_manual_restart_needs_force_once_the_service_restarted_tonight() {
    let mut services = ok_services("ok", 1, 120);
    services.push(ServiceSpec {
        tags: BTreeMap::new(),
        ..svc("untagged", OnRestart::Complete, 120)
    });
    let n = Night::new(services, &[]).await;
    let r = n.restarter();
    n.start_all(&r).await;
    n.poll_until_done(&r, 60).await;
    let arn = sid(A, "ok-0").arn("aws").to_string();
    let first = n.records().await["ok-0"].clone();
    assert_eq!(first.state, NightState::Completed);

    let err = r
        .handle(json!({ "mode": "service", "service_arn": arn }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidInput);
    assert!(err.message.contains("use force"), "{}", err.message);
    assert_eq!(n.calls("UpdateService"), 1);

    let out = n.restart_by_hand(&r, "ok-0", true).await;
    assert_eq!(out.night, n.night);
    assert_eq!(out.state, NightState::Started);
    assert_ne!(out.deployment_id, first.deployment_id);
    assert_eq!(n.calls("UpdateService"), 2);
    let poll = |arn: String| {
        let r = &r;
        async move {
            r.handle(json!({ "mode": "poll", "night": "2026-11-22", "service_arn": arn }))
                .await
                .unwrap()
        }
    };
    n.advance(150);
    let Output::Poll(p) = poll(arn.clone()).await else {
        panic!()
    };
    assert!(p.done);
    assert_eq!(p.counts.get(&NightState::Completed), Some(&1));

    // An untagged service (skipped tonight) restarts on request, without force.
    let out = n.restart_by_hand(&r, "untagged", false).await;
    assert_eq!(out.state, NightState::Started);
    assert_eq!(n.calls("UpdateService"), 3);
    // A second request while it runs (a retried one) is answered with the restart in
    // flight, and sends no second UpdateService.
    let again = n.restart_by_hand(&r, "untagged", true).await;
    assert_eq!(again.state, NightState::Started);
    assert_eq!(again.deployment_id, out.deployment_id);
    assert_eq!(n.calls("UpdateService"), 3);

    // Unknown and malformed services.
    let unknown = sid(A, "nope").arn("aws").to_string();
    let err = r
        .handle(json!({ "mode": "service", "service_arn": unknown }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidInput);
    assert!(err.message.contains("does not exist"), "{}", err.message);
    let err = r
        .handle(json!({ "mode": "service", "service_arn": "arn:aws:ecs:eu-west-1:1:service/x" }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidInput);
    assert!(err.message.contains("service_arn"), "{}", err.message);
    assert_eq!(n.calls("UpdateService"), 3);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dry_run_writes_the_same_records_and_leaves_the_fleet_untouched() {
    let n = Night::new(ok_services("ok", 4, 120), &[("DRY_RUN", "true")]).await;
    let r = n.restarter();
    let before = r
        .fleet
        .describe(
            &(0..4)
                .map(|i| sid(A, &format!("ok-{i}")))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    for &b in &n.batches {
        let out = n.start(&r, b).await.unwrap();
        assert!(out.dry_run);
    }
    n.poll_until_done(&r, 60).await;
    let records = n.records().await;
    assert_eq!(records.len(), 4);
    for rec in records.values() {
        assert_eq!(rec.state, NightState::Completed);
        assert!(rec.deployment_id.is_some());
    }
    let stats = n.sim.handle().stats();
    assert_eq!(stats.total_calls("UpdateService"), 0);
    assert_eq!(stats.total_calls("TagResource"), 0);
    assert_eq!(stats.restarts, 0);
    let after = r
        .fleet
        .describe(
            &(0..4)
                .map(|i| sid(A, &format!("ok-{i}")))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(before, after);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_cluster_ever_has_more_restarts_in_flight_than_its_cap() {
    let n = Night::new(
        ok_services("ok", 9, 300),
        &[("MAX_INFLIGHT_PER_CLUSTER", "2")],
    )
    .await;
    let r = n.restarter();
    let mut deferred = 0;
    for &b in &n.batches {
        let out = n.start(&r, b).await.unwrap();
        deferred += out.deferred;
    }
    assert_eq!(n.calls("UpdateService"), 2);
    assert_eq!(deferred, 7);
    n.poll_until_done(&r, 60).await;
    assert!(
        states(&n.records().await)
            .values()
            .all(|s| *s == NightState::Completed)
    );
    assert_eq!(n.calls("UpdateService"), 9);
    let stats = n.sim.handle().stats();
    assert_eq!(stats.max_inflight_per_cluster.values().max(), Some(&2));
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_with_what_was_wrong() {
    let n = Night::new(ok_services("ok", 1, 120), &[]).await;
    let r = n.restarter();
    let cases = [
        (
            json!({ "mode": "start", "night": "2026-11-22", "batch": 99 }),
            "has no batch 99",
        ),
        (
            json!({ "mode": "start", "night": "2026-11-30", "batch": 0 }),
            "has no plan",
        ),
        (
            json!({ "mode": "start", "night": "22/11/2026", "batch": 0 }),
            "night",
        ),
        (json!({ "mode": "restart" }), "mode"),
        (
            json!({ "mode": "poll", "night": "2026-11-22" }),
            "either `batch` or `service_arn`",
        ),
        (
            json!({ "mode": "start", "night": "2026-11-22", "batch": 0, "extra": 1 }),
            "extra",
        ),
    ];
    for (event, says) in cases {
        let err = r.handle(event.clone()).await.unwrap_err();
        assert_eq!(err.error_type, ErrorType::InvalidInput, "{event}");
        assert!(err.message.contains(says), "{event}: {}", err.message);
    }
    assert_eq!(n.calls("UpdateService"), 0);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn polls_space_out_once_only_slow_restarts_remain_but_never_past_the_timeout() {
    // One service per batch (one cluster): the stuck one's batch has nothing else.
    let n = Night::new(vec![svc("stuck-0", OnRestart::Stuck, 300)], &[]).await;
    let r = n.restarter();
    let batch = n.records().await["stuck-0"].batch.unwrap();
    n.start(&r, batch).await.unwrap();

    // Young: the poll interval (120 s in these tests), also at 19 minutes.
    n.advance(300);
    assert_eq!(n.poll(&r, batch).await.wait_seconds, 120);
    n.advance(840);
    assert_eq!(n.poll(&r, batch).await.wait_seconds, 120);
    // Past two thirds of the 30-minute timeout: three intervals.
    n.advance(60);
    let p = n.poll(&r, batch).await;
    assert_eq!((p.pending, p.wait_seconds), (1, 360));
    // 100 s before the timeout: one interval, so the timeout is recorded on time.
    n.advance(500);
    assert_eq!(n.poll(&r, batch).await.wait_seconds, 120);
    n.advance(120);
    let p = n.poll(&r, batch).await;
    assert!(p.done);
    assert_eq!(n.records().await["stuck-0"].state, NightState::TimedOut);
    n.sim.shutdown().await.unwrap();
}

/// A crowded cluster (one restart at a time, restarts of 35 minutes, a one-hour window): what
/// could not start before the window's end ends `skipped/window_closed`, no UpdateService runs
/// after it, and the batches end.
#[tokio::test]
async fn nothing_starts_after_the_window_and_what_is_left_ends_window_closed() {
    let n = Night::new(
        ok_services("ok", 3, 35 * 60),
        &[
            ("MAX_INFLIGHT_PER_CLUSTER", "1"),
            ("RESTART_TIMEOUT_MINUTES", "60"),
        ],
    )
    .await;
    let r = n.restarter();
    n.start_all(&r).await;
    assert_eq!(n.calls("UpdateService"), 1);
    n.poll_until_done(&r, 120).await;
    assert_eq!(
        n.calls("UpdateService"),
        2,
        "the third restart would start after 01:00"
    );
    let records = n.records().await;
    let window_end: chrono::DateTime<chrono::Utc> = "2026-11-22T01:00:00Z".parse().unwrap();
    let mut closed = 0;
    for rec in records.values() {
        match rec.state {
            NightState::Completed => assert!(rec.started_at.unwrap() < window_end),
            NightState::Skipped => {
                assert_eq!(
                    rec.skip_reason,
                    Some(restart_core::eligibility::SkipReason::WindowClosed)
                );
                closed += 1;
            }
            other => panic!("{}: {other}", rec.id),
        }
    }
    assert_eq!(closed, 1, "{:?}", states(&records));
    // A start of a batch after the window starts nothing either, paused or not.
    for &b in &n.batches {
        n.start(&r, b).await.unwrap();
    }
    assert_eq!(n.calls("UpdateService"), 2);
    n.sim.shutdown().await.unwrap();
}

/// After the window's end only on-call's explicit `outside_window` starts a batch's restarts,
/// and each such record says so; a batch started after the window without it closes.
#[tokio::test]
async fn outside_the_window_only_on_request_and_the_record_says_so() {
    let n = Night::new(ok_services("ok", 4, 120), &[]).await;
    assert!(n.batches.len() >= 2, "{:?}", n.batches);
    let r = n.restarter();
    n.advance(3700); // 01:01:40, the window ended at 01:00
    let first = n.batches[0];
    r.handle(json!({"mode": "start", "night": n.night, "batch": first, "outside_window": true}))
        .await
        .unwrap();
    let started = n.calls("UpdateService");
    assert!(started >= 1);
    let store = n.store();
    for rec in store.read_batch(n.night, first).await.unwrap() {
        assert_eq!(rec.state, NightState::Started, "{}", rec.id);
        assert!(
            rec.detail
                .as_deref()
                .unwrap_or_default()
                .contains("outside_window"),
            "{:?}",
            rec.detail
        );
    }
    let second = n.batches[1];
    let planned: Vec<String> = store
        .read_batch(n.night, second)
        .await
        .unwrap()
        .into_iter()
        .map(|rec| rec.id.service)
        .collect();
    assert!(!planned.is_empty());
    n.start(&r, second).await.unwrap();
    assert_eq!(
        n.calls("UpdateService"),
        started,
        "no start without outside_window"
    );
    let records = n.records().await;
    for service in &planned {
        assert_eq!(
            records[service].skip_reason,
            Some(restart_core::eligibility::SkipReason::WindowClosed),
            "{service}"
        );
    }
    n.sim.shutdown().await.unwrap();
}

/// A service its owners deployed 2 hours before the night already runs fresh tasks: the live
/// check skips it `recently_deployed`, naming the deployment, and sends it no UpdateService;
/// one deployed 17 hours before is restarted, and so is everything with the rule turned off.
/// On-call's restart of one service is not held by the rule.
#[tokio::test]
async fn recently_deployed_services_are_never_restarted_by_the_night() {
    let services = || {
        vec![
            ServiceSpec {
                deployed_minutes_ago: Some(120),
                ..svc("fresh", OnRestart::Complete, 120)
            },
            ServiceSpec {
                deployed_minutes_ago: Some(17 * 60),
                ..svc("stale", OnRestart::Complete, 120)
            },
            svc("plain", OnRestart::Complete, 120),
        ]
    };
    let n = Night::new(services(), &[]).await;
    let r = n.restarter();
    n.start_all(&r).await;
    n.poll_until_done(&r, 60).await;
    let records = n.records().await;
    let fresh = &records["fresh"];
    assert_eq!(fresh.state, NightState::Skipped);
    assert_eq!(fresh.skip_reason, Some(SkipReason::RecentlyDeployed));
    let detail = fresh.detail.as_deref().unwrap();
    assert!(
        detail.contains("completed at 2026-11-21T22:00:00Z")
            && detail.contains("SKIP_IF_DEPLOYED_WITHIN_HOURS=12"),
        "{detail}"
    );
    assert_eq!(fresh.deployment_id, None);
    assert_eq!(records["stale"].state, NightState::Completed);
    assert_eq!(records["plain"].state, NightState::Completed);
    assert_eq!(n.calls("UpdateService"), 2);

    // On request, on-call restarts it.
    let out = n.restart_by_hand(&r, "fresh", false).await;
    assert_eq!(out.state, NightState::Started);
    assert_eq!(n.calls("UpdateService"), 3);
    n.sim.shutdown().await.unwrap();

    let off = Night::new(services(), &[("SKIP_IF_DEPLOYED_WITHIN_HOURS", "0")]).await;
    let r = off.restarter();
    off.start_all(&r).await;
    off.poll_until_done(&r, 60).await;
    assert!(
        states(&off.records().await)
            .values()
            .all(|s| *s == NightState::Completed)
    );
    assert_eq!(off.calls("UpdateService"), 3);
    off.sim.shutdown().await.unwrap();
}

/// A second account like [`A`], with its own cluster `app` of `services`, owned by another
/// team.
fn account_b(services: Vec<ServiceSpec>) -> AccountSpec {
    let mut b = account(B, services);
    b.clusters[0].tags = [("team".to_owned(), "search".to_owned())].into();
    b
}

/// An alarm in ALARM from `from` to `until` minutes after the night's start, OK around it.
fn alarm(name: &str, from: u32, until: u32) -> AlarmSpec {
    let at = |at_minute, state| AlarmStateAt {
        at_minute,
        state,
        reason: None,
    };
    let mut states = vec![at(from, AlarmState::Alarm), at(until, AlarmState::Ok)];
    if from > 0 {
        states.insert(0, at(0, AlarmState::Ok));
    }
    AlarmSpec {
        name: name.into(),
        region: None,
        states,
    }
}

/// A change calendar in the hub: DEFAULT_OPEN, CLOSED from `from` to `until` minutes after
/// the night's start.
fn freeze(name: &str, from: u32, until: u32) -> CalendarSpec {
    CalendarSpec {
        name: name.into(),
        region: None,
        default: CalendarDefault::DefaultOpen,
        events: vec![CalendarEventSpec {
            summary: "peak season".into(),
            from_minute: from,
            until_minute: until,
        }],
    }
}

/// Asserts that every record is skipped for `reason`, its detail saying each of `needles`.
fn all_skipped_saying(
    records: &BTreeMap<String, NightRecord>,
    reason: SkipReason,
    needles: &[&str],
) {
    for rec in records.values() {
        assert_eq!(
            (rec.state, rec.skip_reason),
            (NightState::Skipped, Some(reason)),
            "{}",
            rec.id
        );
        let detail = rec.detail.as_deref().unwrap_or_default();
        assert!(needles.iter().all(|n| detail.contains(n)), "{detail}");
    }
}

#[tokio::test]
async fn a_closed_change_calendar_sends_no_update_service_and_ends_every_planned_restart_change_freeze()
 {
    let n = Night::new_with(
        ok_services("ok", 4, 120),
        &[("CHANGE_CALENDAR", "peak-freeze")],
        |f| f.calendars = vec![freeze("peak-freeze", 0, 24 * 60)],
    )
    .await;
    let r = n.restarter();
    n.start_all(&r).await;
    n.poll_until_done(&r, 60).await;
    assert_eq!(n.calls("UpdateService"), 0);
    let records = n.records().await;
    assert_eq!(records.len(), 4);
    all_skipped_saying(
        &records,
        SkipReason::ChangeFreeze,
        &["peak-freeze is CLOSED", "until 2026-11-23T00:00:00"],
    );
    // The summary's view of the night names the freeze.
    let holds = restart_core::guard::NightHolds::of(records.values());
    assert_eq!(holds.frozen.values().sum::<u64>(), 4);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_calendar_that_opens_inside_the_window_lets_the_later_batches_run() {
    // Closed for the first 15 minutes of a one-hour window.
    let n = Night::new_with(
        ok_services("ok", 12, 120),
        &[("CHANGE_CALENDAR", "peak-freeze")],
        |f| f.calendars = vec![freeze("peak-freeze", 0, 15)],
    )
    .await;
    assert!(n.batches.len() >= 2, "{:?}", n.batches);
    let r = n.restarter();
    let (first, later) = n.batches.split_first().unwrap();
    n.start(&r, *first).await.unwrap();
    assert_eq!(n.calls("UpdateService"), 0);
    n.advance(20 * 60);
    for &b in later {
        n.start(&r, b).await.unwrap();
    }
    n.poll_until_done(&r, 60).await;
    let records = n.records().await;
    let frozen: Vec<&NightRecord> = records
        .values()
        .filter(|r| r.skip_reason == Some(SkipReason::ChangeFreeze))
        .collect();
    let completed = records
        .values()
        .filter(|r| r.state == NightState::Completed)
        .count();
    assert!(!frozen.is_empty());
    assert_eq!(frozen.len() + completed, 12, "{:?}", states(&records));
    assert_eq!(n.calls("UpdateService"), completed as u64);
    assert!(completed > 0);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreadable_change_calendar_holds_the_night_and_never_restarts_through_it() {
    // The calendar does not exist: SSM answers InvalidDocument.
    let n = Night::new(
        ok_services("ok", 3, 120),
        &[("CHANGE_CALENDAR", "no-such-calendar")],
    )
    .await;
    let r = n.restarter();
    n.start_all(&r).await;
    assert_eq!(n.calls("UpdateService"), 0);
    // Held, not ended: planned until the window's end, then window_closed naming why.
    let p = n.poll(&r, n.batches[0]).await;
    assert!(!p.done);
    n.poll_until_done(&r, 10 * 60).await;
    assert_eq!(n.calls("UpdateService"), 0);
    all_skipped_saying(
        &n.records().await,
        SkipReason::WindowClosed,
        &["no-such-calendar could not be read"],
    );
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_blocking_alarm_in_one_account_holds_only_that_account_until_it_clears() {
    let b_services = vec![
        svc("b-0", OnRestart::Complete, 120),
        svc("b-1", OnRestart::Complete, 120),
    ];
    let n = Night::new_with(
        ok_services("ok", 2, 120),
        &[("BLOCKING_ALARM_PREFIX", "ecs-restart-block-")],
        |f| {
            f.accounts.push(account_b(b_services));
            f.account_alarms
                .insert(B.into(), vec![alarm("ecs-restart-block-db", 0, 20)]);
            // Alarms of other names never hold anything.
            f.account_alarms
                .insert(A.into(), vec![alarm("cpu-high", 0, 60)]);
        },
    )
    .await;
    let r = n.restarter();
    n.start_all(&r).await;
    assert_eq!(n.calls_of(A, "UpdateService"), 2, "account A runs on time");
    assert_eq!(n.calls_of(B, "UpdateService"), 0, "account B is held");
    n.advance(10 * 60);
    for &b in &n.batches {
        n.poll(&r, b).await;
    }
    assert_eq!(
        n.calls_of(B, "UpdateService"),
        0,
        "still held while the alarm fires"
    );
    n.advance(15 * 60);
    n.poll_until_done(&r, 60).await;
    assert_eq!(
        n.calls_of(B, "UpdateService"),
        2,
        "the hold ended by itself"
    );
    // The table says what held the night, where and for how long (the summary's lines).
    let seen = n.store().holds_seen(n.night).await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].what.as_str(), seen[0].scope.as_str()),
        ("ecs-restart-block-db", "account 222222222222 (eu-west-1)")
    );
    assert_eq!(
        seen[0].first,
        START.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    );
    assert_eq!(seen[0].held_for(), TimeDelta::minutes(10));
    let records = n.records().await;
    let cleared: chrono::DateTime<chrono::Utc> = "2026-11-22T00:20:00Z".parse().unwrap();
    for rec in records.values() {
        assert_eq!(rec.state, NightState::Completed, "{}", rec.id);
        if rec.id.account.to_string() == B {
            assert!(rec.started_at.unwrap() >= cleared, "{rec:?}");
        } else {
            assert!(rec.started_at.unwrap() < cleared, "{rec:?}");
        }
    }
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_blocking_alarm_in_the_hub_holds_everyone_and_the_window_end_names_it() {
    let n = Night::new_with(
        ok_services("ok", 3, 120),
        &[("BLOCKING_ALARM_PREFIX", "ecs-restart-block-")],
        |f| f.hub_alarms = vec![alarm("ecs-restart-block-incident", 0, 24 * 60)],
    )
    .await;
    let r = n.restarter();
    n.start_all(&r).await;
    n.poll_until_done(&r, 10 * 60).await;
    assert_eq!(n.calls("UpdateService"), 0);
    let records = n.records().await;
    all_skipped_saying(
        &records,
        SkipReason::WindowClosed,
        &[
            "held by blocking alarm ecs-restart-block-incident",
            "in the hub account",
        ],
    );
    let holds = restart_core::guard::NightHolds::of(records.values());
    assert_eq!(holds.held.values().sum::<u64>(), 3);
    n.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_service_whose_own_deployment_alarm_fires_is_skipped_and_its_owner_told() {
    let with_alarm = |name: &str, alarm: &str| ServiceSpec {
        deployment_alarms: vec![alarm.into()],
        ..svc(name, OnRestart::Complete, 120)
    };
    let n = Night::new_with(
        vec![
            with_alarm("checkout", "checkout-5xx"),
            with_alarm("search", "search-latency"),
            svc("plain", OnRestart::Complete, 120),
        ],
        &[("BLOCK_ON_SERVICE_ALARMS", "true")],
        |f| {
            f.account_alarms.insert(
                A.into(),
                vec![
                    alarm("checkout-5xx", 0, 24 * 60),
                    alarm("search-latency", 30, 60),
                ],
            );
        },
    )
    .await;
    let r = n.restarter();
    n.start_all(&r).await;
    n.poll_until_done(&r, 60).await;
    let records = n.records().await;
    let checkout = &records["checkout"];
    assert_eq!(
        (checkout.state, checkout.skip_reason),
        (NightState::Skipped, Some(SkipReason::AlarmFiring))
    );
    assert!(
        checkout.detail.as_deref().unwrap().contains("checkout-5xx"),
        "{checkout:?}"
    );
    assert!(SkipReason::AlarmFiring.owner_actionable());
    assert_eq!(records["search"].state, NightState::Completed);
    assert_eq!(records["plain"].state, NightState::Completed);
    assert_eq!(n.calls("UpdateService"), 2);
    n.sim.shutdown().await.unwrap();
}
