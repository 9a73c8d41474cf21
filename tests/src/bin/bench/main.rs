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
//! cargo run --release -p fnhost-e2e --bin bench -- --only cluster   # 13.-16.
//! cargo run --release -p fnhost-e2e --bin bench -- --only growth    # cost growth
//! cargo run --release -p fnhost-e2e --bin bench -- --only memory    # growth b. alone
//! ```
//!
//! `--only core` runs scenarios 0.-5., `--only async` runs 6.-9.,
//! `--only lifecycle` runs 10.-11., `--only workers` runs 12.; by default
//! (`--only all`) all of them run, in that order. `--only cluster` (13.-16.)
//! needs PostgreSQL and runs only when asked for, so the default run does
//! not depend on it. Core scenarios, in the order they run (memory first so
//! the host-RSS delta is not hidden by heap the allocator kept from earlier
//! scenarios):
//!
//! 5. host and worker RSS per in-flight (sleeping) invocation;
//! 0. baseline: a tonic bidirectional echo stream, 64 callers multiplexed on
//!    one stream, messages shaped like an `InvocationRequest`;
//! 1. sync invocations/s of `echo` through `HostHandle::invoke`, 64 callers;
//! 2. the same through `POST /api/echo` on keep-alive connections, against
//!    2b. a plain axum server in the bench process that echoes the body,
//!    driven by the same client and callers before and after (2);
//!    (1), (2) and (2b) also report CPU µs per call of the bench process
//!    and of the worker;
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
//! The PostgreSQL event store (`--only cluster`; one throwaway server from
//! `fnhost_e2e::postgres`, `fsync=on`, a fresh database per scenario,
//! release `fnhost` processes; skipped with a line where PostgreSQL is not
//! installed). The machine's cores are shared by every host, the database
//! and the load generator:
//!
//! 13. durable `invoke-async` accepts/s and completions/s (first submit →
//!     all `FINISHED`, counted with psql) of a fixed count of `echo` events
//!     from 64 keep-alive callers spread over 1, 2 and 3 hosts on one
//!     database, next to the same driver against one host on the default
//!     SQLite store (the ratio column: PostgreSQL / SQLite);
//! 14. `GET /admin/async-events` p50/p99 (the query shapes of 8.) over
//!     1,000,000 ended events seeded with `generate_series` after a host
//!     has migrated the schema, with `EXPLAIN ANALYZE` of the host's COUNT
//!     and page statements;
//! 15. rescue: 2 hosts (heartbeat 250 ms, `hostDeadAfter` 2 s), `sleep`
//!     events running on the first, which is killed with SIGKILL; time
//!     until the second has re-dispatched and finished them all;
//! 16. graphile-worker (`tests/pg-peer/bench.js` after `setup.sh`, on a
//!     database of its own on the same server, right after 13.'s 1-host
//!     run): adds/s and completions/s next to fnhost's 1-host figures;
//!     skipped with a line when node or the setup is missing.
//!
//! Cost growth on the SQLite store (`--only growth`; not part of `all`,
//! it takes minutes), each printed as its own table:
//!
//! a. the closed loop of 1. with `processCount` 1, 2 and 4, with CPU µs per
//!    invocation of the bench process and of all workers, as ratios to
//!    `processCount` 1;
//! b. host and worker RSS per in-flight `sleep` invocation at two counts
//!    (10,000 and 100,000) in one fresh host, first;
//! c. cancel issued → `Cancelled` with at least 10,000 in flight, one at a
//!    time and 100 at a time (each timed);
//! d. the list page shapes of 8. and the status read of 9. over stores of
//!    1,000,000 and 10,000,000 ended events;
//! e. `events.db` bytes per event, and a retention prune of 1,000,000
//!    ended events at host start while 64 callers send accepts: how long
//!    it takes, and accepts/s and latency during it and after it.
//!
//! `--only memory` runs b. alone (about 10 s), for work on the memory per
//! invocation.
//!
//! `FNHOST_BENCH_GROWTH_DIR=<dir>` (which must not exist) keeps the stores
//! of d. and e. there.
//!
//! `FNHOST_BENCH_STORE_DIR=<dir>` populates the store of 8./9. in `<dir>`
//! (which must not exist) and keeps it afterwards, for inspection with
//! `sqlite3 <dir>/events.db`.
//!
//! `FNHOST_BENCH_LOG` sets the log filter (default `warn`; logs go to stderr).
//!
//! One module per scenario group: `sync_invoke` (0.-5.), `baseline` (the
//! echo stream of 0.), `async_events` and `populate` (6.-9.), `lifecycle`
//! (10.-11.), `workers` (12.), `cluster` and `cluster_list` (13.-16.;
//! `nodes` starts their `fnhost` processes), `growth` (cost growth);
//! `harness` holds what several groups share
//! and `report` the tables.

mod async_events;
mod baseline;
mod cluster;
mod cluster_list;
mod growth;
mod harness;
mod http_baseline;
mod lifecycle;
mod metrics_cost;
mod nodes;
mod populate;
mod report;
mod sync_invoke;
mod workers;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::harness::CALLERS;

