//! CloudWatch alarms (rpc-v2-cbor) and SSM change calendars (awsJson1_1) through the real
//! aws-sdk-cloudwatch and aws-sdk-ssm clients: timelines on the simulated clock, filters,
//! pagination, account isolation, the authorizer, deployment alarms in ECS, spec validation.

use crate::common;

use std::sync::{Arc, Mutex};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::CalendarState;
use common::{HUB_KEY, cloudwatch_with, creds, ecs_with, from_sts, ssm_with, start, sts};
use fleet_sim::auth::{Allowed, Authorization, Authorizer, Principal};
use fleet_sim::{FleetSpec, RunningSim};

/// 2026-11-22T00:00:00Z, the fleet's start.
const START: i64 = 1_795_305_600;

const FLEET: &str = r#"
hub_account: "000000000000"
throttling: false
# Nearly frozen: simulated time moves with advance_seconds only.
time_scale: 0.001
start_time: "2026-11-22T00:00:00Z"
hub_alarms:
  - {name: hub-only, region: eu-west-1, states: [{at_minute: 0, state: ALARM}]}
calendars:
  - name: ecs-restart-freeze
    events: [{summary: "release freeze", from_minute: 60, until_minute: 90}]
  - name: change-window
    default: DEFAULT_CLOSED
    events: [{summary: "night window", from_minute: 30, until_minute: 120}]
accounts:
  - id: "111111111111"
    regions: [eu-west-1, us-east-1]
    alarms:
      - name: ecs-restart-block-payments
        states:
          - {at_minute: 0, state: OK}
          - {at_minute: 30, state: ALARM, reason: "5xx above 1 %"}
          - {at_minute: 90, state: OK}
      - {name: ecs-restart-block-search, states: [{at_minute: 0, state: OK}]}
      - {name: cpu-high, states: [{at_minute: 10, state: ALARM}]}
      - {name: east-only, region: us-east-1}
    clusters:
      - name: payments
        services:
          - {name: api, deployment_alarms: [ecs-restart-block-payments, cpu-high]}
          - {name: plain}
  - id: "222222222222"
    regions: [eu-west-1]
    alarms: [{name: ecs-restart-block-other}]
"#;

const A: &str = "111111111111";
const B: &str = "222222222222";

/// Credentials of an assumed role in `account`.
async fn member(sim: &RunningSim, account: &str) -> aws_sdk_ecs::config::Credentials {
    let out = sts(sim, creds(HUB_KEY))
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/restarter"))
        .role_session_name("nightly")
        .send()
        .await
        .expect("assumed");
    from_sts(out.credentials().expect("credentials"))
}

fn minutes(m: i64) -> DateTime {
    DateTime::from_secs(START + m * 60)
}

/// The one alarm named `name`.
async fn one_alarm(
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
) -> aws_sdk_cloudwatch::types::MetricAlarm {
    let out = cw
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .expect("described");
    assert_eq!(out.metric_alarms().len(), 1, "{name}");
    out.metric_alarms()[0].clone()
}

/// State, AtTime and NextTransitionTime of `names` at `at`.
async fn calendar_state(
    ssm: &aws_sdk_ssm::Client,
    names: &[&str],
    at: Option<&str>,
) -> (Option<CalendarState>, Option<String>, Option<String>) {
    let out = ssm
        .get_calendar_state()
        .set_calendar_names(Some(names.iter().map(|n| (*n).to_owned()).collect()))
        .set_at_time(at.map(str::to_owned))
        .send()
        .await
        .expect("state");
    (
        out.state().cloned(),
        out.at_time().map(str::to_owned),
        out.next_transition_time().map(str::to_owned),
    )
}

/// Names of the metric alarms of one answer.
fn names(out: &aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput) -> Vec<&str> {
    out.metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .collect()
}

