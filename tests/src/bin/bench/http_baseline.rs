//! Scenario 2's baseline: a plain axum server in the bench process that
//! answers `POST /api/echo` with the request body, driven by the same
//! client and callers as scenario 2 in the same run. It sets `TCP_NODELAY`
//! like the host, and shares the bench's runtime with its client as the
//! host does in scenario 2, so the ratio compares the host's HTTP path
//! with the least an HTTP echo on this stack costs.

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::routing::post;
use axum::serve::ListenerExt as _;
use fnhost_e2e::Api;
use tokio::sync::oneshot;

use crate::harness::{closed_loop, post_echo, Throughput, CALLERS};
use crate::Params;

/// Requests per second (and the bench process's CPU per request) of the
/// plain echo server.
pub async fn plain_http_baseline(p: &Params) -> Result<Throughput> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().route("/api/echo", post(|body: Bytes| async move { body }));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let api = Api::new(addr);
    let result = closed_loop(CALLERS, p, move || {
        let api = api.clone();
        async move { post_echo(&api).await }
    })
    .await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server)
        .await
        .context("the plain HTTP server did not stop")?;
    result
}
