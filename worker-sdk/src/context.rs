//! Per-invocation [`Context`]: identity, cancellation, trace and logging.

use std::fmt;
use std::sync::{Arc, OnceLock};

use fnhost_proto::rpc::{rpc_log, RpcLog};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::TaskEvent;
use crate::TraceContext;

/// Severity of a log line sent with [`Context::log`].
pub use fnhost_proto::rpc::rpc_log::Level as LogLevel;

/// What a handler knows about the invocation it runs.
///
/// Cheap to clone; clones share the invocation's cancellation state.
///
/// ```no_run
/// use fnhost_worker::{Context, HandlerError, Input};
///
/// async fn handler(ctx: Context, _input: Input) -> Result<String, HandlerError> {
///     ctx.info(format!("invocation {} of {}", ctx.invocation_id(), ctx.function_name()));
///     tokio::select! {
///         _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => Ok("done".into()),
///         _ = ctx.cancelled() => Err(HandlerError::cancelled()),
///     }
/// }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    invocation_id: String,
    function_name: String,
    token: CancellationToken,
    /// Why the host cancelled, set before the token is cancelled.
    reason: Arc<OnceLock<String>>,
    sink: Option<UnboundedSender<TaskEvent>>,
    /// The request's `trace_context`, when it had one.
    trace: Option<TraceContext>,
}

