//! `bench`: throughput, latency, cancel latency and memory of fnhost on
//! loopback, each reported against a plain tonic echo stream measured in the
//! same run.
//!
//! ```text
//! cargo build --release -p fnhost-e2e -p fnhost-sample-worker -p fnhost --bins
//! cargo run --release -p fnhost-e2e --bin bench            # full, < 4 min
//! cargo run --release -p fnhost-e2e --bin bench -- --quick # smoke, < 1 min
//! cargo run --release -p fnhost-e2e --bin bench -- --only async # 6.-9. only
//! cargo run --release -p fnhost-e2e --bin bench -- --only lifecycle # 10.-11.
//! cargo run --release -p fnhost-e2e --bin bench -- --only workers   # 12.
//! ```
//!
//! `--only core` runs scenarios 0.-5., `--only async` runs 6.-9.,
//! `--only lifecycle` runs 10.-11., `--only workers` runs 12.; by default
//! (`--only all`) all of them run, in that order. Core scenarios, in the order they run (memory first so
//! the host-RSS delta is not hidden by heap the allocator kept from earlier
//! scenarios):
//!
//! 5. host and worker RSS per in-flight (sleeping) invocation;
//! 0. baseline: a tonic bidirectional echo stream, 64 callers multiplexed on
//!    one stream, messages shaped like an `InvocationRequest`;
//! 1. sync invocations/s of `echo` through `HostHandle::invoke`, 64 callers;
//! 2. the same through `POST /api/echo` on keep-alive connections;
//! 3. p50/p99 latency at half the rate of (1), open loop;
//! 4. cancel issued → `Cancelled` result, one cancel at a time, with 1,000
//!    `sleep` invocations in flight.
//!
//! Asynchronous invocations (each on its own host and data directory):
//!
//! 6. `POST /admin/functions/echo/invoke-async` accepted (202, durably
//!    committed) per second, 64 keep-alive callers, closed loop;
//! 7. N async `echo` events submitted at once: time from the first submit
//!    until all are `FINISHED`, `asyncEvents.maxConcurrency` 256;
//! 8. `GET /admin/async-events` p50/p99 (filtered pages of 100) over a store
//!    pre-populated with 1,000,000 ended events through the library;
//! 9. `GET /admin/async-events/<id>` p50/p99 on the same store.
//!
//! Instance lifecycle (Rust sample worker):
//!
//! 10. cold start: spawning `target/release/fnhost start <app> --port 0`
//!     until the first `POST /admin/functions/echo/invoke` answers 200
//!     (10a), the same with a 200 ms initializer (10b, `SAMPLE_INIT_MS`),
//!     and the initializer's overhead beyond its 200 ms (10c); each host is
//!     stopped with SIGTERM;
//! 11. `HostHandle::kill` of an instance running `sleep 60000` until a
//!     replacement instance (a new worker id) is ready in the host status.
//!
//! Workers:
//!
//! 12. `POST /api/echo` per second from 32 keep-alive callers on one
//!     instance of each worker: the Rust SDK sample, the Python SDK sample,
//!     the Node SDK sample and the published Python worker. A worker whose
//!     setup script has not run is skipped with a line naming the script.
//!
//! `FNHOST_BENCH_STORE_DIR=<dir>` populates the store of 8./9. in `<dir>`
//! (which must not exist) and keeps it afterwards, for inspection with
//! `sqlite3 <dir>/events.db`.
//!
//! `FNHOST_BENCH_LOG` sets the log filter (default `warn`; logs go to stderr).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use bytes::Bytes;
use fnhost::events::{EventRecord, EventStatus, EventStore, SqliteStore, WriteOp};
use fnhost::{
    CancelReason, CancelResponse, HostHandle, HostOptions, InvocationInput, Outcome,
    PendingInvocation,
};
use fnhost_e2e::{Api, TestApp, ADMIN_KEY};
use fnhost_proto::rpc::function_rpc_client::FunctionRpcClient;
use fnhost_proto::rpc::function_rpc_server::{FunctionRpc, FunctionRpcServer};
use fnhost_proto::rpc::parameter_binding::RpcData;
use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{InvocationRequest, ParameterBinding, StreamingMessage, TypedData};
use prost::Message as _;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// Concurrent callers in the closed-loop scenarios.
const CALLERS: usize = 64;
/// Upper bound on calls per caller in one closed-loop run.
const MAX_CALLS_PER_CALLER: u64 = 5_000_000;
/// Upper bound on requests in flight in the open-loop run.
const OPEN_LOOP_MAX_IN_FLIGHT: u64 = 5_000;
/// The no-op payload.
const PAYLOAD: &str = "x";
/// How long the sleeping invocations would sleep (they are cancelled).
const SLEEP_MS: &str = "600000";

/// Durations and counts for one run.
struct Params {
    warmup: Duration,
    measure: Duration,
    open_loop: Duration,
    cancel_count: usize,
    memory_count: usize,
    /// Events submitted at once in scenario 7.
    async_events: usize,
    /// Rows in the pre-populated store of scenarios 8 and 9.
    store_rows: usize,
    /// Timed requests per list query shape in scenario 8.
    list_requests: usize,
    /// Timed status requests in scenario 9.
    status_requests: usize,
    /// Timed runs of each lifecycle scenario (10a, 10b, 11).
    lifecycle_runs: usize,
}

impl Params {
    fn full() -> Self {
        Self {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            open_loop: Duration::from_secs(5),
            cancel_count: 1_000,
            memory_count: 10_000,
            async_events: 20_000,
            store_rows: 1_000_000,
            list_requests: 500,
            status_requests: 2_000,
            lifecycle_runs: 10,
        }
    }

    fn quick() -> Self {
        Self {
            warmup: Duration::from_millis(300),
            measure: Duration::from_millis(1500),
            open_loop: Duration::from_millis(1500),
            cancel_count: 200,
            memory_count: 2_000,
            async_events: 4_000,
            store_rows: 100_000,
            list_requests: 100,
            status_requests: 500,
            lifecycle_runs: 3,
        }
    }
}

const USAGE: &str = "usage: bench [--quick] [--only core|async|lifecycle|workers|all]";

/// Which scenarios run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    All,
    Core,
    Async,
    Lifecycle,
    Workers,
}

#[tokio::main]
async fn main() -> Result<()> {
    init_logs();
    let mut quick = false;
    let mut only = Only::All;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut select = |v: Option<String>| -> Result<()> {
            only = match v.as_deref() {
                Some("core") => Only::Core,
                Some("async") => Only::Async,
                Some("lifecycle") => Only::Lifecycle,
                Some("workers") => Only::Workers,
                Some("all") => Only::All,
                other => bail!(
                    "--only takes core, async, lifecycle, workers or all, not {:?}; {USAGE}",
                    other.unwrap_or("")
                ),
            };
            Ok(())
        };
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => select(args.next())?,
            a if a.starts_with("--only=") => select(Some(a["--only=".len()..].to_string()))?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    let p = if quick {
        Params::quick()
    } else {
        Params::full()
    };
    let started = Instant::now();
    let worker = fnhost_e2e::binary("fnhost-sample-worker");
    println!(
        "fnhost bench ({} mode): {} cores, {CALLERS} callers, warm-up {:?}, measure {:?}",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        p.warmup,
        p.measure,
    );

    let runs = |o: Only| only == Only::All || only == o;
    let mut groups = Vec::new();
    if runs(Only::Core) {
        groups.push((run_core(&worker, &p).await?, "Ratio to baseline"));
    }
    if runs(Only::Async) {
        groups.push((run_async(&worker, &p).await?, "Ratio to baseline"));
    }
    if runs(Only::Lifecycle) {
        groups.push((run_lifecycle(&worker, &p).await?, "Ratio"));
    }
    if runs(Only::Workers) {
        groups.push((run_workers(&worker, &p).await?, "Ratio to Rust SDK"));
    }
    for (rows, ratio_header) in &groups {
        if rows.is_empty() {
            continue;
        }
        println!();
        print_plain(rows);
        println!();
        print_markdown(rows, ratio_header);
    }
    println!();
    println!("total bench time {:.1?}", started.elapsed());
    Ok(())
}

