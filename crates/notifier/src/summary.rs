//! The night's summary for on-call (docs/design.md 3.5): counts per outcome and skip reason,
//! the window used, the slowest restarts, the failures (capped), unreachable accounts and the
//! pause/halt state, as the message to the ops topic and the metrics of the EMF line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use restart_core::catalog::{InventoryRun, Unreachable};
use restart_core::eligibility::SkipReason;
use restart_core::guard::NightHolds;
use restart_core::ids::ServiceId;
use restart_core::night::{Halt, NightRecord, NightStatus, Pause, PlanSummary};
use restart_core::notice::{Message, owner_of};
use restart_core::outcome::NightState;

use crate::text::subject;
use restart_core::text::cut;

/// The most failures listed in a summary; the rest are counted.
pub const SUMMARY_FAILURES: usize = 20;
/// The slowest restarts listed in a summary.
pub const SUMMARY_SLOWEST: usize = 5;
/// The most opted-out services and unreachable targets listed in a summary.
pub const SUMMARY_LIST: usize = 20;

/// A restart in the summary's lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRestart {
    pub id: ServiceId,
    pub owner: String,
    pub state: NightState,
    pub duration_seconds: Option<u32>,
    pub detail: Option<String>,
}

/// How a night went, for on-call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightSummary {
    pub night: NaiveDate,
    /// The plan's summary; `None`: no complete plan was written.
    pub plan: Option<PlanSummary>,
    /// Services with a record tonight.
    pub services: u64,
    /// Records per state (counted from the records).
    pub by_state: BTreeMap<NightState, u64>,
    /// Skipped records per reason.
    pub by_skip_reason: BTreeMap<SkipReason, u64>,
    /// The night's counters (moves; a forced restart counts twice).
    pub counters: BTreeMap<NightState, u64>,
    pub first_start: Option<DateTime<Utc>>,
    pub last_finish: Option<DateTime<Utc>>,
    pub slowest: Vec<SummaryRestart>,
    pub failures: Vec<SummaryRestart>,
    pub failures_total: u64,
    pub opted_out: Vec<ServiceId>,
    pub opted_out_total: u64,
    /// Whether inventory recorded its run.
    pub inventory: bool,
    pub reached: u64,
    pub unreachable: Vec<Unreachable>,
    /// Distinct accounts with at least one unreachable region.
    pub unreachable_accounts: u64,
    /// Account-regions lost during the night (after inventory reached them), with how many of
    /// their services were skipped or timed out because of it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lost_during_night: BTreeMap<String, u64>,
    /// Restarts that timed out because their account was lost while they were in flight
    /// (part of `timed_out`; the circuit breaker does not count them).
    #[serde(default)]
    pub timed_out_account_lost: u64,
    /// What the change freeze and the blocking alarms did to the night.
    #[serde(default)]
    pub holds: NightHolds,
    pub paused: Option<Pause>,
    pub halted: Option<Halt>,
}

