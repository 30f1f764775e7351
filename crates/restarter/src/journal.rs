//! What this invocation moved: each record it wrote, noted as the store accepted the move, so
//! that a poll knows where its batch stands without reading the batch a second time.
//!
//! The moves go through [`Restarter::moves`], which notes every accepted one in the
//! invocation's journal ([`noting`]). A refused move (another invocation moved the record
//! first) leaves the record as read: it then looks pending, which costs at most one more poll,
//! never a batch ended early (an ended record never moves again).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;

use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::ports::{Claim, RestartStore, StoreError};

use crate::Restarter;

tokio::task_local! {
    /// The records this invocation moved, by service, the latest move of each.
    static MOVES: RefCell<HashMap<ServiceId, NightRecord>>;
}

/// Runs `work` with a journal, and answers what it returned and `records` as they stand after
/// its moves (records it moved out of `records`' partition included, at their new state).
pub(crate) async fn noting<T>(
    records: &[NightRecord],
    work: impl Future<Output = T>,
) -> (T, Vec<NightRecord>) {
    MOVES
        .scope(RefCell::new(HashMap::new()), async {
            let out = work.await;
            (out, now(records))
        })
        .await
}

/// `records` with this invocation's moves so far applied (as read, outside [`noting`]).
pub(crate) fn now(records: &[NightRecord]) -> Vec<NightRecord> {
    MOVES
        .try_with(|moves| {
            let moves = moves.borrow();
            records
                .iter()
                .map(|r| moves.get(&r.id).unwrap_or(r).clone())
                .collect()
        })
        .unwrap_or_else(|_| records.to_vec())
}

fn note(accepted: bool, to: &NightRecord) -> bool {
    if accepted {
        // Outside a journal (a restart by hand) there is nothing to note.
        let _ = MOVES.try_with(|moves| moves.borrow_mut().insert(to.id.clone(), to.clone()));
    }
    accepted
}

/// The store's moves of a record, each accepted one noted.
#[derive(Debug)]
pub(crate) struct Moves<'a, S>(&'a S);

impl<F, S: RestartStore> Restarter<F, S> {
    pub(crate) fn moves(&self) -> Moves<'_, S> {
        Moves(&self.store)
    }
}

impl<S: RestartStore> Moves<'_, S> {
    pub(crate) async fn move_record(
        &self,
        from: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        Ok(note(self.0.move_record(from, to).await?, to))
    }

    pub(crate) async fn halt_record(
        &self,
        from: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        Ok(note(self.0.halt_record(from, to).await?, to))
    }

    pub(crate) async fn claim(
        &self,
        from: Option<&NightRecord>,
        to: &NightRecord,
        cap: u32,
    ) -> Result<Claim, StoreError> {
        let claim = self.0.claim(from, to, cap).await?;
        note(claim == Claim::Claimed, to);
        Ok(claim)
    }

    pub(crate) async fn take_over(
        &self,
        from: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        Ok(note(self.0.take_over(from, to).await?, to))
    }

    pub(crate) async fn give_back(
        &self,
        from: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        Ok(note(self.0.give_back(from, to).await?, to))
    }

    pub(crate) async fn record_deployment(&self, to: &NightRecord) -> Result<bool, StoreError> {
        Ok(note(self.0.record_deployment(to).await?, to))
    }

    pub(crate) async fn finish(
        &self,
        from: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        Ok(note(self.0.finish(from, to).await?, to))
    }

    pub(crate) async fn finish_holding(
        &self,
        from: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        Ok(note(self.0.finish_holding(from, to).await?, to))
    }
}
