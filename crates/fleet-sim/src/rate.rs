//! The most calls seen in any one-second window of real (wall-clock) time, per account, region
//! and action: a sliding window over the timestamps of the last second.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Length of the window.
const WINDOW: Duration = Duration::from_secs(1);

/// One key's window: the instants of the calls of the last second and the record so far.
#[derive(Debug, Default)]
struct Window {
    recent: VecDeque<Instant>,
    max: u64,
}

impl Window {
    fn record(&mut self, now: Instant) -> u64 {
        // Calls a full second or more before `now` are outside the window ending at `now`.
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.max = self.max.max(self.recent.len() as u64);
        self.max
    }
}

/// Peak call rates: account → region → action → window. Memory per key is bounded by the
/// calls of one second; a call costs a lookup and a few queue operations (strings are only
/// allocated the first time a key is seen).
#[derive(Debug, Default)]
pub struct RateMeter {
    by_account: HashMap<String, HashMap<String, HashMap<&'static str, Window>>>,
}

impl RateMeter {
    /// Records one call at `now`; returns the record of its key so far.
    pub fn record(
        &mut self,
        account: &str,
        region: &str,
        action: &'static str,
        now: Instant,
    ) -> u64 {
        if !self.by_account.contains_key(account) {
            self.by_account.insert(account.to_owned(), HashMap::new());
        }
        let Some(regions) = self.by_account.get_mut(account) else {
            return 0;
        };
        if !regions.contains_key(region) {
            regions.insert(region.to_owned(), HashMap::new());
        }
        let Some(actions) = regions.get_mut(region) else {
            return 0;
        };
        actions.entry(action).or_default().record(now)
    }

    /// `"account/region"` → action → the most calls in any one-second window.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (account, regions) in &self.by_account {
            for (region, actions) in regions {
                out.insert(
                    format!("{account}/{region}"),
                    actions
                        .iter()
                        .map(|(a, w)| ((*a).to_owned(), w.max))
                        .collect(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_busiest_second() {
        let mut m = RateMeter::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 3 calls in the first 500 ms, then 4 between 900 ms and 1400 ms: the window
        // [900, 1400] holds 4 calls, [400, 1400) holds 5 (the one at 400 and these four).
        for t in [0, 200, 400, 900, 1000, 1200, 1399] {
            m.record("a", "r", "UpdateService", ms(t));
        }
        let s = m.snapshot();
        assert_eq!(s["a/r"]["UpdateService"], 5);
        // A call exactly one second after another does not share its window.
        let mut m = RateMeter::default();
        m.record("a", "r", "ListServices", ms(0));
        m.record("a", "r", "ListServices", ms(1000));
        m.record("a", "r2", "ListServices", ms(1000));
        m.record("b", "r", "ListServices", ms(1000));
        let s = m.snapshot();
        assert_eq!(s["a/r"]["ListServices"], 1);
        assert_eq!(s["a/r2"]["ListServices"], 1);
        assert_eq!(s["b/r"]["ListServices"], 1);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_long_steady_stream_keeps_a_small_window() {
        let mut m = RateMeter::default();
        let t0 = Instant::now();
        // 20 calls per second for 1000 seconds.
        for i in 0..20_000u64 {
            m.record(
                "a",
                "r",
                "DescribeServices",
                t0 + Duration::from_millis(i * 50),
            );
        }
        assert_eq!(m.snapshot()["a/r"]["DescribeServices"], 20);
        let w = &m.by_account["a"]["r"]["DescribeServices"];
        assert!(w.recent.len() <= 20);
    }
}
