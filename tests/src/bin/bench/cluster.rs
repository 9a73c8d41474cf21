//! Scenarios 13.-16.: the PostgreSQL event store shared by release `fnhost`
//! processes on one throwaway server (`fnhost_e2e::postgres`, Unix socket,
//! `fsync=on`), next to the default SQLite store and graphile-worker, all
//! in the same run. Skipped with a line naming why where PostgreSQL is not
//! installed. Every host, the database, the load generator and node share
//! the machine's cores.

use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use fnhost_e2e::postgres::Postgres;
use fnhost_e2e::{Api, ADMIN_KEY};
use serde_json::{json, Value};
use tokio::task::{block_in_place, JoinSet};

use crate::async_events::{async_host_json, invoke_async, total_count};
use crate::cluster_list::{list_reads, Listing};
use crate::harness::CALLERS;
use crate::nodes::{Node, Nodes};
use crate::report::{verdict, Row};
use crate::Params;

/// `asyncEvents.maxConcurrency` (and worker slots) of every host here.
const CONCURRENCY: usize = 256;
/// Poll interval while waiting for events to finish (each poll is a psql).
const COMPLETION_POLL: Duration = Duration::from_millis(100);
/// Bound on one accept-and-complete run.
const DRIVE_LIMIT: Duration = Duration::from_secs(60);
/// Host counts of scenario 13 on PostgreSQL.
const HOST_COUNTS: [usize; 3] = [1, 2, 3];
/// Scenario 15: heartbeat and dead time, the retry backoff a rescued
/// running event waits (the default, pinned so the reading holds), and how
/// long each event sleeps (long enough that none ends on the first host
/// while the second starts).
const HEARTBEAT: Duration = Duration::from_millis(250);
const DEAD_AFTER: Duration = Duration::from_secs(2);
const RETRY_BACKOFF: Duration = Duration::from_secs(1);
const RESCUE_SLEEP: Duration = Duration::from_secs(4);
/// Bound on graphile-worker's run.
const PEER_LIMIT: Duration = Duration::from_secs(240);

const FINISHED_SQL: &str = "SELECT count(*) FROM fnhost_ended WHERE status = 'FINISHED'";

/// Scenarios 13.-16.
pub async fn run(worker: &Path, p: &Params) -> Result<Vec<Row>> {
    if let Err(why) = Postgres::available() {
        println!("[13-16] skipped (cluster): {why}");
        return Ok(Vec::new());
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "[13-16] {cores} cores shared by every fnhost host, its worker, PostgreSQL, the load generator and node"
    );
    let pg = block_in_place(Postgres::start)?;
    let sqlite = drive_sqlite(worker, p).await?;
    println!("[13] {}", sqlite.line("SQLite, 1 host"));
    let mut on_pg = Vec::new();
    let mut peer = Peer::Skipped("not run".into());
    for hosts in HOST_COUNTS {
        let d = drive_postgres(&pg, worker, hosts, p).await?;
        println!("[13] {}", d.line(&format!("PostgreSQL, {hosts} host(s)")));
        on_pg.push((hosts, d));
        if hosts == 1 {
            // graphile-worker right after fnhost's 1-host run, so both meet
            // the disk in about the same state.
            peer = block_in_place(|| graphile(&pg, p.cluster_events));
            match &peer {
                Peer::Ran(f) => println!(
                    "[16] graphile-worker: {:.0} adds/s, {:.0} completions/s ({} jobs)",
                    f.adds, f.completions, f.jobs
                ),
                Peer::Skipped(why) => println!("[16] graphile-worker skipped: {why}"),
            }
        }
    }
    let listing = list_reads(&pg, worker, p).await?;
    listing.print();
    let rescue = rescue(&pg, worker, p.rescue_events).await?;
    println!(
        "[15] kill -9 of the owner of {} running sleep events: all re-dispatched after {:.2} s, all FINISHED on the other host after {:.2} s ({:.2} s beyond the {:?} sleep; hostDeadAfter {DEAD_AFTER:?}, heartbeat {HEARTBEAT:?}, retryBackoff {RETRY_BACKOFF:?}){}",
        rescue.events,
        rescue.redispatched.as_secs_f64(),
        rescue.finished_in.as_secs_f64(),
        (rescue.finished_in.saturating_sub(RESCUE_SLEEP)).as_secs_f64(),
        RESCUE_SLEEP,
        if rescue.timed_out { " (TIMED OUT)" } else { "" }
    );
    Ok(table(cores, &sqlite, &on_pg, &peer, &listing, &rescue))
}

