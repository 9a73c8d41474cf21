//! The library entry point: start a host, invoke and cancel through a
//! cheap handle, shut down within a bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fnhost_proto::rpc::function_rpc_server::FunctionRpcServer;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;
use crate::dispatcher::{Command, Dispatcher, HttpDispatch};
use crate::events::postgres::Cluster;
pub use crate::events::EventStoreLocation;
use crate::events::{AsyncEvents, EventLog, EventStore, Partitioning, PgStore, SqliteStore};
use crate::grpc::{expose_peer_addr, RpcService};
use crate::invocation::{
    CancelReason, CancelResponse, Dispatched, InvocationId, InvocationInput, InvocationResult,
    InvokeError,
};
use crate::listen::{serve_http, worker_incoming, WorkerConnLimits};
use crate::status::HostStatus;

/// How to run a host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The function app.
    pub app: AppConfig,
    /// Where the HTTP API listens (port 0: an ephemeral port).
    pub http_addr: SocketAddr,
    /// Where workers dial back (port 0: an ephemeral port).
    pub grpc_addr: SocketAddr,
    /// The key `/admin/*` requests must carry in `x-functions-key`.
    pub admin_key: String,
    /// Where the host keeps its state (the async event store).
    pub data_dir: std::path::PathBuf,
    /// SecretId/SecretKey pair for the SCF-compatible action API on `POST /`
    /// (TC3-HMAC-SHA256); `None` turns that API off.
    pub scf_credentials: Option<ScfCredentials>,
    /// Where async events are stored.
    pub event_store: EventStoreLocation,
    /// `GET /metrics` asks for the admin key.
    pub metrics_key_required: bool,
    /// Also serve `GET /metrics` alone on this address (`--metrics-port`).
    pub metrics_addr: Option<SocketAddr>,
    /// Record metrics (the default). Off, no recorder is installed and
    /// every metric is a no-op (the benchmark's baseline).
    pub metrics: bool,
    /// Serve `GET /admin/openapi.json` without the admin key.
    pub openapi_public: bool,
}

/// A SecretId/SecretKey pair that signs SCF-compatible API requests.
#[derive(Clone)]
pub struct ScfCredentials {
    /// The public id (`Credential=<SecretId>/...`).
    pub secret_id: String,
    /// The signing secret.
    pub secret_key: String,
}

impl std::fmt::Debug for ScfCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScfCredentials")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl HostOptions {
    /// Options for `app` on loopback with ephemeral ports.
    pub fn loopback(app: AppConfig, admin_key: impl Into<String>) -> Self {
        Self {
            data_dir: app.app_dir.join(".fnhost-data"),
            scf_credentials: None,
            app,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_key: admin_key.into(),
            event_store: EventStoreLocation::DataDir,
            metrics_key_required: false,
            metrics_addr: None,
            metrics: true,
            openapi_public: false,
        }
    }
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `HTTP` or `gRPC`.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory is unsafe or unusable.
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// The function and host key store could not be read or written.
    #[error("key store: {0}")]
    Keys(String),
    /// The async event store could not be opened or recovered.
    #[error("cannot open the async event store {store}: {source}")]
    Store {
        /// The store: its file (by default `<data dir>/events.db`), or its
        /// URL without a password.
        store: String,
        /// What failed.
        source: crate::events::StoreError,
    },
}

/// A cheap, cloneable handle to a running host.
#[derive(Clone)]
pub struct HostHandle {
    commands: mpsc::Sender<Command>,
    results: broadcast::Sender<InvocationResult>,
    ready: watch::Receiver<usize>,
    /// The dispatcher's [`Dispatcher::publish_streams_http`].
    streams_http: Arc<std::sync::atomic::AtomicBool>,
}

/// An invocation that has been submitted; await [`PendingInvocation::result`].
pub struct PendingInvocation {
    /// Its id (for [`HostHandle::cancel`]).
    pub id: InvocationId,
    reply: crate::dispatcher::ReplyRx,
}

