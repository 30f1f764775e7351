//! The `inventory` function: the first step of the night.
//!
//! Enters every member account (bounded concurrency), discovers every ECS service in every
//! configured region, judges each against the tag contract and eligibility, and keeps the
//! catalog: one account at a time in its own task, its previous records read, only the records
//! whose facts changed written (new, changed, gone, back), then its regions marked listed for
//! the night, which is what says an unchanged service was seen (docs/design.md 3.7). Services a
//! reachable account no longer has are marked gone; services of an unreachable account (or
//! region) are left as they were, not listed that night. An unreachable account is reported,
//! never fatal.
//!
//! Input: `{ "night": "YYYY-MM-DD", "execution": "arn:…" }` (both optional; the night defaults
//! to tonight in the configured timezone). With `execution` (the state machine passes its
//! execution id), the night's lock is taken first: one nightly run at a time (docs/design.md 3.5). Output: a [`Summary`] small enough for a state payload.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use restart_core::catalog::{
    CatalogRecord, DiscoveredService, InventoryCounts, InventoryRun, Target, Unreachable,
};
use restart_core::clock::Clock;
use restart_core::eligibility::{self, Tonight};
use restart_core::ids::{AccountId, ServiceId};
use restart_core::night::NightLock;
use restart_core::owner::OwnerResolver;
use restart_core::ports::{AccountDirectory, CatalogStore, ServiceInventory, SettingsStore};
use restart_core::tag::TagState;
use restart_core::telemetry::{ApiCalls, Emf, Unit};
use restart_core::window::NightWindow;
use restart_core::{Config, ErrorType, HandlerError};

pub mod aws;

/// The function's input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(
        default,
        deserialize_with = "restart_core::window::deserialize_optional_night"
    )]
    pub night: Option<NaiveDate>,
    /// The Step Functions execution running the night. When given, the night's lock is taken
    /// for it first (docs/design.md 3.5: one nightly run at a time), and another execution holding the
    /// night is refused with `InvalidInput`.
    pub execution: Option<String>,
    /// The state machine's failure path: release the night's lock that `execution` holds, so
    /// that the next start of the same night runs instead of being refused until it lapses.
    #[serde(default)]
    pub release: bool,
    /// With `release`: the failed execution's own input, whose `night` (if any) is the night
    /// it locked.
    #[serde(default)]
    pub input: Option<serde_json::Value>,
}

/// What releasing a failed execution's lock did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The nights whose lock the execution held and no longer holds.
    pub released: Vec<NaiveDate>,
}

/// The function's output, by event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Summary(Summary),
    Released(Released),
}

/// The function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub night: NaiveDate,
    pub accounts_reached: usize,
    /// Account-regions that could not be worked in (the whole list, with each error, is in the
    /// night's inventory run in the table).
    pub unreachable_count: usize,
    /// The first [`UNREACHABLE_SAMPLE`] of them, errors cut to [`ERROR_BYTES`] bytes: the
    /// output is a state payload, which must stay far under 256 KB however many accounts fail.
    pub unreachable_sample: Vec<Unreachable>,
    pub services_found: u64,
    pub counts: InventoryCounts,
    /// Time spent discovering (the part bounded by the ECS rate limits): from the first account's
    /// start to the end of the last account's discovery. Each account's catalog read and writes
    /// follow its discovery in its own slot, so with more accounts than slots they delay the
    /// next accounts' discovery.
    pub discovery_ms: u64,
    pub duration_ms: u64,
}

/// Accounts whose catalog is read and written at once. Each takes a few requests in flight (the
/// store's own concurrency), so the requests to the table, and the connections (a Lambda
/// function has 1,024 file descriptors), stay bounded however many accounts are discovered at
/// once; an account waiting for a slot holds only its records.
pub const STORE_SLOTS: usize = 8;

/// How many unreachable account-regions the output names.
pub const UNREACHABLE_SAMPLE: usize = 10;

/// The most bytes of an error kept, in the output's sample and in the inventory run item.
pub const ERROR_BYTES: usize = 160;

/// What the unreachable list may take of the inventory run item (DynamoDB's limit is 400 KB).
pub const UNREACHABLE_BUDGET: usize = 300 * 1024;

/// `s` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let end = s
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i + '…'.len_utf8() <= max)
        .last()
        .unwrap_or(0);
    // `end` is a character boundary: char_indices yields only those.
    format!("{}…", &s[..end])
}

