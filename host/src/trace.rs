//! W3C trace context (`traceparent`, `tracestate`): the trace an invocation
//! joins. An incoming `traceparent` on `/api/*` and the admin routes is the
//! parent of the invocation's span; without one (or with one that is not
//! valid, which the W3C text says to ignore) the invocation starts a new
//! trace. The worker gets the invocation's span as its parent, in
//! `InvocationRequest.trace_context`. An async event keeps its trace, so
//! every attempt, retry and `onFailure` call joins it.

use axum::http::HeaderMap;

/// Longest `tracestate` passed on (the W3C limit is 512 characters).
const MAX_STATE: usize = 512;

/// A trace and the span within it. The ids are kept inline, not as
/// `String`s: every invocation holds one while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, not all zeros.
    trace_id: HexId<32>,
    /// 16 lowercase hex digits, not all zeros: the span this context names.
    span_id: HexId<16>,
    /// The trace flags (bit 0: sampled).
    flags: u8,
    /// The vendors' `tracestate`, passed on unchanged (empty when none).
    state: String,
    /// The parent span's id, when this context is a span the host made
    /// under one (`None` for a caller's context or a new trace).
    parent: Option<HexId<16>>,
    /// Whether that parent is a caller's span rather than one of the
    /// host's own.
    parent_remote: bool,
}

/// The next number of this thread's generator: SplitMix64, seeded once
/// per thread from the operating system's randomness (through a v4 UUID).
/// Trace and span ids need to be unpredictable enough not to collide, not
/// secret; a system call per id showed in the HTTP path's profile.
fn next_random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A W3C id of `N` lowercase hex digits, not all zeros.
#[derive(Clone, Copy, PartialEq, Eq)]
struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    /// A random id.
    fn random() -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        loop {
            let mut id = [0u8; N];
            for chunk in id.chunks_mut(16) {
                let mut bits = next_random();
                for digit in chunk {
                    *digit = DIGITS[(bits & 0xf) as usize];
                    bits >>= 4;
                }
            }
            if id.iter().any(|&d| d != b'0') {
                return Self(id);
            }
        }
    }

    /// `s` as an id, when it is `N` lowercase hex digits not all zeros.
    fn parse(s: &str) -> Option<Self> {
        if !fnhost_proto::traceparent::is_hex_id(s, N) {
            return None;
        }
        s.as_bytes().try_into().ok().map(Self)
    }

    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl<const N: usize> std::fmt::Debug for HexId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Quoted, as the `String` it replaced printed.
        write!(f, "{:?}", self.as_str())
    }
}

impl TraceContext {
    /// A `traceparent` (and its `tracestate`), or `None` when it is not a
    /// valid one: version `00` (or a later version's first four fields),
    /// lowercase hex ids not all zeros.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let (trace_id, span_id, flags) = fnhost_proto::traceparent::parse_traceparent(traceparent)?;
        let state = tracestate
            .map(str::trim)
            .filter(|s| s.len() <= MAX_STATE && s.is_ascii())
            .unwrap_or_default()
            .to_string();
        Some(Self {
            trace_id: HexId::parse(trace_id)?,
            span_id: HexId::parse(span_id)?,
            flags,
            state,
            parent: None,
            parent_remote: false,
        })
    }

    /// The root span of a new trace, sampled as `OTEL_TRACES_SAMPLER`
    /// says.
    pub fn root() -> Self {
        let trace_id = HexId::random();
        let flags = u8::from(crate::otel::sampled(trace_id.as_str(), None));
        Self {
            trace_id,
            span_id: HexId::random(),
            flags,
            state: String::new(),
            parent: None,
            parent_remote: false,
        }
    }

    /// The caller's context from `traceparent`/`tracestate`, when it sent
    /// a valid one.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        get("traceparent").and_then(|p| Self::parse(p, get("tracestate")))
    }

    /// The span a request's work runs as: a child of the caller's span
    /// when it sent one, else the root of a new trace.
    pub fn for_request(headers: &HeaderMap) -> Self {
        Self::from_headers(headers).map_or_else(Self::root, |caller| caller.remote_child())
    }

    /// A span of this trace whose parent is this context's span, one of
    /// the host's own.
    pub fn child(&self) -> Self {
        self.child_of(false)
    }

    /// A span whose parent is this context's span, a caller's.
    pub fn remote_child(&self) -> Self {
        self.child_of(true)
    }

    fn child_of(&self, remote: bool) -> Self {
        Self {
            span_id: HexId::random(),
            flags: u8::from(crate::otel::sampled(
                self.trace_id.as_str(),
                Some(self.flags),
            )),
            parent: Some(self.span_id),
            parent_remote: remote,
            ..self.clone()
        }
    }

    /// The parent span's id, when the host made this span under one.
    pub fn parent_span_id(&self) -> Option<&str> {
        self.parent.as_ref().map(HexId::as_str)
    }

    /// Whether the parent is a caller's span.
    pub fn parent_is_remote(&self) -> bool {
        self.parent_remote
    }

    /// Whether the span is sampled (recorded and exported).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id.
    pub fn trace_id(&self) -> &str {
        self.trace_id.as_str()
    }

    /// The span id.
    pub fn span_id(&self) -> &str {
        self.span_id.as_str()
    }

    /// The `tracestate` passed on.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// As a version-00 `traceparent`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id.as_str(),
            self.span_id.as_str(),
            self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_reads_back_and_a_child_keeps_the_trace() {
        let t = TraceContext::parse(GOOD, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(t.traceparent(), GOOD);
        assert_eq!(t.state(), "congo=t61rcWkgMzE");
        let c = t.remote_child();
        assert_eq!(c.trace_id(), t.trace_id());
        assert_ne!(c.span_id(), t.span_id());
        assert_eq!(c.parent_span_id(), Some(t.span_id()));
        assert!(c.parent_is_remote() && c.sampled());
        let g = c.child();
        assert_eq!(g.parent_span_id(), Some(c.span_id()));
        assert!(!g.parent_is_remote());
        // An unsampled caller's trace stays unsampled (parent-based).
        let off = TraceContext::parse(&GOOD.replace("-01", "-00"), None).unwrap();
        assert!(!off.remote_child().sampled());
        assert_eq!(c.traceparent().len(), GOOD.len());
        // A later version's extra fields are ignored.
        assert!(TraceContext::parse(&format!("01-{}-extra", &GOOD[3..]), None).is_some());
    }

    #[test]
    fn ids_are_valid_hex_and_do_not_repeat() {
        use fnhost_proto::traceparent::is_hex_id;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let t = TraceContext::root();
            assert!(
                is_hex_id(t.trace_id(), 32) && is_hex_id(t.span_id(), 16),
                "{t:?}"
            );
            assert!(seen.insert(t.trace_id().to_string()));
            assert!(seen.insert(t.span_id().to_string()));
        }
        // Threads do not share a sequence.
        let other = std::thread::spawn(|| TraceContext::root().trace_id().to_string())
            .join()
            .unwrap();
        assert!(!seen.contains(&other));
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "junk".parse().unwrap());
        let t = TraceContext::for_request(&headers);
        assert_eq!(t.parent_span_id(), None, "a new trace has no parent");
        use fnhost_proto::traceparent::is_hex_id;
        assert!(is_hex_id(t.trace_id(), 32) && is_hex_id(t.span_id(), 16));
        // An oversized tracestate is dropped, the trace kept.
        let long = "a=".to_string() + &"b".repeat(600);
        assert_eq!(TraceContext::parse(GOOD, Some(&long)).unwrap().state(), "");
    }
}
