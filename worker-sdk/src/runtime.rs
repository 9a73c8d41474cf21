//! The network side: connect, open the event stream, and shuttle messages
//! between the stream and the [`Dispatcher`].

use std::collections::HashMap;
use std::time::Duration;

use fnhost_proto::rpc::function_rpc_client::FunctionRpcClient;
use fnhost_proto::rpc::StreamingMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::dispatcher::{Dispatcher, TaskEvent, DEFAULT_GRACE};
use crate::{LaunchArgs, Registration, WorkerError};

/// The metadata key the host reads the launch secret from.
const LAUNCH_SECRET_METADATA: &str = "x-fnhost-worker-secret";
const CONNECT_FOR: Duration = Duration::from_secs(5);
const OUTBOUND_CAPACITY: usize = 1024;
/// How long to wait for the host to close its side after ours is closed.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Outbound half: stamps every message with the launch request id.
struct Outbound {
    tx: mpsc::Sender<StreamingMessage>,
    request_id: String,
}

impl Outbound {
    /// Sends; returns false when the stream is gone.
    async fn send(&self, msg: StreamingMessage) -> bool {
        let msg = msg.with_request_id(self.request_id.clone());
        self.tx.send(msg).await.is_ok()
    }
}

async fn connect(args: &LaunchArgs) -> Result<Channel, WorkerError> {
    let endpoint =
        Endpoint::from_shared(args.uri.clone()).map_err(|source| WorkerError::InvalidUri {
            uri: args.uri.clone(),
            source,
        })?;
    let endpoint = endpoint.connect_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + CONNECT_FOR;
    let mut delay = Duration::from_millis(50);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(source) if Instant::now() + delay >= deadline => {
                return Err(WorkerError::Connect {
                    uri: args.uri.clone(),
                    source,
                })
            }
            Err(e) => {
                tracing::debug!(uri = %args.uri, error = %e, "connect failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
        }
    }
}

#[cfg(unix)]
struct Shutdown(tokio::signal::unix::Signal);

#[cfg(unix)]
impl Shutdown {
    fn new() -> Result<Self, WorkerError> {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate())
            .map(Self)
            .map_err(WorkerError::Signal)
    }

    async fn recv(&mut self) {
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
struct Shutdown;

#[cfg(not(unix))]
impl Shutdown {
    fn new() -> Result<Self, WorkerError> {
        Ok(Self)
    }

    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) async fn run(
    functions: HashMap<String, Registration>,
    worker_indexing: bool,
    args: LaunchArgs,
) -> Result<(), WorkerError> {
    let mut shutdown = Shutdown::new()?;
    let channel = connect(&args).await?;
    let mut client = FunctionRpcClient::new(channel)
        .max_decoding_message_size(args.grpc_max_message_length)
        .max_encoding_message_size(args.grpc_max_message_length);

    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let out = Outbound {
        tx,
        request_id: args.request_id.clone(),
    };
    out.send(StreamingMessage::start_stream(args.worker_id.clone()))
        .await;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(secret) = &args.launch_secret {
        match tonic::metadata::MetadataValue::try_from(secret.expose()) {
            Ok(v) => {
                request.metadata_mut().insert(LAUNCH_SECRET_METADATA, v);
            }
            Err(_) => tracing::warn!(
                "{} holds characters not allowed in gRPC metadata; not presented",
                crate::LAUNCH_SECRET_ENV
            ),
        }
    }
    let mut inbound = client.event_stream(request).await?.into_inner();
    tracing::debug!(worker_id = %args.worker_id, uri = %args.uri, "event stream open");

    let (mut dispatcher, mut events) = Dispatcher::new(functions, worker_indexing);
    loop {
        tokio::select! {
            msg = inbound.next() => match msg {
                Some(Ok(msg)) => {
                    let step = dispatcher.handle_message(msg);
                    for reply in step.replies {
                        out.send(reply).await;
                    }
                    if let Some(grace) = step.terminate {
                        tracing::debug!(?grace, "worker terminate requested");
                        drain(&mut dispatcher, &mut events, &out, grace).await;
                        close(out, inbound).await;
                        return Ok(());
                    }
                }
                Some(Err(status)) => {
                    tracing::debug!(%status, "event stream failed; stopping");
                    dispatcher.cancel_all();
                    return Ok(());
                }
                None => {
                    tracing::debug!("host ended the event stream; stopping");
                    dispatcher.cancel_all();
                    return Ok(());
                }
            },
            Some(event) = events.recv() => {
                let msg = dispatcher.handle_event(event);
                out.send(msg).await;
            }
            () = shutdown.recv() => {
                tracing::debug!("SIGTERM; shutting down");
                drain(&mut dispatcher, &mut events, &out, DEFAULT_GRACE).await;
                close(out, inbound).await;
                return Ok(());
            }
        }
    }
}

/// Cancels everything and sends results as they arrive, up to `grace`.
async fn drain(
    dispatcher: &mut Dispatcher,
    events: &mut mpsc::UnboundedReceiver<TaskEvent>,
    out: &Outbound,
    grace: Duration,
) {
    dispatcher.cancel_all();
    let deadline = Instant::now() + grace;
    while dispatcher.in_flight() > 0 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                let msg = dispatcher.handle_event(event);
                out.send(msg).await;
            }
            _ => break,
        }
    }
    // Forward log lines that are already queued.
    while let Ok(event) = events.try_recv() {
        let msg = dispatcher.handle_event(event);
        out.send(msg).await;
    }
    if dispatcher.in_flight() > 0 {
        tracing::warn!(
            in_flight = dispatcher.in_flight(),
            "grace period ended with invocations still running"
        );
    }
}

/// Half-closes our side and briefly waits for the host to close its side,
/// so that queued messages reach the host before the process exits.
async fn close(out: Outbound, mut inbound: tonic::Streaming<StreamingMessage>) {
    drop(out);
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = inbound.next().await {}
    })
    .await;
}
