//! The local X-Ray daemon: a UDP listener on a free loopback port that stands in for the
//! daemon Lambda runs beside a function. The functions (in the Lambda host's process) send
//! what AWS's daemon would receive: datagrams of a header line `{"format": "json",
//! "version": 1}` and one segment document. Each datagram is parsed and kept; one that is not
//! a header and a JSON object is counted with its reason and kept out.
//!
//! The Lambda host makes the trace headers Lambda would pass (one trace per night, a new
//! parent id per invocation, sampled) and records each invocation as the function segment
//! Lambda itself would send ([`Tracing::begin`], [`Tracing::end`]), so that every document's
//! parent is in its trace. [`Traces`] is what `restart-local run` writes beside the report
//! (`traces.json`), grouped by trace; [`Traces::problems`] checks each document against the
//! segment document schema, and [`Traces::time_spent`] is the report's view of where the
//! night's time went.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::{BuildHasher as _, Hasher as _, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use restart_xray::Daemon;
use restartctl::report::{AccountTime, OperationTime, TimeSpent};
use serde::Serialize;
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;
use tracing::Dispatch;
use tracing::instrument::{Instrument as _, WithSubscriber as _};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The largest segment document X-Ray takes (64 kB).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// A datagram the stack sends to itself to learn that everything sent before it was read
/// ([`TraceListener::flush`]); never a segment document.
const FLUSH_MARK: &[u8] = b"\0local-stack flush ";

/// The reasons kept of bad datagrams (the count has them all).
const BAD_REASONS_KEPT: usize = 20;

/// What the listener has read so far.
#[derive(Debug, Clone, Default)]
struct Received {
    /// The datagrams, as they arrived (parsed when read: the reading thread only copies, so
    /// that a burst of an invocation's documents does not overflow the socket's queue).
    datagrams: Vec<Vec<u8>>,
    /// Their bytes, and those not kept past [`MAX_KEPT_BYTES`].
    kept_bytes: usize,
    not_kept: u64,
    /// The function segments the Lambda host recorded, one per invocation.
    invocations: Vec<Value>,
}

#[derive(Debug)]
struct Shared {
    received: Mutex<Received>,
    /// The last flush mark read.
    flushed: watch::Sender<u64>,
    stop: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            received: Mutex::new(Received::default()),
            flushed: watch::channel(0).0,
            stop: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The receive buffer asked for: an invocation sends its documents (up to 62 kB each) at once
/// when it ends, and the default buffer (about 200 kB on Linux) holds only a few of them. The
/// kernel caps it at `net.core.rmem_max`.
const RECEIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What the listener keeps at most (`restart-local up` may serve many nights): later datagrams
/// are counted, not kept.
const MAX_KEPT_BYTES: usize = 512 * 1024 * 1024;

/// How often the reading thread looks whether it should stop, when nothing arrives.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The UDP listener, reading on its own thread until stopped or dropped (also while a panic
/// unwinds).
#[derive(Debug)]
pub struct TraceListener {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    marks: AtomicU64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TraceListener {
    /// Binds a free loopback port and starts reading.
    pub fn start() -> anyhow::Result<TraceListener> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        // Best effort: the kernel keeps what it allows.
        let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let socket: std::net::UdpSocket = socket.into();
        socket.set_read_timeout(Some(STOP_CHECK))?;
        let addr = socket.local_addr()?;
        let shared = Arc::new(Shared::new());
        let reader = shared.clone();
        let thread = std::thread::Builder::new()
            .name("xray-listener".into())
            .spawn(move || read(&socket, &reader))?;
        Ok(TraceListener {
            addr,
            shared,
            marks: AtomicU64::new(0),
            thread: Some(thread),
        })
    }

    /// Waits until every datagram sent to the listener before this call has been read: sends
    /// a mark and waits for it. A datagram on loopback is queued at the receiver when its send
    /// returns, so whatever a function sent before its invocation answered is read by then.
    pub async fn flush(&self) -> anyhow::Result<()> {
        let mark = self.marks.fetch_add(1, Ordering::Relaxed) + 1;
        let mut seen = self.shared.flushed.subscribe();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let mut datagram = FLUSH_MARK.to_vec();
        datagram.extend_from_slice(mark.to_string().as_bytes());
        socket.send_to(&datagram, self.addr).await?;
        tokio::time::timeout(Duration::from_secs(10), seen.wait_for(|m| *m >= mark))
            .await
            .map_err(|_| anyhow::anyhow!("the X-Ray listener at {} is not reading", self.addr))?
            .map_err(|_| anyhow::anyhow!("the X-Ray listener at {} stopped", self.addr))?;
        Ok(())
    }

    /// Everything read so far, grouped by trace.
    pub fn traces(&self) -> Traces {
        Traces::of(&self.shared.lock())
    }

