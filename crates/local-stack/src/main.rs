//! `local-stack`: the same as `restartctl local run`, for working on the stack itself.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Run one night of a fleet file through the local stack")]
struct Cli {
    #[command(flatten)]
    args: local_stack::LocalRunArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    local_stack::run(Cli::parse().args).await
}
