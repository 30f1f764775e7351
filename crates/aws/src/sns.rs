//! The SNS adapter: [`Publisher`] over PublishBatch, and SNS's limits (docs/design.md 2).
//!
//! Messages go out in order, grouped by [`publish_batches`]: at most [`MAX_BATCH_ENTRIES`]
//! entries a request and at most [`MAX_MESSAGE_BYTES`] in all of them together (SNS limits
//! both). A subject SNS takes is at most [`MAX_SUBJECT_CHARS`] long (the notifier renders
//! subjects within it). Every message attribute is of type `String` (an account id must keep
//! its leading zeros, and a filter policy on `owner`, `kind` or `account_id` matches strings
//! exactly).
//!
//! A request that fails (after the SDK's retries) fails its messages and stops the sending; an
//! entry SNS reports in `Failed` fails alone.

use std::ops::Range;

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::sdk::{ErrorClass, error_code, sdk_message};
use restart_core::notice::Message;
use restart_core::ports::{PublishError, Publisher};

/// The most an SNS message may weigh: body and attributes (256 KiB). PublishBatch takes at
/// most this much in all its entries together.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// The most entries PublishBatch takes.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The longest subject SNS accepts, which every [`Message`] keeps to.
pub use restart_core::notice::MAX_SUBJECT_CHARS;

/// Groups messages (given by their [`Message::size`]) into PublishBatch requests: in order, at
/// most [`MAX_BATCH_ENTRIES`] a request and at most [`MAX_MESSAGE_BYTES`] in all.
pub fn publish_batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_BATCH_ENTRIES || total + size > MAX_MESSAGE_BYTES) {
            out.push(start..i);
            start = i;
            total = 0;
        }
        total += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Publishes to SNS topics of the hub account.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: Client,
}

impl SnsPublisher {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Error codes that mean the topic is missing or may not be used.
const MISCONFIGURED: &[&str] = &[
    "NotFound",
    "NotFoundException",
    "AuthorizationError",
    "AuthorizationErrorException",
    "AccessDenied",
    "AccessDeniedException",
    "KMSDisabled",
    "KMSDisabledException",
    "KMSAccessDenied",
    "KMSAccessDeniedException",
    "KMSNotFound",
    "KMSNotFoundException",
    "InvalidSecurity",
    "InvalidSecurityException",
];

/// A failed request or entry by [`ErrorClass`], then SNS's own codes: a missing topic or key is
/// the deployment's fault, a refused message a bug here (`Rejected`, reported as unexpected).
fn classify(code: Option<&str>, status: Option<u16>, message: String) -> PublishError {
    match ErrorClass::of(code, status) {
        ErrorClass::Throttled => PublishError::Throttled(message),
        ErrorClass::Transient => PublishError::Transient(message),
        ErrorClass::Denied | ErrorClass::Expired => PublishError::Misconfigured(message),
        ErrorClass::Other if code.is_some_and(|c| MISCONFIGURED.contains(&c)) => {
            PublishError::Misconfigured(message)
        }
        ErrorClass::Other => PublishError::Rejected(message),
    }
}

fn publish_error<E>(topic: &str, err: &SdkError<E>) -> PublishError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("PublishBatch to {topic}: {}", sdk_message(err));
    if let SdkError::ConstructionFailure(_) = err {
        return PublishError::Misconfigured(format!(
            "PublishBatch to {topic} could not be sent: {}",
            DisplayErrorContext(err)
        ));
    }
    let status = match err {
        SdkError::ServiceError(e) => Some(e.raw().status().as_u16()),
        _ => None,
    };
    match err {
        SdkError::ServiceError(_) => classify(error_code(err), status, message),
        // No answer, a timeout, an unreadable answer.
        _ => PublishError::Transient(message),
    }
}

fn entry(id: usize, m: &Message) -> Result<PublishBatchRequestEntry, PublishError> {
    let mut b = PublishBatchRequestEntry::builder()
        .id(format!("m{id}"))
        .message(&m.body);
    if !m.subject.is_empty() {
        b = b.subject(&m.subject);
    }
    for (name, value) in &m.attributes {
        let v = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| PublishError::Rejected(format!("attribute {name}: {e}")))?;
        b = b.message_attributes(name, v);
    }
    b.build()
        .map_err(|e| PublishError::Rejected(format!("a PublishBatch entry: {e}")))
}

impl Publisher for SnsPublisher {
    fn requests(&self, sizes: &[usize]) -> Vec<Range<usize>> {
        publish_batches(sizes)
    }

