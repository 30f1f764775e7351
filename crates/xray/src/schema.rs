//! The checks a datagram for the X-Ray daemon must pass, from the daemon's format and the
//! segment document schema (v1.0.0) as X-Ray documents it: the header line, then one JSON
//! document of at most 64 kB, an independent subsegment (`type`, `trace_id`, `parent_id`) whose
//! ids are 16 hex digits, whose times are epoch seconds with the end not before the start,
//! whose name keeps to X-Ray's characters and 200 characters, whose annotations have
//! alphanumeric keys and string (1,000 characters at most), number or boolean values, and whose
//! embedded subsegments follow the same rules. Written apart from the code that makes the
//! documents, so that tests (and the local stack's listener) check one against the other.

use serde_json::{Map, Value};

use crate::daemon::DAEMON_HEADER;
use crate::header::{is_segment_id, is_trace_id};

/// X-Ray's limit on one segment document.
pub const SEGMENT_DOCUMENT_LIMIT: usize = 64 * 1024;

/// A checked document.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub trace_id: String,
    pub parent_id: String,
    /// The document's top subsegment.
    pub document: Value,
    /// Every subsegment in it (the top one first, then the embedded ones depth first), with the
    /// id of its parent.
    pub subsegments: Vec<(Value, String)>,
}

/// Checks one datagram sent to the daemon.
pub fn check_datagram(datagram: &[u8]) -> Result<Checked, String> {
    let body = datagram
        .strip_prefix(DAEMON_HEADER.as_bytes())
        .ok_or("the datagram does not start with the daemon's header line")?;
    if body.len() > SEGMENT_DOCUMENT_LIMIT {
        return Err(format!("the document has {} bytes", body.len()));
    }
    let document: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let top = document
        .as_object()
        .ok_or("the document is not an object")?;
    if top.get("type") != Some(&Value::String("subsegment".into())) {
        return Err("an independent subsegment has \"type\": \"subsegment\"".into());
    }
    let trace_id = string(top, "trace_id")?;
    if !is_trace_id(trace_id) {
        return Err(format!("trace_id {trace_id:?} is not 1-8hex-24hex"));
    }
    let parent_id = string(top, "parent_id")?;
    if !is_segment_id(parent_id) {
        return Err(format!("parent_id {parent_id:?} is not 16 hex digits"));
    }
    let mut subsegments = Vec::new();
    check_subsegment(top, parent_id, &mut subsegments)?;
    Ok(Checked {
        trace_id: trace_id.to_owned(),
        parent_id: parent_id.to_owned(),
        document: document.clone(),
        subsegments,
    })
}

fn string<'a>(doc: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    doc.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key} is missing or not a string"))
}

fn check_subsegment(
    doc: &Map<String, Value>,
    parent: &str,
    out: &mut Vec<(Value, String)>,
) -> Result<(), String> {
    let id = string(doc, "id")?;
    if !is_segment_id(id) {
        return Err(format!("id {id:?} is not 16 hex digits"));
    }
    let name = string(doc, "name")?;
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c);
    if name.is_empty() || name.chars().count() > 200 || !name.chars().all(allowed) {
        return Err(format!("name {name:?} is not a valid X-Ray name"));
    }
    let start = doc
        .get("start_time")
        .and_then(Value::as_f64)
        .ok_or("start_time is missing or not a number")?;
    if start <= 0.0 {
        return Err(format!("start_time {start} is not epoch seconds"));
    }
    match (
        doc.get("end_time").and_then(Value::as_f64),
        doc.get("in_progress"),
    ) {
        (Some(end), None | Some(Value::Bool(false))) if end >= start => {}
        (Some(end), _) if end < start => {
            return Err(format!("end_time {end} is before start_time {start}"));
        }
        (None, Some(Value::Bool(true))) => {}
        _ => return Err("an ended subsegment has end_time and no in_progress".into()),
    }
    for flag in ["error", "throttle", "fault"] {
        if doc.get(flag).is_some_and(|v| !v.is_boolean()) {
            return Err(format!("{flag} is not a boolean"));
        }
    }
    if let Some(ns) = doc.get("namespace")
        && ns != "aws"
        && ns != "remote"
    {
        return Err(format!("namespace {ns} is neither aws nor remote"));
    }
    if let Some(aws) = doc.get("aws") {
        let aws = aws.as_object().ok_or("aws is not an object")?;
        for key in ["operation", "region", "account_id", "table_name"] {
            if aws.get(key).is_some_and(|v| !v.is_string()) {
                return Err(format!("aws.{key} is not a string"));
            }
        }
        if aws.get("retries").is_some_and(|v| !v.is_u64()) {
            return Err("aws.retries is not a count".into());
        }
    }
    if let Some(http) = doc.get("http") {
        let status = &http["response"]["status"];
        if !status.is_u64() {
            return Err(format!("http.response.status {status} is not an integer"));
        }
    }
    if let Some(annotations) = doc.get("annotations") {
        let annotations = annotations
            .as_object()
            .ok_or("annotations is not an object")?;
        for (key, value) in annotations {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("annotation key {key:?} is not alphanumeric"));
            }
            match value {
                Value::String(s) if s.chars().count() <= 1000 => {}
                Value::Number(_) | Value::Bool(_) => {}
                other => return Err(format!("annotation {key} = {other} is not indexable")),
            }
        }
    }
    if let Some(metadata) = doc.get("metadata") {
        let metadata = metadata.as_object().ok_or("metadata is not an object")?;
        for (namespace, value) in metadata {
            if namespace.starts_with("AWS.") || !value.is_object() {
                return Err(format!("metadata namespace {namespace:?} is not valid"));
            }
        }
    }
    out.push((Value::Object(doc.clone()), parent.to_owned()));
    if let Some(subs) = doc.get("subsegments") {
        for sub in subs.as_array().ok_or("subsegments is not an array")? {
            let sub = sub.as_object().ok_or("a subsegment is not an object")?;
            if sub.contains_key("trace_id") || sub.contains_key("parent_id") {
                return Err("an embedded subsegment names no trace or parent".into());
            }
            check_subsegment(sub, id, out)?;
        }
    }
    Ok(())
}
