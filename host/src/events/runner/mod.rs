//! The async-event runner. `state.rs` is its pure core: one map of the
//! events it holds and every decision about them. This module is the thin
//! shell around it: the handle callers use, a `select!` loop over
//! commands, timers and pruning that feeds the core, and the effects the
//! core asks for, carried out as tasks tracked by one `TaskTracker`. Each
//! attempt is such a task (`attempt.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::task::TaskTracker;
use tokio_util::time::{delay_queue, DelayQueue};

use super::postgres::{Cluster, ClusterHost, Delivery};
use super::time::now_ms;
use super::{
    AsyncConfig, EventLog, EventRecord, InvokeType, StatusCode, StoreError, WriteOp, WriteOutcome,
};
use crate::host::HostHandle;
use crate::ids::{InvocationId, RequestId};
use crate::invocation::CancelReason;

mod api;
mod attempt;
mod backlog;
mod membership;
mod policy;
mod protocol;
mod state;
mod tasks;
#[cfg(test)]
mod tests;

pub use api::{EnqueueError, EnqueueRequest, Enqueued, TerminateError, TerminateOutcome};
use attempt::Attempt;
pub use state::AsyncStats;
use state::{Cmd, Core, Effect, Termination, TimerId};
use tasks::{
    answer_from_store, insert_and_hand_over, look_up, send_to_on_failure, signal, write_abort,
};
use tasks::{platform, update_with};

/// Type of a terminate's answer channel.
type TerminateReply = oneshot::Sender<Result<TerminateOutcome, StoreError>>;

/// What reaches the runner's loop. Nearly every message is a command for
/// the core, so boxing it would only add an allocation to each.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Core(Cmd<TerminateReply>),
    Stats(oneshot::Sender<AsyncStats>),
    WaitIdle(oneshot::Sender<()>),
    Close,
}

/// Pause after a store read whose page was short, before it is handed back.
const REFILL_PAUSE: Duration = Duration::from_millis(2);

