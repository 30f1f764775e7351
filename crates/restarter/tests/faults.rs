//! The restarter against faults injected by fleet-sim: UpdateService rejected, a deployment
//! superseded by another task definition, an account denied by an SCP half-way through the
//! night, server errors, invocations racing on one batch, a dry run, and stuck restarts in a
//! capped cluster. fleet-sim (ECS, STS) runs in-process, DynamoDB under moto; inventory and the
//! batcher plan the night, and the restarter runs it on a manual clock that moves with
//! fleet-sim's simulated one. `tools/with-moto` provides `MOTO_ENDPOINT`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use fleet_sim::FleetSpec;
use fleet_sim::spec::{AccountFaults, OnRestart};
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::{CatalogStore, FleetControl, RestartStore};
use restarter::aws::AwsRestarter;
use serde_json::json;

use crate::harness::{A, B, Night, START, TAG, account, fleet, ok_services, sid, states, svc};

/// One batch for the whole night: the interval is longer than the window.
const ONE_BATCH: (&str, &str) = ("BATCH_INTERVAL_MINUTES", "720");

impl Night {
    /// The time on the night's clock.
    fn now(&self) -> DateTime<Utc> {
        restart_core::clock::Clock::now(self.clock.as_ref())
    }
}

/// The restart tag on each of `names` (services of account A), live.
async fn tags(r: &AwsRestarter, names: &[&str]) -> BTreeMap<String, Option<String>> {
    let ids: Vec<ServiceId> = names.iter().map(|n| sid(A, n)).collect();
    r.fleet
        .describe(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id.service.clone(), s.tags.get(TAG).cloned()))
        .collect()
}

/// UpdateService answered `ClientException` (a service ECS will not update): the record ends
/// `failed` with `update_rejected:` and ECS's words, UpdateService is sent once, and the rest of
/// its batch goes on.
#[tokio::test]
async fn a_rejected_update_fails_once_and_the_batch_goes_on() {
    let mut services = ok_services("ok", 3, 120);
    services.push(svc("reject-0", OnRestart::Reject, 120));
    let n = Night::new(services, &[ONE_BATCH]).await.serial().await;
    assert_eq!(n.batches, vec![0], "one batch holds every service");
    let r = n.restarter();
    let out = n.start(&r, 0).await.unwrap();
    assert_eq!((out.started, out.refused), (3, 1), "{out:?}");
    n.poll_until_done(&r, 60).await;

    let records = n.records().await;
    let rejected = &records["reject-0"];
    assert_eq!(rejected.state, NightState::Failed);
    let detail = rejected.detail.as_deref().unwrap();
    assert!(detail.starts_with("update_rejected:"), "{detail}");
    assert!(detail.contains("ClientException"), "{detail}");
    assert!(rejected.finished_at.is_some());
    for i in 0..3 {
        assert_eq!(records[&format!("ok-{i}")].state, NightState::Completed);
    }
    // One UpdateService each: the three completed restarts needed one at least, so the
    // rejected service had exactly one, never sent again by a poll.
    assert_eq!(n.calls("UpdateService"), 4);
    assert_eq!(n.sim.handle().stats().restarts, 3);
    // Polling again sends nothing more.
    n.advance(600);
    assert!(n.poll(&r, 0).await.done);
    n.start(&r, 0).await.unwrap();
    assert_eq!(n.calls("UpdateService"), 4);
    let status = n.store().night_status(n.night).await.unwrap();
    assert_eq!(status.count(NightState::Failed), 1);
    assert_eq!(status.count(NightState::Completed), 3);
    n.sim.shutdown().await.unwrap();
}

