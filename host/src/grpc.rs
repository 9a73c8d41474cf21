//! The `FunctionRpc` gRPC service: admits worker streams and pumps their
//! messages into the dispatcher.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use fnhost_proto::rpc::function_rpc_server::FunctionRpc;
use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::StreamingMessage;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

use crate::dispatcher::{Command, LaunchIdentity};
use crate::ids::WorkerId;
use crate::listen::WorkerConnInfo;
use crate::peer::{self, PeerCheck};

/// How long a new stream may take to send `StartStream`.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC metadata key under which fnhost's own SDKs present the launch
/// secret they found in their environment.
pub const LAUNCH_SECRET_METADATA: &str = "x-fnhost-worker-secret";

pub(crate) struct RpcService {
    pub commands: mpsc::Sender<Command>,
    /// The address workers dial (the far end of their sockets).
    pub server_addr: SocketAddr,
    /// Anyone can dial the port: refusals are logged at most once per
    /// interval, with a count of the rest.
    pub refusals: crate::listen::LogThrottle,
}

type OutStream = Pin<Box<dyn Stream<Item = Result<StreamingMessage, Status>> + Send>>;

#[tonic::async_trait]
impl FunctionRpc for RpcService {
    type EventStreamStream = OutStream;

    async fn event_stream(
        &self,
        request: Request<Streaming<StreamingMessage>>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        let peer = request.remote_addr();
        // The accepted socket's own address: with the peer's, the whole
        // 4-tuple the peer check looks up.
        let local = request.local_addr().unwrap_or(self.server_addr);
        let presented = request
            .metadata()
            .get(LAUNCH_SECRET_METADATA)
            .map(|v| v.as_bytes().to_vec());
        let admission = request
            .extensions()
            .get::<WorkerConnInfo>()
            .map(|info| info.admission.clone());
        let mut inbound = request.into_inner();
        let worker_id = match self.start_stream(&mut inbound).await {
            Ok(id) => id,
            Err(why) => return Err(self.refuse(peer, &why).await),
        };
        let (claim, identity) = claim_request(worker_id.clone());
        self.commands
            .send(claim)
            .await
            .map_err(|_| Status::unavailable("the host is shutting down"))?;
        let identity = match identity.await {
            Ok(Ok(identity)) => identity,
            // Counted by the dispatcher already.
            Ok(Err(why)) => return Err(self.refused(peer, &why)),
            Err(_) => return Err(Status::unavailable("the host is shutting down")),
        };
        match self
            .prove(peer, local, presented, &identity, &worker_id)
            .await
        {
            Ok(proof) => {
                tracing::debug!(worker = %worker_id, ?peer, "worker stream proven by {proof}")
            }
            Err(why) => return Err(self.refuse(peer, &why).await),
        }
        let (outbound, urgent_rx, normal_rx) = outbound_channel();
        let (event, reply) = attach_request(worker_id.clone(), outbound);
        self.commands
            .send(event)
            .await
            .map_err(|_| Status::unavailable("the host is shutting down"))?;
        match reply.await {
            // The connection now carries a worker: lift its handshake
            // deadline and free its place among the pending connections.
            Ok(Ok(())) => {
                if let Some(admission) = admission {
                    admission.admit();
                }
            }
            Ok(Err(why)) => return Err(reject(peer, why.as_str())),
            Err(_) => return Err(Status::unavailable("the host is shutting down")),
        }
        let commands = self.commands.clone();
        tokio::spawn(read_worker(worker_id, inbound, commands));
        Ok(Response::new(Box::pin(outbound_stream(
            urgent_rx, normal_rx,
        ))))
    }
}

