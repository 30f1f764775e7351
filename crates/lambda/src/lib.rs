//! The Lambda runtime glue every function's `main` shares: [`serve`] runs a handler on the
//! runtime, a handler's [`HandlerError`] becomes the runtime's [`Diagnostic`] (its `errorType`
//! is what the state machine's Retry and Catch rules match, docs/design.md 3.8),
//! [`init_tracing`] sets up the logs (and X-Ray tracing when Lambda runs its daemon) and
//! [`start`] does what every `main` does first.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use tracing::Instrument;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use aws_types::SdkConfig;
/// The runtime's error, what a function's `main` returns.
pub use lambda_runtime::Error;
use restart_core::{Config, HandlerError};

/// The runtime's error for a handler's: the state machine matches `error_type`.
pub fn diagnostic(e: HandlerError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type.as_str().to_owned(),
        error_message: e.message,
    }
}

/// Sets up `tracing`: JSON lines (as Lambda wants them) or human-readable text. `filter` is an
/// `EnvFilter` directive such as `info` (each `main` passes `RUST_LOG`). When Lambda runs the
/// X-Ray daemon for the function (active tracing: `AWS_XRAY_DAEMON_ADDRESS` is set), the X-Ray
/// layer is installed too, each layer behind its own filter, so that the logs are the same with
/// tracing on or off; with tracing off nothing of it is installed.
pub fn init_tracing(json: bool, filter: &str) {
    let daemon = restart_xray::Daemon::from_env();
    if json {
        match daemon {
            Some(daemon) => json_logs_traced(filter, std::io::stdout, daemon),
            None => json_logs(filter, std::io::stdout),
        }
        return;
    }
    let result = match daemon {
        Some(daemon) => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_target(false)
                    .with_writer(std::io::stderr)
                    .with_filter(env_filter(filter)),
            )
            .with(restart_xray::layer(daemon))
            .try_init()
            .map_err(|e| e.to_string()),
        None => tracing_subscriber::fmt()
            .with_env_filter(env_filter(filter))
            .with_ansi(false)
            .with_target(false)
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string()),
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}

fn env_filter(filter: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// The layer of the JSON log lines the functions print in Lambda, at `filter`, written to
/// `writer` (the local stack's benchmark counts their bytes: CloudWatch Logs bills every byte
/// ingested).
pub fn json_log_layer<S, W>(filter: &str, writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .json()
        .flatten_event(true)
        .without_time()
        .with_current_span(false)
        .with_writer(writer)
        .with_filter(env_filter(filter))
}

/// Installs [`json_log_layer`] as the process's subscriber.
pub fn json_logs<W>(filter: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let result = tracing_subscriber::registry()
        .with(json_log_layer(filter, writer))
        .try_init();
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}

/// [`json_logs`] (the same lines) with the X-Ray layer sending to `daemon`.
pub fn json_logs_traced<W>(filter: &str, writer: W, daemon: restart_xray::Daemon)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let result = tracing_subscriber::registry()
        .with(json_log_layer(filter, writer))
        .with(restart_xray::layer(daemon))
        .try_init();
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}

/// What every function does before it serves: JSON logs at `RUST_LOG` (default `info`), the
/// configuration parsed once from the environment (every problem at once, docs/design.md 3.9;
/// a bad variable fails the cold start with a message that names it), and the SDK's settings
/// from the Lambda environment.
pub async fn start() -> Result<(Config, SdkConfig), Error> {
    init_tracing(
        true,
        &std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    let config = Config::from_vars(std::env::vars())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok((config, sdk))
}

/// Serves `handler` (raw JSON event in, serializable output or [`HandlerError`] out) on the
/// Lambda runtime until the runtime stops. Each invocation runs inside its X-Ray invocation span
/// (from the invocation's trace header, annotated with the event's `night`, `batch` and `mode`),
/// which costs nothing when tracing is off.
pub async fn serve<H, F, T>(handler: H) -> Result<(), Error>
where
    H: Fn(serde_json::Value) -> F,
    F: Future<Output = Result<T, HandlerError>>,
    T: Serialize,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let span = restart_xray::invocation(
            &event.context.env_config.function_name,
            event.context.xray_trace_id.as_deref(),
        );
        restart_xray::annotate_event(&span, &event.payload);
        let run = handler(event.payload);
        async move { run.await.map_err(diagnostic) }.instrument(span)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use restart_core::ErrorType;

    #[test]
    fn a_handler_error_keeps_its_type_name_and_message() {
        let d = diagnostic(HandlerError::new(ErrorType::Paused, "the night is paused"));
        assert_eq!(d.error_type, "Paused");
        assert_eq!(d.error_message, "the night is paused");
    }
}
