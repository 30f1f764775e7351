//! `trigger --nightly [--night D | --tomorrow]` / `trigger --batch N [--night D]` / `trigger
//! --service ARN [--force]` [--wait]: starts the state machine with the nightly input or a
//! manual one, after checking that the batch or service exists, so that a typo starts nothing.
//!
//! `--nightly` without `--night` sends the schedule's input, `{}`, which inventory reads as the
//! night whose window is open or, between windows, the next one ([`RestartWindow::night_at`]).
//! After today's window has ended that is tomorrow's night: starting it now would run its
//! inventory and plan today and lock it, so tomorrow's scheduled execution would be refused,
//! while on-call most likely meant today's missed night. [`check_nightly`] refuses that unless
//! `--tomorrow` confirms it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use restart_aws::sfn::{ExecutionState, ExecutionStatus, Executions, Started};
use restart_core::clock::SystemClock;
use restart_core::ports::{CatalogStore, NightStore};
use restart_core::window::{NightWindow, RestartWindow};
use serde::Serialize;
use serde_json::json;

use crate::cli::TriggerArgs;
use crate::plan::service_id;
use crate::render::{local, print_json};
use crate::settings::Settings;

/// The longest execution name Step Functions accepts.
const NAME_MAX: usize = 80;

/// A unique execution name: `restartctl-<what>-<UTC time>-<random>`, only letters, digits,
/// `-` and `_`, at most 80 characters.
pub fn execution_name(what: &str, now: DateTime<Utc>, random: u64) -> String {
    let what: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    // A year past 9999 prints with a sign: keep only what names allow there too.
    let stamp: String = now
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let suffix = format!("-{stamp}-{:06x}", random & 0xff_ffff);
    let room = NAME_MAX
        .saturating_sub("restartctl-".len())
        .saturating_sub(suffix.len());
    let what: String = what.chars().take(room).collect();
    format!("restartctl-{what}{suffix}")
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x5bd1_e995);
    h.finish()
}

/// Which night the nightly input `{}` means at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NightlyPick {
    /// The night whose window is open, or today's (or, for a window crossing midnight,
    /// tonight's) whose window has not opened yet.
    Tonight(NightWindow),
    /// Tomorrow's night: the window of the night dated today (the local date) has ended, so
    /// `{}` means the next one.
    Tomorrow {
        today: NightWindow,
        next: NightWindow,
    },
}

/// The local date of `now` in the window's timezone (the UTC date at the very end of chrono's
/// calendar, where the local time does not exist: `with_timezone` would panic there).
fn local_date(window: &RestartWindow, now: DateTime<Utc>) -> NaiveDate {
    let utc = now.naive_utc();
    let offset = window.timezone().offset_from_utc_datetime(&utc).fix();
    utc.checked_add_offset(offset)
        .map_or(utc.date(), |t| t.date())
}

/// The night `{}` starts at `now`: the one `night_at` picks, which is tomorrow's when it is
/// dated after today. `night_at` returns the first night (from yesterday's on) whose window
/// has not ended, so a pick dated tomorrow means today's window has ended.
pub fn nightly_pick(window: &RestartWindow, now: DateTime<Utc>) -> NightlyPick {
    let next = window.night_at(now);
    let today = local_date(window, now);
    if next.night > today {
        NightlyPick::Tomorrow {
            today: window.night(today),
            next,
        }
    } else {
        NightlyPick::Tonight(next)
    }
}

