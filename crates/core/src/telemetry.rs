//! Telemetry: CloudWatch Embedded Metric Format (EMF) lines and where they go ([`emit`]), and a
//! counter of AWS API calls per action. The `tracing` set-up is the Lambda glue's
//! (`restart-lambda`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "EcsNightlyRestart";

/// Lines [`emit`] keeps besides printing them, while a capture is on ([`capture`]).
static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Prints one EMF line on standard output, where Lambda hands it to CloudWatch Logs, which
/// extracts its metrics. While a capture is on, the line is also kept.
pub fn emit(line: String) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        println!("{line}");
    }
    if let Some(kept) = CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        kept.push(line);
    }
}

/// Set by [`quiet`]: lines are no longer printed.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops printing lines in this process (a capture still keeps them): a simulation that runs
/// thousands of nights in one test would otherwise print millions of lines.
pub fn quiet() {
    QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Starts keeping every line [`emit`] prints in this process, until [`captured`]: tests read
/// the metrics the handlers emit (the alarms' contract test). A capture already on is emptied.
pub fn capture() {
    *CAPTURED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
}

/// The lines [`emit`] printed since [`capture`], which stops keeping them.
pub fn captured() -> Vec<String> {
    CAPTURED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

/// Counts AWS API calls by action, shared by the adapters of one invocation.
#[derive(Debug, Default)]
pub struct ApiCalls(Mutex<BTreeMap<String, u64>>);

impl ApiCalls {
    pub fn record(&self, action: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(action.to_owned()).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// CloudWatch metric units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

/// One EMF record: dimensions, metrics and extra properties, printed as one JSON line.
#[derive(Debug, Clone, Default)]
pub struct Emf {
    dimensions: BTreeMap<String, String>,
    metrics: Vec<(String, f64, Unit)>,
    properties: Map<String, Value>,
}

impl Emf {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dimension(mut self, name: &str, value: &str) -> Self {
        self.dimensions.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn metric(mut self, name: &str, value: f64, unit: Unit) -> Self {
        self.metrics.push((name.to_owned(), value, unit));
        self
    }

    /// A property searchable in CloudWatch Logs Insights but not a metric.
    pub fn property(mut self, name: &str, value: Value) -> Self {
        self.properties.insert(name.to_owned(), value);
        self
    }

    /// The EMF JSON line at `timestamp`.
    pub fn line(&self, timestamp: DateTime<Utc>) -> String {
        let mut root = self.properties.clone();
        for (k, v) in &self.dimensions {
            root.insert(k.clone(), json!(v));
        }
        for (k, v, _) in &self.metrics {
            root.insert(k.clone(), json!(v));
        }
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let dimensions: Vec<&String> = self.dimensions.keys().collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(root).to_string()
    }

    /// [`emit`]s the line at `timestamp`.
    pub fn emit(&self, timestamp: DateTime<Utc>) {
        emit(self.line(timestamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_metric_and_carries_its_value() {
        let t: DateTime<Utc> = "2026-11-22T00:05:00Z".parse().unwrap();
        let line = Emf::new()
            .dimension("Function", "inventory")
            .metric("ServicesFound", 42.0, Unit::Count)
            .metric("DurationMs", 1500.0, Unit::Milliseconds)
            .property("night", json!("2026-11-22"))
            .line(t);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(v["_aws"]["Timestamp"], json!(t.timestamp_millis()));
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], json!(NAMESPACE));
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "ServicesFound", "Unit": "Count"},
                   {"Name": "DurationMs", "Unit": "Milliseconds"}])
        );
        assert_eq!(v["Function"], json!("inventory"));
        assert_eq!(v["ServicesFound"], json!(42.0));
        assert_eq!(v["night"], json!("2026-11-22"));
    }

    #[test]
    fn emitted_lines_are_kept_while_a_capture_is_on() {
        let t: DateTime<Utc> = "2026-11-22T00:05:00Z".parse().unwrap();
        let line = |n: f64| Emf::new().metric("CaptureTest", n, Unit::Count);
        capture();
        line(1.0).emit(t);
        let kept = captured();
        line(2.0).emit(t);
        // Other tests of this binary may emit at the same time: only this test's lines count.
        let mine: Vec<&String> = kept.iter().filter(|l| l.contains("CaptureTest")).collect();
        assert_eq!(mine, [&line(1.0).line(t)]);
        assert!(!captured().iter().any(|l| l.contains("CaptureTest")));
    }

    #[test]
    fn api_calls_are_counted_per_action() {
        let calls = ApiCalls::default();
        calls.record("ListClusters");
        calls.record("DescribeServices");
        calls.record("DescribeServices");
        let snap = calls.snapshot();
        assert_eq!(snap["DescribeServices"], 2);
        assert_eq!(snap["ListClusters"], 1);
    }
}
