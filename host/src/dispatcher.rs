//! The dispatcher: the one owner of invocation and worker-instance state.
//!
//! Every gRPC stream task, process watcher, HTTP handler and library call
//! talks to it through [`Command`]s on one channel; it answers queries over
//! `oneshot` channels. Timers (function timeouts, cancel grace periods,
//! start-up deadlines, restart backoff) live in one `DelayQueue` it polls in
//! the same `select!` loop, so no state is shared behind locks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
// tokio's clock, so paused-time tests move restart windows and idle times.
use tokio::time::Instant;

use fnhost_proto::rpc::StreamingMessage;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::time::{delay_queue, DelayQueue};

use crate::config::AppConfig;
use crate::grpc::Outbound;
use crate::invocation::{
    CancelReason, CancelResponse, InvocationId, InvocationInput, InvocationResult, InvokeError,
    LogLine, Outcome, WorkerId,
};
use crate::registry::Registry;
use crate::status::HostStatus;

mod handshake;
mod instances;
mod invocations;
mod lifecycle;
mod logs;
#[cfg(test)]
mod tests;

pub(crate) use instances::{Instance, InstanceState, LaunchIdentity};
pub(crate) use lifecycle::HookKind;
pub use lifecycle::LifecycleStats;

/// Everything the dispatcher reacts to.
// Worker messages dominate the traffic and are moved once into the channel;
// boxing them would add an allocation per message to save channel slots.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Command {
    /// A caller submits an invocation.
    Invoke {
        function: String,
        id: InvocationId,
        input: InvocationInput,
        reply: ReplyTx,
        /// Set by HTTP triggers, which must learn where it went.
        http: Option<HttpDispatch>,
    },
    /// Whether HTTP triggers should keep their request bodies streamed:
    /// true when the live instances serve HTTP themselves (`HttpUri`).
    /// A caller (or a trigger such as an HTTP disconnect) cancels one.
    Cancel {
        id: InvocationId,
        reason: CancelReason,
        reply: Option<oneshot::Sender<CancelResponse>>,
    },
    /// Ends an invocation by killing its instance at once (forced terminate).
    Kill {
        id: InvocationId,
        reply: oneshot::Sender<CancelResponse>,
    },
    /// A snapshot of the host for `/admin/host/status`.
    Status { reply: oneshot::Sender<HostStatus> },
    /// Stop taking invocations, finish in-flight ones, retire every instance.
    Drain,
    /// Begin shutdown; `reply` fires when every worker is gone.
    Shutdown { reply: oneshot::Sender<()> },
    /// A stream opened with `StartStream{worker_id}`: what must it prove?
    Claim {
        worker_id: WorkerId,
        reply: oneshot::Sender<Result<LaunchIdentity, String>>,
    },
    /// A stream failed to prove it is the worker it claims to be.
    Refused,
    /// A stream proven to come from the launched process.
    Attach {
        worker_id: WorkerId,
        outbound: Outbound,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A message from an attached worker.
    FromWorker {
        worker_id: WorkerId,
        msg: StreamingMessage,
    },
    /// A worker's stream ended (`error` when it broke).
    StreamClosed {
        worker_id: WorkerId,
        error: Option<String>,
    },
    /// A worker process exited (or was killed).
    WorkerExited { worker_id: WorkerId, status: String },
}

/// Deadlines the dispatcher waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The function's timeout for an invocation.
    Timeout(InvocationId),
    /// The grace period after a cancel was sent.
    CancelGrace(InvocationId),
    /// A launched instance must be ready by now.
    Startup(WorkerId),
    /// Restart a slot's instance (after backoff, or after the budget window).
    Restart(usize),
    /// Workers had their `WorkerTerminate` grace; kill what remains.
    TerminateDeadline,
    /// Run the initializer of an instance again.
    HookRetry(WorkerId),
    /// A terminated instance had its grace; kill it if it still runs.
    KillAfter(WorkerId),
    /// Look for idle instances to retire.
    IdleCheck,
    /// Ask an instance `WorkerStatusRequest`.
    StatusProbe(WorkerId),
    /// The answer to status request `seq` is due.
    StatusDeadline(WorkerId, u64),
}

/// Lines kept per invocation; more are counted, not kept.
const MAX_LOG_LINES: usize = 1000;
/// Finished ids remembered to tell "finished" from "unknown" in diagnostics.
const RECENTLY_FINISHED: usize = 4096;

