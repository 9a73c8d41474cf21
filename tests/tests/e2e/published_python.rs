//! The published Python language worker (`azure-functions-worker` 1.1.9 from
//! PyPI) served by the real host: a third-party worker of the same protocol,
//! with `function.json` functions and no cancel capability.
//!
//! Needs the worker's venv: run `sample-workers/published-python/setup.sh`.
//! Without it these tests fail (they do not skip).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fnhost_e2e::{init_logs, repo_root, Api, HttpReply, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

const VENV_PYTHON: &str = "sample-workers/published-python/.venv/bin/python";

/// The venv's interpreter; panics with the fix when setup has not run.
fn venv_python() -> PathBuf {
    let python = repo_root().join(VENV_PYTHON);
    let marker = repo_root().join("sample-workers/published-python/.venv/.fnhost-setup");
    assert!(
        python.is_file() && marker.is_file(),
        "the published Python worker is not installed ({} or {} is missing): \
         run sample-workers/published-python/setup.sh",
        python.display(),
        marker.display()
    );
    python
}

/// A copy of the sample app with its own `host.json`; the launch settings
/// stay the sample's (classic arguments), only the executable becomes
/// absolute.
fn published_app(host_json: Value) -> TestApp {
    let python = venv_python();
    TestApp::copy_of_sample("published-python-app", host_json, |w| {
        assert_eq!(w["description"]["argumentStyle"], "classic");
        w["description"]["defaultExecutablePath"] = json!(python.display().to_string());
    })
}

/// Starts the host on `app` and waits for the worker (it imports slowly).
async fn start(app: &TestApp) -> (fnhost::Host, Api) {
    let host = fnhost::Host::start(fnhost::HostOptions::loopback(
        app.config(),
        fnhost_e2e::ADMIN_KEY,
    ))
    .await
    .expect("host starts");
    assert!(
        host.handle().wait_ready(1, Duration::from_secs(30)).await,
        "the published Python worker did not become ready within 30 s \
         (run with FNHOST_TEST_LOG=info to see its output)"
    );
    let api = Api::new(host.http_addr());
    (host, api)
}

/// `host.json` for these tests: one instance, a quick shutdown (the worker
/// ignores WorkerTerminate, so shutdown always ends in a kill).
fn host_json(function_timeout: &str) -> Value {
    json!({
        "version": "2.0",
        "functionTimeout": function_timeout,
        "workers": {
            "processCount": 1,
            "cancelGracePeriod": "00:00:02",
            "terminateGracePeriod": "00:00:00.200",
            "restartBudget": {"maxRestarts": 5, "window": "00:01:00"}
        }
    })
}

async fn call(api: &Api, method: &str, path: &str, body: &'static str) -> HttpReply {
    api.request(method, path, Bytes::from_static(body.as_bytes()), None)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
}

