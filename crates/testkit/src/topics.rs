//! The SNS fake: it stays in `testkit` (not `testkit-core`) because it splits messages into
//! PublishBatch requests with the adapter's own `restart_aws::sns::publish_batches`, so the
//! notifier's tests see the requests SNS would get.

use std::sync::Mutex;

/// SNS topics held in memory: every PublishBatch request, by topic, and errors to answer with.
#[derive(Debug, Default)]
pub struct MemoryTopics {
    /// (topic, the messages of one PublishBatch request), in the order sent.
    pub requests: Mutex<Vec<(String, Vec<restart_core::notice::Message>)>>,
    /// When set, the request with this index (0-based, over all requests) fails with this
    /// error, and every later request is still accepted.
    pub fail_request: Mutex<Option<(usize, restart_core::ports::PublishError)>>,
}

impl MemoryTopics {
    /// Every message published to `topic`.
    pub fn messages(&self, topic: &str) -> Vec<restart_core::notice::Message> {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests
            .iter()
            .filter(|(t, _)| t == topic)
            .flat_map(|(_, m)| m.iter().cloned())
            .collect()
    }
}

impl restart_core::ports::Publisher for MemoryTopics {
    fn requests(&self, sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
        restart_aws::sns::publish_batches(sizes)
    }

    async fn publish(
        &self,
        topic: &str,
        messages: &[restart_core::notice::Message],
    ) -> Vec<Result<(), restart_core::ports::PublishError>> {
        let sizes: Vec<usize> = messages
            .iter()
            .map(restart_core::notice::Message::size)
            .collect();
        let mut out = Vec::with_capacity(messages.len());
        for range in restart_core::ports::Publisher::requests(self, &sizes) {
            let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            let index = requests.len();
            let mut fail = self.fail_request.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, e)) = fail.as_ref().filter(|(i, _)| *i == index) {
                let e = e.clone();
                *fail = None;
                requests.push((topic.to_owned(), Vec::new()));
                out.resize(messages.len(), Err(e));
                return out;
            }
            requests.push((topic.to_owned(), messages[range.clone()].to_vec()));
            out.extend(range.map(|_| Ok(())));
        }
        out
    }
}