    /// Stops reading and waits for the thread.
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TraceListener {
    fn drop(&mut self) {
        // The thread ends within STOP_CHECK; nothing waits for it here.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// The reading thread: copies each datagram, answers flush marks, until told to stop.
fn read(socket: &std::net::UdpSocket, shared: &Shared) {
    // A datagram on loopback is at most 65,507 bytes: it always fits whole.
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _)) => n,
            // The read timeout (nothing arrived), an ICMP error of an earlier send or a
            // signal: the socket still works.
            Err(_) => continue,
        };
        let datagram = &buf[..n];
        if let Some(mark) = datagram
            .strip_prefix(FLUSH_MARK)
            .and_then(|m| std::str::from_utf8(m).ok())
            .and_then(|m| m.parse::<u64>().ok())
        {
            shared.flushed.send_replace(mark);
            continue;
        }
        let mut r = shared.lock();
        if r.kept_bytes + n > MAX_KEPT_BYTES {
            r.not_kept += 1;
        } else {
            r.kept_bytes += n;
            r.datagrams.push(datagram.to_vec());
        }
    }
}

/// A datagram as the daemon takes it: the header line, then one segment document (a JSON
/// object). The error says why not.
pub fn parse_datagram(datagram: &[u8]) -> Result<Value, String> {
    if datagram.len() > MAX_DOCUMENT_BYTES + 64 {
        return Err(format!("{} bytes: over 64 kB", datagram.len()));
    }
    let Some(newline) = datagram.iter().position(|b| *b == b'\n') else {
        return Err("no header line".to_owned());
    };
    let (header, body) = (&datagram[..newline], &datagram[newline + 1..]);
    let header: Value =
        serde_json::from_slice(header).map_err(|e| format!("the header is not JSON: {e}"))?;
    if header.get("format").and_then(Value::as_str) != Some("json")
        || header.get("version").and_then(Value::as_u64) != Some(1)
    {
        return Err(format!(
            "the header is not {{format: json, version: 1}}: {header}"
        ));
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the segment document is not JSON: {e}"))?;
    if !doc.is_object() {
        return Err("the segment document is not a JSON object".to_owned());
    }
    Ok(doc)
}

/// The trace headers of the local Lambda host and the invocations it recorded: one trace per
/// night (AWS's Step Functions passes its execution's trace header to Lambda; moto passes
/// none), a new parent id per invocation, every one sampled.
#[derive(Debug)]
pub struct Tracing {
    shared: Arc<Shared>,
    ids: Mutex<TraceIds>,
    /// Where the functions' X-Ray layer sends (its counters say what the kernel took).
    daemon: Daemon,
    /// The subscriber invocations run in: the X-Ray layer, and the logs as `restart-local`
    /// prints them.
    dispatch: Dispatch,
}

/// One invocation under way: its header and what its function segment needs at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub function: String,
    pub trace_id: String,
    pub parent_id: String,
    /// `Root=…;Parent=…;Sampled=1`, as Lambda sets `_X_AMZN_TRACE_ID`.
    pub header: String,
    started: u128,
}

#[derive(Debug)]
struct TraceIds {
    seed: RandomState,
    n: u64,
    /// `night:<date>`, `execution:<arn>` or `run` → trace id.
    by_key: HashMap<String, String>,
}

impl TraceIds {
    fn random(&mut self) -> u64 {
        self.n += 1;
        let mut h = self.seed.build_hasher();
        h.write_u64(self.n);
        h.finish()
    }

    /// `1-<8 hex epoch seconds>-<24 hex>`.
    fn trace_id(&mut self, now: SystemTime) -> String {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let (a, b) = (self.random(), self.random());
        format!("1-{:08x}-{:016x}{:08x}", secs as u32, a, b as u32)
    }

    /// 16 hex digits, never all zero.
    fn span_id(&mut self) -> String {
        format!("{:016x}", self.random().max(1))
    }
}

/// The key of an event's trace: its night, else the execution that starts it (inventory's
/// event of a scheduled night has no night yet), else the host's run.
fn trace_key(event: &Value) -> String {
    if let Some(night) = event.get("night").and_then(Value::as_str) {
        format!("night:{night}")
    } else if let Some(execution) = event.get("execution").and_then(Value::as_str) {
        format!("execution:{execution}")
    } else {
        "run".to_owned()
    }
}

