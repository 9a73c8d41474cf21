//! The core's vocabulary: the commands it is told ([`Cmd`]) and the
//! effects it asks the shell for ([`Effect`]).

use crate::events::postgres::RemoteTermination;
use crate::events::EventRecord;
use crate::ids::{InvocationId, RequestId};

/// How a user asked to end a running event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Cancel its invocation, escalated to a kill after the grace.
    Graceful,
    /// Kill its worker instance at once.
    Forced,
}

impl From<Termination> for RemoteTermination {
    fn from(t: Termination) -> Self {
        match t {
            Termination::Graceful => Self::Graceful,
            Termination::Forced => Self::Forced,
        }
    }
}

impl From<RemoteTermination> for Termination {
    fn from(t: RemoteTermination) -> Self {
        match t {
            RemoteTermination::Graceful => Self::Graceful,
            RemoteTermination::Forced => Self::Forced,
        }
    }
}

/// A timer of a waiting event; a timer that fires for an event that no
/// longer waits on it is a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TimerId(pub(super) u64);

/// Where an attempt left its event.
#[derive(Debug)]
pub(super) enum Next {
    /// Final; nothing more to do (`failed`: the event failed for good).
    Done { failed: Option<EventRecord> },
    /// Run again at this time (recorded as `RETRYING`).
    Retry(EventRecord, i64),
    /// Run again at this time; the store could not record it, so only
    /// memory knows.
    RetryUnrecorded(EventRecord, i64),
    /// Back to the queue (host shutting down or draining).
    Requeue(EventRecord),
    /// Not run: the event had ended before the attempt could start (a
    /// terminate got there first).
    Skipped,
}

/// What the core is told.
pub(super) enum Cmd<R> {
    /// Recovery is done: refills read queued events past `cursor`;
    /// `failed` are events recovery failed for good.
    Recovered {
        cursor: i64,
        failed: Vec<EventRecord>,
    },
    /// A stored event and its sequence number (the accept's hand-over).
    Accepted {
        event: EventRecord,
        seq: i64,
    },
    Terminate {
        id: RequestId,
        termination: Termination,
        reply: R,
    },
    /// A terminate of an event memory did not hold found it queued or
    /// retrying in the store.
    TerminateStored {
        event: EventRecord,
        termination: Termination,
        reply: R,
    },
    /// Answer a terminate once the event's attempt has settled (its
    /// invocation ended, or was not submitted, before the terminate
    /// reached it).
    AnswerAfterSettle {
        id: RequestId,
        reply: R,
    },
    /// A terminate's abort write is done; `failed` holds the event when it
    /// could not be recorded.
    AbortWritten {
        id: RequestId,
        failed: Option<EventRecord>,
    },
    Settled {
        id: RequestId,
        next: Next,
    },
    /// A refill's answer: queued events past the cursor with their sequence
    /// numbers; `complete` when the store held no more; `horizon` is the
    /// highest sequence number left in the store when the read began.
    Refilled {
        events: Vec<(i64, EventRecord)>,
        complete: bool,
        horizon: i64,
    },
    /// `RETRYING` events read from the store, earliest due first.
    RetriesLoaded {
        events: Vec<EventRecord>,
        complete: bool,
    },
    TimerFired {
        id: RequestId,
        timer: TimerId,
    },
    /// Stop starting attempts (a drain or a shutdown); queued events stay
    /// queued, durably.
    StopStartingAttempts,
    /// A shared store may hold ready events (an accept, or a poll): claim
    /// some when there is room.
    Poll,
    /// A terminate another host recorded for an event this host runs.
    DeliverTerminate {
        id: RequestId,
        termination: Termination,
    },
    /// Peers presumed this host dead and took its events over: drop every
    /// event held, and abandon the running attempts (their late writes are
    /// fenced off).
    LeaseLost,
    /// Events that failed for good elsewhere (rescued from a dead host),
    /// for the `onFailure` function.
    FailedElsewhere(Vec<EventRecord>),
}

/// What the shell is asked to do.
#[derive(Debug)]
pub(super) enum Effect<R> {
    /// Run an attempt of `event` as invocation `invocation_id`.
    StartAttempt {
        event: EventRecord,
        invocation_id: InvocationId,
    },
    /// Record that `event` is past `maxEventAge` instead of running it. It
    /// counts as running until it settles, so a terminate still reaches it.
    Expire {
        event: EventRecord,
    },
    /// Tell a running attempt about its terminate and cancel or kill its
    /// invocation.
    Signal {
        id: RequestId,
        invocation_id: InvocationId,
        termination: Termination,
        reply: R,
    },
    /// Tell a running attempt about a terminate recorded by another host,
    /// and cancel or kill its invocation; nobody waits for an answer here.
    Relay {
        id: RequestId,
        invocation_id: InvocationId,
        termination: Termination,
    },
    /// Cancel the invocation of an attempt whose event this host no longer
    /// owns.
    Abandon {
        id: RequestId,
        invocation_id: InvocationId,
    },
    /// Look up an event memory does not hold, for a terminate.
    LookUp {
        id: RequestId,
        termination: Termination,
        reply: R,
    },
    /// Write `event` as terminated before it ran again, then answer.
    WriteAbort {
        event: EventRecord,
        replies: Vec<R>,
    },
    /// Answer terminates from the event's stored record.
    AnswerFromStore {
        id: RequestId,
        replies: Vec<R>,
    },
    StartTimer {
        timer: TimerId,
        id: RequestId,
        at_ms: i64,
    },
    CancelTimer(TimerId),
    /// Read up to `want` queued events past `after`.
    ReadQueued {
        after: i64,
        want: usize,
        horizon: i64,
    },
    /// Read up to `want` retrying events, earliest due first.
    ReadRetrying {
        want: usize,
    },
    /// Store an `onFailure` event for `failed`, to run `target`.
    SendToOnFailure {
        target: String,
        failed: EventRecord,
    },
}
