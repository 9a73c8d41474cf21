//! The worker's protocol state: one owner, no locks.
//!
//! [`Dispatcher::handle_message`] turns one host message into replies (and
//! spawns invocation tasks); [`Dispatcher::handle_event`] turns one task event
//! (a log line or a finished invocation) into an outbound message. The network
//! loop in `runtime.rs` only moves messages between these and the stream.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{
    FunctionLoadRequest, FunctionLoadResponse, FunctionLoadResponseCollection,
    FunctionMetadataResponse, InvocationRequest, InvocationResponse, RpcLog, StatusResult,
    StreamingMessage, WorkerInitResponse, WorkerMetadata, WorkerStatusResponse,
};
use fnhost_proto::{
    duration_from_proto, CAP_HANDLES_INVOCATION_CANCEL, CAP_WORKER_INDEXING, CAP_WORKER_STATUS,
};
use futures_util::FutureExt;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::Invocation;
use crate::{metadata, panic_trace};
use crate::{BoxHandler, Context, Input, Registration, TraceContext};

/// Grace period used when the host (or SIGTERM) gives none.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How many early cancels / finished ids are remembered.
const REMEMBERED_IDS: usize = 10_000;

/// What an invocation task reports back to the loop.
pub(crate) enum TaskEvent {
    /// A user log line.
    Log(RpcLog),
    /// The invocation finished; its response is ready to send.
    Done(Arc<str>, InvocationResponse),
}

/// A set of the most recent ids, evicting the oldest beyond its capacity.
pub(crate) struct BoundedSet {
    order: VecDeque<String>,
    set: HashSet<String>,
    capacity: usize,
}

