//! The runner's pure core: which events are held, waiting, running or
//! being aborted, decided one command at a time with the time passed in.
//! No I/O and no tokio: every store read or write, timer, attempt and
//! answer is an [`Effect`] the shell (`runner/mod.rs`) carries out, and
//! whatever comes back is a [`Cmd`]. Replies are opaque (`R`), so tests
//! drive the core with plain values.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::backlog::Backlog;
use super::policy;
pub(super) use super::protocol::{Cmd, Effect, Next, Termination, TimerId};
use crate::events::{AsyncConfig, EventRecord, InvokeType};
use crate::ids::{InvocationId, RequestId};

/// Where one event the runner holds stands.
enum Held<R> {
    /// In memory, in line to run (`Core::ready` keeps the order).
    Ready(EventRecord),
    /// Waiting for its timer (a retry, or a re-run after a drain).
    Waiting { event: EventRecord, timer: TimerId },
    Running {
        invocation_id: InvocationId,
        termination: Option<Termination>,
        /// Terminates to answer when the attempt settles.
        settle_waiters: Vec<R>,
    },
    /// Its terminate is being written (`writes` of them): no copy of it is
    /// held or started meanwhile, so the abort reaches the store before any
    /// attempt's start, which then finds the event ended.
    Aborting {
        writes: u32,
        /// The event, when a write failed: it goes on as if no terminate
        /// had come once no write is left.
        failed: Option<EventRecord>,
    },
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

/// Pause before a retry the store could not record, or a re-run after a
/// drain.
const SHORTLY_MS: i64 = 1000;

/// The runner's state and decisions.
pub(super) struct Core<R> {
    config: Arc<AsyncConfig>,
    new_invocation_id: Box<dyn FnMut() -> InvocationId + Send>,
    held: HashMap<RequestId, Held<R>>,
    /// The `Ready` events, oldest first: always the oldest of all queued
    /// events, at most `queueMemoryLimit` of them.
    ready: VecDeque<RequestId>,
    waiting: usize,
    running: usize,
    next_timer: u64,
    /// Queued events left in the store (accepted while memory was full, or
    /// by an earlier run).
    queued: Backlog,
    /// The highest sequence number refills have read: every event queued
    /// at or below it is held, running or ended. Refills read past it.
    cursor: i64,
    /// The highest sequence number of an accept left in the store.
    max_left_in_store: i64,
    /// `RETRYING` events left in the store (more than `queueMemoryLimit`
    /// pending, or left by an earlier run).
    retries: Backlog,
    /// Set by a drain or a shutdown: no attempt starts and no backlog is
    /// read; a requeued event waits in the store for the next start.
    starting_stopped: bool,
    /// With a shared store: at most this many claimed events wait in
    /// memory, so a host claims what it can start soon and leaves the rest
    /// to its peers.
    claim_limit: Option<usize>,
    /// A poll came while a read was under way; the read may have missed
    /// what it announced.
    polled_during_read: bool,
    effects: Vec<Effect<R>>,
}

impl<R> Core<R> {
    /// A core that, as after a restart, expects queued and retrying events
    /// in the store; `Cmd::Recovered` says where queued ones start.
    pub(super) fn new(
        config: Arc<AsyncConfig>,
        new_invocation_id: impl FnMut() -> InvocationId + Send + 'static,
    ) -> Self {
        Self {
            config,
            new_invocation_id: Box::new(new_invocation_id),
            held: HashMap::new(),
            ready: VecDeque::new(),
            waiting: 0,
            running: 0,
            next_timer: 0,
            queued: Backlog::marked(),
            cursor: 0,
            max_left_in_store: 0,
            retries: Backlog::marked(),
            starting_stopped: false,
            claim_limit: None,
            polled_during_read: false,
            effects: Vec::new(),
        }
    }

    /// A core over a shared store: it claims at most `limit` events ahead
    /// of what runs.
    pub(super) fn shared(mut self, limit: usize) -> Self {
        self.claim_limit = Some(limit.max(1));
        self
    }

