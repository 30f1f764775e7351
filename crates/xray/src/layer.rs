//! The `tracing` layer: spans and events of an invocation become subsegments, sent when the
//! invocation's span closes.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::daemon::Daemon;
use crate::document::{self, AwsCall, Node};
use crate::header::TraceHeader;
use crate::{AWS_CALL_TARGET, INVOCATION, TRACE_ANNOTATIONS};

/// Subsegments kept one by one in an invocation (beyond the invocation's own); the rest are
/// summarized in its metadata. X-Ray's SDKs stream a segment's subsegments past 100; a trace
/// holds at most 500 kB of documents, which 500 subsegments of a few hundred bytes keep under
/// with the other functions' share.
pub const MAX_SUBSEGMENTS: usize = 500;

/// A pace wait shorter than this (seconds) did not wait: it is counted in the summary, not
/// kept one by one, so that the calls it paces keep the budget.
pub const MIN_PACE_WAIT: f64 = 0.001;

/// Kinds of summarized subsegments kept in the summary (the rest are only counted), so that
/// the invocation's own document stays small.
pub const MAX_SUMMARY_ENTRIES: usize = 100;

/// The layer as installed: [`Spans`] behind [`XrayFilter`], so that no other layer sees a span
/// or an event only this one wants, and this one sees nothing else.
pub type XrayLayer<S> = Filtered<Spans, XrayFilter, S>;

/// The layer sending the invocations' subsegments to `daemon`.
pub fn layer<S>(daemon: Daemon) -> XrayLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    Spans { daemon }.with_filter(XrayFilter)
}

/// What the layer looks at: spans named `xray.*`, spans with a field the trace is annotated
/// with (`night`, `batch`, `mode`), and the AWS call events. Decided once per call site.
#[derive(Debug, Clone, Copy)]
pub struct XrayFilter;

impl XrayFilter {
    fn wanted(meta: &Metadata<'_>) -> bool {
        if meta.target() == AWS_CALL_TARGET {
            return true;
        }
        meta.is_span()
            && (meta.name().starts_with("xray.")
                || TRACE_ANNOTATIONS
                    .iter()
                    .any(|name| meta.fields().field(name).is_some()))
    }
}

impl<S> Filter<S> for XrayFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

/// The layer itself (see [`layer`]).
#[derive(Debug)]
pub struct Spans {
    daemon: Daemon,
}

/// One sampled invocation: its trace, and what it recorded so far.
#[derive(Debug)]
struct Trace {
    header: TraceHeader,
    daemon: Daemon,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    nodes: Vec<Node>,
    kept: usize,
    summary: BTreeMap<SummaryKey, Tally>,
    unsummarized: u64,
    annotations: Map<String, Value>,
    sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SummaryKey {
    name: String,
    operation: Option<String>,
    account: Option<String>,
    region: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    count: u64,
    errors: u64,
    throttled: u64,
    seconds: f64,
}

impl State {
    /// Whether one more subsegment is kept one by one.
    fn reserve(&mut self) -> bool {
        let keep = self.kept < MAX_SUBSEGMENTS;
        self.kept += usize::from(keep);
        keep
    }

    fn summarize(&mut self, key: SummaryKey, seconds: f64, error: bool, throttled: bool) {
        if !self.summary.contains_key(&key) && self.summary.len() >= MAX_SUMMARY_ENTRIES {
            self.unsummarized += 1;
            return;
        }
        let t = self.summary.entry(key).or_default();
        t.count += 1;
        t.errors += u64::from(error);
        t.throttled += u64::from(throttled);
        t.seconds += seconds;
    }

