//! Cost growth (`--only growth`), on the default SQLite store, each part
//! its own table: the library path with 1, 2 and 4 worker instances (a.),
//! memory per in-flight invocation at two counts (b.), cancel latency with
//! many in flight, one and 100 at a time (c.), list and status reads at two
//! store sizes (d.), and the store's bytes per event and a retention prune
//! of a large backlog while accepts go on (e.).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use fnhost::{CancelReason, Host, HostHandle, HostOptions, Outcome, PendingInvocation};
use fnhost_e2e::{text, Api, TempDir, TestApp, ADMIN_KEY};
use serde_json::json;
use tokio::task::JoinSet;

use crate::async_events::{
    async_host_json, invoke_async, list_shapes, time_list, total_count, ListSeries,
};
use crate::harness::{
    closed_loop_watching, ends_as, host_json, on_host, wait_in_flight, worker_pid, worker_pids,
    Throughput, CALLERS, PAYLOAD,
};
use crate::populate::{populate, store_bytes, Rng};
use crate::report::{ms, verdict, Row, Stats};
use crate::Params;

/// Worker instances of a.; the first is the baseline of the ratios.
const PROCESS_COUNTS: [usize; 3] = [1, 2, 4];
/// Concurrent cancels in c.'s batched series.
const CANCEL_BATCH: usize = 100;
/// Concurrent cancels when clearing sleepers after a measurement.
const CLEANUP_BATCH: usize = 1_000;
/// How long the sleepers would sleep (they are cancelled).
const SLEEP_MS: &str = "600000";
/// d. and e. populate events that ended at least this long ago, so that
/// e.'s host finds all of them past its retention.
const POPULATED_AGE: Duration = Duration::from_secs(15 * 60);
/// `asyncEvents.retention` of e.'s host: shorter than [`POPULATED_AGE`],
/// longer than the run, so only populated events are pruned.
const PRUNE_RETENTION: &str = "00:10:00";
/// Longest wait for e.'s prune to end.
const PRUNE_LIMIT: Duration = Duration::from_secs(300);
/// Poll interval of the store's total while the prune runs.
const PRUNE_POLL: Duration = Duration::from_millis(20);
/// b. reads RSS this long after the count is in flight: the worker takes
/// in the last requests, and mimalloc (the bench's allocator, as the
/// `fnhost` binary's) returns the pages freed after the burst of submits,
/// which it keeps for reuse for 1 s (`purge_delay` of mimalloc v3). Read
/// at 0.5 s, the host's figure at 100k in flight was 1.02-1.37 KiB against
/// 1.15-1.24 KiB at 2.5 s.
const SETTLE: Duration = Duration::from_millis(2_500);
/// Untimed status requests before d.'s timed series.
const STATUS_WARMUP: usize = 20;

/// One table per part, with its ratio column's header.
pub async fn run(worker: &Path, p: &Params) -> Result<Vec<(Vec<Row>, &'static str)>> {
    // Memory first, in a fresh host: heap freed by earlier parts would be
    // reused and hide part of the growth (see scenario 5).
    let memory = memory_growth(worker, p.growth_in_flight).await?;
    let cancel = cancel_growth(worker, p).await?;
    let scaling = scaling(worker, p).await?;
    let stores = stores(worker, p).await?;
    Ok(vec![
        (
            scaling_table(&scaling),
            "Ratio to processCount 1 (inv/s; CPU/inv bench, workers)",
        ),
        (memory.table(), "Per inv, ratio to the smaller count"),
        (
            cancel.table(p.growth_cancel_in_flight),
            "p99 ratio to one at a time",
        ),
        (stores.reads_table(), "p99 ratio to the smaller store"),
        (stores.store_table(), "Ratio (during / after)"),
    ])
}

/// Part b. alone (`--only memory`), in a fresh process as in [`run`].
pub async fn run_memory(worker: &Path, p: &Params) -> Result<(Vec<Row>, &'static str)> {
    let memory = memory_growth(worker, p.growth_in_flight).await?;
    Ok((memory.table(), "Per inv, ratio to the smaller count"))
}

