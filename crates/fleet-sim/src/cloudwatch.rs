//! Amazon CloudWatch over Smithy RPC v2 CBOR, as aws-sdk-cloudwatch speaks it:
//! `POST /service/GraniteServiceVersion20100801/operation/<Operation>` with
//! `smithy-protocol: rpc-v2-cbor` and CBOR bodies. One operation: DescribeAlarms over the
//! caller's account and region.
//!
//! CloudWatch is query-compatible: its clients send `x-amzn-query-mode: true`, and an error
//! answer then carries `x-amzn-query-error: <query code>;Sender` (or `;Receiver`), whose code
//! the SDKs take (`InvalidNextToken`, `AccessDenied`, `Throttling`, ...). The body is always
//! the rpc-v2-cbor error shape, `{"__type": "<shape id>", "message": "..."}`.

use ciborium::Value;

use crate::ecs::Ctx;
use crate::error::AwsError;
use crate::rng::hash_parts;
use crate::schedule::{Alarm, alarm_arn};
use crate::spec::AlarmState;
use crate::world::{Millis, World};

/// The service name in the request path.
pub const SERVICE: &str = "GraniteServiceVersion20100801";

/// The `smithy-protocol` header value of rpc-v2-cbor.
pub const PROTOCOL: &str = "rpc-v2-cbor";

/// The operations the simulator implements.
pub const ACTIONS: &[&str] = &["DescribeAlarms"];

/// Default `MaxRecords`.
const DEFAULT_PAGE: usize = 50;

/// CloudWatch's `InvalidNextToken`.
fn invalid_next_token() -> AwsError {
    AwsError::bad("InvalidNextToken", "The nextToken provided is invalid.")
}

/// A query-protocol `ValidationError` for `field`.
fn validation(message: impl Into<String>) -> AwsError {
    AwsError::bad("ValidationError", message)
}

/// The form of an error in CloudWatch: the query-protocol code and status the service answers
/// (the shared constructors of [`AwsError`] name the JSON services' codes).
pub fn wire_error(e: AwsError) -> AwsError {
    use axum::http::StatusCode;
    let (status, code) = match e.code {
        "AccessDeniedException" => (StatusCode::FORBIDDEN, "AccessDenied"),
        "UnrecognizedClientException" => (StatusCode::FORBIDDEN, "InvalidClientTokenId"),
        "MissingAuthenticationTokenException" => {
            (StatusCode::FORBIDDEN, "MissingAuthenticationToken")
        }
        "ThrottlingException" => (StatusCode::BAD_REQUEST, "Throttling"),
        "ServerException" => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure"),
        code => (e.status, code),
    };
    AwsError { status, code, ..e }
}

