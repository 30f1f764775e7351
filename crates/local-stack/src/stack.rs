//! The local stack: moto, fleet-sim and the Lambda host on free loopback ports, the hub's
//! resources created in moto from `infra/`, and the functions configured as in production
//! (`Config::from_vars`) with the SDK pointed at moto and fleet-sim through per-service
//! endpoints. Everything stops when [`LocalStack`] is dropped, also while a panic unwinds.
//!
//! Every request of the functions is authorized under the templates' IAM ([`crate::iam`]):
//! each function signs with its own access key, which stands for its role; the Lambda host
//! checks the hub's requests before it forwards them to moto, fleet-sim the member accounts'
//! (ECS, AssumeRole, CloudWatch alarms) and the hub's Organizations, Config, SSM (the change
//! calendar) and CloudWatch (the hub's blocking alarms) requests.
//!
//! fleet-sim's hub is the stack's hub: whatever `hub_account` the fleet file names, fleet-sim
//! serves the hub's keys as [`infra::ACCOUNT`] (moto's account, the templates'
//! `AWS::AccountId`), so that the hub's change calendars and alarms are where the templates'
//! grants name them.
//!
//! The functions run with active tracing: the stack's X-Ray listener ([`crate::traces`]) stands
//! in for the daemon, and keeps every document they send for the night's traces.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use fleet_sim::{FleetSpec, RunningSim};
use restart_core::Config;
use tokio::net::TcpListener;

use crate::iam::{self, Enforcement, LocalHub};
use crate::infra::{self, Hub};
use crate::lambda_host::{Functions, LambdaHost};
use crate::moto::{self, Moto};
use crate::traces::{TraceListener, Traces, Tracing};

/// The services fleet-sim serves, as the SDK's `AWS_ENDPOINT_URL_<SERVICE>` variables name them
/// (the service id upper-cased, spaces as `_`): the routes of [`sdk_config`], of `restart-local
/// up`'s env file and of the IAM check's on-call environment.
pub const FLEET_SIM_SERVICES: [&str; 6] = [
    "ECS",
    "STS",
    "CONFIG_SERVICE",
    "ORGANIZATIONS",
    "SSM",
    "CLOUDWATCH",
];

/// `AWS_ENDPOINT_URL_<SERVICE>=sim` for each of [`FLEET_SIM_SERVICES`].
pub fn fleet_sim_endpoint_vars(sim: &str) -> Vec<(String, String)> {
    FLEET_SIM_SERVICES
        .iter()
        .map(|s| (format!("AWS_ENDPOINT_URL_{s}"), sim.to_owned()))
        .collect()
}

/// Per-service endpoints, as `AWS_ENDPOINT_URL_ECS`, `AWS_ENDPOINT_URL_DYNAMODB`, ... would set
/// them: ECS, STS, AWS Config, Organizations, SSM and CloudWatch at fleet-sim, every other
/// service at moto.
#[derive(Debug)]
struct Endpoints {
    moto: String,
    sim: String,
}

impl LoadServiceConfig for Endpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.profile() != "endpoint_url" {
            return None;
        }
        let service = key.service_id().to_ascii_uppercase().replace(' ', "_");
        Some(if FLEET_SIM_SERVICES.contains(&service.as_str()) {
            self.sim.clone()
        } else {
            self.moto.clone()
        })
    }
}

/// The hub's access key in the local stack: moto accepts any, and fleet-sim treats a key it did
/// not issue as the hub account's.
pub const HUB_ACCESS_KEY_ID: &str = "AKIDLOCALHUB00000000";
/// The secret that goes with [`HUB_ACCESS_KEY_ID`].
pub const HUB_SECRET_ACCESS_KEY: &str = "local-hub-secret";

/// The hub's SDK settings: static hub credentials (moto accepts any; fleet-sim treats keys it
/// did not issue as the hub account), the hub region, plain HTTP, per-service endpoints.
pub fn sdk_config(moto: &str, sim: &str) -> SdkConfig {
    sdk_config_as(moto, sim, HUB_ACCESS_KEY_ID)
}

