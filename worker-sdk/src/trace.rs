//! [`TraceContext`]: the W3C trace an invocation belongs to.

use fnhost_proto::rpc::RpcTraceContext;

/// The distributed trace an invocation runs in, as the host sent it in
/// `InvocationRequest.trace_context`: read it with
/// [`Context::trace_context`](crate::Context::trace_context).
///
/// [`trace_parent`](Self::trace_parent) is a W3C `traceparent`
/// (`00-<trace id>-<span id>-<flags>`) naming the invocation's span, so spans
/// the handler starts are its children; [`trace_state`](Self::trace_state)
/// is the caller's `tracestate`; [`attributes`](Self::attributes) holds
/// extra properties (the host sets `OperationName` to the function name),
/// read one with [`attribute`](Self::attribute).
///
/// ```no_run
/// use fnhost_worker::{Context, HandlerError, Input};
///
/// async fn handler(ctx: Context, _input: Input) -> Result<String, HandlerError> {
///     let trace = ctx.trace_context().and_then(|t| t.trace_id()).unwrap_or("none");
///     ctx.info(format!("running in trace {trace}"));
///     Ok(trace.to_string())
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceContext {
    trace_parent: String,
    trace_state: String,
    /// Sorted by name. A slice, not a map: the context lives as long as
    /// its invocation, and a map of one entry costs four buckets.
    attributes: Box<[(String, String)]>,
}

impl TraceContext {
    /// A trace context from its parts (for tests, see
    /// [`Context::for_test_in_trace`](crate::Context::for_test_in_trace)).
    ///
    /// ```no_run
    /// let t = fnhost_worker::TraceContext::new(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ///     "congo=t61rcWkgMzE",
    ///     [("OperationName", "echo")],
    /// );
    /// assert_eq!(t.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    /// ```
    pub fn new<K, V>(
        trace_parent: impl Into<String>,
        trace_state: impl Into<String>,
        attributes: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            trace_parent: trace_parent.into(),
            trace_state: trace_state.into(),
            attributes: sorted(attributes.into_iter().map(|(k, v)| (k.into(), v.into()))),
        }
    }

    /// The W3C `traceparent` of the invocation's span, as sent (empty when
    /// the host sent none).
    ///
    /// ```no_run
    /// # let t = fnhost_worker::TraceContext::default();
    /// println!("traceparent: {}", t.trace_parent());
    /// ```
    pub fn trace_parent(&self) -> &str {
        &self.trace_parent
    }

    /// The W3C `tracestate` (vendors' data), as sent; empty when none.
    ///
    /// ```no_run
    /// # let t = fnhost_worker::TraceContext::default();
    /// if !t.trace_state().is_empty() { println!("tracestate: {}", t.trace_state()); }
    /// ```
    pub fn trace_state(&self) -> &str {
        &self.trace_state
    }

    /// Extra properties of the trace as (name, value) pairs sorted by
    /// name (fnhost sends `OperationName`, the function's name).
    ///
    /// ```no_run
    /// # let t = fnhost_worker::TraceContext::default();
    /// for (name, value) in t.attributes() { println!("{name}={value}"); }
    /// ```
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// The value of the attribute `name`, if the host sent it.
    ///
    /// ```no_run
    /// # let t = fnhost_worker::TraceContext::default();
    /// let operation = t.attribute("OperationName");
    /// ```
    pub fn attribute(&self, name: &str) -> Option<&str> {
        let i = self
            .attributes
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()?;
        Some(&self.attributes[i].1)
    }

    /// The trace id (32 lowercase hex digits) when
    /// [`trace_parent`](Self::trace_parent) is well-formed, else `None`.
    ///
    /// ```no_run
    /// # let t = fnhost_worker::TraceContext::default();
    /// if let Some(id) = t.trace_id() { println!("trace {id}"); }
    /// ```
    pub fn trace_id(&self) -> Option<&str> {
        self.fields().map(|(trace_id, _, _)| trace_id)
    }

    /// The id of the invocation's span (16 lowercase hex digits): the parent
    /// of spans the handler starts. `None` when
    /// [`trace_parent`](Self::trace_parent) is not well-formed.
    ///
    /// ```no_run
    /// # let t = fnhost_worker::TraceContext::default();
    /// if let Some(id) = t.span_id() { println!("parent span {id}"); }
    /// ```
    pub fn span_id(&self) -> Option<&str> {
        self.fields().map(|(_, span_id, _)| span_id)
    }

    /// The trace flags (bit 0: sampled) when
    /// [`trace_parent`](Self::trace_parent) is well-formed.
    ///
    /// ```no_run
    /// # let t = fnhost_worker::TraceContext::default();
    /// let sampled = t.trace_flags().is_some_and(|f| f & 1 == 1);
    /// ```
    pub fn trace_flags(&self) -> Option<u8> {
        self.fields().map(|(_, _, flags)| flags)
    }

    /// The trace id, span id and flags of a well-formed `traceparent`:
    /// version `00` with exactly four fields (a later version with at least
    /// four; `ff` is invalid), lowercase hex ids that are not all zeros.
    fn fields(&self) -> Option<(&str, &str, u8)> {
        fnhost_proto::traceparent::parse_traceparent(&self.trace_parent)
    }
}

