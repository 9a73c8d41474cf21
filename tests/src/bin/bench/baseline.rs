//! Scenario 0.: the baseline, a plain tonic bidirectional echo stream with
//! callers multiplexed on one stream, messages shaped like an
//! `InvocationRequest`. Both ends set `TCP_NODELAY`, as the host and the
//! SDKs do. Server and client share the bench's runtime, as the host and
//! its callers do in scenarios 1 and 2 (and the host and its worker do
//! not: the worker is its own process), so the baseline is not given a
//! core of its own that the host is denied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use fnhost_proto::rpc::function_rpc_client::FunctionRpcClient;
use fnhost_proto::rpc::function_rpc_server::{FunctionRpc, FunctionRpcServer};
use fnhost_proto::rpc::parameter_binding::RpcData;
use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{InvocationRequest, ParameterBinding, StreamingMessage, TypedData};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::harness::{closed_loop, CALLERS, PAYLOAD};
use crate::Params;

/// Echoes every message of the stream back.
struct EchoRpc;

#[tonic::async_trait]
impl FunctionRpc for EchoRpc {
    type EventStreamStream = ReceiverStream<Result<StreamingMessage, Status>>;

    async fn event_stream(
        &self,
        request: Request<Streaming<StreamingMessage>>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                if tx.send(Ok(msg)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A message of the size and shape of the host's `InvocationRequest` for
/// `echo` with a tiny string input.
fn invocation_request(request_id: &str, function_id: &str, id: String) -> StreamingMessage {
    StreamingMessage::from_content(Content::InvocationRequest(InvocationRequest {
        invocation_id: id,
        function_id: function_id.to_string(),
        input_data: vec![ParameterBinding {
            name: "req".into(),
            rpc_data: Some(RpcData::Data(TypedData::string(PAYLOAD))),
        }],
        ..InvocationRequest::default()
    }))
    .with_request_id(request_id)
}

/// Callers multiplexed on one client stream, correlated by invocation id.
struct EchoClient {
    outbound: mpsc::Sender<StreamingMessage>,
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
    request_id: String,
    function_id: String,
}

impl EchoClient {
    async fn call(&self) -> bool {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting map")
            .insert(id.clone(), tx);
        let msg = invocation_request(&self.request_id, &self.function_id, id);
        if self.outbound.send(msg).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }
}

/// Echo messages per second, measured before and after the throughput
/// scenarios.
pub struct Baseline {
    pub rate: f64,
    /// The second measurement (after the throughput scenarios).
    pub after: f64,
    pub errors: u64,
    pub message_bytes: usize,
}

impl Baseline {
    pub fn mean(&self) -> f64 {
        (self.rate + self.after) / 2.0
    }
}

/// Measures the echo stream once (`after` is the same figure).
pub async fn echo_baseline(p: &Params) -> Result<Baseline> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(FunctionRpcServer::new(EchoRpc))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting to the echo server")?;
    let (out_tx, out_rx) = mpsc::channel(1024);
    let mut inbound = FunctionRpcClient::new(channel)
        .event_stream(ReceiverStream::new(out_rx))
        .await
        .context("opening the echo stream")?
        .into_inner();
    let client = Arc::new(EchoClient {
        outbound: out_tx,
        waiting: Mutex::new(HashMap::new()),
        request_id: uuid::Uuid::new_v4().to_string(),
        function_id: uuid::Uuid::new_v4().to_string(),
    });
    let message_bytes = invocation_request(
        &client.request_id,
        &client.function_id,
        uuid::Uuid::new_v4().to_string(),
    )
    .encoded_len();
    let reader_client = client.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(msg)) = inbound.message().await {
            if let Some(Content::InvocationRequest(r)) = msg.content {
                let waiter = reader_client
                    .waiting
                    .lock()
                    .expect("waiting map")
                    .remove(&r.invocation_id);
                if let Some(w) = waiter {
                    let _ = w.send(());
                }
            }
        }
    });
    let caller = client.clone();
    let result = closed_loop(CALLERS, p, move || {
        let c = caller.clone();
        async move { c.call().await }
    })
    .await;
    drop(client);
    reader.abort();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let t = result?;
    Ok(Baseline {
        rate: t.rate,
        after: t.rate,
        errors: t.errors,
        message_bytes,
    })
}
