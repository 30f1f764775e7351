//! `iam-check` (`make iam-check`): a local night of crates/fleet-sim/fleets/chaos.yaml and
//! every command docs/runbook.md and docs/deploy.md give on-call, under the IAM of
//! infra/template.yaml and infra/member-role.yaml (`local_stack::iam::check`). Prints the
//! report; exits 1 naming principal, action and resource of every denied request, when a grant
//! no request used has no reason comment, or when a command failed.
//!
//! `iam-check restartctl ARGS` is restartctl itself (the check runs on-call's commands through
//! it, as a process of their own with on-call's environment).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use local_stack::iam::check::{self, CheckOptions, Trace};

#[derive(Debug, Parser)]
#[command(
    name = "iam-check",
    about = "The templates' IAM put to a local night and to on-call's commands"
)]
struct Args {
    /// Where to write the recorded requests (JSON), for replays.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "target/iam-check/trace.json"
    )]
    trace_out: PathBuf,
    /// Decide a recorded trace again (no night is played) against `--infra`'s templates.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// The folder of template.yaml, member-role.yaml and samconfig.example.toml.
    #[arg(long, value_name = "DIR")]
    infra: Option<PathBuf>,
    /// Also write the report (markdown) to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("restartctl") {
        let cli = restartctl::cli::Cli::parse_from(&argv[1..]);
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        return match runtime.block_on(restartctl::run(cli)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    restart_lambda::init_tracing(
        false,
        &std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
    );
    let args = Args::parse();
    match tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(main_async(args))
    {
        Ok(code) => code,
        Err(e) => {
            eprintln!("iam-check: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn main_async(args: Args) -> anyhow::Result<ExitCode> {
    let infra = match args.infra {
        Some(dir) => dir,
        None => local_stack::infra::infra_dir()?,
    };
    let trace: Trace = match &args.replay {
        Some(path) => serde_json::from_slice(&std::fs::read(path)?)?,
        None => {
            if let Some(dir) = args
                .trace_out
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)?;
            }
            let log = args.trace_out.with_extension("log");
            eprintln!(
                "iam-check: a night of chaos.yaml, then on-call's commands (their output: {})",
                log.display()
            );
            let trace = check::record(&CheckOptions {
                infra_dir: infra.clone(),
                restartctl: std::env::current_exe()?,
                log,
            })
            .await?;
            std::fs::write(&args.trace_out, serde_json::to_vec(&trace)?)?;
            trace
        }
    };
    let replay = check::replay(&infra, &trace)?;
    let report = check::report(&trace, &replay);
    print!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report)?;
    }
    let ok = replay.passes() && trace.failed_commands.is_empty();
    println!("iam-check: {}", if ok { "passed" } else { "FAILED" });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
