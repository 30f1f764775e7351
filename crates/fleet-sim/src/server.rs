//! The HTTP server: routing of AWS calls by protocol, throttling, latency, statistics and the
//! admin API under `/_sim/`.
//!
//! awsJson1_1 (ECS, Config, Organizations, SSM) is routed by `X-Amz-Target` on `POST /`, the
//! query protocol (STS) by the form body on `POST /`, and Smithy RPC v2 CBOR (CloudWatch) by
//! its path, `POST /service/<Service>/operation/<Operation>`. Every call is counted in the
//! statistics under the caller's account and its action, and put to the authorizer when one
//! is set.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{
    Authorization, Authorizer, Principal, account_of_issued_key, ecs_context, ecs_resources,
    parse_authorization,
};
use crate::clock::{SimClock, millis_to_utc};
use crate::error::AwsError;
use crate::rate::RateMeter;
use crate::spec::{FleetSpec, SpecError};
use crate::sts::{Issued, Sessions, StsAuth, StsCaller};
use crate::throttle::Throttle;
use crate::world::{self, World};
use crate::{cloudwatch, config_svc, ecs, faults, organizations, ssm, sts};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The spec is invalid.
    #[error("invalid fleet spec: {0}")]
    Spec(#[from] SpecError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// Statistics, as `GET /_sim/stats` returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// account → action → calls (throttled ones included).
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// account → action → calls answered with ThrottlingException.
    pub throttled: BTreeMap<String, BTreeMap<String, u64>>,
    /// "account/region/cluster" → the most forced deployments IN_PROGRESS at once.
    pub max_inflight_per_cluster: BTreeMap<String, u64>,
    /// "account/region" → ECS action → the most calls accepted (not throttled) in any one
    /// second of real time.
    #[serde(default)]
    pub max_rate: BTreeMap<String, BTreeMap<String, u64>>,
    /// Forced deployments started.
    pub restarts: u64,
    /// Services in the fleet.
    pub services: u64,
    /// Simulated now (RFC 3339).
    pub now: String,
}

impl Stats {
    /// Total calls of `action` over all accounts.
    pub fn total_calls(&self, action: &str) -> u64 {
        self.calls.values().filter_map(|m| m.get(action)).sum()
    }

    /// Total throttled calls of `action` over all accounts.
    pub fn total_throttled(&self, action: &str) -> u64 {
        self.throttled.values().filter_map(|m| m.get(action)).sum()
    }
}

/// The simulated clock, as `GET /_sim/clock` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockInfo {
    /// Simulated now, RFC 3339.
    pub now: String,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Seconds added by `POST /_sim/clock/advance` since the last reset.
    pub advanced_seconds: f64,
}

#[derive(Debug)]
struct Inner {
    spec: FleetSpec,
    world: World,
    clock: SimClock,
    throttle: Throttle,
    calls: BTreeMap<String, BTreeMap<String, u64>>,
    throttled: BTreeMap<String, BTreeMap<String, u64>>,
    rates: RateMeter,
    sessions: Sessions,
    issued: Issued,
    /// Decides every request when set ([`SimHandle::set_authorizer`]); kept across resets.
    authorizer: Option<Arc<dyn Authorizer>>,
    request_seq: u64,
}

impl Inner {
    fn new(spec: FleetSpec) -> Self {
        let start = spec.start_time.unwrap_or_else(Utc::now).timestamp_millis();
        let world = world::build(&spec, start);
        let clock = SimClock::new(start, spec.time_scale);
        Self {
            spec,
            world,
            clock,
            throttle: Throttle::default(),
            calls: BTreeMap::new(),
            throttled: BTreeMap::new(),
            rates: RateMeter::default(),
            sessions: HashMap::new(),
            issued: HashMap::new(),
            authorizer: None,
            request_seq: 0,
        }
    }

    fn count(map: &mut BTreeMap<String, BTreeMap<String, u64>>, account: &str, action: &str) {
        *map.entry(account.to_owned())
            .or_default()
            .entry(action.to_owned())
            .or_default() += 1;
    }

