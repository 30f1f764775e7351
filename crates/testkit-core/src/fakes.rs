//! In-memory implementations of the ports, for handler tests. The port contract suite
//! (`crates/aws/tests/store_contract.rs`) holds them to what the DynamoDB adapter does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use restart_core::catalog::{CatalogRecord, DiscoveredService, InventoryRun, Listed, Target};
use restart_core::ids::{AccountId, ServiceId};
use restart_core::night::{
    BatchCounts, Created, Halt, NightLock, NightRecord, NightStatus, NightTally, Pause, PlanSummary,
};
use restart_core::outcome::NightState;
use restart_core::owner::AccountOwner;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{
    CatalogStore, Claim, DiscoveryError, NightStore, RestartStore, ServiceInventory, SettingsStore,
    SharedPace, StoreError,
};

/// A fleet held in memory: services per target, and targets that fail.
#[derive(Debug, Default)]
pub struct MemoryFleet {
    pub services: Mutex<HashMap<Target, Vec<DiscoveredService>>>,
    pub failing: Mutex<HashMap<Target, DiscoveryError>>,
}

impl MemoryFleet {
    pub fn add(&self, d: DiscoveredService) {
        let target = Target {
            account: d.snapshot.id.account.clone(),
            region: d.snapshot.id.region.clone(),
        };
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        services.entry(target).or_default().push(d);
    }

    pub fn remove(&self, id: &ServiceId) {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        for list in services.values_mut() {
            list.retain(|d| &d.snapshot.id != id);
        }
    }

    pub fn fail(&self, target: Target, error: DiscoveryError) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        failing.insert(target, error);
    }
}

impl ServiceInventory for MemoryFleet {
    async fn discover(&self, target: &Target) -> Result<Vec<DiscoveredService>, DiscoveryError> {
        if let Some(e) = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(target)
        {
            return Err(e.clone());
        }
        let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        Ok(services.get(target).cloned().unwrap_or_default())
    }
}

/// The table held in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// The catalog's records as written (`last_seen` as written, not derived).
    pub catalog: Mutex<BTreeMap<ServiceId, CatalogRecord>>,
    /// The night each account and region was last listed completely (`mark_listed`).
    pub listed: Mutex<BTreeMap<Target, NaiveDate>>,
    pub runs: Mutex<BTreeMap<NaiveDate, InventoryRun>>,
    /// Records written by `put_catalog`, counted.
    pub catalog_writes: Mutex<u64>,
    /// Listing items written by `mark_listed` (one per account and region), counted.
    pub listed_writes: Mutex<u64>,
    /// The night side: plans, batches, records.
    pub nights: Mutex<MemoryNights>,
    /// Each night's lock.
    pub locks: Mutex<BTreeMap<NaiveDate, NightLock>>,
    /// UpdateService slots taken per account and region and Unix second ([`SharedPace`]).
    pub pace: Mutex<HashMap<(Target, i64), u32>>,
    /// Each account's default owner ([`SettingsStore`]).
    pub account_owners: Mutex<BTreeMap<AccountId, AccountOwner>>,
    /// When set, [`SettingsStore::account_owners`] fails with this error (a table that cannot
    /// be read), and the writes still work.
    pub settings_error: Mutex<Option<StoreError>>,
    /// Passed before every call of the night's side ([`NightStore`], [`RestartStore`]): a
    /// simulation interleaves invocations there and answers faults ([`StoreGate`]).
    pub gate: Mutex<Option<Arc<dyn StoreGate>>>,
}