/// A CI deploy of another task definition replaces our deployment half-way: the restart ends
/// `superseded`, is not tagged, and the circuit breaker does not count it as a failure.
#[tokio::test]
async fn a_deployment_replaced_by_another_task_definition_is_superseded() {
    let mut services = ok_services("ok", 2, 120);
    services.push(svc("ci-0", OnRestart::Superseded, 300));
    let n = Night::new(services, &[ONE_BATCH]).await.serial().await;
    let r = n.restarter();
    n.start_all(&r).await;
    assert_eq!(n.calls("UpdateService"), 3);
    n.poll_until_done(&r, 120).await;

    let records = n.records().await;
    let ci = &records["ci-0"];
    assert_eq!(ci.state, NightState::Superseded, "{ci:?}");
    let detail = ci.detail.as_deref().unwrap();
    assert!(detail.contains("superseded"), "{detail}");
    // It names the CI deploy's task definition, the next revision of the one restarted.
    let ours = ci.task_definition.as_deref().unwrap();
    let (family, revision) = ours.rsplit_once(':').unwrap();
    let next = format!("{family}:{}", revision.parse::<u32>().unwrap() + 1);
    assert!(detail.contains(&format!("({next})")), "{ours}: {detail}");
    for name in ["ok-0", "ok-1"] {
        assert_eq!(records[name].state, NightState::Completed);
    }
    // Only the completed restarts were tagged; the superseded one keeps last night's tag.
    assert_eq!(n.calls("TagResource"), 2);
    let live = tags(&r, &["ci-0"]).await;
    assert_eq!(live["ci-0"].as_deref(), Some("2026-11-21T01:10:00Z"));
    // The breaker counts it as finished, never as a failure.
    let status = n.store().night_status(n.night).await.unwrap();
    assert_eq!(status.count(NightState::Superseded), 1);
    assert_eq!(status.failures(), 0);
    assert_eq!(status.finished(), 3);
    assert!(status.halted.is_none());
    // It has no duration for the next night's plan.
    assert_eq!(records["ci-0"].duration_seconds, None);
    n.sim.shutdown().await.unwrap();
}

/// Account B's ECS is denied by an SCP after its second restart, with both accounts in one
/// batch: A's restarts all complete and are tagged; B's planned services end
/// `skipped/account_unreachable`, its started ones `timed_out` ("account unreachable") once
/// their timeout passes; no start or poll fails, and the batch ends.
#[tokio::test]
async fn an_account_lost_mid_night_is_handled_alone() {
    let faults = BTreeMap::from([(
        B.to_owned(),
        AccountFaults {
            deny_ecs_after_restarts: Some(2),
            server_error_rate: 0.0,
        },
    )]);
    let n = Night::of(
        fleet(
            vec![
                account(A, ok_services("a", 3, 120)),
                account(B, ok_services("b", 5, 120)),
            ],
            faults,
        ),
        &[ONE_BATCH, ("RESTART_TIMEOUT_MINUTES", "15")],
    )
    .await
    .serial()
    .await;
    assert_eq!(n.batches, vec![0]);
    let r = n.restarter();
    let out = n.start(&r, 0).await.unwrap();
    // A's three and B's first two ran; B's third was claimed and denied.
    assert_eq!(n.calls_of(A, "UpdateService"), 3);
    assert_eq!(n.sim.handle().stats().restarts, 5);
    assert_eq!(out.started, 5, "{out:?}");
    let before = n.calls_of(B, "UpdateService");
    assert_eq!(before, 3, "one denied UpdateService, then B is left alone");

    // Polls until past B's timeout: none fails, and the batch is not done before it.
    let mut done_at = None;
    for _ in 0..12 {
        n.advance(120);
        let p = n
            .try_poll(&r, 0)
            .await
            .expect("a poll never fails for one account");
        if p.done {
            done_at = Some(n.now());
            break;
        }
    }
    let started: DateTime<Utc> = START.parse().unwrap();
    let done_at = done_at.expect("the batch ends");
    assert!(done_at - started >= TimeDelta::minutes(15), "{done_at}");
    n.start(&r, 0)
        .await
        .expect("a start never fails for one account");
    assert_eq!(n.calls_of(B, "UpdateService"), before);

    let records = n.records().await;
    for i in 0..3 {
        assert_eq!(records[&format!("a-{i}")].state, NightState::Completed);
    }
    let live = tags(&r, &["a-0", "a-1", "a-2"]).await;
    for (name, tag) in &live {
        let finished = records[name].finished_at.unwrap();
        assert_eq!(
            tag.as_deref(),
            Some(restart_core::tag::restart_tag_value(finished).as_str()),
            "{name}"
        );
    }
    let mut timed_out = 0;
    let mut skipped = 0;
    for i in 0..5 {
        let rec = &records[&format!("b-{i}")];
        match rec.state {
            NightState::TimedOut => {
                timed_out += 1;
                let detail = rec.detail.as_deref().unwrap();
                assert!(detail.contains("account unreachable"), "{detail}");
                assert!(
                    rec.finished_at.unwrap() - rec.started_at.unwrap() >= TimeDelta::minutes(15)
                );
            }
            NightState::Skipped => {
                skipped += 1;
                assert_eq!(
                    rec.skip_reason,
                    Some(SkipReason::AccountUnreachable),
                    "{rec:?}"
                );
            }
            other => panic!("{}: {other}", rec.id),
        }
    }
    // The two restarts that ran timed out; the claim whose UpdateService was denied certainly
    // did not run, and was given back at once, skipped like the two never started.
    assert_eq!((timed_out, skipped), (2, 3), "{:?}", states(&records));
    n.sim.shutdown().await.unwrap();
}

