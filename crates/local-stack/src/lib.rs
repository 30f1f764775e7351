//! The local stack: moto (DynamoDB, SNS, SQS, Step Functions in execute mode), fleet-sim (ECS,
//! STS, Config, Organizations, CloudWatch alarms, SSM change calendars) and a local Lambda host
//! serving the four real handlers, so that moto's interpreter runs the real state machine
//! definition (`infra/statemachine/`) against the real handlers (docs/design.md 4).
//!
//! [`run`] (`restart-local run`) starts the stack, runs one nightly execution with the
//! window compressed to a few minutes ([`compress`]), shows its progress, prints the night's
//! report ([`report`]), writes it as JSON and as `restartctl report --html`'s page if asked,
//! writes the night's X-Ray traces beside it and stops the stack.
//!
//! Code map: [`stack`] starts and stops everything; [`moto`] the moto process; [`lambda_host`]
//! the Lambda Invoke API over the handlers; [`infra`] the table, topics and state machine from
//! `infra/`; [`night`] one execution and what it left; [`report`] the report and its checks;
//! [`traces`] the X-Ray listener standing in for the daemon, and what the traces say.

pub mod bill;
pub mod compress;
pub mod http;
pub mod iam;
pub mod infra;
pub mod lambda_host;
pub mod moto;
pub mod night;
pub mod report;
pub mod stack;
pub mod traces;
pub mod up;

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
    /// batches 15 s apart: 13 in 240 s).
    #[arg(long, value_name = "N", default_value_t = 180)]
    pub window_seconds: u64,
    /// Also write the night's report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Also write the night's report as one self-contained HTML page (the timeline of the
    /// batches, outcomes per batch, failures and skips), as `restartctl report --html` does.
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
    #[command(flatten)]
    pub guards: GuardArgs,
}

/// The guards of a local night (docs/design.md 3.3): the hub stack's `ChangeCalendar` and
/// `BlockingAlarmPrefix` parameters, which set the functions' `CHANGE_CALENDAR` and
/// `BLOCKING_ALARM_PREFIX` (and the restarter role's grants). A flag wins over the variable
/// set in the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct GuardArgs {
    /// The hub's SSM Change Calendar (ChangeCalendar, CHANGE_CALENDAR): a name of the fleet
    /// file's `calendars` (in us-east-1, the local hub's region), or its ARN. While it is
    /// CLOSED no restart starts: planned restarts end skipped/change_freeze.
    #[arg(long, value_name = "NAME")]
    pub change_calendar: Option<String>,
    /// The blocking alarms' name prefix (BlockingAlarmPrefix, BLOCKING_ALARM_PREFIX): an alarm
    /// of the fleet file whose name starts with it holds restarts while in ALARM (`hub_alarms`:
    /// the whole night; an account's `alarms`: that account's restarts in its region).
    #[arg(long, value_name = "PREFIX")]
    pub blocking_alarm_prefix: Option<String>,
}

impl GuardArgs {
    /// The configuration variables the flags set.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("CHANGE_CALENDAR", &self.change_calendar),
            ("BLOCKING_ALARM_PREFIX", &self.blocking_alarm_prefix),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?)))
        .collect()
    }

    /// Refuses, before anything starts, a value the functions' configuration would refuse.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut vars: BTreeMap<String, String> = [
            ("TABLE_NAME", "t"),
            ("ACCOUNTS", "111111111111"),
            ("REGIONS", "eu-west-1"),
            ("MEMBER_ROLE_NAME", "r"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.extend(self.vars());
        let Err(e) = restart_core::Config::from_vars(vars) else {
            return Ok(());
        };
        let problems: Vec<String> = e
            .problems
            .iter()
            .filter_map(|p| {
                let flag = match p.var {
                    "CHANGE_CALENDAR" => "--change-calendar",
                    "BLOCKING_ALARM_PREFIX" => "--blocking-alarm-prefix",
                    _ => return None,
                };
                Some(format!("{flag}: {}", p.message))
            })
            .collect();
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
        Ok(())
    }

    /// What the night's restarter reads, for the run's first lines (`None`: no guard).
    pub fn describe(vars: &BTreeMap<String, String>) -> Option<String> {
        let set = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let calendar = set("CHANGE_CALENDAR").map(|c| {
            format!("the change calendar {c} before starting restarts (CLOSED: change_freeze)")
        });
        let alarms = set("BLOCKING_ALARM_PREFIX").map(|p| {
            format!(
                "the alarms named {p}* in the hub and in each member account and region (one in \
                 ALARM holds the restarts it guards)"
            )
        });
        let both: Vec<String> = calendar.into_iter().chain(alarms).collect();
        (!both.is_empty()).then(|| format!("the restarter reads {}", both.join(", and ")))
    }
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
    let set = compression.vars();
    for k in Compression::VARS {
        let used = set.iter().find(|(name, _)| name == k).map(|(_, v)| v);
        if let Some(old) = vars.remove(k)
            && Some(&old) != used
        {
            tracing::warn!(var = %k, given = %old, used = ?used, "replaced by the compressed night's setting");
        }
    }
    vars.extend(set);
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
/// report, the night's HTML page (`restartctl report --html`'s) and its bill (`None` when it
/// could not be read), both read before the stack stops.
pub async fn local_night(
    options: NightOptions,
) -> anyhow::Result<(NightReport, String, Option<bill::NightBill>)> {
    let (stack_options, compression) = prepare(&options)?;
    let services = options.fleet.service_count();
    let stack = LocalStack::start(stack_options).await?;
    if options.watch.progress {
        step("the stack is up; the nightly execution starts (inventory, then the plan)…");
    }
    // The functions' EMF lines, kept for the bill.
    restart_core::telemetry::capture();
    let report = match run_night(&stack, &compression, &options.watch).await {
        Ok(report) => match night::html_page(&stack, &report, &compression).await {
            Ok(page) => {
                let emf = restart_core::telemetry::captured();
                let bill = bill::measure(&stack, &report.execution.arn, services, &emf, None)
                    .await
                    .inspect_err(|e| tracing::warn!(error = %e, "the night's bill was not read"))
                    .ok();
                Ok((report, page, bill))
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    stack.stop().await;
    report
}

/// What the stack logs (an `EnvFilter` directive): `RUST_LOG`, else warnings (inventory's
/// unreachable accounts, which the report lists, only as errors).
pub fn log_filter() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,inventory=error".into())
}

/// The configuration variables of docs/design.md 3.9 set in this process's environment.
fn config_vars_from_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, v)| {
            restart_core::config::VARIABLES.contains(&k.as_str()) && !v.trim().is_empty()
        })
        .collect()
}

