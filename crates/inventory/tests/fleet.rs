//! The inventory function against real peers: fleet-sim (ECS, STS, Config over their wire
//! protocols) and moto (DynamoDB). `tools/with-moto` provides `MOTO_ENDPOINT`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use fleet_sim::spec::{AccountSpec, ClusterSpec, ServiceSpec};
use fleet_sim::{FleetSpec, RunningSim};
use inventory::Summary;
use restart_core::Config;
use restart_core::catalog::CatalogRecord;
use restart_core::clock::SystemClock;
use restart_core::eligibility::SkipReason;
use restart_core::ids::AccountId;
use restart_core::ports::CatalogStore;
use restart_core::tag::TagStateKind;
use serde_json::json;

const A: &str = "111111111111";
const B: &str = "222222222222";
const DENIED: &str = "333333333333";

fn sdk(sim: &RunningSim) -> aws_config::SdkConfig {
    testkit::hub_sdk_config(&sim.endpoint_url())
}

fn svc(name: &str, tags: &[(&str, &str)]) -> ServiceSpec {
    ServiceSpec {
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ServiceSpec::named(name)
    }
}

fn cluster(name: &str, region: &str, services: Vec<ServiceSpec>) -> ClusterSpec {
    ClusterSpec {
        name: name.into(),
        region: Some(region.into()),
        tags: BTreeMap::new(),
        services,
    }
}

const TAG: &str = "ecs_task_daily_restart";

/// Account A: two regions, 105 clusters in eu-west-1, one cluster with 120 services, every tag
/// state, a CODE_DEPLOY service, an old-format ARN. Account B: a cluster owned by its tag.
/// The third account denies AssumeRole.
fn spec() -> FleetSpec {
    let mut a_clusters: Vec<ClusterSpec> = (0..104)
        .map(|i| {
            cluster(
                &format!("small-{i:03}"),
                "eu-west-1",
                vec![svc("web", &[(TAG, "enabled")])],
            )
        })
        .collect();
    a_clusters.push(cluster(
        "big",
        "eu-west-1",
        (0..120)
            .map(|i| svc(&format!("svc-{i:03}"), &[(TAG, "2026-11-21T01:10:00Z")]))
            .collect(),
    ));
    let mut states = vec![
        svc("untagged", &[]),
        svc("opted-out", &[(TAG, "disabled")]),
        svc("snoozed", &[(TAG, "skip-until:2099-01-01")]),
        svc("malformed", &[(TAG, "every night")]),
        svc("empty", &[(TAG, "")]),
        ServiceSpec {
            controller: fleet_sim::spec::Controller::CodeDeploy,
            ..svc("blue-green", &[(TAG, "enabled")])
        },
        ServiceSpec {
            old_arn_format: true,
            ..svc("legacy", &[])
        },
        ServiceSpec {
            min_healthy_percent: 0,
            ..svc("risky", &[(TAG, "enabled"), ("owner", "risk-team")])
        },
    ];
    states.push(svc("zero", &[(TAG, "enabled")]));
    states.last_mut().unwrap().desired = 0;
    a_clusters.push(cluster("states", "us-east-1", states));
    let mut b_cluster = cluster(
        "search",
        "eu-west-1",
        vec![svc("query", &[(TAG, "enabled")])],
    );
    b_cluster.tags.insert("team".into(), "search".into());
    FleetSpec {
        accounts: vec![
            AccountSpec {
                id: A.into(),
                regions: vec!["eu-west-1".into(), "us-east-1".into()],
                deny_assume_role: false,
                external_id: Some("nightly".into()),
                clusters: a_clusters,
            },
            AccountSpec {
                id: B.into(),
                regions: vec!["eu-west-1".into()],
                deny_assume_role: false,
                external_id: None,
                clusters: vec![b_cluster],
            },
            AccountSpec {
                id: DENIED.into(),
                regions: vec!["eu-west-1".into()],
                deny_assume_role: true,
                external_id: None,
                clusters: vec![cluster("hidden", "eu-west-1", vec![svc("x", &[])])],
            },
        ],
        ..FleetSpec::default()
    }
}

async fn table() -> String {
    testkit::create_table(&testkit::dynamodb_client()).await
}

fn config(table: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("TABLE_NAME", table),
        ("ACCOUNTS", "111111111111,222222222222,333333333333"),
        ("REGIONS", "eu-west-1,us-east-1"),
        ("MEMBER_ROLE_NAME", "ecs-restart-member"),
        ("EXTERNAL_ID", "nightly"),
        ("AGGREGATOR_NAME", "org"),
    ];
    vars.extend_from_slice(extra);
    Config::from_vars(vars).unwrap()
}

async fn run(sim: &RunningSim, config: Config, night: &str) -> Summary {
    let h = inventory::aws::handler_with_clock(config, &sdk(sim), Arc::new(SystemClock));
    h.handle(json!({ "night": night })).await.unwrap()
}

