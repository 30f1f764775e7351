//! The local Lambda host: serves the Lambda Invoke API
//! (`POST /2015-03-31/functions/{name}/invocations`) by calling the four real handlers in this
//! process, and forwards every other request to moto. moto's Step Functions interpreter sends
//! its Invoke calls here (moto is started with `MOTO_PORT` = this host's port).
//!
//! A handler's error is answered the way Lambda answers a function error: status 200, header
//! `X-Amz-Function-Error: Unhandled`, body `{"errorType", "errorMessage"}` with the
//! `ErrorType` name of docs/design.md 3.8. moto's interpreter takes the failure's name from
//! `errorType`, so the definition's Retry and Catch rules match `Paused`, `Throttled`, ... as
//! they do in AWS.
//!
//! With [`LambdaHost::tracing`], each invocation runs as Lambda runs it with active tracing: under
//! a sampled trace header (one trace per night, [`crate::traces::Tracing`]) in the X-Ray
//! layer's subscriber, whose documents go to the stack's X-Ray listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt as _;
use restart_core::{Config, HandlerError};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::bill::{DynamoBill, Meter, SnsBill};
use crate::http;
use crate::iam::{Enforcement, Entry, Request as IamRequest, Verdict};
use crate::traces::Tracing;

/// The four functions, built once as a cold start would.
#[derive(Debug)]
pub struct Functions {
    pub inventory: inventory::aws::AwsInventory,
    pub batcher: batcher::aws::AwsBatcher,
    pub restarter: restarter::aws::AwsRestarter,
    pub notifier: notifier::aws::AwsNotifier,
}

impl Functions {
    /// Each function's handler from the same configuration and SDK settings, as `main` does.
    pub fn new(config: &Config, sdk: &aws_types::SdkConfig) -> Functions {
        Functions::with_sdk(config, |_| sdk.clone())
    }

    /// Each function's handler with its own SDK settings (`sdk(name)`: its role's
    /// credentials).
    pub fn with_sdk(config: &Config, sdk: impl Fn(&str) -> aws_types::SdkConfig) -> Functions {
        Functions {
            inventory: inventory::aws::handler(config.clone(), &sdk("inventory")),
            batcher: batcher::aws::handler(config.clone(), &sdk("batcher")),
            restarter: restarter::aws::handler(config.clone(), &sdk("restarter")),
            notifier: notifier::aws::handler(config.clone(), &sdk("notifier")),
        }
    }

    /// The function names the host answers to (the last part of their ARNs).
    pub const NAMES: [&'static str; 4] = ["inventory", "batcher", "restarter", "notifier"];

    async fn invoke(
        &self,
        name: &str,
        event: serde_json::Value,
    ) -> Option<Result<Vec<u8>, HandlerError>> {
        fn encode<T: Serialize>(r: Result<T, HandlerError>) -> Result<Vec<u8>, HandlerError> {
            r.and_then(|out| {
                serde_json::to_vec(&out).map_err(|e| {
                    HandlerError::unexpected(format!("the handler's answer is not JSON: {e}"))
                })
            })
        }
        Some(match name {
            "inventory" => encode(self.inventory.dispatch(event).await),
            "batcher" => encode(self.batcher.handle(event).await),
            "restarter" => encode(self.restarter.handle(event).await),
            "notifier" => encode(self.notifier.handle(event).await),
            _ => return None,
        })
    }
}

/// Invocations per function: calls, billed milliseconds (each invocation's duration rounded
/// up to the millisecond, as Lambda bills it) and function errors by `errorType`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Invocations {
    pub calls: BTreeMap<String, u64>,
    pub billed_ms: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, BTreeMap<String, u64>>,
}

#[derive(Debug)]
struct HostState {
    functions: Arc<Functions>,
    moto: String,
    client: http::Client,
    invocations: Mutex<Invocations>,
    meter: Mutex<Meter>,
    /// The templates' IAM, when requests are authorized ([`LambdaHost::enforcing`]).
    iam: Mutex<Option<Arc<Enforcement>>>,
    /// Active tracing, when on ([`LambdaHost::tracing`]).
    tracing: Mutex<Option<Arc<Tracing>>>,
}

