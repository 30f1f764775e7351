//! Subsegments and the segment documents that carry them (the X-Ray segment document schema,
//! v1.0.0): names and annotations kept to X-Ray's characters and lengths, and a finished
//! invocation packed into as few documents of at most [`MAX_DOCUMENT_BYTES`] as fit.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// X-Ray takes segment documents of up to 64 kB; this leaves room for the daemon's header line
/// and the UDP datagram's own limit (65,507 bytes).
pub const MAX_DOCUMENT_BYTES: usize = 62 * 1024;

/// The longest name X-Ray accepts, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The longest annotation string X-Ray indexes, in characters.
pub const MAX_ANNOTATION_CHARS: usize = 1000;

/// Metadata strings are cut here: a subsegment with every field a span may have (32) stays far
/// below [`MAX_DOCUMENT_BYTES`].
pub const MAX_METADATA_CHARS: usize = 256;

/// The metadata namespace of everything the orchestrator records.
pub const METADATA_NAMESPACE: &str = "restart";

/// One AWS call, as the `aws` object and the flags of its subsegment say it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AwsCall {
    pub operation: String,
    pub region: Option<String>,
    pub account: Option<String>,
    /// The DynamoDB table, for store calls.
    pub table: Option<String>,
    pub status: Option<u64>,
    pub attempts: u64,
    pub throttled: bool,
    pub ok: bool,
    pub error_code: Option<String>,
}

impl AwsCall {
    /// A call that got no answer (timeout, connection refused) or a 5xx is a fault; a 4xx, or
    /// an error with a client code, is an error.
    fn fault(&self) -> bool {
        !self.ok && self.status.is_none_or(|s| s >= 500)
    }

    fn error(&self) -> bool {
        !self.ok && !self.fault()
    }
}

/// A finished subsegment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub id: u64,
    /// Its parent's id (16 hex digits): another subsegment's, or the function segment's.
    pub parent: String,
    pub name: String,
    pub start: f64,
    pub end: f64,
    pub aws: Option<AwsCall>,
    pub annotations: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

pub(crate) fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}

/// `name` with every character X-Ray refuses in a name replaced by `_`, cut to
/// [`MAX_NAME_CHARS`]; never empty.
pub fn segment_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_CHARS)
        .collect();
    if clean.trim().is_empty() {
        "unnamed".to_owned()
    } else {
        clean
    }
}

/// Whether X-Ray indexes an annotation of this key: letters, digits and `_` (ASCII).
pub fn is_annotation_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `s` cut to `max` characters.
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => s[..at].to_owned(),
        None => s.to_owned(),
    }
}

/// An annotation's value: strings cut to [`MAX_ANNOTATION_CHARS`], numbers and booleans as they
/// are; anything else becomes a string.
pub(crate) fn annotation(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(cut(&s, MAX_ANNOTATION_CHARS)),
        v @ (Value::Number(_) | Value::Bool(_)) => v,
        other => Value::String(cut(&other.to_string(), MAX_ANNOTATION_CHARS)),
    }
}

/// A metadata value, strings cut to [`MAX_METADATA_CHARS`].
pub(crate) fn metadata(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(cut(&s, MAX_METADATA_CHARS)),
        v => v,
    }
}

impl Node {
    /// The subsegment's own fields (without its children). An independent document also
    /// carries `type`, `trace_id` and `parent_id`.
    fn json(&self, independent: Option<&str>) -> Map<String, Value> {
        let mut doc = Map::new();
        doc.insert("name".into(), Value::String(segment_name(&self.name)));
        doc.insert("id".into(), Value::String(hex_id(self.id)));
        doc.insert("start_time".into(), json!(self.start));
        doc.insert("end_time".into(), json!(self.end.max(self.start)));
        if let Some(trace_id) = independent {
            doc.insert("type".into(), json!("subsegment"));
            doc.insert("trace_id".into(), json!(trace_id));
            doc.insert("parent_id".into(), json!(self.parent));
        }
        if let Some(call) = &self.aws {
            doc.insert("namespace".into(), json!("aws"));
            let mut aws = Map::new();
            aws.insert("operation".into(), json!(call.operation));
            if let Some(region) = &call.region {
                aws.insert("region".into(), json!(region));
            }
            if let Some(account) = &call.account {
                aws.insert("account_id".into(), json!(account));
            }
            if let Some(table) = &call.table {
                aws.insert("table_name".into(), json!(table));
            }
            aws.insert("retries".into(), json!(call.attempts.saturating_sub(1)));
            doc.insert("aws".into(), Value::Object(aws));
            if let Some(status) = call.status {
                doc.insert("http".into(), json!({ "response": { "status": status } }));
            }
            if call.error() {
                doc.insert("error".into(), json!(true));
            }
            if call.fault() {
                doc.insert("fault".into(), json!(true));
            }
            if call.throttled {
                doc.insert("throttle".into(), json!(true));
                doc.insert("error".into(), json!(true));
            }
        }
        if !self.annotations.is_empty() {
            doc.insert(
                "annotations".into(),
                Value::Object(self.annotations.clone()),
            );
        }
        if !self.metadata.is_empty() {
            doc.insert(
                "metadata".into(),
                json!({ METADATA_NAMESPACE: Value::Object(self.metadata.clone()) }),
            );
        }
        doc
    }

