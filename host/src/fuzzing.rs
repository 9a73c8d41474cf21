//! Entry points for the fuzz targets in `tests/fuzz`, and nothing else: a
//! dispatcher driven in-process with fake worker streams (as its unit tests
//! drive it), and thin wrappers over crate-private parsers. Hidden from the
//! docs; not a stable API.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fnhost_proto::rpc::{StreamingMessage, TypedData};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::{
    AppConfig, ArgumentStyle, Binding, ConfigError, Direction, FunctionConfig, HookConfig,
    HostConfig, WorkerLaunchConfig,
};
use crate::dispatcher::{Command, Dispatcher, HttpDispatch, InvState};
use crate::http::routes::{Found, RouteTable};
use crate::invocation::{CancelReason, CancelResponse, InvocationId, InvocationInput, WorkerId};

/// `host.json` as parsed from its JSON value (the file's name is `host.json`).
pub fn host_json(value: &serde_json::Value) -> Result<HostConfig, ConfigError> {
    HostConfig::from_value(Path::new("host.json"), value)
}

/// What a request path reaches among `functions`.
#[derive(Debug, PartialEq)]
pub enum RouteMatch {
    /// This function, with these route values.
    Function {
        name: String,
        params: HashMap<String, String>,
    },
    /// A route matches the path but not the method.
    WrongMethod { name: String, allowed: Vec<String> },
    /// No route matches.
    Nothing,
}

/// Routes `method path` through the route table the HTTP listener builds.
pub fn find_route(
    prefix: &str,
    functions: &[FunctionConfig],
    method: &str,
    path: &str,
) -> RouteMatch {
    let functions: Vec<Arc<FunctionConfig>> = functions.iter().cloned().map(Arc::new).collect();
    let table = RouteTable::build(prefix, &functions);
    match table.find(method, path) {
        Found::Function { name, params } => RouteMatch::Function {
            name: name.to_string(),
            params,
        },
        Found::WrongMethod { name, allowed } => RouteMatch::WrongMethod {
            name: name.to_string(),
            allowed: allowed.to_vec(),
        },
        Found::Nothing => RouteMatch::Nothing,
    }
}

/// The app a [`FuzzDispatcher`] serves: function `work` (manual trigger),
/// with these host settings.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    pub max_concurrency: usize,
    pub max_queue_length: usize,
    pub process_count: usize,
    pub max_instances: usize,
    pub max_restarts: u32,
    /// `work` is also the initializer hook (2 attempts).
    pub initializer: bool,
    /// `work` is also the pre-stop hook.
    pub pre_stop: bool,
    /// worker.config.json `workerIndexing`.
    pub worker_indexing: bool,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        Self {
            max_concurrency: 4,
            max_queue_length: 4,
            process_count: 1,
            max_instances: 1,
            max_restarts: 3,
            initializer: false,
            pre_stop: false,
            worker_indexing: false,
        }
    }
}

/// Where an invocation stands, as the dispatcher holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationView {
    Queued,
    Running(WorkerId),
    Cancelling(WorkerId),
}

/// One invocation the dispatcher holds.
#[derive(Debug, Clone)]
pub struct InvocationSnapshot {
    pub id: InvocationId,
    pub state: InvocationView,
    /// A host hook run (initializer, pre-stop), not a caller's invocation.
    pub hook: bool,
    pub abandoned: bool,
}

/// One worker instance the dispatcher holds.
#[derive(Debug, Clone)]
pub struct InstanceSnapshot {
    pub worker: WorkerId,
    pub slot: usize,
    /// Its state, as `Debug` shows it.
    pub state: String,
    pub in_flight: Vec<InvocationId>,
    pub hook: Option<InvocationId>,
    pub attached: bool,
}

/// The dispatcher's state, for invariant checks.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub invocations: Vec<InvocationSnapshot>,
    pub queue: Vec<InvocationId>,
    pub instances: Vec<InstanceSnapshot>,
    /// Each slot's current instance.
    pub slots: Vec<Option<WorkerId>>,
    /// Invocations ended with an outcome, by the dispatcher's own count.
    pub outcomes: u64,
    pub protocol_violations: u64,
}