fn epoch_seconds(micros: u128) -> f64 {
    micros as f64 / 1e6
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// Where the functions' logs go when a benchmark asks ([`function_logs`]).
static FUNCTION_LOGS: std::sync::OnceLock<(String, FunctionLogs)> = std::sync::OnceLock::new();

/// A writer of the functions' log lines (cloned for each stack).
pub type FunctionLogs = fn() -> Box<dyn std::io::Write>;

/// From now on, the stacks' functions log JSON lines at `filter` to `writer`, as Lambda
/// ingests them (the state-machine benchmark counts their bytes), instead of text on standard
/// error. The first call wins.
pub fn function_logs(filter: &str, writer: FunctionLogs) {
    let _ = FUNCTION_LOGS.set((filter.to_owned(), writer));
}

impl Tracing {
    /// The host's side of `listener`: the X-Ray layer sends to it.
    pub fn of(listener: &TraceListener) -> Tracing {
        Tracing::with(listener.shared.clone(), listener.addr)
    }

    fn with(shared: Arc<Shared>, addr: SocketAddr) -> Tracing {
        let daemon = Daemon::udp(addr);
        let text = FUNCTION_LOGS.get().is_none().then(|| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_filter(
                    EnvFilter::try_new(crate::log_filter())
                        .unwrap_or_else(|_| EnvFilter::new("warn")),
                )
        });
        let json = FUNCTION_LOGS
            .get()
            .map(|(filter, writer)| restart_lambda::json_log_layer(filter, *writer));
        let subscriber = tracing_subscriber::registry()
            .with(text)
            .with(json)
            .with(restart_xray::layer(daemon.clone()));
        Tracing {
            shared,
            ids: Mutex::new(TraceIds {
                seed: RandomState::new(),
                n: 0,
                by_key: HashMap::new(),
            }),
            daemon,
            dispatch: Dispatch::new(subscriber),
        }
    }

    /// Datagrams the X-Ray layer handed to the kernel so far.
    pub fn sent(&self) -> u64 {
        self.daemon.sent()
    }

    /// The root span of invocation `invocation` of `event`, annotated with the event's night,
    /// batch and mode.
    pub fn span(&self, invocation: &Invocation, event: &Value) -> tracing::Span {
        let span = tracing::dispatcher::with_default(&self.dispatch, || {
            restart_xray::invocation(&invocation.function, Some(&invocation.header))
        });
        restart_xray::annotate_event(&span, event);
        span
    }

    /// `handler` run inside `span` (an invocation's, [`Tracing::span`]) in the tracing
    /// subscriber, so that every span and AWS call of the handler reaches the X-Ray layer
    /// wherever the future is polled.
    pub fn instrument<F: Future>(
        &self,
        span: tracing::Span,
        handler: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        handler
            .instrument(span)
            .with_subscriber(self.dispatch.clone())
    }

    /// An invocation of `function` with `event` begins: its trace (the night's) and a new
    /// parent id.
    pub fn begin(&self, function: &str, event: &Value) -> Invocation {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let key = trace_key(event);
        let trace_id = match ids.by_key.get(&key) {
            Some(t) => t.clone(),
            None => {
                let t = ids.trace_id(SystemTime::now());
                ids.by_key.insert(key, t.clone());
                t
            }
        };
        let parent_id = ids.span_id();
        Invocation {
            function: function.to_owned(),
            header: format!("Root={trace_id};Parent={parent_id};Sampled=1"),
            trace_id,
            parent_id,
            started: now_micros(),
        }
    }

    /// The invocation ended with `answer` (the handler's JSON) or the error type: its function
    /// segment is recorded, and the night inventory answered joins the trace its execution
    /// began.
    pub fn end(&self, invocation: &Invocation, answer: Result<&[u8], &str>) {
        if let Ok(answer) = answer
            && let Ok(v) = serde_json::from_slice::<Value>(answer)
            && let Some(night) = v.get("night").and_then(Value::as_str)
        {
            let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
            ids.by_key
                .entry(format!("night:{night}"))
                .or_insert_with(|| invocation.trace_id.clone());
        }
        let mut segment = json!({
            "name": invocation.function,
            "id": invocation.parent_id,
            "trace_id": invocation.trace_id,
            "start_time": epoch_seconds(invocation.started),
            "end_time": epoch_seconds(now_micros().max(invocation.started)),
            "origin": LAMBDA_ORIGIN,
        });
        if let Err(error_type) = answer {
            segment["error"] = json!(true);
            segment["annotations"] = json!({"error_type": error_type});
        }
        self.shared.lock().invocations.push(segment);
    }
}

/// One trace's documents: the function segments the host recorded, then what the functions
/// sent, in the order they arrived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub trace_id: String,
    pub documents: Vec<Value>,
}

/// What `traces.json` holds: the documents of the night grouped by trace, and the datagrams
/// kept out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Traces {
    pub traces: Vec<Trace>,
    /// Segment documents the functions sent that were read (the host's function segments
    /// are not counted).
    pub received: u64,
    /// Datagrams the functions' X-Ray layer handed to the kernel, when known: more than
    /// `received` plus `bad_datagrams` means some were lost (a full receive buffer).
    pub sent: Option<u64>,
    /// Datagrams read but not kept: the listener keeps 512 MiB.
    pub not_kept: u64,
    /// Datagrams that were not a header and a segment document.
    pub bad_datagrams: u64,
    /// Why (the first few).
    pub bad_reasons: Vec<String>,
    /// Documents `restart_xray::schema::check_datagram` refuses, and why.
    pub schema_problems: Vec<String>,
}

/// One subsegment or segment, wherever it sits (a document, or nested in one).
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub value: &'a Value,
    /// The id of what contains it: its parent in its document, or the document's `parent_id`.
    pub parent: Option<&'a str>,
    pub trace_id: &'a str,
}

