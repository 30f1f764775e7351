//! Pacing (DESIGN 3.5): token buckets per account, region and kind of call, so that the
//! orchestrator stays far under the ECS throttles and leaves room for the tenants' own calls.
//!
//! A bucket holds at most one second's worth of tokens (`burst = max(1, rate)`). A caller
//! reserves a token and sleeps until it is due: callers are served in arrival order and no one
//! spins. Time is tokio's, so tests with a paused runtime are exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Pacing;
use crate::ids::AccountId;

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
