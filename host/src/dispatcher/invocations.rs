//! Invocation handling: admission, placement, cancellation, results.

// tokio's clock, so paused-time tests move restart windows and idle times.
use tokio::time::Instant;

use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::TypedData;
use fnhost_proto::rpc::{
    rpc_log, status_result, InvocationRequest, InvocationResponse, ParameterBinding, RpcLog,
    StreamingMessage,
};
use fnhost_proto::{
    has_capability, CAP_HTTP_URI, CAP_REQUIRES_ROUTE_PARAMETERS, CAP_RPC_HTTP_BODY_ONLY,
    META_ATTEMPT, META_DEADLINE,
};
use prost::Message;

use super::{
    Dispatcher, HttpDispatch, InstanceState, InvState, Invocation, ReplyTx, Timer, MAX_LOG_LINES,
};
use crate::invocation::{
    CancelDelivery, CancelReason, CancelResponse, Dispatched, InvocationId, InvocationInput,
    InvocationResult, InvokeError, LogLine, Outcome, WorkerId,
};

/// Where an invocation can go now.
enum Placement {
    /// To this instance.
    Instance(WorkerId),
    /// Nowhere yet; an instance may free up or become ready.
    Wait,
    /// Nowhere, and none will come soon.
    Never(String),
}

/// The terminal facts of an invocation, handed to `finish`.
pub(crate) struct Ending {
    pub outcome: Outcome,
    pub error: Option<String>,
    pub stack_trace: Option<String>,
    pub output: Option<fnhost_proto::rpc::TypedData>,
    pub worker_lost: bool,
}

impl Ending {
    pub(crate) fn error(outcome: Outcome, message: String) -> Self {
        Self {
            outcome,
            error: Some(message),
            stack_trace: None,
            output: None,
            worker_lost: false,
        }
    }

    /// The invocation ended because its instance ended under it.
    pub(crate) fn lost(outcome: Outcome, message: String) -> Self {
        Self {
            worker_lost: true,
            ..Self::error(outcome, message)
        }
    }
}

/// Longest stack trace kept of a failure; a longer one keeps its head.
pub(crate) const STACK_TRACE_LIMIT: usize = 16 * 1024;

/// `trace`, cut at [`STACK_TRACE_LIMIT`] bytes (on a character boundary)
/// with a note saying so.
pub(super) fn bounded_trace(trace: &str) -> String {
    if trace.len() <= STACK_TRACE_LIMIT {
        return trace.to_string();
    }
    let mut end = STACK_TRACE_LIMIT;
    while !trace.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n... ({} more bytes cut)",
        &trace[..end],
        trace.len() - end
    )
}

impl Dispatcher {
    pub(super) fn handle_invoke(
        &mut self,
        function: String,
        id: InvocationId,
        input: InvocationInput,
        reply: ReplyTx,
        http: Option<HttpDispatch>,
    ) {
        if self.shutdown.is_some() {
            let _ = reply.send(Err(InvokeError::ShuttingDown));
            return;
        }
        if self.draining {
            let _ = reply.send(Err(InvokeError::Draining));
            return;
        }
        let Some(name) = self
            .registry
            .name(&function)
            .filter(|n| !self.registry.is_hidden(n))
        else {
            let _ = reply.send(Err(InvokeError::UnknownFunction(function)));
            return;
        };
        if self.registry.get(&name).is_some_and(|e| e.config.disabled) {
            let _ = reply.send(Err(InvokeError::Disabled(function)));
            return;
        }
        if self.invocations.contains_key(&id) {
            let _ = reply.send(Err(InvokeError::DuplicateId(id)));
            return;
        }
        // Refused here rather than sent: a message over the limit would
        // break the worker's stream and fail everything on the instance.
        let least = input.least_encoded_len();
        let limit = self.app.host.max_message_bytes;
        if least > limit {
            let _ = reply.send(Err(InvokeError::TooLarge { size: least, limit }));
            return;
        }
        let placement = self.place(&name);
        match &placement {
            Placement::Never(reason) => {
                let _ = reply.send(Err(InvokeError::Unavailable {
                    function,
                    reason: reason.clone(),
                }));
                return;
            }
            Placement::Wait if self.queue.len() >= self.app.host.max_queue_length => {
                let _ = reply.send(Err(InvokeError::QueueFull {
                    queued: self.queue.len(),
                    limit: self.app.host.max_queue_length,
                }));
                return;
            }
            _ => {}
        }
        // The function timeout limits execution: it starts at dispatch, so
        // waiting for a free or starting instance does not use it up.
        let timeout_key = None;
        let mut input = input;
        let trace = input
            .trace
            .take()
            .unwrap_or_else(crate::trace::TraceContext::root);
        let attempt = input.attempt;
        let inv = Box::new(Invocation {
            id: id.clone(),
            function: name,
            input: Some(Box::new(input)),
            state: InvState::Queued,
            cancel_reason: None,
            cancel_delivery: None,
            reply: Some(reply),
            timeout_key,
            grace_key: None,
            logs: Vec::new(),
            logs_dropped: 0,
            submitted: Instant::now(),
            started: None,
            abandoned: false,
            hook: None,
            http,
            trace: Some(trace),
            attempt,
            coldstart: false,
        });
        self.invocations.insert(id.clone(), inv);
        match placement {
            Placement::Instance(worker) => self.dispatch(&id, &worker),
            _ => {
                self.queue.push_back(id);
                self.maybe_scale_out();
            }
        }
    }

