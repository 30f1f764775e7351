//! The Lambda error contract (docs/design.md 3.8).
//!
//! Every handler fails with a [`HandlerError`] whose [`ErrorType`] name is what the Lambda
//! runtime reports as `errorType`, and what the state machine's Retry and Catch rules match.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The caller's decision, as the state machine names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorType {
    /// A passing failure (network, 5xx): retry with backoff.
    Transient,
    /// An AWS API throttled us beyond the SDK's own retries: retry with longer backoff.
    Throttled,
    /// The event is wrong (bad JSON, unknown batch, malformed ARN): do not retry.
    InvalidInput,
    /// The deployment is wrong (configuration, permissions): do not retry, page on-call.
    Misconfigured,
    /// The kill switch is on: wait and check again.
    Paused,
    /// The night's circuit breaker tripped: stop starting restarts.
    Halted,
    /// A bug or an answer we do not understand.
    Unexpected,
}

impl ErrorType {
    pub const ALL: [ErrorType; 7] = [
        Self::Transient,
        Self::Throttled,
        Self::InvalidInput,
        Self::Misconfigured,
        Self::Paused,
        Self::Halted,
        Self::Unexpected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "Transient",
            Self::Throttled => "Throttled",
            Self::InvalidInput => "InvalidInput",
            Self::Misconfigured => "Misconfigured",
            Self::Paused => "Paused",
            Self::Halted => "Halted",
            Self::Unexpected => "Unexpected",
        }
    }

    /// Whether the state machine retries it.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled)
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handler's failure: its type and a message that says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{error_type}: {message}")]
pub struct HandlerError {
    pub error_type: ErrorType,
    pub message: String,
}

impl HandlerError {
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidInput, message)
    }

    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Misconfigured, message)
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Transient, message)
    }

    pub fn unexpected(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Unexpected, message)
    }

    /// Parses a handler's JSON event, or says what was wrong with it as `InvalidInput`.
    pub fn parse_event<T: serde::de::DeserializeOwned>(
        event: serde_json::Value,
    ) -> Result<T, HandlerError> {
        serde_path_to_error::deserialize(event).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            HandlerError::invalid_input(if path == "." {
                format!("the event is not valid: {inner}")
            } else {
                format!("the event is not valid: {path}: {inner}")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_state_machine_contract() {
        let names: Vec<&str> = ErrorType::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "Transient",
                "Throttled",
                "InvalidInput",
                "Misconfigured",
                "Paused",
                "Halted",
                "Unexpected"
            ]
        );
        for e in ErrorType::ALL {
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{e}\""));
        }
        assert!(ErrorType::Throttled.is_retryable());
        assert!(!ErrorType::InvalidInput.is_retryable());
    }

    #[test]
    fn a_bad_event_is_invalid_input_naming_the_problem() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Event {
            night: chrono::NaiveDate,
        }
        let err = HandlerError::parse_event::<Event>(serde_json::json!({"night": "22/11/2026"}))
            .unwrap_err();
        assert_eq!(err.error_type, ErrorType::InvalidInput);
        assert_eq!(
            err.message,
            "the event is not valid: night: input contains invalid characters"
        );
        let err = HandlerError::parse_event::<Event>(serde_json::json!({"nigth": "2026-11-22"}))
            .unwrap_err();
        assert!(
            err.message.contains("unknown field `nigth`"),
            "{}",
            err.message
        );
        assert_eq!(err.to_string(), format!("InvalidInput: {}", err.message));
    }
}
