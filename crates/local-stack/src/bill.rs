//! What AWS bills for a night, counted on the wire: the Lambda host forwards the functions'
//! DynamoDB and SNS requests to moto ([`crate::lambda_host`]) and hands each request and its
//! answer to a [`Meter`], which prices them the way AWS does:
//!
//! - DynamoDB on demand: a write request unit per started KB of the item written (the larger
//!   of the item before and after), twice that inside TransactWriteItems, plus the writes to
//!   the global secondary index; a read request unit per started 4 KB read strongly
//!   consistent, half of one eventually consistent (a Query sums its items before rounding).
//!   A conditional write whose condition fails is still billed. The meter keeps the size of
//!   every item it saw written, so that an update and a delete are priced on the item they
//!   change and an index write is counted only when the index changes (with `KEYS_ONLY`
//!   projection, only when an item gains or changes its index keys).
//! - SNS: a publish request per started 64 KB of each message (an entry of a PublishBatch is
//!   billed as its own publish).
//!
//! Lambda invocations and their durations are counted by the host itself, Step Functions'
//! state transitions from the execution's history, EMF bytes from the lines the functions
//! print; [`Prices`] turns the counts into dollars.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

/// Prices in us-east-1 (USD), as published on the AWS pricing pages; checked 2026-12-03.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// Step Functions Standard, per state transition ($0.025 per 1,000).
    pub transition: f64,
    /// Lambda, per request ($0.20 per million).
    pub lambda_request: f64,
    /// Lambda on arm64, per GB-second.
    pub lambda_gb_second: f64,
    /// DynamoDB on demand, per write request unit ($0.625 per million).
    pub write_unit: f64,
    /// DynamoDB on demand, per read request unit ($0.125 per million).
    pub read_unit: f64,
    /// SNS, per publish request (a 64 KB chunk; $0.50 per million).
    pub sns_publish: f64,
    /// SNS, per email delivered ($2.00 per 100,000).
    pub sns_email: f64,
    /// CloudWatch Logs, per GB ingested (standard class).
    pub log_gb: f64,
    /// EventBridge Scheduler, per invocation ($1.00 per million, after 14 million free a
    /// month).
    pub scheduler_invocation: f64,
}

/// us-east-1 list prices, 2026-12-03.
pub const US_EAST_1: Prices = Prices {
    transition: 0.025 / 1_000.0,
    lambda_request: 0.20 / 1_000_000.0,
    lambda_gb_second: 0.000_013_333_4,
    write_unit: 0.625 / 1_000_000.0,
    read_unit: 0.125 / 1_000_000.0,
    sns_publish: 0.50 / 1_000_000.0,
    sns_email: 2.00 / 100_000.0,
    log_gb: 0.50,
    scheduler_invocation: 1.00 / 1_000_000.0,
};

/// DynamoDB's size of an attribute value in its JSON wire form (`{"S": ...}`, ...): strings
/// and binaries by their bytes, numbers by their significant digits (about one byte per two
/// digits, plus one), lists and maps 3 bytes plus their elements (and one byte each), sets the
/// sum of their elements.
pub fn value_size(v: &Value) -> usize {
    let Some((ty, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let number = |n: &str| {
        let digits = n
            .trim_start_matches('-')
            .split(['e', 'E'])
            .next()
            .unwrap_or_default()
            .replace('.', "");
        let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
        significant.div_ceil(2) + 1
    };
    let strings = |f: &dyn Fn(&str) -> usize| {
        inner
            .as_array()
            .map_or(0, |a| a.iter().filter_map(Value::as_str).map(f).sum())
    };
    match ty.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(0, number),
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" => strings(&str::len),
        "NS" => strings(&number),
        "BS" => strings(&|b| b.len() * 3 / 4),
        "L" => {
            3 + inner
                .as_array()
                .map_or(0, |a| a.iter().map(|e| 1 + value_size(e)).sum())
        }
        "M" => 3 + inner.as_object().map_or(0, |m| item_size_of(m) + m.len()),
        _ => 0,
    }
}

fn item_size_of(item: &serde_json::Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The size of an item (its attribute names and values), as DynamoDB bills it.
pub fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, item_size_of)
}

