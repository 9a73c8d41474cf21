//! The async-event runner: one task owns which events wait, run and retry;
//! each attempt runs in its own task that records its start and end
//! durably, in order, through the batching writer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fnhost_proto::rpc::TypedData;
use futures_util::StreamExt;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_util::time::{delay_queue, DelayQueue};

use super::time::now_ms;
use super::{
    codes, AsyncConfig, EventLog, EventLogLine, EventRecord, EventStatus, StoreError, WriteOp,
    WriteOutcome, INLINE_INPUT_LIMIT,
};
use crate::host::HostHandle;
use crate::invocation::{
    CancelDelivery, CancelReason, CancelResponse, InvocationInput, InvocationResult, InvokeError,
    Outcome,
};

/// An async invoke as the API received it.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// The function.
    pub function: String,
    /// Qualifier; `$LATEST` when `None`.
    pub qualifier: Option<String>,
    /// `api`, `http`, `scf`, ...
    pub invoke_type: String,
    /// The trigger input.
    pub input: TypedData,
    /// `Idempotency-Key` and a digest of the request body.
    pub idempotency: Option<(String, Vec<u8>)>,
}

/// An accepted invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new event, durably stored.
    New(String),
    /// A repeat of an earlier request with the same idempotency key and body.
    Existing(String),
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
        existing: String,
    },
    /// The store failed; nothing was accepted.
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

enum Cmd {
    /// A stored event and its sequence number.
    Queued(EventRecord, i64),
    Terminate {
        id: String,
        graceful: bool,
        reply: TerminateReply,
    },
    Settled {
        id: String,
        next: Next,
    },
    /// Answer a terminate once the event's attempt has settled (its
    /// invocation ended just before the terminate reached it).
    AnswerAfterSettle {
        id: String,
        reply: TerminateReply,
    },
    /// A refill's answer: queued events read from the store, with their
    /// sequence numbers.
    Refilled {
        events: Vec<(i64, EventRecord)>,
        /// The store held no more queued events than these.
        complete: bool,
        /// The highest sequence number left in the store when the read began.
        horizon: i64,
    },
    /// A terminate's abort write is done; `failed` holds the event when it
    /// could not be recorded.
    AbortWritten {
        id: String,
        failed: Option<EventRecord>,
    },
    /// `RETRYING` events read from the store, earliest due first.
    RetriesLoaded {
        events: Vec<EventRecord>,
        /// The store held no more retrying events than these.
        complete: bool,
    },
    /// Terminate a queued or retrying event found only in the store.
    AbortQueued {
        event: EventRecord,
        graceful: bool,
        reply: TerminateReply,
    },
    Stats(oneshot::Sender<AsyncStats>),
    BeginShutdown,
    WaitIdle(oneshot::Sender<()>),
    Close,
}

/// Where an attempt left its event.
enum Next {
    /// Final; nothing more to do.
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

/// Pause after a refill that drained the backlog, before it is handled.
const REFILL_PAUSE: Duration = Duration::from_millis(2);

/// Terminate requests of a running event, shared with its attempt task.
const NOT_TERMINATED: u8 = 0;
const GRACEFUL: u8 = 1;
const FORCED: u8 = 2;

struct RunningEvent {
    invocation_id: String,
    terminate: Arc<AtomicU8>,
    /// Terminates to answer when the attempt settles.
    settle_waiters: Vec<TerminateReply>,
}

/// What the runner holds now (part of `GET /admin/host/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncStats {
    /// Queued events held in memory (at most `queueMemoryLimit`).
    pub queued_in_memory: usize,
    /// More queued events wait in the store only (loaded as room frees).
    pub backlog_in_store: bool,
    /// Events with an attempt running.
    pub running: usize,
    /// Events waiting for a retry (or, after a drain, to run again).
    pub waiting: usize,
    /// More retrying events wait in the store only (loaded as room frees).
    pub retries_in_store: bool,
}

/// Type of a terminate's answer channel.
type TerminateReply = oneshot::Sender<Result<TerminateOutcome, StoreError>>;

/// Handle to the async-event runner.
#[derive(Clone)]
pub struct AsyncEvents {
    cmds: mpsc::Sender<Cmd>,
    log: EventLog,
    functions: Arc<Vec<String>>,
}

impl AsyncEvents {
    /// Starts the runner over `log`, recovering events left unfinished by a
    /// previous run (queued ones run; running ones are retried or failed).
    pub async fn start(
        log: EventLog,
        host: HostHandle,
        config: AsyncConfig,
        functions: Vec<String>,
    ) -> Result<Self, StoreError> {
        let (cmds, rx) = mpsc::channel(4096);
        let mut runner = Runner {
            log: log.clone(),
            host,
            config: Arc::new(config),
            cmds: cmds.clone(),
            ready: VecDeque::new(),
            // Queued events of an earlier run are loaded by the first refill
            // (`recover` sets the cursor).
            spilled: true,
            refilling: false,
            cursor: 0,
            max_left_in_store: 0,
            aborting: HashMap::new(),
            // Retrying events of an earlier run are loaded by the first load.
            retries_in_store: true,
            loading_retries: false,
            retry_left_while_loading: false,
            settled_during_retry_load: HashSet::new(),
            settled_during_refill: HashSet::new(),
            waiting: HashMap::new(),
            timers: DelayQueue::new(),
            running: HashMap::new(),
            shutting_down: false,
            idle_waiters: Vec::new(),
        };
        runner.recover().await?;
        tokio::spawn(runner.run(rx));
        Ok(Self {
            cmds,
            log,
            functions: Arc::new(functions),
        })
    }

