//! Per-invocation [`Context`]: identity, deadline and attempt, cancellation,
//! trace and logging.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use fnhost_proto::rpc::{rpc_log, RpcLog};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::TaskEvent;
use crate::{HandlerError, TraceContext};

/// Severity of a log line sent with [`Context::log`].
pub use fnhost_proto::rpc::rpc_log::Level as LogLevel;

/// What a handler knows about the invocation it runs.
///
/// Cheap to clone; clones share the invocation's cancellation state.
///
/// ```no_run
/// use std::time::Duration;
/// use fnhost_worker::{Context, HandlerError, Input};
///
/// async fn handler(ctx: Context, _input: Input) -> Result<String, HandlerError> {
///     ctx.info(format!(
///         "invocation {} of {}, attempt {}",
///         ctx.invocation_id(),
///         ctx.function_name(),
///         ctx.attempt()
///     ));
///     ctx.until_cancelled(tokio::time::sleep(Duration::from_secs(1))).await?;
///     Ok("done".into())
/// }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    invocation: Invocation,
    token: CancellationToken,
    /// Why the host cancelled, set before the token is cancelled.
    reason: Arc<OnceLock<String>>,
    sink: Option<UnboundedSender<TaskEvent>>,
}

/// What the request says about an invocation, besides its input.
#[derive(Clone, Debug)]
pub(crate) struct Invocation {
    /// Shared with the dispatcher's in-flight entry and the task.
    pub(crate) id: Arc<str>,
    pub(crate) function_name: Arc<str>,
    /// The request's `trace_context`, when it had one.
    pub(crate) trace: Option<TraceContext>,
    pub(crate) deadline: Option<SystemTime>,
    pub(crate) attempt: u32,
}

impl Invocation {
    fn for_test(id: String) -> Self {
        Self {
            id: id.into(),
            function_name: "test".into(),
            trace: None,
            deadline: None,
            attempt: 1,
        }
    }
}