impl Context {
    pub(crate) fn new(
        invocation_id: String,
        function_name: String,
        token: CancellationToken,
        reason: Arc<OnceLock<String>>,
        sink: UnboundedSender<TaskEvent>,
        trace: Option<TraceContext>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                invocation_id,
                function_name,
                token,
                reason,
                sink: Some(sink),
                trace,
            }),
        }
    }

    /// A context for unit-testing a handler outside a worker. Cancel the
    /// returned token to simulate the host cancelling the invocation. Log
    /// lines are written to `tracing` at debug level instead of the host.
    ///
    /// ```no_run
    /// let (ctx, cancel) = fnhost_worker::Context::for_test("inv-1");
    /// cancel.cancel();
    /// assert!(ctx.is_cancelled());
    /// ```
    pub fn for_test(invocation_id: impl Into<String>) -> (Context, CancellationToken) {
        Self::test_context(invocation_id.into(), None)
    }

    /// Like [`for_test`](Self::for_test), for an invocation in `trace` (what
    /// [`trace_context`](Self::trace_context) returns).
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, TraceContext};
    ///
    /// let trace = TraceContext::new(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ///     "",
    ///     [("OperationName", "test")],
    /// );
    /// let (ctx, _cancel) = Context::for_test_in_trace("inv-1", trace.clone());
    /// assert_eq!(ctx.trace_context(), Some(&trace));
    /// ```
    pub fn for_test_in_trace(
        invocation_id: impl Into<String>,
        trace: TraceContext,
    ) -> (Context, CancellationToken) {
        Self::test_context(invocation_id.into(), Some(trace))
    }

    fn test_context(
        invocation_id: String,
        trace: Option<TraceContext>,
    ) -> (Context, CancellationToken) {
        let token = CancellationToken::new();
        let ctx = Self {
            inner: Arc::new(Inner {
                invocation_id,
                function_name: "test".to_string(),
                token: token.clone(),
                reason: Arc::default(),
                sink: None,
                trace,
            }),
        };
        (ctx, token)
    }

    /// The host's id of this invocation.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// assert_eq!(ctx.invocation_id(), "inv-1");
    /// ```
    pub fn invocation_id(&self) -> &str {
        &self.inner.invocation_id
    }

    /// The name of the function being invoked.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// println!("{}", ctx.function_name());
    /// ```
    pub fn function_name(&self) -> &str {
        &self.inner.function_name
    }

    /// The distributed trace this invocation runs in, from the request's
    /// `trace_context`: its [`trace_parent`](TraceContext::trace_parent)
    /// names the invocation's span (spans the handler starts are its
    /// children), with the caller's [`trace_state`](TraceContext::trace_state)
    /// and the [`attributes`](TraceContext::attributes) the host adds
    /// (`OperationName`: the function name). `None` when the host sent none.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// if let Some(trace) = ctx.trace_context() {
    ///     // Pass the trace on to a downstream call.
    ///     let header = ("traceparent", trace.trace_parent().to_string());
    ///     println!("trace {:?} span {:?}: {header:?}", trace.trace_id(), trace.span_id());
    /// }
    /// ```
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.inner.trace.as_ref()
    }

    /// True once the host cancelled this invocation (or the worker is
    /// shutting down).
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// if ctx.is_cancelled() { /* stop early */ }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// Why the host cancelled this invocation, once it did and said so:
    /// `timeout`, `host shutdown`, `client disconnect`, `terminate` or
    /// `lease lost` (another host took the event over, so this run is a
    /// duplicate). `None` before a cancel, for a worker shutdown, and from
    /// hosts that send no reason.
    ///
    /// ```no_run
    /// # async fn f(ctx: fnhost_worker::Context) {
    /// ctx.cancelled().await;
    /// if ctx.cancel_reason() == Some("lease lost") { /* another host runs it */ }
    /// # }
    /// ```
    pub fn cancel_reason(&self) -> Option<&str> {
        self.inner.reason.get().map(String::as_str)
    }

    /// Completes when this invocation is cancelled.
    ///
    /// ```no_run
    /// # async fn f(ctx: fnhost_worker::Context) {
    /// ctx.cancelled().await;
    /// # }
    /// ```
    pub async fn cancelled(&self) {
        self.inner.token.cancelled().await;
    }

    /// A token that is cancelled with this invocation, for handing to other
    /// tasks. It is a child token: cancelling it does not cancel the
    /// invocation or any other one.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// let token = ctx.cancellation_token();
    /// tokio::spawn(async move { token.cancelled().await });
    /// ```
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.token.child_token()
    }

    /// Sends a user log line for this invocation to the host.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// ctx.log(fnhost_worker::LogLevel::Debug, "details");
    /// ```
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        let message = message.into();
        match &self.inner.sink {
            Some(sink) => {
                let log = RpcLog {
                    invocation_id: self.inner.invocation_id.clone(),
                    category: self.inner.function_name.clone(),
                    level: level as i32,
                    message,
                    log_category: rpc_log::RpcLogCategory::User as i32,
                    ..RpcLog::default()
                };
                // The loop is gone only when the worker is shutting down.
                let _ = sink.send(TaskEvent::Log(log));
            }
            None => tracing::debug!(
                invocation_id = %self.inner.invocation_id,
                level = level.as_str_name(),
                "{message}"
            ),
        }
    }

    /// [`log`](Self::log) at `Information` level.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// ctx.info("started");
    /// ```
    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Information, message);
    }

    /// [`log`](Self::log) at `Warning` level.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// ctx.warn("slow");
    /// ```
    pub fn warn(&self, message: impl Into<String>) {
        self.log(LogLevel::Warning, message);
    }

    /// [`log`](Self::log) at `Error` level.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// ctx.error("failed");
    /// ```
    pub fn error(&self, message: impl Into<String>) {
        self.log(LogLevel::Error, message);
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("invocation_id", &self.inner.invocation_id)
            .field("function_name", &self.inner.function_name)
            .field(
                "trace_parent",
                &self.inner.trace.as_ref().map(TraceContext::trace_parent),
            )
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_token_is_a_child() {
        let (ctx, cancel) = Context::for_test("i");
        let child = ctx.cancellation_token();
        child.cancel();
        assert!(!ctx.is_cancelled());
        let child2 = ctx.cancellation_token();
        cancel.cancel();
        assert!(ctx.is_cancelled() && child2.is_cancelled());
    }

    #[test]
    fn logs_go_to_the_sink_with_category() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = Context::new(
            "i".into(),
            "f".into(),
            CancellationToken::new(),
            Arc::default(),
            tx,
            None,
        );
        ctx.warn("w");
        match rx.try_recv().unwrap() {
            TaskEvent::Log(log) => {
                assert_eq!(log.invocation_id, "i");
                assert_eq!(log.category, "f");
                assert_eq!(log.level, LogLevel::Warning as i32);
                assert_eq!(log.message, "w");
            }
            TaskEvent::Done(..) => panic!("expected a log"),
        }
    }
}