    /// The durable log, for reads.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Stores the event durably, then queues it to run.
    pub async fn enqueue(&self, req: EnqueueRequest) -> Result<Enqueued, EnqueueError> {
        if !self.functions.iter().any(|f| f == &req.function) {
            return Err(EnqueueError::UnknownFunction(req.function));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let record = EventRecord {
            request_id: id.clone(),
            function: req.function,
            qualifier: req.qualifier.unwrap_or_else(|| "$LATEST".into()),
            invoke_type: req.invoke_type,
            status: EventStatus::Queued,
            status_code: None,
            attempts: 0,
            input: req.input.encode_to_vec(),
            result: None,
            error: None,
            start_ms: now_ms(),
            end_ms: None,
            next_attempt_ms: None,
        };
        let key = req.idempotency.as_ref().map(|(k, _)| k.clone());
        let op = WriteOp::Insert {
            event: record.clone(),
            idempotency: req.idempotency,
        };
        let (log, cmds) = (self.log.clone(), self.cmds.clone());
        // In its own task, so a caller that goes away (an HTTP client that
        // disconnects) cannot cut it between the write and the hand-over.
        let stored = tokio::spawn(async move {
            let outcome = log.write(op).await;
            if let Ok(WriteOutcome::Inserted(seq)) = outcome {
                let mut record = record;
                shed_large_input(&mut record);
                // Durable already: if the runner is gone (shutdown),
                // recovery runs it.
                let _ = cmds.send(Cmd::Queued(record, seq)).await;
            }
            outcome
        })
        .await
        .map_err(|e| StoreError(format!("the accept task failed: {e}")))?;
        match stored? {
            WriteOutcome::Duplicate(existing) => Ok(Enqueued::Existing(existing)),
            WriteOutcome::Conflict(existing) => Err(EnqueueError::Conflict {
                key: key.unwrap_or_default(),
                existing,
            }),
            _ => Ok(Enqueued::New(id)),
        }
    }

    /// Terminates an event: forced (kill its instance) or graceful (cancel,
    /// escalated to forced after the grace).
    pub async fn terminate(
        &self,
        request_id: &str,
        graceful: bool,
    ) -> Result<TerminateOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Terminate {
            id: request_id.to_string(),
            graceful,
            reply,
        };
        if self.cmds.send(cmd).await.is_err() {
            return Err(StoreError("the async runner has stopped".into()));
        }
        rx.await
            .map_err(|_| StoreError("the async runner stopped before answering".into()))?
    }

    /// What the runner holds now; `None` once it has stopped.
    pub async fn stats(&self) -> Option<AsyncStats> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops starting attempts; queued events stay queued, durably.
    pub async fn begin_shutdown(&self) {
        let _ = self.cmds.send(Cmd::BeginShutdown).await;
    }

    /// Stops the runner; the store closes once the last handle is dropped.
    pub async fn close(&self) {
        let _ = self.cmds.send(Cmd::Close).await;
    }

