//! [`Worker`]: the functions a worker process serves, and running it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::trigger::Trigger;
use crate::{
    panic_trace, runtime, BoxHandler, Context, FromInput, HandlerError, HttpTrigger, Input,
    IntoOutput, LaunchArgs, Registration, TimerTrigger, WorkerError, INITIALIZER, PRE_STOP,
};

/// A worker: the functions it serves and its options, set with chained
/// calls, then [`run`](Self::run).
///
/// One worker hosts every function of an app: register each with
/// [`function`](Self::function), [`http`](Self::http),
/// [`http_with`](Self::http_with) or [`timer`](Self::timer). A handler is an
/// `async fn(Context, I) -> Result<O, E>` where the input `I` is a
/// [`FromInput`] (such as [`Json<T>`](crate::Json),
/// [`HttpRequest`](crate::HttpRequest) or [`Input`]), the output `O` an
/// [`IntoOutput`] and the error `E` converts into [`HandlerError`]. A
/// closure must name its input type (`|ctx, input: Input| ...`).
///
/// ```no_run
/// use fnhost_worker::{Context, HandlerError, Input, Json, Worker};
///
/// async fn echo(_ctx: Context, input: Input) -> Result<Vec<u8>, HandlerError> {
///     Ok(input.bytes())
/// }
///
/// async fn add(_ctx: Context, Json(xs): Json<Vec<i64>>) -> Result<Json<i64>, HandlerError> {
///     Ok(Json(xs.iter().sum()))
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), fnhost_worker::WorkerError> {
///     Worker::builder()
///         .function("echo", echo)
///         .function("add", add)
///         .function("upper", |_ctx, text: String| async move {
///             Ok::<_, HandlerError>(text.to_uppercase())
///         })
///         .run()
///         .await
/// }
/// ```
#[derive(Default)]
#[must_use = "a worker does nothing until `.run()` is awaited"]
pub struct Worker {
    pub(crate) functions: HashMap<String, Registration>,
    pub(crate) worker_indexing: bool,
}

impl Worker {
    /// Starts configuring a worker with no functions.
    ///
    /// ```no_run
    /// let worker = fnhost_worker::Worker::builder();
    /// ```
    pub fn builder() -> Self {
        Self::default()
    }

    /// Registers `handler` for the function named `name` (as in the host's
    /// function metadata). Registering a name again replaces the handler.
    ///
    /// With [worker indexing](Self::worker_indexing) the function is reported
    /// with a `manualTrigger` (admin and async invokes only); without it, its
    /// `function.json` decides the trigger. For HTTP functions use
    /// [`http`](Self::http) or [`http_with`](Self::http_with).
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, Worker};
    ///
    /// async fn upper(_ctx: Context, text: String) -> Result<String, HandlerError> {
    ///     Ok(text.to_uppercase())
    /// }
    /// let worker = Worker::builder().function("upper", upper);
    /// ```
    pub fn function<F, I, Fut, O, E>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        I: FromInput,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: IntoOutput,
        E: Into<HandlerError>,
    {
        self.register(name.into(), Trigger::Manual, handler)
    }

    /// Registers an HTTP-triggered function with Azure's defaults: served at
    /// `/api/<name>`, every method, [`AuthLevel::Function`](crate::AuthLevel::Function).
    /// Take an [`HttpRequest`](crate::HttpRequest) (or a
    /// [`Json<T>`](crate::Json) body) as the input and return an
    /// [`HttpResponse`](crate::HttpResponse) to set the status and headers.
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, HttpRequest, Worker};
    ///
    /// async fn hello(_ctx: Context, req: HttpRequest) -> Result<String, HandlerError> {
    ///     let name = req.query.get("name").map_or("world", String::as_str);
    ///     Ok(format!("hello, {name}"))
    /// }
    /// let worker = Worker::builder().http("hello", hello).worker_indexing(true);
    /// ```
    pub fn http<F, I, Fut, O, E>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        I: FromInput,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: IntoOutput,
        E: Into<HandlerError>,
    {
        self.http_with(name, HttpTrigger::new(), handler)
    }

    /// Registers an HTTP-triggered function with its route template, methods
    /// and auth level. These are reported to the host with [worker
    /// indexing](Self::worker_indexing); without it, `function.json` decides.
    ///
    /// ```no_run
    /// use fnhost_worker::{AuthLevel, Context, HandlerError, HttpRequest, HttpTrigger, Worker};
    ///
    /// async fn item(_ctx: Context, req: HttpRequest) -> Result<String, HandlerError> {
    ///     Ok(format!("item {}", req.params.get("id").map_or("?", String::as_str)))
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
    ///     .worker_indexing(true);
    /// ```
    pub fn http_with<F, I, Fut, O, E>(
        self,
        name: impl Into<String>,
        trigger: HttpTrigger,
        handler: F,
    ) -> Self
    where
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        I: FromInput,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: IntoOutput,
        E: Into<HandlerError>,
    {
        self.register(name.into(), Trigger::Http(trigger), handler)
    }

    /// Registers a timer-triggered function (reported to the host with
    /// [worker indexing](Self::worker_indexing); without it,
    /// `function.json` decides). Its input is Azure's `TimerInfo` JSON.
    ///
    /// ```no_run
    /// use fnhost_worker::{Context, HandlerError, Json, TimerTrigger, Worker};
    ///
    /// async fn tick(ctx: Context, Json(info): Json<serde_json::Value>) -> Result<(), HandlerError> {
    ///     ctx.info(format!("tick {}", info["ScheduleStatus"]["Next"]));
    ///     Ok(())
    /// }
    /// let worker = Worker::builder()
    ///     .timer("tick", TimerTrigger::new("0 */5 * * * *"), tick)
    ///     .worker_indexing(true);
    /// ```
    pub fn timer<F, I, Fut, O, E>(
        self,
        name: impl Into<String>,
        trigger: TimerTrigger,
        handler: F,
    ) -> Self
    where
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        I: FromInput,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: IntoOutput,
        E: Into<HandlerError>,
    {
        self.register(name.into(), Trigger::Timer(trigger), handler)
    }

    fn register<F, I, Fut, O, E>(mut self, name: String, trigger: Trigger, handler: F) -> Self
    where
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        I: FromInput,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: IntoOutput,
        E: Into<HandlerError>,
    {
        let handler = Arc::new(handler);
        // Everything, reading the input and the handler's synchronous part
        // included, happens inside the future, which the dispatcher polls
        // under `catch_unwind`: a panic anywhere becomes a failed result.
        let handler: BoxHandler = Arc::new(move |args| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let (ctx, input) = *args;
                let input = I::from_input(input, &ctx)?;
                let output = handler(ctx, input).await.map_err(Into::into)?;
                output.into_output()
            })
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
    /// let worker = Worker::builder().initializer(warm_up);
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
    /// let worker = Worker::builder().pre_stop(flush);
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
    /// let worker = fnhost_worker::Worker::builder().worker_indexing(true);
    /// ```
    pub fn worker_indexing(mut self, enabled: bool) -> Self {
        self.worker_indexing = enabled;
        self
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
