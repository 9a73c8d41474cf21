//! Invocation vocabulary shared by the dispatcher, the HTTP layer and the
//! library API: requests, outcomes, cancel reasons.

use std::fmt;
use std::time::Duration;

use fnhost_proto::rpc::{RpcHttp, TypedData};
use serde::Serialize;

pub use crate::ids::{InvocationId, WorkerId};

/// What a caller hands the host to run.
#[derive(Debug, Clone)]
pub struct InvocationInput {
    /// The trigger's data.
    pub trigger: TypedData,
    /// Id to use instead of a fresh one (async events reuse their request id).
    pub invocation_id: Option<InvocationId>,
    /// The invocation's own span, which its worker's spans are children of
    /// (the root of a new trace when `None`).
    pub trace: Option<crate::trace::TraceContext>,
    /// Which run of an async event this is (1 for the first); `None` for a
    /// synchronous invocation, which the worker is told is attempt 1.
    pub attempt: Option<u32>,
}

impl InvocationInput {
    /// Input carrying `data` for the trigger binding.
    pub fn new(trigger: TypedData) -> Self {
        Self {
            trigger,
            invocation_id: None,
            trace: None,
            attempt: None,
        }
    }

    /// Runs as attempt `n` (1 for the first) of an async event.
    pub fn attempt(mut self, n: u32) -> Self {
        self.attempt = Some(n);
        self
    }

    /// Runs as `span` (made by [`crate::trace::TraceContext::for_request`]
    /// or as a child of a stored one).
    pub fn in_span(mut self, span: crate::trace::TraceContext) -> Self {
        self.trace = Some(span);
        self
    }

    /// Input for an HTTP trigger.
    pub fn http(request: RpcHttp) -> Self {
        Self::new(TypedData::http(request))
    }

    /// The encoded size of the trigger data when an HTTP body is sent once
    /// (to a worker with `RpcHttpBodyOnly`): the least any request carrying
    /// it can take on the wire.
    pub fn least_encoded_len(&self) -> usize {
        use prost::Message;
        match &self.trigger.data {
            Some(fnhost_proto::rpc::typed_data::Data::Http(h)) => {
                // The request without its `rawBody` (field 17), as the
                // `http` field (5) of a `TypedData`; computed, not built,
                // since copying the request costs more than the rest of
                // the admission (it showed in the HTTP path's profile).
                use prost::encoding::{encoded_len_varint, key_len, message};
                let raw = h
                    .raw_body
                    .as_ref()
                    .map_or(0, |r| message::encoded_len(17, r));
                let once = h.encoded_len() - raw;
                key_len(5) + encoded_len_varint(once as u64) + once
            }
            _ => self.trigger.encoded_len(),
        }
    }

    /// Runs under the given id.
    pub fn with_id(mut self, id: impl Into<InvocationId>) -> Self {
        self.invocation_id = Some(id.into());
        self
    }
}

/// Where the dispatcher sent an invocation, reported to a caller that asked
/// (an HTTP trigger, which must forward the request to a worker that
/// serves HTTP itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// The worker instance.
    pub worker: WorkerId,
    /// Its `HttpUri` capability, when it advertises one.
    pub http_uri: Option<String>,
}

/// Why an invocation was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelReason {
    /// The function's timeout elapsed.
    Timeout,
    /// The HTTP client went away before the answer.
    ClientDisconnected,
    /// The host is shutting down.
    HostShutdown,
    /// A caller asked for it through the library API (e.g. terminate).
    Requested,
    /// The event's claim passed to another host (this host was presumed
    /// dead), which runs it instead.
    LeaseLost,
}

impl CancelReason {
    /// The reason as `InvocationCancel.reason` carries it to the worker.
    pub fn wire(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ClientDisconnected => "client disconnect",
            Self::HostShutdown => "host shutdown",
            Self::Requested => "terminate",
            Self::LeaseLost => "lease lost",
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "function timeout",
            Self::ClientDisconnected => "HTTP client disconnected",
            Self::HostShutdown => "host shutdown",
            Self::Requested => "cancel requested",
            Self::LeaseLost => "lease lost to another host",
        })
    }
}

/// The one terminal outcome of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The function returned a value.
    Succeeded,
    /// The function raised an error, or its worker failed under it.
    Failed,
    /// The invocation stopped cooperatively after a cancel (or never started).
    Cancelled,
    /// The function's timeout elapsed and the worker stopped it within the grace.
    TimedOut,
    /// The worker instance was killed to end it, or was killed under it.
    Killed,
}

impl Outcome {
    /// The value of the `x-fnhost-outcome` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed-out",
            Self::Killed => "killed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log line a worker sent for an invocation.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// `RpcLog.level` as its protocol name.
    pub level: String,
    /// `RpcLog.category`.
    pub category: String,
    /// `RpcLog.message`.
    pub message: String,
}

