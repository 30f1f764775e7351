//! What the adapters share: classifying SDK errors, converting SDK times.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use restart_core::ports::{ControlError, DiscoveryError};

/// Error codes AWS uses for throttling (DynamoDB's and KMS's included).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "KmsThrottlingException",
    "KMSThrottlingException",
    "KMSThrottling",
];

/// Error codes of a failure on the service's side, whatever the HTTP status says.
const SERVER_SIDE: &[&str] = &[
    "ServerException",
    "InternalFailure",
    "InternalError",
    "InternalErrorException",
    "InternalServerError",
    "InternalServerException",
    "InternalServiceError",
    "InternalServiceErrorException",
    "ServiceException",
    "ServiceFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "TransactionInProgressException",
    // DynamoDB: a plain write (PutItem, UpdateItem, DeleteItem) on an item that a transaction
    // is writing at that moment. The item is busy, not the request wrong: sent again it goes
    // through. The SDK's retry classifier does not retry it.
    "TransactionConflictException",
];

/// Error codes that say the credentials have expired: the session is renewed and the call
/// tried once more.
const EXPIRED: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired"];

/// Error codes that say the caller may not do this, or is not known to the account: the
/// account (or, in the hub, the deployment) is unreachable until someone fixes permissions.
fn is_denied(code: &str) -> bool {
    code.starts_with("AccessDenied")
        || code.starts_with("UnrecognizedClient")
        || code.starts_with("AuthorizationError")
        || code.starts_with("KMSAccessDenied")
        || code.starts_with("KmsAccessDenied")
        || matches!(
            code,
            "InvalidClientTokenId"
                | "UnauthorizedOperation"
                | "AuthFailure"
                | "SignatureDoesNotMatch"
                | "InvalidSignatureException"
                | "MissingAuthenticationToken"
                | "MissingAuthenticationTokenException"
                | "IncompleteSignature"
                | "OptInRequired"
        )
}

/// What a failed AWS call means for the caller: the one classification every adapter starts
/// from (docs/design.md, "Errors"). Adapters then add the few codes that mean something of their
/// own (a service not found, a request refused, a conditional write that lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttled (an error code or HTTP 429): retry with a longer backoff.
    Throttled,
    /// A failure on AWS's side (5xx or a server error code), no answer at all (connection
    /// refused, reset, timed out) or an answer that could not be read: retry with backoff; never
    /// a verdict on the account.
    Transient,
    /// The caller may not do this (denied, unknown credentials): the account is unreachable.
    Denied,
    /// The session's credentials expired: renew them once and try again.
    Expired,
    /// The service answered with an error this classification has no rule for: the caller
    /// either knows the code or reports it as unexpected, with its code and message.
    Other,
}

impl ErrorClass {
    /// The class of an error code and HTTP status (either may be unknown).
    pub fn of(code: Option<&str>, status: Option<u16>) -> Self {
        match code {
            Some(c) if THROTTLING.contains(&c) => Self::Throttled,
            Some(c) if EXPIRED.contains(&c) => Self::Expired,
            Some(c) if is_denied(c) => Self::Denied,
            Some(c) if SERVER_SIDE.contains(&c) => Self::Transient,
            _ => match status {
                Some(429) => Self::Throttled,
                Some(s) if s >= 500 => Self::Transient,
                Some(401 | 403) if code.is_none() => Self::Denied,
                Some(_) => Self::Other,
                None if code.is_some() => Self::Other,
                None => Self::Transient,
            },
        }
    }

    /// The class of an SDK error: a service's answer by its code and status; no answer, a
    /// timeout or an unreadable answer is transient; a request that could not even be built
    /// is `Other` (a bug or a bad setting, which retrying does not mend).
    pub fn of_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata,
    {
        match err {
            SdkError::ServiceError(e) => Self::of(e.err().code(), Some(e.raw().status().as_u16())),
            SdkError::ConstructionFailure(_) => Self::Other,
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => Self::Transient,
            _ => Self::Transient,
        }
    }
}

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

