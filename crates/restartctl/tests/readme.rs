//! README.md's code blocks, run: every command shown in a ```sh, ```bash, ```shell or ```console
//! block that can run on this machine is run, and each block that needs AWS is marked with
//! `<!-- aws-only -->` on the line right before its fence.
//!
//! What the test knows how to run (anything else in an unmarked block fails it, naming the
//! line, so a new command is either taught here or marked):
//! - `make TARGET [VAR=VALUE...]`: `make -n` of it, from the repository's root (the target and
//!   its prerequisites exist, and its recipes expand; nothing is built).
//! - `restartctl ...`: the binary cargo built, with `--help`/`--version`/`completions` as they
//!   are, and `status`, `plan`, `history`, `pause`, `resume` and `config show` against a table
//!   in moto holding a night of five batches that is the default night at the time the test
//!   runs (`ARN` and `YYYY-MM-DD` stand for one of its services and its date).
//! - `cargo run -p fleet-sim -- --spec FILE [--port N] [--host IP]`: what fleet-sim's main
//!   does, in-process: loads the spec and serves it on the address until the test ends.
//!
//! In aws-only blocks, `restartctl` lines are parsed with restartctl's own command line (so a
//! renamed flag fails here too) and `make` lines dry-run; the rest (`aws`, `cp`) is skipped.
//! Every fence must name its language, so no block escapes this by accident.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use clap::Parser;
use restart_core::night::{NightRecord, PlanSummary};
use restart_core::planner::PlannedBatch;
use restart_core::ports::{CatalogStore, NightStore};
use restart_core::window::{RestartWindow, parse_time_of_day, parse_timezone};

/// The marker of a block that needs AWS.
const AWS_ONLY: &str = "<!-- aws-only -->";

/// The languages of blocks holding commands.
const SHELL: &[&str] = &["sh", "bash", "shell", "console"];

/// restartctl's subcommands that run against the test's table.
const RESTARTCTL_LOCAL: &[&str] = &["status", "plan", "history", "pause", "resume", "config"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fenced block of README.md.
#[derive(Debug)]
struct Block {
    /// The line of its opening fence (1-based).
    line: usize,
    lang: String,
    aws_only: bool,
    commands: Vec<Shown>,
}

/// One command line of a block (continuation lines joined).
#[derive(Debug)]
struct Shown {
    line: usize,
    text: String,
    words: Vec<String>,
}

/// The fenced blocks of a Markdown text, with the commands of the shell ones: in ```console
/// blocks the lines after `$ `, elsewhere every line but comments and blank ones. A line
/// ending in `\` goes on on the next one.
fn blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            if lines[i].trim() == AWS_ONLY {
                let next = lines.get(i + 1).map(|l| l.trim_start());
                if !next.is_some_and(|l| l.starts_with("```")) {
                    return Err(format!(
                        "README.md:{}: {AWS_ONLY} must be on the line right before a fence",
                        i + 1
                    ));
                }
            }
            i += 1;
            continue;
        };
        let lang = info.trim().to_owned();
        if lang.is_empty() {
            return Err(format!(
                "README.md:{}: a fence without a language (```sh, ```console, ```text, ...)",
                i + 1
            ));
        }
        let aws_only = i > 0 && lines[i - 1].trim() == AWS_ONLY;
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push((i + 1, lines[i]));
            i += 1;
        }
        if i == lines.len() {
            return Err(format!(
                "README.md:{}: the block is never closed",
                start + 1
            ));
        }
        i += 1;
        let commands = if SHELL.contains(&lang.as_str()) {
            commands(&body, lang == "console")?
        } else {
            Vec::new()
        };
        out.push(Block {
            line: start + 1,
            lang,
            aws_only,
            commands,
        });
    }
    Ok(out)
}

fn commands(body: &[(usize, &str)], console: bool) -> Result<Vec<Shown>, String> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < body.len() {
        let (line, text) = body[k];
        k += 1;
        let text = if console {
            match text.strip_prefix("$ ") {
                Some(command) => command,
                None => continue,
            }
        } else {
            text
        };
        if text.trim().is_empty() || text.trim_start().starts_with('#') {
            continue;
        }
        let mut joined = text.to_owned();
        while joined.ends_with('\\') && k < body.len() {
            joined.pop();
            joined.push(' ');
            joined.push_str(body[k].1.trim_start());
            k += 1;
        }
        let words = words(&joined).map_err(|e| format!("README.md:{line}: {e}: {joined}"))?;
        if !words.is_empty() {
            out.push(Shown {
                line,
                text: joined,
                words,
            });
        }
    }
    Ok(out)
}