    /// Who signed: a session the simulator issued (by its token), else a hub identity. `None`
    /// for an issued key whose token names no session.
    fn principal(&self, headers: &HeaderMap, access_key: &str) -> Option<Principal> {
        if account_of_issued_key(access_key).is_none() {
            return Some(Principal::Hub {
                access_key: access_key.to_owned(),
            });
        }
        let token = headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok())?;
        self.issued.get(token).cloned().map(Principal::Session)
    }

    /// Puts `requests` (`(action, resource)`, with `context`) to the authorizer, if there is
    /// one; the first refusal is the answer.
    fn authorize(
        &self,
        headers: &HeaderMap,
        access_key: &str,
        requests: Vec<(String, String)>,
        context: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), AwsError> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let Some(principal) = self.principal(headers, access_key) else {
            return Err(AwsError::unrecognized_client());
        };
        for (action, resource) in requests {
            let request = Authorization {
                principal: principal.clone(),
                action,
                resource,
                context: context.clone(),
                assume: None,
            };
            authorizer
                .authorize(&request)
                .map_err(AwsError::access_denied)?;
        }
        Ok(())
    }

    fn request_id(&mut self) -> String {
        self.request_seq += 1;
        let n = self.request_seq;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n >> 16,
            n & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n
        )
    }
}

/// A handle on a running (or not yet served) simulator: the state behind the HTTP API.
/// Cloning it is cheap; all clones share the state.
#[derive(Debug, Clone)]
pub struct SimHandle {
    inner: Arc<Mutex<Inner>>,
}

impl SimHandle {
    /// Builds the fleet from a spec (validated again here).
    pub fn new(spec: FleetSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner::new(spec))),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Simulated now.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().clock.now_utc()
    }

    /// Moves the simulated clock forward.
    pub fn advance_seconds(&self, seconds: f64) {
        let ms = (seconds.max(0.0) * 1000.0) as i64;
        self.lock().clock.advance(ms);
    }

    /// The clock as `GET /_sim/clock` shows it.
    pub fn clock(&self) -> ClockInfo {
        let g = self.lock();
        ClockInfo {
            now: g
                .clock
                .now_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            time_scale: g.clock.time_scale(),
            advanced_seconds: g.clock.advanced() as f64 / 1000.0,
        }
    }

    /// Current statistics (settles every deployment first).
    pub fn stats(&self) -> Stats {
        let mut g = self.lock();
        let now = g.clock.now();
        g.world.settle_all(now);
        Stats {
            calls: g.calls.clone(),
            throttled: g.throttled.clone(),
            max_inflight_per_cluster: g.world.max_inflight(),
            max_rate: g.rates.snapshot(),
            restarts: g.world.restarts,
            services: g.world.service_count() as u64,
            now: millis_to_utc(now).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    /// Back to the loaded spec's initial state: fleet, clock, buckets and statistics (the
    /// authorizer stays).
    pub fn reset(&self) {
        let mut g = self.lock();
        let spec = g.spec.clone();
        let authorizer = g.authorizer.take();
        *g = Inner::new(spec);
        g.authorizer = authorizer;
    }

    /// Loads a new spec (and resets everything but the authorizer).
    pub fn load(&self, spec: FleetSpec) -> Result<(), SpecError> {
        spec.validate()?;
        let mut fresh = Inner::new(spec);
        let mut g = self.lock();
        fresh.authorizer = g.authorizer.take();
        *g = fresh;
        Ok(())
    }

    /// From now on every ECS, Organizations, Config, CloudWatch and SSM request and every
    /// AssumeRole is put to `authorizer` (module [`crate::auth`]); `None` allows everything
    /// again.
    pub fn set_authorizer(&self, authorizer: Option<Arc<dyn Authorizer>>) {
        self.lock().authorizer = authorizer;
    }

    /// The spec currently loaded.
    pub fn spec(&self) -> FleetSpec {
        self.lock().spec.clone()
    }
}

/// The router serving the AWS APIs on `POST /` (and CloudWatch's rpc-v2-cbor on
/// `POST /service/{service}/operation/{operation}`) and the admin API under `/_sim/`.
pub fn router(handle: SimHandle) -> Router {
    Router::new()
        .route("/", post(aws_call))
        .route(
            "/service/{service}/operation/{operation}",
            post(rpc_v2_call),
        )
        .route("/_sim/stats", get(admin_stats))
        .route("/_sim/reset", post(admin_reset))
        .route("/_sim/fleet", post(admin_fleet))
        .route("/_sim/clock", get(admin_clock))
        .route("/_sim/clock/advance", post(admin_advance))
        .fallback(not_found)
        .with_state(handle)
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        r#"{"__type":"UnknownOperationException","message":"Not found"}"#.to_owned(),
        None,
    )
}

