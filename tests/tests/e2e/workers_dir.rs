//! `fnhost start APP --workers-dir DIR`: Azure's own Python and Node workers
//! found in a Core Tools-style workers directory, chosen by
//! `FUNCTIONS_WORKER_RUNTIME`, with `local.settings.json` `Values` and the
//! Azure Functions variables in their environment.
//!
//! The directory is built per test from `../shared/interop` (relative to the
//! repository root) as Core Tools lays it out:
//!
//! ```text
//! workers/python/worker.config.json          the shipped prodV4 config
//! workers/python/3.11/LINUX/X64/worker.py    + azure_functions_worker/
//! workers/node/worker.config.json            the shipped config
//! workers/node/dist/src/nodejsWorker.js
//! ```
//!
//! The Python worker runs from `tests/interop/.build/python` (the package
//! with its generated protocol code) in the venv `tests/interop/.venv`, both
//! made by `tests/interop/setup.sh`; its config names `python`, found on
//! the `PATH` the host is given, as with an activated venv under Core
//! Tools. Where `../shared/interop` is absent the interop tests skip with a
//! message; where it is present and setup has not run they fail with the fix.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fnhost_e2e::{binary, repo_root, Api, ADMIN_KEY};
use serde_json::{json, Value};

/// `../shared/interop`, or `None` with a skip message naming it.
pub(super) fn interop(test: &str) -> Option<PathBuf> {
    let dir = repo_root()
        .parent()
        .expect("the repository has a parent")
        .join("shared/interop");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping {test}: {} (Azure's workers for interop tests) is absent",
            dir.display()
        );
        None
    }
}

/// The prepared Python worker and its venv's `bin`; panics with the fix
/// when `tests/interop/setup.sh` has not run.
pub(super) fn python_build() -> (PathBuf, PathBuf) {
    let here = repo_root().join("tests/interop");
    let build = here.join(".build/python");
    let bin = here.join(".venv/bin");
    assert!(
        here.join(".build/.fnhost-setup").is_file()
            && bin.join("python").is_file()
            && build
                .join("azure_functions_worker/protos/FunctionRpc_pb2.py")
                .is_file(),
        "the interop Python worker is not prepared ({} or {} is missing): \
         run tests/interop/setup.sh",
        build.display(),
        bin.display()
    );
    (build, bin)
}

/// The architecture folder Core Tools uses for this machine.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "Arm64",
        _ => "X64",
    }
}

/// A temporary folder removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fnhost-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir.canonicalize().expect("canonical temp dir"))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    pub(super) fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).expect("create dir");
        std::fs::write(path, text).expect("write file");
    }

    pub(super) fn write_json(&self, rel: &str, v: &Value) {
        self.write(rel, &serde_json::to_string_pretty(v).unwrap());
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn symlink(target: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).expect("create dir");
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", link.display(), target.display()));
}

/// A Core Tools-style workers directory with Azure's Node worker and, given
/// the prepared build, its Python worker.
pub(super) fn workers_dir(interop: &Path, python: Option<&Path>) -> TempDir {
    let dir = TempDir::new("workers");
    let w = dir.path();
    if let Some(python) = python {
        std::fs::create_dir_all(w.join("python")).unwrap();
        std::fs::copy(
            interop.join("python-worker-4.34.0/python/prodV4/worker.config.json"),
            w.join("python/worker.config.json"),
        )
        .expect("copy the shipped Python worker.config.json");
        let payload = w.join(format!("python/3.11/LINUX/{}", architecture()));
        symlink(&python.join("worker.py"), &payload.join("worker.py"));
        symlink(
            &python.join("azure_functions_worker"),
            &payload.join("azure_functions_worker"),
        );
    }
    std::fs::create_dir_all(w.join("node")).unwrap();
    std::fs::copy(
        interop.join("nodejs-worker-3.9.1/worker.config.json"),
        w.join("node/worker.config.json"),
    )
    .expect("copy the shipped Node worker.config.json");
    symlink(
        &interop.join("nodejs-worker-3.9.1/dist"),
        &w.join("node/dist"),
    );
    dir
}

