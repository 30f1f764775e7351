//! AssumeRole sessions against fleet-sim's STS: cached per account, renewed before they expire,
//! one AssumeRole for many concurrent callers, a denied account reported as access denied.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use fleet_sim::FleetSpec;
use restart_aws::sts::{AccountSessions, MemberRole};
use restart_aws::sts_client;
use restart_core::clock::ManualClock;
use restart_core::ids::AccountId;
use restart_core::ports::DiscoveryError;
use restart_core::telemetry::ApiCalls;

const SPEC: &str = r#"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    external_id: nightly
  - id: "222222222222"
    regions: [eu-west-1]
  - id: "333333333333"
    regions: [eu-west-1]
    deny_assume_role: true
"#;

fn role(external_id: Option<&str>) -> MemberRole {
    MemberRole {
        partition: "aws".into(),
        role_name: "ecs-restart-member".into(),
        external_id: external_id.map(str::to_owned),
        session_name: "test".into(),
    }
}

fn account(id: &str) -> AccountId {
    id.parse().unwrap()
}

/// fleet-sim with the spec above, and sessions into it on a clock the test moves.
async fn sessions(
    external_id: Option<&str>,
) -> (
    fleet_sim::RunningSim,
    AccountSessions,
    Arc<ManualClock>,
    Arc<ApiCalls>,
) {
    let sim = fleet_sim::spawn(FleetSpec::from_yaml_str(SPEC).unwrap())
        .await
        .unwrap();
    let sdk = testkit::hub_sdk_config(&sim.endpoint_url());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let calls = Arc::new(ApiCalls::default());
    let sessions = AccountSessions::new(
        sts_client(&sdk),
        role(external_id),
        clock.clone(),
        calls.clone(),
    );
    (sim, sessions, clock, calls)
}

#[tokio::test]
async fn credentials_are_cached_per_account_and_renewed_before_expiry() {
    let (sim, sessions, clock, calls) = sessions(Some("nightly")).await;
    let a = account("111111111111");

    // Many concurrent callers for one account: one AssumeRole.
    let first = futures_util::future::join_all((0..8).map(|_| sessions.credentials(&a))).await;
    let keys: Vec<String> = first
        .into_iter()
        .map(|c| c.unwrap().access_key_id().to_owned())
        .collect();
    assert!(keys.iter().all(|k| k == &keys[0]));
    assert!(
        keys[0].contains("111111111111"),
        "the key acts in the account: {}",
        keys[0]
    );
    assert_eq!(calls.snapshot()["AssumeRole"], 1);

    // 50 minutes later the session still has 10 minutes: cached.
    clock.advance(TimeDelta::minutes(50));
    sessions.credentials(&a).await.unwrap();
    assert_eq!(calls.snapshot()["AssumeRole"], 1);

    // 56 minutes in, less than 5 minutes are left: renewed.
    clock.advance(TimeDelta::minutes(6));
    sessions.credentials(&a).await.unwrap();
    assert_eq!(calls.snapshot()["AssumeRole"], 2);

    // Another account has its own session.
    sessions
        .credentials(&account("222222222222"))
        .await
        .unwrap();
    assert_eq!(calls.snapshot()["AssumeRole"], 3);
    assert_eq!(sim.handle().stats().total_calls("AssumeRole"), 3);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_denied_role_or_a_wrong_external_id_is_access_denied() {
    let (sim, sessions, _, _) = sessions(None).await;
    for id in ["333333333333", "111111111111"] {
        match sessions.credentials(&account(id)).await {
            Err(DiscoveryError::AccessDenied(message)) => {
                assert!(
                    message.contains(&format!("arn:aws:iam::{id}:role/ecs-restart-member")),
                    "{message}"
                );
            }
            other => panic!("{id}: expected access denied, got {other:?}"),
        }
    }
    sim.shutdown().await.unwrap();
}