    fn place(&self, function: &str) -> Placement {
        let limit = self.app.host.max_concurrency_per_instance;
        let mut best: Option<(&WorkerId, usize)> = None;
        let mut coming = false;
        let mut load_errors = Vec::new();
        for (id, inst) in &self.instances {
            match inst.state {
                InstanceState::Ready => match inst.loaded.get(function) {
                    Some(Ok(())) => {
                        let n = inst.in_flight.len();
                        if n < limit && best.is_none_or(|(_, b)| n < b) {
                            best = Some((id, n));
                        }
                        coming = true;
                    }
                    Some(Err(e)) => load_errors.push(format!("worker {id}: {e}")),
                    None => load_errors.push(format!("worker {id} did not load it")),
                },
                ref s if s.is_starting() => coming = true,
                _ => {}
            }
        }
        if let Some((id, _)) = best {
            return Placement::Instance(id.clone());
        }
        let restarting = self
            .slots
            .iter()
            .any(|s| s.restart_pending && s.exhausted_since.is_none());
        if coming || restarting {
            return Placement::Wait;
        }
        let mut reason = self
            .slots
            .iter()
            .filter_map(|s| s.last_error.clone())
            .next()
            .map(|e| format!("worker restart budget exhausted; last error: {e}"))
            .unwrap_or_else(|| "no worker instance is running".into());
        if !load_errors.is_empty() {
            reason = format!("the function failed to load: {}", load_errors.join("; "));
        }
        Placement::Never(reason)
    }

