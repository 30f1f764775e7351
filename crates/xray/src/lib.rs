//! X-Ray tracing of the functions' invocations (docs/design.md, "Tracing"), as a `tracing`
//! layer: the code being traced only opens plain `tracing` spans and emits plain events.
//!
//! # What becomes what
//!
//! - [`invocation`] opens the root span of one invocation, from the trace header Lambda gives
//!   it (`Root=1-…;Parent=…;Sampled=1`). When the header is well formed and sampled, the span
//!   becomes a subsegment named after the function whose parent is the function's segment
//!   (Lambda's, the header's `Parent`), so the state machine's trace and the functions'
//!   subsegments are one trace per execution. Otherwise nothing of the invocation is recorded.
//! - Inside it, each span named `xray.<kind>` becomes a subsegment named after the kind and its
//!   `account`, `region` and `what` fields: [`ACCOUNT`] (`xray.account`, fields `account`,
//!   `region`) around the work on one account and region, [`PACE_WAIT`] (`xray.pace_wait`,
//!   fields `account`, `what`) around a wait for a pace (one shorter than [`MIN_PACE_WAIT`]
//!   did not wait, and is only counted in the summary). Their `account` and `region` fields
//!   are the subsegment's annotations, other fields its metadata.
//! - Events of target [`AWS_CALL_TARGET`] (`xray.aws`) are AWS calls, one subsegment each in
//!   the `aws` namespace, child of the nearest subsegment: fields `service` (its name),
//!   `operation`, `region`, `account`, `table` (DynamoDB's table: the store calls), `status`
//!   (HTTP), `attempts`, `throttled`, `ok`, `error_code`, `start` (epoch seconds; the event's
//!   time is the end). `restart-aws` emits them from an SDK interceptor.
//! - The trace's annotations [`TRACE_ANNOTATIONS`] (`night`, `batch`, `mode`) come from a field
//!   of that name on any span inside the invocation (the invocation span declares the three:
//!   [`annotate_event`] records them from the event), and land on the invocation's subsegment.
//!   Annotation values are strings (cut to 1,000 characters), numbers or booleans.
//!
//! The level of these spans does not matter to the layer; `TRACE` keeps them out of the logs
//! and costs nothing when the layer is not installed (a disabled span allocates nothing).
//!
//! # Sending
//!
//! When the invocation's span closes, its subsegments are packed into documents of at most
//! [`MAX_DOCUMENT_BYTES`] (children embedded in their parent while they fit, independent
//! subsegment documents otherwise) and sent to the [`Daemon`] over a non-blocking UDP socket, a
//! datagram each: what the kernel will not take at once is dropped and counted, never waited
//! for. An invocation keeps [`MAX_SUBSEGMENTS`] subsegments one by one; past them, subsegments
//! are summarized in the invocation's metadata (`summarized`: count, errors, throttled, seconds
//! per name, operation, account and region). Concurrent invocations in one process keep apart:
//! each span finds its invocation through its own parents.
//!
//! # Why no library
//!
//! The X-Ray crates for Rust (`xray-lite` 0.0.9, `xray` and `xray-tracing` 0.0.x) are single
//! releases without a `tracing` integration, send each subsegment as it ends, and handle
//! neither X-Ray's document limits nor a bounded per-invocation budget; `opentelemetry-aws`
//! only propagates X-Ray ids and needs a collector to export. What is written here is the
//! small part none of them does for this shape: the segment document, the daemon's datagram,
//! and the layer.

mod daemon;
mod document;
mod header;
mod layer;
pub mod schema;

pub use daemon::{DAEMON_ADDRESS_VAR, DAEMON_HEADER, Daemon};
pub use document::{
    MAX_ANNOTATION_CHARS, MAX_DOCUMENT_BYTES, MAX_NAME_CHARS, METADATA_NAMESPACE,
    is_annotation_key, segment_name,
};
pub use header::{TraceHeader, is_segment_id, is_trace_id};
pub use layer::{
    MAX_SUBSEGMENTS, MAX_SUMMARY_ENTRIES, MIN_PACE_WAIT, Spans, XrayFilter, XrayLayer, layer,
};

/// The name of an invocation's root span.
pub const INVOCATION: &str = "xray.invocation";
/// The span around the work on one account and region (fields `account`, `region`).
pub const ACCOUNT: &str = "xray.account";
/// The span around a wait for a pace (fields `account`, `what`).
pub const PACE_WAIT: &str = "xray.pace_wait";
/// The target of AWS call events.
pub const AWS_CALL_TARGET: &str = "xray.aws";
/// The fields that annotate the whole trace, wherever they are recorded in the invocation.
pub const TRACE_ANNOTATIONS: [&str; 3] = ["night", "batch", "mode"];

/// The root span of one invocation of `function`, from the invocation's trace header.
/// Instrument the handler's future with it.
pub fn invocation(function: &str, trace_header: Option<&str>) -> tracing::Span {
    tracing::trace_span!(
        target: "xray",
        "xray.invocation",
        function,
        trace_header = trace_header.unwrap_or(""),
        night = tracing::field::Empty,
        batch = tracing::field::Empty,
        mode = tracing::field::Empty,
    )
}

/// Records the event's top-level `night`, `batch` and `mode` (those it has) on `span`, an
/// [`invocation`]'s: the trace's annotations.
pub fn annotate_event(span: &tracing::Span, event: &serde_json::Value) {
    if span.is_disabled() {
        return;
    }
    for name in TRACE_ANNOTATIONS {
        match event.get(name) {
            Some(serde_json::Value::String(s)) => {
                span.record(name, s.as_str());
            }
            Some(serde_json::Value::Number(n)) => {
                if let Some(n) = n.as_u64() {
                    span.record(name, n);
                }
            }
            _ => {}
        }
    }
}
