//! The night's concurrency, explored: seeded runs of the simulation in `sim` (many invocations
//! at once, a fault drawn at every port call), each held to the invariants of `sim::check`.
//!
//! `SIM_SEEDS=N` runs seeds 0..N (default 500, a minute or two in `make test`; `make soak
//! SEEDS=N` runs as many as asked, with progress); `SIM_SEED=S` replays seed S alone, printing
//! what happened. A failing seed prints itself, the broken invariants and the run's log.

use crate::sim;

use std::sync::atomic::Ordering;
use std::time::Instant;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn no_seed_breaks_an_invariant() {
    restart_core::telemetry::quiet();
    if let Some(seed) = env_u64("SIM_SEED") {
        let (broken, night) = sim::play(seed);
        let report = sim::report(seed, &broken, &night);
        assert!(broken.is_empty(), "{report}");
        println!("{report}");
        return;
    }
    if let Ok(wanted) = std::env::var("SIM_FIND") {
        // The first seed that breaks an invariant whose words contain SIM_FIND (how a hole was
        // found before its fix).
        for seed in 0..env_u64("SIM_SEEDS").unwrap_or(100_000) {
            let (broken, night) = sim::play(seed);
            if broken.iter().any(|b| b.contains(&wanted)) {
                println!(
                    "found after {} runs:\n{}",
                    seed + 1,
                    sim::report(seed, &broken, &night)
                );
                return;
            }
        }
        panic!("no seed broke an invariant saying {wanted:?}");
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(500);
    let progress = env_u64("SIM_PROGRESS").unwrap_or(0);
    let began = Instant::now();
    let (mut points, mut faults, mut invocations) = (0, 0, 0);
    for seed in 0..seeds {
        let (broken, night) = sim::play(seed);
        assert!(broken.is_empty(), "{}", sim::report(seed, &broken, &night));
        points += night.world.stats.points.load(Ordering::Relaxed);
        faults += night.world.stats.faults.load(Ordering::Relaxed);
        invocations += night.world.stats.invocations.load(Ordering::Relaxed);
        if progress > 0 && (seed + 1) % progress == 0 {
            eprintln!(
                "{} seeds, {:.1} s, {points} scheduling points, {faults} faults, {invocations} invocations",
                seed + 1,
                began.elapsed().as_secs_f64()
            );
        }
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{seeds} seeds in {secs:.1} s ({:.1} runs a second): {points} scheduling points, \
         {faults} faults injected, {invocations} invocations, none broke an invariant",
        seeds as f64 / secs
    );
}
