//! A small HTTP client for the stack's own plain-HTTP calls: moto's `/moto-api/`, fleet-sim's
//! `/_sim/`, and the Lambda host's forwarding of requests to moto.

use anyhow::Context as _;
use axum::body::Body;
use http_body_util::BodyExt as _;
use hyper::Method;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A plain-HTTP client (loopback only).
pub type Client = HyperClient<HttpConnector, Body>;

/// A new client.
pub fn client() -> Client {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and returns the status and the whole body.
pub async fn send(
    client: &Client,
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(hyper::StatusCode, Vec<u8>)> {
    let mut req = hyper::Request::builder().method(method.clone()).uri(url);
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .with_context(|| format!("building {method} {url}"))?;
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the answer to {method} {url}"))?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}

/// GET `url` and parse the JSON answer; any status but 2xx is an error.
pub async fn get_json(client: &Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = send(client, Method::GET, url, None).await?;
    anyhow::ensure!(
        status.is_success(),
        "GET {url} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).with_context(|| format!("GET {url} did not answer JSON"))
}

/// POST a JSON body to `url`; any status but 2xx is an error.
pub async fn post_json(
    client: &Client,
    url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Vec<u8>> {
    let (status, answer) = send(
        client,
        Method::POST,
        url,
        Some(body.to_string().into_bytes()),
    )
    .await?;
    anyhow::ensure!(
        status.is_success(),
        "POST {url} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(answer)
}

/// A free loopback port: bind port 0 and read back what the kernel chose.
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}
