//! `restart-local up` and `restart-local down`: a local stack that stays up for on-call to
//! rehearse with `restartctl`.
//!
//! `up` starts the stack as `run` does (moto, fleet-sim, the Lambda host, the hub from
//! `infra/`, the window compressed by [`crate::prepare`]), writes an env file of
//! `export NAME=value` lines that point `restartctl` (and the AWS CLI) at it, prints them, and
//! serves until Ctrl-C, SIGTERM or `restart-local down`; then it stops everything it started
//! and removes the env file. The env file also records `up`'s process id
//! (`RESTART_LOCAL_PID`), which is how `down` finds the process to stop.
//!
//! The endpoints follow the AWS SDK's own variables: `AWS_ENDPOINT_URL` (moto: DynamoDB, SNS,
//! Step Functions) and `AWS_ENDPOINT_URL_ECS`, `AWS_ENDPOINT_URL_STS`,
//! `AWS_ENDPOINT_URL_CONFIG_SERVICE`, `AWS_ENDPOINT_URL_ORGANIZATIONS`, `AWS_ENDPOINT_URL_SSM`
//! and `AWS_ENDPOINT_URL_CLOUDWATCH` (fleet-sim: [`crate::stack::FLEET_SIM_SERVICES`]), the same
//! routing the stack gives the functions ([`crate::stack::sdk_config`]); a service-specific
//! variable wins over the global one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;

use restartctl::connect::shell_quote;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::compress::{Align, Compression};
use crate::stack::{
    HUB_ACCESS_KEY_ID, HUB_SECRET_ACCESS_KEY, LocalStack, StackOptions, fleet_sim_endpoint_vars,
};
use crate::{GuardArgs, NightOptions, Watch, infra, night, prepare};

/// The env file's default path, relative to the current directory.
pub const DEFAULT_ENV_FILE: &str = "target/local.env";
/// The variable of the env file that names `up`'s process.
pub const PID_VAR: &str = "RESTART_LOCAL_PID";
/// The compressed window's variables that restartctl reads (`--timezone`, `--window-start`,
/// `--window-end`), written to the env file.
const WINDOW_VARS: [&str; 3] = ["TIMEZONE", "WINDOW_START", "WINDOW_END"];

/// `restart-local up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// The fleet-sim fleet spec (YAML or JSON), e.g. examples/demo-fleet.yaml.
    #[arg(long, value_name = "FILE")]
    pub fleet: PathBuf,
    /// The length of the compressed restart window, in seconds (60 to 43200), from the start
    /// of the current minute (so that restartctl's default night is tonight's at once). Start
    /// the night before it ends: a night started later is tomorrow's.
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub window_seconds: u64,
    /// Where to write the `export NAME=value` lines that point restartctl at the stack.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_ENV_FILE)]
    pub env_file: PathBuf,
    /// Start the nightly execution at once (else start it with `restartctl trigger --nightly`).
    #[arg(long)]
    pub start_night: bool,
    #[command(flatten)]
    pub guards: GuardArgs,
}

/// `restart-local down`.
#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    /// The env file `restart-local up` wrote (it names up's process).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_ENV_FILE)]
    pub env_file: PathBuf,
}

/// A stack that stays up, with the window it was configured with.
#[derive(Debug)]
pub struct Up {
    pub stack: LocalStack,
    pub compression: Compression,
}

impl Up {
    /// Starts the stack for `options`, compressed as `run` compresses a night
    /// ([`crate::prepare`]; `options.watch` is not used: nothing is watched).
    pub async fn start(options: &NightOptions) -> anyhow::Result<Up> {
        let (stack_options, compression) = prepare(options)?;
        Up::start_prepared(stack_options, compression).await
    }

    /// Starts the stack with options [`crate::prepare`] made (and a caller may have adjusted).
    pub async fn start_prepared(
        stack_options: StackOptions,
        compression: Compression,
    ) -> anyhow::Result<Up> {
        let stack = LocalStack::start(stack_options).await?;
        Ok(Up { stack, compression })
    }

