//! AWS Organizations over its wire protocol (awsJson1_1, `AWSOrganizationsV20161128.*`), raw:
//! errors and throttling as a client sees them. The AWS CLI's view is in `aws_cli.rs`, the
//! SDK's in restart-aws's tests.

use crate::common;

use common::{json_raw, start};
use fleet_sim::auth::issued_access_key;
use serde_json::Value;

/// One raw Organizations call signed, as far as the simulator looks, with `key`.
async fn call(sim: &fleet_sim::RunningSim, key: &str, action: &str, body: &str) -> (u16, Value) {
    let target = format!("AWSOrganizationsV20161128.{action}");
    let (status, text) = json_raw(
        sim.addr,
        key,
        "us-east-1",
        "organizations",
        &target,
        body.as_bytes().to_vec(),
    )
    .await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

const HUB: &str = "AKIDFLEETSIMTEST0001";

const ORG: &str = r#"
throttling: false
organization: {delegated_administrators: ["222222222222"]}
accounts:
  - {id: "111111111111", ou: [Workloads, Prod]}
  - {id: "222222222222", ou: [Security]}
  - {id: "333333333333", ou: [Workloads, Prod], status: SUSPENDED}
"#;

#[tokio::test]
async fn the_tree_with_real_shapes_and_errors() {
    let sim = start(ORG).await;
    let (s, roots) = call(&sim, HUB, "ListRoots", "{}").await;
    assert_eq!(s, 200, "{roots}");
    let root = roots["Roots"][0]["Id"].as_str().unwrap().to_owned();
    assert_eq!(roots["Roots"][0]["Name"], "Root");
    let (_, ous) = call(
        &sim,
        HUB,
        "ListOrganizationalUnitsForParent",
        &format!(r#"{{"ParentId": "{root}"}}"#),
    )
    .await;
    let names: Vec<&str> = ous["OrganizationalUnits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Workloads", "Security"]);
    let workloads = ous["OrganizationalUnits"][0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let arn = ous["OrganizationalUnits"][0]["Arn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:organizations::000000000000:ou/o-") && arn.ends_with(&workloads),
        "{arn}"
    );
    let (_, prod) = call(
        &sim,
        HUB,
        "ListOrganizationalUnitsForParent",
        &format!(r#"{{"ParentId": "{workloads}"}}"#),
    )
    .await;
    let prod = prod["OrganizationalUnits"][0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, accounts) = call(
        &sim,
        HUB,
        "ListAccountsForParent",
        &format!(r#"{{"ParentId": "{prod}", "MaxResults": 1}}"#),
    )
    .await;
    let first = &accounts["Accounts"][0];
    assert_eq!(first["Id"], "111111111111");
    assert_eq!(first["Status"], "ACTIVE");
    assert_eq!(first["State"], "ACTIVE");
    assert_eq!(first["JoinedMethod"], "CREATED");
    assert!(first["JoinedTimestamp"].is_f64(), "{first}");
    assert!(first["Email"].as_str().unwrap().contains('@'));
    let token = accounts["NextToken"].as_str().unwrap();
    let (_, rest) = call(
        &sim,
        HUB,
        "ListAccountsForParent",
        &format!(r#"{{"ParentId": "{prod}", "NextToken": "{token}"}}"#),
    )
    .await;
    assert_eq!(rest["Accounts"][0]["Status"], "SUSPENDED");
    assert!(rest.get("NextToken").is_none());
    // The management account (the hub by default) is in the root.
    let (_, in_root) = call(
        &sim,
        HUB,
        "ListAccountsForParent",
        &format!(r#"{{"ParentId": "{root}"}}"#),
    )
    .await;
    assert_eq!(in_root["Accounts"][0]["Id"], "000000000000");

    for (key, action, body, code, reason) in [
        (
            HUB,
            "ListAccountsForParent",
            r#"{"ParentId": "ou-abcd-12345678"}"#,
            "ParentNotFoundException",
            None,
        ),
        (
            HUB,
            "ListAccountsForParent",
            r#"{"ParentId": "Workloads"}"#,
            "InvalidInputException",
            Some("INVALID_PATTERN"),
        ),
        (
            HUB,
            "ListAccountsForParent",
            "{}",
            "InvalidInputException",
            Some("INPUT_REQUIRED"),
        ),
        (
            HUB,
            "ListAccounts",
            r#"{"MaxResults": 21}"#,
            "InvalidInputException",
            Some("MAX_VALUE_EXCEEDED"),
        ),
        (
            HUB,
            "ListAccounts",
            r#"{"MaxResults": 0}"#,
            "InvalidInputException",
            Some("MIN_VALUE_EXCEEDED"),
        ),
        (
            HUB,
            "ListAccounts",
            r#"{"NextToken": "00"}"#,
            "InvalidInputException",
            Some("INVALID_PAGINATION_TOKEN"),
        ),
        (
            HUB,
            "ListAccounts",
            r#"{"MaxResults": "x"}"#,
            "SerializationException",
            None,
        ),
        (
            HUB,
            "CreateAccount",
            "{}",
            "UnknownOperationException",
            None,
        ),
    ] {
        let (s, e) = call(&sim, key, action, body).await;
        assert_eq!(s, 400, "{action} {body}: {e}");
        assert_eq!(e["__type"], code, "{action} {body}: {e}");
        assert_eq!(e["Reason"].as_str(), reason, "{action} {body}: {e}");
    }
    // A member may not list; a delegated administrator may; anyone may describe.
    let member = issued_access_key("111111111111");
    let (s, e) = call(&sim, &member, "ListAccounts", "{}").await;
    assert_eq!(
        (s, e["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let (s, _) = call(
        &sim,
        &issued_access_key("222222222222"),
        "ListAccounts",
        "{}",
    )
    .await;
    assert_eq!(s, 200);
    let (s, d) = call(&sim, &member, "DescribeOrganization", "").await;
    assert_eq!(s, 200);
    assert_eq!(d["Organization"]["MasterAccountId"], "000000000000");
}

#[tokio::test]
async fn no_organization_and_throttling() {
    let sim = start("accounts: [{id: \"111111111111\"}]").await;
    let (s, e) = call(&sim, HUB, "ListAccounts", "{}").await;
    assert_eq!(
        (s, e["__type"].as_str()),
        (400, Some("AWSOrganizationsNotInUseException"))
    );

    let sim = start("organization: {}\naccounts: [{id: \"111111111111\"}]").await;
    let mut throttled = 0;
    for _ in 0..30 {
        let (s, e) = call(&sim, HUB, "ListRoots", "{}").await;
        if s != 200 {
            assert_eq!(e["__type"], "TooManyRequestsException", "{e}");
            throttled += 1;
        }
    }
    // A burst of 20, refilled at 10 a second.
    assert!((5..=10).contains(&throttled), "{throttled}");
    let stats = sim.handle().stats();
    assert_eq!(stats.throttled["000000000000"]["ListRoots"], throttled);
    assert_eq!(stats.calls["000000000000"]["ListRoots"], 30);
}
