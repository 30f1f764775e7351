//! The one error model against real peers: a hung endpoint costs the configured timeouts, not
//! the Lambda's, and ends as a retryable error; an endpoint that is not there is transient too.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::SdkConfig;
use aws_types::region::Region;
use restart_aws::dynamodb::DynamoStore;
use restart_aws::{Timeouts, with_timeouts};
use restart_core::ports::{RestartStore, StoreError};

fn sdk(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(endpoint)
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .build()
}

const SHORT: Timeouts = Timeouts {
    connect: Duration::from_millis(500),
    attempt: Duration::from_millis(300),
    operation: Duration::from_secs(2),
};

#[tokio::test]
async fn a_hung_endpoint_costs_the_operation_timeout_and_is_transient() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(8) {
            open.push(stream);
        }
        open
    });
    let sdk = with_timeouts(&sdk(&format!("http://{addr}")), SHORT);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), "table", 90);
    let began = Instant::now();
    let err = store.pause().await.unwrap_err();
    let took = began.elapsed();
    assert!(matches!(err, StoreError::Transient(_)), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(held);
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sdk = with_timeouts(&sdk(&format!("http://127.0.0.1:{port}")), SHORT);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), "table", 90);
    let err = store.pause().await.unwrap_err();
    assert!(matches!(err, StoreError::Transient(_)), "{err}");
}
