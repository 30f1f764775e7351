//! `pause --reason` and `resume`: the kill switch (docs/design.md 3.5), recording who, when and why.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use restart_core::night::Pause;
use restart_core::ports::RestartStore;
use serde::Serialize;

use crate::aws;
use crate::cli::PauseArgs;
use crate::render::{print_json, utc_seconds};
use crate::settings::Settings;

/// What `pause` and `resume` did.
#[derive(Debug, Serialize)]
pub struct SwitchView {
    /// `paused`, `already_paused`, `resumed`, `not_paused`.
    pub action: &'static str,
    /// The pause now in force (pause) or just lifted (resume).
    pub pause: Option<Pause>,
    /// How the caller was identified (pause only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<aws::Caller>,
}

fn pause_line(p: &Pause) -> String {
    format!(
        "since {} by {}: {}",
        utc_seconds(p.at),
        p.by,
        p.reason.trim()
    )
}

/// The longest reason a pause takes, in characters: it is shown in every `status` and in the
/// night's summary to the ops topic, whose message must stay under 256 KiB.
pub const MAX_REASON_CHARS: usize = 1_000;

/// The pause's reason as recorded: `--reason` trimmed, not empty, at most
/// [`MAX_REASON_CHARS`] characters, any script welcome.
pub fn reason(raw: &str) -> anyhow::Result<String> {
    let reason = raw.trim();
    if reason.is_empty() {
        anyhow::bail!("--reason is empty: say why (it is shown to everyone who runs `status`)");
    }
    let n = reason.chars().count();
    if n > MAX_REASON_CHARS {
        anyhow::bail!(
            "--reason is {n} characters long: keep it to {MAX_REASON_CHARS} (it is shown in \
             every `status` and in the night's summary); link to a ticket for the details"
        );
    }
    Ok(reason.to_owned())
}

pub async fn pause(settings: &Settings, args: &PauseArgs) -> anyhow::Result<ExitCode> {
    let reason = reason(&args.reason)?;
    let store = settings.store()?;
    let current = store
        .pause()
        .await
        .context("reading the kill switch; check --table and your credentials")?;
    if let Some(p) = current {
        let view = SwitchView {
            action: "already_paused",
            pause: Some(p.clone()),
            caller: None,
        };
        if settings.json() {
            print_json(&view)?;
        } else {
            println!(
                "Already paused {}\nLeft as it is; run `restartctl resume` first to change the reason.",
                pause_line(&p)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let caller = aws::caller(&settings.sdk).await;
    if let Some(why) = &caller.sts_error {
        eprintln!(
            "warning: recording the pause as {} because STS could not say who you are ({why})",
            caller.id
        );
    }
    let p = Pause {
        reason,
        by: caller.id.clone(),
        at: Utc::now(),
    };
    store
        .set_pause(Some(&p))
        .await
        .context("turning the kill switch on failed: nothing was paused; check --table and that your role may dynamodb:PutItem")?;
    let view = SwitchView {
        action: "paused",
        pause: Some(p.clone()),
        caller: Some(caller),
    };
    if settings.json() {
        print_json(&view)?;
    } else {
        println!(
            "Paused {}\nNo new restart starts anywhere; restarts in flight are still watched. \
             Run `restartctl resume` to go on.",
            pause_line(&p)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn resume(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = settings.store()?;
    let current = store
        .pause()
        .await
        .context("reading the kill switch; check --table and your credentials")?;
    let Some(p) = current else {
        if settings.json() {
            print_json(&SwitchView {
                action: "not_paused",
                pause: None,
                caller: None,
            })?;
        } else {
            println!("Not paused: nothing to do.");
        }
        return Ok(ExitCode::SUCCESS);
    };
    store
        .set_pause(None)
        .await
        .context("turning the kill switch off failed: still paused; check that your role may dynamodb:DeleteItem")?;
    if settings.json() {
        print_json(&SwitchView {
            action: "resumed",
            pause: Some(p),
            caller: None,
        })?;
    } else {
        println!(
            "Resumed (was paused {})\nBatches waiting on the pause start at their next check \
             (at most 5 minutes); `restartctl status --watch` follows them.",
            pause_line(&p)
        );
    }
    Ok(ExitCode::SUCCESS)
}