    /// Applies `cmd` at time `now_ms` (ms since the Unix epoch), starts what
    /// may start, and returns what the shell must do.
    pub(super) fn handle(&mut self, cmd: Cmd<R>, now_ms: i64) -> Vec<Effect<R>> {
        match cmd {
            Cmd::Recovered { cursor, failed } => {
                self.cursor = cursor;
                // Retrying events stay in the store for the first load.
                for e in failed {
                    self.on_failure(e);
                }
            }
            Cmd::Accepted { event, seq } => self.accept(event, seq),
            Cmd::Terminate {
                id,
                termination,
                reply,
            } => self.terminate(id, termination, reply),
            Cmd::TerminateStored {
                event,
                termination,
                reply,
            } => self.terminate_stored(event, termination, reply),
            Cmd::AnswerAfterSettle { id, reply } => match self.held.get_mut(&id) {
                Some(Held::Running { settle_waiters, .. }) => settle_waiters.push(reply),
                _ => self.effects.push(Effect::AnswerFromStore {
                    id,
                    replies: vec![reply],
                }),
            },
            Cmd::AbortWritten { id, failed } => self.abort_written(id, failed, now_ms),
            Cmd::Settled { id, next } => self.settled(id, next, now_ms),
            Cmd::Refilled {
                events,
                complete,
                horizon,
            } => self.refilled(events, complete, horizon),
            Cmd::RetriesLoaded { events, complete } => {
                self.retries_loaded(events, complete, now_ms)
            }
            Cmd::TimerFired { id, timer } => {
                if matches!(self.held.get(&id), Some(Held::Waiting { timer: t, .. }) if *t == timer)
                {
                    if let Some(Held::Waiting { event, .. }) = self.remove(&id) {
                        self.hold_ready(event);
                    }
                }
            }
            Cmd::StopStartingAttempts => self.starting_stopped = true,
            Cmd::Poll => {
                if !self.queued.can_read() && self.queued.in_store {
                    self.polled_during_read = true;
                }
                self.queued.leave_in_store();
            }
            Cmd::DeliverTerminate { id, termination } => self.relay(id, termination),
            Cmd::LeaseLost => self.lease_lost(),
            Cmd::FailedElsewhere(failed) => {
                for e in failed {
                    self.on_failure(e);
                }
            }
        }
        self.start_attempts(now_ms);
        std::mem::take(&mut self.effects)
    }

    /// What the runner holds now.
    pub(super) fn stats(&self) -> AsyncStats {
        AsyncStats {
            queued_in_memory: self.ready.len(),
            backlog_in_store: self.queued.in_store,
            running: self.running,
            waiting: self.waiting,
            retries_in_store: self.retries.in_store,
        }
    }

    fn insert(&mut self, id: RequestId, h: Held<R>) {
        self.count(&h, 1);
        let replaced = self.held.insert(id.clone(), h);
        if let Some(old) = replaced {
            self.count(&old, -1);
            match old {
                // One timer per waiting event.
                Held::Waiting { timer, .. } => self.effects.push(Effect::CancelTimer(timer)),
                Held::Ready(_) => self.ready.retain(|r| r != &id),
                _ => {}
            }
        }
    }

    fn remove(&mut self, id: &RequestId) -> Option<Held<R>> {
        let h = self.held.remove(id)?;
        self.count(&h, -1);
        Some(h)
    }

    fn count(&mut self, h: &Held<R>, by: isize) {
        let n = match h {
            Held::Waiting { .. } => &mut self.waiting,
            Held::Running { .. } => &mut self.running,
            _ => return,
        };
        *n = n.wrapping_add_signed(by);
    }

    /// Holds `e` in line to run, unless the runner holds it already in any
    /// state: never two copies of one event, so never two attempts.
    fn hold_ready(&mut self, e: EventRecord) -> bool {
        if self.held.contains_key(&e.request_id) {
            return false;
        }
        self.ready.push_back(e.request_id.clone());
        self.insert(e.request_id.clone(), Held::Ready(e));
        true
    }

