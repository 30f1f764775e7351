//! The crate's integration tests, one binary: each module is one file of `tests/`.
//! One binary links the AWS SDK once, where a binary per file linked it 5 times
//! (the disk and the link time of a cold `make test`).

mod fleet;
mod handler;
mod never_panics;
mod nights;
mod organizations;
