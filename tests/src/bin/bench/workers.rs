//! Scenario 12.: `POST /api/echo` per second on one instance of each
//! worker (Rust SDK, Python SDK, Node SDK, published Python worker); a
//! worker whose setup script has not run is skipped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use bytes::Bytes;
use fnhost::HostOptions;
use fnhost_e2e::{copy_dir, http_function, repo_root, rust_worker_config, Api, TempDir, ADMIN_KEY};
use serde_json::{json, Value};

use crate::harness::{closed_loop, post_echo, worker_pid, Throughput, PAYLOAD};
use crate::report::{verdict, Row};
use crate::Params;

/// Concurrent callers per worker in scenario 12.
const WORKER_CALLERS: usize = 32;

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

/// A worker's app in a temporary directory, or why it cannot be built.
enum Prepared {
    App(TempDir),
    /// The setup script to run (and what is missing).
    Missing(String),
}

fn missing(paths: &[PathBuf], script: &str) -> Option<Prepared> {
    paths.iter().find(|p| !p.is_file()).map(|p| {
        Prepared::Missing(format!(
            "{} is missing: run {script}",
            p.strip_prefix(repo_root()).unwrap_or(p).display()
        ))
    })
}

/// The Rust SDK sample worker with just `echo`.
fn rust_app(worker: &Path) -> Result<Prepared> {
    let dir = TempDir::new("fnhost-bench-rust")?;
    dir.write("host.json", &workers_host_json())?;
    dir.write("worker.config.json", &rust_worker_config(worker, json!({})))?;
    dir.write("echo/function.json", &http_function())?;
    Ok(Prepared::App(dir))
}

/// `worker.config.json` of a worker that `interpreter` runs from `script`.
fn script_worker_config(language: &str, interpreter: &Path, script: &str) -> Value {
    json!({"description": {
        "language": language,
        "defaultExecutablePath": interpreter.display().to_string(),
        "defaultWorkerPath": script,
        "argumentStyle": "both",
    }})
}

/// A copy of `sample-workers/python-app` run by the SDK's venv.
fn python_sdk_app() -> Result<Prepared> {
    let sdk = repo_root().join("sample-workers/python");
    let python = sdk.join(".venv/bin/python");
    let script = "sample-workers/python/setup.sh";
    if let Some(m) = missing(
        &[python.clone(), sdk.join(".venv/bin/fnhost-python-worker")],
        script,
    ) {
        return Ok(m);
    }
    let dir = TempDir::new("fnhost-bench-pysdk")?;
    copy_dir(&repo_root().join("sample-workers/python-app"), dir.path())?;
    dir.write("host.json", &workers_host_json())?;
    dir.write(
        "worker.config.json",
        &script_worker_config("python", &python, "function_app.py"),
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
        &script_worker_config("node", &node, &script.display().to_string()),
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
async fn measure_worker(app: &Path, p: &Params) -> Result<WorkerOutcome> {
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
            async move { post_echo(&api).await }
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
pub async fn run(worker: &Path, p: &Params) -> Result<Vec<Row>> {
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
    Ok(table(&rates))
}

fn table(rates: &[WorkerRate]) -> Vec<Row> {
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