impl PendingInvocation {
    /// Waits for the outcome.
    pub async fn result(self) -> Result<InvocationResult, InvokeError> {
        match self.reply.await {
            Ok(reply) => reply.map(|result| *result),
            Err(_) => Err(InvokeError::ShuttingDown),
        }
    }
}

impl HostHandle {
    /// A handle whose commands go to `commands`, for tests that play the
    /// dispatcher.
    #[cfg(test)]
    pub(crate) fn with_commands(commands: mpsc::Sender<Command>) -> Self {
        Self {
            commands,
            results: broadcast::channel(1).0,
            ready: watch::channel(0).1,
            streams_http: Arc::default(),
        }
    }

    /// Submits an invocation and returns at once with its id.
    pub async fn submit(
        &self,
        function: &str,
        input: InvocationInput,
    ) -> Result<PendingInvocation, InvokeError> {
        let id = input
            .invocation_id
            .clone()
            .unwrap_or_else(InvocationId::random);
        let (reply, rx) = oneshot::channel();
        let ev = Command::Invoke {
            function: function.to_string(),
            id: id.clone(),
            input,
            reply,
            http: None,
        };
        self.commands
            .send(ev)
            .await
            .map_err(|_| InvokeError::ShuttingDown)?;
        Ok(PendingInvocation { id, reply: rx })
    }

    /// Submits an HTTP trigger invocation that reports where it was
    /// dispatched. `body_deferred`: the request body was left unread, to be
    /// forwarded to a worker with `HttpUri`.
    pub(crate) async fn submit_http(
        &self,
        function: &str,
        input: InvocationInput,
        body_deferred: bool,
    ) -> Result<(PendingInvocation, oneshot::Receiver<Dispatched>), InvokeError> {
        let id = InvocationId::random();
        let (reply, rx) = oneshot::channel();
        let (notify, dispatched) = oneshot::channel();
        let ev = Command::Invoke {
            function: function.to_string(),
            id: id.clone(),
            input,
            reply,
            http: Some(HttpDispatch {
                notify,
                body_deferred,
            }),
        };
        self.commands
            .send(ev)
            .await
            .map_err(|_| InvokeError::ShuttingDown)?;
        Ok((PendingInvocation { id, reply: rx }, dispatched))
    }

