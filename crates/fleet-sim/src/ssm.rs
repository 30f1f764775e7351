//! AWS Systems Manager over awsJson1_1 (`X-Amz-Target: AmazonSSM.<Action>`): GetCalendarState
//! over the hub account's change calendars.
//!
//! Only the hub account has calendars: a member account asking gets `InvalidDocument`, as for
//! any calendar that does not exist in the caller's account and region. Errors are
//! `{"__type": CODE, "Message": ...}`, HTTP 400.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{MAX_MILLIS, millis_to_utc};
use crate::ecs::Ctx;
use crate::error::{AwsError, parse_body};
use crate::schedule::{Calendar, combined_state, document_arn};
use crate::world::{Millis, World};

/// The `X-Amz-Target` prefix of SSM.
pub const TARGET_PREFIX: &str = "AmazonSSM.";

/// The actions the simulator implements.
pub const ACTIONS: &[&str] = &["GetCalendarState"];

/// Most calendars one request may name.
const MAX_CALENDARS: usize = 10;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct GetCalendarStateRequest {
    calendar_names: Option<Vec<String>>,
    at_time: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetCalendarStateResponse {
    state: &'static str,
    at_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_transition_time: Option<String>,
}

/// The JSON error body SSM answers: `{"__type": CODE, "Message": ...}`.
pub fn json_body(e: &AwsError) -> String {
    serde_json::json!({ "__type": e.code, "Message": e.message }).to_string()
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::bad("ValidationException", message)
}

fn invalid_document(name: &str) -> AwsError {
    AwsError::bad(
        "InvalidDocument",
        format!("Document {name} does not exist or is not a change calendar available to you."),
    )
}

/// The IAM resources a GetCalendarState asks for (action `ssm:GetCalendarState`): each
/// calendar's document ARN (`arn:aws:ssm:REGION:ACCOUNT:document/NAME`, or the ARN given);
/// `*` when it names none.
pub fn resources(account: &str, region: &str, body: &[u8]) -> Vec<String> {
    let names = parse_body::<GetCalendarStateRequest>(body)
        .ok()
        .and_then(|r| r.calendar_names)
        .unwrap_or_default();
    if names.is_empty() {
        return vec!["*".to_owned()];
    }
    names
        .iter()
        .map(|n| {
            if n.starts_with("arn:") {
                n.clone()
            } else {
                document_arn(region, account, n)
            }
        })
        .collect()
}

/// Handles one SSM action; returns the JSON body.
pub fn handle(world: &World, ctx: Ctx<'_>, action: &str, body: &[u8]) -> Result<String, AwsError> {
    match action {
        "GetCalendarState" => get_calendar_state(world, ctx, parse_body(body)?),
        other => Err(AwsError::bad(
            "UnknownOperationException",
            format!("Operation {other} is not supported by fleet-sim."),
        )),
    }
}

/// `AtTime`: RFC 3339 (with `Z` or an offset), or a date and time without zone, read as UTC.
fn parse_at_time(s: &str) -> Option<Millis> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(|n| n.and_utc())
        })?;
    let ms = t.timestamp_millis();
    (0..=MAX_MILLIS).contains(&ms).then_some(ms)
}