#[tokio::test]
async fn alarm_states_follow_their_timeline_as_the_clock_moves() {
    let sim = start(FLEET).await;
    let cw = cloudwatch_with(&sim, member(&sim, A).await, "eu-west-1");
    let get = |name: &'static str| one_alarm(&cw, name);
    let a = get("ecs-restart-block-payments").await;
    assert_eq!(
        a.alarm_arn(),
        Some("arn:aws:cloudwatch:eu-west-1:111111111111:alarm:ecs-restart-block-payments")
    );
    assert_eq!(a.state_value(), Some(&StateValue::Ok));
    assert_eq!(a.state_updated_timestamp(), Some(&minutes(0)));
    assert_eq!(a.actions_enabled(), Some(true));
    assert!(
        a.state_reason()
            .is_some_and(|r| r.starts_with("Threshold Crossed"))
    );
    // Before its first entry an alarm is INSUFFICIENT_DATA, since the start.
    let cpu = get("cpu-high").await;
    assert_eq!(cpu.state_value(), Some(&StateValue::InsufficientData));
    assert_eq!(cpu.state_updated_timestamp(), Some(&minutes(0)));

    sim.handle().advance_seconds(29.0 * 60.0);
    assert_eq!(
        get("ecs-restart-block-payments").await.state_value(),
        Some(&StateValue::Ok)
    );
    assert_eq!(
        get("cpu-high").await.state_updated_timestamp(),
        Some(&minutes(10))
    );
    sim.handle().advance_seconds(60.0);
    let a = get("ecs-restart-block-payments").await;
    assert_eq!(a.state_value(), Some(&StateValue::Alarm));
    assert_eq!(a.state_reason(), Some("5xx above 1 %"));
    assert_eq!(a.state_updated_timestamp(), Some(&minutes(30)));
    assert_eq!(a.state_transitioned_timestamp(), Some(&minutes(30)));
    sim.handle().advance_seconds(59.0 * 60.0);
    assert_eq!(
        get("ecs-restart-block-payments").await.state_value(),
        Some(&StateValue::Alarm),
        "minute 89"
    );
    sim.handle().advance_seconds(60.0);
    let a = get("ecs-restart-block-payments").await;
    assert_eq!(a.state_value(), Some(&StateValue::Ok), "minute 90");
    assert_eq!(a.state_updated_timestamp(), Some(&minutes(90)));

    let stats = sim.handle().stats();
    assert_eq!(stats.calls[A]["DescribeAlarms"], 7);
    assert_eq!(stats.total_calls("DescribeAlarms"), 7);
}

#[tokio::test]
async fn prefix_state_and_type_filters_and_regions() {
    let sim = start(FLEET).await;
    let creds = member(&sim, A).await;
    let cw = cloudwatch_with(&sim, creds.clone(), "eu-west-1");
    let out = cw.describe_alarms().send().await.expect("all");
    assert_eq!(
        names(&out),
        [
            "cpu-high",
            "ecs-restart-block-payments",
            "ecs-restart-block-search"
        ],
        "sorted by name, this region only"
    );
    assert!(out.next_token().is_none());
    assert!(out.composite_alarms().is_empty());
    let out = cw
        .describe_alarms()
        .alarm_name_prefix("ecs-restart-block-")
        .send()
        .await
        .expect("prefix");
    assert_eq!(
        names(&out),
        ["ecs-restart-block-payments", "ecs-restart-block-search"]
    );
    sim.handle().advance_seconds(45.0 * 60.0);
    let out = cw
        .describe_alarms()
        .state_value(StateValue::Alarm)
        .send()
        .await
        .expect("state");
    assert_eq!(names(&out), ["cpu-high", "ecs-restart-block-payments"]);
    let out = cw
        .describe_alarms()
        .alarm_name_prefix("ecs-restart-block-")
        .state_value(StateValue::Ok)
        .send()
        .await
        .expect("prefix and state");
    assert_eq!(names(&out), ["ecs-restart-block-search"]);
    let out = cw
        .describe_alarms()
        .alarm_names("cpu-high")
        .alarm_names("no-such-alarm")
        .send()
        .await
        .expect("names");
    assert_eq!(names(&out), ["cpu-high"], "unknown names are left out");
    // Composite alarms are not modelled: asked for, the list is empty.
    let out = cw
        .describe_alarms()
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .expect("composite");
    assert!(out.metric_alarms().is_empty());
    assert!(out.composite_alarms().is_empty());
    let east = cloudwatch_with(&sim, creds, "us-east-1");
    let out = east.describe_alarms().send().await.expect("east");
    assert_eq!(names(&out), ["east-only"]);
    assert_eq!(
        out.metric_alarms()[0].alarm_arn(),
        Some("arn:aws:cloudwatch:us-east-1:111111111111:alarm:east-only")
    );
    let err = cw
        .describe_alarms()
        .alarm_names("cpu-high")
        .alarm_name_prefix("cpu")
        .send()
        .await
        .expect_err("names and prefix");
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
}