/// Units of `size` bytes at `per` bytes a unit, at least one.
fn units(size: usize, per: usize) -> f64 {
    size.div_ceil(per).max(1) as f64
}

/// What the table's index keeps of an item.
#[derive(Debug, Clone)]
pub struct IndexShape {
    /// The index's key attributes.
    pub keys: Vec<String>,
    /// `KEYS_ONLY` (else `ALL`).
    pub keys_only: bool,
}

/// What one item looks like to the meter.
#[derive(Debug, Clone, Default)]
struct Known {
    size: usize,
    kind: String,
    /// The item's index keys, when it has them all.
    index_key: Option<String>,
}

/// DynamoDB units, per operation and per item kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DynamoBill {
    /// Requests per operation (`PutItem`, `TransactWriteItems`, ...).
    pub requests: BTreeMap<String, u64>,
    /// Write request units per operation, the index's included.
    pub write_units: BTreeMap<String, f64>,
    /// Read request units per operation.
    pub read_units: BTreeMap<String, f64>,
    /// Write request units per item kind (the items' `kind`; `index` for the index's).
    pub write_units_by_kind: BTreeMap<String, f64>,
    /// Items written per kind (each Put, Update or Delete of an item).
    pub writes_by_kind: BTreeMap<String, u64>,
    /// The largest item written, per kind (bytes).
    pub largest_item: BTreeMap<String, usize>,
}

impl DynamoBill {
    pub fn total_write_units(&self) -> f64 {
        self.write_units.values().sum()
    }
    pub fn total_read_units(&self) -> f64 {
        self.read_units.values().sum()
    }
}

/// SNS requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnsBill {
    /// Messages published (PublishBatch entries count one each).
    pub messages: u64,
    /// Publish requests billed: started 64 KB of each message.
    pub billed_publishes: u64,
    /// Bytes of the messages.
    pub bytes: u64,
}

/// What one night was billed, counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NightBill {
    /// Services in the fleet.
    pub services: u64,
    /// Step Functions state transitions of the night's execution.
    pub transitions: u64,
    /// Lambda invocations and billed milliseconds per function, and each function's memory.
    pub invocations: BTreeMap<String, u64>,
    pub billed_ms: BTreeMap<String, u64>,
    pub memory_mb: BTreeMap<String, u64>,
    pub dynamodb: DynamoBill,
    pub sns: SnsBill,
    /// Bytes of the Embedded Metric Format lines the functions printed.
    pub emf_bytes: u64,
    /// Bytes of the functions' JSON log lines (`tracing` at `info`, as in Lambda).
    pub log_bytes: u64,
    /// The custom metrics those lines define (name and dimension values), each billed by the
    /// month whatever the fleet.
    pub metrics: std::collections::BTreeSet<String>,
    /// Schedule invocations (one a night).
    pub scheduler_invocations: u64,
}

impl NightBill {
    /// Lambda GB-seconds: each function's billed time × its memory.
    pub fn gb_seconds(&self) -> f64 {
        self.billed_ms
            .iter()
            .map(|(f, ms)| {
                *ms as f64 / 1000.0 * self.memory_mb.get(f).copied().unwrap_or(0) as f64 / 1024.0
            })
            .sum()
    }

    /// Dollars per line, at `p`.
    pub fn dollars(&self, p: &Prices) -> BTreeMap<&'static str, f64> {
        BTreeMap::from([
            ("Step Functions", self.transitions as f64 * p.transition),
            (
                "Lambda",
                self.invocations.values().sum::<u64>() as f64 * p.lambda_request
                    + self.gb_seconds() * p.lambda_gb_second,
            ),
            (
                "DynamoDB",
                self.dynamodb.total_write_units() * p.write_unit
                    + self.dynamodb.total_read_units() * p.read_unit,
            ),
            ("SNS", self.sns.billed_publishes as f64 * p.sns_publish),
            (
                "CloudWatch Logs",
                (self.emf_bytes + self.log_bytes) as f64 / 1e9 * p.log_gb,
            ),
            (
                "Scheduler",
                self.scheduler_invocations as f64 * p.scheduler_invocation,
            ),
        ])
    }
}

