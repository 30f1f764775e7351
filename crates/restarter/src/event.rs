//! The function's events and outputs: their JSON shapes, the `mode` that picks the event, and
//! the check of the service ARN an event names.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use restart_core::HandlerError;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::outcome::NightState;

/// The function's input, by `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start(StartEvent),
    Poll(PollEvent),
    Service(ServiceEvent),
    Failed(FailedEvent),
    Close(CloseEvent),
}

/// `close`: the night's last step, once every batch has ended (done, halted or failed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseEvent {
    #[serde(deserialize_with = "restart_core::window::deserialize_night")]
    pub night: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartEvent {
    #[serde(deserialize_with = "restart_core::window::deserialize_night")]
    pub night: NaiveDate,
    pub batch: u32,
    /// On-call's explicit choice to start restarts after the window's end (a manual batch).
    #[serde(default)]
    pub outside_window: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollEvent {
    #[serde(deserialize_with = "restart_core::window::deserialize_night")]
    pub night: NaiveDate,
    pub batch: Option<u32>,
    pub service_arn: Option<ServiceArn>,
    /// See [`StartEvent::outside_window`].
    #[serde(default)]
    pub outside_window: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEvent {
    pub service_arn: ServiceArn,
    #[serde(default)]
    pub force: bool,
}

/// `failed`: the state machine tells that a batch of the night ended in an error (its start or
/// a poll failed after the retries), so that the failure is logged and counted once per batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedEvent {
    #[serde(deserialize_with = "restart_core::window::deserialize_night")]
    pub night: NaiveDate,
    pub batch: u32,
    /// The error the state machine caught, as it caught it.
    pub error: CaughtError,
}

/// An error caught by a Step Functions `Catch` (`{"Error", "Cause"}`). Either may be missing:
/// the state machine passes the whole object, so that a missing field never fails the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

impl Event {
    /// Reads `mode`, then the mode's fields, so that an error names the field at fault.
    pub fn parse(event: serde_json::Value) -> Result<Self, HandlerError> {
        let serde_json::Value::Object(mut fields) = event else {
            return Err(HandlerError::invalid_input(
                "the event is not valid: expected an object with `mode`",
            ));
        };
        let mode = fields.remove("mode");
        let rest = serde_json::Value::Object(fields);
        match mode.as_ref().and_then(|m| m.as_str()) {
            Some("start") => HandlerError::parse_event(rest).map(Self::Start),
            Some("poll") => HandlerError::parse_event(rest).map(Self::Poll),
            Some("service") => HandlerError::parse_event(rest).map(Self::Service),
            Some("failed") => HandlerError::parse_event(rest).map(Self::Failed),
            Some("close") => HandlerError::parse_event(rest).map(Self::Close),
            _ => Err(HandlerError::invalid_input(format!(
                "the event is not valid: mode: expected one of `start`, `poll`, `service`, \
                 `failed`, `close`, got {}",
                mode.map_or("nothing".to_owned(), |m| m.to_string())
            ))),
        }
    }
}

/// What `start` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutput {
    pub night: NaiveDate,
    pub batch: u32,
    /// Restarts started by this invocation.
    pub started: u64,
    /// Left planned for the next poll: a full cluster, or the time budget spent.
    pub deferred: u64,
    /// Found ineligible in the live check, recorded skipped with the reason.
    pub skipped: u64,
    /// Refused by ECS when started, recorded failed or vanished.
    pub refused: u64,
    pub dry_run: bool,
    /// How long the state machine should wait before the first poll.
    pub wait_seconds: u64,
}

/// What `poll` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOutput {
    pub night: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_arn: Option<ServiceArn>,
    /// Nothing planned or in flight any more.
    pub done: bool,
    /// Planned or in flight.
    pub pending: u64,
    /// Records per state, after this poll.
    pub counts: BTreeMap<NightState, u64>,
    pub wait_seconds: u64,
}

/// What `service` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOutput {
    pub night: NaiveDate,
    pub service_arn: ServiceArn,
    pub state: NightState,
    pub deployment_id: Option<String>,
    pub dry_run: bool,
    pub wait_seconds: u64,
}

/// What `failed` recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedOutput {
    pub night: NaiveDate,
    pub batch: u32,
    /// The caught error's name (`unknown` when the state machine gave none).
    pub error: String,
}

/// The function's output, by mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Start(StartOutput),
    Poll(PollOutput),
    Service(ServiceOutput),
    Failed(FailedOutput),
}

/// The service an event's ARN names: an old-format ARN, without its cluster, is refused.
pub(crate) fn service_id(arn: &ServiceArn) -> Result<ServiceId, HandlerError> {
    ServiceId::from_arn(arn).ok_or_else(|| {
        HandlerError::invalid_input(format!(
            "{arn} is an old-format service ARN without its cluster name: opt in to the long \
             ARN format (needs_long_arn) before it can be restarted"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use restart_core::ErrorType;
    use serde_json::json;

    fn failed(event: serde_json::Value) -> Result<Event, HandlerError> {
        Event::parse(event)
    }

    #[test]
    fn a_failed_batch_is_read_with_the_error_the_state_machine_caught() {
        let e = failed(json!({"mode": "failed", "night": "2026-11-22", "batch": 3,
                              "error": {"Error": "Unexpected", "Cause": "boom"}}))
        .unwrap();
        assert_eq!(
            e,
            Event::Failed(FailedEvent {
                night: "2026-11-22".parse().unwrap(),
                batch: 3,
                error: CaughtError {
                    error: Some("Unexpected".into()),
                    cause: Some("boom".into()),
                },
            })
        );
    }

    #[test]
    fn a_bad_failed_event_is_invalid_input_naming_the_field() {
        for (event, field) in [
            (
                json!({"mode": "failed", "night": "2026-11-22", "batch": 3}),
                "error",
            ),
            (
                json!({"mode": "failed", "night": "2026-11-22", "batch": -1, "error": {}}),
                "batch",
            ),
            (
                json!({"mode": "failed", "night": "22/11", "batch": 1, "error": {}}),
                "night",
            ),
            (
                json!({"mode": "failed", "night": "2026-11-22", "batch": 1, "error": "x"}),
                "error",
            ),
            (
                json!({"mode": "failed", "night": "2026-11-22", "batch": 1, "error": {"Error": 5}}),
                "error.Error",
            ),
            (
                json!({"mode": "failed", "night": "2026-11-22", "batch": 1, "error": {},
                       "extra": true}),
                "extra",
            ),
        ] {
            let err = failed(event.clone()).unwrap_err();
            assert_eq!(err.error_type, ErrorType::InvalidInput, "{event}");
            assert!(err.message.contains(field), "{event}: {}", err.message);
        }
        let err = failed(json!({"mode": "fail"})).unwrap_err();
        assert!(err.message.contains("`failed`"), "{}", err.message);
    }
}