#[tokio::test]
async fn pagination_walks_more_than_a_hundred_alarms_once_each() {
    let mut yaml = String::from(
        "throttling: false\ntime_scale: 0.001\naccounts:\n  - id: \"111111111111\"\n    regions: [eu-west-1]\n    alarms:\n",
    );
    for i in 0..250 {
        let state = if i % 3 == 0 { "ALARM" } else { "OK" };
        yaml.push_str(&format!(
            "      - {{name: alarm-{i:03}, states: [{{at_minute: 0, state: {state}}}]}}\n"
        ));
    }
    let sim = start(&yaml).await;
    let cw = cloudwatch_with(&sim, member(&sim, A).await, "eu-west-1");
    for (max, pages) in [(Some(100), 3), (None, 5)] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut n = 0;
        loop {
            let out = cw
                .describe_alarms()
                .set_max_records(max)
                .set_next_token(token.clone())
                .send()
                .await
                .expect("page");
            n += 1;
            seen.extend(names(&out).into_iter().map(str::to_owned));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(n, pages, "{max:?}");
        let expected: Vec<String> = (0..250).map(|i| format!("alarm-{i:03}")).collect();
        assert_eq!(seen, expected, "each alarm once, in name order");
    }
    // A filtered listing pages too.
    let out = cw
        .describe_alarms()
        .state_value(StateValue::Alarm)
        .max_records(80)
        .send()
        .await
        .expect("filtered");
    assert_eq!(out.metric_alarms().len(), 80);
    let rest = cw
        .describe_alarms()
        .state_value(StateValue::Alarm)
        .max_records(80)
        .set_next_token(out.next_token().map(str::to_owned))
        .send()
        .await
        .expect("filtered rest");
    assert_eq!(rest.metric_alarms().len(), 4);
    assert!(rest.next_token().is_none());
    // A token of another listing, or garbage, is InvalidNextToken; MaxRecords is 1..=100.
    for token in [out.next_token().unwrap_or_default(), "garbage"] {
        let err = cw
            .describe_alarms()
            .next_token(token)
            .send()
            .await
            .expect_err("foreign token");
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_invalid_next_token()),
            "{err:?}"
        );
    }
    let err = cw
        .describe_alarms()
        .max_records(101)
        .send()
        .await
        .expect_err("101");
    assert_eq!(err.code(), Some("ValidationError"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
}

#[tokio::test]
async fn members_and_the_hub_see_only_their_own_alarms() {
    let sim = start(FLEET).await;
    let hub = cloudwatch_with(&sim, creds(HUB_KEY), "eu-west-1");
    let a = cloudwatch_with(&sim, member(&sim, A).await, "eu-west-1");
    let b = cloudwatch_with(&sim, member(&sim, B).await, "eu-west-1");
    let out = hub.describe_alarms().send().await.expect("hub");
    assert_eq!(names(&out), ["hub-only"]);
    assert_eq!(
        out.metric_alarms()[0].alarm_arn(),
        Some("arn:aws:cloudwatch:eu-west-1:000000000000:alarm:hub-only")
    );
    let out = a
        .describe_alarms()
        .alarm_names("hub-only")
        .alarm_names("ecs-restart-block-other")
        .send()
        .await
        .expect("a");
    assert!(names(&out).is_empty(), "{:?}", names(&out));
    let out = b.describe_alarms().send().await.expect("b");
    assert_eq!(names(&out), ["ecs-restart-block-other"]);
    let out = hub
        .describe_alarms()
        .alarm_name_prefix("ecs-restart-block-")
        .send()
        .await
        .expect("hub prefix");
    assert!(names(&out).is_empty());
    // A key of an account that is not in the fleet is refused.
    let ghost = cloudwatch_with(&sim, creds("ASIASIM555555555555X"), "eu-west-1");
    let err = ghost.describe_alarms().send().await.expect_err("ghost");
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
    let stats = sim.handle().stats();
    assert_eq!(stats.calls["000000000000"]["DescribeAlarms"], 2);
    assert_eq!(stats.calls[A]["DescribeAlarms"], 1);
    assert_eq!(stats.calls[B]["DescribeAlarms"], 1);
}

#[tokio::test]
async fn calendars_open_and_close_with_their_events() {
    let sim = start(FLEET).await;
    let ssm = ssm_with(&sim, creds(HUB_KEY), "us-east-1");
    let state =
        |names: &'static [&'static str], at: Option<&'static str>| calendar_state(&ssm, names, at);
    use CalendarState::{Closed, Open};
    let s = |st: CalendarState, at: &str, next: Option<&str>| {
        (Some(st), Some(at.to_owned()), next.map(str::to_owned))
    };
    assert_eq!(
        state(&["ecs-restart-freeze"], None).await,
        s(Open, "2026-11-22T00:00:00Z", Some("2026-11-22T01:00:00Z"))
    );
    assert_eq!(
        state(&["ecs-restart-freeze"], Some("2026-11-22T01:10:00Z")).await,
        s(Closed, "2026-11-22T01:10:00Z", Some("2026-11-22T01:30:00Z"))
    );
    assert_eq!(
        state(&["ecs-restart-freeze"], Some("2026-11-22T02:00:00Z")).await,
        s(Open, "2026-11-22T02:00:00Z", None)
    );
    // DEFAULT_CLOSED: open only during its event.
    assert_eq!(
        state(&["change-window"], None).await,
        s(Closed, "2026-11-22T00:00:00Z", Some("2026-11-22T00:30:00Z"))
    );
    // Several: CLOSED when any is; the next transition is when the answer changes.
    let both: &'static [&'static str] = &[
        "change-window",
        "arn:aws:ssm:us-east-1:000000000000:document/ecs-restart-freeze",
    ];
    assert_eq!(
        state(both, Some("2026-11-22T00:45:00+00:00")).await,
        s(Open, "2026-11-22T00:45:00Z", Some("2026-11-22T01:00:00Z"))
    );
    assert_eq!(
        state(both, Some("2026-11-22T01:30:00Z")).await,
        s(Open, "2026-11-22T01:30:00Z", Some("2026-11-22T02:00:00Z"))
    );
    // Without AtTime, the simulated now.
    sim.handle().advance_seconds(65.0 * 60.0);
    assert_eq!(
        state(&["ecs-restart-freeze"], None).await,
        s(Closed, "2026-11-22T01:05:00Z", Some("2026-11-22T01:30:00Z"))
    );
    let stats = sim.handle().stats();
    assert_eq!(stats.calls["000000000000"]["GetCalendarState"], 7);
}

