//! `OrganizationAccounts` (ACCOUNTS_SOURCE=organizations) against fleet-sim's AWS Organizations,
//! over the wire: 500 accounts in nested OUs, some SUSPENDED, pages of 20, throttling on.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_sdk_organizations::config::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;
use fleet_sim::organizations::Organization;
use fleet_sim::spec::MemberStatus;
use fleet_sim::{FleetSpec, RunningSim};
use restart_aws::organizations::OrganizationAccounts;
use restart_core::clock::SystemClock;
use restart_core::config::{OrgParent, RoleArn};
use restart_core::ids::AccountId;
use restart_core::ports::{AccountDirectory, DiscoveryError};
use restart_core::telemetry::ApiCalls;

/// 500 generated accounts spread over the root and OUs three levels deep, 10% SUSPENDED; the
/// hub (000000000000) is the management account.
const ORG: &str = r#"
seed: 15
organization: {}
generate:
  accounts: 500
  clusters_per_account: 0
  ous:
    - [Workloads, Prod]
    - [Workloads, Dev]
    - [Workloads, Prod, Payments]
    - [Sandbox]
    - []
  suspended_percent: 10
"#;

fn sdk(sim: &RunningSim) -> SdkConfig {
    SdkConfig::builder()
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(sim.endpoint_url())
        .region(Region::new("eu-west-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "AKIDHUB0000000000000",
                "hub-secret",
                None,
                None,
                "test",
            )),
        )
        .behavior_version(BehaviorVersion::latest())
        .build()
}

async fn sim(yaml: &str) -> (RunningSim, Organization) {
    let spec = FleetSpec::from_yaml_str(yaml).unwrap();
    let org = fleet_sim::world::build(&spec, 0)
        .organization
        .expect("an organization");
    (fleet_sim::spawn(spec).await.unwrap(), org)
}

fn directory(sim: &RunningSim, parents: &[&str], role: Option<&str>) -> OrganizationAccounts {
    let role: Option<RoleArn> = role.map(|r| r.parse().unwrap());
    OrganizationAccounts::new(
        &sdk(sim),
        parents
            .iter()
            .map(|p| p.parse::<OrgParent>().unwrap())
            .collect(),
        role.as_ref(),
        Arc::new(SystemClock),
        Arc::new(ApiCalls::default()),
    )
}