/// Where an invocation stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InvState {
    /// Waiting for a free instance.
    Queued,
    /// Sent to `worker`.
    Running { worker: WorkerId },
    /// A cancel was sent to `worker`; waiting up to the grace for its answer.
    Cancelling { worker: WorkerId, since: Instant },
}

/// Where an invocation's outcome goes. The result is boxed so that the
/// channel, allocated per invocation and alive while it runs, stays small
/// (an `InvocationResult` is 256 bytes, the box 8).
pub(crate) type ReplyTx = oneshot::Sender<Result<Box<InvocationResult>, InvokeError>>;
/// The other end of [`ReplyTx`].
pub(crate) type ReplyRx = oneshot::Receiver<Result<Box<InvocationResult>, InvokeError>>;

/// One invocation the dispatcher holds, from submission to its outcome.
/// Kept boxed in [`Dispatcher::invocations`] and small: one lives per
/// in-flight invocation.
pub(crate) struct Invocation {
    pub id: InvocationId,
    pub function: Arc<str>,
    /// Until dispatch; boxed, since most invocations never wait.
    pub input: Option<Box<InvocationInput>>,
    pub state: InvState,
    pub cancel_reason: Option<CancelReason>,
    pub cancel_delivery: Option<crate::invocation::CancelDelivery>,
    pub reply: Option<ReplyTx>,
    pub timeout_key: Option<delay_queue::Key>,
    pub grace_key: Option<delay_queue::Key>,
    pub logs: Vec<LogLine>,
    pub logs_dropped: usize,
    pub submitted: Instant,
    /// When it was sent to a worker (for the `Executed` line's duration).
    pub started: Option<Instant>,
    /// Its client went away and its worker could not be signalled: it runs
    /// on, and its result goes to no one.
    pub abandoned: bool,
    /// Set for the host's own hook runs (initializer, pre-stop).
    pub hook: Option<HookKind>,
    /// Set for HTTP triggers: told where the invocation goes.
    pub http: Option<HttpDispatch>,
    /// Its own span (the root of a new trace when the input named none);
    /// `None` for hooks.
    pub trace: Option<crate::trace::TraceContext>,
    /// Which run of an async event it is; `None` when synchronous.
    pub attempt: Option<u32>,
    /// It was the first its instance took.
    pub coldstart: bool,
}

/// What an HTTP trigger asks of a dispatch.
#[derive(Debug)]
pub(crate) struct HttpDispatch {
    /// Told which instance took the invocation, and its `HttpUri`.
    pub notify: oneshot::Sender<crate::invocation::Dispatched>,
    /// The request body was not read: it can only be forwarded to an
    /// instance with `HttpUri`, never sent in the `InvocationRequest`.
    pub body_deferred: bool,
}

/// A position in the worker pool: holds at most one live instance and its
/// restart history.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub current: Option<WorkerId>,
    pub restarts: VecDeque<Instant>,
    pub consecutive_failures: u32,
    pub exhausted_since: Option<Instant>,
    pub restart_pending: bool,
    pub last_error: Option<String>,
}

/// Shutdown progress.
pub(crate) struct Shutdown {
    pub replies: Vec<oneshot::Sender<()>>,
    pub terminate_sent: bool,
}

pub(crate) struct Dispatcher {
    pub app: Arc<AppConfig>,
    pub registry: Registry,
    pub grpc_addr: std::net::SocketAddr,
    pub commands_tx: mpsc::Sender<Command>,
    /// Boxed: the table keeps spare buckets (up to half of them after it
    /// grows), and a bucket holding the record itself would cost its size
    /// per spare bucket.
    pub invocations: HashMap<InvocationId, Box<Invocation>>,
    pub queue: VecDeque<InvocationId>,
    pub slots: Vec<Slot>,
    pub instances: HashMap<WorkerId, Instance>,
    pub timers: DelayQueue<Timer>,
    pub shutdown: Option<Shutdown>,
    pub finished_recently: VecDeque<InvocationId>,
    pub finished_set: HashSet<InvocationId>,
    pub outcome_counts: HashMap<Outcome, u64>,
    pub protocol_violations: u64,
    /// Streams refused before admission (not the launched process).
    pub refused_streams: u64,
    pub draining: bool,
    pub lifecycle: LifecycleStats,
    pub results_tx: broadcast::Sender<InvocationResult>,
    pub ready_tx: watch::Sender<usize>,
    /// Whether a live instance serves HTTP itself (`HttpUri`), published
    /// after every command and timer for the HTTP listener to read without
    /// a round trip here per request.
    pub streams_http: Arc<std::sync::atomic::AtomicBool>,
    pub started: Instant,
    /// When false, instances are not launched (unit tests attach fakes).
    pub launch_processes: bool,
    /// Where worker-indexed functions are published for the HTTP, async
    /// and SCF APIs (absent in unit tests).
    pub catalog: Option<crate::catalog::Catalog>,
}

