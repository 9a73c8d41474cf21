//! Timeouts, explicit cancels, client disconnects, and escalation to kill.

use std::time::Duration;

use fnhost::{CancelReason, CancelResponse, InvocationInput, Outcome};
use fnhost_e2e::{init_logs, wait_until, TestApp};
use fnhost_proto::rpc::TypedData;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::languages::{self, Lang};

fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
}

#[tokio::test]
async fn timeout_on_sleep_is_cancelled_within_the_grace_with_the_timeout_as_reason() {
    init_logs();
    let app = Lang::Rust.app(languages::timeout_host_json());
    let host = app.start(1).await;
    languages::sleep_times_out_cancelled_by_the_worker(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn timeout_on_spin_kills_and_replaces_the_instance_and_ends_its_neighbour_explicitly() {
    init_logs();
    let app = TestApp::sample(json!({"workers": {"cancelGracePeriod": "00:00:00.300"}}));
    app.function(
        "spin",
        &json!({"functionTimeout": "00:00:00.500",
                "bindings": [{"type": "manualTrigger", "direction": "in", "name": "input"}]}),
    );
    let host = app.start(1).await;
    let h = host.handle().clone();
    let first_worker = h.status().await.unwrap().workers[0].worker_id.clone();

    let neighbour = h.submit("sleep", text("60000")).await.unwrap();
    let spin = h.submit("spin", text("60000")).await.unwrap();
    let spin = spin.result().await.unwrap();
    assert_eq!(spin.outcome, Outcome::Killed, "{spin:?}");
    assert_eq!(spin.cancel_reason, Some(CancelReason::Timeout));
    let err = spin.error.unwrap();
    assert!(
        err.contains("did not stop within") && err.contains(first_worker.as_str()),
        "{err}"
    );

    let neighbour = neighbour.result().await.unwrap();
    assert_eq!(neighbour.outcome, Outcome::Killed);
    let err = neighbour.error.unwrap();
    assert!(
        err.contains(first_worker.as_str())
            && err.contains(spin.invocation_id.as_str())
            && err.contains(neighbour.invocation_id.as_str()),
        "the neighbour's error names the instance and both invocations: {err}"
    );

    languages::a_replacement_serves_after(&host, &first_worker).await;
    host.shutdown().await;
}

#[tokio::test]
async fn an_explicit_cancel_is_sent_once_and_answers_every_later_cancel() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let h = host.handle().clone();
    assert_eq!(
        h.cancel(&"no-such-id".into(), CancelReason::Requested)
            .await,
        CancelResponse::NotFound
    );

    let p = h.submit("sleep", text("60000")).await.unwrap();
    let id = p.id.clone();
    assert_eq!(
        h.cancel(&id, CancelReason::Requested).await,
        CancelResponse::Done
    );
    assert_eq!(
        h.cancel(&id, CancelReason::Requested).await,
        CancelResponse::AlreadyCancelling
    );
    let r = p.result().await.unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert_eq!(r.cancel_reason, Some(CancelReason::Requested));
    assert!(
        r.elapsed < Duration::from_secs(5),
        "the worker stopped it: {r:?}"
    );
    assert_eq!(
        h.cancel(&id, CancelReason::Requested).await,
        CancelResponse::AlreadyCompleted
    );

    let done = h.invoke("echo", text("x")).await.unwrap();
    assert_eq!(
        h.cancel(&done.invocation_id, CancelReason::Requested).await,
        CancelResponse::AlreadyCompleted
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_cancel_racing_its_request_is_honoured() {
    init_logs();
    let app = Lang::Rust.app(json!({}));
    let host = app.start(1).await;
    languages::cancels_racing_their_requests_are_honoured(&host, "sleep", 20).await;
    host.shutdown().await;
}

#[tokio::test]
async fn an_http_client_that_disconnects_cancels_its_invocation() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let mut events = host.handle().subscribe();
    let mut conn = tokio::net::TcpStream::connect(host.http_addr())
        .await
        .unwrap();
    conn.write_all(b"GET /api/sleep?ms=60000 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // Wait until the invocation runs on the worker, then hang up.
    let h = host.handle().clone();
    wait_until("the sleep to run", Duration::from_secs(10), || async {
        h.status().await.unwrap().in_flight == 1
    })
    .await;
    drop(conn);
    let r = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled, "{r:?}");
    assert_eq!(r.cancel_reason, Some(CancelReason::ClientDisconnected));
    // The connection is not needed for anything else.
    let mut probe = tokio::net::TcpStream::connect(host.http_addr())
        .await
        .unwrap();
    probe
        .write_all(b"GET /api/echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    probe.read_to_end(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    host.shutdown().await;
}

#[tokio::test]
async fn cancel_and_kill_tell_a_stopped_host_from_an_unknown_id() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let h = host.handle().clone();
    assert_eq!(
        h.cancel(&"no-such-invocation".into(), CancelReason::Requested)
            .await,
        CancelResponse::NotFound
    );
    assert_eq!(
        h.kill(&"no-such-invocation".into()).await,
        CancelResponse::NotFound
    );
    host.shutdown().await;
    assert_eq!(
        h.cancel(&"no-such-invocation".into(), CancelReason::Requested)
            .await,
        CancelResponse::HostStopped
    );
    assert_eq!(
        h.kill(&"no-such-invocation".into()).await,
        CancelResponse::HostStopped
    );
}
