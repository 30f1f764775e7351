//! Shared helpers of the integration tests: SDK clients pointed at an in-process simulator,
//! and a tiny raw HTTP client for the admin API.
#![allow(dead_code)]

use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use fleet_sim::{FleetSpec, RunningSim};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

/// Static keys that act as the hub account.
pub const HUB_KEY: &str = "AKIDFLEETSIMTEST0001";

pub fn http_client() -> aws_sdk_ecs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

pub async fn start(yaml: &str) -> RunningSim {
    let spec = FleetSpec::from_yaml_str(yaml).expect("test spec is valid");
    fleet_sim::spawn(spec).await.expect("simulator starts")
}

pub fn creds(key: &str) -> Credentials {
    Credentials::new(key, "fake-secret", None, None, "test")
}

pub fn ecs_with(
    sim: &RunningSim,
    creds: Credentials,
    region: &str,
    max_attempts: u32,
) -> aws_sdk_ecs::Client {
    let conf = aws_sdk_ecs::Config::builder()
        .endpoint_url(sim.endpoint_url())
        .region(Region::new(region.to_owned()))
        .credentials_provider(creds)
        .http_client(http_client())
        .retry_config(
            aws_sdk_ecs::config::retry::RetryConfig::standard().with_max_attempts(max_attempts),
        )
        .behavior_version(BehaviorVersion::latest())
        .build();
    aws_sdk_ecs::Client::from_conf(conf)
}

pub fn ecs(sim: &RunningSim, region: &str) -> aws_sdk_ecs::Client {
    ecs_with(sim, creds(HUB_KEY), region, 1)
}

pub fn sts(sim: &RunningSim, creds: Credentials) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::Config::builder()
        .endpoint_url(sim.endpoint_url())
        .region(aws_sdk_sts::config::Region::new("eu-west-1"))
        .credentials_provider(creds)
        .http_client(http_client())
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

pub fn config(sim: &RunningSim) -> aws_sdk_config::Client {
    let conf = aws_sdk_config::Config::builder()
        .endpoint_url(sim.endpoint_url())
        .region(aws_sdk_config::config::Region::new("eu-west-1"))
        .credentials_provider(creds(HUB_KEY))
        .http_client(http_client())
        .behavior_version(aws_sdk_config::config::BehaviorVersion::latest())
        .build();
    aws_sdk_config::Client::from_conf(conf)
}

/// A CloudWatch client (rpc-v2-cbor) signing with `creds` in `region`, one try per call.
pub fn cloudwatch_with(
    sim: &RunningSim,
    creds: Credentials,
    region: &str,
) -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::Config::builder()
        .endpoint_url(sim.endpoint_url())
        .region(aws_sdk_cloudwatch::config::Region::new(region.to_owned()))
        .credentials_provider(creds)
        .http_client(http_client())
        .retry_config(
            aws_sdk_cloudwatch::config::retry::RetryConfig::standard().with_max_attempts(1),
        )
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// An SSM client (awsJson1_1) signing with `creds` in `region`, one try per call.
pub fn ssm_with(sim: &RunningSim, creds: Credentials, region: &str) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .endpoint_url(sim.endpoint_url())
        .region(aws_sdk_ssm::config::Region::new(region.to_owned()))
        .credentials_provider(creds)
        .http_client(http_client())
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::standard().with_max_attempts(1))
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// Credentials from an STS AssumeRole answer, for another client.
pub fn from_sts(c: &aws_sdk_sts::types::Credentials) -> Credentials {
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "sts",
    )
}

/// One raw HTTP/1.1 request to the simulator; returns status and body.
pub async fn http(sim: &RunningSim, method: &str, path: &str, body: &str) -> (u16, String) {
    http_at(sim.addr, method, path, body).await
}

/// One raw HTTP/1.1 request to `addr`; returns status and body.
pub async fn http_at(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Error code of an SDK error (service error metadata).
pub fn code<E, R>(e: &aws_sdk_ecs::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_owned)
}

/// One raw ECS call (awsJson1_1) signed, as far as the simulator looks, with `key` in
/// `region`; returns status and body. For bodies no SDK would send.
pub async fn ecs_raw(
    addr: std::net::SocketAddr,
    key: &str,
    region: &str,
    action: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let target = format!("AmazonEC2ContainerServiceV20141113.{action}");
    json_raw(addr, key, region, "ecs", &target, body).await
}

/// One raw awsJson1_1 call of `service` (its signing name) with `X-Amz-Target: target`,
/// signed, as far as the simulator looks, with `key` in `region`; returns status and body.
pub async fn json_raw(
    addr: std::net::SocketAddr,
    key: &str,
    region: &str,
    service: &str,
    target: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", addr.to_string())
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={key}/20261122/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// HTTP status of an SDK error's raw response.
pub fn status<E>(
    e: &aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Error message of an SDK error (service error metadata).
pub fn message<E, R>(e: &aws_sdk_ecs::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.message())
        .map(str::to_owned)
}