// ------------------------------------------------------------ 13. accepts

/// One fixed-count run: `events` submits from [`CALLERS`] keep-alive
/// callers spread over the hosts, then every accepted event FINISHED.
struct Drive {
    events: usize,
    accepted: u64,
    rejected: u64,
    /// First submit → last answer.
    accepted_in: Duration,
    finished: u64,
    /// First submit → every accepted event FINISHED.
    ended_in: Duration,
    timed_out: bool,
    /// On PostgreSQL: WAL syncs (server-wide) and commits in the run's
    /// database, from submit to the hosts' stop.
    wal: Option<(u64, u64)>,
}

impl Drive {
    fn accept_rate(&self) -> f64 {
        self.accepted as f64 / self.accepted_in.as_secs_f64()
    }

    fn completion_rate(&self) -> f64 {
        self.finished as f64 / self.ended_in.as_secs_f64()
    }

    fn line(&self, what: &str) -> String {
        let wal = self.wal.map_or(String::new(), |(syncs, commits)| {
            format!(
                "; {syncs} WAL syncs, {commits} commits ({:.1} events per sync)",
                self.accepted as f64 / syncs.max(1) as f64
            )
        });
        format!(
            "{what}: {} events, {:.0} accepted/s ({:.2} s, {} rejected), {:.0} completed/s (all FINISHED after {:.2} s){wal}{}",
            self.events,
            self.accept_rate(),
            self.accepted_in.as_secs_f64(),
            self.rejected,
            self.completion_rate(),
            self.ended_in.as_secs_f64(),
            if self.timed_out { " (TIMED OUT)" } else { "" }
        )
    }
}

