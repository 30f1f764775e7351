//! `restartctl`, the on-call engineer's command line for the nightly restart orchestrator: see
//! the plan and the status of a night, pause and resume it, trigger a batch or one service now,
//! read a service's history, write a night's report, keep accounts' default owners in the table.
//!
//! - [`cli`]: the commands and flags (clap).
//! - [`settings`]: configuration from flags with environment fallbacks, the SDK config, the
//!   store, the default night.
//! - [`aws`]: the few SDK calls only this CLI makes (Step Functions, STS GetCallerIdentity).
//! - [`night`]: one night read from the table (plan, records, counters, kill switch).
//! - one module per command: [`pause`], [`status`], [`plan`], [`history`], [`trigger`],
//!   [`report`], [`connect`], [`config`].
//!   [`render`] shares the table and JSON output, [`services`] the lists of services that
//!   `plan --batch` and `status --state` print.
//!
//! Errors are `anyhow` errors whose messages say what went wrong and what to do next; `main`
//! prints them and exits non-zero.

pub mod aws;
pub mod cli;
pub mod config;
pub mod connect;
pub mod history;
pub mod night;
pub mod pause;
pub mod plan;
pub mod render;
pub mod report;
pub mod services;
pub mod settings;
pub mod status;
pub mod trigger;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use settings::Settings;

/// Parses the command line, runs the command, prints any error and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "restartctl", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    let settings = Settings::load(&cli.global).await?;
    match cli.command {
        Command::Pause(args) => pause::pause(&settings, &args).await,
        Command::Resume => pause::resume(&settings).await,
        Command::Status(args) => status::run(&settings, &args).await,
        Command::Plan(args) => plan::run(&settings, &args).await,
        Command::History(args) => history::run(&settings, &args).await,
        Command::Trigger(args) => trigger::run(&settings, &args).await,
        Command::Report(args) => report::run(&settings, &args).await,
        Command::Connect(args) => connect::run(&settings, &args).await,
        Command::Config(command) => config::run(&settings, &command).await,
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}
