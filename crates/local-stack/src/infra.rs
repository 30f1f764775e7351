//! The hub's resources created in moto from the files in `infra/`: the table (keys, indexes and
//! TTL of `template.yaml`'s `AWS::DynamoDB::Table`), the SNS topics (its `AWS::SNS::Topic`s),
//! and the state machine (its `DefinitionUri`, with `DefinitionSubstitutions` resolved to the
//! local functions' ARNs). The functions' environment variables that name these resources are
//! found the same way (`Globals.Function.Environment.Variables`: `TABLE_NAME: !Ref Table`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde_yaml_ng::Value;

use crate::bill;

/// moto's default account.
pub const ACCOUNT: &str = "123456789012";
/// The hub's region in the local stack.
pub const REGION: &str = "us-east-1";

/// `$INFRA_DIR`, else the nearest `infra/` above the current directory that holds
/// `template.yaml` (a checkout of this repository). Nothing points into the build tree, so an
/// installed `restart-local` works from any checkout.
pub fn infra_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("INFRA_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    cwd.ancestors()
        .map(|d| d.join("infra"))
        .find(|d| d.join("template.yaml").is_file())
        .with_context(|| {
            format!(
                "no infra/template.yaml in {} or above it: run from a checkout of the \
                 repository, or set INFRA_DIR to its infra/ folder",
                cwd.display()
            )
        })
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Hub {
    pub table: String,
    /// Environment variables naming the created resources (`TABLE_NAME`, `OWNER_TOPIC_ARN`, ...).
    pub vars: BTreeMap<String, String>,
    pub topics: BTreeMap<String, String>,
    pub state_machine_arn: String,
    /// A meter of the table's requests, fitted to its keys and index ([`bill::Meter`]).
    pub meter: bill::Meter,
}

/// A meter for the table `props` define: its keys and its (first) index.
fn table_meter(props: &Value) -> anyhow::Result<bill::Meter> {
    fn key_names(v: Option<&Value>) -> anyhow::Result<Vec<String>> {
        v.and_then(Value::as_sequence)
            .context("no KeySchema")?
            .iter()
            .map(|k| str_at(k, "AttributeName").map(str::to_owned))
            .collect()
    }
    let keys = key_names(props.get("KeySchema"))?;
    let [pk, sk] = keys.as_slice() else {
        anyhow::bail!("the table's KeySchema is not a partition and a sort key: {keys:?}");
    };
    let index = props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .and_then(|g| g.first())
        .map(|g| {
            anyhow::Ok(bill::IndexShape {
                keys: key_names(g.get("KeySchema"))?,
                keys_only: g
                    .get("Projection")
                    .and_then(|p| p.get("ProjectionType"))
                    .and_then(Value::as_str)
                    == Some("KEYS_ONLY"),
            })
        })
        .transpose()?;
    Ok(bill::Meter::new(pk, sk, index))
}

/// The SAM template, parsed (CloudFormation's short tags such as `!Ref` kept as tagged values).
#[derive(Debug)]
pub struct Template {
    dir: PathBuf,
    resources: serde_yaml_ng::Mapping,
    globals_env: serde_yaml_ng::Mapping,
    globals_memory_mb: Option<u64>,
}

fn tag_target<'a>(v: &'a Value, tag: &str) -> Option<&'a str> {
    match v {
        Value::Tagged(t) if t.tag == tag => t.value.as_str(),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("`{key}` is missing or not a string"))
}

impl Template {
    pub fn load(dir: &Path) -> anyhow::Result<Template> {
        let path = dir.join("template.yaml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .with_context(|| format!("{} has no Resources", path.display()))?;
        let globals_env = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let globals_memory_mb = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("MemorySize"))
            .and_then(Value::as_u64);
        Ok(Template {
            dir: dir.to_owned(),
            resources,
            globals_env,
            globals_memory_mb,
        })
    }

    /// Each function's memory in MB (its own `MemorySize`, else the Globals'), by function name.
    pub fn memory_mb(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        self.of_type("AWS::Serverless::Function")
            .into_iter()
            .map(|(id, r)| {
                let mb = r
                    .get("Properties")
                    .and_then(|p| p.get("MemorySize"))
                    .and_then(Value::as_u64)
                    .or(self.globals_memory_mb)
                    .with_context(|| format!("{id} has no MemorySize, nor have the Globals"))?;
                Ok((self.function_name(id)?, mb))
            })
            .collect()
    }

    fn of_type(&self, ty: &str) -> Vec<(&str, &Value)> {
        self.resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
            .filter_map(|(k, r)| Some((k.as_str()?, r)))
            .collect()
    }

    fn one_of_type(&self, ty: &str) -> anyhow::Result<(&str, &Value)> {
        match self.of_type(ty).as_slice() {
            [one] => Ok(*one),
            other => bail!(
                "infra/template.yaml has {} resources of type {ty}; the local stack expects one",
                other.len()
            ),
        }
    }

    /// The environment variable that holds `!Ref logical_id`.
    fn var_for(&self, logical_id: &str) -> Option<String> {
        self.globals_env
            .iter()
            .find(|(_, v)| tag_target(v, "!Ref") == Some(logical_id))
            .and_then(|(k, _)| k.as_str().map(str::to_owned))
    }

