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
//!   projection, only when an item gains or changes its index keys). Reads are attributed to
//!   the kinds of the items they return.
//! - SNS: a publish request per started 64 KB of each message (an entry of a PublishBatch is
//!   billed as its own publish).
//!
//! Lambda invocations and their durations are counted by the host itself; Step Functions'
//! state transitions, retries included, from the execution's history
//! ([`StepFunctionsBill::from_history`]); CloudWatch Logs from the EMF lines the functions
//! print, one or a few per invocation ([`EmfBill`]), and their JSON log lines ([`LogBill`]).
//! [`Prices`] turns the counts into dollars per line item ([`NightBill::items`]), and
//! [`project_month`] scales a measured night to a month of another fleet, each item by what it
//! grows with ([`Scale`]).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sfn::types::HistoryEvent;
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
    /// Read request units per kind of the items read (a Query's units shared by its items'
    /// bytes; `none` for reads that found nothing).
    pub read_units_by_kind: BTreeMap<String, f64>,
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

/// Step Functions: the billed state transitions of one execution, from its history. Standard
/// workflows bill a transition for every state entered and one more for every retry of a
/// Task (each attempt after the first). A retry shows in the history as a second
/// `TaskScheduled` (or `LambdaFunctionScheduled`, `ActivityScheduled`) after a failure of the
/// same entry of the state: its chain of `previousEventId`s leads back to the same
/// `TaskStateEntered`, in AWS and in moto alike.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepFunctionsBill {
    /// Billed transitions: `states_entered` + `retries`.
    pub transitions: u64,
    /// States entered.
    pub states_entered: u64,
    /// Task attempts after the first within one entry of a state.
    pub retries: u64,
    /// States entered, by state name.
    pub entered_by_state: BTreeMap<String, u64>,
    /// Retries, by state name.
    pub retries_by_state: BTreeMap<String, u64>,
    /// Batches run (iterations of the Map: [`BATCH_ENTRY`] entered).
    pub batches: u64,
    /// Polls of batches ([`POLL_ENTRY`] entered).
    pub polls: u64,
}

/// The state every batch's iteration enters first, once.
pub const BATCH_ENTRY: &str = "WaitForStart";
/// The state that polls a batch, once a poll.
pub const POLL_ENTRY: &str = "PollBatch";
/// The states of the Map's iteration entered once a poll (its loop); the other states of the
/// iteration are entered about once a batch, every state outside the Map once a night.
pub const POLL_LOOP_STATES: [&str; 3] = ["WaitBeforePoll", POLL_ENTRY, "BatchFinished?"];
/// The states of the Map's iteration outside the poll loop.
pub const BATCH_STATES: [&str; 7] = [
    BATCH_ENTRY,
    "StartBatch",
    "WaitWhilePaused",
    "BatchDone",
    "BatchHalted",
    "BatchFailed",
    "BatchFailedResult",
];

impl StepFunctionsBill {
    /// The bill of a history (every page of GetExecutionHistory, in any order).
    pub fn from_history(events: &[HistoryEvent]) -> StepFunctionsBill {
        let by_id: HashMap<i64, &HistoryEvent> = events.iter().map(|e| (e.id(), e)).collect();
        let mut bill = StepFunctionsBill::default();
        for e in events {
            if let Some(d) = e.state_entered_event_details()
                && e.r#type().as_str().ends_with("StateEntered")
            {
                bill.states_entered += 1;
                *bill
                    .entered_by_state
                    .entry(d.name().to_owned())
                    .or_default() += 1;
            }
        }
        // Attempts per entry of a state: the entered event each scheduled event leads back to.
        let mut attempts: HashMap<i64, (String, u64)> = HashMap::new();
        for e in events.iter().filter(|e| {
            matches!(
                e.r#type().as_str(),
                "TaskScheduled" | "LambdaFunctionScheduled" | "ActivityScheduled"
            )
        }) {
            let mut at = e.previous_event_id();
            // A chain is at most the whole history long; a broken one counts as a first attempt.
            for _ in 0..events.len() {
                let Some(prev) = by_id.get(&at) else { break };
                if prev.r#type().as_str().ends_with("StateEntered") {
                    let name = prev
                        .state_entered_event_details()
                        .map_or_else(String::new, |d| d.name().to_owned());
                    attempts.entry(prev.id()).or_insert((name, 0)).1 += 1;
                    break;
                }
                at = prev.previous_event_id();
            }
        }
        for (name, n) in attempts.into_values() {
            if n > 1 {
                bill.retries += n - 1;
                *bill.retries_by_state.entry(name).or_default() += n - 1;
            }
        }
        bill.transitions = bill.states_entered + bill.retries;
        bill.batches = bill.entered_by_state.get(BATCH_ENTRY).copied().unwrap_or(0);
        bill.polls = bill.entered_by_state.get(POLL_ENTRY).copied().unwrap_or(0);
        bill
    }

    /// States entered whose entries are in `states`.
    fn entered_in(&self, states: &[&str]) -> u64 {
        states
            .iter()
            .filter_map(|s| self.entered_by_state.get(*s))
            .sum()
    }
}