impl<'a> Node<'a> {
    pub fn id(&self) -> Option<&'a str> {
        self.value.get("id").and_then(Value::as_str)
    }

    pub fn name(&self) -> &'a str {
        self.value
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn time(&self, key: &str) -> Option<f64> {
        self.value
            .get(key)
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite())
    }

    /// Its length in seconds (none while in progress).
    pub fn seconds(&self) -> f64 {
        match (self.time("start_time"), self.time("end_time")) {
            (Some(s), Some(e)) if e > s => e - s,
            _ => 0.0,
        }
    }

    /// An AWS call: namespace `aws`, or an `aws` object naming an operation.
    pub fn is_aws_call(&self) -> bool {
        self.value.get("namespace").and_then(Value::as_str) == Some("aws")
            || self.aws("operation").is_some()
    }

    /// A field of its `aws` object.
    pub fn aws(&self, key: &str) -> Option<&'a Value> {
        self.value.get("aws")?.get(key)
    }

    /// The SDK's retries of this call.
    pub fn retries(&self) -> u64 {
        self.aws("retries").and_then(Value::as_u64).unwrap_or(0)
    }

    fn flag(&self, key: &str) -> bool {
        self.value.get(key).and_then(Value::as_bool) == Some(true)
    }

    /// Answered with throttling (`throttle`, or HTTP 429).
    pub fn throttled(&self) -> bool {
        self.flag("throttle")
            || self
                .value
                .pointer("/http/response/status")
                .and_then(Value::as_u64)
                == Some(429)
    }

    /// A wait for the account's pace.
    pub fn is_pace_wait(&self) -> bool {
        let name = self.name().to_ascii_lowercase();
        !self.is_aws_call() && name.contains("pace") && name.contains("wait")
    }

    /// An annotation, as text.
    pub fn annotation(&self, key: &str) -> Option<String> {
        match self.value.get("annotations")?.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// The entries an invocation's subsegment summarized past the layer's budget
/// (`metadata.restart.summarized.entries`: name, operation, account, count, seconds, ...).
fn summarized<'a>(node: &Node<'a>) -> impl Iterator<Item = &'a Value> {
    node.value
        .pointer("/metadata/restart/summarized/entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// What the report says of the night's traces.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TracesSeen {
    pub traces: u64,
    /// Segment documents the functions sent that were read.
    pub documents: u64,
    /// Their subsegments, nested ones included.
    pub subsegments: u64,
    /// AWS calls among them.
    pub aws_calls: u64,
    /// Subsegments the invocations summarized past their budget instead of sending.
    pub summarized: u64,
    /// Datagrams the X-Ray layer handed to the kernel (when known).
    pub sent: Option<u64>,
    /// Sent but never read (a full receive buffer).
    pub lost: Option<u64>,
    pub bad_datagrams: u64,
    /// What is wrong with the documents as segment documents (the first 20), and how many.
    pub problems: Vec<String>,
    pub problem_count: u64,
    /// Where the night's time went.
    pub time: TimeSpent,
}

impl TracesSeen {
    pub fn of(traces: &Traces) -> TracesSeen {
        let nodes = traces.nodes();
        let host_made =
            |n: &&Node<'_>| n.value.get("origin").and_then(Value::as_str) == Some(LAMBDA_ORIGIN);
        let problems = traces.problems();
        TracesSeen {
            traces: traces.traces.len() as u64,
            documents: traces.received,
            subsegments: nodes.iter().filter(|n| !host_made(n)).count() as u64,
            aws_calls: nodes.iter().filter(|n| n.is_aws_call()).count() as u64,
            summarized: nodes
                .iter()
                .flat_map(summarized)
                .filter_map(|e| e.get("count").and_then(Value::as_u64))
                .sum(),
            sent: traces.sent,
            lost: traces.sent.map(|s| {
                s.saturating_sub(traces.received + traces.bad_datagrams + traces.not_kept)
            }),
            bad_datagrams: traces.bad_datagrams,
            problem_count: problems.len() as u64,
            problems: problems.into_iter().take(20).collect(),
            time: traces.time_spent(),
        }
    }

    /// The report's lines.
    pub fn render(&self, s: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            s,
            "X-Ray: {} trace(s), {} documents from the functions ({} subsegments, {} AWS calls)",
            self.traces, self.documents, self.subsegments, self.aws_calls
        );
        if self.summarized > 0 {
            let _ = write!(
                s,
                ", {} more summarized in their invocations",
                self.summarized
            );
        }
        if self.bad_datagrams > 0 {
            let _ = write!(s, ", {} bad datagrams", self.bad_datagrams);
        }
        if let Some(lost) = self.lost.filter(|l| *l > 0) {
            let _ = write!(s, ", {lost} lost");
        }
        let _ = writeln!(s);
        for a in self.time.accounts.iter().take(3) {
            let _ = writeln!(
                s,
                "  {}: {} in {} AWS calls ({} retries, {} throttled), {} in {} pace waits",
                a.account,
                restartctl::report::seconds(a.call_seconds),
                a.calls,
                a.retries,
                a.throttled,
                restartctl::report::seconds(a.pace_seconds),
                a.pace_waits
            );
        }
        if self.problem_count > 0 {
            let _ = writeln!(
                s,
                "  {} problem(s) with the segment documents, e.g. {}",
                self.problem_count,
                self.problems.first().map_or("", String::as_str)
            );
        }
    }
}

