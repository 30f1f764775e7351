//! STS AssumeRole, denial, and per-account isolation of the credentials it issues.

use crate::common;

use common::{HUB_KEY, code, creds, ecs_with, from_sts, start, sts};

const FLEET: &str = r#"
throttling: false
accounts:
  - id: "222222222222"
    regions: [eu-west-1]
    clusters: [{name: alpha, services: [{name: a1}]}]
  - id: "333333333333"
    regions: [eu-west-1]
    deny_assume_role: true
    clusters: [{name: beta}]
  - id: "444444444444"
    regions: [eu-west-1]
    external_id: secret-123
    clusters: [{name: gamma}]
"#;

#[tokio::test]
async fn assume_role_then_see_only_that_account() {
    let sim = start(FLEET).await;
    let hub = sts(&sim, creds(HUB_KEY));
    let me = hub.get_caller_identity().send().await.expect("whoami");
    assert_eq!(
        me.account(),
        Some("000000000000"),
        "static keys act as the hub account"
    );
    let out = hub
        .assume_role()
        .role_arn("arn:aws:iam::222222222222:role/restarter")
        .role_session_name("nightly")
        .duration_seconds(3600)
        .send()
        .await
        .expect("assumed");
    let c = out.credentials().expect("credentials");
    assert!(c.access_key_id().starts_with("ASIA"));
    assert_eq!(c.access_key_id().len(), 20);
    assert!(!c.session_token().is_empty());
    let user = out.assumed_role_user().expect("user");
    assert_eq!(
        user.arn(),
        "arn:aws:sts::222222222222:assumed-role/restarter/nightly"
    );

    let member = ecs_with(&sim, from_sts(c), "eu-west-1", 1);
    let clusters = member.list_clusters().send().await.expect("clusters");
    assert_eq!(
        clusters.cluster_arns(),
        ["arn:aws:ecs:eu-west-1:222222222222:cluster/alpha"]
    );
    // Another account's cluster, by name or ARN, is not visible.
    let err = member
        .list_services()
        .cluster("beta")
        .send()
        .await
        .expect_err("not ours");
    assert_eq!(code(&err).as_deref(), Some("ClusterNotFoundException"));
    let err = member
        .list_services()
        .cluster("arn:aws:ecs:eu-west-1:333333333333:cluster/beta")
        .send()
        .await
        .expect_err("not ours");
    assert_eq!(code(&err).as_deref(), Some("AccessDeniedException"));
    // The hub's own keys see the hub account, which has no clusters here.
    let hub_ecs = ecs_with(&sim, creds(HUB_KEY), "eu-west-1", 1);
    assert!(
        hub_ecs
            .list_clusters()
            .send()
            .await
            .expect("hub")
            .cluster_arns()
            .is_empty()
    );

    let member_sts = sts(&sim, from_sts(c));
    let me = member_sts
        .get_caller_identity()
        .send()
        .await
        .expect("whoami");
    assert_eq!(me.account(), Some("222222222222"));
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::222222222222:assumed-role/restarter/nightly")
    );
    // Role chaining is limited to one hour.
    let err = member_sts
        .assume_role()
        .role_arn("arn:aws:iam::444444444444:role/x")
        .role_session_name("chain")
        .external_id("secret-123")
        .duration_seconds(7200)
        .send()
        .await
        .expect_err("chained > 1h");
    assert_eq!(code(&err).as_deref(), Some("ValidationError"));

    let stats = sim.handle().stats();
    assert_eq!(stats.calls["222222222222"]["ListClusters"], 1);
    assert_eq!(stats.calls["000000000000"]["AssumeRole"], 1);
}

#[tokio::test]
async fn assume_role_denied_for_marked_and_unknown_accounts() {
    let sim = start(FLEET).await;
    let hub = sts(&sim, creds(HUB_KEY));
    for arn in [
        "arn:aws:iam::333333333333:role/restarter",
        "arn:aws:iam::999999999999:role/restarter",
        "arn:aws:iam::444444444444:role/restarter",
    ] {
        let err = hub
            .assume_role()
            .role_arn(arn)
            .role_session_name("nightly")
            .send()
            .await
            .expect_err("denied");
        assert_eq!(code(&err).as_deref(), Some("AccessDenied"), "{arn}");
        let raw = err.raw_response().expect("raw");
        assert_eq!(raw.status().as_u16(), 403);
    }
    // With the right ExternalId the third one works.
    hub.assume_role()
        .role_arn("arn:aws:iam::444444444444:role/restarter")
        .role_session_name("nightly")
        .external_id("secret-123")
        .send()
        .await
        .expect("external id accepted");
    let err = hub
        .assume_role()
        .role_arn("not-an-arn-at-all-but-long")
        .role_session_name("nightly")
        .send()
        .await
        .expect_err("bad arn");
    assert_eq!(code(&err).as_deref(), Some("ValidationError"));
}

#[tokio::test]
async fn keys_for_accounts_that_no_longer_exist_are_refused() {
    let sim = start(FLEET).await;
    let ghost = ecs_with(&sim, creds("ASIASIM555555555555X"), "eu-west-1", 1);
    let err = ghost.list_clusters().send().await.expect_err("unknown key");
    assert_eq!(code(&err).as_deref(), Some("UnrecognizedClientException"));
}
