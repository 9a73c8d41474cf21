//! Write fnhost language workers in Rust.
//!
//! A worker is a process the host launches with connection arguments; it
//! dials the host over gRPC, registers its functions and runs invocations
//! concurrently, each with its own cancellation token. Register handlers on
//! a [`WorkerBuilder`] and call [`Worker::run`]:
//!
//! ```no_run
//! use fnhost_worker::{Context, HandlerError, Input, Worker};
//!
//! async fn hello(ctx: Context, input: Input) -> Result<String, HandlerError> {
//!     ctx.info("saying hello");
//!     Ok(format!("hello, {}", input.text()?))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), fnhost_worker::WorkerError> {
//!     Worker::builder().function("hello", hello).build().run().await
//! }
//! ```
//!
//! HTTP functions declare their trigger the way Azure's programming models
//! do, and with [worker indexing](WorkerBuilder::worker_indexing) the worker
//! reports it to the host (as `raw_bindings`), so the app needs no
//! `function.json`:
//!
//! ```no_run
//! use fnhost_worker::{AuthLevel, Context, HandlerError, HttpTrigger, Input, Worker};
//!
//! async fn hello(_ctx: Context, input: Input) -> Result<String, HandlerError> {
//!     Ok(format!("hello, {}", input.text()?))
//! }
//!
//! async fn item(_ctx: Context, input: Input) -> Result<String, HandlerError> {
//!     let id = input.http().and_then(|h| h.params.get("id").cloned());
//!     Ok(format!("item {}", id.unwrap_or_default()))
//! }
//!
//! async fn job(ctx: Context, _input: Input) -> Result<(), HandlerError> {
//!     ctx.info("running the job");
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), fnhost_worker::WorkerError> {
//!     Worker::builder()
//!         .http("hello", hello) // /api/hello, any method, authLevel function
//!         .http_with(
//!             "item",
//!             HttpTrigger::new()
//!                 .route("items/{id:int}")
//!                 .methods(["GET"])
//!                 .auth_level(AuthLevel::Anonymous),
//!             item,
//!         )
//!         .function("job", job) // manualTrigger: admin and async invokes
//!         .worker_indexing(true)
//!         .build()
//!         .run()
//!         .await
//! }
//! ```
//!
//! Each function is then reported with `raw_bindings` such as
//! `{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"authLevel":"anonymous","route":"items/{id:int}"}`
//! and `{"type":"http","direction":"out","name":"$return"}`, or
//! `{"type":"manualTrigger","direction":"in","name":"input"}`.
//!
//! The SDK answers cancellation from the host by cancelling the invocation's
//! token ([`Context::cancelled`]); a handler that then returns
//! [`HandlerError::cancelled()`] is reported as `Cancelled`. A cancel that
//! arrives before its request is remembered, a panicking handler is reported
//! as a failure, and each invocation's token is dropped when its result is
//! sent.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod args;
mod context;
mod dispatcher;
mod error;
mod io;
mod panic_trace;
mod runtime;
mod trace;
mod trigger;

pub use args::{
    ArgsError, LaunchArgs, LaunchSecret, DEFAULT_GRPC_MAX_MESSAGE_LENGTH, LAUNCH_SECRET_ENV,
};
pub use context::{Context, LogLevel};
pub use error::{HandlerError, WorkerError};
pub use fnhost_proto::rpc::{RpcHttp, TypedData};
pub use io::{HttpResponse, Input, Output};
pub use tokio_util::sync::CancellationToken;
pub use trace::TraceContext;
pub use trigger::{AuthLevel, HttpTrigger, TimerTrigger};

use trigger::Trigger;

/// The function name of the instance initializer hook.
pub const INITIALIZER: &str = "initializer";
/// The function name of the pre-stop hook.
pub const PRE_STOP: &str = "preStop";

type BoxFuture = Pin<Box<dyn Future<Output = Result<Output, HandlerError>> + Send>>;
pub(crate) type BoxHandler = Arc<dyn Fn(Context, Input) -> BoxFuture + Send + Sync>;

/// A registered function: its handler and how it is triggered.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) handler: BoxHandler,
    pub(crate) trigger: Trigger,
}

/// A configured worker, ready to connect to the host.
///
/// ```no_run
/// # async fn f() -> Result<(), fnhost_worker::WorkerError> {
/// let worker = fnhost_worker::Worker::builder()
///     .function("echo", |_ctx, input: fnhost_worker::Input| async move {
///         Ok::<_, fnhost_worker::HandlerError>(input.bytes())
///     })
///     .build();
/// worker.run().await
/// # }
/// ```
pub struct Worker {
    functions: HashMap<String, Registration>,
    worker_indexing: bool,
}

