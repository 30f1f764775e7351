//! A small night through the real state machine definition in moto, the four real handlers
//! behind the local Lambda host, and fleet-sim: every inventoried service ends in exactly one
//! terminal state, and fleet-sim restarted exactly the services whose restart ran (completed,
//! failed, rolled back, timed out, vanished), with the deployment ids the records hold. The
//! night's X-Ray traces hold a subsegment for every AWS call fleet-sim counted, each document
//! a valid segment document, and the report's view of where the time went.
//! `tools/with-moto` provides the venv (`VENV`); the stack starts its own moto.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use local_stack::lambda_host::Functions;
use local_stack::report::ServiceEntry;
use local_stack::traces::Traces;
use local_stack::{Align, LocalStack, NightOptions, Watch};
use restart_core::outcome::NightState;

const FLEET: &str = r#"
seed: 11
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: payments
        tags: {team: payments}
        services:
          - {name: ok-rfc3339, desired: 2, tags: {ecs_task_daily_restart: "2026-11-21T01:10:00Z"}}
          - {name: ok-empty, tags: {ecs_task_daily_restart: ""}}
          - {name: ok-enabled, desired: 3, tags: {ecs_task_daily_restart: enabled}}
          - {name: ok-malformed, tags: {ecs_task_daily_restart: "every night"}}
          - {name: ok-snooze-over, tags: {ecs_task_daily_restart: "skip-until:2020-01-01"}}
          - {name: fail, desired: 2, on_restart: fail, deploy_seconds: 240, tags: {ecs_task_daily_restart: enabled}}
          - {name: stuck, on_restart: stuck, tags: {ecs_task_daily_restart: enabled}}
          - {name: vanish, on_restart: vanish, deploy_seconds: 240, tags: {ecs_task_daily_restart: enabled}}
          - {name: blue-green, controller: CODE_DEPLOY, tags: {ecs_task_daily_restart: enabled}}
          - {name: opted-out, tags: {ecs_task_daily_restart: disabled}}
          - {name: snoozed, tags: {ecs_task_daily_restart: "skip-until:2099-01-01"}}
          - {name: untagged}
          - {name: downtime, desired: 1, min_healthy_percent: 0, max_percent: 100, tags: {ecs_task_daily_restart: enabled}}
      - name: web
        tags: {team: web}
        services:
          - {name: web-0, tags: {ecs_task_daily_restart: enabled}}
          - {name: web-1, tags: {ecs_task_daily_restart: enabled}}
          - {name: web-2, desired: 2, tags: {ecs_task_daily_restart: enabled}}
          - {name: web-3, tags: {ecs_task_daily_restart: enabled}}
          - {name: web-4, tags: {ecs_task_daily_restart: enabled}}
  - id: "333333333333"
    regions: [eu-west-1]
    clusters:
      - name: search
        services:
          - {name: s-0, tags: {ecs_task_daily_restart: enabled, owner: search}}
          - {name: s-1, tags: {ecs_task_daily_restart: enabled, owner: search}}
          - {name: s-2, tags: {ecs_task_daily_restart: enabled, owner: search}}
          - {name: s-3, tags: {ecs_task_daily_restart: enabled, owner: search}}
          - {name: s-4, on_restart: fail, deploy_seconds: 300, tags: {ecs_task_daily_restart: enabled, owner: search}}
          - {name: s-5, tags: {ecs_task_daily_restart: enabled, owner: search}}
  - id: "222222222222"
    regions: [eu-west-1]
    deny_assume_role: true
    clusters: [{name: locked, services: [{name: vault}, {name: audit}]}]
"#;

/// What fleet-sim says happened to one service: its events and deployments, through ECS.
#[derive(Debug, Default)]
struct Seen {
    found: bool,
    status: String,
    events: Vec<String>,
    primary: Option<String>,
}