    fn summary_json(&self) -> Option<Value> {
        if self.summary.is_empty() && self.unsummarized == 0 {
            return None;
        }
        let entries: Vec<Value> = self
            .summary
            .iter()
            .map(|(k, t)| {
                let mut e = Map::new();
                e.insert("name".into(), json!(k.name));
                for (key, value) in [
                    ("operation", &k.operation),
                    ("account", &k.account),
                    ("region", &k.region),
                ] {
                    if let Some(v) = value {
                        e.insert(key.into(), json!(v));
                    }
                }
                e.insert("count".into(), json!(t.count));
                e.insert("errors".into(), json!(t.errors));
                e.insert("throttled".into(), json!(t.throttled));
                e.insert("seconds".into(), json!((t.seconds * 1e6).round() / 1e6));
                Value::Object(e)
            })
            .collect();
        Some(json!({ "entries": entries, "uncounted_kinds": self.unsummarized }))
    }
}

/// An open span that is a subsegment (the invocation, or an `xray.*` span inside one).
#[derive(Debug)]
struct Open {
    trace: Arc<Trace>,
    node: Node,
    /// Kept one by one (else summarized when it closes).
    kept: bool,
    /// The id its children name as parent: its own when kept, else its nearest kept ancestor's.
    parent_of_children: String,
    root: bool,
    /// Subsegments recorded as its children so far.
    children: AtomicU64,
}

impl<S> Layer<S> for Spans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let name = attrs.metadata().name();
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if name == INVOCATION {
            let header = fields.take_str("trace_header");
            let Some(header) = header.as_deref().and_then(TraceHeader::sampled) else {
                return;
            };
            let function = fields.take_str("function").unwrap_or_default();
            let node = Node {
                id: new_id(),
                parent: header.parent_id.clone(),
                name: function,
                start: now(),
                end: 0.0,
                aws: None,
                annotations: Map::new(),
                metadata: Map::new(),
            };
            let trace = Arc::new(Trace {
                header,
                daemon: self.daemon.clone(),
                state: Mutex::new(State::default()),
            });
            let mut open = Open {
                parent_of_children: document::hex_id(node.id),
                trace,
                node,
                kept: true,
                root: true,
                children: AtomicU64::new(0),
            };
            fields.apply(&mut open);
            span.extensions_mut().insert(open);
            return;
        }
        let Some((trace, parent)) = enclosing(span.parent()) else {
            return;
        };
        if let Some(kind) = name.strip_prefix("xray.") {
            let kept = lock(&trace).reserve();
            let node = Node {
                id: new_id(),
                parent: parent.clone(),
                name: subsegment_name(kind, &fields),
                start: now(),
                end: 0.0,
                aws: None,
                annotations: Map::new(),
                metadata: Map::new(),
            };
            let mut open = Open {
                parent_of_children: if kept {
                    document::hex_id(node.id)
                } else {
                    parent
                },
                trace,
                node,
                kept,
                root: false,
                children: AtomicU64::new(0),
            };
            fields.apply(&mut open);
            span.extensions_mut().insert(open);
        } else {
            fields.annotate(&trace);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(open) = span.extensions_mut().get_mut::<Open>() {
            fields.apply(open);
            return;
        }
        if let Some((trace, _)) = enclosing(span.parent()) {
            fields.annotate(&trace);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != AWS_CALL_TARGET {
            return;
        }
        let Some((trace, parent)) = enclosing(ctx.event_scope(event).and_then(|mut s| s.next()))
        else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let end = now();
        let start = fields.take_f64("start").unwrap_or(end).min(end);
        let service = fields.take_str("service").unwrap_or_default();
        let call = AwsCall {
            operation: fields.take_str("operation").unwrap_or_default(),
            region: fields.take_str("region"),
            account: fields.take_str("account"),
            table: fields.take_str("table"),
            status: fields.take_u64("status"),
            attempts: fields.take_u64("attempts").unwrap_or(1),
            throttled: fields.take_bool("throttled").unwrap_or(false),
            ok: fields.take_bool("ok").unwrap_or(true),
            error_code: fields.take_str("error_code"),
        };
        let error_class = fields.take_str("error_class");
        let mut state = lock(&trace);
        if state.sent {
            return;
        }
        if !state.reserve() {
            let key = SummaryKey {
                name: service,
                operation: Some(call.operation.clone()),
                account: call.account.clone(),
                region: call.region.clone(),
            };
            state.summarize(key, end - start, !call.ok, call.throttled);
            return;
        }
        let mut annotations = Map::new();
        if let Some(account) = &call.account {
            annotations.insert("account".into(), document::annotation(json!(account)));
        }
        let mut metadata = Map::new();
        if let Some(code) = &call.error_code {
            metadata.insert("error_code".into(), document::metadata(json!(code)));
        }
        if let Some(class) = error_class {
            metadata.insert("error_class".into(), document::metadata(json!(class)));
        }
        metadata.insert("attempts".into(), json!(call.attempts));
        state.nodes.push(Node {
            id: new_id(),
            parent,
            name: service,
            start,
            end,
            aws: Some(call),
            annotations,
            metadata,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        open.node.end = now();
        let trace = open.trace;
        let mut state = lock(&trace);
        if open.root {
            state.sent = true;
            let mut node = open.node;
            for (k, v) in std::mem::take(&mut state.annotations) {
                node.annotations.insert(k, v);
            }
            if let Some(summary) = state.summary_json() {
                node.metadata.insert("summarized".into(), summary);
            }
            let mut nodes = std::mem::take(&mut state.nodes);
            nodes.push(node);
            drop(state);
            send(&trace, &nodes);
        } else if !open.kept
            || (open.node.name.starts_with("pace_wait")
                && open.node.end - open.node.start < MIN_PACE_WAIT
                && open.children.load(Ordering::Relaxed) == 0)
        {
            state.kept -= usize::from(open.kept);
            let key = SummaryKey {
                name: open.node.name,
                operation: None,
                account: open
                    .node
                    .annotations
                    .get("account")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                region: None,
            };
            if !state.sent {
                state.summarize(key, open.node.end - open.node.start, false, false);
            }
        } else if state.sent {
            // A span that outlived its invocation (a task it spawned): its document goes alone.
            drop(state);
            send(&trace, std::slice::from_ref(&open.node));
        } else {
            state.nodes.push(open.node);
        }
    }
}

fn send(trace: &Trace, nodes: &[Node]) {
    for doc in document::pack(&trace.header.trace_id, nodes) {
        trace.daemon.send(&doc);
    }
}

fn lock(trace: &Trace) -> std::sync::MutexGuard<'_, State> {
    trace.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The nearest open subsegment from `span` up: its trace, and the id a child names as parent.
fn enclosing<S>(
    span: Option<tracing_subscriber::registry::SpanRef<'_, S>>,
) -> Option<(Arc<Trace>, String)>
where
    S: for<'a> LookupSpan<'a>,
{
    span?.scope().find_map(|s| {
        s.extensions().get::<Open>().map(|o| {
            o.children.fetch_add(1, Ordering::Relaxed);
            (o.trace.clone(), o.parent_of_children.clone())
        })
    })
}

/// `account 123456789012 eu-west-1`, `pace_wait update_service`, or the kind alone.
fn subsegment_name(kind: &str, fields: &Fields) -> String {
    let detail: Vec<String> = ["account", "region", "what"]
        .iter()
        .filter_map(|k| fields.get(k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} {}", detail.join(" "))
    }
}

/// Epoch seconds, to the microsecond.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_micros() as f64 / 1e6)
}

/// A random, non-zero 64-bit id: the process's random hash keys over a counter.
fn new_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEYS: RandomState = RandomState::new();
    }
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = KEYS.with(|k| {
            let mut h = k.build_hasher();
            h.write_u64(n);
            h.finish()
        });
        if id != 0 {
            return id;
        }
    }
}

