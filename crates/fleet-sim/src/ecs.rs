//! Amazon ECS over awsJson1_1 (`X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Action>`).

use serde::{Deserialize, Serialize};

use crate::error::{AwsError, parse_body};
use crate::rng::hash_parts;
use crate::spec::{Controller, LaunchType, OnRestart, Scheduling};
use crate::world::{
    Cluster, Deployment, Millis, Region, RestartRefused, Service, ServiceStatus, World,
    parse_task_id, task_id,
};

/// The `X-Amz-Target` prefix of ECS.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The actions the simulator implements.
pub const ACTIONS: &[&str] = &[
    "ListClusters",
    "DescribeClusters",
    "ListServices",
    "DescribeServices",
    "UpdateService",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "ListTasks",
    "DescribeTasks",
    "DescribeTaskDefinition",
];

/// Who calls, where and when.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The account the call acts in.
    pub account: &'a str,
    /// The region of the call.
    pub region: &'a str,
    /// Simulated now.
    pub now: Millis,
}

/// What a successful call did besides answering (for statistics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// A forced deployment was started.
    pub restarted: bool,
}

/// Handles one ECS action; returns the JSON body.
pub fn handle(
    world: &mut World,
    ctx: Ctx<'_>,
    action: &str,
    body: &[u8],
) -> Result<(String, Effects), AwsError> {
    let mut effects = Effects::default();
    let out = match action {
        "ListClusters" => to_json(&list_clusters(world, ctx, parse_body(body)?)?),
        "DescribeClusters" => to_json(&describe_clusters(world, ctx, parse_body(body)?)?),
        "ListServices" => to_json(&list_services(world, ctx, parse_body(body)?)?),
        "DescribeServices" => to_json(&describe_services(world, ctx, parse_body(body)?)?),
        "UpdateService" => {
            let (out, restarted) = update_service(world, ctx, parse_body(body)?)?;
            effects.restarted = restarted;
            to_json(&out)
        }
        "TagResource" => to_json(&tag_resource(world, ctx, parse_body(body)?)?),
        "UntagResource" => to_json(&untag_resource(world, ctx, parse_body(body)?)?),
        "ListTagsForResource" => to_json(&list_tags(world, ctx, parse_body(body)?)?),
        "ListTasks" => to_json(&list_tasks(world, ctx, parse_body(body)?)?),
        "DescribeTasks" => to_json(&describe_tasks(world, ctx, parse_body(body)?)?),
        "DescribeTaskDefinition" => {
            to_json(&describe_task_definition(world, ctx, parse_body(body)?)?)
        }
        other => {
            return Err(AwsError::bad(
                "UnknownOperationException",
                format!("Operation {other} is not supported by fleet-sim."),
            ));
        }
    };
    Ok((out, effects))
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned())
}

fn secs(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Wire shapes.

/// `Tag` (lowercase keys in ECS).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TagWire {
    /// Key.
    pub key: Option<String>,
    /// Value.
    pub value: Option<String>,
}