/// Handle to the async-event runner.
#[derive(Clone)]
pub struct AsyncEvents {
    cmds: mpsc::Sender<Msg>,
    log: EventLog,
    catalog: crate::catalog::Catalog,
    tasks: TaskTracker,
    cluster: Option<Arc<Cluster>>,
    cluster_tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl AsyncEvents {
    /// Starts the runner over `log`, recovering events left unfinished by a
    /// previous run (queued ones run; running ones are retried or failed).
    /// With a shared store, `cluster` is this host's membership: the runner
    /// claims events, heartbeats, rescues dead hosts' events and carries
    /// out terminates other hosts record.
    pub async fn start(
        log: EventLog,
        host: HostHandle,
        config: AsyncConfig,
        catalog: crate::catalog::Catalog,
        cluster: Option<Arc<Cluster>>,
    ) -> Result<Self, StoreError> {
        let (cmds, rx) = mpsc::channel(4096);
        let config = Arc::new(config);
        let tasks = TaskTracker::new();
        let mut core = Core::new(config.clone(), InvocationId::random);
        if cluster.is_some() {
            core = core.shared(config.max_concurrency);
        }
        let draining = Arc::new(AtomicBool::new(false));
        // Until `close`, which aborts them: they loop for as long as the
        // host is a member.
        let mut cluster_tasks = Vec::new();
        if let Some(cluster) = &cluster {
            let (deliveries, mut delivered) = mpsc::channel(256);
            cluster_tasks.push(tokio::spawn(cluster.clone().listen(deliveries)));
            let forward = cmds.clone();
            cluster_tasks.push(tokio::spawn(async move {
                while let Some(Delivery::Terminate {
                    request_id,
                    termination,
                }) = delivered.recv().await
                {
                    let cmd = Cmd::DeliverTerminate {
                        id: request_id,
                        termination: termination.into(),
                    };
                    if forward.send(Msg::Core(cmd)).await.is_err() {
                        break;
                    }
                }
            }));
            cluster_tasks.push(tokio::spawn(membership::keep(
                cluster.clone(),
                cmds.clone(),
                config.clone(),
                draining.clone(),
            )));
        }
        let mut runner = Runner {
            core,
            cluster: cluster.clone(),
            draining,
            log: log.clone(),
            host,
            config,
            cmds: cmds.clone(),
            tasks: tasks.clone(),
            timers: DelayQueue::new(),
            timer_keys: HashMap::new(),
            attempts: HashMap::new(),
            idle_waiters: Vec::new(),
            pruning: Arc::new(AtomicBool::new(false)),
        };
        let recovered = runner.recover().await?;
        runner.handle(recovered);
        tokio::spawn(runner.run(rx));
        Ok(Self {
            cmds,
            log,
            catalog,
            tasks,
            cluster,
            cluster_tasks: Arc::new(std::sync::Mutex::new(cluster_tasks)),
        })
    }

    /// The durable log, for reads.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Stores the event durably, then queues it to run.
    pub async fn enqueue(&self, req: EnqueueRequest) -> Result<Enqueued, EnqueueError> {
        // The one list of functions, worker-indexed ones included; the
        // event keeps the name as configured.
        let req = match self.catalog.current().get(&req.function) {
            Some(f) => EnqueueRequest {
                function: f.name.clone(),
                ..req
            },
            None => return Err(EnqueueError::UnknownFunction(req.function)),
        };
        let id = RequestId::time_ordered();
        let accepted_at = std::time::SystemTime::now();
        let trace = req
            .trace
            .as_ref()
            .map_or_else(crate::trace::TraceContext::root, |caller| {
                caller.remote_child()
            });
        let invoke_type = req.invoke_type;
        let function = req.function.clone();
        let record = EventRecord::queued(
            id.clone(),
            req.function,
            req.qualifier.unwrap_or_else(|| "$LATEST".into()),
            req.invoke_type,
            req.input.encode_to_vec(),
            now_ms(),
        )
        .with_trace(&trace);
        let key = req.idempotency.as_ref().map(|(k, _)| k.clone());
        let insert =
            insert_and_hand_over(self.log.clone(), self.cmds.clone(), record, req.idempotency);
        // In its own task, so a caller that goes away (an HTTP client that
        // disconnects) cannot cut it between the write and the hand-over.
        let stored = self
            .tasks
            .spawn(insert)
            .await
            .map_err(StoreError::task("the accept task failed"))?;
        match stored? {
            WriteOutcome::Duplicate(existing) => Ok(Enqueued::Existing(existing)),
            WriteOutcome::Conflict(existing) => Err(EnqueueError::Conflict {
                key: key.unwrap_or_default(),
                existing,
            }),
            _ => {
                crate::metrics::async_accepted();
                if crate::otel::enabled() {
                    crate::otel::record(crate::otel::SpanRecord {
                        trace,
                        name: format!("{function} accept"),
                        kind: opentelemetry::trace::SpanKind::Producer,
                        start: accepted_at,
                        end: std::time::SystemTime::now(),
                        attributes: vec![
                            opentelemetry::KeyValue::new("fnhost.request_id", id.to_string()),
                            opentelemetry::KeyValue::new(
                                "fnhost.invoke_type",
                                invoke_type.to_string(),
                            ),
                        ],
                        error: None,
                    });
                }
                Ok(Enqueued::New(id))
            }
        }
    }

    /// Terminates an event: forced (kill its instance) or graceful (cancel,
    /// escalated to forced after the grace).
    pub async fn terminate(
        &self,
        request_id: &RequestId,
        graceful: bool,
    ) -> Result<TerminateOutcome, TerminateError> {
        let (reply, rx) = oneshot::channel();
        let termination = if graceful {
            Termination::Graceful
        } else {
            Termination::Forced
        };
        let cmd = Cmd::Terminate {
            id: request_id.clone(),
            termination,
            reply,
        };
        if self.cmds.send(Msg::Core(cmd)).await.is_err() {
            return Err(TerminateError::RunnerStopped);
        }
        // A dropped reply: the runner stopped before it answered.
        Ok(rx.await.map_err(|_| TerminateError::RunnerStopped)??)
    }

    /// What the runner holds now; `None` once it has stopped.
    pub async fn stats(&self) -> Option<AsyncStats> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Msg::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops starting attempts, for a drain and for a shutdown alike:
    /// queued events stay queued, durably, and accepts go on. Attempts that
    /// run are left to the host to finish or cancel.
    pub async fn stop_starting_attempts(&self) {
        let _ = self.cmds.send(Msg::Core(Cmd::StopStartingAttempts)).await;
    }

    /// Stops the runner and waits up to `deadline` for its tasks (attempts
    /// recording their end, store writes and reads) to finish; the store
    /// closes once the last handle is dropped. Tasks still running at the
    /// deadline are left to end on their own, with a warning. With a shared
    /// store the host then leaves the cluster: its unstarted events go back
    /// in line for its peers.
    pub async fn close(&self, deadline: Duration) {
        let _ = self.cmds.send(Msg::Close).await;
        if let Ok(mut tasks) = self.cluster_tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        // The runner closes the tracker too once its loop ends; closing it
        // here as well lets the wait end without waiting for that.
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            let running = self.tasks.len();
            tracing::warn!("async runner closed with {running} tasks still running after {deadline:?}; they end on their own");
        }
        if let Some(cluster) = &self.cluster {
            if let Err(e) = cluster.leave().await {
                tracing::warn!("cannot leave the cluster cleanly ({e}); peers rescue this host's events after the dead time");
            }
        }
    }

