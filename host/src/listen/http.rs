//! The HTTP port's accept loop: hyper's HTTP/1 connection with a header
//! read timeout, serving the axum router, under a cap on open connections.

use std::pin::pin;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{after_accept_error, LogThrottle};
use crate::config::HttpConfig;

/// Serves `router` until `stop` is cancelled, then stops accepting, lets
/// every open connection finish its in-flight request (hyper's graceful
/// shutdown closes idle keep-alive connections at once) and returns when
/// they have closed. The caller bounds that wait.
///
/// At `max_connections` open connections the loop stops calling `accept`:
/// new connections queue in the kernel's listen backlog and are served as
/// open ones close, so a burst waits rather than failing; only when the
/// backlog itself is full does the kernel drop new SYNs (clients retry).
/// `header_read_timeout` closes a connection that has not sent a complete
/// request head that long after it opened or after its previous response,
/// so an idle or slow client cannot hold a place for long.
pub(crate) async fn serve_http(
    listener: TcpListener,
    router: Router,
    config: HttpConfig,
    stop: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let places = Arc::new(Semaphore::new(config.max_connections));
    let connections = TaskTracker::new();
    let errors = LogThrottle::default();
    let at_cap = LogThrottle::default();
    loop {
        let place = match places.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                if let Some(skipped) = at_cap.due() {
                    tracing::warn!(
                        "HTTP port: {} connections open (http.maxConnections); new ones wait \
                         in the listen backlog ({skipped} more times since the last report)",
                        config.max_connections
                    );
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    place = places.clone().acquire_owned() => match place {
                        Ok(place) => place,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = after_accept_error("HTTP", e, &errors) => continue,
                }
            }
        };
        // Small request/response pairs: do not wait to coalesce.
        let _ = tcp.set_nodelay(true);
        let conn =
            builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()));
        let stop = stop.clone();
        connections.spawn(async move {
            let _place = place;
            let mut conn = pin!(conn);
            // Dropping the connection drops an in-flight request's future,
            // which is how a client's disconnect cancels its invocation
            // (see `http::guard`); hyper does so when it reads EOF.
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
    }
    // Close the listening socket now: new clients are refused rather than
    // left in the backlog until the process exits.
    drop(listener);
    connections.close();
    connections.wait().await;
}
