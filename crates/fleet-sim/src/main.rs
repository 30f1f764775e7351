//! `fleet-sim --spec FILE [--port N] [--host 127.0.0.1]`: serves the fleet until stopped.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// A simulator of a fleet of AWS accounts running ECS (plus STS and AWS Config).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The fleet spec (YAML or JSON).
    #[arg(long)]
    spec: PathBuf,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let spec = fleet_sim::FleetSpec::from_path(&args.spec)
        .with_context(|| format!("loading {}", args.spec.display()))?;
    let sim = fleet_sim::spawn_on(spec, SocketAddr::new(args.host, args.port)).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", sim.endpoint_url())?;
    out.flush()?;
    drop(out);
    shutdown_signal().await;
    sim.shutdown().await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