/// A message the host sent to a fake worker stream.
#[derive(Debug)]
pub struct Sent {
    pub worker: WorkerId,
    /// On the cancel queue, which overtakes queued work.
    pub urgent: bool,
    pub msg: StreamingMessage,
}

/// Where a submitted invocation's outcome arrives.
pub type Reply = crate::dispatcher::ReplyRx;

/// A dispatcher that launches no processes, driven one command at a time.
pub struct FuzzDispatcher {
    d: Dispatcher,
    streams: Vec<(
        WorkerId,
        mpsc::UnboundedReceiver<StreamingMessage>,
        mpsc::UnboundedReceiver<StreamingMessage>,
    )>,
    // Dropped last: the dispatcher's timers belong to its time driver.
    rt: tokio::runtime::Runtime,
}

impl FuzzDispatcher {
    /// A dispatcher whose slots are launched as at start (no stream yet),
    /// its timers on `rt`: a current-thread runtime with a paused clock
    /// (tokio's `test-util`, which only the fuzz crate enables), so that
    /// [`Self::fire_next_timer`] jumps straight to the next deadline.
    pub fn new(opts: &DispatcherOptions, rt: tokio::runtime::Runtime) -> Self {
        let _entered = rt.enter();
        let (commands_tx, _) = mpsc::channel(16);
        let (results_tx, _) = broadcast::channel(16);
        let (ready_tx, _) = watch::channel(0);
        let mut d = Dispatcher::new(
            Arc::new(app(opts)),
            "127.0.0.1:1".parse().expect("an address"),
            commands_tx,
            results_tx,
            ready_tx,
        );
        d.launch_processes = false;
        for slot in 0..d.app.host.process_count {
            d.launch(slot);
        }
        if d.app.host.max_instances > d.app.host.process_count {
            d.timers.insert(
                crate::dispatcher::Timer::IdleCheck,
                d.app.host.idle_timeout / 2,
            );
        }
        drop(_entered);
        Self {
            d,
            streams: Vec::new(),
            rt,
        }
    }

    fn command(&mut self, command: Command) {
        let _entered = self.rt.enter();
        self.d.handle_command(command);
    }

    /// The instance in `slot`, if any.
    pub fn slot_worker(&self, slot: usize) -> Option<WorkerId> {
        self.d.slots.get(slot).and_then(|s| s.current.clone())
    }

    /// What a stream claiming `worker` must prove (`Err`: refused).
    pub fn claim(&mut self, worker: &WorkerId) -> Result<(), String> {
        let (reply, mut rx) = oneshot::channel();
        self.command(Command::Claim {
            worker_id: worker.clone(),
            reply,
        });
        rx.try_recv()
            .expect("claims are answered at once")
            .map(|_| ())
    }

    /// Attaches a fake stream as `worker`'s (its peer proven).
    pub fn attach(&mut self, worker: &WorkerId) -> Result<(), String> {
        let (outbound, urgent, normal) = crate::grpc::outbound_channel();
        let (reply, mut rx) = oneshot::channel();
        self.command(Command::Attach {
            worker_id: worker.clone(),
            outbound,
            reply,
        });
        let r = rx.try_recv().expect("attaches are answered at once");
        if r.is_ok() {
            self.streams.push((worker.clone(), urgent, normal));
        }
        r
    }

    /// A message read from `worker`'s stream.
    pub fn from_worker(&mut self, worker: &WorkerId, msg: StreamingMessage) {
        self.command(Command::FromWorker {
            worker_id: worker.clone(),
            msg,
        });
    }

    /// `worker`'s stream ended (`error`: it broke).
    pub fn stream_closed(&mut self, worker: &WorkerId, error: Option<String>) {
        self.command(Command::StreamClosed {
            worker_id: worker.clone(),
            error,
        });
    }

    /// `worker`'s process exited.
    pub fn worker_exited(&mut self, worker: &WorkerId, status: &str) {
        self.command(Command::WorkerExited {
            worker_id: worker.clone(),
            status: status.to_string(),
        });
    }