fn tags_wire(tags: &[(String, String)]) -> Vec<TagWire> {
    tags.iter()
        .map(|(k, v)| TagWire {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PageRequest {
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListClustersResponse {
    cluster_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeClustersRequest {
    clusters: Option<Vec<String>>,
    include: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterWire {
    cluster_arn: String,
    cluster_name: String,
    status: &'static str,
    registered_container_instances_count: u32,
    running_tasks_count: u32,
    pending_tasks_count: u32,
    active_services_count: u32,
    statistics: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<TagWire>>,
    settings: Vec<NameValue>,
    capacity_providers: Vec<&'static str>,
    default_capacity_provider_strategy: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct NameValue {
    name: &'static str,
    value: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    arn: String,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DescribeClustersResponse {
    clusters: Vec<ClusterWire>,
    failures: Vec<Failure>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListServicesRequest {
    cluster: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    launch_type: Option<String>,
    scheduling_strategy: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListServicesResponse {
    service_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeServicesRequest {
    cluster: Option<String>,
    services: Option<Vec<String>>,
    include: Option<Vec<String>>,
}

/// `Service` as DescribeServices and UpdateService return it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceWire {
    service_arn: String,
    service_name: String,
    cluster_arn: String,
    load_balancers: Vec<serde_json::Value>,
    service_registries: Vec<serde_json::Value>,
    status: &'static str,
    desired_count: u32,
    running_count: u32,
    pending_count: u32,
    launch_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_version: Option<&'static str>,
    task_definition: String,
    deployment_configuration: DeploymentConfiguration,
    deployments: Vec<DeploymentWire>,
    events: Vec<EventWire>,
    created_at: f64,
    placement_constraints: Vec<serde_json::Value>,
    placement_strategy: Vec<serde_json::Value>,
    scheduling_strategy: &'static str,
    deployment_controller: DeploymentController,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<TagWire>>,
    created_by: String,
    enable_ecs_managed_tags: bool,
    propagate_tags: &'static str,
    enable_execute_command: bool,
}

/// `deploymentConfiguration`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    deployment_circuit_breaker: CircuitBreaker,
    maximum_percent: u32,
    minimum_healthy_percent: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    alarms: Option<DeploymentAlarms>,
}

/// `deploymentConfiguration.alarms`: the CloudWatch alarms that watch a deployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentAlarms {
    alarm_names: Vec<String>,
    enable: bool,
    rollback: bool,
}

/// `deploymentCircuitBreaker`.
#[derive(Debug, Serialize)]
pub struct CircuitBreaker {
    enable: bool,
    rollback: bool,
}

/// `deploymentController`.
#[derive(Debug, Serialize)]
pub struct DeploymentController {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `Deployment`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentWire {
    id: String,
    status: &'static str,
    task_definition: String,
    desired_count: u32,
    pending_count: u32,
    running_count: u32,
    failed_tasks: u32,
    created_at: f64,
    updated_at: f64,
    launch_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_version: Option<&'static str>,
    rollout_state: &'static str,
    rollout_state_reason: String,
}

/// `ServiceEvent`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventWire {
    id: String,
    created_at: f64,
    message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DescribeServicesResponse {
    services: Vec<ServiceWire>,
    failures: Vec<Failure>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UpdateServiceRequest {
    cluster: Option<String>,
    service: Option<String>,
    desired_count: Option<i64>,
    task_definition: Option<String>,
    force_new_deployment: Option<bool>,
    enable_execute_command: Option<bool>,
}

#[derive(Debug, Serialize)]
struct UpdateServiceResponse {
    service: ServiceWire,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TagResourceRequest {
    resource_arn: Option<String>,
    tags: Option<Vec<TagWire>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UntagResourceRequest {
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListTagsRequest {
    resource_arn: Option<String>,
}

#[derive(Debug, Serialize)]
struct Empty {}

#[derive(Debug, Serialize)]
struct ListTagsResponse {
    tags: Vec<TagWire>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListTasksRequest {
    cluster: Option<String>,
    service_name: Option<String>,
    desired_status: Option<String>,
    launch_type: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListTasksResponse {
    task_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeTasksRequest {
    cluster: Option<String>,
    tasks: Option<Vec<String>>,
    include: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskWire {
    task_arn: String,
    cluster_arn: String,
    task_definition_arn: String,
    last_status: &'static str,
    desired_status: &'static str,
    health_status: &'static str,
    group: String,
    started_by: String,
    launch_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_version: Option<&'static str>,
    availability_zone: String,
    connectivity: &'static str,
    enable_execute_command: bool,
    created_at: f64,
    started_at: f64,
    version: u32,
    cpu: &'static str,
    memory: &'static str,
    containers: Vec<ContainerWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<TagWire>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerWire {
    container_arn: String,
    task_arn: String,
    name: String,
    image: String,
    runtime_id: String,
    last_status: &'static str,
    health_status: &'static str,
    managed_agents: Vec<ManagedAgent>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ManagedAgent {
    name: &'static str,
    last_status: &'static str,
    last_started_at: f64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeTaskDefinitionRequest {
    task_definition: Option<String>,
    include: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DescribeTaskDefinitionResponse {
    task_definition: TaskDefinitionWire,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<TagWire>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskDefinitionWire {
    task_definition_arn: String,
    family: String,
    revision: u32,
    status: &'static str,
    network_mode: &'static str,
    requires_compatibilities: Vec<&'static str>,
    cpu: &'static str,
    memory: &'static str,
    container_definitions: Vec<ContainerDefinitionWire>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerDefinitionWire {
    name: String,
    image: String,
    essential: bool,
    readonly_root_filesystem: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DescribeTasksResponse {
    tasks: Vec<TaskWire>,
    failures: Vec<Failure>,
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn launch_type_str(l: LaunchType) -> &'static str {
    match l {
        LaunchType::Fargate => "FARGATE",
        LaunchType::Ec2 => "EC2",
        LaunchType::External => "EXTERNAL",
    }
}

fn platform_version(l: LaunchType) -> Option<&'static str> {
    (l == LaunchType::Fargate).then_some("1.4.0")
}

fn scheduling_str(s: Scheduling) -> &'static str {
    match s {
        Scheduling::Replica => "REPLICA",
        Scheduling::Daemon => "DAEMON",
    }
}

fn controller_str(c: Controller) -> &'static str {
    match c {
        Controller::Ecs => "ECS",
        Controller::CodeDeploy => "CODE_DEPLOY",
        Controller::External => "EXTERNAL",
    }
}

/// A page token: hex of `<scope hash>:<index>`, so a token from another listing is refused.
fn encode_token(scope: u64, index: usize) -> String {
    format!("{scope:016x}{index:x}")
}

fn decode_token(token: Option<&str>, scope: u64) -> Result<usize, AwsError> {
    let Some(t) = token else { return Ok(0) };
    let bad = || AwsError::invalid_parameter("Invalid nextToken.");
    let (s, i) = (t.get(..16).ok_or_else(bad)?, t.get(16..).ok_or_else(bad)?);
    if u64::from_str_radix(s, 16).map_err(|_| bad())? != scope || i.is_empty() {
        return Err(bad());
    }
    usize::from_str_radix(i, 16).map_err(|_| bad())
}

fn page_size(max: Option<i64>, default: usize) -> Result<usize, AwsError> {
    match max {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) => Err(AwsError::invalid_parameter(format!(
            "maxResults must be between 1 and 100, got {n}."
        ))),
    }
}

fn region<'w>(world: &'w mut World, ctx: Ctx<'_>) -> Option<&'w mut Region> {
    world
        .accounts
        .get_mut(ctx.account)?
        .by_region
        .get_mut(ctx.region)
}

/// Resolves a cluster name or ARN (default `default`) to its index in the caller's region.
fn cluster_index(
    world: &mut World,
    ctx: Ctx<'_>,
    cluster: Option<&str>,
) -> Result<usize, AwsError> {
    let name = cluster_name(ctx, cluster.unwrap_or("default"))?;
    region(world, ctx)
        .and_then(|r| r.by_name.get(name).copied())
        .ok_or_else(AwsError::cluster_not_found)
}

fn cluster_name<'a>(ctx: Ctx<'_>, id: &'a str) -> Result<&'a str, AwsError> {
    let Some(rest) = id.strip_prefix("arn:") else {
        return Ok(id);
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [_, "ecs", region, account, resource] = parts.as_slice() else {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid cluster ARN: {id}"
        )));
    };
    let Some(name) = resource.strip_prefix("cluster/") else {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid cluster ARN: {id}"
        )));
    };
    if *account != ctx.account {
        return Err(AwsError::access_denied(format!(
            "User: arn:aws:sts::{}:assumed-role/caller is not authorized to perform this action on resource: {id}",
            ctx.account
        )));
    }
    if *region != ctx.region {
        return Err(AwsError::invalid_parameter(format!(
            "The cluster ARN {id} is not in region {}.",
            ctx.region
        )));
    }
    Ok(name)
}

/// The service name of a service name or ARN; for a long ARN also checks its cluster.
fn service_name<'a>(cluster: &Cluster, id: &'a str) -> Option<&'a str> {
    let Some(rest) = id.strip_prefix("arn:") else {
        return Some(id);
    };
    let resource = rest.splitn(5, ':').nth(4)?;
    let path = resource.strip_prefix("service/")?;
    match path.split_once('/') {
        Some((c, n)) => (c == cluster.name).then_some(n),
        None => Some(path),
    }
}

fn find_service(cluster: &Cluster, id: &str) -> Option<usize> {
    let name = service_name(cluster, id)?;
    let i = *cluster.by_name.get(name)?;
    // `by_name` indexes `services`, and services are never removed (deleted ones stay
    // INACTIVE), so every index it gives, here and in the callers, is in bounds.
    // An ARN must be the service's own (old or long format).
    if id.starts_with("arn:") && cluster.services[i].arn != id {
        return None;
    }
    Some(i)
}

fn settle_service(seed: u64, cluster: &mut Cluster, i: usize, now: Millis) {
    if let Some(svc) = cluster.services.get_mut(i) {
        svc.settle(seed, now, &mut cluster.restarts);
    }
}

fn deployment_wire(svc: &Service, d: &Deployment, now: Millis) -> DeploymentWire {
    let c = svc.counts(d, now);
    DeploymentWire {
        id: d.id.clone(),
        status: d.status.as_str(),
        task_definition: d.task_definition.clone(),
        desired_count: d.desired,
        pending_count: c.pending,
        running_count: c.running,
        failed_tasks: c.failed,
        created_at: secs(d.created_at),
        updated_at: secs(d.updated_at),
        launch_type: launch_type_str(svc.launch_type),
        platform_version: platform_version(svc.launch_type),
        rollout_state: d.rollout.as_str(),
        rollout_state_reason: d.rollout_reason.clone(),
    }
}

/// Renders a service as ECS returns it.
pub fn service_wire(
    account: &str,
    cluster: &Cluster,
    svc: &Service,
    now: Millis,
    with_tags: bool,
) -> ServiceWire {
    let totals = svc.totals(now);
    let task_definition = svc
        .primary()
        .map_or_else(|| svc.last_good.1.clone(), |p| p.task_definition.clone());
    ServiceWire {
        service_arn: svc.arn.clone(),
        service_name: svc.name.clone(),
        cluster_arn: cluster.arn.clone(),
        load_balancers: Vec::new(),
        service_registries: Vec::new(),
        status: match svc.status {
            ServiceStatus::Active => "ACTIVE",
            ServiceStatus::Inactive(_) => "INACTIVE",
        },
        desired_count: svc.desired,
        running_count: totals.running,
        pending_count: totals.pending,
        launch_type: launch_type_str(svc.launch_type),
        platform_version: platform_version(svc.launch_type),
        task_definition,
        deployment_configuration: DeploymentConfiguration {
            deployment_circuit_breaker: CircuitBreaker {
                enable: svc.controller == Controller::Ecs,
                rollback: svc.controller == Controller::Ecs,
            },
            maximum_percent: svc.max_percent,
            minimum_healthy_percent: svc.min_healthy_percent,
            alarms: (!svc.deployment_alarms.is_empty()).then(|| DeploymentAlarms {
                alarm_names: svc.deployment_alarms.clone(),
                enable: true,
                rollback: true,
            }),
        },
        deployments: svc
            .deployments
            .iter()
            .map(|d| deployment_wire(svc, d, now))
            .collect(),
        events: svc
            .events
            .iter()
            .rev()
            .map(|e| EventWire {
                id: e.id.clone(),
                created_at: secs(e.created_at),
                message: e.message.clone(),
            })
            .collect(),
        created_at: secs(svc.created_at),
        placement_constraints: Vec::new(),
        placement_strategy: Vec::new(),
        scheduling_strategy: scheduling_str(svc.scheduling),
        deployment_controller: DeploymentController {
            kind: controller_str(svc.controller),
        },
        tags: with_tags.then(|| tags_wire(&svc.tags)),
        created_by: format!("arn:aws:iam::{account}:role/deployer"),
        enable_ecs_managed_tags: false,
        propagate_tags: "NONE",
        enable_execute_command: svc.enable_execute_command,
    }
}

fn include_tags(include: Option<&Vec<String>>, allowed: &[&str]) -> Result<bool, AwsError> {
    let mut tags = false;
    for i in include.into_iter().flatten() {
        if !allowed.contains(&i.as_str()) {
            return Err(AwsError::invalid_parameter(format!(
                "Invalid include value {i:?}; valid values: {}.",
                allowed.join(", ")
            )));
        }
        tags |= i == "TAGS";
    }
    Ok(tags)
}

// ---------------------------------------------------------------------------------------------
// Actions.

fn list_clusters(
    world: &mut World,
    ctx: Ctx<'_>,
    req: PageRequest,
) -> Result<ListClustersResponse, AwsError> {
    let size = page_size(req.max_results, 100)?;
    let scope = hash_parts(world.seed, &[ctx.account, ctx.region, "ListClusters"]);
    let from = decode_token(req.next_token.as_deref(), scope)?;
    let clusters = region(world, ctx)
        .map(|r| r.clusters.as_slice())
        .unwrap_or_default();
    let end = from.saturating_add(size).min(clusters.len());
    let cluster_arns = clusters
        .get(from..end)
        .unwrap_or_default()
        .iter()
        .map(|c| c.arn.clone())
        .collect();
    let next_token = (end < clusters.len()).then(|| encode_token(scope, end));
    Ok(ListClustersResponse {
        cluster_arns,
        next_token,
    })
}

fn describe_clusters(
    world: &mut World,
    ctx: Ctx<'_>,
    req: DescribeClustersRequest,
) -> Result<DescribeClustersResponse, AwsError> {
    let with_tags = include_tags(
        req.include.as_ref(),
        &[
            "ATTACHMENTS",
            "CONFIGURATIONS",
            "SETTINGS",
            "STATISTICS",
            "TAGS",
        ],
    )?;
    let ids = req.clusters.unwrap_or_else(|| vec!["default".to_owned()]);
    if ids.len() > 100 {
        return Err(AwsError::invalid_parameter(
            "clusters can have at most 100 items.",
        ));
    }
    let seed = world.seed;
    let mut out = DescribeClustersResponse {
        clusters: Vec::new(),
        failures: Vec::new(),
    };
    for id in ids {
        let name = cluster_name(ctx, &id)?;
        let Some(reg) = region(world, ctx) else {
            out.failures.push(Failure {
                arn: format!("arn:aws:ecs:{}:{}:cluster/{name}", ctx.region, ctx.account),
                reason: "MISSING",
            });
            continue;
        };
        let Some(&ci) = reg.by_name.get(name) else {
            out.failures.push(Failure {
                arn: format!("arn:aws:ecs:{}:{}:cluster/{name}", ctx.region, ctx.account),
                reason: "MISSING",
            });
            continue;
        };
        // In bounds: `ci` is from this region's `by_name`; clusters are never removed.
        let cl = &mut reg.clusters[ci];
        let (mut running, mut pending, mut active) = (0, 0, 0);
        for i in 0..cl.services.len() {
            settle_service(seed, cl, i, ctx.now);
            let svc = &cl.services[i];
            if svc.is_active() {
                let t = svc.totals(ctx.now);
                running += t.running;
                pending += t.pending;
                active += 1;
            }
        }
        out.clusters.push(ClusterWire {
            cluster_arn: cl.arn.clone(),
            cluster_name: cl.name.clone(),
            status: "ACTIVE",
            registered_container_instances_count: 0,
            running_tasks_count: running,
            pending_tasks_count: pending,
            active_services_count: active,
            statistics: Vec::new(),
            tags: with_tags.then(|| tags_wire(&cl.tags)),
            settings: vec![NameValue {
                name: "containerInsights",
                value: "disabled",
            }],
            capacity_providers: vec!["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategy: Vec::new(),
        });
    }
    Ok(out)
}

fn list_services(
    world: &mut World,
    ctx: Ctx<'_>,
    req: ListServicesRequest,
) -> Result<ListServicesResponse, AwsError> {
    let size = page_size(req.max_results, 10)?;
    let seed = world.seed;
    let ci = cluster_index(world, ctx, req.cluster.as_deref())?;
    let scope = hash_parts(
        seed,
        &[ctx.account, ctx.region, &ci.to_string(), "ListServices"],
    );
    let from = decode_token(req.next_token.as_deref(), scope)?;
    let launch = req.launch_type.as_deref();
    let sched = req.scheduling_strategy.as_deref();
    let Some(reg) = region(world, ctx) else {
        return Err(AwsError::cluster_not_found());
    };
    // In bounds: `ci` is from this region's `by_name`; clusters are never removed.
    let cl = &mut reg.clusters[ci];
    let mut arns = Vec::new();
    let mut i = from;
    while i < cl.services.len() && arns.len() < size {
        settle_service(seed, cl, i, ctx.now);
        let svc = &cl.services[i];
        let keep = svc.is_active()
            && launch.is_none_or(|l| l == launch_type_str(svc.launch_type))
            && sched.is_none_or(|s| s == scheduling_str(svc.scheduling));
        if keep {
            arns.push(svc.arn.clone());
        }
        i += 1;
    }
    let next_token = (i < cl.services.len()).then(|| encode_token(scope, i));
    Ok(ListServicesResponse {
        service_arns: arns,
        next_token,
    })
}

fn describe_services(
    world: &mut World,
    ctx: Ctx<'_>,
    req: DescribeServicesRequest,
) -> Result<DescribeServicesResponse, AwsError> {
    let with_tags = include_tags(req.include.as_ref(), &["TAGS"])?;
    let ids = req.services.unwrap_or_default();
    if ids.is_empty() {
        return Err(AwsError::invalid_parameter("Services cannot be empty."));
    }
    if ids.len() > 10 {
        return Err(AwsError::invalid_parameter(
            "The services parameter can have at most 10 items.",
        ));
    }
    let seed = world.seed;
    let ci = cluster_index(world, ctx, req.cluster.as_deref())?;
    let Some(reg) = region(world, ctx) else {
        return Err(AwsError::cluster_not_found());
    };
    // In bounds: `ci` is from this region's `by_name`; clusters are never removed.
    let cl = &mut reg.clusters[ci];
    let mut out = DescribeServicesResponse {
        services: Vec::with_capacity(ids.len()),
        failures: Vec::new(),
    };
    for id in &ids {
        let found = find_service(cl, id);
        if let Some(i) = found {
            settle_service(seed, cl, i, ctx.now);
        }
        match found {
            Some(i) if cl.services[i].visible(ctx.now) => {
                out.services.push(service_wire(
                    ctx.account,
                    cl,
                    &cl.services[i],
                    ctx.now,
                    with_tags,
                ));
            }
            _ => {
                let arn = if id.starts_with("arn:") {
                    id.clone()
                } else {
                    format!(
                        "arn:aws:ecs:{}:{}:service/{}/{id}",
                        ctx.region, ctx.account, cl.name
                    )
                };
                out.failures.push(Failure {
                    arn,
                    reason: "MISSING",
                });
            }
        }
    }
    Ok(out)
}

fn update_service(
    world: &mut World,
    ctx: Ctx<'_>,
    req: UpdateServiceRequest,
) -> Result<(UpdateServiceResponse, bool), AwsError> {
    let Some(id) = req.service.as_deref() else {
        return Err(AwsError::invalid_parameter("service must be specified."));
    };
    if let Some(n) = req.desired_count
        && !(0..=5000).contains(&n)
    {
        return Err(AwsError::invalid_parameter(format!(
            "desiredCount must be between 0 and 5000, got {n}."
        )));
    }
    let seed = world.seed;
    let ci = cluster_index(world, ctx, req.cluster.as_deref())?;
    let Some(reg) = region(world, ctx) else {
        return Err(AwsError::cluster_not_found());
    };
    // In bounds: `ci` is from this region's `by_name`; clusters are never removed.
    let cl = &mut reg.clusters[ci];
    let Some(i) = find_service(cl, id) else {
        return Err(AwsError::service_not_found());
    };
    settle_service(seed, cl, i, ctx.now);
    let cluster_name = cl.name.clone();
    let svc = &mut cl.services[i];
    if !svc.visible(ctx.now) {
        return Err(AwsError::service_not_found());
    }
    if !svc.is_active() {
        return Err(AwsError::bad(
            "ServiceNotActiveException",
            "Service was not ACTIVE.",
        ));
    }
    if svc.on_restart == OnRestart::Reject {
        // Every update of such a service is refused, before any change.
        return Err(AwsError::bad(
            "ClientException",
            format!(
                "Unable to update service {} in cluster {cluster_name}: the update was rejected.",
                svc.name
            ),
        ));
    }
    let new_td = req.task_definition.as_deref().map(|td| {
        if td.starts_with("arn:") {
            td.to_owned()
        } else {
            format!(
                "arn:aws:ecs:{}:{}:task-definition/{td}",
                ctx.region, ctx.account
            )
        }
    });
    let current_td = svc.primary().map(|p| p.task_definition.clone());
    let td_changed = new_td
        .as_ref()
        .is_some_and(|t| Some(t) != current_td.as_ref());
    let force = req.force_new_deployment.unwrap_or(false) || td_changed;
    if force && svc.controller != Controller::Ecs {
        // Checked before any change, so a refused call changes nothing.
        if let Err(e) = svc.can_restart() {
            return Err(AwsError::invalid_parameter(e.to_string()));
        }
    }
    if let Some(n) = req.desired_count {
        let n = n as u32;
        svc.desired = n;
        if let Some(p) = svc.deployments.first_mut() {
            p.desired = n;
        }
    }
    if let Some(b) = req.enable_execute_command {
        svc.enable_execute_command = b;
    }
    let mut restarted = false;
    if force {
        let scope = [ctx.account, ctx.region, cluster_name.as_str()];
        match svc.force_new_deployment(seed, &scope, ctx.now, &mut cl.restarts) {
            Ok(_) => restarted = true,
            Err(RestartRefused::NotActive) => {
                return Err(AwsError::bad(
                    "ServiceNotActiveException",
                    "Service was not ACTIVE.",
                ));
            }
            Err(e @ RestartRefused::Rejected(_)) => {
                return Err(AwsError::bad("ClientException", e.to_string()));
            }
            Err(e @ RestartRefused::Controller(_)) => {
                return Err(AwsError::invalid_parameter(e.to_string()));
            }
        }
        if let (Some(td), Some(p)) = (new_td, cl.services[i].deployments.first_mut()) {
            p.task_definition = td;
        }
    }
    let service = service_wire(ctx.account, cl, &cl.services[i], ctx.now, false);
    Ok((UpdateServiceResponse { service }, restarted))
}

/// A taggable resource: a cluster, or a service of a cluster.
enum Resource {
    Cluster(usize),
    Service(usize, usize),
}

fn resolve_resource(
    world: &mut World,
    ctx: Ctx<'_>,
    arn: Option<&str>,
) -> Result<Resource, AwsError> {
    let Some(arn) = arn else {
        return Err(AwsError::invalid_parameter(
            "resourceArn must be specified.",
        ));
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, "ecs", region_name, account, resource] = parts.as_slice() else {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid resource ARN: {arn}"
        )));
    };
    if *account != ctx.account {
        return Err(AwsError::access_denied(format!(
            "User is not authorized to access resource {arn} from account {}.",
            ctx.account
        )));
    }
    if *region_name != ctx.region {
        return Err(AwsError::invalid_parameter(format!(
            "The resource ARN {arn} is not in region {}.",
            ctx.region
        )));
    }
    let reg = region(world, ctx);
    if let Some(name) = resource.strip_prefix("cluster/") {
        let ci = reg
            .and_then(|r| r.by_name.get(name).copied())
            .ok_or_else(AwsError::cluster_not_found)?;
        return Ok(Resource::Cluster(ci));
    }
    let Some(path) = resource.strip_prefix("service/") else {
        return Err(AwsError::invalid_parameter(format!(
            "Unsupported resource type in ARN: {arn}"
        )));
    };
    let Some((cluster, name)) = path.split_once('/') else {
        return Err(AwsError::invalid_parameter(
            "Long arn format must be used for tagging operations",
        ));
    };
    let Some(reg) = reg else {
        return Err(AwsError::cluster_not_found());
    };
    let ci = reg
        .by_name
        .get(cluster)
        .copied()
        .ok_or_else(AwsError::cluster_not_found)?;
    // In bounds: `ci` is from this region's `by_name`; clusters are never removed.
    let cl = &reg.clusters[ci];
    let si = cl
        .by_name
        .get(name)
        .copied()
        .filter(|&i| cl.services[i].visible(ctx.now))
        .ok_or_else(|| {
            AwsError::bad(
                "ResourceNotFoundException",
                "The specified resource could not be found.",
            )
        })?;
    if cl.services[si].old_arn_format {
        return Err(AwsError::invalid_parameter(
            "Long arn format must be used for tagging operations",
        ));
    }
    Ok(Resource::Service(ci, si))
}

fn tags_of<'w>(
    world: &'w mut World,
    ctx: Ctx<'_>,
    r: &Resource,
) -> Option<&'w mut Vec<(String, String)>> {
    let cl = region(world, ctx)?.clusters.get_mut(match *r {
        Resource::Cluster(ci) | Resource::Service(ci, _) => ci,
    })?;
    Some(match *r {
        Resource::Cluster(_) => &mut cl.tags,
        Resource::Service(_, si) => &mut cl.services.get_mut(si)?.tags,
    })
}

fn tag_resource(
    world: &mut World,
    ctx: Ctx<'_>,
    req: TagResourceRequest,
) -> Result<Empty, AwsError> {
    let r = resolve_resource(world, ctx, req.resource_arn.as_deref())?;
    let new = req.tags.unwrap_or_default();
    if new.is_empty() {
        return Err(AwsError::invalid_parameter(
            "tags must contain at least one tag.",
        ));
    }
    let mut pairs = Vec::with_capacity(new.len());
    for t in new {
        let key = t.key.unwrap_or_default();
        let value = t.value.unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 {
            return Err(AwsError::invalid_parameter(
                "Tag keys must have 1 to 128 characters.",
            ));
        }
        if value.chars().count() > 256 {
            return Err(AwsError::invalid_parameter(
                "Tag values must have at most 256 characters.",
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(AwsError::invalid_parameter(
                "Tag keys starting with aws: are reserved.",
            ));
        }
        pairs.push((key, value));
    }
    let Some(tags) = tags_of(world, ctx, &r) else {
        return Err(AwsError::cluster_not_found());
    };
    let mut merged = tags.clone();
    for (k, v) in pairs {
        match merged.iter_mut().find(|(mk, _)| *mk == k) {
            Some(slot) => slot.1 = v,
            None => merged.push((k, v)),
        }
    }
    if merged.len() > 50 {
        return Err(AwsError::invalid_parameter(
            "A resource can have at most 50 tags.",
        ));
    }
    *tags = merged;
    Ok(Empty {})
}

fn untag_resource(
    world: &mut World,
    ctx: Ctx<'_>,
    req: UntagResourceRequest,
) -> Result<Empty, AwsError> {
    let r = resolve_resource(world, ctx, req.resource_arn.as_deref())?;
    let keys = req.tag_keys.unwrap_or_default();
    let Some(tags) = tags_of(world, ctx, &r) else {
        return Err(AwsError::cluster_not_found());
    };
    tags.retain(|(k, _)| !keys.contains(k));
    Ok(Empty {})
}

fn list_tags(
    world: &mut World,
    ctx: Ctx<'_>,
    req: ListTagsRequest,
) -> Result<ListTagsResponse, AwsError> {
    let r = resolve_resource(world, ctx, req.resource_arn.as_deref())?;
    let tags = tags_of(world, ctx, &r)
        .map(|t| tags_wire(t))
        .unwrap_or_default();
    Ok(ListTagsResponse { tags })
}

/// Tasks of a service at `now`: (deployment index, task number).
fn service_tasks(svc: &Service, now: Millis) -> Vec<(usize, u32)> {
    if !svc.is_active() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (di, d) in svc.deployments.iter().enumerate() {
        let running = svc.counts(d, now).running;
        out.extend((0..running).map(|k| (di, k)));
    }
    out
}

fn task_arn(
    ctx: Ctx<'_>,
    cluster: &Cluster,
    svc: &Service,
    d: &Deployment,
    k: u32,
    seed: u64,
) -> String {
    format!(
        "arn:aws:ecs:{}:{}:task/{}/{}",
        ctx.region,
        ctx.account,
        cluster.name,
        task_id(svc.index, d.seq, k, seed)
    )
}

fn list_tasks(
    world: &mut World,
    ctx: Ctx<'_>,
    req: ListTasksRequest,
) -> Result<ListTasksResponse, AwsError> {
    let size = page_size(req.max_results, 100)?;
    let seed = world.seed;
    let ci = cluster_index(world, ctx, req.cluster.as_deref())?;
    let scope = hash_parts(
        seed,
        &[
            ctx.account,
            ctx.region,
            &ci.to_string(),
            req.service_name.as_deref().unwrap_or(""),
            "ListTasks",
        ],
    );
    let from = decode_token(req.next_token.as_deref(), scope)?;
    let Some(reg) = region(world, ctx) else {
        return Err(AwsError::cluster_not_found());
    };
    // In bounds: `ci` is from this region's `by_name`; clusters are never removed.
    let cl = &mut reg.clusters[ci];
    let only: Option<usize> = match req.service_name.as_deref() {
        Some(s) => Some(
            find_service(cl, s)
                .filter(|&i| cl.services[i].visible(ctx.now))
                .ok_or_else(AwsError::service_not_found)?,
        ),
        None => None,
    };
    if req
        .desired_status
        .as_deref()
        .is_some_and(|s| s != "RUNNING")
    {
        return Ok(ListTasksResponse {
            task_arns: Vec::new(),
            next_token: None,
        });
    }
    let mut arns = Vec::new();
    for i in 0..cl.services.len() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        settle_service(seed, cl, i, ctx.now);
        let svc = &cl.services[i];
        if req
            .launch_type
            .as_deref()
            .is_some_and(|l| l != launch_type_str(svc.launch_type))
        {
            continue;
        }
        for (di, k) in service_tasks(svc, ctx.now) {
            // `di` enumerates `svc.deployments` (service_tasks).
            arns.push(task_arn(ctx, cl, svc, &svc.deployments[di], k, seed));
        }
    }
    let end = from.saturating_add(size).min(arns.len());
    let next_token = (end < arns.len()).then(|| encode_token(scope, end));
    let task_arns = arns
        .get(from..end)
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    Ok(ListTasksResponse {
        task_arns,
        next_token,
    })
}

fn describe_tasks(
    world: &mut World,
    ctx: Ctx<'_>,
    req: DescribeTasksRequest,
) -> Result<DescribeTasksResponse, AwsError> {
    let with_tags = include_tags(req.include.as_ref(), &["TAGS"])?;
    let ids = req.tasks.unwrap_or_default();
    if ids.is_empty() {
        return Err(AwsError::invalid_parameter("Tasks cannot be empty."));
    }
    if ids.len() > 100 {
        return Err(AwsError::invalid_parameter(
            "tasks can have at most 100 items.",
        ));
    }
    let seed = world.seed;
    let ci = cluster_index(world, ctx, req.cluster.as_deref())?;
    let Some(reg) = region(world, ctx) else {
        return Err(AwsError::cluster_not_found());
    };
    // In bounds: `ci` is from this region's `by_name`; clusters are never removed.
    let cl = &mut reg.clusters[ci];
    let mut out = DescribeTasksResponse {
        tasks: Vec::new(),
        failures: Vec::new(),
    };
    for id in ids {
        let tid = id.rsplit('/').next().unwrap_or(&id).to_owned();
        let found = parse_task_id(&tid, seed).and_then(|(si, seq, k)| {
            let si = si as usize;
            if si >= cl.services.len() {
                return None;
            }
            settle_service(seed, cl, si, ctx.now);
            let svc = &cl.services[si];
            let di = svc.deployments.iter().position(|d| d.seq == seq)?;
            service_tasks(svc, ctx.now)
                .contains(&(di, k))
                .then_some((si, di, k))
        });
        let Some((si, di, k)) = found else {
            let arn = if id.starts_with("arn:") {
                id
            } else {
                format!(
                    "arn:aws:ecs:{}:{}:task/{}/{id}",
                    ctx.region, ctx.account, cl.name
                )
            };
            out.failures.push(Failure {
                arn,
                reason: "MISSING",
            });
            continue;
        };
        // `si` was checked against `services.len()` above and `di` found by position.
        let svc = &cl.services[si];
        let d = &svc.deployments[di];
        let arn = task_arn(ctx, cl, svc, d, k, seed);
        let started = d.created_at + 30_000;
        let container = ContainerWire {
            container_arn: format!(
                "arn:aws:ecs:{}:{}:container/{}/{tid}/app",
                ctx.region, ctx.account, cl.name
            ),
            task_arn: arn.clone(),
            name: "app".to_owned(),
            image: format!(
                "{}.dkr.ecr.{}.amazonaws.com/{}:latest",
                ctx.account, ctx.region, svc.name
            ),
            runtime_id: format!(
                "{tid}-{}",
                hash_parts(seed, &[&tid, "runtime"]) % 10_000_000_000
            ),
            last_status: "RUNNING",
            health_status: "HEALTHY",
            managed_agents: if svc.enable_execute_command {
                vec![ManagedAgent {
                    name: "ExecuteCommandAgent",
                    last_status: "RUNNING",
                    last_started_at: secs(started),
                }]
            } else {
                Vec::new()
            },
        };
        let az_letter = ["a", "b", "c"][(k % 3) as usize]; // k % 3 < 3
        out.tasks.push(TaskWire {
            task_arn: arn,
            cluster_arn: cl.arn.clone(),
            task_definition_arn: d.task_definition.clone(),
            last_status: "RUNNING",
            desired_status: "RUNNING",
            health_status: "HEALTHY",
            group: format!("service:{}", svc.name),
            started_by: d.id.clone(),
            launch_type: launch_type_str(svc.launch_type),
            platform_version: platform_version(svc.launch_type),
            availability_zone: format!("{}{az_letter}", ctx.region),
            connectivity: "CONNECTED",
            enable_execute_command: svc.enable_execute_command,
            created_at: secs(d.created_at),
            started_at: secs(started),
            version: 3,
            cpu: "256",
            memory: "512",
            containers: vec![container],
            tags: with_tags.then(Vec::new),
        });
    }
    Ok(out)
}

/// DescribeTaskDefinition: the task definition of any deployment of a service in the caller's
/// account and region, by ARN or `family:revision`; its one container, `app`, carries the
/// service's `readonlyRootFilesystem`.
fn describe_task_definition(
    world: &mut World,
    ctx: Ctx<'_>,
    req: DescribeTaskDefinitionRequest,
) -> Result<DescribeTaskDefinitionResponse, AwsError> {
    let with_tags = include_tags(req.include.as_ref(), &["TAGS"])?;
    let Some(wanted) = req.task_definition.filter(|t| !t.is_empty()) else {
        return Err(AwsError::bad(
            "ClientException",
            "Task Definition can not be blank.",
        ));
    };
    let family_revision = wanted
        .rsplit_once(":task-definition/")
        .map_or(wanted.as_str(), |(_, fr)| fr)
        .to_owned();
    let unknown = || AwsError::bad("ClientException", "Unable to describe task definition.");
    let Some(reg) = region(world, ctx) else {
        return Err(unknown());
    };
    let found = reg
        .clusters
        .iter()
        .flat_map(|c| &c.services)
        .find_map(|svc| {
            svc.deployments
                .iter()
                .map(|d| &d.task_definition)
                .chain(std::iter::once(&svc.last_good.1))
                .find(|td| {
                    td.rsplit_once(":task-definition/")
                        .is_some_and(|(_, fr)| fr == family_revision)
                })
                .map(|td| (svc, td.clone()))
        });
    let Some((svc, arn)) = found else {
        return Err(unknown());
    };
    let (family, revision) = family_revision
        .rsplit_once(':')
        .unwrap_or((&family_revision, "1"));
    Ok(DescribeTaskDefinitionResponse {
        task_definition: TaskDefinitionWire {
            task_definition_arn: arn,
            family: family.to_owned(),
            revision: revision.parse().unwrap_or(1),
            status: "ACTIVE",
            network_mode: "awsvpc",
            requires_compatibilities: vec![launch_type_str(svc.launch_type)],
            cpu: "256",
            memory: "512",
            container_definitions: vec![ContainerDefinitionWire {
                name: "app".to_owned(),
                image: format!(
                    "{}.dkr.ecr.{}.amazonaws.com/{}:latest",
                    ctx.account, ctx.region, svc.name
                ),
                essential: true,
                readonly_root_filesystem: svc.readonly_root_filesystem,
            }],
        },
        tags: with_tags.then(Vec::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_foreign_scopes() {
        let t = encode_token(42, 150);
        assert_eq!(decode_token(Some(&t), 42), Ok(150));
        assert!(decode_token(Some(&t), 43).is_err());
        assert!(decode_token(Some("zz"), 42).is_err());
        assert_eq!(decode_token(None, 42), Ok(0));
    }

    fn world() -> World {
        let spec = crate::FleetSpec::from_yaml_str(
            r#"
seed: 5
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: c
        services:
          - {name: a, desired: 2, deploy_seconds: 10}
          - {name: r, on_restart: reject}
          - {name: s, on_restart: superseded, deploy_seconds: 10}
          - {name: o, old_arn_format: true}
"#,
        )
        .expect("valid");
        crate::world::build(&spec, 1_800_000_000_000)
    }

    const CTX: Ctx<'static> = Ctx {
        account: "111111111111",
        region: "eu-west-1",
        now: 1_800_000_000_000,
    };

    #[test]
    fn page_tokens_at_the_end_of_usize_are_refused_or_empty() {
        let mut w = world();
        let scope = hash_parts(w.seed, &[CTX.account, CTX.region, "ListClusters"]);
        let token = format!("{scope:016x}{:x}", usize::MAX);
        let body = format!(r#"{{"nextToken":"{token}","maxResults":100}}"#);
        let (out, _) = handle(&mut w, CTX, "ListClusters", body.as_bytes()).expect("empty page");
        assert_eq!(out, r#"{"clusterArns":[]}"#);
        let scope = hash_parts(w.seed, &[CTX.account, CTX.region, "0", "", "ListTasks"]);
        let body = format!(
            r#"{{"cluster":"c","nextToken":"{scope:016x}{:x}"}}"#,
            usize::MAX
        );
        let (out, _) = handle(&mut w, CTX, "ListTasks", body.as_bytes()).expect("empty page");
        assert_eq!(out, r#"{"taskArns":[]}"#);
    }

    /// JSON values built from the request keys the actions read and wild values for them.
    fn request() -> impl Strategy<Value = String> {
        let keys = proptest::sample::select(
            &[
                "cluster",
                "clusters",
                "service",
                "services",
                "serviceName",
                "include",
                "maxResults",
                "nextToken",
                "desiredCount",
                "taskDefinition",
                "forceNewDeployment",
                "enableExecuteCommand",
                "resourceArn",
                "tags",
                "tagKeys",
                "tasks",
                "desiredStatus",
                "launchType",
                "schedulingStrategy",
            ][..],
        );
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            proptest::sample::select(
                &[
                    "c",
                    "a",
                    "r",
                    "s",
                    "o",
                    "default",
                    "TAGS",
                    "arn:",
                    "arn:aws:ecs:eu-west-1:111111111111:cluster/c",
                    "arn:aws:ecs:eu-west-1:111111111111:service/c/a",
                    "arn:aws:ecs:eu-west-1:111111111111:service/o",
                    "arn:aws:ecs:eu-west-1:222222222222:service/c/a",
                    "arn:aws:ecs:us-east-1:111111111111:cluster/c",
                    "arn:aws:ecs:eu-west-1:111111111111:task/c/0000000000000000000000000000000z",
                    "arn:aws:ecs:eu-west-1:111111111111:task-definition/a:1",
                    "ffffffffffffffffffffffffffffffffffffffff",
                    "０",
                    "é",
                    "決済",
                    "",
                ][..],
            )
            .prop_map(serde_json::Value::from),
            "\\PC{0,40}".prop_map(serde_json::Value::from),
        ];
        let value = leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("key|value|[a-z]{1,5}", inner, 0..3)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map(keys, value, 0..6).prop_map(|m| {
            serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                .to_string()
        })
    }

    use proptest::prelude::*;

    proptest::proptest! {
        /// Any request body for any action answers a result or a 4xx error, never a panic.
        #[test]
        fn malformed_requests_get_client_errors(
            action in proptest::sample::select(ACTIONS),
            body in prop_oneof![
                request(),
                any::<String>(),
                proptest::collection::vec(any::<u8>(), 0..64)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ],
            raw in proptest::collection::vec(any::<u8>(), 0..32),
            later in 0i64..100_000,
        ) {
            let mut w = world();
            for (i, bytes) in [body.as_bytes(), raw.as_slice()].into_iter().enumerate() {
                let ctx = Ctx { now: CTX.now + later * i as i64, ..CTX };
                if let Err(e) = handle(&mut w, ctx, action, bytes) {
                    proptest::prop_assert!(e.status.is_client_error(), "{action} {body}: {e}");
                }
            }
        }
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(None, 10), Ok(10));
        assert_eq!(page_size(Some(100), 10), Ok(100));
        assert!(page_size(Some(0), 10).is_err());
        assert!(page_size(Some(101), 10).is_err());
    }
}
