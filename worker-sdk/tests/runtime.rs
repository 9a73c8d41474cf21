//! The runtime against a minimal in-process host over a real socket.

use std::time::Duration;

use fnhost_proto::rpc::function_rpc_server::{FunctionRpc, FunctionRpcServer};
use fnhost_proto::rpc::status_result::Status;
use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{
    FunctionLoadRequest, InvocationRequest, RpcFunctionMetadata, StreamingMessage,
    WorkerInitRequest,
};
use fnhost_worker::{Context, HandlerError, Input, LaunchArgs, Worker};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status as GrpcStatus, Streaming};

type Conn = (
    Streaming<StreamingMessage>,
    mpsc::Sender<Result<StreamingMessage, GrpcStatus>>,
);

struct FakeHost(mpsc::Sender<Conn>);

#[tonic::async_trait]
impl FunctionRpc for FakeHost {
    type EventStreamStream = ReceiverStream<Result<StreamingMessage, GrpcStatus>>;

    async fn event_stream(
        &self,
        request: Request<Streaming<StreamingMessage>>,
    ) -> Result<Response<Self::EventStreamStream>, GrpcStatus> {
        let (tx, rx) = mpsc::channel(16);
        self.0.send((request.into_inner(), tx)).await.unwrap();
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn next(inbound: &mut Streaming<StreamingMessage>) -> StreamingMessage {
    tokio::time::timeout(Duration::from_secs(5), inbound.next())
        .await
        .expect("timed out waiting for the worker")
        .expect("stream ended")
        .expect("stream error")
}

async fn sleep_handler(ctx: Context, _input: Input) -> Result<(), HandlerError> {
    ctx.until_cancelled(tokio::time::sleep(Duration::from_secs(60)))
        .await
}

#[tokio::test]
async fn handshake_invoke_and_terminate() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (conn_tx, mut conn_rx) = mpsc::channel(1);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FunctionRpcServer::new(FakeHost(conn_tx)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let worker = Worker::builder()
        .function("echo", |_ctx, input: Input| async move { input.text() })
        .function("sleep", sleep_handler);
    let args = LaunchArgs::parse([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--workerId",
        "w1",
        "--requestId",
        "r1",
    ])
    .unwrap();
    let worker = tokio::spawn(worker.run_with_args(args));

    let (mut inbound, out) = conn_rx.recv().await.unwrap();
    let first = next(&mut inbound).await;
    assert_eq!(first.request_id, "r1");
    assert!(matches!(first.content, Some(Content::StartStream(ref s)) if s.worker_id == "w1"));

    let send = |c: Content| {
        let out = out.clone();
        async move {
            out.send(Ok(StreamingMessage::from_content(c)))
                .await
                .unwrap()
        }
    };
    send(Content::WorkerInitRequest(WorkerInitRequest::default())).await;
    let m = next(&mut inbound).await;
    assert!(matches!(m.content, Some(Content::WorkerInitResponse(_))));
    assert_eq!(m.request_id, "r1");

    for (id, name) in [("f-echo", "echo"), ("f-sleep", "sleep")] {
        send(Content::FunctionLoadRequest(FunctionLoadRequest {
            function_id: id.into(),
            metadata: Some(RpcFunctionMetadata {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await;
        match next(&mut inbound).await.content {
            Some(Content::FunctionLoadResponse(r)) => assert!(r.result.unwrap().is_success()),
            other => panic!("unexpected {other:?}"),
        }
    }

    let invoke = |inv: &str, f: &str, text: &str| {
        Content::InvocationRequest(InvocationRequest {
            invocation_id: inv.into(),
            function_id: f.into(),
            input_data: vec![fnhost_proto::rpc::ParameterBinding {
                name: "req".into(),
                rpc_data: Some(fnhost_proto::rpc::parameter_binding::RpcData::Data(
                    fnhost_proto::rpc::TypedData::string(text),
                )),
            }],
            ..Default::default()
        })
    };
    send(invoke("i-sleep", "f-sleep", "")).await;
    send(invoke("i-echo", "f-echo", "hi")).await;
    match next(&mut inbound).await.content {
        Some(Content::InvocationResponse(r)) => {
            assert_eq!(r.invocation_id, "i-echo");
            assert_eq!(
                r.return_value,
                Some(fnhost_proto::rpc::TypedData::string("hi"))
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    out.send(Ok(StreamingMessage::worker_terminate(Duration::from_secs(
        2,
    ))))
    .await
    .unwrap();
    match next(&mut inbound).await.content {
        Some(Content::InvocationResponse(r)) => {
            assert_eq!(r.invocation_id, "i-sleep");
            assert_eq!(r.result.unwrap().status_kind(), Status::Cancelled);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The worker half-closes; the host then ends its side.
    let end = tokio::time::timeout(Duration::from_secs(5), inbound.next())
        .await
        .unwrap();
    assert!(end.is_none() || matches!(end, Some(Err(_))));
    drop(out);
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("worker did not stop")
        .unwrap()
        .unwrap();
}
