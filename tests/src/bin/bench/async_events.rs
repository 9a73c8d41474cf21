//! Scenarios 6.-9.: asynchronous invocations, each on its own host and
//! data directory: accepts per second, time until N events have ended, and
//! list and status reads over a pre-populated store.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use bytes::Bytes;
use fnhost::HostOptions;
use fnhost_e2e::{Api, HttpReply, TestApp, ADMIN_KEY};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::harness::{host_json, http_closed_loop, Throughput, CALLERS, PAYLOAD};
use crate::populate::{populate, store_bytes, Rng, POPULATE_SPAN_MS};
use crate::report::{verdict, Row, Stats};
use crate::Params;

/// `asyncEvents.maxConcurrency` (and worker slots) of scenarios 6 and 7.
const ASYNC_CONCURRENCY: usize = 256;
/// Untimed requests before each timed series.
const READ_WARMUP: usize = 20;
/// Poll interval while waiting for events to finish.
const COMPLETION_POLL: Duration = Duration::from_millis(20);

/// `host.json` for the async scenarios: async events and worker slots both
/// `concurrency`, and a retention longer than the populated 3 days so the
/// pruner (which runs at start) leaves the store alone.
pub fn async_host_json(concurrency: usize) -> Value {
    let mut v = host_json(concurrency);
    v["asyncEvents"] = json!({
        "maxConcurrency": concurrency,
        "retention": "7.00:00:00",
    });
    v
}

/// Scenarios 6.-9.
pub async fn run(worker: &Path, p: &Params) -> Result<Vec<Row>> {
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
    Ok(table(&accept, &accept_only, &completion, &reads))
}