/// Scenarios 0.-5.
async fn run_core(worker: &std::path::Path, p: &Params) -> Result<Vec<Row>> {
    let memory = memory_per_invocation(worker, p.memory_count).await?;
    println!(
        "[5] memory: {} sleeping invocations: host +{} KiB ({:.2} KiB/inv), worker +{} KiB ({:.2} KiB/inv); cancelled all in {:?}",
        memory.count,
        memory.host_delta_kib,
        memory.host_per_inv(),
        memory.worker_delta_kib,
        memory.worker_per_inv(),
        memory.cancel_all,
    );

    let mut baseline = echo_baseline(p).await?;
    println!(
        "[0] baseline tonic echo stream (before): {:.0} msgs/s ({} errors, {} B/msg)",
        baseline.rate, baseline.errors, baseline.message_bytes
    );

    let library = library_throughput(worker, p).await?;
    println!(
        "[1] HostHandle::invoke: {:.0} inv/s ({} errors) = {:.2} x first baseline",
        library.rate,
        library.errors,
        library.rate / baseline.rate
    );

    let http = http_throughput(worker, p).await?;
    println!(
        "[2] POST /api/echo: {:.0} inv/s ({} errors) = {:.2} x first baseline",
        http.rate,
        http.errors,
        http.rate / baseline.rate
    );

    // The machine is noisy: measure the baseline again after the throughput
    // runs and compare against the mean of the two.
    let again = echo_baseline(p).await?;
    println!(
        "[0] baseline tonic echo stream (after): {:.0} msgs/s ({} errors); ratios below use the mean {:.0}",
        again.rate,
        again.errors,
        (baseline.rate + again.rate) / 2.0
    );
    baseline.after = again.rate;
    baseline.errors += again.errors;

    let latency = open_loop_latency(worker, library.rate / 2.0, p.open_loop).await?;
    println!(
        "[3] open loop at {:.0}/s (achieved {:.0}/s): p50 {:?} p99 {:?} max {:?} ({} errors, {} skipped)",
        latency.target_rate,
        latency.achieved_rate,
        latency.stats.p50,
        latency.stats.p99,
        latency.stats.max,
        latency.errors,
        latency.skipped,
    );

    let cancel = cancel_latency(worker, p.cancel_count).await?;
    println!(
        "[4] cancel → Cancelled ({} sequential, {} in flight): p50 {:?} p99 {:?} max {:?}; ack p50 {:?} p99 {:?} ({} not cancelled)",
        cancel.total.n,
        p.cancel_count,
        cancel.total.p50,
        cancel.total.p99,
        cancel.total.max,
        cancel.ack.p50,
        cancel.ack.p99,
        cancel.not_cancelled,
    );

    let library_vs = library.rate / baseline.mean();
    let http_vs = http.rate / baseline.mean();
    println!("[1] HostHandle::invoke = {library_vs:.2} x mean baseline; [2] POST /api/echo = {http_vs:.2} x mean baseline");

    Ok(table(
        p, &memory, &baseline, &library, &http, &latency, &cancel,
    ))
}

fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = std::env::var("FNHOST_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let filter: tracing_subscriber::filter::Targets = level.parse().unwrap_or_default();
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}

// ---------------------------------------------------------------- helpers

/// `host.json` for one worker instance with room for `concurrency`
/// invocations and short grace periods so shutdown is quick.
fn host_json(concurrency: usize) -> Value {
    json!({
        "version": "2.0",
        "functionTimeout": "01:00:00",
        "workers": {
            "processCount": 1,
            "maxConcurrentInvocations": concurrency,
            "maxQueueLength": 100_000,
            "cancelGracePeriod": "00:00:02",
            "terminateGracePeriod": "00:00:02",
        }
    })
}

fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
}

/// Resident set size of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(pid: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

async fn worker_pid(handle: &HostHandle) -> Result<u32> {
    let status = handle.status().await.context("host status")?;
    status
        .workers
        .first()
        .and_then(|w| w.pid)
        .context("no worker pid in host status")
}

/// Polls the host until `n` invocations are on workers, up to `limit`.
async fn wait_in_flight(handle: &HostHandle, n: usize, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let status = handle.status().await.context("host status")?;
        if status.in_flight >= n {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "only {} of {n} invocations in flight after {limit:?} ({} queued)",
            status.in_flight,
            status.queued
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Submits `n` sleeping invocations.
async fn submit_sleepers(handle: &HostHandle, n: usize) -> Result<Vec<PendingInvocation>> {
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        pending.push(handle.submit("sleep", text(SLEEP_MS)).await?);
    }
    Ok(pending)
}

/// Latency percentiles of a sample.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn of(mut sample: Vec<Duration>) -> Self {
        sample.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * sample.len() as f64).ceil() as usize).clamp(1, sample.len());
            sample[rank - 1]
        };
        if sample.is_empty() {
            return Self::default();
        }
        Self {
            n: sample.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// A closed-loop throughput figure.
struct Throughput {
    rate: f64,
    errors: u64,
}

/// Runs `callers` loops of `call` (each waits for its answer before the next
/// call), counts successes over `p.measure` after `p.warmup`.
async fn closed_loop<F, Fut>(callers: usize, p: &Params, call: F) -> Result<Throughput>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for _ in 0..callers {
        let (ok, errors, stop, call) = (ok.clone(), errors.clone(), stop.clone(), call.clone());
        tasks.spawn(async move {
            for _ in 0..MAX_CALLS_PER_CALLER {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if call().await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(p.warmup).await;
    let (ok0, err0, t0) = (
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(p.measure).await;
    let (ok1, err1, elapsed) = (
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        t0.elapsed(),
    );
    stop.store(true, Ordering::Relaxed);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        bail!("callers did not finish within 10 s of the end of the run");
    }
    Ok(Throughput {
        rate: (ok1 - ok0) as f64 / elapsed.as_secs_f64(),
        errors: err1 - err0,
    })
}

// ---------------------------------------------------------------- 0. baseline

/// Echoes every message of the stream back.
struct EchoRpc;

#[tonic::async_trait]
impl FunctionRpc for EchoRpc {
    type EventStreamStream = ReceiverStream<Result<StreamingMessage, Status>>;

    async fn event_stream(
        &self,
        request: Request<Streaming<StreamingMessage>>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                if tx.send(Ok(msg)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A message of the size and shape of the host's `InvocationRequest` for
/// `echo` with a tiny string input.
fn invocation_request(request_id: &str, function_id: &str, id: String) -> StreamingMessage {
    StreamingMessage::from_content(Content::InvocationRequest(InvocationRequest {
        invocation_id: id,
        function_id: function_id.to_string(),
        input_data: vec![ParameterBinding {
            name: "req".into(),
            rpc_data: Some(RpcData::Data(TypedData::string(PAYLOAD))),
        }],
        ..InvocationRequest::default()
    }))
    .with_request_id(request_id)
}

/// Callers multiplexed on one client stream, correlated by invocation id.
struct EchoClient {
    outbound: mpsc::Sender<StreamingMessage>,
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
    request_id: String,
    function_id: String,
}

impl EchoClient {
    async fn call(&self) -> bool {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting map")
            .insert(id.clone(), tx);
        let msg = invocation_request(&self.request_id, &self.function_id, id);
        if self.outbound.send(msg).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }
}

struct Baseline {
    rate: f64,
    /// The second measurement (after the throughput scenarios).
    after: f64,
    errors: u64,
    message_bytes: usize,
}

impl Baseline {
    fn mean(&self) -> f64 {
        (self.rate + self.after) / 2.0
    }
}

async fn echo_baseline(p: &Params) -> Result<Baseline> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FunctionRpcServer::new(EchoRpc))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .context("connecting to the echo server")?;
    let (out_tx, out_rx) = mpsc::channel(1024);
    let mut inbound = FunctionRpcClient::new(channel)
        .event_stream(ReceiverStream::new(out_rx))
        .await
        .context("opening the echo stream")?
        .into_inner();
    let client = Arc::new(EchoClient {
        outbound: out_tx,
        waiting: Mutex::new(HashMap::new()),
        request_id: uuid::Uuid::new_v4().to_string(),
        function_id: uuid::Uuid::new_v4().to_string(),
    });
    let message_bytes = invocation_request(
        &client.request_id,
        &client.function_id,
        uuid::Uuid::new_v4().to_string(),
    )
    .encoded_len();
    let reader_client = client.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(msg)) = inbound.message().await {
            if let Some(Content::InvocationRequest(r)) = msg.content {
                let waiter = reader_client
                    .waiting
                    .lock()
                    .expect("waiting map")
                    .remove(&r.invocation_id);
                if let Some(w) = waiter {
                    let _ = w.send(());
                }
            }
        }
    });
    let caller = client.clone();
    let result = closed_loop(CALLERS, p, move || {
        let c = caller.clone();
        async move { c.call().await }
    })
    .await;
    drop(client);
    reader.abort();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let t = result?;
    Ok(Baseline {
        rate: t.rate,
        after: t.rate,
        errors: t.errors,
        message_bytes,
    })
}

// ---------------------------------------------------------------- 1. library

async fn library_throughput(worker: &std::path::Path, p: &Params) -> Result<Throughput> {
    let app = TestApp::new(worker, host_json(256));
    let host = app.start(1).await;
    let handle = host.handle().clone();
    let result = closed_loop(CALLERS, p, move || {
        let h = handle.clone();
        async move { matches!(h.invoke("echo", text(PAYLOAD)).await, Ok(r) if r.is_success()) }
    })
    .await;
    host.shutdown().await;
    result
}

// ---------------------------------------------------------------- 2. HTTP

async fn http_throughput(worker: &std::path::Path, p: &Params) -> Result<Throughput> {
    let app = TestApp::new(worker, host_json(256));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let result = closed_loop(CALLERS, p, move || {
        let api = api.clone();
        async move {
            matches!(
                api.request("POST", "/api/echo", Bytes::from_static(PAYLOAD.as_bytes()), None)
                    .await,
                Ok(r) if r.status == 200
            )
        }
    })
    .await;
    host.shutdown().await;
    result
}

// ---------------------------------------------------------------- 3. open loop

struct OpenLoop {
    target_rate: f64,
    achieved_rate: f64,
    stats: Stats,
    errors: u64,
    skipped: u64,
}

/// Starts invocations on a schedule of `rate` per second (checked every
/// millisecond) regardless of how many are outstanding, up to a bound.
async fn open_loop_latency(
    worker: &std::path::Path,
    rate: f64,
    duration: Duration,
) -> Result<OpenLoop> {
    ensure!(rate >= 1.0, "no peak rate to pace at ({rate:.1}/s)");
    let app = TestApp::new(worker, host_json(256));
    let host = app.start(1).await;
    let handle = host.handle().clone();
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut tasks: JoinSet<Option<Duration>> = JoinSet::new();
    let mut latencies = Vec::with_capacity((rate * duration.as_secs_f64()) as usize + 16);
    let (mut sent, mut skipped, mut errors) = (0u64, 0u64, 0u64);
    let mut reap = |r: Result<Option<Duration>, tokio::task::JoinError>| match r {
        Ok(Some(d)) => latencies.push(d),
        _ => errors += 1,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        let due = (rate * elapsed.as_secs_f64()) as u64;
        while sent < due {
            sent += 1;
            if in_flight.load(Ordering::Relaxed) >= OPEN_LOOP_MAX_IN_FLIGHT {
                skipped += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (h, n) = (handle.clone(), in_flight.clone());
            tasks.spawn(async move {
                let t0 = Instant::now();
                let r = h.invoke("echo", text(PAYLOAD)).await;
                let took = t0.elapsed();
                n.fetch_sub(1, Ordering::Relaxed);
                matches!(r, Ok(r) if r.is_success()).then_some(took)
            });
        }
        while let Some(r) = tasks.try_join_next() {
            reap(r);
        }
    }
    let window = start.elapsed();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(r) = tasks.join_next().await {
            reap(r);
        }
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        errors += tasks.len() as u64;
    }
    host.shutdown().await;
    let completed = latencies.len();
    Ok(OpenLoop {
        target_rate: rate,
        achieved_rate: completed as f64 / window.as_secs_f64(),
        stats: Stats::of(latencies),
        errors,
        skipped,
    })
}

// ---------------------------------------------------------------- 4. cancel

struct CancelLatency {
    /// Cancel issued → `Cancelled` result.
    total: Stats,
    /// Cancel issued → `HostHandle::cancel` answered.
    ack: Stats,
    not_cancelled: usize,
}

async fn cancel_latency(worker: &std::path::Path, n: usize) -> Result<CancelLatency> {
    let app = TestApp::new(worker, host_json(n.max(1_000)));
    let host = app.start(1).await;
    let handle = host.handle().clone();
    let result = async {
        let pending = submit_sleepers(&handle, n).await?;
        wait_in_flight(&handle, n, Duration::from_secs(30)).await?;
        // The host counts an invocation in flight once it is queued for the
        // worker's stream; give the last requests time to reach the worker
        // so no cancel overtakes its request.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut total, mut ack, mut not_cancelled) = (Vec::new(), Vec::new(), 0);
        for inv in pending {
            let t0 = Instant::now();
            handle.cancel(&inv.id, CancelReason::Requested).await;
            ack.push(t0.elapsed());
            match tokio::time::timeout(Duration::from_secs(10), inv.result()).await {
                Ok(Ok(r)) if r.outcome == Outcome::Cancelled => total.push(t0.elapsed()),
                _ => not_cancelled += 1,
            }
        }
        Ok::<_, anyhow::Error>(CancelLatency {
            total: Stats::of(total),
            ack: Stats::of(ack),
            not_cancelled,
        })
    }
    .await;
    host.shutdown().await;
    result
}

// ---------------------------------------------------------------- 5. memory

struct Memory {
    count: usize,
    host_delta_kib: i64,
    worker_delta_kib: i64,
    cancel_all: Duration,
}

impl Memory {
    fn host_per_inv(&self) -> f64 {
        self.host_delta_kib as f64 / self.count as f64
    }

    fn worker_per_inv(&self) -> f64 {
        self.worker_delta_kib as f64 / self.count as f64
    }
}

async fn memory_per_invocation(worker: &std::path::Path, n: usize) -> Result<Memory> {
    let app = TestApp::new(worker, host_json(n));
    let host = app.start(1).await;
    let handle = host.handle().clone();
    let result = async {
        let pid = worker_pid(&handle).await?.to_string();
        let (host0, worker0) = (rss_kib("self")?, rss_kib(&pid)?);
        let pending = submit_sleepers(&handle, n).await?;
        wait_in_flight(&handle, n, Duration::from_secs(60)).await?;
        // Let the worker take in the last requests before reading its RSS.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (host1, worker1) = (rss_kib("self")?, rss_kib(&pid)?);

        let t0 = Instant::now();
        let mut waiting = JoinSet::new();
        for chunk in pending.chunks(100) {
            let cancels = chunk
                .iter()
                .map(|inv| handle.cancel(&inv.id, CancelReason::Requested));
            futures_util::future::join_all(cancels).await;
        }
        for inv in pending {
            waiting.spawn(inv.result());
        }
        let mut not_cancelled = 0;
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(r) = waiting.join_next().await {
                if !matches!(r, Ok(Ok(r)) if r.outcome == Outcome::Cancelled) {
                    not_cancelled += 1;
                }
            }
        })
        .await;
        ensure!(drained.is_ok(), "cancelled invocations did not end in 30 s");
        ensure!(
            not_cancelled == 0,
            "{not_cancelled} of {n} invocations did not end cancelled"
        );
        Ok(Memory {
            count: n,
            host_delta_kib: host1 as i64 - host0 as i64,
            worker_delta_kib: worker1 as i64 - worker0 as i64,
            cancel_all: t0.elapsed(),
        })
    }
    .await;
    host.shutdown().await;
    result
}

