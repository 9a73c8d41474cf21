//! Asynchronous invocations ("async events"): the durable record of each
//! event, the store behind it, and the runner that executes, retries,
//! terminates, recovers and prunes them.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use crate::ids::RequestId;

mod config;
mod error;
mod location;
pub mod pages;
pub mod postgres;
mod query;
mod runner;
mod sqlite;
pub mod time;
mod writer;

pub use config::AsyncConfig;
pub use error::StoreError;
pub use location::EventStoreLocation;
pub use postgres::{Partitioning, PgStore};
pub use runner::{
    AsyncEvents, AsyncStats, EnqueueError, EnqueueRequest, Enqueued, TerminateError,
    TerminateOutcome,
};
pub use sqlite::SqliteStore;
pub use writer::EventLog;

/// Inputs up to this size stay with a waiting event in memory; larger ones
/// are read back from the store when the event runs, so a long backlog of
/// large payloads does not have to fit in memory.
pub(crate) const INLINE_INPUT_LIMIT: usize = 4096;

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventStatus {
    /// Accepted, durable, waiting to run.
    Queued,
    /// An attempt is running.
    Running,
    /// An attempt failed; the next one waits for its backoff.
    Retrying,
    /// Succeeded.
    Finished,
    /// Failed for good (attempts or age exhausted).
    Failed,
    /// Terminated by a user.
    Aborted,
}

impl EventStatus {
    /// Every status, in display order.
    pub const ALL: [EventStatus; 6] = [
        Self::Queued,
        Self::Running,
        Self::Retrying,
        Self::Finished,
        Self::Failed,
        Self::Aborted,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Retrying => "RETRYING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Aborted => "ABORTED",
        }
    }

    /// Parses a stored or requested name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    /// True once the event can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Aborted)
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status codes of ended events (see README, "Asynchronous invocations"),
/// stored and shown as their numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 200: the function returned.
    Finished = 200,
    /// 430: the function raised an error or panicked.
    FunctionError = 430,
    /// 433: the function exceeded its timeout.
    Timeout = 433,
    /// 437: a user terminated the event while it waited (queued or retrying).
    TerminatedBeforeRun = 437,
    /// 438: a user terminated the event and the handler stopped on the signal.
    TerminatedGracefully = 438,
    /// 439, "User process exit when running": the worker process ended while
    /// the event ran (a crash, a forced termination, or a graceful one whose
    /// code did not handle the signal).
    UserProcessExit = 439,
    /// 460: the event exceeded the maximum event age before it could succeed.
    Expired = 460,
    /// 500: the platform could not run it (no worker available, host error).
    PlatformError = 500,
}

impl StatusCode {
    /// Every code, in numeric order.
    pub const ALL: [StatusCode; 8] = [
        Self::Finished,
        Self::FunctionError,
        Self::Timeout,
        Self::TerminatedBeforeRun,
        Self::TerminatedGracefully,
        Self::UserProcessExit,
        Self::Expired,
        Self::PlatformError,
    ];

    /// The stored and displayed number.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// The code with this number, if it is one.
    pub fn from_i64(n: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_i64() == n)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_i64())
    }
}

impl Serialize for StatusCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.as_i64())
    }
}

/// How an event was invoked, stored and shown by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum InvokeType {
    /// `api`: the host's `invoke-async` route.
    #[serde(rename = "api")]
    Api,
    /// `scf`: the SCF-compatible `Invoke` action.
    #[serde(rename = "scf")]
    Scf,
    /// `onFailure`: an event that failed for good, sent to the `onFailure`
    /// function.
    #[serde(rename = "onFailure")]
    OnFailure,
    /// `timer`: a tick of a timer trigger.
    #[serde(rename = "timer")]
    Timer,
}

impl InvokeType {
    /// Every invoke type.
    pub const ALL: [InvokeType; 4] = [Self::Api, Self::Scf, Self::OnFailure, Self::Timer];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Scf => "scf",
            Self::OnFailure => "onFailure",
            Self::Timer => "timer",
        }
    }

    /// The invoke type with this exact name, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for InvokeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The request id (returned to the caller at accept time).
    pub request_id: RequestId,
    /// The function.
    pub function: String,
    /// The qualifier (version or alias); `$LATEST` by default.
    pub qualifier: String,
    /// How it was invoked.
    pub invoke_type: InvokeType,
    /// Current status.
    pub status: EventStatus,
    /// Status code once ended (or of the last failed attempt while retrying).
    pub status_code: Option<StatusCode>,
    /// Attempts started so far.
    pub attempts: i64,
    /// The trigger input, as protobuf-encoded `TypedData`.
    pub input: Vec<u8>,
    /// The function's output bytes (at most 64 KiB), when finished.
    pub result: Option<Vec<u8>>,
    /// The last error, when one occurred.
    pub error: Option<String>,
    /// Accept time, ms since the Unix epoch.
    pub start_ms: i64,
    /// End time, ms since the Unix epoch.
    pub end_ms: Option<i64>,
    /// When a `RETRYING` event may run next.
    pub next_attempt_ms: Option<i64>,
    /// With a shared store: the host that claimed it (and, once it ended,
    /// the host that ran it last).
    pub owner_host: Option<String>,
    /// With a shared store: the token of the owner's claim. Every write
    /// about the event carries it and applies only while it is still the
    /// event's, so a host that lost its claim cannot overwrite the event.
    pub lease_token: Option<i64>,
    /// The trace every attempt joins: a W3C `traceparent` naming the
    /// span the attempts are children of, and the `tracestate`.
    pub trace_parent: Option<String>,
    /// The caller's `tracestate` (empty for none).
    pub trace_state: Option<String>,
}

