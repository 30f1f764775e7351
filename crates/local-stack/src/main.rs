//! `restart-local`: the whole product on this machine (moto, fleet-sim, the four handlers, the
//! real state machine definition).

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "restart-local",
    version,
    about = "The nightly ECS restarts on this machine: moto, fleet-sim, the four handlers and the real state machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one night of a fleet file through the real state machine, locally, and print its
    /// report (needs `make tools` for moto).
    Run(local_stack::LocalRunArgs),
    /// Start the stack and keep it up for restartctl: writes an env file to `source`, serves
    /// until Ctrl-C, SIGTERM or `restart-local down` (needs `make tools` for moto).
    Up(local_stack::up::UpArgs),
    /// Stop the stack `restart-local up` started (the process its env file names) and wait
    /// until it is gone.
    Down(local_stack::up::DownArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The logs outside invocations; each invocation runs in the stack's own subscriber (the
    // same logs, and the X-Ray layer: local_stack::traces).
    restart_lambda::init_tracing(false, &local_stack::log_filter());
    let result = match Cli::parse().command {
        Command::Run(args) => local_stack::run(args).await,
        Command::Up(args) => local_stack::up::up(args).await,
        Command::Down(args) => local_stack::up::down(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
