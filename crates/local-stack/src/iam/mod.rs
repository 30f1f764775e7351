//! The local stack authorizes every request as AWS would, under the templates' IAM:
//!
//! - [`template`] reads `infra/template.yaml` and `infra/member-role.yaml` into roles, with
//!   the parameters a deployment of this configuration has and the local resources' names;
//! - [`engine`] evaluates a request with `iam-rs` against the caller's identity policy (and,
//!   for AssumeRole, the role's trust policy), records it, and replays records;
//! - [`wire`] reads the IAM requests off a hub request (DynamoDB, SNS, Step Functions, SQS);
//! - [`Enforcement`] ties them to the stack: each principal signs with its own access key
//!   ([`Principals`]), the Lambda host asks [`Enforcement::authorize_http`] before it forwards
//!   a request to moto, and fleet-sim asks it (as its [`fleet_sim::auth::Authorizer`]) before
//!   an ECS, Organizations or Config call and an AssumeRole into a member role.
//!
//! Parameters: those that feed the functions' environment (`REGIONS: !Ref Regions`, ...) take
//! the configuration's values, so that the policies are those of a stack deployed with the
//! configuration the functions run with; `OrganizationId` is the fleet's organization (empty
//! without one); every other parameter is `infra/samconfig.example.toml`'s, else the
//! template's default. The member template's parameters are the hub's, as docs/deploy.md
//! passes them to the StackSet.

pub mod check;
pub mod engine;
pub mod template;
pub mod wire;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use fleet_sim::auth::{Allowed, Authorization, Authorizer, Principal};
use serde_json::Value as Json;

pub use engine::{Caller, Entry, Policies, Replay, Request, Verdict};
use template::{Names, Resolver};
use wire::HubResources;

/// The session name of on-call's source identity, as an SSO sign-in sets it: every session
/// chained from the hub on-call role carries it.
pub const ONCALL_SOURCE_IDENTITY: &str = "oncall@example.com";

/// Who signs with which access key in the local stack.
#[derive(Debug, Clone)]
pub struct Principals {
    /// Access key → the caller it stands for.
    pub keys: BTreeMap<String, Caller>,
    /// Access keys whose sessions carry a source identity (on-call's, from SSO).
    pub source_identity: BTreeMap<String, String>,
    /// The state machine's role (the Lambda host's invocations).
    pub state_machine: Caller,
}

/// A 20-character access key for a principal of the local stack.
pub fn access_key(who: &str) -> String {
    let mut k = format!("AKIDLOCAL{}", who.to_ascii_uppercase().replace('-', ""));
    while k.len() < 20 {
        k.push('0');
    }
    k.truncate(20);
    k
}

/// What the templates say, resolved for one local stack.
#[derive(Debug)]
pub struct Enforcement {
    pub policies: Policies,
    pub principals: Principals,
    pub hub: HubResources,
    /// The hub template's parameters as resolved (for the report).
    pub hub_params: BTreeMap<String, String>,
    /// The hub's outputs (`OnCallRoleArn`, ...).
    pub outputs: BTreeMap<String, String>,
    /// Role ARNs by logical id, in the hub.
    pub hub_roles: BTreeMap<String, String>,
    /// Names of the hub's resources (`Ref`s) and attributes, for requests the check builds.
    pub names: Names,
    /// The functions' configuration the parameters were resolved with.
    pub vars: BTreeMap<String, String>,
    /// What is running now (`night`, `restartctl status`, ...): each request records it.
    phase: std::sync::Mutex<String>,
}

/// What the local stack created, as the templates name it.
#[derive(Debug, Clone)]
pub struct LocalHub<'a> {
    pub infra_dir: &'a Path,
    pub stack_name: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub table: &'a str,
    /// Topic ARNs by logical id.
    pub topics: &'a BTreeMap<String, String>,
    pub state_machine_arn: &'a str,
    /// The functions' configuration variables (`REGIONS`, `EXTERNAL_ID`, ...).
    pub vars: &'a BTreeMap<String, String>,
    /// The fleet's organization id, if it has one.
    pub organization_id: Option<&'a str>,
    /// The fleet's accounts (each gets the member template's roles).
    pub member_accounts: &'a [String],
}

