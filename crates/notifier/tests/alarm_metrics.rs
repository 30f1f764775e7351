//! Every alarm of infra/template.yaml in namespace `EcsNightlyRestart`, and every metric of its
//! dashboard in that namespace, names a metric the code emits, with the dimensions it emits it
//! with: renaming a metric in the code or in the template fails here. Alarms and widgets on
//! `AWS/*` namespaces are AWS's metrics and are not checked.
//!
//! The notifier's and the restarter's handlers run over the in-memory store, and their EMF lines
//! are read from `restart_core::telemetry`'s capture. Inventory and the batcher print their
//! line themselves: their lines are built by the functions they print (`inventory::metrics`,
//! `batcher::metrics`).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use restart_core::clock::ManualClock;
use restart_core::ids::{ServiceArn, ServiceId};
use restart_core::ports::{ControlError, FleetControl};
use restart_core::service::ServiceSnapshot;
use restart_core::telemetry::{self, NAMESPACE};
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;
use testkit::fakes::{MemoryNotices, MemoryTopics, SharedStore};

/// A metric as CloudWatch stores it: namespace, name and dimensions (name → value).
type Metric = (String, String, BTreeMap<String, String>);

/// ECS that knows no service: the night's records are already terminal.
#[derive(Debug)]
struct NoFleet;

impl FleetControl for NoFleet {
    async fn describe(&self, _: &[ServiceId]) -> Result<Vec<ServiceSnapshot>, ControlError> {
        Ok(Vec::new())
    }

    async fn force_new_deployment(&self, s: &ServiceId) -> Result<String, ControlError> {
        Err(ControlError::NotFound(s.to_string()))
    }

    async fn tag(&self, _: &ServiceArn, _: &str, _: &str) -> Result<(), ControlError> {
        Ok(())
    }
}

/// The metrics one EMF line declares.
fn declared(line: &str) -> Vec<Metric> {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let mut out = Vec::new();
    for directive in v["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        let namespace = directive["Namespace"].as_str().unwrap().to_owned();
        for set in directive["Dimensions"].as_array().unwrap() {
            let dims: BTreeMap<String, String> = set
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let name = d.as_str().unwrap();
                    (name.to_owned(), v[name].as_str().unwrap().to_owned())
                })
                .collect();
            for m in directive["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap().to_owned();
                assert!(v.get(&name).is_some(), "{name} has no value in {line}");
                out.push((namespace.clone(), name, dims.clone()));
            }
        }
    }
    out
}

/// What the four functions emit: their handlers run over one night, their lines captured.
async fn emitted() -> BTreeSet<Metric> {
    let store = SharedStore::default();
    let (catalog, records) = scenario(night());
    write_night(&*store, night(), &catalog, &records, true).await;
    let notifier = notifier::Notifier {
        config: Arc::new(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))),
        store: store.clone(),
        notices: MemoryNotices::default(),
        publisher: MemoryTopics::default(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T06:40:00Z"))),
    };
    let restarter = restarter::Restarter {
        config: Arc::new(config("t", None, None)),
        fleet: NoFleet,
        store: store.clone(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T00:20:00Z"))),
        guards: std::sync::Arc::new(restart_core::guard::NoGuards),
        budget: Duration::from_secs(10),
    };

    telemetry::capture();
    let events = [
        json!({"mode": "start", "night": "2026-11-22", "batch": 0}),
        json!({"mode": "poll", "night": "2026-11-22", "batch": 0}),
        json!({"mode": "failed", "night": "2026-11-22", "batch": 0,
               "error": {"Error": "Unexpected", "Cause": "{\"errorMessage\": \"boom\"}"}}),
    ];
    for event in events {
        restarter
            .handle(event.clone())
            .await
            .unwrap_or_else(|e| panic!("{event}: {e:?}"));
    }
    notifier
        .handle(json!({"mode": "summary", "night": "2026-11-22"}))
        .await
        .unwrap();
    let mut lines = telemetry::captured();

    let t = at("2026-11-22T00:02:00Z");
    let inventory = inventory::Summary {
        night: night(),
        accounts_reached: 1,
        unreachable_count: 1,
        unreachable_sample: Vec::new(),
        services_found: 8,
        counts: Default::default(),
        discovery_ms: 1,
        duration_ms: 2,
    };
    let calls = BTreeMap::from([("DescribeServices".to_owned(), 1)]);
    lines.push(inventory::metrics(&inventory, 1, &calls).line(t));
    lines.push(batcher::metrics(night(), &[], &Default::default(), false, 3).line(t));

    let functions: BTreeSet<String> = lines
        .iter()
        .flat_map(|l| declared(l))
        .filter_map(|(_, _, d)| d.get("Function").cloned())
        .collect();
    assert_eq!(
        functions,
        BTreeSet::from(["batcher", "inventory", "notifier", "restarter"].map(String::from)),
        "{lines:#?}"
    );
    lines.iter().flat_map(|l| declared(l)).collect()
}

fn template() -> Yaml {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap()
}

/// A value without its CloudFormation tag (`!Ref`, `!Sub`, `!GetAtt`...).
fn untag(v: &Yaml) -> &Yaml {
    match v {
        Yaml::Tagged(t) => untag(&t.value),
        v => v,
    }
}

fn text(v: &Yaml) -> Option<&str> {
    untag(v).as_str()
}

