//! What callers of the runner send and get back: an async invoke, its
//! acceptance, a terminate's outcome, and why either failed.

use fnhost_proto::rpc::TypedData;

use crate::events::{EventStatus, InvokeType, StoreError};
use crate::ids::RequestId;

/// An async invoke as the API received it.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// The function.
    pub function: String,
    /// Qualifier; `$LATEST` when `None`.
    pub qualifier: Option<String>,
    /// How it was invoked.
    pub invoke_type: InvokeType,
    /// The trigger input.
    pub input: TypedData,
    /// `Idempotency-Key` and a digest of the request body.
    pub idempotency: Option<(String, Vec<u8>)>,
    /// The caller's trace context: the event's accept span is a child of
    /// it (the root of a new trace when `None`), and every attempt a child
    /// of the accept span.
    pub trace: Option<crate::trace::TraceContext>,
}

/// An accepted invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new event, durably stored.
    New(RequestId),
    /// A repeat of an earlier request with the same idempotency key and body.
    Existing(RequestId),
}

/// Why an async invoke was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// No such function.
    #[error("function '{0}' does not exist")]
    UnknownFunction(String),
    /// The idempotency key was used with a different body.
    #[error(
        "idempotency key '{key}' was already used for request {existing} with a different body"
    )]
    Conflict {
        /// The key.
        key: String,
        /// The request id it belongs to.
        existing: RequestId,
    },
    /// The store failed; nothing was accepted.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a terminate request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TerminateError {
    /// The async runner has stopped (the host is shutting down, or the
    /// runner ended), so nothing can be terminated.
    #[error("the async runner has stopped")]
    RunnerStopped,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a terminate request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateOutcome {
    /// The terminate was carried out (or is under way for a running event).
    Done,
    /// The event had already ended with this status.
    AlreadyCompleted(EventStatus),
    /// No such event (or pruned).
    NotFound,
}