impl Enforcement {
    /// Reads both templates for `local`.
    pub fn load(local: &LocalHub<'_>) -> anyhow::Result<Enforcement> {
        let template = local.infra_dir.join("template.yaml");
        let samconfig =
            template::samconfig_parameters(&local.infra_dir.join("samconfig.example.toml"))?;
        let text = std::fs::read_to_string(&template)
            .with_context(|| format!("reading {}", template.display()))?;
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
        // Parameters that feed the functions' environment take the configuration's values.
        let mut given = samconfig.clone();
        for (var, v) in doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(serde_yaml_ng::Value::as_mapping)
            .into_iter()
            .flatten()
        {
            if let (Some(var), serde_yaml_ng::Value::Tagged(t)) = (var.as_str(), v)
                && t.tag == "!Ref"
                && let Some(param) = t.value.as_str()
                && let Some(value) = local.vars.get(var)
            {
                given.insert(param.to_owned(), value.clone());
            }
        }
        given.insert(
            "OrganizationId".to_owned(),
            local.organization_id.unwrap_or_default().to_owned(),
        );

        // Names: first what needs no resolution, then the properties that name resources
        // (log groups, the dashboard, role names) resolved with those.
        let mut names = Names {
            account: local.account.to_owned(),
            region: local.region.to_owned(),
            stack_name: local.stack_name.to_owned(),
            ..Names::default()
        };
        let first = Resolver::load(&template, &given, names.clone())?;
        let (acct, region, stack) = (local.account, local.region, local.stack_name);
        for (id, _) in first.resources() {
            let ty = first.type_of(&id).unwrap_or_default().to_owned();
            let generic = format!("{stack}-{id}");
            let (r, arn): (String, Option<String>) = match ty.as_str() {
                "AWS::DynamoDB::Table" => (
                    local.table.to_owned(),
                    Some(format!(
                        "arn:aws:dynamodb:{region}:{acct}:table/{}",
                        local.table
                    )),
                ),
                "AWS::SNS::Topic" => {
                    let arn = local
                        .topics
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| format!("arn:aws:sns:{region}:{acct}:{generic}"));
                    names.atts.insert(
                        format!("{id}.TopicName"),
                        arn.rsplit(':').next().unwrap_or_default().to_owned(),
                    );
                    (arn, None)
                }
                "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine" => {
                    names.atts.insert(
                        format!("{id}.Name"),
                        local
                            .state_machine_arn
                            .rsplit(':')
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                    (local.state_machine_arn.to_owned(), None)
                }
                "AWS::KMS::Key" => {
                    let key_id = "00000000-0000-4000-8000-00000000cafe".to_owned();
                    let arn = format!("arn:aws:kms:{region}:{acct}:key/{key_id}");
                    (key_id, Some(arn))
                }
                "AWS::Logs::LogGroup" => {
                    let name = first
                        .property(&id, "LogGroupName")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or(generic);
                    let arn = format!("arn:aws:logs:{region}:{acct}:log-group:{name}:*");
                    (name, Some(arn))
                }
                "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                    let code = first
                        .property(&id, "CodeUri")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    let name = code
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or(&generic)
                        .to_owned();
                    let arn = format!("arn:aws:lambda:{region}:{acct}:function:{name}");
                    (name, Some(arn))
                }
                "AWS::IAM::Role" => {
                    let name = first
                        .property(&id, "RoleName")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or(generic);
                    let arn = format!("arn:aws:iam::{acct}:role/{name}");
                    (name, Some(arn))
                }
                "AWS::SQS::Queue" => {
                    names
                        .atts
                        .insert(format!("{id}.QueueName"), generic.clone());
                    (
                        format!("https://sqs.{region}.amazonaws.com/{acct}/{generic}"),
                        Some(format!("arn:aws:sqs:{region}:{acct}:{generic}")),
                    )
                }
                "AWS::CloudWatch::Dashboard" => {
                    let name = first
                        .property(&id, "DashboardName")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or(generic);
                    (name, None)
                }
                "AWS::CloudWatch::Alarm" => {
                    let name = first
                        .property(&id, "AlarmName")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or(generic);
                    let arn = format!("arn:aws:cloudwatch:{region}:{acct}:alarm:{name}");
                    (name, Some(arn))
                }
                _ => (generic, None),
            };
            names.refs.insert(id.clone(), r);
            if let Some(arn) = arn {
                names.atts.insert(format!("{id}.Arn"), arn);
            }
        }
        let hub = Resolver::load(&template, &given, names.clone())?;
        let mut roles = hub.roles()?;
        let hub_roles: BTreeMap<String, String> = roles
            .iter()
            .map(|r| (r.logical_id.clone(), r.arn.clone()))
            .collect();
        let outputs: BTreeMap<String, String> = hub
            .outputs()?
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    match v {
                        template::Param::One(s) => s,
                        template::Param::List(l) => l.join(","),
                    },
                )
            })
            .collect();
        let hub_params: BTreeMap<String, String> = hub
            .params
            .keys()
            .filter_map(|k| Some((k.clone(), hub.param_text(k)?)))
            .collect();

        // The encrypted resources and their key.
        let mut encryption = BTreeMap::new();
        for (id, _) in hub.resources() {
            let key = match hub.type_of(&id) {
                Some("AWS::DynamoDB::Table") => hub
                    .property(&id, "SSESpecification")
                    .and_then(|s| s.get("KMSMasterKeyId").cloned()),
                Some("AWS::SNS::Topic" | "AWS::SQS::Queue") => hub.property(&id, "KmsMasterKeyId"),
                _ => None,
            };
            let Some(key) = key.and_then(|k| k.as_str().map(str::to_owned)) else {
                continue;
            };
            // `!Ref Key` is the key's id; `!GetAtt Key.Arn` its ARN: either names the key.
            let key_arn = names
                .refs
                .iter()
                .find(|(_, r)| **r == key)
                .and_then(|(kid, _)| names.atts.get(&format!("{kid}.Arn")).cloned())
                .unwrap_or(key);
            let resource = match hub.type_of(&id) {
                Some("AWS::DynamoDB::Table") => names.refs[&id].clone(),
                _ => names
                    .atts
                    .get(&format!("{id}.Arn"))
                    .cloned()
                    .unwrap_or_else(|| names.refs[&id].clone()),
            };
            encryption.insert(resource, key_arn);
        }
        let partition_key = hub
            .property(
                hub.resources()
                    .iter()
                    .find(|(id, _)| hub.type_of(id) == Some("AWS::DynamoDB::Table"))
                    .map_or("", |(id, _)| id),
                "KeySchema",
            )
            .and_then(|k| {
                k.as_array()?
                    .iter()
                    .find(|e| e.get("KeyType").and_then(Json::as_str) == Some("HASH"))?
                    .get("AttributeName")?
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "pk".to_owned());

        // The member template, once per member account, with the hub's values.
        let member_path = local.infra_dir.join("member-role.yaml");
        let hub_param = |k: &str| hub.param_text(k).unwrap_or_default();
        let member_given: BTreeMap<String, String> = [
            ("RoleName", hub_param("MemberRoleName")),
            (
                "TrustedRoleArns",
                outputs
                    .get("MemberTrustedRoleArns")
                    .cloned()
                    .unwrap_or_default(),
            ),
            ("ExternalId", hub_param("ExternalId")),
            ("OnCallRoleName", hub_param("MemberOnCallRoleName")),
            (
                "OnCallTrustedRoleArn",
                outputs.get("OnCallRoleArn").cloned().unwrap_or_default(),
            ),
            ("Regions", hub_param("Regions")),
            ("TagKey", hub_param("TagKey")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for account in local.member_accounts {
            let mut m = Names {
                account: account.clone(),
                region: local.region.to_owned(),
                stack_name: "StackSet-ecs-nightly-restart-member".to_owned(),
                ..Names::default()
            };
            let first = Resolver::load(&member_path, &member_given, m.clone())?;
            for (id, _) in first.resources() {
                if first.type_of(&id) == Some("AWS::IAM::Role") {
                    let name = first
                        .property(&id, "RoleName")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| id.clone());
                    m.refs.insert(id.clone(), name.clone());
                    m.atts.insert(
                        format!("{id}.Arn"),
                        format!("arn:aws:iam::{account}:role/{name}"),
                    );
                }
            }
            roles.extend(Resolver::load(&member_path, &member_given, m)?.roles()?);
        }

        // Principals: a key per function (its Role), on-call, the scheduler; the state machine
        // invokes.
        let mut principals = BTreeMap::new();
        let mut state_machine = None;
        for (id, _) in hub.resources() {
            let role = match hub.type_of(&id) {
                Some(
                    "AWS::Serverless::Function"
                    | "AWS::Lambda::Function"
                    | "AWS::Serverless::StateMachine",
                ) => hub
                    .property(&id, "Role")
                    .and_then(|r| r.as_str().map(str::to_owned)),
                _ => None,
            };
            let Some(role_arn) = role else { continue };
            let session = names.refs[&id]
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            let caller = Caller {
                role_arn,
                session: session.clone(),
                ours: true,
            };
            if hub.type_of(&id) == Some("AWS::Serverless::StateMachine") {
                state_machine = Some(caller);
            } else {
                principals.insert(access_key(&session), caller);
            }
        }
        let role_of = |id: &str| {
            hub_roles
                .get(id)
                .cloned()
                .with_context(|| format!("the hub template has no {id}"))
        };
        principals.insert(
            access_key("oncall"),
            Caller {
                role_arn: role_of("OnCallRole")?,
                session: "oncall".into(),
                ours: true,
            },
        );
        principals.insert(
            access_key("scheduler"),
            Caller {
                role_arn: role_of("SchedulerRole")?,
                session: "scheduler".into(),
                ours: true,
            },
        );
        let source_identity =
            BTreeMap::from([(access_key("oncall"), ONCALL_SOURCE_IDENTITY.to_owned())]);
        Ok(Enforcement {
            policies: Policies::new(roles)?,
            principals: Principals {
                keys: principals,
                source_identity,
                state_machine: state_machine
                    .context("the hub template's state machine has no Role")?,
            },
            hub: HubResources {
                account: local.account.to_owned(),
                region: local.region.to_owned(),
                partition_key,
                keys: encryption,
            },
            hub_params,
            outputs,
            hub_roles,
            names,
            vars: local.vars.clone(),
            phase: std::sync::Mutex::new("night".to_owned()),
        })
    }

    /// Names what runs from now on, for the requests' records.
    pub fn set_phase(&self, phase: &str) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = phase.to_owned();
    }

    /// What runs now.
    pub fn phase(&self) -> String {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The caller of an access key, if it is one of the templates' principals.
    pub fn caller(&self, access_key: &str) -> Option<&Caller> {
        self.principals.keys.get(access_key)
    }

    /// Authorizes a hub request signed with `access_key` (`target` its `X-Amz-Target`). `None`
    /// when the key is no principal of the templates (the stack's own administration, which
    /// IAM does not restrict here).
    pub fn authorize_http(
        &self,
        access_key: &str,
        target: Option<&str>,
        body: &[u8],
    ) -> Option<Verdict> {
        let origin = self.phase();
        let caller = self.caller(access_key)?.clone();
        let requests = match self.hub.map(target, body) {
            Ok(r) => r,
            Err(why) => {
                return Some(Verdict::Denied(format!(
                    "User: {} made a request the local IAM check cannot read: {why}",
                    caller.session_arn()
                )));
            }
        };
        for request in requests {
            let verdict = self.policies.authorize(Entry {
                caller: caller.clone(),
                request,
                trust_of: None,
                origin: origin.clone(),
                sent: true,
            });
            if verdict != Verdict::Allowed {
                return Some(verdict);
            }
        }
        Some(Verdict::Allowed)
    }

    /// Records (and decides) a request that is evaluated without being sent.
    pub fn evaluate_only(
        &self,
        caller: &Caller,
        request: Request,
        trust_of: Option<String>,
    ) -> Verdict {
        self.policies.authorize(Entry {
            caller: caller.clone(),
            request,
            trust_of,
            origin: self.phase(),
            sent: false,
        })
    }

    /// The fleet-sim side: an [`Authorizer`] over these policies.
    pub fn authorizer(self: &Arc<Self>) -> Arc<dyn Authorizer> {
        Arc::new(SimAuthorizer(self.clone()))
    }
}

