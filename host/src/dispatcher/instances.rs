//! Worker instances: launch, handshake, function loading, faults, kills and
//! restarts inside the restart budget.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
// tokio's clock, so paused-time tests move restart windows and idle times.
use tokio::time::Instant;

use fnhost_proto::rpc::StreamingMessage;
use fnhost_proto::{has_capability, CAP_HANDLES_INVOCATION_CANCEL};

use super::invocations::Ending;
use super::{restart_backoff, Dispatcher, InvState, Timer};
use crate::grpc::Outbound;
use crate::invocation::{InvocationId, Outcome, WorkerId};
use crate::process::{short_id, spawn_worker, LaunchSpec, WorkerExit, WorkerProcess};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InstanceState {
    /// Process started; waiting for its stream.
    Launching,
    /// `WorkerInitRequest` sent.
    Handshake,
    /// `FunctionsMetadataRequest` or loads outstanding.
    Loading {
        indexing: bool,
        pending: HashSet<String>,
    },
    /// The initializer hook runs (or waits to be retried).
    Initializer { attempt: u32 },
    /// Takes invocations.
    Ready,
    /// Planned stop: takes no new work, finishes what it has, then pre-stop.
    Retiring,
    /// The pre-stop hook runs.
    PreStop,
    /// Being terminated or killed; takes nothing.
    Stopping,
}

impl InstanceState {
    /// The name shown in status: starting, initializing, ready, draining, stopping.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Launching | Self::Handshake | Self::Loading { .. } => "starting",
            Self::Initializer { .. } => "initializing",
            Self::Ready => "ready",
            Self::Retiring | Self::PreStop => "draining",
            Self::Stopping => "stopping",
        }
    }

    /// On its way to ready.
    pub(crate) fn is_starting(&self) -> bool {
        matches!(
            self,
            Self::Launching | Self::Handshake | Self::Loading { .. } | Self::Initializer { .. }
        )
    }

    /// Serving or about to: counts toward the pool size.
    pub(crate) fn is_active(&self) -> bool {
        self.is_starting() || *self == Self::Ready
    }
}

/// One worker process and its stream.
#[derive(Debug)]
pub(crate) struct Instance {
    pub worker_id: WorkerId,
    pub request_id: String,
    /// Given to the process in its environment (never argv); fnhost's SDKs
    /// present it as gRPC metadata to prove they are this launch.
    pub launch_secret: LaunchSecret,
    pub slot: usize,
    pub state: InstanceState,
    pub process: Option<WorkerProcess>,
    pub outbound: Option<Outbound>,
    pub capabilities: HashMap<String, String>,
    /// Load result per function name.
    pub loaded: HashMap<String, Result<(), String>>,
    pub in_flight: HashSet<InvocationId>,
    pub served: u64,
    pub started: Instant,
    pub startup_key: Option<tokio_util::time::delay_queue::Key>,
    /// Why the stream ended, kept until the exit status arrives.
    pub stream_error: Option<String>,
    pub last_error: Option<String>,
    /// The running hook invocation (initializer or pre-stop), if any.
    pub hook: Option<InvocationId>,
    /// Since when it has had nothing in flight.
    pub idle_since: Option<Instant>,
    /// The unanswered `WorkerStatusRequest`, by sequence number.
    pub status_pending: Option<u64>,
    pub status_seq: u64,
    /// Its initializer succeeded.
    pub initialized: bool,
    /// Its stream ended on a message over `workers.maxMessageBytes`: a
    /// function's oversized output, not a crash, so it is replaced without
    /// charging the restart budget.
    pub oversized: bool,
}

impl Instance {
    pub(crate) fn new(worker_id: WorkerId, slot: usize) -> Self {
        Self {
            worker_id,
            request_id: uuid::Uuid::new_v4().to_string(),
            launch_secret: LaunchSecret(Arc::from(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ))),
            slot,
            state: InstanceState::Launching,
            process: None,
            outbound: None,
            capabilities: HashMap::new(),
            loaded: HashMap::new(),
            in_flight: HashSet::new(),
            served: 0,
            started: Instant::now(),
            startup_key: None,
            stream_error: None,
            last_error: None,
            hook: None,
            idle_since: None,
            status_pending: None,
            status_seq: 0,
            initialized: false,
            oversized: false,
        }
    }

    pub(crate) fn handles_cancel(&self) -> bool {
        has_capability(&self.capabilities, CAP_HANDLES_INVOCATION_CANCEL)
    }

    fn stamp(&self, msg: StreamingMessage) -> StreamingMessage {
        msg.with_request_id(self.request_id.clone())
    }

    pub(crate) fn send(&self, msg: StreamingMessage) {
        if let Some(o) = &self.outbound {
            let _ = o.normal.send(self.stamp(msg));
        }
    }

    pub(crate) fn send_urgent(&self, msg: StreamingMessage) {
        if let Some(o) = &self.outbound {
            let _ = o.urgent.send(self.stamp(msg));
        }
    }

    pub(crate) fn kill_process(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.kill.send(());
        }
    }
}