impl NightSummary {
    /// Builds the summary from what the table holds.
    pub fn build(
        night: NaiveDate,
        records: &[NightRecord],
        status: &NightStatus,
        run: Option<&InventoryRun>,
        plan: Option<&PlanSummary>,
        paused: Option<&Pause>,
    ) -> Self {
        let mut by_state = BTreeMap::new();
        let mut by_skip_reason = BTreeMap::new();
        for r in records {
            *by_state.entry(r.state).or_insert(0) += 1;
            if let Some(reason) = r.skip_reason.filter(|_| r.state == NightState::Skipped) {
                *by_skip_reason.entry(reason).or_insert(0) += 1;
            }
        }
        let entry = |r: &NightRecord| SummaryRestart {
            id: r.id.clone(),
            // A tag value is at most 256 characters: an owner from tags is never cut.
            owner: cut(&owner_of(&r.owner), 256),
            state: r.state,
            duration_seconds: r.duration_seconds,
            detail: r.detail.as_deref().map(|d| cut(d, 300)),
        };
        let mut slowest: Vec<&NightRecord> = records
            .iter()
            .filter(|r| r.state == NightState::Completed && r.duration_seconds.is_some())
            .collect();
        slowest.sort_by(|a, b| {
            b.duration_seconds
                .cmp(&a.duration_seconds)
                .then(a.id.cmp(&b.id))
        });
        let mut failures: Vec<&NightRecord> = records
            .iter()
            .filter(|r| r.state.is_failure() || r.state == NightState::Vanished)
            .collect();
        failures.sort_by(|a, b| a.id.cmp(&b.id));
        let mut opted_out: Vec<&ServiceId> = records
            .iter()
            .filter(|r| r.skip_reason == Some(SkipReason::OptedOut))
            .map(|r| &r.id)
            .collect();
        opted_out.sort();
        let mut lost_during_night: BTreeMap<String, u64> = BTreeMap::new();
        let timed_out_lost = |r: &&NightRecord| r.state == NightState::TimedOut && r.account_lost;
        for r in records
            .iter()
            .filter(|r| r.skip_reason == Some(SkipReason::AccountUnreachable) || timed_out_lost(r))
        {
            *lost_during_night
                .entry(format!("{} {}", r.id.account, r.id.region))
                .or_default() += 1;
        }
        let unreachable = run.map(|r| r.unreachable.clone()).unwrap_or_default();
        let unreachable_accounts = unreachable
            .iter()
            .map(|u| &u.account)
            .collect::<BTreeSet<_>>()
            .len() as u64;
        Self {
            night,
            plan: plan.cloned(),
            services: records.len() as u64,
            by_state,
            by_skip_reason,
            counters: status.counts.clone(),
            first_start: records.iter().filter_map(|r| r.started_at).min(),
            last_finish: records.iter().filter_map(|r| r.finished_at).max(),
            slowest: slowest
                .iter()
                .take(SUMMARY_SLOWEST)
                .map(|r| entry(r))
                .collect(),
            failures_total: failures.len() as u64,
            failures: failures
                .iter()
                .take(SUMMARY_FAILURES)
                .map(|r| entry(r))
                .collect(),
            opted_out_total: opted_out.len() as u64,
            lost_during_night,
            timed_out_account_lost: records.iter().filter(timed_out_lost).count() as u64,
            holds: NightHolds::of(records),
            opted_out: opted_out.into_iter().take(SUMMARY_LIST).cloned().collect(),
            inventory: run.is_some(),
            reached: run.map_or(0, |r| r.reached.len() as u64),
            unreachable,
            unreachable_accounts,
            // Cut like every other text of the summary, so that its message stays far under
            // 256 KiB whatever the table holds (`restartctl pause` takes 1,000 characters).
            paused: paused.map(|p| Pause {
                reason: cut(&p.reason, 1_000),
                by: cut(&p.by, 300),
                at: p.at,
            }),
            halted: status.halted.as_ref().map(|h| Halt {
                reason: cut(&h.reason, 1_000),
                at: h.at,
            }),
        }
    }

