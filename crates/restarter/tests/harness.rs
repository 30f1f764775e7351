//! A night against real peers, for the tests of `fleet` and `faults`: fleet-sim (ECS, STS)
//! runs in-process, DynamoDB under moto (behind [`serial_proxy`] once [`Night::serial`]);
//! inventory fills the catalog, the batcher plans the night, and the restarter runs it on a
//! manual clock that moves with fleet-sim's simulated one. `tools/with-moto` provides
//! `MOTO_ENDPOINT`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta};
use fleet_sim::spec::{
    AccountFaults, AccountSpec, ClusterSpec, DeploySeconds, OnRestart, ServiceSpec,
};
use fleet_sim::{FleetSpec, RunningSim};
use restart_aws::dynamodb::DynamoStore;
use restart_core::clock::{ManualClock, SystemClock};
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::NightStore;
use restart_core::{Config, HandlerError};
use restarter::aws::AwsRestarter;
use restarter::{Output, PollOutput, StartOutput};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const A: &str = "111111111111";
pub const B: &str = "222222222222";
pub const REGION: &str = "eu-west-1";
pub const TAG: &str = "ecs_task_daily_restart";
pub const START: &str = "2026-11-22T00:00:00Z";

/// A tagged service with 2 tasks whose restart takes `deploy` seconds and ends `on_restart`.
pub fn svc(name: &str, on_restart: OnRestart, deploy: u64) -> ServiceSpec {
    ServiceSpec {
        tags: [(TAG.to_owned(), "2026-11-21T01:10:00Z".to_owned())].into(),
        on_restart,
        deploy_seconds: DeploySeconds::Fixed(deploy),
        desired: 2,
        ..ServiceSpec::named(name)
    }
}

/// `n` services `<prefix>-0`, `<prefix>-1`, … whose restarts complete in `deploy` seconds.
pub fn ok_services(prefix: &str, n: usize, deploy: u64) -> Vec<ServiceSpec> {
    (0..n)
        .map(|i| svc(&format!("{prefix}-{i}"), OnRestart::Complete, deploy))
        .collect()
}

/// An account with one cluster, `app`, holding `services`.
pub fn account(id: &str, services: Vec<ServiceSpec>) -> AccountSpec {
    AccountSpec {
        id: id.into(),
        regions: vec![REGION.into()],
        deny_assume_role: false,
        external_id: None,
        clusters: vec![ClusterSpec {
            name: "app".into(),
            region: Some(REGION.into()),
            tags: [("team".to_owned(), "payments".to_owned())].into(),
            services,
        }],
    }
}

/// The service `service` of `account`'s cluster `app`.
pub fn sid(account: &str, service: &str) -> ServiceId {
    ServiceId {
        account: account.parse().unwrap(),
        region: REGION.into(),
        cluster: "app".into(),
        service: service.into(),
    }
}

/// A fleet of `accounts` with their faults, on a clock that moves only with [`Night::advance`].
pub fn fleet(
    accounts: Vec<AccountSpec>,
    account_faults: BTreeMap<String, AccountFaults>,
) -> FleetSpec {
    FleetSpec {
        // Nearly frozen: simulated time moves only with `advance`.
        time_scale: 0.001,
        start_time: Some(START.parse().unwrap()),
        accounts,
        account_faults,
        ..FleetSpec::default()
    }
}

/// moto cancels a transaction whose condition failed by restoring a copy of the whole table
/// taken when the transaction began: with requests served concurrently, that undoes the writes
/// other requests made meanwhile (a claim, a recorded deployment), which DynamoDB never does.
/// This proxy hands moto one request at a time, so each request is atomic as in DynamoDB; the
/// restarter's invocations still interleave between requests as they would in AWS.
async fn serial_proxy(upstream: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, gate) = (upstream.clone(), gate.clone());
            tokio::spawn(async move { forward(client, &upstream, &gate).await });
        }
    });
    format!("http://{addr}")
}

