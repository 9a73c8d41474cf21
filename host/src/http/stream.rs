//! HTTP streaming: an HTTP trigger dispatched to a worker that serves HTTP
//! itself (its `HttpUri` capability) is forwarded there, request and
//! response both streamed; the `InvocationResponse` only marks the end,
//! and decides the outcome when the invocation fails (timeout, cancel,
//! kill, an exception).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::guard::CancelOnDrop;
use super::{without_key_param, ADMIN_KEY_HEADER, INVOCATION_ID_HEADER};
use crate::invocation::{InvocationId, InvocationResult, InvokeError};

/// The header that tells a worker's HTTP server which invocation a
/// forwarded request belongs to.
pub(crate) const WORKER_INVOCATION_HEADER: &str = "x-ms-invocation-id";

/// Headers of one connection, never forwarded (RFC 9110 §7.6.1), plus
/// `host`, which names the worker's server on the forwarded request, and
/// `expect`: the host's server already answered `100-continue` by reading
/// the body, and the client that forwards it sends it without waiting.
const HOP_BY_HOP: [&str; 10] = [
    "expect",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The client that forwards requests to workers' HTTP servers.
pub(crate) type WorkerClient = Client<HttpConnector, Body>;

pub(crate) fn worker_client() -> WorkerClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The outcome of the invocation, still to come.
pub(crate) type ResultFuture =
    Pin<Box<dyn Future<Output = Result<InvocationResult, InvokeError>> + Send>>;

/// The request to send to the worker at `base` (its `HttpUri`): the same
/// method, path and query (without a `code` key), the client's headers
/// without the host's key and hop-by-hop headers, and `body` as it comes.
pub(crate) fn forwarded_request(
    base: &str,
    invocation_id: &InvocationId,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Request<Body>, String> {
    // Node's library advertises `http://localhost:<port>/`; connecting to
    // the loopback address itself skips a resolver and its IPv6 guess.
    let base = base
        .trim_end_matches('/')
        .replacen("://localhost", "://127.0.0.1", 1);
    let target = format!("{base}{}", without_key_param(uri));
    let mut request = Request::builder()
        .method(method.clone())
        .uri(&target)
        .body(body)
        .map_err(|e| format!("the worker's HttpUri gives no valid URI ({target}): {e}"))?;
    let h = request.headers_mut();
    for (name, value) in headers {
        if name.as_str() == ADMIN_KEY_HEADER || HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        h.append(name.clone(), value.clone());
    }
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or(HeaderValue::from_static("127.0.0.1"));
    h.insert("x-forwarded-host", host);
    h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let id = HeaderValue::from_str(invocation_id.as_str()).map_err(|e| e.to_string())?;
    h.insert(WORKER_INVOCATION_HEADER, id);
    Ok(request)
}

/// The function's response: the worker's status, headers and streamed
/// body, which ends early (an aborted response) when the invocation fails.
pub(crate) fn streamed_response(
    worker_response: hyper::Response<hyper::body::Incoming>,
    invocation_id: &InvocationId,
    result: Option<ResultFuture>,
    guard: CancelOnDrop,
) -> Response {
    let (parts, inner) = worker_response.into_parts();
    let body = StreamedBody {
        inner,
        result,
        guard,
    };
    let mut response = (parts.status, Body::new(body)).into_response();
    let h = response.headers_mut();
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name.as_str() != WORKER_INVOCATION_HEADER {
            h.append(name.clone(), value.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(invocation_id.as_str()) {
        h.insert(HeaderName::from_static(INVOCATION_ID_HEADER), v);
    }
    response
}

/// Why a streamed response was cut.
#[derive(Debug, thiserror::Error)]
enum StreamEnded {
    #[error("invocation {id} ended {outcome} while its response streamed: {error}")]
    Failed {
        id: InvocationId,
        outcome: crate::invocation::Outcome,
        error: String,
    },
    #[error("the host stopped while the response streamed")]
    HostGone,
    #[error("the worker's response broke off: {0}")]
    Worker(hyper::Error),
}

/// The worker's response body, watched by the invocation's outcome. While
/// it streams, the guard cancels the invocation if the client goes away
/// (the body is dropped).
struct StreamedBody {
    inner: hyper::body::Incoming,
    result: Option<ResultFuture>,
    guard: CancelOnDrop,
}

impl http_body::Body for StreamedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Some(result) = this.result.as_mut() {
            if let Poll::Ready(r) = result.as_mut().poll(cx) {
                this.result = None;
                this.guard.disarm();
                let failure = match r {
                    Ok(r) if r.is_success() => None,
                    Ok(r) => Some(StreamEnded::Failed {
                        id: r.invocation_id,
                        outcome: r.outcome,
                        error: r.error.unwrap_or_default(),
                    }),
                    Err(_) => Some(StreamEnded::HostGone),
                };
                if let Some(f) = failure {
                    tracing::info!("{f}; the response was cut");
                    return Poll::Ready(Some(Err(axum::Error::new(f))));
                }
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                // The whole response was sent; the worker's
                // `InvocationResponse` follows and ends the invocation.
                this.guard.disarm();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(axum::Error::new(StreamEnded::Worker(e)))))
            }
            other => other.map_err(axum::Error::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_request_keeps_path_and_query_but_not_keys_or_hop_headers() {
        let uri: Uri = "/api/f/x?a=1&code=K1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(ADMIN_KEY_HEADER, HeaderValue::from_static("K2"));
        headers.insert("host", HeaderValue::from_static("example:7071"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert("expect", HeaderValue::from_static("100-continue"));
        headers.insert("x-other", HeaderValue::from_static("v"));
        let r = forwarded_request(
            "http://localhost:55000/",
            &"inv-1".into(),
            &Method::PUT,
            &uri,
            &headers,
            Body::empty(),
        )
        .unwrap();
        assert_eq!(r.method(), Method::PUT);
        assert_eq!(r.uri(), "http://127.0.0.1:55000/api/f/x?a=1");
        let h = r.headers();
        assert_eq!(h[WORKER_INVOCATION_HEADER], "inv-1");
        assert_eq!(h["x-forwarded-host"], "example:7071");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-other"], "v");
        for gone in [ADMIN_KEY_HEADER, "host", "connection", "expect"] {
            assert!(!h.contains_key(gone), "{gone} was forwarded");
        }
    }
}
