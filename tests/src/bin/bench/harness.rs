//! What several scenario groups share: the worker's `host.json`, the
//! closed loop (plain and over HTTP), a host started and stopped around a
//! body, and a few looks at the host's status and invocations.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use bytes::Bytes;
use fnhost::{HostHandle, Outcome, PendingInvocation};
use fnhost_e2e::{Api, TestApp};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::Params;

/// Concurrent callers in the closed-loop scenarios.
pub const CALLERS: usize = 64;
/// Upper bound on calls per caller in one closed-loop run.
const MAX_CALLS_PER_CALLER: u64 = 5_000_000;
/// The no-op payload.
pub const PAYLOAD: &str = "x";

/// `host.json` for one worker instance with room for `concurrency`
/// invocations and short grace periods so shutdown is quick.
pub fn host_json(concurrency: usize) -> Value {
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

/// The pid of the host's first worker instance.
pub async fn worker_pid(handle: &HostHandle) -> Result<u32> {
    worker_pids(handle)
        .await?
        .first()
        .copied()
        .context("no worker pid in host status")
}

/// The pids of all the host's worker instances that have one.
pub async fn worker_pids(handle: &HostHandle) -> Result<Vec<u32>> {
    let status = handle.status().await.context("host status")?;
    Ok(status.workers.iter().filter_map(|w| w.pid).collect())
}

/// Polls the host until `n` invocations are on workers, up to `limit`.
pub async fn wait_in_flight(handle: &HostHandle, n: usize, limit: Duration) -> Result<()> {
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

/// A closed-loop throughput figure.
pub struct Throughput {
    pub rate: f64,
    pub errors: u64,
    /// CPU time of the bench process (the host, when it runs in it, and the
    /// load generator) per successful call over the measured window, in µs.
    pub cpu_us: f64,
    /// CPU time of the watched worker processes (summed) per successful
    /// call, in µs.
    pub worker_cpu_us: Option<f64>,
}

/// `/proc` reports CPU time in USER_HZ ticks, which Linux fixes at 100/s.
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of process `pid` (`self` for this one), in ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces and ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Runs `callers` loops of `call` (each waits for its answer before the next
/// call), counts successes over `p.measure` after `p.warmup`.
pub async fn closed_loop<F, Fut>(callers: usize, p: &Params, call: F) -> Result<Throughput>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    closed_loop_watching(callers, p, Vec::new(), call).await
}

/// [`closed_loop`], also reporting the CPU time of all `workers` together
/// per call (none when there are no workers or one's `/proc` entry is gone).
pub async fn closed_loop_watching<F, Fut>(
    callers: usize,
    p: &Params,
    workers: Vec<u32>,
    call: F,
) -> Result<Throughput>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let workers: Vec<String> = workers.iter().map(u32::to_string).collect();
    let worker_ticks = || {
        (!workers.is_empty())
            .then(|| workers.iter().map(|w| cpu_ticks(w)).sum::<Option<u64>>())
            .flatten()
    };
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
    let (cpu0, wcpu0) = (cpu_ticks("self"), worker_ticks());
    tokio::time::sleep(p.measure).await;
    let (ok1, err1, elapsed) = (
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        t0.elapsed(),
    );
    let (cpu1, wcpu1) = (cpu_ticks("self"), worker_ticks());
    let calls = (ok1 - ok0).max(1) as f64;
    let per_call = |a: Option<u64>, b: Option<u64>| {
        Some(b?.saturating_sub(a?) as f64 / TICKS_PER_SECOND * 1e6 / calls)
    };
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
        cpu_us: per_call(cpu0, cpu1).unwrap_or(f64::NAN),
        worker_cpu_us: per_call(wcpu0, wcpu1),
    })
}

/// Starts a host on `app`, runs [`closed_loop`] from `CALLERS` keep-alive
/// HTTP callers (each call gets its own clone of the client), then stops it.
pub async fn http_closed_loop<F, Fut>(app: &TestApp, p: &Params, request: F) -> Result<Throughput>
where
    F: Fn(Api) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let workers = worker_pid(host.handle()).await.into_iter().collect();
    let result = closed_loop_watching(CALLERS, p, workers, move || request(api.clone())).await;
    host.shutdown().await;
    result
}

/// Starts a host on `app` with one ready instance, runs `body` on its
/// handle, and stops the host whether or not `body` succeeded.
pub async fn on_host<T, F, Fut>(app: &TestApp, body: F) -> Result<T>
where
    F: FnOnce(HostHandle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let host = app.start(1).await;
    let result = body(host.handle().clone()).await;
    host.shutdown().await;
    result
}

/// Whether `inv` ends with `outcome` within 10 s.
pub async fn ends_as(inv: PendingInvocation, outcome: Outcome) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(10), inv.result()).await,
        Ok(Ok(r)) if r.outcome == outcome
    )
}

/// `POST /api/echo` with the payload; true on 200.
pub async fn post_echo(api: &Api) -> bool {
    matches!(
        api.request("POST", "/api/echo", Bytes::from_static(PAYLOAD.as_bytes()), None)
            .await,
        Ok(r) if r.status == 200
    )
}