/// Cancels `invs` all at once and times each from its cancel to its
/// result: `None` where the result was not `Cancelled` within 10 s.
async fn timed_cancels(handle: &HostHandle, invs: Vec<PendingInvocation>) -> Vec<Option<Duration>> {
    futures_util::future::join_all(invs.into_iter().map(|inv| async move {
        let t0 = Instant::now();
        handle.cancel(&inv.id, CancelReason::Requested).await;
        ends_as(inv, Outcome::Cancelled).await.then(|| t0.elapsed())
    }))
    .await
}

/// Cancels what is left of `invs` in batches of [`CLEANUP_BATCH`]; returns
/// how long it took and how many did not end `Cancelled`.
async fn cancel_rest(
    handle: &HostHandle,
    invs: impl Iterator<Item = PendingInvocation>,
) -> (Duration, usize) {
    let (t0, mut invs, mut missed) = (Instant::now(), invs.peekable(), 0);
    while invs.peek().is_some() {
        let batch = invs.by_ref().take(CLEANUP_BATCH).collect();
        missed += timed_cancels(handle, batch)
            .await
            .iter()
            .filter(|t| t.is_none())
            .count();
    }
    (t0.elapsed(), missed)
}

// ---------------------------------------------------------------- a. scaling

struct Scale {
    processes: usize,
    workers_watched: usize,
    run: Throughput,
}

/// Scenario 1's closed loop with 1, 2 and 4 worker instances.
async fn scaling(worker: &Path, p: &Params) -> Result<Vec<Scale>> {
    let mut out = Vec::new();
    for processes in PROCESS_COUNTS {
        let mut config = host_json(256);
        config["workers"]["processCount"] = json!(processes);
        let app = TestApp::new(worker, config);
        let host = app.start(processes).await;
        let handle = host.handle().clone();
        let run = async {
            let pids = worker_pids(&handle).await?;
            let watched = pids.len();
            let h = handle.clone();
            let run =
                closed_loop_watching(CALLERS, p, pids, move || {
                    let h = h.clone();
                    async move {
                        matches!(h.invoke("echo", text(PAYLOAD)).await, Ok(r) if r.is_success())
                    }
                })
                .await?;
            Ok::<_, anyhow::Error>((watched, run))
        }
        .await;
        host.shutdown().await;
        let (workers_watched, run) = run?;
        println!(
            "[growth a] processCount {processes}: {:.0} inv/s ({} errors); CPU µs/inv: bench process {:.1}, workers {} ({workers_watched} pids)",
            run.rate,
            run.errors,
            run.cpu_us,
            run.worker_cpu_us.map_or("?".into(), |w| format!("{w:.1}")),
        );
        out.push(Scale {
            processes,
            workers_watched,
            run,
        });
    }
    Ok(out)
}

fn scaling_table(scales: &[Scale]) -> Vec<Row> {
    let base = &scales[0].run;
    let ratio = |a: f64, b: f64| format!("{:.2}x", a / b);
    let worker_ratio = |t: &Throughput| match (t.worker_cpu_us, base.worker_cpu_us) {
        (Some(a), Some(b)) => ratio(a, b),
        _ => "?".into(),
    };
    scales
        .iter()
        .map(|s| Row {
            scenario: format!(
                "a. HostHandle::invoke echo, processCount {} ({CALLERS} callers)",
                s.processes
            ),
            figure: format!(
                "{:.0} inv/s ({} errors); CPU µs/inv: bench process {:.1}, workers {} (sum of {} pids)",
                s.run.rate,
                s.run.errors,
                s.run.cpu_us,
                s.run
                    .worker_cpu_us
                    .map_or("?".into(), |w| format!("{w:.1}")),
                s.workers_watched
            ),
            ratio: format!(
                "{}; {} / {}",
                ratio(s.run.rate, base.rate),
                ratio(s.run.cpu_us, base.cpu_us),
                worker_ratio(&s.run)
            ),
            target: "-".into(),
            verdict: if s.run.errors == 0 { "-" } else { "ERRORS" },
        })
        .collect()
}

// ---------------------------------------------------------------- b. memory