// ---------------------------------------------------------------- 6.-9. async

/// `asyncEvents.maxConcurrency` (and worker slots) of scenarios 6 and 7.
const ASYNC_CONCURRENCY: usize = 256;
/// Rows per transaction when populating the store.
const POPULATE_BATCH: usize = 10_000;
/// Functions the populated events are spread over (`f0`..`f9`).
const POPULATE_FUNCTIONS: u64 = 10;
/// Start times of populated events spread over this many ms before now.
const POPULATE_SPAN_MS: i64 = 3 * 24 * 3600 * 1000;
/// Untimed requests before each timed series.
const READ_WARMUP: usize = 20;
/// Poll interval while waiting for events to finish.
const COMPLETION_POLL: Duration = Duration::from_millis(20);

/// `host.json` for the async scenarios: async events and worker slots both
/// `concurrency`, and a retention longer than the populated 3 days so the
/// pruner (which runs at start) leaves the store alone.
fn async_host_json(concurrency: usize) -> Value {
    let mut v = host_json(concurrency);
    v["asyncEvents"] = json!({
        "maxConcurrency": concurrency,
        "retention": "7.00:00:00",
    });
    v
}

/// Scenarios 6.-9.
async fn run_async(worker: &std::path::Path, p: &Params) -> Result<Vec<Row>> {
    let accept = async_accept(worker, p, ASYNC_CONCURRENCY).await?;
    println!(
        "[6] POST invoke-async accepted while they run (maxConcurrency {ASYNC_CONCURRENCY}): {:.0}/s ({} errors)",
        accept.rate, accept.errors
    );
    let accept_only = async_accept(worker, p, 1).await?;
    println!(
        "[6] POST invoke-async accepted, runner throttled (maxConcurrency 1): {:.0}/s ({} errors)",
        accept_only.rate, accept_only.errors
    );

    let completion = async_completion(worker, p.async_events).await?;
    println!(
        "[7] {} async echo events: all accepted in {:?} ({:.0}/s), all ended in {:?} ({:.0} completed/s); {} finished, {} failed or aborted, {} rejected{}",
        completion.events,
        completion.accepted_in,
        completion.events as f64 / completion.accepted_in.as_secs_f64(),
        completion.ended_in,
        completion.rate(),
        completion.finished,
        completion.failed,
        completion.rejected,
        if completion.timed_out { " (TIMED OUT)" } else { "" },
    );

    let reads = store_reads(worker, p).await?;
    println!(
        "[8] populated {} events in {:?} ({:.0} rows/s; {} MiB on disk)",
        reads.rows,
        reads.populate,
        reads.rows as f64 / reads.populate.as_secs_f64(),
        reads.db_bytes / (1 << 20),
    );
    for l in &reads.lists {
        println!(
            "[8] GET /admin/async-events?{}: p50 {:?} p99 {:?} max {:?} (totalCount {}, {} rows, {} errors)",
            l.label, l.stats.p50, l.stats.p99, l.stats.max, l.total, l.page_len, l.errors
        );
    }
    println!(
        "[9] GET /admin/async-events/<id>: p50 {:?} p99 {:?} max {:?} ({} errors)",
        reads.status.p50, reads.status.p99, reads.status.max, reads.status_errors
    );
    Ok(async_table(&accept, &accept_only, &completion, &reads))
}

/// `POST /admin/functions/echo/invoke-async`; true on 202.
async fn invoke_async(api: &Api) -> bool {
    matches!(
        api.request(
            "POST",
            "/admin/functions/echo/invoke-async",
            Bytes::from_static(PAYLOAD.as_bytes()),
            Some(ADMIN_KEY),
        )
        .await,
        Ok(r) if r.status == 202
    )
}