#[tokio::test]
async fn missing_calendars_and_member_keys_get_invalid_document() {
    let sim = start(FLEET).await;
    let hub = ssm_with(&sim, creds(HUB_KEY), "us-east-1");
    let err = hub
        .get_calendar_state()
        .calendar_names("no-such-calendar")
        .send()
        .await
        .expect_err("missing");
    let e = err.as_service_error().expect("service error");
    assert!(e.is_invalid_document(), "{e:?}");
    assert!(e.message().is_some_and(|m| m.contains("no-such-calendar")));
    // Calendars live in one region.
    let west = ssm_with(&sim, creds(HUB_KEY), "eu-west-1");
    let err = west
        .get_calendar_state()
        .calendar_names("ecs-restart-freeze")
        .send()
        .await
        .expect_err("other region");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_document())
    );
    // Members have no calendars.
    let member_ssm = ssm_with(&sim, member(&sim, A).await, "us-east-1");
    let err = member_ssm
        .get_calendar_state()
        .calendar_names("ecs-restart-freeze")
        .send()
        .await
        .expect_err("member");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_document())
    );
    for (names, at) in [
        (vec![], None),
        (vec!["ecs-restart-freeze".to_owned()], Some("soon")),
    ] {
        let err = hub
            .get_calendar_state()
            .set_calendar_names(Some(names))
            .set_at_time(at.map(str::to_owned))
            .send()
            .await
            .expect_err("invalid");
        assert_eq!(err.code(), Some("ValidationException"), "{at:?}");
    }
    let stats = sim.handle().stats();
    assert_eq!(stats.calls[A]["GetCalendarState"], 1);
    assert_eq!(stats.calls["000000000000"]["GetCalendarState"], 4);
}