    /// Waits until no attempt is running (after the host cancelled them).
    pub async fn wait_idle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::WaitIdle(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Runner {
    log: EventLog,
    host: HostHandle,
    config: Arc<AsyncConfig>,
    cmds: mpsc::Sender<Cmd>,
    /// Queued events held in memory, oldest first: always the oldest of
    /// all queued events, at most `queueMemoryLimit` of them.
    ready: VecDeque<EventRecord>,
    /// Queued events exist in the store that are not in `ready` (accepted
    /// while it was full, or left by an earlier run); refills load them.
    spilled: bool,
    /// A refill is under way.
    refilling: bool,
    /// The highest sequence number refills have read: every event queued at
    /// or below it is in memory, running or ended. Refills read past it.
    cursor: i64,
    /// The highest sequence number of an accept left in the store.
    max_left_in_store: i64,
    /// Events whose terminate is being written (how many writes): no copy
    /// of them is held or started meanwhile.
    aborting: HashMap<String, u32>,
    /// `RETRYING` events exist in the store that are not in `waiting`
    /// (more than `queueMemoryLimit` pending, or left by an earlier run).
    retries_in_store: bool,
    /// A retry load is under way.
    loading_retries: bool,
    /// A retry was left in the store while a load ran.
    retry_left_while_loading: bool,
    /// Events whose attempt settled while a retry load (resp. a refill)
    /// read the store: the read may hold a stale copy of them.
    settled_during_retry_load: HashSet<String>,
    settled_during_refill: HashSet<String>,
    waiting: HashMap<String, (EventRecord, delay_queue::Key)>,
    timers: DelayQueue<String>,
    running: HashMap<String, RunningEvent>,
    shutting_down: bool,
    idle_waiters: Vec<oneshot::Sender<()>>,
}

fn platform(line: impl Into<String>) -> EventLogLine {
    EventLogLine {
        time_ms: now_ms(),
        line: format!("[PLATFORM] {}", line.into()),
    }
}

/// The event's current state and `lines` for its log, in one write.
fn update_with(e: &EventRecord, lines: Vec<EventLogLine>) -> WriteOp {
    WriteOp::Update {
        lines,
        request_id: e.request_id.clone(),
        status: e.status,
        status_code: e.status_code,
        attempts: e.attempts,
        result: e.result.clone(),
        error: e.error.clone(),
        end_ms: e.end_ms,
        next_attempt_ms: e.next_attempt_ms,
    }
}

fn log_op(id: &str, lines: Vec<EventLogLine>) -> WriteOp {
    WriteOp::Log {
        request_id: id.to_string(),
        lines,
    }
}

impl Runner {
    /// Takes over the events an earlier run left running. Its queued and
    /// retrying events stay in the store; refills load them.
    async fn recover(&mut self) -> Result<(), StoreError> {
        self.cursor = self.log.queue_start().await?;
        let interrupted = self.log.interrupted().await?;
        let count = interrupted.len();
        for mut e in interrupted {
            let note = format!("Host restarted while attempt {} was running", e.attempts);
            match decide_retry(&self.config, &mut e, codes::USER_PROCESS_EXIT, &note) {
                Some(at) => {
                    let line = platform(format!("{note}; retrying"));
                    self.log.write(update_with(&e, vec![line])).await?;
                    self.hold_retry(e, at);
                }
                None => {
                    let line = platform(format!("{note}; {}", e.error.clone().unwrap_or_default()));
                    if self.log.write(update_with(&e, vec![line])).await? != WriteOutcome::Unchanged
                    {
                        if e.input.is_empty() {
                            // For the onFailure payload (a large input).
                            if let Some(stored) = self.log.get(&e.request_id).await? {
                                e.input = stored.input;
                            }
                        }
                        self.on_failure(e);
                    }
                }
            }
        }
        if count > 0 {
            tracing::info!(count, "recovered async events interrupted while running");
        }
        Ok(())
    }

    /// An event recorded as `RETRYING` (durable, with its next attempt
    /// time): held in memory with a timer if there is room, else left in
    /// the store, from which retry loads take the earliest due first.
    fn hold_retry(&mut self, e: EventRecord, at_ms: i64) {
        if !self.retries_in_store && self.waiting.len() < self.config.queue_memory_limit {
            self.wait_until(e, at_ms);
            return;
        }
        self.retries_in_store = true;
        if self.loading_retries {
            self.retry_left_while_loading = true;
        }
    }

    /// Loads retries from the store once there is room for half the limit.
    fn maybe_load_retries(&mut self) {
        let limit = self.config.queue_memory_limit;
        if !self.retries_in_store
            || self.loading_retries
            || self.shutting_down
            || self.waiting.len() > limit / 2
        {
            return;
        }
        self.loading_retries = true;
        self.retry_left_while_loading = false;
        self.settled_during_retry_load.clear();
        // Retries in memory are still RETRYING in the store and may come
        // first in its order: ask for that many more, so every full page
        // brings new ones.
        let want = limit + self.ready.len() + self.running.len();
        let log = self.log.clone();
        self.read_store(
            "retrying",
            want,
            async move { log.retrying(want).await },
            |events, complete| Cmd::RetriesLoaded { events, complete },
        );
    }

    /// Runs a store read of up to `want` rows in its own task and hands its
    /// answer back as the command `answer` makes of it, with whether the
    /// page was short (the store held no more). A short page is handed back
    /// after a short pause, so reads racing new writes do not follow each
    /// other in a tight loop; a failed read is retried after 1 s, as an
    /// empty, incomplete page.
    fn read_store<T: Send + 'static>(
        &self,
        what: &'static str,
        want: usize,
        read: impl Future<Output = Result<Vec<T>, StoreError>> + Send + 'static,
        answer: impl FnOnce(Vec<T>, bool) -> Cmd + Send + 'static,
    ) {
        let cmds = self.cmds.clone();
        tokio::spawn(async move {
            let cmd = match read.await {
                Ok(rows) => {
                    let complete = rows.len() < want;
                    if complete {
                        tokio::time::sleep(REFILL_PAUSE).await;
                    }
                    answer(rows, complete)
                }
                Err(err) => {
                    tracing::error!("cannot load {what} async events ({err}); retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    answer(Vec::new(), false)
                }
            };
            let _ = cmds.send(cmd).await;
        });
    }

    /// Whether the runner holds `id` outside `ready`: running, waiting, or
    /// being aborted.
    fn holds(&self, id: &str) -> bool {
        self.running.contains_key(id)
            || self.waiting.contains_key(id)
            || self.aborting.contains_key(id)
    }

    /// The ids in `ready`, when a page of `rows` rows needs them.
    fn ready_ids(&self, rows: usize) -> HashSet<String> {
        if rows == 0 {
            return HashSet::new();
        }
        self.ready.iter().map(|e| e.request_id.clone()).collect()
    }

    fn retries_loaded(&mut self, events: Vec<EventRecord>, complete: bool) {
        self.loading_retries = false;
        let held = self.ready_ids(events.len());
        let settled = std::mem::take(&mut self.settled_during_retry_load);
        let mut complete = complete;
        for e in events {
            if self.waiting.len() >= self.config.queue_memory_limit {
                // Full: the rest stay in the store for the next load.
                complete = false;
                break;
            }
            let id = &e.request_id;
            if held.contains(id) || settled.contains(id) || self.holds(id) {
                continue;
            }
            let at = e.next_attempt_ms.unwrap_or_else(now_ms);
            self.wait_until(e, at);
        }
        // A retry left in the store during the read may be missing from it.
        if complete && !self.retry_left_while_loading {
            self.retries_in_store = false;
        }
    }

    /// An accepted event (already durable, sequence number `seq`): held in
    /// memory if it can be, else left in the store for a refill, keeping
    /// acceptance order.
    fn accept(&mut self, e: EventRecord, seq: i64) {
        if seq <= self.cursor || self.holds(&e.request_id) {
            // A refill loaded it before this hand-over arrived (or a
            // terminate holds it).
            return;
        }
        if !self.spilled && self.ready.len() < self.config.queue_memory_limit {
            self.ready.push_back(e);
            return;
        }
        self.spilled = true;
        self.max_left_in_store = self.max_left_in_store.max(seq);
    }

    /// Loads queued events from the store once memory has room for a good
    /// share of them (half the limit), so refills are few and large.
    fn maybe_refill(&mut self) {
        let limit = self.config.queue_memory_limit;
        if !self.spilled || self.refilling || self.shutting_down || self.ready.len() > limit / 2 {
            return;
        }
        self.refilling = true;
        self.settled_during_refill.clear();
        let want = limit - self.ready.len();
        let (log, after) = (self.log.clone(), self.cursor);
        // Every hand-over seen so far was committed before this read.
        let horizon = self.max_left_in_store;
        self.read_store(
            "queued",
            want,
            async move { log.queued(after, want).await },
            move |events, complete| Cmd::Refilled {
                events,
                complete,
                horizon,
            },
        );
    }

    fn refilled(&mut self, events: Vec<(i64, EventRecord)>, complete: bool, horizon: i64) {
        self.refilling = false;
        // Events held since they were accepted, before the backlog began,
        // can be in the page too.
        let held = self.ready_ids(events.len());
        let settled = std::mem::take(&mut self.settled_during_refill);
        let mut loaded = 0usize;
        for (seq, e) in events {
            self.cursor = self.cursor.max(seq);
            let id = &e.request_id;
            if held.contains(id) || settled.contains(id) || self.holds(id) {
                continue;
            }
            self.ready.push_back(e);
            loaded += 1;
        }
        if complete {
            // Everything queued up to the read was in the page, so the
            // events left in the store before it (up to the horizon) are
            // loaded or ended (e.g. terminated meanwhile).
            self.cursor = self.cursor.max(horizon);
            // Accepts left in the store after the read began are past the
            // cursor; the backlog ends only once the cursor has passed them.
            if self.max_left_in_store <= self.cursor {
                self.spilled = false;
            }
        }
        tracing::debug!(
            loaded,
            complete,
            cursor = self.cursor,
            "refilled queued async events"
        );
    }

    /// Ends an event no attempt is running (held in memory, or queued in
    /// the store only) as terminated by a user, and answers `replies`. Until
    /// the write is done, no copy of the event is held or started: the abort
    /// reaches the store before any attempt's start, which then finds the
    /// event ended.
    fn abort(&mut self, e: EventRecord, replies: Vec<TerminateReply>) {
        *self.aborting.entry(e.request_id.clone()).or_default() += 1;
        let (log, cmds) = (self.log.clone(), self.cmds.clone());
        tokio::spawn(async move {
            let id = e.request_id.clone();
            let (answer, failed) = write_abort(&log, &e).await;
            let failed = failed.then_some(e);
            let _ = cmds.send(Cmd::AbortWritten { id, failed }).await;
            for reply in replies {
                let _ = reply.send(answer.clone());
            }
        });
    }

    fn abort_written(&mut self, id: String, failed: Option<EventRecord>) {
        if let Some(n) = self.aborting.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.aborting.remove(&id);
            }
        }
        if let Some(e) = failed {
            // Not recorded: the event goes on as if no terminate had come
            // (its caller got the error).
            self.wait_until(e, now_ms() + 1000);
        }
    }

