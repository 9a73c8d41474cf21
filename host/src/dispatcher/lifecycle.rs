//! Instance lifecycle: initializer and pre-stop hooks, retiring instances
//! (scale-in, drain, shutdown), scaling out, liveness probes.

use std::time::Duration;
// tokio's clock, so paused-time tests move restart windows and idle times.
use tokio::time::Instant;

use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{
    InvocationRequest, ParameterBinding, StreamingMessage, TypedData, WorkerStatusRequest,
};
use fnhost_proto::{has_capability, CAP_WORKER_STATUS};
use serde::Serialize;

use super::invocations::Ending;
use super::{Dispatcher, InstanceState, InvState, Invocation, Timer};
use crate::config::HookConfig;
use crate::invocation::{InvocationId, Outcome, WorkerId};

/// Which hook an internal invocation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    Initializer,
    PreStop,
}

impl HookKind {
    fn label(self) -> &'static str {
        match self {
            Self::Initializer => "Initialize",
            Self::PreStop => "PreStop",
        }
    }
}

/// Counters shown in the host status.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleStats {
    /// Initializer runs started.
    pub initializer_runs: u64,
    /// Initializer runs that failed or timed out.
    pub initializer_failures: u64,
    /// Instances whose initializer succeeded.
    pub initializer_successes: u64,
    /// Pre-stop runs started.
    pub pre_stop_runs: u64,
    /// Pre-stop runs that failed or timed out (destruction went on).
    pub pre_stop_failures: u64,
    /// Instances added because invocations queued.
    pub scale_outs: u64,
    /// Instances retired after being idle.
    pub scale_ins: u64,
    /// Instances recycled for not answering `WorkerStatusRequest`.
    pub status_recycles: u64,
}

impl Dispatcher {
    fn hook_config(&self, kind: HookKind) -> Option<&HookConfig> {
        match kind {
            HookKind::Initializer => self.app.host.lifecycle.initializer.as_ref(),
            HookKind::PreStop => self.app.host.lifecycle.pre_stop.as_ref(),
        }
    }

    /// Functions are loaded: run the initializer, or take work at once.
    pub(super) fn after_load(&mut self, worker: &WorkerId) {
        if self.hook_config(HookKind::Initializer).is_some() {
            if let Some(inst) = self.instances.get_mut(worker) {
                inst.state = InstanceState::Initializer { attempt: 1 };
            }
            self.start_hook(worker, HookKind::Initializer);
        } else {
            self.become_ready(worker);
        }
    }

    fn become_ready(&mut self, worker: &WorkerId) {
        let interval = self.app.host.status_interval;
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        inst.state = InstanceState::Ready;
        inst.idle_since = Some(Instant::now());
        if let Some(k) = inst.startup_key.take() {
            self.timers.remove(&k);
        }
        let probe = has_capability(&inst.capabilities, CAP_WORKER_STATUS);
        let slot = inst.slot;
        tracing::info!(worker = %worker, slot, startup_ms = inst.started.elapsed().as_millis() as u64, "worker ready");
        crate::metrics::instance_ready(&self.app.worker.language, inst.started.elapsed());
        let s = &mut self.slots[slot];
        s.consecutive_failures = 0;
        s.exhausted_since = None;
        if probe {
            self.timers
                .insert(Timer::StatusProbe(worker.clone()), interval);
        }
        self.publish_ready_count();
        self.pump_queue();
    }

    /// Sends the hook's invocation to `worker` (pinned, outside the queue).
    fn start_hook(&mut self, worker: &WorkerId, kind: HookKind) {
        let Some(hook) = self.hook_config(kind).cloned() else {
            return;
        };
        let Some(entry) = self.registry.get(&hook.function) else {
            return;
        };
        let id = InvocationId::random();
        let request = InvocationRequest {
            invocation_id: id.to_string(),
            function_id: entry.function_id.clone(),
            input_data: vec![ParameterBinding {
                name: entry.config.trigger().name.clone(),
                rpc_data: Some(fnhost_proto::rpc::parameter_binding::RpcData::Data(
                    TypedData::string(""),
                )),
            }],
            ..InvocationRequest::default()
        };
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        inst.hook = Some(id.clone());
        inst.send(StreamingMessage::from_content(Content::InvocationRequest(
            request,
        )));
        match kind {
            HookKind::Initializer => self.lifecycle.initializer_runs += 1,
            HookKind::PreStop => self.lifecycle.pre_stop_runs += 1,
        }
        tracing::info!(worker = %worker, "{} Start RequestId: {id}", kind.label());
        let timeout_key = Some(self.timers.insert(Timer::Timeout(id.clone()), hook.timeout));
        let name = self
            .registry
            .name(&hook.function)
            .expect("hook functions are registered");
        self.invocations.insert(
            id.clone(),
            Box::new(Invocation {
                id,
                function: name,
                input: None,
                state: InvState::Running {
                    worker: worker.clone(),
                },
                cancel_reason: None,
                cancel_delivery: None,
                reply: None,
                timeout_key,
                grace_key: None,
                logs: Vec::new(),
                logs_dropped: 0,
                submitted: Instant::now(),
                started: None,
                abandoned: false,
                hook: Some(kind),
                http: None,
                trace: None,
                attempt: None,
                coldstart: false,
            }),
        );
    }