/// Resident set size of a process in KiB: `Rss` of `/proc/<pid>/smaps_rollup`,
/// a walk of the page tables, so exact at the moment it is read.
fn rss_kib(pid: &str) -> Result<i64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text.lines().find_map(|l| l.strip_prefix("Rss:"));
    line.and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no Rss in {path}"))
}

/// RSS growth of the host (the bench process) and the worker with `count`
/// invocations in flight.
struct MemoryPoint {
    count: usize,
    host_kib: i64,
    worker_kib: i64,
}

struct MemoryGrowth {
    points: Vec<MemoryPoint>,
    /// A count that was not reached, and why.
    unreached: Option<(usize, String)>,
    cancel_all: Duration,
    not_cancelled: usize,
}

/// One fresh host with room for the larger count; its RSS before any
/// invocation, then with each count of `sleep` invocations in flight.
async fn memory_growth(worker: &Path, counts: [usize; 2]) -> Result<MemoryGrowth> {
    let app = TestApp::new(worker, host_json(counts[1]));
    on_host(&app, |handle| async move {
        let pid = worker_pid(&handle).await?.to_string();
        let (host0, worker0) = (rss_kib("self")?, rss_kib(&pid)?);
        let mut pending = Vec::with_capacity(counts[1]);
        let (mut points, mut unreached) = (Vec::new(), None);
        for count in counts {
            while pending.len() < count {
                pending.push(handle.submit("sleep", text(SLEEP_MS)).await?);
            }
            let limit = Duration::from_secs(30) + Duration::from_millis(count as u64);
            let point = async {
                wait_in_flight(&handle, count, limit).await?;
                tokio::time::sleep(SETTLE).await;
                Ok::<_, anyhow::Error>(MemoryPoint {
                    count,
                    host_kib: rss_kib("self")? - host0,
                    worker_kib: rss_kib(&pid)? - worker0,
                })
            };
            match point.await {
                Ok(point) => points.push(point),
                Err(e) => {
                    println!("[growth b] {count} in flight NOT REACHED: {e:#}");
                    unreached = Some((count, format!("{e:#}")));
                    break;
                }
            }
        }
        for m in &points {
            println!(
                "[growth b] {} sleeping invocations: host +{} KiB ({:.2} KiB/inv), worker +{} KiB ({:.2} KiB/inv)",
                m.count,
                m.host_kib,
                m.host_kib as f64 / m.count as f64,
                m.worker_kib,
                m.worker_kib as f64 / m.count as f64
            );
        }
        let (cancel_all, not_cancelled) = cancel_rest(&handle, pending.into_iter()).await;
        println!("[growth b] cancelled all in {cancel_all:?} ({not_cancelled} not cancelled)");
        Ok(MemoryGrowth {
            points,
            unreached,
            cancel_all,
            not_cancelled,
        })
    })
    .await
}

impl MemoryGrowth {
    fn table(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (side, kib) in [
            (
                "host",
                (|m: &MemoryPoint| m.host_kib) as fn(&MemoryPoint) -> i64,
            ),
            ("worker", |m| m.worker_kib),
        ] {
            let per_inv = |m: &MemoryPoint| kib(m) as f64 / m.count as f64;
            let first = self.points.first().map(per_inv);
            for (i, m) in self.points.iter().enumerate() {
                let ratio = per_inv(m) / first.unwrap_or(f64::NAN);
                // Flat: the larger count costs at most 10% more per invocation.
                let flat = i == 0 || ratio <= 1.10;
                rows.push(Row {
                    scenario: format!("b. {side} RSS per in-flight sleep invocation ({})", m.count),
                    figure: format!("{:.2} KiB (+{} KiB)", per_inv(m), kib(m)),
                    ratio: format!("{ratio:.2}x"),
                    target: if i == 0 {
                        "< 2 KiB"
                    } else {
                        "< 2 KiB, <= 1.10x"
                    }
                    .into(),
                    verdict: verdict(per_inv(m) < 2.0 && flat),
                });
            }
        }
        if let Some((count, why)) = &self.unreached {
            rows.push(Row {
                scenario: format!("b. {count} in flight"),
                figure: format!("not reached: {why}"),
                ratio: "-".into(),
                target: "reached".into(),
                verdict: "MISSED",
            });
        }
        rows.push(Row {
            scenario: "b. cancel all of them afterwards (1,000 at a time)".into(),
            figure: format!(
                "{:.2} s ({} not cancelled)",
                self.cancel_all.as_secs_f64(),
                self.not_cancelled
            ),
            ratio: "-".into(),
            target: "-".into(),
            verdict: if self.not_cancelled == 0 {
                "-"
            } else {
                "ERRORS"
            },
        });
        rows
    }
}