/// `POST /admin/functions/echo/invoke-async`; true on 202.
pub async fn invoke_async(api: &Api) -> bool {
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
async fn async_accept(worker: &Path, p: &Params, concurrency: usize) -> Result<Throughput> {
    let app = TestApp::new(worker, async_host_json(concurrency));
    http_closed_loop(&app, p, |api| async move { invoke_async(&api).await }).await
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
pub async fn total_count(api: &Api, query: &str) -> Result<u64> {
    let r = api
        .admin_get(&format!("/admin/async-events?{query}"))
        .await?;
    ensure!(r.status == 200, "list answered {}: {}", r.status, r.text());
    serde_json::from_slice::<Value>(&r.body)?["totalCount"]
        .as_u64()
        .context("no totalCount in the list answer")
}

/// Submits `n` async `echo` events from 64 callers and waits (polling the
/// list API) until every accepted one has ended.
async fn async_completion(worker: &Path, n: usize) -> Result<Completion> {
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

pub struct ListSeries {
    /// The query with the time window written as `T` and `T+1h`.
    pub label: String,
    pub stats: Stats,
    /// `totalCount` of the last answer.
    pub total: u64,
    /// Events on the last page.
    pub page_len: usize,
    pub errors: u64,
}

impl ListSeries {
    /// The report row of this series, named `name` (e.g. "8a. list"); a
    /// `limit=0` series is a diagnostic of the count alone, with no target.
    pub fn row(&self, name: &str) -> Row {
        let diagnostic = self.label.ends_with("limit=0");
        Row {
            scenario: format!(
                "{name} ?{} ({} sequential{})",
                self.label,
                self.stats.n,
                if diagnostic { ", COUNT only" } else { "" }
            ),
            figure: format!(
                "{} (totalCount {}, {} rows, {} errors)",
                self.stats.spread(),
                self.total,
                self.page_len,
                self.errors
            ),
            ratio: "-".into(),
            target: if diagnostic { "-" } else { "p99 < 10 ms" }.into(),
            verdict: if diagnostic {
                "-"
            } else {
                verdict(self.stats.p99 < Duration::from_millis(10) && self.errors == 0)
            },
        }
    }
}

struct StoreReads {
    rows: usize,
    populate: Duration,
    db_bytes: u64,
    lists: Vec<ListSeries>,
    status: Stats,
    status_errors: u64,
}

/// Sends `READ_WARMUP + n` sequential admin `GET`s of `path()` and times
/// those after the warm-up that answer 200; `answered` sees every 200
/// answer. Returns the timings and how many answered otherwise (warm-up
/// included).
async fn timed_gets(
    api: &Api,
    n: usize,
    mut path: impl FnMut() -> String,
    mut answered: impl FnMut(&HttpReply),
) -> (Stats, u64) {
    let (mut sample, mut errors) = (Vec::with_capacity(n), 0);
    for i in 0..READ_WARMUP + n {
        let path = path();
        let t0 = Instant::now();
        let r = api.admin_get(&path).await;
        let took = t0.elapsed();
        match r {
            Ok(r) if r.status == 200 => {
                if i >= READ_WARMUP {
                    sample.push(took);
                }
                answered(&r);
            }
            _ => errors += 1,
        }
    }
    (Stats::of(sample), errors)
}

/// Times `n` sequential `GET /admin/async-events?<query>` after a warm-up.
pub async fn time_list(api: &Api, query: String, label: String, n: usize) -> ListSeries {
    let path = format!("/admin/async-events?{query}");
    let (mut total, mut page_len) = (0, 0);
    let (stats, errors) = timed_gets(
        api,
        n,
        || path.clone(),
        |r| {
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                total = v["totalCount"].as_u64().unwrap_or(0);
                page_len = v["events"].as_array().map_or(0, Vec::len);
            }
        },
    )
    .await;
    ListSeries {
        label,
        stats,
        total,
        page_len,
        errors,
    }
}

/// Scenario 8's list queries over a populated store, each with its label
/// (`T` for the time bounds): a page of one function's finished events,
/// then the same in an hour in the middle of the populated span, oldest
/// first; `with_counts` adds both as COUNT-only diagnostics.
pub fn list_shapes(now_ms: i64, with_counts: bool) -> Vec<(String, String)> {
    let from = now_ms - POPULATE_SPAN_MS / 2;
    let to = from + 3600 * 1000;
    let base = "function=f3&status=FINISHED";
    let mut queries = vec![
        format!("{base}&limit=100"),
        format!("{base}&startTimeFrom={from}&startTimeTo={to}&order=asc&limit=100"),
    ];
    if with_counts {
        queries.push(format!("{base}&limit=0"));
        queries.push(format!(
            "{base}&startTimeFrom={from}&startTimeTo={to}&limit=0"
        ));
    }
    queries
        .into_iter()
        .map(|q| {
            let label = q
                .replace(&from.to_string(), "T")
                .replace(&to.to_string(), "T+1h");
            (q, label)
        })
        .collect()
}

/// Populates a store through the library, starts a host on it and times
/// list and status requests over HTTP, one at a time.
async fn store_reads(worker: &Path, p: &Params) -> Result<StoreReads> {
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
        let mut lists = Vec::new();
        for (query, label) in list_shapes(now_ms, true) {
            lists.push(time_list(&api, query, label, p.list_requests).await);
        }

        let mut rng = Rng(0x57a7);
        let status_path = || {
            let id = &ids[rng.below(ids.len() as u64) as usize];
            format!("/admin/async-events/{id}")
        };
        let (status, status_errors) =
            timed_gets(&api, p.status_requests, status_path, |_| {}).await;
        Ok::<_, anyhow::Error>(StoreReads {
            rows,
            populate: populate_took,
            db_bytes,
            lists,
            status,
            status_errors,
        })
    }
    .await;
    host.shutdown().await;
    if let Some(d) = keep {
        println!("[8] store kept in {}", d.display());
    }
    result
}

fn table(
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
            figure: format!(
                "{:.0} accepted/s ({} errors); CPU µs/accept: bench process {:.0}",
                accept.rate, accept.errors, accept.cpu_us
            ),
            ratio: "-".into(),
            target: ">= 15000/s".into(),
            verdict: verdict(accept.rate >= 15_000.0 && accept.errors == 0),
        },
        Row {
            scenario: format!(
                "6b. POST invoke-async accepted, runner throttled ({CALLERS} callers, maxConcurrency 1)"
            ),
            figure: format!(
                "{:.0} accepted/s ({} errors); CPU µs/accept: bench process {:.0}",
                accept_only.rate, accept_only.errors, accept_only.cpu_us
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
        rows.push(l.row(&format!("8{}. list", (b'a' + i as u8) as char)));
    }
    rows.push(Row {
        scenario: format!(
            "9. GET /admin/async-events/<id> ({} sequential, random ids)",
            reads.status.n
        ),
        figure: format!("{} ({} errors)", reads.status.spread(), reads.status_errors),
        ratio: "-".into(),
        target: "p99 < 1 ms".into(),
        verdict: verdict(reads.status.p99 < Duration::from_millis(1) && reads.status_errors == 0),
    });
    rows
}