/// Account B is lost (ECS denied by an SCP) with 20 restarts in flight, beside A's 3. B's
/// restarts end `timed_out`, marked `account_lost`, and the night's counters keep them apart:
/// the circuit breaker (10 %, after 20 finished restarts) counts none of them, so one lost
/// account does not halt the others' night.
#[tokio::test]
async fn restarts_lost_with_their_account_do_not_trip_the_breaker() {
    let faults = BTreeMap::from([(
        B.to_owned(),
        AccountFaults {
            deny_ecs_after_restarts: Some(20),
            server_error_rate: 0.0,
        },
    )]);
    let n = Night::of(
        fleet(
            vec![
                account(A, ok_services("a", 3, 120)),
                account(B, ok_services("b", 21, 120)),
            ],
            faults,
        ),
        &[
            ONE_BATCH,
            ("MAX_INFLIGHT_PER_CLUSTER", "100"),
            ("RESTART_TIMEOUT_MINUTES", "15"),
        ],
    )
    .await
    .serial()
    .await;
    let r = n.restarter();
    n.start_all(&r).await;
    n.poll_until_done(&r, 120).await;
    let records = n.records().await;
    let lost: Vec<&NightRecord> = records.values().filter(|r| r.account_lost).collect();
    assert_eq!(lost.len(), 20, "{:?}", states(&records));
    assert!(
        lost.iter()
            .all(|r| r.state == NightState::TimedOut && r.id.account.to_string() == B)
    );
    let status = n.store().night_status(n.night).await.unwrap();
    assert_eq!((status.count(NightState::TimedOut), status.lost), (20, 20));
    assert_eq!((status.finished(), status.failures()), (3, 0));
    assert!(status.halted.is_none(), "{status:?}");
    assert!(
        records.values().all(|r| r.state != NightState::Halted),
        "{:?}",
        states(&records)
    );
    n.sim.shutdown().await.unwrap();
}

/// Both accounts in every batch, over several batches, B denied after its first restart: no
/// batch fails, whichever meets the denial first.
#[tokio::test]
async fn an_account_lost_across_batches_never_fails_a_batch() {
    let faults = BTreeMap::from([(
        B.to_owned(),
        AccountFaults {
            deny_ecs_after_restarts: Some(1),
            server_error_rate: 0.0,
        },
    )]);
    let n = Night::of(
        fleet(
            vec![
                account(A, ok_services("a", 4, 120)),
                account(B, ok_services("b", 4, 120)),
            ],
            faults,
        ),
        &[("BATCH_INTERVAL_MINUTES", "15")],
    )
    .await
    .serial()
    .await;
    assert!(n.batches.len() >= 2, "{:?}", n.batches);
    let r = n.restarter();
    for &b in &n.batches {
        n.start(&r, b)
            .await
            .expect("a start never fails for one account");
    }
    n.poll_until_done(&r, 300).await;
    let records = n.records().await;
    for i in 0..4 {
        assert_eq!(records[&format!("a-{i}")].state, NightState::Completed);
    }
    assert_eq!(n.calls_of(A, "TagResource"), 4);
    for i in 0..4 {
        let rec = &records[&format!("b-{i}")];
        match rec.state {
            NightState::TimedOut => assert!(
                rec.detail
                    .as_deref()
                    .unwrap()
                    .contains("account unreachable"),
                "{rec:?}"
            ),
            NightState::Skipped => {
                assert_eq!(rec.skip_reason, Some(SkipReason::AccountUnreachable))
            }
            other => panic!("{}: {other}", rec.id),
        }
    }
    n.sim.shutdown().await.unwrap();
}

