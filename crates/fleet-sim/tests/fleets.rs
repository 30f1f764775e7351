//! The example fleet files under `fleets/` load, and the chaos fleet does what it says.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use aws_sdk_ecs::types::ServiceField;
use common::{HUB_KEY, code, creds, ecs, ecs_with, from_sts, sts};
use fleet_sim::FleetSpec;
use fleet_sim::spec::{Controller, OnRestart};

fn fleets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fleets")
}

#[test]
fn every_fleet_file_loads() {
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(fleets_dir()).expect("fleets/ exists") {
        let path = entry.expect("entry").path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let spec = FleetSpec::from_path(&path)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        assert!(spec.service_count() > 0, "{}", path.display());
        loaded.push(path.file_name().map(|n| n.to_string_lossy().into_owned()));
    }
    let loaded: BTreeSet<_> = loaded.into_iter().flatten().collect();
    assert!(loaded.contains("demo.yaml"), "{loaded:?}");
    assert!(loaded.contains("chaos.yaml"), "{loaded:?}");
}

fn chaos() -> FleetSpec {
    FleetSpec::from_path(fleets_dir().join("chaos.yaml")).expect("chaos.yaml loads")
}

#[test]
fn the_chaos_fleet_has_every_fault() {
    let spec = chaos();
    assert_eq!(spec.service_count(), 60);
    assert!((4..=6).contains(&spec.accounts.len()));
    let faults = &spec.account_faults;
    assert!(
        faults
            .values()
            .any(|f| f.deny_ecs_after_restarts == Some(3))
    );
    assert!(faults.values().any(|f| f.server_error_rate == 0.05));
    assert!(spec.accounts.iter().any(|a| a.deny_assume_role));
    let services: Vec<_> = spec
        .accounts
        .iter()
        .flat_map(|a| &a.clusters)
        .flat_map(|c| &c.services)
        .collect();
    for on in [
        OnRestart::Complete,
        OnRestart::Fail,
        OnRestart::Stuck,
        OnRestart::Vanish,
        OnRestart::Reject,
        OnRestart::Superseded,
    ] {
        assert!(services.iter().any(|s| s.on_restart == on), "{on:?}");
    }
    assert!(
        services
            .iter()
            .any(|s| s.controller == Controller::CodeDeploy)
    );
    let values: Vec<&str> = services
        .iter()
        .flat_map(|s| s.tags.values())
        .map(String::as_str)
        .collect();
    for want in [
        "pas-de-redémarrage",
        "équipe-paiements",
        "決済チーム",
        "２０２６-１１-２１T01:10:00Z",
    ] {
        assert!(values.contains(&want), "{want}");
    }
}

#[tokio::test]
async fn the_chaos_fleet_serves_its_unicode_tags_and_faults() {
    let sim = fleet_sim::spawn(chaos()).await.expect("starts");
    let hub = sts(&sim, creds(HUB_KEY));
    let as_member = |account: &'static str| {
        let hub = hub.clone();
        let sim = &sim;
        async move {
            let out = hub
                .assume_role()
                .role_arn(format!("arn:aws:iam::{account}:role/restarter"))
                .role_session_name("nightly")
                .send()
                .await
                .expect("assumed");
            ecs_with(
                sim,
                from_sts(out.credentials().expect("credentials")),
                "eu-west-1",
                1,
            )
        }
    };
    let client = as_member("100000000001").await;
    let out = client
        .describe_services()
        .cluster("paiements")
        .services("api")
        .services("receipts")
        .include(ServiceField::Tags)
        .send()
        .await
        .expect("describe");
    let tags: Vec<(String, String)> = out
        .services()
        .iter()
        .flat_map(|s| s.tags())
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        tags.contains(&("owner".to_owned(), "équipe-paiements".to_owned())),
        "{tags:?}"
    );
    assert!(
        tags.contains(&(
            "ecs_task_daily_restart".to_owned(),
            "pas-de-redémarrage".to_owned()
        )),
        "{tags:?}"
    );
    let cluster = client
        .describe_clusters()
        .clusters("paiements")
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .expect("clusters");
    assert!(
        cluster.clusters()[0]
            .tags()
            .iter()
            .any(|t| t.value() == Some("決済チーム"))
    );
    // The SCP account: three restarts, then ECS is denied.
    let denied = as_member("100000000002").await;
    for i in 0..3 {
        denied
            .update_service()
            .cluster("commandes")
            .service(format!("orders-0{i}"))
            .force_new_deployment(true)
            .send()
            .await
            .expect("allowed before the 3rd");
    }
    let err = denied
        .list_services()
        .cluster("commandes")
        .send()
        .await
        .expect_err("denied after 3");
    assert_eq!(code(&err).as_deref(), Some("AccessDeniedException"));
    // The locked account refuses AssumeRole; the hub account sees no ECS resources.
    let err = hub
        .assume_role()
        .role_arn("arn:aws:iam::100000000005:role/restarter")
        .role_session_name("nightly")
        .send()
        .await
        .expect_err("denied");
    assert_eq!(
        err.as_service_error()
            .and_then(aws_sdk_sts::error::ProvideErrorMetadata::code),
        Some("AccessDenied")
    );
    let none = ecs(&sim, "eu-west-1")
        .list_clusters()
        .send()
        .await
        .expect("hub");
    assert!(none.cluster_arns().is_empty());
}
