//! Release `fnhost` processes for the cluster scenarios: each with its own
//! data directory and log file, on the default SQLite store or a shared
//! PostgreSQL one, stopped with SIGTERM or killed with SIGKILL.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use fnhost_e2e::ADMIN_KEY;
use fnhost_e2e::{binary, process_running, start_host, Api, HostProcess, TempDir, TestApp};
use serde_json::Value;

/// How long a host may take to have a ready worker, and to stop on SIGTERM.
const PATIENCE: Duration = Duration::from_secs(20);

/// One `fnhost start` process.
pub struct Node {
    process: HostProcess,
    pub api: Api,
    /// `cluster.hostId` from its status (`None` on SQLite).
    pub host_id: Option<String>,
    /// Its worker instance's pid, so a killed host's worker is not left
    /// behind.
    worker_pid: Option<u32>,
}

/// The app the nodes of one scenario share and a directory for their data
/// directories and logs (removed on drop).
pub struct Nodes {
    app: TestApp,
    dirs: TempDir,
    started: usize,
}

impl Nodes {
    pub fn new(worker: &Path, host_json: Value) -> Result<Self> {
        Ok(Self {
            app: TestApp::new(worker, host_json),
            dirs: TempDir::new("fnhost-bench-cluster")?,
            started: 0,
        })
    }

    /// Starts a host on `store` (a PostgreSQL URL, or `None` for the
    /// default SQLite store in its data directory) and waits until its
    /// worker is ready.
    pub async fn start(&mut self, store: Option<&str>) -> Result<Node> {
        self.started += 1;
        let name = format!("host{}", self.started);
        let data_dir = self.dirs.path().join(&name);
        let log_path = self.dirs.path().join(format!("{name}.log"));
        let log = File::create(&log_path).context("creating a host log")?;
        let mut cmd = Command::new(binary("fnhost"));
        cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
            .env("FNHOST_LOG", "warn")
            .env_remove("FNHOST_EVENT_STORE");
        if let Some(url) = store {
            cmd.env("FNHOST_EVENT_STORE", url);
        }
        let app_dir = self.app.dir().to_path_buf();
        // start_host reads the host's stdout until it prints its address.
        let (process, addr, _) = tokio::task::spawn_blocking(move || {
            let data_dir = data_dir.to_string_lossy().into_owned();
            start_host(cmd, &app_dir, &["--data-dir", &data_dir], Stdio::from(log))
        })
        .await
        .with_context(|| format!("{name} did not start; see {}", log_path.display()))?;
        let api = Api::new(addr);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(status) = api.status().await {
                let ready = status["workers"]
                    .as_array()
                    .and_then(|ws| ws.iter().find(|w| w["state"] == "ready"));
                if let Some(w) = ready {
                    return Ok(Node {
                        process,
                        host_id: status["cluster"]["hostId"].as_str().map(str::to_owned),
                        worker_pid: w["pid"].as_u64().map(|p| p as u32),
                        api,
                    });
                }
            }
            ensure!(
                Instant::now() < deadline,
                "{name} had no ready worker after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Node {
    /// SIGTERM, then waits for the host to exit (SIGKILL after
    /// [`PATIENCE`]) and for its worker to be gone.
    pub async fn stop(mut self) {
        let pid = self.process.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + PATIENCE;
        while matches!(self.process.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
    }

    /// `kill -9` of the host (`Child::kill`), then of its worker if that
    /// outlives it by a few seconds.
    pub fn kill(&mut self) {
        if let Ok(None) = self.process.0.try_wait() {
            let _ = self.process.0.kill();
            let _ = self.process.0.wait();
        }
        let Some(worker) = self.worker_pid.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_running(worker.into()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if process_running(worker.into()) {
            let _ = Command::new("kill")
                .args(["-KILL", &worker.to_string()])
                .status();
        }
    }
}