impl Dispatcher {
    /// Starts a fresh instance in `slot`.
    pub(crate) fn launch(&mut self, slot: usize) {
        let worker_id = WorkerId::random();
        let mut inst = Instance::new(worker_id.clone(), slot);
        if self.launch_processes {
            let spec = LaunchSpec {
                config: &self.app.worker,
                app_dir: &self.app.app_dir,
                grpc_addr: self.grpc_addr,
                worker_id: &worker_id,
                request_id: &inst.request_id,
                launch_secret: inst.launch_secret.expose(),
                max_message_bytes: self.app.host.max_message_bytes,
            };
            let commands = self.commands_tx.clone();
            let on_exit = move |exit: WorkerExit| async move {
                let _ = commands
                    .send(super::Command::WorkerExited {
                        worker_id: exit.worker_id,
                        status: exit.status,
                    })
                    .await;
            };
            match spawn_worker(&spec, on_exit) {
                Ok(p) => {
                    tracing::info!(worker = %worker_id, slot, pid = ?p.pid, executable = %self.app.worker.executable.display(), "worker launched");
                    inst.process = Some(p);
                }
                Err(e) => {
                    let err = format!(
                        "cannot start worker executable {}: {e}",
                        self.app.worker.executable.display()
                    );
                    tracing::error!(slot, "{err}");
                    self.slots[slot].current = None;
                    self.record_failure(slot, err);
                    return;
                }
            }
        }
        inst.startup_key = Some(self.timers.insert(
            Timer::Startup(worker_id.clone()),
            self.app.host.startup_timeout,
        ));
        self.slots[slot].current = Some(worker_id.clone());
        self.instances.insert(worker_id, inst);
    }

    /// Kills `worker` to end `target`; every other invocation on it ends
    /// `Killed` with an error naming the instance. A replacement starts now.
    pub(crate) fn kill_instance(
        &mut self,
        worker_id: &WorkerId,
        target: &InvocationId,
        target_error: String,
    ) {
        let reason = self.invocations.get(target).and_then(|i| i.cancel_reason);
        let Some(inst) = self.instances.get_mut(worker_id) else {
            return;
        };
        crate::metrics::killed(reason);
        tracing::warn!(worker = %worker_id, invocation = %target, "killing worker instance: {target_error}");
        inst.state = InstanceState::Stopping;
        inst.outbound = None;
        inst.kill_process();
        inst.last_error = Some(target_error.clone());
        let slot = inst.slot;
        let mut others: Vec<InvocationId> = inst
            .in_flight
            .iter()
            .filter(|i| *i != target)
            .cloned()
            .collect();
        others.sort();
        let hook = inst.hook.take();
        self.publish_ready_count();
        // The replacement starts before anything ends, so that queued work
        // sees an instance coming instead of an empty pool.
        // A platform-initiated recycle, not a crash: no budget charge.
        if self.slots[slot].current.as_ref() == Some(worker_id) {
            self.slots[slot].current = None;
            if self.shutdown.is_none() && !self.draining {
                self.launch(slot);
            }
        }
        if let Some(h) = hook {
            self.finish(&h, Ending::lost(Outcome::Killed, "instance killed".into()));
        }
        self.finish(target, Ending::error(Outcome::Killed, target_error));
        for id in others {
            let msg = format!(
                "worker instance {worker_id} was killed to stop invocation {target}; invocation {id} was running on it and was ended"
            );
            self.finish(&id, Ending::lost(Outcome::Killed, msg));
        }
    }

    /// A fault (failed handshake, broken stream, missed deadline): stop the
    /// process; its in-flight invocations fail when its exit is seen.
    pub(super) fn fault(&mut self, worker_id: &WorkerId, error: String) {
        let Some(inst) = self.instances.get_mut(worker_id) else {
            return;
        };
        tracing::error!(worker = %worker_id, "worker instance fault: {error}");
        inst.stream_error.get_or_insert(error);
        if inst.state != InstanceState::Stopping {
            inst.state = InstanceState::Stopping;
            inst.outbound = None;
            inst.kill_process();
            self.publish_ready_count();
        }
        if !self.launch_processes {
            // No process watcher reports an exit in unit tests.
            self.handle_worker_exited(worker_id, "not a process");
        }
    }