fn json_response(status: StatusCode, body: String, request_id: Option<&str>) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Some(rid) = request_id.and_then(|r| HeaderValue::from_str(r).ok()) {
        h.insert("x-amzn-requestid", rid);
    }
    resp
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(rid) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", rid);
    }
    resp
}

fn admin_json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    let body = serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned());
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Ecs,
    Config,
    Organizations,
    Ssm,
    Sts,
}

/// The account the caller acts in, from the SigV4 access key.
fn resolve_account(
    world: &World,
    headers: &HeaderMap,
) -> Result<(String, String, String), AwsError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization)
        .ok_or_else(AwsError::missing_auth)?;
    let account = match account_of_issued_key(&auth.access_key) {
        Some(a) if world.accounts.contains_key(a) => a.to_owned(),
        Some(_) => return Err(AwsError::unrecognized_client()),
        None => world.hub_account.clone(),
    };
    Ok((account, auth.region, auth.access_key))
}

async fn aws_call(State(handle): State<SimHandle>, headers: HeaderMap, body: Bytes) -> Response {
    let latency = handle.lock().spec.latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let (protocol, action) = match target {
        Some(t) => {
            if let Some(a) = t.strip_prefix(ecs::TARGET_PREFIX) {
                (Protocol::Ecs, a.to_owned())
            } else if let Some(a) = t.strip_prefix(config_svc::TARGET_PREFIX) {
                (Protocol::Config, a.to_owned())
            } else if let Some(a) = t.strip_prefix(organizations::TARGET_PREFIX) {
                (Protocol::Organizations, a.to_owned())
            } else if let Some(a) = t.strip_prefix(ssm::TARGET_PREFIX) {
                (Protocol::Ssm, a.to_owned())
            } else {
                let e = AwsError::bad("UnknownOperationException", format!("Unknown target {t}."));
                return json_response(e.status, e.json_body(), None);
            }
        }
        None => (Protocol::Sts, String::new()),
    };
    let mut g = handle.lock();
    let request_id = g.request_id();
    if protocol == Protocol::Sts {
        return sts_call(&mut g, &headers, &body, &request_id);
    }
    let (account, region, key) = match resolve_account(&g.world, &headers) {
        Ok(c) => c,
        Err(e) => return json_response(e.status, e.json_body(), Some(&request_id)),
    };
    Inner::count(&mut g.calls, &account, &action);
    if protocol == Protocol::Ssm {
        return ssm_call(
            &mut g,
            &headers,
            &body,
            Caller {
                account: &account,
                region: &region,
                key: &key,
                action: &action,
                request_id: &request_id,
            },
        );
    }
    let ecs_action = if protocol == Protocol::Ecs {
        ecs::ACTIONS.iter().copied().find(|a| *a == action)
    } else {
        None
    };
    let org_action = if protocol == Protocol::Organizations {
        organizations::ACTIONS
            .iter()
            .copied()
            .find(|a| *a == action)
    } else {
        None
    };
    let real_now = Instant::now();
    if g.spec.throttling
        && let Some(static_action) = ecs_action.or(org_action)
        && !g
            .throttle
            .try_take(&account, &region, static_action, real_now)
    {
        Inner::count(&mut g.throttled, &account, &action);
        tracing::debug!(%account, %region, %action, "throttled");
        if org_action.is_some() {
            let e = organizations::OrgError::too_many_requests();
            return json_response(e.status(), e.json_body(), Some(&request_id));
        }
        let e = AwsError::throttling();
        return json_response(e.status, e.json_body(), Some(&request_id));
    }
    // Authorized after the token bucket, as AWS throttles before it evaluates policies.
    let (requests, context) = match protocol {
        Protocol::Ecs => (
            ecs_resources(&account, &region, &action, &body)
                .into_iter()
                .map(|r| (format!("ecs:{action}"), r))
                .collect(),
            ecs_context(&region, &action, &body),
        ),
        // Organizations' listing actions take no resource-level permission.
        Protocol::Organizations => (
            vec![(format!("organizations:{action}"), "*".to_owned())],
            BTreeMap::new(),
        ),
        _ => (
            vec![(
                format!("config:{action}"),
                config_svc::aggregator_arn(&region, &account, &body),
            )],
            BTreeMap::new(),
        ),
    };
    if let Err(e) = g.authorize(&headers, &key, requests, &context) {
        tracing::debug!(%account, %action, code = e.code, "denied");
        return json_response(e.status, e.json_body(), Some(&request_id));
    }
    if protocol == Protocol::Organizations {
        let world = &g.world;
        let out = organizations::handle(
            world.organization.as_ref(),
            world.seed,
            &account,
            &action,
            &body,
        );
        drop(g);
        return match out {
            Ok(out) => json_response(StatusCode::OK, out, Some(&request_id)),
            Err(e) => {
                tracing::debug!(%account, %action, code = e.error.code, "organizations error");
                json_response(e.status(), e.json_body(), Some(&request_id))
            }
        };
    }
    if let Some(static_action) = ecs_action {
        g.rates.record(&account, &region, static_action, real_now);
    }
    let now = g.clock.now();
    let result = if protocol == Protocol::Ecs {
        let inner = &mut *g;
        let caller = StsCaller {
            access_key: &key,
            account: &account,
        };
        let fault = faults::before_ecs_call(
            &mut inner.world,
            faults::Call {
                account: &account,
                region: &region,
                action: &action,
                body: &body,
            },
            || sts::caller_arn(caller, &inner.sessions),
        );
        match fault {
            Some(e) => Err(e),
            None => {
                let ctx = ecs::Ctx {
                    account: &account,
                    region: &region,
                    now,
                };
                let out = ecs::handle(&mut inner.world, ctx, &action, &body);
                if let Ok((_, fx)) = &out {
                    if fx.restarted {
                        inner.world.restarts += 1;
                    }
                    if action == "UpdateService" {
                        faults::update_succeeded(&mut inner.world, &account);
                    }
                }
                out.map(|(body, _)| body)
            }
        }
    } else {
        config_svc::handle(&g.world, &action, &body, now)
    };
    drop(g);
    match result {
        Ok(out) => {
            tracing::debug!(%account, %region, %action, "ok");
            json_response(StatusCode::OK, out, Some(&request_id))
        }
        Err(e) => {
            tracing::debug!(%account, %region, %action, code = e.code, "error");
            json_response(e.status, e.json_body(), Some(&request_id))
        }
    }
}

