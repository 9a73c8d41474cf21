//! Behaviour every fnhost SDK must show, written once and run per language
//! (the Rust sample worker, the Python SDK, the Node SDK). Each language's
//! module starts its app and calls these bodies on the running host.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fnhost::{CancelReason, CancelResponse, Host, InvocationInput, Outcome};
use fnhost_e2e::{repo_root, Api, TestApp};
use fnhost_proto::rpc::TypedData;
use serde_json::{json, Value};

/// A language with an fnhost SDK and a sample app.
#[derive(Debug, Clone, Copy)]
pub enum Lang {
    /// `sample-workers/rust-worker` (the Rust SDK).
    Rust,
    /// `sample-workers/python` and `python-app`.
    Python,
    /// `sample-workers/node` and `node-app`.
    Node,
}

impl Lang {
    /// The language's sample app with `host_json`.
    pub fn app(self, host_json: Value) -> TestApp {
        match self {
            Lang::Rust => TestApp::sample(host_json),
            Lang::Python => python_app(host_json),
            Lang::Node => node_app_with_style(host_json, "both"),
        }
    }
}

pub fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
}

/// The Python SDK venv's interpreter; fails loudly (never skips) when it is missing.
fn venv_python() -> PathBuf {
    let sdk = repo_root().join("sample-workers/python");
    let python = sdk.join(".venv/bin/python");
    let command = sdk.join(".venv/bin/fnhost-python-worker");
    assert!(
        python.is_file() && command.is_file(),
        "the Python worker SDK is not set up ({} or {} is missing): run sample-workers/python/setup.sh",
        python.display(),
        command.display()
    );
    python
}

/// A copy of `sample-workers/python-app` whose `worker.config.json` names
/// the venv's python by absolute path.
fn python_app(host_json: Value) -> TestApp {
    let python = venv_python();
    TestApp::copy_of_sample("python-app", host_json, |w| {
        w["description"]["defaultExecutablePath"] = json!(python.display().to_string());
    })
}

/// The `node` executable on `PATH`, as an absolute path.
fn node_executable() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|p| p.join("node"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`node` was not found on PATH; install Node.js 18+ to run the Node SDK tests")
        })
}

/// A copy of `sample-workers/node-app` launched with `argument_style`,
/// after checking the SDK's dependencies are installed.
pub fn node_app_with_style(host_json: Value, argument_style: &str) -> TestApp {
    let grpc = repo_root().join("sample-workers/node/node_modules/@grpc/grpc-js/package.json");
    assert!(
        grpc.is_file(),
        "the Node worker SDK's dependencies are not installed ({} is missing): \
         run sample-workers/node/setup.sh",
        grpc.display()
    );
    // The sample app requires the SDK by name, linked by setup.sh.
    let linked =
        repo_root().join("sample-workers/node-app/node_modules/fnhost-worker/package.json");
    assert!(
        linked.is_file(),
        "the Node sample app does not have the SDK installed ({} is missing): \
         run sample-workers/node/setup.sh",
        linked.display()
    );
    let script = repo_root().join("sample-workers/node-app/index.js");
    let node = node_executable();
    TestApp::copy_of_sample("node-app", host_json, |w| {
        w["description"]["defaultExecutablePath"] = json!(node.display().to_string());
        // The SDK is found relative to the entry script: run the original.
        w["description"]["defaultWorkerPath"] = json!(script.display().to_string());
        w["description"]["argumentStyle"] = json!(argument_style);
    })
}

/// Gives a manual-trigger function its own timeout.
pub fn manual_with_timeout(app: &TestApp, function: &str, timeout: &str) {
    app.function(
        function,
        &json!({"functionTimeout": timeout,
                "bindings": [{"type": "manualTrigger", "direction": "in", "name": "input"}]}),
    );
}

/// `host.json` for [`sleep_times_out_cancelled_by_the_worker`]: a short
/// function timeout, a long cancel grace.
pub fn timeout_host_json() -> Value {
    json!({
        "functionTimeout": "00:00:00.500",
        "workers": {"cancelGracePeriod": "00:00:05"}
    })
}

/// Text in, the same text out, on the trigger route and the admin route.
pub async fn echo_answers_on_both_routes(host: &Host) {
    let api = Api::new(host.http_addr());
    let r = api
        .request("POST", "/api/echo?x=1", "hello", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("x-fnhost-outcome"), "succeeded");
    assert!(!r.header("x-fnhost-invocation-id").is_empty());

    let r = api.invoke("echo", "from admin").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "from admin");

    let r = api.invoke("sleep", "10").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slept 10 ms"));
}