impl EventRecord {
    /// The event's trace, when it has a valid one.
    pub fn trace(&self) -> Option<crate::trace::TraceContext> {
        crate::trace::TraceContext::parse(
            self.trace_parent.as_deref()?,
            self.trace_state.as_deref(),
        )
    }

    /// `self` joining `trace`.
    pub fn with_trace(mut self, trace: &crate::trace::TraceContext) -> Self {
        self.trace_parent = Some(trace.traceparent());
        self.trace_state = Some(trace.state().to_string());
        self
    }

    /// A new event, just accepted: queued, no attempt yet, `start_ms` now.
    pub fn queued(
        request_id: RequestId,
        function: String,
        qualifier: String,
        invoke_type: InvokeType,
        input: Vec<u8>,
        start_ms: i64,
    ) -> Self {
        Self {
            request_id,
            function,
            qualifier,
            invoke_type,
            status: EventStatus::Queued,
            status_code: None,
            attempts: 0,
            input,
            result: None,
            error: None,
            start_ms,
            end_ms: None,
            next_attempt_ms: None,
            owner_host: None,
            lease_token: None,
            trace_parent: None,
            trace_state: None,
        }
    }
}

/// A log line of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLogLine {
    /// Time, ms since the Unix epoch.
    pub time_ms: i64,
    /// The text; platform lines start with `[PLATFORM]`.
    pub line: String,
}

/// A write, applied with others in one transaction.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// A new event; with an idempotency key, a repeat returns the first id.
    Insert {
        /// The event.
        event: EventRecord,
        /// Idempotency key and a digest of the request body.
        idempotency: Option<(String, Vec<u8>)>,
    },
    /// A status change with what came with it. It applies only while the
    /// event is unfinished (`QUEUED`, `RUNNING`, `RETRYING`): an ended event
    /// stays ended, so an attempt never starts on an event a terminate has
    /// ended, however the two raced (`WriteOutcome::Unchanged` then).
    Update {
        /// The event.
        request_id: RequestId,
        /// Its new status.
        status: EventStatus,
        /// Status code, if any.
        status_code: Option<StatusCode>,
        /// Attempts started.
        attempts: i64,
        /// Output of a finished event.
        result: Option<Vec<u8>>,
        /// Error text.
        error: Option<String>,
        /// End time for final statuses.
        end_ms: Option<i64>,
        /// When a retry may run.
        next_attempt_ms: Option<i64>,
        /// Log lines to append in the same transaction.
        lines: Vec<EventLogLine>,
        /// The writer's lease token (see [`EventRecord::lease_token`]);
        /// a store shared by hosts applies the update only while it holds.
        lease_token: Option<i64>,
    },
    /// Lines to append to an event's log.
    Log {
        /// The event.
        request_id: RequestId,
        /// The lines.
        lines: Vec<EventLogLine>,
    },
    /// Deletes ended events whose end time is before `before_ms`, the
    /// earliest ended first, at most `limit` of them where the store
    /// deletes row by row (the embedded store). A store that drops whole
    /// partitions (PostgreSQL) may delete more. Callers repeat it until
    /// fewer than `limit` are pruned, so a large backlog is deleted in
    /// short transactions between other writes instead of one that holds
    /// the writer.
    Prune {
        /// Cut-off.
        before_ms: i64,
        /// Most rows one write deletes (at least 1).
        limit: usize,
    },
    /// Records a timer function's schedule status.
    TimerStatus {
        /// The timer function.
        function: String,
        /// Its status now.
        status: TimerStatus,
    },
}

/// A timer function's schedule status, kept in the store so a restarted
/// (or another) host knows which tick came last: `TimerInfo.ScheduleStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerStatus {
    /// The last tick accepted, ms since the epoch.
    pub last_ms: i64,
    /// The tick after it.
    pub next_ms: i64,
    /// When this status was written.
    pub updated_ms: i64,
}

/// What a write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied.
    Done,
    /// A new event was stored with this acceptance sequence number (it
    /// grows with every insert and is never given out again, even after
    /// pruning; see [`EventStore::queued`]).
    Inserted(i64),
    /// An insert whose idempotency key was seen with the same body: the
    /// existing request id.
    Duplicate(RequestId),
    /// An insert whose idempotency key was seen with a different body.
    Conflict(RequestId),
    /// Rows pruned.
    Pruned(usize),
    /// An update found the event ended (or gone) and changed nothing.
    Unchanged,
}