/// Describes every service of a reachable account through fleet-sim's ECS API, as an outside
/// client (STS AssumeRole with the hub's keys, then ECS with the member's credentials).
async fn describe_all(stack: &LocalStack, fleet: &fleet_sim::FleetSpec) -> BTreeMap<String, Seen> {
    let endpoint = stack.sim.endpoint_url();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDTESTHUB000000000",
                "s",
                None,
                None,
                "t",
            ))
            .endpoint_url(&endpoint)
            .build(),
    );
    let mut seen = BTreeMap::new();
    for account in fleet.accounts.iter().filter(|a| !a.deny_assume_role) {
        let creds = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{}:role/test-probe", account.id))
            .role_session_name("probe")
            .send()
            .await
            .unwrap()
            .credentials
            .unwrap();
        let ecs = aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(Credentials::new(
                    creds.access_key_id(),
                    creds.secret_access_key(),
                    Some(creds.session_token().to_owned()),
                    None,
                    "probe",
                ))
                .endpoint_url(&endpoint)
                .build(),
        );
        for cluster in &account.clusters {
            for chunk in cluster.services.chunks(10) {
                let out = ecs
                    .describe_services()
                    .cluster(&cluster.name)
                    .set_services(Some(chunk.iter().map(|s| s.name.clone()).collect()))
                    .send()
                    .await
                    .unwrap();
                for s in out.services() {
                    let key = format!(
                        "{}/{}/{}",
                        account.id,
                        cluster.name,
                        s.service_name().unwrap_or_default()
                    );
                    seen.insert(
                        key,
                        Seen {
                            found: true,
                            status: s.status().unwrap_or_default().to_owned(),
                            events: s
                                .events()
                                .iter()
                                .filter_map(|e| e.message().map(str::to_owned))
                                .collect(),
                            primary: s
                                .deployments()
                                .iter()
                                .find(|d| d.status() == Some("PRIMARY"))
                                .and_then(|d| d.id().map(str::to_owned)),
                        },
                    );
                }
            }
        }
    }
    seen
}

/// DynamoDB and SNS are moto's (through the Lambda host); every other service is fleet-sim's.
fn is_moto_service(name: &str) -> bool {
    let service = name.to_ascii_lowercase();
    service.contains("dynamodb") || service.contains("sns")
}

/// account → action → calls that reached fleet-sim, from the traces: each AWS call subsegment
/// of a service fleet-sim serves that got an HTTP answer, its retries included (fleet-sim counts
/// every attempt); a hub client's call (no `account_id`) is the hub's, as fleet-sim counts it.
/// Calls that never reached a server (their credentials failed: the denied account) are left
/// out, as fleet-sim never saw them.
fn traced_calls(traces: &Traces) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for n in traces.nodes().iter().filter(|n| n.is_aws_call()) {
        if is_moto_service(n.name()) {
            continue;
        }
        if n.value.pointer("/http/response/status").is_none() {
            continue;
        }
        let account = n
            .aws("account_id")
            .and_then(|a| a.as_str())
            .unwrap_or(local_stack::infra::ACCOUNT)
            .to_owned();
        let operation = n
            .aws("operation")
            .and_then(|o| o.as_str())
            .unwrap()
            .to_owned();
        *out.entry(account)
            .or_default()
            .entry(operation)
            .or_default() += 1 + n.retries();
    }
    out
}

