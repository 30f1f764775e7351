//! The cost of tracing an invocation-shaped workload: 50 accounts, each with 19 AWS calls
//! and a pace wait (1,000 spans and events), with the layer off (not installed), on with a
//! daemon listening, and on with nobody at the daemon's address.
//!
//! `cargo bench -p restart-xray --bench layer`; the figures are in docs/performance.md.

use std::hint::black_box;
use std::net::UdpSocket;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn workload() -> u64 {
    let span = restart_xray::invocation("restarter", Some(HEADER));
    let _entered = span.enter();
    let mut n = 0;
    for account in 0..50u64 {
        let acct = format!("{:012}", 100_000_000_000 + account);
        let a = tracing::trace_span!("xray.account", account = %acct, region = "eu-west-1");
        let _a = a.enter();
        for call in 0..19u64 {
            tracing::trace!(
                target: "xray.aws",
                service = "ECS",
                operation = "DescribeServices",
                region = "eu-west-1",
                account = %acct,
                status = 200u64,
                attempts = 1u64,
                throttled = false,
                ok = true,
                start = 1.0e9,
            );
            n += call;
        }
        let w = tracing::trace_span!("xray.pace_wait", account = %acct, what = "update_service");
        drop(w.enter());
    }
    n
}

fn with(dispatch: Dispatch, c: &mut Criterion, name: &str) {
    tracing::dispatcher::with_default(&dispatch, || {
        c.bench_function(name, |b| b.iter(|| black_box(workload())));
    });
}

fn bench(c: &mut Criterion) {
    // Off: the functions' logs only (a fmt layer at `info`), as when the variable is unset.
    let off = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    );
    with(
        Dispatch::new(off),
        c,
        "invocation of 1000 spans, tracing off",
    );

    let listening = UdpSocket::bind("127.0.0.1:0").expect("a local port");
    let daemon = restart_xray::Daemon::udp(listening.local_addr().expect("its address"));
    let on = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(restart_xray::layer(daemon));
    with(
        Dispatch::new(on),
        c,
        "invocation of 1000 spans, daemon listening",
    );

    // A port bound then released: nobody listens there.
    let free = UdpSocket::bind("127.0.0.1:0").expect("a local port");
    let addr = free.local_addr().expect("its address");
    drop(free);
    let absent = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(restart_xray::layer(restart_xray::Daemon::udp(addr)));
    with(
        Dispatch::new(absent),
        c,
        "invocation of 1000 spans, no daemon",
    );
    drop(listening);
}

use tracing_subscriber::Layer as _;

criterion_group!(benches, bench);
criterion_main!(benches);
