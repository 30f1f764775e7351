//! The Lambda runtime glue every function's `main` shares. A handler's [`HandlerError`]
//! becomes the runtime's [`Diagnostic`], whose `errorType` is what the state machine's Retry
//! and Catch rules match (docs/design.md 3.8).

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;

use crate::HandlerError;

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.error_type.as_str().to_owned(),
            error_message: e.message,
        }
    }
}

/// Serves `handler` (raw JSON event in, serializable output or [`HandlerError`] out) on the
/// Lambda runtime until the runtime stops.
pub async fn serve<H, F, T>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(serde_json::Value) -> F,
    F: Future<Output = Result<T, HandlerError>>,
    T: Serialize,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler(event.payload)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorType;

    #[test]
    fn a_handler_error_keeps_its_type_name_and_message() {
        let d = Diagnostic::from(HandlerError::new(ErrorType::Paused, "the night is paused"));
        assert_eq!(d.error_type, "Paused");
        assert_eq!(d.error_message, "the night is paused");
    }
}
