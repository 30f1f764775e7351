//! A notice ready to publish: what the `Publisher` port (`ports::Publisher`) takes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The longest subject a message carries: SNS takes "ASCII text that begins with a letter,
/// number, or punctuation mark; must not include line breaks or control characters; and must
/// be less than 100 characters long" (Publish API), so 99 at most.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// One message to publish; its subject keeps to [`MAX_SUBJECT_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub subject: String,
    pub body: String,
    /// SNS message attributes, all of type String.
    pub attributes: BTreeMap<String, String>,
}

impl Message {
    /// What SNS counts against the 256 KiB limit: the body and every attribute's name, type
    /// and value; the subject is counted too, to be safe.
    pub fn size(&self) -> usize {
        self.body.len()
            + self.subject.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + "String".len() + v.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A message as JSON carries it: any JSON decodes or fails, never panics, and what
        /// decodes encodes again.
        #[test]
        fn any_json_decodes_to_a_message_or_fails(
            v in testkit_core::strategies::any_json("subject|body|attributes|owner|kind|account_id"),
        ) {
            if let Ok(m) = serde_json::from_value::<Message>(v) {
                serde_json::to_value(&m).unwrap();
            }
        }
    }
}
