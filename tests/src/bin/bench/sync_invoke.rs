//! Scenarios 0.-5.: synchronous invocations against the echo baseline:
//! memory per in-flight invocation, library and HTTP throughput, open-loop
//! latency and cancel latency.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use fnhost::{CancelReason, HostHandle, Outcome, PendingInvocation};
use fnhost_e2e::{text, TestApp};
use tokio::task::JoinSet;

use crate::baseline::{echo_baseline, Baseline};
use crate::harness::{
    closed_loop_watching, ends_as, host_json, http_closed_loop, on_host, post_echo, wait_in_flight,
    worker_pid, Throughput, CALLERS, PAYLOAD,
};
use crate::http_baseline::plain_http_baseline;
use crate::report::{ms, verdict, Row, Stats};
use crate::Params;

/// Upper bound on requests in flight in the open-loop run.
const OPEN_LOOP_MAX_IN_FLIGHT: u64 = 5_000;
/// How long the sleeping invocations would sleep (they are cancelled).
const SLEEP_MS: &str = "600000";

/// Scenarios 0.-5.
pub async fn run(worker: &Path, p: &Params) -> Result<Vec<Row>> {
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

    let plain = plain_http_baseline(p).await?;
    println!(
        "[2b] plain axum echo (before): {:.0} req/s ({} errors), bench process {:.1} µs CPU/req",
        plain.rate, plain.errors, plain.cpu_us
    );
    let http = http_throughput(worker, p).await?;
    println!(
        "[2] POST /api/echo: {:.0} inv/s ({} errors) = {:.2} x first baseline = {:.2} x plain HTTP",
        http.rate,
        http.errors,
        http.rate / baseline.rate,
        http.rate / plain.rate
    );
    let plain_after = plain_http_baseline(p).await?;
    println!(
        "[2b] plain axum echo (after): {:.0} req/s ({} errors), bench process {:.1} µs CPU/req",
        plain_after.rate, plain_after.errors, plain_after.cpu_us
    );
    let plain = PlainHttp {
        rate: (plain.rate + plain_after.rate) / 2.0,
        cpu_us: (plain.cpu_us + plain_after.cpu_us) / 2.0,
        errors: plain.errors + plain_after.errors,
    };
    let cpu = |t: &Throughput| {
        format!(
            "bench process {:.1} µs CPU/inv, worker {} µs CPU/inv",
            t.cpu_us,
            t.worker_cpu_us
                .map_or("?".to_string(), |w| format!("{w:.1}"))
        )
    };
    println!("[1] CPU: {}", cpu(&library));
    println!(
        "[2] CPU: {} (the plain echo's {:.1} µs is the load generator and a minimal server)",
        cpu(&http),
        plain.cpu_us
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
        p,
        &Measured {
            memory: &memory,
            baseline: &baseline,
            library: &library,
            http: &http,
            plain: &plain,
            latency: &latency,
            cancel: &cancel,
        },
    ))
}

/// Every figure the core scenarios measured, for [`table`].
struct Measured<'a> {
    memory: &'a Memory,
    baseline: &'a Baseline,
    library: &'a Throughput,
    http: &'a Throughput,
    plain: &'a PlainHttp,
    latency: &'a OpenLoop,
    cancel: &'a CancelLatency,
}

/// The plain-HTTP baseline, the mean of its runs before and after (2).
struct PlainHttp {
    rate: f64,
    cpu_us: f64,
    errors: u64,
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

/// Submits `n` sleeping invocations.
async fn submit_sleepers(handle: &HostHandle, n: usize) -> Result<Vec<PendingInvocation>> {
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        pending.push(handle.submit("sleep", text(SLEEP_MS)).await?);
    }
    Ok(pending)
}

// ---------------------------------------------------------------- 1. library

async fn library_throughput(worker: &Path, p: &Params) -> Result<Throughput> {
    let app = TestApp::new(worker, host_json(256));
    on_host(&app, |handle| async move {
        let workers = worker_pid(&handle).await.into_iter().collect();
        closed_loop_watching(CALLERS, p, workers, move || {
            let h = handle.clone();
            async move { matches!(h.invoke("echo", text(PAYLOAD)).await, Ok(r) if r.is_success()) }
        })
        .await
    })
    .await
}

// ---------------------------------------------------------------- 2. HTTP

async fn http_throughput(worker: &Path, p: &Params) -> Result<Throughput> {
    let app = TestApp::new(worker, host_json(256));
    http_closed_loop(&app, p, |api| async move { post_echo(&api).await }).await
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
async fn open_loop_latency(worker: &Path, rate: f64, duration: Duration) -> Result<OpenLoop> {
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

async fn cancel_latency(worker: &Path, n: usize) -> Result<CancelLatency> {
    let app = TestApp::new(worker, host_json(n.max(1_000)));
    on_host(&app, |handle| async move {
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
            if ends_as(inv, Outcome::Cancelled).await {
                total.push(t0.elapsed());
            } else {
                not_cancelled += 1;
            }
        }
        Ok(CancelLatency {
            total: Stats::of(total),
            ack: Stats::of(ack),
            not_cancelled,
        })
    })
    .await
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

async fn memory_per_invocation(worker: &Path, n: usize) -> Result<Memory> {
    let app = TestApp::new(worker, host_json(n));
    on_host(&app, |handle| async move {
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
    })
    .await
}

// ---------------------------------------------------------------- table

fn table(p: &Params, m: &Measured<'_>) -> Vec<Row> {
    let Measured {
        memory,
        baseline,
        library,
        http,
        plain,
        latency,
        cancel,
    } = *m;
    let lib_ratio = library.rate / baseline.mean();
    let http_ratio = http.rate / plain.rate;
    let worker_cpu = |t: &Throughput| {
        t.worker_cpu_us
            .map_or("?".to_string(), |w| format!("{w:.0}"))
    };
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
            figure: format!(
                "{:.0} inv/s ({} errors); CPU µs/inv: bench process {:.0}, worker {}",
                library.rate,
                library.errors,
                library.cpu_us,
                worker_cpu(library)
            ),
            ratio: format!("{lib_ratio:.2}"),
            target: ">= 0.5 (aim 0.8)".into(),
            verdict: verdict(lib_ratio >= 0.5 && library.errors == 0),
        },
        Row {
            scenario: format!("2b. plain axum echo, same client ({CALLERS} callers)"),
            figure: format!(
                "{:.0} req/s (mean of before and after; {} errors); CPU µs/req: bench process {:.0}",
                plain.rate, plain.errors, plain.cpu_us
            ),
            ratio: "1.00 (for 2.)".into(),
            target: "-".into(),
            verdict: "-",
        },
        Row {
            scenario: format!("2. POST /api/echo keep-alive ({CALLERS} callers)"),
            figure: format!(
                "{:.0} inv/s ({} errors); CPU µs/inv: bench process {:.0}, worker {}",
                http.rate,
                http.errors,
                http.cpu_us,
                worker_cpu(http)
            ),
            ratio: format!("{http_ratio:.2} x 2b."),
            target: ">= 0.45 x 2b.".into(),
            verdict: verdict(http_ratio >= 0.45 && http.errors == 0),
        },
        Row {
            scenario: format!(
                "3. open loop at {:.0}/s for {:?} (achieved {:.0}/s)",
                latency.target_rate, p.open_loop, latency.achieved_rate
            ),
            figure: format!(
                "{} ({} errors, {} skipped)",
                latency.stats.spread(),
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
                "{} (ack p99 {}, {} not cancelled)",
                cancel.total.spread(),
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