/// A command line's words as a POSIX shell splits them (single and double quotes, backslash
/// escapes), without the comment that a `#` starting a word begins.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("an unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("an unclosed double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("an unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// `make -n ARGS` from the repository's root, outside any make that runs this test (its
/// MAKEFLAGS would carry its jobserver and options to the dry run).
fn make_dry_run(args: &[String]) -> Result<(), String> {
    let out = Command::new("make")
        .arg("-n")
        .args(args)
        .current_dir(root())
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .map_err(|e| format!("make: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`make -n {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The words with the README's placeholders replaced.
fn filled(words: &[String], arn: &str, night: &str) -> Vec<String> {
    words
        .iter()
        .map(|w| match w.as_str() {
            "ARN" => arn.to_owned(),
            "YYYY-MM-DD" => night.to_owned(),
            _ => w.clone(),
        })
        .collect()
}

/// A table in moto holding tonight's default night (as `restartctl` computes it with its
/// default window): five batches of one service each, the first one restarted.
async fn tonight() -> (common::Fixture, String, String) {
    let f = common::Fixture::empty().await;
    let window = RestartWindow::new(
        parse_time_of_day("00:00").unwrap(),
        parse_time_of_day("06:00").unwrap(),
        parse_timezone("UTC").unwrap(),
    )
    .unwrap();
    let night = restartctl::settings::default_night(&window, Utc::now());
    let start = window.night(night).start;
    let mut catalog = Vec::new();
    let mut batches = Vec::new();
    let mut records = Vec::new();
    for b in 1..=5u32 {
        let id = common::sid(common::A, "payments", &format!("svc-{b}"));
        let c = testkit::fixtures::enrolled_record(id, "payments", night);
        let at = start + TimeDelta::minutes(10 * i64::from(b - 1));
        batches.push(PlannedBatch {
            batch: b,
            start_at: at,
            size: 1,
        });
        records.push(NightRecord::planned(&c, night, b, at));
        catalog.push(c);
    }
    f.store.put_catalog(&catalog).await.unwrap();
    f.store.put_batches(night, &batches).await.unwrap();
    f.store.create_records(&records).await.unwrap();
    f.store
        .put_plan_summary(&PlanSummary {
            night,
            batches: 5,
            planned: 5,
            skipped: 0,
            written_at: start,
        })
        .await
        .unwrap();
    let arn = records[0].arn.to_string();
    (f, arn, night.to_string())
}

/// Runs a `cargo run -p fleet-sim -- ARGS` line as fleet-sim's main does: the spec loaded and
/// served on the address (returned, so that it serves until the test ends).
async fn fleet_sim(args: &[String]) -> Result<fleet_sim::RunningSim, String> {
    let mut spec = None;
    let mut port = 0u16;
    let mut host = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} without a value"))?;
        match flag.as_str() {
            "--spec" => spec = Some(root().join(value)),
            "--port" => port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--host" => host = value.parse().map_err(|e| format!("--host {value}: {e}"))?,
            other => {
                return Err(format!(
                    "fleet-sim has no flag {other} that this test knows"
                ));
            }
        }
    }
    let spec = spec.ok_or("fleet-sim needs --spec")?;
    let fleet = fleet_sim::FleetSpec::from_path(&spec)
        .map_err(|e| format!("loading {}: {e}", spec.display()))?;
    fleet_sim::spawn_on(fleet, std::net::SocketAddr::new(host, port))
        .await
        .map_err(|e| format!("serving {}: {e}", spec.display()))
}

#[tokio::test]
async fn every_readme_block_runs_here_or_is_marked_aws_only() {
    let began = Instant::now();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks = blocks(&readme).unwrap_or_else(|e| panic!("{e}"));
    let (f, arn, night) = tonight().await;
    let mut ran = Vec::new();
    let mut aws = Vec::new();
    let mut servers = Vec::new();
    let mut problems = Vec::new();
    for block in &blocks {
        if !SHELL.contains(&block.lang.as_str()) {
            assert!(
                block.commands.is_empty() && !block.aws_only,
                "README.md:{}: only shell blocks are marked aws-only",
                block.line
            );
            continue;
        }
        for c in &block.commands {
            let w = filled(&c.words, &arn, &night);
            let at = format!("README.md:{}: `{}`", c.line, c.text.trim());
            // Ok(true): run here; Ok(false): AWS-only, checked (parsed, dry-run) or only shown.
            let result: Result<bool, String> = match w[0].as_str() {
                "make" => make_dry_run(&w[1..]).map(|()| !block.aws_only),
                "restartctl" if block.aws_only => restartctl::cli::Cli::try_parse_from(&w)
                    .map(|_| false)
                    .map_err(|e| format!("restartctl's command line refuses it: {e}")),
                "restartctl" => {
                    let first = w.get(1).map(String::as_str).unwrap_or("");
                    let plain = w
                        .iter()
                        .any(|x| ["--help", "-h", "--version", "-V"].contains(&x.as_str()))
                        || first == "completions";
                    if plain {
                        let (code, _, err) = common::run(common::bare().args(&w[1..]));
                        if code == 0 { Ok(true) } else { Err(err) }
                    } else if RESTARTCTL_LOCAL.contains(&first) {
                        let (code, _, err) = common::run(
                            common::restartctl()
                                .env("TABLE_NAME", &f.table)
                                .args(&w[1..]),
                        );
                        if code == 0 { Ok(true) } else { Err(err) }
                    } else {
                        Err(format!(
                            "restartctl {first} does not run without AWS here: mark the block \
                             {AWS_ONLY}, or teach this test to run it"
                        ))
                    }
                }
                "cargo"
                    if !block.aws_only
                        && w.get(1..4).is_some_and(|x| x == ["run", "-p", "fleet-sim"])
                        && w.get(4).map(String::as_str) == Some("--") =>
                {
                    fleet_sim(&w[5..]).await.map(|sim| {
                        servers.push(sim);
                        true
                    })
                }
                // AWS, and what goes with it (copying the SAM configuration), is only shown.
                _ if block.aws_only => Ok(false),
                other => Err(format!(
                    "this test does not know how to run `{other}`: mark the block {AWS_ONLY}, \
                     or teach this test to run it"
                )),
            };
            match result {
                Ok(true) => ran.push(at),
                Ok(false) => aws.push(at),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The README shows what the test runs: make demo and make test, the on-call commands, the
    // simulator; and the deploy block is AWS-only.
    for expected in [
        "`make demo`",
        "`make test`",
        "`restartctl pause --reason",
        "`restartctl status --state",
        "`restartctl plan --batch",
        "`cargo run -p fleet-sim",
    ] {
        assert!(
            ran.iter().any(|r| r.contains(expected)),
            "{expected} was not run: {ran:#?}"
        );
    }
    assert!(aws.iter().any(|p| p.contains("`make deploy")), "{aws:#?}");
    drop(servers);
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "the README's blocks took {:?}",
        began.elapsed()
    );
}

#[test]
fn commands_are_split_as_a_shell_splits_them() {
    let w = |s: &str| words(s).unwrap();
    assert_eq!(
        w(r#"restartctl pause --reason "INC-4711: a \"quoted\" failover"   # the kill switch"#),
        [
            "restartctl",
            "pause",
            "--reason",
            r#"INC-4711: a "quoted" failover"#
        ]
    );
    assert_eq!(
        w(r#"aws sns subscribe --attributes '{"FilterPolicy": "{\"owner\": [\"payments\"]}"}'"#),
        [
            "aws",
            "sns",
            "subscribe",
            "--attributes",
            r#"{"FilterPolicy": "{\"owner\": [\"payments\"]}"}"#
        ]
    );
    assert_eq!(
        w("make demo DEMO_WINDOW=60"),
        ["make", "demo", "DEMO_WINDOW=60"]
    );
    assert_eq!(w("a#b c"), ["a#b", "c"]);
    assert!(words("echo 'open").is_err());

    let md = "intro\n\n<!-- aws-only -->\n```sh\naws ecs x \\\n    --y z   # why\n```\n\n```console\n$ restartctl status\nNight 2026-11-22\n```\n";
    let b = blocks(md).unwrap();
    assert_eq!(b.len(), 2);
    assert!(b[0].aws_only);
    assert_eq!(b[0].commands[0].words, ["aws", "ecs", "x", "--y", "z"]);
    assert!(!b[1].aws_only);
    assert_eq!(b[1].commands.len(), 1);
    assert_eq!(b[1].commands[0].words, ["restartctl", "status"]);
    assert!(
        blocks("```\nx\n```\n")
            .unwrap_err()
            .contains("without a language")
    );
    assert!(
        blocks("<!-- aws-only -->\n\n```sh\nx\n```\n")
            .unwrap_err()
            .contains("right before a fence")
    );
}