// ---------------------------------------------------------------- c. cancel

struct CancelGrowth {
    one: Stats,
    batched: Stats,
    not_cancelled: usize,
}

/// Puts enough `sleep` invocations in flight that at least
/// `growth_cancel_in_flight` stay in flight through every timed cancel,
/// then cancels them one at a time, then [`CANCEL_BATCH`] at a time.
async fn cancel_growth(worker: &Path, p: &Params) -> Result<CancelGrowth> {
    let timed = p.growth_cancel_sequential + p.growth_cancel_batches * CANCEL_BATCH;
    let total = p.growth_cancel_in_flight + timed;
    let app = TestApp::new(worker, host_json(total));
    on_host(&app, |handle| async move {
        let mut pending = Vec::with_capacity(total);
        for _ in 0..total {
            pending.push(handle.submit("sleep", text(SLEEP_MS)).await?);
        }
        wait_in_flight(&handle, total, Duration::from_secs(60)).await?;
        // As in scenario 4: let the last requests reach the worker so no
        // cancel overtakes its request.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut invs = pending.into_iter();
        let (mut one, mut batched, mut not_cancelled) = (Vec::new(), Vec::new(), 0);
        let mut record = |into: &mut Vec<Duration>, times: Vec<Option<Duration>>| {
            for t in times {
                match t {
                    Some(t) => into.push(t),
                    None => not_cancelled += 1,
                }
            }
        };
        for inv in invs.by_ref().take(p.growth_cancel_sequential) {
            record(&mut one, timed_cancels(&handle, vec![inv]).await);
        }
        for _ in 0..p.growth_cancel_batches {
            let batch = invs.by_ref().take(CANCEL_BATCH).collect();
            record(&mut batched, timed_cancels(&handle, batch).await);
        }
        let (_, missed) = cancel_rest(&handle, invs).await;
        ensure!(missed == 0, "{missed} untimed sleepers did not end cancelled");
        let (one, batched) = (Stats::of(one), Stats::of(batched));
        println!(
            "[growth c] cancel → Cancelled, >= {} in flight: one at a time {} ({}); {CANCEL_BATCH} at a time {} ({}); {not_cancelled} not cancelled",
            p.growth_cancel_in_flight,
            one.spread(),
            one.n,
            batched.spread(),
            batched.n
        );
        Ok(CancelGrowth {
            one,
            batched,
            not_cancelled,
        })
    })
    .await
}

impl CancelGrowth {
    fn table(&self, in_flight: usize) -> Vec<Row> {
        let row = |how: &str, s: &Stats| Row {
            scenario: format!("c. cancel → Cancelled, {how}, >= {in_flight} in flight"),
            figure: format!("{} ({} timed)", s.spread(), s.n),
            ratio: format!("{:.2}x", s.p99.as_secs_f64() / self.one.p99.as_secs_f64()),
            target: "p99 < 5 ms".into(),
            verdict: verdict(s.p99 < Duration::from_millis(5) && self.not_cancelled == 0),
        };
        let mut rows = vec![
            row("one at a time", &self.one),
            row(&format!("{CANCEL_BATCH} at a time"), &self.batched),
        ];
        if self.not_cancelled > 0 {
            rows[1].figure += &format!("; {} not cancelled", self.not_cancelled);
        }
        rows
    }
}

// ---------------------------------------------------------------- d./e. stores

/// d.'s figures at one store size.
struct Level {
    rows: usize,
    /// Time to populate the rows added for this level.
    populate: Duration,
    /// `events.db` (and WAL) after the populating store closed, which
    /// checkpoints the WAL into the database file.
    bytes: u64,
    lists: Vec<ListSeries>,
    status: Stats,
    status_errors: u64,
}