/// A span's or an event's fields, by name.
#[derive(Debug, Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| *k == name)?;
        Some(self.0.remove(at).1)
    }

    fn take_str(&mut self, name: &str) -> Option<String> {
        match self.take(name)? {
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }

    fn take_u64(&mut self, name: &str) -> Option<u64> {
        self.take(name)?.as_u64()
    }

    fn take_f64(&mut self, name: &str) -> Option<f64> {
        self.take(name)?.as_f64()
    }

    fn take_bool(&mut self, name: &str) -> Option<bool> {
        self.take(name)?.as_bool()
    }

    /// The trace's annotations (`night`, `batch`, `mode`) among these fields.
    fn annotate(&mut self, trace: &Trace) {
        let found: Vec<(&str, Value)> = TRACE_ANNOTATIONS
            .iter()
            .filter_map(|name| Some((*name, self.take(name)?)))
            .collect();
        if found.is_empty() {
            return;
        }
        let mut state = lock(trace);
        for (name, value) in found {
            state
                .annotations
                .insert(name.to_owned(), document::annotation(value));
        }
    }

    /// The fields of a subsegment's span: the trace's annotations go to the trace, `account`
    /// and `region` become the subsegment's annotations, the rest its metadata.
    fn apply(mut self, open: &mut Open) {
        self.annotate(&open.trace);
        for (name, value) in self.0 {
            if matches!(name, "account" | "region") {
                open.node
                    .annotations
                    .insert(name.to_owned(), document::annotation(value));
            } else if !matches!(name, "function" | "trace_header") {
                open.node
                    .metadata
                    .insert(name.to_owned(), document::metadata(value));
            }
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(json!(value.to_string()), Value::Number);
        self.0.push((field.name(), v));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), json!(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), json!(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), json!(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), json!(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name(), json!(format!("{value:?}"))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_daemon_that_takes_nothing_drops_every_document_and_the_work_goes_on() {
        let daemon = Daemon::full();
        let dispatch =
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer(daemon.clone())));
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let done = tracing::dispatcher::with_default(&dispatch, || {
            crate::invocation("batcher", Some(header)).in_scope(|| {
                let mut total = 0;
                for i in 0..2000u64 {
                    let s = tracing::trace_span!("xray.account", account = i);
                    total += s.in_scope(|| i);
                }
                total
            })
        });
        assert_eq!(done, (0..2000).sum::<u64>());
        // Every document given up at once: none sent, none retried, none waited for.
        assert_eq!(daemon.sent(), 0);
        assert!(daemon.dropped() >= 1);
        let recording = Daemon::recording();
        let dispatch =
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer(recording.clone())));
        tracing::dispatcher::with_default(&dispatch, || {
            crate::invocation("batcher", Some(header)).in_scope(|| {
                for i in 0..2000u64 {
                    let s = tracing::trace_span!("xray.account", account = i);
                    drop(s.enter());
                }
            })
        });
        assert_eq!(daemon.dropped(), recording.recorded().len() as u64);
    }
}