    /// Deletes ended events older than the retention window.
    fn prune(&self) {
        let before_ms = now_ms() - self.config.retention.as_millis() as i64;
        let log = self.log.clone();
        tokio::spawn(async move {
            match log.write(WriteOp::Prune { before_ms }).await {
                Ok(WriteOutcome::Pruned(n)) if n > 0 => {
                    tracing::info!("pruned {n} async events past retention")
                }
                Ok(_) => {}
                Err(e) => tracing::error!("pruning async events failed: {e}"),
            }
        });
    }

    fn wait_until(&mut self, e: EventRecord, at_ms: i64) {
        let delay = Duration::from_millis(at_ms.saturating_sub(now_ms()).max(0) as u64);
        let id = e.request_id.clone();
        let key = self.timers.insert(id.clone(), delay);
        if let Some((_, old)) = self.waiting.insert(id, (e, key)) {
            // One timer per waiting event.
            self.timers.remove(&old);
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut prune = tokio::time::interval(self.config.prune_interval);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.start_attempts();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Close) | None => break,
                    Some(cmd) => self.handle(cmd),
                },
                _ = prune.tick() => self.prune(),
                Some(expired) = self.timers.next() => {
                    let id = expired.into_inner();
                    if let Some((e, _)) = self.waiting.remove(&id) {
                        self.ready.push_back(e);
                    }
                }
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Queued(e, seq) => self.accept(e, seq),
            Cmd::Refilled {
                events,
                complete,
                horizon,
            } => self.refilled(events, complete, horizon),
            Cmd::AbortWritten { id, failed } => self.abort_written(id, failed),
            Cmd::RetriesLoaded { events, complete } => self.retries_loaded(events, complete),
            Cmd::AbortQueued {
                event,
                graceful,
                reply,
            } => self.abort_queued(event, graceful, reply),
            Cmd::Stats(reply) => {
                let _ = reply.send(AsyncStats {
                    queued_in_memory: self.ready.len(),
                    backlog_in_store: self.spilled,
                    running: self.running.len(),
                    waiting: self.waiting.len(),
                    retries_in_store: self.retries_in_store,
                });
            }
            Cmd::Terminate {
                id,
                graceful,
                reply,
            } => self.terminate(id, graceful, reply),
            Cmd::AnswerAfterSettle { id, reply } => match self.running.get_mut(&id) {
                Some(r) => r.settle_waiters.push(reply),
                None => answer_from_store(self.log.clone(), id, vec![reply]),
            },
            Cmd::Settled { id, next } => {
                // A read under way may hold a copy of it from before.
                if self.loading_retries {
                    self.settled_during_retry_load.insert(id.clone());
                }
                if self.refilling {
                    self.settled_during_refill.insert(id.clone());
                }
                let (terminated, waiters) = match self.running.remove(&id) {
                    Some(r) => (
                        r.terminate.load(Ordering::SeqCst) != NOT_TERMINATED,
                        r.settle_waiters,
                    ),
                    None => (false, Vec::new()),
                };
                let mut waiters = Some(waiters);
                match next {
                    // A terminate that arrived while the attempt was closing
                    // still wins: the event is not run again.
                    Next::Retry(e, _) | Next::RetryUnrecorded(e, _) | Next::Requeue(e)
                        if terminated =>
                    {
                        let waiters = waiters.take().unwrap_or_default();
                        self.abort(e, waiters);
                    }
                    Next::Done { failed: Some(e) } => self.on_failure(e),
                    Next::Done { failed: None } | Next::Skipped => {}
                    Next::Retry(e, at) => self.hold_retry(e, at),
                    Next::RetryUnrecorded(e, at) => self.wait_until(e, at),
                    // Durable as QUEUED; after a drain or shutdown it runs on the
                    // next start, otherwise again shortly.
                    Next::Requeue(e) if !self.shutting_down => self.wait_until(e, now_ms() + 1000),
                    Next::Requeue(_) => {}
                }
                // Terminates that found the invocation just ended: its final
                // record is written, answer from it.
                if let Some(waiters) = waiters.filter(|w| !w.is_empty()) {
                    answer_from_store(self.log.clone(), id, waiters);
                }
                if self.running.is_empty() {
                    for w in self.idle_waiters.drain(..) {
                        let _ = w.send(());
                    }
                }
            }
            Cmd::BeginShutdown => self.shutting_down = true,
            Cmd::Close => {}
            Cmd::WaitIdle(w) => {
                if self.running.is_empty() {
                    let _ = w.send(());
                } else {
                    self.idle_waiters.push(w);
                }
            }
        }
    }

    fn start_attempts(&mut self) {
        while !self.shutting_down && self.running.len() < self.config.max_concurrency {
            let Some(e) = self.ready.pop_front() else {
                break;
            };
            if self.aborting.contains_key(&e.request_id) {
                // Being terminated: the abort is written first.
                continue;
            }
            if self.running.contains_key(&e.request_id) {
                // Never two attempts of one event at once (a copy can only
                // come from a race between the store and memory).
                tracing::warn!(request = %e.request_id, "async event queued while its attempt runs; copy dropped");
                continue;
            }
            let invocation_id = uuid::Uuid::new_v4().to_string();
            let terminate = Arc::new(AtomicU8::new(NOT_TERMINATED));
            self.running.insert(
                e.request_id.clone(),
                RunningEvent {
                    invocation_id: invocation_id.clone(),
                    terminate: terminate.clone(),
                    settle_waiters: Vec::new(),
                },
            );
            let attempt = Attempt {
                log: self.log.clone(),
                host: self.host.clone(),
                config: self.config.clone(),
                cmds: self.cmds.clone(),
                terminate,
            };
            tokio::spawn(attempt.run(e, invocation_id));
        }
        self.maybe_refill();
        self.maybe_load_retries();
    }

    fn terminate(&mut self, id: String, graceful: bool, reply: TerminateReply) {
        if let Some(r) = self.running.get(&id) {
            r.terminate
                .store(if graceful { GRACEFUL } else { FORCED }, Ordering::SeqCst);
            let (host, inv) = (self.host.clone(), r.invocation_id.clone());
            let cmds = self.cmds.clone();
            tokio::spawn(async move {
                let r = if graceful {
                    host.cancel(&inv, CancelReason::Requested).await
                } else {
                    host.kill(&inv).await
                };
                tracing::info!(request = %id, invocation = %inv, graceful, response = ?r, "async event terminate");
                if matches!(
                    r,
                    CancelResponse::AlreadyCompleted | CancelResponse::NotFound
                ) {
                    // The invocation ended just before (or was never
                    // submitted: the attempt ended without one); its attempt
                    // is being recorded. Answer from what it records.
                    let _ = cmds.send(Cmd::AnswerAfterSettle { id, reply }).await;
                } else {
                    let _ = reply.send(Ok(TerminateOutcome::Done));
                }
            });
            return;
        }
        let waiting = self.waiting.remove(&id).map(|(e, key)| {
            self.timers.remove(&key);
            e
        });
        let held = waiting.or_else(|| {
            let i = self.ready.iter().position(|e| e.request_id == id)?;
            self.ready.remove(i)
        });
        if let Some(e) = held {
            self.abort(e, vec![reply]);
            return;
        }
        let (log, cmds) = (self.log.clone(), self.cmds.clone());
        tokio::spawn(async move {
            let answer = match log.get(&id).await {
                Ok(Some(e)) if e.status.is_final() => {
                    Ok(TerminateOutcome::AlreadyCompleted(e.status))
                }
                // Queued but not in memory (left in the store while the
                // memory queue was full): the runner decides, as a refill
                // may have loaded it meanwhile.
                Ok(Some(event))
                    if matches!(event.status, EventStatus::Queued | EventStatus::Retrying) =>
                {
                    let cmd = Cmd::AbortQueued {
                        event,
                        graceful,
                        reply,
                    };
                    let _ = cmds.send(cmd).await;
                    return;
                }
                Ok(Some(e)) => Err(StoreError(format!(
                    "event {id} is {} in the store but unknown to the runner",
                    e.status
                ))),
                Ok(None) => Ok(TerminateOutcome::NotFound),
                Err(err) => Err(err),
            };
            let _ = reply.send(answer);
        });
    }

    /// Terminates a queued event that was only in the store when its
    /// terminate looked. If a refill has loaded it since, it is terminated
    /// where it is now. Otherwise nothing holds it, and the abort is written
    /// ahead of any later attempt's start, which then finds it ended.
    fn abort_queued(&mut self, event: EventRecord, graceful: bool, reply: TerminateReply) {
        let id = &event.request_id;
        if self.running.contains_key(id)
            || self.waiting.contains_key(id)
            || self.ready.iter().any(|e| &e.request_id == id)
        {
            let id = id.clone();
            self.terminate(id, graceful, reply);
            return;
        }
        self.abort(event, vec![reply]);
    }

    fn on_failure(&mut self, failed: EventRecord) {
        let Some(target) = self.config.on_failure.clone() else {
            return;
        };
        if failed.invoke_type == "onFailure" {
            return;
        }
        let input = TypedData::json(failure_payload(&failed).to_string());
        let record = EventRecord {
            request_id: uuid::Uuid::new_v4().to_string(),
            function: target,
            qualifier: failed.qualifier.clone(),
            invoke_type: "onFailure".into(),
            status: EventStatus::Queued,
            status_code: None,
            attempts: 0,
            input: input.encode_to_vec(),
            result: None,
            error: None,
            start_ms: now_ms(),
            end_ms: None,
            next_attempt_ms: None,
        };
        let (log, cmds) = (self.log.clone(), self.cmds.clone());
        tokio::spawn(async move {
            let id = record.request_id.clone();
            let op = WriteOp::Insert {
                event: record.clone(),
                idempotency: None,
            };
            match log.write(op).await {
                Ok(outcome) => {
                    let line =
                        platform(format!("Failed for good; sent to onFailure as event {id}"));
                    let _ = log.write(log_op(&failed.request_id, vec![line])).await;
                    if let WriteOutcome::Inserted(seq) = outcome {
                        let mut record = record;
                        shed_large_input(&mut record);
                        let _ = cmds.send(Cmd::Queued(record, seq)).await;
                    }
                }
                Err(e) => {
                    tracing::error!(request = %failed.request_id, "cannot store the onFailure event: {e}")
                }
            }
        });
    }
}

