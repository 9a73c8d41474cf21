//! Instance lifecycle: initializer and pre-stop hooks, scaling, restart
//! budget, liveness, drain and health.

use std::path::Path;
use std::time::{Duration, Instant};

use fnhost::{InvocationInput, Outcome};
use fnhost_e2e::{binary, init_logs, wait_until, Api, TestApp};
use fnhost_proto::rpc::TypedData;
use serde_json::{json, Value};

fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
}

fn sample_with_env(host_json: Value, env: Value) -> TestApp {
    TestApp::with_env(&binary("fnhost-sample-worker"), host_json, env)
}

fn hooks(init_timeout: &str, max_attempts: u32) -> Value {
    json!({
        "initializer": {"timeout": init_timeout, "maxAttempts": max_attempts, "retryBackoff": "00:00:00.050"},
        "preStop": {"timeout": "00:00:00.500"}
    })
}

async fn start_unready(app: &TestApp) -> fnhost::Host {
    fnhost::Host::start(fnhost::HostOptions::loopback(
        app.config(),
        fnhost_e2e::ADMIN_KEY,
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn an_initializer_that_fails_twice_then_succeeds_runs_to_success_once_before_any_invocation()
{
    init_logs();
    let app = sample_with_env(
        json!({"lifecycle": hooks("00:00:02", 5)}),
        json!({"SAMPLE_INIT_FAILURES": "2"}),
    );
    let host = start_unready(&app).await;
    let h = host.handle().clone();
    // Submitted at once: it waits for the initializer, then runs.
    let r = h.invoke("echo", text("after init")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let s = h.status().await.unwrap();
    assert_eq!(s.lifecycle.initializer_runs, 3, "{:?}", s.lifecycle);
    assert_eq!(s.lifecycle.initializer_failures, 2);
    assert_eq!(s.lifecycle.initializer_successes, 1);
    assert!(s.workers[0].initialized);
    assert!(
        !s.functions.contains(&"initializer".to_string()),
        "hooks are not invokable functions"
    );
    let err = h.invoke("initializer", text("")).await.unwrap_err();
    assert!(
        matches!(err, fnhost::InvokeError::UnknownFunction(_)),
        "{err:?}"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn an_initializer_that_always_fails_gives_waiting_invocations_an_initialization_error() {
    init_logs();
    let app = sample_with_env(
        json!({"lifecycle": hooks("00:00:02", 2), "workers": {"restartBudget": {"maxRestarts": 0}}}),
        json!({"SAMPLE_INIT_FAILURES": "1000"}),
    );
    let host = start_unready(&app).await;
    let started = Instant::now();
    let r = host.handle().invoke("echo", text("x")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let err = r.error.unwrap();
    assert!(
        err.contains("InitializationError") && err.contains("failed 2 time(s)"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        started.elapsed()
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_hanging_initializer_times_out_and_is_retried() {
    init_logs();
    let app = sample_with_env(
        // The retry must finish within the timeout even on a loaded machine.
        json!({"lifecycle": hooks("00:00:01", 3)}),
        json!({"SAMPLE_INIT_HANGS": "1"}),
    );
    let host = start_unready(&app).await;
    let h = host.handle().clone();
    let r = h.invoke("echo", text("x")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    let s = h.status().await.unwrap();
    assert_eq!(
        (
            s.lifecycle.initializer_runs,
            s.lifecycle.initializer_failures
        ),
        (2, 1)
    );
    host.shutdown().await;
}

#[tokio::test]
async fn pre_stop_runs_on_scale_in_and_the_pool_scales_out_under_load() {
    init_logs();
    let app = sample_with_env(
        json!({
            "lifecycle": {"preStop": {"timeout": "00:00:01"}},
            "workers": {"processCount": 1, "maxInstances": 2, "maxConcurrentInvocations": 1, "idleTimeout": "00:00:00.300"}
        }),
        json!({}),
    );
    let host = app.start(1).await;
    let h = host.handle().clone();
    // `a` holds the first instance until cancelled, so `b` can only run on
    // an instance added for it, however long that takes to start.
    let a = h.submit("sleep", text("60000")).await.unwrap();
    let b = h.submit("sleep", text("100")).await.unwrap();
    let a_id = a.id.clone();
    let b = b.result().await.unwrap();
    assert_eq!(b.outcome, Outcome::Succeeded, "{b:?}");
    assert_eq!(
        h.cancel(&a_id, fnhost::CancelReason::Requested).await,
        fnhost::CancelResponse::Done
    );
    let a = a.result().await.unwrap();
    assert_eq!(a.outcome, Outcome::Cancelled, "{a:?}");
    assert_ne!(a.worker_id, b.worker_id, "the second ran on a new instance");
    wait_until(
        "scale-in to one instance",
        Duration::from_secs(10),
        || async {
            let s = h.status().await.unwrap();
            s.lifecycle.scale_ins == 1 && s.workers.len() == 1
        },
    )
    .await;
    let s = h.status().await.unwrap();
    assert_eq!(
        (s.lifecycle.scale_outs, s.lifecycle.pre_stop_runs),
        (1, 1),
        "{:?}",
        s.lifecycle
    );
    assert_eq!(s.lifecycle.pre_stop_failures, 0);
    host.shutdown().await;
}

#[tokio::test]
async fn a_hanging_pre_stop_does_not_hold_shutdown_past_its_timeout() {
    init_logs();
    let app = sample_with_env(
        json!({
            "lifecycle": {"preStop": {"timeout": "00:00:00.300"}},
            "workers": {"terminateGracePeriod": "00:00:00.500"}
        }),
        json!({"SAMPLE_PRESTOP_HANG": "1"}),
    );
    let host = app.start(1).await;
    let h = host.handle().clone();
    let mut results = h.subscribe();
    let started = Instant::now();
    host.shutdown().await;
    // pre-stop timeout (0.3 s) + terminate grace (0.5 s) + margin.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        results.try_recv().is_err(),
        "hook runs are not user invocations"
    );
}

#[tokio::test]
async fn drain_finishes_in_flight_work_runs_pre_stop_and_reports_drained() {
    init_logs();
    let app = sample_with_env(
        json!({"lifecycle": {"preStop": {"timeout": "00:00:01"}}}),
        json!({}),
    );
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    assert_eq!(
        api.request("GET", "/healthz", "", None)
            .await
            .unwrap()
            .status,
        200
    );
    let in_flight = tokio::spawn({
        let api = api.clone();
        async move { api.invoke("sleep", "500").await.unwrap() }
    });
    wait_until("the sleep to run", Duration::from_secs(10), || async {
        api.status().await.unwrap()["inFlight"] == 1
    })
    .await;
    let r = api
        .request("POST", "/admin/host/drain", "", Some(fnhost_e2e::ADMIN_KEY))
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let refused = api.invoke("echo", "late").await.unwrap();
    assert_eq!(refused.status, 503);
    assert!(refused.text().contains("draining"), "{}", refused.text());
    let done = in_flight.await.unwrap();
    assert_eq!(done.status, 200, "in-flight work finished: {}", done.text());
    wait_until("drained", Duration::from_secs(10), || async {
        api.status().await.unwrap()["state"] == "drained"
    })
    .await;
    let s = api.status().await.unwrap();
    assert_eq!(s["lifecycle"]["preStopRuns"], 1, "{s}");
    let health = api.request("GET", "/healthz", "", None).await.unwrap();
    assert_eq!(health.status, 503);
    host.shutdown().await;
}

#[tokio::test]
async fn with_concurrency_one_a_forced_termination_touches_no_other_invocation() {
    init_logs();
    let app =
        TestApp::sample(json!({"workers": {"processCount": 2, "maxConcurrentInvocations": 1}}));
    let host = app.start(2).await;
    let h = host.handle().clone();
    let victim = h.submit("sleep", text("60000")).await.unwrap();
    let bystander = h.submit("sleep", text("3000")).await.unwrap();
    wait_until("both running", Duration::from_secs(10), || async {
        h.status().await.unwrap().in_flight == 2
    })
    .await;
    assert_eq!(h.kill(&victim.id).await, fnhost::CancelResponse::Forced);
    let v = victim.result().await.unwrap();
    let b = bystander.result().await.unwrap();
    assert_eq!(v.outcome, Outcome::Killed);
    assert_eq!(b.outcome, Outcome::Succeeded, "{b:?}");
    assert_ne!(v.worker_id, b.worker_id);
    host.shutdown().await;
}

#[tokio::test]
async fn an_exhausted_restart_budget_marks_the_host_unhealthy_until_the_window_passes() {
    init_logs();
    let dir = std::env::temp_dir().join(format!("fnhost-crash-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let counter = dir.join("starts");
    let app = sample_with_env(
        // Unhealthy for about the window: long enough for the checks below
        // on a loaded machine.
        json!({"workers": {"restartBudget": {"maxRestarts": 1, "window": "00:00:04"}}}),
        json!({"SAMPLE_CRASH_STARTS": "2", "SAMPLE_CRASH_STARTS_FILE": counter.display().to_string()}),
    );
    let host = start_unready(&app).await;
    let api = Api::new(host.http_addr());
    wait_until("unhealthy", Duration::from_secs(10), || async {
        api.status().await.unwrap()["state"] == "unhealthy"
    })
    .await;
    let r = api.invoke("echo", "x").await.unwrap();
    assert_eq!(r.status, 503, "fails fast: {}", r.text());
    assert!(
        r.text().contains("restart budget exhausted"),
        "{}",
        r.text()
    );
    for (probe, code) in [("/healthz", 503), ("/readyz", 503), ("/livez", 200)] {
        assert_eq!(
            api.request("GET", probe, "", None).await.unwrap().status,
            code,
            "{probe}: alive but not ready (restarting the process would not help)"
        );
    }
    // After the window the slot starts again; the third start succeeds.
    wait_until("recovered", Duration::from_secs(10), || async {
        api.status().await.unwrap()["state"] == "running"
    })
    .await;
    let r = api.invoke("echo", "back").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "back"));
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
    host.shutdown().await;
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

#[tokio::test]
async fn an_instance_that_stops_answering_status_requests_is_recycled() {
    init_logs();
    // Only the first process stalls; its replacements answer, so the
    // recycle below is the only one.
    let marker = std::env::temp_dir().join(format!("fnhost-stall-{}", uuid::Uuid::new_v4()));
    let app = TestApp::with_env(
        &binary("rogue-worker"),
        json!({"workers": {"statusInterval": "00:00:00.100", "statusTimeout": "00:00:00.300"}}),
        json!({"ROGUE_MODE": "status-stall", "ROGUE_STALL_ONCE_FILE": marker.display().to_string()}),
    );
    let host = app.start(1).await;
    let h = host.handle().clone();
    let first = h.status().await.unwrap().workers[0].worker_id.clone();
    wait_until(
        "a recycle for liveness",
        Duration::from_secs(10),
        || async {
            let s = h.status().await.unwrap();
            s.lifecycle.status_recycles >= 1
                && s.slots[0]
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("WorkerStatusRequest")
        },
    )
    .await;
    let s = h.status().await.unwrap();
    assert!(
        s.slots[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("WorkerStatusRequest"),
        "{:?}",
        s.slots[0]
    );
    assert!(h.wait_ready(1, Duration::from_secs(10)).await);
    let r = h.invoke("echo", text("x")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_ne!(r.worker_id.as_deref(), Some(first.as_str()));
    host.shutdown().await;
    let _ = std::fs::remove_file(&marker);
}

#[tokio::test]
async fn work_queued_behind_a_killed_invocation_waits_for_the_replacement() {
    init_logs();
    let app =
        TestApp::sample(json!({"workers": {"processCount": 1, "maxConcurrentInvocations": 1}}));
    let host = app.start(1).await;
    let h = host.handle().clone();
    let victim = h.submit("sleep", text("60000")).await.unwrap();
    wait_until("the victim to run", Duration::from_secs(10), || async {
        h.status().await.unwrap().in_flight == 1
    })
    .await;
    let queued = h.submit("echo", text("still served")).await.unwrap();
    wait_until("one queued", Duration::from_secs(10), || async {
        h.status().await.unwrap().queued == 1
    })
    .await;
    assert_eq!(h.kill(&victim.id).await, fnhost::CancelResponse::Forced);
    assert_eq!(victim.result().await.unwrap().outcome, Outcome::Killed);
    let r = queued.result().await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    host.shutdown().await;
}