/// Like [`call`] with the admin key, which sees a failure's details on
/// the trigger route too.
async fn call_as_admin(api: &Api, method: &str, path: &str, body: &'static str) -> HttpReply {
    api.request(
        method,
        path,
        Bytes::from_static(body.as_bytes()),
        Some(ADMIN_KEY),
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
}

async fn worker_ids(api: &Api) -> Vec<String> {
    let status = api.status().await.expect("status");
    status["workers"]
        .as_array()
        .expect("workers array")
        .iter()
        .map(|w| w["workerId"].as_str().expect("workerId").to_string())
        .collect()
}

#[tokio::test]
async fn echo_through_the_trigger_route_and_the_admin_invoke() {
    init_logs();
    let app = published_app(host_json("00:00:30"));
    let (host, api) = start(&app).await;

    let status = api.status().await.unwrap();
    assert_eq!(status["language"], "python", "{status}");
    let w = &status["workers"][0];
    assert_eq!(w["handlesCancel"], false, "{status}");
    assert_eq!(w["capabilities"]["RpcHttpBodyOnly"], "true", "{status}");
    assert_eq!(
        w["loadErrors"],
        json!({}),
        "every function loaded: {status}"
    );

    let r = call(&api, "POST", "/api/echo", "hello from the trigger route").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "succeeded");
    assert_eq!(r.text(), "hello from the trigger route");

    let r = api.invoke("echo", "hello from admin").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "succeeded");
    assert_eq!(r.text(), "hello from admin");

    // The admin route needs the key.
    let r = call(&api, "POST", "/admin/functions/echo/invoke", "x").await;
    assert_eq!(r.status, 401, "{}", r.text());

    // Query parameters reach the function (`req.params`).
    let r = call(&api, "GET", "/api/sleep?ms=10", "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "slept 10"));

    let status = api.status().await.unwrap();
    assert_eq!(status["outcomes"]["succeeded"], 3, "{status}");
    assert_eq!(status["protocolViolations"], 0, "{status}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_timeout_kills_the_worker_that_cannot_be_signalled_and_replaces_it() {
    init_logs();
    let app = published_app(host_json("00:00:01"));
    let (host, api) = start(&app).await;
    let first = worker_ids(&api).await;
    assert_eq!(first.len(), 1);

    let started = Instant::now();
    let r = call_as_admin(&api, "GET", "/api/sleep?ms=30000", "").await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "killed");
    let body = r.json();
    assert_eq!(body["error"]["outcome"], "killed", "{body}");
    assert_eq!(body["error"]["reason"], "timeout", "{body}");
    assert_eq!(body["error"]["workerId"], first[0].as_str(), "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("cannot receive InvocationCancel") && msg.contains(&first[0]),
        "the error explains the escalation: {body}"
    );
    // Killed at once at the 1 s timeout: no cancel grace was waited for.
    assert!(
        elapsed < Duration::from_secs(2) + Duration::from_millis(900),
        "took {elapsed:?}"
    );

    // The next invocation waits for the replacement and succeeds on it.
    let r = call(&api, "POST", "/api/echo", "after the kill").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "after the kill");
    let now = worker_ids(&api).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], first[0], "a replacement instance serves now");
    let status = api.status().await.unwrap();
    assert_eq!(status["outcomes"]["killed"], 1, "{status}");

    // A spinning sync function is ended the same way.
    let r = call_as_admin(&api, "GET", "/api/spin", "").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "killed");
    let body = r.json();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot receive InvocationCancel"),
        "{body}"
    );
    let r = call(&api, "POST", "/api/echo", "after the spin").await;
    assert_eq!((r.status, r.text().as_str()), (200, "after the spin"));
    host.shutdown().await;
}

#[tokio::test]
async fn an_exception_fails_the_invocation_with_its_message() {
    init_logs();
    let app = published_app(host_json("00:00:30"));
    let (host, api) = start(&app).await;
    let first = worker_ids(&api).await;

    // The trigger's keyless client learns the outcome only.
    let r = call(&api, "GET", "/api/exception", "").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "failed");
    let body = r.json();
    assert_eq!(body["error"]["outcome"], "failed", "{body}");
    assert_eq!(body["error"]["message"], "the function failed", "{body}");
    assert!(!r.text().contains("ValueError"), "{body}");
    // An admin sees the exception and its traceback.
    let r = call_as_admin(&api, "GET", "/api/exception", "").await;
    let body = r.json();
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("ValueError: published-python exception function failed on purpose"),
        "{body}"
    );
    let r = api.invoke("exception", "").await.unwrap();
    let body = r.json();
    let trace = body["error"]["stackTrace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("__init__.py"),
        "the worker's traceback: {body}"
    );

    // The worker survives an exception.
    let r = api.invoke("echo", "still here").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "still here"));
    assert_eq!(worker_ids(&api).await, first, "no instance was replaced");
    host.shutdown().await;
}

