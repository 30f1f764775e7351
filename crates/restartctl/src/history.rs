//! `history --service ARN [--nights N]`: one service's outcomes, durations and deployments
//! across nights, newest first.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use restart_core::eligibility::SkipReason;
use restart_core::outcome::NightState;
use serde::Serialize;

use crate::cli::HistoryArgs;
use crate::night::HINT;
use crate::plan::service_id;
use crate::render::{duration, or_dash, print_json, table, utc_seconds};
use crate::settings::Settings;

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub night: NaiveDate,
    pub batch: Option<u32>,
    pub state: NightState,
    pub skip_reason: Option<SkipReason>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<u32>,
    pub previous_deployment: Option<String>,
    pub deployment_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    pub service_arn: String,
    pub nights: Vec<HistoryRow>,
}

pub async fn run(settings: &Settings, args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let id = service_id(&args.service)?;
    let store = settings.store()?;
    let records = store
        .service_history(&id, args.nights)
        .await
        .with_context(|| format!("reading {}'s history; {HINT}", args.service))?;
    if records.is_empty() {
        anyhow::bail!(
            "{} has no night records in table {}: the orchestrator never planned it (records \
             are kept 90 days). Check the ARN (account, region, cluster, service) and that the \
             service carries the enrollment tag",
            args.service,
            store.table()
        );
    }
    let view = HistoryView {
        service_arn: args.service.to_string(),
        nights: records
            .into_iter()
            .map(|r| HistoryRow {
                night: r.night,
                batch: r.batch,
                state: r.state,
                skip_reason: r.skip_reason,
                started_at: r.started_at,
                finished_at: r.finished_at,
                duration_seconds: r.duration_seconds,
                previous_deployment: r.previous_deployment,
                deployment_id: r.deployment_id,
                detail: r.detail,
            })
            .collect(),
    };
    if settings.json() {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", view.service_arn);
    let mut t = table([
        "night",
        "batch",
        "state",
        "started",
        "took",
        "deployment",
        "before",
        "detail",
    ]);
    for r in &view.nights {
        t.add_row(vec![
            r.night.to_string(),
            or_dash(r.batch),
            match r.skip_reason {
                Some(reason) => format!("{} ({reason})", r.state),
                None => r.state.to_string(),
            },
            or_dash(r.started_at.map(utc_seconds)),
            or_dash(r.duration_seconds.map(duration)),
            or_dash(r.deployment_id.as_deref()),
            or_dash(r.previous_deployment.as_deref()),
            or_dash(r.detail.as_deref()),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}
