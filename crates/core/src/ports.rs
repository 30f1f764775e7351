//! Ports: what the handlers need from the outside world, in domain words. Adapters in the
//! `restart-aws` crate implement them with the AWS SDK; tests implement them in memory.
//!
//! Methods return `impl Future + Send` so that handlers can run them on any tokio task.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, Utc};

use crate::catalog::{CatalogRecord, DiscoveredService, InventoryRun, Target};
use crate::error::{ErrorType, HandlerError};
use crate::guard::HoldSeen;
use crate::ids::{AccountId, ServiceArn, ServiceId};
use crate::night::{
    BatchCounts, Created, Halt, NightLock, NightRecord, NightStatus, NightTally, Pause, PlanSummary,
};
use crate::notice::{DigestSent, Message, NoticeSent, OwnerNotices};
use crate::outcome::NightState;
use crate::owner::AccountOwner;
use crate::planner::PlannedBatch;
use crate::service::ServiceSnapshot;

/// Why discovery of one account and region failed. The handler records it as unreachable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The account cannot be entered: AssumeRole denied, unknown account, missing permission.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Still throttled after the SDK's retries.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Network trouble or a service error, after retries.
    #[error("{0}")]
    Transient(String),
    /// An answer we do not understand.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// Lists the member accounts (from configuration or an AWS Config aggregator).
pub trait AccountDirectory: Send + Sync {
    fn accounts(&self) -> impl Future<Output = Result<Vec<AccountId>, DiscoveryError>> + Send;
}

/// The accounts listed in configuration (`ACCOUNTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAccounts(pub Vec<AccountId>);

impl AccountDirectory for ListedAccounts {
    async fn accounts(&self) -> Result<Vec<AccountId>, DiscoveryError> {
        Ok(self.0.clone())
    }
}

/// Discovers the ECS services of one account and region.
pub trait ServiceInventory: Send + Sync {
    fn discover(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Vec<DiscoveredService>, DiscoveryError>> + Send;
}

/// Why the table refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB is throttling the table after retries: {0}")]
    Throttled(String),
    #[error("DynamoDB could not be reached: {0}")]
    Transient(String),
    /// The table is missing, or the function may not use it.
    #[error("the table is missing or not accessible: {0}")]
    Misconfigured(String),
    /// A stored item does not have the shape this version expects.
    #[error("a stored item is not readable: {0}")]
    Corrupt(String),
    /// DynamoDB answered with an error no rule here knows (its code and message).
    #[error("DynamoDB answered unexpectedly: {0}")]
    Unexpected(String),
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        let error_type = match &e {
            StoreError::Throttled(_) => ErrorType::Throttled,
            StoreError::Transient(_) => ErrorType::Transient,
            StoreError::Misconfigured(_) => ErrorType::Misconfigured,
            StoreError::Corrupt(_) | StoreError::Unexpected(_) => ErrorType::Unexpected,
        };
        HandlerError::new(error_type, e.to_string())
    }
}

/// The catalog side of the table (docs/design.md 3.7).
///
/// A catalog record is written only when what it holds changes; that an unchanged service was
/// seen on a night is kept once per account and region ([`CatalogStore::mark_listed`]), and a
/// read derives each record's `last_seen` from it ([`Listed::seen`](crate::catalog::Listed::seen)).
pub trait CatalogStore: Send + Sync {
    /// Every catalog record of these accounts, gone ones included, in service order. A record
    /// not gone has `last_seen` = the later of the night it was written for and the night its
    /// account and region were last listed.
    fn read_catalog(
        &self,
        accounts: &[AccountId],
    ) -> impl Future<Output = Result<Vec<CatalogRecord>, StoreError>> + Send;