/// [`sdk_message`] after the call's name (`what`), when there is one.
fn naming<E>(what: &str, err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if what.is_empty() {
        sdk_message(err)
    } else {
        format!("{what}: {}", sdk_message(err))
    }
}

/// Classifies an SDK error of a call into a member account; `what` says which call.
pub fn discovery_error<E>(what: &str, err: &SdkError<E, HttpResponse>) -> DiscoveryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = naming(what, err);
    match ErrorClass::of_sdk(err) {
        ErrorClass::Throttled => DiscoveryError::Throttled(message),
        ErrorClass::Transient => DiscoveryError::Transient(message),
        // Still expired after the session was renewed (the adapters renew once): the account
        // cannot be worked in.
        ErrorClass::Denied | ErrorClass::Expired => DiscoveryError::AccessDenied(message),
        ErrorClass::Other => DiscoveryError::Unexpected(message),
    }
}

/// Error codes that mean the service or its cluster is gone.
const NOT_FOUND: &[&str] = &[
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterNotFoundException",
    "ResourceNotFoundException",
];

/// Error codes with which ECS refuses a request it understood: retrying the same request
/// will not help.
const REFUSED: &[&str] = &[
    "ClientException",
    "InvalidParameterException",
    "PlatformUnknownException",
    "PlatformTaskDefinitionIncompatibilityException",
    "UnsupportedFeatureException",
];

/// Classifies an SDK error of a call that acts on a service; `what` says which call.
pub fn control_error<E>(what: &str, err: &SdkError<E, HttpResponse>) -> ControlError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = naming(what, err);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_classification_by_code_then_status() {
        let of = ErrorClass::of;
        for code in [
            "ThrottlingException",
            "Throttling",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
        ] {
            assert_eq!(of(Some(code), Some(400)), ErrorClass::Throttled, "{code}");
        }
        assert_eq!(of(None, Some(429)), ErrorClass::Throttled);
        for code in [
            "ServerException",
            "InternalFailure",
            "InternalServerError",
            "ServiceUnavailable",
            "ServiceUnavailableException",
        ] {
            assert_eq!(of(Some(code), Some(500)), ErrorClass::Transient, "{code}");
            // A server-side code is transient whatever the status says.
            assert_eq!(of(Some(code), Some(400)), ErrorClass::Transient, "{code}");
        }
        // A plain write racing a transaction on its item (a tally item under a claim) is
        // busy for a moment, never a failure of the batch.
        assert_eq!(
            of(Some("TransactionConflictException"), Some(400)),
            ErrorClass::Transient
        );
        assert_eq!(of(Some("SomethingNew"), Some(503)), ErrorClass::Transient);
        assert_eq!(of(None, Some(502)), ErrorClass::Transient);
        assert_eq!(of(None, None), ErrorClass::Transient);
        for code in [
            "AccessDenied",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "UnrecognizedClient",
            "InvalidClientTokenId",
            "AuthorizationError",
        ] {
            assert_eq!(of(Some(code), Some(403)), ErrorClass::Denied, "{code}");
        }
        assert_eq!(of(None, Some(403)), ErrorClass::Denied);
        for code in ["ExpiredToken", "ExpiredTokenException"] {
            assert_eq!(of(Some(code), Some(400)), ErrorClass::Expired, "{code}");
        }
        for code in [
            "ClientException",
            "InvalidParameterException",
            "ValidationException",
            "ConditionalCheckFailedException",
            "Ünknöwn",
        ] {
            assert_eq!(of(Some(code), Some(400)), ErrorClass::Other, "{code}");
        }
    }

    proptest::proptest! {
        /// Any code and status is classified, and a 5xx without a known code is never fatal.
        #[test]
        fn any_code_and_status_is_classified(code in proptest::option::of("\\PC{0,40}"), status in proptest::option::of(100u16..600)) {
            let class = ErrorClass::of(code.as_deref(), status);
            if code.is_none() && status.is_some_and(|s| s >= 500) {
                proptest::prop_assert_eq!(class, ErrorClass::Transient);
            }
        }
    }
}
