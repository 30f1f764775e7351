//! Pacing (docs/design.md 3.5): token buckets per account, region and kind of call, so that the
//! orchestrator stays far under the ECS throttles and leaves room for the tenants' own calls.
//!
//! A bucket holds at most one second's worth of tokens (`burst = max(1, rate)`). A caller
//! reserves a token and sleeps until it is due: callers are served in arrival order and no one
//! spins. Time is tokio's, so tests with a paused runtime are exact.
//!
//! A bucket paces one process. Many Lambda containers restart at once (40 batches resumed
//! together after a pause), so UpdateService is also paced across all of them by a
//! [`SharedPacer`]: fixed one-second windows per account and region, each holding at most
//! `floor(rate)` calls, counted in the table ([`SharedPace`]). Any second of real time
//! overlaps at most two windows, so an account sees at most twice the rate in any one second
//! (8 at the default 4/s, under ECS's burst of 50) and over `T` seconds at most `T + 1`
//! windows' worth, however many containers run. The windows are Unix seconds of the wall
//! clock, which Lambda keeps synchronised across containers. A slot the table grants only
//! after its second is over is left unused (the call would land in the next window, uncounted),
//! so a call is sent inside the window that counts it.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::Target;
use crate::clock::Clock;
use crate::config::Pacing;
use crate::ids::AccountId;
use crate::ports::{SharedPace, StoreError};