    /// Its own fields, kept under [`MAX_DOCUMENT_BYTES`] whatever was recorded: a node too large
    /// loses its metadata, then its annotations.
    fn bounded_json(&self, independent: Option<&str>) -> Map<String, Value> {
        let doc = self.json(independent);
        if size(&doc) <= MAX_DOCUMENT_BYTES / 2 {
            return doc;
        }
        let mut slim = self.clone();
        slim.metadata = Map::from_iter([("truncated".to_owned(), json!(true))]);
        let doc = slim.json(independent);
        if size(&doc) <= MAX_DOCUMENT_BYTES / 2 {
            return doc;
        }
        slim.annotations.clear();
        slim.json(independent)
    }
}

fn size(doc: &Map<String, Value>) -> usize {
    serde_json::to_vec(doc).map_or(usize::MAX, |v| v.len())
}

/// Packs finished subsegments into documents: each subsegment whose parent is not among them
/// (the invocation's, whose parent is the function segment) starts an independent document,
/// and every child whose whole subtree still fits is embedded in its parent's; one that does not
/// fit becomes an independent document of its own, recursively.
pub(crate) fn pack(trace_id: &str, nodes: &[Node]) -> Vec<Vec<u8>> {
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (hex_id(n.id), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut tops = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        match index.get(&n.parent) {
            Some(&p) if p != i => children[p].push(i),
            _ => tops.push(i),
        }
    }
    let packer = Packer {
        trace_id,
        nodes,
        children: &children,
    };
    let mut out = Vec::new();
    for top in tops {
        packer.independent(top, &mut out);
    }
    out
}

struct Packer<'a> {
    trace_id: &'a str,
    nodes: &'a [Node],
    children: &'a [Vec<usize>],
}

impl Packer<'_> {
    fn independent(&self, i: usize, out: &mut Vec<Vec<u8>>) {
        let mut doc = self.nodes[i].bounded_json(Some(self.trace_id));
        // The node, the key `"subsegments":[]` and a comma between each embedded child.
        let mut room = MAX_DOCUMENT_BYTES.saturating_sub(size(&doc) + 20);
        let mut embedded = Vec::new();
        for &c in &self.children[i] {
            let sub = self.embedded(c);
            let len = serde_json::to_vec(&sub).map_or(usize::MAX, |v| v.len()) + 1;
            if len <= room {
                room -= len;
                embedded.push(sub);
            } else {
                self.independent(c, out);
            }
        }
        if !embedded.is_empty() {
            doc.insert("subsegments".into(), Value::Array(embedded));
        }
        if let Ok(bytes) = serde_json::to_vec(&doc) {
            out.push(bytes);
        }
    }

    /// The node and its whole subtree, nested.
    fn embedded(&self, i: usize) -> Value {
        let mut doc = self.nodes[i].bounded_json(None);
        if !self.children[i].is_empty() {
            let subs = self.children[i].iter().map(|&c| self.embedded(c)).collect();
            doc.insert("subsegments".into(), Value::Array(subs));
        }
        Value::Object(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, parent: &str, name: &str) -> Node {
        Node {
            id,
            parent: parent.to_owned(),
            name: name.to_owned(),
            start: 1.5e9,
            end: 1.5e9 + 1.0,
            aws: None,
            annotations: Map::new(),
            metadata: Map::new(),
        }
    }

    #[test]
    fn names_keep_to_xray_characters_and_length() {
        assert_eq!(
            segment_name("account 1234/eu-west-1"),
            "account 1234/eu-west-1"
        );
        assert_eq!(segment_name("a<b>\"c\""), "a_b__c_");
        assert_eq!(segment_name("compte Zoë"), "compte Zoë");
        assert_eq!(segment_name(""), "unnamed");
        assert_eq!(
            segment_name(&"x".repeat(500)).chars().count(),
            MAX_NAME_CHARS
        );
    }

    #[test]
    fn small_children_are_embedded_in_one_document() {
        let root = node(1, "53995c3f42cd8ad8", "restarter");
        let child = node(2, &hex_id(1), "account");
        let docs = pack("1-5759e988-bd862e3fe1be46a994272793", &[child, root]);
        assert_eq!(docs.len(), 1);
        let doc: Value = serde_json::from_slice(&docs[0]).unwrap();
        assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(doc["subsegments"][0]["id"], hex_id(2));
        assert!(doc["subsegments"][0].get("trace_id").is_none());
    }

    #[test]
    fn a_child_too_large_to_embed_is_sent_on_its_own() {
        let root = node(1, "53995c3f42cd8ad8", "restarter");
        let mut big = node(2, &hex_id(1), "account");
        for i in 0..30 {
            big.metadata
                .insert(format!("field{i}"), metadata(json!("é".repeat(5000))));
        }
        let mut nodes = vec![root, big];
        nodes.extend((0..1000).map(|i| node(10 + i, &hex_id(2), "ECS")));
        let docs = pack("1-5759e988-bd862e3fe1be46a994272793", &nodes);
        assert!(docs.len() > 1);
        let mut ids = 0;
        for bytes in &docs {
            assert!(bytes.len() <= MAX_DOCUMENT_BYTES, "{}", bytes.len());
            let doc: Value = serde_json::from_slice(bytes).unwrap();
            ids += 1 + count_embedded(&doc);
        }
        assert_eq!(ids, nodes.len());
    }

    fn count_embedded(doc: &Value) -> usize {
        doc["subsegments"]
            .as_array()
            .map_or(0, |subs| subs.iter().map(|s| 1 + count_embedded(s)).sum())
    }
}