    /// Submits `function` as `id`; `http` makes it an HTTP trigger whose
    /// body is deferred (`Some(true)`) or read (`Some(false)`).
    pub fn invoke(&mut self, function: &str, id: &InvocationId, http: Option<bool>) -> Reply {
        let (reply, rx) = oneshot::channel();
        let (input, http) = match http {
            None => (InvocationInput::new(TypedData::string("x")), None),
            Some(body_deferred) => {
                let request = fnhost_proto::rpc::RpcHttp {
                    method: "POST".into(),
                    params: [("id".to_string(), "7".to_string())].into(),
                    body: Some(Box::new(TypedData::bytes(b"abc".to_vec()))),
                    ..Default::default()
                };
                // Nobody waits for the dispatch notice.
                let (notify, _) = oneshot::channel();
                let http = HttpDispatch {
                    notify,
                    body_deferred,
                };
                (InvocationInput::http(request), Some(http))
            }
        };
        self.command(Command::Invoke {
            function: function.to_string(),
            id: id.clone(),
            input,
            reply,
            http,
        });
        rx
    }

    /// Cancels `id`.
    pub fn cancel(&mut self, id: &InvocationId, reason: CancelReason) -> CancelResponse {
        let (reply, mut rx) = oneshot::channel();
        self.command(Command::Cancel {
            id: id.clone(),
            reason,
            reply: Some(reply),
        });
        rx.try_recv().expect("cancels are answered at once")
    }

    /// Forcibly terminates `id`.
    pub fn kill(&mut self, id: &InvocationId) -> CancelResponse {
        let (reply, mut rx) = oneshot::channel();
        self.command(Command::Kill {
            id: id.clone(),
            reply,
        });
        rx.try_recv().expect("kills are answered at once")
    }

    /// Lets the paused clock run to the next armed timer and handles it;
    /// its name, or `None` when no timer is armed.
    pub fn fire_next_timer(&mut self) -> Option<String> {
        let timers = &mut self.d.timers;
        let expired = self.rt.block_on(timers.next())?;
        let timer = expired.into_inner();
        let name = format!("{timer:?}");
        let _entered = self.rt.enter();
        self.d.handle_timer(timer);
        Some(name)
    }

    /// Begins shutdown.
    pub fn shutdown(&mut self) {
        let (reply, _) = oneshot::channel();
        self.command(Command::Shutdown { reply });
    }

    /// Stops taking invocations.
    pub fn drain(&mut self) {
        self.command(Command::Drain);
    }

    /// `/admin/host/status`, as JSON.
    pub fn status_json(&mut self) -> serde_json::Value {
        let (reply, mut rx) = oneshot::channel();
        self.command(Command::Status { reply });
        serde_json::to_value(rx.try_recv().expect("status is answered at once"))
            .expect("the status serialises")
    }

    /// Everything sent to the fake streams since the last call.
    pub fn sent(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        for (worker, urgent, normal) in &mut self.streams {
            for (is_urgent, rx) in [(true, &mut *urgent), (false, &mut *normal)] {
                while let Ok(msg) = rx.try_recv() {
                    out.push(Sent {
                        worker: worker.clone(),
                        urgent: is_urgent,
                        msg,
                    });
                }
            }
        }
        out
    }

    /// The dispatcher's state now.
    pub fn snapshot(&self) -> Snapshot {
        let invocations = self
            .d
            .invocations
            .values()
            .map(|i| InvocationSnapshot {
                id: i.id.clone(),
                state: match &i.state {
                    InvState::Queued => InvocationView::Queued,
                    InvState::Running { worker } => InvocationView::Running(worker.clone()),
                    InvState::Cancelling { worker, .. } => {
                        InvocationView::Cancelling(worker.clone())
                    }
                },
                hook: i.hook.is_some(),
                abandoned: i.abandoned,
            })
            .collect();
        let instances = self
            .d
            .instances
            .values()
            .map(|i| InstanceSnapshot {
                worker: i.worker_id.clone(),
                slot: i.slot,
                state: format!("{:?}", i.state),
                in_flight: i.in_flight.iter().cloned().collect(),
                hook: i.hook.clone(),
                attached: i.outbound.is_some(),
            })
            .collect();
        Snapshot {
            invocations,
            queue: self.d.queue.iter().cloned().collect(),
            instances,
            slots: self.d.slots.iter().map(|s| s.current.clone()).collect(),
            outcomes: self.d.outcome_counts.values().sum(),
            protocol_violations: self.d.protocol_violations,
        }
    }
}