/// CloudWatch Logs: the Embedded Metric Format lines the functions printed, as written (one or
/// a few per invocation, whatever the fleet's size), per function (the lines' `Function`
/// dimension).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmfBill {
    pub lines: u64,
    /// Bytes ingested: each line and its newline.
    pub bytes: u64,
    pub lines_by_function: BTreeMap<String, u64>,
    pub bytes_by_function: BTreeMap<String, u64>,
}

impl EmfBill {
    /// The bill of the lines printed.
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> EmfBill {
        let mut bill = EmfBill::default();
        for line in lines {
            let function = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("Function")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| UNKNOWN.to_owned());
            let bytes = line.len() as u64 + 1;
            bill.lines += 1;
            bill.bytes += bytes;
            *bill.lines_by_function.entry(function.clone()).or_default() += 1;
            *bill.bytes_by_function.entry(function).or_default() += bytes;
        }
        bill
    }
}

/// CloudWatch Logs: the functions' JSON log lines (`tracing` at `info`, as in Lambda). A line
/// that names a service (a `service` field: a restart started, finished, skipped) is written
/// once per service; the others once or a few times per invocation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogBill {
    pub lines: u64,
    /// Bytes ingested: each line and its newline.
    pub bytes: u64,
    /// The lines naming a service, and their bytes.
    pub service_lines: u64,
    pub service_bytes: u64,
}

impl LogBill {
    /// Counts what a writer was given: whole lines, each ended by a newline.
    pub fn add(&mut self, written: &[u8]) {
        for line in written.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let bytes = line.len() as u64 + 1;
            self.lines += 1;
            self.bytes += bytes;
            let names_a_service = serde_json::from_slice::<Value>(line)
                .ok()
                .is_some_and(|v| v.get("service").is_some());
            if names_a_service {
                self.service_lines += 1;
                self.service_bytes += bytes;
            }
        }
    }
}

/// What one night was billed, counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NightBill {
    /// Services in the fleet.
    pub services: u64,
    pub step_functions: StepFunctionsBill,
    /// Lambda invocations and billed milliseconds per function, and each function's memory.
    pub invocations: BTreeMap<String, u64>,
    pub billed_ms: BTreeMap<String, u64>,
    pub memory_mb: BTreeMap<String, u64>,
    pub dynamodb: DynamoBill,
    pub sns: SnsBill,
    pub emf: EmfBill,
    /// The functions' log lines; `None` where they were not counted (`restart-local run`
    /// logs at `warn`, in text, on standard error).
    pub logs: Option<LogBill>,
    /// The custom metrics those lines define (name and dimension values), each billed by the
    /// month whatever the fleet.
    pub metrics: std::collections::BTreeSet<String>,
    /// Schedule invocations (one a night).
    pub scheduler_invocations: u64,
}

/// What a line item grows with, from one night to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// The fleet's services.
    Services,
    /// The night's batches.
    Batches,
    /// The polls of all batches.
    Polls,
    /// Services × polls a batch: each poll reads every record of its batch.
    ServicePolls,
    /// Lambda invocations (a start per batch, a poll per poll, a few a night).
    Invocations,
    /// Once a night.
    Fixed,
}

/// A night's size, in what line items grow with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Shape {
    pub services: f64,
    pub batches: f64,
    pub polls: f64,
    pub invocations: f64,
}

impl Shape {
    /// How many of `scale` this night has.
    pub fn of(&self, scale: Scale) -> f64 {
        match scale {
            Scale::Services => self.services,
            Scale::Batches => self.batches,
            Scale::Polls => self.polls,
            Scale::ServicePolls if self.batches > 0.0 => self.services * self.polls / self.batches,
            Scale::ServicePolls => 0.0,
            Scale::Invocations => self.invocations,
            Scale::Fixed => 1.0,
        }
    }
}

/// One line item of a night's bill: what was counted, its price and what it grows with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineItem {
    /// The service billed (`Step Functions`, `Lambda`, `DynamoDB`, `SNS`, `CloudWatch Logs`,
    /// `Scheduler`).
    pub line: &'static str,
    /// What is counted, e.g. `write units: night_record`.
    pub item: String,
    pub count: f64,
    /// The unit of `count` (`transitions`, `requests`, `GB-s`, `WRU`, `RRU`, `publishes`,
    /// `bytes`, `invocations`).
    pub unit: &'static str,
    pub dollars: f64,
    pub scale: Scale,
}

/// Item kinds written or read once a night.
const NIGHTLY_KINDS: [&str; 8] = [
    "plan",
    "lock",
    "inventory",
    "night_summary",
    "account_owner",
    "hold",
    "delete",
    "pause",
];