/// fleet-sim's requests (ECS, Organizations, Config, STS AssumeRole) put to the templates.
#[derive(Debug)]
struct SimAuthorizer(Arc<Enforcement>);

impl Authorizer for SimAuthorizer {
    fn authorize(&self, request: &Authorization) -> Result<Allowed, String> {
        let e = &self.0;
        let (caller, source_identity) = match &request.principal {
            Principal::Hub { access_key } => match e.caller(access_key) {
                Some(c) => (
                    c.clone(),
                    e.principals.source_identity.get(access_key).cloned(),
                ),
                None => return Ok(Allowed::default()),
            },
            // A session of a role that is none of the templates' was opened by the account's
            // administrator (a test's probe): like the administrator's key, not restricted
            // (a role of the templates can only enter roles whose trust the templates write).
            Principal::Session(s) if e.policies.role(&s.role_arn).is_none() => {
                return Ok(Allowed::default());
            }
            Principal::Session(s) => (
                Caller {
                    role_arn: s.role_arn.clone(),
                    session: s.session_name.clone(),
                    ours: true,
                },
                s.source_identity.clone(),
            ),
        };
        let origin = e.phase();
        let mut requests = vec![Request {
            action: request.action.clone(),
            resource: request.resource.clone(),
            context: request.context.clone(),
        }];
        let trust_of = request.assume.as_ref().map(|t| t.role_arn.clone());
        // A session with a source identity passes it on when it assumes a role: STS then also
        // asks for sts:SetSourceIdentity; session tags ask for sts:TagSession.
        let passed_on = source_identity.clone().or_else(|| {
            request
                .context
                .get("sts:SourceIdentity")
                .and_then(|v| v.first().cloned())
        });
        if trust_of.is_some() {
            if let Some(si) = &passed_on {
                let mut r = requests[0].clone();
                r.action = "sts:SetSourceIdentity".to_owned();
                r.context
                    .insert("sts:SourceIdentity".to_owned(), vec![si.clone()]);
                requests[0]
                    .context
                    .insert("sts:SourceIdentity".to_owned(), vec![si.clone()]);
                requests.push(r);
            }
            if request.context.contains_key("aws:TagKeys") {
                let mut r = requests[0].clone();
                r.action = "sts:TagSession".to_owned();
                requests.push(r);
            }
        }
        for r in requests {
            let entry = Entry {
                caller: caller.clone(),
                request: r,
                trust_of: trust_of.clone(),
                origin: origin.clone(),
                sent: true,
            };
            if let Verdict::Denied(message) = e.policies.authorize(entry) {
                return Err(message);
            }
        }
        Ok(Allowed {
            source_identity: passed_on,
        })
    }
}