    /// With a shared store: the hosts sharing it.
    pub async fn cluster_hosts(&self) -> Option<Result<Vec<ClusterHost>, StoreError>> {
        Some(self.cluster.as_ref()?.hosts().await)
    }

    /// With a shared store: this host's id.
    pub fn host_id(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.id())
    }

    /// Waits until no attempt is running (after the host cancelled them).
    pub async fn wait_idle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Msg::WaitIdle(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The shell: the core, and what carries out its effects.
struct Runner {
    core: Core<TerminateReply>,
    log: EventLog,
    host: HostHandle,
    config: Arc<AsyncConfig>,
    cmds: mpsc::Sender<Msg>,
    tasks: TaskTracker,
    timers: DelayQueue<(RequestId, TimerId)>,
    timer_keys: HashMap<TimerId, delay_queue::Key>,
    /// With a shared store: this host's membership.
    cluster: Option<Arc<Cluster>>,
    /// Attempts no longer start here (told to peers by the heartbeat).
    draining: Arc<AtomicBool>,
    /// Each running attempt's end of its termination channel.
    attempts: HashMap<RequestId, watch::Sender<Option<Termination>>>,
    idle_waiters: Vec<oneshot::Sender<()>>,
    /// A prune is under way: the next tick does not start another.
    pruning: Arc<AtomicBool>,
}

/// Most events one prune write deletes. A backlog of a million ended
/// events is deleted in 4,000 short transactions, each queued behind the
/// writes already waiting, so accepts never wait on a whole prune. A
/// deleted event costs about as much as an accepted one (it leaves eight
/// B-trees and its log lines): 1,000 per chunk held each batch of accepts
/// that shared its transaction for about 65 ms.
const PRUNE_CHUNK: usize = 250;

impl Runner {
    /// Takes over the events an earlier run left running. Its queued and
    /// retrying events stay in the store; refills and loads read them.
    async fn recover(&mut self) -> Result<Cmd<TerminateReply>, StoreError> {
        let cursor = self.log.queue_start().await?;
        let interrupted = self.log.interrupted().await?;
        let count = interrupted.len();
        let mut failed = Vec::new();
        for mut e in interrupted {
            let note = format!("Host restarted while attempt {} was running", e.attempts);
            let retry = policy::decide_retry(
                &self.config,
                &mut e,
                StatusCode::UserProcessExit,
                &note,
                now_ms(),
            );
            if retry.is_some() {
                let line = platform(format!("{note}; retrying"));
                self.log.write(update_with(&e, vec![line])).await?;
                continue;
            }
            let line = platform(format!("{note}; {}", e.error.clone().unwrap_or_default()));
            if self.log.write(update_with(&e, vec![line])).await? != WriteOutcome::Unchanged {
                if e.input.is_empty() {
                    // For the onFailure payload (a large input).
                    if let Some(stored) = self.log.get(&e.request_id).await? {
                        e.input = stored.input;
                    }
                }
                failed.push(e);
            }
        }
        if count > 0 {
            tracing::info!(count, "recovered async events interrupted while running");
        }
        Ok(Cmd::Recovered { cursor, failed })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut prune = tokio::time::interval(self.config.prune_interval);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = self.cluster.is_some();
        let poll = tokio::time::sleep(membership::poll_delay(&self.config));
        tokio::pin!(poll);
        loop {
            tokio::select! {
                () = &mut poll, if shared => {
                    poll.as_mut().reset(tokio::time::Instant::now() + membership::poll_delay(&self.config));
                    self.handle(Cmd::Poll);
                }
                msg = rx.recv() => match msg {
                    Some(Msg::Core(cmd)) => self.handle(cmd),
                    Some(Msg::Stats(reply)) => drop(reply.send(self.core.stats())),
                    Some(Msg::WaitIdle(w)) => self.idle_waiters.push(w),
                    Some(Msg::Close) | None => break,
                },
                _ = prune.tick() => self.prune(),
                Some(expired) = self.timers.next() => {
                    let (id, timer) = expired.into_inner();
                    self.timer_keys.remove(&timer);
                    self.handle(Cmd::TimerFired { id, timer });
                }
            }
            if self.core.stats().running == 0 {
                for w in self.idle_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
        // Tasks under way finish on their own (their hand-backs find the
        // runner gone); the store closes once the last of them ends.
        drop(rx);
        self.tasks.close();
        let tasks = self.tasks.clone();
        drop(self);
        tasks.wait().await;
    }

    fn handle(&mut self, cmd: Cmd<TerminateReply>) {
        if let Cmd::Settled { id, .. } = &cmd {
            self.attempts.remove(id);
        }
        if let (Cmd::StopStartingAttempts, Some(cluster)) = (&cmd, &self.cluster) {
            // Peers run what this host claimed and will not start.
            self.draining.store(true, Ordering::SeqCst);
            let cluster = cluster.clone();
            self.tasks.spawn(async move {
                match cluster.release_unstarted().await {
                    Ok(n) if n > 0 => tracing::info!("released {n} claimed async events to other hosts"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot release claimed async events ({e}); peers rescue them after the dead time"),
                }
            });
        }
        for effect in self.core.handle(cmd, now_ms()) {
            self.execute(effect);
        }
    }

    fn execute(&mut self, effect: Effect<TerminateReply>) {
        match effect {
            Effect::StartAttempt {
                event,
                invocation_id,
            } => {
                let attempt = self.attempt(&event.request_id);
                self.tasks.spawn(attempt.run(event, invocation_id));
            }
            Effect::Expire { event } => {
                let attempt = self.attempt(&event.request_id);
                self.tasks.spawn(attempt.expire(event));
            }
            Effect::Signal {
                id,
                invocation_id,
                termination,
                reply,
            } => {
                if let Some(tx) = self.attempts.get(&id) {
                    tx.send_replace(Some(termination));
                }
                let (host, cmds) = (self.host.clone(), self.cmds.clone());
                self.tasks.spawn(signal(
                    host,
                    cmds,
                    id,
                    invocation_id,
                    termination,
                    Some(reply),
                ));
            }
            Effect::Relay {
                id,
                invocation_id,
                termination,
            } => {
                if let Some(tx) = self.attempts.get(&id) {
                    tx.send_replace(Some(termination));
                }
                let (host, cmds) = (self.host.clone(), self.cmds.clone());
                self.tasks
                    .spawn(signal(host, cmds, id, invocation_id, termination, None));
            }
            Effect::Abandon { id, invocation_id } => {
                let (host, log) = (self.host.clone(), self.log.clone());
                self.tasks.spawn(async move {
                    let r = host.cancel(&invocation_id, CancelReason::LeaseLost).await;
                    tracing::warn!(request = %id, invocation = %invocation_id, response = ?r, "async event attempt abandoned: another host took the event over");
                    // Its own writes are fenced off; a log line is not.
                    let timer = matches!(log.get(&id).await, Ok(Some(e)) if e.invoke_type == InvokeType::Timer);
                    let holder = if timer { "the schedule" } else { "the event" };
                    let line = platform(format!("Run cancelled: another host holds {holder}"));
                    let op = WriteOp::Log {
                        request_id: id.clone(),
                        lines: vec![line],
                    };
                    if let Err(e) = log.write(op).await {
                        tracing::warn!(request = %id, "cannot log the abandoned run: {e}");
                    }
                });
            }
            Effect::LookUp {
                id,
                termination,
                reply,
            } => {
                let (log, cmds) = (self.log.clone(), self.cmds.clone());
                let cluster = self.cluster.clone();
                self.tasks
                    .spawn(look_up(log, cluster, cmds, id, termination, reply));
            }
            Effect::WriteAbort { event, replies } => {
                let (log, cmds) = (self.log.clone(), self.cmds.clone());
                self.tasks.spawn(async move {
                    let id = event.request_id.clone();
                    let (answer, failed) = write_abort(&log, &event).await;
                    let failed = failed.then_some(event);
                    let _ = cmds.send(Msg::Core(Cmd::AbortWritten { id, failed })).await;
                    for reply in replies {
                        let _ = reply.send(answer.clone());
                    }
                });
            }
            Effect::AnswerFromStore { id, replies } => {
                self.tasks
                    .spawn(answer_from_store(self.log.clone(), id, replies));
            }
            Effect::StartTimer { timer, id, at_ms } => {
                let delay = Duration::from_millis(at_ms.saturating_sub(now_ms()).max(0) as u64);
                let key = self.timers.insert((id, timer), delay);
                self.timer_keys.insert(timer, key);
            }
            Effect::CancelTimer(timer) => {
                if let Some(key) = self.timer_keys.remove(&timer) {
                    self.timers.remove(&key);
                }
            }
            Effect::ReadQueued {
                after,
                want,
                horizon,
            } => {
                let log = self.log.clone();
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
            Effect::ReadRetrying { want } => {
                let log = self.log.clone();
                self.read_store(
                    "retrying",
                    want,
                    async move { log.retrying(want).await },
                    |events, complete| Cmd::RetriesLoaded { events, complete },
                );
            }
            Effect::SendToOnFailure { target, failed } => {
                let (log, cmds) = (self.log.clone(), self.cmds.clone());
                self.tasks
                    .spawn(send_to_on_failure(log, cmds, target, failed));
            }
        }
    }

    /// An attempt task's parts, with a fresh termination channel.
    fn attempt(&mut self, id: &RequestId) -> Attempt {
        let (tx, termination) = watch::channel(None);
        self.attempts.insert(id.clone(), tx);
        Attempt {
            log: self.log.clone(),
            host: self.host.clone(),
            config: self.config.clone(),
            cmds: self.cmds.clone(),
            termination,
        }
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
        answer: impl FnOnce(Vec<T>, bool) -> Cmd<TerminateReply> + Send + 'static,
    ) {
        let cmds = self.cmds.clone();
        self.tasks.spawn(async move {
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
            let _ = cmds.send(Msg::Core(cmd)).await;
        });
    }

    /// Deletes ended events older than the retention window, a chunk per
    /// write, unless the previous round is still at it.
    fn prune(&self) {
        if self.pruning.swap(true, Ordering::AcqRel) {
            return;
        }
        let before_ms = now_ms() - self.config.retention.as_millis() as i64;
        let log = self.log.clone();
        let pruning = self.pruning.clone();
        let tasks = self.tasks.clone();
        self.tasks.spawn(async move {
            // Cleared however the task ends, so a later round can run.
            let _done = ClearOnDrop(pruning);
            let mut total = 0;
            // A closed tracker: the host is shutting down. The rest of the
            // backlog waits for the next start, so shutdown never waits on
            // it and no write reaches the store after it.
            while !tasks.is_closed() {
                let op = WriteOp::Prune {
                    before_ms,
                    limit: PRUNE_CHUNK,
                };
                let began = tokio::time::Instant::now();
                match log.write(op).await {
                    Ok(WriteOutcome::Pruned(n)) => {
                        total += n;
                        if n < PRUNE_CHUNK {
                            break;
                        }
                        // As long again before the next chunk: the writer
                        // gives accepts at least half its time while a
                        // backlog is pruned, and the pause grows when
                        // they keep it busy.
                        tokio::time::sleep(began.elapsed().max(Duration::from_millis(1))).await;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!("pruning async events failed: {e}");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::info!("pruned {total} async events past retention");
            }
        });
    }
}

/// Clears its flag when dropped.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