/// What DynamoDB writes of an item kind grow with.
fn write_scale(kind: &str) -> Scale {
    match kind {
        "batch" => Scale::Batches,
        k if NIGHTLY_KINDS.contains(&k) => Scale::Fixed,
        _ => Scale::Services,
    }
}

/// What DynamoDB reads of an item kind grow with: a poll reads its batch's records, the
/// clusters' tallies and the batch items; every invocation looks for the pause item (none:
/// reads that found nothing).
fn read_scale(kind: &str) -> Scale {
    match kind {
        "night_record" => Scale::ServicePolls,
        "inflight" | "batch" => Scale::Polls,
        "pause" | NOTHING => Scale::Invocations,
        k if NIGHTLY_KINDS.contains(&k) => Scale::Fixed,
        _ => Scale::Services,
    }
}

impl NightBill {
    /// Lambda GB-seconds of one function: its billed time × its memory.
    pub fn gb_seconds_of(&self, function: &str) -> f64 {
        let ms = self.billed_ms.get(function).copied().unwrap_or(0);
        let mb = self.memory_mb.get(function).copied().unwrap_or(0);
        ms as f64 / 1000.0 * mb as f64 / 1024.0
    }

    /// Lambda GB-seconds of every function.
    pub fn gb_seconds(&self) -> f64 {
        self.billed_ms.keys().map(|f| self.gb_seconds_of(f)).sum()
    }

    /// The night's size: its services, the batches and polls of its history, its invocations.
    pub fn shape(&self) -> Shape {
        Shape {
            services: self.services as f64,
            batches: self.step_functions.batches as f64,
            polls: self.step_functions.polls as f64,
            invocations: self.invocations.values().sum::<u64>() as f64,
        }
    }

    /// The invocations that are neither a batch's start nor a poll (inventory, the plan, the
    /// close, the notices, retries).
    fn nightly_invocations(&self) -> f64 {
        let sf = &self.step_functions;
        let per_batch = sf.entered_by_state.get("StartBatch").copied().unwrap_or(0) + sf.polls;
        (self.invocations.values().sum::<u64>() as f64 - per_batch as f64).max(0.0)
    }

    /// A production night of `services` in `batches` batches, with this night's other
    /// invocations: a batch is polled until its slowest restart ends, `normal_polls` times,
    /// or `slow_polls` times (the slow-restart waits' cap) when one of its restarts is stuck,
    /// each restart with the probability `stuck_share`.
    pub fn production_shape(
        &self,
        services: u64,
        batches: u64,
        stuck_share: f64,
        normal_polls: f64,
        slow_polls: f64,
    ) -> Shape {
        let batches = batches.max(1) as f64;
        let per_batch = services as f64 / batches;
        let stuck_batch = 1.0 - (1.0 - stuck_share).powf(per_batch);
        let polls = batches * (stuck_batch * slow_polls + (1.0 - stuck_batch) * normal_polls);
        Shape {
            services: services as f64,
            batches,
            polls,
            invocations: self.nightly_invocations() + batches + polls,
        }
    }

    /// Every line item of the night at `p`, each with what it grows with.
    pub fn items(&self, p: &Prices) -> Vec<LineItem> {
        let mut items = Vec::new();
        let mut item = |line, item: String, count: f64, unit, price: f64, scale| {
            items.push(LineItem {
                line,
                item,
                count,
                unit,
                dollars: count * price,
                scale,
            });
        };
        let sf = &self.step_functions;
        let poll_loop = sf.entered_in(&POLL_LOOP_STATES);
        let batch = sf.entered_in(&BATCH_STATES);
        let night = sf.states_entered.saturating_sub(poll_loop + batch);
        for (what, n, scale) in [
            ("transitions: the polls' loop", poll_loop, Scale::Polls),
            ("transitions: the batches", batch, Scale::Batches),
            ("transitions: the night", night, Scale::Fixed),
            ("transitions: retries", sf.retries, Scale::Invocations),
        ] {
            item(
                "Step Functions",
                what.to_owned(),
                n as f64,
                "transitions",
                p.transition,
                scale,
            );
        }
        for (f, n) in &self.invocations {
            let scale = if f == "restarter" {
                Scale::Invocations
            } else {
                Scale::Fixed
            };
            item(
                "Lambda",
                format!("requests: {f}"),
                *n as f64,
                "requests",
                p.lambda_request,
                scale,
            );
        }
        for f in self.billed_ms.keys() {
            item(
                "Lambda",
                format!("duration: {f}"),
                self.gb_seconds_of(f),
                "GB-s",
                p.lambda_gb_second,
                Scale::Services,
            );
        }
        let d = &self.dynamodb;
        for (kind, units) in &d.write_units_by_kind {
            item(
                "DynamoDB",
                format!("write units: {kind}"),
                *units,
                "WRU",
                p.write_unit,
                write_scale(kind),
            );
        }
        for (kind, units) in &d.read_units_by_kind {
            item(
                "DynamoDB",
                format!("read units: {kind}"),
                *units,
                "RRU",
                p.read_unit,
                read_scale(kind),
            );
        }
        item(
            "SNS",
            "publishes".to_owned(),
            self.sns.billed_publishes as f64,
            "publishes",
            p.sns_publish,
            Scale::Services,
        );
        for (f, bytes) in &self.emf.bytes_by_function {
            item(
                "CloudWatch Logs",
                format!("EMF: {f}"),
                *bytes as f64,
                "bytes",
                p.log_gb / 1e9,
                Scale::Invocations,
            );
        }
        if let Some(logs) = &self.logs {
            item(
                "CloudWatch Logs",
                "logs: lines naming a service".to_owned(),
                logs.service_bytes as f64,
                "bytes",
                p.log_gb / 1e9,
                Scale::Services,
            );
            item(
                "CloudWatch Logs",
                "logs: other lines".to_owned(),
                (logs.bytes - logs.service_bytes) as f64,
                "bytes",
                p.log_gb / 1e9,
                Scale::Invocations,
            );
        }
        item(
            "Scheduler",
            "invocations".to_owned(),
            self.scheduler_invocations as f64,
            "invocations",
            p.scheduler_invocation,
            Scale::Fixed,
        );
        items
    }

