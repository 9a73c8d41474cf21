//! Invoking through the HTTP trigger route, the admin route and the library.

use fnhost::Outcome;
use std::time::Duration;

use fnhost_e2e::{init_logs, wait_until, Api, TestApp, ADMIN_KEY};
use serde_json::json;

use crate::languages::{self, Lang};

#[tokio::test]
async fn echo_answers_through_the_trigger_route_and_the_admin_route() {
    init_logs();
    let app = Lang::Rust.app(json!({}));
    let host = app.start(1).await;
    languages::echo_answers_on_both_routes(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn admin_routes_require_the_admin_key_and_trigger_routes_check_methods() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api
        .request("POST", "/admin/functions/echo/invoke", "x", None)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(r.text().contains("x-functions-key"), "{}", r.text());
    let r = api
        .request("GET", "/admin/host/status", "", Some("wrong"))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = api.request("DELETE", "/api/echo", "", None).await.unwrap();
    assert_eq!(r.status, 405, "{}", r.text());
    let r = api.request("GET", "/api/spin", "", None).await.unwrap();
    assert_eq!(r.status, 404, "spin has no HTTP trigger: {}", r.text());
    let r = api.invoke("nope", "x").await.unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("'nope'"), "{}", r.text());
    let status = api.status().await.unwrap();
    assert_eq!(status["state"], "running");
    assert_eq!(status["workers"][0]["handlesCancel"], true);
    assert_eq!(
        status["workers"][0]["capabilities"]["HandlesInvocationCancelMessage"],
        "true"
    );
    let _ = ADMIN_KEY;
    host.shutdown().await;
}

#[tokio::test]
async fn panic_and_error_fail_with_their_messages() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api.invoke("panic", "boom").await.unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-fnhost-outcome"), "failed");
    let body = r.json();
    assert_eq!(body["error"]["outcome"], "failed");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("panic requested: boom"), "{msg}");
    assert!(
        msg.contains(r.header("x-fnhost-invocation-id")),
        "the error names the invocation: {msg}"
    );
    // The Rust SDK sends where the handler panicked as the stack trace.
    let trace = body["error"]["stackTrace"].as_str().unwrap_or_default();
    assert!(
        trace.starts_with("panicked at sample-workers/rust-worker/src/main.rs:"),
        "{body}"
    );

    let r = api.invoke("fail", "bad input").await.unwrap();
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("failure requested: bad input"),
        "{}",
        r.text()
    );
    // The worker survives both.
    let r = api.invoke("echo", "still here").await.unwrap();
    assert_eq!(r.text(), "still here");
    host.shutdown().await;
}

#[tokio::test]
async fn user_logs_reach_the_host_tied_to_their_invocation() {
    init_logs();
    let app = Lang::Rust.app(json!({}));
    let host = app.start(1).await;
    languages::user_logs_reach_the_host_tied_to_their_invocation(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn a_full_wait_queue_answers_429_and_drops_nothing() {
    init_logs();
    let app =
        TestApp::sample(json!({"workers": {"maxConcurrentInvocations": 1, "maxQueueLength": 1}}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let mut events = host.handle().subscribe();
    let running = tokio::spawn({
        let api = api.clone();
        // Long enough to still run while the queue fills on a slow machine.
        async move { api.invoke("sleep", "3000").await.unwrap() }
    });
    let queued = tokio::spawn({
        let api = api.clone();
        async move {
            // Submitted after the first one is on the worker.
            wait_until(
                "the first sleep to run",
                Duration::from_secs(10),
                || async { api.status().await.unwrap()["inFlight"] == 1 },
            )
            .await;
            api.invoke("sleep", "10").await.unwrap()
        }
    });
    wait_until("one queued invocation", Duration::from_secs(10), || async {
        api.status().await.unwrap()["queued"] == 1
    })
    .await;
    let r = api.invoke("echo", "x").await.unwrap();
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), "1");
    assert!(r.text().contains("queue is full"), "{}", r.text());
    assert_eq!(running.await.unwrap().status, 200);
    assert_eq!(queued.await.unwrap().status, 200);
    let mut ended = 0;
    while let Ok(res) = events.try_recv() {
        assert_eq!(res.outcome, Outcome::Succeeded);
        ended += 1;
    }
    assert_eq!(ended, 2);
    host.shutdown().await;
}

#[tokio::test]
async fn an_oversized_request_body_is_rejected_with_413() {
    init_logs();
    let app = TestApp::sample(json!({"workers": {"maxMessageBytes": 131072}}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api.invoke("echo", vec![b'a'; 200 * 1024]).await.unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    let r = api.invoke("echo", vec![b'a'; 1024]).await.unwrap();
    assert_eq!(r.status, 200);
    host.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_indexes_its_functions_serves_those_without_function_json() {
    init_logs();
    let app = TestApp::with_env(
        &fnhost_e2e::binary("fnhost-sample-worker"),
        json!({}),
        json!({"SAMPLE_WORKER_INDEXING": "1"}),
    );
    // Only `echo` is declared; the worker reports the rest itself.
    for f in ["sleep", "spin", "panic", "crash", "fail", "log", "flaky"] {
        std::fs::remove_dir_all(app.dir().join(f)).unwrap();
    }
    let host = app.start(1).await;
    let status = host.handle().status().await.unwrap();
    assert!(
        status.functions.contains(&"fail".to_string()),
        "{:?}",
        status.functions
    );
    let api = Api::new(host.http_addr());
    let r = api.invoke("fail", "indexed").await.unwrap();
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("failure requested: indexed"),
        "{}",
        r.text()
    );
    let r = api.invoke("echo", "declared").await.unwrap();
    assert_eq!(r.text(), "declared");
    let r = api.invoke("nope", "x").await.unwrap();
    assert_eq!(r.status, 404);
    // Worker-indexed functions are first-class: async events run them too.
    let r = api
        .request(
            "POST",
            "/admin/functions/flaky/invoke-async",
            "0",
            Some(fnhost_e2e::ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["requestId"].as_str().unwrap().to_string();
    let path = format!("/admin/async-events/{id}");
    fnhost_e2e::wait_until(
        "the indexed event to finish",
        Duration::from_secs(20),
        || async { api.admin_get(&path).await.unwrap().json()["status"] == "FINISHED" },
    )
    .await;
    host.shutdown().await;
}

#[tokio::test]
async fn sdk_declared_http_routes_serve_without_any_function_json() {
    init_logs();
    let app = TestApp::with_env(
        &fnhost_e2e::binary("fnhost-sample-worker"),
        json!({}),
        json!({"SAMPLE_WORKER_INDEXING": "1"}),
    );
    // Every function.json goes; an indexing worker's app needs none.
    for f in [
        "echo", "sleep", "request", "spin", "panic", "crash", "fail", "log", "flaky",
    ] {
        let _ = std::fs::remove_dir_all(app.dir().join(f));
    }
    app.write(
        "worker.config.json",
        &json!({"description": {
            "language": "rust",
            "defaultExecutablePath": fnhost_e2e::binary("fnhost-sample-worker").display().to_string(),
            "argumentStyle": "both",
            "workerIndexing": "true",
            "environment": {"SAMPLE_WORKER_INDEXING": "1"},
        }}),
    );
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api
        .request("POST", "/api/echo", "indexed route", None)
        .await
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "indexed route"));
    // `fail` is a manual trigger: no route, admin invoke only.
    assert_eq!(api.get_status("/api/fail", None).await, 404);
    let r = api.invoke("fail", "x").await.unwrap();
    assert_eq!(r.status, 500);
    host.shutdown().await;
}