    async fn publish(&self, topic: &str, messages: &[Message]) -> Vec<Result<(), PublishError>> {
        let sizes: Vec<usize> = messages.iter().map(Message::size).collect();
        let mut out: Vec<Result<(), PublishError>> = Vec::with_capacity(messages.len());
        for range in publish_batches(&sizes) {
            let entries: Result<Vec<_>, _> = range
                .clone()
                .map(|i| entry(i - range.start, &messages[i]))
                .collect();
            let sent = match entries {
                Ok(entries) => self
                    .client
                    .publish_batch()
                    .topic_arn(topic)
                    .set_publish_batch_request_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| publish_error(topic, &e)),
                Err(e) => Err(e),
            };
            match sent {
                Ok(answer) => {
                    let mut results: Vec<Result<(), PublishError>> =
                        range.clone().map(|_| Ok(())).collect();
                    for failed in answer.failed() {
                        let index = failed
                            .id()
                            .strip_prefix('m')
                            .and_then(|i| i.parse::<usize>().ok());
                        let message = format!(
                            "PublishBatch to {topic}: entry {}: {} {}",
                            failed.id(),
                            failed.code(),
                            failed.message().unwrap_or_default()
                        );
                        let error = if failed.sender_fault() {
                            classify(Some(failed.code()), Some(400), message)
                        } else {
                            PublishError::Transient(message)
                        };
                        match index.and_then(|i| results.get_mut(i)) {
                            Some(slot) => *slot = Err(error),
                            // An id we did not send: count the whole request as failed.
                            None => results.iter_mut().for_each(|r| *r = Err(error.clone())),
                        }
                    }
                    out.extend(results);
                }
                Err(e) => {
                    tracing::warn!(topic, error = %e, "PublishBatch failed");
                    out.resize(messages.len(), Err(e));
                    return out;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn publish_batches_hold_ten_entries_and_256_kib_at_most() {
        assert_eq!(publish_batches(&[1; 25]), [0..10, 10..20, 20..25]);
        assert_eq!(publish_batches(&[200_000, 200_000, 10]), [0..1, 1..3]);
        assert_eq!(publish_batches(&[]), Vec::<Range<usize>>::new());
        assert_eq!(publish_batches(&[MAX_MESSAGE_BYTES, 1]), [0..1, 1..2]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// PublishBatch requests: in order, every message once, at most 10 entries and
        /// 256 KiB each (a lone message over it goes alone, and SNS says so).
        #[test]
        fn publish_batches_cover_every_message_within_the_limits(
            sizes in prop::collection::vec(0usize..=MAX_MESSAGE_BYTES * 2, 0..40),
        ) {
            let batches = publish_batches(&sizes);
            let mut next = 0;
            for r in &batches {
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty() && r.len() <= MAX_BATCH_ENTRIES);
                prop_assert!(r.len() == 1 || sizes[r.clone()].iter().sum::<usize>() <= MAX_MESSAGE_BYTES);
                next = r.end;
            }
            prop_assert_eq!(next, sizes.len());
        }
    }

    #[test]
    fn errors_are_classified_by_code() {
        let c = |code| classify(Some(code), Some(400), "m".into());
        assert!(matches!(c("Throttling"), PublishError::Throttled(_)));
        assert!(matches!(c("NotFound"), PublishError::Misconfigured(_)));
        assert!(matches!(
            c("AuthorizationError"),
            PublishError::Misconfigured(_)
        ));
        assert!(matches!(c("InvalidParameter"), PublishError::Rejected(_)));
        assert!(matches!(c("InternalError"), PublishError::Transient(_)));
        assert!(matches!(c("SomethingNew"), PublishError::Rejected(_)));
        assert!(matches!(
            classify(None, Some(503), "m".into()),
            PublishError::Transient(_)
        ));
    }

    #[test]
    fn entries_carry_string_attributes_and_the_subject() {
        let m = Message {
            subject: "s".into(),
            body: "b".into(),
            attributes: [("account_id".to_owned(), "012345678901".to_owned())].into(),
        };
        let e = entry(3, &m).unwrap();
        assert_eq!(e.id(), "m3");
        assert_eq!(e.subject(), Some("s"));
        let a = &e.message_attributes().unwrap()["account_id"];
        assert_eq!(a.data_type(), "String");
        assert_eq!(a.string_value(), Some("012345678901"));
    }
}