    /// Dollars per line, at `p`.
    pub fn dollars(&self, p: &Prices) -> BTreeMap<&'static str, f64> {
        let mut lines = BTreeMap::new();
        for i in self.items(p) {
            *lines.entry(i.line).or_default() += i.dollars;
        }
        lines
    }

    /// The night's statement at `p`: the counts, the line items, and a month of each fleet of
    /// `months`.
    pub fn statement(&self, p: &Prices, months: &[Shape]) -> Statement {
        let dollars = self.dollars(p);
        Statement {
            prices: "us-east-1 list prices, 2026-12-03",
            total_dollars: dollars.values().sum(),
            dollars,
            items: self.items(p),
            months: months.iter().map(|s| project_month(self, s, p)).collect(),
            bill: self.clone(),
        }
    }
}

/// Nights in a month.
pub const NIGHTS_A_MONTH: f64 = 30.0;

/// A line item of a month of another fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectedItem {
    pub line: &'static str,
    pub item: String,
    pub scale: Scale,
    /// The measured night's count and the other fleet's, a night.
    pub measured: f64,
    pub night: f64,
    pub unit: &'static str,
    /// Dollars a month (30 nights).
    pub dollars: f64,
}

/// A month of a fleet of `shape`, from a measured night.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthProjection {
    pub shape: Shape,
    pub items: Vec<ProjectedItem>,
    pub dollars: BTreeMap<&'static str, f64>,
    pub total_dollars: f64,
}

/// A month (30 nights) of a fleet of `shape`, each line item of `measured` scaled by what it
/// grows with: its count × the other night's services, batches, polls, service-polls or
/// invocations over the measured night's (a fixed item stays as it is). An item whose scale the
/// measured night has none of (no polls measured) is left at 0.
pub fn project_month(measured: &NightBill, shape: &Shape, p: &Prices) -> MonthProjection {
    let base = measured.shape();
    let items: Vec<ProjectedItem> = measured
        .items(p)
        .into_iter()
        .map(|i| {
            let from = base.of(i.scale);
            let ratio = if from > 0.0 {
                shape.of(i.scale) / from
            } else {
                0.0
            };
            ProjectedItem {
                line: i.line,
                item: i.item,
                scale: i.scale,
                measured: i.count,
                night: i.count * ratio,
                unit: i.unit,
                dollars: i.dollars * ratio * NIGHTS_A_MONTH,
            }
        })
        .collect();
    let mut dollars = BTreeMap::new();
    for i in &items {
        *dollars.entry(i.line).or_default() += i.dollars;
    }
    MonthProjection {
        shape: *shape,
        total_dollars: dollars.values().sum(),
        dollars,
        items,
    }
}

/// A night's bill as written to JSON: the counts, the line items with dollars, the totals and
/// months of other fleets.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub prices: &'static str,
    pub total_dollars: f64,
    pub dollars: BTreeMap<&'static str, f64>,
    pub items: Vec<LineItem>,
    pub months: Vec<MonthProjection>,
    pub bill: NightBill,
}

