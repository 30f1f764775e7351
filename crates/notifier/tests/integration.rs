//! The crate's integration tests, one binary: each module is one file of `tests/`.
//! One binary links the AWS SDK once, where a binary per file linked it 8 times
//! (the disk and the link time of a cold `make test`).

mod common;

mod alarm_metrics;
mod filter_policies;
mod handler;
mod never_panics;
mod snapshots;
mod sns;
mod sns_limits;
mod unicode;
