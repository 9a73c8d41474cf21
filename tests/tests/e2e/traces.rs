//! W3C trace context reaching user code: a `trace` HTTP function in each
//! sample app (the Rust sample worker, the Python and Node SDKs' apps, and
//! the published Python worker's app) returns what it was given as
//! `{"traceParent", "traceState", "attributes"}`. A caller's `traceparent`
//! on `/api/*` and on the admin invoke route keeps its trace id, with the
//! invocation as a new child span; without one a new trace starts.
//!
//! Needs the Python SDK's venv (`sample-workers/python/setup.sh`), Node.js
//! with the Node SDK's dependencies (`sample-workers/node/setup.sh`) and the
//! published worker's venv (`sample-workers/published-python/setup.sh`);
//! the tests fail (not skip) without them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use fnhost_e2e::{init_logs, repo_root, Api, HttpReply, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

use crate::languages::Lang;

/// The caller's `traceparent` (the W3C specification's example).
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const STATE: &str = "congo=t61rcWkgMzE";

/// `len` lowercase hex digits, not all zeros (a valid W3C id).
fn hex_id(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s.bytes().any(|b| b != b'0')
}

/// The JSON `trace` answered, after checking the reply succeeded.
fn seen(r: &HttpReply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "succeeded", "{}", r.text());
    r.json()
}

/// The (trace id, span id, flags) of the `traceParent` the function saw,
/// after checking it is a well-formed version-00 `traceparent`.
fn parts(seen: &Value) -> (String, String, String) {
    let parent = seen["traceParent"]
        .as_str()
        .unwrap_or_else(|| panic!("the function saw no traceParent: {seen}"));
    let p: Vec<&str> = parent.split('-').collect();
    assert_eq!(p.len(), 4, "{parent}");
    assert_eq!(p[0], "00", "{parent}");
    assert!(hex_id(p[1], 32), "trace id of {parent}");
    assert!(hex_id(p[2], 16), "span id of {parent}");
    assert!(
        p[3].len() == 2 && p[3].bytes().all(|b| b.is_ascii_hexdigit()),
        "{parent}"
    );
    (p[1].to_string(), p[2].to_string(), p[3].to_string())
}

/// The function ran in the caller's trace as a new child span, with the
/// caller's `tracestate` and its own name as `OperationName`. Returns the
/// span id it saw.
fn assert_in_callers_trace(seen: &Value) -> String {
    let (trace_id, span_id, flags) = parts(seen);
    assert_eq!(trace_id, TRACE_ID, "{seen}");
    assert_ne!(span_id, CALLER_SPAN, "the invocation is a new span: {seen}");
    assert_eq!(flags, "01", "{seen}");
    assert_eq!(seen["traceState"], STATE, "{seen}");
    assert_eq!(seen["attributes"]["OperationName"], "trace", "{seen}");
    span_id
}

/// The function ran in a new trace (no caller context). Returns its trace id.
fn assert_in_new_trace(seen: &Value) -> String {
    let (trace_id, _, _) = parts(seen);
    assert_ne!(trace_id, TRACE_ID, "{seen}");
    assert_eq!(seen["traceState"], "", "no caller tracestate: {seen}");
    assert_eq!(seen["attributes"]["OperationName"], "trace", "{seen}");
    trace_id
}

/// The checks every app's `trace` function must pass, on a running host.
async fn trace_reaches_the_function(api: &Api) {
    let caller = [("traceparent", PARENT), ("tracestate", STATE)];
    let mut spans = HashSet::new();

    // The trigger route, POST and GET.
    for method in ["POST", "GET"] {
        let r = api
            .request_with(method, "/api/trace", "", &caller)
            .await
            .unwrap();
        spans.insert(assert_in_callers_trace(&seen(&r)));
    }

    // The admin invoke route, with the admin key.
    let admin = [
        ("x-functions-key", ADMIN_KEY),
        ("traceparent", PARENT),
        ("tracestate", STATE),
    ];
    let r = api
        .request_with("POST", "/admin/functions/trace/invoke", "", &admin)
        .await
        .unwrap();
    spans.insert(assert_in_callers_trace(&seen(&r)));
    assert_eq!(spans.len(), 3, "each invocation is its own span: {spans:?}");

    // Without a traceparent (and with one that is not valid, which is
    // ignored), each invocation starts a trace of its own.
    let mut traces = HashSet::new();
    let r = api.request("POST", "/api/trace", "", None).await.unwrap();
    traces.insert(assert_in_new_trace(&seen(&r)));
    let invalid = [("traceparent", "00-not-a-trace-01"), ("tracestate", STATE)];
    let r = api
        .request_with("POST", "/api/trace", "", &invalid)
        .await
        .unwrap();
    traces.insert(assert_in_new_trace(&seen(&r)));
    let r = api
        .request_with(
            "POST",
            "/admin/functions/trace/invoke",
            "",
            &[("x-functions-key", ADMIN_KEY)],
        )
        .await
        .unwrap();
    traces.insert(assert_in_new_trace(&seen(&r)));
    assert_eq!(traces.len(), 3, "a new trace each time: {traces:?}");
}