    /// The variables that point `restartctl` (and the AWS CLI) at the stack, in the order they
    /// are written.
    pub fn env(&self) -> Vec<(String, String)> {
        let stack = &self.stack;
        let moto = stack.moto.endpoint();
        let sim = stack.sim.endpoint_url();
        let mut vars: Vec<(String, String)> = vec![
            ("AWS_REGION".into(), infra::REGION.into()),
            ("AWS_DEFAULT_REGION".into(), infra::REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), HUB_ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), HUB_SECRET_ACCESS_KEY.into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_ENDPOINT_URL".into(), moto.clone()),
        ];
        vars.extend(fleet_sim_endpoint_vars(&sim));
        vars.extend([
            ("TABLE_NAME".into(), stack.config.table_name.clone()),
            (
                "STATE_MACHINE_ARN".into(),
                stack.hub.state_machine_arn.clone(),
            ),
        ]);
        // The topics (and anything else the template names), as the functions see them.
        for (k, v) in &stack.hub.vars {
            if !vars.iter().any(|(name, _)| name == k) {
                vars.push((k.clone(), v.clone()));
            }
        }
        // The window restartctl reads (the functions' other compressed settings are written
        // as a comment by `up`: exported, they would reach whatever else runs in the shell).
        vars.extend(
            self.compression
                .vars()
                .into_iter()
                .filter(|(k, _)| WINDOW_VARS.contains(&k.as_str())),
        );
        // restartctl reaches the member accounts as on-call does in AWS: through the member
        // on-call role (ECS Exec's ListTasks and DescribeTasks are its, not the night role's).
        vars.push((
            "MEMBER_ROLE_NAME".into(),
            stack
                .iam
                .hub_params
                .get("MemberOnCallRoleName")
                .filter(|name| !name.is_empty())
                .cloned()
                .unwrap_or_else(|| stack.config.member_role_name.clone()),
        ));
        if let Some(id) = &stack.config.external_id {
            vars.push(("EXTERNAL_ID".into(), id.clone()));
        }
        vars.extend([
            ("RESTART_LOCAL_MOTO".into(), moto),
            ("RESTART_LOCAL_FLEET_SIM".into(), sim),
            (
                "RESTART_LOCAL_LAMBDA_HOST".into(),
                format!("http://{}", stack.host.addr),
            ),
        ]);
        vars
    }

    /// The loopback ports the stack listens on: moto, fleet-sim, the Lambda host.
    pub fn ports(&self) -> Vec<u16> {
        let sim = self.stack.sim.endpoint_url();
        let sim_port = sim
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok());
        [
            Some(self.stack.moto.port),
            sim_port,
            Some(self.stack.host.addr.port()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Starts the nightly execution (input `{}`, as the schedule does) and returns its ARN.
    pub async fn start_night(&self) -> anyhow::Result<String> {
        let night = self.stack.config.window.night_at(Utc::now()).night;
        night::start(&self.stack, night).await
    }

    /// Stops everything the stack started and waits for it.
    pub async fn stop(self) {
        self.stack.stop().await;
    }
}

/// The env file's text: a comment, `unset` of the variables that would take the AWS SDK
/// elsewhere, then one `export NAME=value` per variable and the process id last.
pub fn env_file_text(vars: &[(String, String)], pid: u32) -> String {
    let mut text = String::from(
        "# Written by `restart-local up`: `source` it to point restartctl (and the AWS CLI) at \
         the local stack.\n# `restart-local down` stops the stack; the file is removed then.\n\
         unset AWS_PROFILE AWS_SESSION_TOKEN\n",
    );
    for (k, v) in vars {
        text.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    text.push_str(&format!("export {PID_VAR}={pid}\n"));
    text
}

/// Reads `NAME=value` assignments back from an env file (`export` and the quoting of
/// `restartctl::connect::shell_quote` undone); other lines are skipped.
pub fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {}: is a stack up? `restart-local up` writes it (pass --env-file when \
             it was given one)",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), unquote(v)))
        .collect())
}