/// The kinds of ECS call that are paced separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiClass {
    /// ListClusters, DescribeClusters, ListServices, DescribeServices, ListTasks, DescribeTasks.
    Describe,
    /// UpdateService.
    Update,
    /// TagResource.
    Tag,
}

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket refilled at `rate` tokens per second, holding at most `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long the caller must wait for the token it reserves now.
    fn reserve(&self) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.burst) - 1.0;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            // `from_secs_f64` panics on a wait too long for a Duration (a rate near 0; the
            // configuration refuses those) or NaN (a rate of NaN): wait as long as possible.
            Duration::try_from_secs_f64(-s.0 / self.rate).unwrap_or(Duration::MAX)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Every bucket of the fleet, created on first use.
#[derive(Debug)]
pub struct Pacer {
    pacing: Pacing,
    buckets: Mutex<HashMap<(AccountId, String, ApiClass), Arc<TokenBucket>>>,
}

impl Pacer {
    pub fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rates this pacer keeps.
    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    fn bucket(&self, account: &AccountId, region: &str, class: ApiClass) -> Arc<TokenBucket> {
        let rate = match class {
            ApiClass::Describe => self.pacing.describe_per_sec,
            ApiClass::Update => self.pacing.update_service_per_sec,
            ApiClass::Tag => self.pacing.tag_resource_per_sec,
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .entry((account.clone(), region.to_owned(), class))
            .or_insert_with(|| Arc::new(TokenBucket::new(rate, rate.max(1.0))))
            .clone()
    }

    /// Waits until a call of `class` may be made in this account and region.
    pub async fn wait(&self, account: &AccountId, region: &str, class: ApiClass) {
        self.bucket(account, region, class).acquire().await;
    }
}

/// [`SharedPace`] as a trait object (the port's `impl Future` methods are not object safe),
/// so that an adapter can hold any store. Every `SharedPace` is one.
pub trait PaceSlots: Send + Sync + Debug {
    /// [`SharedPace::take`].
    fn take_slot<'a>(
        &'a self,
        target: &'a Target,
        second: i64,
        limit: u32,
    ) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>>;
}

impl<T: SharedPace + Debug> PaceSlots for T {
    fn take_slot<'a>(
        &'a self,
        target: &'a Target,
        second: i64,
        limit: u32,
    ) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>> {
        Box::pin(SharedPace::take(self, target, second, limit))
    }
}

/// The most calls of one window for a rate: the rate rounded down, at least 1.
pub fn window_limit(rate: f64) -> u32 {
    if rate.is_nan() || rate < 1.0 {
        1
    } else {
        // `as` saturates: an infinite rate is u32::MAX.
        rate.floor() as u32
    }
}

/// The most a waiter adds to the next second boundary, so that the containers waiting on one
/// account do not all ask the table at the same instant.
const JITTER_MAX: Duration = Duration::from_millis(50);

/// How many slots granted after their second a wait leaves unused before it gives up on the
/// shared pace (a table answering in over a second is as good as unavailable).
pub const MAX_LATE_ANSWERS: u32 = 3;

/// What a wait on the [`SharedPacer`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWait {
    /// A slot was taken in this Unix second's window.
    Slot(i64),
    /// The table failed; the call goes on, paced by this container only.
    Unavailable,
}

/// UpdateService pacing across every container: waits for a slot of the account's and
/// region's current one-second window (see the module documentation).
#[derive(Debug, Clone)]
pub struct SharedPacer {
    slots: Arc<dyn PaceSlots>,
    clock: Arc<dyn Clock>,
    limit: u32,
    /// This container's share of the rate, kept while the table cannot be asked: the rate over
    /// [`CONTAINERS_AT_ONCE`], so that the account's rate holds across containers then too.
    fallback: Arc<Pacer>,
}

/// The most restarter containers that work at once: the state machine's Map runs at most 40
/// batches at a time (infra/statemachine, `MaxConcurrency`), each one invocation at a time.
pub const CONTAINERS_AT_ONCE: f64 = 40.0;

impl SharedPacer {
    /// Windows of [`window_limit`]`(rate)` calls, counted in `slots`, timed by `clock` (the
    /// wall clock: every container must agree on when a second starts).
    pub fn new(slots: Arc<dyn PaceSlots>, clock: Arc<dyn Clock>, rate: f64) -> Self {
        Self {
            slots,
            clock,
            limit: window_limit(rate),
            fallback: Arc::new(Pacer::new(Pacing {
                update_service_per_sec: rate / CONTAINERS_AT_ONCE,
                tag_resource_per_sec: rate,
                describe_per_sec: rate,
            })),
        }
    }

    /// The most calls of one window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Waits until a slot of `target`'s current window is taken: while windows are full, sleeps
    /// to the next second boundary (plus jitter) and tries that window. A slot granted only
    /// after its second ended is left unused and the current second is tried at once: the call
    /// would land in a second whose count does not hold it. A table that fails, or answers too
    /// late [`MAX_LATE_ANSWERS`] times, never stops a call: it is logged, and the call waits
    /// for this container's share of the rate instead (the rate over [`CONTAINERS_AT_ONCE`]),
    /// never the account's whole rate in every container.
    pub async fn wait(&self, target: &Target) -> SharedWait {
        let got = self.take_window(target).await;
        if got == SharedWait::Unavailable {
            self.fallback
                .wait(&target.account, &target.region, ApiClass::Update)
                .await;
        }
        got
    }

    async fn take_window(&self, target: &Target) -> SharedWait {
        let mut second = self.clock.now().timestamp();
        let mut late = 0;
        loop {
            match self.slots.take_slot(target, second, self.limit).await {
                Ok(true) => {
                    let now = self.clock.now().timestamp();
                    if now <= second {
                        return SharedWait::Slot(second);
                    }
                    late += 1;
                    if late >= MAX_LATE_ANSWERS {
                        // A slow table (an emulator under load, never DynamoDB in practice):
                        // not worth a warning per call.
                        tracing::debug!(
                            account = %target.account,
                            region = %target.region,
                            "the table answers after the second is over; pacing this container only"
                        );
                        return SharedWait::Unavailable;
                    }
                    second = now;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    self.unavailable(target, &e.to_string());
                    return SharedWait::Unavailable;
                }
            }
            let now = self.clock.now();
            let next = second.saturating_add(1);
            let until_next = (i128::from(next) - i128::from(now.timestamp())) * 1_000_000_000
                - i128::from(now.timestamp_subsec_nanos());
            // At most a second: with a clock behind `second` (one that stands still) the wait
            // still moves on to the next window.
            let wait = Duration::from_nanos(
                u64::try_from(until_next.clamp(0, 1_000_000_000)).unwrap_or(1_000_000_000),
            );
            tokio::time::sleep(wait + jitter()).await;
            second = self.clock.now().timestamp().max(next);
        }
    }

    fn unavailable(&self, target: &Target, why: &str) {
        tracing::warn!(
            account = %target.account,
            region = %target.region,
            error = why,
            "the shared UpdateService pace is unavailable; pacing this container only"
        );
    }
}

/// A random wait in `0..JITTER_MAX`. `RandomState` is seeded randomly per thread and differs
/// on each call, which is all jitter needs.
fn jitter() -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    let max = u64::try_from(JITTER_MAX.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(h.finish() % max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing() -> Pacing {
        Pacing {
            update_service_per_sec: 4.0,
            tag_resource_per_sec: 8.0,
            describe_per_sec: 15.0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_sustained_rate() {
        let bucket = TokenBucket::new(10.0, 5.0);
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..20 {
            bucket.acquire().await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!(
            (took - 2.0).abs() < 0.01,
            "20 calls at 10/s after the burst took {took}"
        );
    }

    #[test]
    fn rates_no_configuration_allows_do_not_panic() {
        for rate in [
            0.0,
            -1.0,
            1e-300,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ] {
            let bucket = TokenBucket::new(rate, 1.0);
            for _ in 0..3 {
                let _ = bucket.reserve();
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_rate() {
        let pacer = Arc::new(Pacer::new(pacing()));
        let account: AccountId = "111111111111".parse().unwrap();
        let start = Instant::now();
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let (p, a) = (pacer.clone(), account.clone());
                tokio::spawn(async move { p.wait(&a, "eu-west-1", ApiClass::Update).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // 4 free (burst), then 20 more at 4/s.
        let took = start.elapsed().as_secs_f64();
        assert!((took - 5.0).abs() < 0.01, "took {took}");
    }

    /// The wall clock as tokio's (paused) time moves it.
    #[derive(Debug)]
    struct TokioClock {
        at: chrono::DateTime<chrono::Utc>,
        from: Instant,
    }

    impl TokioClock {
        /// Starts `offset_ms` into a second.
        fn new(offset_ms: i64) -> Arc<Self> {
            Arc::new(Self {
                at: chrono::DateTime::from_timestamp(1_795_305_600, 0).unwrap()
                    + chrono::TimeDelta::milliseconds(offset_ms),
                from: Instant::now(),
            })
        }
    }

    impl Clock for TokioClock {
        fn now(&self) -> chrono::DateTime<chrono::Utc> {
            self.at + chrono::TimeDelta::from_std(self.from.elapsed()).unwrap()
        }
    }

    #[derive(Debug)]
    struct Failing;

    impl SharedPace for Failing {
        async fn take(&self, _: &Target, _: i64, _: u32) -> Result<bool, StoreError> {
            Err(StoreError::Throttled("the table is busy".into()))
        }
    }

    fn target() -> Target {
        Target {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn a_window_holds_the_rate_rounded_down_and_at_least_one() {
        assert_eq!(window_limit(4.0), 4);
        assert_eq!(window_limit(4.9), 4);
        assert_eq!(window_limit(1.0), 1);
        assert_eq!(window_limit(0.5), 1);
        assert_eq!(window_limit(0.01), 1);
        assert_eq!(window_limit(f64::NAN), 1);
        assert_eq!(window_limit(-3.0), 1);
        assert_eq!(window_limit(f64::INFINITY), u32::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn containers_share_each_second_and_none_waits_longer_than_needed() {
        let store = Arc::new(Table::default());
        let clock = TokioClock::new(300);
        // Three containers, each with its own pacer object, on one table.
        let pacers: Vec<_> = (0..3)
            .map(|_| SharedPacer::new(store.clone(), clock.clone(), 4.0))
            .collect();
        let start = Instant::now();
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let pacer = pacers[i % 3].clone();
                tokio::spawn(async move { pacer.wait(&target()).await })
            })
            .collect();
        let mut per_second: HashMap<i64, u32> = HashMap::new();
        for t in tasks {
            match t.await.unwrap() {
                SharedWait::Slot(second) => *per_second.entry(second).or_default() += 1,
                SharedWait::Unavailable => panic!("the store does not fail"),
            }
        }
        let first = 1_795_305_600;
        let expected: HashMap<i64, u32> = (first..first + 6).map(|s| (s, 4)).collect();
        assert_eq!(per_second, expected, "six full windows, in order");
        // The last window opens 5 s after the first, 4.7 s from the start; jitter adds < 50 ms
        // (and tokio's timer rounds up to the millisecond).
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(4_700) && took <= Duration::from_millis(4_751),
            "took {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_table_paces_the_container_at_its_share_of_the_rate() {
        let pacer = SharedPacer::new(Arc::new(Failing), TokioClock::new(0), 4.0);
        let start = Instant::now();
        // The first call goes at once; then one every 40 / 4 = 10 s: 40 containers together
        // keep the account's 4 a second, where each at the full rate would send 160.
        assert_eq!(pacer.wait(&target()).await, SharedWait::Unavailable);
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..9 {
            assert_eq!(pacer.wait(&target()).await, SharedWait::Unavailable);
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(90) && took <= Duration::from_millis(90_010),
            "took {took:?}"
        );
    }

    /// The table's slots in memory: a slot is taken while its second has fewer than `limit`.
    #[derive(Debug, Default)]
    struct Table {
        pace: Mutex<HashMap<(Target, i64), u32>>,
    }

    impl SharedPace for Table {
        async fn take(&self, target: &Target, second: i64, limit: u32) -> Result<bool, StoreError> {
            let mut pace = self.pace.lock().unwrap();
            let n = pace.entry((target.clone(), second)).or_default();
            let free = *n < limit;
            if free {
                *n += 1;
            }
            Ok(free)
        }
    }

    /// A table that answers each take after the next delay of `delays` (none once used up).
    #[derive(Debug)]
    struct Slow {
        delays: Mutex<Vec<Duration>>,
        store: Table,
    }

    impl SharedPace for Slow {
        async fn take(&self, target: &Target, second: i64, limit: u32) -> Result<bool, StoreError> {
            let delay = self.delays.lock().unwrap().pop().unwrap_or_default();
            tokio::time::sleep(delay).await;
            self.store.take(target, second, limit).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_granted_after_its_second_is_left_and_the_current_one_taken() {
        let slots = Arc::new(Slow {
            delays: Mutex::new(vec![Duration::from_millis(1_500)]),
            store: Table::default(),
        });
        let pacer = SharedPacer::new(slots.clone(), TokioClock::new(800), 4.0);
        let first = 1_795_305_600;
        // Asked at .8 of the first second, answered at .3 of the third.
        assert_eq!(pacer.wait(&target()).await, SharedWait::Slot(first + 2));
        let taken = slots.store.pace.lock().unwrap().clone();
        assert_eq!(taken[&(target(), first)], 1, "the late slot stays taken");
        assert_eq!(taken[&(target(), first + 2)], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_table_that_always_answers_late_does_not_hold_the_call() {
        let slots = Arc::new(Slow {
            delays: Mutex::new(vec![Duration::from_millis(1_100); 10]),
            store: Table::default(),
        });
        let pacer = SharedPacer::new(slots.clone(), TokioClock::new(0), 4.0);
        let start = Instant::now();
        assert_eq!(pacer.wait(&target()).await, SharedWait::Unavailable);
        assert_eq!(start.elapsed(), Duration::from_millis(3_300));
        assert_eq!(slots.delays.lock().unwrap().len(), 10 - 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_that_stands_still_still_moves_on() {
        let at = chrono::DateTime::from_timestamp(1_795_305_600, 0).unwrap();
        let clock = Arc::new(crate::clock::ManualClock::new(at));
        let store = Arc::new(Table::default());
        let pacer = SharedPacer::new(store, clock, 1.0);
        let start = Instant::now();
        for k in 0..3 {
            assert_eq!(
                pacer.wait(&target()).await,
                SharedWait::Slot(1_795_305_600 + k)
            );
        }
        // Each wait starts from the clock's second and sleeps a second per full window: 1 s
        // for the second call, 2 s for the third, plus jitter.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_millis(3_150),
            "one window per second of waiting: {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn accounts_regions_and_classes_do_not_share_buckets() {
        let pacer = Pacer::new(pacing());
        let a: AccountId = "111111111111".parse().unwrap();
        let b: AccountId = "222222222222".parse().unwrap();
        let start = Instant::now();
        for _ in 0..4 {
            pacer.wait(&a, "eu-west-1", ApiClass::Update).await;
            pacer.wait(&b, "eu-west-1", ApiClass::Update).await;
            pacer.wait(&a, "us-east-1", ApiClass::Update).await;
            pacer.wait(&a, "eu-west-1", ApiClass::Tag).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.wait(&a, "eu-west-1", ApiClass::Update).await;
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }
}
