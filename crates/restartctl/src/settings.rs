//! What every command needs: the configuration (flags, then environment variables), one SDK
//! config, the store, the window and the default night.

use anyhow::{Context, anyhow, bail};
use aws_config::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;
use chrono::{DateTime, NaiveDate, Utc};
use restart_aws::dynamodb::DynamoStore;
use restart_core::window::{RestartWindow, parse_time_of_day, parse_timezone};

use crate::cli::{Global, Output};

/// The retention the store is given; the CLI writes only the pause item, which never expires.
const TTL_DAYS: u32 = 90;

/// Parsed configuration and the SDK config, built once per run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub output: Output,
    pub sdk: SdkConfig,
    pub table: Option<String>,
    pub state_machine_arn: Option<String>,
    pub window: RestartWindow,
    pub member_role_name: Option<String>,
    pub external_id: Option<String>,
    /// `--endpoint-url`, passed on to the AWS CLI by `connect`.
    pub endpoint_url: Option<String>,
}

impl Settings {
    /// Reads the flags (clap has already applied the environment fallbacks) and loads the SDK
    /// config (credentials chain, profile, region, endpoint). Every problem is reported at once.
    pub async fn load(g: &Global) -> anyhow::Result<Self> {
        let window = window(g)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = &g.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &g.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(u) = &g.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            bail!(
                "no AWS region: pass --region (the hub's region), set AWS_REGION, or use a \
                 profile that has one"
            );
        }
        Ok(Self {
            output: g.output,
            sdk,
            table: g.table.clone(),
            state_machine_arn: g.state_machine_arn.clone(),
            window,
            member_role_name: g.member_role_name.clone(),
            external_id: g.external_id.clone(),
            endpoint_url: g.endpoint_url.clone(),
        })
    }

    /// The store on the orchestrator's table.
    pub fn store(&self) -> anyhow::Result<DynamoStore> {
        let table = self.table.as_deref().ok_or_else(|| {
            anyhow!(
                "no table: pass --table or set TABLE_NAME (the hub stack's output TableName: \
                 `aws cloudformation describe-stacks --query \"Stacks[0].Outputs\"`)"
            )
        })?;
        Ok(restart_aws::dynamo_store(&self.sdk, table, TTL_DAYS))
    }

    /// `night`, else the night in progress, else the last one.
    pub fn night(&self, night: Option<NaiveDate>) -> NaiveDate {
        night.unwrap_or_else(|| default_night(&self.window, Utc::now()))
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// The restart window from `--timezone`, `--window-start` and `--window-end` (or their
/// variables), every problem at once.
pub fn window(g: &Global) -> anyhow::Result<RestartWindow> {
    let mut problems = Vec::new();
    let tz = parse_timezone(&g.timezone)
        .map_err(|e| problems.push(format!("--timezone/TIMEZONE: {e}")))
        .ok();
    let start = parse_time_of_day(&g.window_start)
        .map_err(|e| problems.push(format!("--window-start/WINDOW_START: {e}")))
        .ok();
    let end = parse_time_of_day(&g.window_end)
        .map_err(|e| problems.push(format!("--window-end/WINDOW_END: {e}")))
        .ok();
    if let (Some(tz), Some(start), Some(end)) = (tz, start, end) {
        match RestartWindow::new(start, end, tz) {
            Ok(w) if problems.is_empty() => return Ok(w),
            Ok(_) => {}
            Err(e) => problems.push(format!("--window-start/--window-end: {e}")),
        }
    }
    Err(anyhow!(
        "invalid configuration (use the values the hub stack was deployed with):\n  - {}",
        problems.join("\n  - ")
    ))
    .context("reading the restart window")
}

/// The night whose window is in progress at `now`; between windows, the last one that began.
pub fn default_night(window: &RestartWindow, now: DateTime<Utc>) -> NaiveDate {
    let w = window.night_at(now);
    if now < w.start {
        w.night.pred_opt().unwrap_or(w.night)
    } else {
        w.night
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: &str, end: &str, tz: &str) -> RestartWindow {
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

    #[test]
    fn the_default_night_is_the_one_in_progress_or_the_last() {
        let utc = w("00:00", "06:00", "UTC");
        assert_eq!(
            default_night(&utc, at("2026-11-22T03:00:00Z")).to_string(),
            "2026-11-22"
        );
        // In the afternoon, on-call looks at last night.
        assert_eq!(
            default_night(&utc, at("2026-11-22T15:00:00Z")).to_string(),
            "2026-11-22"
        );
        // A window crossing midnight: at 01:00 the night started the day before.
        let late = w("22:00", "04:00", "Europe/Madrid");
        assert_eq!(
            default_night(&late, at("2026-11-23T00:30:00Z")).to_string(),
            "2026-11-22"
        );
        assert_eq!(
            default_night(&late, at("2026-11-22T20:00:00Z")).to_string(),
            "2026-11-21"
        );
    }
}
