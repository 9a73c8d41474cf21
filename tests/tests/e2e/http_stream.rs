//! HTTP streaming: Azure's Node worker with `app.setup({ enableHttpStream:
//! true })`, and its Python worker with
//! `azurefunctions-extensions-http-fastapi`, advertise `HttpUri`; the host
//! forwards HTTP trigger requests to the worker's own server and streams
//! both ways. Needs `../shared/interop`
//! and `tests/interop/setup.sh` (like the other interop tests, it skips with
//! a message where the folder is absent).

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::workers_dir::{
    fnhost, host_json, interop, python_build, start, v4_package, workers_dir, HostProcess, TempDir,
};

/// A v4 Node app in streaming mode. `stream/{n}` sends a first chunk, then
/// waits for the file `gate` before its second one and its end; `upload`
/// counts the bytes of its request body as they come; `echo` reports what
/// the worker saw of the request.
fn streaming_node_app(gate: &Path, host: serde_json::Value) -> TempDir {
    let app = TempDir::new("node-stream-app");
    app.write_json("host.json", &host);
    app.write_json(
        "local.settings.json",
        &json!({"IsEncrypted": false, "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "node", "STREAM_GATE": gate}}),
    );
    v4_package(&app, "stream-app");
    app.write(
        "src/index.js",
        r#"const { app } = require('@azure/functions');
const fs = require('fs');

app.setup({ enableHttpStream: true });

const text = (s) => new TextEncoder().encode(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

app.http('stream', { methods: ['GET'], authLevel: 'anonymous', route: 'stream/{n:int}',
  handler: async (request) => ({
    headers: { 'content-type': 'text/plain' },
    body: new ReadableStream({
      async start(controller) {
        controller.enqueue(text(`first ${request.params.n}\n`));
        while (!fs.existsSync(process.env.STREAM_GATE)) await sleep(10);
        controller.enqueue(text('second\n'));
        controller.close();
      },
    }),
  }) });
app.http('hang', { methods: ['GET'], authLevel: 'anonymous',
  handler: async () => ({
    body: new ReadableStream({
      async start(controller) {
        controller.enqueue(text('first\n'));
        await new Promise(() => {});
      },
    }),
  }) });
app.http('upload', { methods: ['POST'], authLevel: 'anonymous',
  handler: async (request) => {
    let n = 0;
    for await (const chunk of request.body) n += chunk.length;
    return { body: `${n}` };
  } });
app.http('boom', { methods: ['GET'], authLevel: 'anonymous',
  handler: async () => { throw new Error('boom on purpose'); } });
app.http('echo', { methods: ['GET'], authLevel: 'function',
  handler: async (request) => ({ jsonBody: {
    url: request.url, key: request.headers.get('x-functions-key'),
    other: request.headers.get('x-other') } }) });
"#,
    );
    app
}

async fn start_streaming(
    gate: &Path,
    host: serde_json::Value,
) -> Option<(HostProcess, fnhost_e2e::Api, TempDir, TempDir)> {
    let interop = interop("the HTTP streaming test")?;
    let workers = workers_dir(&interop, None);
    let app = streaming_node_app(gate, host);
    let (host, api) = start(
        fnhost(None),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    Some((host, api, app, workers))
}

/// Reads from `conn` into `seen` until it holds `want` (or fails after 20 s).
async fn read_until(conn: &mut TcpStream, seen: &mut Vec<u8>, want: &str, host: &HostProcess) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(seen).contains(want) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {want:?} within 20 s; got {:?}\n{}",
                    String::from_utf8_lossy(seen),
                    host.log()
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "connection closed before {want:?}: {:?}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_streamed_response_reaches_the_client_before_the_function_finishes() {
    let gate_dir = TempDir::new("stream-gate");
    let gate = gate_dir.path().join("open");
    let Some((host, api, _app, _workers)) = start_streaming(&gate, host_json()).await else {
        return;
    };
    let mut conn = TcpStream::connect(api_addr(&api)).await.unwrap();
    conn.write_all(b"GET /api/stream/7 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    read_until(&mut conn, &mut seen, "first 7\n", &host).await;
    let head = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-fnhost-invocation-id"), "{head}");
    assert!(
        !String::from_utf8_lossy(&seen).contains("second"),
        "the function has not finished"
    );
    std::fs::write(&gate, "").unwrap();
    read_until(&mut conn, &mut seen, "second\n", &host).await;
    // A failure before any response is the invocation's, as without streaming.
    let r = api.request("GET", "/api/boom", "", None).await.unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "the function failed");
    // Keys are checked, then stripped.
    let r = api
        .request_with("GET", "/api/echo?a=1&code=nope", "", &[("x-other", "v")])
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let key = api.admin_get("/admin/host/keys").await.unwrap().json()["keys"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .request_with(
            "GET",
            "/api/echo?a=1",
            "",
            &[("x-other", "v"), ("x-functions-key", &key)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), host.log());
    let seen = r.json();
    assert!(
        seen["url"].as_str().unwrap().ends_with("/api/echo?a=1"),
        "{seen}"
    );
    assert_eq!((&seen["key"], &seen["other"]), (&json!(null), &json!("v")));
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
async fn a_large_upload_streams_through_without_being_held_in_memory() {
    let gate_dir = TempDir::new("stream-gate");
    let Some((host, api, _app, _workers)) =
        start_streaming(&gate_dir.path().join("unused"), host_json()).await
    else {
        return;
    };
    check_upload(&host, &api, true).await;
}

/// POSTs 64 MiB to `upload`, which answers with the byte count it read,
/// and checks that the host's peak RSS grew by far less than that.
/// `expect`: as curl sends a large body, after `100 Continue`.
async fn check_upload(host: &HostProcess, api: &fnhost_e2e::Api, expect: bool) {
    const UPLOAD: usize = 64 * 1024 * 1024;
    let pid = host.child.id();
    let before = peak_rss_kib(pid);
    let mut conn = TcpStream::connect(api_addr(api)).await.unwrap();
    let expect_header = if expect {
        "expect: 100-continue\r\n"
    } else {
        ""
    };
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nhost: x\r\ncontent-length: {UPLOAD}\r\n\
         {expect_header}connection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    if expect {
        let mut interim = Vec::new();
        read_until(&mut conn, &mut interim, "\r\n\r\n", host).await;
        let interim = String::from_utf8_lossy(&interim);
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    }
    let chunk = vec![b'z'; 256 * 1024];
    for _ in 0..UPLOAD / chunk.len() {
        conn.write_all(&chunk).await.unwrap();
    }
    let mut reply = Vec::new();
    // `connection: close`: the reply ends with the connection.
    tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut reply))
        .await
        .expect("the reply within 60 s")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}\n{}", host.log());
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(body.contains(&UPLOAD.to_string()), "{reply}");
    let after = peak_rss_kib(pid);
    eprintln!(
        "host peak RSS (VmHWM): {before} KiB before, {after} KiB after a {} KiB upload",
        UPLOAD / 1024
    );
    assert!(
        (after - before) * 1024 < UPLOAD as u64 / 4,
        "the host's peak RSS grew by {} KiB for a {} KiB upload",
        after - before,
        UPLOAD / 1024
    );
}

fn api_addr(api: &fnhost_e2e::Api) -> String {
    api.base().trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn a_timeout_cuts_a_streamed_response_and_a_client_that_leaves_cancels() {
    let gate_dir = TempDir::new("stream-gate");
    let mut host_json = host_json();
    host_json["functionTimeout"] = json!("00:00:02");
    let Some((host, api, _app, _workers)) =
        start_streaming(&gate_dir.path().join("unused"), host_json).await
    else {
        return;
    };
    let mut conn = TcpStream::connect(api_addr(&api)).await.unwrap();
    conn.write_all(b"GET /api/hang HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    read_until(&mut conn, &mut seen, "first\n", &host).await;
    // The worker ignores cancels, so the timeout kills its instance and the
    // response ends without its last chunk.
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut seen))
        .await
        .expect("the response is cut within 20 s")
        .ok();
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.ends_with("0\r\n\r\n"), "a complete response: {text}");
    assert!(host.log().contains("killed"), "{}", host.log());
    // On a new instance: a client that leaves mid-response cancels.
    let started = tokio::time::Instant::now();
    let id = loop {
        let mut conn = TcpStream::connect(api_addr(&api)).await.unwrap();
        conn.write_all(b"GET /api/hang HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap_or(0);
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).to_lowercase();
        if text.starts_with("http/1.1 200") {
            read_until(&mut conn, &mut seen, "first\n", &host).await;
            let text = String::from_utf8_lossy(&seen).to_lowercase();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("x-fnhost-invocation-id: "))
                .unwrap()
                .trim()
                .to_string();
            break id;
        }
        // 503 while the killed instance is replaced.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{text}\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let started = tokio::time::Instant::now();
    while !host
        .log()
        .lines()
        .any(|l| l.contains(&id) && l.contains("HTTP client went away"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same functions in the Python decorator model with
/// `azurefunctions-extensions-http-fastapi` (installed by
/// tests/interop/setup.sh).
fn streaming_python_app(gate: &Path) -> TempDir {
    let app = TempDir::new("py-stream-app");
    app.write_json("host.json", &host_json());
    app.write_json(
        "local.settings.json",
        &json!({"IsEncrypted": false, "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "python", "STREAM_GATE": gate,
            // The worker indexes at init, and so starts its HTTP server
            // and advertises HttpUri, only with this setting.
            "PYTHON_ENABLE_INIT_INDEXING": "1"}}),
    );
    app.write(
        "function_app.py",
        r#"import asyncio
import os

import azure.functions as func
from azurefunctions.extensions.http.fastapi import (
    PlainTextResponse, Request, StreamingResponse)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="stream/{n:int}", methods=["GET"])
async def stream(req: Request) -> StreamingResponse:
    n = req.path_params["n"]

    async def chunks():
        yield f"first {n}\n".encode()
        while not os.path.exists(os.environ["STREAM_GATE"]):
            await asyncio.sleep(0.01)
        yield b"second\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.route(route="upload", methods=["POST"])
async def upload(req: Request) -> PlainTextResponse:
    n = 0
    async for chunk in req.stream():
        n += len(chunk)
    return PlainTextResponse(str(n))
"#,
    );
    app
}

#[tokio::test]
async fn a_python_fastapi_app_streams_both_ways() {
    let Some(interop) = interop("the Python HTTP streaming test") else {
        return;
    };
    let (build, bin) = python_build();
    let workers = workers_dir(&interop, Some(&build));
    let gate_dir = TempDir::new("stream-gate");
    let gate = gate_dir.path().join("open");
    let app = streaming_python_app(&gate);
    let (host, api) = start(
        fnhost(Some(&bin)),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    let mut conn = TcpStream::connect(api_addr(&api)).await.unwrap();
    conn.write_all(b"GET /api/stream/7 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    read_until(&mut conn, &mut seen, "first 7\n", &host).await;
    assert!(!String::from_utf8_lossy(&seen).contains("second"));
    std::fs::write(&gate, "").unwrap();
    read_until(&mut conn, &mut seen, "second\n", &host).await;
    check_upload(&host, &api, false).await;
}