/// Forwards each HTTP/1.1 request of `client` to `upstream` on a connection of its own, one
/// request at a time across every client (`gate`), and answers with what came back.
async fn forward(
    mut client: TcpStream,
    upstream: &str,
    gate: &tokio::sync::Mutex<()>,
) -> std::io::Result<()> {
    let mut pending = Vec::new();
    while let Some(request) = read_request(&mut client, &mut pending).await? {
        let response = {
            let _one_at_a_time = gate.lock().await;
            let mut up = TcpStream::connect(upstream).await?;
            up.write_all(&request).await?;
            let mut response = Vec::new();
            up.read_to_end(&mut response).await?;
            response
        };
        client.write_all(&response).await?;
    }
    Ok(())
}

/// The next request on `client` (head and `Content-Length` body), with `Connection: close` so
/// that upstream ends its answer by closing; `None` once the client has closed.
async fn read_request(
    client: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
    let mut length = 0;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0);
        }
        if !name.eq_ignore_ascii_case("connection") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let body_start = head_end + 4;
    while pending.len() < body_start + length {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&chunk[..read]);
    }
    let mut request = out.into_bytes();
    request.extend(pending.drain(..body_start + length).skip(body_start));
    Ok(Some(request))
}

/// Sends DynamoDB to the serial proxy in front of moto.
#[derive(Debug)]
struct DynamoAt(String);

impl aws_types::service_config::LoadServiceConfig for DynamoAt {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        (key.service_id() == "DynamoDB" && key.profile() == "endpoint_url").then(|| self.0.clone())
    }
}

/// A night over some accounts: the fleet, the table, the plan, the clocks.
pub struct Night {
    pub sim: RunningSim,
    /// DynamoDB's endpoint for the handlers once [`Night::serial`]: moto behind
    /// [`serial_proxy`]; moto itself before.
    dynamodb: Option<String>,
    table: String,
    pub clock: Arc<ManualClock>,
    pub night: NaiveDate,
    /// The planned batches, in order.
    pub batches: Vec<u32>,
    vars: Vec<(String, String)>,
}

impl Night {
    /// A night of `services` in the cluster `app` of account [`A`].
    pub async fn new(services: Vec<ServiceSpec>, vars: &[(&str, &str)]) -> Night {
        Self::new_with(services, vars, |_| {}).await
    }

    /// [`Night::new`] with the fleet changed by `change` first (more accounts, alarms,
    /// calendars).
    pub async fn new_with(
        services: Vec<ServiceSpec>,
        vars: &[(&str, &str)],
        change: impl FnOnce(&mut FleetSpec),
    ) -> Night {
        let mut spec = fleet(vec![account(A, services)], BTreeMap::new());
        change(&mut spec);
        Night::of(spec, vars).await
    }