impl RpcService {
    /// The worker id of the stream's first message, `StartStream`.
    async fn start_stream(
        &self,
        inbound: &mut Streaming<StreamingMessage>,
    ) -> Result<WorkerId, String> {
        let first = match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Err("stream closed before StartStream".into()),
            Ok(Err(e)) => return Err(format!("stream failed before StartStream: {e}")),
            Err(_) => return Err("no StartStream within 10 s".into()),
        };
        match first.content {
            // Ids this host issues are UUIDs; anything else is refused
            // without being echoed into logs or answers.
            Some(Content::StartStream(s)) if is_issued_id_shape(&s.worker_id) => {
                Ok(WorkerId::from(s.worker_id))
            }
            Some(Content::StartStream(s)) if !s.worker_id.is_empty() => Err(format!(
                "StartStream carries a worker_id ({} bytes) this host never issues",
                s.worker_id.len()
            )),
            Some(Content::StartStream(_)) => Err("StartStream carries no worker_id".into()),
            _ => Err(format!(
                "first message must be StartStream, got {}",
                first.kind()
            )),
        }
    }

    /// Proves the stream comes from the process launched for `worker_id`:
    /// by the launch secret when the worker presents one (fnhost's SDKs),
    /// else from the kernel's view of the peer socket.
    async fn prove(
        &self,
        peer: Option<SocketAddr>,
        server: SocketAddr,
        presented: Option<Vec<u8>>,
        identity: &LaunchIdentity,
        worker_id: &WorkerId,
    ) -> Result<&'static str, String> {
        if let Some(given) = presented {
            return if crate::keys::constant_time_eq(&given, identity.secret.expose().as_bytes()) {
                Ok("its launch secret")
            } else {
                Err(format!("wrong launch secret for worker {worker_id}"))
            };
        }
        let Some(pid) = identity.pid else {
            return Err(format!("worker {worker_id} has no running process"));
        };
        let Some(peer) = peer else {
            return Err("the peer address is unknown".into());
        };
        let check = tokio::task::spawn_blocking(move || peer::check(peer, server, pid))
            .await
            .unwrap_or_else(|e| PeerCheck::Foreign(format!("the peer check failed: {e}")));
        match check {
            PeerCheck::Verified => Ok("the owner of its socket"),
            // Said once at start: admitted on the worker id alone.
            PeerCheck::Unsupported => Ok("its worker id alone (no peer check here)"),
            PeerCheck::Foreign(why) => Err(format!(
                "stream claiming worker {worker_id} is not from its process: {why}"
            )),
        }
    }

    /// Refuses a stream that has not proven who it is, counted apart from
    /// protocol violations.
    async fn refuse(&self, peer: Option<SocketAddr>, why: &str) -> Status {
        let _ = self.commands.send(Command::Refused).await;
        self.refused(peer, why)
    }

    fn refused(&self, peer: Option<SocketAddr>, why: &str) -> Status {
        if let Some(held_back) = self.refusals.due() {
            tracing::warn!(?peer, held_back, "refused worker stream: {why}");
        }
        Status::permission_denied(why.to_string())
    }
}