/// A report file's folder must exist: checked before anything starts.
fn check_report_path(path: Option<&PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = path
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        anyhow::ensure!(
            dir.is_dir(),
            "cannot write the report to {}: the directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// A step of the run, on standard error, so that a newcomer sees what is slow.
fn step(what: &str) {
    eprintln!("restart-local: {what}");
}

/// Prints the night's bill and writes it as JSON beside the report (`<report>.bill.json`), or
/// beside the functions' log without a report file.
fn print_bill(
    bill: &bill::NightBill,
    report_json: Option<&std::path::Path>,
    functions_log: &std::path::Path,
) -> anyhow::Result<()> {
    let statement = bill.statement(&bill::US_EAST_1, &[]);
    print!("{}", statement.summary());
    let path = bill::statement_path(report_json, functions_log);
    std::fs::write(&path, serde_json::to_vec_pretty(&statement)?)
        .with_context(|| format!("writing the bill to {}", path.display()))?;
    println!("The bill as JSON: {}", path.display());
    Ok(())
}

/// Starts the local stack, runs one night, prints the report (and writes it as JSON and HTML
/// when asked), stops the stack. The exit code is failure when the night did not finish or
/// its records are inconsistent.
pub async fn run(args: LocalRunArgs) -> anyhow::Result<ExitCode> {
    let fleet = fleet_sim::FleetSpec::from_path(&args.fleet)
        .with_context(|| format!("reading the fleet file {}", args.fleet.display()))?;
    // Checked before anything starts.
    let planned = Compression::new(args.window_seconds, Utc::now(), Align::Ahead)?;
    check_report_path(args.report_json.as_ref())?;
    check_report_path(args.report_html.as_ref())?;
    args.guards.check()?;
    let mut vars = config_vars_from_env();
    vars.extend(args.guards.vars());
    let guards = GuardArgs::describe(&vars);
    let options = NightOptions {
        fleet,
        window_seconds: args.window_seconds,
        align: Align::Ahead,
        vars,
        watch: Watch::default(),
    };
    step(&format!(
        "a night of up to {} batches {} s apart in a {}-minute window (restart timeout {} \
         min, polls every {} s, fleet-sim at {}x); the window opens at the first minute at \
         least {} s from now, once inventory and the plan have run",
        planned.batches,
        planned.batch_interval_seconds,
        planned.window_minutes,
        planned.restart_timeout_minutes,
        planned.poll_interval_seconds,
        planned.time_scale,
        compress::LEAD_SECONDS,
    ));
    if let Some(guards) = guards {
        step(&guards);
    }
    step("starting moto (DynamoDB, SNS, Step Functions), fleet-sim and the Lambda host…");
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
    let (report, page, bill) = report?;
    print!("{}", report.render());
    println!(
        "The functions' standard output (EMF metric lines): {}",
        functions_log.display()
    );
    if let Some(bill) = bill {
        print_bill(&bill, args.report_json.as_deref(), &functions_log)?;
    }
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the report to {}", path.display()))?;
        println!(
            "JSON report: {} (e.g. jq .counts {})",
            path.display(),
            path.display()
        );
    }
    if let Some(path) = &args.report_html {
        std::fs::write(path, &page)
            .with_context(|| format!("writing the HTML report to {}", path.display()))?;
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        println!(
            "HTML report: {} (open it in a browser: xdg-open {} on Linux, open {} on macOS, or \
             file://{})",
            path.display(),
            path.display(),
            path.display(),
            shown.display()
        );
    }
    if let Some(traces) = &report.traces {
        let beside = args.report_json.as_deref().or(args.report_html.as_deref());
        let path = traces::traces_path(beside, &functions_log);
        std::fs::write(&path, serde_json::to_vec_pretty(traces)?)
            .with_context(|| format!("writing the traces to {}", path.display()))?;
        println!(
            "X-Ray traces: {} (the segment documents by trace, e.g. jq '.traces[0].documents[0]' {})",
            path.display(),
            path.display()
        );
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