// ---------------------------------------------------------------- 6. accept

/// Closed-loop async invokes on a host running at most `concurrency`
/// events at once (1: the accept path nearly alone).
async fn async_accept(
    worker: &std::path::Path,
    p: &Params,
    concurrency: usize,
) -> Result<Throughput> {
    let app = TestApp::new(worker, async_host_json(concurrency));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let result = closed_loop(CALLERS, p, move || {
        let api = api.clone();
        async move { invoke_async(&api).await }
    })
    .await;
    host.shutdown().await;
    result
}

// ---------------------------------------------------------------- 7. completion

struct Completion {
    events: usize,
    /// First submit → last 202.
    accepted_in: Duration,
    /// First submit → every accepted event ended.
    ended_in: Duration,
    finished: u64,
    failed: u64,
    rejected: u64,
    timed_out: bool,
}

impl Completion {
    fn rate(&self) -> f64 {
        self.finished as f64 / self.ended_in.as_secs_f64()
    }
}

/// `totalCount` of `GET /admin/async-events?<query>`.
async fn total_count(api: &Api, query: &str) -> Result<u64> {
    let r = api
        .request(
            "GET",
            &format!("/admin/async-events?{query}"),
            Bytes::new(),
            Some(ADMIN_KEY),
        )
        .await?;
    ensure!(r.status == 200, "list answered {}: {}", r.status, r.text());
    serde_json::from_slice::<Value>(&r.body)?["totalCount"]
        .as_u64()
        .context("no totalCount in the list answer")
}