#[tokio::test]
async fn rust_functions_see_the_callers_trace_context() {
    init_logs();
    let app = Lang::Rust.app(json!({}));
    // TestApp::sample writes a fixed set of function.json files.
    app.function("trace", &fnhost_e2e::http_function());
    let host = app.start(1).await;
    trace_reaches_the_function(&Api::new(host.http_addr())).await;
    host.shutdown().await;
}

#[tokio::test]
async fn python_functions_see_the_callers_trace_context() {
    init_logs();
    let app = Lang::Python.app(json!({}));
    let host = app.start(1).await;
    trace_reaches_the_function(&Api::new(host.http_addr())).await;
    host.shutdown().await;
}

#[tokio::test]
async fn node_functions_see_the_callers_trace_context() {
    init_logs();
    let app = Lang::Node.app(json!({}));
    let host = app.start(1).await;
    trace_reaches_the_function(&Api::new(host.http_addr())).await;
    host.shutdown().await;
}

/// The published worker's venv interpreter; panics with the fix when setup
/// has not run (as `published_python.rs` does).
fn published_python() -> PathBuf {
    let venv = repo_root().join("sample-workers/published-python/.venv");
    let python = venv.join("bin/python");
    assert!(
        python.is_file() && venv.join(".fnhost-setup").is_file(),
        "the published Python worker is not installed: run sample-workers/published-python/setup.sh"
    );
    python
}

#[tokio::test]
async fn published_python_functions_see_the_callers_trace_context() {
    init_logs();
    let python = published_python();
    let app = TestApp::copy_of_sample(
        "published-python-app",
        json!({
            "version": "2.0",
            "workers": {"processCount": 1, "terminateGracePeriod": "00:00:00.200"}
        }),
        |w| w["description"]["defaultExecutablePath"] = json!(python.display().to_string()),
    );
    let host = fnhost::Host::start(fnhost::HostOptions::loopback(app.config(), ADMIN_KEY))
        .await
        .expect("host starts");
    assert!(
        host.handle().wait_ready(1, Duration::from_secs(30)).await,
        "the published Python worker did not become ready within 30 s"
    );
    let api = Api::new(host.http_addr());
    trace_reaches_the_function(&api).await;

    // What the worker hands user code: its own TraceContext class, read by
    // the azure.functions names or the worker's.
    let r = api
        .request_with("POST", "/api/trace", "", &[("traceparent", PARENT)])
        .await
        .unwrap();
    let seen = seen(&r);
    assert!(
        seen["names"] == json!(["trace_parent", "trace_state", "attributes"])
            || seen["names"] == json!(["Traceparent", "Tracestate", "Attributes"]),
        "{seen}"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn an_async_event_keeps_its_callers_trace_for_every_attempt() {
    init_logs();
    let app = Lang::Rust.app(json!({}));
    app.function("trace", &fnhost_e2e::http_function());
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api
        .request_with(
            "POST",
            "/admin/functions/trace/invoke-async",
            String::new(),
            &[
                ("x-functions-key", ADMIN_KEY),
                ("traceparent", PARENT),
                ("tracestate", STATE),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["requestId"].as_str().unwrap().to_string();
    fnhost_e2e::wait_until("the event to finish", Duration::from_secs(15), || async {
        crate::async_events::event(&api, &id).await["status"] == "FINISHED"
    })
    .await;
    let e = crate::async_events::event(&api, &id).await;
    // The event keeps its accept span, a child of the caller's span in the
    // caller's trace; each attempt runs as a child of the accept span.
    let stored = e["traceParent"].as_str().unwrap_or_default();
    assert!(
        stored.starts_with(&format!("00-{TRACE_ID}-")) && !stored.contains(CALLER_SPAN),
        "{e}"
    );
    let seen: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    assert_in_callers_trace(&seen);
    // Without a caller's trace, the event starts one, which its attempts join.
    let r = api
        .request(
            "POST",
            "/admin/functions/trace/invoke-async",
            "",
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    let id = r.json()["requestId"].as_str().unwrap().to_string();
    fnhost_e2e::wait_until(
        "the second event to finish",
        Duration::from_secs(15),
        || async { crate::async_events::event(&api, &id).await["status"] == "FINISHED" },
    )
    .await;
    let e = crate::async_events::event(&api, &id).await;
    let seen: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    let trace_id = assert_in_new_trace(&seen);
    assert!(
        e["traceParent"].as_str().unwrap().contains(&trace_id),
        "{e}"
    );
    host.shutdown().await;
}
