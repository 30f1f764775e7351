//! The `notifier` function: one digest per owner, and the night's summary for on-call
//! (docs/design.md 3.1-3.5, 3.7).
//!
//! Inputs:
//! - `{ "mode": "owners", "night": "YYYY-MM-DD" }`: gathers the night's owner-actionable
//!   findings ([`notice::findings`]: tag missing or malformed, restart risks, controllers that
//!   a forced deployment does not apply to, old-format ARNs, and restarts that failed, rolled
//!   back or timed out, tonight's and last night's), keeps those the cooldown lets through
//!   ([`notice::due`], `NOTICE_COOLDOWN_DAYS` per owner, service and kind), and publishes one
//!   digest per owner to `OWNER_TOPIC_ARN` ([`digest::digest`]: one account per message,
//!   "part i of n", each message under 256 KiB, in the publisher's requests:
//!   [`Publisher::requests`], for SNS PublishBatch with at most 10 entries).
//! - `{ "mode": "summary", "night": "YYYY-MM-DD" }`: publishes the night's summary
//!   ([`NightSummary`], [`summary`]) to `OPS_TOPIC_ARN` and prints one EMF line with its counts
//!   (namespace `EcsNightlyRestart`, dimension `Function=notifier`, which the alarms match).
//!
//! What the domain decides (findings, cooldown) is `restart_core::notice`'s; how a digest and
//! the summary read is this crate's ([`digest`], [`summary`]); SNS's limits are the adapter's
//! (`restart_aws::sns`), reached through the [`Publisher`] port.
//!
//! A digest is sent once per owner and night. The table records, per owner, how many of the
//! night's digest messages went out (after each PublishBatch request) and, once all did, the
//! night each (service, kind) was told. A rerun rebuilds the same digest (findings told this
//! same night are due again, so the cooldown does not hide them) and sends only the messages
//! not yet sent: running `owners` twice sends nothing the second time. If the findings changed
//! between a run that stopped half-way and its rerun, the rest of the digest is rebuilt from
//! tonight's facts.
//!
//! The EMF line is printed before the summary is published, so a failing topic never hides the
//! metrics the alarms watch; a retried summary prints it again (alarms compare with 0).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use restart_core::clock::Clock;
use restart_core::config::AccountsSource;
use restart_core::ids::AccountId;
use restart_core::notice::{self, DigestSent, Finding, Message, NoticeSent};
use restart_core::ports::{CatalogStore, NightStore, NoticeStore, Publisher, RestartStore};
use restart_core::telemetry::{Emf, Unit};
use restart_core::{Config, HandlerError};

pub mod aws;
pub mod digest;
pub mod summary;
#[cfg(test)]
mod testing;
mod text;

pub use summary::NightSummary;

/// The function's input, by `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Owners { night: NaiveDate },
    Summary { night: NaiveDate },
}

/// The fields of every mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NightField {
    #[serde(deserialize_with = "restart_core::window::deserialize_night")]
    night: NaiveDate,
}

impl Event {
    /// Reads `mode`, then the mode's fields, so that an error names the field at fault.
    pub fn parse(event: serde_json::Value) -> Result<Self, HandlerError> {
        let serde_json::Value::Object(mut fields) = event else {
            return Err(HandlerError::invalid_input(
                "the event is not valid: expected an object with `mode` and `night`",
            ));
        };
        let mode = fields.remove("mode");
        let rest = serde_json::Value::Object(fields);
        match mode.as_ref().and_then(|m| m.as_str()) {
            Some("owners") => HandlerError::parse_event::<NightField>(rest)
                .map(|f| Self::Owners { night: f.night }),
            Some("summary") => HandlerError::parse_event::<NightField>(rest)
                .map(|f| Self::Summary { night: f.night }),
            _ => Err(HandlerError::invalid_input(format!(
                "the event is not valid: mode: expected one of `owners`, `summary`, got {}",
                mode.map_or("nothing".to_owned(), |m| m.to_string())
            ))),
        }
    }
}

/// What `owners` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnersOutput {
    pub night: NaiveDate,
    /// Findings of the night (before the cooldown).
    pub findings: u64,
    /// Findings the cooldown held back.
    pub held_by_cooldown: u64,
    /// Owners whose digest went out in this run.
    pub owners_notified: u64,
    /// Owners whose digest had already gone out (a rerun).
    pub owners_already_notified: u64,
    /// Messages published by this run.
    pub messages: u64,
}

