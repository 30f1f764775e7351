//! The digest's part budget is the notifier's rendering choice; SNS's limit on a message is the
//! adapter's (docs/design.md 2: 256 KiB a message). The budget must leave room under the limit.

use notifier::digest::PART_BUDGET_BYTES;
use restart_aws::sns::MAX_MESSAGE_BYTES;

/// Checked as this test compiles: a budget at or over the limit does not build.
#[test]
fn a_digest_part_budget_stays_under_the_sns_message_limit() {
    const {
        assert!(
            PART_BUDGET_BYTES < MAX_MESSAGE_BYTES,
            "a digest part's budget must stay under SNS's limit on a message"
        )
    };
}
