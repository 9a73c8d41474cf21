//! Connections to the gRPC port. Workers dial back here, but so can anything
//! else on the host: until a connection carries an admitted worker stream it
//! has a deadline, and only `workers.maxPendingConnections` such connections
//! are kept (a new one closes the oldest).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::{after_accept_error, LogThrottle};

/// What the gRPC service finds in a request's extensions (tonic inserts it
/// from [`Connected::connect_info`]). The host's interceptor copies `tcp`
/// into the request's extensions as well, so `Request::remote_addr()` keeps
/// working.
#[derive(Clone)]
pub(crate) struct WorkerConnInfo {
    /// The local and peer addresses.
    pub tcp: TcpConnectInfo,
    /// Mark the connection admitted once its worker stream is.
    pub admission: Arc<Admission>,
}

#[cfg(test)]
impl WorkerConnInfo {
    /// Info for an unadmitted connection from `remote`, outside any queue.
    pub(crate) fn detached(remote: SocketAddr) -> Self {
        Self {
            tcp: TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(remote),
            },
            admission: Arc::new(Admission {
                id: 0,
                admitted: AtomicBool::new(false),
                pending: Arc::new(PendingQueue {
                    cap: 1,
                    queue: Mutex::new(VecDeque::new()),
                }),
            }),
        }
    }
}

/// Whether a connection has been admitted as a worker stream. Until then it
/// holds a place among the pending connections.
pub(crate) struct Admission {
    id: u64,
    admitted: AtomicBool,
    pending: Arc<PendingQueue>,
}

impl Admission {
    /// Lifts the handshake deadline and frees the pending place.
    pub(crate) fn admit(&self) {
        if !self.admitted.swap(true, Ordering::AcqRel) {
            self.pending.remove(self.id);
        }
    }

    fn is_admitted(&self) -> bool {
        self.admitted.load(Ordering::Acquire)
    }
}

/// Unadmitted connections, oldest first.
struct PendingQueue {
    cap: usize,
    queue: Mutex<VecDeque<(u64, CancellationToken)>>,
}

impl PendingQueue {
    /// Adds a connection; at the cap the oldest is told to close (returns
    /// `true`). The newest is kept rather than refused: an idle client that
    /// holds every place would otherwise lock out a worker that connects
    /// after it, while a worker's own handshake takes milliseconds, so it
    /// completes unless `cap` connections arrive behind it in that time.
    fn enter(&self, id: u64, evict: CancellationToken) -> bool {
        let mut queue = self.lock();
        let mut evicted = false;
        while queue.len() >= self.cap {
            let Some((_, oldest)) = queue.pop_front() else {
                break;
            };
            oldest.cancel();
            evicted = true;
        }
        queue.push_back((id, evict));
        evicted
    }

    fn remove(&self, id: u64) {
        let mut queue = self.lock();
        if let Some(at) = queue.iter().position(|(i, _)| *i == id) {
            queue.remove(at);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, CancellationToken)>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why an unadmitted connection was closed.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Deadline(Duration),
    Evicted,
}

/// A connection to the gRPC port. Until admitted, every read and write also
/// polls the cut future, so the connection fails when its deadline passes
/// or it is evicted, whatever state the HTTP/2 handshake is in.
pub(crate) struct WorkerConn {
    tcp: TcpStream,
    info: WorkerConnInfo,
    cut: Option<Pin<Box<dyn Future<Output = Cut> + Send>>>,
    log: Arc<LogThrottle>,
}

impl WorkerConn {
    fn check_cut(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.info.admission.is_admitted() {
            self.cut = None;
        }
        let Some(cut) = self.cut.as_mut() else {
            return Ok(());
        };
        let Poll::Ready(why) = cut.as_mut().poll(cx) else {
            return Ok(());
        };
        self.cut = None;
        let peer = self.info.tcp.remote_addr;
        let why = match why {
            Cut::Deadline(d) => format!("no worker stream admitted within {d:?}"),
            Cut::Evicted => "evicted by a newer connection (workers.maxPendingConnections)".into(),
        };
        match self.log.due() {
            Some(skipped) => tracing::warn!(
                ?peer,
                "closed a gRPC connection: {why} ({skipped} more closed since the last report)"
            ),
            None => tracing::debug!(?peer, "closed a gRPC connection: {why}"),
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, why))
    }
}

impl Drop for WorkerConn {
    fn drop(&mut self) {
        if !self.info.admission.is_admitted() {
            self.info.admission.pending.remove(self.info.admission.id);
        }
    }
}