/// Refuses what its list names and records every request it is asked.
#[derive(Debug, Default)]
struct Refuse {
    refused: Vec<(&'static str, &'static str)>,
    asked: Mutex<Vec<Authorization>>,
}

impl Authorizer for Refuse {
    fn authorize(&self, request: &Authorization) -> Result<Allowed, String> {
        self.asked.lock().expect("lock").push(request.clone());
        let who = match &request.principal {
            Principal::Hub { access_key } => format!("arn:aws:iam::000000000000:user/{access_key}"),
            Principal::Session(s) => s.arn(),
        };
        if self
            .refused
            .iter()
            .any(|&(a, r)| a == request.action && r == request.resource)
        {
            return Err(format!(
                "User: {who} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
                request.action, request.resource, request.action
            ));
        }
        Ok(Allowed::default())
    }
}

#[tokio::test]
async fn the_authorizer_is_asked_and_its_refusals_are_access_denied() {
    let sim = start(FLEET).await;
    let auth = Arc::new(Refuse {
        refused: vec![
            (
                "cloudwatch:DescribeAlarms",
                "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:*",
            ),
            (
                "ssm:GetCalendarState",
                "arn:aws:ssm:us-east-1:000000000000:document/change-window",
            ),
        ],
        asked: Mutex::new(Vec::new()),
    });
    let member_creds = member(&sim, A).await;
    sim.handle().set_authorizer(Some(auth.clone()));
    let cw = cloudwatch_with(&sim, member_creds, "eu-west-1");
    let err = cw
        .describe_alarms()
        .send()
        .await
        .expect_err("listing refused");
    assert_eq!(err.code(), Some("AccessDenied"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(
        err.message(),
        Some(
            "User: arn:aws:sts::111111111111:assumed-role/restarter/nightly is not authorized to perform: cloudwatch:DescribeAlarms on resource: arn:aws:cloudwatch:eu-west-1:111111111111:alarm:* because no identity-based policy allows the cloudwatch:DescribeAlarms action"
        )
    );
    // Named alarms are asked for one by one.
    let out = cw
        .describe_alarms()
        .alarm_names("cpu-high")
        .alarm_names("ecs-restart-block-payments")
        .send()
        .await
        .expect("named alarms allowed");
    assert_eq!(out.metric_alarms().len(), 2);

    let ssm = ssm_with(&sim, creds(HUB_KEY), "us-east-1");
    ssm.get_calendar_state()
        .calendar_names("ecs-restart-freeze")
        .send()
        .await
        .expect("allowed");
    let err = ssm
        .get_calendar_state()
        .calendar_names("ecs-restart-freeze")
        .calendar_names("change-window")
        .send()
        .await
        .expect_err("one calendar refused");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message()
            .is_some_and(|m| m.contains("ssm:GetCalendarState on resource: arn:aws:ssm:us-east-1:000000000000:document/change-window"))
    );

    let asked: Vec<(String, String, String)> = auth
        .asked
        .lock()
        .expect("lock")
        .iter()
        .map(|r| {
            let who = match &r.principal {
                Principal::Hub { .. } => "hub".to_owned(),
                Principal::Session(s) => s.account.clone(),
            };
            assert_eq!(
                r.context.get("aws:RequestedRegion").map(Vec::as_slice),
                Some(
                    [if r.action.starts_with("ssm") {
                        "us-east-1".to_owned()
                    } else {
                        "eu-west-1".to_owned()
                    }]
                    .as_slice()
                )
            );
            (who, r.action.clone(), r.resource.clone())
        })
        .collect();
    let t = |w: &str, a: &str, r: &str| (w.to_owned(), a.to_owned(), r.to_owned());
    assert_eq!(
        asked,
        [
            t(
                A,
                "cloudwatch:DescribeAlarms",
                "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:*"
            ),
            t(
                A,
                "cloudwatch:DescribeAlarms",
                "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:cpu-high"
            ),
            t(
                A,
                "cloudwatch:DescribeAlarms",
                "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:ecs-restart-block-payments"
            ),
            t(
                "hub",
                "ssm:GetCalendarState",
                "arn:aws:ssm:us-east-1:000000000000:document/ecs-restart-freeze"
            ),
            t(
                "hub",
                "ssm:GetCalendarState",
                "arn:aws:ssm:us-east-1:000000000000:document/ecs-restart-freeze"
            ),
            t(
                "hub",
                "ssm:GetCalendarState",
                "arn:aws:ssm:us-east-1:000000000000:document/change-window"
            ),
        ]
    );
    // Refused calls are counted too.
    let stats = sim.handle().stats();
    assert_eq!(stats.calls[A]["DescribeAlarms"], 2);
    assert_eq!(stats.calls["000000000000"]["GetCalendarState"], 2);
}

#[tokio::test]
async fn describe_alarms_is_throttled_at_its_documented_rate() {
    let sim = start(&FLEET.replace("throttling: false", "throttling: true")).await;
    let cw = cloudwatch_with(&sim, creds(HUB_KEY), "eu-west-1");
    let mut throttled = 0;
    for _ in 0..40 {
        if let Err(e) = cw.describe_alarms().send().await {
            assert_eq!(e.code(), Some("Throttling"));
            assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
            throttled += 1;
        }
    }
    assert!(throttled > 0, "40 calls at once pass a 9/s bucket");
    let stats = sim.handle().stats();
    assert_eq!(stats.calls["000000000000"]["DescribeAlarms"], 40);
    assert_eq!(stats.throttled["000000000000"]["DescribeAlarms"], throttled);
}

#[tokio::test]
async fn deployment_alarms_show_in_describe_services() {
    let sim = start(FLEET).await;
    let ecs = ecs_with(&sim, member(&sim, A).await, "eu-west-1", 1);
    let out = ecs
        .describe_services()
        .cluster("payments")
        .services("api")
        .services("plain")
        .send()
        .await
        .expect("described");
    let by_name = |n: &str| {
        out.services()
            .iter()
            .find(|s| s.service_name() == Some(n))
            .and_then(|s| s.deployment_configuration())
            .expect("deployment configuration")
    };
    let alarms = by_name("api").alarms().expect("alarms");
    assert_eq!(
        alarms.alarm_names(),
        ["ecs-restart-block-payments", "cpu-high"]
    );
    assert!(alarms.enable() && alarms.rollback());
    assert!(by_name("plain").alarms().is_none());
    assert_eq!(by_name("plain").maximum_percent(), Some(200));
}

#[tokio::test]
async fn raw_rpc_v2_cbor_errors_without_query_mode() {
    let sim = start(FLEET).await;
    let post = |path: &'static str, protocol: Option<&'static str>, body: Vec<u8>| {
        let addr = sim.addr;
        async move {
            use http_body_util::{BodyExt, Full};
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(conn);
            let mut req = hyper::Request::builder()
                .method("POST")
                .uri(path)
                .header("host", addr.to_string())
                .header("content-type", "application/cbor")
                .header(
                    "authorization",
                    format!(
                        "AWS4-HMAC-SHA256 Credential={HUB_KEY}/20261122/eu-west-1/monitoring/aws4_request, SignedHeaders=host, Signature=0"
                    ),
                );
            if let Some(p) = protocol {
                req = req.header("smithy-protocol", p);
            }
            let resp = sender
                .send_request(
                    req.body(Full::new(hyper::body::Bytes::from(body)))
                        .expect("request"),
                )
                .await
                .expect("response");
            let status = resp.status().as_u16();
            let query_error = resp.headers().get("x-amzn-query-error").cloned();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            let value: ciborium::Value = ciborium::from_reader(bytes.as_ref()).expect("cbor body");
            (status, query_error, value)
        }
    };
    let field = |v: &ciborium::Value, k: &str| -> Option<String> {
        v.as_map()?
            .iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .and_then(|(_, v)| v.as_text().map(str::to_owned))
    };
    let path = "/service/GraniteServiceVersion20100801/operation/DescribeAlarms";
    let (status, q, v) = post(
        path,
        Some("rpc-v2-cbor"),
        b"\xbf\x69NextToken\x63bad\xff".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        q.is_none(),
        "no query error header without x-amzn-query-mode"
    );
    assert_eq!(
        field(&v, "__type").as_deref(),
        Some("com.amazonaws.cloudwatch#InvalidNextToken")
    );
    let (status, _, v) = post(path, None, Vec::new()).await;
    assert_eq!(status, 400);
    assert!(field(&v, "message").is_some_and(|m| m.contains("smithy-protocol")));
    let (status, _, v) = post(
        "/service/GraniteServiceVersion20100801/operation/PutMetricAlarm",
        Some("rpc-v2-cbor"),
        Vec::new(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        field(&v, "__type").as_deref(),
        Some("com.amazon.coral.service#UnknownOperationException")
    );
    let (status, _, _) = post(
        "/service/Other/operation/X",
        Some("rpc-v2-cbor"),
        Vec::new(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, v) = post(path, Some("rpc-v2-cbor"), Vec::new()).await;
    assert_eq!(status, 200);
    assert!(
        v.as_map()
            .is_some_and(|m| m.iter().any(|(k, _)| k.as_text() == Some("MetricAlarms")))
    );
}

fn spec_err(yaml: &str) -> String {
    match FleetSpec::from_yaml_str(yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn alarm_and_calendar_specs_are_validated() {
    let acc = |alarms: &str, extra: &str| {
        format!(
            "accounts:\n  - id: \"111111111111\"\n    regions: [eu-west-1, us-east-1]\n    alarms: {alarms}\n{extra}"
        )
    };
    assert!(
        spec_err(&acc("[{name: x, states: [{at_minute: 0, state: RED}]}]", "")).starts_with(
            "accounts[0].alarms[0].states[0].state: unknown variant `RED`, expected one of `OK`, `ALARM`, `INSUFFICIENT_DATA`"
        )
    );
    for (alarms, extra, message) in [
        (
            "[{name: x, states: [{at_minute: 30, state: OK}, {at_minute: 30, state: ALARM}]}]",
            "",
            "accounts[0].alarms[0].states[1].at_minute: times must increase: must be greater than the previous entry's (30), got 30",
        ),
        (
            "[{name: x, states: [{at_minute: 30, state: OK}, {at_minute: 10, state: ALARM}]}]",
            "",
            "accounts[0].alarms[0].states[1].at_minute: times must increase: must be greater than the previous entry's (30), got 10",
        ),
        (
            "[{name: x, states: [{at_minute: 0, state: OK}, {at_minute: 10, state: OK}]}]",
            "",
            "accounts[0].alarms[0].states[1].state: repeats the previous entry's state OK (a timeline lists changes)",
        ),
        (
            "[{name: x}, {name: y}, {name: x, region: eu-west-1}]",
            "",
            "accounts[0].alarms[2].name: duplicate alarm name \"x\" in account 111111111111 region eu-west-1",
        ),
        (
            "[{name: x, region: ap-south-1}]",
            "",
            "accounts[0].alarms[0].region: \"ap-south-1\" is not one of the account's regions [\"eu-west-1\", \"us-east-1\"]",
        ),
        (
            "[{name: \"\"}]",
            "",
            "accounts[0].alarms[0].name: \"\" is not an alarm name (1 to 255 characters, no control characters)",
        ),
        (
            "[{name: x, region: us-east-1}]",
            "    clusters: [{name: c, services: [{name: s, deployment_alarms: [x]}]}]\n",
            "accounts[0].clusters[0].services[0].deployment_alarms[0]: no alarm \"x\" in account 111111111111 region eu-west-1 (list it in the account's `alarms`)",
        ),
        (
            "[{name: x}]",
            "    clusters: [{name: c, services: [{name: s, controller: CODE_DEPLOY, deployment_alarms: [x]}]}]\n",
            "accounts[0].clusters[0].services[0].deployment_alarms: deployment alarms need the ECS deployment controller",
        ),
        (
            "[]",
            "hub_alarms: [{name: h, region: eu-west-1}, {name: h}, {name: h, region: us-east-1}]\n",
            "hub_alarms[2].name: duplicate alarm name \"h\" in account 000000000000 region us-east-1",
        ),
        (
            "[]",
            "hub_alarms: [{name: h, region: Moon}]\n",
            "hub_alarms[0].region: \"Moon\" is not a region name (like eu-west-1)",
        ),
        (
            "[]",
            "calendars: [{name: freeze, events: [{from_minute: 30, until_minute: 30}]}]\n",
            "calendars[0].events[0].until_minute: must be greater than from_minute (30), got 30",
        ),
        (
            "[]",
            "calendars: [{name: freeze}, {name: freeze, region: us-east-1}]\n",
            "calendars[1].name: duplicate calendar name \"freeze\" in region us-east-1",
        ),
        (
            "[]",
            "calendars: [{name: \"a b\"}]\n",
            "calendars[0].name: \"a b\" is not a document name (3 to 128 letters, digits, '_', '-', '.')",
        ),
        (
            "[]",
            "hub_account: \"111111111111\"\ncalendars: [{name: freeze, region: ap-south-1}]\n",
            "calendars[0].region: \"ap-south-1\" is not one of the account's regions [\"eu-west-1\", \"us-east-1\"]",
        ),
    ] {
        assert_eq!(spec_err(&acc(alarms, extra)), message, "{alarms} {extra}");
    }
    assert!(
        spec_err("calendars: [{name: freeze, default: SOMETIMES}]")
            .starts_with("calendars[0].default: unknown variant `SOMETIMES`")
    );
    // Built in code: alarms of an account that is not there.
    let mut spec = FleetSpec::default();
    spec.account_alarms
        .insert("999999999999".into(), Vec::new());
    assert_eq!(
        spec.validate().map_err(|e| e.to_string()),
        Err("account_alarms.999999999999: no explicit account has this id".to_owned())
    );
}

#[test]
fn alarm_specs_round_trip_and_default_their_regions() {
    let spec = FleetSpec::from_yaml_str(FLEET).expect("valid");
    assert_eq!(spec.account_alarms[A].len(), 4);
    assert_eq!(spec.hub_alarms.len(), 1);
    assert_eq!(spec.calendars.len(), 2);
    let json = serde_json::to_string(&spec).expect("serializes");
    assert!(
        json.contains(r#""alarms":[{"name":"ecs-restart-block-payments""#),
        "{json}"
    );
    assert_eq!(FleetSpec::from_json_str(&json).expect("round trip"), spec);
    // The hub being an explicit account: its alarms and hub_alarms are one list.
    let merged = FleetSpec::from_yaml_str(
        "hub_account: \"111111111111\"\naccounts: [{id: \"111111111111\", regions: [eu-west-1], alarms: [{name: a}]}]\nhub_alarms: [{name: b}]\ncalendars: [{name: freeze}]\n",
    )
    .expect("valid");
    let world = fleet_sim::world::build(&merged, 0);
    let names: Vec<&String> = world.alarms["111111111111"]["eu-west-1"].keys().collect();
    assert_eq!(names, ["a", "b"]);
    assert!(world.calendars["eu-west-1"].contains_key("freeze"));
    let dup = spec_err(
        "hub_account: \"111111111111\"\naccounts: [{id: \"111111111111\", regions: [eu-west-1], alarms: [{name: a}]}]\nhub_alarms: [{name: a}]\n",
    );
    assert_eq!(
        dup,
        "hub_alarms[0].name: duplicate alarm name \"a\" in account 111111111111 region eu-west-1"
    );
}
