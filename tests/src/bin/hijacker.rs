//! A local process that tries to attach to a host as one of its workers,
//! for the admission tests. It learns worker ids the way any local user
//! can: from `--workerId` on the command lines in `/proc/*/cmdline`.
//!
//! ```text
//! hijacker --grpc 127.0.0.1:PORT --worker-id ID [--secret S]
//! hijacker --watch MARKER --timeout-ms N
//! ```
//!
//! With `--watch` it polls `/proc` for a process whose command line holds
//! `MARKER` and `--workerId`, then dials the `--host`/`--port` found there
//! at once, as a racing attacker would. Each attempt prints one line:
//! `ADMITTED <worker id>` when the host answered with any message (the
//! handshake began), or `REFUSED <worker id> <code>: <message>`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fnhost_proto::rpc::function_rpc_client::FunctionRpcClient;
use fnhost_proto::rpc::StreamingMessage;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> Option<String> {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1).cloned()
    };
    if let Some(marker) = arg("--watch") {
        let timeout: u64 = arg("--timeout-ms").unwrap_or("10000".into()).parse()?;
        let (addr, worker_id) = watch(&marker, Duration::from_millis(timeout))?;
        return attempt(&addr, &worker_id, None).await;
    }
    let addr = arg("--grpc").context("missing --grpc")?;
    let worker_id = arg("--worker-id").context("missing --worker-id")?;
    attempt(&addr, &worker_id, arg("--secret")).await
}

/// Polls `/proc/*/cmdline` until a worker launch line with `marker` shows.
fn watch(marker: &str, limit: Duration) -> Result<(String, String)> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let words: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            if !words.iter().any(|w| w.contains(marker)) {
                continue;
            }
            let value = |flag: &str| {
                let i = words.iter().position(|w| w == flag)?;
                words.get(i + 1).cloned()
            };
            if let (Some(host), Some(port), Some(id)) =
                (value("--host"), value("--port"), value("--workerId"))
            {
                return Ok((format!("{host}:{port}"), id));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    bail!("no worker command line with {marker:?} appeared within {limit:?}")
}

async fn attempt(addr: &str, worker_id: &str, secret: Option<String>) -> Result<()> {
    let mut client = FunctionRpcClient::connect(format!("http://{addr}")).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<StreamingMessage>();
    tx.send(StreamingMessage::start_stream(worker_id))?;
    let mut request = tonic::Request::new(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
    if let Some(secret) = secret {
        request
            .metadata_mut()
            .insert("x-fnhost-worker-secret", secret.parse()?);
    }
    let outcome = match client.event_stream(request).await {
        Err(status) => Err(status),
        Ok(resp) => match resp.into_inner().message().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(tonic::Status::unknown("stream ended without a message")),
            Err(status) => Err(status),
        },
    };
    match outcome {
        Ok(()) => println!("ADMITTED {worker_id}"),
        Err(s) => println!("REFUSED {worker_id} {:?}: {}", s.code(), s.message()),
    }
    drop(tx);
    Ok(())
}