impl Connected for WorkerConn {
    type ConnectInfo = WorkerConnInfo;

    fn connect_info(&self) -> WorkerConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for WorkerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_cut(cx)?;
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for WorkerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_cut(cx)?;
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_cut(cx)?;
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Limits of the gRPC port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerConnLimits {
    /// Preface plus an admitted `StartStream` within this.
    pub handshake_deadline: Duration,
    /// Unadmitted connections kept at once.
    pub max_pending: usize,
}

struct Acceptor {
    listener: TcpListener,
    limits: WorkerConnLimits,
    pending: Arc<PendingQueue>,
    next_id: AtomicU64,
    errors: LogThrottle,
    evictions: LogThrottle,
    cuts: Arc<LogThrottle>,
}

impl Acceptor {
    async fn next(&self) -> WorkerConn {
        loop {
            let (tcp, remote) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    after_accept_error("gRPC", e, &self.errors).await;
                    continue;
                }
            };
            return self.wrap(tcp, remote);
        }
    }

    fn wrap(&self, tcp: TcpStream, remote: SocketAddr) -> WorkerConn {
        // Small protocol messages both ways: without TCP_NODELAY a
        // handshake step can wait ~40 ms on a delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(peer = %remote, "cannot set TCP_NODELAY on a gRPC connection: {e}");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        if self.pending.enter(id, evicted.clone()) {
            if let Some(skipped) = self.evictions.due() {
                tracing::warn!(
                    peer = %remote,
                    "gRPC port: {} connections wait for their worker stream \
                     (workers.maxPendingConnections); closing the oldest \
                     ({skipped} more since the last report)",
                    self.limits.max_pending
                );
            }
        }
        let deadline = self.limits.handshake_deadline;
        let cut = Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(deadline) => Cut::Deadline(deadline),
                () = evicted.cancelled_owned() => Cut::Evicted,
            }
        });
        let info = WorkerConnInfo {
            tcp: TcpConnectInfo {
                local_addr: tcp.local_addr().ok(),
                remote_addr: Some(remote),
            },
            admission: Arc::new(Admission {
                id,
                admitted: AtomicBool::new(false),
                pending: self.pending.clone(),
            }),
        };
        WorkerConn {
            tcp,
            info,
            cut: Some(cut),
            log: self.cuts.clone(),
        }
    }
}

/// The gRPC port's connections, for `serve_with_incoming_shutdown`; never
/// yields an error (accept errors are logged and retried after a pause,
/// since tonic's own loop retries at once).
pub(crate) fn worker_incoming(
    listener: TcpListener,
    limits: WorkerConnLimits,
) -> impl Stream<Item = Result<WorkerConn, io::Error>> + Send {
    let acceptor = Arc::new(Acceptor {
        listener,
        limits,
        pending: Arc::new(PendingQueue {
            cap: limits.max_pending.max(1),
            queue: Mutex::new(VecDeque::new()),
        }),
        next_id: AtomicU64::new(0),
        errors: LogThrottle::default(),
        evictions: LogThrottle::default(),
        cuts: Arc::new(LogThrottle::default()),
    });
    futures_util::stream::unfold(acceptor, |acceptor| async move {
        let conn = acceptor.next().await;
        Some((Ok(conn), acceptor))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(cap: usize) -> PendingQueue {
        PendingQueue {
            cap,
            queue: Mutex::new(VecDeque::new()),
        }
    }

    #[test]
    fn a_connection_beyond_the_cap_evicts_the_oldest() {
        let q = queue(2);
        let tokens: Vec<_> = (0..3).map(|_| CancellationToken::new()).collect();
        assert!(!q.enter(0, tokens[0].clone()));
        assert!(!q.enter(1, tokens[1].clone()));
        assert!(q.enter(2, tokens[2].clone()));
        assert!(tokens[0].is_cancelled());
        assert!(!tokens[1].is_cancelled() && !tokens[2].is_cancelled());
    }

    #[test]
    fn an_admitted_connection_frees_its_place() {
        let q = Arc::new(queue(1));
        let first = CancellationToken::new();
        q.enter(0, first.clone());
        let admission = Admission {
            id: 0,
            admitted: AtomicBool::new(false),
            pending: q.clone(),
        };
        admission.admit();
        assert!(admission.is_admitted());
        assert!(!q.enter(1, CancellationToken::new()));
        assert!(
            !first.is_cancelled(),
            "an admitted connection is never evicted"
        );
    }
}