    pub(super) fn handle_stream_closed(&mut self, worker_id: &WorkerId, error: Option<String>) {
        let Some(inst) = self.instances.get(worker_id) else {
            return;
        };
        if inst.state == InstanceState::Stopping {
            return;
        }
        let err = match error {
            Some(e) if e.contains("message length too large") => {
                // Uncharged only when a function's output can be the cause:
                // a serving instance with invocations in flight. One that
                // breaks this way while starting (a huge log line at import,
                // huge metadata) is a crash like any other, so it cannot
                // loop without the budget stopping it.
                if let Some(inst) = self.instances.get_mut(worker_id) {
                    inst.oversized =
                        inst.state == InstanceState::Ready && !inst.in_flight.is_empty();
                }
                format!(
                    "its stream broke on a message over the {}-byte limit \
                     (workers.maxMessageBytes): {e}",
                    self.app.host.max_message_bytes
                )
            }
            Some(e) => format!("its stream broke: {e}"),
            None => "it closed its stream".to_string(),
        };
        self.fault(worker_id, err);
    }

    pub(super) fn handle_worker_exited(&mut self, worker_id: &WorkerId, status: &str) {
        let Some(mut inst) = self.instances.remove(worker_id) else {
            return;
        };
        if let Some(k) = inst.startup_key.take() {
            self.timers.remove(&k);
        }
        let planned = inst.state == InstanceState::Stopping && inst.stream_error.is_none();
        let cause = match &inst.stream_error {
            Some(e) => {
                format!("worker instance {worker_id} failed ({e}); its process ended with {status}")
            }
            None => format!("worker instance {worker_id} exited unexpectedly with {status}"),
        };
        // Restart (or mark the slot exhausted) before failing in-flight
        // work, so queued invocations wait for the replacement.
        let slot = inst.slot;
        let owned_slot = self.slots[slot].current.as_ref() == Some(worker_id);
        if owned_slot {
            self.slots[slot].current = None;
        }
        if planned {
            tracing::info!(worker = %short_id(worker_id), %status, "worker instance ended");
        } else if owned_slot && self.shutdown.is_none() && !self.draining {
            if inst.oversized {
                // Not the worker's crash: replaced at once, uncharged.
                tracing::warn!(worker = %short_id(worker_id), slot, "replacing the instance without charging its restart budget: {cause}");
                self.slots[slot].restart_pending = true;
                self.timers
                    .insert(Timer::Restart(slot), std::time::Duration::ZERO);
            } else {
                self.record_failure(slot, cause.clone());
            }
        }
        self.publish_ready_count();
        let mut ids: Vec<InvocationId> = inst.in_flight.drain().collect();
        ids.sort();
        for id in &ids {
            let still_here = matches!(
                self.invocations.get(id).map(|i| &i.state),
                Some(InvState::Running { worker } | InvState::Cancelling { worker, .. }) if worker == worker_id
            );
            if still_here {
                let msg = format!("invocation {id} failed: {cause}");
                self.finish(id, Ending::lost(Outcome::Failed, msg));
            }
        }
        if let Some(h) = inst.hook.take() {
            self.finish(&h, Ending::lost(Outcome::Failed, cause.clone()));
        }
        // Queued work may now be impossible (every slot exhausted).
        self.pump_queue();
        self.maybe_terminate_workers();
    }

    /// Charges a crash to the slot's restart budget and schedules the
    /// restart, or marks the slot exhausted until its window passes.
    pub(crate) fn record_failure(&mut self, slot: usize, error: String) {
        let now = Instant::now();
        let window = self.app.host.restart_window;
        let max = self.app.host.max_restarts as usize;
        let s = &mut self.slots[slot];
        s.last_error = Some(error.clone());
        s.consecutive_failures += 1;
        while s
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            s.restarts.pop_front();
        }
        if s.restart_pending {
            return;
        }
        if s.restarts.len() >= max {
            let oldest = *s.restarts.front().unwrap_or(&now);
            let retry_in = window.saturating_sub(now.duration_since(oldest));
            s.exhausted_since.get_or_insert(now);
            s.restart_pending = true;
            tracing::error!(
                slot,
                restarts = s.restarts.len(),
                window = ?window,
                "worker restart budget exhausted ({max} restarts within {window:?}); slot stays down for {retry_in:?}; last error: {error}"
            );
            self.timers.insert(Timer::Restart(slot), retry_in);
            return;
        }
        s.restarts.push_back(now);
        crate::metrics::restarted();
        s.restart_pending = true;
        let delay = restart_backoff(s.consecutive_failures);
        tracing::warn!(slot, ?delay, "restarting worker after failure: {error}");
        self.timers.insert(Timer::Restart(slot), delay);
    }
}

/// What the launched process of a worker id is known by.
#[derive(Debug, Clone)]
pub(crate) struct LaunchIdentity {
    /// The launched process (its descendants count too).
    pub pid: Option<u32>,
    /// The secret in its `FNHOST_WORKER_SECRET`.
    pub secret: LaunchSecret,
}

/// A launch secret: cheap to clone, never shown by `Debug`.
#[derive(Clone)]
pub(crate) struct LaunchSecret(Arc<str>);

impl LaunchSecret {
    /// The secret itself.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for LaunchSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LaunchSecret(<redacted>)")
    }
}