    fn dispatch(&mut self, id: &InvocationId, worker: &WorkerId) {
        let Some(inv) = self.invocations.get_mut(id) else {
            return;
        };
        let Some(inst) = self.instances.get_mut(worker) else {
            return;
        };
        let Some(entry) = self.registry.get(&inv.function) else {
            return;
        };
        let http_uri = inst
            .capabilities
            .get(CAP_HTTP_URI)
            .filter(|u| !u.is_empty())
            .cloned();
        if http_uri.is_none() && inv.http.as_ref().is_some_and(|h| h.body_deferred) {
            // Only an instance with `HttpUri` can take a body that was left
            // on the client's connection; the instances of one host run one
            // worker, so this takes instances that disagree.
            let msg = format!(
                "invocation {id} kept its request body for HTTP streaming, but worker \
                 instance {worker} does not advertise HttpUri"
            );
            self.finish(id, Ending::error(Outcome::Failed, msg));
            return;
        }
        let mut input = inv
            .input
            .take()
            .expect("a queued invocation keeps its input");
        let mut trigger_metadata = std::collections::HashMap::new();
        if let Some(fnhost_proto::rpc::typed_data::Data::Http(h)) = &mut input.trigger.data {
            if http_uri.is_some() {
                // The body goes over HTTP to the worker's own server, and
                // Node's library takes the request's headers from here.
                h.body = None;
                h.raw_body = None;
                let json = |v| TypedData::json(serde_json::to_string(v).unwrap_or_default());
                trigger_metadata.insert("Headers".to_string(), json(&h.headers));
                trigger_metadata.insert("Query".to_string(), json(&h.query));
            }
            // A worker that serves HTTP itself reads route values from
            // trigger metadata: Node's library always, Python's when it
            // advertises `RequiresRouteParameters`.
            if http_uri.is_some()
                || has_capability(&inst.capabilities, CAP_REQUIRES_ROUTE_PARAMETERS)
            {
                for (k, v) in &h.params {
                    trigger_metadata.insert(k.clone(), TypedData::string(v.clone()));
                }
            }
        }
        if has_capability(&inst.capabilities, CAP_RPC_HTTP_BODY_ONLY) {
            // It reads `body` only: send the body once.
            if let Some(fnhost_proto::rpc::typed_data::Data::Http(h)) = &mut input.trigger.data {
                h.raw_body = None;
            }
        }
        // What the protocol has no field for: the deadline of the timeout
        // armed below, and the attempt.
        let deadline = std::time::SystemTime::now() + entry.timeout;
        let deadline_ms = deadline
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        trigger_metadata.insert(
            META_DEADLINE.to_string(),
            TypedData::json(deadline_ms.to_string()),
        );
        trigger_metadata.insert(
            META_ATTEMPT.to_string(),
            TypedData::json(input.attempt.unwrap_or(1).to_string()),
        );
        let trigger_name = entry.config.trigger().name.clone();
        let request = InvocationRequest {
            invocation_id: id.to_string(),
            function_id: entry.function_id.clone(),
            input_data: vec![ParameterBinding {
                name: trigger_name,
                rpc_data: Some(fnhost_proto::rpc::parameter_binding::RpcData::Data(
                    input.trigger,
                )),
            }],
            trigger_metadata,
            trace_context: inv
                .trace
                .as_ref()
                .map(|trace| fnhost_proto::rpc::RpcTraceContext {
                    trace_parent: trace.traceparent(),
                    trace_state: trace.state().to_string(),
                    attributes: std::collections::HashMap::from([(
                        "OperationName".to_string(),
                        inv.function.to_string(),
                    )]),
                    ..Default::default()
                }),
            ..InvocationRequest::default()
        };
        let message = StreamingMessage::from_content(Content::InvocationRequest(request));
        // The request id is stamped on at send: its field and length prefix.
        let size = message.encoded_len() + inst.request_id.len() + 2;
        let limit = self.app.host.max_message_bytes;
        if size > limit {
            tracing::warn!(invocation = %id, worker = %worker, size, limit, "invocation request over the worker message limit; refused");
            if let Some(reply) = self.invocations.remove(id).and_then(|mut i| i.reply.take()) {
                let _ = reply.send(Err(InvokeError::TooLarge { size, limit }));
            }
            return;
        }
        inv.timeout_key = Some(
            self.timers
                .insert(Timer::Timeout(id.clone()), entry.timeout),
        );
        inv.state = InvState::Running {
            worker: worker.clone(),
        };
        if inst.served == 0 && inst.in_flight.is_empty() {
            crate::metrics::coldstart(&inv.function);
            inv.coldstart = true;
        }
        inst.in_flight.insert(id.clone());
        inst.idle_since = None;
        tracing::info!(invocation = %id, worker = %worker, function = %inv.function, "Invoke Start RequestId: {id}");
        inv.started = Some(Instant::now());
        super::logs::executing(id, &inv.function, entry.config.trigger());
        inst.send(message);
        if let Some(http) = inv.http.take() {
            let _ = http.notify.send(Dispatched {
                worker: worker.clone(),
                http_uri,
            });
        }
    }

    /// True when some live instance serves HTTP itself (`HttpUri`): the
    /// instances of one host run one worker, so the next dispatch most
    /// likely goes to such an instance too.
    pub(crate) fn streams_http(&self) -> bool {
        self.instances
            .values()
            .any(|i| has_capability(&i.capabilities, CAP_HTTP_URI))
    }

