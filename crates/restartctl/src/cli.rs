//! The command line: global flags (with environment fallbacks) and one subcommand per task.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use restart_core::ids::{AccountId, ServiceArn};
use restart_core::outcome::NightState;

#[derive(Debug, Parser)]
#[command(
    name = "restartctl",
    version,
    about = "See, steer and stop the nightly ECS restarts",
    long_about = "See, steer and stop the nightly ECS restarts: the night's plan and status, the \
                  kill switch, manual runs of a batch or a service, a service's history, an HTML \
                  report of a night.\n\nWorks against AWS (--profile, --region) or a local stack \
                  (--endpoint-url)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables for people.
    Table,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// The AWS profile (else AWS_PROFILE, else the default credentials chain).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// The hub's AWS region (else AWS_REGION or the profile's region).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint, e.g. a local stack; it wins over AWS_ENDPOINT_URL
    /// and AWS_ENDPOINT_URL_<SERVICE>. Without it those variables apply (one endpoint per
    /// service, e.g. DynamoDB at moto and ECS at fleet-sim).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The orchestrator's DynamoDB table (the hub stack's output TableName).
    #[arg(long, global = true, env = "TABLE_NAME", value_name = "NAME")]
    pub table: Option<String>,
    /// The nightly-restart state machine (the hub stack's output StateMachineArn).
    #[arg(long, global = true, env = "STATE_MACHINE_ARN", value_name = "ARN")]
    pub state_machine_arn: Option<String>,
    /// The IANA timezone of the restart window.
    #[arg(long, global = true, env = "TIMEZONE", default_value = "UTC")]
    pub timezone: String,
    /// The window's start, HH:MM wall-clock in the timezone.
    #[arg(long, global = true, env = "WINDOW_START", default_value = "00:00")]
    pub window_start: String,
    /// The window's end, HH:MM (before the start: it crosses midnight).
    #[arg(long, global = true, env = "WINDOW_END", default_value = "06:00")]
    pub window_end: String,
    /// The role assumed in member accounts.
    #[arg(long, global = true, env = "MEMBER_ROLE_NAME", value_name = "NAME")]
    pub member_role_name: Option<String>,
    /// The ExternalId the member role requires.
    #[arg(
        long,
        global = true,
        env = "EXTERNAL_ID",
        value_name = "ID",
        hide_env_values = true
    )]
    pub external_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn the kill switch on: no new restart starts anywhere (restarts in flight are still
    /// watched).
    Pause(PauseArgs),
    /// Turn the kill switch off: the remaining batches go on.
    Resume,
    /// The night's progress: counts per state and per batch, failures, pause and halt; or, with
    /// --state, its services in those states.
    Status(StatusArgs),
    /// The night's plan: batches with their start times, sizes, services per cluster; or, with
    /// --batch, the services of one batch; or, with --service, one service's slot.
    Plan(PlanArgs),
    /// One service's records across nights.
    History(HistoryArgs),
    /// Start the state machine now: the whole night (--nightly), one batch (--batch) or one
    /// service (--service).
    ///
    /// --nightly sends what the schedule sends, `{}`: the night whose window is open, or the
    /// next one. After today's window has ended that is tomorrow's night, so --nightly is
    /// refused then: a missed night needs --night YYYY-MM-DD, and --tomorrow starts tomorrow's
    /// night now on purpose.
    Trigger(TriggerArgs),
    /// Write a night's report as one self-contained HTML page.
    Report(ReportArgs),
    /// A shell in a running task of a service (ECS Exec), in its member account.
    Connect(ConnectArgs),
    /// Configuration kept in the table: each account's default owner (wins over
    /// ACCOUNT_OWNERS).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `config`: the table's configuration items.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Every configuration item in the table: each account's default owner.
    Show,
    /// Set configuration items (nothing is written when one is wrong).
    #[command(subcommand)]
    Set(SetItem),
    /// Remove configuration items.
    #[command(subcommand)]
    Unset(UnsetItem),
    /// Set account owners from a file (ACCOUNT=OWNER lines, or a JSON object).
    ///
    /// The file holds `ACCOUNT=OWNER` lines (UTF-8; `#` comments and blank lines skipped; the
    /// owner is everything after the first `=`) or one JSON object {"ACCOUNT": "OWNER", ...}.
    /// Nothing is written when any entry is wrong or an account is given twice; accounts not in
    /// the file are left as they are.
    Import(ImportArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum SetItem {
    /// The default owner of accounts: their services without an owner tag (service or cluster)
    /// are told to this owner. Any script; at most 256 characters; no line breaks.
    Owner {
        /// ACCOUNT=OWNER, e.g. 111111111111=payments (several at once).
        #[arg(required = true, value_name = "ACCOUNT=OWNER")]
        pairs: Vec<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UnsetItem {
    /// Forget accounts' default owners: ACCOUNT_OWNERS applies again, else `unowned`.
    Owner {
        /// The account ids (12 digits).
        #[arg(required = true, value_name = "ACCOUNT")]
        accounts: Vec<AccountId>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file: ACCOUNT=OWNER lines, or a JSON object (UTF-8).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// Why the night is paused (recorded with who and when; shown by `status`).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The night (YYYY-MM-DD, the local date at the window's start); default: the night in
    /// progress, or the last one.
    #[arg(long)]
    pub night: Option<NaiveDate>,
    /// Redraw until the night is over.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two redraws with --watch.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    /// List the night's services in these states instead of the counts: batch, account,
    /// region, cluster, service, owner, state, start, detail and ARN (the ARN `trigger
    /// --service`, `history` and `connect` take). Comma separated or repeated, e.g. `--state
    /// failed,rolled_back,timed_out` for what needs a look, `--state started` for what is still
    /// running.
    #[arg(
        long,
        value_name = "STATE",
        value_delimiter = ',',
        value_parser = crate::services::state_parser(),
        conflicts_with = "watch"
    )]
    pub state: Vec<NightState>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// The night (YYYY-MM-DD); default: the night in progress, or the last one.
    #[arg(long)]
    pub night: Option<NaiveDate>,
    /// Show only this service's slot.
    #[arg(long, value_name = "ARN")]
    pub service: Option<ServiceArn>,
    /// List the services of this batch: account, region, cluster, service, owner, state, start,
    /// detail and ARN.
    #[arg(long, value_name = "N", conflicts_with = "service")]
    pub batch: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The service's ARN (long format).
    #[arg(long, value_name = "ARN")]
    pub service: ServiceArn,
    /// How many nights, newest first.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub nights: u32,
}

#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["batch", "service", "nightly"])))]
pub struct TriggerArgs {
    /// Start the whole night now, as the nightly schedule does: inventory, the plan, every
    /// batch at its start time, the owners' digests and the summary (with --night, that night;
    /// a night another execution runs is refused by inventory, which names it). Without
    /// --night, refused after today's window has ended (it would start tomorrow's night): pass
    /// --night for a missed night, or --tomorrow.
    #[arg(
        long,
        conflicts_with_all = ["force", "outside_window"],
        // Not `requires` on --tomorrow: a flag's default (false) counts as present there.
        required_if_eq("tomorrow", "true")
    )]
    pub nightly: bool,
    /// With --nightly after today's window has ended: start tomorrow's night now anyway (its
    /// inventory and plan run now, its batches wait for its window, and the night is locked, so
    /// tomorrow's scheduled execution is refused).
    #[arg(long, conflicts_with = "night")]
    pub tomorrow: bool,
    /// Run this batch of the night now.
    #[arg(long, value_name = "N")]
    pub batch: Option<u32>,
    /// The batch's night (YYYY-MM-DD); default: the night in progress, or the last one. With
    /// --nightly: the night to run (default: the night the window is in, or the next).
    #[arg(long, conflicts_with = "service")]
    pub night: Option<NaiveDate>,
    /// Restart this service now.
    #[arg(long, value_name = "ARN")]
    pub service: Option<ServiceArn>,
    /// Restart it even if it restarted tonight already, is opted out or snoozed, or the night
    /// was halted.
    #[arg(long, conflicts_with = "batch")]
    pub force: bool,
    /// Start the batch's restarts even after the night's window has ended (recorded on each
    /// restart). Without it, what is left of a batch past the window ends `window_closed`.
    #[arg(long, requires = "batch")]
    pub outside_window: bool,
    /// Follow the execution until it ends; the exit code says whether it succeeded.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between two looks at the execution with --wait.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub poll_seconds: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The night (YYYY-MM-DD); default: the night in progress, or the last one.
    #[arg(long)]
    pub night: Option<NaiveDate>,
    /// Where to write the page.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The service's ARN (long format).
    #[arg(long, value_name = "ARN")]
    pub service: ServiceArn,
    /// The container to enter (needed when the task has several).
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Print the command (with the member account's credentials) instead of running it.
    #[arg(long)]
    pub print: bool,
    /// The command to run in the container.
    #[arg(long, default_value = "/bin/sh")]
    pub command: String,
    /// The AWS CLI to run (v2, with the Session Manager plugin).
    #[arg(
        long,
        env = "RESTARTCTL_AWS_CLI",
        default_value = "aws",
        value_name = "PATH"
    )]
    pub aws_cli: String,
}