/// Submits `n` async `echo` events, caller `c` on host `c % hosts`, and
/// polls `finished` until every accepted one is FINISHED (or
/// [`DRIVE_LIMIT`] passes).
async fn drive<F, Fut>(apis: &[Api], n: usize, mut finished: F) -> Result<Drive>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + DRIVE_LIMIT;
    let mut callers = JoinSet::new();
    for c in 0..CALLERS {
        let api = apis[c % apis.len()].clone();
        let (next, accepted, rejected) = (next.clone(), accepted.clone(), rejected.clone());
        callers.spawn(async move {
            while Instant::now() < deadline && next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                let counter = if invoke_async(&api).await {
                    &accepted
                } else {
                    &rejected
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while callers.join_next().await.is_some() {}
    let accepted_in = t0.elapsed();
    let (accepted, rejected) = (
        accepted.load(Ordering::Relaxed),
        rejected.load(Ordering::Relaxed),
    );
    let mut timed_out = accepted + rejected < n as u64;
    let done = loop {
        let done = finished().await?;
        if done >= accepted {
            break done;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break done;
        }
        tokio::time::sleep(COMPLETION_POLL).await;
    };
    Ok(Drive {
        events: n,
        accepted,
        rejected,
        accepted_in,
        finished: done,
        ended_in: t0.elapsed(),
        timed_out,
        wal: None,
    })
}

/// The driver against one release host on its default SQLite store; the
/// FINISHED count comes from the list API there.
async fn drive_sqlite(worker: &Path, p: &Params) -> Result<Drive> {
    let mut nodes = Nodes::new(worker, async_host_json(CONCURRENCY))?;
    let node = nodes.start(None).await?;
    let api = node.api.clone();
    let result = drive(std::slice::from_ref(&api), p.cluster_events, || {
        let api = api.clone();
        async move { total_count(&api, "status=FINISHED&limit=0").await }
    })
    .await;
    node.stop().await;
    result
}

/// The driver against `hosts` release hosts on a fresh database.
async fn drive_postgres(pg: &Postgres, worker: &Path, hosts: usize, p: &Params) -> Result<Drive> {
    let db = format!("accept{hosts}");
    let url = pg.create_database(&db)?;
    let mut nodes = Nodes::new(worker, async_host_json(CONCURRENCY))?;
    let mut started = Vec::new();
    let mut before = (0, 0);
    let result = async {
        for _ in 0..hosts {
            started.push(nodes.start(Some(&url)).await?);
        }
        before = wal_counters(pg, &db)?;
        let apis: Vec<Api> = started.iter().map(|n| n.api.clone()).collect();
        drive(&apis, p.cluster_events, || {
            let count = count_in(pg, &db, FINISHED_SQL);
            async move { count }
        })
        .await
    }
    .await;
    for n in started {
        n.stop().await;
    }
    let mut d = result?;
    let after = wal_counters(pg, &db)?;
    d.wal = Some((after.0 - before.0, after.1 - before.1));
    Ok(d)
}

/// `pg_stat_wal.wal_sync` (every backend's WAL flushes, commits' included)
/// and `xact_commit` of `db`. Backends report at exit, so read after the
/// hosts have stopped.
fn wal_counters(pg: &Postgres, db: &str) -> Result<(u64, u64)> {
    let syncs = count_in(pg, db, "SELECT wal_sync FROM pg_stat_wal")?;
    let commits = count_in(
        pg,
        db,
        &format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"),
    )?;
    Ok((syncs, commits))
}

/// A `count(*)` through psql.
fn count_in(pg: &Postgres, db: &str, sql: &str) -> Result<u64> {
    let out = block_in_place(|| pg.psql_in(db, sql))?;
    out.parse()
        .with_context(|| format!("psql answered {out:?} to {sql:?}"))
}

// ------------------------------------------------------------ 15. rescue

struct Rescue {
    events: usize,
    /// `kill -9` → every event on its second attempt.
    redispatched: Duration,
    /// `kill -9` → every event FINISHED.
    finished_in: Duration,
    timed_out: bool,
}

/// Fast heartbeats and a 2 s dead time, as in the cluster e2e tests. A
/// rescued running event counts as a failed attempt and waits the retry
/// backoff before it is ready again, so re-dispatch is expected about
/// `hostDeadAfter` (less the time since the last beat, plus up to one
/// heartbeat until a rescue pass) + `retryBackoff` + `pollInterval` after
/// the kill.
fn rescue_host_json() -> Value {
    let mut v = async_host_json(CONCURRENCY);
    let ms = |d: Duration| format!("00:00:{:02}.{:03}", d.as_secs(), d.subsec_millis());
    v["asyncEvents"]["hostHeartbeat"] = json!(ms(HEARTBEAT));
    v["asyncEvents"]["hostDeadAfter"] = json!(ms(DEAD_AFTER));
    v["asyncEvents"]["retryBackoff"] = json!(ms(RETRY_BACKOFF));
    v["asyncEvents"]["pollInterval"] = json!("00:00:00.050");
    v
}

/// `n` sleep events running on host A; a second host B joins; A is killed
/// with SIGKILL; times until B has re-dispatched and finished them all.
async fn rescue(pg: &Postgres, worker: &Path, n: usize) -> Result<Rescue> {
    let db = "rescue";
    let url = pg.create_database(db)?;
    let mut nodes = Nodes::new(worker, rescue_host_json())?;
    let mut a = nodes.start(Some(&url)).await?;
    let mut b: Option<Node> = None;
    let result = async {
        let body = json!({ "ms": RESCUE_SLEEP.as_millis() as u64 }).to_string();
        for _ in 0..n {
            let r = a
                .api
                .request(
                    "POST",
                    "/admin/functions/sleep/invoke-async",
                    body.clone(),
                    Some(ADMIN_KEY),
                )
                .await?;
            ensure!(
                r.status == 202,
                "sleep was not accepted: {} {}",
                r.status,
                r.text()
            );
        }
        let running = "SELECT count(*) FROM fnhost_events WHERE status = 'RUNNING'";
        let deadline = Instant::now() + Duration::from_secs(10);
        while count_in(pg, db, running)? < n as u64 {
            ensure!(
                Instant::now() < deadline,
                "the sleep events did not all start on host A"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b = Some(nodes.start(Some(&url)).await?);
        let on_a = format!(
            "SELECT count(*) FROM fnhost_events WHERE status = 'RUNNING' AND owner_host = '{}'",
            a.host_id.as_deref().unwrap_or("")
        );
        if count_in(pg, db, &on_a)? != n as u64 {
            bail!("some sleep events were no longer running on host A when B had started");
        }
        a.kill();
        let killed = Instant::now();
        let again = "SELECT count(*) FROM fnhost_all_events WHERE attempts >= 2";
        let mut redispatched = None;
        let limit = DEAD_AFTER + RESCUE_SLEEP + Duration::from_secs(20);
        loop {
            if redispatched.is_none() && count_in(pg, db, again)? >= n as u64 {
                redispatched = Some(killed.elapsed());
            }
            if count_in(pg, db, FINISHED_SQL)? >= n as u64 {
                let finished_in = killed.elapsed();
                return Ok(Rescue {
                    events: n,
                    redispatched: redispatched.unwrap_or(finished_in),
                    finished_in,
                    timed_out: false,
                });
            }
            if killed.elapsed() > limit {
                return Ok(Rescue {
                    events: n,
                    redispatched: redispatched.unwrap_or(limit),
                    finished_in: killed.elapsed(),
                    timed_out: true,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    .await;
    a.kill();
    if let Some(b) = b {
        b.stop().await;
    }
    result
}

/// The re-dispatch time scenario 15 should stay under.
fn rescue_bound() -> Duration {
    DEAD_AFTER + HEARTBEAT + RETRY_BACKOFF + Duration::from_millis(500)
}

// ------------------------------------------------------------ 16. graphile-worker

/// graphile-worker's figures from `tests/pg-peer/bench.js`.
struct PeerFigures {
    adds: f64,
    completions: f64,
    jobs: u64,
}

enum Peer {
    Ran(PeerFigures),
    Skipped(String),
}

/// Runs `tests/pg-peer/bench.js` for `jobs` jobs on a fresh database of
/// `pg`, after `setup.sh`; skipped when node or the setup is missing.
fn graphile(pg: &Postgres, jobs: usize) -> Peer {
    match run_graphile(pg, jobs) {
        Ok(p) => p,
        Err(e) => Peer::Skipped(format!("{e:#}")),
    }
}

fn run_graphile(pg: &Postgres, jobs: usize) -> Result<Peer> {
    let dir = fnhost_e2e::repo_root().join("tests/pg-peer");
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Ok(Peer::Skipped("node is not installed".into()));
    }
    let setup = Command::new("bash").arg(dir.join("setup.sh")).status();
    if !setup.is_ok_and(|s| s.success()) {
        return Ok(Peer::Skipped(
            "bash tests/pg-peer/setup.sh failed (it runs npm ci)".into(),
        ));
    }
    let url = pg.create_database("peer")?;
    let mut child = Command::new("node")
        .arg(dir.join("bench.js"))
        .arg(&url)
        .args(["--jobs", &jobs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting node bench.js")?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t0.elapsed() > PEER_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("bench.js did not finish within {PEER_LIMIT:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output()?;
    ensure!(status.success(), "bench.js failed ({status})");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value =
        serde_json::from_str(line.trim()).with_context(|| format!("bench.js printed {line:?}"))?;
    let num = |k: &str| v[k].as_f64().with_context(|| format!("no {k} in {v}"));
    Ok(Peer::Ran(PeerFigures {
        adds: num("adds_per_s")?,
        completions: num("completions_per_s")?,
        jobs: num("jobs")? as u64,
    }))
}

// ------------------------------------------------------------ table

fn table(
    cores: usize,
    sqlite: &Drive,
    on_pg: &[(usize, Drive)],
    peer: &Peer,
    listing: &Listing,
    rescue: &Rescue,
) -> Vec<Row> {
    let errors = |d: &Drive| d.timed_out || d.rejected > 0;
    let accept_row = |label: String, d: &Drive| Row {
        scenario: format!(
            "13{label}, {} events, {CALLERS} callers ({cores} shared cores)",
            d.events
        ),
        figure: format!(
            "{:.0} accepted/s, {:.0} completed/s ({}{} rejected{})",
            d.accept_rate(),
            d.completion_rate(),
            d.wal.map_or(String::new(), |(syncs, _)| format!(
                "{:.1} events per WAL sync, ",
                d.accepted as f64 / syncs.max(1) as f64
            )),
            d.rejected,
            if d.timed_out { ", TIMED OUT" } else { "" }
        ),
        ratio: format!(
            "{:.2}x / {:.2}x",
            d.accept_rate() / sqlite.accept_rate(),
            d.completion_rate() / sqlite.completion_rate()
        ),
        target: "-".into(),
        verdict: if errors(d) { "ERRORS" } else { "-" },
    };
    let mut rows = vec![accept_row(
        "a. SQLite store, 1 host (baseline)".into(),
        sqlite,
    )];
    for (i, (hosts, d)) in on_pg.iter().enumerate() {
        let letter = (b'b' + i as u8) as char;
        rows.push(accept_row(
            format!("{letter}. PostgreSQL store, {hosts} host(s)"),
            d,
        ));
    }
    rows.extend(listing.rows());
    rows.push(Row {
        scenario: format!(
            "15. kill -9 of the owner of {} running {:?} sleeps → all FINISHED on the other host",
            rescue.events, RESCUE_SLEEP
        ),
        figure: format!(
            "{:.2} s (re-dispatched after {:.2} s; {:.2} s beyond the sleep{})",
            rescue.finished_in.as_secs_f64(),
            rescue.redispatched.as_secs_f64(),
            rescue.finished_in.saturating_sub(RESCUE_SLEEP).as_secs_f64(),
            if rescue.timed_out { ", TIMED OUT" } else { "" }
        ),
        ratio: format!(
            "{:.2}x dead time",
            rescue.redispatched.as_secs_f64() / DEAD_AFTER.as_secs_f64()
        ),
        target: format!(
            "re-dispatch < hostDeadAfter {DEAD_AFTER:?} + heartbeat + retryBackoff {RETRY_BACKOFF:?} + 0.5 s"
        ),
        verdict: verdict(!rescue.timed_out && rescue.redispatched < rescue_bound()),
    });
    let one_host = on_pg.iter().find(|(hosts, _)| *hosts == 1).map(|(_, d)| d);
    match (peer, one_host) {
        (Peer::Ran(f), Some(d)) => {
            rows.push(Row {
                scenario: format!("16a. graphile-worker addJob, {} jobs, 64 callers", f.jobs),
                figure: format!(
                    "{:.0} adds/s (fnhost 1 host: {:.0} accepted/s)",
                    f.adds,
                    d.accept_rate()
                ),
                ratio: format!("{:.2}x", d.accept_rate() / f.adds),
                target: "fnhost >= graphile".into(),
                verdict: verdict(d.accept_rate() >= f.adds),
            });
            rows.push(Row {
                scenario: "16b. graphile-worker completions, no-op task, concurrency 16".into(),
                figure: format!(
                    "{:.0} completed/s (fnhost 1 host: {:.0} completed/s)",
                    f.completions,
                    d.completion_rate()
                ),
                ratio: format!("{:.2}x", d.completion_rate() / f.completions),
                target: "-".into(),
                verdict: "-",
            });
        }
        (Peer::Skipped(why), _) => rows.push(Row {
            scenario: "16. graphile-worker".into(),
            figure: format!("skipped: {why}"),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        }),
        _ => {}
    }
    rows
}