/// The custom metrics EMF lines define: `<name>{<dimension>=<value>,...}` for each metric of
/// each dimension set of each line.
pub fn emf_metrics<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeSet<String> {
    let mut metrics = std::collections::BTreeSet::new();
    for line in lines {
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        for directive in doc
            .pointer("/_aws/CloudWatchMetrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for names in directive["Dimensions"].as_array().into_iter().flatten() {
                let dims: Vec<String> = names
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|d| format!("{d}={}", doc[d].as_str().unwrap_or_default()))
                    .collect();
                for m in directive["Metrics"].as_array().into_iter().flatten() {
                    if let Some(name) = m["Name"].as_str() {
                        metrics.insert(format!("{name}{{{}}}", dims.join(",")));
                    }
                }
            }
        }
    }
    metrics
}

/// Counts what the requests it is shown cost.
#[derive(Debug, Clone)]
pub struct Meter {
    table_keys: [String; 2],
    index: Option<IndexShape>,
    items: HashMap<String, Known>,
    pub dynamodb: DynamoBill,
    pub sns: SnsBill,
}

/// A kind for items the meter cannot name.
const UNKNOWN: &str = "other";

impl Meter {
    /// A meter for a table keyed by `pk`/`sk` with `index`.
    pub fn new(pk: &str, sk: &str, index: Option<IndexShape>) -> Meter {
        Meter {
            table_keys: [pk.to_owned(), sk.to_owned()],
            index,
            items: HashMap::new(),
            dynamodb: DynamoBill::default(),
            sns: SnsBill::default(),
        }
    }

    /// A DynamoDB request (`X-Amz-Target` `DynamoDB_20120810.<op>`) and its answer; `ok` when
    /// it succeeded (a failed condition is billed as if it had written).
    pub fn dynamodb(&mut self, op: &str, req: &Value, resp: &Value, ok: bool) {
        *self.dynamodb.requests.entry(op.to_owned()).or_default() += 1;
        let consistent = req.get("ConsistentRead").and_then(Value::as_bool) == Some(true);
        let per_read = if consistent { 1.0 } else { 0.5 };
        match op {
            "PutItem" => self.put(op, &req["Item"], 1.0, ok),
            "UpdateItem" => self.update(op, req, 1.0, ok),
            "DeleteItem" => self.delete(op, &req["Key"], 1.0, ok),
            "BatchWriteItem" => {
                for requests in req["RequestItems"].as_object().into_iter().flatten() {
                    for w in requests.1.as_array().into_iter().flatten() {
                        if let Some(item) = w.pointer("/PutRequest/Item") {
                            self.put(op, item, 1.0, ok);
                        } else if let Some(key) = w.pointer("/DeleteRequest/Key") {
                            self.delete(op, key, 1.0, ok);
                        }
                    }
                }
            }
            "TransactWriteItems" => {
                for t in req["TransactItems"].as_array().into_iter().flatten() {
                    if let Some(put) = t.get("Put") {
                        self.put(op, &put["Item"], 2.0, ok);
                    } else if let Some(update) = t.get("Update") {
                        self.update(op, update, 2.0, ok);
                    } else if let Some(delete) = t.get("Delete") {
                        self.delete(op, &delete["Key"], 2.0, ok);
                    } else if let Some(check) = t.get("ConditionCheck") {
                        let size = self.known(&check["Key"]).map_or(0, |k| k.size);
                        self.charge_write(op, UNKNOWN, units(size, 1024) * 2.0);
                    }
                }
            }
            "GetItem" => {
                let size = resp.get("Item").map_or(0, item_size);
                self.charge_read(op, units(size, 4096) * per_read);
            }
            "BatchGetItem" => {
                for items in resp["Responses"].as_object().into_iter().flatten() {
                    for item in items.1.as_array().into_iter().flatten() {
                        self.charge_read(op, units(item_size(item), 4096) * per_read);
                    }
                }
            }
            "Query" | "Scan" => {
                let size: usize = resp["Items"]
                    .as_array()
                    .map_or(0, |a| a.iter().map(item_size).sum());
                self.charge_read(op, units(size, 4096) * per_read);
            }
            _ => {}
        }
    }