impl BoundedSet {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity,
        }
    }

    pub(crate) fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Removes `id`, returning whether it was present.
    pub(crate) fn take(&mut self, id: &str) -> bool {
        if self.set.remove(id) {
            self.order.retain(|x| x != id);
            true
        } else {
            false
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

/// The outcome of handling one host message.
#[derive(Default)]
pub(crate) struct Step {
    /// Messages to send, in order.
    pub(crate) replies: Vec<StreamingMessage>,
    /// The host asked the worker to terminate with this grace period.
    pub(crate) terminate: Option<Duration>,
}

impl Step {
    fn reply(content: Content) -> Self {
        Self {
            replies: vec![StreamingMessage::from_content(content)],
            terminate: None,
        }
    }
}

pub(crate) struct Dispatcher {
    functions: HashMap<String, Registration>,
    worker_indexing: bool,
    /// function_id → (function name, handler).
    loaded: HashMap<String, (Arc<str>, BoxHandler)>,
    /// invocation_id → token of every invocation whose result is not sent yet.
    /// Each running invocation's token and the cancel reason it shares
    /// with the handler's [`Context`].
    /// Keyed by the id the task and its `Context` share.
    in_flight: HashMap<Arc<str>, (CancellationToken, Arc<OnceLock<String>>)>,
    early_cancels: BoundedSet,
    finished: BoundedSet,
    root: CancellationToken,
    events: mpsc::UnboundedSender<TaskEvent>,
}

impl Dispatcher {
    pub(crate) fn new(
        functions: HashMap<String, Registration>,
        worker_indexing: bool,
    ) -> (Self, mpsc::UnboundedReceiver<TaskEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let d = Self {
            functions,
            worker_indexing,
            loaded: HashMap::new(),
            in_flight: HashMap::new(),
            early_cancels: BoundedSet::new(REMEMBERED_IDS),
            finished: BoundedSet::new(REMEMBERED_IDS),
            root: CancellationToken::new(),
            events,
        };
        (d, rx)
    }

    /// Number of invocations whose result has not been sent yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Cancels every in-flight invocation and answers later requests with
    /// `Cancelled`.
    pub(crate) fn cancel_all(&self) {
        self.root.cancel();
    }

    pub(crate) fn handle_message(&mut self, msg: StreamingMessage) -> Step {
        let Some(content) = msg.content else {
            tracing::debug!("ignoring message without content");
            return Step::default();
        };
        match content {
            Content::WorkerInitRequest(req) => {
                tracing::debug!(host_version = %req.host_version, "worker init");
                Step::reply(Content::WorkerInitResponse(self.init_response()))
            }
            Content::FunctionLoadRequest(req) => {
                Step::reply(Content::FunctionLoadResponse(self.load(req)))
            }
            Content::FunctionLoadRequestCollection(c) => {
                let function_load_responses = c
                    .function_load_requests
                    .into_iter()
                    .map(|r| self.load(r))
                    .collect();
                Step::reply(Content::FunctionLoadResponseCollection(
                    FunctionLoadResponseCollection {
                        function_load_responses,
                    },
                ))
            }
            Content::FunctionsMetadataRequest(_) => {
                Step::reply(Content::FunctionMetadataResponse(self.metadata_response()))
            }
            Content::WorkerStatusRequest(_) => {
                Step::reply(Content::WorkerStatusResponse(WorkerStatusResponse {}))
            }
            Content::InvocationRequest(req) => match self.invoke(req) {
                Some(resp) => Step::reply(Content::InvocationResponse(resp)),
                None => Step::default(),
            },
            Content::InvocationCancel(c) => {
                self.cancel(c.invocation_id, c.reason);
                Step::default()
            }
            Content::WorkerTerminate(t) => Step {
                replies: Vec::new(),
                terminate: Some(
                    t.grace_period
                        .as_ref()
                        .map_or(DEFAULT_GRACE, duration_from_proto),
                ),
            },
            other => {
                tracing::debug!(
                    kind = fnhost_proto::content_kind(&other),
                    "ignoring message"
                );
                Step::default()
            }
        }
    }

    /// Turns a task event into the message to send. A finished invocation's
    /// token is dropped here, just before its response goes out.
    pub(crate) fn handle_event(&mut self, event: TaskEvent) -> StreamingMessage {
        match event {
            TaskEvent::Log(log) => StreamingMessage::rpc_log(log),
            TaskEvent::Done(id, resp) => {
                self.in_flight.remove(&id);
                self.finished.insert(id.to_string());
                StreamingMessage::from_content(Content::InvocationResponse(resp))
            }
        }
    }

    fn init_response(&self) -> WorkerInitResponse {
        let mut capabilities: HashMap<String, String> = [
            CAP_HANDLES_INVOCATION_CANCEL,
            CAP_WORKER_STATUS,
            "RpcHttpBodyOnly",
            "RawHttpBodyBytes",
        ]
        .into_iter()
        .map(|k| (k.to_string(), "true".to_string()))
        .collect();
        if self.worker_indexing {
            capabilities.insert(CAP_WORKER_INDEXING.to_string(), "true".to_string());
        }
        WorkerInitResponse {
            worker_version: env!("CARGO_PKG_VERSION").to_string(),
            capabilities,
            result: Some(StatusResult::success()),
            worker_metadata: Some(WorkerMetadata {
                runtime_name: "rust".to_string(),
                worker_version: env!("CARGO_PKG_VERSION").to_string(),
                worker_bitness: std::env::consts::ARCH.to_string(),
                ..WorkerMetadata::default()
            }),
        }
    }

    fn load(&mut self, req: FunctionLoadRequest) -> FunctionLoadResponse {
        let name = req.metadata.map(|m| m.name).unwrap_or_default();
        let result = match self.functions.get(&name) {
            Some(f) => {
                tracing::debug!(function_id = %req.function_id, function = %name, "loaded");
                self.loaded.insert(
                    req.function_id.clone(),
                    (name.into(), Arc::clone(&f.handler)),
                );
                StatusResult::success()
            }
            None => {
                let mut names: Vec<&str> = self.functions.keys().map(String::as_str).collect();
                names.sort_unstable();
                StatusResult::failure(format!(
                    "no handler registered for function '{name}' in this worker (registered: {})",
                    names.join(", ")
                ))
            }
        };
        FunctionLoadResponse {
            function_id: req.function_id,
            result: Some(result),
            ..FunctionLoadResponse::default()
        }
    }

    fn metadata_response(&self) -> FunctionMetadataResponse {
        if !self.worker_indexing {
            return FunctionMetadataResponse {
                use_default_metadata_indexing: true,
                result: Some(StatusResult::success()),
                ..FunctionMetadataResponse::default()
            };
        }
        // Lifecycle hooks are loaded by the host from host.json, not listed
        // as invokable functions.
        let mut listed: Vec<(&String, &Registration)> = self
            .functions
            .iter()
            .filter(|(n, _)| n.as_str() != crate::INITIALIZER && n.as_str() != crate::PRE_STOP)
            .collect();
        listed.sort_unstable_by_key(|(n, _)| *n);
        FunctionMetadataResponse {
            function_metadata_results: listed
                .into_iter()
                .map(|(name, f)| f.trigger.metadata(name))
                .collect(),
            result: Some(StatusResult::success()),
            use_default_metadata_indexing: false,
        }
    }

    /// Starts an invocation, or answers it at once when it cannot run.
    fn invoke(&mut self, mut req: InvocationRequest) -> Option<InvocationResponse> {
        // One allocation shared by the task, its `Context` and `in_flight`.
        let id: Arc<str> = Arc::from(std::mem::take(&mut req.invocation_id));
        let answer = |result: StatusResult| InvocationResponse {
            invocation_id: id.to_string(),
            result: Some(result),
            ..InvocationResponse::default()
        };
        if self.in_flight.contains_key(&*id) {
            tracing::warn!(invocation_id = %id, "ignoring duplicate invocation request");
            return None;
        }
        if self.early_cancels.take(&id) || self.root.is_cancelled() {
            tracing::debug!(invocation_id = %id, "cancelled before it started");
            return Some(answer(StatusResult::cancelled()));
        }
        let Some((name, handler)) = self.loaded.get(&req.function_id) else {
            return Some(answer(StatusResult::failure(format!(
                "function id {} was not loaded",
                req.function_id
            ))));
        };
        let token = self.root.child_token();
        let reason = Arc::new(OnceLock::new());
        let invocation = Invocation {
            id: id.clone(),
            function_name: Arc::clone(name),
            trace: req.trace_context.take().map(TraceContext::from),
            deadline: metadata::deadline(&req.trigger_metadata),
            attempt: metadata::attempt(&req.trigger_metadata),
        };
        let ctx = Context::new(
            invocation,
            token.clone(),
            Arc::clone(&reason),
            self.events.clone(),
        );
        // Boxed, so the task and the handler's future hold a pointer, not
        // the arguments, for as long as the invocation runs (see BoxHandler).
        let args = Box::new((ctx, Input::from_request(&mut req)));
        let handler = Arc::clone(handler);
        let events = self.events.clone();
        self.in_flight.insert(id.clone(), (token.clone(), reason));
        tokio::spawn(async move {
            let mut run = handler(args);
            // Before each poll: a panic record must come from this handler.
            let traced = std::future::poll_fn(move |cx| {
                panic_trace::clear();
                run.as_mut().poll(cx)
            });
            let outcome = AssertUnwindSafe(traced).catch_unwind().await;
            let result = match outcome {
                Ok(Ok(output)) => {
                    let resp = InvocationResponse {
                        invocation_id: id.to_string(),
                        result: Some(StatusResult::success()),
                        return_value: output.into_typed_data(),
                        ..InvocationResponse::default()
                    };
                    let _ = events.send(TaskEvent::Done(id, resp));
                    return;
                }
                Ok(Err(e)) if e.is_cancelled() || token.is_cancelled() => StatusResult::cancelled(),
                Ok(Err(e)) => user_failure(e.to_string()),
                Err(panic) => {
                    let mut result =
                        user_failure(format!("handler panicked: {}", panic_message(&*panic)));
                    if let (Some(e), Some(trace)) = (result.exception.as_mut(), panic_trace::take())
                    {
                        e.stack_trace = trace;
                    }
                    result
                }
            };
            let resp = InvocationResponse {
                invocation_id: id.to_string(),
                result: Some(result),
                ..InvocationResponse::default()
            };
            let _ = events.send(TaskEvent::Done(id, resp));
        });
        None
    }

    fn cancel(&mut self, id: String, reason: String) {
        if let Some((token, why)) = self.in_flight.get(id.as_str()) {
            tracing::debug!(invocation_id = %id, %reason, "cancelling");
            if !reason.is_empty() {
                // The first reason stands (a second cancel changes nothing).
                let _ = why.set(reason);
            }
            token.cancel();
        } else if self.finished.contains(&id) {
            tracing::debug!(invocation_id = %id, "cancel for a finished invocation ignored");
        } else {
            tracing::debug!(invocation_id = %id, "cancel before request; remembered");
            self.early_cancels.insert(id);
        }
    }
}

fn user_failure(message: String) -> StatusResult {
    let mut result = StatusResult::failure(message);
    if let Some(e) = result.exception.as_mut() {
        e.is_user_exception = true;
    }
    result
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

#[cfg(test)]
#[path = "dispatcher_tests.rs"]
mod tests;