/// What a [`MemoryStore`] call passes first: a point where a simulation lets other invocations
/// run, and may answer an error instead of the call (the call then changes nothing).
pub trait StoreGate: Send + Sync + std::fmt::Debug {
    /// Before the store's `op`.
    fn pass(&self, op: &'static str) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// A boxed future of a [`StoreGate`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl SettingsStore for MemoryStore {
    async fn account_owners(&self) -> Result<BTreeMap<AccountId, AccountOwner>, StoreError> {
        if let Some(e) = self
            .settings_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(e);
        }
        Ok(self
            .account_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    async fn put_account_owners(
        &self,
        owners: &BTreeMap<AccountId, AccountOwner>,
    ) -> Result<(), StoreError> {
        let mut map = self
            .account_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.extend(owners.iter().map(|(a, o)| (a.clone(), o.clone())));
        Ok(())
    }

    async fn delete_account_owner(&self, account: &AccountId) -> Result<bool, StoreError> {
        let mut map = self
            .account_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(map.remove(account).is_some())
    }
}

/// How many seconds of slots [`MemoryStore`] keeps behind the newest window asked for (the
/// table's items expire).
const PACE_KEPT_SECONDS: i64 = 300;

impl SharedPace for MemoryStore {
    async fn take(&self, target: &Target, second: i64, limit: u32) -> Result<bool, StoreError> {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        pace.retain(|(_, s), _| *s >= second.saturating_sub(PACE_KEPT_SECONDS));
        let taken = pace.entry((target.clone(), second)).or_default();
        if *taken >= limit {
            return Ok(false);
        }
        *taken += 1;
        Ok(true)
    }
}

impl CatalogStore for MemoryStore {
    async fn read_catalog(&self, accounts: &[AccountId]) -> Result<Vec<CatalogRecord>, StoreError> {
        let catalog = self.catalog.lock().unwrap_or_else(|e| e.into_inner());
        let listed = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut accounts = accounts.to_vec();
        accounts.sort();
        accounts.dedup();
        for account in accounts {
            // The catalog is in service order, whose first part is the account: one range each.
            let from = ServiceId {
                account: account.clone(),
                region: String::new(),
                cluster: String::new(),
                service: String::new(),
            };
            for r in catalog
                .range(from..)
                .map(|(_, r)| r)
                .take_while(|r| r.id.account == account)
            {
                let target = Target {
                    account: r.id.account.clone(),
                    region: r.id.region.clone(),
                };
                out.push(Listed::seen(r.clone(), listed.get(&target).copied()));
            }
        }
        Ok(out)
    }

    async fn mark_listed(&self, targets: &[Target], night: NaiveDate) -> Result<(), StoreError> {
        let mut listed = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        for t in targets {
            let at = listed.entry(t.clone()).or_insert(night);
            *at = (*at).max(night);
        }
        *self.listed_writes.lock().unwrap_or_else(|e| e.into_inner()) += targets.len() as u64;
        Ok(())
    }

    async fn put_catalog(&self, records: &[CatalogRecord]) -> Result<(), StoreError> {
        let mut catalog = self.catalog.lock().unwrap_or_else(|e| e.into_inner());
        for r in records {
            catalog.insert(r.id.clone(), r.clone());
        }
        *self
            .catalog_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += records.len() as u64;
        Ok(())
    }

    async fn put_inventory_run(&self, run: &InventoryRun) -> Result<(), StoreError> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.insert(run.night, run.clone());
        Ok(())
    }

    async fn get_inventory_run(
        &self,
        night: NaiveDate,
    ) -> Result<Option<InventoryRun>, StoreError> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(runs.get(&night).cloned())
    }

    async fn lock_night(&self, lock: &NightLock) -> Result<NightLock, StoreError> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // The table compares whole epoch seconds (`until_epoch < at`): a lock lapses once the
        // second of its `until` is over.
        let lapsed = |held: &NightLock| held.until.timestamp() < lock.at.timestamp();
        match locks.get(&lock.night) {
            Some(held) if held.holder != lock.holder && !lapsed(held) => Ok(held.clone()),
            _ => {
                locks.insert(lock.night, lock.clone());
                Ok(lock.clone())
            }
        }
    }

    async fn unlock_night(&self, night: NaiveDate, holder: &str) -> Result<bool, StoreError> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.get(&night).is_some_and(|held| held.holder == holder) {
            locks.remove(&night);
            return Ok(true);
        }
        Ok(false)
    }
}

/// The night side of the table held in memory (the fields [`MemoryStore`] uses for
/// [`NightStore`]).
#[derive(Debug, Default)]
pub struct MemoryNights {
    /// One record per night and service.
    pub records: BTreeMap<(NaiveDate, ServiceId), NightRecord>,
    pub batches: BTreeMap<NaiveDate, BTreeMap<u32, PlannedBatch>>,
    pub summaries: BTreeMap<NaiveDate, PlanSummary>,
    /// Items written or deleted (records, batches, summaries), counted.
    pub writes: u64,
    pub pause: Option<Pause>,
    pub status: BTreeMap<NaiveDate, NightStatus>,
    /// Restarts in flight per night and cluster (`ServiceId::cluster_key`).
    pub inflight: BTreeMap<(NaiveDate, String), u32>,
    /// Finished restarts still holding their place in `inflight` (their deployment rolls), per
    /// night and cluster.
    pub held:
        BTreeMap<(NaiveDate, String), std::collections::BTreeSet<restart_core::ports::HeldRestart>>,
    /// Holds noted, per night, scope and what held.
    pub holds: BTreeMap<(NaiveDate, String, String), restart_core::guard::HoldSeen>,
    /// Each batch's last counts, per night.
    pub batch_counts: BTreeMap<NaiveDate, BTreeMap<u32, BatchCounts>>,
}