/// Registers functions and options for a [`Worker`].
///
/// ```no_run
/// let builder = fnhost_worker::Worker::builder().worker_indexing(true);
/// ```
#[derive(Default)]
pub struct WorkerBuilder {
    functions: HashMap<String, Registration>,
    worker_indexing: bool,
}

impl Worker {
    /// Starts configuring a worker.
    ///
    /// ```no_run
    /// let worker = fnhost_worker::Worker::builder().build();
    /// ```
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    /// Parses the process arguments, connects to the host and serves until
    /// the host ends the stream, sends `WorkerTerminate`, or the process gets
    /// SIGTERM. Returns `Ok(())` on those orderly endings.
    ///
    /// It installs a process-wide panic hook, chained after any hook set
    /// before it, that records where a handler panicked; the failure sent
    /// to the host carries that as its stack trace. A hook set after `run`
    /// replaces it (handler panics are then reported without a location).
    ///
    /// ```no_run
    /// # async fn f(worker: fnhost_worker::Worker) {
    /// if let Err(e) = worker.run().await {
    ///     eprintln!("worker failed: {e}");
    ///     std::process::exit(1);
    /// }
    /// # }
    /// ```
    pub async fn run(self) -> Result<(), WorkerError> {
        let args = LaunchArgs::from_env()?;
        self.run_with_args(args).await
    }

    /// Like [`run`](Self::run) with already parsed arguments.
    ///
    /// ```no_run
    /// # async fn f(worker: fnhost_worker::Worker) -> Result<(), fnhost_worker::WorkerError> {
    /// let args = fnhost_worker::LaunchArgs::new("http://127.0.0.1:7071", "w1", "r1");
    /// worker.run_with_args(args).await
    /// # }
    /// ```
    pub async fn run_with_args(self, args: LaunchArgs) -> Result<(), WorkerError> {
        panic_trace::install();
        runtime::run(self.functions, self.worker_indexing, args).await
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.functions.keys().collect();
        names.sort_unstable();
        f.debug_struct("Worker")
            .field("functions", &names)
            .field("worker_indexing", &self.worker_indexing)
            .finish()
    }
}

