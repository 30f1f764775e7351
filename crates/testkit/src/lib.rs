//! Test helpers for integration tests: reach the local AWS emulator (moto) that `tools/with-moto`
//! starts, and run the AWS CLI against it as an outside client.
//!
//! Tests that need moto are run with `make test` (or `tools/with-moto cargo nextest run ...`),
//! which exports `MOTO_ENDPOINT`. A test never skips itself when moto is missing: it fails and
//! says how to run it.
//!
//! Every test creates its own table ([`create_table`], named by [`unique_name`]), so tests run
//! in parallel against one moto without seeing each other's items.
//!
//! The helpers that need no AWS SDK live in `testkit-core` (which `restart-core`'s tests use)
//! and are re-exported here unchanged: [`fakes`] (in-memory ports; plus [`fakes::MemoryTopics`],
//! which splits messages with the SNS adapter's batching and so stays here), [`strategies`],
//! [`fixtures`], [`bench`] and [`runtime`].

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use restart_aws::dynamodb;

pub use testkit_core::{bench, fixtures, runtime, strategies};

mod topics;

/// `testkit_core::fakes` and the SNS fake, so `testkit::fakes::MemoryTopics` sits with the
/// other fakes.
pub mod fakes {
    pub use crate::topics::MemoryTopics;
    pub use testkit_core::fakes::*;
}

/// The region every test client uses.
pub const REGION: &str = "us-east-1";
/// Fake static credentials: moto accepts any.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

/// moto's endpoint, `http://127.0.0.1:PORT`, from `MOTO_ENDPOINT`.
///
/// # Panics
/// When `MOTO_ENDPOINT` is not set: the test was not started through `tools/with-moto`.
pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => panic!(
            "MOTO_ENDPOINT is not set: run the tests with `make test` (tools/with-moto starts moto)"
        ),
    }
}

/// A name no other test (thread or process) uses: `<prefix>-<pid>-<time>-<n>`, valid as a
/// DynamoDB table name and in most other AWS names.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends DynamoDB to moto; every other service falls back to the SDK config's endpoint.
#[derive(Debug)]
struct DynamoToMoto(String);

impl aws_types::service_config::LoadServiceConfig for DynamoToMoto {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        (key.service_id() == "DynamoDB" && key.profile() == "endpoint_url").then(|| self.0.clone())
    }
}

/// The hub's SDK settings for a local run: DynamoDB at moto, ECS, STS and Config at `sim`
/// (fleet-sim's endpoint), static hub credentials (fleet-sim treats them as the hub account).
/// This is what `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL` do for a deployed function.
/// Like `aws_config::load_defaults`, it carries one HTTP client that every service client
/// shares.
pub fn hub_sdk_config(sim: &str) -> aws_types::SdkConfig {
    aws_types::SdkConfig::builder()
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(sim)
        .service_config(DynamoToMoto(moto_endpoint()))
        .region(Region::new(REGION))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "AKIDHUB0000000000000",
                "hub-secret",
                None,
                None,
                "testkit",
            )),
        )
        .behavior_version(BehaviorVersion::latest())
        .build()
}

/// A DynamoDB client for moto: static fake credentials, `us-east-1`, moto's endpoint.
pub fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "testkit",
        ))
        .endpoint_url(moto_endpoint())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Creates a table of the store's schema ([`dynamodb::create_table`], TTL on) with a unique
/// name, and returns the name.
///
/// # Panics
/// When moto refuses: the test cannot go on.
pub async fn create_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique_name("restart");
    if let Err(e) = dynamodb::create_table(client, &name).send().await {
        panic!("creating table {name} in moto: {}", DisplayErrorContext(&e));
    }
    if let Err(e) = dynamodb::enable_ttl(client, &name).send().await {
        panic!(
            "turning on TTL of table {name} in moto: {}",
            DisplayErrorContext(&e)
        );
    }
    name
}

/// The AWS CLI the project installs: `AWS_CLI` (exported by the Makefile), else
/// `<workspace>/.venv/bin/aws`.
///
/// # Panics
/// When neither exists.
pub fn aws_cli_path() -> PathBuf {
    let path = match std::env::var_os("AWS_CLI") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/aws"),
    };
    if !path.is_file() {
        panic!(
            "the AWS CLI is not at {}: run `make tools` (it installs .venv), or set AWS_CLI",
            path.display()
        );
    }
    path
}

/// An `aws` command aimed at moto, as an outside client: fake credentials in its environment,
/// no configuration or credentials files, `--endpoint-url` moto, JSON output. Add the service
/// and its arguments, e.g. `.args(["dynamodb", "get-item", ...])`.
pub fn aws_cli() -> Command {
    let mut cmd = Command::new(aws_cli_path());
    cmd.env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .args(["--endpoint-url", &moto_endpoint(), "--output", "json"]);
    cmd
}

/// Runs an [`aws_cli`] command and returns its standard output.
///
/// # Panics
/// When it cannot start or exits non-zero (the message holds its standard error).
pub fn run_aws_cli<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = aws_cli();
    cmd.args(args);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!("could not run {cmd:?}: {e}"),
    };
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_table_names() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.starts_with("t-"));
            assert!(name.len() >= 3 && name.len() <= 255);
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
            );
        }
    }

    #[tokio::test]
    async fn a_created_table_has_the_store_schema() {
        let client = dynamodb_client();
        let name = create_table(&client).await;
        let table = client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        let keys: Vec<(&str, &str)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().as_str()))
            .collect();
        assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
        let gsi = &table.global_secondary_indexes()[0];
        assert_eq!(gsi.index_name(), Some("by_service"));
        let gsi_keys: Vec<&str> = gsi
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect();
        assert_eq!(gsi_keys, ["gsi1pk", "gsi1sk"]);
        let ttl = client
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .unwrap()
            .time_to_live_description
            .unwrap();
        assert_eq!(ttl.attribute_name(), Some("expires_at"));
        assert_ne!(create_table(&client).await, name);
    }
}