/// 30 % of the account's ECS calls answer 500: every service still ends in a terminal state,
/// and no service is restarted twice (a 500 on UpdateService means it did not run; the claim
/// is settled from the service's deployments once its lease has lapsed).
#[tokio::test]
async fn server_errors_never_restart_a_service_twice() {
    let faults = BTreeMap::from([(
        A.to_owned(),
        AccountFaults {
            deny_ecs_after_restarts: None,
            server_error_rate: 0.3,
        },
    )]);
    let n = Night::of(
        FleetSpec {
            // The draws of this seed answer 500 to some UpdateService calls, not only to
            // describes and tags.
            seed: 2,
            ..fleet(vec![account(A, ok_services("ok", 6, 120))], faults)
        },
        &[ONE_BATCH, ("MAX_INFLIGHT_PER_CLUSTER", "100")],
    )
    .await
    .serial()
    .await;
    let records = n.records().await;
    assert_eq!(records.len(), 6, "inventory saw the whole fleet");
    let r = n.restarter();
    for &b in &n.batches {
        n.start(&r, b)
            .await
            .expect("a start never fails on server errors");
    }
    // Past the claim's lease between polls, so that a claim whose UpdateService answered 500
    // is settled (and sent again) by the next poll.
    let step = restarter::CLAIM_LEASE.num_seconds() + 10;
    n.poll_until_done(&r, step).await;

    let records = n.records().await;
    let stats = n.sim.handle().stats();
    assert!(
        records.values().all(|r| r.state.is_terminal()),
        "{:?}",
        states(&records)
    );
    let restarted: Vec<&NightRecord> = records
        .values()
        .filter(|r| r.deployment_id.is_some())
        .collect();
    // fleet-sim's forced deployments: one per service whose restart was recorded, and none
    // for the others (each recorded one needed one at least).
    assert_eq!(
        stats.restarts,
        restarted.len() as u64,
        "{:?}",
        states(&records)
    );
    let deployments: BTreeSet<&str> = restarted
        .iter()
        .filter_map(|r| r.deployment_id.as_deref())
        .collect();
    assert_eq!(deployments.len(), restarted.len());
    // Some UpdateService answered 500 and was sent again once its claim's lease had lapsed
    // (if not, the seed no longer exercises that: pick one that does).
    assert!(
        stats.total_calls("UpdateService") > stats.restarts,
        "{stats:?}"
    );
    let completed = records
        .values()
        .filter(|r| r.state == NightState::Completed)
        .count();
    assert!(completed >= 4, "{:?}", states(&records));
    n.sim.shutdown().await.unwrap();
}