/// What `summary` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryOutput {
    pub night: NaiveDate,
    pub plan_missing: bool,
    pub metrics: BTreeMap<String, u64>,
}

/// The function's output, by mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Owners(OwnersOutput),
    Summary(SummaryOutput),
}

/// The handler with its ports: the table's night side (`store`), its notices (`notices`) and
/// the topics (`publisher`).
#[derive(Debug)]
pub struct Notifier<S, N, P> {
    pub config: Arc<Config>,
    pub store: S,
    pub notices: N,
    pub publisher: P,
    pub clock: Arc<dyn Clock>,
}

/// One owner's digest, ready to go out.
#[derive(Debug)]
struct OwnerDigest {
    owner: String,
    due: Vec<Finding>,
    messages: Vec<Message>,
    /// Messages that went out before (a rerun).
    already: usize,
}

impl<S, N, P> Notifier<S, N, P>
where
    S: CatalogStore + NightStore + RestartStore,
    N: NoticeStore,
    P: Publisher,
{
    /// Handles one invocation: the raw event in, what was sent out.
    pub async fn handle(&self, event: serde_json::Value) -> Result<Output, HandlerError> {
        // Boxed: the two modes' futures are deep, and the runtime's future holds them.
        match Event::parse(event)? {
            Event::Owners { night } => Box::pin(self.owners(night)).await.map(Output::Owners),
            Event::Summary { night } => Box::pin(self.summary(night)).await.map(Output::Summary),
        }
    }

    /// The accounts whose catalog is read: the configured list, or those inventory reached and
    /// those with a record tonight when the accounts are discovered (an AWS Config aggregator,
    /// AWS Organizations).
    async fn accounts(
        &self,
        night: NaiveDate,
        records: &[restart_core::night::NightRecord],
    ) -> Result<Vec<AccountId>, HandlerError> {
        match &self.config.accounts {
            AccountsSource::List(accounts) => Ok(accounts.clone()),
            AccountsSource::ConfigAggregator | AccountsSource::Organizations { .. } => {
                let run = self.store.get_inventory_run(night).await?;
                let mut accounts: BTreeSet<AccountId> =
                    records.iter().map(|r| r.id.account.clone()).collect();
                accounts.extend(
                    run.iter()
                        .flat_map(|r| r.reached.iter().map(|t| t.account.clone())),
                );
                Ok(accounts.into_iter().collect())
            }
        }
    }

    #[tracing::instrument(skip(self), fields(mode = "owners"))]
    async fn owners(&self, night: NaiveDate) -> Result<OwnersOutput, HandlerError> {
        let topic = self.config.owner_topic_arn.as_deref().ok_or_else(|| {
            HandlerError::misconfigured(
                "OWNER_TOPIC_ARN is not set: mode `owners` publishes the owners' digests to it",
            )
        })?;
        let now = self.clock.now();
        let records = self.store.read_night(night).await?;
        let previous = match night.pred_opt() {
            Some(last) => self.store.read_night(last).await?,
            None => Vec::new(),
        };
        let accounts = self.accounts(night, &records).await?;
        let catalog = self.store.read_catalog(&accounts).await?;
        let findings = notice::findings(night, &records, &previous, &catalog);

        let mut by_owner: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
        for f in &findings {
            by_owner.entry(f.owner.clone()).or_default().push(f.clone());
        }
        let mut out = OwnersOutput {
            night,
            findings: findings.len() as u64,
            ..OwnersOutput::default()
        };
        let mut digests: Vec<OwnerDigest> = Vec::new();
        for (owner, list) in by_owner {
            let known = self.notices.owner_notices(&owner).await?;
            let (due, held) = notice::due(
                &list,
                &known.last_told(),
                night,
                self.config.notice_cooldown_days,
            );
            out.held_by_cooldown += held as u64;
            if due.is_empty() {
                continue;
            }
            let messages = digest::digest(
                &owner,
                night,
                &due,
                &self.config.tag_key,
                self.config.notice_cooldown_days,
            );
            let already = known
                .digest(night)
                .map_or(0, |d| d.sent as usize)
                .min(messages.len());
            if already == messages.len() {
                out.owners_already_notified += 1;
                continue;
            }
            digests.push(OwnerDigest {
                owner,
                due,
                messages,
                already,
            });
        }

        // Every message still to send, in owner order, with the index of its owner's digest.
        // `already <= messages.len()` (it is `min`-ed above), so the slice is in bounds.
        let pending: Vec<(usize, &Message)> = digests
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.messages[d.already..].iter().map(move |m| (i, m)))
            .collect();
        let sizes: Vec<usize> = pending.iter().map(|(_, m)| m.size()).collect();
        let mut sent: Vec<usize> = digests.iter().map(|d| d.already).collect();
        // `publish_batches` gives ranges within `sizes`, one per entry of `pending`; each
        // pending entry's owner index is an index of `digests` and `sent`.
        for range in self.publisher.requests(&sizes) {
            let batch: Vec<Message> = pending[range.clone()]
                .iter()
                .map(|(_, m)| (*m).clone())
                .collect();
            let results = self.publisher.publish(topic, &batch).await;
            // A digest's progress moves only over messages sent in order.
            let mut touched = BTreeSet::new();
            let mut failed = None;
            let mut blocked = BTreeSet::new();
            for ((owner, _), result) in pending[range].iter().zip(&results) {
                match result {
                    Ok(()) if !blocked.contains(owner) => {
                        sent[*owner] += 1;
                        touched.insert(*owner);
                        out.messages += 1;
                    }
                    Ok(()) => out.messages += 1,
                    Err(e) => {
                        blocked.insert(*owner);
                        failed.get_or_insert_with(|| e.clone());
                    }
                }
            }
            let progress: Vec<DigestSent> = touched
                .iter()
                .map(|&i| DigestSent {
                    owner: digests[i].owner.clone(),
                    night,
                    parts: digests[i].messages.len() as u32,
                    sent: sent[i] as u32,
                    at: now,
                })
                .collect();
            self.notices.put_digests(&progress).await?;
            let done: Vec<NoticeSent> = touched
                .iter()
                .filter(|&&i| sent[i] == digests[i].messages.len())
                .flat_map(|&i| {
                    digests[i].due.iter().map(|f| NoticeSent {
                        owner: f.owner.clone(),
                        id: f.id.clone(),
                        kind: f.kind,
                        night,
                        sent_at: now,
                    })
                })
                .collect();
            self.notices.put_notices(&done).await?;
            out.owners_notified += touched
                .iter()
                .filter(|&&i| sent[i] == digests[i].messages.len())
                .count() as u64;
            if let Some(e) = failed {
                tracing::warn!(error = %e, "a digest could not be published; a retry sends the rest");
                return Err(e.into());
            }
        }
        tracing::info!(
            night = %night,
            findings = out.findings,
            held = out.held_by_cooldown,
            owners = out.owners_notified,
            messages = out.messages,
            "owners notified"
        );
        Ok(out)
    }

    #[tracing::instrument(skip(self), fields(mode = "summary"))]
    async fn summary(&self, night: NaiveDate) -> Result<SummaryOutput, HandlerError> {
        let topic = self.config.ops_topic_arn.as_deref().ok_or_else(|| {
            HandlerError::misconfigured(
                "OPS_TOPIC_ARN is not set: mode `summary` publishes the night's summary to it",
            )
        })?;
        let records = self.store.read_night(night).await?;
        let status = self.store.night_status(night).await?;
        let run = self.store.get_inventory_run(night).await?;
        let plan = self.store.plan_summary(night).await?;
        let pause = self.store.pause().await?;
        let seen = self.store.holds_seen(night).await?;
        let mut summary = NightSummary::build(
            night,
            &records,
            &status,
            run.as_ref(),
            plan.as_ref(),
            pause.as_ref(),
        );
        summary.holds = summary.holds.with_seen(seen);
        emf(&summary).emit(self.clock.now());
        let message = summary.message();
        if let Some(Err(e)) = self
            .publisher
            .publish(topic, std::slice::from_ref(&message))
            .await
            .into_iter()
            .next()
        {
            return Err(e.into());
        }
        tracing::info!(night = %night, plan_missing = plan.is_none(), "summary published");
        Ok(SummaryOutput {
            night,
            plan_missing: summary.plan.is_none(),
            metrics: summary
                .metrics()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        })
    }
}

/// The summary's EMF line: its counts, for the alarms (`Function=notifier`).
pub fn emf(summary: &NightSummary) -> Emf {
    let mut emf = Emf::new().dimension("Function", "notifier");
    for (name, value) in summary.metrics() {
        emf = emf.metric(name, value as f64, Unit::Count);
    }
    emf.property("night", serde_json::json!(summary.night))
        .property("plan_missing", serde_json::json!(summary.plan.is_none()))
}
