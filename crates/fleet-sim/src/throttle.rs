//! Token buckets per account, region and action, at the documented ECS rates (and AWS
//! Organizations' and CloudWatch's own), in real time.

use std::collections::HashMap;
use std::time::Instant;

/// Bucket size and refill rate (tokens per second) of an action, or `None` if unthrottled.
pub fn limits(action: &str) -> Option<(f64, f64)> {
    Some(match action {
        "UpdateService" => (50.0, 5.0),
        "DescribeServices"
        | "ListServices"
        | "ListTasks"
        | "DescribeTasks"
        | "DescribeTaskDefinition"
        | "ListTagsForResource" => (100.0, 20.0),
        "ListClusters" | "DescribeClusters" => (50.0, 20.0),
        "TagResource" | "UntagResource" => (20.0, 10.0),
        // AWS Organizations: one bucket per action and calling account.
        "ListAccounts"
        | "ListAccountsForParent"
        | "ListOrganizationalUnitsForParent"
        | "ListRoots"
        | "DescribeOrganization" => (20.0, 10.0),
        // CloudWatch: DescribeAlarms' documented 9 transactions per second.
        "DescribeAlarms" => (9.0, 9.0),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// All buckets.
#[derive(Debug, Default)]
pub struct Throttle {
    buckets: HashMap<(String, String, &'static str), Bucket>,
}

impl Throttle {
    /// Takes a token for `action` in `account`/`region` at `now`; false when throttled.
    pub fn try_take(
        &mut self,
        account: &str,
        region: &str,
        action: &'static str,
        now: Instant,
    ) -> bool {
        let Some((size, rate)) = limits(action) else {
            return true;
        };
        let b = self
            .buckets
            .entry((account.to_owned(), region.to_owned(), action))
            .or_insert(Bucket {
                tokens: size,
                last: now,
            });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(size);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let ok = (0..60)
            .filter(|_| t.try_take("a", "r", "UpdateService", t0))
            .count();
        assert_eq!(ok, 50);
        assert!(
            t.try_take("b", "r", "UpdateService", t0),
            "other account has its own bucket"
        );
        assert!(
            t.try_take("a", "r2", "UpdateService", t0),
            "other region has its own bucket"
        );
        let t1 = t0 + Duration::from_secs(1);
        let ok = (0..10)
            .filter(|_| t.try_take("a", "r", "UpdateService", t1))
            .count();
        assert_eq!(ok, 5);
        assert!(t.try_take("a", "r", "AssumeRole", t1));
    }
}