    /// Moves queued invocations onto free instances, in arrival order.
    pub(crate) fn pump_queue(&mut self) {
        while let Some(id) = self.queue.front().cloned() {
            let Some(function) = self.invocations.get(&id).map(|i| i.function.clone()) else {
                self.queue.pop_front();
                continue;
            };
            match self.place(&function) {
                Placement::Instance(w) => {
                    self.queue.pop_front();
                    self.dispatch(&id, &w);
                }
                Placement::Wait => {
                    self.maybe_scale_out();
                    break;
                }
                Placement::Never(reason) => {
                    self.queue.pop_front();
                    let msg = format!("invocation {id} of '{function}' cannot run: {reason}");
                    self.finish(&id, Ending::error(Outcome::Failed, msg));
                }
            }
        }
    }

    pub(crate) fn handle_cancel(
        &mut self,
        id: &InvocationId,
        reason: CancelReason,
    ) -> CancelResponse {
        let Some(inv) = self.invocations.get_mut(id) else {
            return if self.finished_set.contains(id) {
                CancelResponse::AlreadyCompleted
            } else {
                CancelResponse::NotFound
            };
        };
        if !matches!(inv.state, InvState::Cancelling { .. }) {
            crate::metrics::cancelled(reason);
        }
        match inv.state.clone() {
            InvState::Cancelling { .. } => CancelResponse::AlreadyCancelling,
            InvState::Queued => {
                inv.cancel_reason = Some(reason);
                self.queue.retain(|q| q != id);
                let outcome = if reason == CancelReason::Timeout {
                    Outcome::TimedOut
                } else {
                    Outcome::Cancelled
                };
                let msg =
                    format!("invocation {id} was cancelled ({reason}) before it reached a worker");
                self.finish(id, Ending::error(outcome, msg));
                CancelResponse::Done
            }
            InvState::Running { worker } => {
                inv.cancel_reason = Some(reason);
                let grace = self.app.host.cancel_grace;
                let can_signal = self
                    .instances
                    .get(&worker)
                    .is_some_and(|i| i.handles_cancel() && i.outbound.is_some());
                if can_signal {
                    inv.cancel_delivery = Some(CancelDelivery::Signalled);
                    inv.state = InvState::Cancelling {
                        worker: worker.clone(),
                        since: Instant::now(),
                    };
                    inv.grace_key = Some(self.timers.insert(Timer::CancelGrace(id.clone()), grace));
                    if let Some(inst) = self.instances.get_mut(&worker) {
                        inst.send_urgent(StreamingMessage::invocation_cancel_because(
                            id.as_str(),
                            grace,
                            reason.wire(),
                        ));
                    }
                    tracing::info!(invocation = %id, worker = %worker, %reason, "cancel sent");
                    CancelResponse::Done
                } else if reason == CancelReason::ClientDisconnected {
                    // Only the function timeout and operator actions kill an
                    // instance: a caller who hangs up must not take down the
                    // invocations beside theirs.
                    inv.abandoned = true;
                    inv.reply = None;
                    tracing::info!(invocation = %id, worker = %worker, "the HTTP client went away and worker {worker} cannot receive InvocationCancel: invocation {id} runs on to its end or its timeout, and its result will be dropped");
                    CancelResponse::Abandoned
                } else {
                    inv.cancel_delivery = Some(CancelDelivery::NotDeliverable);
                    let why = format!(
                        "worker instance {worker} cannot receive InvocationCancel (no \
                         HandlesInvocationCancelMessage capability or its stream is gone); it was \
                         killed to end invocation {id} ({reason})"
                    );
                    self.kill_instance(&worker, id, why);
                    CancelResponse::Forced
                }
            }
        }
    }

    /// Forced termination: kills the invocation's instance without asking.
    pub(crate) fn handle_kill(&mut self, id: &InvocationId) -> CancelResponse {
        let Some(inv) = self.invocations.get_mut(id) else {
            return if self.finished_set.contains(id) {
                CancelResponse::AlreadyCompleted
            } else {
                CancelResponse::NotFound
            };
        };
        inv.cancel_reason.get_or_insert(CancelReason::Requested);
        match inv.state.clone() {
            InvState::Queued => self.handle_cancel(id, CancelReason::Requested),
            InvState::Running { worker } | InvState::Cancelling { worker, .. } => {
                let why = format!(
                    "invocation {id} was terminated: worker instance {worker} was killed to end it"
                );
                self.kill_instance(&worker, id, why);
                CancelResponse::Forced
            }
        }
    }

