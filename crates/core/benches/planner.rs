//! Planner benchmark: 100,000 services over 1,000 clusters in 50 accounts into 36 batches,
//! with and without last night's plan. Target: under 100 ms (issue 2).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use restart_core::ids::ServiceId;
use restart_core::planner::{PlanParams, PlanService, plan};
use restart_core::window::NightWindow;
use std::hint::black_box;

fn fleet() -> Vec<PlanService> {
    let mut out = Vec::with_capacity(100_000);
    for account in 0..50u32 {
        for cluster in 0..20u32 {
            for service in 0..100u32 {
                out.push(PlanService {
                    id: ServiceId {
                        account: format!("{:012}", 100_000_000_000u64 + u64::from(account))
                            .parse()
                            .expect("valid account"),
                        region: "eu-west-1".into(),
                        cluster: format!("cluster-{cluster:03}"),
                        service: format!("service-{service:03}"),
                    },
                    desired: 1 + service % 5,
                    recent_duration: Some(TimeDelta::seconds(240 + i64::from(service * 3))),
                    previous_batch: None,
                });
            }
        }
    }
    out
}

fn params() -> PlanParams {
    let start: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().expect("valid time");
    PlanParams {
        window: NightWindow {
            night: NaiveDate::from_ymd_opt(2026, 11, 22).expect("valid date"),
            start,
            end: start + TimeDelta::hours(6),
        },
        interval: TimeDelta::minutes(10),
        default_duration: TimeDelta::minutes(10),
        timeout: TimeDelta::minutes(30),
    }
}

fn bench_planner(c: &mut Criterion) {
    let services = fleet();
    let p = params();
    let first = plan(&services, &p).expect("plan");
    assert_eq!(
        first.batches.len(),
        36,
        "the benchmark fleet plans into 36 batches"
    );

    // Last night's plan, with 5% of the fleet replaced by new services.
    let mut tonight: Vec<PlanService> = services
        .iter()
        .zip(&first.assignment)
        .map(|(s, &b)| PlanService {
            previous_batch: Some(b),
            ..s.clone()
        })
        .collect();
    for s in tonight.iter_mut().step_by(20) {
        s.id.service.push_str("-new");
        s.previous_batch = None;
    }

    let mut group = c.benchmark_group("planner");
    group.sample_size(20);
    group.bench_function("100k_services_1000_clusters_36_batches_fresh", |b| {
        b.iter(|| plan(black_box(&services), black_box(&p)).expect("plan"))
    });
    group.bench_function(
        "100k_services_1000_clusters_36_batches_with_previous",
        |b| b.iter(|| plan(black_box(&tonight), black_box(&p)).expect("plan")),
    );
    group.finish();
}

criterion_group!(benches, bench_planner);
criterion_main!(benches);