impl MemoryNights {
    fn count(&mut self, night: NaiveDate, state: NightState) {
        *self
            .status
            .entry(night)
            .or_default()
            .counts
            .entry(state)
            .or_default() += 1;
        self.writes += 1;
    }

    /// An outcome's counters: its state's, and `lost` for a restart lost with its account.
    fn count_outcome(&mut self, to: &NightRecord) {
        self.count(to.night, to.state);
        if to.account_lost {
            self.status.entry(to.night).or_default().lost += 1;
        }
    }

    /// The record at `r`'s key. The table keys a record by its night, its partition (its
    /// batch, or the skipped one) and its service, and every conditional write looks at that
    /// key only: a record of the service in another partition is not there.
    fn at_key(&self, r: &NightRecord) -> Option<&NightRecord> {
        self.records
            .get(&(r.night, r.id.clone()))
            .filter(|found| found.batch == r.batch)
    }

    /// Whether reads of the whole night see `r`: skipped records always, a batch's records
    /// only while the batch has its batch item (the table finds batches by their items).
    fn listed(&self, r: &NightRecord) -> bool {
        r.batch.is_none_or(|b| {
            self.batches
                .get(&r.night)
                .is_some_and(|batches| batches.contains_key(&b))
        })
    }
}

impl MemoryStore {
    /// Installs `gate` before every call of the night's side.
    pub fn set_gate(&self, gate: Arc<dyn StoreGate>) {
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(gate);
    }

    async fn pass_gate(&self, op: &'static str) -> Result<(), StoreError> {
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match gate {
            Some(gate) => gate.pass(op).await,
            None => Ok(()),
        }
    }

    fn nights(&self) -> std::sync::MutexGuard<'_, MemoryNights> {
        self.nights.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn batch_records(&self, night: NaiveDate, batch: u32) -> Vec<NightRecord> {
        self.nights()
            .records
            .values()
            .filter(|r| r.night == night && r.batch == Some(batch))
            .cloned()
            .collect()
    }

    /// How many night items have been written or deleted so far.
    pub fn night_writes(&self) -> u64 {
        self.nights().writes
    }

    /// Sets a record as it stands (a test moving a service on, as the restarter would).
    pub fn set_record(&self, record: NightRecord) {
        let mut n = self.nights();
        n.records.insert((record.night, record.id.clone()), record);
    }

    /// One service's record of one night.
    pub fn record(&self, night: NaiveDate, id: &ServiceId) -> Option<NightRecord> {
        self.nights().records.get(&(night, id.clone())).cloned()
    }
}

impl NightStore for MemoryStore {
    async fn plan_summary(&self, night: NaiveDate) -> Result<Option<PlanSummary>, StoreError> {
        self.pass_gate("plan_summary").await?;
        Ok(self.nights().summaries.get(&night).cloned())
    }

    async fn put_plan_summary(&self, summary: &PlanSummary) -> Result<(), StoreError> {
        self.pass_gate("put_plan_summary").await?;
        let mut n = self.nights();
        n.summaries.insert(summary.night, summary.clone());
        n.writes += 1;
        Ok(())
    }

    async fn read_batches(&self, night: NaiveDate) -> Result<Vec<PlannedBatch>, StoreError> {
        self.pass_gate("read_batches").await?;
        Ok(self
            .nights()
            .batches
            .get(&night)
            .map(|b| b.values().copied().collect())
            .unwrap_or_default())
    }

    async fn put_batches(
        &self,
        night: NaiveDate,
        batches: &[PlannedBatch],
    ) -> Result<(), StoreError> {
        self.pass_gate("put_batches").await?;
        let mut n = self.nights();
        n.writes += batches.len() as u64;
        let entry = n.batches.entry(night).or_default();
        for b in batches {
            entry.insert(b.batch, *b);
        }
        Ok(())
    }

    async fn delete_batches(&self, night: NaiveDate, batches: &[u32]) -> Result<(), StoreError> {
        self.pass_gate("delete_batches").await?;
        let mut n = self.nights();
        n.writes += batches.len() as u64;
        if let Some(entry) = n.batches.get_mut(&night) {
            for b in batches {
                entry.remove(b);
            }
        }
        Ok(())
    }

    async fn read_batch_guarded(
        &self,
        night: NaiveDate,
        batch: u32,
    ) -> Result<Vec<NightRecord>, StoreError> {
        // Read as consistently as `read_batch`; a gate of its own, so that a simulation or a
        // benchmark tells the restarter's reads apart.
        self.pass_gate("read_batch_guarded").await?;
        Ok(self.batch_records(night, batch))
    }

    async fn read_batch(
        &self,
        night: NaiveDate,
        batch: u32,
    ) -> Result<Vec<NightRecord>, StoreError> {
        self.pass_gate("read_batch").await?;
        Ok(self.batch_records(night, batch))
    }

