//! The crate's integration tests, one binary: each module is one file of `tests/`.
//! One binary links the AWS SDK once, where a binary per file linked it 8 times
//! (the disk and the link time of a cold `make test`).

mod harness;
mod sim;

mod alarm_lines;
mod budget;
mod close;
mod faults;
mod fleet;
mod never_panics;
mod races;
mod shared_pace;