    pub(super) fn handle_invocation_response(
        &mut self,
        worker: &WorkerId,
        resp: InvocationResponse,
    ) {
        // The worker's word for which invocation; checked against ours below.
        let id = InvocationId::from(resp.invocation_id.clone());
        let runs_here = match self.invocations.get(&id).map(|i| &i.state) {
            Some(InvState::Running { worker: w } | InvState::Cancelling { worker: w, .. }) => {
                w == worker
            }
            _ => false,
        };
        if !runs_here {
            self.protocol_violations += 1;
            let what = if self.finished_set.contains(&id) {
                "already finished"
            } else if self.invocations.contains_key(&id) {
                "not running on it"
            } else {
                "unknown"
            };
            tracing::warn!(
                worker = %worker, invocation = %id,
                "worker {worker} sent a result for {what} invocation {id}; ignored"
            );
            return;
        }
        let inv = &self.invocations[&id];
        let result = resp.result.unwrap_or_default();
        let output = resp.return_value.or_else(|| {
            let entry = self.registry.get(&inv.function)?;
            let name = entry.config.http_output().unwrap_or("$return");
            resp.output_data
                .into_iter()
                .find(|b| b.name == name)
                .and_then(|b| match b.rpc_data {
                    Some(fnhost_proto::rpc::parameter_binding::RpcData::Data(d)) => Some(d),
                    _ => None,
                })
        });
        let ending = match result.status_kind() {
            status_result::Status::Success => Ending {
                outcome: Outcome::Succeeded,
                error: None,
                stack_trace: None,
                output,
                worker_lost: false,
            },
            status_result::Status::Failure => {
                let msg = result.error_message();
                let msg = if msg.is_empty() { "no exception message" } else { msg };
                let trace = result.stack_trace();
                Ending {
                    stack_trace: (!trace.is_empty()).then(|| bounded_trace(trace)),
                    ..Ending::error(
                        Outcome::Failed,
                        format!("invocation {id} of '{}' failed: {msg}", inv.function),
                    )
                }
            }
            status_result::Status::Cancelled => match inv.cancel_reason {
                Some(CancelReason::Timeout) => Ending::error(
                    Outcome::TimedOut,
                    format!(
                        "invocation {id} of '{}' exceeded its timeout of {:?}; the worker cancelled it",
                        inv.function,
                        self.registry.timeout(&inv.function)
                    ),
                ),
                Some(reason) => Ending::error(
                    Outcome::Cancelled,
                    format!("invocation {id} of '{}' was cancelled ({reason})", inv.function),
                ),
                None => Ending::error(
                    Outcome::Cancelled,
                    format!("invocation {id} of '{}' was cancelled by worker {worker}", inv.function),
                ),
            },
        };
        self.finish(&id, ending);
    }

    pub(super) fn handle_log(&mut self, worker: &WorkerId, log: RpcLog) {
        let level = rpc_log::Level::try_from(log.level).unwrap_or(rpc_log::Level::Information);
        let attached = self.invocations.get_mut(log.invocation_id.as_str()).filter(|inv| {
            matches!(&inv.state, InvState::Running { worker: w } | InvState::Cancelling { worker: w, .. } if w == worker)
        });
        match attached {
            Some(inv) => {
                super::logs::function_line(level, &inv.id, &inv.function, &log.message);
                if inv.logs.len() < MAX_LOG_LINES {
                    inv.logs.push(LogLine {
                        level: level.as_str_name().to_string(),
                        category: log.category,
                        message: log.message,
                    });
                } else {
                    inv.logs_dropped += 1;
                }
            }
            None => {
                tracing::info!(target: "fnhost::worker", worker = %worker, level = level.as_str_name(), "{}", log.message)
            }
        }
    }

