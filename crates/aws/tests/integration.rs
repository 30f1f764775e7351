//! The crate's integration tests, one binary: each module is one file of `tests/`.
//! One binary links the AWS SDK once, where a binary per file linked it 10 times
//! (the disk and the link time of a cold `make test`).

mod account_sessions;
mod dynamodb_store;
mod error_model;
mod night_store;
mod organizations;
mod service_history;
mod shared_pace;
mod store_contract;
mod verify_fixtures;
mod xray;