/// Every variable the functions report, and the one whose value must never
/// appear in the host's log (the functions return it reversed).
const REPORTED: &[&str] = &[
    "GREETING",
    "AzureWebJobsScriptRoot",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "AZURE_FUNCTIONS_ENVIRONMENT",
];

const HTTP_IN_OUT: &str = r#"{"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get", "post"], "authLevel": "anonymous"}"#;

/// A function.json Python app: `env` reports its environment, `fail` raises.
fn python_app(settings: Option<Value>) -> TempDir {
    let app = TempDir::new("py-app");
    app.write_json("host.json", &host_json());
    if let Some(s) = settings {
        app.write_json("local.settings.json", &s);
    }
    let bindings = format!(
        r#"{{"scriptFile": "__init__.py", "entryPoint": "main", "bindings": [{HTTP_IN_OUT},
            {{"type": "http", "direction": "out", "name": "$return"}}]}}"#
    );
    for f in ["env", "fail"] {
        app.write(&format!("{f}/function.json"), &bindings);
    }
    app.write(
        "env/__init__.py",
        &format!(
            r#"import json, os
import azure.functions as func

NAMES = {REPORTED:?}


def main(req: func.HttpRequest) -> func.HttpResponse:
    env = {{k: os.environ.get(k) for k in NAMES}}
    env["SECRET_REVERSED"] = os.environ.get("SECRET_SETTING", "")[::-1]
    body = {{"env": env, "body": req.get_body().decode()}}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")
"#
        ),
    );
    app.write(
        "fail/__init__.py",
        "import azure.functions as func\n\n\ndef main(req: func.HttpRequest) -> func.HttpResponse:\n    raise ValueError('fail on purpose')\n",
    );
    app
}

/// A function.json ("v3") Node app: `env` reports its environment, `fail` throws.
fn node_app(settings: Option<Value>) -> TempDir {
    let app = TempDir::new("node-app");
    app.write_json("host.json", &host_json());
    if let Some(s) = settings {
        app.write_json("local.settings.json", &s);
    }
    let bindings = format!(
        r#"{{"scriptFile": "index.js", "bindings": [{HTTP_IN_OUT},
            {{"type": "http", "direction": "out", "name": "res"}}]}}"#
    );
    for f in ["env", "fail"] {
        app.write(&format!("{f}/function.json"), &bindings);
    }
    let names = serde_json::to_string(REPORTED).unwrap();
    app.write(
        "env/index.js",
        &format!(
            r#"module.exports = async function (context, req) {{
  const env = {{}};
  for (const k of {names}) env[k] = process.env[k] ?? null;
  env.SECRET_REVERSED = (process.env.SECRET_SETTING ?? "").split("").reverse().join("");
  context.res = {{
    status: 200,
    headers: {{ "content-type": "application/json" }},
    body: JSON.stringify({{ env, body: req.rawBody ?? "" }}),
  }};
}};
"#
        ),
    );
    app.write(
        "fail/index.js",
        "module.exports = async function (context, req) { throw new Error('fail on purpose'); };\n",
    );
    app
}

/// One instance; the Azure workers ignore cancels, so shutdown is quick.
pub(super) fn host_json() -> Value {
    json!({
        "version": "2.0",
        "functionTimeout": "00:00:20",
        "workers": {"processCount": 1, "terminateGracePeriod": "00:00:00.500",
                    "startupTimeout": "00:00:30"}
    })
}

/// `local.settings.json` naming `runtime`, with a secret setting.
fn settings(runtime: &str, secret: &str) -> Value {
    json!({
        "IsEncrypted": false,
        "Values": {
            "FUNCTIONS_WORKER_RUNTIME": runtime,
            "GREETING": "hello from local settings",
            "SECRET_SETTING": secret,
            "AzureWebJobsStorage": ""
        },
        "Host": {"LocalHttpPort": 7071},
        "ConnectionStrings": {}
    })
}