/// Filters, order and page of a list request. Time bounds are ms since the
/// epoch; starts inclusive, ends exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only this function.
    pub function: Option<String>,
    /// Only this qualifier.
    pub qualifier: Option<String>,
    /// Any of these statuses (empty: all).
    pub statuses: Vec<EventStatus>,
    /// Any of these invoke types (empty: all). Names as the caller gave
    /// them: one that is no [`InvokeType`] matches no event.
    pub invoke_types: Vec<String>,
    /// Only this request id.
    pub request_id: Option<RequestId>,
    /// `startTime >= from`.
    pub start_from: Option<i64>,
    /// `startTime < to`.
    pub start_to: Option<i64>,
    /// `endTime >= from`.
    pub end_from: Option<i64>,
    /// `endTime < to`.
    pub end_to: Option<i64>,
    /// Ascending instead of descending.
    pub ascending: bool,
    /// Order by end time instead of start time.
    pub order_by_end: bool,
    /// Rows to skip (after `after`, when it is set).
    pub offset: u64,
    /// Rows to return (0–100).
    pub limit: u64,
    /// Only events after this one in the query's order (keyset paging).
    pub after: Option<PageKey>,
}

/// Where an event sits in a list's order: its start or end time (`None`:
/// no end yet) and the store's acceptance sequence number, which breaks
/// ties. Paging from a key reads on from it through an index instead of
/// counting past an offset, and events accepted meanwhile do not shift the
/// pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The ordered time.
    pub value: Option<i64>,
    /// The tie-break.
    pub tie: i64,
}

/// A page of events and the total matching the filters.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// All events matching the filters.
    pub total: u64,
    /// The page.
    pub events: Vec<EventRecord>,
    /// The key of the page's last event, to read on from.
    pub last: Option<PageKey>,
}

/// Durable storage of events. Implementations apply a batch of writes in
/// one transaction (the caller batches to share one fsync) and answer reads
/// concurrently with writes. [`SqliteStore`] serves one host;
/// [`PgStore`] is shared by several, which claim ready events from it.
pub trait EventStore: Send + Sync + 'static {
    /// Applies `batch` atomically; one outcome per op, in order.
    fn apply(&self, batch: &[WriteOp]) -> Result<Vec<WriteOutcome>, StoreError>;
    /// One event.
    fn get(&self, request_id: &RequestId) -> Result<Option<EventRecord>, StoreError>;
    /// A filtered, ordered page.
    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError>;
    /// An event's log, in order.
    fn logs(&self, request_id: &RequestId) -> Result<Vec<EventLogLine>, StoreError>;
    /// Events an earlier run left `RUNNING` (for recovery at start).
    /// Inputs over 4 KiB are left out (`input` is empty; `get` reads it).
    fn interrupted(&self) -> Result<Vec<EventRecord>, StoreError>;
    /// Up to `limit` `RETRYING` events, the earliest next attempt first;
    /// inputs over 4 KiB left out.
    fn retrying(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// Up to `limit` `QUEUED` events with a sequence number above `after`,
    /// in acceptance order, each with its sequence number; inputs over
    /// 4 KiB left out.
    fn queued(&self, after: i64, limit: usize) -> Result<Vec<(i64, EventRecord)>, StoreError>;
    /// Where reading queued events starts after a restart: just below the
    /// oldest queued event's sequence number, or the newest sequence number
    /// when none is queued.
    fn queue_start(&self) -> Result<i64, StoreError>;
    /// A timer function's schedule status, if it ever ticked.
    fn timer_status(&self, function: &str) -> Result<Option<TimerStatus>, StoreError>;
    /// Takes or renews this host's lease on scheduling `function`'s timer
    /// for `ttl`: its token while this host holds it, `None` while another
    /// host does. A store of one host (its data directory locked to it)
    /// always grants it.
    fn timer_lease(&self, _function: &str, _ttl: Duration) -> Result<Option<i64>, StoreError> {
        Ok(Some(0))
    }
    /// Gives up every timer lease this host holds (at shutdown, so another
    /// host takes the schedules over at once).
    fn release_timer_leases(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Shared by several hosts: `queued` claims events (other hosts' accepts
    /// included) rather than reading this host's own, so an accept is not
    /// handed to this host's runner directly; the runner claims it.
    fn is_shared(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_keep_their_numbers_in_json() {
        let numbers: Vec<i64> = StatusCode::ALL.iter().map(|c| c.as_i64()).collect();
        assert_eq!(numbers, [200, 430, 433, 437, 438, 439, 460, 500]);
        for c in StatusCode::ALL {
            assert_eq!(StatusCode::from_i64(c.as_i64()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_i64());
        }
        assert_eq!(StatusCode::from_i64(0), None);
    }

    #[test]
    fn invoke_types_keep_their_names_in_json() {
        let names: Vec<&str> = InvokeType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["api", "scf", "onFailure", "timer"]);
        for t in InvokeType::ALL {
            assert_eq!(InvokeType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert_eq!(InvokeType::parse("API"), None, "names are exact");
    }
}