/// On a host with [`timeout_host_json`]: the timeout's cancel reaches the
/// handler, which stops well inside the grace; nothing is killed.
pub async fn sleep_times_out_cancelled_by_the_worker(host: &Host) {
    let api = Api::new(host.http_addr());
    let started = Instant::now();
    let r = api.invoke("sleep", "30000").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "timed-out");
    let body = r.json();
    assert_eq!(body["error"]["reason"], "timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the worker cancelled it"),
        "{body}"
    );
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    let status = api.status().await.unwrap();
    assert_eq!(
        status["workers"].as_array().unwrap().len(),
        1,
        "no instance was replaced: {status}"
    );
    assert_eq!(status["outcomes"]["timed-out"], 1, "{status}");

    // The library's view of the same thing: the outcome and reason.
    let r = host.handle().invoke("sleep", text("30000")).await.unwrap();
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert_eq!(r.cancel_reason, Some(CancelReason::Timeout));
}

/// After an instance was killed or crashed: the next invocation runs on
/// its replacement.
pub async fn a_replacement_serves_after(host: &Host, gone: &str) {
    let next = host.handle().invoke("echo", text("after")).await.unwrap();
    assert_eq!(next.outcome, Outcome::Succeeded, "{next:?}");
    assert_ne!(
        next.worker_id.as_deref(),
        Some(gone),
        "a replacement served it"
    );
}

/// `spin` (a 0.5 s timeout, a 0.3 s grace) ignores its cancel: the
/// instance is killed after the grace and replaced.
pub async fn spin_is_killed_after_the_grace_and_replaced(host: &Host) {
    let h = host.handle();
    let first = h.status().await.unwrap().workers[0].worker_id.clone();
    let started = Instant::now();
    let spin = h.invoke("spin", text("60000")).await.unwrap();
    assert_eq!(spin.outcome, Outcome::Killed, "{spin:?}");
    assert_eq!(spin.cancel_reason, Some(CancelReason::Timeout));
    let err = spin.error.unwrap();
    assert!(
        err.contains("did not stop within") && err.contains(first.as_str()),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "killed soon after timeout + grace: {:?}",
        started.elapsed()
    );
    a_replacement_serves_after(host, &first).await;
}

/// `crash` exits the worker with code 3: its invocation fails naming the
/// instance and the exit, and a replacement serves the next one.
pub async fn crash_fails_its_invocation_and_the_worker_restarts(host: &Host) {
    let h = host.handle();
    let first = h.status().await.unwrap().workers[0].worker_id.clone();
    let r = h.invoke("crash", text("x")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let err = r.error.unwrap();
    assert!(
        err.contains(first.as_str()) && err.contains("exit code 3"),
        "{err}"
    );
    a_replacement_serves_after(host, &first).await;
    assert_eq!(h.status().await.unwrap().slots[0].recent_restarts, 1);
}

/// `log` logs at three levels: the lines come back with its result.
pub async fn user_logs_reach_the_host_tied_to_their_invocation(host: &Host) {
    let r = host.handle().invoke("log", text("x")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let levels: Vec<&str> = r.logs.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(levels, ["Information", "Warning", "Error"], "{:?}", r.logs);
    assert!(r.logs.iter().all(|l| l.category == "log"), "{:?}", r.logs);
}

/// `n` cancels sent right behind their requests: the cancel goes ahead of
/// queued work on the stream, so the worker may see it first; each is
/// honoured and nothing is killed.
pub async fn cancels_racing_their_requests_are_honoured(host: &Host, function: &str, n: usize) {
    let h = host.handle();
    for _ in 0..n {
        let p = h.submit(function, text("60000")).await.unwrap();
        assert_eq!(
            h.cancel(&p.id, CancelReason::Requested).await,
            CancelResponse::Done
        );
        let r = tokio::time::timeout(Duration::from_secs(3), p.result())
            .await
            .expect("the worker answered the cancel")
            .unwrap();
        assert_eq!(r.outcome, Outcome::Cancelled, "{r:?}");
        assert_eq!(r.cancel_reason, Some(CancelReason::Requested));
    }
    let status = h.status().await.unwrap();
    assert_eq!(status.workers.len(), 1, "nothing was killed");
}

/// Twenty 200 ms runs of `function` finish together on one instance.
pub async fn twenty_run_concurrently_on_one_instance(host: &Host, function: &str) {
    let h = host.handle();
    // Warm up the path once so the measurement is about concurrency.
    assert!(h.invoke(function, text("1")).await.unwrap().is_success());
    let started = Instant::now();
    let mut pending = Vec::new();
    for _ in 0..20 {
        pending.push(h.submit(function, text("200")).await.unwrap());
    }
    let mut workers = std::collections::BTreeSet::new();
    for p in pending {
        let r = p.result().await.unwrap();
        assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
        workers.insert(r.worker_id.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(workers.len(), 1, "one instance ran them all: {workers:?}");
    assert!(
        elapsed < Duration::from_millis(2000),
        "20 x 200 ms of {function} took {elapsed:?}: invocations were serialised"
    );
}