/// The ACTIVE members under `parents` (and their OUs, all the way down), as fleet-sim built
/// them; every member for no parents.
fn active_under(org: &Organization, parents: &[&str]) -> Vec<AccountId> {
    let mut within: HashSet<String> = parents.iter().map(|p| (*p).to_owned()).collect();
    loop {
        let before = within.len();
        for ou in &org.ous {
            if within.contains(&ou.parent) {
                within.insert(ou.id.clone());
            }
        }
        if within.len() == before {
            break;
        }
    }
    let ids: BTreeSet<AccountId> = org
        .members
        .iter()
        .filter(|m| m.status == MemberStatus::Active && m.id != org.management)
        .filter(|m| parents.is_empty() || within.contains(&m.parent))
        .map(|m| m.id.parse().unwrap())
        .collect();
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_organization_is_its_active_accounts_page_by_page() {
    let (sim, org) = sim(ORG).await;
    let suspended = org
        .members
        .iter()
        .filter(|m| m.status == MemberStatus::Suspended)
        .count();
    assert_eq!(org.members.len(), 501);
    assert!((20..=80).contains(&suspended), "{suspended}");

    let accounts = directory(&sim, &[], None).accounts().await.unwrap();
    let expected = active_under(&org, &[]);
    // Every active member but the management account (the hub here), which is never listed.
    assert_eq!(accounts.len(), 500 - suspended);
    assert_eq!(accounts, expected);
    assert!(!accounts.iter().any(|a| a.as_str() == "000000000000"));

    // 501 accounts in pages of 20: 26 pages, the calls past the burst of 20 throttled and
    // retried.
    let stats = sim.handle().stats();
    let calls = stats.calls["000000000000"]["ListAccounts"];
    let throttled = stats.total_throttled("ListAccounts");
    assert_eq!(
        calls - throttled,
        26,
        "{calls} calls, {throttled} throttled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ou_gives_its_accounts_and_those_of_its_child_ous() {
    let (sim, org) = sim(ORG).await;
    let workloads = org.ou_id(&["Workloads"]).unwrap().to_owned();
    let prod = org.ou_id(&["Workloads", "Prod"]).unwrap().to_owned();
    let payments = org
        .ou_id(&["Workloads", "Prod", "Payments"])
        .unwrap()
        .to_owned();
    let sandbox = org.ou_id(&["Sandbox"]).unwrap().to_owned();

    let accounts = directory(&sim, &[&workloads], None)
        .accounts()
        .await
        .unwrap();
    assert_eq!(accounts, active_under(&org, &[&workloads]));
    // Three of the five placements, 10% suspended.
    assert!((250..=310).contains(&accounts.len()), "{}", accounts.len());
    let in_payments = active_under(&org, &[&payments]);
    assert!(!in_payments.is_empty());
    assert!(in_payments.iter().all(|a| accounts.contains(a)));
    assert!(
        active_under(&org, &[&sandbox])
            .iter()
            .all(|a| !accounts.contains(a))
    );

    // A parent inside another, and one listed beside it: each account once.
    let both = directory(&sim, &[&prod, &workloads, &sandbox], None)
        .accounts()
        .await
        .unwrap();
    assert_eq!(both, active_under(&org, &[&workloads, &sandbox]));
    assert_eq!(both.len(), both.iter().collect::<BTreeSet<_>>().len());

    // The root is the whole organization.
    let root = directory(&sim, &[&org.root], None)
        .accounts()
        .await
        .unwrap();
    assert_eq!(root, active_under(&org, &[]));

    let stats = sim.handle().stats();
    assert!(stats.total_calls("ListOrganizationalUnitsForParent") > 0);
    assert!(stats.total_calls("ListAccountsForParent") >= 26, "paged");
}

#[tokio::test]
async fn a_parent_the_organization_does_not_have_is_named() {
    let (sim, org) = sim(ORG).await;
    let missing = format!("ou-{}-zzzzzzzz", &org.root[2..]);
    let err = directory(&sim, &[&missing], None)
        .accounts()
        .await
        .unwrap_err();
    let DiscoveryError::Unexpected(message) = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with(&format!(
            "ORGANIZATION_UNITS names {missing}, which is not a root or OU of the organization"
        )),
        "{message}"
    );
    assert!(message.contains("ParentNotFoundException"), "{message}");
}

const MANAGED: &str = r#"
throttling: false
hub_account: "777777777777"
organization: {management_account: "999999999999"}
accounts:
  - {id: "777777777777"}
  - {id: "999999999999"}
  - {id: "888888888888", deny_assume_role: true}
  - {id: "111111111111", ou: [Workloads]}
  - {id: "222222222222", ou: [Workloads], status: SUSPENDED}
"#;

#[tokio::test]
async fn the_listing_runs_as_the_management_accounts_role() {
    let (sim, _) = sim(MANAGED).await;
    // The hub is a member, but neither the management account nor a delegated administrator.
    let err = directory(&sim, &[], None).accounts().await.unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::AccessDenied(m) if m.starts_with("ListAccounts: AccessDeniedException")),
        "{err:?}"
    );
    let accounts = directory(
        &sim,
        &[],
        Some("arn:aws:iam::999999999999:role/org/accounts-reader"),
    )
    .accounts()
    .await
    .unwrap();
    let ids: Vec<&str> = accounts.iter().map(AccountId::as_str).collect();
    // Every ACTIVE member but the management account.
    assert_eq!(ids, ["111111111111", "777777777777", "888888888888"]);
    let stats = sim.handle().stats();
    assert_eq!(stats.calls["777777777777"]["AssumeRole"], 1);
    assert_eq!(stats.calls["999999999999"]["ListAccounts"], 1);

    // A role that cannot be assumed says so, naming the setting.
    let err = directory(&sim, &[], Some("arn:aws:iam::888888888888:role/r"))
        .accounts()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::AccessDenied(m)
            if m.starts_with("ORGANIZATIONS_ROLE_ARN arn:aws:iam::888888888888:role/r: AssumeRole")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_fleet_without_an_organization_is_an_unexpected_answer() {
    let spec = FleetSpec::from_yaml_str("accounts: [{id: \"111111111111\"}]").unwrap();
    let sim = fleet_sim::spawn(spec).await.unwrap();
    let err = directory(&sim, &[], None).accounts().await.unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::Unexpected(m) if m.contains("AWSOrganizationsNotInUseException")),
        "{err:?}"
    );
}
