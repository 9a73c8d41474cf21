//! Workers that break the protocol: the host logs, copes, keeps serving.

use std::time::Duration;

use fnhost::{CancelReason, InvocationInput, Outcome};
use fnhost_e2e::{binary, init_logs, wait_until, TestApp};
use fnhost_proto::rpc::function_rpc_client::FunctionRpcClient;
use fnhost_proto::rpc::{StreamingMessage, TypedData};
use serde_json::json;

fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
}

fn rogue_app(host_json: serde_json::Value, mode: &str) -> TestApp {
    let app = TestApp::with_env(
        &binary("rogue-worker"),
        host_json,
        json!({ "ROGUE_MODE": mode }),
    );
    app.manual_function("big");
    app
}

async fn open_stream(addr: std::net::SocketAddr, first: StreamingMessage) -> tonic::Status {
    let mut client = FunctionRpcClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let outbound = tokio_stream::iter(vec![first]);
    match client.event_stream(outbound).await {
        Err(status) => status,
        Ok(resp) => {
            let mut inbound = resp.into_inner();
            match inbound.message().await {
                Err(status) => status,
                Ok(m) => panic!("the stream was accepted: {m:?}"),
            }
        }
    }
}

#[tokio::test]
async fn streams_with_a_wrong_first_message_or_an_unknown_worker_id_are_rejected() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let status = open_stream(
        host.grpc_addr(),
        StreamingMessage::invocation_cancel("x", Duration::ZERO),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("first message must be StartStream"),
        "{status:?}"
    );
    let status = open_stream(host.grpc_addr(), StreamingMessage::start_stream("impostor")).await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status.message().contains("impostor") && status.message().contains("not launched"),
        "{status:?}"
    );
    // The real worker is untouched.
    let r = host.handle().invoke("echo", text("ok")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    // Strangers are refused before admission: counted apart, so they
    // cannot inflate the worker's protocol violations.
    let s = host.handle().status().await.unwrap();
    assert_eq!(s.refused_streams, 2, "{s:?}");
    assert_eq!(s.protocol_violations, 0, "{s:?}");
    host.shutdown().await;
}

#[tokio::test]
async fn duplicate_and_unknown_results_are_ignored_and_counted() {
    init_logs();
    let app = rogue_app(json!({}), "duplicate-result");
    let host = app.start(1).await;
    let h = host.handle().clone();
    let mut events = h.subscribe();
    for i in 0..3 {
        let r = h.invoke("echo", text(&format!("n{i}"))).await.unwrap();
        assert_eq!(r.outcome, Outcome::Succeeded);
    }
    wait_until("six ignored results", Duration::from_secs(5), || async {
        h.status().await.unwrap().protocol_violations >= 6
    })
    .await;
    let mut ended = 0;
    while events.try_recv().is_ok() {
        ended += 1;
    }
    assert_eq!(ended, 3, "each invocation ended exactly once");
    assert_eq!(h.status().await.unwrap().workers.len(), 1);
    host.shutdown().await;
}

#[tokio::test]
async fn an_oversized_message_breaks_only_its_instance() {
    init_logs();
    let app = rogue_app(
        json!({"workers": {"processCount": 2, "maxMessageBytes": 131072}}),
        "oversize",
    );
    let host = app.start(2).await;
    let h = host.handle().clone();
    let big = h.invoke("big", text("x")).await.unwrap();
    assert_eq!(big.outcome, Outcome::Failed, "{big:?}");
    let err = big.error.unwrap();
    assert!(
        err.contains("stream broke") && err.contains(big.worker_id.as_deref().unwrap()),
        "{err}"
    );
    assert!(
        err.contains("131072-byte limit"),
        "the error names the limit: {err}"
    );
    let r = h.invoke("echo", text("fine")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert!(
        h.wait_ready(2, Duration::from_secs(10)).await,
        "the broken instance was replaced"
    );
    // An oversized output is the function's, not a crash: however often it
    // happens, it never uses up the restart budget.
    for _ in 0..6 {
        let big = h.invoke("big", text("x")).await.unwrap();
        assert_eq!(big.outcome, Outcome::Failed, "{big:?}");
        assert!(h.wait_ready(2, Duration::from_secs(10)).await);
    }
    let s = h.status().await.unwrap();
    for slot in &s.slots {
        assert_eq!(slot.recent_restarts, 0, "{s:?}");
        assert!(!slot.budget_exhausted, "{s:?}");
    }
    host.shutdown().await;
}

#[tokio::test]
async fn a_worker_without_the_cancel_capability_is_killed_at_once() {
    init_logs();
    let app = rogue_app(
        json!({"functionTimeout": "00:00:00.300", "workers": {"cancelGracePeriod": "00:00:30"}}),
        "no-cancel",
    );
    let host = app.start(1).await;
    let h = host.handle().clone();
    let started = std::time::Instant::now();
    let r = h.invoke("sleep", text("60000")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Killed, "{r:?}");
    assert_eq!(r.cancel_reason, Some(CancelReason::Timeout));
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("cannot receive InvocationCancel"),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait for the 30 s grace"
    );
    assert!(h.wait_ready(1, Duration::from_secs(10)).await);
    let next = h.invoke("echo", text("x")).await.unwrap();
    assert_eq!(next.outcome, Outcome::Succeeded);
    host.shutdown().await;
}