    fn charge_write(&mut self, op: &str, kind: &str, units: f64) {
        *self.dynamodb.write_units.entry(op.to_owned()).or_default() += units;
        *self
            .dynamodb
            .write_units_by_kind
            .entry(kind.to_owned())
            .or_default() += units;
    }

    fn charge_read(&mut self, op: &str, units: f64) {
        *self.dynamodb.read_units.entry(op.to_owned()).or_default() += units;
    }

    fn key_of(&self, item: &Value) -> String {
        self.table_keys
            .iter()
            .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\u{1}")
    }

    fn known(&self, key: &Value) -> Option<&Known> {
        self.items.get(&self.key_of(key))
    }

    fn index_key(&self, item: &Value) -> Option<String> {
        let index = self.index.as_ref()?;
        let parts: Option<Vec<String>> = index
            .keys
            .iter()
            .map(|k| item.get(k).map(Value::to_string))
            .collect();
        parts.map(|p| p.join("\u{1}"))
    }

    fn kind_of(item: &Value) -> String {
        item.pointer("/kind/S")
            .and_then(Value::as_str)
            .unwrap_or(UNKNOWN)
            .to_owned()
    }

    /// The index's writes when an item goes from `before` to `after` (`after_size` bytes).
    fn index_writes(&self, before: Option<&Known>, after: Option<(&str, usize)>) -> f64 {
        let Some(index) = &self.index else { return 0.0 };
        let before_key = before.and_then(|b| b.index_key.as_deref());
        match (before_key, after) {
            (None, None) => 0.0,
            (Some(_), None) => 1.0,
            (None, Some((_, size))) => units(if index.keys_only { 0 } else { size }, 1024),
            (Some(b), Some((a, size))) if b != a => {
                1.0 + units(if index.keys_only { 0 } else { size }, 1024)
            }
            (Some(_), Some((_, size))) => {
                if index.keys_only {
                    0.0
                } else {
                    units(size, 1024)
                }
            }
        }
    }

    fn put(&mut self, op: &str, item: &Value, factor: f64, ok: bool) {
        let key = self.key_of(item);
        let size = item_size(item);
        let kind = Self::kind_of(item);
        let kind_written = kind.clone();
        let before = self.items.get(&key).cloned();
        let index_key = self.index_key(item);
        let billed = size.max(before.as_ref().map_or(0, |b| b.size));
        self.charge_write(op, &kind, units(billed, 1024) * factor);
        *self
            .dynamodb
            .writes_by_kind
            .entry(kind.clone())
            .or_default() += 1;
        let largest = self.dynamodb.largest_item.entry(kind).or_default();
        *largest = (*largest).max(size);
        if !ok {
            return;
        }
        let index = self.index_writes(before.as_ref(), index_key.as_deref().map(|k| (k, size)));
        if index > 0.0 {
            self.charge_write(op, "index", index * factor);
        }
        self.items.insert(
            key,
            Known {
                size,
                kind: kind_written,
                index_key,
            },
        );
    }