/// The night's traces: one trace, every document a valid segment document, nothing lost or
/// summarized (so that every call is a subsegment), a function segment per invocation, and a
/// subsegment for every call fleet-sim counted.
fn check_traces(report: &local_stack::NightReport) {
    let traces = report
        .traces
        .as_ref()
        .expect("the night's traces were read");
    let xray = report.xray.as_ref().unwrap();
    assert_eq!(
        traces.traces.len(),
        1,
        "one trace for the night: {:?}",
        traces
            .traces
            .iter()
            .map(|t| &t.trace_id)
            .collect::<Vec<_>>()
    );
    assert_eq!(traces.problems(), Vec::<String>::new());
    assert_eq!((traces.bad_datagrams, xray.lost), (0, Some(0)), "{xray:?}");
    // An invocation keeps 500 subsegments one by one and summarizes the rest (the restarter's
    // polls read the table often): the store's calls may be summarized, never a call that
    // reached fleet-sim, so that each of those is a subsegment.
    let summarized_sim_calls: Vec<&serde_json::Value> = traces
        .nodes()
        .iter()
        .filter_map(|n| {
            n.value
                .pointer("/metadata/restart/summarized/entries")?
                .as_array()
        })
        .flatten()
        .filter(|e| {
            e.get("operation").is_some() && !is_moto_service(e["name"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(summarized_sim_calls, Vec::<&serde_json::Value>::new());
    assert!(xray.documents > 0 && xray.aws_calls > 0, "{xray:?}");
    let invocations: u64 = report.invocations.calls.values().sum();
    let function_segments = traces.traces[0]
        .documents
        .iter()
        .filter(|d| d["origin"] == local_stack::traces::LAMBDA_ORIGIN)
        .count() as u64;
    assert_eq!(function_segments, invocations);
    // Every invocation sent its own subsegment (the function's name) under its segment.
    let invocation_subsegments = traces
        .nodes()
        .iter()
        .filter(|n| n.value.get("origin").is_none() && Functions::NAMES.contains(&n.name()))
        .count() as u64;
    assert_eq!(invocation_subsegments, invocations);

    let sim: BTreeMap<String, BTreeMap<String, u64>> =
        serde_json::from_value(report.sim_stats["calls"].clone()).unwrap();
    let traced = traced_calls(traces);
    assert!(sim.values().flat_map(|a| a.values()).sum::<u64>() > 0);
    assert_eq!(
        traced, sim,
        "traced calls (left) against fleet-sim's counters (right)"
    );
    eprintln!(
        "traces: {} trace(s), {} documents from the functions, {} function segments, {} \
         subsegments, {} AWS calls ({} store calls summarized); fleet-sim counted {} calls, the \
         traces {} (per account and action, retries included)",
        traces.traces.len(),
        xray.documents,
        function_segments,
        xray.subsegments,
        xray.aws_calls,
        xray.summarized,
        sim.values().flat_map(|a| a.values()).sum::<u64>(),
        traced.values().flat_map(|a| a.values()).sum::<u64>(),
    );

    // The view: the reachable member accounts, with their calls and time.
    let time = &xray.time;
    for account in ["111111111111", "333333333333"] {
        let a = time.accounts.iter().find(|a| a.account == account).unwrap();
        assert!(a.calls > 0 && a.call_seconds > 0.0, "{a:?}");
        assert!(
            a.slowest.iter().any(|o| o.operation == "DescribeServices"),
            "{a:?}"
        );
    }
    let totals: Vec<f64> = time.accounts.iter().map(|a| a.total_seconds()).collect();
    assert!(
        totals.windows(2).all(|w| w[0] >= w[1]),
        "slowest first: {totals:?}"
    );
}

fn key(s: &ServiceEntry) -> String {
    format!("{}/{}/{}", s.account, s.cluster, s.service)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_night_through_the_real_definition_ends_every_service_once_and_restarts_exactly_those_that_ran()
 {
    let fleet = fleet_sim::FleetSpec::from_yaml_str(FLEET).unwrap();
    let options = NightOptions {
        fleet: fleet.clone(),
        window_seconds: 60,
        // The night begins at once: its only batch starts now, its stuck restart times out a
        // minute later.
        align: Align::CurrentMinute,
        vars: [
            ("FAILURE_THRESHOLD_PERCENT", "50"),
            ("UNTAGGED_POLICY", "notify"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        watch: Watch {
            progress: false,
            grace: Duration::from_secs(100),
        },
    };
    let (stack_options, compression) = local_stack::prepare(&options).unwrap();
    let stack = LocalStack::start(stack_options).await.unwrap();
    let report = local_stack::run_night(&stack, &compression, &options.watch).await;
    let page = match &report {
        Ok(report) => Some(local_stack::night::html_page(&stack, report, &compression).await),
        Err(_) => None,
    };
    let seen = describe_all(&stack, &fleet).await;
    stack.stop().await;
    let report = report.unwrap();

    assert!(report.is_ok(), "{}", report.render());
    assert_eq!(report.execution.status, "SUCCEEDED");
    check_traces(&report);
    let page = page.unwrap().unwrap();
    assert!(page.contains("<h2>Where the night&#39;s time went</h2>"));
    assert!(page.contains("<tr><td>111111111111</td>"), "{page}");

    // Every service of the reachable accounts, exactly once, in a terminal state.
    let expected: BTreeSet<String> = fleet
        .accounts
        .iter()
        .filter(|a| !a.deny_assume_role)
        .flat_map(|a| {
            a.clusters.iter().flat_map(move |c| {
                c.services
                    .iter()
                    .map(move |s| format!("{}/{}/{}", a.id, c.name, s.name))
            })
        })
        .collect();
    let keys: Vec<String> = report.services.iter().map(key).collect();
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        keys.len(),
        unique.len(),
        "a service has two records: {keys:?}"
    );
    assert_eq!(unique, expected);
    assert!(report.services.iter().all(|s| s.state.is_terminal()));

    let state = |name: &str| {
        report
            .services
            .iter()
            .find(|s| s.service == name)
            .map(|s| (s.state, s.reason.clone()))
            .unwrap()
    };
    for ok in [
        "ok-rfc3339",
        "ok-empty",
        "ok-enabled",
        "ok-malformed",
        "ok-snooze-over",
        "web-0",
        "s-0",
    ] {
        assert_eq!(state(ok).0, NightState::Completed, "{ok}");
    }
    assert!(matches!(
        state("fail").0,
        NightState::Failed | NightState::RolledBack
    ));
    assert!(matches!(
        state("s-4").0,
        NightState::Failed | NightState::RolledBack
    ));
    assert_eq!(state("stuck").0, NightState::TimedOut);
    assert_eq!(state("vanish").0, NightState::Vanished);
    for (name, reason) in [
        ("blue-green", "controller_code_deploy"),
        ("opted-out", "opted_out"),
        ("snoozed", "snoozed"),
        ("untagged", "untagged"),
        ("downtime", "downtime_risk"),
    ] {
        assert_eq!(
            state(name),
            (NightState::Skipped, Some(reason.to_owned())),
            "{name}"
        );
    }
    assert_eq!(
        report
            .unreachable_accounts
            .iter()
            .map(|u| u.account.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["222222222222"])
    );
    // Owners were told (tag missing, malformed, failures) and ops got the summary.
    assert!(
        report
            .notices
            .iter()
            .any(|n| n.topic.ends_with("OwnerTopic"))
    );
    assert_eq!(
        report
            .notices
            .iter()
            .filter(|n| n.topic.ends_with("OpsTopic"))
            .count(),
        1
    );

    // fleet-sim restarted exactly the services whose restart ran, with the ids recorded.
    for s in &report.services {
        let k = key(s);
        let sim = seen.get(&k);
        let restarted = sim.is_some_and(|v| v.events.iter().any(|e| e.contains("has started")));
        match s.state {
            NightState::Completed => {
                let id = s.deployment_id.as_deref().unwrap();
                let v = sim.unwrap();
                assert!(restarted, "{k}");
                assert_eq!(v.primary.as_deref(), Some(id), "{k}");
                assert!(
                    v.events
                        .iter()
                        .any(|e| e.contains(&format!("(deployment {id}) deployment completed"))),
                    "{k}"
                );
            }
            NightState::Failed | NightState::RolledBack => {
                let id = s.deployment_id.as_deref().unwrap();
                assert!(restarted, "{k}");
                assert!(
                    sim.unwrap()
                        .events
                        .iter()
                        .any(|e| e.contains(&format!("(deployment {id}) deployment failed"))),
                    "{k}"
                );
            }
            NightState::TimedOut => {
                assert!(restarted, "{k}");
                assert_eq!(
                    sim.unwrap().primary.as_deref(),
                    s.deployment_id.as_deref(),
                    "{k}"
                );
            }
            NightState::Vanished => {
                // Deleted during its restart: INACTIVE, or no longer listed at all.
                assert!(sim.is_none_or(|v| v.status == "INACTIVE"), "{k}: {sim:?}");
            }
            _ => assert!(
                !restarted,
                "{k} was restarted but its record is {}",
                s.state
            ),
        }
    }
    let ran = report
        .services
        .iter()
        .filter(|s| s.state.is_restart_outcome())
        .count() as u64;
    assert_eq!(report.sim_stats["restarts"].as_u64(), Some(ran));
    assert!(seen.values().all(|v| v.found));
}