/// The allocator the `fnhost` binary uses (host/src/main.rs), so the
/// in-process host measures as it runs in production. The plain-HTTP and
/// echo-stream baselines in this process use it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Durations and counts for one run.
pub struct Params {
    pub warmup: Duration,
    pub measure: Duration,
    pub open_loop: Duration,
    pub cancel_count: usize,
    pub memory_count: usize,
    /// Events submitted at once in scenario 7.
    pub async_events: usize,
    /// Rows in the pre-populated store of scenarios 8 and 9.
    pub store_rows: usize,
    /// Timed requests per list query shape in scenario 8.
    pub list_requests: usize,
    /// Timed status requests in scenario 9.
    pub status_requests: usize,
    /// Timed runs of each lifecycle scenario (10a, 10b, 11).
    pub lifecycle_runs: usize,
    /// Events submitted per run in scenario 13 (and graphile-worker's jobs
    /// in 16).
    pub cluster_events: usize,
    /// Timed requests per list query shape in scenario 14 (which seeds
    /// `store_rows` events).
    pub cluster_list_requests: usize,
    /// Sleep events running on the killed host in scenario 15.
    pub rescue_events: usize,
    /// In-flight counts at which growth b. reads RSS (at most 100,000,
    /// the most `maxConcurrentInvocations` allows one instance).
    pub growth_in_flight: [usize; 2],
    /// Sleepers that stay in flight through growth c.'s timed cancels.
    pub growth_cancel_in_flight: usize,
    /// Cancels timed one at a time in growth c.
    pub growth_cancel_sequential: usize,
    /// Batches of 100 concurrent cancels timed in growth c.
    pub growth_cancel_batches: usize,
    /// Store sizes of growth d. (the first is also pruned in e.).
    pub growth_rows: [usize; 2],
    /// Events run through the API for growth e.'s bytes per live event.
    pub growth_live_events: usize,
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
            cluster_events: 10_000,
            cluster_list_requests: 200,
            rescue_events: 20,
            growth_in_flight: [10_000, 100_000],
            growth_cancel_in_flight: 10_000,
            growth_cancel_sequential: 1_000,
            growth_cancel_batches: 50,
            growth_rows: [1_000_000, 10_000_000],
            growth_live_events: 20_000,
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
            cluster_events: 2_000,
            cluster_list_requests: 50,
            rescue_events: 10,
            growth_in_flight: [2_000, 10_000],
            growth_cancel_in_flight: 2_000,
            growth_cancel_sequential: 200,
            growth_cancel_batches: 5,
            growth_rows: [100_000, 300_000],
            growth_live_events: 4_000,
        }
    }
}

const USAGE: &str =
    "usage: bench [--quick] [--only core|async|lifecycle|workers|cluster|metrics|growth|memory|all]";

/// Which scenarios run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    All,
    Core,
    Async,
    Lifecycle,
    Workers,
    /// Not part of `All`: it needs PostgreSQL.
    Cluster,
    /// Not part of `All`: it needs a process where no host installed the
    /// metrics recorder yet.
    Metrics,
    /// Not part of `All`: it takes minutes (stores of 10M events).
    Growth,
    /// Growth b. alone (memory per in-flight invocation), for heap work.
    Memory,
}

#[tokio::main]
async fn main() -> Result<()> {
    fnhost_e2e::log_to_stderr(&std::env::var("FNHOST_BENCH_LOG").unwrap_or_else(|_| "warn".into()));
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
                Some("cluster") => Only::Cluster,
                Some("metrics") => Only::Metrics,
                Some("growth") => Only::Growth,
                Some("memory") => Only::Memory,
                Some("all") => Only::All,
                other => bail!(
                    "--only takes core, async, lifecycle, workers, cluster, metrics, growth, memory or all, not {:?}; {USAGE}",
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
        groups.push((sync_invoke::run(&worker, &p).await?, "Ratio to baseline"));
    }
    if runs(Only::Async) {
        groups.push((async_events::run(&worker, &p).await?, "Ratio to baseline"));
    }
    if runs(Only::Lifecycle) {
        groups.push((lifecycle::run(&worker, &p).await?, "Ratio"));
    }
    if runs(Only::Workers) {
        groups.push((workers::run(&worker, &p).await?, "Ratio to Rust SDK"));
    }
    if only == Only::Cluster {
        groups.push((
            cluster::run(&worker, &p).await?,
            "Ratio (13: to SQLite, accepts / completions; 16: fnhost / graphile)",
        ));
    }
    if only == Only::Metrics {
        groups.push((metrics_cost::run(&worker, &p).await?, "With / without"));
    }
    if only == Only::Growth {
        groups.extend(growth::run(&worker, &p).await?);
    }
    if only == Only::Memory {
        groups.push(growth::run_memory(&worker, &p).await?);
    }
    for (rows, ratio_header) in &groups {
        if rows.is_empty() {
            continue;
        }
        println!();
        report::print_plain(rows);
        println!();
        report::print_markdown(rows, ratio_header);
    }
    println!();
    println!("total bench time {:.1?}", started.elapsed());
    Ok(())
}