/// `fnhost` with a clean, hermetic environment for these settings.
pub(super) fn fnhost(path_prefix: Option<&Path>) -> Command {
    let mut cmd = Command::new(binary("fnhost"));
    for v in [
        "FNHOST_WORKERS_DIR",
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_WORKER_RUNTIME_VERSION",
        "AZURE_FUNCTIONS_ENVIRONMENT",
        "GREETING",
        "SECRET_SETTING",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY);
    if let Some(prefix) = path_prefix {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![prefix.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    cmd
}

/// A started `fnhost`, killed on drop; its log goes to `log`.
pub(super) struct HostProcess {
    pub(super) child: Child,
    log: PathBuf,
}

impl HostProcess {
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `cmd start APP --port 0 ARGS` and waits until `/healthz` is 200.
pub(super) async fn start(mut cmd: Command, app: &TempDir, args: &[&Path]) -> (HostProcess, Api) {
    let log = app.path().join("fnhost.log");
    let child = cmd
        .arg("start")
        .arg(app.path())
        .args(["--port", "0"])
        .args(args)
        .env("FNHOST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut host = HostProcess { child, log };
    let mut lines = BufReader::new(host.child.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("fnhost exited before listening:\n{}", host.log());
        };
        if let Some(rest) = line.strip_prefix("fnhost: listening on http://") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let api = Api::new(addr);
    let started = Instant::now();
    while !api
        .request("GET", "/healthz", "", None)
        .await
        .is_ok_and(|r| r.status == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker did not become ready within 30 s:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (host, api)
}

/// Calls `env` and `fail` and checks what the worker saw.
async fn check_app(host: &HostProcess, api: &Api, app: &TempDir, runtime: &str, secret: &str) {
    let reply = api
        .request("POST", "/api/env", Bytes::from_static(b"ping"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), host.log());
    let v = reply.json();
    assert_eq!(v["body"], "ping");
    let env = &v["env"];
    assert_eq!(env["GREETING"], "hello from local settings");
    assert_eq!(
        env["AzureWebJobsScriptRoot"],
        app.path().display().to_string()
    );
    assert_eq!(env["FUNCTIONS_WORKER_RUNTIME"], runtime);
    assert_eq!(env["AZURE_FUNCTIONS_ENVIRONMENT"], "Development");
    let reversed: String = secret.chars().rev().collect();
    assert_eq!(env["SECRET_REVERSED"], reversed.as_str());

    let reply = api
        .request("POST", "/api/fail", Bytes::new(), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 500, "{}", reply.text());

    let log = host.log();
    assert!(
        !log.contains(secret),
        "a local.settings.json value reached the host's log (FNHOST_LOG=debug)"
    );
}

#[tokio::test]
async fn a_function_json_python_app_runs_on_azures_worker_from_a_workers_dir() {
    let Some(interop) = interop("the Python workers-dir test") else {
        return;
    };
    let (build, bin) = python_build();
    let workers = workers_dir(&interop, Some(&build));
    let secret = uuid::Uuid::new_v4().to_string();
    let app = python_app(Some(settings("python", &secret)));
    let (host, api) = start(
        fnhost(Some(&bin)),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    check_app(&host, &api, &app, "python", &secret).await;
    let reply = api
        .request("GET", "/api/env", "", None)
        .await
        .unwrap()
        .json();
    // From the shipped config's defaultRuntimeVersion, which also picked
    // the worker's 3.11/LINUX/<arch> folder.
    assert_eq!(reply["env"]["FUNCTIONS_WORKER_RUNTIME_VERSION"], "3.11");
    let status = api.status().await.unwrap();
    assert_eq!(status["language"], "python", "{status}");
}

#[tokio::test]
async fn a_function_json_node_app_runs_on_azures_worker_from_a_workers_dir() {
    let Some(interop) = interop("the Node workers-dir test") else {
        return;
    };
    let workers = workers_dir(&interop, None);
    let secret = uuid::Uuid::new_v4().to_string();
    let app = node_app(Some(settings("node", &secret)));
    let (host, api) = start(
        fnhost(None),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    check_app(&host, &api, &app, "node", &secret).await;
}

#[tokio::test]
async fn the_environment_names_the_runtime_and_the_workers_dir() {
    let Some(interop) = interop("the workers-dir environment test") else {
        return;
    };
    let workers = workers_dir(&interop, None);
    let app = node_app(None);
    let mut cmd = fnhost(None);
    cmd.env("FNHOST_WORKERS_DIR", workers.path())
        .env("FUNCTIONS_WORKER_RUNTIME", "node")
        .env("AZURE_FUNCTIONS_ENVIRONMENT", "Staging")
        .env("GREETING", "from the environment");
    let (host, api) = start(cmd, &app, &[]).await;
    let reply = api.request("GET", "/api/env", "", None).await.unwrap();
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), host.log());
    let env = &reply.json()["env"];
    assert_eq!(env["FUNCTIONS_WORKER_RUNTIME"], "node");
    assert_eq!(env["AZURE_FUNCTIONS_ENVIRONMENT"], "Staging");
    assert_eq!(env["GREETING"], "from the environment");
    // The shipped Node config names no default version.
    assert_eq!(env["FUNCTIONS_WORKER_RUNTIME_VERSION"], Value::Null);
}

/// `fnhost start` that must fail at configuration: its exit code and stderr.
fn start_error(mut cmd: Command, app: &Path, args: &[&Path]) -> (Option<i32>, String) {
    let out = cmd
        .arg("start")
        .arg(app)
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_workers_dir_without_a_usable_runtime_is_a_configuration_error() {
    // A stand-in worker: these tests end before any worker is launched.
    let workers = TempDir::new("workers");
    workers.write_json(
        "sh/worker.config.json",
        &json!({"description": {"language": "sh", "defaultExecutablePath": "sh"}}),
    );
    let app = TempDir::new("app");
    app.write_json("host.json", &json!({"version": "2.0"}));
    app.write_json(
        "work/function.json",
        &json!({"bindings": [{"type": "manualTrigger", "direction": "in", "name": "input"}]}),
    );
    let dir = [Path::new("--workers-dir"), workers.path()];

    let (code, err) = start_error(fnhost(None), app.path(), &dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("FUNCTIONS_WORKER_RUNTIME")
            && err.contains("local.settings.json")
            && err.contains("it has sh"),
        "{err}"
    );

    app.write_json(
        "local.settings.json",
        &json!({"Values": {"FUNCTIONS_WORKER_RUNTIME": "java"}}),
    );
    let (code, err) = start_error(fnhost(None), app.path(), &dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("\"java\"") && err.contains("java/worker.config.json"),
        "{err}"
    );

    let (code, err) = start_error(fnhost(None), app.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("worker.config.json") && err.contains("--workers-dir"),
        "{err}"
    );
}

#[test]
fn encrypted_or_malformed_local_settings_are_configuration_errors() {
    let app = TempDir::new("app");
    app.write_json("host.json", &json!({"version": "2.0"}));
    app.write_json(
        "work/function.json",
        &json!({"bindings": [{"type": "manualTrigger", "direction": "in", "name": "input"}]}),
    );
    app.write_json(
        "worker.config.json",
        &json!({"description": {"language": "sh", "defaultExecutablePath": "sh"}}),
    );
    app.write_json(
        "local.settings.json",
        &json!({"IsEncrypted": true, "Values": {"A": "opaque"}}),
    );
    let (code, err) = start_error(fnhost(None), app.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("local.settings.json")
            && err.contains("`IsEncrypted`")
            && err.contains("not supported"),
        "{err}"
    );

    app.write_json(
        "local.settings.json",
        &json!({"Values": {"TOKEN": {"nested": "no"}}}),
    );
    let (code, err) = start_error(fnhost(None), app.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("local.settings.json") && err.contains("`Values.TOKEN`"),
        "{err}"
    );
}

/// A decorator-model Python app (`function_app.py`, no function.json), as
/// `func new` writes it today.
fn decorator_python_app() -> TempDir {
    let app = TempDir::new("py-v2-app");
    app.write_json("host.json", &host_json());
    app.write_json("local.settings.json", &settings("python", "unused"));
    app.write(
        "function_app.py",
        r#"import json
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello")
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello " + req.params.get("name", "world"))


@app.route(route="items/{id:int}", methods=["GET"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"id": req.route_params.get("id")}),
                             mimetype="application/json")


@app.route(route="submit", methods=["POST"])
def submit(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("got " + req.get_body().decode())


@app.route(route="secure", auth_level=func.AuthLevel.FUNCTION)
def secure(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("secret ok")


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("boom on purpose")
"#,
    );
    app
}

/// Makes `app` a v4-model Node package named `name`: package.json `main`
/// is `src/index.js`, and `@azure/functions` 4.x (installed by
/// tests/interop/setup.sh) is linked in as its node_modules.
pub(super) fn v4_package(app: &TempDir, name: &str) {
    app.write_json(
        "package.json",
        &json!({"name": name, "version": "1.0.0", "main": "src/index.js"}),
    );
    let modules = repo_root().join("tests/interop/node-v4/node_modules");
    assert!(
        modules.join("@azure/functions/package.json").is_file(),
        "@azure/functions 4.x is not installed ({} is missing): run tests/interop/setup.sh",
        modules.display()
    );
    symlink(&modules, &app.path().join("node_modules"));
}

/// A v4-model Node app (`app.http(...)` in package.json `main`).
fn v4_node_app() -> TempDir {
    let app = TempDir::new("node-v4-app");
    app.write_json("host.json", &host_json());
    app.write_json("local.settings.json", &settings("node", "unused"));
    v4_package(&app, "v4-app");
    app.write(
        "src/index.js",
        r#"const { app } = require('@azure/functions');

app.http('hello', { methods: ['GET'], authLevel: 'anonymous', route: 'hello',
  handler: async (request) => ({ body: `hello ${request.query.get('name') || 'world'}` }) });
app.http('item', { methods: ['GET'], authLevel: 'anonymous', route: 'items/{id:int}',
  handler: async (request) => ({ jsonBody: { id: request.params.id } }) });
app.http('submit', { methods: ['POST'], authLevel: 'anonymous',
  handler: async (request) => ({ body: 'got ' + (await request.text()) }) });
app.http('secure', { methods: ['GET'], authLevel: 'function',
  handler: async () => ({ body: 'secret ok' }) });
app.http('boom', { methods: ['GET'], authLevel: 'anonymous',
  handler: async () => { throw new Error('boom on purpose'); } });
"#,
    );
    app
}

/// The same checks for both: routes with typed values, methods, auth
/// levels, a failure, and an admin invoke of an HTTP function (`RpcHttp`).
async fn check_indexed_app(host: &HostProcess, api: &Api) {
    let get = |path: &'static str| {
        let api = api.clone();
        async move { api.request("GET", path, "", None).await.unwrap() }
    };
    let r = get("/api/hello?name=azure").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello azure"),
        "{}",
        host.log()
    );
    let r = get("/api/items/42").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"].to_string().trim_matches('"'), "42");
    assert_eq!(
        get("/api/items/abc").await.status,
        404,
        "the int constraint"
    );
    let r = api
        .request("POST", "/api/submit", "payload", None)
        .await
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "got payload"));
    assert_eq!(get("/api/submit").await.status, 405, "POST only");
    assert_eq!(
        get("/api/secure").await.status,
        401,
        "function level needs a key"
    );
    let host_key = api.admin_get("/admin/host/keys").await.unwrap().json()["keys"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .request("GET", "/api/secure", "", Some(&host_key))
        .await
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "secret ok"));
    let r = get("/api/boom").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["message"], "the function failed");
    let r = api.invoke("submit", "from admin").await.unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "got from admin"),
        "{}",
        r.text()
    );
    let status = api.status().await.unwrap();
    for f in ["hello", "item", "submit", "secure", "boom"] {
        assert!(
            status["functions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == f),
            "{f} is listed: {status}"
        );
    }
}

#[tokio::test]
async fn a_decorator_model_python_app_runs_unchanged() {
    let Some(interop) = interop("the decorator-model Python test") else {
        return;
    };
    let (build, bin) = python_build();
    let workers = workers_dir(&interop, Some(&build));
    let app = decorator_python_app();
    let (host, api) = start(
        fnhost(Some(&bin)),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    check_indexed_app(&host, &api).await;
}

#[tokio::test]
async fn a_v4_model_node_app_runs_unchanged() {
    let Some(interop) = interop("the v4 Node test") else {
        return;
    };
    let workers = workers_dir(&interop, None);
    let app = v4_node_app();
    let (host, api) = start(
        fnhost(None),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    check_indexed_app(&host, &api).await;
}