/// e.'s figures: accepts while the prune of the populated backlog runs and
/// after it.
struct Prune {
    rows: usize,
    /// From `Host::start` until the total first fell below the populated
    /// rows plus the accepted events, and until at most one caller's worth
    /// of populated rows was left; `None`: not within [`PRUNE_LIMIT`].
    first_gone: Option<Duration>,
    ended: Option<Duration>,
    /// From `Host::start` until the callers began.
    callers_began: Duration,
    during: Accepts,
    after: Accepts,
}

/// Accepts of one window: 202s answered in it per second, and the
/// latency of requests sent in it.
struct Accepts {
    window: Duration,
    rate: f64,
    latency: Stats,
    errors: u64,
}

/// The runner's own rows: events accepted and run through the API.
struct LiveBytes {
    events: u64,
    bytes: u64,
    /// A WAL was still there after the store was closed (so `bytes`
    /// includes it).
    wal_left: bool,
}

struct Stores {
    levels: Vec<Level>,
    live: LiveBytes,
    prune: Prune,
}

/// Populates a store to each of `growth_rows` in turn (the same shape as
/// scenario 8, ended [`POPULATED_AGE`] ago), timing lists and status reads
/// at each size; a copy of the first size is pruned under accepts.
async fn stores(worker: &Path, p: &Params) -> Result<Stores> {
    let keep = std::env::var_os("FNHOST_BENCH_GROWTH_DIR").map(PathBuf::from);
    let temp = TempDir::new("fnhost-growth")?;
    let root = match &keep {
        Some(d) => {
            ensure!(
                !d.exists(),
                "FNHOST_BENCH_GROWTH_DIR {} exists already",
                d.display()
            );
            d.clone()
        }
        None => temp.path().to_path_buf(),
    };
    let (list_dir, prune_dir) = (root.join("list"), root.join("prune"));
    let now_ms = fnhost::events::time::now_ms() - POPULATED_AGE.as_millis() as i64;
    let (mut levels, mut ids, mut written) = (Vec::new(), Vec::new(), 0);
    for rows in p.growth_rows {
        let t0 = Instant::now();
        let (dir, add) = (list_dir.clone(), rows - written);
        ids.extend(tokio::task::spawn_blocking(move || populate(&dir, add, now_ms)).await??);
        let populate = t0.elapsed();
        written = rows;
        let bytes = store_bytes(&list_dir);
        println!(
            "[growth d] populated {add} events to {rows} in {populate:?} ({:.0} rows/s); {} MiB, {:.0} B/event",
            add as f64 / populate.as_secs_f64(),
            bytes >> 20,
            bytes as f64 / rows as f64
        );
        if levels.is_empty() {
            std::fs::create_dir_all(&prune_dir)?;
            std::fs::copy(list_dir.join("events.db"), prune_dir.join("events.db"))
                .context("copying the populated store for e.")?;
        }
        let (lists, status, status_errors) = reads(worker, &list_dir, now_ms, &ids, p).await?;
        levels.push(Level {
            rows,
            populate,
            bytes,
            lists,
            status,
            status_errors,
        });
    }
    let prune = prune_under_accepts(worker, &prune_dir, p.growth_rows[0], p).await?;
    let live = live_bytes(worker, &root.join("live"), p.growth_live_events).await?;
    if let Some(d) = keep {
        println!("[growth] stores kept in {}", d.display());
    }
    Ok(Stores {
        levels,
        live,
        prune,
    })
}

/// A host on `dir` for `app`, with one ready worker.
async fn host_on(app: &TestApp, dir: &Path) -> Result<Host> {
    let opts = HostOptions {
        data_dir: dir.to_path_buf(),
        ..HostOptions::loopback(app.config(), ADMIN_KEY)
    };
    let host = Host::start(opts).await.context("host start")?;
    if !host.handle().wait_ready(1, Duration::from_secs(20)).await {
        host.shutdown().await;
        anyhow::bail!("the worker did not become ready");
    }
    Ok(host)
}