/// Two starts of one batch at once, a poll beside them and on-call's manual restart of one of
/// its services: each service gets one UpdateService, and one deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_invocations_restart_each_service_once() {
    let n = Night::new(
        ok_services("ok", 6, 120),
        &[ONE_BATCH, ("MAX_INFLIGHT_PER_CLUSTER", "100")],
    )
    .await
    .serial()
    .await;
    let (r1, r2, r3, r4) = (n.restarter(), n.restarter(), n.restarter(), n.restarter());
    let arn = sid(A, "ok-3").arn("aws").to_string();
    let (s1, s2, p, m) = tokio::join!(
        n.start(&r1, 0),
        n.start(&r2, 0),
        n.try_poll(&r3, 0),
        r4.handle(json!({ "mode": "service", "service_arn": arn }))
    );
    let (s1, s2) = (s1.unwrap(), s2.unwrap());
    p.unwrap();
    // The manual restart either won its claim, found the restart in flight, or found the
    // record moved on: all are answers.
    if let Err(e) = &m {
        assert!(e.message.contains("changed meanwhile"), "{e:?}");
    }
    let records = n.records().await;
    let started: Vec<&NightRecord> = records
        .values()
        .filter(|r| r.state == NightState::Started)
        .collect();
    assert_eq!(started.len(), 6, "{:?}", states(&records));
    assert!(
        started.iter().all(|r| r.deployment_id.is_some()),
        "{started:#?} {s1:?} {s2:?} {m:?}"
    );
    assert_eq!(n.calls("UpdateService"), 6, "{s1:?} {s2:?} {m:?}");
    assert_eq!(n.sim.handle().stats().restarts, 6);

    n.poll_until_done(&r1, 60).await;
    let records = n.records().await;
    assert!(
        records.values().all(|r| r.state == NightState::Completed),
        "{:?}",
        states(&records)
    );
    let deployments: BTreeSet<&str> = records
        .values()
        .filter_map(|r| r.deployment_id.as_deref())
        .collect();
    assert_eq!(deployments.len(), 6);
    assert_eq!(n.calls("UpdateService"), 6);
    n.sim.shutdown().await.unwrap();
}

/// A dry run restarts nothing: its records complete when their deployment last changed, before
/// the claim, with a duration of 0 (which the next night's plan counts as unknown), and the
/// catalog is left as it was.
#[tokio::test]
async fn a_dry_run_keeps_no_restart_durations() {
    let n = Night::new(ok_services("ok", 3, 120), &[("DRY_RUN", "true")])
        .await
        .serial()
        .await;
    let store = n.store();
    let before = store.read_catalog(&[A.parse().unwrap()]).await.unwrap();
    assert_eq!(before.len(), 3);
    let r = n.restarter();
    n.start_all(&r).await;
    n.poll_until_done(&r, 60).await;
    let records = n.records().await;
    assert!(records.values().all(|r| r.state == NightState::Completed));
    assert!(
        records.values().all(|r| r.duration_seconds == Some(0)),
        "{records:?}"
    );
    let after = store.read_catalog(&[A.parse().unwrap()]).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(n.calls("UpdateService"), 0);
    n.sim.shutdown().await.unwrap();
}

/// Restarts given up on at their timeout while ECS still rolls them keep their place in the
/// cluster: with a cap of 2, a slow restart (15 minutes, timeout 10) and a stuck one, nothing
/// else starts until the slow one's deployment ends, and fleet-sim never sees more than 2
/// restarts of the cluster in flight. The stuck one holds its place for the rest of the night.
#[tokio::test]
async fn timed_out_restarts_keep_their_place_while_ecs_rolls_them() {
    let mut services = vec![
        svc("a-slow", OnRestart::Complete, 900),
        svc("b-stuck", OnRestart::Stuck, 300),
    ];
    services.extend(ok_services("ok", 3, 120));
    let n = Night::new(
        services,
        &[
            ONE_BATCH,
            ("MAX_INFLIGHT_PER_CLUSTER", "2"),
            ("RESTART_TIMEOUT_MINUTES", "10"),
        ],
    )
    .await
    .serial()
    .await;
    let r = n.restarter();
    let out = n.start(&r, 0).await.unwrap();
    assert_eq!((out.started, out.deferred), (2, 3), "{out:?}");
    n.poll_until_done(&r, 60).await;

    let records = n.records().await;
    let stats = n.sim.handle().stats();
    assert_eq!(
        stats.max_inflight_per_cluster.values().max(),
        Some(&2),
        "{stats:?}"
    );
    for name in ["a-slow", "b-stuck"] {
        let rec = &records[name];
        assert_eq!(rec.state, NightState::TimedOut, "{rec:?}");
        assert!(
            rec.detail.as_deref().unwrap().contains("keeps its place"),
            "{rec:?}"
        );
    }
    for i in 0..3 {
        let rec = &records[&format!("ok-{i}")];
        assert_eq!(rec.state, NightState::Completed, "{rec:?}");
        // Nothing started before the slow restart's deployment ended, 15 minutes in.
        let slow_ended: DateTime<Utc> = "2026-11-22T00:15:00Z".parse().unwrap();
        assert!(rec.started_at.unwrap() >= slow_ended, "{rec:?}");
    }
    assert_eq!(n.calls("UpdateService"), 5);
    // The stuck restart still holds its place; the slow one's was given back.
    let held = n.store().held(n.night, &sid(A, "any")).await.unwrap();
    assert_eq!(
        held.iter()
            .map(|h| h.id.service.as_str())
            .collect::<Vec<_>>(),
        vec!["b-stuck"]
    );
    assert_eq!(
        Some(held[0].deployment_id.as_str()),
        records["b-stuck"].deployment_id.as_deref()
    );
    n.sim.shutdown().await.unwrap();
}

