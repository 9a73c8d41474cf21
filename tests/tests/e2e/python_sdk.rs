//! The Python worker SDK (`sample-workers/python`) and its sample app
//! (`sample-workers/python-app`) against the real host: both invoke routes,
//! cancellation reaching async and sync handlers, kills, exceptions, crashes
//! and concurrency. The bodies shared with the other languages are in
//! `languages.rs`.
//!
//! Needs the SDK's virtual environment: run `sample-workers/python/setup.sh`.

use std::time::{Duration, Instant};

use fnhost::{CancelReason, Outcome};
use fnhost_e2e::{init_logs, Api};
use serde_json::json;

use crate::languages::{self, manual_with_timeout, text, Lang};

fn python_app(host_json: serde_json::Value) -> fnhost_e2e::TestApp {
    Lang::Python.app(host_json)
}

#[tokio::test]
async fn python_echo_answers_on_the_http_route_and_the_admin_invoke() {
    init_logs();
    let app = python_app(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());

    let r = api
        .request("POST", "/api/echo", r#"{"hello":"http"}"#, None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "succeeded");
    assert_eq!(r.text(), r#"{"hello":"http"}"#);

    let r = api.invoke("echo", r#"{"hello":"admin"}"#).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"hello": "admin"}));

    let status = host.handle().status().await.unwrap();
    assert!(
        status.workers[0].handles_cancel,
        "the SDK advertises HandlesInvocationCancelMessage: {:?}",
        status.workers[0].capabilities
    );
    host.shutdown().await;
}

#[tokio::test]
async fn python_timeout_cancels_async_and_sync_handlers_in_the_worker() {
    init_logs();
    let app = python_app(languages::timeout_host_json());
    let host = app.start(1).await;
    let h = host.handle().clone();

    // async def sleep: its task is cancelled (asyncio.CancelledError), and
    // the handler's log line is tied to its invocation.
    languages::sleep_times_out_cancelled_by_the_worker(&host).await;
    let r = h.invoke("sleep", text("30000")).await.unwrap();
    assert!(
        r.logs
            .iter()
            .any(|l| l.message.starts_with("sleep cancelled after")),
        "{:?}",
        r.logs
    );

    // def nap: sees ctx.cancel_event and raises InvocationCancelled.
    let r = h.invoke("nap", text("30000")).await.unwrap();
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(4), "{r:?}");

    let status = h.status().await.unwrap();
    assert_eq!(status.workers.len(), 1, "no instance was replaced");
    host.shutdown().await;
}

#[tokio::test]
async fn python_spin_is_killed_after_the_grace_and_the_instance_replaced() {
    init_logs();
    let app = python_app(json!({"workers": {"cancelGracePeriod": "00:00:00.300"}}));
    manual_with_timeout(&app, "spin", "00:00:00.500");
    let host = app.start(1).await;
    languages::spin_is_killed_after_the_grace_and_replaced(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn python_exceptions_fail_the_invocation_with_their_message() {
    init_logs();
    let app = python_app(json!({"asyncEvents": {"maxRetryAttempts": 0}}));
    let host = app.start(1).await;
    let h = host.handle().clone();

    let r = h.invoke("panic", text("boom")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let err = r.error.unwrap();
    assert!(err.contains("RuntimeError: panic requested: boom"), "{err}");

    let r = h.invoke("fail", text("nope")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        r.error
            .unwrap()
            .contains("ValueError: failure requested: nope"),
        "fail names its error"
    );
    // The traceback travels as the exception's stack trace.
    let trace = r.stack_trace.unwrap_or_default();
    assert!(
        trace.contains("Traceback (most recent call last)") && trace.contains("in fail"),
        "{trace}"
    );
    // An async event that fails keeps the traceback in its log.
    let api = Api::new(host.http_addr());
    let key = Some(fnhost_e2e::ADMIN_KEY);
    let accepted = api
        .request("POST", "/admin/functions/fail/invoke-async", "later", key)
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let id = accepted.json()["requestId"].as_str().unwrap().to_string();
    let event = format!("/admin/async-events/{id}");
    fnhost_e2e::wait_until("the event to fail", Duration::from_secs(20), || async {
        api.admin_get(&event).await.unwrap().json()["status"] == "FAILED"
    })
    .await;
    let logs = api
        .admin_get(&format!("{event}/logs"))
        .await
        .unwrap()
        .text();
    assert!(
        logs.contains("Stack trace of attempt 1") && logs.contains("failure requested: later"),
        "{logs}"
    );

    // The worker survives user exceptions.
    let r = h.invoke("log", text("")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let lines: Vec<(&str, &str)> = r
        .logs
        .iter()
        .map(|l| (l.level.as_str(), l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("Information", "info from log function"),
            ("Warning", "warning from log function"),
            ("Error", "error from log function"),
        ]
    );
    assert_eq!(h.status().await.unwrap().workers.len(), 1);
    host.shutdown().await;
}

#[tokio::test]
async fn python_crash_fails_its_invocation_and_the_worker_restarts() {
    init_logs();
    let app = python_app(json!({}));
    let host = app.start(1).await;
    languages::crash_fails_its_invocation_and_the_worker_restarts(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn python_runs_twenty_invocations_concurrently_on_one_instance() {
    init_logs();
    let app = python_app(json!({"workers": {"processCount": 1}}));
    let host = app.start(1).await;
    // `sleep` is async def (tasks on the loop), `nap` a sync def (thread pool).
    for function in ["sleep", "nap"] {
        languages::twenty_run_concurrently_on_one_instance(&host, function).await;
    }
    host.shutdown().await;
}

#[tokio::test]
async fn python_cancels_racing_their_requests_are_honoured() {
    init_logs();
    let app = python_app(json!({}));
    let host = app.start(1).await;
    for function in ["sleep", "nap"] {
        languages::cancels_racing_their_requests_are_honoured(&host, function, 10).await;
    }
    host.shutdown().await;
}

#[tokio::test]
async fn python_host_shutdown_cancels_in_flight_work_through_the_worker() {
    init_logs();
    let app = python_app(json!({"workers": {"terminateGracePeriod": "00:00:05"}}));
    let host = app.start(1).await;
    let h = host.handle().clone();
    let mut events = h.subscribe();
    let _pending = h.submit("sleep", text("60000")).await.unwrap();
    fnhost_e2e::wait_until("the sleep to run", Duration::from_secs(10), || async {
        h.status().await.unwrap().in_flight == 1
    })
    .await;
    let started = Instant::now();
    host.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the worker stopped inside the grace: {:?}",
        started.elapsed()
    );
    let r = tokio::time::timeout(Duration::from_secs(1), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled, "{r:?}");
    assert_eq!(r.cancel_reason, Some(CancelReason::HostShutdown));
}
