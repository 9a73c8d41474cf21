//! Scenarios 10.-11.: instance lifecycle with the Rust sample worker:
//! cold starts of the `fnhost` binary with and without an initializer, the
//! in-process path to ready, and a killed instance's replacement.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use bytes::Bytes;
use fnhost::events::SqliteStore;
use fnhost::{CancelResponse, HostOptions, Outcome};
use fnhost_e2e::{text, Api, TempDir, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

use crate::harness::{ends_as, host_json, on_host, wait_in_flight, PAYLOAD};
use crate::report::{ms, verdict, Row, Stats};
use crate::Params;

/// The initializer's known duration in 10b (`SAMPLE_INIT_MS`).
const INIT_MS: u64 = 200;
/// Bound on one cold start (spawn → first invocation answered).
const COLD_START_LIMIT: Duration = Duration::from_secs(20);
/// Bound on a host's exit after SIGTERM.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

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
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Spawns `fnhost start` on a fresh app and data directory, reads its HTTP
/// address from stdout, invokes `echo` until it answers 200, then stops it
/// with SIGTERM and waits for it to exit.
async fn cold_start_once(fnhost: &Path, app: &TestApp) -> Result<ColdStart> {
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
async fn cold_starts(worker: &Path, runs: usize) -> Result<ColdStarts> {
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

async fn in_process_ready(worker: &Path, runs: usize) -> Result<InProcessReady> {
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
async fn replacement_ready(worker: &Path, runs: usize) -> Result<Replacement> {
    let app = TestApp::new(worker, host_json(32));
    on_host(&app, |handle| async move {
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
            if ends_as(inv, Outcome::Killed).await {
                ended.push(t0.elapsed());
            } else {
                not_killed += 1;
            }
        }
        Ok(Replacement {
            ready: Stats::of(ready),
            ack: Stats::of(ack),
            result: Stats::of(ended),
            not_killed,
        })
    })
    .await
}

/// Scenarios 10.-11.
pub async fn run(worker: &Path, p: &Params) -> Result<Vec<Row>> {
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
    Ok(table(&cold, &inproc, &repl))
}

fn table(cold: &ColdStarts, inproc: &InProcessReady, repl: &Replacement) -> Vec<Row> {
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