/// The Smithy shape id an error's `__type` names.
fn shape_id(code: &str) -> String {
    match code {
        "InvalidNextToken" => "com.amazonaws.cloudwatch#InvalidNextToken",
        "InvalidParameterValue" => "com.amazonaws.cloudwatch#InvalidParameterValueException",
        "InvalidParameterCombination" => {
            "com.amazonaws.cloudwatch#InvalidParameterCombinationException"
        }
        "AccessDenied" => "com.amazon.coral.service#AccessDeniedException",
        "Throttling" => "com.amazon.coral.availability#ThrottlingException",
        "ValidationError" => "com.amazon.coral.validate#ValidationException",
        "InternalFailure" => "com.amazon.coral.service#InternalFailure",
        "InvalidClientTokenId" => "com.amazon.coral.service#UnrecognizedClientException",
        "MissingAuthenticationToken" => {
            "com.amazon.coral.service#MissingAuthenticationTokenException"
        }
        "SerializationException" => "com.amazon.coral.service#SerializationException",
        "UnknownOperationException" => "com.amazon.coral.service#UnknownOperationException",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// The CBOR error body: `{"__type": shape id, "message": ...}`.
pub fn error_body(e: &AwsError) -> Vec<u8> {
    encode(&Value::Map(vec![
        (text("__type"), text(&shape_id(e.code))),
        (text("message"), text(&e.message)),
    ]))
}

/// The `x-amzn-query-error` header of an error: `CODE;Sender`, or `CODE;Receiver` for 5xx.
pub fn query_error(e: &AwsError) -> String {
    let kind = if e.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    format!("{};{kind}", e.code)
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing plain values into a Vec cannot fail.
    if ciborium::into_writer(v, &mut out).is_err() {
        out.clear();
    }
    out
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A timestamp as rpc-v2-cbor sends it: tag 1 around epoch seconds (an integer when whole,
/// else a float a microsecond past the millisecond, so that clients truncating to the
/// millisecond read the same one).
fn timestamp(ms: Millis) -> Value {
    let secs = if ms % 1000 == 0 {
        Value::Integer((ms / 1000).into())
    } else {
        Value::Float((ms as f64 + 0.001) / 1000.0)
    };
    Value::Tag(1, Box::new(secs))
}

/// DescribeAlarms' input.
#[derive(Debug, Default, PartialEq, Eq)]
struct DescribeAlarmsRequest {
    alarm_names: Option<Vec<String>>,
    alarm_name_prefix: Option<String>,
    alarm_types: Option<Vec<String>>,
    children_of_alarm_name: Option<String>,
    parents_of_alarm_name: Option<String>,
    state_value: Option<String>,
    action_prefix: Option<String>,
    max_records: Option<i128>,
    next_token: Option<String>,
}

fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::serialization(message)
}

fn as_text(key: &str, v: Value) -> Result<Option<String>, AwsError> {
    match v {
        Value::Null => Ok(None),
        Value::Text(s) => Ok(Some(s)),
        _ => Err(serialization(format!("{key} must be a string"))),
    }
}

fn as_list(key: &str, v: Value) -> Result<Option<Vec<String>>, AwsError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Text(s) => Ok(s),
                _ => Err(serialization(format!("{key} must hold strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(serialization(format!("{key} must be a list"))),
    }
}

/// Reads the CBOR input; an empty body is an empty input, an empty list an absent one.
/// Unknown members are ignored.
fn parse_request(body: &[u8]) -> Result<DescribeAlarmsRequest, AwsError> {
    let mut req = DescribeAlarmsRequest::default();
    if body.is_empty() {
        return Ok(req);
    }
    let value: Value = ciborium::from_reader(body)
        .map_err(|e| serialization(format!("Unable to parse the CBOR request body: {e}")))?;
    let Value::Map(entries) = value else {
        return Err(serialization("The request body must be a CBOR map."));
    };
    for (k, v) in entries {
        let Value::Text(key) = k else {
            return Err(serialization("Member names must be strings."));
        };
        match key.as_str() {
            "AlarmNames" => req.alarm_names = as_list(&key, v)?,
            "AlarmNamePrefix" => req.alarm_name_prefix = as_text(&key, v)?,
            "AlarmTypes" => req.alarm_types = as_list(&key, v)?,
            "ChildrenOfAlarmName" => req.children_of_alarm_name = as_text(&key, v)?,
            "ParentsOfAlarmName" => req.parents_of_alarm_name = as_text(&key, v)?,
            "StateValue" => req.state_value = as_text(&key, v)?,
            "ActionPrefix" => req.action_prefix = as_text(&key, v)?,
            "NextToken" => req.next_token = as_text(&key, v)?,
            "MaxRecords" => {
                req.max_records = match v {
                    Value::Null => None,
                    Value::Integer(i) => Some(i128::from(i)),
                    _ => return Err(serialization("MaxRecords must be an integer")),
                }
            }
            _ => {}
        }
    }
    // An empty list filters nothing, as an absent one.
    req.alarm_names = req.alarm_names.filter(|n| !n.is_empty());
    req.alarm_types = req.alarm_types.filter(|t| !t.is_empty());
    Ok(req)
}

/// The IAM resources a DescribeAlarms asks for (action `cloudwatch:DescribeAlarms`): the ARN
/// of each alarm it names, else `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:*` (a listing).
pub fn resources(account: &str, region: &str, body: &[u8]) -> Vec<String> {
    match parse_request(body).ok().and_then(|r| r.alarm_names) {
        Some(names) if !names.is_empty() => names
            .iter()
            .map(|n| alarm_arn(region, account, n))
            .collect(),
        _ => vec![alarm_arn(region, account, "*")],
    }
}

/// Handles one CloudWatch operation; returns the CBOR body.
pub fn handle(
    world: &World,
    ctx: Ctx<'_>,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, AwsError> {
    match operation {
        "DescribeAlarms" => describe_alarms(world, ctx, parse_request(body)?),
        other => Err(AwsError::bad(
            "UnknownOperationException",
            format!("Operation {other} is not supported by fleet-sim."),
        )),
    }
}

fn check_name(what: &str, name: &str) -> Result<(), AwsError> {
    let n = name.chars().count();
    if (1..=255).contains(&n) {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{what}' failed to satisfy constraint: Member must have length between 1 and 255"
        )))
    }
}

/// A page token: the scope hash, then the hex of the last name returned.
fn encode_token(scope: u64, last: &str) -> String {
    let mut t = format!("{scope:016x}");
    for b in last.bytes() {
        t.push_str(&format!("{b:02x}"));
    }
    t
}

fn decode_token(token: &str, scope: u64) -> Result<String, AwsError> {
    let (s, rest) = (
        token.get(..16).ok_or_else(invalid_next_token)?,
        token.get(16..).ok_or_else(invalid_next_token)?,
    );
    if u64::from_str_radix(s, 16).ok() != Some(scope) || rest.is_empty() || rest.len() % 2 != 0 {
        return Err(invalid_next_token());
    }
    let bytes = (0..rest.len())
        .step_by(2)
        .map(|i| {
            rest.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid_next_token)?;
    String::from_utf8(bytes).map_err(|_| invalid_next_token())
}

fn metric_alarm(alarm: &Alarm, now: Millis) -> Value {
    let status = alarm.status_at(now);
    let empty = || Value::Array(Vec::new());
    Value::Map(vec![
        (text("AlarmName"), text(&alarm.name)),
        (text("AlarmArn"), text(&alarm.arn)),
        (
            text("AlarmConfigurationUpdatedTimestamp"),
            timestamp(alarm.created_at),
        ),
        (text("ActionsEnabled"), Value::Bool(true)),
        (text("OKActions"), empty()),
        (text("AlarmActions"), empty()),
        (text("InsufficientDataActions"), empty()),
        (text("StateValue"), text(status.state.as_str())),
        (text("StateReason"), text(status.reason)),
        (text("StateUpdatedTimestamp"), timestamp(status.since)),
        (text("StateTransitionedTimestamp"), timestamp(status.since)),
        (text("MetricName"), text("Breaching")),
        (text("Namespace"), text("FleetSim")),
        (text("Statistic"), text("Maximum")),
        (text("Dimensions"), empty()),
        (text("Period"), Value::Integer(60.into())),
        (text("EvaluationPeriods"), Value::Integer(1.into())),
        (text("DatapointsToAlarm"), Value::Integer(1.into())),
        (text("Threshold"), Value::Float(1.0)),
        (
            text("ComparisonOperator"),
            text("GreaterThanOrEqualToThreshold"),
        ),
        (text("TreatMissingData"), text("missing")),
    ])
}

fn describe_alarms(
    world: &World,
    ctx: Ctx<'_>,
    req: DescribeAlarmsRequest,
) -> Result<Vec<u8>, AwsError> {
    let size = match req.max_records {
        None => DEFAULT_PAGE,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(n) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'maxRecords' failed to satisfy constraint: Member must have value between 1 and 100"
            )));
        }
    };
    if let Some(names) = &req.alarm_names {
        if names.len() > 100 {
            return Err(validation(
                "1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to 100",
            ));
        }
        for n in names {
            check_name("alarmNames", n)?;
        }
    }
    if let Some(p) = &req.alarm_name_prefix {
        check_name("alarmNamePrefix", p)?;
    }
    if req.alarm_names.is_some() && req.alarm_name_prefix.is_some() {
        return Err(AwsError::bad(
            "InvalidParameterCombination",
            "AlarmNames and AlarmNamePrefix cannot be specified together.",
        ));
    }
    let composite_only =
        req.children_of_alarm_name.is_some() || req.parents_of_alarm_name.is_some();
    if composite_only
        && (req.alarm_names.is_some()
            || req.alarm_name_prefix.is_some()
            || req.state_value.is_some()
            || req.action_prefix.is_some())
    {
        return Err(AwsError::bad(
            "InvalidParameterCombination",
            "With ChildrenOfAlarmName or ParentsOfAlarmName, only MaxRecords and NextToken may be given.",
        ));
    }
    let state = match req.state_value.as_deref() {
        None => None,
        Some(s) => Some(AlarmState::parse(s).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value '{s}' at 'stateValue' failed to satisfy constraint: Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]"
            ))
        })?),
    };
    let (mut metric, mut composite) = (true, false);
    if let Some(types) = &req.alarm_types {
        metric = false;
        for t in types {
            match t.as_str() {
                "MetricAlarm" => metric = true,
                "CompositeAlarm" => composite = true,
                other => {
                    return Err(validation(format!(
                        "1 validation error detected: Value '{other}' at 'alarmTypes' failed to satisfy constraint: Member must satisfy enum value set: [CompositeAlarm, MetricAlarm]"
                    )));
                }
            }
        }
    }
    let names_key = req.alarm_names.as_ref().map(|n| n.join("\n"));
    let scope = hash_parts(
        world.seed,
        &[
            ctx.account,
            ctx.region,
            "DescribeAlarms",
            req.alarm_name_prefix.as_deref().unwrap_or(""),
            req.state_value.as_deref().unwrap_or(""),
            names_key.as_deref().unwrap_or(""),
        ],
    );
    let after = req
        .next_token
        .as_deref()
        .map(|t| decode_token(t, scope))
        .transpose()?;
    let alarms = world
        .alarms
        .get(ctx.account)
        .and_then(|r| r.get(ctx.region));
    // Composite alarms are not modelled; a listing by parents or children, or by an action
    // (no alarm has actions), finds none.
    let searchable = metric && !composite_only && req.action_prefix.is_none();
    let candidates = alarms
        .filter(|_| searchable)
        .into_iter()
        .flat_map(|m| match after.as_deref() {
            Some(last) => m
                .range::<str, _>((std::ops::Bound::Excluded(last), std::ops::Bound::Unbounded))
                .map(|(_, a)| a)
                .collect::<Vec<_>>(),
            None => m.values().collect(),
        })
        .filter(|a| {
            req.alarm_names
                .as_ref()
                .is_none_or(|names| names.contains(&a.name))
        })
        .filter(|a| {
            req.alarm_name_prefix
                .as_deref()
                .is_none_or(|p| a.name.starts_with(p))
        })
        .filter(|a| state.is_none_or(|s| a.status_at(ctx.now).state == s));
    let mut page: Vec<&Alarm> = Vec::new();
    let mut more = false;
    for a in candidates {
        if page.len() == size {
            more = true;
            break;
        }
        page.push(a);
    }
    let next_token = if more {
        page.last().map(|a| encode_token(scope, &a.name))
    } else {
        None
    };
    let mut out = Vec::new();
    if metric {
        out.push((
            text("MetricAlarms"),
            Value::Array(page.iter().map(|a| metric_alarm(a, ctx.now)).collect()),
        ));
    }
    if composite {
        out.push((text("CompositeAlarms"), Value::Array(Vec::new())));
    }
    if let Some(t) = next_token {
        out.push((text("NextToken"), text(&t)));
    }
    Ok(encode(&Value::Map(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let spec = crate::FleetSpec::from_yaml_str(
            r#"
seed: 3
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    alarms:
      - {name: b-block, states: [{at_minute: 0, state: OK}, {at_minute: 30, state: ALARM, reason: "too many 5xx"}]}
      - {name: a-other}
"#,
        )
        .expect("valid");
        crate::world::build(&spec, 1_800_000_000_000)
    }

    const CTX: Ctx<'static> = Ctx {
        account: "111111111111",
        region: "eu-west-1",
        now: 1_800_000_000_000 + 31 * 60_000,
    };

    fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
        let Value::Map(m) = v else { return None };
        m.iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    }

    fn call(body: &Value) -> Result<Value, AwsError> {
        let out = handle(&world(), CTX, "DescribeAlarms", &encode(body))?;
        Ok(ciborium::from_reader(out.as_slice()).expect("cbor"))
    }

    #[test]
    fn lists_by_name_with_state_and_pages_by_name() {
        let out = call(&Value::Map(vec![(
            text("MaxRecords"),
            Value::Integer(1.into()),
        )]))
        .expect("page 1");
        let alarms = get(&out, "MetricAlarms")
            .and_then(Value::as_array)
            .expect("list");
        assert_eq!(
            get(&alarms[0], "AlarmName").and_then(Value::as_text),
            Some("a-other")
        );
        let token = get(&out, "NextToken")
            .and_then(Value::as_text)
            .expect("token");
        let out = call(&Value::Map(vec![
            (text("MaxRecords"), Value::Integer(1.into())),
            (text("NextToken"), text(token)),
        ]))
        .expect("page 2");
        let alarms = get(&out, "MetricAlarms")
            .and_then(Value::as_array)
            .expect("list");
        let b = &alarms[0];
        assert_eq!(get(b, "StateValue").and_then(Value::as_text), Some("ALARM"));
        assert_eq!(
            get(b, "StateReason").and_then(Value::as_text),
            Some("too many 5xx")
        );
        assert_eq!(
            get(b, "StateUpdatedTimestamp"),
            Some(&Value::Tag(
                1,
                Box::new(Value::Integer((1_800_000_000 + 1800).into()))
            ))
        );
        assert!(get(&out, "NextToken").is_none());
        assert!(get(&out, "CompositeAlarms").is_none());
        let e = call(&Value::Map(vec![(text("NextToken"), text("zz"))])).expect_err("token");
        assert_eq!(e.code, "InvalidNextToken");
    }

    #[test]
    fn bad_input_is_refused_in_the_query_codes() {
        for (body, code) in [
            (
                vec![(text("MaxRecords"), Value::Integer(101.into()))],
                "ValidationError",
            ),
            (vec![(text("StateValue"), text("RED"))], "ValidationError"),
            (
                vec![(text("AlarmTypes"), Value::Array(vec![text("X")]))],
                "ValidationError",
            ),
            (
                vec![
                    (text("AlarmNames"), Value::Array(vec![text("a")])),
                    (text("AlarmNamePrefix"), text("a")),
                ],
                "InvalidParameterCombination",
            ),
            (
                vec![(text("MaxRecords"), text("x"))],
                "SerializationException",
            ),
        ] {
            assert_eq!(call(&Value::Map(body)).expect_err("refused").code, code);
        }
        let e = handle(&world(), CTX, "DescribeAlarms", b"\xff\x00").expect_err("garbage");
        assert_eq!(e.code, "SerializationException");
        assert_eq!(
            wire_error(AwsError::access_denied("no")).code,
            "AccessDenied"
        );
        assert_eq!(wire_error(AwsError::server_error()).status.as_u16(), 500);
        assert_eq!(
            query_error(&wire_error(AwsError::throttling())),
            "Throttling;Sender"
        );
        assert_eq!(
            query_error(&wire_error(AwsError::server_error())),
            "InternalFailure;Receiver"
        );
    }

    #[test]
    fn resources_name_each_alarm_or_all_of_them() {
        let body = encode(&Value::Map(vec![(
            text("AlarmNames"),
            Value::Array(vec![text("x"), text("y")]),
        )]));
        assert_eq!(
            resources("111111111111", "eu-west-1", &body),
            [
                "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:x",
                "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:y"
            ]
        );
        assert_eq!(
            resources("111111111111", "eu-west-1", b""),
            ["arn:aws:cloudwatch:eu-west-1:111111111111:alarm:*"]
        );
    }

    proptest::proptest! {
        /// Any bytes answer a result or a 4xx error, never a panic.
        #[test]
        fn any_body_gets_an_answer_or_a_client_error(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Err(e) = handle(&world(), CTX, "DescribeAlarms", &body) {
                proptest::prop_assert!(e.status.is_client_error());
            }
        }
    }
}
