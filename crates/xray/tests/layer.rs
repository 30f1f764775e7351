//! The layer against the segment document schema and X-Ray's limits: what is sent for a traced
//! invocation, and that nothing is sent (or waited for) otherwise.

use std::collections::{HashMap, HashSet};
use std::net::UdpSocket;

use proptest::prelude::*;
use restart_xray::schema::{Checked, check_datagram};
use restart_xray::{Daemon, MAX_SUBSEGMENTS};
use serde_json::Value;
use tracing::{Dispatch, Instrument};
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";
const PARENT: &str = "53995c3f42cd8ad8";

fn header(trace: &str, sampled: &str) -> String {
    format!("Root={trace};Parent={PARENT};Sampled={sampled}")
}

fn traced(daemon: &Daemon) -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(restart_xray::layer(daemon.clone())))
}

/// One AWS call as the SDK interceptor of restart-aws reports it.
fn call(operation: &str, account: &str, status: u64, throttled: bool) {
    tracing::trace!(
        target: "xray.aws",
        service = "ECS",
        operation,
        region = "eu-west-1",
        account,
        status,
        attempts = if throttled { 3u64 } else { 1u64 },
        throttled,
        ok = status < 400,
        start = 1.7e9,
    );
}

/// An invocation's work: `accounts` accounts, each with `calls` calls and a pace wait.
fn work(accounts: &[String], calls: usize) -> usize {
    let mut done = 0;
    for account in accounts {
        let span = tracing::trace_span!("xray.account", account = %account, region = "eu-west-1");
        let _in = span.enter();
        for i in 0..calls {
            call(
                "DescribeServices",
                account,
                if i == 1 { 429 } else { 200 },
                i == 1,
            );
            done += 1;
        }
        // The account's pace holds the next call back 2 ms: a wait that waited.
        tracing::trace_span!("xray.pace_wait", account = %account, what = "update_service")
            .in_scope(|| std::thread::sleep(std::time::Duration::from_millis(2)));
    }
    done
}

/// Every datagram checked, every parent resolved within the trace, ids unique.
fn check_trace(datagrams: &[Vec<u8>]) -> Vec<Checked> {
    let checked: Vec<Checked> = datagrams
        .iter()
        .map(|d| {
            check_datagram(d).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(d)))
        })
        .collect();
    let mut ids = HashMap::new();
    for c in &checked {
        for (sub, _) in &c.subsegments {
            let id = sub["id"].as_str().unwrap().to_owned();
            assert!(
                ids.insert(id, c.trace_id.clone()).is_none(),
                "an id is used twice"
            );
        }
    }
    for c in &checked {
        for (_, parent) in &c.subsegments {
            assert!(
                parent == PARENT || ids.get(parent) == Some(&c.trace_id),
                "parent {parent} is neither the function's segment nor sent in the trace"
            );
        }
    }
    checked
}

fn all_subsegments(checked: &[Checked]) -> Vec<Value> {
    checked
        .iter()
        .flat_map(|c| c.subsegments.iter().map(|(s, _)| s.clone()))
        .collect()
}

/// What is waiting on a listening socket, without waiting.
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    socket.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0; 70_000];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn a_sampled_invocation_sends_valid_documents_of_one_trace_over_udp() {
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    let daemon = Daemon::udp(listener.local_addr().unwrap());
    let accounts: Vec<String> = (0..3).map(|i| format!("11111111111{i}")).collect();
    tracing::dispatcher::with_default(&traced(&daemon), || {
        let span = restart_xray::invocation("restarter", Some(&header(TRACE, "1")));
        restart_xray::annotate_event(
            &span,
            &serde_json::json!({"mode": "poll", "night": "2026-12-07", "batch": 4}),
        );
        span.in_scope(|| work(&accounts, 3));
    });
    let checked = check_trace(&drain(&listener));
    assert_eq!(daemon.sent() as usize, checked.len());
    assert!(checked.iter().all(|c| c.trace_id == TRACE));
    let subs = all_subsegments(&checked);
    // The invocation, 3 accounts, 3 pace waits, 9 calls.
    assert_eq!(subs.len(), 1 + 3 + 3 + 9);
    let root = subs.iter().find(|s| s["name"] == "restarter").unwrap();
    assert_eq!(root["annotations"]["mode"], "poll");
    assert_eq!(root["annotations"]["night"], "2026-12-07");
    assert_eq!(root["annotations"]["batch"], 4);
    let account = subs
        .iter()
        .find(|s| s["name"] == "account 111111111110 eu-west-1")
        .unwrap();
    assert_eq!(account["annotations"]["account"], "111111111110");
    assert_eq!(account["annotations"]["region"], "eu-west-1");
    let calls: Vec<&Value> = subs.iter().filter(|s| s["namespace"] == "aws").collect();
    assert_eq!(calls.len(), 9);
    for c in &calls {
        assert_eq!(c["name"], "ECS");
        assert_eq!(c["aws"]["operation"], "DescribeServices");
        assert_eq!(c["aws"]["region"], "eu-west-1");
        assert!(
            accounts
                .iter()
                .any(|a| c["aws"]["account_id"] == a.as_str())
        );
    }
    let throttled: Vec<&&Value> = calls.iter().filter(|c| c["throttle"] == true).collect();
    assert_eq!(throttled.len(), 3);
    for t in throttled {
        assert_eq!(t["http"]["response"]["status"], 429);
        assert_eq!(t["error"], true);
        assert_eq!(t["aws"]["retries"], 2);
    }
    // Calls are children of their account's subsegment.
    for c in &checked {
        for (sub, parent) in &c.subsegments {
            if sub["namespace"] == "aws" {
                let parent = subs.iter().find(|s| s["id"] == parent.as_str()).unwrap();
                assert!(parent["name"].as_str().unwrap().starts_with("account "));
            }
        }
    }
}