impl From<RpcTraceContext> for TraceContext {
    fn from(t: RpcTraceContext) -> Self {
        Self {
            trace_parent: t.trace_parent,
            trace_state: t.trace_state,
            attributes: sorted(t.attributes),
        }
    }
}

/// Attributes sorted by name, for [`TraceContext::attribute`]'s binary
/// search. A protocol map has unique names; of names given twice to
/// [`TraceContext::new`] the last stands, as in a map.
fn sorted(attributes: impl IntoIterator<Item = (String, String)>) -> Box<[(String, String)]> {
    let mut v: Vec<(String, String)> = attributes.into_iter().collect();
    // Latest first; the sort is stable, so of equal names the last given
    // leads its run, and dedup keeps the first of each run.
    v.reverse();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.dedup_by(|next, kept| next.0 == kept.0);
    v.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parent(p: &str) -> TraceContext {
        TraceContext::new(p, "", std::iter::empty::<(String, String)>())
    }

    #[test]
    fn a_well_formed_traceparent_gives_its_ids_and_flags() {
        let t = parent(GOOD);
        assert_eq!(t.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(t.span_id(), Some("00f067aa0ba902b7"));
        assert_eq!(t.trace_flags(), Some(1));
        assert_eq!(t.trace_parent(), GOOD);
        // A later version may add fields.
        let later = parent(&format!("01-{}-more", &GOOD[3..]));
        assert_eq!(later.span_id(), Some("00f067aa0ba902b7"));
    }

    #[test]
    fn a_malformed_traceparent_gives_no_ids_but_is_kept() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let t = parent(bad);
            assert_eq!(
                (t.trace_id(), t.span_id(), t.trace_flags()),
                (None, None, None),
                "{bad}"
            );
            assert_eq!(t.trace_parent(), bad);
        }
    }

    #[test]
    fn attributes_are_sorted_by_name_and_a_name_given_twice_keeps_its_last_value() {
        let t = TraceContext::new(GOOD, "", [("b", "1"), ("a", "2"), ("b", "3"), ("c", "4")]);
        let names: Vec<(&str, &str)> = t
            .attributes()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(names, [("a", "2"), ("b", "3"), ("c", "4")]);
        assert_eq!(t.attribute("b"), Some("3"));
        assert_eq!(t.attribute("d"), None);
        assert_eq!(parent(GOOD).attribute("OperationName"), None);
    }

    #[test]
    fn from_the_protocol_message() {
        let t = TraceContext::from(RpcTraceContext {
            trace_parent: GOOD.into(),
            trace_state: "congo=t61rcWkgMzE".into(),
            attributes: [("OperationName".into(), "f".into())].into(),
            ..RpcTraceContext::default()
        });
        assert_eq!(t.trace_state(), "congo=t61rcWkgMzE");
        assert_eq!(t.attribute("OperationName"), Some("f"));
        assert_eq!(t.attribute("Other"), None);
        assert_eq!(t.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }
}