/// The host, serving until dropped.
#[derive(Debug)]
pub struct LambdaHost {
    pub addr: SocketAddr,
    state: Arc<HostState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LambdaHost {
    /// Serves `functions` on `listener`, forwarding everything else to `moto` through `meter`.
    pub fn serve(
        listener: TcpListener,
        functions: Arc<Functions>,
        moto: String,
        meter: Meter,
    ) -> anyhow::Result<LambdaHost> {
        let addr = listener.local_addr()?;
        let state = Arc::new(HostState {
            functions,
            moto,
            client: http::client(),
            invocations: Mutex::new(Invocations::default()),
            meter: Mutex::new(meter),
            iam: Mutex::new(None),
            tracing: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .fallback(forward)
            .with_state(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the local Lambda host stopped");
            }
        });
        Ok(LambdaHost {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// From now on, invocations are authorized as the state machine's role's and every
    /// forwarded request as its signer's (requests signed with a key of no principal of the
    /// templates, the stack's own administration, are not restricted).
    pub fn enforcing(self, iam: Arc<Enforcement>) -> LambdaHost {
        *self
            .state
            .iam
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(iam);
        self
    }

    /// From now on, every invocation is traced as Lambda's active tracing does.
    pub fn tracing(self, tracing: Arc<Tracing>) -> LambdaHost {
        *self
            .state
            .tracing
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tracing);
        self
    }

    /// Calls and errors so far.
    pub fn invocations(&self) -> Invocations {
        self.state
            .invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the requests forwarded so far cost (DynamoDB and SNS).
    pub fn bill(&self) -> (DynamoBill, SnsBill) {
        let meter = self
            .state
            .meter
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (meter.dynamodb.clone(), meter.sns.clone())
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LambdaHost {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, or a bare name.
fn function_name(name_or_arn: &str) -> &str {
    match name_or_arn.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => name_or_arn,
    }
}

async fn invoke(
    State(state): State<Arc<HostState>>,
    Path(target): Path<String>,
    body: Bytes,
) -> Response {
    let name = function_name(&target).to_owned();
    let event: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                );
            }
        }
    };
    if !Functions::NAMES.contains(&name.as_str()) {
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {target}"),
        );
    }
    // Only the state machine invokes the functions: as its role, on the function's
    // unqualified ARN (the definition's).
    let iam = state
        .iam
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(iam) = iam {
        let arn = iam
            .names
            .atts
            .iter()
            .find(|(k, v)| k.ends_with(".Arn") && v.ends_with(&format!(":function:{name}")))
            .map_or_else(|| target.clone(), |(_, v)| v.clone());
        let request = IamRequest::new("lambda:InvokeFunction", arn)
            .with("aws:RequestedRegion", &[&iam.hub.region]);
        let entry = Entry {
            caller: iam.principals.state_machine.clone(),
            request,
            trust_of: None,
            origin: iam.phase(),
            sent: true,
        };
        if let Verdict::Denied(message) = iam.policies.authorize(entry) {
            return lambda_error(StatusCode::FORBIDDEN, "AccessDeniedException", &message);
        }
    }
    tracing::debug!(function = %name, %event, "invoke");
    // Spawned, so that a handler's panic is one failed invocation, as in Lambda.
    let functions = state.functions.clone();
    let fname = name.clone();
    let tracing = state
        .tracing
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let traced = tracing.as_ref().map(|t| t.begin(&name, &event));
    let began = std::time::Instant::now();
    let outcome = match (&tracing, &traced) {
        (Some(t), Some(invocation)) => {
            let span = t.span(invocation, &event);
            let handler = t.instrument(span, async move { functions.invoke(&fname, event).await });
            tokio::spawn(handler).await
        }
        _ => tokio::spawn(async move { functions.invoke(&fname, event).await }).await,
    };
    let billed_ms = u64::try_from(began.elapsed().as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
    let result = match outcome {
        Ok(Some(r)) => r,
        Ok(None) => unreachable!("names are checked above"),
        Err(e) => Err(HandlerError::unexpected(format!(
            "the handler panicked: {e}"
        ))),
    };
    if let (Some(t), Some(invocation)) = (&tracing, &traced) {
        t.end(
            invocation,
            result
                .as_ref()
                .map(Vec::as_slice)
                .map_err(|e| e.error_type.as_str()),
        );
    }
    {
        let mut inv = state
            .invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *inv.calls.entry(name.clone()).or_default() += 1;
        *inv.billed_ms.entry(name.clone()).or_default() += billed_ms;
        if let Err(e) = &result {
            *inv.errors
                .entry(name.clone())
                .or_default()
                .entry(e.error_type.as_str().to_owned())
                .or_default() += 1;
        }
    }
    match result {
        Ok(payload) => {
            let mut resp = (StatusCode::OK, payload).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => {
            tracing::info!(function = %name, error_type = %e.error_type, message = %e.message, "function error");
            let body = serde_json::json!({
                "errorType": e.error_type.as_str(),
                "errorMessage": e.message,
            });
            let mut resp = (StatusCode::OK, body.to_string()).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(
                "X-Amz-Function-Error",
                HeaderValue::from_static("Unhandled"),
            );
            resp
        }
    }
}

/// A Lambda service error (not a function error): `x-amzn-ErrorType` and `{Type, Message}`.
fn lambda_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let body = serde_json::json!({"Type": "User", "Message": message});
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
    resp
}

/// Any other request goes to moto as it came; DynamoDB and SNS requests are metered on the way
/// ([`Meter`]).
async fn forward(State(state): State<Arc<HostState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let iam = state
        .iam
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(iam) = iam
        && let Some(key) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(fleet_sim::auth::parse_authorization)
        && let Some(Verdict::Denied(message)) = iam.authorize_http(
            &key.access_key,
            parts
                .headers
                .get("x-amz-target")
                .and_then(|t| t.to_str().ok()),
            &body,
        )
    {
        return access_denied(&parts.headers, &body, &message);
    }
    let dynamodb_op = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.strip_prefix("DynamoDB_20120810."))
        .map(str::to_owned);
    let mut out = hyper::Request::builder()
        .method(parts.method)
        .uri(format!("{}{path}", state.moto));
    for (k, v) in &parts.headers {
        if k != header::HOST {
            out = out.header(k, v);
        }
    }
    let out = match out.body(Body::from(body.clone())) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let resp = match state.client.request(out).await {
        Ok(resp) => resp,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!(
                    "the local Lambda host could not reach moto at {}: {e}",
                    state.moto
                ),
            )
                .into_response();
        }
    };
    let (parts, answer) = resp.into_parts();
    let answer = match answer.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    {
        let mut meter = state.meter.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(op) = dynamodb_op {
            let json = |b: &[u8]| serde_json::from_slice(b).unwrap_or(serde_json::Value::Null);
            // A failed condition is a 400 and billed; other errors are not.
            let condition_failed = String::from_utf8_lossy(&answer)
                .contains("ConditionalCheckFailed")
                || String::from_utf8_lossy(&answer).contains("TransactionCanceled");
            if parts.status.is_success() || condition_failed {
                meter.dynamodb(&op, &json(&body), &json(&answer), parts.status.is_success());
            }
        } else if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            && form
                .iter()
                .any(|(k, v)| k == "Action" && (v == "Publish" || v == "PublishBatch"))
            && parts.status.is_success()
        {
            meter.sns(&form);
        }
    }
    Response::from_parts(parts, Body::from(answer))
}

/// AWS's answer to a denied request, in the request's protocol: JSON (`__type`
/// `AccessDeniedException`, status 400) for the JSON protocols (DynamoDB, Step Functions,
/// SQS), XML (`AuthorizationError` for SNS, `AccessDenied` otherwise, status 403) for the
/// query protocol.
fn access_denied(headers: &axum::http::HeaderMap, body: &[u8], message: &str) -> Response {
    if headers.contains_key("x-amz-target") {
        let body = serde_json::json!({
            "__type": "com.amazon.coral.service#AccessDeniedException",
            "message": message,
        });
        let mut resp = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        resp.headers_mut().insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static("AccessDeniedException"),
        );
        return resp;
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let sns = form.iter().any(|(k, _)| k == "TopicArn");
    let code = if sns {
        "AuthorizationError"
    } else {
        "AccessDenied"
    };
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let xml = format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escaped}</Message></Error><RequestId>local-iam</RequestId></ErrorResponse>"
    );
    let mut resp = (StatusCode::FORBIDDEN, xml).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_from_arns_and_names() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:restarter"),
            "restarter"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:batcher:live"),
            "batcher"
        );
        assert_eq!(function_name("notifier"), "notifier");
    }
}
