//! `fleet-sim`: a simulator of a fleet of AWS accounts running Amazon ECS, plus the parts of
//! STS, AWS Config, AWS Organizations, CloudWatch (alarms) and SSM (change calendars) an
//! orchestrator needs, speaking the real AWS wire protocols so that
//! unmodified aws-sdk-rust, boto3 and AWS CLI clients work against it through an endpoint URL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = fleet_sim::FleetSpec::from_yaml_str(r#"
//! accounts:
//!   - id: "111111111111"
//!     regions: [eu-west-1]
//!     clusters: [{name: payments, services: [{name: api, desired: 3}]}]
//! "#)?;
//! let sim = fleet_sim::spawn(spec).await?;
//! let endpoint = sim.endpoint_url(); // give this to the SDK's endpoint_url
//! sim.handle().advance_seconds(600.0); // move the simulated clock
//! let stats = sim.handle().stats();
//! # let _ = (endpoint, stats);
//! sim.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Code map:
//! - [`spec`]: the fleet spec (YAML/JSON), its defaults and validation.
//! - [`world`]: the simulated accounts, clusters, services and deployments (lazy state machine).
//! - [`ecs`], [`sts`], [`config_svc`], [`organizations`], [`cloudwatch`], [`ssm`]: the AWS
//!   APIs, each with its wire shapes.
//! - [`schedule`]: alarms and change calendars, whose states follow timelines on the
//!   simulated clock.
//! - [`server`]: HTTP routing, throttling, latency, statistics, admin API, [`spawn`].
//! - [`faults`]: injected account faults (SCP denial, server errors).
//! - [`auth`], [`throttle`], [`rate`], [`clock`], [`error`], [`rng`]: supporting pieces.
//!
//! See `docs/fleet-sim.md` for the spec format and what is simulated.

pub mod auth;
pub mod clock;
pub mod cloudwatch;
pub mod config_svc;
pub mod ecs;
pub mod error;
pub mod faults;
pub mod organizations;
pub mod rate;
pub mod rng;
pub mod schedule;
pub mod server;
pub mod spec;
pub mod ssm;
pub mod sts;
pub mod throttle;
pub mod world;

pub use error::AwsError;
pub use server::{ClockInfo, RunningSim, SimError, SimHandle, Stats, router, spawn, spawn_on};
pub use spec::{FleetSpec, SpecError};