impl Dispatcher {
    pub(crate) fn new(
        app: Arc<AppConfig>,
        grpc_addr: std::net::SocketAddr,
        commands_tx: mpsc::Sender<Command>,
        results_tx: broadcast::Sender<InvocationResult>,
        ready_tx: watch::Sender<usize>,
    ) -> Self {
        let slots = (0..app.host.max_instances)
            .map(|_| Slot::default())
            .collect();
        Self {
            registry: Registry::from_config(&app),
            app,
            grpc_addr,
            commands_tx,
            invocations: HashMap::new(),
            queue: VecDeque::new(),
            slots,
            instances: HashMap::new(),
            timers: DelayQueue::new(),
            shutdown: None,
            finished_recently: VecDeque::new(),
            finished_set: HashSet::new(),
            outcome_counts: HashMap::new(),
            protocol_violations: 0,
            refused_streams: 0,
            draining: false,
            lifecycle: LifecycleStats::default(),
            results_tx,
            ready_tx,
            streams_http: Arc::default(),
            started: Instant::now(),
            launch_processes: true,
            catalog: None,
        }
    }

    /// Runs until shutdown completes.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        for slot in 0..self.app.host.process_count {
            self.launch(slot);
        }
        if self.app.host.max_instances > self.app.host.process_count {
            self.timers
                .insert(Timer::IdleCheck, self.app.host.idle_timeout / 2);
        }
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                Some(expired) = self.timers.next() => self.handle_timer(expired.into_inner()),
            }
            self.publish_streams_http();
            if self.shutdown_complete() {
                break;
            }
        }
        if let Some(s) = self.shutdown.take() {
            for r in s.replies {
                let _ = r.send(());
            }
        }
        tracing::info!("dispatcher stopped");
    }

    pub(crate) fn handle_command(&mut self, command: Command) {
        match command {
            Command::Invoke {
                function,
                id,
                input,
                reply,
                http,
            } => self.handle_invoke(function, id, input, reply, http),
            Command::Cancel { id, reason, reply } => {
                let r = self.handle_cancel(&id, reason);
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Command::Kill { id, reply } => {
                let _ = reply.send(self.handle_kill(&id));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Shutdown { reply } => self.handle_shutdown(reply),
            Command::Drain => self.handle_drain(),
            Command::Claim { worker_id, reply } => {
                let _ = reply.send(self.handle_claim(&worker_id));
            }
            Command::Refused => self.refused_streams += 1,
            Command::Attach {
                worker_id,
                outbound,
                reply,
            } => {
                let _ = reply.send(self.handle_attach(&worker_id, outbound));
            }
            Command::FromWorker { worker_id, msg } => self.handle_worker_message(&worker_id, msg),
            Command::StreamClosed { worker_id, error } => {
                self.handle_stream_closed(&worker_id, error)
            }
            Command::WorkerExited { worker_id, status } => {
                self.handle_worker_exited(&worker_id, &status)
            }
        }
    }

    pub(crate) fn handle_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Timeout(id) => {
                if let Some(inv) = self.invocations.get_mut(&id) {
                    inv.timeout_key = None;
                    if inv.hook.is_some() {
                        if let InvState::Running { worker } = inv.state.clone() {
                            self.hook_timed_out(&id, &worker);
                        }
                        return;
                    }
                    let limit = self.registry.timeout(&inv.function);
                    tracing::warn!(invocation = %id, function = %inv.function, "invocation exceeded its timeout of {limit:?}");
                    self.handle_cancel(&id, CancelReason::Timeout);
                }
            }
            Timer::CancelGrace(id) => {
                if let Some(inv) = self.invocations.get_mut(&id) {
                    inv.grace_key = None;
                    if let InvState::Cancelling { worker, .. } = inv.state.clone() {
                        let grace = self.app.host.cancel_grace;
                        let reason = format!(
                            "invocation {id} did not stop within the {grace:?} cancel grace period; \
                             worker instance {worker} was killed to end it"
                        );
                        self.kill_instance(&worker, &id, reason);
                    }
                }
            }
            Timer::Startup(worker_id) => self.handle_startup_deadline(&worker_id),
            Timer::Restart(slot) => {
                self.slots[slot].restart_pending = false;
                if self.shutdown.is_none() && !self.draining && self.slots[slot].current.is_none() {
                    self.launch(slot);
                }
            }
            Timer::HookRetry(worker) => self.retry_initializer(&worker),
            Timer::KillAfter(worker) => {
                if let Some(inst) = self.instances.get_mut(&worker) {
                    tracing::warn!(worker = %worker, "worker did not exit within the terminate grace; killing it");
                    inst.kill_process();
                }
            }
            Timer::IdleCheck => self.idle_check(),
            Timer::StatusProbe(worker) => self.probe_status(&worker),
            Timer::StatusDeadline(worker, seq) => self.status_deadline(&worker, seq),
            Timer::TerminateDeadline => {
                let remaining: Vec<WorkerId> = self.instances.keys().cloned().collect();
                for w in remaining {
                    tracing::warn!(worker = %w, "worker did not exit within the terminate grace; killing it");
                    if let Some(inst) = self.instances.get_mut(&w) {
                        inst.kill_process();
                    }
                }
            }
        }
    }

    fn handle_shutdown(&mut self, reply: oneshot::Sender<()>) {
        if let Some(s) = &mut self.shutdown {
            s.replies.push(reply);
            return;
        }
        tracing::info!(
            in_flight = self.invocations.len(),
            "shutting down: cancelling in-flight invocations"
        );
        self.shutdown = Some(Shutdown {
            replies: vec![reply],
            terminate_sent: false,
        });
        // Hooks keep their own timeouts: a pre-stop under way is not cut short.
        let ids: Vec<InvocationId> = self
            .invocations
            .values()
            .filter(|i| i.hook.is_none())
            .map(|i| i.id.clone())
            .collect();
        for id in ids {
            self.handle_cancel(&id, CancelReason::HostShutdown);
        }
        self.maybe_terminate_workers();
    }

    /// Once no invocation remains, retire every instance (pre-stop, then
    /// `WorkerTerminate`) and arm the deadline after which the rest are killed.
    pub(crate) fn maybe_terminate_workers(&mut self) {
        let Some(s) = &mut self.shutdown else { return };
        let user_work = self.invocations.values().any(|i| i.hook.is_none());
        if s.terminate_sent || user_work {
            return;
        }
        s.terminate_sent = true;
        let pre_stop = self
            .app
            .host
            .lifecycle
            .pre_stop
            .as_ref()
            .map_or(Duration::ZERO, |h| h.timeout);
        let bound = pre_stop + self.app.host.terminate_grace + Duration::from_millis(500);
        let workers: Vec<WorkerId> = self.instances.keys().cloned().collect();
        for w in workers {
            self.retire(&w, "host shutdown");
        }
        self.timers.insert(Timer::TerminateDeadline, bound);
    }

    fn shutdown_complete(&self) -> bool {
        matches!(&self.shutdown, Some(s) if s.terminate_sent) && self.instances.is_empty()
    }

    pub(crate) fn remember_finished(&mut self, id: InvocationId) {
        if self.finished_set.insert(id.clone()) {
            self.finished_recently.push_back(id);
            if self.finished_recently.len() > RECENTLY_FINISHED {
                if let Some(old) = self.finished_recently.pop_front() {
                    self.finished_set.remove(&old);
                }
            }
        }
    }

    /// Stores [`Self::streams_http`]'s current answer where the HTTP
    /// listener reads it.
    pub(crate) fn publish_streams_http(&self) {
        use std::sync::atomic::Ordering;
        let now = self.streams_http();
        if self.streams_http.load(Ordering::Relaxed) != now {
            self.streams_http.store(now, Ordering::Relaxed);
        }
    }

    pub(crate) fn publish_ready_count(&self) {
        let ready = self
            .instances
            .values()
            .filter(|i| i.state == InstanceState::Ready)
            .count();
        self.ready_tx.send_if_modified(|v| {
            let changed = *v != ready;
            *v = ready;
            changed
        });
    }
}

/// How long the dispatcher waits before relaunching a slot after its
/// `n`-th consecutive failure: at once, then doubling from 200 ms to 10 s.
pub(crate) fn restart_backoff(consecutive_failures: u32) -> Duration {
    match consecutive_failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(200u64.saturating_mul(1 << (n - 2).min(6)))
            .min(Duration::from_secs(10)),
    }
}