    /// A hook ran out of time: ask the worker to stop it, and move on
    /// without waiting (a hung hook must never block the instance's fate).
    pub(super) fn hook_timed_out(&mut self, id: &InvocationId, worker: &WorkerId) {
        if let Some(inst) = self.instances.get(worker) {
            if inst.handles_cancel() {
                inst.send_urgent(StreamingMessage::invocation_cancel(
                    id.as_str(),
                    Duration::ZERO,
                ));
            }
        }
        let msg = format!("hook invocation {id} on worker instance {worker} timed out");
        self.finish(id, Ending::error(Outcome::TimedOut, msg));
    }

    pub(super) fn on_hook_ended(
        &mut self,
        worker: &WorkerId,
        kind: HookKind,
        id: &InvocationId,
        ending: &Ending,
    ) {
        let ok = ending.outcome == Outcome::Succeeded;
        let error = ending.error.clone().unwrap_or_default();
        tracing::info!(worker = %worker, outcome = %ending.outcome, "{} End RequestId: {id}", kind.label());
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        if inst.hook.as_ref() == Some(id) {
            inst.hook = None;
        }
        match (kind, inst.state.clone()) {
            (HookKind::Initializer, InstanceState::Initializer { attempt }) => {
                if ok {
                    self.lifecycle.initializer_successes += 1;
                    inst.initialized = true;
                    self.become_ready(worker);
                    return;
                }
                self.lifecycle.initializer_failures += 1;
                let hook = self
                    .hook_config(kind)
                    .cloned()
                    .expect("initializer configured");
                tracing::warn!(worker = %worker, attempt, "initializer failed: {error}");
                if attempt < hook.max_attempts {
                    let inst = self.instances.get_mut(worker).expect("checked above");
                    inst.state = InstanceState::Initializer {
                        attempt: attempt + 1,
                    };
                    let delay = hook
                        .retry_backoff
                        .saturating_mul(1 << (attempt - 1).min(10));
                    self.timers.insert(Timer::HookRetry(worker.clone()), delay);
                    return;
                }
                let msg = format!(
                    "InitializationError: the initializer of worker instance {worker} failed {attempt} time(s); last error: {error}"
                );
                tracing::error!(worker = %worker, "{msg}");
                if !self
                    .instances
                    .values()
                    .any(|i| i.state == InstanceState::Ready)
                {
                    self.fail_queue(&msg);
                }
                self.fault(worker, msg);
            }
            (HookKind::PreStop, InstanceState::PreStop) => {
                if !ok {
                    self.lifecycle.pre_stop_failures += 1;
                    tracing::warn!(worker = %worker, "pre-stop did not succeed ({error}); stopping the instance anyway");
                }
                self.terminate_instance(worker);
            }
            _ => {}
        }
    }

    /// A retry timer of the initializer fired.
    pub(super) fn retry_initializer(&mut self, worker: &WorkerId) {
        if matches!(
            self.instances.get(worker).map(|i| &i.state),
            Some(InstanceState::Initializer { .. })
        ) {
            self.start_hook(worker, HookKind::Initializer);
        }
    }

    /// Ends every queued invocation with `msg` (nothing can serve them now).
    fn fail_queue(&mut self, msg: &str) {
        let ids: Vec<InvocationId> = self.queue.drain(..).collect();
        for id in ids {
            let m = format!("invocation {id} cannot run: {msg}");
            self.finish(&id, Ending::error(Outcome::Failed, m));
        }
    }

    /// Takes the instance out of service for a planned reason: it finishes
    /// its in-flight work, runs pre-stop, then stops.
    pub(crate) fn retire(&mut self, worker: &WorkerId, reason: &str) {
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        if matches!(
            inst.state,
            InstanceState::Retiring | InstanceState::PreStop | InstanceState::Stopping
        ) {
            return;
        }
        tracing::info!(worker = %worker, in_flight = inst.in_flight.len(), "retiring worker instance: {reason}");
        let slot = inst.slot;
        inst.state = InstanceState::Retiring;
        if self.slots[slot].current.as_ref() == Some(worker) {
            self.slots[slot].current = None;
        }
        self.publish_ready_count();
        self.continue_retiring(worker);
    }