fn sts_call(g: &mut Inner, headers: &HeaderMap, body: &[u8], request_id: &str) -> Response {
    let params: HashMap<String, String> = match serde_urlencoded::from_bytes(body) {
        Ok(p) => p,
        Err(e) => {
            let e = AwsError::bad(
                "MalformedQueryString",
                format!("The query string is malformed: {e}"),
            );
            return xml_response(e.status, e.xml_body(request_id), request_id);
        }
    };
    let Some(action) = params.get("Action").cloned() else {
        let e = AwsError::bad(
            "MissingAction",
            "The request must contain an Action parameter or an X-Amz-Target header.",
        );
        return xml_response(e.status, e.xml_body(request_id), request_id);
    };
    let (account, _region, key) = match resolve_account(&g.world, headers) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.code == "UnrecognizedClientException" {
                "InvalidClientTokenId"
            } else {
                "MissingAuthenticationToken"
            };
            let e = AwsError { code, ..e };
            return xml_response(e.status, e.xml_body(request_id), request_id);
        }
    };
    Inner::count(&mut g.calls, &account, &action);
    let caller = StsCaller {
        access_key: &key,
        account: &account,
    };
    let principal = g.principal(headers, &key);
    let authorizer = g.authorizer.clone();
    let organization_id = g.world.organization.as_ref().map(|o| o.id.clone());
    let auth = match (&authorizer, &principal) {
        (None, _) => None,
        (Some(authorizer), Some(principal)) => Some(StsAuth {
            authorizer: authorizer.as_ref(),
            principal,
            organization_id: organization_id.as_deref(),
        }),
        (Some(_), None) => {
            let e = AwsError {
                code: "InvalidClientTokenId",
                ..AwsError::unrecognized_client()
            };
            return xml_response(e.status, e.xml_body(request_id), request_id);
        }
    };
    let inner = &mut *g;
    match sts::handle(
        &inner.world,
        &mut inner.sessions,
        &mut inner.issued,
        auth,
        caller,
        &params,
        Utc::now(),
        request_id,
    ) {
        Ok(xml) => xml_response(StatusCode::OK, xml, request_id),
        Err(e) => {
            tracing::debug!(%account, %action, code = e.code, "sts error");
            xml_response(e.status, e.xml_body(request_id), request_id)
        }
    }
}

