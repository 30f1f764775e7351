//! The crate's integration tests, one binary: each module is one file of `tests/`.
//! One binary links the AWS SDK once, where a binary per file linked it 9 times
//! (the disk and the link time of a cold `make test`).

mod batch_failed;
mod bill;
mod chaos;
mod cli;
mod iam_check;
mod lambda_host;
mod lock;
mod night;
mod up_down;
