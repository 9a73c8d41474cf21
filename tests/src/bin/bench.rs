//! `bench`: throughput, latency, cancel latency and memory of fnhost on
//! loopback, each reported against a plain tonic echo stream measured in the
//! same run.
//!
//! ```text
//! cargo build --release -p fnhost-e2e -p fnhost-sample-worker -p fnhost --bins
//! cargo run --release -p fnhost-e2e --bin bench            # full, < 2 min
//! cargo run --release -p fnhost-e2e --bin bench -- --quick # smoke, < 30 s
//! ```
//!
//! Scenarios, in the order they run (memory first so the host-RSS delta is
//! not hidden by heap the allocator kept from earlier scenarios):
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
//! `FNHOST_BENCH_LOG` sets the log filter (default `warn`; logs go to stderr).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use bytes::Bytes;
use fnhost::{CancelReason, HostHandle, InvocationInput, Outcome, PendingInvocation};
use fnhost_e2e::{Api, TestApp};
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
}

impl Params {
    fn full() -> Self {
        Self {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            open_loop: Duration::from_secs(5),
            cancel_count: 1_000,
            memory_count: 10_000,
        }
    }

    fn quick() -> Self {
        Self {
            warmup: Duration::from_millis(300),
            measure: Duration::from_millis(1500),
            open_loop: Duration::from_millis(1500),
            cancel_count: 200,
            memory_count: 2_000,
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    init_logs();
    let mut quick = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("usage: bench [--quick]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; usage: bench [--quick]"),
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

    let memory = memory_per_invocation(&worker, p.memory_count).await?;
    println!(
        "[5] memory: {} sleeping invocations: host +{} KiB ({:.2} KiB/inv), worker +{} KiB ({:.2} KiB/inv); cancelled all in {:?}",
        memory.count,
        memory.host_delta_kib,
        memory.host_per_inv(),
        memory.worker_delta_kib,
        memory.worker_per_inv(),
        memory.cancel_all,
    );

    let mut baseline = echo_baseline(&p).await?;
    println!(
        "[0] baseline tonic echo stream (before): {:.0} msgs/s ({} errors, {} B/msg)",
        baseline.rate, baseline.errors, baseline.message_bytes
    );

    let library = library_throughput(&worker, &p).await?;
    println!(
        "[1] HostHandle::invoke: {:.0} inv/s ({} errors) = {:.2} x first baseline",
        library.rate,
        library.errors,
        library.rate / baseline.rate
    );

    let http = http_throughput(&worker, &p).await?;
    println!(
        "[2] POST /api/echo: {:.0} inv/s ({} errors) = {:.2} x first baseline",
        http.rate,
        http.errors,
        http.rate / baseline.rate
    );

    // The machine is noisy: measure the baseline again after the throughput
    // runs and compare against the mean of the two.
    let again = echo_baseline(&p).await?;
    println!(
        "[0] baseline tonic echo stream (after): {:.0} msgs/s ({} errors); ratios below use the mean {:.0}",
        again.rate,
        again.errors,
        (baseline.rate + again.rate) / 2.0
    );
    baseline.after = again.rate;
    baseline.errors += again.errors;

    let latency = open_loop_latency(&worker, library.rate / 2.0, p.open_loop).await?;
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

    let cancel = cancel_latency(&worker, p.cancel_count).await?;
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

    let rows = table(&p, &memory, &baseline, &library, &http, &latency, &cancel);
    println!();
    print_plain(&rows);
    println!();
    print_markdown(&rows);
    println!();
    println!("total bench time {:.1?}", started.elapsed());
    Ok(())
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

fn print_markdown(rows: &[Row]) {
    println!("| Scenario | Figure | Ratio to baseline | Target | Result |");
    println!("|---|---|---:|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.figure, r.ratio, r.target, r.verdict
        );
    }
}
