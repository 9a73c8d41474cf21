//! Write fnhost functions in Rust.
//!
//! fnhost runs each function app's code in language workers: processes it
//! launches with connection arguments, which dial it back over gRPC (the
//! Azure Functions worker protocol), register their functions and run
//! invocations concurrently. This crate is that worker for Rust: register
//! `async` handlers on a [`Worker`] and [`run`](Worker::run) it from `main`.
//!
//! ```no_run
//! use fnhost_worker::{Context, HandlerError, Json, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Resize {
//!     width: u32,
//!     height: u32,
//!     scale: f64,
//! }
//!
//! #[derive(Serialize)]
//! struct Resized {
//!     width: u32,
//!     height: u32,
//! }
//!
//! async fn resize(ctx: Context, Json(req): Json<Resize>) -> Result<Json<Resized>, HandlerError> {
//!     ctx.info(format!("resizing {}x{} by {}", req.width, req.height, req.scale));
//!     let scaled = |n: u32| (f64::from(n) * req.scale).round() as u32;
//!     Ok(Json(Resized {
//!         width: scaled(req.width),
//!         height: scaled(req.height),
//!     }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), fnhost_worker::WorkerError> {
//!     Worker::builder().function("resize", resize).run().await
//! }
//! ```
//!
//! Build it, point the app's `worker.config.json` at the binary (see
//! [Running](#running)) and `fnhost start` the app; `POST
//! /admin/functions/resize/invoke` with `{"width": 640, "height": 480,
//! "scale": 0.5}` answers `{"width":320,"height":240}`.
//!
//! # Functions
//!
//! One worker serves every function of an app. Register each under the
//! name the host knows it by (its `function.json` directory, or the name a
//! [worker-indexing](#worker-indexing) worker reports) with
//! [`function`](Worker::function), [`http`](Worker::http),
//! [`http_with`](Worker::http_with) or [`timer`](Worker::timer), one call
//! per function. A handler is an `async fn(Context, I) -> Result<O, E>`:
//!
//! - the [`Context`] says which invocation this is and carries its
//!   cancellation, deadline, attempt and trace, and sends log lines;
//! - the input `I` is any [`FromInput`]: [`Json<T>`](Json), [`HttpRequest`],
//!   `String`, `Vec<u8>`, or the untyped [`Input`];
//! - the output `O` is any [`IntoOutput`]: [`Json<U>`](Json),
//!   [`HttpResponse`], `String`, `&'static str`, `Vec<u8>`,
//!   `serde_json::Value`, `()` (no value) or the untyped [`Output`];
//! - the error `E` is [`HandlerError`] or anything that converts into it.
//!
//! Invocations run concurrently, each in its own task. A handler that
//! returns an error, or panics, fails its invocation (a panic is reported
//! with where it happened as the stack trace); the worker carries on.
//!
//! # Typed input and output
//!
//! [`Json<T>`](Json) parses the trigger payload (for an HTTP trigger, the
//! request body) into any `T: Deserialize`, and as an output sends any
//! `U: Serialize` as JSON. Input that does not parse fails the invocation
//! before the handler runs, with a message naming the function, the type
//! and serde's reason:
//!
//! ```text
//! function 'resize' got input that is not valid JSON for `app::Resize`: missing field `scale` at line 1 column 29
//! ```
//!
//! Other handlers take the untyped [`Input`] (the trigger's
//! [`TypedData`], every binding and the trigger metadata) and return an
//! [`Output`]; implement [`FromInput`] for a type of your own to share
//! parsing between functions.
//!
//! # HTTP
//!
//! An HTTP-triggered function takes the [`HttpRequest`] (method, URL,
//! headers, query, route parameters, body) or just its body as
//! [`Json<T>`](Json), and answers with an [`HttpResponse`] (status,
//! headers, body) or any other output, which answers `200`:
//!
//! ```no_run
//! use fnhost_worker::{AuthLevel, Context, HandlerError, HttpRequest, HttpResponse, HttpTrigger, Worker};
//!
//! async fn item(_ctx: Context, req: HttpRequest) -> Result<HttpResponse, HandlerError> {
//!     match req.params.get("id").map(String::as_str) {
//!         Some("7") => HttpResponse::new(200).json(&serde_json::json!({"id": 7, "name": "widget"})),
//!         _ => Ok(HttpResponse::new(404).body("no such item")),
//!     }
//! }
//!
//! let worker = Worker::builder().http_with(
//!     "item",
//!     HttpTrigger::new().route("items/{id:int}").methods(["GET"]).auth_level(AuthLevel::Anonymous),
//!     item,
//! );
//! ```
//!
//! Both convert to and from the protocol's [`RpcHttp`].
//!
//! # Errors
//!
//! `?` works on most errors: [`HandlerError`] converts from every
//! `std::error::Error + Send + Sync + 'static`, from
//! `Box<dyn Error + Send + Sync>`, from `anyhow::Error`, and from `String`
//! and `&str`. The message sent to the host is the error's own followed by
//! its sources (`"resizing: fetching the image: connection refused"`).
//!
//! # Cancellation
//!
//! The host cancels an invocation when its timeout fires, its HTTP caller
//! disconnects, an async event is terminated, another host took the event
//! over, or the host shuts down. Wrap the work in
//! [`Context::until_cancelled`]: it returns the work's output, or
//! [`HandlerError::cancelled()`] when the cancel comes first, so `?` stops
//! the handler and the host records the invocation as cancelled:
//!
//! ```no_run
//! use std::time::Duration;
//! use fnhost_worker::{Context, HandlerError, Json};
//!
//! async fn sleep(ctx: Context, Json(ms): Json<u64>) -> Result<String, HandlerError> {
//!     ctx.until_cancelled(tokio::time::sleep(Duration::from_millis(ms)))
//!         .await
//!         .inspect_err(|_| ctx.info(format!("cancelled: {:?}", ctx.cancel_reason())))?;
//!     Ok(format!("slept {ms} ms"))
//! }
//! ```
//!
//! [`Context::cancel_reason`] says why (`timeout`, `client disconnect`,
//! `terminate`, `lease lost`, `host shutdown`); [`Context::cancelled`] and
//! [`Context::cancellation_token`] (for spawned tasks) serve other shapes
//! of code. A handler that does not stop within the host's cancel grace
//! period is killed with its whole worker instance. A cancel that arrives
//! before its request is remembered, so that invocation never starts.
//!
//! # Deadline and attempt
//!
//! [`Context::deadline`] is when the host's function timeout fires, and
//! [`Context::attempt`] which attempt of an async event this is (1 for the
//! first run and for synchronous invocations). fnhost sends both as trigger
//! metadata with every request ([`fnhost_proto::META_DEADLINE`],
//! [`fnhost_proto::META_ATTEMPT`]); from other hosts they read as `None`
//! and 1.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use fnhost_worker::{Context, HandlerError, Input};
//!
//! async fn report(ctx: Context, _input: Input) -> Result<String, HandlerError> {
//!     let left = ctx.deadline().and_then(|d| d.duration_since(SystemTime::now()).ok());
//!     Ok(format!("attempt {}, {left:?} left", ctx.attempt()))
//! }
//! ```
//!
//! # Hooks
//!
//! [`Worker::initializer`] registers a hook the host runs once per worker
//! instance before it takes any invocation (to load a model, warm a pool),
//! retrying it on failure; [`Worker::pre_stop`] one it runs before a planned
//! stop (scale-in, drain, shutdown). Their timeouts and retries are set in
//! `host.json` under `lifecycle`.
//!
//! ```no_run
//! use fnhost_worker::{Context, HandlerError, Worker};
//!
//! async fn warm_up(ctx: Context) -> Result<(), HandlerError> {
//!     ctx.info("loading the model");
//!     Ok(())
//! }
//!
//! async fn flush(ctx: Context) -> Result<(), HandlerError> {
//!     ctx.info("flushing buffers");
//!     Ok(())
//! }
//!
//! let worker = Worker::builder().initializer(warm_up).pre_stop(flush);
//! ```
//!
//! # Worker indexing
//!
//! Functions declare their triggers the way Azure's programming models do
//! ([`HttpTrigger`], [`TimerTrigger`]; [`function`](Worker::function) is a
//! `manualTrigger`, for admin and async invokes), and with
//! [`worker_indexing(true)`](Worker::worker_indexing) the worker reports
//! them to the host as `raw_bindings`, so the app needs no `function.json`.
//! A function is then reported with bindings such as
//! `{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"authLevel":"anonymous","route":"items/{id:int}"}`
//! and `{"type":"http","direction":"out","name":"$return"}`, or
//! `{"type":"manualTrigger","direction":"in","name":"input"}`.
//!
//! # Testing
//!
//! Handlers are plain `async fn`s: call them with a [`Context::for_test`]
//! and their input. Cancel the token it returns to simulate the host's
//! cancel; [`Context::with_attempt`] and [`Context::with_deadline`] set
//! what the host would send.
//!
//! ```
//! use std::time::Duration;
//! use fnhost_worker::{Context, HandlerError, Json};
//!
//! async fn sleep(ctx: Context, Json(ms): Json<u64>) -> Result<String, HandlerError> {
//!     ctx.until_cancelled(tokio::time::sleep(Duration::from_millis(ms))).await?;
//!     Ok(format!("slept {ms} ms (attempt {})", ctx.attempt()))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (ctx, _cancel) = Context::for_test("inv-1");
//! assert_eq!(sleep(ctx.with_attempt(2), Json(1)).await.unwrap(), "slept 1 ms (attempt 2)");
//!
//! let (ctx, cancel) = Context::for_test("inv-2");
//! let running = tokio::spawn(sleep(ctx, Json(60_000)));
//! cancel.cancel();
//! assert!(running.await.unwrap().unwrap_err().is_cancelled());
//! # }
//! ```
//!
//! # Running
//!
//! The host starts the worker binary named by the app's
//! `worker.config.json` (a path relative to the app directory, or
//! absolute), with the host's address as arguments, which
//! [`Worker::run`] reads:
//!
//! ```json
//! {
//!   "description": {
//!     "language": "rust",
//!     "defaultExecutablePath": "target/release/my-functions",
//!     "argumentStyle": "both"
//!   }
//! }
//! ```
//!
//! `Worker::run` returns `Ok(())` when the host ends the stream, sends
//! `WorkerTerminate` or the process gets SIGTERM (after cancelling what
//! still runs and sending the results within the grace period), and an
//! error when the arguments are bad or the host cannot be reached.
//!
//! # Features
//!
//! - `anyhow`: [`HandlerError`] converts into `anyhow::Error` too, so
//!   helpers that return `anyhow::Result` can call SDK functions with `?`
//!   (a cancelled error stays cancelled on the way back). The conversion
//!   from `anyhow::Error` needs no feature.
#![warn(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod args;
mod context;
mod dispatcher;
mod error;
mod extract;
mod http;
mod io;
mod metadata;
mod panic_trace;
mod runtime;
mod trace;
mod trigger;
mod worker;