fn shed_large_input(e: &mut EventRecord) {
    if e.input.len() > INLINE_INPUT_LIMIT {
        e.input = Vec::new();
    }
}

/// Writes `e` as terminated by a user before it ran again. Answers `done`,
/// or `already-completed` when the event had ended (the write applies only
/// to an unfinished event, so it never overwrites an end); the flag says
/// whether the write failed.
async fn write_abort(
    log: &EventLog,
    e: &EventRecord,
) -> (Result<TerminateOutcome, StoreError>, bool) {
    let mut aborted = e.clone();
    aborted.status = EventStatus::Aborted;
    aborted.status_code = Some(codes::TERMINATED_BEFORE_RUN);
    aborted.end_ms = Some(now_ms());
    aborted.next_attempt_ms = None;
    aborted.error = Some("terminated by a user before it ran again".into());
    let line = platform("Terminated by a user before it ran again.");
    match log.write(update_with(&aborted, vec![line])).await {
        Ok(WriteOutcome::Unchanged) => {
            let answer = match log.get(&e.request_id).await {
                Ok(Some(r)) => Ok(TerminateOutcome::AlreadyCompleted(r.status)),
                Ok(None) => Ok(TerminateOutcome::NotFound),
                Err(err) => Err(err),
            };
            (answer, false)
        }
        Ok(_) => (Ok(TerminateOutcome::Done), false),
        Err(err) => {
            tracing::error!(request = %e.request_id, "cannot record the terminate: {err}");
            (Err(err), true)
        }
    }
}

