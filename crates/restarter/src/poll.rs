//! The `poll` mode: the started restarts judged (see `watch`), the window closed, the circuit
//! breaker tripped when it must, then what is still planned halted, or started unless paused.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use restart_core::HandlerError;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::night::{BatchCounts, Halt, NightRecord};
use restart_core::outcome::NightState;
use restart_core::ports::FleetControl;

use crate::cluster::Tally;
use crate::event::service_id;
use crate::{PollOutput, Restarter, Store, journal, metrics};

/// Where the circuit breaker's counts of the night come from.
#[derive(Debug, Clone, Copy)]
enum BreakerCounts {
    /// The batches' kept counts with batch `own`'s as this invocation sees them: one read
    /// whatever the fleet's size (a batch's poll).
    Batches { own: u32 },
    /// The night's exact counters (the night's last step, a restart by hand).
    Exact,
}

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// `poll` of a batch: see the crate documentation.
    #[tracing::instrument(skip(self))]
    pub async fn poll_batch(
        &self,
        night: NaiveDate,
        batch: u32,
        outside_window: bool,
    ) -> Result<PollOutput, HandlerError> {
        self.check_batch(night, batch).await?;
        let read_at = self.clock.now();
        // Read once: where the batch stands afterwards is what was read with this
        // invocation's own moves applied (`journal`).
        let records = self.store.read_batch_guarded(night, batch).await?;
        let (tally, after) = journal::noting(
            &records,
            self.poll_records(
                night,
                BreakerCounts::Batches { own: batch },
                &records,
                outside_window,
            ),
        )
        .await;
        self.keep_counts(night, batch, read_at, &after).await;
        let mut tally = tally?;
        let out = self.poll_output(night, Some(batch), None, &after);
        tally.batch_done = u64::from(out.done);
        // On-call's batches outside the window have no deadline.
        if !outside_window && !out.done && self.clock.now() > self.deadline(night) {
            tracing::error!(
                night = %night,
                batch,
                pending = out.pending,
                deadline = %self.deadline(night),
                "the batch is still pending after the night's deadline (the window's end, the longer of the restart timeout and the claim lease, and two poll intervals)"
            );
            tally.past_deadline = 1;
        }
        self.emit(night, Some(batch), "poll", &tally);
        Ok(out)
    }

    /// `close`: the night's last step, once every batch has ended (done, halted, or failed
    /// for good). Every record of every batch that is not terminal (what a failed batch left:
    /// restarts in flight, claims, planned services), and every restart by hand still in
    /// flight, is worked on as a poll would, until none is left: judged, its claims settled, planned ones started while the window is open and
    /// ended `window_closed` after it. Answers like a poll of the whole night.
    #[tracing::instrument(skip(self))]
    pub async fn close_night(&self, night: NaiveDate) -> Result<PollOutput, HandlerError> {
        let batches = self.store.read_batches(night).await?;
        let (mut open, mut pending) = (Vec::new(), Vec::new());
        for b in &batches {
            let left: Vec<NightRecord> = self
                .store
                .read_batch(night, b.batch)
                .await?
                .into_iter()
                .filter(|r| !r.state.is_terminal())
                .collect();
            if !left.is_empty() {
                open.push(b.batch);
                pending.extend(left);
            }
        }
        // Restarts by hand are outside any batch: one whose execution stopped watching it is
        // judged here too.
        let by_hand: Vec<NightRecord> = self
            .store
            .read_skipped(night)
            .await?
            .into_iter()
            .filter(|r| !r.state.is_terminal())
            .collect();
        let by_hand_ids: Vec<ServiceId> = by_hand.iter().map(|r| r.id.clone()).collect();
        pending.extend(by_hand);
        if pending.is_empty() {
            // The usual night: every batch finished what it had. Nothing to read or judge.
            return Ok(self.poll_output(night, None, None, &[]));
        }
        tracing::warn!(night = %night, batches = ?open, pending = pending.len(), "the night's last step finds records its batches left");
        let tally = self
            .poll_records(night, BreakerCounts::Exact, &pending, false)
            .await?;
        let mut after = Vec::new();
        for &b in &open {
            after.extend(self.store.read_batch(night, b).await?);
        }
        for id in &by_hand_ids {
            after.extend(self.store.find_record(night, id).await?);
        }
        self.emit(night, None, "close", &tally);
        Ok(self.poll_output(night, None, None, &after))
    }

    /// `poll` of one service's record (a manual restart).
    #[tracing::instrument(skip(self), fields(service = %arn))]
    pub async fn poll_service(
        &self,
        night: NaiveDate,
        arn: &ServiceArn,
    ) -> Result<PollOutput, HandlerError> {
        let id = service_id(arn)?;
        let Some(record) = self.store.find_record(night, &id).await? else {
            return Err(HandlerError::invalid_input(format!(
                "night {night} has no record of {arn}"
            )));
        };
        // A manual restart is on-call's explicit request: the window does not hold it back.
        let tally = self
            .poll_records(
                night,
                BreakerCounts::Exact,
                std::slice::from_ref(&record),
                true,
            )
            .await?;
        self.emit(night, None, "poll", &tally);
        let after: Vec<NightRecord> = self
            .store
            .find_record(night, &id)
            .await?
            .into_iter()
            .collect();
        Ok(self.poll_output(night, None, Some(arn.clone()), &after))
    }

    fn poll_output(
        &self,
        night: NaiveDate,
        batch: Option<u32>,
        service_arn: Option<ServiceArn>,
        records: &[NightRecord],
    ) -> PollOutput {
        let mut counts = BTreeMap::new();
        for r in records {
            *counts.entry(r.state).or_default() += 1;
        }
        let pending = records.iter().filter(|r| !r.state.is_terminal()).count() as u64;
        PollOutput {
            night,
            batch,
            service_arn,
            done: pending == 0,
            pending,
            counts,
            wait_seconds: self.poll_wait(records),
        }
    }
    /// Keeps where batch `batch` stands (its records as read at `read_at`, with this
    /// invocation's moves) for the other batches' circuit breakers. A failed write fails
    /// nothing: the batch's next invocation writes them again.
    pub(crate) async fn keep_counts(
        &self,
        night: NaiveDate,
        batch: u32,
        read_at: DateTime<Utc>,
        records: &[NightRecord],
    ) {
        let counts = BatchCounts::of(records, read_at);
        if let Err(e) = self.store.put_batch_counts(night, batch, &counts).await {
            tracing::warn!(night = %night, batch, error = %e, "the batch's counts could not be kept; its next invocation writes them");
        }
    }

    /// Judges the started records, trips the breaker if it must, then halts or starts what is
    /// still planned (unless paused), the breaker counting the night as `counts` says.
    async fn poll_records(
        &self,
        night: NaiveDate,
        counts: BreakerCounts,
        records: &[NightRecord],
        outside_window: bool,
    ) -> Result<Tally, HandlerError> {
        let (watched, rest): (Vec<_>, Vec<_>) = records
            .iter()
            .cloned()
            .partition(|r| r.state == NightState::Started && r.deployment_id.is_some());
        let mut tally = self.watch(watched).await?;
        let closed = self.close_window(night, &rest, outside_window).await?;
        tally.skipped += closed;
        let rest: Vec<NightRecord> = if closed > 0 {
            rest.into_iter()
                .filter(|r| r.state != NightState::Planned)
                .collect()
        } else {
            rest
        };
        let status = match counts {
            BreakerCounts::Batches { own: batch } => {
                let own = BatchCounts::of(&journal::now(records), self.clock.now());
                self.store
                    .night_tally(night)
                    .await?
                    .status_with(batch, &own)
            }
            BreakerCounts::Exact => self.store.night_status(night).await?,
        };
        let halt = match status.halted {
            Some(h) => Some(h),
            None => match status.breaker_trips(self.config.failure_threshold_percent) {
                Some(reason) => {
                    let halt = Halt {
                        reason,
                        at: self.clock.now(),
                    };
                    if self.store.halt(night, &halt).await? {
                        tracing::error!(night = %night, reason = %halt.reason, "circuit breaker: night halted");
                        metrics::night_halted(night, &halt);
                    }
                    Some(halt)
                }
                None => None,
            },
        };
        if let Some(halt) = halt {
            tally.halted += self.halt_planned(&rest, &halt).await?;
            // Claimed starts without a deployment still need one look: UpdateService may
            // have run. Halted, it is never sent now.
            let unfinished: Vec<NightRecord> = rest
                .into_iter()
                .filter(|r| r.state == NightState::Started)
                .collect();
            let pass = self.pass(night, outside_window, false);
            tally.add(self.advance(unfinished, &pass).await?);
            return Ok(tally);
        }
        if self.store.pause().await?.is_some() {
            // Paused: nothing starts, but lapsed claims are still settled (never by sending
            // UpdateService) and end at their timeout, so a pause that outlives the window
            // leaves nothing unjudged.
            let claims: Vec<NightRecord> = rest
                .into_iter()
                .filter(|r| r.state == NightState::Started)
                .collect();
            let pass = self.pass(night, outside_window, false);
            tally.add(self.advance(claims, &pass).await?);
            return Ok(tally);
        }
        let pass = self.pass(night, outside_window, true);
        tally.add(self.advance(rest, &pass).await?);
        Ok(tally)
    }
}