    pub fn count(&self, state: NightState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }

    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.by_skip_reason.get(&reason).copied().unwrap_or(0)
    }

    /// The metrics of the summary's EMF line, by name (the alarms use these names).
    pub fn metrics(&self) -> [(&'static str, u64); 11] {
        [
            ("RestartsCompleted", self.count(NightState::Completed)),
            ("RestartsFailed", self.count(NightState::Failed)),
            ("RestartsRolledBack", self.count(NightState::RolledBack)),
            ("RestartsSuperseded", self.count(NightState::Superseded)),
            ("RestartsTimedOut", self.count(NightState::TimedOut)),
            ("RestartsVanished", self.count(NightState::Vanished)),
            ("RestartsHalted", self.count(NightState::Halted)),
            ("ServicesSkipped", self.count(NightState::Skipped)),
            // Planned restarts the window's end stopped (a pause, a late night, full clusters).
            (
                "RestartsWindowClosed",
                self.skipped(SkipReason::WindowClosed),
            ),
            ("UnreachableAccounts", self.unreachable_accounts),
            ("NightHalted", u64::from(self.halted.is_some())),
        ]
    }

    /// The message to the ops topic (attribute `kind` = `summary`).
    pub fn message(&self) -> Message {
        let failed = self.failures_total;
        let mut status = if self.halted.is_some() {
            "HALTED".to_owned()
        } else if self.plan.is_none() {
            "NO PLAN".to_owned()
        } else if failed > 0 {
            format!("{failed} failed")
        } else {
            "ok".to_owned()
        };
        if self.paused.is_some() {
            status.push_str(", paused");
        }
        if !self.holds.frozen.is_empty() {
            status.push_str(", change freeze");
        }
        let subject = subject(&format!(
            "ECS nightly restart {}: {status} - {} completed, {} skipped",
            self.night,
            self.count(NightState::Completed),
            self.count(NightState::Skipped)
        ));

        let mut b = String::new();
        let _ = writeln!(
            b,
            "ECS nightly restart - summary of the night {}",
            self.night
        );
        let _ = writeln!(b);
        match &self.plan {
            Some(p) => {
                let _ = writeln!(
                    b,
                    "Plan: {} batches, {} services planned, {} skipped (written {}).",
                    p.batches,
                    p.planned,
                    p.skipped,
                    p.written_at.format("%Y-%m-%dT%H:%M:%SZ")
                );
            }
            None => {
                let _ = writeln!(
                    b,
                    "Plan: MISSING. No complete plan was written for this night (the batcher \
                     failed or did not run); the figures below are what is known."
                );
            }
        }
        if let Some(h) = &self.halted {
            let _ = writeln!(
                b,
                "Halted at {}: {}",
                h.at.format("%Y-%m-%dT%H:%M:%SZ"),
                h.reason
            );
        }
        if let Some(p) = &self.paused {
            let _ = writeln!(
                b,
                "Paused (kill switch on) since {} by {}: {}",
                p.at.format("%Y-%m-%dT%H:%M:%SZ"),
                p.by,
                p.reason
            );
        }
        let fmt_t = |t: Option<DateTime<Utc>>| {
            t.map_or("-".to_owned(), |t| {
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            })
        };
        let _ = writeln!(
            b,
            "Window used: first start {}, last completion {}.",
            fmt_t(self.first_start),
            fmt_t(self.last_finish)
        );
        let _ = writeln!(b);
        let _ = writeln!(b, "Outcomes ({} services with a record):", self.services);
        for state in NightState::ALL {
            let c = self.count(state);
            if c > 0 {
                let _ = writeln!(b, "  {:<24} {c:>7}", state.as_str());
            }
            if state == NightState::TimedOut && self.timed_out_account_lost > 0 {
                let _ = writeln!(
                    b,
                    "    of which account lost {:>7}  (in flight when their account became \
                     unreachable: not counted by the circuit breaker)",
                    self.timed_out_account_lost
                );
            }
        }
        if !self.by_skip_reason.is_empty() {
            let _ = writeln!(b);
            let _ = writeln!(b, "Skipped, by reason:");
            for (reason, c) in &self.by_skip_reason {
                let _ = writeln!(b, "  {:<24} {c:>7}", reason.as_str());
            }
        }
        if !self.holds.is_empty() {
            let _ = writeln!(b);
            for line in self.holds.lines(SUMMARY_LIST) {
                let _ = writeln!(b, "{}", cut(&line, 600));
            }
        }
        let _ = writeln!(b);
        let _ = writeln!(b, "Slowest restarts:");
        if self.slowest.is_empty() {
            let _ = writeln!(b, "  none completed");
        }
        for r in &self.slowest {
            let _ = writeln!(
                b,
                "  {:>6} s  {}  (owner {})",
                r.duration_seconds.unwrap_or(0),
                r.id,
                r.owner
            );
        }
        let _ = writeln!(b);
        let _ = writeln!(b, "Failures ({}):", self.failures_total);
        if self.failures.is_empty() {
            let _ = writeln!(b, "  none");
        }
        for r in &self.failures {
            let _ = writeln!(
                b,
                "  {:<11} {}  (owner {})",
                r.state.as_str(),
                r.id,
                r.owner
            );
            if let Some(d) = &r.detail {
                let _ = writeln!(b, "              {d}");
            }
        }
        if self.failures_total > self.failures.len() as u64 {
            let _ = writeln!(
                b,
                "  ... and {} more",
                self.failures_total - self.failures.len() as u64
            );
        }
        let _ = writeln!(b);
        if self.inventory {
            let _ = writeln!(
                b,
                "Inventory: {} account-regions reached, {} unreachable ({} accounts).",
                self.reached,
                self.unreachable.len(),
                self.unreachable_accounts
            );
        } else {
            let _ = writeln!(b, "Inventory: no run recorded for this night.");
        }
        for u in self.unreachable.iter().take(SUMMARY_LIST) {
            let _ = writeln!(b, "  {} {}: {}", u.account, u.region, cut(&u.error, 300));
        }
        if self.unreachable.len() > SUMMARY_LIST {
            let _ = writeln!(
                b,
                "  ... and {} more",
                self.unreachable.len() - SUMMARY_LIST
            );
        }
        if !self.lost_during_night.is_empty() {
            let _ = writeln!(
                b,
                "Lost during the night (ECS stopped answering after inventory reached them):"
            );
            for (account_region, n) in self.lost_during_night.iter().take(SUMMARY_LIST) {
                let _ = writeln!(
                    b,
                    "  {account_region}: {n} services skipped or timed out (account_unreachable)"
                );
            }
            if self.lost_during_night.len() > SUMMARY_LIST {
                let _ = writeln!(
                    b,
                    "  ... and {} more",
                    self.lost_during_night.len() - SUMMARY_LIST
                );
            }
        }
        if self.opted_out_total > 0 {
            let _ = writeln!(b);
            let _ = writeln!(b, "Opted out ({}):", self.opted_out_total);
            for id in &self.opted_out {
                let _ = writeln!(b, "  {id}");
            }
            if self.opted_out_total > self.opted_out.len() as u64 {
                let _ = writeln!(
                    b,
                    "  ... and {} more",
                    self.opted_out_total - self.opted_out.len() as u64
                );
            }
        }
        let _ = writeln!(b);
        let _ = writeln!(b, "--- machine-readable ---");
        let metrics: serde_json::Map<String, serde_json::Value> = self
            .metrics()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        let data = json!({
            "kind": "summary",
            "night": self.night,
            "plan_missing": self.plan.is_none(),
            "metrics": metrics,
            "by_state": self.by_state,
            "by_skip_reason": self.by_skip_reason,
            "counters": self.counters,
            "first_start": self.first_start,
            "last_finish": self.last_finish,
            "failures_total": self.failures_total,
            "halted": self.halted,
            "paused": self.paused,
        });
        let _ = writeln!(b, "{data}");
        Message {
            subject,
            body: b,
            attributes: BTreeMap::from([("kind".to_owned(), "summary".to_owned())]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{any_record, assert_subject, night, record, sid, text};
    use proptest::prelude::*;
    use restart_aws::sns::MAX_MESSAGE_BYTES;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The summary of a night whose records carry any owner and detail text.
        #[test]
        fn any_summary_has_a_subject_sns_takes(
            rows in prop::collection::vec((text(64), 0usize..10, prop::option::of(text(400))), 0..30),
            pause in prop::option::of((text(100), text(300))),
            halt in prop::option::of(text(300)),
            huge in prop::bool::weighted(0.1),
        ) {
            // What a table edited by hand could hold: 100,000 characters of 4 bytes each.
            let big = |s: String| if huge { s.repeat(1 + 100_000 / s.len().max(1)) + &"🙁".repeat(100_000) } else { s };
            let pause = pause.map(|(by, reason)| (big(by), big(reason)));
            let halt = halt.map(big);
            let records: Vec<NightRecord> = rows
                .iter()
                .enumerate()
                .map(|(i, (o, k, d))| any_record(sid("111111111111", "c", &format!("s{i}")), o.clone(), *k, d.clone()))
                .collect();
            let at: DateTime<Utc> = "2026-11-22T01:00:00Z".parse().unwrap();
            let status = NightStatus {
                counts: BTreeMap::new(),
                lost: 0,
                halted: halt.clone().map(|reason| Halt { reason, at }),
            };
            let pause = pause.map(|(by, reason)| Pause { by, reason, at });
            let s = NightSummary::build(night(), &records, &status, None, None, pause.as_ref());
            let m = s.message();
            assert_subject(&m.subject)?;
            prop_assert!(m.size() < MAX_MESSAGE_BYTES);
            if let Some(p) = pause.as_ref().filter(|_| !huge) {
                prop_assert!(m.body.contains(&p.by) && m.body.contains(&p.reason));
            }
            if let Some(h) = halt.as_ref().filter(|_| !huge) {
                prop_assert!(m.body.contains(h.as_str()));
            }
        }

    }

    #[test]
    fn the_summary_counts_records_caps_failures_and_says_when_the_plan_is_missing() {
        let mut records = Vec::new();
        for i in 0..30 {
            let mut r = record(
                &sid("111111111111", "c", &format!("f{i:02}")),
                "o",
                NightState::Failed,
                None,
            );
            r.detail = Some("boom".into());
            records.push(r);
        }
        for i in 0..7u32 {
            let mut r = record(
                &sid("111111111111", "c", &format!("ok{i}")),
                "o",
                NightState::Completed,
                None,
            );
            r.duration_seconds = Some(100 + i);
            r.started_at = Some("2026-11-22T00:10:00Z".parse().unwrap());
            r.finished_at = Some(format!("2026-11-22T00:1{i}:00Z").parse().unwrap());
            records.push(r);
        }
        records.push(record(
            &sid("111111111111", "c", "out"),
            "o",
            NightState::Skipped,
            Some(SkipReason::OptedOut),
        ));
        let status = NightStatus {
            counts: BTreeMap::new(),
            lost: 0,
            halted: Some(Halt {
                reason: "too many failures".into(),
                at: "2026-11-22T01:00:00Z".parse().unwrap(),
            }),
        };
        let s = NightSummary::build(night(), &records, &status, None, None, None);
        assert_eq!(s.count(NightState::Failed), 30);
        assert_eq!(s.failures.len(), SUMMARY_FAILURES);
        assert_eq!(
            s.slowest
                .iter()
                .map(|r| r.duration_seconds.unwrap())
                .collect::<Vec<_>>(),
            [106, 105, 104, 103, 102]
        );
        assert_eq!(s.by_skip_reason[&SkipReason::OptedOut], 1);
        let m = s.message();
        assert!(m.body.contains("Plan: MISSING"));
        assert!(m.body.contains("... and 10 more"));
        assert!(m.body.contains("too many failures"));
        assert!(m.body.contains("last completion 2026-11-22T00:16:00Z"));
        assert_eq!(m.attributes["kind"], "summary");
        assert!(m.subject.contains("HALTED"));
        let metrics: BTreeMap<_, _> = s.metrics().into_iter().collect();
        assert_eq!(metrics["RestartsFailed"], 30);
        assert_eq!(metrics["NightHalted"], 1);
        assert_eq!(metrics["ServicesSkipped"], 1);
    }

    #[test]
    fn the_summary_names_a_change_freeze_and_the_holds_the_window_ended() {
        let freeze = "change calendar peak-freeze is CLOSED (a change freeze) until \
                      2026-11-22T03:00:00+00:00: no restart starts while it is";
        let mut records = Vec::new();
        for i in 0..3 {
            let mut r = record(
                &sid("111111111111", "c", &format!("f{i}")),
                "o",
                NightState::Skipped,
                Some(SkipReason::ChangeFreeze),
            );
            r.detail = Some(freeze.into());
            records.push(r);
        }
        let mut held = record(
            &sid("222222222222", "c", "h"),
            "o",
            NightState::Skipped,
            Some(SkipReason::WindowClosed),
        );
        held.detail = restart_core::guard::window_closed_detail(
            None,
            Some("held by blocking alarm ecs-restart-block-db in account 222222222222 (eu-west-1)"),
        );
        records.push(held);
        let status = NightStatus {
            counts: BTreeMap::new(),
            lost: 0,
            halted: None,
        };
        let s = NightSummary::build(night(), &records, &status, None, None, None);
        let m = s.message();
        assert!(m.subject.contains("change freeze"), "{}", m.subject);
        assert!(
            m.body
                .contains("Change freeze: planned restarts not started: 3"),
            "{}",
            m.body
        );
        assert!(m.body.contains("peak-freeze is CLOSED"));
        assert!(m.body.contains("Held until the window's end"));
        assert!(
            m.body
                .contains("ecs-restart-block-db in account 222222222222")
        );
    }
}
