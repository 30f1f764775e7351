//! The trace header Lambda gives each invocation (`Lambda-Runtime-Trace-Id`, the runtime
//! library's `Context::xray_trace_id`): `Root=1-5759e988-bd862e3fe1be46a994272793;
//! Parent=53995c3f42cd8ad8;Sampled=1`, in any order, possibly with other keys (`Lineage`).

/// What the layer needs from a sampled invocation's header: the trace, and the id of the
/// function's segment (Lambda's), the parent of everything the invocation sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub trace_id: String,
    pub parent_id: String,
}

impl TraceHeader {
    /// The header's trace and parent when it is well formed and says `Sampled=1`; `None`
    /// otherwise (not sampled, undecided, or without a parent): then nothing is sent.
    pub fn sampled(header: &str) -> Option<TraceHeader> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            let (key, value) = part.split_once('=')?;
            match key.trim() {
                "Root" => root = Some(value.trim()),
                "Parent" => parent = Some(value.trim()),
                "Sampled" => sampled = value.trim() == "1",
                _ => {}
            }
        }
        let (root, parent) = (root?, parent?);
        (sampled && is_trace_id(root) && is_segment_id(parent)).then(|| TraceHeader {
            trace_id: root.to_owned(),
            parent_id: parent.to_owned(),
        })
    }
}

/// `1-` then 8 hex digits (the epoch seconds of the trace's start) then `-` and 24 hex digits.
pub fn is_trace_id(id: &str) -> bool {
    let mut parts = id.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("1"), Some(time), Some(random), None)
            if is_hex(time, 8) && is_hex(random, 24)
    )
}

/// A segment or subsegment id: 16 hex digits.
pub fn is_segment_id(id: &str) -> bool {
    is_hex(id, 16)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampled_header_gives_its_trace_and_parent_in_any_order() {
        let want = TraceHeader {
            trace_id: "1-5759e988-bd862e3fe1be46a994272793".into(),
            parent_id: "53995c3f42cd8ad8".into(),
        };
        for header in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Sampled=1;Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=1; \
             Lineage=a87bd80c:1|68fd508a:5",
        ] {
            assert_eq!(TraceHeader::sampled(header), Some(want.clone()), "{header}");
        }
    }

    #[test]
    fn an_unsampled_or_malformed_header_sends_nothing() {
        for header in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e98-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a99427279z;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad;Sampled=1",
            "",
            "garbage",
        ] {
            assert_eq!(TraceHeader::sampled(header), None, "{header}");
        }
    }
}