fn app(opts: &DispatcherOptions) -> AppConfig {
    let hook = |on: bool| {
        on.then(|| HookConfig {
            function: "work".into(),
            timeout: Duration::from_secs(60),
            max_attempts: 2,
            retry_backoff: Duration::from_millis(200),
        })
    };
    let mut host = HostConfig {
        max_concurrency_per_instance: opts.max_concurrency,
        max_queue_length: opts.max_queue_length,
        process_count: opts.process_count,
        max_instances: opts.max_instances.max(opts.process_count),
        max_restarts: opts.max_restarts,
        ..HostConfig::default()
    };
    host.lifecycle.initializer = hook(opts.initializer);
    host.lifecycle.pre_stop = hook(opts.pre_stop);
    AppConfig {
        app_dir: PathBuf::from("/app"),
        host,
        functions: vec![FunctionConfig {
            name: "work".into(),
            directory: PathBuf::from("/app/work"),
            script_file: None,
            entry_point: String::new(),
            bindings: vec![Binding {
                name: "input".into(),
                binding_type: "manualTrigger".into(),
                direction: Direction::In,
                properties: BTreeMap::new(),
                methods: None,
            }],
            raw_bindings: vec![],
            timeout: None,
            disabled: false,
            properties: Default::default(),
        }],
        worker: WorkerLaunchConfig {
            language: "test".into(),
            executable: PathBuf::from("/bin/true"),
            arguments: vec![],
            worker_path: None,
            worker_arguments: vec![],
            argument_style: ArgumentStyle::Classic,
            environment: BTreeMap::new(),
            directory: PathBuf::from("/app"),
            extensions: vec![],
            worker_indexing: opts.worker_indexing,
        },
        time_zone: Default::default(),
    }
}

/// The parts of a TC3 `Authorization` header, as the host reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tc3Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: String,
    pub signature: String,
}

/// A TC3 refusal: its API error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRefusal {
    pub code: String,
    pub message: String,
}

fn tc3_refusal(e: crate::http::tc3::AuthError) -> ApiRefusal {
    ApiRefusal {
        code: e.code().to_string(),
        message: e.message().to_string(),
    }
}

/// Splits a TC3 `Authorization` header value.
pub fn tc3_authorization(value: &str) -> Result<Tc3Authorization, ApiRefusal> {
    let a = crate::http::tc3::parse_authorization(value).map_err(tc3_refusal)?;
    Ok(Tc3Authorization {
        secret_id: a.secret_id.into(),
        date: a.date.into(),
        service: a.service.into(),
        signed_headers: a.signed_headers.into(),
        signature: a.signature.into(),
    })
}

/// Verifies a TC3-signed request against `(secret_id, secret_key)` at
/// `now_secs`; on success, the signature's bytes and the last second at
/// which it is accepted.
pub fn tc3_verify(
    method: &str,
    path: &str,
    query: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    (secret_id, secret_key): (&str, &str),
    now_secs: i64,
) -> Result<([u8; 32], i64), ApiRefusal> {
    let req = crate::http::tc3::Request {
        method,
        path,
        query,
        headers,
        body,
    };
    crate::http::tc3::verify(&req, secret_id, secret_key, now_secs)
        .map(|v| (v.signature, v.valid_until))
        .map_err(tc3_refusal)
}

/// What an SCF action API request asks for, once its body is read
/// (everything up to the catalog and event-store look-ups).
#[derive(Debug, Clone, PartialEq)]
pub enum ScfCall {
    Invoke {
        function: String,
        event: bool,
        tail: bool,
        context: String,
    },
    /// `query.function` is the `FunctionName` asked for.
    List {
        query: crate::events::ListQuery,
    },
    GetStatus {
        id: String,
    },
    Terminate {
        function: String,
        id: String,
        graceful: bool,
    },
}