/// At most 64 letters, digits and dashes: the shape of the ids this host
/// gives its workers.
fn is_issued_id_shape(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Interceptor on the `FunctionRpc` service: the gRPC port's connections
/// carry [`WorkerConnInfo`], so tonic does not insert its own
/// `TcpConnectInfo`; copying ours in keeps `Request::remote_addr()` (the
/// worker's peer address) working for every handler.
pub(crate) fn expose_peer_addr(mut request: Request<()>) -> Result<Request<()>, Status> {
    if let Some(tcp) = request
        .extensions()
        .get::<WorkerConnInfo>()
        .map(|info| info.tcp.clone())
    {
        request.extensions_mut().insert(tcp);
    }
    Ok(request)
}

fn reject(peer: Option<SocketAddr>, why: &str) -> Status {
    tracing::warn!(?peer, "refused worker stream: {why}");
    Status::permission_denied(why.to_string())
}

/// Forwards a worker's messages; the channel's bound pushes back on a
/// worker that floods the host.
async fn read_worker(
    worker_id: WorkerId,
    mut inbound: Streaming<StreamingMessage>,
    commands: mpsc::Sender<Command>,
) {
    let error = loop {
        match inbound.message().await {
            Ok(Some(msg)) => {
                let ev = Command::FromWorker {
                    worker_id: worker_id.clone(),
                    msg,
                };
                if commands.send(ev).await.is_err() {
                    return;
                }
            }
            Ok(None) => break None,
            Err(status) => break Some(status.message().to_string()),
        }
    };
    let _ = commands
        .send(Command::StreamClosed { worker_id, error })
        .await;
}

/// Merges the two outbound queues, cancels first.
fn outbound_stream(
    urgent: mpsc::UnboundedReceiver<StreamingMessage>,
    normal: mpsc::UnboundedReceiver<StreamingMessage>,
) -> impl Stream<Item = Result<StreamingMessage, Status>> + Send {
    futures_util::stream::unfold((urgent, normal), |(mut urgent, mut normal)| async move {
        let msg = tokio::select! {
            biased;
            Some(m) = urgent.recv() => m,
            Some(m) = normal.recv() => m,
            else => return None,
        };
        Some((Ok(msg), (urgent, normal)))
    })
}

/// The host's sending half of a worker stream. Cancels travel on `urgent`,
/// which the stream writer drains first, so they overtake queued work.
/// Unbounded on purpose: the dispatcher must never block on a worker, and
/// what it queues is bounded by the per-instance concurrency limit (one
/// request and at most one cancel per invocation).
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    pub urgent: mpsc::UnboundedSender<StreamingMessage>,
    pub normal: mpsc::UnboundedSender<StreamingMessage>,
}

/// A fresh outbound pair and the receivers the stream writer drains.
pub(crate) fn outbound_channel() -> (
    Outbound,
    mpsc::UnboundedReceiver<StreamingMessage>,
    mpsc::UnboundedReceiver<StreamingMessage>,
) {
    let (urgent, urgent_rx) = mpsc::unbounded_channel();
    let (normal, normal_rx) = mpsc::unbounded_channel();
    (Outbound { urgent, normal }, urgent_rx, normal_rx)
}

/// Used by the gRPC layer to learn what a stream claiming `worker_id` must prove.
pub(crate) fn claim_request(
    worker_id: WorkerId,
) -> (Command, oneshot::Receiver<Result<LaunchIdentity, String>>) {
    let (reply, rx) = oneshot::channel();
    (Command::Claim { worker_id, reply }, rx)
}

/// Used by the gRPC layer to ask the dispatcher to accept a stream.
pub(crate) fn attach_request(
    worker_id: WorkerId,
    outbound: Outbound,
) -> (Command, oneshot::Receiver<Result<(), String>>) {
    let (reply, rx) = oneshot::channel();
    (
        Command::Attach {
            worker_id,
            outbound,
            reply,
        },
        rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn handlers_see_the_peer_address_of_a_worker_connection() {
        let peer: std::net::SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let mut request = Request::new(());
        request
            .extensions_mut()
            .insert(WorkerConnInfo::detached(peer));
        assert_eq!(request.remote_addr(), None);
        let request = expose_peer_addr(request).unwrap();
        assert_eq!(request.remote_addr(), Some(peer));
        assert!(request.extensions().get::<WorkerConnInfo>().is_some());
    }

    #[tokio::test]
    async fn cancels_overtake_queued_work() {
        let (outbound, urgent, normal) = outbound_channel();
        for i in 0..3 {
            outbound
                .normal
                .send(StreamingMessage::start_stream(format!("w{i}")))
                .unwrap();
        }
        outbound
            .urgent
            .send(StreamingMessage::invocation_cancel("c", Duration::ZERO))
            .unwrap();
        drop(outbound);
        let kinds: Vec<&str> = outbound_stream(urgent, normal)
            .map(|m| m.unwrap().kind())
            .collect()
            .await;
        assert_eq!(
            kinds,
            [
                "invocation_cancel",
                "start_stream",
                "start_stream",
                "start_stream"
            ]
        );
    }
}