/// Who calls what, once the account is known.
#[derive(Debug, Clone, Copy)]
struct Caller<'a> {
    account: &'a str,
    region: &'a str,
    key: &'a str,
    action: &'a str,
    request_id: &'a str,
}

/// SSM (awsJson1_1), after the account is known and the call counted: authorized per calendar
/// document, never throttled, errors with `Message`.
fn ssm_call(g: &mut Inner, headers: &HeaderMap, body: &[u8], c: Caller<'_>) -> Response {
    let ssm_error = |e: AwsError| json_response(e.status, ssm::json_body(&e), Some(c.request_id));
    let requests = ssm::resources(c.account, c.region, body)
        .into_iter()
        .map(|r| (format!("ssm:{}", c.action), r))
        .collect();
    let context = BTreeMap::from([("aws:RequestedRegion".to_owned(), vec![c.region.to_owned()])]);
    if let Err(e) = g.authorize(headers, c.key, requests, &context) {
        tracing::debug!(account = %c.account, action = %c.action, code = e.code, "denied");
        return ssm_error(e);
    }
    let ctx = ecs::Ctx {
        account: c.account,
        region: c.region,
        now: g.clock.now(),
    };
    match ssm::handle(&g.world, ctx, c.action, body) {
        Ok(out) => json_response(StatusCode::OK, out, Some(c.request_id)),
        Err(e) => {
            tracing::debug!(account = %c.account, action = %c.action, code = e.code, "ssm error");
            ssm_error(e)
        }
    }
}

/// An rpc-v2-cbor answer: `smithy-protocol: rpc-v2-cbor`, `application/cbor`.
fn cbor_response(status: StatusCode, body: Vec<u8>, request_id: Option<&str>) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/cbor"),
    );
    h.insert(
        "smithy-protocol",
        HeaderValue::from_static(cloudwatch::PROTOCOL),
    );
    if let Some(rid) = request_id.and_then(|r| HeaderValue::from_str(r).ok()) {
        h.insert("x-amzn-requestid", rid);
    }
    resp
}

/// A CloudWatch error: the rpc-v2-cbor error body, and for query-mode clients the
/// `x-amzn-query-error` header with the query code.
fn cbor_error(e: AwsError, query_mode: bool, request_id: Option<&str>) -> Response {
    let e = cloudwatch::wire_error(e);
    let mut resp = cbor_response(e.status, cloudwatch::error_body(&e), request_id);
    if query_mode && let Ok(v) = HeaderValue::from_str(&cloudwatch::query_error(&e)) {
        resp.headers_mut().insert("x-amzn-query-error", v);
    }
    resp
}