/// d. at one size: scenario 8's two page shapes and status reads of
/// random populated ids, one request at a time.
async fn reads(
    worker: &Path,
    dir: &Path,
    now_ms: i64,
    ids: &[String],
    p: &Params,
) -> Result<(Vec<ListSeries>, Stats, u64)> {
    let app = TestApp::new(worker, async_host_json(256));
    let host = host_on(&app, dir).await?;
    let api = Api::new(host.http_addr());
    let mut lists = Vec::new();
    for (query, label) in list_shapes(now_ms, false) {
        let l = time_list(&api, query, label, p.list_requests).await;
        println!(
            "[growth d] GET /admin/async-events?{}: {} (totalCount {}, {} rows, {} errors)",
            l.label,
            l.stats.spread(),
            l.total,
            l.page_len,
            l.errors
        );
        lists.push(l);
    }
    let mut rng = Rng(0x57a7);
    let (mut sample, mut errors) = (Vec::with_capacity(p.status_requests), 0);
    for i in 0..STATUS_WARMUP + p.status_requests {
        let id = &ids[rng.below(ids.len() as u64) as usize];
        let t0 = Instant::now();
        let answer = api.admin_get(&format!("/admin/async-events/{id}")).await;
        match answer {
            Ok(r) if r.status == 200 => sample.extend((i >= STATUS_WARMUP).then(|| t0.elapsed())),
            _ => errors += 1,
        }
    }
    let status = Stats::of(sample);
    println!(
        "[growth d] GET /admin/async-events/<id>: {} ({errors} errors)",
        status.spread()
    );
    host.shutdown().await;
    Ok((lists, status, errors))
}

/// One accept: when it was sent (since the callers began), how long it
/// took, and whether it was a 202.
type Sent = (Duration, Duration, bool);

/// e.: a host whose retention makes every populated event of `dir`
/// prunable; its pruner starts at once, while [`CALLERS`] callers send
/// accepts until [`Params::measure`] after the prune ended.
async fn prune_under_accepts(worker: &Path, dir: &Path, rows: usize, p: &Params) -> Result<Prune> {
    let mut config = async_host_json(256);
    config["asyncEvents"]["retention"] = json!(PRUNE_RETENTION);
    // Only the prune at start: the next one would find nothing.
    config["asyncEvents"]["pruneInterval"] = json!("01:00:00");
    let app = TestApp::new(worker, config);
    let started = Instant::now();
    let host = host_on(&app, dir).await?;
    let api = Api::new(host.http_addr());
    let callers_began = started.elapsed();
    let (stop, accepted) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let began = Instant::now();
    let mut callers = JoinSet::new();
    for _ in 0..CALLERS {
        let (api, stop, accepted) = (api.clone(), stop.clone(), accepted.clone());
        callers.spawn(async move {
            let mut sent: Vec<Sent> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (at, t0) = (began.elapsed(), Instant::now());
                let ok = invoke_async(&api).await;
                accepted.fetch_add(u64::from(ok), Ordering::Relaxed);
                sent.push((at, t0.elapsed(), ok));
            }
            sent
        });
    }
    let watched = async {
        let (mut first_gone, rows) = (None, rows as u64);
        loop {
            let total = total_count(&api, "limit=0").await?;
            // Read after the total: every event counted here is in it, and
            // at most one per caller is in it but not yet counted.
            let acc = accepted.load(Ordering::Relaxed);
            if first_gone.is_none() && total < rows + acc {
                first_gone = Some(started.elapsed());
            }
            if total <= acc + CALLERS as u64 {
                return Ok::<_, anyhow::Error>((first_gone, Some(started.elapsed())));
            }
            if started.elapsed() > PRUNE_LIMIT {
                println!(
                    "[growth e] prune NOT ENDED within {PRUNE_LIMIT:?}: {} populated events left",
                    total - acc
                );
                return Ok((first_gone, None));
            }
            tokio::time::sleep(PRUNE_POLL).await;
        }
    }
    .await;
    let ended_at = began.elapsed();
    if watched.is_ok() {
        tokio::time::sleep(p.measure).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut joined) = (Vec::new(), Ok(()));
    while let Some(s) = callers.join_next().await {
        match s {
            Ok(s) => sent.extend(s),
            Err(e) => joined = Err(e),
        }
    }
    let all_sent = began.elapsed();
    host.shutdown().await;
    joined.context("an accept caller failed")?;
    let (first_gone, ended) = watched?;
    let during = accepts_in(&sent, Duration::ZERO, ended_at);
    let after = accepts_in(&sent, ended_at, all_sent.min(ended_at + p.measure));
    let prune = Prune {
        rows,
        first_gone,
        ended,
        callers_began,
        during,
        after,
    };
    println!(
        "[growth e] prune of {rows} events: first gone {:?}, ended {:?} after host start (callers from {:?}); accepts during {:.0}/s ({}), after {:.0}/s ({})",
        prune.first_gone,
        prune.ended,
        prune.callers_began,
        prune.during.rate,
        prune.during.latency.spread(),
        prune.after.rate,
        prune.after.latency.spread()
    );
    Ok(prune)
}