    /// A night of `spec`'s accounts (all of them listed in `ACCOUNTS`), with `vars` over the
    /// defaults: a window of 00:00 to 01:00 UTC, polls every 120 s.
    pub async fn of(spec: FleetSpec, vars: &[(&str, &str)]) -> Night {
        let ids: Vec<String> = spec.accounts.iter().map(|a| a.id.clone()).collect();
        let sim = fleet_sim::spawn(spec).await.unwrap();
        let table = testkit::create_table(&testkit::dynamodb_client()).await;
        let accounts = ids.join(",");
        let mut all: Vec<(String, String)> = [
            ("TABLE_NAME", table.as_str()),
            ("ACCOUNTS", accounts.as_str()),
            ("REGIONS", REGION),
            ("MEMBER_ROLE_NAME", "ecs-restart-member"),
            ("WINDOW_START", "00:00"),
            ("WINDOW_END", "01:00"),
            ("TIMEZONE", "UTC"),
            ("POLL_INTERVAL_SECONDS", "120"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut night = Night {
            sim,
            dynamodb: None,
            table,
            clock: Arc::new(ManualClock::new(START.parse().unwrap())),
            night: "2026-11-22".parse().unwrap(),
            batches: Vec::new(),
            vars: all,
        }
        .plan()
        .await;
        night.batches.sort();
        night
    }

    fn config(&self) -> Config {
        Config::from_vars(self.vars.clone()).unwrap()
    }

    /// From now on the handlers reach moto through [`serial_proxy`], one request at a time:
    /// for nights whose invocations race (a transaction moto cancels would undo the others'
    /// writes). The plan before it went to moto directly. Serial requests take about twice as
    /// long, so the nights that race nothing go directly.
    pub async fn serial(mut self) -> Night {
        self.dynamodb = Some(serial_proxy(&testkit::moto_endpoint()).await);
        self
    }

    fn sdk(&self) -> aws_types::SdkConfig {
        let sdk = testkit::hub_sdk_config(&self.sim.endpoint_url());
        match &self.dynamodb {
            Some(proxy) => sdk
                .to_builder()
                .service_config(DynamoAt(proxy.clone()))
                .build(),
            None => sdk,
        }
    }

    pub fn store(&self) -> DynamoStore {
        restart_aws::dynamo_store(&self.sdk(), &self.table, 90)
    }

    /// A handler instance of its own (its own sessions and pacer), as a Lambda container is.
    pub fn restarter(&self) -> AwsRestarter {
        restarter::aws::handler_with_clock(self.config(), &self.sdk(), self.clock.clone())
    }

    async fn plan(mut self) -> Night {
        let sdk = self.sdk();
        inventory::aws::handler_with_clock(self.config(), &sdk, Arc::new(SystemClock))
            .handle(json!({ "night": "2026-11-22" }))
            .await
            .unwrap();
        let plan = batcher::aws::handler_with_clock(self.config(), &sdk, self.clock.clone())
            .handle(json!({ "night": "2026-11-22" }))
            .await
            .unwrap();
        self.batches = plan.batches.iter().map(|b| b.batch).collect();
        self
    }

    /// Moves fleet-sim's clock and ours together.
    pub fn advance(&self, seconds: i64) {
        self.sim.handle().advance_seconds(seconds as f64);
        self.clock.advance(TimeDelta::seconds(seconds));
    }

    pub async fn start(&self, r: &AwsRestarter, batch: u32) -> Result<StartOutput, HandlerError> {
        match r
            .handle(json!({ "mode": "start", "night": self.night, "batch": batch }))
            .await?
        {
            Output::Start(s) => Ok(s),
            other => panic!("start answered {other:?}"),
        }
    }

    pub async fn try_poll(&self, r: &AwsRestarter, batch: u32) -> Result<PollOutput, HandlerError> {
        match r
            .handle(json!({ "mode": "poll", "night": self.night, "batch": batch }))
            .await?
        {
            Output::Poll(p) => Ok(p),
            other => panic!("poll answered {other:?}"),
        }
    }

    pub async fn poll(&self, r: &AwsRestarter, batch: u32) -> PollOutput {
        self.try_poll(r, batch).await.unwrap()
    }

    /// Starts every batch, each of which must answer.
    pub async fn start_all(&self, r: &AwsRestarter) {
        for &b in &self.batches {
            self.start(r, b).await.unwrap();
        }
    }

    /// Polls every batch every `step` seconds until all are done; every poll must answer.
    pub async fn poll_until_done(&self, r: &AwsRestarter, step: i64) {
        for _ in 0..100 {
            self.advance(step);
            let mut done = true;
            for &b in &self.batches {
                done &= self.poll(r, b).await.done;
            }
            if done {
                return;
            }
        }
        panic!("the night did not finish");
    }

    /// Every record of the night, by service name.
    pub async fn records(&self) -> BTreeMap<String, NightRecord> {
        self.store()
            .read_night(self.night)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.id.service.clone(), r))
            .collect()
    }

    /// The calls of `action` fleet-sim saw, in every account.
    pub fn calls(&self, action: &str) -> u64 {
        self.sim.handle().stats().total_calls(action)
    }

    /// The calls of `action` fleet-sim saw in `account`.
    pub fn calls_of(&self, account: &str, action: &str) -> u64 {
        let stats = self.sim.handle().stats();
        stats
            .calls
            .get(account)
            .and_then(|m| m.get(action))
            .copied()
            .unwrap_or(0)
    }
}

/// Each record's state, by service name.
pub fn states(records: &BTreeMap<String, NightRecord>) -> BTreeMap<String, NightState> {
    records.iter().map(|(k, r)| (k.clone(), r.state)).collect()
}
