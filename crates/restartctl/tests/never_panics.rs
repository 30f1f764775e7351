//! Nothing typed on the command line makes `restartctl` panic: every subcommand's arguments
//! (ARNs, nights, batch numbers, intervals, reasons, paths, window settings), in any script or
//! bytes, through clap and the crate's own checks (no network), give a value or a clear error.

use chrono::{DateTime, NaiveDate, Utc};
use clap::Parser;
use proptest::prelude::*;
use restartctl::cli::{Cli, Command, ConfigCommand, SetItem};
use restartctl::pause::{MAX_REASON_CHARS, reason};
use restartctl::plan::service_id;
use restartctl::render::{local, utc, utc_seconds};
use restartctl::settings::{default_night, window};
use restartctl::trigger::execution_name;

/// An argument: anything, printable Unicode, bytes read as UTF-8, or nearly right.
fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[+-]?[0-9]{1,7}-[0-9]{1,2}-[0-9]{1,2}",
        "-?[0-9]{1,20}",
        "[0-2]?[0-9]:[0-6][0-9]",
        "arn:aws:ecs:[a-z]{2}-[a-z]{4}-[0-9]:[0-9]{12}:service/([A-Za-z0-9é_-]{1,8}/)?[A-Za-z0-9_-]{1,8}",
        "arn:\\PC{0,4}:ecs:\\PC{0,4}:\\PC{0,4}:service/\\PC{0,8}",
        prop::sample::select(vec![
            "2026-11-22",
            "+262142-12-31",
            "-262143-01-01",
            "２０２６-11-22",
            "0",
            "4294967296",
            "Europe/Madrid",
            "Pacific/Kiritimati",
            "ＵＴＣ",
            "json",
            "table",
            "bash",
            "--help",
            "-",
            "--",
            "",
            " ",
            "決済チーム",
            "e\u{301}quipe",
            "🚀",
            "<script>alert(1)</script>",
            "arn:aws:ecs:eu-west-1:111111111111:service/legacy",
            "111111111111=決済チーム",
            "111111111111=",
            "=payments",
            "11111111111=payments",
            "111111111111=a\u{7}b",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Each subcommand (words separated by spaces) with its flags.
const COMMANDS: &[(&str, &[&str])] = &[
    ("pause", &["--reason"]),
    ("resume", &[]),
    ("status", &["--night", "--watch", "--interval", "--state"]),
    ("plan", &["--night", "--service", "--batch"]),
    ("history", &["--service", "--nights"]),
    (
        "trigger",
        &[
            "--nightly",
            "--tomorrow",
            "--batch",
            "--night",
            "--service",
            "--force",
            "--wait",
            "--poll-seconds",
        ],
    ),
    ("report", &["--night", "--html"]),
    (
        "connect",
        &[
            "--service",
            "--container",
            "--print",
            "--command",
            "--aws-cli",
        ],
    ),
    ("completions", &[]),
    ("config show", &[]),
    ("config set owner", &[]),
    ("config unset owner", &[]),
    ("config import", &[]),
];

const GLOBAL: &[&str] = &[
    "--output",
    "--profile",
    "--region",
    "--endpoint-url",
    "--table",
    "--state-machine-arn",
    "--timezone",
    "--window-start",
    "--window-end",
    "--member-role-name",
    "--external-id",
];

/// A command line: a subcommand, some of its flags and global ones with any values (as
/// `--flag value` or `--flag=value`), perhaps a positional argument.
fn command_line() -> impl Strategy<Value = Vec<String>> {
    (
        0..COMMANDS.len(),
        prop::collection::vec((0usize..20, arg(), any::<bool>()), 0..5),
        prop::collection::vec((0..GLOBAL.len(), arg()), 0..3),
        prop::option::weighted(0.2, arg()),
    )
        .prop_map(|(c, flags, globals, positional)| {
            let (name, own) = COMMANDS[c];
            let mut argv = vec!["restartctl".to_owned()];
            argv.extend(name.split(' ').map(str::to_owned));
            for (i, value, joined) in flags {
                let Some(flag) = own.get(i % own.len().max(1)) else {
                    continue;
                };
                if joined {
                    argv.push(format!("{flag}={value}"));
                } else {
                    argv.push((*flag).to_owned());
                    argv.push(value);
                }
            }
            for (g, value) in globals {
                argv.push(format!("{}={value}", GLOBAL[g]));
            }
            argv.extend(positional);
            argv
        })
}

/// What the crate checks before any call, on what clap gave it: the window, the pause
/// reason, the service's identity, the night's window and its times, the execution name.
fn validate(cli: &Cli) -> Result<(), TestCaseError> {
    let now: DateTime<Utc> = "2026-11-22T03:00:00Z".parse().unwrap();
    let w = match window(&cli.global) {
        Ok(w) => Some(w),
        Err(e) => {
            let text = format!("{e:#}");
            prop_assert!(text.contains("restart window"), "{text}");
            None
        }
    };
    let night = |n: Option<NaiveDate>| -> Option<NaiveDate> {
        let w = w.as_ref()?;
        let n = n.unwrap_or_else(|| default_night(w, now));
        let nw = w.night(n);
        let _ = (
            local(nw.start, w.timezone()),
            utc(nw.end),
            utc_seconds(nw.start),
        );
        Some(n)
    };
    let service = |arn: Option<&restart_core::ServiceArn>| {
        if let Some(arn) = arn {
            match service_id(arn) {
                Ok(id) => assert_eq!(id.arn(&arn.partition), *arn),
                Err(e) => assert!(e.to_string().contains("old-format ARN"), "{e}"),
            }
        }
    };
    match &cli.command {
        Command::Pause(a) => match reason(&a.reason) {
            Ok(r) => {
                prop_assert_eq!(r.as_str(), a.reason.trim());
                prop_assert!(r.chars().count() <= MAX_REASON_CHARS);
            }
            Err(e) => prop_assert!(e.to_string().starts_with("--reason is"), "{e}"),
        },
        Command::Status(a) => {
            night(a.night);
        }
        Command::Plan(a) => {
            night(a.night);
            service(a.service.as_ref());
        }
        Command::History(a) => service(Some(&a.service)),
        Command::Trigger(a) => {
            service(a.service.as_ref());
            // The check of `--nightly` without `--night` (tomorrow's night refused), at 03:00Z.
            if let (true, None, Some(w)) = (a.nightly, a.night, w.as_ref()) {
                match restartctl::trigger::check_nightly(w, now, a.tomorrow) {
                    Ok(n) => prop_assert!(now < n.end),
                    Err(e) => prop_assert!(e.to_string().contains("Nothing was started"), "{e}"),
                }
            }
            let what = match (a.batch, night(a.night), &a.service) {
                (Some(b), Some(n), _) => format!("batch-{}-{b}", n.format("%Y%m%d")),
                (_, _, Some(arn)) => format!("service-{}", arn.service),
                _ => "nothing".to_owned(),
            };
            check_execution_name(&what, now)?;
        }
        Command::Report(a) => {
            night(a.night);
        }
        Command::Connect(a) => service(Some(&a.service)),
        Command::Config(ConfigCommand::Set(SetItem::Owner { pairs })) => {
            match restartctl::config::parse_arguments(pairs) {
                Ok(owners) => prop_assert!(owners.len() <= pairs.len()),
                Err(problems) => {
                    prop_assert!(!problems.is_empty());
                    prop_assert!(problems.iter().all(|p| !p.trim().is_empty()));
                }
            }
        }
        Command::Config(_) | Command::Resume | Command::Completions { .. } => {}
    }
    Ok(())
}

/// A Step Functions execution name: 1 to 80 letters, digits, `-` and `_`.
fn check_execution_name(what: &str, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let name = execution_name(what, now, 0xabcdef);
    prop_assert!(!name.is_empty() && name.len() <= 80, "{name}");
    prop_assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{name}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_command_line_parses_or_says_what_is_wrong(argv in command_line()) {
        match Cli::try_parse_from(&argv) {
            Ok(cli) => validate(&cli)?,
            Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
        }
    }

    #[test]
    fn any_arguments_at_all(argv in prop::collection::vec(arg(), 0..6)) {
        let argv: Vec<String> = std::iter::once("restartctl".to_owned()).chain(argv).collect();
        match Cli::try_parse_from(&argv) {
            Ok(cli) => validate(&cli)?,
            Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
        }
    }

    /// A malformed value is refused naming its flag and quoting what was wrong.
    #[test]
    fn a_bad_arn_night_or_number_names_its_flag(value in arg()) {
        let cases: [(&[&str], &str); 6] = [
            (&["history"], "--service"),
            (&["plan"], "--service"),
            (&["connect"], "--service"),
            (&["status"], "--night"),
            (&["trigger", "--service=arn:aws:ecs:eu-west-1:111111111111:service/a/b"], "--batch"),
            (&["history", "--service=arn:aws:ecs:eu-west-1:111111111111:service/a/b"], "--nights"),
        ];
        for (command, flag) in cases {
            let mut argv = vec!["restartctl".to_owned()];
            argv.extend(command.iter().map(|s| (*s).to_owned()));
            argv.push(format!("{flag}={value}"));
            if let Err(e) = Cli::try_parse_from(&argv) {
                let text = e.to_string();
                if e.kind() == clap::error::ErrorKind::ValueValidation
                    || e.kind() == clap::error::ErrorKind::InvalidValue
                {
                    prop_assert!(text.contains(flag), "{text}");
                }
            }
        }
    }

    /// Any window settings: a window, or one error naming every bad setting.
    #[test]
    fn any_window_settings(tz in arg(), start in arg(), end in arg()) {
        let argv = [
            "restartctl".to_owned(),
            format!("--timezone={tz}"),
            format!("--window-start={start}"),
            format!("--window-end={end}"),
            "resume".to_owned(),
        ];
        if let Ok(cli) = Cli::try_parse_from(&argv)
            && let Err(e) = window(&cli.global)
        {
            let text = format!("{e:#}");
            prop_assert!(text.contains("--timezone") || text.contains("--window"), "{text}");
        }
    }

    #[test]
    fn any_pause_reason(r in arg(), long in "\\PC{990,1010}") {
        for r in [r, long] {
            match reason(&r) {
                Ok(kept) => prop_assert_eq!(kept.as_str(), r.trim()),
                Err(e) => prop_assert!(e.to_string().starts_with("--reason is")),
            }
        }
    }

    #[test]
    fn execution_names_are_valid_for_anything(what in arg(), secs in any::<i64>()) {
        let now = DateTime::from_timestamp(secs % 8_000_000_000_000, 0).unwrap_or_default();
        check_execution_name(&what, now)?;
        check_execution_name(&what, DateTime::<Utc>::MAX_UTC)?;
        check_execution_name(&what, DateTime::<Utc>::MIN_UTC)?;
    }
}

#[test]
fn clear_errors_for_what_on_call_mistypes() {
    let err = |argv: &[&str]| Cli::try_parse_from(argv).unwrap_err().to_string();
    let e = err(&[
        "restartctl",
        "history",
        "--service",
        "arn:aws:ecs:eu-west-1:111111111111:service/決済/api",
    ]);
    assert!(
        e.contains("--service") && e.contains("characters ECS does not allow"),
        "{e}"
    );
    let e = err(&["restartctl", "status", "--night", "２０２６-11-22"]);
    assert!(e.contains("--night"), "{e}");
    let e = err(&["restartctl", "trigger", "--batch", "-1"]);
    assert!(e.contains("--batch") || e.contains("-1"), "{e}");
    let e = err(&["restartctl", "trigger", "--batch", "4294967296"]);
    assert!(e.contains("--batch"), "{e}");
    assert!(reason("   ").unwrap_err().to_string().contains("empty"));
    assert_eq!(reason(" réseau 🔧 ").unwrap(), "réseau 🔧");
    let e = reason(&"é".repeat(MAX_REASON_CHARS + 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("1001 characters"), "{e}");
    let old = "arn:aws:ecs:eu-west-1:111111111111:service/legacy"
        .parse()
        .unwrap();
    assert!(
        service_id(&old)
            .unwrap_err()
            .to_string()
            .contains("old-format")
    );
}
