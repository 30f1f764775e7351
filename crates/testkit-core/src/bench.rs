//! What the benchmarks share: the fleet `BENCH_FLEET` asks for, and this process's memory.

/// A generated fleet's shape, as `BENCH_FLEET` asks: `10k` (the default: 50 accounts × 20
/// clusters × 10 services), `100k` (200 × 20 × 25: 4,000 clusters), `100k-50` (50 × 20 ×
/// 100: 100,000 services in 50 accounts) or `1m` (2,000 × 20 × 25: 1,000,000 services, asked
/// for only by name: what a benchmark can run of it takes minutes and gigabytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchFleet {
    pub name: &'static str,
    pub accounts: u64,
    pub clusters_per_account: u64,
    pub services_per_cluster: u64,
}

impl BenchFleet {
    /// The fleet `BENCH_FLEET` names, or what is wrong with it.
    ///
    /// # Errors
    /// When `BENCH_FLEET` names no fleet.
    pub fn from_env() -> Result<BenchFleet, String> {
        Self::named(&std::env::var("BENCH_FLEET").unwrap_or_default())
    }

    /// The fleet called `name` (empty: the default).
    ///
    /// # Errors
    /// When `name` names no fleet.
    pub fn named(name: &str) -> Result<BenchFleet, String> {
        let (name, accounts, clusters_per_account, services_per_cluster) = match name {
            "" | "10k" => ("10k", 50, 20, 10),
            "100k" => ("100k", 200, 20, 25),
            "100k-50" => ("100k-50", 50, 20, 100),
            "1m" => ("1m", 2_000, 20, 25),
            other => {
                return Err(format!(
                    "BENCH_FLEET={other}: expected 10k (the default), 100k, 100k-50 or 1m"
                ));
            }
        };
        Ok(BenchFleet {
            name,
            accounts,
            clusters_per_account,
            services_per_cluster,
        })
    }

    /// Services in the fleet.
    pub fn services(&self) -> u64 {
        self.accounts * self.clusters_per_account * self.services_per_cluster
    }
}

/// A figure of /proc/self/status in MB: `VmHWM:` (the peak since the last reset) or `VmRSS:`;
/// NaN where there is none.
pub fn memory_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleets_are_named_and_others_refused() {
        assert_eq!(BenchFleet::named("").unwrap().services(), 10_000);
        assert_eq!(BenchFleet::named("100k").unwrap().services(), 100_000);
        assert_eq!(BenchFleet::named("100k-50").unwrap().accounts, 50);
        assert_eq!(BenchFleet::named("1m").unwrap().services(), 1_000_000);
        assert!(BenchFleet::named("10m").unwrap_err().contains("10m"));
    }
}
