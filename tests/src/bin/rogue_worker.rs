//! A worker that misbehaves on purpose, for the host's fault tests.
//!
//! It speaks the protocol well enough to be loaded, then breaks it as
//! `ROGUE_MODE` (comma-separated) asks:
//! - `duplicate-result`: answers every invocation twice, and also sends a
//!   result for an invocation id the host never issued;
//! - `no-cancel`: does not advertise `HandlesInvocationCancelMessage`;
//! - `oversize`: answers function `big` with a message larger than the
//!   host's `maxMessageBytes`;
//! - `status-stall`: advertises `WorkerStatus`, answers the first
//!   `WorkerStatusRequest`, then never again. With `ROGUE_STALL_ONCE_FILE`
//!   set, only the process that creates that file stalls (later processes,
//!   e.g. replacements, answer every request).
//!
//! `echo` returns its input; `sleep` waits the milliseconds given and
//! ignores cancels.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fnhost_proto::rpc::function_rpc_client::FunctionRpcClient;
use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{
    FunctionLoadResponse, InvocationRequest, InvocationResponse, StatusResult, StreamingMessage,
    TypedData, WorkerInitResponse,
};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> Result<String> {
        let i = args
            .iter()
            .position(|a| a == name)
            .with_context(|| format!("missing {name}"))?;
        args.get(i + 1)
            .cloned()
            .with_context(|| format!("missing value of {name}"))
    };
    let (host, port, worker_id) = (arg("--host")?, arg("--port")?, arg("--workerId")?);
    let modes: Vec<String> = std::env::var("ROGUE_MODE")
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let stall_once = std::env::var_os("ROGUE_STALL_ONCE_FILE").map(|path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .is_ok()
    });
    let mode = |m: &str| match m {
        "status-stall" if stall_once == Some(false) => false,
        _ => modes.iter().any(|x| x == m),
    };

    let mut client = FunctionRpcClient::connect(format!("http://{host}:{port}"))
        .await?
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let (tx, rx) = mpsc::unbounded_channel::<StreamingMessage>();
    tx.send(StreamingMessage::start_stream(&worker_id))?;
    let mut inbound = client
        .event_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut functions: HashMap<String, String> = HashMap::new();
    let mut status_requests = 0u32;
    while let Some(msg) = inbound.message().await? {
        let Some(content) = msg.content else { continue };
        match content {
            Content::WorkerInitRequest(_) => {
                let mut caps = HashMap::new();
                if mode("status-stall") {
                    caps.insert(
                        fnhost_proto::CAP_WORKER_STATUS.to_string(),
                        "true".to_string(),
                    );
                }
                if !mode("no-cancel") {
                    caps.insert(
                        fnhost_proto::CAP_HANDLES_INVOCATION_CANCEL.to_string(),
                        "true".to_string(),
                    );
                }
                let resp = WorkerInitResponse {
                    capabilities: caps,
                    result: Some(StatusResult::success()),
                    ..WorkerInitResponse::default()
                };
                tx.send(StreamingMessage::from_content(Content::WorkerInitResponse(
                    resp,
                )))?;
            }
            Content::FunctionLoadRequest(req) => {
                let name = req.metadata.map(|m| m.name).unwrap_or_default();
                functions.insert(req.function_id.clone(), name);
                let resp = FunctionLoadResponse {
                    function_id: req.function_id,
                    result: Some(StatusResult::success()),
                    is_dependency_downloaded: false,
                };
                tx.send(StreamingMessage::from_content(
                    Content::FunctionLoadResponse(resp),
                ))?;
            }
            Content::InvocationRequest(req) => {
                let name = functions.get(&req.function_id).cloned().unwrap_or_default();
                let tx = tx.clone();
                let duplicate = mode("duplicate-result");
                let oversize = mode("oversize");
                tokio::spawn(async move {
                    let resp = invoke(&name, req, oversize).await;
                    let again = resp.clone();
                    let _ = tx.send(StreamingMessage::from_content(Content::InvocationResponse(
                        resp,
                    )));
                    if duplicate {
                        let _ = tx.send(StreamingMessage::from_content(
                            Content::InvocationResponse(again),
                        ));
                        let stranger = InvocationResponse {
                            invocation_id: "00000000-0000-0000-0000-000000000000".into(),
                            result: Some(StatusResult::success()),
                            ..InvocationResponse::default()
                        };
                        let _ = tx.send(StreamingMessage::from_content(
                            Content::InvocationResponse(stranger),
                        ));
                    }
                });
            }
            Content::WorkerStatusRequest(_) => {
                status_requests += 1;
                if !mode("status-stall") || status_requests == 1 {
                    let resp = fnhost_proto::rpc::WorkerStatusResponse {};
                    tx.send(StreamingMessage::from_content(
                        Content::WorkerStatusResponse(resp),
                    ))?;
                }
            }
            Content::WorkerTerminate(_) => return Ok(()),
            _ => {}
        }
    }
    bail!("host closed the stream")
}

async fn invoke(name: &str, req: InvocationRequest, oversize: bool) -> InvocationResponse {
    let input = req
        .input_data
        .first()
        .and_then(|b| match &b.rpc_data {
            Some(fnhost_proto::rpc::parameter_binding::RpcData::Data(d)) => d.to_bytes(),
            _ => None,
        })
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&input).to_string();
    let value = match name {
        "sleep" => {
            let ms: u64 = text.trim().parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            TypedData::string(format!("slept {ms} ms"))
        }
        "big" if oversize => TypedData::bytes(vec![b'x'; 512 * 1024]),
        _ => TypedData::bytes(input),
    };
    InvocationResponse {
        invocation_id: req.invocation_id,
        result: Some(StatusResult::success()),
        return_value: Some(value),
        ..InvocationResponse::default()
    }
}