/// Whether `trigger --nightly` (without `--night`) may start at `now`: refused when `{}` would
/// start tomorrow's night and `tomorrow` (the `--tomorrow` flag) does not confirm it, and when
/// `--tomorrow` is given but `{}` would start tonight's night. The messages name the nights and
/// the command to use instead.
pub fn check_nightly(
    window: &RestartWindow,
    now: DateTime<Utc>,
    tomorrow: bool,
) -> anyhow::Result<NightWindow> {
    let tz = window.timezone();
    match (nightly_pick(window, now), tomorrow) {
        (NightlyPick::Tonight(w), false) | (NightlyPick::Tomorrow { next: w, .. }, true) => Ok(w),
        (NightlyPick::Tomorrow { today, next }, false) => bail!(
            "`trigger --nightly` would start tomorrow's night, not today's: it is {}, after the \
             end of night {}'s window ({}, ended {}), so the nightly input `{{}}` means the next \
             night, {} (its window opens {}). Starting it now would run its inventory and plan \
             today and lock it, and tomorrow's scheduled execution would be refused. Nothing \
             was started.\n  - For a missed night, name it: `restartctl trigger --nightly \
             --night {}` (after its window its restarts end window_closed; restart what matters \
             with `trigger --service ARN`).\n  - To start tomorrow's night now anyway, add \
             --tomorrow.\n  (The window is --timezone, --window-start and --window-end: use the \
             values the hub stack was deployed with.)",
            local(now, tz),
            today.night,
            window,
            local(today.end, tz),
            next.night,
            local(next.start, tz),
            today.night,
        ),
        (NightlyPick::Tonight(w), true) => {
            let when = if w.contains(now) {
                format!("its window is open now, until {}", local(w.end, tz))
            } else {
                format!("its window opens {}", local(w.start, tz))
            };
            bail!(
                "--tomorrow: the nightly input `{{}}` would start night {} ({when}), not \
                 tomorrow's: today's window has not ended yet. Drop --tomorrow to start it. \
                 Nothing was started",
                w.night
            )
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TriggerView {
    #[serde(flatten)]
    pub started: Started,
    pub input: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ExecutionState>,
}

pub async fn run(settings: &Settings, args: &TriggerArgs) -> anyhow::Result<ExitCode> {
    let state_machine = settings.state_machine_arn.as_deref().ok_or_else(|| {
        anyhow!(
            "no state machine: pass --state-machine-arn or set STATE_MACHINE_ARN (the hub \
             stack's output StateMachineArn); nothing was started"
        )
    })?;
    let store = settings.store()?;
    let hint = "check --table, --region and your credentials; nothing was started";
    let (input, what) = match (&args.batch, &args.service) {
        // The scheduled input: `{}`, or the night asked for.
        _ if args.nightly => match args.night {
            Some(night) => (
                json!({"night": night.to_string()}),
                format!("night-{}", night.format("%Y%m%d")),
            ),
            None => {
                check_nightly(&settings.window, Utc::now(), args.tomorrow)?;
                (json!({}), "night".to_owned())
            }
        },
        (Some(batch), None) => {
            let night = settings.night(args.night);
            let batches = store
                .read_batches(night)
                .await
                .with_context(|| format!("reading night {night}'s batches; {hint}"))?;
            if batches.is_empty() {
                bail!(
                    "night {night} has no plan: there is no batch {batch} to run. Nothing was \
                     started. `restartctl plan --night DATE` shows a night's batches"
                );
            }
            if !batches.iter().any(|b| b.batch == *batch) {
                let numbers: Vec<String> = batches.iter().map(|b| b.batch.to_string()).collect();
                bail!(
                    "night {night} has no batch {batch}: its batches are {}. Nothing was started",
                    numbers.join(", ")
                );
            }
            (
                json!({
                    "mode": "batch",
                    "night": night.to_string(),
                    "batch": batch,
                    "outside_window": args.outside_window,
                }),
                format!("batch-{}-{batch}", night.format("%Y%m%d")),
            )
        }
        (None, Some(arn)) => {
            let id = service_id(arn).context("nothing was started")?;
            let catalog = store
                .read_catalog(std::slice::from_ref(&id.account))
                .await
                .with_context(|| format!("reading account {}'s catalog; {hint}", id.account))?;
            let record = catalog.iter().find(|r| r.id == id).ok_or_else(|| {
                anyhow!(
                    "{arn} is not in the catalog: inventory has never seen it. Check the ARN \
                     (account, region, cluster, service) and that account {} is one of the \
                     hub's ACCOUNTS. Nothing was started",
                    id.account
                )
            })?;
            if let Some(gone) = record.gone_since {
                bail!(
                    "{arn} is gone: inventory has not found it since {gone}. Nothing was started"
                );
            }
            (
                json!({"mode": "service", "service_arn": arn.to_string(), "force": args.force}),
                format!("service-{}", id.service),
            )
        }
        _ => bail!("name one of --nightly, --batch or --service"),
    };
    let executions = Executions::new(&settings.sdk, state_machine, Arc::new(SystemClock));
    let name = execution_name(&what, Utc::now(), random());
    let started = executions.start(&name, &input).await.map_err(|e| {
        anyhow!(
            "StartExecution on {state_machine} failed: {e}; check --state-machine-arn (the hub \
             stack's output StateMachineArn), the region, and that your role may \
             states:StartExecution"
        )
    })?;
    if !settings.json() {
        println!("Started {}\n  input: {input}", started.execution_arn);
    }
    let mut view = TriggerView {
        started,
        input,
        result: None,
    };
    let mut code = ExitCode::SUCCESS;
    if args.wait {
        let state = wait(
            &executions,
            &view.started.execution_arn,
            args.poll_seconds,
            settings.json(),
        )
        .await?;
        if !state.succeeded() {
            code = ExitCode::FAILURE;
        }
        if !settings.json() {
            print_end(&state);
        }
        view.result = Some(state);
    }
    if settings.json() {
        print_json(&view)?;
    }
    Ok(code)
}

/// Looks at the execution every `poll_seconds` until it is no longer running.
async fn wait(
    executions: &Executions,
    arn: &str,
    poll_seconds: u64,
    quiet: bool,
) -> anyhow::Result<ExecutionState> {
    let mut last: Option<ExecutionStatus> = None;
    loop {
        let state = executions.describe(arn).await.map_err(|e| {
            anyhow!(
                "DescribeExecution of {arn} failed: {e}; the execution goes on, look at it in \
                 the Step Functions console"
            )
        })?;
        if last.as_ref() != Some(&state.status) && !quiet {
            eprintln!("{}  {}", Utc::now().format("%H:%M:%S"), state.status);
        }
        last = Some(state.status.clone());
        if !state.is_running() {
            return Ok(state);
        }
        tokio::time::sleep(Duration::from_secs(poll_seconds)).await;
    }
}

fn print_end(state: &ExecutionState) {
    println!("Execution {}", state.status);
    if let Some(output) = &state.output {
        println!("  output: {output}");
    }
    if let Some(error) = &state.error {
        println!("  error: {error}");
    }
    if let Some(cause) = &state.cause {
        println!("  cause: {cause}");
    }
    if !state.succeeded() {
        println!(
            "  `restartctl status` shows the records; the execution's history is in the Step \
             Functions console"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use restart_core::window::{parse_time_of_day, parse_timezone};

    fn window(start: &str, end: &str, tz: &str) -> RestartWindow {
        RestartWindow::new(
            parse_time_of_day(start).unwrap(),
            parse_time_of_day(end).unwrap(),
            parse_timezone(tz).unwrap(),
        )
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn night(w: &NightWindow) -> String {
        w.night.to_string()
    }

    #[test]
    fn nightly_starts_the_open_night_and_refuses_tomorrows_after_the_window() {
        let w = window("00:00", "06:00", "UTC");
        // Inside the window: tonight's night.
        assert_eq!(
            night(&check_nightly(&w, at("2026-11-22T03:00:00Z"), false).unwrap()),
            "2026-11-22"
        );
        // After the window's end, `{}` means 2026-11-23: refused, naming the missed night.
        for now in [
            "2026-11-22T06:00:00Z",
            "2026-11-22T15:00:00Z",
            "2026-11-22T23:59:59Z",
        ] {
            let err = check_nightly(&w, at(now), false).unwrap_err().to_string();
            assert!(err.contains("would start tomorrow's night"), "{now}: {err}");
            assert!(
                err.contains("restartctl trigger --nightly --night 2026-11-22"),
                "{now}: {err}"
            );
            assert!(err.contains("night, 2026-11-23"), "{now}: {err}");
            assert!(err.contains("add --tomorrow"), "{now}: {err}");
            assert!(err.contains("Nothing was started"), "{now}: {err}");
            // --tomorrow confirms it.
            assert_eq!(
                night(&check_nightly(&w, at(now), true).unwrap()),
                "2026-11-23"
            );
        }
        // Inside the window --tomorrow is refused: `{}` would start tonight's night.
        let err = check_nightly(&w, at("2026-11-22T03:00:00Z"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("would start night 2026-11-22"), "{err}");
        assert!(
            err.contains("window is open now, until 2026-11-22 06:00 UTC"),
            "{err}"
        );
    }

    #[test]
    fn a_window_crossing_midnight_picks_tonights_night_all_day() {
        // 22:00-04:00 in Madrid (UTC+1 in November).
        let w = window("22:00", "04:00", "Europe/Madrid");
        let cases = [
            // 15:00 local: last night's window ended at 04:00, tonight's opens at 22:00.
            ("2026-11-22T14:00:00Z", "2026-11-22"),
            // 23:00 local and 02:00 local the next day: the night of 2026-11-22 is open.
            ("2026-11-22T22:00:00Z", "2026-11-22"),
            ("2026-11-23T01:00:00Z", "2026-11-22"),
            // 05:00 local: tonight's night is dated today.
            ("2026-11-23T04:00:00Z", "2026-11-23"),
        ];
        for (now, expected) in cases {
            assert_eq!(
                nightly_pick(&w, at(now)),
                NightlyPick::Tonight(w.night(expected.parse().unwrap())),
                "{now}"
            );
            assert_eq!(night(&check_nightly(&w, at(now), false).unwrap()), expected);
        }
        let err = check_nightly(&w, at("2026-11-22T14:00:00Z"), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("night 2026-11-22 (its window opens 2026-11-22 22:00 CET)"),
            "{err}"
        );
    }

    #[test]
    fn the_local_date_decides_in_the_windows_timezone() {
        // 00:00-06:00 in Tokyo (UTC+9): 2026-11-22T20:00Z is 05:00 on the 23rd, inside the
        // night of the 23rd; 2026-11-22T22:00Z is 07:00 on the 23rd, after it.
        let w = window("00:00", "06:00", "Asia/Tokyo");
        assert_eq!(
            night(&check_nightly(&w, at("2026-11-22T20:00:00Z"), false).unwrap()),
            "2026-11-23"
        );
        let err = check_nightly(&w, at("2026-11-22T22:00:00Z"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--night 2026-11-23"), "{err}");
        assert!(err.contains("it is 2026-11-23 07:00 JST"), "{err}");
    }

    proptest! {
        /// At any instant of the next centuries and in any of these timezones, a refused pick
        /// is tomorrow's night after today's ended window, and an accepted one has not ended.
        #[test]
        fn the_pick_is_tonights_or_tomorrows(
            secs in 0i64..(400 * 366 * 86_400),
            start in 0u32..(24 * 60),
            length in 1u32..(24 * 60),
            tz in prop::sample::select(vec!["UTC", "Europe/Madrid", "America/Santiago", "Asia/Kathmandu", "Pacific/Kiritimati", "America/Los_Angeles"]),
        ) {
            let fmt = |m: u32| format!("{:02}:{:02}", m / 60 % 24, m % 60);
            let w = window(&fmt(start), &fmt(start + length), tz);
            let now = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
            match nightly_pick(&w, now) {
                NightlyPick::Tonight(n) => {
                    prop_assert!(now < n.end);
                    prop_assert!(n.night <= local_date(&w, now));
                    prop_assert!(check_nightly(&w, now, false).is_ok());
                }
                NightlyPick::Tomorrow { today, next } => {
                    prop_assert!(today.end <= now && now < next.start);
                    prop_assert_eq!(Some(next.night), today.night.succ_opt());
                    prop_assert!(check_nightly(&w, now, false).is_err());
                    prop_assert!(check_nightly(&w, now, true).is_ok());
                }
            }
        }
    }

    #[test]
    fn execution_names_are_valid_and_unique_enough() {
        let now: DateTime<Utc> = "2026-11-22T03:04:05Z".parse().unwrap();
        assert_eq!(
            execution_name("batch-20261122-3", now, 0xabc_def1),
            "restartctl-batch-20261122-3-20261122T030405Z-bcdef1"
        );
        let long = execution_name(&format!("service-{}", "x".repeat(255)), now, 1);
        assert_eq!(long.len(), 80);
        assert!(long.ends_with("-20261122T030405Z-000001"));
        assert!(
            execution_name("a b/c", now, 2)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
