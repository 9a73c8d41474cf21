//! The Node worker SDK (`sample-workers/node`) and its sample app
//! (`sample-workers/node-app`) against the real host: both invoke routes,
//! timeouts answered by a cooperative cancel, kills of a handler that ignores
//! it, exceptions, crashes, and concurrency on one instance. The bodies shared
//! with the other languages are in `languages.rs`.
//!
//! Needs Node.js on `PATH` and the SDK's dependencies installed with
//! `sample-workers/node/setup.sh`; the tests fail (not skip) otherwise.

use fnhost::Outcome;
use fnhost_e2e::{init_logs, Api};
use serde_json::json;

use crate::languages::{self, manual_with_timeout, node_app_with_style, text, Lang};

#[tokio::test]
async fn node_echo_answers_through_the_trigger_route_and_the_admin_route() {
    init_logs();
    let app = Lang::Node.app(json!({}));
    let host = app.start(1).await;
    languages::echo_answers_on_both_routes(&host).await;
    let status = host.handle().status().await.unwrap();
    assert!(status.workers[0].handles_cancel, "{status:?}");
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
    let app = Lang::Node.app(languages::timeout_host_json());
    let host = app.start(1).await;
    languages::sleep_times_out_cancelled_by_the_worker(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn node_explicit_cancels_reach_the_handler_even_when_racing_the_request() {
    init_logs();
    let app = Lang::Node.app(json!({}));
    let host = app.start(1).await;
    languages::cancels_racing_their_requests_are_honoured(&host, "sleep", 20).await;
    host.shutdown().await;
}

#[tokio::test]
async fn node_spin_that_ignores_cancel_is_killed_after_the_grace_and_replaced() {
    init_logs();
    let app = Lang::Node.app(json!({"workers": {"cancelGracePeriod": "00:00:00.300"}}));
    manual_with_timeout(&app, "spin", "00:00:00.500");
    let host = app.start(1).await;
    languages::spin_is_killed_after_the_grace_and_replaced(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn node_exceptions_and_failures_fail_with_their_messages() {
    init_logs();
    let app = Lang::Node.app(json!({}));
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
    let app = Lang::Node.app(json!({}));
    let host = app.start(1).await;
    languages::user_logs_reach_the_host_tied_to_their_invocation(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn node_crash_fails_its_invocation_and_the_worker_restarts() {
    init_logs();
    let app = Lang::Node.app(json!({}));
    let host = app.start(1).await;
    languages::crash_fails_its_invocation_and_the_worker_restarts(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn node_runs_twenty_sleeps_concurrently_on_one_instance() {
    init_logs();
    let app = Lang::Node.app(json!({
        "workers": {"processCount": 1, "maxConcurrentInvocations": 100}
    }));
    let host = app.start(1).await;
    languages::twenty_run_concurrently_on_one_instance(&host, "sleep").await;
    host.shutdown().await;
}
