//! `local-stack`: the same as `restartctl local run`, for working on the stack itself.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Run one night of a fleet file through the local stack")]
struct Cli {
    #[command(flatten)]
    args: local_stack::LocalRunArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    restart_core::telemetry::init_tracing(
        false,
        &std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,inventory=error".into()),
    );
    match local_stack::run(Cli::parse().args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