fn accounts() -> Vec<AccountId> {
    [A, B, DENIED].iter().map(|a| a.parse().unwrap()).collect()
}

async fn catalog(table: &str, sim: &RunningSim) -> BTreeMap<String, CatalogRecord> {
    let store = restart_aws::dynamo_store(&sdk(sim), table, 90);
    store
        .read_catalog(&accounts())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.to_string(), r))
        .collect()
}

#[tokio::test]
async fn discovers_every_reachable_service_once_and_reports_the_denied_account() {
    let sim = fleet_sim::spawn(spec()).await.unwrap();
    let table = table().await;
    let s = run(&sim, config(&table, &[]), "2026-11-22").await;

    // 104 + 120 in eu-west-1, 9 in us-east-1 (account A), 1 in account B.
    assert_eq!(s.services_found, 104 + 120 + 9 + 1);
    assert_eq!(s.accounts_reached, 2);
    assert_eq!(
        s.unreachable_count, 2,
        "both regions of the denied account: {:?}",
        s.unreachable_sample
    );
    assert!(
        s.unreachable_sample
            .iter()
            .all(|u| u.account.as_str() == DENIED)
    );
    assert!(
        s.unreachable_sample[0].error.contains("AccessDenied"),
        "{}",
        s.unreachable_sample[0].error
    );

    let by_state = &s.counts.by_tag_state;
    assert_eq!(by_state[&TagStateKind::Untagged], 2, "untagged and legacy");
    assert_eq!(by_state[&TagStateKind::OptedOut], 1);
    assert_eq!(by_state[&TagStateKind::Snoozed], 1);
    assert_eq!(by_state[&TagStateKind::Malformed], 1);
    let reasons = &s.counts.by_skip_reason;
    assert_eq!(reasons[&SkipReason::Untagged], 1);
    assert_eq!(reasons[&SkipReason::NeedsLongArn], 1);
    assert_eq!(reasons[&SkipReason::ControllerCodeDeploy], 1);
    assert_eq!(reasons[&SkipReason::DowntimeRisk], 1);
    assert_eq!(reasons[&SkipReason::DesiredZero], 1);

    let catalog = catalog(&table, &sim).await;
    assert_eq!(catalog.len() as u64, s.services_found);
    let query = &catalog[&format!("{B}/eu-west-1/search/query")];
    assert_eq!(query.owner, "search", "owner from the cluster's team tag");
    let risky = &catalog[&format!("{A}/us-east-1/states/risky")];
    assert_eq!(risky.owner, "risk-team");
    assert_eq!(risky.skip_reason, Some(SkipReason::DowntimeRisk));
    let legacy = &catalog[&format!("{A}/us-east-1/states/legacy")];
    assert!(legacy.arn.is_old_format());

    // The fewest calls the shape allows, and never a tag lookup per service.
    let stats = sim.handle().stats();
    assert_eq!(stats.total_calls("ListTagsForResource"), 0);
    // Account B has no cluster in us-east-1: one empty page there.
    assert_eq!(
        stats.total_calls("ListClusters"),
        2 + 1 + 1 + 1,
        "105 clusters take two pages"
    );
    assert_eq!(stats.total_calls("DescribeClusters"), 2 + 1 + 1);
    assert_eq!(
        stats.total_calls("ListServices"),
        104 + 2 + 1 + 1,
        "120 services take two pages"
    );
    assert_eq!(stats.total_calls("DescribeServices"), 104 + 12 + 1 + 1);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_rerun_changes_nothing_and_a_deleted_service_is_marked_gone() {
    let sim = fleet_sim::spawn(spec()).await.unwrap();
    let table = table().await;
    let first = run(&sim, config(&table, &[]), "2026-11-22").await;
    let before = catalog(&table, &sim).await;
    let again = run(&sim, config(&table, &[]), "2026-11-22").await;
    assert_eq!(again.counts.written, 0);
    assert_eq!(again.services_found, first.services_found);
    assert_eq!(catalog(&table, &sim).await, before);

    // Delete a service (load the fleet without it), then inventory the next night.
    let mut smaller = spec();
    smaller.accounts[1].clusters[0].services.clear();
    sim.handle().load(smaller).unwrap();
    let next = run(&sim, config(&table, &[]), "2026-11-23").await;
    assert_eq!(next.counts.gone, 1);
    let after = catalog(&table, &sim).await;
    let gone = &after[&format!("{B}/eu-west-1/search/query")];
    assert_eq!(gone.gone_since, NaiveDate::from_ymd_opt(2026, 11, 23));
    assert_eq!(after.len(), before.len(), "marked, not deleted");
    sim.shutdown().await.unwrap();
}

/// A following night through the DynamoDB store: an unchanged service writes nothing yet reads
/// as seen that night; the restart time the restarter tagged a service with is no change; a
/// fact its owner changed is one write; an account that can no longer be entered keeps its
/// services' last night (the batcher leaves them out), without marking them gone.
#[tokio::test]
async fn a_following_night_writes_only_what_changed() {
    let sim = fleet_sim::spawn(spec()).await.unwrap();
    let table = table().await;
    let first = run(&sim, config(&table, &[]), "2026-11-22").await;
    assert_eq!(first.counts.written, first.services_found);

    let mut next = spec();
    let big = &mut next.accounts[0].clusters[104];
    assert_eq!(big.name, "big");
    // Restarted during the night before.
    big.services[0]
        .tags
        .insert(TAG.into(), "2026-11-22T01:12:09Z".into());
    let states = &mut next.accounts[0].clusters[105];
    assert_eq!(states.name, "states");
    let zero = states.services.last_mut().unwrap();
    assert_eq!(zero.name, "zero");
    zero.desired = 2;
    next.accounts[1].deny_assume_role = true;
    sim.handle().load(next).unwrap();

    let second = run(&sim, config(&table, &[]), "2026-11-23").await;
    assert_eq!(
        second.services_found,
        first.services_found - 1,
        "B is unreachable"
    );
    assert_eq!((second.counts.written, second.counts.gone), (1, 0));
    let catalog = catalog(&table, &sim).await;
    assert_eq!(catalog.len() as u64, first.services_found);
    let (n1, n2) = (
        NaiveDate::from_ymd_opt(2026, 11, 22),
        NaiveDate::from_ymd_opt(2026, 11, 23),
    );
    for (id, r) in &catalog {
        let expected = if id.starts_with(B) { n1 } else { n2 };
        assert_eq!(Some(r.last_seen), expected, "{id}");
        assert_eq!(Some(r.first_seen), n1, "{id}");
        assert_eq!(r.gone_since, None, "{id}");
    }
    let zero = &catalog[&format!("{A}/us-east-1/states/zero")];
    assert_eq!((zero.desired, zero.skip_reason), (2, None));
    let restarted = &catalog[&format!("{A}/eu-west-1/big/svc-000")];
    assert_eq!(
        restarted.tag_value.as_deref(),
        Some("2026-11-21T01:10:00Z"),
        "a new restart time is not written"
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_config_aggregator_source_finds_the_same_services_without_entering_accounts() {
    let sim = fleet_sim::spawn(spec()).await.unwrap();
    let table = table().await;
    let s = run(
        &sim,
        config(
            &table,
            &[
                ("INVENTORY_SOURCE", "config"),
                ("ACCOUNTS_SOURCE", "config-aggregator"),
            ],
        ),
        "2026-11-22",
    )
    .await;
    // The aggregator sees the denied account too: no role is assumed.
    assert_eq!(s.services_found, 104 + 120 + 9 + 1 + 1);
    assert!(s.unreachable_count == 0);
    let stats = sim.handle().stats();
    assert_eq!(stats.total_calls("AssumeRole"), 0);
    assert_eq!(stats.total_calls("DescribeServices"), 0);
    let catalog = catalog(&table, &sim).await;
    assert_eq!(
        catalog[&format!("{B}/eu-west-1/search/query")].owner,
        "search"
    );
    assert_eq!(
        catalog[&format!("{A}/us-east-1/states/blue-green")].skip_reason,
        Some(SkipReason::ControllerCodeDeploy)
    );
    sim.shutdown().await.unwrap();
}

/// Eight inventories at once against one account (each paced at 15/s, together over the
/// documented 20/s): fleet-sim throttles, the SDK's retries absorb it, and no account is
/// reported unreachable.
#[tokio::test]
async fn throttling_never_surfaces_as_an_unreachable_account() {
    let clusters = (0..60)
        .map(|i| {
            cluster(
                &format!("c{i:02}"),
                "eu-west-1",
                vec![svc("web", &[(TAG, "enabled")])],
            )
        })
        .collect();
    let spec = FleetSpec {
        accounts: vec![AccountSpec {
            id: A.into(),
            regions: vec!["eu-west-1".into()],
            deny_assume_role: false,
            external_id: None,
            clusters,
        }],
        ..FleetSpec::default()
    };
    let sim = fleet_sim::spawn(spec).await.unwrap();
    let table = table().await;
    let config = || {
        Config::from_vars([
            ("TABLE_NAME", table.as_str()),
            ("ACCOUNTS", A),
            ("REGIONS", "eu-west-1"),
            ("MEMBER_ROLE_NAME", "ecs-restart-member"),
        ])
        .unwrap()
    };
    let runs = futures::future::join_all((0..8).map(|_| run(&sim, config(), "2026-11-22"))).await;
    for s in &runs {
        assert!(s.unreachable_count == 0, "{:?}", s.unreachable_sample);
        assert_eq!(s.services_found, 60);
    }
    let stats = sim.handle().stats();
    let throttled: u64 = stats.throttled.values().flat_map(|a| a.values()).sum();
    assert!(
        throttled > 0,
        "the test must drive fleet-sim into throttling"
    );
    sim.shutdown().await.unwrap();
}
