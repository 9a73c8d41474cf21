//! The `FunctionRpc` gRPC service: admits worker streams and pumps their
//! messages into the dispatcher.

use std::pin::Pin;
use std::time::Duration;

use fnhost_proto::rpc::function_rpc_server::FunctionRpc;
use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::StreamingMessage;
use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::dispatcher::attach_request;
use crate::dispatcher::{outbound_channel, Event};
use crate::listen::WorkerConnInfo;

/// How long a new stream may take to send `StartStream`.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct RpcService {
    pub events: mpsc::Sender<Event>,
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
        let admission = request
            .extensions()
            .get::<WorkerConnInfo>()
            .map(|info| info.admission.clone());
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Err(reject(peer, "stream closed before StartStream")),
            Ok(Err(e)) => {
                return Err(reject(
                    peer,
                    &format!("stream failed before StartStream: {e}"),
                ))
            }
            Err(_) => return Err(reject(peer, "no StartStream within 10 s")),
        };
        let worker_id = match first.content {
            Some(Content::StartStream(s)) if !s.worker_id.is_empty() => s.worker_id,
            Some(Content::StartStream(_)) => {
                return Err(reject(peer, "StartStream carries no worker_id"))
            }
            _ => {
                let what = format!("first message must be StartStream, got {}", first.kind());
                return Err(reject(peer, &what));
            }
        };
        let (outbound, urgent_rx, normal_rx) = outbound_channel();
        let (event, reply) = attach_request(worker_id.clone(), outbound);
        self.events
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
        let events = self.events.clone();
        tokio::spawn(read_worker(worker_id, inbound, events));
        Ok(Response::new(Box::pin(outbound_stream(
            urgent_rx, normal_rx,
        ))))
    }
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

fn reject(peer: Option<std::net::SocketAddr>, why: &str) -> Status {
    tracing::warn!(?peer, "rejected worker stream: {why}");
    Status::permission_denied(why.to_string())
}

/// Forwards a worker's messages; the channel's bound pushes back on a
/// worker that floods the host.
async fn read_worker(
    worker_id: String,
    mut inbound: Streaming<StreamingMessage>,
    events: mpsc::Sender<Event>,
) {
    let error = loop {
        match inbound.message().await {
            Ok(Some(msg)) => {
                let ev = Event::FromWorker {
                    worker_id: worker_id.clone(),
                    msg,
                };
                if events.send(ev).await.is_err() {
                    return;
                }
            }
            Ok(None) => break None,
            Err(status) => break Some(status.message().to_string()),
        }
    };
    let _ = events.send(Event::StreamClosed { worker_id, error }).await;
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