/// Reads an SCF action API request body for `action` the way the action
/// handlers in `http/scf.rs` read it, with their `Params` accessors and in
/// their order (a function that exists stands in for the catalog look-up).
/// Keep in step with `scf::handle`, `invoke`, `list`, `get_status` and
/// `terminate`.
pub fn scf_request(action: &str, body: &[u8]) -> Result<ScfCall, ApiRefusal> {
    use crate::events::{EventStatus, ListQuery, RequestId};
    use crate::http::scf::{Action, ApiError, Params};
    use serde_json::{Map, Value};

    let refusal = |ApiError(code, message)| ApiRefusal { code, message };
    let err = |code: &str, message: String| ApiError(code.into(), message);
    let invalid =
        |param: &str, message: String| err(&format!("InvalidParameterValue.{param}"), message);
    let call = || -> Result<ScfCall, ApiError> {
        let action = Action::parse(action)
            .ok_or_else(|| err("InvalidAction", format!("action {action:?} does not exist")))?;
        let params: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            serde_json::from_slice(body).map_err(|e| {
                err(
                    "InvalidParameter",
                    format!("the body is not a JSON object: {e}"),
                )
            })?
        };
        let p = Params(&params);
        match action {
            Action::Invoke => {
                p.namespace()?;
                let function = p.required("FunctionName")?.to_string();
                if let Some(q) = p.str("Qualifier")?.filter(|q| *q != "$LATEST") {
                    return Err(err("ResourceNotFound.Qualifier", q.to_string()));
                }
                let event = p.choice("InvocationType", &["RequestResponse", "Event"])? == Some(1);
                let tail = p.choice("LogType", &["Tail", "None"])? != Some(1);
                let context = p.str("ClientContext")?.unwrap_or("{}");
                if let Err(e) = serde_json::from_str::<Value>(context) {
                    return Err(invalid(
                        "ClientContext",
                        format!("`ClientContext` is not JSON text: {e}"),
                    ));
                }
                Ok(ScfCall::Invoke {
                    function,
                    event,
                    tail,
                    context: context.to_string(),
                })
            }
            Action::ListAsyncEvents => {
                p.namespace()?;
                let mut q = ListQuery {
                    function: Some(p.required("FunctionName")?.to_string()),
                    qualifier: p.str("Qualifier")?.map(str::to_string),
                    invoke_types: p.strings("InvokeType")?,
                    request_id: p.str("InvokeRequestId")?.map(RequestId::from),
                    offset: p.uint("Offset")?.unwrap_or(0),
                    limit: p.uint("Limit")?.unwrap_or(20),
                    ascending: p.choice("Order", &["DESC", "ASC"])? == Some(1),
                    order_by_end: p.choice("Orderby", &["StartTime", "EndTime"])? == Some(1),
                    ..ListQuery::default()
                };
                if q.limit > crate::http::MAX_LIMIT {
                    return Err(invalid("Limit", format!("`Limit` {} is over", q.limit)));
                }
                let statuses = ["RUNNING", "FINISHED", "FAILED", "ABORTED"];
                for s in p.strings("Status")? {
                    q.statuses.extend_from_slice(
                        match statuses.iter().position(|o| o.eq_ignore_ascii_case(&s)) {
                            Some(0) => &[
                                EventStatus::Queued,
                                EventStatus::Running,
                                EventStatus::Retrying,
                            ],
                            Some(1) => &[EventStatus::Finished],
                            Some(2) => &[EventStatus::Failed],
                            Some(_) => &[EventStatus::Aborted],
                            None => return Err(invalid("Status", format!("`Status` \"{s}\""))),
                        },
                    );
                }
                (q.start_from, q.start_to) = p.interval("StartTimeInterval")?;
                (q.end_from, q.end_to) = p.interval("EndTimeInterval")?;
                Ok(ScfCall::List { query: q })
            }
            Action::GetAsyncEventStatus => Ok(ScfCall::GetStatus {
                id: p.required("InvokeRequestId")?.to_string(),
            }),
            Action::TerminateAsyncEvent => {
                p.namespace()?;
                let function = p.required("FunctionName")?.to_string();
                let id = p.required("InvokeRequestId")?.to_string();
                let graceful = match p.get("GraceShutdown") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(v) => {
                        return Err(invalid(
                            "GraceShutdown",
                            format!("`GraceShutdown` must be true or false, not {v}"),
                        ))
                    }
                };
                Ok(ScfCall::Terminate {
                    function,
                    id,
                    graceful,
                })
            }
        }
    };
    call().map_err(refusal)
}
