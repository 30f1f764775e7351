//! The UpdateService slots every restarter container shares (the [`SharedPace`] port): one
//! partition per account and region, one item per second; the keys are in [`keys`].
//!
//! | item | `pk` | `sk` | `kind` | TTL |
//! |---|---|---|---|---|
//! | UpdateService calls taken in one second of one account and region | `PACE#<account>#<region>` | `<Unix second>` | `pace` | second + 5 min |
//!
//! The item holds `n` (N), the slots taken so far. A take is one UpdateItem, `ADD n 1` on
//! condition `attribute_not_exists(n) OR n < :limit`: DynamoDB applies conditional writes to
//! one item one at a time, so however many containers take at once, a second never holds more
//! than `limit`. A failed condition (`ConditionalCheckFailedException`) is a full window. The
//! item is useless once its second is over and expires five minutes later.
//!
//! Each account and region has its own partition, so the fleet's accounts never contend; the
//! writes to one partition are the takes of one account and region (a few per second, plus one
//! refused take per waiting container and second), far under a partition's 1,000 writes per
//! second.

use super::DynamoStore;
use super::codec::{n, s};
use super::errors::conditional_write;
use super::keys::{self, kind, schema};
use restart_core::catalog::Target;
use restart_core::ports::{SharedPace, StoreError};

/// How long a second's item is kept after the second (its TTL).
pub const PACE_TTL_SECONDS: i64 = 300;

impl SharedPace for DynamoStore {
    async fn take(&self, target: &Target, second: i64, limit: u32) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::pace_pk(target)))
            .key(schema::SK, s(keys::pace_sk(second)))
            .update_expression("SET #kind = :kind, #ttl = :ttl ADD #n :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#kind", schema::KIND)
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":kind", s(kind::PACE))
            .expression_attribute_values(":ttl", n(second.saturating_add(PACE_TTL_SECONDS)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .send()
            .await;
        conditional_write(&self.table, "UpdateItem", out)
    }
}
