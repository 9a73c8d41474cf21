//! The Rust SDK as a user installs it: a cargo project outside the
//! repository that depends on `fnhost-worker` by path, built offline with
//! the workspace's `Cargo.lock` (so its versions match) into a target
//! directory of its own under the workspace's (so later runs reuse its
//! dependencies), and served by the real `fnhost start`. Its typed JSON
//! functions answer over HTTP, bad JSON fails with a message naming the
//! function, and each invocation sees its attempt and deadline. Also the
//! sample worker's `deadline` function, on the in-process host.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnhost_e2e::{
    binary, http_function, init_logs, repo_root, start_host, wait_until, Api, TempDir, TestApp,
    ADMIN_KEY,
};
use serde_json::{json, Value};

use crate::async_events::{submit, wait_status};
use crate::binary::{signal, wait_exit};

/// The user's `src/main.rs`: a typed JSON echo on an HTTP trigger, and
/// `when`, which fails its attempts before `failBefore` and reports its
/// attempt and the time left to its deadline.
const MAIN_RS: &str = r#"
use std::time::SystemTime;

use fnhost_worker::{Context, HandlerError, Json, Worker};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
struct Item {
    name: String,
    count: u32,
}

async fn echo(_ctx: Context, Json(item): Json<Item>) -> Result<Json<Item>, HandlerError> {
    Ok(Json(item))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ask {
    #[serde(default)]
    fail_before: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct When {
    attempt: u32,
    remaining_ms: Option<u128>,
}

async fn when(ctx: Context, Json(ask): Json<Ask>) -> Result<Json<When>, HandlerError> {
    if ctx.attempt() < ask.fail_before {
        return Err(format!("attempt {} fails on purpose", ctx.attempt()).into());
    }
    let remaining_ms = ctx.deadline().map(|deadline| {
        deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_millis()
    });
    Ok(Json(When { attempt: ctx.attempt(), remaining_ms }))
}

#[tokio::main]
async fn main() {
    let worker = Worker::builder().function("echo", echo).function("when", when);
    if let Err(e) = worker.run().await {
        eprintln!("worker failed: {e}");
        std::process::exit(1);
    }
}
"#;

/// A built user project: its binary, and the artifacts to remove from the
/// shared target directory afterwards (each run's package has its own
/// name, so nothing of another run is touched).
struct Built {
    binary: PathBuf,
    target_dir: PathBuf,
    package: String,
}

impl Drop for Built {
    fn drop(&mut self) {
        let profile = self.target_dir.join("debug");
        let crate_name = self.package.replace('-', "_");
        let mine = |name: &str| name.starts_with(&self.package) || name.starts_with(&crate_name);
        for dir in [
            profile.clone(),
            profile.join("deps"),
            profile.join(".fingerprint"),
            profile.join("incremental"),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if mine(&entry.file_name().to_string_lossy()) {
                    let path = entry.path();
                    let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                }
            }
        }
    }
}

/// Writes the user project into `dir` and builds it with `cargo build
/// --offline`, printing how long that took.
fn build_user_project(dir: &Path) -> Built {
    let sdk = repo_root().join("worker-sdk");
    let package = format!(
        "fnhost-user-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let manifest = format!(
        r#"[package]
name = "{package}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
fnhost-worker = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}

# Not part of any workspace above it.
[workspace]
"#,
        sdk = sdk.display().to_string(),
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN_RS).unwrap();
    std::fs::copy(repo_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();

    // `<workspace target>/debug/fnhost` → `<workspace target>/rust-package`.
    let target_dir = binary("fnhost")
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .join("rust-package");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the user project does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "rust_package: built the user project in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let binary = target_dir.join("debug").join(&package);
    assert!(binary.is_file(), "{} was not built", binary.display());
    Built {
        binary,
        target_dir,
        package,
    }
}

/// The function timeout both apps run with.
const TIMEOUT_MS: u128 = 20_000;

fn host_json() -> Value {
    json!({
        "version": "2.0",
        "functionTimeout": "00:00:20",
        "workers": {"processCount": 1},
        "asyncEvents": {"maxRetryAttempts": 2, "retryBackoff": "00:00:00.050"}
    })
}

/// `remainingMs` is about the function timeout: a little of it went on
/// dispatch.
fn assert_about_the_timeout_left(seen: &Value) {
    let left = seen["remainingMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("no deadline: {seen}")) as u128;
    assert!(
        (TIMEOUT_MS - 5_000..=TIMEOUT_MS).contains(&left),
        "{left} ms left of a {TIMEOUT_MS} ms timeout: {seen}"
    );
}

#[tokio::test]
async fn a_user_project_built_against_the_sdk_serves_typed_json_functions_under_fnhost_start() {
    init_logs();
    let project = TempDir::new("fnhost-rust-package").unwrap();
    let built = build_user_project(project.path());

    let app = TempDir::new("fnhost-rust-package-app").unwrap();
    app.write(
        "worker.config.json",
        &fnhost_e2e::rust_worker_config(&built.binary, json!({})),
    )
    .unwrap();
    app.write("host.json", &host_json()).unwrap();
    app.write("echo/function.json", &http_function()).unwrap();
    app.write(
        "when/function.json",
        &json!({"bindings": [{"type": "manualTrigger", "direction": "in", "name": "input"}]}),
    )
    .unwrap();
    let mut fnhost = Command::new(binary("fnhost"));
    fnhost
        .env_remove("FNHOST_ADMIN_KEY")
        .env("FNHOST_LOG", "warn");
    let (mut host, addr, _) = start_host(
        fnhost,
        app.path(),
        &["--admin-key", ADMIN_KEY],
        Stdio::null(),
    );
    let api = Api::new(addr);
    wait_until(
        "the user's worker to be ready",
        Duration::from_secs(20),
        || async { api.status().await.unwrap()["workers"][0]["state"] == "ready" },
    )
    .await;
    let status = api.status().await.unwrap();
    assert_eq!(status["workers"][0]["loadErrors"], json!({}), "{status}");

    // Typed JSON in and out, on the trigger route.
    let r = api
        .request(
            "POST",
            "/api/echo",
            r#"{"name": "widget", "count": 3}"#,
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.json(), json!({"name": "widget", "count": 3}));

    // JSON that does not fit the type fails before the handler runs, saying
    // which function, which type and why; the caller with the admin key
    // reads it, a public caller only that the function failed.
    let r = api
        .invoke("echo", r#"{"name": "widget", "count": "three"}"#)
        .await
        .unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("function 'echo' got input that is not valid JSON for `")
            && message.contains("::Item`: invalid type: string \"three\", expected u32"),
        "{message}"
    );
    let r = api
        .request("POST", "/api/echo", "not json", None)
        .await
        .unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "the function failed");
    // The worker carries on.
    let r = api
        .request(
            "POST",
            "/api/echo",
            r#"{"name": "again", "count": 0}"#,
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.json()["name"], "again");

    // A synchronous invocation is attempt 1, its deadline the timeout away.
    let r = api.invoke("when", "{}").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["attempt"], 1, "{seen}");
    assert_about_the_timeout_left(&seen);

    // An async event that fails its first attempt succeeds on its second,
    // which knows it is the second.
    let id = submit(&api, "when", r#"{"failBefore": 2}"#).await;
    let e = wait_status(&api, &id, "FINISHED").await;
    assert_eq!(e["attempts"], 2, "{e}");
    let seen: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    assert_eq!(seen["attempt"], 2, "{seen}");
    assert_about_the_timeout_left(&seen);

    signal(&host, "-TERM");
    assert!(wait_exit(&mut host, Duration::from_secs(15)).success());
    drop(built);
}

#[tokio::test]
async fn the_sample_workers_deadline_function_sees_its_timeout_and_retry_attempt() {
    init_logs();
    let app = TestApp::sample(host_json());
    app.manual_function("deadline");
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api.invoke("deadline", "").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["attempt"], 1, "{seen}");
    assert_about_the_timeout_left(&seen);

    let id = submit(&api, "deadline", r#"{"failBefore": 3}"#).await;
    let e = wait_status(&api, &id, "FINISHED").await;
    assert_eq!(e["attempts"], 3, "{e}");
    let seen: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    assert_eq!(seen["attempt"], 3, "{seen}");
    host.shutdown().await;
}