/// Smithy RPC v2 CBOR calls (CloudWatch): the account as for every service, counted, then the
/// token bucket, the authorizer and the operation.
async fn rpc_v2_call(
    State(handle): State<SimHandle>,
    Path((service, operation)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = handle.lock().spec.latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let query_mode = headers
        .get("x-amzn-query-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if service != cloudwatch::SERVICE {
        let e = AwsError {
            status: StatusCode::NOT_FOUND,
            ..AwsError::bad(
                "UnknownOperationException",
                format!("Service {service} is not simulated by fleet-sim."),
            )
        };
        return cbor_error(e, query_mode, None);
    }
    let protocol = headers.get("smithy-protocol").and_then(|v| v.to_str().ok());
    if protocol != Some(cloudwatch::PROTOCOL) {
        let e = AwsError::bad(
            "SerializationException",
            format!(
                "The request must carry the header smithy-protocol: {}.",
                cloudwatch::PROTOCOL
            ),
        );
        return cbor_error(e, query_mode, None);
    }
    let mut g = handle.lock();
    let request_id = g.request_id();
    let (account, region, key) = match resolve_account(&g.world, &headers) {
        Ok(c) => c,
        Err(e) => return cbor_error(e, query_mode, Some(&request_id)),
    };
    Inner::count(&mut g.calls, &account, &operation);
    let static_action = cloudwatch::ACTIONS
        .iter()
        .copied()
        .find(|a| *a == operation);
    if g.spec.throttling
        && let Some(a) = static_action
        && !g.throttle.try_take(&account, &region, a, Instant::now())
    {
        Inner::count(&mut g.throttled, &account, &operation);
        tracing::debug!(%account, %region, %operation, "throttled");
        return cbor_error(AwsError::throttling(), query_mode, Some(&request_id));
    }
    let requests = cloudwatch::resources(&account, &region, &body)
        .into_iter()
        .map(|r| (format!("cloudwatch:{operation}"), r))
        .collect();
    let context = BTreeMap::from([("aws:RequestedRegion".to_owned(), vec![region.clone()])]);
    if let Err(e) = g.authorize(&headers, &key, requests, &context) {
        tracing::debug!(%account, %operation, code = e.code, "denied");
        return cbor_error(e, query_mode, Some(&request_id));
    }
    let ctx = ecs::Ctx {
        account: &account,
        region: &region,
        now: g.clock.now(),
    };
    let result = cloudwatch::handle(&g.world, ctx, &operation, &body);
    drop(g);
    match result {
        Ok(out) => {
            tracing::debug!(%account, %region, %operation, "ok");
            cbor_response(StatusCode::OK, out, Some(&request_id))
        }
        Err(e) => {
            tracing::debug!(%account, %region, %operation, code = e.code, "error");
            cbor_error(e, query_mode, Some(&request_id))
        }
    }
}

async fn admin_stats(State(handle): State<SimHandle>) -> Response {
    admin_json(StatusCode::OK, &handle.stats())
}

async fn admin_reset(State(handle): State<SimHandle>) -> Response {
    handle.reset();
    admin_json(StatusCode::OK, &serde_json::json!({"reset": true}))
}

async fn admin_clock(State(handle): State<SimHandle>) -> Response {
    admin_json(StatusCode::OK, &handle.clock())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    seconds: f64,
}

async fn admin_advance(State(handle): State<SimHandle>, body: Bytes) -> Response {
    match serde_json::from_slice::<AdvanceRequest>(&body) {
        Ok(r) if r.seconds.is_finite() && r.seconds >= 0.0 => {
            handle.advance_seconds(r.seconds);
            admin_json(StatusCode::OK, &handle.clock())
        }
        Ok(r) => admin_json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": format!("seconds must be a non-negative number, got {}", r.seconds)}),
        ),
        Err(e) => admin_json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": format!("expected {{\"seconds\": N}}: {e}")}),
        ),
    }
}

async fn admin_fleet(State(handle): State<SimHandle>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => {
            return admin_json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": "the spec is not UTF-8"}),
            );
        }
    };
    match FleetSpec::from_str_auto(text).and_then(|spec| handle.load(spec)) {
        Ok(()) => {
            let services = handle.lock().world.service_count();
            admin_json(
                StatusCode::OK,
                &serde_json::json!({"loaded": true, "services": services}),
            )
        }
        Err(e) => admin_json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": e.to_string()}),
        ),
    }
}

/// A simulator serving on a local port; stops when [`RunningSim::shutdown`] is called or it is
/// dropped.
#[derive(Debug)]
pub struct RunningSim {
    /// The address it listens on.
    pub addr: SocketAddr,
    handle: SimHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// `http://ADDR`, for clients' `endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulator's state: clock, statistics, reset and load without HTTP.
    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(r) => r?,
                Err(e) => return Err(SimError::Serve(std::io::Error::other(e.to_string()))),
            }
        }
        Ok(())
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the simulator on a free loopback port (127.0.0.1:0). Needs a tokio runtime.
pub async fn spawn(spec: FleetSpec) -> Result<RunningSim, SimError> {
    spawn_on(spec, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts the simulator on `addr` (port 0 picks a free port). Needs a tokio runtime.
pub async fn spawn_on(spec: FleetSpec, addr: SocketAddr) -> Result<RunningSim, SimError> {
    let handle = SimHandle::new(spec)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let app = router(handle.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, "fleet-sim listening");
    Ok(RunningSim {
        addr,
        handle,
        shutdown: Some(tx),
        task: Some(task),
    })
}