/// With both places held by stuck restarts, the rest of the cluster never starts: it ends
/// `skipped/window_closed` when the window ends, and fleet-sim never sees a third restart.
#[tokio::test]
async fn a_cluster_whose_places_are_held_by_stuck_restarts_starts_nothing_more() {
    let mut services = vec![
        svc("a-stuck", OnRestart::Stuck, 300),
        svc("b-stuck", OnRestart::Stuck, 300),
    ];
    services.extend(ok_services("ok", 2, 120));
    let n = Night::new(
        services,
        &[
            ONE_BATCH,
            ("MAX_INFLIGHT_PER_CLUSTER", "2"),
            ("RESTART_TIMEOUT_MINUTES", "5"),
        ],
    )
    .await
    .serial()
    .await;
    let r = n.restarter();
    n.start(&r, 0).await.unwrap();
    n.poll_until_done(&r, 300).await;
    let stats = n.sim.handle().stats();
    assert_eq!(
        stats.max_inflight_per_cluster.values().max(),
        Some(&2),
        "{stats:?}"
    );
    assert_eq!(n.calls("UpdateService"), 2);
    let records = n.records().await;
    assert_eq!(records["a-stuck"].state, NightState::TimedOut);
    assert_eq!(records["b-stuck"].state, NightState::TimedOut);
    for name in ["ok-0", "ok-1"] {
        assert_eq!(records[name].skip_reason, Some(SkipReason::WindowClosed));
    }
    n.sim.shutdown().await.unwrap();
}