impl Context {
    pub(crate) fn new(
        invocation: Invocation,
        token: CancellationToken,
        reason: Arc<OnceLock<String>>,
        sink: UnboundedSender<TaskEvent>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                invocation,
                token,
                reason,
                sink: Some(sink),
            }),
        }
    }

    /// A context for unit-testing a handler outside a worker: function name
    /// `test`, attempt 1, no deadline, no trace (see
    /// [`with_attempt`](Self::with_attempt),
    /// [`with_deadline`](Self::with_deadline) and
    /// [`for_test_in_trace`](Self::for_test_in_trace)). Cancel the returned
    /// token to simulate the host cancelling the invocation. Log lines are
    /// written to `tracing` at debug level instead of the host.
    ///
    /// ```
    /// let (ctx, cancel) = fnhost_worker::Context::for_test("inv-1");
    /// cancel.cancel();
    /// assert!(ctx.is_cancelled());
    /// ```
    pub fn for_test(invocation_id: impl Into<String>) -> (Context, CancellationToken) {
        Self::test_context(Invocation::for_test(invocation_id.into()))
    }

    /// Like [`for_test`](Self::for_test), for an invocation in `trace` (what
    /// [`trace_context`](Self::trace_context) returns).
    ///
    /// ```
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
        let mut invocation = Invocation::for_test(invocation_id.into());
        invocation.trace = Some(trace);
        Self::test_context(invocation)
    }

    fn test_context(invocation: Invocation) -> (Context, CancellationToken) {
        let token = CancellationToken::new();
        let ctx = Self {
            inner: Arc::new(Inner {
                invocation,
                token: token.clone(),
                reason: Arc::default(),
                sink: None,
            }),
        };
        (ctx, token)
    }

    /// This context reporting `attempt` as its [`attempt`](Self::attempt),
    /// for tests of retry-aware handlers. It shares the cancellation of the
    /// context it came from.
    ///
    /// ```
    /// let (ctx, _cancel) = fnhost_worker::Context::for_test("inv-1");
    /// assert_eq!(ctx.with_attempt(2).attempt(), 2);
    /// ```
    pub fn with_attempt(self, attempt: u32) -> Self {
        self.map_invocation(|i| i.attempt = attempt.max(1))
    }

    /// This context reporting `deadline` as its [`deadline`](Self::deadline),
    /// for tests of handlers that budget their time. It shares the
    /// cancellation of the context it came from.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// let (ctx, _cancel) = fnhost_worker::Context::for_test("inv-1");
    /// let deadline = SystemTime::now() + Duration::from_secs(30);
    /// assert_eq!(ctx.with_deadline(deadline).deadline(), Some(deadline));
    /// ```
    pub fn with_deadline(self, deadline: SystemTime) -> Self {
        self.map_invocation(|i| i.deadline = Some(deadline))
    }

    fn map_invocation(self, change: impl FnOnce(&mut Invocation)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        change(&mut inner.invocation);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The host's id of this invocation (`InvocationRequest.invocation_id`;
    /// fnhost's HTTP API reports it as `x-fnhost-invocation-id`). Each
    /// attempt of an async event is an invocation of its own, with its own
    /// id.
    ///
    /// ```
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// assert_eq!(ctx.invocation_id(), "inv-1");
    /// ```
    pub fn invocation_id(&self) -> &str {
        &self.inner.invocation.id
    }

    /// The name of the function being invoked.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// println!("{}", ctx.function_name());
    /// ```
    pub fn function_name(&self) -> &str {
        &self.inner.invocation.function_name
    }

    /// When the host's function timeout for this invocation fires, or
    /// `None` when the host did not say.
    ///
    /// fnhost sends it with every request as the trigger metadata
    /// [`fnhost_proto::META_DEADLINE`] (`FnhostDeadline`: JSON, Unix
    /// milliseconds UTC); hosts that do not (Azure's), and a malformed value,
    /// give `None`. At the deadline the host cancels the invocation with
    /// reason `timeout` and, if the handler has not returned within the
    /// cancel grace period, kills the worker instance; check the time left
    /// before starting work that cannot be interrupted.
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// let left = ctx
    ///     .deadline()
    ///     .and_then(|d| d.duration_since(SystemTime::now()).ok());
    /// if left.is_some_and(|left| left < Duration::from_secs(5)) {
    ///     ctx.warn("less than 5 s left; skipping the slow path");
    /// }
    /// ```
    pub fn deadline(&self) -> Option<SystemTime> {
        self.inner.invocation.deadline
    }

    /// Which attempt this is, 1-based: 1 for the first run of an async
    /// event and for every synchronous invocation, 2 for the event's first
    /// retry, and so on.
    ///
    /// fnhost sends it with every request as the trigger metadata
    /// [`fnhost_proto::META_ATTEMPT`] (`FnhostAttempt`: a JSON number). It
    /// is 1 when the host sent none or a value that is not a positive whole
    /// number.
    ///
    /// ```no_run
    /// # let (ctx, _) = fnhost_worker::Context::for_test("inv-1");
    /// if ctx.attempt() > 1 {
    ///     ctx.info(format!("retry {}: checking what the last run left", ctx.attempt() - 1));
    /// }
    /// ```
    pub fn attempt(&self) -> u32 {
        self.inner.invocation.attempt
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
        self.inner.invocation.trace.as_ref()
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

    /// Runs `fut` until it completes or this invocation is cancelled,
    /// whichever comes first. On cancellation `fut` is dropped and the
    /// result is [`HandlerError::cancelled()`], so `?` ends the handler and
    /// the host records the invocation as cancelled. On an invocation
    /// already cancelled `fut` never starts. It is
    /// [`CancellationToken::run_until_cancelled`] on the invocation's token,
    /// and replaces a hand-written `select!` on [`cancelled`](Self::cancelled).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use fnhost_worker::{Context, HandlerError, Input};
    ///
    /// async fn slow(ctx: Context, _input: Input) -> Result<&'static str, HandlerError> {
    ///     ctx.until_cancelled(tokio::time::sleep(Duration::from_secs(30)))
    ///         .await
    ///         .inspect_err(|_| ctx.info(format!("stopped: {:?}", ctx.cancel_reason())))?;
    ///     Ok("done")
    /// }
    /// ```
    pub async fn until_cancelled<F: Future>(&self, fut: F) -> Result<F::Output, HandlerError> {
        self.inner
            .token
            .run_until_cancelled(fut)
            .await
            .ok_or_else(HandlerError::cancelled)
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
                    invocation_id: self.inner.invocation.id.to_string(),
                    category: self.inner.invocation.function_name.to_string(),
                    level: level as i32,
                    message,
                    log_category: rpc_log::RpcLogCategory::User as i32,
                    ..RpcLog::default()
                };
                // The loop is gone only when the worker is shutting down.
                let _ = sink.send(TaskEvent::Log(log));
            }
            None => tracing::debug!(
                invocation_id = %self.inner.invocation.id,
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
            .field("invocation_id", &self.inner.invocation.id)
            .field("function_name", &self.inner.invocation.function_name)
            .field(
                "trace_parent",
                &self
                    .inner
                    .invocation
                    .trace
                    .as_ref()
                    .map(TraceContext::trace_parent),
            )
            .field("deadline", &self.inner.invocation.deadline)
            .field("attempt", &self.inner.invocation.attempt)
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
        let mut invocation = Invocation::for_test("i".into());
        invocation.function_name = "f".into();
        let ctx = Context::new(invocation, CancellationToken::new(), Arc::default(), tx);
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

    #[tokio::test]
    async fn until_cancelled_returns_the_output_or_cancelled() {
        let (ctx, cancel) = Context::for_test("i");
        assert_eq!(ctx.until_cancelled(async { 7 }).await.unwrap(), 7);
        let pending = tokio::spawn({
            let ctx = ctx.clone();
            async move { ctx.until_cancelled(std::future::pending::<()>()).await }
        });
        cancel.cancel();
        assert!(pending.await.unwrap().unwrap_err().is_cancelled());
        // Once cancelled, nothing more runs.
        let ran = ctx.until_cancelled(async { unreachable!() }).await;
        assert!(ran.unwrap_err().is_cancelled());
    }

    #[test]
    fn test_contexts_report_attempt_and_deadline_and_share_cancellation() {
        let (ctx, cancel) = Context::for_test("i");
        assert_eq!((ctx.attempt(), ctx.deadline()), (1, None));
        let deadline = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(60);
        let retried = ctx.clone().with_attempt(3).with_deadline(deadline);
        assert_eq!((retried.attempt(), retried.deadline()), (3, Some(deadline)));
        assert_eq!(ctx.attempt(), 1, "the original is unchanged");
        assert_eq!(ctx.with_attempt(0).attempt(), 1, "attempts are 1-based");
        cancel.cancel();
        assert!(retried.is_cancelled());
    }
}