/// Cuts every error so that the whole list fits [`UNREACHABLE_BUDGET`]: every account-region
/// stays listed, each error keeps as much as the budget allows (up to [`ERROR_BYTES`]).
fn fit_errors(unreachable: &mut [Unreachable]) {
    // An entry without its error: account, region and the item's attribute names.
    const ENTRY: usize = 48;
    let per_error = (UNREACHABLE_BUDGET / unreachable.len().max(1))
        .saturating_sub(ENTRY)
        .min(ERROR_BYTES);
    for u in unreachable {
        u.error = cut(&u.error, per_error);
    }
}

/// The handler with its ports.
#[derive(Debug)]
pub struct Inventory<D, I, S> {
    pub config: Arc<Config>,
    pub directory: D,
    pub fleet: I,
    pub store: S,
    pub clock: Arc<dyn Clock>,
    pub calls: Arc<ApiCalls>,
}

impl<D, I, S> Inventory<D, I, S>
where
    D: AccountDirectory,
    I: ServiceInventory,
    S: CatalogStore + SettingsStore,
{
    /// Handles one invocation of the function: a night's inventory, or (with `release`) the
    /// release of a failed execution's lock.
    pub async fn dispatch(&self, event: serde_json::Value) -> Result<Output, HandlerError> {
        let parsed = Self::parse(event.clone())?;
        if parsed.release {
            return self.release(parsed).await.map(Output::Released);
        }
        self.handle(event).await.map(Output::Summary)
    }

    fn parse(event: serde_json::Value) -> Result<Event, HandlerError> {
        if event.is_null() {
            Ok(Event::default())
        } else {
            HandlerError::parse_event(event)
        }
    }

    /// Releases the lock `execution` holds: of the night given, else of the night whose window
    /// is open or last began, and of the night before (the lock was taken a moment ago, maybe
    /// on the other side of a window's start).
    async fn release(&self, event: Event) -> Result<Released, HandlerError> {
        let execution = event.execution.ok_or_else(|| {
            HandlerError::invalid_input("the event is not valid: release needs `execution`")
        })?;
        let given = event.night.or_else(|| {
            event
                .input
                .as_ref()
                .and_then(|i| i.get("night"))
                .and_then(|n| serde_json::from_value::<NaiveDate>(n.clone()).ok())
        });
        let nights = match given {
            Some(n) => vec![n],
            None => {
                let n = self.config.window.night_at(self.clock.now()).night;
                n.pred_opt().into_iter().chain([n]).collect()
            }
        };
        let mut released = Vec::new();
        for night in nights {
            if self.store.unlock_night(night, &execution).await? {
                tracing::warn!(night = %night, execution, "the failed execution's lock is released");
                released.push(night);
            }
        }
        Ok(Released { released })
    }

    /// Handles one night's inventory: the raw event in, the summary out.
    pub async fn handle(&self, event: serde_json::Value) -> Result<Summary, HandlerError> {
        let event = Self::parse(event)?;
        if event.release {
            return Err(HandlerError::invalid_input(
                "the event is not valid: a release is handled by `dispatch`",
            ));
        }
        let started = self.clock.now();
        let window = match event.night {
            Some(n) => self.config.window.night(n),
            None => self.config.window.night_at(started),
        };
        if let Some(execution) = event.execution {
            self.lock(&window, execution, started).await?;
        }
        // Boxed: the discovery future is deep, and the runtime's own types nest it further.
        Box::pin(self.run(window.night)).await
    }

    /// Takes the night's lock for `execution`, until no batch of the night can still run.
    async fn lock(
        &self,
        window: &NightWindow,
        execution: String,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let wanted = NightLock {
            night: window.night,
            holder: execution,
            at: now,
            // The window's instants stay far from chrono's limits (`window`), so this only
            // guards the arithmetic.
            until: window
                .end
                .checked_add_signed(self.config.restart_timeout)
                .unwrap_or(window.end),
        };
        let held = self.store.lock_night(&wanted).await?;
        if held.holder == wanted.holder {
            return Ok(());
        }
        Err(HandlerError::invalid_input(format!(
            "execution: night {} is already being run by {} (since {}); one nightly run at a \
             time. Its lock lapses at {}; to run one batch now, start the state machine with \
             {{\"mode\": \"batch\", \"night\", \"batch\"}}",
            held.night,
            held.holder,
            held.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            held.until.to_rfc3339_opts(SecondsFormat::Secs, true),
        )))
    }

    #[tracing::instrument(skip(self))]
    pub async fn run(&self, night: NaiveDate) -> Result<Summary, HandlerError> {
        let started = self.clock.now();
        let window = self.config.window.night(night);
        let accounts = self.directory.accounts().await.map_err(|e| {
            HandlerError::new(ErrorType::Misconfigured, format!("listing accounts: {e}"))
        })?;
        // Account owners: the table's configuration items, read once, over ACCOUNT_OWNERS.
        let owners = self
            .config
            .owners()
            .with_account_owners(self.store.account_owners().await?);
        let judge = Judge {
            night,
            today: started.date_naive(),
            tonight: Tonight {
                window_start: window.start,
                restarted_tonight: false,
            },
            owners: &owners,
            store_slots: tokio::sync::Semaphore::new(STORE_SLOTS),
        };

        // A bounded number of accounts at a time, each one whole in its own task: discovered
        // (every region at once), compared with its previous catalog, its changes written and
        // its regions marked listed. Memory holds the accounts in flight, not the fleet.
        let discovery_started = self.clock.now();
        let mut per_account = stream::iter(accounts.iter().cloned())
            .map(|account| self.account(account, &judge))
            .buffer_unordered(self.config.account_concurrency as usize);
        let mut counts = InventoryCounts::default();
        let mut reached = Vec::new();
        let mut unreachable = Vec::new();
        let mut discovered = discovery_started;
        while let Some(done) = per_account.next().await {
            let done = done?;
            counts.add(&done.counts);
            reached.extend(done.reached);
            unreachable.extend(done.unreachable);
            discovered = discovered.max(done.discovered_at);
        }
        drop(per_account);
        let discovery_ms = millis(discovered - discovery_started);

        reached.sort();
        unreachable.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
        fit_errors(&mut unreachable);
        let finished = self.clock.now();
        let run = InventoryRun {
            night,
            started_at: started,
            finished_at: finished,
            reached: reached.clone(),
            unreachable: unreachable.clone(),
            counts: counts.clone(),
        };
        self.store.put_inventory_run(&run).await?;

        let reached_accounts: BTreeSet<&AccountId> = reached.iter().map(|t| &t.account).collect();
        let unreachable_accounts = unreachable
            .iter()
            .map(|u| &u.account)
            .collect::<BTreeSet<_>>()
            .len();
        let duration_ms = millis(finished - started);
        let summary = Summary {
            night,
            accounts_reached: reached_accounts.len(),
            unreachable_count: unreachable.len(),
            unreachable_sample: unreachable.into_iter().take(UNREACHABLE_SAMPLE).collect(),
            services_found: counts.services,
            counts,
            discovery_ms,
            duration_ms,
        };
        metrics(&summary, unreachable_accounts, &self.calls.snapshot()).emit(finished);
        tracing::info!(
            night = %night,
            services = summary.services_found,
            reached = summary.accounts_reached,
            unreachable = summary.unreachable_count,
            written = summary.counts.written,
            "inventory done"
        );
        Ok(summary)
    }

    /// One account's night: discovery of every region, then, for the regions reached, the
    /// catalog records that changed (new, changed, gone, back) written, and last the regions
    /// marked listed (a run that stops before never claims a listing whose changes were not
    /// written). An unreachable region is reported and its records are left as they were.
    async fn account(
        &self,
        account: AccountId,
        judge: &Judge<'_>,
    ) -> Result<AccountDone, HandlerError> {
        let mut done = AccountDone::default();
        // Each region's services become catalog records as soon as they arrive, so memory holds
        // records, not the account's full descriptions.
        let mut found: Vec<CatalogRecord> = Vec::new();
        let results = self.discover_account(account.clone()).await;
        done.discovered_at = self.clock.now();
        for (target, result) in results {
            match result {
                Ok(services) => {
                    found.extend(services.iter().map(|d| judge.record(&self.config, d)));
                    done.reached.push(target);
                }
                Err(error) => {
                    tracing::warn!(account = %target.account, region = %target.region, %error, "unreachable");
                    done.unreachable.push(Unreachable {
                        account: target.account,
                        region: target.region,
                        error: error.to_string(),
                    });
                }
            }
        }
        if done.reached.is_empty() {
            return Ok(done);
        }
        // Held until the account's changes and listings are written; never closed.
        let _slot = judge.store_slots.acquire().await.map_err(|e| {
            HandlerError::unexpected(format!("the catalog's slots were closed: {e}"))
        })?;

        let previous: HashMap<ServiceId, CatalogRecord> = self
            .store
            .read_catalog(std::slice::from_ref(&account))
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut writes = Vec::new();
        let mut seen = HashSet::new();
        for mut record in found {
            let before = previous.get(&record.id);
            if let Some(b) = before {
                record.first_seen = b.first_seen;
            }
            done.counts.count(&record);
            seen.insert(record.id.clone());
            if before.is_none_or(|b| !b.same_facts(&record)) {
                writes.push(record);
            }
        }
        // Services a reached region no longer has are marked gone, once; those of a region not
        // reached stay as they were.
        let reached: BTreeSet<&str> = done.reached.iter().map(|t| t.region.as_str()).collect();
        for (id, record) in previous {
            if !seen.contains(&id)
                && record.gone_since.is_none()
                && reached.contains(record.id.region.as_str())
            {
                writes.push(CatalogRecord {
                    gone_since: Some(judge.night),
                    ..record
                });
                done.counts.gone += 1;
            }
        }
        done.counts.written = writes.len() as u64;
        self.store.put_catalog(&writes).await?;
        self.store.mark_listed(&done.reached, judge.night).await?;
        Ok(done)
    }

    /// Every region of one account, concurrently.
    async fn discover_account(
        &self,
        account: AccountId,
    ) -> Vec<(
        Target,
        Result<Vec<DiscoveredService>, restart_core::ports::DiscoveryError>,
    )> {
        let targets: Vec<Target> = self
            .config
            .regions
            .iter()
            .map(|region| Target {
                account: account.clone(),
                region: region.clone(),
            })
            .collect();
        // Each account and region is an X-Ray subsegment (nothing when tracing is off).
        let results = futures::future::join_all(targets.iter().map(|t| {
            let span =
                tracing::trace_span!("xray.account", account = %t.account, region = %t.region);
            tracing::Instrument::instrument(self.fleet.discover(t), span)
        }))
        .await;
        targets.into_iter().zip(results).collect()
    }
}