/// The accepts of `sent` in `[from, to)`.
fn accepts_in(sent: &[Sent], from: Duration, to: Duration) -> Accepts {
    let inside = |t: Duration| t >= from && t < to;
    let answered = sent
        .iter()
        .filter(|(at, took, ok)| *ok && inside(*at + *took))
        .count();
    let window = to.saturating_sub(from);
    let mine = sent.iter().filter(|(at, _, _)| inside(*at));
    let latency = Stats::of(mine.clone().filter(|s| s.2).map(|s| s.1).collect());
    Accepts {
        window,
        rate: answered as f64 / window.as_secs_f64().max(1e-9),
        latency,
        errors: mine.filter(|s| !s.2).count() as u64,
    }
}

/// The bytes per event of a store the runner wrote: `events` async `echo`
/// events accepted and run (with their log lines) on a fresh host in `dir`.
async fn live_bytes(worker: &Path, dir: &Path, events: usize) -> Result<LiveBytes> {
    let app = TestApp::new(worker, async_host_json(256));
    let host = host_on(&app, dir).await?;
    let api = Api::new(host.http_addr());
    let run = async {
        let next = Arc::new(AtomicU64::new(0));
        let mut callers = JoinSet::new();
        for _ in 0..CALLERS {
            let (api, next) = (api.clone(), next.clone());
            callers.spawn(async move {
                let mut ok = 0u64;
                while next.fetch_add(1, Ordering::Relaxed) < events as u64 {
                    ok += u64::from(invoke_async(&api).await);
                }
                ok
            });
        }
        let mut accepted = 0;
        while let Some(ok) = callers.join_next().await {
            accepted += ok?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while total_count(&api, "status=FINISHED,FAILED,ABORTED&limit=0").await? < accepted {
            ensure!(
                Instant::now() < deadline,
                "the accepted events did not end in 60 s"
            );
            tokio::time::sleep(PRUNE_POLL).await;
        }
        Ok(accepted)
    }
    .await;
    // The client's keep-alive connections keep server tasks, and with them
    // the store, alive after the host stops.
    drop(api);
    host.shutdown().await;
    let events = run?;
    // The last connection to close checkpoints the WAL into the database
    // and deletes it; reopen and close the store until that happens, once
    // the host's connections are gone.
    let wal = dir.join("events.db-wal");
    for _ in 0..50 {
        let db = dir.join("events.db");
        tokio::task::spawn_blocking(move || fnhost::events::SqliteStore::open(&db).map(drop))
            .await??;
        if !wal.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (bytes, wal_left) = (store_bytes(dir), wal.exists());
    println!(
        "[growth e] {events} events run through the API: {bytes} B ({:.0} B/event; WAL {})",
        bytes as f64 / events.max(1) as f64,
        if wal_left {
            "still there, included"
        } else {
            "checkpointed and gone"
        }
    );
    Ok(LiveBytes {
        events,
        bytes,
        wal_left,
    })
}

impl Stores {
    fn reads_table(&self) -> Vec<Row> {
        let first = &self.levels[0];
        let ratio =
            |a: &Stats, b: &Stats| format!("{:.2}x", a.p99.as_secs_f64() / b.p99.as_secs_f64());
        let mut rows = Vec::new();
        for level in &self.levels {
            for (i, l) in level.lists.iter().enumerate() {
                let mut row = l.row(&format!("d{}. {} events, list", i + 1, level.rows));
                row.ratio = ratio(&l.stats, &first.lists[i].stats);
                rows.push(row);
            }
            rows.push(Row {
                scenario: format!(
                    "d3. {} events, GET /admin/async-events/<id> ({} sequential, random ids)",
                    level.rows, level.status.n
                ),
                figure: format!("{} ({} errors)", level.status.spread(), level.status_errors),
                ratio: ratio(&level.status, &first.status),
                target: "p99 < 1 ms".into(),
                verdict: verdict(
                    level.status.p99 < Duration::from_millis(1) && level.status_errors == 0,
                ),
            });
        }
        rows
    }

    fn store_table(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .levels
            .iter()
            .map(|l| Row {
                scenario: format!(
                    "e. events.db bytes per event, {} populated events (no log lines)",
                    l.rows
                ),
                figure: format!(
                    "{:.0} B ({} MiB; populated in {:.1} s)",
                    l.bytes as f64 / l.rows as f64,
                    l.bytes >> 20,
                    l.populate.as_secs_f64()
                ),
                ratio: "-".into(),
                target: "-".into(),
                verdict: "-",
            })
            .collect();
        rows.push(Row {
            scenario: format!(
                "e. events.db bytes per event, {} echo events run through the API (with log lines)",
                self.live.events
            ),
            figure: format!(
                "{:.0} B ({} KiB{})",
                self.live.bytes as f64 / self.live.events.max(1) as f64,
                self.live.bytes >> 10,
                if self.live.wal_left {
                    ", WAL included"
                } else {
                    ""
                }
            ),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        });
        let pr = &self.prune;
        rows.push(Row {
            scenario: format!(
                "e. retention prune of {} ended events (host start → at most {CALLERS} left)",
                pr.rows
            ),
            figure: match pr.ended {
                Some(ended) => format!(
                    "{:.2} s, {:.0} rows/s (first rows gone after {}; callers began at {})",
                    ended.as_secs_f64(),
                    pr.rows as f64 / ended.as_secs_f64(),
                    pr.first_gone.map_or("-".into(), ms),
                    ms(pr.callers_began)
                ),
                None => format!("not ended within {PRUNE_LIMIT:?}"),
            },
            ratio: "-".into(),
            target: "-".into(),
            verdict: if pr.ended.is_some() { "-" } else { "MISSED" },
        });
        let (during, after) = (&pr.during, &pr.after);
        let accepts_row = |when: &str, a: &Accepts, ratio: String, target: &str, met| Row {
            scenario: format!("e. POST invoke-async accepts {when} ({CALLERS} callers)"),
            figure: format!(
                "{:.0} accepted/s over {:.2} s; latency {} ({} sent, {} errors)",
                a.rate,
                a.window.as_secs_f64(),
                a.latency.spread(),
                a.latency.n,
                a.errors
            ),
            ratio,
            target: target.into(),
            verdict: met,
        };
        // "Without stalling": during the prune, accepts keep at least half
        // their rate after it, and no accept waits a second.
        let rate_ratio = during.rate / after.rate;
        let stalled = rate_ratio < 0.5 || during.latency.max >= Duration::from_secs(1);
        rows.push(accepts_row(
            "during the prune",
            during,
            format!(
                "{rate_ratio:.2}x accepts/s; {:.2}x p99",
                during.latency.p99.as_secs_f64() / after.latency.p99.as_secs_f64()
            ),
            ">= 0.5x accepts/s, max < 1 s",
            // Nothing sent during the prune: it ended before the callers began.
            if during.latency.n == 0 {
                "-"
            } else {
                verdict(!stalled && during.errors == 0)
            },
        ));
        rows.push(accepts_row(
            "after the prune",
            after,
            "1.00x".into(),
            "-",
            if after.errors == 0 { "-" } else { "ERRORS" },
        ));
        rows
    }
}