fn unquote(v: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '\\' if !quoted => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Whether process `pid` is alive (not gone, not a zombie waiting for its parent).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `pid (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The configuration variables of docs/design.md 3.9 set in this process's environment (as
/// `run` reads them).
fn config_vars_from_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, v)| {
            restart_core::config::VARIABLES.contains(&k.as_str()) && !v.trim().is_empty()
        })
        .collect()
}

/// Refuses to start over a stack that is still up with the same env file.
fn check_not_up(env_file: &Path) -> anyhow::Result<()> {
    if let Ok(vars) = read_env_file(env_file)
        && let Some(pid) = vars.get(PID_VAR).and_then(|p| p.parse::<u32>().ok())
        && alive(pid)
        && pid != std::process::id()
    {
        anyhow::bail!(
            "a local stack is already up (process {pid}, env file {}): stop it with \
             `restart-local down --env-file {}`, or pass another --env-file",
            env_file.display(),
            env_file.display()
        );
    }
    Ok(())
}

/// Writes the env file, creating its directory.
pub fn write_env_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for the env file", dir.display()))?;
    }
    // Written aside and renamed: `down` and a shell never read half a file.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .with_context(|| format!("writing the env file {}", path.display()))
}

/// Ctrl-C and SIGTERM, caught from the moment they are created (a signal that comes while
/// nothing waits is kept for the next wait, instead of killing the process with the stack
/// half-stopped).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Waits for the next one and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// `restart-local up`: starts the stack, writes and prints the env file, optionally starts
/// the night, and serves until interrupted; then stops everything and removes the env file.
pub async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let fleet = fleet_sim::FleetSpec::from_path(&args.fleet)
        .with_context(|| format!("reading the fleet file {}", args.fleet.display()))?;
    // Checked before anything starts.
    Compression::new(args.window_seconds, Utc::now(), Align::CurrentMinute)?;
    args.guards.check()?;
    check_not_up(&args.env_file)?;
    let mut signals = Signals::new()?;
    let mut vars = config_vars_from_env();
    vars.extend(args.guards.vars());
    let options = NightOptions {
        fleet,
        window_seconds: args.window_seconds,
        align: Align::CurrentMinute,
        vars,
        watch: Watch::default(),
    };
    // Ctrl-C while the stack starts drops what was started so far.
    let up = tokio::select! {
        r = Up::start(&options) => r?,
        why = signals.next() => anyhow::bail!("{why} while the local stack was starting: stopped"),
    };
    let text = env_file_text(&up.env(), std::process::id());
    if let Err(e) = write_env_file(&args.env_file, &text) {
        up.stop().await;
        return Err(e);
    }
    let c = &up.compression;
    print!("{text}");
    println!(
        "# Night {}: window {}-{} UTC ({} minutes); start the night before it ends (a night \
         started later is tomorrow's).",
        up.stack.config.window.night_at(Utc::now()).night,
        c.window_start.format("%H:%M"),
        c.window_end.format("%H:%M"),
        c.window_minutes,
    );
    let settings: Vec<String> = c
        .vars()
        .into_iter()
        .filter(|(k, _)| !WINDOW_VARS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("# The functions run with {}.", settings.join(" "));
    if let Some(guards) = GuardArgs::describe(&up.stack.iam.vars) {
        println!("# Guards: {guards}.");
    }
    if args.start_night {
        match up.start_night().await {
            Ok(arn) => println!("# Night started: {arn}"),
            Err(e) => {
                up.stop().await;
                let _ = std::fs::remove_file(&args.env_file);
                return Err(e.context("starting the nightly execution"));
            }
        }
    }
    println!(
        "# Up. `source {}` and use restartctl; stop with Ctrl-C or `restart-local down`.",
        args.env_file.display()
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // The functions print their EMF metric lines on standard output, as in Lambda: they go to
    // a file while the stack serves, so that the terminal stays readable.
    let functions_log =
        std::env::temp_dir().join(format!("local-stack-functions-{}.log", std::process::id()));
    let redirect = std::fs::File::create(&functions_log)
        .ok()
        .and_then(|f| gag::Redirect::stdout(f).ok());
    eprintln!(
        "The functions' standard output (EMF metric lines): {}",
        functions_log.display()
    );
    let why = signals.next().await;
    let _ = std::io::Write::flush(&mut std::io::stdout());
    drop(redirect);
    eprintln!("{why}: stopping the local stack");
    up.stop().await;
    let _ = std::fs::remove_file(&args.env_file);
    eprintln!("Stopped: moto, fleet-sim and the Lambda host are gone.");
    Ok(ExitCode::SUCCESS)
}

/// How long `down` waits for `up` to stop everything.
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// `restart-local down`: sends SIGTERM to the process the env file names and waits until it
/// is gone (it stops the stack and removes the env file on its way out).
pub fn down(args: &DownArgs) -> anyhow::Result<ExitCode> {
    let vars = read_env_file(&args.env_file)?;
    let pid: u32 = vars
        .get(PID_VAR)
        .and_then(|p| p.parse().ok())
        .with_context(|| {
            format!(
                "{} has no {PID_VAR} line: it was not written by `restart-local up`",
                args.env_file.display()
            )
        })?;
    if !alive(pid) {
        let _ = std::fs::remove_file(&args.env_file);
        println!(
            "The stack of {} is not running (process {pid} is gone); removed the stale file.",
            args.env_file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The process id may have been reused since: stop only a restart-local.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    anyhow::ensure!(
        String::from_utf8_lossy(&cmdline).contains("restart-local"),
        "process {pid} named in {} is not restart-local (the stack is gone and the id was \
         reused): nothing was stopped; delete the file",
        args.env_file.display()
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running kill to stop the local stack")?;
    anyhow::ensure!(
        status.success(),
        "kill -TERM {pid} failed ({status}): is the stack another user's?"
    );
    let deadline = Instant::now() + DOWN_TIMEOUT;
    while alive(pid) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "process {pid} is still running {} s after SIGTERM: look at it (`ps -p {pid}`), \
             then `kill -KILL {pid}`",
            DOWN_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("Stopped the local stack (process {pid}).");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_file_quotes_values_and_reads_back() {
        let vars = vec![
            ("A".to_owned(), "http://127.0.0.1:4566".to_owned()),
            ("B".to_owned(), "it's a value with spaces".to_owned()),
            ("C".to_owned(), String::new()),
        ];
        let text = env_file_text(&vars, 42);
        assert!(text.contains("export A=http://127.0.0.1:4566\n"), "{text}");
        assert!(
            text.contains(r"export B='it'\''s a value with spaces'"),
            "{text}"
        );
        let dir = std::env::temp_dir().join(format!("local-stack-env-{}", std::process::id()));
        let path = dir.join("local.env");
        write_env_file(&path, &text).unwrap();
        let back = read_env_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back["A"], "http://127.0.0.1:4566");
        assert_eq!(back["B"], "it's a value with spaces");
        assert_eq!(back["C"], "");
        assert_eq!(back[PID_VAR], "42");
    }

    #[test]
    fn this_process_is_alive_and_a_missing_one_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
