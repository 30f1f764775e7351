//! What the adapters share: classifying SDK errors, converting SDK times.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use crate::ports::{ControlError, DiscoveryError};

/// Error codes AWS uses for throttling (DynamoDB's included).
pub(crate) const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Error codes that mean the caller may not do this.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// The error code of an SDK error, when the service answered with one.
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// An SDK error in words: a service's answer as `Code: message` (an unmodeled error's
/// `DisplayErrorContext` also prints the whole raw HTTP response, kilobytes that end up in the
/// table, the state machine's payloads and the summary), anything else (no answer, timeout,
/// bad answer) with its whole chain.
pub fn sdk_message<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(e) = err
        && let Some(code) = e.err().code()
    {
        return match e.err().message() {
            Some(m) => format!("{code}: {m}"),
            None => code.to_owned(),
        };
    }
    DisplayErrorContext(err).to_string()
}

/// Classifies an SDK error of a discovery call; `what` says which call, for the message.
pub fn discovery_error<E, R>(what: &str, err: &SdkError<E, R>) -> DiscoveryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = format!("{what}: {}", sdk_message(err));
    match error_code(err) {
        Some(code) if THROTTLING.contains(&code) => DiscoveryError::Throttled(message),
        Some(code) if DENIED.contains(&code) => DiscoveryError::AccessDenied(message),
        Some(_) => DiscoveryError::Unexpected(message),
        None => DiscoveryError::Transient(message),
    }
}

/// Error codes that mean the service or its cluster is gone.
const NOT_FOUND: &[&str] = &[
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterNotFoundException",
    "ResourceNotFoundException",
];

/// Error codes with which ECS refuses a request it understood.
const REFUSED: &[&str] = &[
    "InvalidParameterException",
    "PlatformUnknownException",
    "PlatformTaskDefinitionIncompatibilityException",
    "UnsupportedFeatureException",
];

/// Classifies an SDK error of a call that acts on a service; `what` says which call.
pub fn control_error<E, R>(what: &str, err: &SdkError<E, R>) -> ControlError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = format!("{what}: {}", sdk_message(err));
    match error_code(err) {
        Some(code) if NOT_FOUND.contains(&code) => ControlError::NotFound(message),
        Some(code) if REFUSED.contains(&code) => ControlError::Refused(message),
        _ => discovery_error(what, err).into(),
    }
}

/// An SDK timestamp as a chrono one.
pub fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