/// [`sdk_config`] signing with `access_key`: the key of a principal of the templates
/// ([`crate::iam::access_key`]) makes its requests that principal's.
pub fn sdk_config_as(moto: &str, sim: &str, access_key: &str) -> SdkConfig {
    SdkConfig::builder()
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .service_config(Endpoints {
            moto: moto.to_owned(),
            sim: sim.to_owned(),
        })
        .region(Region::new(infra::REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key,
            HUB_SECRET_ACCESS_KEY,
            None,
            None,
            "local-stack",
        )))
        .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
        .build()
}

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The fleet fleet-sim serves (its clock settings as given: see `night::compress`).
    pub fleet: FleetSpec,
    /// Configuration variables (docs/design.md 3.9) on top of the defaults fitting the fleet; those
    /// naming the stack's own resources (`TABLE_NAME`, the topics) are always the stack's.
    pub vars: BTreeMap<String, String>,
    /// `infra/` (template and state machine definition).
    pub infra_dir: PathBuf,
}

/// The running stack.
#[derive(Debug)]
pub struct LocalStack {
    // Dropped in this order: the host first (no more invocations), then fleet-sim, then moto.
    pub host: LambdaHost,
    pub sim: RunningSim,
    pub moto: Moto,
    pub hub: Hub,
    pub config: Config,
    pub sdk: SdkConfig,
    pub functions: Arc<Functions>,
    /// The templates' IAM, which every request of the functions is put to.
    pub iam: Arc<Enforcement>,
    /// The X-Ray listener (the daemon's stand-in) and the host's trace headers.
    pub xray: TraceListener,
    pub tracing: Arc<Tracing>,
}

