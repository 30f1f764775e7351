//! The crate's integration tests, one binary: each module is one file of `tests/`.
//! One binary links the AWS SDK once, where a binary per file linked it 11 times
//! (the disk and the link time of a cold `make test`).

mod common;

mod config;
mod connect;
mod lists;
mod local_stack;
mod never_panics;
mod night;
mod readme;
mod report;
mod trigger;
mod unicode;
mod version;
