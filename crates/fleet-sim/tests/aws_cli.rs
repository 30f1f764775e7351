//! The AWS CLI (awscli from PyPI, installed into .venv by `make tools`) against the simulator:
//! a client no one here wrote.

use crate::common;

use std::path::PathBuf;

use common::start;

const FLEET: &str = r#"
hub_account: "111111111111"
throttling: false
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: payments
        services:
          - {name: api, desired: 2, tags: {owner: payments}}
          - {name: worker}
  - id: "222222222222"
    regions: [eu-west-1]
    clusters: [{name: other}]
  - id: "333333333333"
    regions: [eu-west-1]
    deny_assume_role: true
"#;

fn aws_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("AWS_CLI").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "AWS_CLI={} does not exist: run `make tools`",
            p.display()
        );
        return p;
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/aws");
    assert!(
        p.exists(),
        "the AWS CLI is not installed at {} and AWS_CLI is unset: run `make tools` first",
        p.display()
    );
    p
}

/// Runs the CLI with fake static credentials and no config files; returns (success, stdout, stderr).
async fn run(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(aws_cli());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "AKIDFLEETSIMCLI00001")
        .env("AWS_SECRET_ACCESS_KEY", "fake-secret")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .output()
        .await
        .expect("the AWS CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn json(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let (ok, stdout, stderr) = run(endpoint, args).await;
    assert!(ok, "aws {args:?} failed: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("aws {args:?} printed non-JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_lists_describes_updates_and_assumes_roles() {
    let sim = start(FLEET).await;
    let url = sim.endpoint_url();

    let v = json(&url, &["ecs", "list-clusters"]).await;
    assert_eq!(
        v["clusterArns"],
        serde_json::json!(["arn:aws:ecs:eu-west-1:111111111111:cluster/payments"])
    );

    let v = json(&url, &["ecs", "list-services", "--cluster", "payments"]).await;
    assert_eq!(
        v["serviceArns"],
        serde_json::json!([
            "arn:aws:ecs:eu-west-1:111111111111:service/payments/api",
            "arn:aws:ecs:eu-west-1:111111111111:service/payments/worker"
        ])
    );

    let v = json(
        &url,
        &[
            "ecs",
            "describe-services",
            "--cluster",
            "payments",
            "--services",
            "api",
            "--include",
            "TAGS",
        ],
    )
    .await;
    let svc = &v["services"][0];
    assert_eq!(svc["serviceName"], "api");
    assert_eq!(svc["desiredCount"], 2);
    assert_eq!(svc["runningCount"], 2);
    assert_eq!(
        svc["tags"],
        serde_json::json!([{"key": "owner", "value": "payments"}])
    );
    assert_eq!(svc["deployments"][0]["rolloutState"], "COMPLETED");

    let v = json(
        &url,
        &[
            "ecs",
            "update-service",
            "--cluster",
            "payments",
            "--service",
            "api",
            "--force-new-deployment",
        ],
    )
    .await;
    let deployments = v["service"]["deployments"].as_array().expect("deployments");
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[0]["status"], "PRIMARY");
    assert_eq!(deployments[0]["rolloutState"], "IN_PROGRESS");
    assert_eq!(deployments[1]["status"], "ACTIVE");
    assert_eq!(sim.handle().stats().restarts, 1);

    let v = json(
        &url,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            "arn:aws:iam::222222222222:role/restarter",
            "--role-session-name",
            "cli",
        ],
    )
    .await;
    assert_eq!(
        v["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::222222222222:assumed-role/restarter/cli"
    );
    let key = v["Credentials"]["AccessKeyId"].as_str().expect("key");
    assert!(key.starts_with("ASIA"), "{key}");
    assert!(v["Credentials"]["Expiration"].as_str().is_some());

    let (ok, _, stderr) = run(
        &url,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            "arn:aws:iam::333333333333:role/restarter",
            "--role-session-name",
            "cli",
        ],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("AccessDenied"), "{stderr}");

    let (ok, _, stderr) = run(
        &url,
        &[
            "ecs",
            "describe-services",
            "--cluster",
            "payments",
            "--services",
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
            "g",
            "h",
            "i",
            "j",
            "k",
        ],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("InvalidParameterException"), "{stderr}");
}

/// An organization of 50 accounts (pages of 20) in nested OUs, two of them not ACTIVE.
const ORG: &str = r#"
hub_account: "999999999999"
throttling: false
organization: {}
accounts:
  - {id: "111111111111", ou: [Workloads, Prod]}
  - {id: "222222222222", ou: [Workloads, Prod], status: SUSPENDED}
  - {id: "333333333333", ou: [Workloads], status: PENDING_CLOSURE}
  - {id: "444444444444"}
generate:
  accounts: 45
  clusters_per_account: 0
  ous: [[Sandbox], [Workloads, Dev]]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_lists_the_organization() {
    let sim = start(ORG).await;
    let url = sim.endpoint_url();

    // The CLI follows NextToken by itself: pages of 7 make 8 calls.
    let v = json(
        &url,
        &["organizations", "list-accounts", "--page-size", "7"],
    )
    .await;
    let accounts = v["Accounts"].as_array().expect("accounts");
    assert_eq!(
        accounts.len(),
        50,
        "45 generated, 4 explicit, the management account"
    );
    assert_eq!(accounts[0]["Id"], "999999999999");
    let not_active: Vec<&str> = accounts
        .iter()
        .filter(|a| a["Status"] != "ACTIVE")
        .map(|a| a["Id"].as_str().unwrap())
        .collect();
    assert_eq!(not_active, ["222222222222", "333333333333"]);
    assert_eq!(
        sim.handle().stats().calls["999999999999"]["ListAccounts"],
        8
    );

    let v = json(&url, &["organizations", "list-roots"]).await;
    let root = v["Roots"][0]["Id"].as_str().expect("root").to_owned();
    let v = json(
        &url,
        &[
            "organizations",
            "list-organizational-units-for-parent",
            "--parent-id",
            &root,
        ],
    )
    .await;
    let names: Vec<&str> = v["OrganizationalUnits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Workloads", "Sandbox"]);
    let sandbox = v["OrganizationalUnits"][1]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = json(
        &url,
        &[
            "organizations",
            "list-accounts-for-parent",
            "--parent-id",
            &sandbox,
        ],
    )
    .await;
    // Generated accounts alternate between Sandbox and Workloads/Dev.
    assert_eq!(v["Accounts"].as_array().unwrap().len(), 23);

    let (ok, _, stderr) = run(
        &url,
        &[
            "organizations",
            "list-accounts-for-parent",
            "--parent-id",
            "ou-zzzz-zzzzzzzz",
        ],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("ParentNotFoundException"), "{stderr}");
    let (ok, _, stderr) = run(
        &url,
        &[
            "organizations",
            "list-accounts-for-parent",
            "--parent-id",
            "Workloads",
        ],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("InvalidInputException"), "{stderr}");
}