impl WorkerBuilder {
    /// Registers `handler` for the function named `name` (as in the host's
    /// function metadata). Registering a name again replaces the handler.
    ///
    /// With [worker indexing](Self::worker_indexing) the function is reported
    /// with a `manualTrigger` (admin and async invokes only); without it, its
    /// `function.json` decides the trigger. For HTTP functions use
    /// [`http`](Self::http) or [`http_with`](Self::http_with).
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, Input, Worker};
    ///
    /// async fn upper(_ctx: Context, input: Input) -> Result<String, HandlerError> {
    ///     Ok(input.text()?.to_uppercase())
    /// }
    /// let worker = Worker::builder().function("upper", upper).build();
    /// ```
    pub fn function<F, Fut, O, E>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Into<Output>,
        E: Into<HandlerError>,
    {
        self.register(name.into(), Trigger::Manual, handler)
    }

    /// Registers an HTTP-triggered function with Azure's defaults: served at
    /// `/api/<name>`, every method, [`AuthLevel::Function`]. Return an
    /// [`HttpResponse`] to set the status and headers.
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, Input, Worker};
    ///
    /// async fn hello(_ctx: Context, input: Input) -> Result<String, HandlerError> {
    ///     Ok(format!("hello, {}", input.text()?))
    /// }
    /// let worker = Worker::builder().http("hello", hello).worker_indexing(true).build();
    /// ```
    pub fn http<F, Fut, O, E>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Into<Output>,
        E: Into<HandlerError>,
    {
        self.http_with(name, HttpTrigger::new(), handler)
    }

    /// Registers an HTTP-triggered function with its route template, methods
    /// and auth level. These are reported to the host with [worker
    /// indexing](Self::worker_indexing); without it, `function.json` decides.
    ///
    /// ```no_run
    /// use fnhost_worker::{AuthLevel, Context, HandlerError, HttpTrigger, Input, Worker};
    ///
    /// async fn item(_ctx: Context, input: Input) -> Result<String, HandlerError> {
    ///     let id = input.http().and_then(|h| h.params.get("id").cloned());
    ///     Ok(format!("item {}", id.unwrap_or_default()))
    /// }
    /// let worker = Worker::builder()
    ///     .http_with(
    ///         "item",
    ///         HttpTrigger::new()
    ///             .route("items/{id:int}")
    ///             .methods(["GET"])
    ///             .auth_level(AuthLevel::Anonymous),
    ///         item,
    ///     )
    ///     .worker_indexing(true)
    ///     .build();
    /// ```
    pub fn http_with<F, Fut, O, E>(
        self,
        name: impl Into<String>,
        trigger: HttpTrigger,
        handler: F,
    ) -> Self
    where
        F: Fn(Context, Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Into<Output>,
        E: Into<HandlerError>,
    {
        self.register(name.into(), Trigger::Http(trigger), handler)
    }

    /// Registers a timer-triggered function (reported to the host with
    /// [worker indexing](Self::worker_indexing); without it,
    /// `function.json` decides). Its input is Azure's `TimerInfo` JSON.
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, Input, TimerTrigger, Worker};
    ///
    /// async fn tick(ctx: Context, input: Input) -> Result<(), HandlerError> {
    ///     let info: serde_json::Value = input.json()?;
    ///     ctx.info(format!("tick {}", info["ScheduleStatus"]["Next"]));
    ///     Ok(())
    /// }
    /// let worker = Worker::builder()
    ///     .timer("tick", TimerTrigger::new("0 */5 * * * *"), tick)
    ///     .worker_indexing(true)
    ///     .build();
    /// ```
    pub fn timer<F, Fut, O, E>(
        self,
        name: impl Into<String>,
        trigger: TimerTrigger,
        handler: F,
    ) -> Self
    where
        F: Fn(Context, Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Into<Output>,
        E: Into<HandlerError>,
    {
        self.register(name.into(), Trigger::Timer(trigger), handler)
    }

    fn register<F, Fut, O, E>(mut self, name: String, trigger: Trigger, handler: F) -> Self
    where
        F: Fn(Context, Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Into<Output>,
        E: Into<HandlerError>,
    {
        let handler: BoxHandler = Arc::new(move |ctx, input| {
            let fut = handler(ctx, input);
            Box::pin(async move { fut.await.map(Into::into).map_err(Into::into) })
        });
        self.functions
            .insert(name, Registration { handler, trigger });
        self
    }

    /// Registers the instance initializer: the host runs it once per worker
    /// instance before the instance takes any invocation, retrying on
    /// failure (see `lifecycle.initializer` in `host.json`). It is the
    /// function [`INITIALIZER`], so `host.json` may leave the name out.
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, Worker};
    ///
    /// async fn warm_up(ctx: Context) -> Result<(), HandlerError> {
    ///     ctx.info("loading the model");
    ///     Ok(())
    /// }
    /// let worker = Worker::builder().initializer(warm_up).build();
    /// ```
    pub fn initializer<F, Fut, E>(self, hook: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.function(INITIALIZER, move |ctx, _input: Input| hook(ctx))
    }

    /// Registers the pre-stop hook: the host runs it before it destroys the
    /// instance for a planned reason (scale-in, drain, shutdown), bounded by
    /// its timeout. It is the function [`PRE_STOP`].
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, Worker};
    ///
    /// async fn flush(ctx: Context) -> Result<(), HandlerError> {
    ///     ctx.info("flushing buffers");
    ///     Ok(())
    /// }
    /// let worker = Worker::builder().pre_stop(flush).build();
    /// ```
    pub fn pre_stop<F, Fut, E>(self, hook: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.function(PRE_STOP, move |ctx, _input: Input| hook(ctx))
    }

    /// Whether the worker indexes its own functions (advertises
    /// `WorkerIndexing` and, when the host asks for metadata, lists its
    /// registered functions with their triggers as `raw_bindings`). Default
    /// `false`: the host indexes from `function.json`.
    ///
    /// ```no_run
    /// let builder = fnhost_worker::Worker::builder().worker_indexing(true);
    /// ```
    pub fn worker_indexing(mut self, enabled: bool) -> Self {
        self.worker_indexing = enabled;
        self
    }

    /// Finishes configuration.
    ///
    /// ```no_run
    /// let worker = fnhost_worker::Worker::builder().build();
    /// ```
    pub fn build(self) -> Worker {
        Worker {
            functions: self.functions,
            worker_indexing: self.worker_indexing,
        }
    }
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder").finish_non_exhaustive()
    }
}