    fn wait_until(&mut self, e: EventRecord, at_ms: i64) {
        let timer = TimerId(self.next_timer);
        self.next_timer += 1;
        let id = e.request_id.clone();
        self.effects.push(Effect::StartTimer {
            timer,
            id: id.clone(),
            at_ms,
        });
        self.insert(id, Held::Waiting { event: e, timer });
    }

    /// An accepted event (already durable, sequence number `seq`): held in
    /// memory if it can be, else left in the store for a refill, keeping
    /// acceptance order.
    fn accept(&mut self, e: EventRecord, seq: i64) {
        if seq <= self.cursor || self.held.contains_key(&e.request_id) {
            // A refill loaded it before this hand-over arrived (or a
            // terminate holds it).
            return;
        }
        if !self.queued.in_store && self.ready.len() < self.config.queue_memory_limit {
            self.hold_ready(e);
            return;
        }
        self.queued.leave_in_store();
        self.max_left_in_store = self.max_left_in_store.max(seq);
    }

    /// Loads queued events from the store once memory has room for a good
    /// share of them (half the limit), so refills are few and large.
    fn maybe_refill(&mut self) {
        let limit = self.claim_limit.unwrap_or(self.config.queue_memory_limit);
        if !self.queued.can_read() || self.starting_stopped || self.ready.len() > limit / 2 {
            return;
        }
        self.queued.begin_read();
        self.effects.push(Effect::ReadQueued {
            after: self.cursor,
            want: limit - self.ready.len(),
            // Every hand-over seen so far was committed before this read.
            horizon: self.max_left_in_store,
        });
    }

    fn refilled(&mut self, events: Vec<(i64, EventRecord)>, complete: bool, horizon: i64) {
        let read = self.queued.end_read();
        let polled = std::mem::take(&mut self.polled_during_read);
        let mut loaded = 0usize;
        for (seq, e) in events {
            self.cursor = self.cursor.max(seq);
            // Events held since they were accepted, before the backlog
            // began, can be in the page too (`hold_ready` skips them).
            if !read.settled.contains(&e.request_id) && self.hold_ready(e) {
                loaded += 1;
            }
        }
        if complete {
            // Everything queued up to the read was in the page, so the
            // events left in the store before it (up to the horizon) are
            // loaded or ended (e.g. terminated meanwhile).
            self.cursor = self.cursor.max(horizon);
            // Accepts left in the store after the read began are past the
            // cursor; the backlog ends only once the cursor has passed them
            // (more precise than `read.left_in_store`: the page may hold
            // them).
            if self.max_left_in_store <= self.cursor && !polled {
                self.queued.in_store = false;
            }
        }
        tracing::debug!(
            loaded,
            complete,
            cursor = self.cursor,
            "refilled queued async events"
        );
    }

    /// An event recorded as `RETRYING` (durable, with its next attempt
    /// time): held in memory with a timer if there is room, else left in
    /// the store, from which retry loads take the earliest due first.
    fn hold_retry(&mut self, e: EventRecord, at_ms: i64) {
        if !self.retries.in_store && self.waiting < self.config.queue_memory_limit {
            self.wait_until(e, at_ms);
            return;
        }
        self.retries.leave_in_store();
    }

    /// Loads retries from the store once there is room for half the limit.
    fn maybe_load_retries(&mut self) {
        let limit = self.config.queue_memory_limit;
        if !self.retries.can_read() || self.starting_stopped || self.waiting > limit / 2 {
            return;
        }
        self.retries.begin_read();
        // Retries in memory are still RETRYING in the store and may come
        // first in its order: ask for that many more, so every full page
        // brings new ones.
        let want = limit + self.ready.len() + self.running;
        self.effects.push(Effect::ReadRetrying { want });
    }