    /// A function's local name: the last part of its `CodeUri` (`../crates/inventory`).
    fn function_name(&self, logical_id: &str) -> anyhow::Result<String> {
        let code_uri = self
            .resources
            .get(logical_id)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("CodeUri"))
            .and_then(Value::as_str)
            .with_context(|| format!("{logical_id} has no CodeUri in infra/template.yaml"))?;
        code_uri
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .with_context(|| format!("{logical_id}'s CodeUri {code_uri:?} names no function"))
    }
}

/// The table's definition, as a CreateTable request.
fn create_table_request(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    props: &Value,
) -> anyhow::Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder> {
    fn keys(v: &Value) -> anyhow::Result<Vec<KeySchemaElement>> {
        v.as_sequence()
            .context("KeySchema is not a list")?
            .iter()
            .map(|k| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(str_at(k, "AttributeName")?)
                    .key_type(KeyType::from(str_at(k, "KeyType")?))
                    .build()?)
            })
            .collect()
    }
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(props.get("KeySchema").context("no KeySchema")?)?));
    for a in props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .context("no AttributeDefinitions")?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_at(a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_at(a, "AttributeType")?))
                .build()?,
        );
    }
    for g in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let projection = g
            .get("Projection")
            .and_then(|p| p.get("ProjectionType"))
            .and_then(Value::as_str)
            .unwrap_or("ALL");
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_at(g, "IndexName")?)
                .set_key_schema(Some(keys(
                    g.get("KeySchema").context("an index has no KeySchema")?,
                )?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(projection))
                        .build(),
                )
                .build()?,
        );
    }
    Ok(req)
}

/// Creates the hub's table, topics and state machine in moto (through `sdk`, whose DynamoDB,
/// SNS and Step Functions endpoints are moto). `function_arn(name)` is a local function's ARN.
pub async fn create(sdk: &aws_types::SdkConfig, dir: &Path, prefix: &str) -> anyhow::Result<Hub> {
    let template = Template::load(dir)?;
    let mut vars = BTreeMap::new();

    // The table.
    let (table_id, table_res) = template.one_of_type("AWS::DynamoDB::Table")?;
    let table = format!("{prefix}-{}", table_id.to_lowercase());
    let props = table_res
        .get("Properties")
        .context("the table has no Properties")?;
    let meter = table_meter(props)?;
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    create_table_request(&ddb, &table, props)?
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "creating table {table} in moto: {}",
                DisplayErrorContext(&e)
            )
        })?;
    if let Some(ttl) = props
        .get("TimeToLiveSpecification")
        .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
    {
        ddb.update_time_to_live()
            .table_name(&table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(str_at(ttl, "AttributeName")?)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("turning on TTL of {table}: {}", DisplayErrorContext(&e))
            })?;
    }
    if let Some(var) = template.var_for(table_id) {
        vars.insert(var, table.clone());
    }

    // The topics.
    let sns = aws_sdk_sns::Client::new(sdk);
    let mut topics = BTreeMap::new();
    for (id, _) in template.of_type("AWS::SNS::Topic") {
        let name = format!("{prefix}-{id}");
        let arn = sns
            .create_topic()
            .name(&name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("creating topic {name} in moto: {}", DisplayErrorContext(&e))
            })?
            .topic_arn
            .with_context(|| format!("moto created topic {name} without an ARN"))?;
        if let Some(var) = template.var_for(id) {
            vars.insert(var, arn.clone());
        }
        topics.insert(id.to_owned(), arn);
    }

    // The state machine: the same definition file, its ${...} substituted.
    let (sm_id, sm) = template.one_of_type("AWS::Serverless::StateMachine")?;
    let sm_props = sm
        .get("Properties")
        .context("the state machine has no Properties")?;
    let uri = str_at(sm_props, "DefinitionUri")?;
    let path = template.dir.join(uri);
    let mut definition = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the state machine definition {}", path.display()))?;
    if let Some(subs) = sm_props
        .get("DefinitionSubstitutions")
        .and_then(Value::as_mapping)
    {
        for (k, v) in subs {
            let key = k.as_str().context("a substitution key is not a string")?;
            let target = tag_target(v, "!GetAtt")
                .and_then(|t| t.strip_suffix(".Arn"))
                .with_context(|| {
                    format!(
                        "substitution {key}: the local stack knows only `!GetAtt <Function>.Arn`"
                    )
                })?;
            let name = template.function_name(target)?;
            let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}");
            definition = definition.replace(&format!("${{{key}}}"), &arn);
        }
    }
    if let Some(at) = definition.find("${") {
        let rest: String = definition[at..].chars().take(40).collect();
        bail!(
            "{} still holds a substitution after those of infra/template.yaml: {rest}...",
            path.display()
        );
    }
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let name = format!("{prefix}-{}", sm_id.to_lowercase());
    let state_machine_arn = sfn
        .create_state_machine()
        .name(&name)
        .definition(definition)
        .role_arn(format!(
            "arn:aws:iam::{ACCOUNT}:role/{prefix}-state-machine"
        ))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "creating state machine {name} in moto: {}",
                DisplayErrorContext(&e)
            )
        })?
        .state_machine_arn;
    Ok(Hub {
        table,
        vars,
        topics,
        state_machine_arn,
        meter,
    })
}