#[tokio::test]
async fn a_crash_fails_the_invocation_and_the_worker_restarts() {
    init_logs();
    let app = published_app(host_json("00:00:30"));
    let (host, api) = start(&app).await;
    let first = worker_ids(&api).await;

    let r = call_as_admin(&api, "POST", "/api/crash", "").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "failed");
    let body = r.json();
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&first[0]) && msg.contains("exit code 3"),
        "the error names the instance and its exit status: {body}"
    );

    let r = call(&api, "POST", "/api/echo", "after the crash").await;
    assert_eq!((r.status, r.text().as_str()), (200, "after the crash"));
    let status = api.status().await.unwrap();
    assert_ne!(
        status["workers"][0]["workerId"],
        first[0].as_str(),
        "{status}"
    );
    assert_eq!(status["slots"][0]["recentRestarts"], 1, "{status}");
    assert!(
        status["slots"][0]["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("exit code 3"),
        "{status}"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn twenty_concurrent_invocations_run_together_on_one_instance() {
    init_logs();
    let app = published_app(host_json("00:00:30"));
    let (host, api) = start(&app).await;
    let only = worker_ids(&api).await;
    assert_eq!(only.len(), 1);

    // 20 x 1 s sync sleeps: the worker's thread pool (32 threads, from
    // worker.config.json) runs them together; in series they would take 20 s.
    let started = Instant::now();
    let sleeps: Vec<_> = (0..20)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { call(&api, "GET", "/api/sleep?ms=1000", "").await })
        })
        .collect();
    // And 20 async echoes alongside, each answered with its own body
    // (responses come back out of order, correlated by invocation id).
    let echoes: Vec<_> = (0..20)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                let body = format!("echo number {i}");
                let r = api
                    .request("POST", "/api/echo", Bytes::from(body.clone()), None)
                    .await
                    .expect("echo request");
                (body, r)
            })
        })
        .collect();
    let mut invocation_ids = std::collections::HashSet::new();
    for s in sleeps {
        let r = s.await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "slept 1000"));
        invocation_ids.insert(r.header("x-fnhost-invocation-id").to_string());
    }
    let sleeps_done = started.elapsed();
    for e in echoes {
        let (body, r) = e.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), body);
        invocation_ids.insert(r.header("x-fnhost-invocation-id").to_string());
    }
    assert_eq!(invocation_ids.len(), 40);
    assert!(
        sleeps_done < Duration::from_secs(8),
        "20 one-second sleeps took {sleeps_done:?}: they did not run concurrently"
    );
    assert_eq!(worker_ids(&api).await, only, "one instance served them all");
    let status = api.status().await.unwrap();
    assert_eq!(status["outcomes"]["succeeded"], 40, "{status}");
    assert_eq!(status["workers"][0]["served"], 40, "{status}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_graceful_terminate_of_an_async_event_records_that_the_signal_failed() {
    init_logs();
    let app = published_app(host_json("00:00:30"));
    let (host, api) = start(&app).await;
    let key = Some(fnhost_e2e::ADMIN_KEY);
    let r = api
        .request("POST", "/admin/functions/sleep/invoke-async", "20000", key)
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["requestId"].as_str().unwrap().to_string();
    fnhost_e2e::wait_until("the sleep to run", Duration::from_secs(10), || async {
        api.status().await.unwrap()["inFlight"] == 1
    })
    .await;
    let body = json!({"graceShutdown": true}).to_string();
    let r = api
        .request(
            "POST",
            &format!("/admin/async-events/{id}/terminate"),
            body,
            key,
        )
        .await
        .unwrap();
    assert_eq!(r.json()["outcome"], "done", "{}", r.text());
    let path = format!("/admin/async-events/{id}");
    fnhost_e2e::wait_until(
        "the event to be aborted",
        Duration::from_secs(10),
        || async {
            api.request("GET", &path, "", key).await.unwrap().json()["status"] == "ABORTED"
        },
    )
    .await;
    let e = api.request("GET", &path, "", key).await.unwrap().json();
    assert_eq!(e["statusCode"], 439, "{e}");
    let logs = api
        .request("GET", &format!("{path}/logs"), "", key)
        .await
        .unwrap()
        .text();
    assert!(
        logs.contains("[PLATFORM] Signal reception failed."),
        "{logs}"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_abandons_its_invocation_and_takes_no_worker_down() {
    use tokio::io::AsyncWriteExt;
    init_logs();
    let app = published_app(host_json("00:00:30"));
    let (host, api) = start(&app).await;
    let first = worker_ids(&api).await;
    let mut conn = tokio::net::TcpStream::connect(host.http_addr())
        .await
        .unwrap();
    conn.write_all(b"GET /api/sleep?ms=1500 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let neighbour = {
        let api = api.clone();
        tokio::spawn(async move { call(&api, "GET", "/api/sleep?ms=1000", "").await })
    };
    fnhost_e2e::wait_until("both sleeps to run", Duration::from_secs(10), || async {
        api.status().await.unwrap()["inFlight"] == 2
    })
    .await;
    // This worker cannot receive InvocationCancel: a hang-up must not kill it.
    drop(conn);
    let r = neighbour.await.unwrap();
    assert_eq!(r.status, 200, "the neighbour was not harmed: {}", r.text());
    fnhost_e2e::wait_until(
        "the abandoned sleep to end",
        Duration::from_secs(10),
        || async { api.status().await.unwrap()["outcomes"]["succeeded"] == 2 },
    )
    .await;
    let status = api.status().await.unwrap();
    assert!(status["outcomes"].get("killed").is_none(), "{status}");
    assert_eq!(worker_ids(&api).await, first, "no instance was replaced");
    host.shutdown().await;
}
