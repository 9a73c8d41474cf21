//! Support for fnhost's end-to-end tests and benchmarks: function apps in
//! temporary directories, locating the built binaries, and a small HTTP
//! client for the host's API; [`postgres`] runs a throwaway PostgreSQL
//! server for the event store's tests.

pub mod postgres;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// The admin key tests start hosts with.
pub const ADMIN_KEY: &str = "test-admin-key";

/// A built binary of this workspace, next to the running executable's
/// profile directory (`target/debug` for tests, `target/release` for the
/// release bench).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory `<temp>/<prefix>-<uuid>`.
    pub fn new(prefix: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a JSON file relative to the directory.
    pub fn write(&self, rel: &str, value: &Value) -> Result<()> {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `worker.config.json` of a Rust worker: `executable`, both argument
/// styles, and `env` as the worker's extra environment.
pub fn rust_worker_config(executable: &Path, env: Value) -> Value {
    json!({"description": {
        "language": "rust",
        "defaultExecutablePath": executable.display().to_string(),
        "argumentStyle": "both",
        "environment": env,
    }})
}

/// `function.json` of an anonymous HTTP function (GET and POST).
pub fn http_function() -> Value {
    json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get", "post"], "authLevel": "anonymous"},
        {"type": "http", "direction": "out", "name": "$return"}
    ]})
}

/// `function.json` of a manually triggered function (admin invoke only).
fn manual_function() -> Value {
    json!({"bindings": [{"type": "manualTrigger", "direction": "in", "name": "input"}]})
}

/// A string input for `HostHandle::invoke` and `submit`.
pub fn text(s: &str) -> fnhost::InvocationInput {
    fnhost::InvocationInput::new(fnhost_proto::rpc::TypedData::string(s))
}

/// A function app in a temporary directory, removed on drop.
pub struct TestApp {
    dir: TempDir,
}

impl TestApp {
    /// An app served by `executable` with the given `host.json` and the
    /// sample functions: `echo` (HTTP), `sleep` (HTTP), `spin`, `panic`,
    /// `crash`, `fail`, `log` (manual triggers).
    pub fn new(executable: &Path, host_json: Value) -> Self {
        Self::with_env(executable, host_json, json!({}))
    }

    /// Like [`TestApp::new`] with extra worker environment variables.
    pub fn with_env(executable: &Path, host_json: Value, env: Value) -> Self {
        let app = Self {
            dir: TempDir::new("fnhost-app").expect("create app dir"),
        };
        app.write("host.json", &host_json);
        app.write("worker.config.json", &rust_worker_config(executable, env));
        for f in ["echo", "sleep", "request"] {
            app.function(f, &http_function());
        }
        for f in ["spin", "panic", "crash", "fail", "log", "flaky"] {
            app.function(f, &manual_function());
        }
        app
    }

    /// A copy of `sample-workers/<sample>` (the sample app of another
    /// language) with `host_json` as its `host.json`; `worker` may rewrite
    /// its `worker.config.json` (e.g. to name the executable by absolute
    /// path, since the copy no longer sits beside the SDK).
    pub fn copy_of_sample(sample: &str, host_json: Value, worker: impl FnOnce(&mut Value)) -> Self {
        let dir = TempDir::new(&format!("fnhost-app-{sample}")).expect("create app dir");
        copy_dir(&repo_root().join("sample-workers").join(sample), dir.path())
            .expect("copy the sample app");
        // The sample's every-minute timer would add an event to any test
        // that crosses a minute; tests that want it write it back.
        let _ = std::fs::remove_dir_all(dir.path().join("tick"));
        let app = Self { dir };
        let mut config: Value = serde_json::from_slice(
            &std::fs::read(app.dir().join("worker.config.json"))
                .expect("the sample has a worker.config.json"),
        )
        .expect("worker.config.json is JSON");
        worker(&mut config);
        app.write("worker.config.json", &config);
        app.write("host.json", &host_json);
        app
    }

    /// The Rust sample worker app.
    pub fn sample(host_json: Value) -> Self {
        Self::new(&binary("fnhost-sample-worker"), host_json)
    }

    /// Adds a manually triggered function (admin invoke only).
    pub fn manual_function(&self, name: &str) {
        self.function(name, &manual_function());
    }

    /// Writes `<name>/function.json`.
    pub fn function(&self, name: &str, json: &Value) {
        self.write(&format!("{name}/function.json"), json);
    }

    /// Writes a JSON file relative to the app directory.
    pub fn write(&self, rel: &str, json: &Value) {
        self.dir.write(rel, json).expect("write file");
    }

