//! Loading a generated fleet of 100,000 services (target: under 2 s): parse + validate the spec
//! and build every account, cluster, service and initial deployment.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_sim::{FleetSpec, SimHandle};

const SPEC: &str = r#"
seed: 7
start_time: "2026-11-22T00:00:00Z"
generate:
  accounts: 50
  regions: [eu-west-1, us-east-1]
  clusters_per_account: 20
  services_per_cluster: 100
  tagged_percent: 90
  deploy_seconds: [240, 600]
  fail_percent: 1
  stuck_percent: 0.5
  code_deploy_percent: 1
  old_arn_percent: 1
"#;

fn load() -> SimHandle {
    let spec = FleetSpec::from_yaml_str(SPEC).expect("valid spec");
    SimHandle::new(spec).expect("fleet builds")
}

fn bench(c: &mut Criterion) {
    let t = Instant::now();
    let sim = load();
    let services = sim.stats().services;
    assert_eq!(services, 100_000);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "load_fleet: {services} services in {secs:.3} s (target < 2 s, {:.1}x headroom)",
        2.0 / secs
    );
    let mut g = c.benchmark_group("fleet-sim");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(10));
    g.bench_function("load_generated_fleet_100k_services", |b| {
        b.iter(|| black_box(load()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