    fn retries_loaded(&mut self, events: Vec<EventRecord>, complete: bool, now_ms: i64) {
        let read = self.retries.end_read();
        let mut complete = complete;
        for e in events {
            if self.waiting >= self.config.queue_memory_limit {
                // Full: the rest stay in the store for the next load.
                complete = false;
                break;
            }
            let id = &e.request_id;
            if read.settled.contains(id) || self.held.contains_key(id) {
                continue;
            }
            let at = e.next_attempt_ms.unwrap_or(now_ms);
            self.wait_until(e, at);
        }
        // A retry left in the store during the read may be missing from it.
        if complete && !read.left_in_store {
            self.retries.in_store = false;
        }
    }

    fn terminate(&mut self, id: RequestId, termination: Termination, reply: R) {
        match self.held.get_mut(&id) {
            Some(Held::Running {
                invocation_id,
                termination: t,
                ..
            }) => {
                *t = Some(termination);
                let invocation_id = invocation_id.clone();
                self.effects.push(Effect::Signal {
                    id,
                    invocation_id,
                    termination,
                    reply,
                });
            }
            Some(Held::Waiting { .. }) => {
                if let Some(Held::Waiting { event, timer }) = self.remove(&id) {
                    self.effects.push(Effect::CancelTimer(timer));
                    self.abort(event, vec![reply]);
                }
            }
            Some(Held::Ready(_)) => {
                if let Some(i) = self.ready.iter().position(|r| r == &id) {
                    self.ready.remove(i);
                }
                if let Some(Held::Ready(event)) = self.remove(&id) {
                    self.abort(event, vec![reply]);
                }
            }
            // Only in the store, or its abort is being written: the shell
            // looks it up and hands back what it found.
            Some(Held::Aborting { .. }) | None => self.effects.push(Effect::LookUp {
                id,
                termination,
                reply,
            }),
        }
    }

    /// A terminate another host recorded: carried out if this host runs
    /// the event, and once (a repeat of the same kind changes nothing).
    fn relay(&mut self, id: RequestId, termination: Termination) {
        if let Some(Held::Running {
            invocation_id,
            termination: t,
            ..
        }) = self.held.get_mut(&id)
        {
            if *t == Some(termination) || *t == Some(Termination::Forced) {
                return;
            }
            *t = Some(termination);
            let invocation_id = invocation_id.clone();
            self.effects.push(Effect::Relay {
                id,
                invocation_id,
                termination,
            });
        }
    }

    /// Peers took this host's events over: nothing held runs here any
    /// more. Running attempts are abandoned (they settle later, and their
    /// writes find the claim gone); reads start again from the store.
    fn lease_lost(&mut self) {
        let ids: Vec<RequestId> = self.held.keys().cloned().collect();
        for id in ids {
            match self.held.get(&id) {
                Some(Held::Running { invocation_id, .. }) => {
                    let invocation_id = invocation_id.clone();
                    self.effects.push(Effect::Abandon { id, invocation_id });
                }
                Some(Held::Ready(_) | Held::Waiting { .. }) => {
                    if let Some(Held::Waiting { timer, .. }) = self.remove(&id) {
                        self.effects.push(Effect::CancelTimer(timer));
                    }
                }
                Some(Held::Aborting { .. }) | None => {}
            }
        }
        self.ready.clear();
        self.queued.leave_in_store();
        self.retries.leave_in_store();
    }

    /// Terminates a queued or retrying event that was only in the store
    /// when its terminate looked. If a refill or load has brought it in
    /// since, it is terminated where it is now. Otherwise nothing holds it,
    /// and the abort is written ahead of any later attempt's start, which
    /// then finds it ended.
    fn terminate_stored(&mut self, event: EventRecord, termination: Termination, reply: R) {
        match self.held.get(&event.request_id) {
            Some(Held::Running { .. } | Held::Waiting { .. } | Held::Ready(_)) => {
                self.terminate(event.request_id, termination, reply)
            }
            Some(Held::Aborting { .. }) | None => self.abort(event, vec![reply]),
        }
    }