    /// Moves a retiring instance on once its in-flight work is done.
    pub(super) fn continue_retiring(&mut self, worker: &WorkerId) {
        let pre_stop = self.hook_config(HookKind::PreStop).is_some();
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        if inst.state != InstanceState::Retiring || !inst.in_flight.is_empty() {
            return;
        }
        // A hung initializer does not block retiring; its run is abandoned.
        if let Some(hook) = inst.hook.take() {
            self.finish(
                &hook,
                Ending::error(Outcome::Cancelled, "instance retired".into()),
            );
        }
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        if pre_stop && inst.outbound.is_some() {
            inst.state = InstanceState::PreStop;
            self.start_hook(worker, HookKind::PreStop);
        } else {
            self.terminate_instance(worker);
        }
    }

    /// `WorkerTerminate`, close our side, kill after the terminate grace.
    pub(crate) fn terminate_instance(&mut self, worker: &WorkerId) {
        let grace = self.app.host.terminate_grace;
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        inst.state = InstanceState::Stopping;
        inst.send(StreamingMessage::worker_terminate(grace));
        // Closing our side lets workers that wait for the stream's end exit too.
        inst.outbound = None;
        self.timers.insert(Timer::KillAfter(worker.clone()), grace);
        self.publish_ready_count();
    }

    /// Adds an instance when work queues and nothing is already starting.
    pub(super) fn maybe_scale_out(&mut self) {
        if self.queue.is_empty() || self.shutdown.is_some() || self.draining {
            return;
        }
        let starting = self.instances.values().any(|i| i.state.is_starting());
        let active = self
            .instances
            .values()
            .filter(|i| i.state.is_active())
            .count();
        let pending_restarts = self.slots.iter().filter(|s| s.restart_pending).count();
        if starting || active + pending_restarts >= self.app.host.max_instances {
            return;
        }
        let free = self
            .slots
            .iter()
            .position(|s| s.current.is_none() && !s.restart_pending && s.exhausted_since.is_none());
        if let Some(slot) = free {
            self.lifecycle.scale_outs += 1;
            tracing::info!(
                slot,
                queued = self.queue.len(),
                "scaling out: invocations are waiting"
            );
            self.launch(slot);
        }
    }

    /// Retires instances idle past `idleTimeout`, down to `processCount`.
    pub(super) fn idle_check(&mut self) {
        let idle = self.app.host.idle_timeout;
        self.timers.insert(Timer::IdleCheck, idle / 2);
        if self.shutdown.is_some() || self.draining {
            return;
        }
        let mut active = self
            .instances
            .values()
            .filter(|i| i.state.is_active())
            .count();
        let mut idle_ones: Vec<(Instant, WorkerId)> = self
            .instances
            .values()
            .filter(|i| i.state == InstanceState::Ready && i.in_flight.is_empty())
            .filter_map(|i| {
                i.idle_since
                    .filter(|t| t.elapsed() >= idle)
                    .map(|t| (t, i.worker_id.clone()))
            })
            .collect();
        idle_ones.sort();
        for (_, worker) in idle_ones {
            if active <= self.app.host.process_count {
                break;
            }
            self.lifecycle.scale_ins += 1;
            self.retire(&worker, "scale-in: idle");
            active -= 1;
        }
    }

    /// Sends `WorkerStatusRequest`; no answer by the deadline recycles the instance.
    pub(super) fn probe_status(&mut self, worker: &WorkerId) {
        let (interval, timeout) = (self.app.host.status_interval, self.app.host.status_timeout);
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        if inst.state == InstanceState::Stopping || inst.outbound.is_none() {
            return;
        }
        if inst.status_pending.is_none() {
            inst.status_seq += 1;
            inst.status_pending = Some(inst.status_seq);
            inst.send(StreamingMessage::from_content(
                Content::WorkerStatusRequest(WorkerStatusRequest {}),
            ));
            let seq = inst.status_seq;
            self.timers
                .insert(Timer::StatusDeadline(worker.clone(), seq), timeout);
        }
        self.timers
            .insert(Timer::StatusProbe(worker.clone()), interval);
    }

    pub(super) fn status_answered(&mut self, worker: &WorkerId) {
        if let Some(inst) = self.instances.get_mut(worker) {
            inst.status_pending = None;
        }
    }

    pub(super) fn status_deadline(&mut self, worker: &WorkerId, seq: u64) {
        let timeout = self.app.host.status_timeout;
        let Some(inst) = self.instances.get(worker) else {
            return;
        };
        if inst.status_pending == Some(seq) && inst.state != InstanceState::Stopping {
            self.lifecycle.status_recycles += 1;
            self.fault(
                worker,
                format!("it did not answer WorkerStatusRequest within {timeout:?}"),
            );
        }
    }

    /// Stops taking invocations; in-flight ones finish; then every instance
    /// runs pre-stop and stops.
    pub(super) fn handle_drain(&mut self) {
        if self.draining {
            return;
        }
        tracing::info!(
            in_flight = self.invocations.len(),
            "draining: no new invocations"
        );
        self.draining = true;
        let workers: Vec<WorkerId> = self.instances.keys().cloned().collect();
        for w in workers {
            self.retire(&w, "drain");
        }
    }
}