/// Answers terminates of an event whose attempt has settled, from its
/// stored record: an event that ended on its own is `already-completed`; one
/// the terminate ended (it raced the attempt's close) is `done`.
fn answer_from_store(log: EventLog, id: String, replies: Vec<TerminateReply>) {
    tokio::spawn(async move {
        let answer = match log.get(&id).await {
            Ok(Some(e)) if e.status.is_final() && e.status != EventStatus::Aborted => {
                Ok(TerminateOutcome::AlreadyCompleted(e.status))
            }
            Ok(Some(_)) => Ok(TerminateOutcome::Done),
            Ok(None) => Ok(TerminateOutcome::NotFound),
            Err(err) => Err(err),
        };
        for reply in replies {
            let _ = reply.send(answer.clone());
        }
    });
}

/// The JSON an `onFailure` function receives.
fn failure_payload(e: &EventRecord) -> serde_json::Value {
    let input = TypedData::decode(e.input.as_slice())
        .ok()
        .and_then(|d| d.to_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    serde_json::json!({
        "requestId": e.request_id,
        "function": e.function,
        "qualifier": e.qualifier,
        "status": e.status,
        "statusCode": e.status_code,
        "attempts": e.attempts,
        "error": e.error,
        "input": input,
    })
}

/// Applies the retry policy after a failed attempt: `Some(next run time)`
/// and `RETRYING`, or `FAILED` when attempts or age are exhausted.
fn decide_retry(config: &AsyncConfig, e: &mut EventRecord, code: i64, error: &str) -> Option<i64> {
    let now = now_ms();
    let max_attempts = i64::from(config.max_retries) + 1;
    let age = Duration::from_millis(now.saturating_sub(e.start_ms).max(0) as u64);
    e.status_code = Some(code);
    e.error = Some(error.to_string());
    if e.attempts < max_attempts && age < config.max_event_age {
        let at = now + config.backoff(e.attempts as u32).as_millis() as i64;
        e.status = EventStatus::Retrying;
        e.next_attempt_ms = Some(at);
        return Some(at);
    }
    e.status = EventStatus::Failed;
    e.end_ms = Some(now);
    e.next_attempt_ms = None;
    if e.attempts >= max_attempts {
        e.error = Some(format!(
            "{error} (attempts exhausted: {} of {max_attempts})",
            e.attempts
        ));
    } else {
        e.status_code = Some(codes::EXPIRED);
        e.error = Some(format!(
            "{error} (maximum event age of {:?} exceeded)",
            config.max_event_age
        ));
    }
    None
}

struct Attempt {
    log: EventLog,
    host: HostHandle,
    config: Arc<AsyncConfig>,
    cmds: mpsc::Sender<Cmd>,
    terminate: Arc<AtomicU8>,
}

impl Attempt {
    async fn run(self, mut e: EventRecord, invocation_id: String) {
        let id = e.request_id.clone();
        let next = match self.expire_if_too_old(&mut e).await {
            Some(next) => next,
            None => match self.execute(&mut e, &invocation_id).await {
                Ok(next) => next,
                Err(err) => {
                    // The store failed; the event is not forgotten: it runs
                    // again shortly (as recovery would after a restart),
                    // uncharged.
                    tracing::error!(request = %id, "async event attempt could not be recorded ({err}); retrying in 1 s");
                    e.attempts = (e.attempts - 1).max(0);
                    e.status = EventStatus::Retrying;
                    let at = now_ms() + 1000;
                    e.next_attempt_ms = Some(at);
                    Next::RetryUnrecorded(e, at)
                }
            },
        };
        let next = match next {
            Next::Retry(mut e, at) => {
                shed_large_input(&mut e);
                Next::Retry(e, at)
            }
            Next::RetryUnrecorded(mut e, at) => {
                shed_large_input(&mut e);
                Next::RetryUnrecorded(e, at)
            }
            Next::Requeue(mut e) => {
                shed_large_input(&mut e);
                Next::Requeue(e)
            }
            done => done,
        };
        let _ = self.cmds.send(Cmd::Settled { id, next }).await;
    }

    /// No attempt starts on an event past `maxEventAge` (it may have waited
    /// long in a backlog or for a retry): it ends `FAILED` with 460 instead.
    /// `None` when the event is young enough to run.
    async fn expire_if_too_old(&self, e: &mut EventRecord) -> Option<Next> {
        let age = Duration::from_millis(now_ms().saturating_sub(e.start_ms).max(0) as u64);
        if age < self.config.max_event_age {
            return None;
        }
        if self.terminate.load(Ordering::SeqCst) != NOT_TERMINATED {
            // A terminate reached it first: the runner aborts it.
            return Some(Next::RetryUnrecorded(e.clone(), now_ms()));
        }
        if e.input.is_empty() {
            // For the onFailure payload; a large input stayed in the store.
            if let Ok(Some(stored)) = self.log.get(&e.request_id).await {
                e.input = stored.input;
            }
        }
        let mut ended = e.clone();
        ended.status = EventStatus::Failed;
        ended.status_code = Some(codes::EXPIRED);
        ended.end_ms = Some(now_ms());
        ended.next_attempt_ms = None;
        let error = format!(
            "maximum event age of {:?} exceeded before attempt {} could start",
            self.config.max_event_age,
            e.attempts + 1
        );
        ended.error = Some(match &e.error {
            Some(last) => format!("{error}; last error: {last}"),
            None => error.clone(),
        });
        let line = platform(error);
        Some(
            match self.log.write(update_with(&ended, vec![line])).await {
                Ok(WriteOutcome::Unchanged) => Next::Skipped,
                Ok(_) => {
                    *e = ended;
                    Next::Done {
                        failed: Some(e.clone()),
                    }
                }
                Err(err) => {
                    tracing::error!(request = %e.request_id, "cannot record the expiry of an async event ({err}); retrying in 1 s");
                    let at = now_ms() + 1000;
                    Next::RetryUnrecorded(e.clone(), at)
                }
            },
        )
    }

    async fn execute(&self, e: &mut EventRecord, invocation_id: &str) -> Result<Next, StoreError> {
        // Counted first: a store failure below gives the attempt back
        // (`Attempt::run`), so each failure path must have taken it.
        e.attempts += 1;
        if e.input.is_empty() {
            // A large input was left in the store (`shed_large_input`); read it now.
            e.input = self
                .log
                .get(&e.request_id)
                .await?
                .map(|r| r.input)
                .unwrap_or_default();
        }
        e.status = EventStatus::Running;
        e.next_attempt_ms = None;
        let start = platform(format!(
            "Invoke Start RequestId: {} (attempt {})",
            e.request_id, e.attempts
        ));
        if self.log.write(update_with(e, vec![start])).await? == WriteOutcome::Unchanged {
            // Ended meanwhile: a terminate of it while it waited in the
            // store was written first.
            tracing::info!(request = %e.request_id, "async event ended before its attempt started; not run");
            return Ok(Next::Skipped);
        }

        let input = TypedData::decode(e.input.as_slice()).unwrap_or_default();
        let input = InvocationInput::new(input).with_id(invocation_id);
        let result = match self.host.submit(&e.function, input).await {
            Ok(pending) => {
                // A terminate that raced the submission found nothing to stop;
                // the dispatcher now holds the invocation, so repeat it.
                match self.terminate.load(Ordering::SeqCst) {
                    GRACEFUL => drop(
                        self.host
                            .cancel(invocation_id, CancelReason::Requested)
                            .await,
                    ),
                    FORCED => drop(self.host.kill(invocation_id).await),
                    _ => {}
                }
                pending.result().await
            }
            Err(err) => Err(err),
        };
        let terminated = self.terminate.load(Ordering::SeqCst) != NOT_TERMINATED;
        let mut lines = Vec::new();
        let next = match result {
            Ok(r) => {
                lines.extend(signal_line(&r, terminated));
                lines.extend(r.logs.iter().map(|l| EventLogLine {
                    time_ms: now_ms(),
                    line: l.message.clone(),
                }));
                if r.logs_dropped > 0 {
                    lines.push(platform(format!(
                        "{} log lines were dropped (limit per invocation)",
                        r.logs_dropped
                    )));
                }
                if let Some(trace) = &r.stack_trace {
                    lines.push(platform(format!(
                        "Stack trace of attempt {}:\n{trace}",
                        e.attempts
                    )));
                }
                self.settle(e, &r, terminated)
            }
            Err(InvokeError::ShuttingDown | InvokeError::Draining) => {
                self.requeue(e);
                Next::Requeue(e.clone())
            }
            Err(err) => self.retry_or_fail(e, codes::PLATFORM_ERROR, &err.to_string()),
        };
        lines.push(platform(match e.status {
            EventStatus::Retrying => format!(
                "Invoke End RequestId: {}; attempt {} failed ({}); retrying",
                e.request_id,
                e.attempts,
                e.error.as_deref().unwrap_or("")
            ),
            EventStatus::Queued => format!(
                "Invoke End RequestId: {}; host shutting down, event re-queued",
                e.request_id
            ),
            s => format!(
                "Invoke End RequestId: {}; {s} {}{}",
                e.request_id,
                e.status_code.unwrap_or_default(),
                e.error
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        }));
        if self.log.write(update_with(e, lines)).await? == WriteOutcome::Unchanged {
            // Only this attempt ends a running event; something else did.
            tracing::warn!(request = %e.request_id, "async event ended by another writer while its attempt ran; this attempt's end is not recorded");
            return Ok(Next::Done { failed: None });
        }
        Ok(next)
    }

    fn settle(&self, e: &mut EventRecord, r: &InvocationResult, terminated: bool) -> Next {
        let error = r.error.clone().unwrap_or_default();
        if r.outcome == Outcome::Succeeded {
            e.status = EventStatus::Finished;
            e.status_code = Some(codes::FINISHED);
            e.error = None;
            e.result = r.output.as_ref().and_then(TypedData::to_bytes).map(bounded);
            e.end_ms = Some(now_ms());
            return Next::Done { failed: None };
        }
        if r.cancel_reason == Some(CancelReason::HostShutdown) {
            self.requeue(e);
            return Next::Requeue(e.clone());
        }
        if terminated {
            e.status = EventStatus::Aborted;
            e.status_code = Some(match r.outcome {
                Outcome::Cancelled => codes::TERMINATED_GRACEFULLY,
                Outcome::TimedOut => codes::TIMEOUT,
                Outcome::Failed if !r.worker_lost => codes::FUNCTION_ERROR,
                _ => codes::USER_PROCESS_EXIT,
            });
            e.error = Some(format!("terminated by a user: {error}"));
            e.end_ms = Some(now_ms());
            return Next::Done { failed: None };
        }
        if r.outcome == Outcome::Killed && r.worker_lost {
            // Ended by a kill aimed at another invocation: the platform ended
            // it, not its code, so the attempt is not charged.
            e.attempts = (e.attempts - 1).max(0);
        }
        let code = match r.outcome {
            Outcome::TimedOut => codes::TIMEOUT,
            Outcome::Killed if r.cancel_reason == Some(CancelReason::Timeout) => codes::TIMEOUT,
            Outcome::Killed => codes::USER_PROCESS_EXIT,
            Outcome::Failed if r.worker_lost => codes::USER_PROCESS_EXIT,
            Outcome::Failed => codes::FUNCTION_ERROR,
            _ => codes::PLATFORM_ERROR,
        };
        self.retry_or_fail(e, code, &error)
    }

    fn retry_or_fail(&self, e: &mut EventRecord, code: i64, error: &str) -> Next {
        match decide_retry(&self.config, e, code, error) {
            Some(at) => Next::Retry(e.clone(), at),
            None => Next::Done {
                failed: Some(e.clone()),
            },
        }
    }

    /// Back to the queue: the host, not the function, ended this attempt,
    /// so it does not count against the event's attempts.
    fn requeue(&self, e: &mut EventRecord) {
        e.status = EventStatus::Queued;
        e.next_attempt_ms = None;
        e.attempts = (e.attempts - 1).max(0);
    }
}

/// The `[PLATFORM] Signal ...` line for a user's graceful terminate.
fn signal_line(r: &InvocationResult, terminated: bool) -> Option<EventLogLine> {
    if !terminated || r.cancel_reason != Some(CancelReason::Requested) {
        return None;
    }
    match r.cancel_delivery {
        Some(CancelDelivery::Signalled) => Some(platform("Signal received successfully.")),
        Some(CancelDelivery::NotDeliverable) => Some(platform("Signal reception failed.")),
        None => None,
    }
}

/// Results larger than this are cut (the event keeps a bounded record).
const MAX_RESULT_BYTES: usize = 64 * 1024;

fn bounded(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(MAX_RESULT_BYTES);
    bytes
}
