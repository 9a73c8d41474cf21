//! Worker processes that crash or cannot start.

use std::path::Path;
use std::time::Duration;

use fnhost::{InvocationInput, InvokeError, Outcome};
use fnhost_e2e::{init_logs, wait_until, Api, TestApp};
use fnhost_proto::rpc::TypedData;
use serde_json::json;

#[tokio::test]
async fn a_crash_fails_its_invocation_naming_the_worker_and_exit_status_and_the_worker_restarts() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let h = host.handle().clone();
    let first = h.status().await.unwrap().workers[0].worker_id.clone();
    let r = h
        .invoke("crash", InvocationInput::new(TypedData::string("x")))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    let err = r.error.unwrap();
    assert!(
        err.contains(first.as_str()) && err.contains("exit code 3"),
        "{err}"
    );

    // The next invocation waits for the restarted instance and succeeds.
    let next = h
        .invoke("echo", InvocationInput::new(TypedData::string("again")))
        .await
        .unwrap();
    assert_eq!(next.outcome, Outcome::Succeeded, "{next:?}");
    assert_ne!(next.worker_id.as_deref(), Some(first.as_str()));
    let status = h.status().await.unwrap();
    assert_eq!(status.slots[0].recent_restarts, 1);
    assert!(status.slots[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("exit code 3"));
    host.shutdown().await;
}

#[tokio::test]
async fn an_exhausted_restart_budget_is_loud_and_invocations_fail_fast() {
    init_logs();
    let app = TestApp::new(
        Path::new("/bin/false"),
        json!({"workers": {"restartBudget": {"maxRestarts": 2, "window": "00:05:00"}}}),
    );
    let host = fnhost::Host::start(fnhost::HostOptions::loopback(
        app.config(),
        fnhost_e2e::ADMIN_KEY,
    ))
    .await
    .unwrap();
    let api = Api::new(host.http_addr());
    wait_until(
        "the host to report unhealthy",
        Duration::from_secs(20),
        || async { api.status().await.unwrap()["state"] == "unhealthy" },
    )
    .await;
    let status = api.status().await.unwrap();
    assert_eq!(status["slots"][0]["budgetExhausted"], true, "{status}");
    assert!(
        status["slots"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("exit code 1"),
        "{status}"
    );

    let err = host
        .handle()
        .invoke("echo", InvocationInput::new(TypedData::string("x")))
        .await
        .unwrap_err();
    match err {
        InvokeError::Unavailable { reason, .. } => {
            assert!(reason.contains("restart budget exhausted"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let r = api.invoke("echo", "x").await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    host.shutdown().await;
}