/// Where `restart-local run` writes the night's traces: beside the report (`<report>.traces.json`),
/// or beside the functions' log without a report file.
pub fn traces_path(
    report: Option<&std::path::Path>,
    functions_log: &std::path::Path,
) -> std::path::PathBuf {
    report
        .unwrap_or(functions_log)
        .with_extension("traces.json")
}

/// The origin of the function segments the host records (as Lambda's are).
pub const LAMBDA_ORIGIN: &str = "AWS::Lambda::Function";

/// Every node of a document, depth first, with its parent.
fn walk<'a>(value: &'a Value, parent: Option<&'a str>, trace_id: &'a str, out: &mut Vec<Node<'a>>) {
    let node = Node {
        value,
        parent,
        trace_id,
    };
    out.push(node);
    let id = node.id();
    for child in value
        .get("subsegments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk(child, id, trace_id, out);
    }
}

fn hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `1-<8 hex>-<24 hex>`.
pub fn is_trace_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    matches!(parts.as_slice(), ["1", t, r] if hex(t, 8) && hex(r, 24))
}

/// Times are compared to the millisecond: a subsegment's clock reads may round apart.
const TIME_SLACK: f64 = 0.001;

impl Traces {
    fn of(r: &Received) -> Traces {
        let mut documents = Vec::with_capacity(r.datagrams.len());
        let (mut bad, mut bad_reasons) = (0, Vec::new());
        let mut schema_problems = Vec::new();
        for datagram in &r.datagrams {
            match parse_datagram(datagram) {
                Ok(doc) => {
                    // `restart-xray`'s own reading of the schema, written apart from the layer.
                    if let Err(e) = restart_xray::schema::check_datagram(datagram) {
                        schema_problems.push(format!(
                            "document {} ({:?}): {e}",
                            doc.get("id").and_then(Value::as_str).unwrap_or("?"),
                            doc.get("name").and_then(Value::as_str).unwrap_or("?"),
                        ));
                    }
                    documents.push(doc);
                }
                Err(reason) => {
                    bad += 1;
                    if bad_reasons.len() < BAD_REASONS_KEPT {
                        bad_reasons.push(reason);
                    }
                }
            }
        }
        let mut by_trace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for doc in r.invocations.iter().chain(&documents) {
            let trace = doc
                .get("trace_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            by_trace.entry(trace).or_default().push(doc.clone());
        }
        Traces {
            traces: by_trace
                .into_iter()
                .map(|(trace_id, documents)| Trace {
                    trace_id,
                    documents,
                })
                .collect(),
            received: documents.len() as u64,
            not_kept: r.not_kept,
            bad_datagrams: bad,
            bad_reasons,
            schema_problems,
            sent: None,
        }
    }

    /// Documents, the host's function segments included.
    pub fn documents(&self) -> usize {
        self.traces.iter().map(|t| t.documents.len()).sum()
    }

    /// Every segment and subsegment, nested ones included.
    pub fn nodes(&self) -> Vec<Node<'_>> {
        let mut out = Vec::new();
        for t in &self.traces {
            for doc in &t.documents {
                let parent = doc.get("parent_id").and_then(Value::as_str);
                walk(doc, parent, &t.trace_id, &mut out);
            }
        }
        out
    }