/// The metric a `Namespace`/`MetricName`/`Dimensions` mapping names (an alarm's properties, or
/// a metric math alarm's `MetricStat.Metric`).
fn alarm_metric(m: &Yaml) -> Option<Metric> {
    let namespace = text(m.get("Namespace")?)?.to_owned();
    let name = text(m.get("MetricName")?)?.to_owned();
    let mut dims = BTreeMap::new();
    if let Some(list) = m.get("Dimensions").and_then(|d| untag(d).as_sequence()) {
        for d in list {
            let value = d
                .get("Value")
                .and_then(text)
                .unwrap_or("<not a literal>")
                .to_owned();
            dims.insert(text(&d["Name"]).unwrap().to_owned(), value);
        }
    }
    Some((namespace, name, dims))
}

/// Every alarm's metrics, by alarm.
fn alarms(template: &Yaml) -> Vec<(String, Metric)> {
    let mut out = Vec::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if text(&resource["Type"]) != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let name = name.as_str().unwrap().to_owned();
        let props = &resource["Properties"];
        let mut metrics: Vec<Metric> = alarm_metric(props).into_iter().collect();
        if let Some(list) = props.get("Metrics").and_then(Yaml::as_sequence) {
            metrics.extend(
                list.iter()
                    .filter_map(|m| m.get("MetricStat")?.get("Metric"))
                    .filter_map(alarm_metric),
            );
        }
        assert!(!metrics.is_empty(), "{name} watches no metric");
        out.extend(metrics.into_iter().map(|m| (name.clone(), m)));
    }
    out
}

/// Every metric of the dashboard's metric widgets (`"."` repeats the row above's value at that
/// place; a row starting `"..."` repeats the row above but for its last values).
fn dashboard(template: &Yaml) -> Vec<Metric> {
    let body = &template["Resources"]["Dashboard"]["Properties"]["DashboardBody"];
    let body = match untag(body) {
        Yaml::Sequence(s) => text(&s[0]).unwrap(),
        other => other.as_str().unwrap(),
    };
    let body: Value = serde_json::from_str(body).unwrap();
    let mut out = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        let Some(rows) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        let mut previous: Vec<String> = Vec::new();
        for row in rows {
            let mut row: Vec<String> = row
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if row.first().map(String::as_str) == Some("...") {
                let given = row.len() - 1;
                let mut full = previous[..previous.len() - given].to_vec();
                full.extend(row.drain(1..));
                row = full;
            }
            for (i, v) in row.iter_mut().enumerate() {
                if v == "." {
                    *v = previous[i].clone();
                }
            }
            let dims = row[2..]
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            out.push((row[0].clone(), row[1].clone(), dims));
            previous = row;
        }
    }
    out
}

#[tokio::test]
async fn every_alarm_and_dashboard_metric_of_ours_is_emitted_by_the_code() {
    let emitted = emitted().await;
    let template = template();

    let ours: Vec<(String, Metric)> = alarms(&template)
        .into_iter()
        .filter(|(_, m)| !m.0.starts_with("AWS/"))
        .collect();
    let missing: Vec<&(String, Metric)> =
        ours.iter().filter(|(_, m)| !emitted.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "alarms on metrics the code does not emit: {missing:#?}\nemitted: {emitted:#?}"
    );
    let watched: BTreeSet<&str> = ours.iter().map(|(_, m)| m.1.as_str()).collect();
    for name in [
        "RestartsFailed",
        "RestartsRolledBack",
        "RestartsTimedOut",
        "RestartsVanished",
        "RestartsWindowClosed",
        "NightHalted",
        "AccountsUnreachable",
        "BatchesFailed",
        "TagFailures",
        "BatchesPastDeadline",
    ] {
        assert!(
            watched.contains(name),
            "no alarm watches {name}: {watched:?}"
        );
    }
    for (alarm, (namespace, ..)) in &ours {
        assert_eq!(namespace, NAMESPACE, "{alarm}");
    }

    let widgets: Vec<Metric> = dashboard(&template)
        .into_iter()
        .filter(|m| !m.0.starts_with("AWS/"))
        .collect();
    assert!(widgets.len() >= 10, "{widgets:#?}");
    let missing: Vec<&Metric> = widgets.iter().filter(|m| !emitted.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics the code does not emit: {missing:#?}"
    );
}

#[test]
fn a_renamed_metric_is_caught() {
    let emitted: BTreeSet<Metric> = declared(
        &notifier::emf(&notifier::NightSummary::build(
            night(),
            &[],
            &Default::default(),
            None,
            None,
            None,
        ))
        .line(at("2026-11-22T06:40:00Z")),
    )
    .into_iter()
    .collect();
    let template: Yaml = serde_yaml_ng::from_str(
        "Resources:\n  A:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n      \
         Namespace: EcsNightlyRestart\n      MetricName: RestartFailed\n      \
         Dimensions: [{Name: Function, Value: notifier}]\n      AlarmActions: [!Ref T]\n",
    )
    .unwrap();
    let (_, metric) = alarms(&template).remove(0);
    assert_eq!(metric.1, "RestartFailed");
    assert!(!emitted.contains(&metric));
    let mut right = metric.clone();
    right.1 = "RestartsFailed".into();
    assert!(emitted.contains(&right));
}