impl Statement {
    /// A few lines for a person: each line's counts and dollars, and the total.
    pub fn summary(&self) -> String {
        let b = &self.bill;
        let sf = &b.step_functions;
        let d = &b.dynamodb;
        let usd = |line: &str| self.dollars.get(line).copied().unwrap_or(0.0);
        let per_service = |x: f64| x / b.services.max(1) as f64;
        let invocations: u64 = b.invocations.values().sum();
        let logs = match &b.logs {
            Some(l) => format!("logs {} B", l.bytes),
            None => "logs not counted".to_owned(),
        };
        let rows = [
            (
                "Step Functions",
                format!(
                    "{} transitions ({} states entered, {} retries; {} batches, {} polls)",
                    sf.transitions, sf.states_entered, sf.retries, sf.batches, sf.polls
                ),
            ),
            (
                "Lambda",
                format!("{invocations} requests, {:.1} GB-s", b.gb_seconds()),
            ),
            (
                "DynamoDB",
                format!(
                    "{:.0} write units ({:.1} a service), {:.0} read units ({:.1} a service)",
                    d.total_write_units(),
                    per_service(d.total_write_units()),
                    d.total_read_units(),
                    per_service(d.total_read_units())
                ),
            ),
            (
                "SNS",
                format!("{} publishes, {} B", b.sns.billed_publishes, b.sns.bytes),
            ),
            (
                "CloudWatch Logs",
                format!(
                    "EMF {} lines, {} B ({:.0} B an invocation); {logs}",
                    b.emf.lines,
                    b.emf.bytes,
                    b.emf.bytes as f64 / invocations.max(1) as f64
                ),
            ),
            (
                "Scheduler",
                format!("{} invocations", b.scheduler_invocations),
            ),
        ];
        let mut out = format!(
            "The night's bill ({} services, {}): ${:.5}\n",
            b.services, self.prices, self.total_dollars
        );
        for (line, what) in rows {
            out.push_str(&format!("  {line:<16} ${:<9.5} {what}\n", usd(line)));
        }
        out
    }
}

/// Where `restart-local run` writes a night's statement: beside the JSON report
/// (`night.json` → `night.bill.json`), else beside the functions' log.
pub fn statement_path(
    report_json: Option<&std::path::Path>,
    functions_log: &std::path::Path,
) -> std::path::PathBuf {
    report_json
        .unwrap_or(functions_log)
        .with_extension("bill.json")
}