    async fn read_skipped(&self, night: NaiveDate) -> Result<Vec<NightRecord>, StoreError> {
        self.pass_gate("read_skipped").await?;
        Ok(self
            .nights()
            .records
            .values()
            .filter(|r| r.night == night && r.batch.is_none())
            .cloned()
            .collect())
    }

    async fn read_night(&self, night: NaiveDate) -> Result<Vec<NightRecord>, StoreError> {
        self.pass_gate("read_night").await?;
        let n = self.nights();
        Ok(n.records
            .values()
            .filter(|r| r.night == night && n.listed(r))
            .cloned()
            .collect())
    }

    async fn read_assignment(
        &self,
        night: NaiveDate,
    ) -> Result<BTreeMap<ServiceId, u32>, StoreError> {
        self.pass_gate("read_assignment").await?;
        let n = self.nights();
        Ok(n.records
            .values()
            .filter(|r| r.night == night && n.listed(r))
            .filter_map(|r| r.batch.map(|b| (r.id.clone(), b)))
            .collect())
    }

    async fn create_records(&self, records: &[NightRecord]) -> Result<Created, StoreError> {
        self.pass_gate("create_records").await?;
        let mut n = self.nights();
        let mut out = Created::default();
        for r in records {
            let key = (r.night, r.id.clone());
            if let std::collections::btree_map::Entry::Vacant(slot) = n.records.entry(key) {
                slot.insert(r.clone());
                n.writes += 1;
                out.created += 1;
            } else {
                out.existing.push(r.id.clone());
            }
        }
        out.existing.sort();
        Ok(out)
    }

    async fn move_record(&self, from: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        self.pass_gate("move_record").await?;
        let mut n = self.nights();
        // A move to the key it is at is no move.
        if from.night == to.night && from.id == to.id && from.batch == to.batch {
            return Ok(false);
        }
        let still_planned = n
            .at_key(from)
            .is_some_and(|r| r.state == NightState::Planned);
        let (from_key, to_key) = ((from.night, from.id.clone()), (to.night, to.id.clone()));
        // The target must not exist (a record of another service or night than `from`'s).
        if !still_planned || (to_key != from_key && n.records.contains_key(&to_key)) {
            return Ok(false);
        }
        n.records.remove(&from_key);
        n.records.insert(to_key, to.clone());
        n.writes += 1;
        Ok(true)
    }
}

impl RestartStore for MemoryStore {
    async fn pause(&self) -> Result<Option<Pause>, StoreError> {
        self.pass_gate("pause").await?;
        Ok(self.nights().pause.clone())
    }

    async fn set_pause(&self, pause: Option<&Pause>) -> Result<(), StoreError> {
        self.pass_gate("set_pause").await?;
        self.nights().pause = pause.cloned();
        Ok(())
    }

    async fn night_status(&self, night: NaiveDate) -> Result<NightStatus, StoreError> {
        self.pass_gate("night_status").await?;
        Ok(self
            .nights()
            .status
            .get(&night)
            .cloned()
            .unwrap_or_default())
    }

    async fn night_tally(&self, night: NaiveDate) -> Result<NightTally, StoreError> {
        self.pass_gate("night_tally").await?;
        let n = self.nights();
        Ok(NightTally {
            halted: n.status.get(&night).and_then(|s| s.halted.clone()),
            batches: n.batch_counts.get(&night).cloned().unwrap_or_default(),
        })
    }

    async fn put_batch_counts(
        &self,
        night: NaiveDate,
        batch: u32,
        counts: &BatchCounts,
    ) -> Result<bool, StoreError> {
        self.pass_gate("put_batch_counts").await?;
        let mut n = self.nights();
        let kept = n.batch_counts.entry(night).or_default().entry(batch);
        match kept {
            std::collections::btree_map::Entry::Occupied(e) if e.get().at >= counts.at => Ok(false),
            std::collections::btree_map::Entry::Occupied(mut e) => {
                e.insert(counts.clone());
                Ok(true)
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(counts.clone());
                Ok(true)
            }
        }
    }

    async fn halt(&self, night: NaiveDate, halt: &Halt) -> Result<bool, StoreError> {
        self.pass_gate("halt").await?;
        let mut n = self.nights();
        let status = n.status.entry(night).or_default();
        if status.halted.is_some() {
            return Ok(false);
        }
        status.halted = Some(halt.clone());
        Ok(true)
    }