/// What one account's night found and wrote.
#[derive(Debug, Default)]
struct AccountDone {
    /// When its discovery ended (its catalog's read and writes follow).
    discovered_at: DateTime<Utc>,
    counts: InventoryCounts,
    reached: Vec<Target>,
    unreachable: Vec<Unreachable>,
}

/// How a discovered service is judged tonight (its tag, its owner, its eligibility), and the
/// slots of the accounts that read and write the catalog.
struct Judge<'a> {
    night: NaiveDate,
    /// The UTC date the run started (a snooze's end is a UTC date).
    today: NaiveDate,
    tonight: Tonight,
    owners: &'a OwnerResolver,
    /// [`STORE_SLOTS`] accounts at a time read and write the catalog.
    store_slots: tokio::sync::Semaphore,
}

impl Judge<'_> {
    /// The service's record as found tonight (its first sighting tonight: the caller keeps the
    /// previous record's).
    fn record(&self, config: &Config, d: &DiscoveredService) -> CatalogRecord {
        let s = &d.snapshot;
        let tag = TagState::from_tags(&s.tags, &config.tag_key, self.today);
        let owner = self.owners.resolve(&s.tags, &d.cluster_tags, &s.id.account);
        let skip = eligibility::check(Some(s), &tag, &self.tonight, &config.policy).err();
        CatalogRecord::discovered(d, &config.tag_key, &tag, owner, skip, self.night, None)
    }
}