    /// Ends an invocation with exactly one outcome and frees its capacity.
    pub(crate) fn finish(&mut self, id: &InvocationId, ending: Ending) {
        let Some(mut inv) = self.invocations.remove(id) else {
            return;
        };
        if let Some(k) = inv.timeout_key.take() {
            self.timers.remove(&k);
        }
        if let Some(k) = inv.grace_key.take() {
            self.timers.remove(&k);
        }
        let worker = match &inv.state {
            InvState::Running { worker } | InvState::Cancelling { worker, .. } => {
                Some(worker.clone())
            }
            InvState::Queued => None,
        };
        if let (Some(kind), Some(w)) = (inv.hook, &worker) {
            self.on_hook_ended(w, kind, id, &ending);
            self.maybe_terminate_workers();
            return;
        }
        let mut retiring_idle = false;
        if let Some(w) = &worker {
            if let Some(inst) = self.instances.get_mut(w) {
                inst.in_flight.remove(id);
                inst.served += 1;
                if inst.in_flight.is_empty() {
                    inst.idle_since = Some(Instant::now());
                    retiring_idle = inst.state == InstanceState::Retiring;
                }
            }
        }
        tracing::info!(invocation = %id, outcome = %ending.outcome, "Invoke End RequestId: {id}");
        if let Some(started) = inv.started {
            super::logs::executed(
                id,
                &inv.function,
                ending.outcome,
                inv.cancel_reason,
                started.elapsed(),
            );
        }
        let trigger = self.registry.get(&inv.function).map_or("other", |e| {
            crate::metrics::trigger_label(&e.config.trigger().binding_type)
        });
        crate::metrics::invocation_ended(
            &inv.function,
            trigger,
            ending.outcome,
            inv.cancel_reason,
            inv.started.map(|s| s.elapsed()),
        );
        if ending.outcome != Outcome::Succeeded {
            tracing::info!(invocation = %id, outcome = %ending.outcome, "{}", ending.error.as_deref().unwrap_or(""));
        }
        if let Some(trace) = inv.trace.take().filter(|_| crate::otel::enabled()) {
            let failed = !matches!(ending.outcome, Outcome::Succeeded | Outcome::Cancelled);
            crate::otel::record(crate::otel::SpanRecord {
                trace,
                name: inv.function.to_string(),
                kind: crate::otel::invocation_kind(trigger, inv.attempt),
                start: std::time::SystemTime::now() - inv.submitted.elapsed(),
                end: std::time::SystemTime::now(),
                attributes: crate::otel::InvocationAttrs {
                    id: id.as_str(),
                    trigger,
                    coldstart: inv.coldstart,
                    outcome: ending.outcome,
                    cancel_reason: inv.cancel_reason,
                    attempt: inv.attempt.unwrap_or(1),
                }
                .into_attributes(),
                error: failed.then(|| {
                    ending
                        .error
                        .clone()
                        .unwrap_or_else(|| ending.outcome.to_string())
                }),
            });
        }
        *self.outcome_counts.entry(ending.outcome).or_default() += 1;
        let result = InvocationResult {
            invocation_id: inv.id.clone(),
            function: inv.function.to_string(),
            outcome: ending.outcome,
            cancel_reason: inv.cancel_reason,
            error: ending.error,
            stack_trace: ending.stack_trace,
            output: ending.output,
            worker_id: worker.clone(),
            logs: std::mem::take(&mut inv.logs),
            logs_dropped: inv.logs_dropped,
            elapsed: inv.submitted.elapsed(),
            worker_lost: ending.worker_lost,
            cancel_delivery: inv.cancel_delivery,
        };
        if self.results_tx.receiver_count() > 0 {
            let _ = self.results_tx.send(result.clone());
        }
        if inv.abandoned {
            tracing::info!(invocation = %id, outcome = %result.outcome, "invocation {id} ended after its client went away; its result was dropped");
        }
        if let Some(reply) = inv.reply.take() {
            let _ = reply.send(Ok(Box::new(result)));
        }
        self.remember_finished(inv.id);
        if let (true, Some(w)) = (retiring_idle, &worker) {
            self.continue_retiring(w);
        }
        self.pump_queue();
        self.maybe_terminate_workers();
    }
}