    async fn note_hold(
        &self,
        night: NaiveDate,
        what: &str,
        scope: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.pass_gate("note_hold").await?;
        let mut n = self.nights();
        let seen = n
            .holds
            .entry((night, scope.to_owned(), what.to_owned()))
            .or_insert_with(|| restart_core::guard::HoldSeen {
                what: what.to_owned(),
                scope: scope.to_owned(),
                first: at,
                last: at,
            });
        // As the table: the first time noted stays; a later one moves the last, an older one
        // (a note arriving late) changes nothing.
        seen.last = seen.last.max(at);
        Ok(())
    }

    async fn holds_seen(
        &self,
        night: NaiveDate,
    ) -> Result<Vec<restart_core::guard::HoldSeen>, StoreError> {
        self.pass_gate("holds_seen").await?;
        Ok(self
            .nights()
            .holds
            .iter()
            .filter(|((n, _, _), _)| *n == night)
            .map(|(_, h)| h.clone())
            .collect())
    }

    async fn find_record(
        &self,
        night: NaiveDate,
        id: &ServiceId,
    ) -> Result<Option<NightRecord>, StoreError> {
        self.pass_gate("find_record").await?;
        Ok(self.record(night, id))
    }

    async fn claim(
        &self,
        from: Option<&NightRecord>,
        to: &NightRecord,
        cap: u32,
    ) -> Result<Claim, StoreError> {
        self.pass_gate("claim").await?;
        let mut n = self.nights();
        let key = (to.night, to.id.clone());
        // The table conditions the Put on the state at `to`'s key, and reads it there when
        // the transaction is refused.
        let now = n.at_key(to).map(|r| r.state);
        if now != from.map(|f| f.state) {
            return Ok(Claim::Moved(now));
        }
        // This fake holds one record per service and night: a claim that would create a
        // second one in another partition is refused with the state of the one it has.
        if let (None, Some(other)) = (now, n.records.get(&key)) {
            return Ok(Claim::Moved(Some(other.state)));
        }
        let slot = n
            .inflight
            .entry((to.night, to.id.cluster_key()))
            .or_default();
        if *slot >= cap {
            return Ok(Claim::ClusterFull);
        }
        *slot += 1;
        n.records.insert(key, to.clone());
        n.count(to.night, NightState::Started);
        Ok(Claim::Claimed)
    }

    async fn take_over(&self, held: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        self.pass_gate("take_over").await?;
        let mut n = self.nights();
        let ok = n.at_key(held).is_some_and(|r| {
            r.state == NightState::Started
                && r.deployment_id.is_none()
                && r.lease_at == held.lease_at
        });
        if ok {
            n.records.insert((to.night, to.id.clone()), to.clone());
            n.writes += 1;
        }
        Ok(ok)
    }

    async fn give_back(&self, claimed: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        self.pass_gate("give_back").await?;
        let mut n = self.nights();
        let ok = n.at_key(claimed).is_some_and(|r| {
            r.state == NightState::Started
                && r.deployment_id.is_none()
                && r.lease_at == claimed.lease_at
        });
        if !ok {
            return Ok(false);
        }
        n.records.insert((to.night, to.id.clone()), to.clone());
        let slot = n
            .inflight
            .entry((to.night, to.id.cluster_key()))
            .or_default();
        *slot = slot.saturating_sub(1);
        let started = n
            .status
            .entry(to.night)
            .or_default()
            .counts
            .entry(NightState::Started)
            .or_default();
        *started = started.saturating_sub(1);
        n.writes += 1;
        Ok(true)
    }

    async fn record_deployment(&self, started: &NightRecord) -> Result<bool, StoreError> {
        self.pass_gate("record_deployment").await?;
        let mut n = self.nights();
        let key = (started.night, started.id.clone());
        let ok = n
            .at_key(started)
            .is_some_and(|r| r.state == NightState::Started && r.deployment_id.is_none());
        if ok {
            n.records.insert(key, started.clone());
            n.writes += 1;
        }
        Ok(ok)
    }

    async fn finish(&self, started: &NightRecord, to: &NightRecord) -> Result<bool, StoreError> {
        self.pass_gate("finish").await?;
        let mut n = self.nights();
        let key = (to.night, to.id.clone());
        let ok = n.at_key(to).is_some_and(|r| {
            r.state == NightState::Started && r.deployment_id == started.deployment_id
        });
        if ok {
            n.records.insert(key, to.clone());
            let slot = n
                .inflight
                .entry((to.night, to.id.cluster_key()))
                .or_default();
            *slot = slot.saturating_sub(1);
            n.count_outcome(to);
        }
        Ok(ok)
    }

    async fn halt_record(
        &self,
        planned: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        self.pass_gate("halt_record").await?;
        let mut n = self.nights();
        let key = (to.night, to.id.clone());
        // As the table: the Put of `to` on condition that the record at its key is in the
        // state read.
        let ok = n.at_key(to).is_some_and(|r| r.state == planned.state);
        if ok {
            n.records.insert(key, to.clone());
            n.count(to.night, to.state);
        }
        Ok(ok)
    }