fn millis(d: chrono::TimeDelta) -> u64 {
    u64::try_from(d.num_milliseconds()).unwrap_or(0)
}

/// The run's Embedded Metric Format record.
pub fn metrics(
    summary: &Summary,
    unreachable_accounts: usize,
    calls: &BTreeMap<String, u64>,
) -> Emf {
    let mut emf = Emf::new()
        .dimension("Function", "inventory")
        .metric("ServicesFound", summary.services_found as f64, Unit::Count)
        .metric(
            "AccountsReached",
            summary.accounts_reached as f64,
            Unit::Count,
        )
        .metric(
            "AccountsUnreachable",
            unreachable_accounts as f64,
            Unit::Count,
        )
        .metric("ServicesGone", summary.counts.gone as f64, Unit::Count)
        .metric(
            "DiscoveryMs",
            summary.discovery_ms as f64,
            Unit::Milliseconds,
        )
        .metric("DurationMs", summary.duration_ms as f64, Unit::Milliseconds)
        .property("night", serde_json::json!(summary.night));
    for (action, n) in calls {
        emf = emf.metric(&format!("ApiCalls{action}"), *n as f64, Unit::Count);
    }
    emf
}

#[cfg(test)]
mod owners_tests {
    //! Account owners: the table's configuration items over `ACCOUNT_OWNERS`.