fn iso(ms: Millis) -> String {
    millis_to_utc(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The calendar a name or ARN names, in the caller's account and region.
fn find<'w>(world: &'w World, ctx: Ctx<'_>, id: &str) -> Result<&'w Calendar, AwsError> {
    let name = match id.strip_prefix("arn:") {
        None => id,
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            match parts.as_slice() {
                [_, "ssm", region, account, resource]
                    if *region == ctx.region && *account == ctx.account =>
                {
                    resource
                        .strip_prefix("document/")
                        .ok_or_else(|| invalid_document(id))?
                }
                _ => return Err(invalid_document(id)),
            }
        }
    };
    if ctx.account != world.hub_account {
        return Err(invalid_document(id));
    }
    world
        .calendars
        .get(ctx.region)
        .and_then(|c| c.get(name))
        .ok_or_else(|| invalid_document(id))
}

fn get_calendar_state(
    world: &World,
    ctx: Ctx<'_>,
    req: GetCalendarStateRequest,
) -> Result<String, AwsError> {
    let names = req.calendar_names.unwrap_or_default();
    if names.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'calendarNames' failed to satisfy constraint: Member must not be null",
        ));
    }
    if names.len() > MAX_CALENDARS {
        return Err(validation(format!(
            "1 validation error detected: Value at 'calendarNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_CALENDARS}"
        )));
    }
    let at = match req.at_time.as_deref() {
        None => ctx.now,
        Some(s) => parse_at_time(s).ok_or_else(|| {
            validation(format!(
                "AtTime {s:?} is not a valid ISO 8601 date and time (e.g. 2026-11-22T01:30:00Z)."
            ))
        })?,
    };
    let calendars = names
        .iter()
        .map(|n| find(world, ctx, n))
        .collect::<Result<Vec<_>, _>>()?;
    let (open, next) = combined_state(&calendars, at);
    let out = GetCalendarStateResponse {
        state: if open { "OPEN" } else { "CLOSED" },
        at_time: iso(at),
        next_transition_time: next.map(iso),
    };
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "{}".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Millis = 1_800_000_000_000;

    fn world() -> World {
        let spec = crate::FleetSpec::from_yaml_str(
            r#"
accounts: [{id: "111111111111", regions: [eu-west-1]}]
calendars:
  - {name: freeze, events: [{summary: release, from_minute: 10, until_minute: 20}]}
  - {name: window, default: DEFAULT_CLOSED, events: [{from_minute: 0, until_minute: 60}]}
"#,
        )
        .expect("valid");
        crate::world::build(&spec, START)
    }

    fn ctx(account: &'static str, minute: i64) -> Ctx<'static> {
        Ctx {
            account,
            region: "us-east-1",
            now: START + minute * 60_000,
        }
    }

    fn state(names: &str, c: Ctx<'_>) -> Result<serde_json::Value, AwsError> {
        let body = format!(r#"{{"CalendarNames": {names}}}"#);
        handle(&world(), c, "GetCalendarState", body.as_bytes())
            .map(|s| serde_json::from_str(&s).expect("json"))
    }

    #[test]
    fn answers_the_state_and_the_next_transition() {
        let hub = "000000000000";
        let v = state(r#"["freeze"]"#, ctx(hub, 0)).expect("state");
        assert_eq!(v["State"], "OPEN");
        assert_eq!(v["AtTime"], iso(START));
        assert_eq!(v["NextTransitionTime"], iso(START + 600_000));
        let v = state(
            r#"["arn:aws:ssm:us-east-1:000000000000:document/freeze", "window"]"#,
            ctx(hub, 12),
        )
        .expect("state");
        assert_eq!(v["State"], "CLOSED");
        assert_eq!(v["NextTransitionTime"], iso(START + 20 * 60_000));
        let v = state(r#"["window"]"#, ctx(hub, 90)).expect("state");
        assert_eq!(v["State"], "CLOSED");
        assert!(v.get("NextTransitionTime").is_none());
    }

    #[test]
    fn missing_foreign_and_bad_requests_are_refused() {
        let hub = "000000000000";
        for (names, c, code) in [
            (r#"["nope"]"#, ctx(hub, 0), "InvalidDocument"),
            (r#"["freeze"]"#, ctx("111111111111", 0), "InvalidDocument"),
            (
                r#"["arn:aws:ssm:eu-west-1:000000000000:document/freeze"]"#,
                ctx(hub, 0),
                "InvalidDocument",
            ),
            ("[]", ctx(hub, 0), "ValidationException"),
            ("null", ctx(hub, 0), "ValidationException"),
            ("7", ctx(hub, 0), "SerializationException"),
        ] {
            assert_eq!(state(names, c).expect_err(names).code, code, "{names}");
        }
        let e = handle(
            &world(),
            ctx(hub, 0),
            "GetCalendarState",
            br#"{"CalendarNames": ["freeze"], "AtTime": "yesterday"}"#,
        )
        .expect_err("bad time");
        assert_eq!(e.code, "ValidationException");
        let utc = parse_at_time("2027-01-15T07:00:00Z");
        assert!(utc.is_some());
        assert_eq!(parse_at_time("2027-01-15T08:00:00+01:00"), utc);
        assert_eq!(parse_at_time("2027-01-15T07:00:00"), utc);
        assert_eq!(parse_at_time("1969-12-31T23:59:59Z"), None);
    }
}
