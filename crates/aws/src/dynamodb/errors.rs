//! How the store's requests fail and are retried: an SDK error as a [`StoreError`] (classified
//! once, by [`ErrorClass`]), a conditional write's failed condition as `Ok(false)`, a request
//! that could not be built, the reasons of a cancelled transaction, and the [`Backoff`] with
//! which unprocessed BatchWriteItem items ([`write_until_processed`]) and cancelled
//! transactions are sent again.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use crate::sdk::{ErrorClass, error_code, sdk_message};
use restart_core::ports::StoreError;

/// Backoff between BatchWriteItem requests that left items unprocessed: exponential, with
/// jitter, capped; at most `max_attempts` requests in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 50 ms, doubling up to 5 s, 10 requests (about 20 s of retrying at most).
    fn default() -> Self {
        Self {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
            max_attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry): half of the capped
    /// exponential delay plus a random share of the other half ("equal jitter"), so waits grow
    /// and concurrent writers spread out.
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.cap);
        let half = exp / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random % spread.saturating_add(1))
    }
}

/// A random number for jitter. `RandomState` is seeded randomly per thread and differs on each
/// call, which is all jitter needs.
pub(super) fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish()
}

/// Sends `pending` with `send`, which returns what was left unprocessed, and sends the rest again
/// after a backoff until nothing is left. An error of `send` ends it at once; items still
/// unprocessed after `backoff.max_attempts` requests are [`StoreError::Throttled`] (`what` names
/// the write in that message).
pub async fn write_until_processed<T, F, Fut>(
    what: &str,
    mut pending: Vec<T>,
    backoff: Backoff,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let sent = pending.len();
        pending = send(pending).await?;
        if pending.is_empty() {
            break;
        }
        if attempt >= backoff.max_attempts {
            return Err(StoreError::Throttled(format!(
                "{what}: {} of {sent} items were still unprocessed after {attempt} requests",
                pending.len()
            )));
        }
        let wait = backoff.delay(attempt - 1, random());
        tracing::debug!(
            unprocessed = pending.len(),
            attempt,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "{what}: items unprocessed, retrying"
        );
        tokio::time::sleep(wait).await;
    }
    Ok(())
}

/// Error codes, besides denials, that mean the table or the request's shape is wrong for this
/// deployment: retrying will not help.
const MISCONFIGURED: &[&str] = &["ResourceNotFoundException", "ValidationException"];

/// A failed SDK request as a [`StoreError`] whose message names the action and the table,
/// classified by [`ErrorClass`]: a denial, an expired session or a missing table is the
/// deployment's fault (`Misconfigured`), an unknown answer is `Unexpected`.
pub(super) fn store_error<E>(table: &str, action: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = sdk_message(err);
    let misconfigured = || {
        StoreError::Misconfigured(format!(
            "{action} on table {table} failed (does the table exist, and may this role use it?): {detail}"
        ))
    };
    if let SdkError::ConstructionFailure(_) = err {
        return StoreError::Misconfigured(format!(
            "{action} on table {table} could not be sent: {}",
            DisplayErrorContext(err)
        ));
    }
    match ErrorClass::of_sdk(err) {
        ErrorClass::Throttled => {
            StoreError::Throttled(format!("{action} on table {table}: {detail}"))
        }
        ErrorClass::Transient => {
            StoreError::Transient(format!("{action} on table {table}: {detail}"))
        }
        ErrorClass::Denied | ErrorClass::Expired => misconfigured(),
        ErrorClass::Other if error_code(err).is_some_and(|c| MISCONFIGURED.contains(&c)) => {
            misconfigured()
        }
        ErrorClass::Other => StoreError::Unexpected(format!("{action} on table {table}: {detail}")),
    }
}

/// A conditional write's answer: `Ok(true)` written, `Ok(false)` its condition failed (someone
/// else wrote first), any other failure as a [`StoreError`] naming the action and the table.
pub(super) fn conditional_write<T, E>(
    table: &str,
    action: &str,
    out: Result<T, SdkError<E>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match out {
        Ok(_) => Ok(true),
        Err(e) if error_code(&e) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(store_error(table, action, &e)),
    }
}

pub(super) fn build_error(what: &str, e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Corrupt(format!(
        "the request {what} could not be built: {}",
        DisplayErrorContext(&e)
    ))
}

/// The cancellation reason codes of a cancelled transaction, one per item (`None` where that
/// item was fine).
pub(super) fn cancellation_codes(e: &TransactWriteItemsError) -> Vec<String> {
    match e {
        TransactWriteItemsError::TransactionCanceledException(c) => c
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 5,
        };
        assert_eq!(b.delay(0, 0), Duration::from_millis(50));
        assert_eq!(b.delay(1, 0), Duration::from_millis(100));
        assert_eq!(b.delay(2, 0), Duration::from_millis(200));
        assert_eq!(b.delay(10, 0), Duration::from_millis(500));
        assert_eq!(b.delay(40, 0), Duration::from_millis(500));
        // The random share stays within the other half.
        for r in [1, 12_345, u64::MAX] {
            let d = b.delay(1, r);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
        assert_ne!(random(), random());
    }

    fn fast(max_attempts: u32) -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            max_attempts,
        }
    }

    /// A fake BatchWriteItem that leaves the last `leave[i]` items unprocessed on request `i`.
    struct Fake {
        leave: Vec<usize>,
        sent: Mutex<Vec<Vec<u32>>>,
    }

    impl Fake {
        fn new(leave: &[usize]) -> Self {
            Self {
                leave: leave.to_vec(),
                sent: Mutex::new(vec![]),
            }
        }

        async fn send(&self, items: Vec<u32>) -> Result<Vec<u32>, StoreError> {
            let mut sent = self.sent.lock().unwrap();
            let leave = self.leave.get(sent.len()).copied().unwrap_or(0);
            sent.push(items.clone());
            Ok(items[items.len().saturating_sub(leave)..].to_vec())
        }
    }

    #[tokio::test]
    async fn unprocessed_items_are_sent_again_until_written() {
        let fake = Fake::new(&[10, 4, 1]);
        let items: Vec<u32> = (0..25).collect();
        write_until_processed("test", items, fast(10), |p| fake.send(p))
            .await
            .unwrap();
        let sent = fake.sent.into_inner().unwrap();
        assert_eq!(
            sent,
            vec![
                (0..25).collect::<Vec<_>>(),
                (15..25).collect(),
                (21..25).collect(),
                vec![24],
            ]
        );
    }

    #[tokio::test]
    async fn items_left_unprocessed_too_long_are_throttled() {
        let fake = Fake::new(&[25, 25, 25, 25]);
        let err = write_until_processed(
            "BatchWriteItem on table t",
            (0..25).collect(),
            fast(3),
            |p| fake.send(p),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            StoreError::Throttled(
                "BatchWriteItem on table t: 25 of 25 items were still unprocessed after 3 requests"
                    .into()
            )
        );
        assert_eq!(fake.sent.into_inner().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_error_ends_the_write_at_once_and_nothing_is_sent_for_nothing() {
        let calls = Mutex::new(0);
        let err = write_until_processed("w", vec![1, 2], fast(5), |_| {
            *calls.lock().unwrap() += 1;
            async { Err::<Vec<u32>, _>(StoreError::Transient("down".into())) }
        })
        .await
        .unwrap_err();
        assert_eq!(err, StoreError::Transient("down".into()));
        assert_eq!(*calls.lock().unwrap(), 1);

        write_until_processed("w", Vec::<u32>::new(), fast(5), |_| async {
            panic!("nothing to send")
        })
        .await
        .unwrap();
    }
}