    /// Whether HTTP triggers should leave request bodies unread for
    /// forwarding: the live instances serve HTTP themselves (`HttpUri`).
    /// Read from a flag the dispatcher keeps current, not asked of it: a
    /// round trip to the dispatcher per request showed in the HTTP path's
    /// profile.
    pub(crate) fn streams_http(&self) -> bool {
        self.streams_http.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `function` and waits for its outcome.
    pub async fn invoke(
        &self,
        function: &str,
        input: InvocationInput,
    ) -> Result<InvocationResult, InvokeError> {
        self.submit(function, input).await?.result().await
    }

    /// Cancels an invocation: graceful first, forced after the grace.
    pub async fn cancel(&self, id: &InvocationId, reason: CancelReason) -> CancelResponse {
        let (reply, rx) = oneshot::channel();
        let ev = Command::Cancel {
            id: id.clone(),
            reason,
            reply: Some(reply),
        };
        if self.commands.send(ev).await.is_err() {
            return CancelResponse::HostStopped;
        }
        rx.await.unwrap_or(CancelResponse::HostStopped)
    }

    /// Forced termination: kills the invocation's worker instance at once
    /// (a replacement starts; other invocations on it end `killed`).
    pub async fn kill(&self, id: &InvocationId) -> CancelResponse {
        let (reply, rx) = oneshot::channel();
        let ev = Command::Kill {
            id: id.clone(),
            reply,
        };
        if self.commands.send(ev).await.is_err() {
            return CancelResponse::HostStopped;
        }
        rx.await.unwrap_or(CancelResponse::HostStopped)
    }

    /// Stops taking invocations; in-flight ones finish, then every instance
    /// runs pre-stop and stops. Status reports `draining`, then `drained`.
    pub async fn drain(&self) {
        let _ = self.commands.send(Command::Drain).await;
    }

    /// Cancels without waiting for the answer (usable from `Drop`).
    pub fn cancel_detached(&self, id: InvocationId, reason: CancelReason) {
        let ev = Command::Cancel {
            id,
            reason,
            reply: None,
        };
        if let Err(mpsc::error::TrySendError::Full(ev)) = self.commands.try_send(ev) {
            let commands = self.commands.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = commands.send(ev).await;
                });
            }
        }
    }

    /// A status snapshot.
    pub async fn status(&self) -> Option<HostStatus> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Status { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Every invocation result from now on (for observers and tests).
    pub fn subscribe(&self) -> broadcast::Receiver<InvocationResult> {
        self.results.subscribe()
    }

    /// Waits until at least `n` worker instances are ready, up to `limit`.
    pub async fn wait_ready(&self, n: usize, limit: Duration) -> bool {
        let mut ready = self.ready.clone();
        tokio::time::timeout(limit, ready.wait_for(|v| *v >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// A running host.
pub struct Host {
    handle: HostHandle,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    http_stop: CancellationToken,
    grpc_stop: CancellationToken,
    http_task: JoinHandle<()>,
    grpc_task: JoinHandle<()>,
    dispatcher_task: JoinHandle<()>,
    shutdown_bound: Duration,
    events: AsyncEvents,
    /// The timer scheduler: stopped first at shutdown, so no tick is
    /// accepted while the host stops.
    timers_stop: CancellationToken,
    timers_task: JoinHandle<()>,
    /// Held until the host is dropped (after shutdown).
    _data_lock: crate::data_dir::DataDirLock,
    /// `/readyz` answers 200 only while set.
    serving: Arc<std::sync::atomic::AtomicBool>,
    /// `shutdown.readinessDelay`.
    readiness_delay: Duration,
    /// Where `--metrics-port` serves, if set.
    metrics_addr: Option<SocketAddr>,
    /// The fixed HTTP routes, as `(method, path)`.
    http_routes: Vec<crate::http::openapi::RouteKey>,
}

impl Host {
    /// Binds both listeners, launches the workers and serves.
    pub async fn start(opts: HostOptions) -> Result<Self, StartError> {
        crate::data_dir::prepare(&opts.data_dir)?;
        // Counters count from the start.
        if opts.metrics {
            crate::metrics::install();
        }
        let data_lock = crate::data_dir::lock(&opts.data_dir)?;
        let app = Arc::new(opts.app);
        let http_functions: Vec<String> = app
            .functions
            .iter()
            .filter(|f| f.is_http_triggered())
            .map(|f| f.name.clone())
            .collect();
        let keys = crate::keys::KeyStore::open(&opts.data_dir, opts.admin_key, &http_functions)
            .map_err(StartError::Keys)?;
        let store_name = opts.event_store.describe(&opts.data_dir);
        let store_err = |source| StartError::Store {
            store: store_name.clone(),
            source,
        };
        // First, before any listener or worker: a store that cannot be
        // opened stops the start with nothing to undo.
        let (store, pg): (Arc<dyn EventStore>, _) = match &opts.event_store {
            EventStoreLocation::DataDir => {
                let path = opts.data_dir.join("events.db");
                (Arc::new(SqliteStore::open(&path).map_err(store_err)?), None)
            }
            EventStoreLocation::Sqlite(path) => {
                (Arc::new(SqliteStore::open(path).map_err(store_err)?), None)
            }
            EventStoreLocation::Postgres(url) => {
                let host_id = format!("host-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                let events = &app.host.async_events;
                let plan = Partitioning::for_retention(events.retention, events.prune_interval);
                let store = PgStore::connect(url, &host_id, plan)
                    .await
                    .map_err(store_err)?;
                let pool = store.pool().clone();
                (Arc::new(store), Some((url.clone(), host_id, pool)))
            }
        };
        let grpc_listener =
            TcpListener::bind(opts.grpc_addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: opts.grpc_addr,
                    what: "gRPC",
                    source,
                })?;
        let grpc_addr = grpc_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: opts.grpc_addr,
                what: "gRPC",
                source,
            })?;
        let http_listener =
            TcpListener::bind(opts.http_addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: opts.http_addr,
                    what: "HTTP",
                    source,
                })?;
        let metrics_listener = match opts.metrics_addr {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| StartError::Bind {
                            addr,
                            what: "metrics",
                            source,
                        })?,
                )
            }
            None => None,
        };
        let http_addr = http_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: opts.http_addr,
                what: "HTTP",
                source,
            })?;

        let (commands_tx, commands_rx) = mpsc::channel(4096);
        let (results_tx, _) = broadcast::channel(1024);
        let (ready_tx, ready_rx) = watch::channel(0);
        let streams_http = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = HostHandle {
            commands: commands_tx.clone(),
            results: results_tx.clone(),
            ready: ready_rx,
            streams_http: streams_http.clone(),
        };

        let max = app.host.max_message_bytes;
        let grpc_stop = CancellationToken::new();
        if !crate::peer::supported() {
            tracing::warn!(
                "this platform offers no way to check which process holds a worker's socket: \
                 streams from workers without a launch secret are admitted on their worker id alone"
            );
        }
        let service = FunctionRpcServer::new(RpcService {
            commands: commands_tx.clone(),
            server_addr: grpc_addr,
            refusals: Default::default(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let service =
            tonic::service::interceptor::InterceptedService::new(service, expose_peer_addr);
        let limits = WorkerConnLimits {
            handshake_deadline: app.host.worker_handshake_deadline(),
            max_pending: app.host.max_pending_connections,
        };
        let stop = grpc_stop.clone();
        let grpc_task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    worker_incoming(grpc_listener, limits),
                    stop.cancelled_owned(),
                )
                .await;
            if let Err(e) = served {
                tracing::error!("gRPC server failed: {e}");
            }
        });

        // Cancel grace, then pre-stop, then the terminate grace; the rest of
        // the 3 s margin is shared by the steps after the dispatcher.
        let pre_stop = app
            .host
            .lifecycle
            .pre_stop
            .as_ref()
            .map_or(Duration::ZERO, |h| h.timeout);
        let shutdown_bound =
            app.host.cancel_grace + pre_stop + app.host.terminate_grace + Duration::from_secs(1);
        let catalog = crate::catalog::Catalog::new(&app);
        let mut dispatcher =
            Dispatcher::new(app.clone(), grpc_addr, commands_tx, results_tx, ready_tx);
        dispatcher.catalog = Some(catalog.clone());
        dispatcher.streams_http = streams_http;
        let dispatcher_task = tokio::spawn(dispatcher.run(commands_rx));

        let log = EventLog::start(store);
        let cluster = match pg {
            Some((url, host_id, pool)) => {
                let address = format!("http://{http_addr}");
                let dead_after = app.host.async_events.host_dead_after;
                let cluster = Cluster::join(pool, &url, &host_id, &address, dead_after)
                    .await
                    .map_err(store_err)?;
                tracing::info!(host = %host_id, store = %store_name, "joined the hosts sharing the event store");
                Some(cluster)
            }
            None => None,
        };
        let events = AsyncEvents::start(
            log,
            handle.clone(),
            app.host.async_events.clone(),
            catalog.clone(),
            cluster,
        )
        .await
        .map_err(store_err)?;

        let timers_stop = CancellationToken::new();
        let lease = crate::timers::LeasePlan {
            ttl: app.host.async_events.host_dead_after,
            renew: app.host.async_events.host_heartbeat,
        };
        let timers_task = crate::timers::spawn(
            events.clone(),
            catalog.clone(),
            lease,
            app.time_zone.clone(),
            timers_stop.clone(),
        );
        let http_stop = CancellationToken::new();
        let serving = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let exposure = crate::http::Exposure {
            serving: serving.clone(),
            metrics_key_required: opts.metrics_key_required,
            openapi_public: opts.openapi_public,
        };
        let (router, metrics_router, http_routes) = crate::http::router(
            handle.clone(),
            app.clone(),
            Arc::new(keys),
            catalog,
            events.clone(),
            opts.scf_credentials,
            exposure,
        );
        let stop = http_stop.clone();
        let http_task = tokio::spawn(serve_http(
            http_listener,
            router,
            app.host.http.clone(),
            stop,
        ));
        let metrics_addr = match metrics_listener {
            Some(listener) => {
                let addr = listener.local_addr().ok();
                tokio::spawn(serve_http(
                    listener,
                    metrics_router,
                    app.host.http.clone(),
                    http_stop.clone(),
                ));
                addr
            }
            None => None,
        };
        for f in &app.functions {
            if let Some(trigger) = f.unfired_trigger() {
                tracing::warn!(function = %f.name, "{}", crate::config::unfired_warning(&f.name, trigger));
            }
        }
        tracing::info!(%http_addr, %grpc_addr, app = %app.app_dir.display(), "host started");
        Ok(Self {
            handle,
            http_addr,
            grpc_addr,
            http_stop,
            grpc_stop,
            http_task,
            grpc_task,
            dispatcher_task,
            shutdown_bound,
            events,
            timers_stop,
            timers_task,
            _data_lock: data_lock,
            serving,
            readiness_delay: app.host.readiness_delay,
            metrics_addr,
            http_routes,
        })
    }

    /// The method (lower case) and path of every fixed HTTP route the host
    /// serves; the app's trigger routes are served by the fallback.
    pub fn http_routes(&self) -> &[crate::http::openapi::RouteKey] {
        &self.http_routes
    }

    /// The address `/metrics` is also served on alone (`--metrics-port`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The handle for invoking, cancelling and status.
    pub fn handle(&self) -> &HostHandle {
        &self.handle
    }

    /// Asynchronous invocations.
    pub fn events(&self) -> &AsyncEvents {
        &self.events
    }

    /// Where the HTTP API listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where workers dial back.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Stops accepting, cancels in-flight invocations (reason: host
    /// shutdown), terminates workers, kills what remains after the grace.
    /// Returns within the cancel grace + pre-stop timeout + terminate grace + 3 s.
    pub async fn shutdown(self) {
        // Not ready first, still serving for the readiness delay, so a load
        // balancer takes the host out before it drains.
        self.serving
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if !self.readiness_delay.is_zero() {
            tracing::info!(delay = ?self.readiness_delay, "not ready; serving on for the readiness delay before draining");
            tokio::time::sleep(self.readiness_delay).await;
        }
        let deadline = tokio::time::Instant::now() + self.shutdown_bound;
        self.timers_stop.cancel();
        if tokio::time::timeout_at(deadline, self.timers_task)
            .await
            .is_err()
        {
            tracing::error!("the timer scheduler did not stop in time");
        }
        self.http_stop.cancel();
        // Queued async events stay queued (durably); running ones are
        // cancelled with the rest below and re-queued by their attempts.
        self.events.stop_starting_attempts().await;
        let (reply, rx) = oneshot::channel();
        if self
            .handle
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
            && tokio::time::timeout_at(deadline, rx).await.is_err()
        {
            tracing::error!(
                "dispatcher did not finish shutdown in {:?}",
                self.shutdown_bound
            );
        }
        // One 0.8 s budget for the attempts to record their end and for the
        // runner's other tasks to finish, so the bound above holds.
        let events_deadline = tokio::time::Instant::now() + Duration::from_millis(800);
        if tokio::time::timeout_at(events_deadline, self.events.wait_idle())
            .await
            .is_err()
        {
            tracing::error!("async event attempts did not record their end within 0.8 s");
        }
        self.events
            .close(events_deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await;
        // In-flight HTTP requests have their outcomes now; give them a moment to be written.
        let mut http_task = self.http_task;
        if tokio::time::timeout(Duration::from_millis(800), &mut http_task)
            .await
            .is_err()
        {
            http_task.abort();
        }
        self.grpc_stop.cancel();
        let mut grpc_task = self.grpc_task;
        if tokio::time::timeout(Duration::from_millis(400), &mut grpc_task)
            .await
            .is_err()
        {
            grpc_task.abort();
        }
        // The dispatcher ended (or was given up on) above; do not wait again.
        self.dispatcher_task.abort();
        tracing::info!("host stopped");
    }
}
