//! A deadline on reading a request body: a client that trickles its body
//! in (a byte every few seconds) would otherwise hold its connection, and
//! with enough of them every place the HTTP listener has.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

/// Why a body read stopped.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (http.bodyReadTimeout)")]
pub(crate) struct BodyTimedOut(Duration);

/// A body that fails once its deadline passes. The timer is armed only
/// when a read has to wait: most bodies arrive with their head, and those
/// never touch the timer wheel.
struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request body must arrive within `limit` of its head.
pub(crate) async fn body_deadline(
    State(limit): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    let deadline = Instant::now() + limit;
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline,
            sleep: None,
            limit,
        })
    });
    next.run(req).await
}

/// Reads a whole body (at most `limit` bytes), naming a timeout as such.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, (u16, String)> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => {
            let text = e.to_string();
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err((
                    413,
                    format!("the request body is over the {limit}-byte limit"),
                ))
            } else if text.contains("http.bodyReadTimeout") {
                Err((408, text))
            } else {
                Err((400, format!("the request body could not be read: {text}")))
            }
        }
    }
}