/// Submits `n` async `echo` events from 64 callers and waits (polling the
/// list API) until every accepted one has ended.
async fn async_completion(worker: &std::path::Path, n: usize) -> Result<Completion> {
    let app = TestApp::new(worker, async_host_json(ASYNC_CONCURRENCY));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let limit = Duration::from_secs(20) + Duration::from_millis(10 * n as u64);
    let result = async {
        let next = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let mut submitters = JoinSet::new();
        for _ in 0..CALLERS {
            let (api, next, rejected) = (api.clone(), next.clone(), rejected.clone());
            submitters.spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                    if !invoke_async(&api).await {
                        rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let submitted = tokio::spawn(async move {
            while submitters.join_next().await.is_some() {}
            t0.elapsed()
        });
        let mut accepted_in = None;
        let mut submitted = Some(submitted);
        let mut timed_out = false;
        let (finished, failed) = loop {
            if let Some(s) = submitted.take_if(|s| s.is_finished()) {
                accepted_in = Some(s.await?);
            }
            let finished = total_count(&api, "status=FINISHED&limit=0").await?;
            let failed = total_count(&api, "status=FAILED,ABORTED&limit=0").await?;
            let accepted = n as u64 - rejected.load(Ordering::Relaxed);
            if accepted_in.is_some() && finished + failed >= accepted {
                break (finished, failed);
            }
            if t0.elapsed() > limit {
                timed_out = true;
                break (finished, failed);
            }
            tokio::time::sleep(COMPLETION_POLL).await;
        };
        let ended_in = t0.elapsed();
        if let Some(s) = submitted {
            s.abort();
        }
        Ok::<_, anyhow::Error>(Completion {
            events: n,
            accepted_in: accepted_in.unwrap_or(ended_in),
            ended_in,
            finished,
            failed,
            rejected: rejected.load(Ordering::Relaxed),
            timed_out,
        })
    }
    .await;
    host.shutdown().await;
    result
}

// ---------------------------------------------------------------- 8./9. reads

/// A small deterministic generator (SplitMix64); the bench needs spread,
/// not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Event `i` of `rows` as the runner would have stored it: ~10 functions,
/// 90% `FINISHED`, 7% `FAILED`, 3% `ABORTED`, start times rising evenly
/// (with up to 1 s of jitter) over the last 3 days as a live store fills,
/// end times a few ms to seconds later, random (v4) request ids.
fn populated_event(rng: &mut Rng, now_ms: i64, i: usize, rows: usize) -> EventRecord {
    let function = format!("f{}", rng.below(POPULATE_FUNCTIONS));
    let start_ms = now_ms - POPULATE_SPAN_MS
        + (i as i64 * POPULATE_SPAN_MS) / rows as i64
        + rng.below(1_000) as i64;
    let end_ms = start_ms + 1 + rng.below(2_000) as i64;
    let input = TypedData::string(format!(
        "{{\"order\":{},\"item\":\"sample\"}}",
        rng.below(1_000_000)
    ))
    .encode_to_vec();
    let (status, status_code, attempts, result, error) = match rng.below(100) {
        0..=89 => (
            EventStatus::Finished,
            200,
            1,
            Some(b"{\"ok\":true}".to_vec()),
            None,
        ),
        90..=96 => (
            EventStatus::Failed,
            430,
            3,
            None,
            Some("function error: boom (attempts exhausted: 3 of 3)".to_string()),
        ),
        _ => (
            EventStatus::Aborted,
            437,
            0,
            None,
            Some("terminated by a user before it ran".to_string()),
        ),
    };
    EventRecord {
        request_id: uuid::Uuid::new_v4().to_string(),
        function,
        qualifier: "$LATEST".into(),
        invoke_type: "api".into(),
        status,
        status_code: Some(status_code),
        attempts,
        input,
        result,
        error,
        start_ms,
        end_ms: Some(end_ms),
        next_attempt_ms: None,
    }
}

/// Writes `rows` events to `<dir>/events.db` through the library, in
/// transactions of `POPULATE_BATCH`; returns about 10,000 of their ids.
fn populate(dir: &std::path::Path, rows: usize, now_ms: i64) -> Result<Vec<String>> {
    let store = SqliteStore::open(&dir.join("events.db"))?;
    let mut rng = Rng(0x5eed);
    let keep_every = (rows / 10_000).max(1);
    let mut sample = Vec::with_capacity(rows / keep_every + 1);
    let mut written = 0;
    while written < rows {
        let n = POPULATE_BATCH.min(rows - written);
        let batch: Vec<WriteOp> = (0..n)
            .map(|i| {
                let event = populated_event(&mut rng, now_ms, written + i, rows);
                if (written + i) % keep_every == 0 {
                    sample.push(event.request_id.clone());
                }
                WriteOp::Insert {
                    event,
                    idempotency: None,
                }
            })
            .collect();
        store.apply(&batch)?;
        written += n;
    }
    Ok(sample)
}

/// Bytes of `events.db` and its WAL.
fn store_bytes(dir: &std::path::Path) -> u64 {
    ["events.db", "events.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

struct ListSeries {
    /// The query with the time window written as `T` and `T+1h`.
    label: String,
    stats: Stats,
    /// `totalCount` of the last answer.
    total: u64,
    /// Events on the last page.
    page_len: usize,
    errors: u64,
}

struct StoreReads {
    rows: usize,
    populate: Duration,
    db_bytes: u64,
    lists: Vec<ListSeries>,
    status: Stats,
    status_errors: u64,
}

/// Times `n` sequential `GET /admin/async-events?<query>` after a warm-up.
async fn time_list(api: &Api, query: String, label: String, n: usize) -> ListSeries {
    let path = format!("/admin/async-events?{query}");
    let (mut sample, mut errors, mut total, mut page_len) = (Vec::with_capacity(n), 0, 0, 0);
    for i in 0..READ_WARMUP + n {
        let t0 = Instant::now();
        let r = api
            .request("GET", &path, Bytes::new(), Some(ADMIN_KEY))
            .await;
        let took = t0.elapsed();
        match r {
            Ok(r) if r.status == 200 => {
                if i >= READ_WARMUP {
                    sample.push(took);
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                    total = v["totalCount"].as_u64().unwrap_or(0);
                    page_len = v["events"].as_array().map_or(0, Vec::len);
                }
            }
            _ => errors += 1,
        }
    }
    ListSeries {
        label,
        stats: Stats::of(sample),
        total,
        page_len,
        errors,
    }
}

/// Populates a store through the library, starts a host on it and times
/// list and status requests over HTTP, one at a time.
async fn store_reads(worker: &std::path::Path, p: &Params) -> Result<StoreReads> {
    let app = TestApp::new(worker, async_host_json(ASYNC_CONCURRENCY));
    let keep = std::env::var_os("FNHOST_BENCH_STORE_DIR").map(std::path::PathBuf::from);
    let data_dir = match &keep {
        Some(d) => {
            ensure!(
                !d.exists(),
                "FNHOST_BENCH_STORE_DIR {} exists already",
                d.display()
            );
            d.clone()
        }
        None => app.dir().join("bench-data"),
    };
    let now_ms = fnhost::events::time::now_ms();
    let rows = p.store_rows;
    let t0 = Instant::now();
    let dir = data_dir.clone();
    let ids = tokio::task::spawn_blocking(move || populate(&dir, rows, now_ms)).await??;
    let populate_took = t0.elapsed();
    let db_bytes = store_bytes(&data_dir);
    ensure!(!ids.is_empty(), "no events were populated");

    let opts = HostOptions {
        data_dir,
        ..HostOptions::loopback(app.config(), ADMIN_KEY)
    };
    let host = fnhost::Host::start(opts).await.context("host start")?;
    let result = async {
        ensure!(
            host.handle().wait_ready(1, Duration::from_secs(20)).await,
            "the worker did not become ready"
        );
        let api = Api::new(host.http_addr());
        // An hour in the middle of the populated span, oldest first.
        let from = now_ms - POPULATE_SPAN_MS / 2;
        let to = from + 3600 * 1000;
        let base = "function=f3&status=FINISHED";
        let mut lists = Vec::new();
        for query in [
            format!("{base}&limit=100"),
            format!("{base}&startTimeFrom={from}&startTimeTo={to}&order=asc&limit=100"),
            // Diagnostics: the COUNT alone, and a narrower count.
            format!("{base}&limit=0"),
            format!("{base}&startTimeFrom={from}&startTimeTo={to}&limit=0"),
        ] {
            let label = query
                .replace(&from.to_string(), "T")
                .replace(&to.to_string(), "T+1h");
            lists.push(time_list(&api, query, label, p.list_requests).await);
        }

        let mut rng = Rng(0x57a7);
        let (mut sample, mut errors) = (Vec::with_capacity(p.status_requests), 0);
        for i in 0..READ_WARMUP + p.status_requests {
            let id = &ids[rng.below(ids.len() as u64) as usize];
            let path = format!("/admin/async-events/{id}");
            let t0 = Instant::now();
            let r = api
                .request("GET", &path, Bytes::new(), Some(ADMIN_KEY))
                .await;
            let took = t0.elapsed();
            match r {
                Ok(r) if r.status == 200 => {
                    if i >= READ_WARMUP {
                        sample.push(took);
                    }
                }
                _ => errors += 1,
            }
        }
        Ok::<_, anyhow::Error>(StoreReads {
            rows,
            populate: populate_took,
            db_bytes,
            lists,
            status: Stats::of(sample),
            status_errors: errors,
        })
    }
    .await;
    host.shutdown().await;
    if let Some(d) = keep {
        println!("[8] store kept in {}", d.display());
    }
    result
}

// ---------------------------------------------------------------- 10.-11. lifecycle

/// The initializer's known duration in 10b (`SAMPLE_INIT_MS`).
const INIT_MS: u64 = 200;
/// Bound on one cold start (spawn → first invocation answered).
const COLD_START_LIMIT: Duration = Duration::from_secs(20);
/// Bound on a host's exit after SIGTERM.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// A temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Writes a JSON file relative to the directory.
    fn write(&self, rel: &str, value: &Value) -> Result<()> {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One run of `fnhost start`.
struct ColdStart {
    /// Spawn → the "listening" line on stdout.
    listening: Duration,
    /// Spawn → the first `POST /admin/functions/echo/invoke` answered 200.
    first_invoke: Duration,
    /// Invoke requests sent until one answered 200.
    attempts: u32,
    /// SIGTERM → process exit.
    exit: Duration,
}

/// `host.json` of the cold-start apps: one instance, and an initializer
/// when `init` is set.
fn cold_host_json(init: bool) -> Value {
    let mut v = host_json(32);
    if init {
        v["lifecycle"] = json!({"initializer": {"timeout": "00:00:10"}});
    }
    v
}

/// The last lines of a host's log, for error messages.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Spawns `fnhost start` on a fresh app and data directory, reads its HTTP
/// address from stdout, invokes `echo` until it answers 200, then stops it
/// with SIGTERM and waits for it to exit.
async fn cold_start_once(fnhost: &std::path::Path, app: &TestApp) -> Result<ColdStart> {
    use tokio::io::AsyncBufReadExt as _;
    let scratch = TempDir::new("fnhost-bench-cold")?;
    let data_dir = scratch.path().join("data");
    let log_path = scratch.path().join("host.log");
    let log = std::fs::File::create(&log_path)?;
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new(fnhost)
        .arg("start")
        .arg(app.dir())
        .args(["--port", "0", "--admin-key", ADMIN_KEY, "--data-dir"])
        .arg(&data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", fnhost.display()))?;
    let pid = child.id().context("the host exited at once")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let run = async {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(COLD_START_LIMIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("fnhost: listening on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    return addr
                        .parse::<std::net::SocketAddr>()
                        .with_context(|| format!("bad address in {line:?}"));
                }
            }
            bail!("the host closed stdout before it was listening")
        })
        .await
        .context("no listening line in time")??;
        let listening = t0.elapsed();
        // Keep reading stdout so a later line never meets a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let api = Api::new(addr);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match api
                .invoke("echo", Bytes::from_static(PAYLOAD.as_bytes()))
                .await
            {
                Ok(r) if r.status == 200 => break,
                r => {
                    ensure!(
                        t0.elapsed() < COLD_START_LIMIT,
                        "echo did not answer 200 within {COLD_START_LIMIT:?}: last {:?}",
                        r.map(|r| (r.status, r.text()))
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        let first_invoke = t0.elapsed();
        Ok::<_, anyhow::Error>((listening, first_invoke, attempts, api))
    }
    .await;
    let t1 = Instant::now();
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let exited = tokio::time::timeout(EXIT_LIMIT, child.wait()).await;
    let exit = t1.elapsed();
    let (listening, first_invoke, attempts, _api) =
        run.with_context(|| format!("host log tail:\n{}", log_tail(&log_path)))?;
    match exited {
        Ok(Ok(status)) => ensure!(
            status.success(),
            "the host exited with {status} after SIGTERM"
        ),
        Ok(Err(e)) => bail!("waiting for the host: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            bail!("the host did not exit within {EXIT_LIMIT:?} of SIGTERM");
        }
    }
    Ok(ColdStart {
        listening,
        first_invoke,
        attempts,
        exit,
    })
}

struct ColdStarts {
    plain: Vec<ColdStart>,
    init: Vec<ColdStart>,
}

/// Stats of one field of a series.
fn stats_of(runs: &[ColdStart], f: fn(&ColdStart) -> Duration) -> Stats {
    Stats::of(runs.iter().map(f).collect())
}

fn min_of(runs: &[ColdStart], f: fn(&ColdStart) -> Duration) -> Duration {
    runs.iter().map(f).min().unwrap_or_default()
}

/// 10a/10b: `runs` cold starts without and with a 200 ms initializer,
/// alternating so both series see the same machine load; the first pair is
/// an untimed warm-up (page cache, first exec).
async fn cold_starts(worker: &std::path::Path, runs: usize) -> Result<ColdStarts> {
    let fnhost = fnhost_e2e::binary("fnhost");
    let (mut plain, mut init) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..=runs {
        let app = TestApp::new(worker, cold_host_json(false));
        let a = cold_start_once(&fnhost, &app).await.context("cold start")?;
        let app = TestApp::with_env(
            worker,
            cold_host_json(true),
            json!({"SAMPLE_INIT_MS": INIT_MS.to_string()}),
        );
        let b = cold_start_once(&fnhost, &app)
            .await
            .context("cold start with an initializer")?;
        if i > 0 {
            plain.push(a);
            init.push(b);
        }
    }
    Ok(ColdStarts { plain, init })
}

impl ColdStarts {
    /// p50 with init − 200 ms − p50 without, in ms (may be negative).
    fn overhead_p50_ms(&self) -> f64 {
        let first = |r: &ColdStart| r.first_invoke;
        stats_of(&self.init, first).p50.as_secs_f64() * 1e3
            - INIT_MS as f64
            - stats_of(&self.plain, first).p50.as_secs_f64() * 1e3
    }

    /// The same from the minima (the least disturbed runs).
    fn overhead_min_ms(&self) -> f64 {
        let first = |r: &ColdStart| r.first_invoke;
        min_of(&self.init, first).as_secs_f64() * 1e3
            - INIT_MS as f64
            - min_of(&self.plain, first).as_secs_f64() * 1e3
    }
}

/// 10d: in-process `Host::start` → `wait_ready(1)`, without and with the
/// initializer (alternating, first pair untimed): the worker's own path
/// to ready, which the cold start of 10a may hide behind host start-up.
struct InProcessReady {
    plain: Stats,
    init: Stats,
    plain_min: Duration,
    init_min: Duration,
    /// `SqliteStore::open` of a fresh `events.db`, which `Host::start` does
    /// before it serves HTTP.
    store_open: Stats,
}

impl InProcessReady {
    /// p50 with init − 200 ms − p50 without, in ms.
    fn overhead_ms(&self) -> f64 {
        self.init.p50.as_secs_f64() * 1e3 - INIT_MS as f64 - self.plain.p50.as_secs_f64() * 1e3
    }

    /// The same from the minima.
    fn overhead_min_ms(&self) -> f64 {
        self.init_min.as_secs_f64() * 1e3 - INIT_MS as f64 - self.plain_min.as_secs_f64() * 1e3
    }
}

async fn in_process_ready(worker: &std::path::Path, runs: usize) -> Result<InProcessReady> {
    let (mut plain, mut init, mut store_open) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        for with_init in [false, true] {
            let env = if with_init {
                json!({"SAMPLE_INIT_MS": INIT_MS.to_string()})
            } else {
                json!({})
            };
            let app = TestApp::with_env(worker, cold_host_json(with_init), env);
            let config = app.config();
            let t0 = Instant::now();
            let host = fnhost::Host::start(HostOptions::loopback(config, ADMIN_KEY))
                .await
                .context("host start")?;
            let ready = host.handle().wait_ready(1, COLD_START_LIMIT).await;
            let took = t0.elapsed();
            host.shutdown().await;
            ensure!(
                ready,
                "the worker did not become ready in {COLD_START_LIMIT:?}"
            );
            if i > 0 {
                if with_init { &mut init } else { &mut plain }.push(took);
            }
        }
        let scratch = TempDir::new("fnhost-bench-store")?;
        let db = scratch.path().join("events.db");
        let t0 = Instant::now();
        tokio::task::spawn_blocking(move || SqliteStore::open(&db)).await??;
        if i > 0 {
            store_open.push(t0.elapsed());
        }
    }
    Ok(InProcessReady {
        plain_min: plain.iter().copied().min().unwrap_or_default(),
        init_min: init.iter().copied().min().unwrap_or_default(),
        plain: Stats::of(plain),
        init: Stats::of(init),
        store_open: Stats::of(store_open),
    })
}

struct Replacement {
    /// `HostHandle::kill` called → a ready instance with a new id.
    ready: Stats,
    /// `kill` called → it answered.
    ack: Stats,
    /// `kill` called → the sleeping invocation's result (`Killed`).
    result: Stats,
    not_killed: usize,
}

/// 11: `runs` times, puts a `sleep 60000` invocation on the one instance,
/// kills it with `HostHandle::kill` and times until a replacement instance
/// (a different worker id) is ready.
async fn replacement_ready(worker: &std::path::Path, runs: usize) -> Result<Replacement> {
    let app = TestApp::new(worker, host_json(32));
    let host = app.start(1).await;
    let handle = host.handle().clone();
    let result = async {
        let (mut ready, mut ack, mut ended, mut not_killed) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..runs {
            let status = handle.status().await.context("host status")?;
            let old = status
                .workers
                .iter()
                .find(|w| w.state == "ready")
                .map(|w| w.worker_id.clone())
                .context("no ready worker before the kill")?;
            let inv = handle.submit("sleep", text("60000")).await?;
            wait_in_flight(&handle, 1, Duration::from_secs(10)).await?;
            // Let the request reach the worker.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t0 = Instant::now();
            let answer = handle.kill(&inv.id).await;
            ack.push(t0.elapsed());
            ensure!(answer == CancelResponse::Forced, "kill answered {answer:?}");
            // Poll every 1 ms until a ready instance with a new id shows.
            let deadline = t0 + Duration::from_secs(20);
            loop {
                let s = handle.status().await.context("host status")?;
                if s.workers
                    .iter()
                    .any(|w| w.state == "ready" && w.worker_id != old)
                {
                    ready.push(t0.elapsed());
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "no replacement instance ready 20 s after the kill: {:?}",
                    s.workers
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            match tokio::time::timeout(Duration::from_secs(10), inv.result()).await {
                Ok(Ok(r)) if r.outcome == Outcome::Killed => ended.push(t0.elapsed()),
                _ => not_killed += 1,
            }
        }
        Ok::<_, anyhow::Error>(Replacement {
            ready: Stats::of(ready),
            ack: Stats::of(ack),
            result: Stats::of(ended),
            not_killed,
        })
    }
    .await;
    host.shutdown().await;
    result
}

/// Scenarios 10.-11.
async fn run_lifecycle(worker: &std::path::Path, p: &Params) -> Result<Vec<Row>> {
    let cold = cold_starts(worker, p.lifecycle_runs).await?;
    for (label, runs) in [
        ("without initializer", &cold.plain),
        ("with a 200 ms initializer", &cold.init),
    ] {
        let first = stats_of(runs, |r| r.first_invoke);
        let listening = stats_of(runs, |r| r.listening);
        let exit = stats_of(runs, |r| r.exit);
        println!(
            "[10] cold start {label} ({} runs): first invoke p50 {:?} min {:?} max {:?}; listening p50 {:?}; invoke attempts max {}; SIGTERM → exit p50 {:?} max {:?}",
            first.n,
            first.p50,
            min_of(runs, |r| r.first_invoke),
            first.max,
            listening.p50,
            runs.iter().map(|r| r.attempts).max().unwrap_or(0),
            exit.p50,
            exit.max,
        );
    }
    println!(
        "[10] initializer overhead: p50 {:.1} ms, from minima {:.1} ms",
        cold.overhead_p50_ms(),
        cold.overhead_min_ms()
    );
    let inproc = in_process_ready(worker, p.lifecycle_runs).await?;
    println!(
        "[10] in-process Host::start → worker ready ({} runs): p50 {:?} without initializer, {:?} with (min {:?} / {:?}); overhead {:.1} ms (from minima {:.1} ms); fresh SqliteStore::open p50 {:?} max {:?}",
        inproc.plain.n,
        inproc.plain.p50,
        inproc.init.p50,
        inproc.plain_min,
        inproc.init_min,
        inproc.overhead_ms(),
        inproc.overhead_min_ms(),
        inproc.store_open.p50,
        inproc.store_open.max,
    );
    let repl = replacement_ready(worker, p.lifecycle_runs).await?;
    println!(
        "[11] kill → replacement ready ({} runs): p50 {:?} max {:?}; kill ack p50 {:?}; kill → Killed result p50 {:?} ({} not killed)",
        repl.ready.n, repl.ready.p50, repl.ready.max, repl.ack.p50, repl.result.p50, repl.not_killed
    );
    Ok(lifecycle_table(&cold, &inproc, &repl))
}

fn lifecycle_table(cold: &ColdStarts, inproc: &InProcessReady, repl: &Replacement) -> Vec<Row> {
    let first = |r: &ColdStart| r.first_invoke;
    let listening = |r: &ColdStart| r.listening;
    let mut rows = Vec::new();
    for (name, runs, target) in [
        ("10a. cold start, Rust worker", &cold.plain, Some(150)),
        (
            "10b. cold start, Rust worker, 200 ms initializer",
            &cold.init,
            None,
        ),
    ] {
        let s = stats_of(runs, first);
        rows.push(Row {
            scenario: format!("{name} ({} runs, spawn → first invoke 200)", s.n),
            figure: format!(
                "p50 {} / min {} / max {} (listening p50 {})",
                ms(s.p50),
                ms(min_of(runs, first)),
                ms(s.max),
                ms(stats_of(runs, listening).p50)
            ),
            ratio: "-".into(),
            target: target.map_or("-".into(), |t| format!("p50 < {t} ms")),
            verdict: target.map_or("-", |t| verdict(s.p50 < Duration::from_millis(t))),
        });
    }
    let overhead = cold.overhead_p50_ms();
    rows.push(Row {
        scenario: "10c. initializer overhead (10b − 200 ms − 10a)".into(),
        figure: format!(
            "{overhead:.1} ms at p50 ({:.1} ms from minima)",
            cold.overhead_min_ms()
        ),
        ratio: "-".into(),
        target: "< 20 ms".into(),
        verdict: verdict(overhead < 20.0),
    });
    let overhead = inproc.overhead_ms();
    rows.push(Row {
        scenario: format!(
            "10d. in-process Host::start → worker ready ({} runs each)",
            inproc.plain.n
        ),
        figure: format!(
            "p50 {} without / {} with initializer: overhead {overhead:.1} ms ({:.1} ms from minima; fresh SqliteStore::open p50 {})",
            ms(inproc.plain.p50),
            ms(inproc.init.p50),
            inproc.overhead_min_ms(),
            ms(inproc.store_open.p50)
        ),
        ratio: "-".into(),
        target: "overhead < 20 ms".into(),
        verdict: verdict(overhead < 20.0),
    });
    rows.push(Row {
        scenario: format!(
            "11. kill → replacement instance ready, Rust worker ({} runs)",
            repl.ready.n
        ),
        figure: format!(
            "p50 {} / max {} (kill ack p50 {}, Killed result p50 {}, {} not killed)",
            ms(repl.ready.p50),
            ms(repl.ready.max),
            ms(repl.ack.p50),
            ms(repl.result.p50),
            repl.not_killed
        ),
        ratio: "-".into(),
        target: "p50 < 100 ms".into(),
        verdict: verdict(repl.ready.p50 < Duration::from_millis(100) && repl.not_killed == 0),
    });
    rows
}

// ---------------------------------------------------------------- 12. workers

/// Concurrent callers per worker in scenario 12.
const WORKER_CALLERS: usize = 32;

/// The repository root (this crate's parent).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| ".".into(), std::path::Path::to_path_buf)
}

/// Copies files recursively, skipping caches and host data.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "__pycache__" || name == ".fnhost-data" || name == "node_modules" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `host.json` of scenario 12: one instance, room for every caller, a short
/// terminate grace (the published worker ignores `WorkerTerminate`).
fn workers_host_json() -> Value {
    json!({
        "version": "2.0",
        "functionTimeout": "00:05:00",
        "workers": {
            "processCount": 1,
            "maxConcurrentInvocations": 64,
            "maxQueueLength": 100_000,
            "cancelGracePeriod": "00:00:02",
            "terminateGracePeriod": "00:00:00.500",
        }
    })
}

fn http_function() -> Value {
    json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get", "post"], "authLevel": "anonymous"},
        {"type": "http", "direction": "out", "name": "$return"}
    ]})
}

/// A worker's app in a temporary directory, or why it cannot be built.
enum Prepared {
    App(TempDir),
    /// The setup script to run (and what is missing).
    Missing(String),
}

fn missing(paths: &[std::path::PathBuf], script: &str) -> Option<Prepared> {
    paths.iter().find(|p| !p.is_file()).map(|p| {
        Prepared::Missing(format!(
            "{} is missing: run {script}",
            p.strip_prefix(repo_root()).unwrap_or(p).display()
        ))
    })
}

/// The Rust SDK sample worker with just `echo`.
fn rust_app(worker: &std::path::Path) -> Result<Prepared> {
    let dir = TempDir::new("fnhost-bench-rust")?;
    dir.write("host.json", &workers_host_json())?;
    dir.write(
        "worker.config.json",
        &json!({"description": {
            "language": "rust",
            "defaultExecutablePath": worker.display().to_string(),
            "argumentStyle": "both",
        }}),
    )?;
    dir.write("echo/function.json", &http_function())?;
    Ok(Prepared::App(dir))
}

/// A copy of `sample-workers/python-app` run by the SDK's venv.
fn python_sdk_app() -> Result<Prepared> {
    let sdk = repo_root().join("sample-workers/python");
    let python = sdk.join(".venv/bin/python");
    let script = "sample-workers/python/setup.sh";
    if let Some(m) = missing(
        &[
            python.clone(),
            sdk.join("fnhost_worker/_generated/FunctionRpc_pb2.py"),
        ],
        script,
    ) {
        return Ok(m);
    }
    let dir = TempDir::new("fnhost-bench-pysdk")?;
    copy_dir(&repo_root().join("sample-workers/python-app"), dir.path())?;
    dir.write("host.json", &workers_host_json())?;
    dir.write(
        "worker.config.json",
        &json!({"description": {
            "language": "python",
            "defaultExecutablePath": python.display().to_string(),
            "defaultWorkerPath": "function_app.py",
            "argumentStyle": "both",
        }}),
    )?;
    Ok(Prepared::App(dir))
}

/// `echo` of `sample-workers/node-app`, its script by absolute path.
fn node_sdk_app() -> Result<Prepared> {
    let workers = repo_root().join("sample-workers");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(node) = std::env::split_paths(&path)
        .map(|p| p.join("node"))
        .find(|p| p.is_file())
    else {
        return Ok(Prepared::Missing(
            "`node` is not on PATH: install Node.js 18+, then run sample-workers/node/setup.sh"
                .into(),
        ));
    };
    let script = workers.join("node-app/index.js");
    if let Some(m) = missing(
        &[
            workers.join("node/node_modules/@grpc/grpc-js/package.json"),
            script.clone(),
        ],
        "sample-workers/node/setup.sh",
    ) {
        return Ok(m);
    }
    let dir = TempDir::new("fnhost-bench-node")?;
    dir.write("host.json", &workers_host_json())?;
    dir.write(
        "worker.config.json",
        &json!({"description": {
            "language": "node",
            "defaultExecutablePath": node.display().to_string(),
            "defaultWorkerPath": script.display().to_string(),
            "argumentStyle": "both",
        }}),
    )?;
    dir.write("echo/function.json", &http_function())?;
    Ok(Prepared::App(dir))
}

/// `echo` of `sample-workers/published-python-app` with the sample's launch
/// settings, the venv's python by absolute path.
fn published_python_app() -> Result<Prepared> {
    let root = repo_root();
    let venv = root.join("sample-workers/published-python/.venv");
    let python = venv.join("bin/python");
    if let Some(m) = missing(
        &[python.clone(), venv.join(".fnhost-setup")],
        "sample-workers/published-python/setup.sh",
    ) {
        return Ok(m);
    }
    let src = root.join("sample-workers/published-python-app");
    let dir = TempDir::new("fnhost-bench-pubpy")?;
    copy_dir(&src.join("echo"), &dir.path().join("echo"))?;
    let mut worker: Value = serde_json::from_slice(&std::fs::read(src.join("worker.config.json"))?)
        .context("published-python-app/worker.config.json")?;
    worker["description"]["defaultExecutablePath"] = json!(python.display().to_string());
    dir.write("worker.config.json", &worker)?;
    dir.write("host.json", &workers_host_json())?;
    Ok(Prepared::App(dir))
}

/// CPU time (user + system) of a process so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: &str, ticks_per_s: f64) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / ticks_per_s))
}

/// Clock ticks per second (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One worker's row of scenario 12.
struct WorkerRate {
    name: &'static str,
    outcome: WorkerOutcome,
}

enum WorkerOutcome {
    Measured {
        rate: Throughput,
        /// Worker CPU over the whole run (warm-up included), in cores.
        worker_cpu: Option<f64>,
        /// Host (bench process) CPU over the same span, in cores.
        host_cpu: Option<f64>,
    },
    Skipped(String),
    Failed(String),
}

/// Starts an in-process host on `app`, checks `POST /api/echo` answers its
/// body, then runs the closed loop from 32 callers.
async fn measure_worker(app: &std::path::Path, p: &Params) -> Result<WorkerOutcome> {
    let config = fnhost::config::AppConfig::load(app).context("loading the app")?;
    let host = fnhost::Host::start(HostOptions::loopback(config, ADMIN_KEY))
        .await
        .context("host start")?;
    let result = async {
        ensure!(
            host.handle().wait_ready(1, Duration::from_secs(60)).await,
            "the worker did not become ready within 60 s (FNHOST_BENCH_LOG=info shows its output)"
        );
        let api = Api::new(host.http_addr());
        let r = api
            .request(
                "POST",
                "/api/echo",
                Bytes::from_static(PAYLOAD.as_bytes()),
                None,
            )
            .await?;
        ensure!(
            r.status == 200 && r.body == PAYLOAD.as_bytes(),
            "POST /api/echo answered {} {:?}",
            r.status,
            r.text()
        );
        let pid = worker_pid(host.handle()).await?.to_string();
        let ticks = clock_ticks();
        let (w0, h0, t0) = (
            cpu_time(&pid, ticks),
            cpu_time("self", ticks),
            Instant::now(),
        );
        let rate = closed_loop(WORKER_CALLERS, p, move || {
            let api = api.clone();
            async move {
                matches!(
                    api.request("POST", "/api/echo", Bytes::from_static(PAYLOAD.as_bytes()), None)
                        .await,
                    Ok(r) if r.status == 200
                )
            }
        })
        .await?;
        let wall = t0.elapsed().as_secs_f64();
        let cores = |a: Option<Duration>, b: Option<Duration>| {
            Some((b?.as_secs_f64() - a?.as_secs_f64()) / wall)
        };
        Ok(WorkerOutcome::Measured {
            rate,
            worker_cpu: cores(w0, cpu_time(&pid, ticks)),
            host_cpu: cores(h0, cpu_time("self", ticks)),
        })
    }
    .await;
    host.shutdown().await;
    result
}

/// Scenario 12.
async fn run_workers(worker: &std::path::Path, p: &Params) -> Result<Vec<Row>> {
    type Build<'a> = Box<dyn Fn() -> Result<Prepared> + 'a>;
    let workers: [(&'static str, Build<'_>); 4] = [
        (
            "Rust SDK (fnhost-sample-worker)",
            Box::new(|| rust_app(worker)),
        ),
        (
            "Python SDK (sample-workers/python-app)",
            Box::new(python_sdk_app),
        ),
        ("Node SDK (sample-workers/node-app)", Box::new(node_sdk_app)),
        (
            "published Python worker (azure-functions-worker)",
            Box::new(published_python_app),
        ),
    ];
    let mut rates = Vec::new();
    for (name, build) in workers {
        let outcome = match build() {
            Ok(Prepared::Missing(why)) => WorkerOutcome::Skipped(why),
            Ok(Prepared::App(dir)) => measure_worker(dir.path(), p)
                .await
                .unwrap_or_else(|e| WorkerOutcome::Failed(format!("{e:#}"))),
            Err(e) => WorkerOutcome::Failed(format!("{e:#}")),
        };
        match &outcome {
            WorkerOutcome::Measured {
                rate,
                worker_cpu,
                host_cpu,
            } => println!(
                "[12] {name}: {:.0} inv/s ({} errors); worker CPU {} cores, host+bench {} cores",
                rate.rate,
                rate.errors,
                worker_cpu.map_or("?".into(), |c| format!("{c:.2}")),
                host_cpu.map_or("?".into(), |c| format!("{c:.2}")),
            ),
            WorkerOutcome::Skipped(why) => println!("[12] {name}: SKIPPED, {why}"),
            WorkerOutcome::Failed(e) => println!("[12] {name}: FAILED: {e}"),
        }
        rates.push(WorkerRate { name, outcome });
    }
    Ok(workers_table(&rates))
}

fn workers_table(rates: &[WorkerRate]) -> Vec<Row> {
    let rate_of = |i: usize| match rates.get(i).map(|r| &r.outcome) {
        Some(WorkerOutcome::Measured { rate, .. }) => Some(rate.rate),
        _ => None,
    };
    let rust = rate_of(0);
    let (py_sdk, published) = (rate_of(1), rate_of(3));
    let mut rows = Vec::new();
    for (i, r) in rates.iter().enumerate() {
        let scenario = format!(
            "12{}. POST /api/echo, {} ({WORKER_CALLERS} callers, 1 instance)",
            (b'a' + i as u8) as char,
            r.name
        );
        let (figure, ratio) = match &r.outcome {
            WorkerOutcome::Measured {
                rate,
                worker_cpu,
                host_cpu,
            } => (
                format!(
                    "{:.0} inv/s ({} errors; worker CPU {} cores, host {})",
                    rate.rate,
                    rate.errors,
                    worker_cpu.map_or("?".into(), |c| format!("{c:.2}")),
                    host_cpu.map_or("?".into(), |c| format!("{c:.2}")),
                ),
                rust.map_or("-".into(), |base| format!("{:.2}", rate.rate / base)),
            ),
            WorkerOutcome::Skipped(why) => (format!("skipped: {why}"), "-".into()),
            WorkerOutcome::Failed(e) => (format!("FAILED: {e}"), "-".into()),
        };
        let (target, verdict_) = match i {
            1 => (
                ">= published Python".to_string(),
                match (py_sdk, published) {
                    (Some(a), Some(b)) => verdict(a >= b),
                    _ => "-",
                },
            ),
            _ => ("-".to_string(), "-"),
        };
        rows.push(Row {
            scenario,
            figure,
            ratio,
            target,
            verdict: verdict_,
        });
    }
    rows
}

// ---------------------------------------------------------------- report

struct Row {
    scenario: String,
    figure: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn table(
    p: &Params,
    memory: &Memory,
    baseline: &Baseline,
    library: &Throughput,
    http: &Throughput,
    latency: &OpenLoop,
    cancel: &CancelLatency,
) -> Vec<Row> {
    let lib_ratio = library.rate / baseline.mean();
    let http_ratio = http.rate / baseline.mean();
    vec![
        Row {
            scenario: format!("0. tonic echo stream baseline ({CALLERS} callers, 1 stream)"),
            figure: format!(
                "{:.0} msgs/s (mean of {:.0} before, {:.0} after; {} errors)",
                baseline.mean(),
                baseline.rate,
                baseline.after,
                baseline.errors
            ),
            ratio: "1.00".into(),
            target: "-".into(),
            verdict: "-",
        },
        Row {
            scenario: format!("1. HostHandle::invoke echo ({CALLERS} callers, 1 worker)"),
            figure: format!("{:.0} inv/s ({} errors)", library.rate, library.errors),
            ratio: format!("{lib_ratio:.2}"),
            target: ">= 0.5 (aim 0.8)".into(),
            verdict: verdict(lib_ratio >= 0.5 && library.errors == 0),
        },
        Row {
            scenario: format!("2. POST /api/echo keep-alive ({CALLERS} callers)"),
            figure: format!("{:.0} inv/s ({} errors)", http.rate, http.errors),
            ratio: format!("{http_ratio:.2}"),
            target: "-".into(),
            verdict: "-",
        },
        Row {
            scenario: format!(
                "3. open loop at {:.0}/s for {:?} (achieved {:.0}/s)",
                latency.target_rate, p.open_loop, latency.achieved_rate
            ),
            figure: format!(
                "p50 {} / p99 {} / max {} ({} errors, {} skipped)",
                ms(latency.stats.p50),
                ms(latency.stats.p99),
                ms(latency.stats.max),
                latency.errors,
                latency.skipped
            ),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        },
        Row {
            scenario: format!(
                "4. cancel → Cancelled, sequential, {} in flight",
                p.cancel_count
            ),
            figure: format!(
                "p50 {} / p99 {} / max {} (ack p99 {}, {} not cancelled)",
                ms(cancel.total.p50),
                ms(cancel.total.p99),
                ms(cancel.total.max),
                ms(cancel.ack.p99),
                cancel.not_cancelled
            ),
            ratio: "-".into(),
            target: "p99 < 5 ms".into(),
            verdict: verdict(
                cancel.total.p99 < Duration::from_millis(5) && cancel.not_cancelled == 0,
            ),
        },
        Row {
            scenario: format!("5a. host RSS per in-flight invocation ({})", memory.count),
            figure: format!(
                "{:.2} KiB (+{} KiB)",
                memory.host_per_inv(),
                memory.host_delta_kib
            ),
            ratio: "-".into(),
            target: "< 4 KiB".into(),
            verdict: verdict(memory.host_per_inv() < 4.0),
        },
        Row {
            scenario: format!("5b. worker RSS per in-flight invocation ({})", memory.count),
            figure: format!(
                "{:.2} KiB (+{} KiB)",
                memory.worker_per_inv(),
                memory.worker_delta_kib
            ),
            ratio: "-".into(),
            target: "< 4 KiB".into(),
            verdict: verdict(memory.worker_per_inv() < 4.0),
        },
    ]
}

fn async_table(
    accept: &Throughput,
    accept_only: &Throughput,
    completion: &Completion,
    reads: &StoreReads,
) -> Vec<Row> {
    let mut rows = vec![
        Row {
            scenario: format!(
                "6a. POST invoke-async accepted while they run ({CALLERS} callers, maxConcurrency {ASYNC_CONCURRENCY})"
            ),
            figure: format!("{:.0} accepted/s ({} errors)", accept.rate, accept.errors),
            ratio: "-".into(),
            target: ">= 10000/s".into(),
            verdict: verdict(accept.rate >= 10_000.0 && accept.errors == 0),
        },
        Row {
            scenario: format!(
                "6b. POST invoke-async accepted, runner throttled ({CALLERS} callers, maxConcurrency 1)"
            ),
            figure: format!(
                "{:.0} accepted/s ({} errors)",
                accept_only.rate, accept_only.errors
            ),
            ratio: "-".into(),
            target: ">= 10000/s".into(),
            verdict: verdict(accept_only.rate >= 10_000.0 && accept_only.errors == 0),
        },
        Row {
            scenario: format!(
                "7. {} async echo events, first submit → all ended",
                completion.events
            ),
            figure: format!(
                "{:.0} completed/s ({:.2} s; accepted in {:.2} s; {} failed/aborted, {} rejected{})",
                completion.rate(),
                completion.ended_in.as_secs_f64(),
                completion.accepted_in.as_secs_f64(),
                completion.failed,
                completion.rejected,
                if completion.timed_out { ", TIMED OUT" } else { "" },
            ),
            ratio: "-".into(),
            target: "-".into(),
            verdict: if completion.timed_out || completion.failed > 0 || completion.rejected > 0 {
                "ERRORS"
            } else {
                "-"
            },
        },
        Row {
            scenario: format!("8. populate {} events through SqliteStore::apply", reads.rows),
            figure: format!(
                "{:.1} s ({:.0} rows/s, {} MiB)",
                reads.populate.as_secs_f64(),
                reads.rows as f64 / reads.populate.as_secs_f64(),
                reads.db_bytes / (1 << 20)
            ),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        },
    ];
    for (i, l) in reads.lists.iter().enumerate() {
        let diagnostic = l.label.ends_with("limit=0");
        rows.push(Row {
            scenario: format!(
                "8{}. list ?{} ({} sequential{})",
                (b'a' + i as u8) as char,
                l.label,
                l.stats.n,
                if diagnostic { ", COUNT only" } else { "" }
            ),
            figure: format!(
                "p50 {} / p99 {} / max {} (totalCount {}, {} rows, {} errors)",
                ms(l.stats.p50),
                ms(l.stats.p99),
                ms(l.stats.max),
                l.total,
                l.page_len,
                l.errors
            ),
            ratio: "-".into(),
            target: if diagnostic { "-" } else { "p99 < 10 ms" }.into(),
            verdict: if diagnostic {
                "-"
            } else {
                verdict(l.stats.p99 < Duration::from_millis(10) && l.errors == 0)
            },
        });
    }
    rows.push(Row {
        scenario: format!(
            "9. GET /admin/async-events/<id> ({} sequential, random ids)",
            reads.status.n
        ),
        figure: format!(
            "p50 {} / p99 {} / max {} ({} errors)",
            ms(reads.status.p50),
            ms(reads.status.p99),
            ms(reads.status.max),
            reads.status_errors
        ),
        ratio: "-".into(),
        target: "p99 < 1 ms".into(),
        verdict: verdict(reads.status.p99 < Duration::from_millis(1) && reads.status_errors == 0),
    });
    rows
}

fn print_plain(rows: &[Row]) {
    let w = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (ws, wf, wr, wt) = (
        w(|r| r.scenario.chars().count()),
        w(|r| r.figure.chars().count()),
        w(|r| r.ratio.len()).max(5),
        w(|r| r.target.len()),
    );
    println!(
        "{:<ws$}  {:<wf$}  {:>wr$}  {:<wt$}  result",
        "scenario", "figure", "ratio", "target"
    );
    for r in rows {
        // `{:<N$}` pads by chars, so the arrow in row 4 lines up too.
        println!(
            "{:<ws$}  {:<wf$}  {:>wr$}  {:<wt$}  {}",
            r.scenario, r.figure, r.ratio, r.target, r.verdict
        );
    }
}

fn print_markdown(rows: &[Row], ratio_header: &str) {
    println!("| Scenario | Figure | {ratio_header} | Target | Result |");
    println!("|---|---|---:|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.figure, r.ratio, r.target, r.verdict
        );
    }
}
