//! The local stack: moto (DynamoDB, SNS, SQS, Step Functions in execute mode), fleet-sim (ECS,
//! STS, Config) and a local Lambda host serving the four real handlers, so that moto's
//! interpreter runs the real state machine definition (`infra/statemachine/`) against the real
//! handlers (docs/design.md 4).
//!
//! [`run`] (`restart-local run`) starts the stack, runs one nightly execution with the
//! window compressed to a few minutes ([`compress`]), shows its progress, prints the night's
//! report ([`report`]), writes it as JSON if asked and stops the stack.
//!
//! Code map: [`stack`] starts and stops everything; [`moto`] the moto process; [`lambda_host`]
//! the Lambda Invoke API over the handlers; [`infra`] the table, topics and state machine from
//! `infra/`; [`night`] one execution and what it left; [`report`] the report and its checks.

pub mod compress;
pub mod http;
pub mod infra;
pub mod lambda_host;
pub mod moto;
pub mod night;
pub mod report;
pub mod stack;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

pub use compress::{Align, Compression};
pub use night::{Watch, run_night};
pub use report::NightReport;
pub use stack::{LocalStack, StackOptions};

/// `restart-local run`: one night of a fleet file through the real state machine, locally.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalRunArgs {
    /// The fleet-sim fleet spec (YAML or JSON), e.g. examples/demo-fleet.yaml.
    #[arg(long, value_name = "FILE")]
    pub fleet: PathBuf,
    /// The length of the compressed restart window, in seconds (60 to 43200; whole minutes,
    /// one batch a minute).
    #[arg(long, value_name = "N", default_value_t = 180)]
    pub window_seconds: u64,
    /// Also write the night's report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

/// One local night, from a fleet spec and configuration variables.
#[derive(Debug, Clone)]
pub struct NightOptions {
    pub fleet: fleet_sim::FleetSpec,
    pub window_seconds: u64,
    pub align: Align,
    /// Configuration variables (docs/design.md 3.9); those the compression sets are replaced.
    pub vars: BTreeMap<String, String>,
    pub watch: Watch,
}

/// The stack's options and the compressed window for a night starting now: the fleet's clock
/// settings and the window's variables replaced by the compression's.
pub fn prepare(options: &NightOptions) -> anyhow::Result<(StackOptions, Compression)> {
    let compression = Compression::new(options.window_seconds, Utc::now(), options.align)?;
    let mut fleet = options.fleet.clone();
    fleet.time_scale = compression.time_scale;
    fleet.start_time = None;
    let mut vars = options.vars.clone();
    for (k, v) in compression.vars() {
        if let Some(old) = vars.insert(k.clone(), v.clone())
            && old != v
        {
            tracing::warn!(var = %k, given = %old, used = %v, "replaced by the compressed night's setting");
        }
    }
    Ok((
        StackOptions {
            fleet,
            vars,
            infra_dir: infra::infra_dir()?,
        },
        compression,
    ))
}

/// Starts the stack, runs one night, stops the stack (whatever happened) and returns the
/// report.
pub async fn local_night(options: NightOptions) -> anyhow::Result<NightReport> {
    let (stack_options, compression) = prepare(&options)?;
    let stack = LocalStack::start(stack_options).await?;
    let report = run_night(&stack, &compression, &options.watch).await;
    stack.stop().await;
    report
}

/// The configuration variables of docs/design.md 3.9 set in this process's environment.
fn config_vars_from_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, v)| {
            restart_core::config::VARIABLES.contains(&k.as_str()) && !v.trim().is_empty()
        })
        .collect()
}

/// Starts the local stack, runs one night, prints the report (and writes it as JSON when
/// asked), stops the stack. The exit code is failure when the night did not finish or its
/// records are inconsistent.
pub async fn run(args: LocalRunArgs) -> anyhow::Result<ExitCode> {
    let fleet = fleet_sim::FleetSpec::from_path(&args.fleet)
        .with_context(|| format!("reading the fleet file {}", args.fleet.display()))?;
    // Checked before anything starts.
    Compression::new(args.window_seconds, Utc::now(), Align::Nearest)?;
    if let Some(path) = &args.report_json
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        anyhow::ensure!(
            dir.is_dir(),
            "cannot write the report to {}: the directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    let options = NightOptions {
        fleet,
        window_seconds: args.window_seconds,
        align: Align::Nearest,
        vars: config_vars_from_env(),
        watch: Watch::default(),
    };
    // The functions print their EMF metric lines on standard output, as in Lambda: they go to
    // a file while the night runs, so that the progress and the report stay readable.
    let functions_log =
        std::env::temp_dir().join(format!("local-stack-functions-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&functions_log)
        .with_context(|| format!("creating {}", functions_log.display()))?;
    let redirect = gag::Redirect::stdout(log_file).ok();
    // Ctrl-C stops the night and, through the guards, the whole stack.
    let report = tokio::select! {
        r = local_night(options) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted: the local stack was stopped")),
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    drop(redirect);
    let report = report?;
    print!("{}", report.render());
    println!(
        "The functions' standard output (EMF metric lines): {}",
        functions_log.display()
    );
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the report to {}", path.display()))?;
        println!("Report written to {}", path.display());
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