/// How an invocation ended.
#[derive(Debug, Clone)]
pub struct InvocationResult {
    /// The invocation.
    pub invocation_id: InvocationId,
    /// The function.
    pub function: String,
    /// The terminal outcome.
    pub outcome: Outcome,
    /// Why a cancel was requested, when one was.
    pub cancel_reason: Option<CancelReason>,
    /// What happened, for anything but success: names the invocation, and the
    /// worker instance where one is involved.
    pub error: Option<String>,
    /// The stack trace the worker sent with a failure, when it sent one
    /// (bounded to 16 KiB).
    pub stack_trace: Option<String>,
    /// The function's return value (or its HTTP output binding).
    pub output: Option<TypedData>,
    /// The worker instance that ran it last, if any.
    pub worker_id: Option<WorkerId>,
    /// Log lines the worker sent for this invocation (bounded).
    pub logs: Vec<LogLine>,
    /// Log lines dropped beyond the bound.
    pub logs_dropped: usize,
    /// Time from submission to the outcome.
    pub elapsed: Duration,
    /// True when it ended because its worker instance ended under it (a
    /// crash, a broken stream, or a kill aimed at another invocation).
    pub worker_lost: bool,
    /// Whether a cancel reached the worker, when one was requested.
    pub cancel_delivery: Option<CancelDelivery>,
}

/// What became of a cancel request on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelDelivery {
    /// `InvocationCancel` was sent to a worker that handles it.
    Signalled,
    /// The worker cannot receive cancels (no capability, stream gone); the
    /// host escalated to killing its instance.
    NotDeliverable,
}

impl InvocationResult {
    /// True when the outcome is [`Outcome::Succeeded`].
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Succeeded
    }
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelResponse {
    /// The cancel was sent (or the invocation, still queued, ended at once).
    Done,
    /// The worker could not be signalled (or a kill was asked for): its
    /// instance was killed to end the invocation.
    Forced,
    /// A cancel was already under way; nothing more was sent.
    AlreadyCancelling,
    /// The client went away from an invocation whose worker cannot be
    /// signalled: it runs on to its end (or its timeout) and its result is
    /// dropped. Killing the instance would let any caller who hangs up end
    /// every invocation beside theirs.
    Abandoned,
    /// The invocation had already ended.
    AlreadyCompleted,
    /// No such invocation.
    NotFound,
    /// The host is not running (stopped, or its dispatcher has ended):
    /// nothing could be looked up or cancelled.
    HostStopped,
}

/// Why the host would not take an invocation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InvokeError {
    /// No function of that name.
    #[error("function '{0}' does not exist")]
    UnknownFunction(String),
    /// The function is disabled in its function.json.
    #[error("function '{0}' is disabled")]
    Disabled(String),
    /// Every instance is busy and the wait queue is full.
    #[error("all worker instances are busy and the wait queue is full ({queued} waiting, limit {limit}); retry later")]
    QueueFull {
        /// Invocations waiting.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// No worker can serve now (restart budget exhausted, load failures).
    #[error("no worker can run function '{function}': {reason}")]
    Unavailable {
        /// The function.
        function: String,
        /// Why.
        reason: String,
    },
    /// The host is shutting down.
    #[error("the host is shutting down and takes no new invocations")]
    ShuttingDown,
    /// The host is draining (an operator asked it to stop taking work).
    #[error("the host is draining and takes no new invocations")]
    Draining,
    /// The request would not fit in one message to a worker.
    #[error(
        "the invocation request would be {size} bytes, over the {limit}-byte message limit \
         of the workers (workers.maxMessageBytes)"
    )]
    TooLarge {
        /// The encoded request's size.
        size: usize,
        /// `workers.maxMessageBytes`.
        limit: usize,
    },
    /// An invocation with that id is already running.
    #[error("an invocation with id '{0}' is already in progress")]
    DuplicateId(InvocationId),
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn the_least_encoded_len_is_the_request_without_its_raw_body() {
        let mut http = RpcHttp {
            method: "POST".into(),
            url: "http://127.0.0.1/api/echo?x=1".into(),
            headers: [("content-type".to_string(), "text/plain".to_string())].into(),
            query: [("x".to_string(), "1".to_string())].into(),
            body: Some(Box::new(TypedData::bytes(vec![7u8; 300]))),
            ..RpcHttp::default()
        };
        let without = TypedData::http(http.clone()).encoded_len();
        assert_eq!(
            InvocationInput::http(http.clone()).least_encoded_len(),
            without
        );
        http.raw_body = Some(Box::new(TypedData::bytes(vec![7u8; 300])));
        let input = InvocationInput::http(http);
        assert_eq!(input.least_encoded_len(), without);
        assert!(input.trigger.encoded_len() > without + 300);
        // Any other data: its own size.
        let text = InvocationInput::new(TypedData::string("x".repeat(200)));
        assert_eq!(text.least_encoded_len(), text.trigger.encoded_len());
    }
}
