//! The domain, ports and contracts of the ECS nightly restart orchestrator.
//!
//! This crate is pure logic: it makes no AWS calls and never reads the environment or the
//! wall clock. Functions take `now` and configuration as arguments. See `docs/ARCHITECTURE.md`
//! for where everything lives and `docs/design.md` for the contracts implemented here.
//!
//! - [`ids`]: accounts, service and cluster ARNs (long and old format), [`ids::ServiceId`].
//! - [`tag`]: the enrollment tag contract (docs/design.md 3.1).
//! - [`owner`]: owner resolution (3.2).
//! - [`service`]: a service as ECS describes it, in domain words.
//! - [`eligibility`]: skip reasons and the eligibility check (3.3).
//! - [`outcome`]: night states, allowed transitions, restart verification (3.4).
//! - [`window`]: the restart window in an IANA timezone, the night's date (3.6).
//! - [`planner`]: eligible services into batches (3.6).
//! - [`catalog`]: catalog records, inventory runs and their counts (3.7).
//! - [`notice`]: owners' findings of a night, the cooldown, the message a publisher takes
//!   (3.1-3.5).
//! - [`ports`]: the traits handlers use, in domain words; adapters implement them.
//! - [`config`]: typed configuration from environment variables (3.9).
//! - [`error`]: the Lambda error contract (3.8).

pub mod catalog;
pub mod clock;
pub mod config;
pub mod eligibility;
pub mod error;
pub mod guard;
pub mod ids;
pub mod limits;
pub mod night;
pub mod notice;
pub mod outcome;
pub mod owner;
pub mod pacing;
pub mod planner;
pub mod ports;
pub mod service;
pub mod tag;
pub mod telemetry;
pub mod text;
pub mod window;

pub use config::Config;
pub use error::{ErrorType, HandlerError};
pub use ids::{AccountId, ClusterArn, ServiceArn, ServiceId};