#[test]
fn a_pace_wait_that_did_not_wait_is_counted_not_kept() {
    let daemon = Daemon::recording();
    tracing::dispatcher::with_default(&traced(&daemon), || {
        restart_xray::invocation("restarter", Some(&header(TRACE, "1"))).in_scope(|| {
            for _ in 0..20 {
                let wait = tracing::trace_span!("xray.pace_wait", account = "1", what = "describe");
                drop(wait.enter());
            }
        })
    });
    let subs = all_subsegments(&check_trace(&daemon.recorded()));
    let root = subs.iter().find(|s| s["name"] == "restarter").unwrap();
    let entries = &root["metadata"]["restart"]["summarized"]["entries"];
    assert_eq!(entries[0]["name"], "pace_wait 1 describe");
    let counted = entries[0]["count"].as_u64().unwrap();
    // A loaded machine may hold the thread between entering and leaving a wait for longer than
    // `MIN_PACE_WAIT`: that wait is kept, as one that waited is. Every other one is counted.
    let kept: Vec<&Value> = subs.iter().filter(|s| s["name"] != "restarter").collect();
    assert!(counted >= 1);
    assert_eq!(counted as usize + kept.len(), 20);
    for k in kept {
        let took = k["end_time"].as_f64().unwrap() - k["start_time"].as_f64().unwrap();
        assert!(took >= restart_xray::MIN_PACE_WAIT * 0.999, "{k}");
    }
}

#[test]
fn an_unsampled_invocation_or_one_without_header_sends_nothing() {
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    let daemon = Daemon::udp(listener.local_addr().unwrap());
    let accounts = vec!["123456789012".to_owned()];
    tracing::dispatcher::with_default(&traced(&daemon), || {
        for h in [Some(header(TRACE, "0")), Some(header(TRACE, "?")), None] {
            restart_xray::invocation("inventory", h.as_deref()).in_scope(|| work(&accounts, 2));
        }
        // Outside any invocation, nothing either.
        work(&accounts, 2);
    });
    assert!(drain(&listener).is_empty());
    assert_eq!((daemon.sent(), daemon.dropped()), (0, 0));
}

#[test]
fn with_tracing_off_the_same_work_sends_nothing() {
    assert!(Daemon::from_address("").is_none());
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The functions' logs only, at `info`: the layer is not installed.
    let logs = Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish(),
    );
    let accounts = vec!["123456789012".to_owned()];
    let done = tracing::dispatcher::with_default(&logs, || {
        let span = restart_xray::invocation("inventory", Some(&header(TRACE, "1")));
        assert!(
            span.is_disabled(),
            "no subscriber wants the invocation's span"
        );
        span.in_scope(|| work(&accounts, 5))
    });
    assert_eq!(done, 5);
    assert!(drain(&listener).is_empty());
}

#[test]
fn a_daemon_nobody_listens_to_changes_no_outcome_and_every_document_is_accounted_for() {
    let free = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let accounts: Vec<String> = (0..20).map(|i| format!("2222222222{i:02}")).collect();
    let traced_run = {
        let daemon = Daemon::udp(addr);
        let done = tracing::dispatcher::with_default(&traced(&daemon), || {
            restart_xray::invocation("restarter", Some(&header(TRACE, "1")))
                .in_scope(|| work(&accounts, 10))
        });
        let recording = Daemon::recording();
        tracing::dispatcher::with_default(&traced(&recording), || {
            restart_xray::invocation("restarter", Some(&header(TRACE, "1")))
                .in_scope(|| work(&accounts, 10))
        });
        // As many documents as a listening daemon would get, each sent or dropped: none
        // waited for.
        assert_eq!(
            daemon.sent() + daemon.dropped(),
            recording.recorded().len() as u64
        );
        done
    };
    assert_eq!(traced_run, work(&accounts, 10));
}