    async fn finish_holding(
        &self,
        started: &NightRecord,
        to: &NightRecord,
    ) -> Result<bool, StoreError> {
        self.pass_gate("finish_holding").await?;
        let mut n = self.nights();
        let key = (to.night, to.id.clone());
        let ok = n.at_key(to).is_some_and(|r| {
            r.state == NightState::Started && r.deployment_id == started.deployment_id
        });
        // The place is kept under the deployment as read, which the Put just checked.
        let Some(deployment_id) = started.deployment_id.clone().filter(|_| ok) else {
            return Ok(false);
        };
        n.records.insert(key, to.clone());
        n.held
            .entry((to.night, to.id.cluster_key()))
            .or_default()
            .insert(restart_core::ports::HeldRestart {
                id: to.id.clone(),
                deployment_id,
            });
        n.count_outcome(to);
        Ok(true)
    }

    async fn held(
        &self,
        night: NaiveDate,
        cluster: &ServiceId,
    ) -> Result<Vec<restart_core::ports::HeldRestart>, StoreError> {
        self.pass_gate("held").await?;
        Ok(self
            .nights()
            .held
            .get(&(night, cluster.cluster_key()))
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn release(
        &self,
        night: NaiveDate,
        held: &restart_core::ports::HeldRestart,
    ) -> Result<bool, StoreError> {
        self.pass_gate("release").await?;
        let mut n = self.nights();
        let cluster = (night, held.id.cluster_key());
        if !n.held.get_mut(&cluster).is_some_and(|h| h.remove(held)) {
            return Ok(false);
        }
        let slot = n.inflight.entry(cluster).or_default();
        *slot = slot.saturating_sub(1);
        n.writes += 1;
        Ok(true)
    }
}

/// The notices side of the table held in memory.
#[derive(Debug, Default)]
pub struct MemoryNotices {
    /// Last notices per (owner, service, kind).
    pub notices: Mutex<
        BTreeMap<
            (String, ServiceId, restart_core::notice::FindingKind),
            restart_core::notice::NoticeSent,
        >,
    >,
    /// Digest progress per (owner, night).
    pub digests: Mutex<BTreeMap<(String, NaiveDate), restart_core::notice::DigestSent>>,
}

impl restart_core::ports::NoticeStore for MemoryNotices {
    async fn owner_notices(
        &self,
        owner: &str,
    ) -> Result<restart_core::notice::OwnerNotices, StoreError> {
        let notices = self.notices.lock().unwrap_or_else(|e| e.into_inner());
        let digests = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        Ok(restart_core::notice::OwnerNotices {
            notices: notices
                .values()
                .filter(|n| n.owner == owner)
                .cloned()
                .collect(),
            digests: digests
                .values()
                .filter(|d| d.owner == owner)
                .cloned()
                .collect(),
        })
    }

    async fn put_notices(
        &self,
        notices: &[restart_core::notice::NoticeSent],
    ) -> Result<(), StoreError> {
        let mut map = self.notices.lock().unwrap_or_else(|e| e.into_inner());
        for n in notices {
            map.insert((n.owner.clone(), n.id.clone(), n.kind), n.clone());
        }
        Ok(())
    }

    async fn put_digests(
        &self,
        digests: &[restart_core::notice::DigestSent],
    ) -> Result<(), StoreError> {
        let mut map = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        for d in digests {
            map.insert((d.owner.clone(), d.night), d.clone());
        }
        Ok(())
    }
}

/// One [`MemoryStore`] shared by several handlers (a benchmark's inventory, batcher and
/// restarter, as they share one table): every port of the store, through the `Arc`.
#[derive(Debug, Clone, Default)]
pub struct SharedStore(pub std::sync::Arc<MemoryStore>);

impl std::ops::Deref for SharedStore {
    type Target = MemoryStore;
    fn deref(&self) -> &MemoryStore {
        &self.0
    }
}

mod shared {
    use std::collections::BTreeMap;

    use chrono::NaiveDate;

    use super::SharedStore;
    use restart_core::catalog::{CatalogRecord, InventoryRun, Target};
    use restart_core::ids::{AccountId, ServiceId};
    use restart_core::night::{
        BatchCounts, Created, Halt, NightLock, NightRecord, NightStatus, NightTally, Pause,
        PlanSummary,
    };
    use restart_core::owner::AccountOwner;
    use restart_core::planner::PlannedBatch;
    use restart_core::ports::{
        CatalogStore, Claim, NightStore, RestartStore, SettingsStore, SharedPace, StoreError,
    };

    impl SettingsStore for SharedStore {
        async fn account_owners(&self) -> Result<BTreeMap<AccountId, AccountOwner>, StoreError> {
            self.0.account_owners().await
        }

        async fn put_account_owners(
            &self,
            owners: &BTreeMap<AccountId, AccountOwner>,
        ) -> Result<(), StoreError> {
            self.0.put_account_owners(owners).await
        }

        async fn delete_account_owner(&self, account: &AccountId) -> Result<bool, StoreError> {
            self.0.delete_account_owner(account).await
        }
    }

    impl SharedPace for SharedStore {
        async fn take(&self, target: &Target, second: i64, limit: u32) -> Result<bool, StoreError> {
            self.0.take(target, second, limit).await
        }
    }

    impl CatalogStore for SharedStore {
        async fn read_catalog(
            &self,
            accounts: &[AccountId],
        ) -> Result<Vec<CatalogRecord>, StoreError> {
            self.0.read_catalog(accounts).await
        }

        async fn put_catalog(&self, records: &[CatalogRecord]) -> Result<(), StoreError> {
            self.0.put_catalog(records).await
        }

        async fn mark_listed(
            &self,
            targets: &[Target],
            night: NaiveDate,
        ) -> Result<(), StoreError> {
            self.0.mark_listed(targets, night).await
        }

        async fn put_inventory_run(&self, run: &InventoryRun) -> Result<(), StoreError> {
            self.0.put_inventory_run(run).await
        }

        async fn get_inventory_run(
            &self,
            night: NaiveDate,
        ) -> Result<Option<InventoryRun>, StoreError> {
            self.0.get_inventory_run(night).await
        }

        async fn lock_night(&self, lock: &NightLock) -> Result<NightLock, StoreError> {
            self.0.lock_night(lock).await
        }

        async fn unlock_night(&self, night: NaiveDate, holder: &str) -> Result<bool, StoreError> {
            self.0.unlock_night(night, holder).await
        }
    }

    impl NightStore for SharedStore {
        async fn plan_summary(&self, night: NaiveDate) -> Result<Option<PlanSummary>, StoreError> {
            self.0.plan_summary(night).await
        }

        async fn put_plan_summary(&self, summary: &PlanSummary) -> Result<(), StoreError> {
            self.0.put_plan_summary(summary).await
        }

        async fn read_batches(&self, night: NaiveDate) -> Result<Vec<PlannedBatch>, StoreError> {
            self.0.read_batches(night).await
        }

        async fn put_batches(
            &self,
            night: NaiveDate,
            batches: &[PlannedBatch],
        ) -> Result<(), StoreError> {
            self.0.put_batches(night, batches).await
        }

        async fn delete_batches(
            &self,
            night: NaiveDate,
            batches: &[u32],
        ) -> Result<(), StoreError> {
            self.0.delete_batches(night, batches).await
        }

        async fn read_batch(
            &self,
            night: NaiveDate,
            batch: u32,
        ) -> Result<Vec<NightRecord>, StoreError> {
            self.0.read_batch(night, batch).await
        }

        async fn read_batch_guarded(
            &self,
            night: NaiveDate,
            batch: u32,
        ) -> Result<Vec<NightRecord>, StoreError> {
            self.0.read_batch_guarded(night, batch).await
        }

        async fn read_skipped(&self, night: NaiveDate) -> Result<Vec<NightRecord>, StoreError> {
            self.0.read_skipped(night).await
        }

        async fn read_night(&self, night: NaiveDate) -> Result<Vec<NightRecord>, StoreError> {
            self.0.read_night(night).await
        }

        async fn read_assignment(
            &self,
            night: NaiveDate,
        ) -> Result<BTreeMap<ServiceId, u32>, StoreError> {
            self.0.read_assignment(night).await
        }

        async fn create_records(&self, records: &[NightRecord]) -> Result<Created, StoreError> {
            self.0.create_records(records).await
        }

        async fn move_record(
            &self,
            from: &NightRecord,
            to: &NightRecord,
        ) -> Result<bool, StoreError> {
            self.0.move_record(from, to).await
        }
    }

    impl RestartStore for SharedStore {
        async fn pause(&self) -> Result<Option<Pause>, StoreError> {
            self.0.pause().await
        }

        async fn set_pause(&self, pause: Option<&Pause>) -> Result<(), StoreError> {
            self.0.set_pause(pause).await
        }

        async fn night_status(&self, night: NaiveDate) -> Result<NightStatus, StoreError> {
            self.0.night_status(night).await
        }

        async fn night_tally(&self, night: NaiveDate) -> Result<NightTally, StoreError> {
            self.0.night_tally(night).await
        }

        async fn put_batch_counts(
            &self,
            night: NaiveDate,
            batch: u32,
            counts: &BatchCounts,
        ) -> Result<bool, StoreError> {
            self.0.put_batch_counts(night, batch, counts).await
        }

        async fn halt(&self, night: NaiveDate, halt: &Halt) -> Result<bool, StoreError> {
            self.0.halt(night, halt).await
        }

        async fn note_hold(
            &self,
            night: NaiveDate,
            what: &str,
            scope: &str,
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), StoreError> {
            self.0.note_hold(night, what, scope, at).await
        }

        async fn holds_seen(
            &self,
            night: NaiveDate,
        ) -> Result<Vec<restart_core::guard::HoldSeen>, StoreError> {
            self.0.holds_seen(night).await
        }

        async fn find_record(
            &self,
            night: NaiveDate,
            id: &ServiceId,
        ) -> Result<Option<NightRecord>, StoreError> {
            self.0.find_record(night, id).await
        }

        async fn claim(
            &self,
            from: Option<&NightRecord>,
            to: &NightRecord,
            cap: u32,
        ) -> Result<Claim, StoreError> {
            self.0.claim(from, to, cap).await
        }

        async fn take_over(
            &self,
            held: &NightRecord,
            to: &NightRecord,
        ) -> Result<bool, StoreError> {
            self.0.take_over(held, to).await
        }

        async fn give_back(
            &self,
            claimed: &NightRecord,
            to: &NightRecord,
        ) -> Result<bool, StoreError> {
            self.0.give_back(claimed, to).await
        }

        async fn record_deployment(&self, started: &NightRecord) -> Result<bool, StoreError> {
            self.0.record_deployment(started).await
        }

        async fn finish(
            &self,
            started: &NightRecord,
            to: &NightRecord,
        ) -> Result<bool, StoreError> {
            self.0.finish(started, to).await
        }

        async fn halt_record(
            &self,
            planned: &NightRecord,
            to: &NightRecord,
        ) -> Result<bool, StoreError> {
            self.0.halt_record(planned, to).await
        }

        async fn finish_holding(
            &self,
            started: &NightRecord,
            to: &NightRecord,
        ) -> Result<bool, StoreError> {
            self.0.finish_holding(started, to).await
        }

        async fn held(
            &self,
            night: NaiveDate,
            cluster: &ServiceId,
        ) -> Result<Vec<restart_core::ports::HeldRestart>, StoreError> {
            self.0.held(night, cluster).await
        }

        async fn release(
            &self,
            night: NaiveDate,
            held: &restart_core::ports::HeldRestart,
        ) -> Result<bool, StoreError> {
            self.0.release(night, held).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn target(account: &str, region: &str) -> Target {
        Target {
            account: account.parse().unwrap(),
            region: region.into(),
        }
    }

    #[tokio::test]
    async fn a_window_holds_at_most_its_limit() {
        let store = MemoryStore::default();
        let t = target("111111111111", "eu-west-1");
        for _ in 0..4 {
            assert!(store.take(&t, 100, 4).await.unwrap());
        }
        assert!(
            !store.take(&t, 100, 4).await.unwrap(),
            "the fifth is refused"
        );
        assert!(!store.take(&t, 100, 4).await.unwrap());
        assert!(
            store.take(&t, 101, 4).await.unwrap(),
            "the next second is new"
        );
    }

    #[tokio::test]
    async fn accounts_and_regions_have_their_own_windows() {
        let store = MemoryStore::default();
        let a = target("111111111111", "eu-west-1");
        let b = target("222222222222", "eu-west-1");
        let c = target("111111111111", "us-east-1");
        assert!(store.take(&a, 7, 1).await.unwrap());
        assert!(!store.take(&a, 7, 1).await.unwrap());
        assert!(store.take(&b, 7, 1).await.unwrap());
        assert!(store.take(&c, 7, 1).await.unwrap());
    }

    #[tokio::test]
    async fn concurrent_takes_never_exceed_the_limit() {
        let store = Arc::new(MemoryStore::default());
        let t = target("111111111111", "eu-west-1");
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (store, t) = (store.clone(), t.clone());
                tokio::spawn(async move { store.take(&t, 5, 3).await.unwrap() })
            })
            .collect();
        let mut taken = 0;
        for task in tasks {
            taken += u32::from(task.await.unwrap());
        }
        assert_eq!(taken, 3);
    }

    #[tokio::test]
    async fn old_windows_are_forgotten() {
        let store = MemoryStore::default();
        let t = target("111111111111", "eu-west-1");
        for second in 0..1_000 {
            store.take(&t, second, 4).await.unwrap();
        }
        let kept = store.pace.lock().unwrap().len();
        assert_eq!(kept, usize::try_from(PACE_KEPT_SECONDS).unwrap() + 1);
    }
}
