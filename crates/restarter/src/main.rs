//! The `restarter` Lambda function: telemetry, configuration, clients, then the runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    restart_lambda::init_tracing(
        true,
        &std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    let config = restart_core::Config::from_vars(std::env::vars())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let handler = restarter::aws::handler(config, &sdk);
    restart_lambda::serve(|event| handler.handle(event)).await
}
