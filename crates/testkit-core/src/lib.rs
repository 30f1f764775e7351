//! Test helpers that need no AWS SDK, so that `restart-core`'s own tests and benchmarks build
//! without it (`tools/check-boundaries` checks its dev-dependency tree). `testkit` re-exports
//! every module here and adds what reaches the AWS emulators.
//!
//! [`fakes`] holds in-memory implementations of the ports for handler tests; [`strategies`] the
//! proptest strategies the handlers' `never_panics` tests share: text in any script, any JSON
//! and events of named fields; [`fixtures`] the records they seed; [`bench`] the fleets the
//! benchmarks generate.

pub mod bench;
pub mod fakes;
pub mod fixtures;
pub mod strategies;

/// A current-thread runtime with time and I/O, to drive async handlers from a synchronous test
/// body (a proptest case).
///
/// # Panics
/// When the runtime cannot be built.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