/// The bill of the night `execution_arn` ran on `stack` (of `services` services): its history
/// read back, the invocations the host counted and the requests it metered, each function's
/// memory from the template, the EMF `lines` the functions printed and their `logs` when
/// counted.
pub async fn measure(
    stack: &crate::LocalStack,
    execution_arn: &str,
    services: u64,
    lines: &[String],
    logs: Option<LogBill>,
) -> anyhow::Result<NightBill> {
    let sfn = aws_sdk_sfn::Client::new(&stack.sdk);
    let events = crate::night::history(&sfn, execution_arn).await?;
    let invocations = stack.host.invocations();
    let (dynamodb, sns) = stack.host.bill();
    Ok(NightBill {
        services,
        step_functions: StepFunctionsBill::from_history(&events),
        invocations: invocations.calls,
        billed_ms: invocations.billed_ms,
        memory_mb: crate::infra::Template::load(&crate::infra::infra_dir()?)?.memory_mb()?,
        dynamodb,
        sns,
        emf: EmfBill::from_lines(lines.iter().map(String::as_str)),
        logs,
        metrics: emf_metrics(lines.iter().map(String::as_str)),
        scheduler_invocations: 1,
    })
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
/// The kind of a read that found nothing.
const NOTHING: &str = "none";

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
                let items: Vec<&Value> = resp.get("Item").into_iter().collect();
                self.charge_read(op, &items, 4096, per_read);
            }
            "BatchGetItem" => {
                for items in resp["Responses"].as_object().into_iter().flatten() {
                    for item in items.1.as_array().into_iter().flatten() {
                        self.charge_read(op, &[item], 4096, per_read);
                    }
                }
            }
            "Query" | "Scan" => {
                let items: Vec<&Value> = resp["Items"].as_array().into_iter().flatten().collect();
                self.charge_read(op, &items, 4096, per_read);
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

    /// One read of `items` (summed before rounding to `per` bytes a unit), its units shared
    /// among the items' kinds by their bytes.
    fn charge_read(&mut self, op: &str, items: &[&Value], per: usize, factor: f64) {
        let sizes: Vec<(String, usize)> = items
            .iter()
            .map(|i| (Self::kind_of(i), item_size(i)))
            .collect();
        let total: usize = sizes.iter().map(|(_, n)| n).sum();
        let read = units(total, per) * factor;
        *self.dynamodb.read_units.entry(op.to_owned()).or_default() += read;
        let by_kind = &mut self.dynamodb.read_units_by_kind;
        if total == 0 {
            *by_kind.entry(NOTHING.to_owned()).or_default() += read;
            return;
        }
        for (kind, n) in sizes {
            *by_kind.entry(kind).or_default() += read * n as f64 / total as f64;
        }
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

    use aws_sdk_sfn::primitives::DateTime;
    use aws_sdk_sfn::types::{HistoryEventType, StateEnteredEventDetails};

    /// A history event `id` after `previous`; a state entered carries the state's name.
    fn event(id: i64, previous: i64, ty: HistoryEventType, state: Option<&str>) -> HistoryEvent {
        let mut e = HistoryEvent::builder()
            .id(id)
            .previous_event_id(previous)
            .r#type(ty)
            .timestamp(DateTime::from_secs(0));
        if let Some(name) = state {
            e = e.state_entered_event_details(
                StateEnteredEventDetails::builder()
                    .name(name)
                    .build()
                    .unwrap(),
            );
        }
        e.build().unwrap()
    }

    #[test]
    fn step_functions_bills_every_retry_of_a_task_as_a_transition() {
        use HistoryEventType as T;
        // Two batches polled at once (their events interleave): batch 1's poll fails twice
        // and is retried, batch 2's succeeds at once; then a legacy Lambda task retried once.
        let events = vec![
            event(1, 0, T::ExecutionStarted, None),
            event(2, 1, T::TaskStateEntered, Some("PollBatch")),
            event(3, 1, T::TaskStateEntered, Some("PollBatch")),
            event(4, 2, T::TaskScheduled, None),
            event(5, 3, T::TaskScheduled, None),
            event(6, 4, T::TaskStarted, None),
            event(7, 5, T::TaskStarted, None),
            event(8, 6, T::TaskFailed, None),
            event(9, 7, T::TaskSucceeded, None),
            event(10, 8, T::TaskScheduled, None),
            event(11, 10, T::TaskStarted, None),
            event(12, 11, T::TaskFailed, None),
            event(13, 12, T::TaskScheduled, None),
            event(14, 13, T::TaskStarted, None),
            event(15, 14, T::TaskSucceeded, None),
            event(16, 15, T::TaskStateExited, None),
            event(17, 9, T::TaskStateExited, None),
            event(18, 17, T::TaskStateEntered, Some("Summary")),
            event(19, 18, T::LambdaFunctionScheduled, None),
            event(20, 19, T::LambdaFunctionFailed, None),
            event(21, 20, T::LambdaFunctionScheduled, None),
            event(22, 21, T::LambdaFunctionSucceeded, None),
            event(23, 22, T::TaskStateExited, None),
            event(24, 23, T::ExecutionSucceeded, None),
        ];
        let sf = StepFunctionsBill::from_history(&events);
        assert_eq!(sf.states_entered, 3);
        assert_eq!(sf.retries, 3);
        assert_eq!(sf.transitions, 6);
        assert_eq!(
            sf.retries_by_state,
            BTreeMap::from([("PollBatch".to_owned(), 2), ("Summary".to_owned(), 1)])
        );
        assert_eq!((sf.polls, sf.batches), (2, 0));
        // The same history in another order (pages) bills the same.
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(StepFunctionsBill::from_history(&reversed).retries, 3);
        // Without retries, a transition per state entered.
        let plain: Vec<HistoryEvent> = events
            .iter()
            .filter(|e| ![10, 11, 12, 13, 14, 21].contains(&e.id()))
            .cloned()
            .collect();
        let sf = StepFunctionsBill::from_history(&plain);
        assert_eq!((sf.retries, sf.transitions), (0, 3));
    }

    #[test]
    fn emf_bytes_are_billed_per_line_written_per_function() {
        let line = |f: &str, n: u32| {
            json!({"_aws": {"CloudWatchMetrics": []}, "Function": f, "Started": n}).to_string()
        };
        let lines = [
            line("restarter", 1),
            line("restarter", 22),
            line("batcher", 3),
        ];
        let emf = EmfBill::from_lines(lines.iter().map(String::as_str));
        assert_eq!(emf.lines, 3);
        assert_eq!(emf.lines_by_function["restarter"], 2);
        let restarter = (lines[0].len() + lines[1].len() + 2) as u64;
        assert_eq!(emf.bytes_by_function["restarter"], restarter);
        assert_eq!(emf.bytes, restarter + lines[2].len() as u64 + 1);
    }

    #[test]
    fn log_lines_naming_a_service_are_told_apart() {
        let mut logs = LogBill::default();
        let started = r#"{"level":"INFO","message":"restart started","service":"a/b/c"}"#;
        let summary = r#"{"level":"INFO","message":"summary published"}"#;
        logs.add(format!("{started}\n").as_bytes());
        logs.add(format!("{summary}\n{summary}\n").as_bytes());
        assert_eq!((logs.lines, logs.service_lines), (3, 1));
        assert_eq!(logs.service_bytes, started.len() as u64 + 1);
        assert_eq!(
            logs.bytes,
            logs.service_bytes + 2 * (summary.len() as u64 + 1)
        );
    }

    #[test]
    fn reads_are_attributed_to_the_kinds_they_return() {
        let mut m = meter(true);
        let tally = json!({"pk": {"S": "N"}, "sk": {"S": "I"}, "kind": {"S": "inflight"},
                           "n": {"S": "x".repeat(3000)}});
        let records: Vec<Value> = vec![record("started", 4000), tally];
        m.dynamodb(
            "Query",
            &json!({"ConsistentRead": true}),
            &json!({"Items": records}),
            true,
        );
        m.dynamodb("GetItem", &json!({}), &json!({}), true);
        let by_kind = &m.dynamodb.read_units_by_kind;
        // About 7 KB: 2 units, shared by bytes (4 KB of record, 3 KB of tally).
        assert!((by_kind["night_record"] + by_kind["inflight"] - 2.0).abs() < 1e-9);
        assert!(by_kind["night_record"] > by_kind["inflight"]);
        assert_eq!(by_kind["none"], 0.5);
        assert_eq!(m.dynamodb.total_read_units(), 2.5);
    }

    /// A measured night: 400 services, 36 batches polled 80 times, 4 other invocations.
    fn night() -> NightBill {
        let dynamodb = DynamoBill {
            write_units_by_kind: BTreeMap::from([
                ("night_record".to_owned(), 2000.0),
                ("batch".to_owned(), 36.0),
                ("plan".to_owned(), 1.0),
            ]),
            write_units: BTreeMap::from([("PutItem".to_owned(), 2037.0)]),
            read_units_by_kind: BTreeMap::from([
                ("night_record".to_owned(), 880.0),
                ("inflight".to_owned(), 1600.0),
            ]),
            ..DynamoBill::default()
        };
        let mut entered = BTreeMap::from([
            ("WaitForStart".to_owned(), 36),
            ("StartBatch".to_owned(), 36),
            ("BatchDone".to_owned(), 36),
            ("WaitBeforePoll".to_owned(), 80),
            ("PollBatch".to_owned(), 80),
            ("BatchFinished?".to_owned(), 80),
        ]);
        entered.insert("Inventory".to_owned(), 1);
        NightBill {
            services: 400,
            step_functions: StepFunctionsBill {
                transitions: 352,
                states_entered: 349,
                retries: 3,
                entered_by_state: entered,
                retries_by_state: BTreeMap::new(),
                batches: 36,
                polls: 80,
            },
            invocations: BTreeMap::from([
                ("restarter".to_owned(), 117),
                ("inventory".to_owned(), 1),
                ("batcher".to_owned(), 1),
                ("notifier".to_owned(), 1),
            ]),
            billed_ms: BTreeMap::from([("restarter".to_owned(), 400_000)]),
            memory_mb: BTreeMap::from([("restarter".to_owned(), 512)]),
            dynamodb,
            sns: SnsBill {
                messages: 10,
                billed_publishes: 10,
                bytes: 1000,
            },
            emf: EmfBill::from_lines(
                std::iter::repeat_n(r#"{"Function":"restarter"}"#, 117)
                    .chain(std::iter::repeat_n(r#"{"Function":"batcher"}"#, 1)),
            ),
            logs: Some(LogBill {
                lines: 900,
                bytes: 90_000,
                service_lines: 800,
                service_bytes: 80_000,
            }),
            metrics: Default::default(),
            scheduler_invocations: 1,
        }
    }

    fn item<'a>(items: &'a [ProjectedItem], what: &str) -> &'a ProjectedItem {
        items.iter().find(|i| i.item == what).unwrap()
    }

    #[test]
    fn line_items_split_transitions_by_what_they_grow_with() {
        let bill = night();
        let items = bill.items(&US_EAST_1);
        let count = |what: &str| items.iter().find(|i| i.item == what).unwrap().count;
        assert_eq!(count("transitions: the polls' loop"), 240.0);
        assert_eq!(count("transitions: the batches"), 108.0);
        assert_eq!(count("transitions: the night"), 1.0);
        assert_eq!(count("transitions: retries"), 3.0);
        let dollars = bill.dollars(&US_EAST_1);
        assert!((dollars["Step Functions"] - 352.0 * US_EAST_1.transition).abs() < 1e-12);
        assert!((dollars["Lambda"] - (120.0 * 0.2e-6 + 200.0 * 0.000_013_333_4)).abs() < 1e-9);
        let statement = bill.statement(&US_EAST_1, &[]);
        assert!((statement.total_dollars - dollars.values().sum::<f64>()).abs() < 1e-12);
        let summary = statement.summary();
        assert!(
            summary.contains("352 transitions (349 states entered, 3 retries"),
            "{summary}"
        );
        assert!(summary.contains("EMF 118 lines"), "{summary}");
    }

    #[test]
    fn a_month_scales_each_item_by_its_own_rule() {
        let bill = night();
        // Ten times the services, the same 36 batches, 24 polls each.
        let shape = Shape {
            services: 4000.0,
            batches: 36.0,
            polls: 864.0,
            invocations: 3.0 + 36.0 + 864.0,
        };
        let month = project_month(&bill, &shape, &US_EAST_1);
        let i = &month.items;
        // Polls: 864 / 80; batches and the night: as measured.
        assert!((item(i, "transitions: the polls' loop").night - 240.0 * 10.8).abs() < 1e-9);
        assert_eq!(item(i, "transitions: the batches").night, 108.0);
        assert_eq!(item(i, "transitions: the night").night, 1.0);
        // Invocations: 903 / 120.
        assert!((item(i, "transitions: retries").night - 3.0 * 903.0 / 120.0).abs() < 1e-9);
        assert!(
            (item(i, "EMF: restarter").night
                - bill.emf.bytes_by_function["restarter"] as f64 * 903.0 / 120.0)
                .abs()
                < 1e-6
        );
        // Services: × 10; the batch items and the plan as measured.
        assert_eq!(item(i, "write units: night_record").night, 20_000.0);
        assert_eq!(item(i, "write units: batch").night, 36.0);
        assert_eq!(item(i, "write units: plan").night, 1.0);
        assert_eq!(item(i, "logs: lines naming a service").night, 800_000.0);
        assert!((item(i, "logs: other lines").night - 10_000.0 * 903.0 / 120.0).abs() < 1e-6);
        // Service-polls: services × polls a batch, 4000 × 24 over 400 × 80 / 36.
        let sp = 4000.0 * 24.0 / (400.0 * 80.0 / 36.0);
        assert!((item(i, "read units: night_record").night - 880.0 * sp).abs() < 1e-6);
        assert!((item(i, "read units: inflight").night - 1600.0 * 10.8).abs() < 1e-6);
        // Dollars: a night's × 30.
        let sfn = item(i, "transitions: the polls' loop");
        assert!((sfn.dollars - sfn.night * US_EAST_1.transition * 30.0).abs() < 1e-12);
        assert!(
            (month.total_dollars - month.items.iter().map(|i| i.dollars).sum::<f64>()).abs() < 1e-9
        );
        // The measured night's own shape projects to 30 of itself.
        let same = project_month(&bill, &bill.shape(), &US_EAST_1);
        let night_total: f64 = bill.dollars(&US_EAST_1).values().sum();
        assert!((same.total_dollars - 30.0 * night_total).abs() < 1e-9);
    }

    #[test]
    fn production_polls_follow_the_chance_of_a_stuck_restart_in_a_batch() {
        let bill = night();
        let polls_a_batch = |services| {
            let s = bill.production_shape(services, 36, 0.005, 10.0, 24.0);
            s.polls / s.batches
        };
        // 28, 278 and 2,778 services a batch: one of them stuck 13 %, 75 %, 100 % of the time.
        assert!((polls_a_batch(1_000) - 11.82).abs() < 0.01);
        assert!((polls_a_batch(10_000) - 20.52).abs() < 0.01);
        assert!((polls_a_batch(100_000) - 24.0).abs() < 0.01);
        let s = bill.production_shape(10_000, 36, 0.005, 10.0, 24.0);
        // The measured night's other invocations (120 less 36 starts and 80 polls), a start
        // per batch, one per poll.
        assert!((s.invocations - (4.0 + 36.0 + s.polls)).abs() < 1e-9);
    }

    #[test]
    fn the_poll_loop_and_batch_states_are_the_definitions_map_iteration() {
        let path = crate::infra::infra_dir()
            .unwrap()
            .join("statemachine/nightly-restart.asl.json");
        let definition: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let iteration = definition
            .pointer("/States/RestartBatches/ItemProcessor/States")
            .and_then(Value::as_object)
            .unwrap();
        let mut named: Vec<&str> = POLL_LOOP_STATES
            .iter()
            .chain(&BATCH_STATES)
            .copied()
            .collect();
        named.sort_unstable();
        let mut states: Vec<&str> = iteration.keys().map(String::as_str).collect();
        states.sort_unstable();
        assert_eq!(named, states);
        // The poll loop: wait, poll, choice, and back to the wait.
        let next = |s: &str| iteration[s]["Next"].as_str().map(str::to_owned);
        assert_eq!(next("WaitBeforePoll").as_deref(), Some(POLL_ENTRY));
        assert_eq!(next(POLL_ENTRY).as_deref(), Some("BatchFinished?"));
        assert_eq!(
            iteration["BatchFinished?"]["Default"],
            json!("WaitBeforePoll")
        );
        assert_eq!(
            definition.pointer("/States/RestartBatches/ItemProcessor/StartAt"),
            Some(&json!(BATCH_ENTRY))
        );
    }

    #[test]
    fn the_statement_is_written_beside_the_report() {
        use std::path::Path;
        let log = Path::new("/tmp/local-stack-functions-7.log");
        assert_eq!(
            statement_path(Some(Path::new("out/night.json")), log),
            Path::new("out/night.bill.json")
        );
        assert_eq!(
            statement_path(None, log),
            Path::new("/tmp/local-stack-functions-7.bill.json")
        );
    }
}
