//! The crate's integration tests, one binary: each module is one file of `tests/`.
//! One binary links the AWS SDK once, where a binary per file linked it 14 times
//! (the disk and the link time of a cold `make test`).

mod common;

mod admin_api;
mod alarms_calendars;
mod aws_cli;
mod config_query;
mod deployments;
mod ecs_api;
mod faults;
mod fleets;
mod malformed;
mod organizations;
mod spec_fuzz;
mod sts_isolation;
mod task_definitions;
mod throttling;
