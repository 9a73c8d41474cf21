//! The host status snapshot served on `/admin/host/status`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dispatcher::{Dispatcher, InstanceState};
use crate::ids::WorkerId;

/// Where the host as a whole stands (serialised in lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// No instance is ready yet.
    Starting,
    /// Serving.
    Running,
    /// Serving, with a slot down past its restart budget.
    Degraded,
    /// Every slot in use is down past its restart budget.
    Unhealthy,
    /// An operator asked it to stop taking work; in-flight work finishes.
    Draining,
    /// Draining finished: no instance is left.
    Drained,
    /// Shutting down.
    Stopping,
}

/// The whole host.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    /// See [`HostState`].
    pub state: HostState,
    /// Seconds since the host started.
    pub uptime_seconds: u64,
    /// The app's worker language.
    pub language: String,
    /// Functions the host can invoke.
    pub functions: Vec<String>,
    /// Every live or stopping worker instance.
    pub workers: Vec<WorkerStatus>,
    /// Pool slots and their restart budgets.
    pub slots: Vec<SlotStatus>,
    /// Invocations waiting for a free instance.
    pub queued: usize,
    /// Invocations on workers.
    pub in_flight: usize,
    /// Ended invocations by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Messages from workers that broke the protocol (and were ignored).
    pub protocol_violations: u64,
    /// Streams refused before admission: not from the process launched for
    /// the worker id they claimed (counted apart, so an outsider cannot
    /// inflate `protocolViolations`).
    pub refused_streams: u64,
    /// Hook runs, scaling and liveness recycles.
    pub lifecycle: crate::dispatcher::LifecycleStats,
}

impl HostStatus {
    /// True when the host can take and run an invocation now.
    pub fn can_serve(&self) -> bool {
        matches!(self.state, HostState::Running | HostState::Degraded)
            && self.workers.iter().any(|w| w.state == "ready")
    }
}

/// One worker instance.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// The worker id given at launch.
    pub worker_id: WorkerId,
    /// Its pool slot.
    pub slot: usize,
    /// OS process id, while the process runs.
    pub pid: Option<u32>,
    /// `starting` (launched, handshake or loading), `initializing`,
    /// `ready`, `draining` (retiring or in pre-stop) or `stopping`.
    pub state: String,
    /// Capabilities from `WorkerInitResponse`.
    pub capabilities: BTreeMap<String, String>,
    /// True when it advertised `HandlesInvocationCancelMessage`.
    pub handles_cancel: bool,
    /// Invocations on it now.
    pub in_flight: usize,
    /// Invocations it has ended.
    pub served: u64,
    /// Seconds since launch.
    pub age_seconds: f64,
    /// Functions that failed to load, with the reason.
    pub load_errors: BTreeMap<String, String>,
    /// Why it is stopping, when it is.
    pub last_error: Option<String>,
    /// Its initializer succeeded (always false when none is configured).
    pub initialized: bool,
}

/// One pool slot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotStatus {
    /// Slot index.
    pub slot: usize,
    /// Its current instance.
    pub worker_id: Option<WorkerId>,
    /// Restarts within the current budget window.
    pub recent_restarts: usize,
    /// True when the restart budget is exhausted.
    pub budget_exhausted: bool,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

impl Dispatcher {
    pub(crate) fn status(&self) -> HostStatus {
        let mut workers: Vec<WorkerStatus> = self
            .instances
            .values()
            .map(|i| WorkerStatus {
                worker_id: i.worker_id.clone(),
                slot: i.slot,
                pid: i.process.as_ref().and_then(|p| p.pid),
                state: i.state.name().to_string(),
                capabilities: i.capabilities.clone().into_iter().collect(),
                handles_cancel: i.handles_cancel(),
                in_flight: i.in_flight.len(),
                served: i.served,
                age_seconds: i.started.elapsed().as_secs_f64(),
                load_errors: i
                    .loaded
                    .iter()
                    .filter_map(|(f, r)| r.as_ref().err().map(|e| (f.clone(), e.clone())))
                    .collect(),
                last_error: i.last_error.clone().or_else(|| i.stream_error.clone()),
                initialized: i.initialized,
            })
            .collect();
        workers.sort_by_key(|w| (w.slot, w.state == "stopping"));
        let slots: Vec<SlotStatus> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| SlotStatus {
                slot: i,
                worker_id: s.current.clone(),
                recent_restarts: s.restarts.len(),
                budget_exhausted: s.exhausted_since.is_some(),
                last_error: s.last_error.clone(),
            })
            .collect();
        let ready = self
            .instances
            .values()
            .any(|i| i.state == InstanceState::Ready);
        let in_use: Vec<&SlotStatus> = slots
            .iter()
            .filter(|s| s.worker_id.is_some() || s.budget_exhausted)
            .collect();
        let state = if self.shutdown.is_some() {
            HostState::Stopping
        } else if self.draining && self.instances.is_empty() {
            HostState::Drained
        } else if self.draining {
            HostState::Draining
        } else if !in_use.is_empty() && in_use.iter().all(|s| s.budget_exhausted) {
            HostState::Unhealthy
        } else if in_use.iter().any(|s| s.budget_exhausted) {
            HostState::Degraded
        } else if ready {
            HostState::Running
        } else {
            HostState::Starting
        };
        let mut functions: Vec<String> = self.registry.names().map(|n| n.to_string()).collect();
        functions.sort();
        HostStatus {
            state,
            uptime_seconds: self.started.elapsed().as_secs(),
            language: self.app.worker.language.clone(),
            functions,
            workers,
            slots,
            queued: self.queue.len(),
            in_flight: self.invocations.len() - self.queue.len(),
            outcomes: self
                .outcome_counts
                .iter()
                .map(|(o, n)| (o.as_str().to_string(), *n))
                .collect(),
            protocol_violations: self.protocol_violations,
            refused_streams: self.refused_streams,
            lifecycle: self.lifecycle.clone(),
        }
    }
}
