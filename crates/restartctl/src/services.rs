//! A night's services one row each, as `plan --batch N` and `status --state S` list them: who
//! and where (account, region, cluster, service, owner), where they stand (batch, state, when
//! started, why skipped or what failed) and the long ARN that `trigger --service`, `history`
//! and `connect` take, so on-call never has to find it elsewhere.

use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use restart_core::eligibility::SkipReason;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use serde::Serialize;

use crate::render::{or_dash, table, utc_seconds};

/// One service of a night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRow {
    pub account: String,
    pub region: String,
    pub cluster: String,
    pub service: String,
    pub owner: String,
    /// `None` for a skipped service.
    pub batch: Option<u32>,
    pub state: NightState,
    pub skip_reason: Option<SkipReason>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deployment_id: Option<String>,
    pub detail: Option<String>,
    pub service_arn: String,
}

impl From<&NightRecord> for ServiceRow {
    fn from(r: &NightRecord) -> Self {
        Self {
            account: r.id.account.to_string(),
            region: r.id.region.clone(),
            cluster: r.id.cluster.clone(),
            service: r.id.service.clone(),
            owner: r.owner.clone(),
            batch: r.batch,
            state: r.state,
            skip_reason: r.skip_reason,
            started_at: r.started_at,
            finished_at: r.finished_at,
            deployment_id: r.deployment_id.clone(),
            detail: r.detail.clone(),
            service_arn: r.arn.to_string(),
        }
    }
}

/// The rows of `records` whose state is one of `states` (all of them when `states` is empty),
/// by batch (skipped last), then account, region, cluster and service.
pub fn rows(records: &[NightRecord], states: &[NightState]) -> Vec<ServiceRow> {
    let mut rows: Vec<ServiceRow> = records
        .iter()
        .filter(|r| states.is_empty() || states.contains(&r.state))
        .map(ServiceRow::from)
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &ServiceRow| {
            (
                r.batch.is_none(),
                r.batch,
                r.account.clone(),
                r.region.clone(),
                r.cluster.clone(),
                r.service.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    rows
}

/// The rows as a table: the ARN last, since it is the longest and what gets copied.
pub fn render(rows: &[ServiceRow]) -> String {
    let mut t = table([
        "batch", "account", "region", "cluster", "service", "owner", "state", "started", "detail",
        "arn",
    ]);
    for r in rows {
        // A skipped service's detail is its reason; a restart's is what ECS or the restarter
        // said about it.
        let detail = r
            .skip_reason
            .map(|s| s.to_string())
            .or_else(|| r.detail.clone());
        t.add_row(vec![
            or_dash(r.batch),
            r.account.clone(),
            r.region.clone(),
            r.cluster.clone(),
            r.service.clone(),
            r.owner.clone(),
            r.state.to_string(),
            or_dash(r.started_at.map(utc_seconds)),
            or_dash(detail),
            r.service_arn.clone(),
        ]);
    }
    format!("{t}\n")
}

/// Parses a night state by its name (`failed`, `rolled_back`, ...), offering every name in
/// `--help`, in completions and in the error for a wrong one.
pub fn state_parser() -> impl TypedValueParser<Value = NightState> {
    PossibleValuesParser::new(NightState::ALL.map(NightState::as_str)).try_map(|name| {
        NightState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| format!("{name:?} is not a night state"))
    })
}

/// `failed`, `failed or timed_out`, `failed, rolled_back or timed_out`.
pub fn names(states: &[NightState]) -> String {
    let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_read_as_a_list() {
        assert_eq!(names(&[NightState::Failed]), "failed");
        assert_eq!(
            names(&[NightState::Failed, NightState::TimedOut]),
            "failed or timed_out"
        );
        assert_eq!(
            names(&[
                NightState::Failed,
                NightState::RolledBack,
                NightState::TimedOut
            ]),
            "failed, rolled_back or timed_out"
        );
    }
}