    use restart_core::catalog::DiscoveredService;
    use restart_core::clock::ManualClock;
    use restart_core::owner::OwnerSource;
    use restart_core::ports::{ListedAccounts, SettingsStore, StoreError};
    use testkit::fakes::{MemoryFleet, MemoryStore};
    use testkit::fixtures::{active_snapshot, service_id};

    use super::*;

    const A: &str = "111111111111";
    const B: &str = "222222222222";
    const C: &str = "333333333333";

    fn service(account: &str, cluster_owner: Option<&str>) -> DiscoveredService {
        let tags = [("ecs_task_daily_restart".to_owned(), "enabled".to_owned())];
        DiscoveredService {
            snapshot: active_snapshot(
                service_id(account, "app", "api"),
                tags.into_iter().collect(),
            ),
            cluster_tags: cluster_owner
                .map(|o| ("owner".to_owned(), o.to_owned()))
                .into_iter()
                .collect(),
        }
    }

    fn handler() -> Inventory<ListedAccounts, MemoryFleet, MemoryStore> {
        let config = Config::from_vars([
            ("TABLE_NAME", "t"),
            ("ACCOUNTS", "111111111111,222222222222,333333333333"),
            ("REGIONS", "eu-west-1"),
            ("MEMBER_ROLE_NAME", "member"),
            (
                "ACCOUNT_OWNERS",
                "111111111111=env-a,222222222222=env-b,333333333333=env-c",
            ),
        ])
        .unwrap();
        let fleet = MemoryFleet::default();
        fleet.add(service(A, None));
        fleet.add(service(B, None));
        fleet.add(service(C, Some("cluster-team")));
        Inventory {
            config: Arc::new(config),
            directory: ListedAccounts([A, B, C].map(|a| a.parse().unwrap()).to_vec()),
            fleet,
            store: MemoryStore::default(),
            clock: Arc::new(ManualClock::new("2026-11-21T23:30:00Z".parse().unwrap())),
            calls: Arc::new(ApiCalls::default()),
        }
    }

    fn night() -> NaiveDate {
        "2026-11-22".parse().unwrap()
    }

    #[tokio::test]
    async fn the_tables_owners_win_over_account_owners_and_tags_over_both() {
        let h = handler();
        let table = [(A, "決済チーム"), (C, "table-c")]
            .into_iter()
            .map(|(a, o)| (a.parse().unwrap(), o.parse().unwrap()))
            .collect();
        h.store.put_account_owners(&table).await.unwrap();
        h.run(night()).await.unwrap();
        let catalog = h.store.catalog.lock().unwrap().clone();
        let owner = |a: &str| {
            let r = catalog
                .values()
                .find(|r| r.id.account.as_str() == a)
                .unwrap();
            (r.owner.clone(), r.owner_source)
        };
        assert_eq!(owner(A), ("決済チーム".into(), OwnerSource::AccountDefault));
        assert_eq!(owner(B), ("env-b".into(), OwnerSource::AccountDefault));
        assert_eq!(owner(C), ("cluster-team".into(), OwnerSource::ClusterTag));
    }

    #[tokio::test]
    async fn owners_that_cannot_be_read_fail_the_inventory_before_it_writes() {
        let h = handler();
        *h.store.settings_error.lock().unwrap() =
            Some(StoreError::Throttled("Query on table t".into()));
        let e = h.run(night()).await.unwrap_err();
        assert_eq!(e.error_type, ErrorType::Throttled);
        assert!(h.store.catalog.lock().unwrap().is_empty());
        assert!(h.store.runs.lock().unwrap().is_empty());
    }
}