    /// The app directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Loads the app's configuration.
    pub fn config(&self) -> fnhost::config::AppConfig {
        fnhost::config::AppConfig::load(self.dir()).expect("valid test app")
    }

    /// Starts an in-process host on ephemeral loopback ports and waits until
    /// `ready` instances are ready.
    pub async fn start(&self, ready: usize) -> fnhost::Host {
        let host = fnhost::Host::start(fnhost::HostOptions::loopback(self.config(), ADMIN_KEY))
            .await
            .expect("host starts");
        assert!(
            host.handle()
                .wait_ready(ready, Duration::from_secs(20))
                .await,
            "{ready} worker instance(s) did not become ready"
        );
        host
    }
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Copies a directory tree, skipping caches, dependencies and host data.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "__pycache__" || name == ".fnhost-data" || name == "node_modules" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: hyper::HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl HttpReply {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// A keep-alive HTTP/1.1 client for one host.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Api {
    /// A client for `http://addr`.
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The host's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("an Api is made from an address")
    }

    /// `http://<addr>` of the host.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; `key` adds `x-functions-key`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
        key: Option<&str>,
    ) -> Result<HttpReply> {
        let headers: &[(&str, &str)] = match key {
            Some(k) => &[("x-functions-key", k)],
            None => &[],
        };
        self.request_with(method, path, body, headers).await
    }

    /// Sends a request with the given headers.
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<HttpReply> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into()))?;
        let resp = self.client.request(req).await.context("HTTP request")?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("HTTP body")?
            .to_bytes();
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }

    /// `POST /admin/functions/<f>/invoke` with the admin key.
    pub async fn invoke(&self, function: &str, body: impl Into<Bytes>) -> Result<HttpReply> {
        self.request(
            "POST",
            &format!("/admin/functions/{function}/invoke"),
            body,
            Some(ADMIN_KEY),
        )
        .await
    }

    /// The status of `GET <path>` presenting `key` in `x-functions-key`.
    pub async fn get_status(&self, path: &str, key: Option<&str>) -> u16 {
        self.request("GET", path, Bytes::new(), key)
            .await
            .map_or(0, |r| r.status)
    }

    /// `GET <path>` with the admin key.
    pub async fn admin_get(&self, path: &str) -> Result<HttpReply> {
        self.request("GET", path, Bytes::new(), Some(ADMIN_KEY))
            .await
    }

    /// `GET /admin/host/status`.
    pub async fn status(&self) -> Result<Value> {
        Ok(self.admin_get("/admin/host/status").await?.json())
    }
}

/// Installs a test log subscriber once (level from `FNHOST_TEST_LOG`, default warn).
pub fn init_logs() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let level = std::env::var("FNHOST_TEST_LOG").unwrap_or_else(|_| "warn".into());
        install_logs(&level, tracing_subscriber::fmt::TestWriter::new());
    });
}

/// Installs a log subscriber that writes to stderr with the `filter`
/// directives (e.g. `warn`, `fnhost=debug`), for programs whose stdout is
/// their report.
pub fn log_to_stderr(filter: &str) {
    install_logs(filter, std::io::stderr);
}

fn install_logs<W>(filter: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = filter.parse().unwrap_or_default();
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(writer))
        .with(filter)
        .try_init();
}

/// A started `fnhost` process, killed on drop if a test fails before it
/// exits.
pub struct HostProcess(pub std::process::Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `cmd start APP_DIR --port 0 EXTRA...` and reads its HTTP address
/// from stdout; returns the process, the address and the lines it printed
/// up to it. Its stderr goes to `stderr`.
pub fn start_host(
    mut cmd: std::process::Command,
    app_dir: &Path,
    extra: &[&str],
    stderr: std::process::Stdio,
) -> (HostProcess, std::net::SocketAddr, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let child = cmd
        .arg("start")
        .arg(app_dir)
        .args(["--port", "0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("fnhost starts");
    let mut child = HostProcess(child);
    let mut lines = BufReader::new(child.0.stdout.take().expect("piped stdout")).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("fnhost printed its address")
            .expect("readable stdout");
        if let Some(rest) = line.strip_prefix("fnhost: listening on http://") {
            let addr = rest
                .split_whitespace()
                .next()
                .and_then(|a| a.parse().ok())
                .expect("an address after `listening on`");
            seen.push(line);
            return (child, addr, seen);
        }
        seen.push(line);
    }
}

/// Whether process `pid` is running: it exists and is not a zombie that
/// waits to be reaped (an orphan in a container whose init does not reap).
pub fn process_running(pid: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`; comm may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Polls `check` every 10 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