    /// Upserts records (BatchWriteItem in 25s, unprocessed items retried until written).
    fn put_catalog(
        &self,
        records: &[CatalogRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that `targets` were listed completely on `night`: every service found there has
    /// its record written. Written after those records, so that a run that stops half-way never
    /// claims a listing whose changes were not written. A target's listing only moves forward:
    /// a later night already recorded stays.
    fn mark_listed(
        &self,
        targets: &[Target],
        night: NaiveDate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores the night's inventory run (one item per night, replaced by a rerun).
    fn put_inventory_run(
        &self,
        run: &InventoryRun,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_inventory_run(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<Option<InventoryRun>, StoreError>> + Send;

    /// Takes the night's lock for `lock.holder` (a conditional write: no lock yet, the same
    /// holder, or a lock lapsed at `lock.at`) and answers the lock in force afterwards: `lock`
    /// itself when taken, otherwise the other holder's.
    fn lock_night(
        &self,
        lock: &NightLock,
    ) -> impl Future<Output = Result<NightLock, StoreError>> + Send;

    /// Releases the night's lock if `holder` holds it (a conditional delete): an execution
    /// that failed lets the next one run the night. `Ok(false)`: not held by `holder`.
    fn unlock_night(
        &self,
        night: NaiveDate,
        holder: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The night side of the table (docs/design.md 3.6, 3.7): the plan, its batches, each service's record.
///
/// A plan is written in this order, so that a run that stops half-way is found and finished
/// by the next: batch items ([`NightStore::put_batches`]), then records
/// ([`NightStore::create_records`], [`NightStore::move_record`]), then the final batch items,
/// then the [`PlanSummary`] ([`NightStore::put_plan_summary`]), whose presence means "written".
pub trait NightStore: Send + Sync {
    /// The night's summary, once its plan is completely written.
    fn plan_summary(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<Option<PlanSummary>, StoreError>> + Send;

    fn put_plan_summary(
        &self,
        summary: &PlanSummary,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The night's batches, in batch order (empty: nothing planned yet).
    fn read_batches(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<Vec<PlannedBatch>, StoreError>> + Send;

    /// Upserts batch items.
    fn put_batches(
        &self,
        night: NaiveDate,
        batches: &[PlannedBatch],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes batch items (their records must have moved out).
    fn delete_batches(
        &self,
        night: NaiveDate,
        batches: &[u32],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The records of one batch of one night (one Query per partition of the batch), read
    /// consistently.
    fn read_batch(
        &self,
        night: NaiveDate,
        batch: u32,
    ) -> impl Future<Output = Result<Vec<NightRecord>, StoreError>> + Send;

    /// The records of one batch as [`NightStore::read_batch`], possibly a moment old (an
    /// eventually consistent read, half the price): only for a reader whose every move of a
    /// record is a conditional write on the state it read, so that a stale record costs a
    /// refused write, never a wrong one.
    fn read_batch_guarded(
        &self,
        night: NaiveDate,
        batch: u32,
    ) -> impl Future<Output = Result<Vec<NightRecord>, StoreError>> + Send {
        self.read_batch(night, batch)
    }

    /// The night's skipped records.
    fn read_skipped(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<Vec<NightRecord>, StoreError>> + Send;

    /// Every record of the night: those of every batch that has a batch item, and the skipped.
    fn read_night(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<Vec<NightRecord>, StoreError>> + Send;

    /// The night's service → batch assignment (for the next night's stability).
    fn read_assignment(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<BTreeMap<ServiceId, u32>, StoreError>> + Send;

    /// Creates records, each only where none exists (a rerun never overwrites a record that
    /// has moved on, e.g. to `started`).
    fn create_records(
        &self,
        records: &[NightRecord],
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Replaces `from` by `to` (another batch, or skipped) atomically, only while `from` is
    /// still `planned` and `to` does not exist. `Ok(false)`: it was not planned any more (or
    /// the target existed), and nothing changed.
    fn move_record(
        &self,
        from: &NightRecord,
        to: &NightRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What a conditional start of a restart found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The record is now `started`, counted in the cluster's restarts in flight.
    Claimed,
    /// The record was not as read any more (another invocation moved it): nothing changed.
    /// Holds the state found, `None` when there is no record.
    Moved(Option<NightState>),
    /// The cluster already has its cap of restarts in flight: nothing changed.
    ClusterFull,
}

/// Configuration kept in the table rather than in the functions' environment (whose 4 KB
/// cannot hold a large fleet's settings): each account's default owner (docs/design.md 3.2).
/// One item per account under the partition `CONFIG`, which on-call may write (`restartctl
/// config`); the handlers read it once per invocation and merge it over `ACCOUNT_OWNERS`
/// ([`OwnerResolver::with_account_owners`](crate::owner::OwnerResolver::with_account_owners)).
pub trait SettingsStore: Send + Sync {
    /// Every account's default owner kept in the table (empty: none).
    fn account_owners(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<AccountId, AccountOwner>, StoreError>> + Send;

    /// Sets these accounts' owners, replacing what the table held for them; other accounts
    /// are left alone. Not atomic across accounts: a write that fails part-way may have set
    /// some, and writing the same owners again is harmless.
    fn put_account_owners(
        &self,
        owners: &BTreeMap<AccountId, AccountOwner>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets an account's owner. `Ok(false)`: the table held none.
    fn delete_account_owner(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The restarter's side of the table (docs/design.md 3.5, 3.7): moves of a record from planned to
/// started to its outcome, each one conditional and, with the night's counters and the
/// cluster's restarts in flight, atomic; the kill switch; the night's halt.
pub trait RestartStore: NightStore {
    /// The kill switch, when it is on.
    fn pause(&self) -> impl Future<Output = Result<Option<Pause>, StoreError>> + Send;

    /// Turns the kill switch on (`Some`) or off (`None`).
    fn set_pause(
        &self,
        pause: Option<&Pause>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The night's counters and halt.
    fn night_status(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<NightStatus, StoreError>> + Send;

    /// What a batch's circuit breaker reads: the night's halt (read consistently) and each
    /// batch's last counts ([`RestartStore::put_batch_counts`]).
    fn night_tally(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<NightTally, StoreError>> + Send;

    /// Keeps `counts` as batch `batch`'s, unless counts taken later are kept already
    /// (`Ok(false)`).
    fn put_batch_counts(
        &self,
        night: NaiveDate,
        batch: u32,
        counts: &BatchCounts,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Halts the night. `Ok(false)`: it was already halted (the first reason stays).
    fn halt(
        &self,
        night: NaiveDate,
        halt: &Halt,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Notes that `what` held restarts in `scope` at `at`: the table keeps, per night, hold
    /// and scope, the first and the latest time noted.
    fn note_hold(
        &self,
        night: NaiveDate,
        what: &str,
        scope: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The holds noted for `night`.
    fn holds_seen(
        &self,
        night: NaiveDate,
    ) -> impl Future<Output = Result<Vec<HoldSeen>, StoreError>> + Send;

    /// One service's record of one night, wherever it is (the `by_service` index).
    fn find_record(
        &self,
        night: NaiveDate,
        id: &ServiceId,
    ) -> impl Future<Output = Result<Option<NightRecord>, StoreError>> + Send;

    /// Moves `from` (as read; `None`: no record yet) to `to` (state `started`, same key),
    /// only while the record is still as read and the cluster has fewer than `cap` restarts
    /// in flight.
    fn claim(
        &self,
        from: Option<&NightRecord>,
        to: &NightRecord,
        cap: u32,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Takes over a lapsed claim (a record `started` without a deployment, as `held` was read):
    /// writes `to` (the same record with a new `lease_at`) only while the record is still
    /// `started` without a deployment and its `lease_at` is still `held`'s. `Ok(false)`: another
    /// invocation took it, or it moved on. Of two invocations that find one lapsed claim, one
    /// takes it: only the one that did may send UpdateService for it or end it.
    fn take_over(
        &self,
        held: &NightRecord,
        to: &NightRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives back a claim whose UpdateService certainly did not run (denied, or the window
    /// ended before it could be sent): `to` (state `skipped`, at the skipped records' key)
    /// replaces the record, while it is `started` without a deployment and its `lease_at` is
    /// `claimed`'s; the cluster's place is freed and the start uncounted. `Ok(false)`: it moved
    /// on or was taken over.
    fn give_back(
        &self,
        claimed: &NightRecord,
        to: &NightRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records the deployment UpdateService returned on a started record that has none yet.
    /// `Ok(false)`: the record had moved on or already had one.
    fn record_deployment(
        &self,
        started: &NightRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves a started record (with the deployment as read) to its outcome `to`, counting it
    /// and releasing its place in the cluster. `Ok(false)`: it had moved on.
    fn finish(
        &self,
        started: &NightRecord,
        to: &NightRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves a planned record to `halted` (counted). `Ok(false)`: it was not planned any more.
    fn halt_record(
        &self,
        planned: &NightRecord,
        to: &NightRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Like [`RestartStore::finish`], but the restart keeps its place in the cluster: its
    /// deployment still rolls (a restart given up on at its timeout), and ECS counts it until it
    /// ends. The record moves to `to` and is counted; the service and its deployment are kept
    /// among the cluster's held restarts until [`RestartStore::release`]. `Ok(false)`: the
    /// record had moved on, and nothing changed.
    fn finish_holding(
        &self,
        started: &NightRecord,
        to: &NightRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The restarts held in the cluster of `cluster` (any service of that cluster) on `night`.
    fn held(
        &self,
        night: NaiveDate,
        cluster: &ServiceId,
    ) -> impl Future<Output = Result<Vec<HeldRestart>, StoreError>> + Send;

    /// Gives a held restart's place in its cluster back (its deployment has ended).
    /// `Ok(false)`: it was not held any more (released already), and nothing changed.
    fn release(
        &self,
        night: NaiveDate,
        held: &HeldRestart,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A finished restart that still holds its place among its cluster's restarts in flight,
/// because its deployment was still rolling when the restart was given up on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeldRestart {
    pub id: ServiceId,
    /// The deployment that still rolls: the place is given back once ECS ends it.
    pub deployment_id: String,
}

/// UpdateService slots shared by every container of the orchestrator (docs/design.md 3.5): each
/// account and region has a fixed one-second window per Unix second, holding at most `limit`
/// calls, whoever makes them. A Lambda container paces its own calls with
/// `pacing::Pacer`; this port is what keeps many containers together under the same rate
/// (`pacing::SharedPacer` takes its slots).
pub trait SharedPace: Send + Sync {
    /// Takes one slot of `target`'s window `second` (Unix seconds) if fewer than `limit` are
    /// taken. `Ok(false)`: the window is full; nothing changed.
    fn take(
        &self,
        target: &Target,
        second: i64,
        limit: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Why a call that acts on AWS failed: ECS in a member account, or Step Functions in the hub
/// (`adapters::sfn`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The account cannot be entered or the role may not do this.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Still throttled after the SDK's retries.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Network trouble or a service error, after retries.
    #[error("{0}")]
    Transient(String),
    /// The service or its cluster does not exist (any more).
    #[error("not found: {0}")]
    NotFound(String),
    /// ECS refused the request (e.g. a forced deployment of a CODE_DEPLOY service).
    #[error("refused: {0}")]
    Refused(String),
    /// An answer we do not understand.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

impl From<DiscoveryError> for ControlError {
    fn from(e: DiscoveryError) -> Self {
        match e {
            DiscoveryError::AccessDenied(m) => Self::AccessDenied(m),
            DiscoveryError::Throttled(m) => Self::Throttled(m),
            DiscoveryError::Transient(m) => Self::Transient(m),
            DiscoveryError::Unexpected(m) => Self::Unexpected(m),
        }
    }
}

impl From<ControlError> for HandlerError {
    fn from(e: ControlError) -> Self {
        let error_type = match &e {
            ControlError::Throttled(_) => ErrorType::Throttled,
            ControlError::Transient(_) => ErrorType::Transient,
            ControlError::AccessDenied(_) => ErrorType::Misconfigured,
            ControlError::NotFound(_) | ControlError::Refused(_) => ErrorType::InvalidInput,
            ControlError::Unexpected(_) => ErrorType::Unexpected,
        };
        HandlerError::new(error_type, e.to_string())
    }
}

/// Drives ECS services in the member accounts: the live look before and after a restart, the
/// forced deployment itself, and the enrollment tag (docs/design.md 3.4). Calls are paced per account
/// and region (docs/design.md 3.5).
pub trait FleetControl: Send + Sync {
    /// Describes services of one cluster (all of `services` share account, region and
    /// cluster), 10 a call, with tags. A service ECS does not know is left out.
    fn describe(
        &self,
        services: &[ServiceId],
    ) -> impl Future<Output = Result<Vec<ServiceSnapshot>, ControlError>> + Send;

    /// Waits until UpdateService may be sent for `service` under its account's pace;
    /// [`force_new_deployment`](Self::force_new_deployment) then sends it at once. Apart, so
    /// that the caller can look at its clock between the two (the window may have ended while
    /// it waited). A fleet that paces nothing answers at once.
    fn pace_update(&self, service: &ServiceId) -> impl Future<Output = ()> + Send {
        let _ = service;
        std::future::ready(())
    }

    /// UpdateService(forceNewDeployment=true), sent at once (see
    /// [`pace_update`](Self::pace_update)): the id of the new PRIMARY deployment.
    fn force_new_deployment(
        &self,
        service: &ServiceId,
    ) -> impl Future<Output = Result<String, ControlError>> + Send;

    /// TagResource on the service.
    fn tag(
        &self,
        service: &ServiceArn,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
}

/// Why publishing to a topic failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// SNS throttled us beyond the SDK's retries.
    #[error("SNS is throttling: {0}")]
    Throttled(String),
    /// Network trouble or a service error, after retries.
    #[error("SNS could not be reached: {0}")]
    Transient(String),
    /// The topic is missing, or the function may not publish to it.
    #[error("the topic is missing or not accessible: {0}")]
    Misconfigured(String),
    /// SNS refused a message (too big, bad attribute): a bug here.
    #[error("SNS refused a message: {0}")]
    Rejected(String),
}

impl From<PublishError> for HandlerError {
    fn from(e: PublishError) -> Self {
        let error_type = match &e {
            PublishError::Throttled(_) => ErrorType::Throttled,
            PublishError::Transient(_) => ErrorType::Transient,
            PublishError::Misconfigured(_) => ErrorType::Misconfigured,
            PublishError::Rejected(_) => ErrorType::Unexpected,
        };
        HandlerError::new(error_type, e.to_string())
    }
}

/// Publishes notices to an SNS topic (docs/design.md 3.2): owners' digests and the night summary.
pub trait Publisher: Send + Sync {
    /// How [`Publisher::publish`] groups messages of these sizes ([`Message::size`]) into
    /// requests, in order: one range of `sizes` a request. A caller that records progress
    /// after each request publishes one range at a time.
    fn requests(&self, sizes: &[usize]) -> Vec<Range<usize>>;

    /// Publishes `messages` to `topic` in order, in the requests [`Publisher::requests`] gives
    /// (for SNS: PublishBatch, at most 10 entries and 256 KiB a request). Returns one result
    /// per message: a request that fails fails its messages, and nothing after it is sent.
    fn publish(
        &self,
        topic: &str,
        messages: &[Message],
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send;
}

/// The notices side of the table (docs/design.md 3.7): per owner, the last night each service was told
/// each kind of finding (the cooldown), and how far each night's digest went out.
pub trait NoticeStore: Send + Sync {
    /// What the table knows of `owner`'s notices.
    fn owner_notices(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<OwnerNotices, StoreError>> + Send;

    /// Upserts last-notice records (one per owner, service and kind).
    fn put_notices(
        &self,
        notices: &[NoticeSent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Upserts digest progress (one per owner and night).
    fn put_digests(
        &self,
        digests: &[DigestSent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