    /// What is wrong with the documents as X-Ray segment documents: each has a name, a
    /// 16-hex id, a trace id `1-<8 hex>-<24 hex>` (its trace's), a start time and an end time
    /// not before it (or `in_progress`), at most 64 kB; a subsegment sent alone has
    /// `type: subsegment` and a parent id; every parent id is a segment or subsegment of its
    /// trace; a nested subsegment lies within its parent's time; and what `restart-xray`'s
    /// schema check says of each datagram the functions sent.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.schema_problems.clone();
        for t in &self.traces {
            let mut ids: HashMap<&str, (f64, f64)> = HashMap::new();
            let mut nodes = Vec::new();
            for doc in &t.documents {
                walk(
                    doc,
                    doc.get("parent_id").and_then(Value::as_str),
                    &t.trace_id,
                    &mut nodes,
                );
            }
            for n in &nodes {
                if let Some(id) = n.id() {
                    let start = n.time("start_time").unwrap_or(f64::NEG_INFINITY);
                    let end = n.time("end_time").unwrap_or(f64::INFINITY);
                    ids.insert(id, (start, end));
                }
            }
            for doc in &t.documents {
                let what = format!(
                    "document {} ({:?}) of trace {}",
                    doc.get("id").and_then(Value::as_str).unwrap_or("?"),
                    doc.get("name").and_then(Value::as_str).unwrap_or("?"),
                    t.trace_id
                );
                let bytes = serde_json::to_vec(doc).map_or(0, |b| b.len());
                if bytes > MAX_DOCUMENT_BYTES {
                    problems.push(format!("{what}: {bytes} bytes, over 64 kB"));
                }
                match doc.get("trace_id").and_then(Value::as_str) {
                    Some(id) if is_trace_id(id) => {}
                    other => problems.push(format!("{what}: trace_id {other:?}")),
                }
                let subsegment = doc.get("type").and_then(Value::as_str) == Some("subsegment");
                match doc.get("parent_id").and_then(Value::as_str) {
                    Some(p) if hex(p, 16) && !ids.contains_key(p) => {
                        problems.push(format!("{what}: its parent {p} is not in the trace"));
                    }
                    Some(p) if hex(p, 16) => {}
                    Some(p) => problems.push(format!("{what}: parent_id {p:?}")),
                    None if subsegment => {
                        problems.push(format!("{what}: a subsegment sent alone without parent_id"))
                    }
                    None => {}
                }
            }
            for n in &nodes {
                let what = format!(
                    "{:?} ({}) of trace {}",
                    n.name(),
                    n.id().unwrap_or("?"),
                    t.trace_id
                );
                let name_ok = n
                    .value
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty() && s.chars().count() <= 200);
                if !name_ok {
                    problems.push(format!("{what}: name missing or over 200 characters"));
                }
                if !n.id().is_some_and(|id| hex(id, 16)) {
                    problems.push(format!(
                        "{what}: id {:?} is not 16 hex digits",
                        n.value.get("id")
                    ));
                }
                let start = n.time("start_time");
                let end = n.time("end_time");
                let in_progress = n.flag("in_progress");
                match (start, end) {
                    (None, _) => problems.push(format!("{what}: no start_time")),
                    (Some(_), None) if !in_progress => {
                        problems.push(format!("{what}: neither end_time nor in_progress"))
                    }
                    (Some(s), Some(e)) if e + TIME_SLACK < s => {
                        problems.push(format!("{what}: ends ({e}) before it starts ({s})"))
                    }
                    _ => {}
                }
                // A nested subsegment lies within its parent.
                let nested = n.parent.is_some()
                    && n.parent != n.value.get("parent_id").and_then(Value::as_str);
                if nested
                    && let (Some(p), Some(s), Some(e)) =
                        (n.parent.and_then(|p| ids.get(p)), start, end)
                    && (s + TIME_SLACK < p.0 || e > p.1 + TIME_SLACK)
                {
                    problems.push(format!(
                        "{what}: [{s}, {e}] is not within its parent's [{}, {}]",
                        p.0, p.1
                    ));
                }
            }
        }
        problems
    }

    /// The account a node's work was for: its own or its nearest ancestor's `account`
    /// annotation, else the account its AWS call went to, else `hub` (the night's own work:
    /// the table, the topics).
    fn account_of(&self, node: &Node<'_>, by_id: &HashMap<(&str, &str), Node<'_>>) -> String {
        let mut at = Some(*node);
        let mut hops = 0;
        while let Some(n) = at {
            if let Some(a) = n.annotation("account") {
                return a;
            }
            hops += 1;
            if hops > 64 {
                break;
            }
            at = n.parent.and_then(|p| by_id.get(&(n.trace_id, p)).copied());
        }
        if let Some(a) = node.aws("account_id").and_then(Value::as_str) {
            return a.to_owned();
        }
        "hub".to_owned()
    }

    /// Where the night's time went, per account: AWS calls (time, retries, throttles,
    /// errors, the slowest operations) and pace waits; slowest first.
    pub fn time_spent(&self) -> TimeSpent {
        let nodes = self.nodes();
        let by_id: HashMap<(&str, &str), Node<'_>> = nodes
            .iter()
            .filter_map(|n| Some(((n.trace_id, n.id()?), *n)))
            .collect();
        let mut accounts: BTreeMap<String, AccountTime> = BTreeMap::new();
        let mut ops: BTreeMap<(String, String, String), OperationTime> = BTreeMap::new();
        for n in &nodes {
            let call = n.is_aws_call();
            if !call && !n.is_pace_wait() {
                continue;
            }
            let account = self.account_of(n, &by_id);
            let a = accounts
                .entry(account.clone())
                .or_insert_with(|| AccountTime {
                    account: account.clone(),
                    ..AccountTime::default()
                });
            let seconds = n.seconds();
            if !call {
                a.pace_waits += 1;
                a.pace_seconds += seconds;
                continue;
            }
            let retries = n.retries();
            let throttled = n.throttled();
            a.calls += 1;
            a.call_seconds += seconds;
            a.retries += retries;
            if retries > 0 {
                a.retried_seconds += seconds;
            }
            a.throttled += u64::from(throttled);
            a.errors += u64::from(n.flag("error") || n.flag("fault"));
            let operation = n
                .aws("operation")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let op = ops
                .entry((account, n.name().to_owned(), operation.clone()))
                .or_insert_with(|| OperationTime {
                    service: n.name().to_owned(),
                    operation,
                    ..OperationTime::default()
                });
            op.calls += 1;
            op.seconds += seconds;
            op.max_seconds = op.max_seconds.max(seconds);
            op.retries += retries;
            op.throttled += u64::from(throttled);
        }
        // What an invocation summarized past its subsegment budget counts too, without retries
        // or longest calls (the summary has neither).
        for n in &nodes {
            for e in summarized(n) {
                let account = e
                    .get("account")
                    .and_then(Value::as_str)
                    .map_or_else(|| self.account_of(n, &by_id), str::to_owned);
                let count = e.get("count").and_then(Value::as_u64).unwrap_or(0);
                let seconds = e
                    .get("seconds")
                    .and_then(Value::as_f64)
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .unwrap_or(0.0);
                let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
                let a = accounts
                    .entry(account.clone())
                    .or_insert_with(|| AccountTime {
                        account: account.clone(),
                        ..AccountTime::default()
                    });
                let Some(operation) = e.get("operation").and_then(Value::as_str) else {
                    let lower = name.to_ascii_lowercase();
                    if lower.contains("pace") && lower.contains("wait") {
                        a.pace_waits += count;
                        a.pace_seconds += seconds;
                    }
                    continue;
                };
                let throttled = e.get("throttled").and_then(Value::as_u64).unwrap_or(0);
                a.calls += count;
                a.call_seconds += seconds;
                a.throttled += throttled;
                a.errors += e.get("errors").and_then(Value::as_u64).unwrap_or(0);
                let op = ops
                    .entry((account, name.to_owned(), operation.to_owned()))
                    .or_insert_with(|| OperationTime {
                        service: name.to_owned(),
                        operation: operation.to_owned(),
                        ..OperationTime::default()
                    });
                op.calls += count;
                op.seconds += seconds;
                op.throttled += throttled;
            }
        }
        for ((account, _, _), op) in ops {
            if let Some(a) = accounts.get_mut(&account) {
                a.slowest.push(op);
            }
        }
        let mut accounts: Vec<AccountTime> = accounts.into_values().collect();
        for a in &mut accounts {
            a.slowest.sort_by(|x, y| {
                y.seconds
                    .total_cmp(&x.seconds)
                    .then(x.operation.cmp(&y.operation))
            });
            a.slowest.truncate(5);
        }
        accounts.sort_by(|x, y| {
            y.total_seconds()
                .total_cmp(&x.total_seconds())
                .then_with(|| x.account.cmp(&y.account))
        });
        TimeSpent {
            traces: self.traces.len() as u64,
            documents: self.documents() as u64,
            accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(doc: &Value) -> Vec<u8> {
        let mut d = b"{\"format\": \"json\", \"version\": 1}\n".to_vec();
        d.extend_from_slice(doc.to_string().as_bytes());
        d
    }

    const TRACE: &str = "1-6755a0c0-0123456789abcdef01234567";

    fn function(id: &str, start: f64, end: f64) -> Value {
        json!({"name": "restarter", "id": id, "trace_id": TRACE, "start_time": start,
               "end_time": end, "origin": "AWS::Lambda::Function"})
    }

    fn call(id: &str, account: &str, op: &str, start: f64, end: f64, retries: u64) -> Value {
        json!({"name": "ECS", "id": id, "start_time": start, "end_time": end,
               "namespace": "aws", "throttle": retries > 0,
               "aws": {"operation": op, "region": "eu-west-1", "account_id": account, "retries": retries},
               "http": {"response": {"status": 200}}})
    }

    /// A restarter invocation: an account's subsegment with a pace wait and two calls, sent
    /// alone under the function segment; a DynamoDB call of the hub.
    fn night() -> Traces {
        let account = json!({
            "type": "subsegment", "name": "xray.account", "id": "00000000000000a1",
            "trace_id": TRACE, "parent_id": "00000000000000f1",
            "start_time": 100.0, "end_time": 110.0,
            "annotations": {"account": "222222222222", "night": "2026-12-07", "mode": "start"},
            "subsegments": [
                {"name": "xray.pace_wait", "id": "00000000000000b1", "start_time": 100.0, "end_time": 103.0},
                call("00000000000000c1", "222222222222", "DescribeServices", 103.0, 107.0, 2),
                call("00000000000000c2", "222222222222", "UpdateService", 107.0, 108.0, 0),
            ]
        });
        let mut dynamo = call(
            "00000000000000d1",
            "000000000000",
            "UpdateItem",
            110.0,
            110.5,
            0,
        );
        dynamo["name"] = json!("DynamoDB");
        dynamo["type"] = json!("subsegment");
        dynamo["trace_id"] = json!(TRACE);
        dynamo["parent_id"] = json!("00000000000000f1");
        let mut r = Received::default();
        r.invocations
            .push(function("00000000000000f1", 99.0, 111.0));
        for doc in [account, dynamo] {
            r.datagrams.push(datagram(&doc));
        }
        Traces::of(&r)
    }

    #[test]
    fn datagrams_need_the_header_and_one_json_object() {
        let doc = json!({"name": "x"});
        assert_eq!(parse_datagram(&datagram(&doc)).unwrap(), doc);
        for bad in [
            b"{\"name\": \"x\"}".to_vec(),
            b"{\"format\": \"json\", \"version\": 2}\n{}".to_vec(),
            b"not json\n{}".to_vec(),
            b"{\"format\": \"json\", \"version\": 1}\n[1, 2]".to_vec(),
            b"{\"format\": \"json\", \"version\": 1}\n{\"name\": \"cut".to_vec(),
            vec![0xff, b'\n', 0xfe],
            Vec::new(),
        ] {
            assert!(parse_datagram(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_valid_night_has_no_problems_and_broken_documents_are_named() {
        let traces = night();
        assert_eq!(traces.problems(), Vec::<String>::new());
        assert_eq!(traces.nodes().len(), 6);

        let mut broken = traces.clone();
        let docs = &mut broken.traces[0].documents;
        docs[1]["parent_id"] = json!("00000000000000ee");
        docs[1]["subsegments"][1]["end_time"] = json!(120.0);
        docs[1]["subsegments"][2]["id"] = json!("xyz");
        docs[2]["trace_id"] = json!("1-abc");
        docs[2]["end_time"] = json!(1.0);
        let problems = broken.problems();
        for expected in [
            "its parent 00000000000000ee is not in the trace",
            "is not within its parent's",
            "is not 16 hex digits",
            "trace_id Some(\"1-abc\")",
            "ends (1) before it starts (110)",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{expected}: {problems:#?}"
            );
        }
    }

    #[test]
    fn time_goes_to_the_account_the_work_was_for() {
        let time = night().time_spent();
        assert_eq!((time.traces, time.documents), (1, 3));
        let ids: Vec<&str> = time.accounts.iter().map(|a| a.account.as_str()).collect();
        assert_eq!(ids, ["222222222222", "000000000000"]);
        let a = &time.accounts[0];
        assert_eq!(
            (a.calls, a.pace_waits, a.retries, a.throttled),
            (2, 1, 2, 1)
        );
        assert!((a.call_seconds - 5.0).abs() < 1e-9, "{a:?}");
        assert!((a.pace_seconds - 3.0).abs() < 1e-9, "{a:?}");
        assert!((a.retried_seconds - 4.0).abs() < 1e-9, "{a:?}");
        assert_eq!(a.slowest[0].operation, "DescribeServices");
        assert_eq!(a.slowest[0].service, "ECS");
        assert_eq!(a.slowest[1].operation, "UpdateService");
        assert_eq!(time.accounts[1].slowest[0].service, "DynamoDB");
    }

    #[test]
    fn one_trace_per_night_and_a_new_parent_per_invocation() {
        let shared = Arc::new(Shared::new());
        let tracing = Tracing::with(shared.clone(), SocketAddr::from(([127, 0, 0, 1], 9)));
        let inventory = tracing.begin("inventory", &json!({"execution": "arn:x"}));
        assert!(is_trace_id(&inventory.trace_id), "{}", inventory.trace_id);
        assert!(hex(&inventory.parent_id, 16));
        assert_eq!(
            inventory.header,
            format!(
                "Root={};Parent={};Sampled=1",
                inventory.trace_id, inventory.parent_id
            )
        );
        tracing.end(&inventory, Ok(br#"{"night": "2026-12-07"}"#));
        let batcher = tracing.begin("batcher", &json!({"night": "2026-12-07"}));
        let poll = tracing.begin("restarter", &json!({"night": "2026-12-07", "batch": 0}));
        assert_eq!(batcher.trace_id, inventory.trace_id);
        assert_eq!(poll.trace_id, inventory.trace_id);
        assert_ne!(batcher.parent_id, poll.parent_id);
        let other = tracing.begin("restarter", &json!({"night": "2026-12-08"}));
        assert_ne!(other.trace_id, inventory.trace_id);
        tracing.end(&poll, Err("Throttled"));
        let r = shared.lock();
        assert_eq!(r.invocations.len(), 2);
        assert_eq!(r.invocations[1]["error"], json!(true));
        assert_eq!(r.invocations[1]["id"], json!(poll.parent_id));
    }

    #[tokio::test]
    async fn the_listener_keeps_documents_and_counts_bad_datagrams() {
        let listener = TraceListener::start().unwrap();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let doc = function("00000000000000f1", 1.0, 2.0);
        socket
            .send_to(&datagram(&doc), listener.addr)
            .await
            .unwrap();
        socket.send_to(b"garbage", listener.addr).await.unwrap();
        socket
            .send_to(&datagram(&json!("text")), listener.addr)
            .await
            .unwrap();
        listener.flush().await.unwrap();
        let traces = listener.traces();
        assert_eq!(traces.documents(), 1);
        assert_eq!(traces.traces[0].documents[0], doc);
        assert_eq!((traces.received, traces.bad_datagrams), (1, 2));
        assert_eq!(traces.bad_reasons.len(), 2);
        listener.stop();
    }
}