pub use args::{
    ArgsError, LaunchArgs, LaunchSecret, DEFAULT_GRPC_MAX_MESSAGE_LENGTH, LAUNCH_SECRET_ENV,
};
pub use context::{Context, LogLevel};
pub use error::{HandlerError, WorkerError};
pub use extract::{FromInput, IntoOutput, Json};
pub use fnhost_proto::rpc::{RpcHttp, TypedData};
pub use http::{HttpRequest, HttpResponse, InvalidStatusCode};
pub use io::{Input, Output};
pub use tokio_util::sync::CancellationToken;
pub use trace::TraceContext;
pub use trigger::{AuthLevel, HttpTrigger, TimerTrigger};
pub use worker::Worker;

use trigger::Trigger;

/// The function name of the instance initializer hook.
pub const INITIALIZER: &str = "initializer";
/// The function name of the pre-stop hook.
pub const PRE_STOP: &str = "preStop";

type BoxFuture = Pin<Box<dyn Future<Output = Result<Output, HandlerError>> + Send>>;

/// A registered handler, type-erased: reads its input and runs the user's
/// function inside the future it returns.
///
/// It takes its arguments boxed, and they are unboxed inside that future:
/// what an `async` block captures stays in the future for its whole life,
/// and an `Input` is 192 bytes. Boxed, the future holds 8 bytes of them and
/// the `Input` is freed once it is read. With the spawned task in
/// `Dispatcher::invoke` doing the same, this took about 0.2 KiB off each
/// in-flight invocation of the sample worker (BENCHMARKS.md, "The Rust
/// sample worker on mimalloc").
pub(crate) type BoxHandler = Arc<dyn Fn(Box<(Context, Input)>) -> BoxFuture + Send + Sync>;

/// A registered function: its handler and how it is triggered.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) handler: BoxHandler,
    pub(crate) trigger: Trigger,
}