    /// An update: priced on the larger of the item as last written and the item with the
    /// names and values this update sets (an upper bound of its new size).
    fn update(&mut self, op: &str, req: &Value, factor: f64, ok: bool) {
        let key_item = &req["Key"];
        let key = self.key_of(key_item);
        let before = self.items.get(&key).cloned();
        let set: usize = req["ExpressionAttributeNames"].as_object().map_or(0, |m| {
            m.values()
                .filter_map(Value::as_str)
                .map(str::len)
                .sum::<usize>()
        }) + req["ExpressionAttributeValues"]
            .as_object()
            .map_or(0, |m| m.values().map(value_size).sum::<usize>());
        let after = before
            .as_ref()
            .map_or(0, |b| b.size)
            .max(item_size(key_item) + set);
        // The kind this update sets, else the kind of the item as last written.
        let kind = req
            .pointer("/ExpressionAttributeValues/:kind/S")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| before.as_ref().map(|b| b.kind.clone()))
            .unwrap_or_else(|| UNKNOWN.to_owned());
        self.charge_write(op, &kind, units(after, 1024) * factor);
        *self
            .dynamodb
            .writes_by_kind
            .entry(kind.clone())
            .or_default() += 1;
        if !ok {
            return;
        }
        let index_key = before.as_ref().and_then(|b| b.index_key.clone());
        if let Some(k) = &index_key {
            let index = self.index_writes(before.as_ref(), Some((k, after)));
            if index > 0.0 {
                self.charge_write(op, "index", index * factor);
            }
        }
        self.items.insert(
            key,
            Known {
                size: after,
                kind,
                index_key,
            },
        );
    }

    fn delete(&mut self, op: &str, key_item: &Value, factor: f64, ok: bool) {
        let key = self.key_of(key_item);
        let before = self.items.get(&key).cloned();
        self.charge_write(
            op,
            "delete",
            units(before.as_ref().map_or(0, |b| b.size), 1024) * factor,
        );
        if !ok {
            return;
        }
        let index = self.index_writes(before.as_ref(), None);
        if index > 0.0 {
            self.charge_write(op, "index", index * factor);
        }
        self.items.remove(&key);
    }

    /// An SNS request: its form (`Action=Publish&Message=...` or `Action=PublishBatch&
    /// PublishBatchRequestEntries.member.N.Message=...`).
    pub fn sns(&mut self, form: &[(String, String)]) {
        for (k, v) in form {
            if k == "Message"
                || (k.starts_with("PublishBatchRequestEntries.") && k.ends_with(".Message"))
            {
                self.sns.messages += 1;
                self.sns.bytes += v.len() as u64;
                self.sns.billed_publishes += v.len().div_ceil(64 * 1024).max(1) as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meter(keys_only: bool) -> Meter {
        Meter::new(
            "pk",
            "sk",
            Some(IndexShape {
                keys: vec!["gsi1pk".into(), "gsi1sk".into()],
                keys_only,
            }),
        )
    }

    fn record(state: &str, padding: usize) -> Value {
        json!({
            "pk": {"S": "NIGHT#2026-12-03#B#1"}, "sk": {"S": "svc"},
            "gsi1pk": {"S": "svc"}, "gsi1sk": {"S": "NIGHT#2026-12-03"},
            "kind": {"S": "night_record"}, "state": {"S": state},
            "detail": {"S": "x".repeat(padding)},
        })
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(item_size(&json!({"ab": {"S": "héllo"}})), 2 + 6);
        assert_eq!(value_size(&json!({"N": "12345"})), 4);
        assert_eq!(value_size(&json!({"N": "-1.50"})), 2);
        assert_eq!(value_size(&json!({"BOOL": true})), 1);
        assert_eq!(value_size(&json!({"SS": ["a", "bc"]})), 3);
        assert_eq!(value_size(&json!({"L": [{"S": "a"}]})), 3 + 1 + 1);
        assert_eq!(value_size(&json!({"M": {"k": {"S": "v"}}})), 3 + 1 + 1 + 1);
    }

    #[test]
    fn writes_are_priced_per_started_kilobyte_and_doubled_in_transactions() {
        let mut m = meter(true);
        m.dynamodb(
            "PutItem",
            &json!({"Item": record("planned", 0)}),
            &json!({}),
            true,
        );
        // A new item in a KEYS_ONLY index: one unit for the item, one for the index.
        assert_eq!(m.dynamodb.total_write_units(), 2.0);
        let big = json!({"TransactItems": [{"Put": {"Item": record("started", 1500)}}]});
        m.dynamodb("TransactWriteItems", &big, &json!({}), true);
        // 2 KB, doubled; the index keys did not change: no index write.
        assert_eq!(m.dynamodb.write_units["TransactWriteItems"], 4.0);
        // Back to a small item: billed on the larger (the item before), 2 KB.
        m.dynamodb(
            "PutItem",
            &json!({"Item": record("completed", 0)}),
            &json!({}),
            false,
        );
        assert_eq!(m.dynamodb.write_units["PutItem"], 1.0 + 1.0 + 2.0);
    }

    #[test]
    fn an_all_projection_index_is_written_on_every_change() {
        let mut m = meter(false);
        for state in ["planned", "started", "completed"] {
            m.dynamodb(
                "PutItem",
                &json!({"Item": record(state, 0)}),
                &json!({}),
                true,
            );
        }
        assert_eq!(m.dynamodb.write_units_by_kind["index"], 3.0);
        m.dynamodb(
            "DeleteItem",
            &json!({"Key": record("x", 0)}),
            &json!({}),
            true,
        );
        assert_eq!(m.dynamodb.write_units_by_kind["index"], 4.0);
    }

    #[test]
    fn reads_sum_a_query_before_rounding_and_halve_eventual_ones() {
        let mut m = meter(true);
        let items: Vec<Value> = (0..10).map(|_| record("planned", 900)).collect();
        m.dynamodb("Query", &json!({}), &json!({"Items": items}), true);
        // About 10 KB: 3 units of 4 KB, halved.
        assert_eq!(m.dynamodb.read_units["Query"], 1.5);
        m.dynamodb(
            "GetItem",
            &json!({"ConsistentRead": true}),
            &json!({}),
            true,
        );
        assert_eq!(m.dynamodb.read_units["GetItem"], 1.0);
    }

    #[test]
    fn updates_are_priced_on_the_item_they_change() {
        let mut m = meter(true);
        let update = json!({
            "Key": {"pk": {"S": "NIGHT#2026-12-03"}, "sk": {"S": "INFLIGHT#a"}},
            "ExpressionAttributeNames": {"#c": "inflight"},
            "ExpressionAttributeValues": {":kind": {"S": "inflight"}, ":delta": {"N": "1"}},
        });
        m.dynamodb("UpdateItem", &update, &json!({}), true);
        assert_eq!(m.dynamodb.write_units_by_kind["inflight"], 1.0);
        assert_eq!(m.dynamodb.writes_by_kind["inflight"], 1);
    }

    #[test]
    fn emf_metrics_are_named_with_their_dimension_values() {
        let line = json!({
            "_aws": {"Timestamp": 0, "CloudWatchMetrics": [{
                "Namespace": "EcsNightlyRestart",
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": "Completed", "Unit": "Count"}, {"Name": "Failed"}],
            }]},
            "Function": "restarter", "Completed": 3, "Failed": 0,
        })
        .to_string();
        let metrics = emf_metrics([line.as_str(), line.as_str(), "not json"]);
        assert_eq!(
            metrics.into_iter().collect::<Vec<_>>(),
            [
                "Completed{Function=restarter}",
                "Failed{Function=restarter}"
            ]
        );
    }

    #[test]
    fn sns_bills_every_started_64_kb_of_each_entry() {
        let mut m = meter(true);
        let form = vec![
            ("Action".to_owned(), "PublishBatch".to_owned()),
            (
                "PublishBatchRequestEntries.member.1.Message".to_owned(),
                "x".repeat(70_000),
            ),
            (
                "PublishBatchRequestEntries.member.2.Message".to_owned(),
                "y".into(),
            ),
        ];
        m.sns(&form);
        assert_eq!((m.sns.messages, m.sns.billed_publishes), (2, 3));
    }
}