/// The configuration defaults that fit a fleet: its accounts and regions.
pub fn fleet_defaults(fleet: &FleetSpec) -> BTreeMap<String, String> {
    let world = fleet_sim::world::build(fleet, 0);
    let accounts = world.account_order.join(",");
    let mut regions: Vec<String> = Vec::new();
    for id in &world.account_order {
        for r in &world.accounts[id].regions {
            if !regions.contains(r) {
                regions.push(r.clone());
            }
        }
    }
    [
        ("ACCOUNTS", accounts),
        ("REGIONS", regions.join(",")),
        ("MEMBER_ROLE_NAME", "ecs-nightly-restart-member".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The hub's change calendars and alarms are read in the hub's region ([`infra::REGION`]): one
/// placed elsewhere is never seen, which a warning says.
fn warn_off_hub_region(fleet: &FleetSpec) {
    let calendars = fleet
        .calendars
        .iter()
        .map(|c| ("change calendar", &c.name, c.region_or(infra::REGION)));
    let alarms = fleet
        .hub_alarms
        .iter()
        .map(|a| ("hub alarm", &a.name, a.region_or(infra::REGION)));
    for (what, name, region) in calendars.chain(alarms) {
        if region != infra::REGION {
            tracing::warn!(
                "the {what} {name} is in {region}: the functions read the hub's in {}, so it is \
                 never seen",
                infra::REGION
            );
        }
    }
}

impl LocalStack {
    /// Starts moto, fleet-sim and the Lambda host, creates the hub's resources in moto and
    /// builds the functions. On any failure, what was started is stopped again.
    pub async fn start(mut options: StackOptions) -> anyhow::Result<LocalStack> {
        options.fleet.hub_account = infra::ACCOUNT.to_owned();
        warn_off_hub_region(&options.fleet);
        let venv = moto::find_venv()?;
        let xray = TraceListener::start().context("starting the X-Ray listener")?;
        let tracing = Arc::new(Tracing::of(&xray));
        // The host's port first: moto must know it (MOTO_PORT) when it starts.
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the local Lambda host's port")?;
        let host_port = listener.local_addr()?.port();
        // fleet-sim before moto: its clock (the alarms' and calendars' minutes) starts when the
        // stack does, whatever moto's start takes.
        let sim = fleet_sim::spawn(options.fleet.clone())
            .await
            .context("starting fleet-sim")?;
        let moto = Moto::start(&venv, host_port).await?;
        let sdk = sdk_config(&moto.endpoint(), &sim.endpoint_url());
        let prefix = format!("local-{}", std::process::id());
        let hub = infra::create(&sdk, &options.infra_dir, &prefix)
            .await
            .context("creating the hub's resources in moto from infra/")?;

        let mut vars = fleet_defaults(&options.fleet);
        vars.extend(options.vars.clone());
        vars.extend(hub.vars.clone());
        // A deployment always has an ExternalId (the parameter is required): without one in
        // the configuration, the functions present samconfig's, which the member roles'
        // trust requires.
        if !vars.contains_key("EXTERNAL_ID") {
            let samconfig = iam::template::samconfig_parameters(
                &options.infra_dir.join("samconfig.example.toml"),
            )?;
            if let Some(id) = samconfig.get("ExternalId") {
                vars.insert("EXTERNAL_ID".to_owned(), id.clone());
            }
        }
        let config = Config::from_vars(vars.clone()).map_err(|e| {
            anyhow::anyhow!("{e}\n(the configuration comes from the environment, as in production; see the README's table)")
        })?;
        let world = fleet_sim::world::build(&options.fleet, 0);
        let organization_id = world.organization.as_ref().map(|o| o.id.clone());
        let enforcement = Arc::new(
            Enforcement::load(&LocalHub {
                infra_dir: &options.infra_dir,
                stack_name: &prefix,
                account: infra::ACCOUNT,
                region: infra::REGION,
                table: &hub.table,
                topics: &hub.topics,
                state_machine_arn: &hub.state_machine_arn,
                vars: &vars,
                organization_id: organization_id.as_deref(),
                member_accounts: &world.account_order,
            })
            .context("reading the templates' IAM (infra/template.yaml, infra/member-role.yaml)")?,
        );
        sim.handle().set_authorizer(Some(enforcement.authorizer()));
        // The functions reach moto through the host, which authorizes and meters what AWS
        // would bill; each signs with its own role's key.
        let host_url = format!("http://127.0.0.1:{host_port}");
        let sim_url = sim.endpoint_url();
        let functions = Arc::new(Functions::with_sdk(&config, |name| {
            sdk_config_as(&host_url, &sim_url, &iam::access_key(name))
        }));
        let host = LambdaHost::serve(
            listener,
            functions.clone(),
            moto.endpoint(),
            hub.meter.clone(),
        )?
        .enforcing(enforcement.clone())
        .tracing(tracing.clone());
        tracing::info!(
            moto = %moto.endpoint(),
            fleet_sim = %sim.endpoint_url(),
            lambda_host = %host.addr,
            xray_listener = %xray.addr,
            state_machine = %hub.state_machine_arn,
            "local stack started"
        );
        Ok(LocalStack {
            host,
            sim,
            moto,
            hub,
            config,
            sdk,
            functions,
            iam: enforcement,
            xray,
            tracing,
        })
    }

    /// The documents the functions sent so far, grouped by trace, with the function segments
    /// the host recorded: once everything sent before this call has been read.
    pub async fn traces(&self) -> anyhow::Result<Traces> {
        // Read before the flush: every datagram counted was queued before the flush's mark.
        let sent = self.tracing.sent();
        self.xray.flush().await?;
        let mut traces = self.xray.traces();
        traces.sent = Some(sent);
        Ok(traces)
    }

    /// The SDK settings of a principal of the templates (`oncall`, `scheduler`, a function's
    /// name), reaching moto through the Lambda host, which authorizes its requests.
    pub fn sdk_as(&self, who: &str) -> SdkConfig {
        sdk_config_as(
            &format!("http://{}", self.host.addr),
            &self.sim.endpoint_url(),
            &iam::access_key(who),
        )
    }

    /// Stops everything and waits for it.
    pub async fn stop(self) {
        let LocalStack {
            host,
            sim,
            mut moto,
            xray,
            ..
        } = self;
        host.stop().await;
        xray.stop();
        if let Err(e) = sim.shutdown().await {
            tracing::warn!(error = %e, "fleet-sim did not stop cleanly");
        }
        moto.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(service_id: &str) -> Option<String> {
        let env = format!(
            "AWS_ENDPOINT_URL_{}",
            service_id.to_ascii_uppercase().replace(' ', "_")
        );
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .profile("endpoint_url")
            .env(&env)
            .build()
            .unwrap();
        Endpoints {
            moto: "http://moto".into(),
            sim: "http://sim".into(),
        }
        .load_config(key)
    }

    /// The service ids as the SDK crates name them (`aws-sdk-cloudwatch`: `CloudWatch`, ...).
    #[test]
    fn ecs_sts_config_organizations_ssm_and_cloudwatch_go_to_fleet_sim() {
        for id in [
            "ECS",
            "STS",
            "Config Service",
            "Organizations",
            "SSM",
            "CloudWatch",
        ] {
            assert_eq!(endpoint(id).as_deref(), Some("http://sim"), "{id}");
        }
        for id in ["DynamoDB", "SNS", "SFN", "SQS", "Lambda"] {
            assert_eq!(endpoint(id).as_deref(), Some("http://moto"), "{id}");
        }
        let vars = fleet_sim_endpoint_vars("http://sim");
        for var in ["AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_CLOUDWATCH"] {
            assert!(
                vars.contains(&(var.to_owned(), "http://sim".to_owned())),
                "{vars:?}"
            );
        }
    }
}