    /// Ends an event no attempt is running (no longer held, or only in the
    /// store) as terminated by a user, and answers `replies`.
    fn abort(&mut self, e: EventRecord, replies: Vec<R>) {
        match self.held.get_mut(&e.request_id) {
            Some(Held::Aborting { writes, .. }) => *writes += 1,
            _ => self.insert(
                e.request_id.clone(),
                Held::Aborting {
                    writes: 1,
                    failed: None,
                },
            ),
        }
        self.effects.push(Effect::WriteAbort { event: e, replies });
    }

    fn abort_written(&mut self, id: RequestId, failed: Option<EventRecord>, now_ms: i64) {
        let Some(Held::Aborting {
            writes,
            failed: kept,
        }) = self.held.get_mut(&id)
        else {
            return;
        };
        *writes -= 1;
        if failed.is_some() {
            *kept = failed;
        }
        if *writes > 0 {
            return;
        }
        if let Some(Held::Aborting {
            failed: Some(e), ..
        }) = self.remove(&id)
        {
            // Not recorded: the event goes on as if no terminate had come
            // (its caller got the error).
            self.wait_until(e, now_ms + SHORTLY_MS);
        }
    }

    fn settled(&mut self, id: RequestId, next: Next, now_ms: i64) {
        // A read under way may hold a copy of it from before.
        self.queued.settled(&id);
        self.retries.settled(&id);
        let (terminated, waiters) = match self.held.get(&id) {
            Some(Held::Running { .. }) => match self.remove(&id) {
                Some(Held::Running {
                    termination,
                    settle_waiters,
                    ..
                }) => (termination.is_some(), settle_waiters),
                _ => unreachable!("checked to be running"),
            },
            _ => (false, Vec::new()),
        };
        let mut waiters = Some(waiters);
        match next {
            // A terminate that arrived while the attempt was closing still
            // wins: the event is not run again.
            Next::Retry(e, _) | Next::RetryUnrecorded(e, _) | Next::Requeue(e) if terminated => {
                let waiters = waiters.take().unwrap_or_default();
                self.abort(e, waiters);
            }
            Next::Done { failed: Some(e) } => self.on_failure(e),
            Next::Done { failed: None } | Next::Skipped => {}
            Next::Retry(e, at) => self.hold_retry(e, at),
            Next::RetryUnrecorded(e, at) => self.wait_until(e, at),
            // Durable as QUEUED; after a drain or shutdown it runs on the
            // next start, otherwise again shortly.
            Next::Requeue(e) if !self.starting_stopped => self.wait_until(e, now_ms + SHORTLY_MS),
            Next::Requeue(_) => {}
        }
        // Terminates that found the invocation just ended: its final record
        // is written, answer from it.
        if let Some(replies) = waiters.filter(|w| !w.is_empty()) {
            self.effects.push(Effect::AnswerFromStore { id, replies });
        }
    }

    fn start_attempts(&mut self, now_ms: i64) {
        while !self.starting_stopped && self.running < self.config.max_concurrency {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(Held::Ready(event)) = self.remove(&id) else {
                unreachable!("`ready` lists only ready events (`insert` keeps it so)");
            };
            let invocation_id = (self.new_invocation_id)();
            self.insert(
                id,
                Held::Running {
                    invocation_id: invocation_id.clone(),
                    termination: None,
                    settle_waiters: Vec::new(),
                },
            );
            self.effects
                .push(if policy::is_expired(&self.config, &event, now_ms) {
                    Effect::Expire { event }
                } else {
                    Effect::StartAttempt {
                        event,
                        invocation_id,
                    }
                });
        }
        self.maybe_refill();
        self.maybe_load_retries();
    }

    fn on_failure(&mut self, failed: EventRecord) {
        let Some(target) = self.config.on_failure.clone() else {
            return;
        };
        if failed.invoke_type == InvokeType::OnFailure {
            return;
        }
        self.effects
            .push(Effect::SendToOnFailure { target, failed });
    }
}
