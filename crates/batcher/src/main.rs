//! The `batcher` Lambda function: telemetry, configuration, clients, then the runtime.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    restart_core::telemetry::init_tracing(
        true,
        &std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    let config = restart_core::Config::from_vars(std::env::vars())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let handler = Arc::new(batcher::aws::handler(config, &sdk));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let handler = handler.clone();
        async move {
            handler.handle(event.payload).await.map_err(|e| Diagnostic {
                error_type: e.error_type.to_string(),
                error_message: e.message,
            })
        }
    }))
    .await
}