#[test]
fn concurrent_invocations_keep_their_own_traces() {
    let daemon = Daemon::recording();
    let dispatch = traced(&daemon);
    let traces: Vec<String> = (0..8).map(|i| format!("1-5759e988-{i:024x}")).collect();
    // Four threads, each polling two invocations interleaved on one executor.
    std::thread::scope(|scope| {
        for pair in traces.chunks(2) {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let runs = pair.iter().map(|trace| {
                            let account = format!("acct-{}", &trace[trace.len() - 4..]);
                            async move {
                                for i in 0..5 {
                                    let span = tracing::trace_span!(
                                        "xray.account", account = %account, region = "eu-west-1"
                                    );
                                    async {
                                        call("ListServices", &account, 200, false);
                                        tokio::task::yield_now().await;
                                        call("DescribeServices", &account, 200, i == 2);
                                    }
                                    .instrument(span)
                                    .await;
                                }
                            }
                            .instrument(restart_xray::invocation(
                                "inventory",
                                Some(&header(trace, "1")),
                            ))
                        });
                        futures::future::join_all(runs).await;
                    });
                });
            });
        }
    });
    let checked = check_trace(&daemon.recorded());
    let mut by_trace: HashMap<String, Vec<Value>> = HashMap::new();
    for c in &checked {
        by_trace
            .entry(c.trace_id.clone())
            .or_default()
            .extend(c.subsegments.iter().map(|(s, _)| s.clone()));
    }
    assert_eq!(by_trace.len(), traces.len());
    for (trace, subs) in by_trace {
        let own = format!("acct-{}", &trace[trace.len() - 4..]);
        assert_eq!(subs.len(), 1 + 5 + 10, "{trace}");
        let accounts: HashSet<&str> = subs
            .iter()
            .filter_map(|s| s["annotations"]["account"].as_str())
            .collect();
        assert_eq!(accounts, HashSet::from([own.as_str()]), "{trace}");
    }
}

#[test]
fn past_the_subsegment_budget_calls_are_summarized_and_documents_stay_small() {
    let daemon = Daemon::recording();
    let accounts: Vec<String> = (0..10).map(|i| format!("33333333333{i}")).collect();
    tracing::dispatcher::with_default(&traced(&daemon), || {
        restart_xray::invocation("inventory", Some(&header(TRACE, "1")))
            .in_scope(|| work(&accounts, 300))
    });
    let datagrams = daemon.recorded();
    let checked = check_trace(&datagrams);
    assert!(datagrams.iter().all(|d| d.len() <= 64 * 1024));
    let subs = all_subsegments(&checked);
    assert_eq!(subs.len(), 1 + MAX_SUBSEGMENTS);
    let root = subs.iter().find(|s| s["name"] == "inventory").unwrap();
    let entries = root["metadata"]["restart"]["summarized"]["entries"]
        .as_array()
        .unwrap();
    let summarized: u64 = entries.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    // 10 accounts, 3,000 calls, 10 pace waits; 500 kept one by one.
    assert_eq!(summarized as usize, 10 + 3000 + 10 - MAX_SUBSEGMENTS);
    let throttled: u64 = entries
        .iter()
        .map(|e| e["throttled"].as_u64().unwrap())
        .sum();
    assert!(throttled > 0);
    assert!(entries.iter().any(|e| e["operation"] == "DescribeServices"
        && e["account"] == "333333333339"
        && e["region"] == "eu-west-1"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_names_and_fields_give_valid_documents(
        accounts in proptest::collection::vec(any::<String>(), 1..6),
        region in any::<String>(),
        what in ".{0,300}",
        mode in any::<String>(),
        number in any::<f64>(),
    ) {
        let daemon = Daemon::recording();
        tracing::dispatcher::with_default(&traced(&daemon), || {
            let span = restart_xray::invocation("notifier", Some(&header(TRACE, "1")));
            restart_xray::annotate_event(&span, &serde_json::json!({"mode": mode, "batch": 3}));
            span.in_scope(|| {
                for account in &accounts {
                    let s = tracing::trace_span!("xray.account", account = %account, region = %region, extra = number);
                    let _in = s.enter();
                    call(&what, account, 503, false);
                    let w = tracing::trace_span!("xray.pace_wait", account = %account, what = %what);
                    drop(w.enter());
                }
            });
        });
        let checked = check_trace(&daemon.recorded());
        let subsegments = all_subsegments(&checked);
        // The invocation, and per account its subsegment and its call. Its pace wait, which did
        // not wait, is only counted, unless the thread was held between entering and leaving it
        // for longer than `MIN_PACE_WAIT` (a loaded machine): then it is a subsegment too.
        let waits = subsegments
            .iter()
            .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("pace_wait")))
            .count();
        prop_assert!(waits <= accounts.len());
        prop_assert_eq!(subsegments.len() - waits, 1 + 2 * accounts.len());
        for s in subsegments {
            if s["namespace"] == "aws" {
                prop_assert_eq!(&s["fault"], &Value::Bool(true));
                prop_assert_eq!(&s["http"]["response"]["status"], &Value::from(503));
            }
        }
    }
}
