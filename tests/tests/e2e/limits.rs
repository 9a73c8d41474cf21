//! Connection limits: idle and slow connections to either port are closed
//! or held back, and workers and API clients keep being served meanwhile.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fnhost::{InvocationInput, Outcome};
use fnhost_e2e::{init_logs, wait_until, TestApp};
use fnhost_proto::rpc::TypedData;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
}

/// Reads (and discards) until the peer closes; `None` if it is still open
/// after `limit`.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Opens `n` connections that send nothing after `first_bytes`.
async fn idle_connections(addr: SocketAddr, n: usize, first_bytes: &[u8]) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(first_bytes).await.unwrap();
        conns.push(c);
    }
    conns
}

/// Sends a `connection: close` request on `conn` and reads the answer.
async fn get(mut conn: TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn idle_grpc_connections_are_closed_after_the_handshake_deadline() {
    init_logs();
    let deadline = Duration::from_millis(500);
    let app = TestApp::sample(json!({
        "workers": {"handshakeTimeout": "00:00:00.500", "maxPendingConnections": 1000}
    }));
    let host = app.start(1).await;
    // Half send nothing; half send the HTTP/2 preface and then no stream.
    let opened = Instant::now();
    let mut conns = idle_connections(host.grpc_addr(), 100, b"").await;
    conns.extend(idle_connections(host.grpc_addr(), 100, HTTP2_PREFACE).await);
    let all_opened = opened.elapsed();
    let waits = conns.into_iter().map(|mut c| {
        tokio::spawn(async move { closed_within(&mut c, Duration::from_secs(10)).await })
    });
    let mut still_open = 0;
    for wait in waits {
        match wait.await.unwrap() {
            // Accepted after it was opened, so cut no earlier than the
            // deadline after `opened` (less timer granularity).
            Some(at) => assert!(
                at.duration_since(opened) >= deadline - Duration::from_millis(20),
                "closed {:?} after opening, before the {deadline:?} deadline",
                at.duration_since(opened)
            ),
            None => still_open += 1,
        }
    }
    assert_eq!(still_open, 0, "of 200 idle connections, {still_open} were still open after 10 s (opening took {all_opened:?})");
    // The worker's own connection, admitted long before, was not cut.
    let r = host
        .handle()
        .invoke("echo", text("still here"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    host.shutdown().await;
}

#[tokio::test]
async fn unadmitted_grpc_connections_beyond_the_cap_close_the_oldest() {
    init_logs();
    let app = TestApp::sample(json!({
        "workers": {"handshakeTimeout": "00:00:30", "maxPendingConnections": 4}
    }));
    let host = app.start(1).await;
    let addr = host.grpc_addr();
    let mut conns = idle_connections(addr, 4, HTTP2_PREFACE).await;
    for n in 0..3 {
        conns.extend(idle_connections(addr, 1, HTTP2_PREFACE).await);
        assert!(
            closed_within(&mut conns[n], Duration::from_secs(5))
                .await
                .is_some(),
            "connection {n} was not closed when connection {} arrived",
            n + 4
        );
    }
    // The four newest hold the places. A negative check needs some wait;
    // 200 ms is far longer than closing the oldest took above.
    for (n, c) in conns.iter_mut().enumerate().skip(3) {
        assert!(
            closed_within(c, Duration::from_millis(200)).await.is_none(),
            "connection {n} is among the newest four and stays open"
        );
    }
    host.shutdown().await;
}

#[tokio::test]
async fn a_worker_still_attaches_and_serves_while_idle_connections_fill_the_grpc_cap() {
    init_logs();
    let app = TestApp::sample(json!({
        "workers": {"handshakeTimeout": "00:00:30", "maxPendingConnections": 8}
    }));
    let host = app.start(1).await;
    let h = host.handle().clone();
    // Sixteen idle connections: the first eight are evicted by the last
    // eight, so the cap is known to be full when the worker is replaced.
    let mut conns = idle_connections(host.grpc_addr(), 16, b"").await;
    for c in conns.iter_mut().take(8) {
        assert!(closed_within(c, Duration::from_secs(5)).await.is_some());
    }
    let before = h.invoke("echo", text("a")).await.unwrap();
    assert_eq!(before.outcome, Outcome::Succeeded, "{before:?}");
    // Kill the instance under a running invocation: its replacement has to
    // dial in while the cap is full.
    let sleeping = h.submit("sleep", text("60000")).await.unwrap();
    wait_until("the sleep to run", Duration::from_secs(10), || async {
        h.status().await.unwrap().in_flight == 1
    })
    .await;
    h.kill(&sleeping.id).await;
    assert_eq!(sleeping.result().await.unwrap().outcome, Outcome::Killed);
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let r = h.invoke("echo", text("b")).await.unwrap();
        if r.outcome == Outcome::Succeeded && r.worker_id != before.worker_id {
            break r;
        }
        assert!(Instant::now() < deadline, "no replacement served: {r:?}");
    };
    assert_eq!(after.outcome, Outcome::Succeeded);
    drop(conns);
    host.shutdown().await;
}

#[tokio::test]
async fn a_slow_http_client_is_cut_after_the_header_timeout() {
    init_logs();
    let timeout = Duration::from_millis(500);
    let app = TestApp::sample(json!({"http": {"headerReadTimeout": "00:00:00.500"}}));
    let host = app.start(1).await;
    let addr = host.http_addr();
    let opened = Instant::now();
    // Silent, half a request head, and idle after a complete exchange.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut kept_alive = TcpStream::connect(addr).await.unwrap();
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept_alive.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    for (what, c) in [
        ("silent", &mut silent),
        ("half a head", &mut partial),
        ("idle keep-alive", &mut kept_alive),
    ] {
        let at = closed_within(c, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("the {what} connection was not cut within 5 s"));
        let after = at.duration_since(opened);
        assert!(
            after >= timeout - Duration::from_millis(20),
            "the {what} connection was cut after {after:?}, before the timeout"
        );
    }
    // A client that sends its request promptly is served.
    let answer = get(TcpStream::connect(addr).await.unwrap(), "/api/echo").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    host.shutdown().await;
}

#[tokio::test]
async fn http_connections_beyond_the_cap_wait_in_the_backlog_until_one_closes() {
    init_logs();
    let app = TestApp::sample(json!({
        "http": {"maxConnections": 2, "headerReadTimeout": "00:00:30"}
    }));
    let host = app.start(1).await;
    let addr = host.http_addr();
    // Two connections hold both places; prove both are accepted (served).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        c.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        held.push(c);
    }
    // The third connects (the kernel completes the handshake) but is not
    // accepted: its request gets no answer while both places are held.
    let waiting = tokio::spawn(async move {
        let answer = get(TcpStream::connect(addr).await.unwrap(), "/healthz").await;
        (answer, Instant::now())
    });
    let mut waiting = waiting;
    // A negative check needs a bounded wait; 300 ms is ample for a local answer.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "the third connection was served at the cap"
    );
    let freed = Instant::now();
    drop(held.remove(0));
    let (answer, at) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting connection is served once a place frees")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(at > freed);
    host.shutdown().await;
}
