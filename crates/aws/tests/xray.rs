//! Every SDK call of the adapters is one X-Ray subsegment: real calls to fleet-sim (ECS, STS)
//! and moto (DynamoDB, through `tools/with-moto`) with `restart-xray`'s layer installed and
//! sending to a local UDP socket.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::Arc;

use chrono::Utc;
use fleet_sim::FleetSpec;
use restart_aws::ecs::EcsFleet;
use restart_aws::sts::{AccountSessions, MemberRole};
use restart_core::catalog::Target;
use restart_core::clock::ManualClock;
use restart_core::config::Pacing;
use restart_core::pacing::Pacer;
use restart_core::ports::{ServiceInventory, SettingsStore};
use restart_core::telemetry::ApiCalls;
use restart_xray::Daemon;
use restart_xray::schema::check_datagram;
use serde_json::Value;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const SPEC: &str = r#"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: web
        services:
          - { name: api, desired: 2 }
          - { name: worker, desired: 1 }
  - id: "333333333333"
    regions: [eu-west-1]
    deny_assume_role: true
"#;

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn target(account: &str) -> Target {
    Target {
        account: account.parse().unwrap(),
        region: "eu-west-1".into(),
    }
}

/// Every subsegment the datagrams waiting on `socket` carry, each checked against the schema.
fn received(socket: &UdpSocket) -> Vec<Value> {
    socket.set_nonblocking(true).unwrap();
    let mut buf = vec![0; 70_000];
    let mut subsegments = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        let checked = check_datagram(&buf[..n]).unwrap_or_else(|e| panic!("{e}"));
        subsegments.extend(checked.subsegments.into_iter().map(|(s, _)| s));
    }
    subsegments
}

/// The hub's sessions into the member accounts, counting their calls in `calls`.
fn sessions(sdk: &aws_types::SdkConfig, calls: Arc<ApiCalls>) -> AccountSessions {
    AccountSessions::new(
        restart_aws::sts_client(sdk),
        MemberRole {
            partition: "aws".into(),
            role_name: "ecs-restart-member".into(),
            external_id: None,
            session_name: "xray".into(),
        },
        Arc::new(ManualClock::new(Utc::now())),
        calls,
    )
}

#[tokio::test]
async fn xray_every_sdk_call_is_one_subsegment_with_its_operation_and_status() {
    let sim = fleet_sim::spawn(FleetSpec::from_yaml_str(SPEC).unwrap())
        .await
        .unwrap();
    let sdk = testkit::hub_sdk_config(&sim.endpoint_url());
    let table = testkit::create_table(&testkit::dynamodb_client()).await;

    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    let daemon = Daemon::udp(listener.local_addr().unwrap());
    let _traced = tracing::dispatcher::set_default(&tracing::Dispatch::new(
        tracing_subscriber::registry().with(restart_xray::layer(daemon.clone())),
    ));

    let calls = Arc::new(ApiCalls::default());
    let sessions = sessions(&sdk, calls.clone());
    let fleet = EcsFleet::new(
        sdk.clone(),
        sessions,
        Arc::new(Pacer::new(Pacing {
            update_service_per_sec: 1.0,
            tag_resource_per_sec: 1.0,
            describe_per_sec: 100.0,
        })),
        calls.clone(),
    );
    let store = restart_aws::dynamo_store(&sdk, &table, 90);

    let (found, denied, owners) = async {
        let found = {
            let t = target("111111111111");
            let span =
                tracing::trace_span!("xray.account", account = %t.account, region = %t.region);
            fleet.discover(&t).instrument(span).await
        };
        let denied = {
            let t = target("333333333333");
            let span =
                tracing::trace_span!("xray.account", account = %t.account, region = %t.region);
            fleet.discover(&t).instrument(span).await
        };
        (found, denied, store.account_owners().await)
    }
    .instrument(restart_xray::invocation("inventory", Some(HEADER)))
    .await;
    assert_eq!(found.unwrap().len(), 2);
    assert!(denied.is_err());
    assert!(owners.unwrap().is_empty());

    let subsegments = received(&listener);
    assert_eq!(daemon.dropped(), 0);
    let aws: Vec<&Value> = subsegments
        .iter()
        .filter(|s| s["namespace"] == "aws")
        .collect();

    // One ECS subsegment per ECS call the adapter made, by operation.
    let mut ecs: BTreeMap<String, u64> = BTreeMap::new();
    for s in aws.iter().filter(|s| s["name"] == "ECS") {
        assert_eq!(s["http"]["response"]["status"], 200, "{s}");
        assert_eq!(s["aws"]["account_id"], "111111111111");
        assert_eq!(s["aws"]["region"], "eu-west-1");
        assert_eq!(s["aws"]["retries"], 0);
        *ecs.entry(s["aws"]["operation"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut counted = calls.snapshot();
    let assume_roles = counted.remove("AssumeRole").unwrap_or(0);
    assert!(!ecs.is_empty());
    assert_eq!(ecs, counted);

    // AssumeRole: the hub's STS, one of them refused.
    let sts: Vec<&&Value> = aws.iter().filter(|s| s["name"] == "STS").collect();
    assert_eq!(sts.len() as u64, assume_roles);
    assert!(sts.iter().all(|s| s["aws"]["operation"] == "AssumeRole"));
    let refused: Vec<&&&Value> = sts.iter().filter(|s| s["error"] == true).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["http"]["response"]["status"], 403);
    assert_eq!(refused[0]["metadata"]["restart"]["error_class"], "denied");

    // The store call: DynamoDB, naming its table.
    let store_calls: Vec<&&Value> = aws.iter().filter(|s| s["name"] == "DynamoDB").collect();
    assert_eq!(store_calls.len(), 1);
    assert_eq!(store_calls[0]["aws"]["table_name"], table.as_str());
    assert_eq!(store_calls[0]["http"]["response"]["status"], 200);

    // The calls of an account sit under that account's subsegment.
    let accounts: Vec<&Value> = subsegments
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("account "))
        .collect();
    assert_eq!(accounts.len(), 2);
    let good = accounts
        .iter()
        .find(|s| s["annotations"]["account"] == "111111111111")
        .unwrap();
    let under: Vec<&str> = good["subsegments"]
        .as_array()
        .map(|subs| subs.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        under.contains(&"ECS") && under.contains(&"STS"),
        "{under:?}"
    );
}

#[tokio::test]
async fn xray_without_the_layer_the_interceptor_records_nothing() {
    let sim = fleet_sim::spawn(FleetSpec::from_yaml_str(SPEC).unwrap())
        .await
        .unwrap();
    let sdk = testkit::hub_sdk_config(&sim.endpoint_url());
    let events = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = events.clone();
    // A subscriber that counts every event of the call target it is offered.
    let _counting = tracing::dispatcher::set_default(&tracing::Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::filter_fn(move |m| {
                    if m.target() == restart_aws::xray::TARGET && m.is_event() {
                        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    false
                })),
        ),
    ));
    let calls = Arc::new(ApiCalls::default());
    let sessions = sessions(&sdk, calls.clone());
    let key = sessions.credentials(&"111111111111".parse().unwrap()).await;
    assert!(key.is_ok());
    assert_eq!(calls.snapshot().get("AssumeRole"), Some(&1));
    // The interceptor asked whether anyone wants the call's event and, told no, built none.
    assert_eq!(events.load(std::sync::atomic::Ordering::Relaxed), 0);
}

use tracing_subscriber::Layer as _;
