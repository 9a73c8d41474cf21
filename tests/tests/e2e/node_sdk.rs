//! The Node worker SDK (`sample-workers/node`) and its sample app
//! (`sample-workers/node-app`) against the real host: both invoke routes,
//! timeouts answered by a cooperative cancel, kills of a handler that ignores
//! it, exceptions, crashes, and concurrency on one instance.
//!
//! Needs Node.js on `PATH` and the SDK's dependencies installed with
//! `sample-workers/node/setup.sh`; the tests fail (not skip) otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fnhost::{CancelReason, CancelResponse, InvocationInput, Outcome};
use fnhost_e2e::{init_logs, repo_root, Api, TestApp};
use fnhost_proto::rpc::TypedData;
use serde_json::{json, Value};

fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
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
fn node_app_with_style(host_json: Value, argument_style: &str) -> TestApp {
    let grpc = repo_root().join("sample-workers/node/node_modules/@grpc/grpc-js/package.json");
    assert!(
        grpc.is_file(),
        "the Node worker SDK's dependencies are not installed ({} is missing): \
         run sample-workers/node/setup.sh",
        grpc.display()
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

/// The Node sample app with `argumentStyle: "both"`.
fn node_app(host_json: Value) -> TestApp {
    node_app_with_style(host_json, "both")
}

#[tokio::test]
async fn node_echo_answers_through_the_trigger_route_and_the_admin_route() {
    init_logs();
    let app = node_app(json!({}));
    let host = app.start(1).await;
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

    let status = api.status().await.unwrap();
    assert_eq!(status["workers"][0]["handlesCancel"], true, "{status}");
    host.shutdown().await;
}

#[tokio::test]
async fn node_worker_accepts_each_launch_argument_style() {
    init_logs();
    for style in ["classic", "functions", "both"] {
        let app = node_app_with_style(json!({}), style);
        let host = app.start(1).await;
        let r = host.handle().invoke("echo", text(style)).await.unwrap();
        assert_eq!(r.outcome, Outcome::Succeeded, "style {style}: {r:?}");
        host.shutdown().await;
    }
}

#[tokio::test]
async fn node_timeout_on_sleep_is_cancelled_by_the_worker_within_the_grace() {
    init_logs();
    let app = node_app(json!({
        "functionTimeout": "00:00:00.500",
        "workers": {"cancelGracePeriod": "00:00:05"}
    }));
    let host = app.start(1).await;
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

    // Library view of the same thing: the outcome and reason.
    let r = host.handle().invoke("sleep", text("30000")).await.unwrap();
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert_eq!(r.cancel_reason, Some(CancelReason::Timeout));
    host.shutdown().await;
}

#[tokio::test]
async fn node_explicit_cancels_reach_the_handler_even_when_racing_the_request() {
    init_logs();
    let app = node_app(json!({}));
    let host = app.start(1).await;
    let h = host.handle().clone();
    for _ in 0..20 {
        let p = h.submit("sleep", text("60000")).await.unwrap();
        assert_eq!(
            h.cancel(&p.id, CancelReason::Requested).await,
            CancelResponse::Done
        );
        let r = tokio::time::timeout(Duration::from_secs(3), p.result())
            .await
            .expect("the cancel was honoured")
            .unwrap();
        assert_eq!(r.outcome, Outcome::Cancelled, "{r:?}");
        assert_eq!(r.cancel_reason, Some(CancelReason::Requested));
    }
    let status = h.status().await.unwrap();
    assert_eq!(status.workers.len(), 1, "nothing was killed");
    host.shutdown().await;
}

#[tokio::test]
async fn node_spin_that_ignores_cancel_is_killed_after_the_grace_and_replaced() {
    init_logs();
    let app = node_app(json!({"workers": {"cancelGracePeriod": "00:00:00.300"}}));
    app.function(
        "spin",
        &json!({"functionTimeout": "00:00:00.500",
                "bindings": [{"type": "manualTrigger", "direction": "in", "name": "input"}]}),
    );
    let host = app.start(1).await;
    let h = host.handle().clone();
    let first_worker = h.status().await.unwrap().workers[0].worker_id.clone();

    let started = Instant::now();
    let spin = h.invoke("spin", text("60000")).await.unwrap();
    assert_eq!(spin.outcome, Outcome::Killed, "{spin:?}");
    assert_eq!(spin.cancel_reason, Some(CancelReason::Timeout));
    let err = spin.error.unwrap();
    assert!(
        err.contains("did not stop within") && err.contains(&first_worker),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "killed soon after timeout + grace: {:?}",
        started.elapsed()
    );

    let next = h.invoke("echo", text("after")).await.unwrap();
    assert_eq!(next.outcome, Outcome::Succeeded, "{next:?}");
    assert_ne!(
        next.worker_id.as_deref(),
        Some(first_worker.as_str()),
        "a replacement served it"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn node_exceptions_and_failures_fail_with_their_messages() {
    init_logs();
    let app = node_app(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api.invoke("panic", "boom").await.unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "failed");
    let body = r.json();
    assert_eq!(body["error"]["outcome"], "failed");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("panic requested: boom"), "{msg}");
    // The error's stack travels as the exception's stack trace.
    let trace = body["error"]["stackTrace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("panic requested: boom") && trace.contains("    at "),
        "{body}"
    );

    let r = host
        .handle()
        .invoke("fail", text("bad input"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("failure requested: bad input"),
        "{r:?}"
    );
    // The worker survives both.
    let r = api.invoke("echo", "still here").await.unwrap();
    assert_eq!(r.text(), "still here");
    host.shutdown().await;
}

#[tokio::test]
async fn node_user_logs_reach_the_host_tied_to_their_invocation() {
    init_logs();
    let app = node_app(json!({}));
    let host = app.start(1).await;
    let r = host.handle().invoke("log", text("x")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let levels: Vec<&str> = r.logs.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(levels, ["Information", "Warning", "Error"], "{:?}", r.logs);
    assert!(r.logs.iter().all(|l| l.category == "log"), "{:?}", r.logs);
    host.shutdown().await;
}

#[tokio::test]
async fn node_crash_fails_its_invocation_and_the_worker_restarts() {
    init_logs();
    let app = node_app(json!({}));
    let host = app.start(1).await;
    let h = host.handle().clone();
    let first = h.status().await.unwrap().workers[0].worker_id.clone();
    let r = h.invoke("crash", text("x")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let err = r.error.unwrap();
    assert!(err.contains(&first) && err.contains("exit code 3"), "{err}");

    let next = h.invoke("echo", text("again")).await.unwrap();
    assert_eq!(next.outcome, Outcome::Succeeded, "{next:?}");
    assert_ne!(next.worker_id.as_deref(), Some(first.as_str()));
    let status = h.status().await.unwrap();
    assert_eq!(status.slots[0].recent_restarts, 1);
    host.shutdown().await;
}

#[tokio::test]
async fn node_runs_twenty_sleeps_concurrently_on_one_instance() {
    init_logs();
    let app = node_app(json!({
        "workers": {"processCount": 1, "maxConcurrentInvocations": 100}
    }));
    let host = app.start(1).await;
    let h = host.handle().clone();
    // Warm up the path once so the measurement is about concurrency.
    assert!(h.invoke("sleep", text("1")).await.unwrap().is_success());

    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.invoke("sleep", text("200")).await.unwrap() })
        })
        .collect();
    let mut workers = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
        workers.insert(r.worker_id.clone());
    }
    let elapsed = started.elapsed();
    assert_eq!(workers.len(), 1, "all ran on one instance: {workers:?}");
    assert!(
        elapsed < Duration::from_millis(2000),
        "20 x 200 ms sleeps took {elapsed:?}; serial would be 4 s"
    );
    host.shutdown().await;
}