/// The held places, step by step, through a store: what each call answered, and the cluster's
/// held restarts and the night's counters along the way.
async fn held_places_trace<S: RestartStore>(store: &S) -> Vec<String> {
    let night: NaiveDate = "2026-11-22".parse().unwrap();
    let at: DateTime<Utc> = START.parse().unwrap();
    let planned = |name: &str| NightRecord {
        batch: Some(0),
        state: NightState::Planned,
        planned_start: Some(at),
        ..NightRecord::unbatched(
            sid(A, name),
            sid(A, name).arn("aws"),
            night,
            "payments".into(),
        )
    };
    let started = |r: &NightRecord, dep: Option<&str>| NightRecord {
        state: NightState::Started,
        started_at: Some(at),
        deployment_id: dep.map(str::to_owned),
        ..r.clone()
    };
    let ended = |r: &NightRecord, state: NightState| NightRecord {
        state,
        finished_at: Some(at + TimeDelta::minutes(10)),
        ..r.clone()
    };
    let (x, y, z) = (planned("x"), planned("y"), planned("z"));
    store
        .create_records(&[x.clone(), y.clone(), z.clone()])
        .await
        .unwrap();
    let mut trace = Vec::new();
    let mut note = |what: &str, v: String| trace.push(format!("{what}: {v}"));
    let cap = 2;
    let (x1, y1) = (started(&x, None), started(&y, None));
    note(
        "claim x",
        format!("{:?}", store.claim(Some(&x), &x1, cap).await),
    );
    note(
        "claim y",
        format!("{:?}", store.claim(Some(&y), &y1, cap).await),
    );
    let (x2, y2) = (started(&x, Some("dx")), started(&y, Some("dy")));
    note(
        "deploy x",
        format!("{:?}", store.record_deployment(&x2).await),
    );
    note(
        "deploy y",
        format!("{:?}", store.record_deployment(&y2).await),
    );
    // A claim without its deployment has nothing that rolls: it cannot hold a place.
    let z1 = started(&z, None);
    note(
        "hold without deployment",
        format!(
            "{:?}",
            store
                .finish_holding(&x1, &ended(&x1, NightState::TimedOut))
                .await
        ),
    );
    let x_out = ended(&x2, NightState::TimedOut);
    note(
        "hold x",
        format!("{:?}", store.finish_holding(&x2, &x_out).await),
    );
    note(
        "hold x again",
        format!("{:?}", store.finish_holding(&x2, &x_out).await),
    );
    note(
        "x now",
        format!(
            "{:?}",
            store
                .find_record(night, &x.id)
                .await
                .unwrap()
                .map(|r| r.state)
        ),
    );
    note(
        "held",
        format!("{:?}", store.held(night, &sid(A, "any")).await),
    );
    note(
        "claim z, x held, y in flight",
        format!("{:?}", store.claim(Some(&z), &z1, cap).await),
    );
    note(
        "finish y",
        format!(
            "{:?}",
            store.finish(&y2, &ended(&y2, NightState::Completed)).await
        ),
    );
    note(
        "claim z, x held",
        format!("{:?}", store.claim(Some(&z), &z1, cap).await),
    );
    let held = store.held(night, &sid(A, "any")).await.unwrap();
    note(
        "release x",
        format!("{:?}", store.release(night, &held[0]).await),
    );
    note(
        "release x again",
        format!("{:?}", store.release(night, &held[0]).await),
    );
    note(
        "held after",
        format!("{:?}", store.held(night, &sid(A, "any")).await),
    );
    let other = restart_core::ports::HeldRestart {
        id: sid(A, "never"),
        deployment_id: "d0".into(),
    };
    note(
        "release one never held",
        format!("{:?}", store.release(night, &other).await),
    );
    let status = store.night_status(night).await.unwrap();
    note("counts", format!("{:?}", status.counts));
    trace
}

/// The DynamoDB store and the in-memory fake agree on held places: a timed-out restart whose
/// deployment rolls keeps its place (counted once, with its deployment), a place is given back
/// once, and a claim without a deployment cannot hold one.
#[tokio::test]
async fn the_store_and_its_fake_agree_on_held_places() {
    let table = testkit::create_table(&testkit::dynamodb_client()).await;
    let sdk = testkit::hub_sdk_config("http://127.0.0.1:9");
    let dynamo = restart_aws::dynamo_store(&sdk, &table, 90);
    let real = held_places_trace(&dynamo).await;
    let fake = held_places_trace(&testkit::fakes::MemoryStore::default()).await;
    assert_eq!(real, fake);
    let expected = [
        "claim x: Ok(Claimed)",
        "claim y: Ok(Claimed)",
        "deploy x: Ok(true)",
        "deploy y: Ok(true)",
        "hold without deployment: Ok(false)",
        "hold x: Ok(true)",
        "hold x again: Ok(false)",
        "x now: Some(TimedOut)",
        "claim z, x held, y in flight: Ok(ClusterFull)",
        "claim z, x held: Ok(Claimed)",
        "release x: Ok(true)",
        "release x again: Ok(false)",
        "held after: Ok([])",
        "release one never held: Ok(false)",
    ];
    for line in expected {
        assert!(real.iter().any(|l| l == line), "{line} not in {real:#?}");
    }
    let held = real.iter().find(|l| l.starts_with("held: ")).unwrap();
    assert!(
        held.contains("service: \"x\"") && held.contains("deployment_id: \"dx\""),
        "{held}"
    );
    let counts = real.last().unwrap();
    assert!(
        counts.contains("Started: 3") && counts.contains("TimedOut: 1"),
        "{counts}"
    );
}
