//! Trust boundaries: who may attach as a worker.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fnhost::{InvocationInput, Outcome};
use fnhost_e2e::{binary, init_logs, wait_until, Api, TestApp, ADMIN_KEY};
use fnhost_proto::rpc::TypedData;
use serde_json::json;

/// A private copy of a test binary that another user may execute.
struct Tools {
    dir: PathBuf,
}

impl Tools {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("fnhost-tools-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn copy(&self, name: &str) -> PathBuf {
        let to = self.dir.join(name);
        std::fs::copy(binary(name), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    }

    /// A shell wrapper that waits 2 s before starting `worker` as its
    /// child: the worker id is on a command line for all that time.
    fn slow_wrapper(&self, worker: &Path, exec: bool) -> PathBuf {
        let path = self
            .dir
            .join(format!("slow-{}.sh", uuid::Uuid::new_v4().simple()));
        let run = if exec { "exec " } else { "" };
        std::fs::write(
            &path,
            format!("#!/bin/sh\nsleep 2\n{run}\"{}\" \"$@\"\n", worker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for Tools {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `program` as uid/gid 65534 when this test runs as root (as CI
/// does), else as this user: another process, outside the worker's tree,
/// either way.
fn stranger(program: &Path, args: &[&str]) -> tokio::process::Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = if root {
        let mut c = tokio::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program);
        c
    } else {
        tokio::process::Command::new(program)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn output(cmd: &mut tokio::process::Command) -> String {
    let out = cmd.output().await.expect("the hijacker runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hijacker failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn text(s: &str) -> InvocationInput {
    InvocationInput::new(TypedData::string(s))
}

#[tokio::test]
async fn another_user_given_the_live_worker_id_is_refused() {
    init_logs();
    let tools = Tools::new();
    let hijacker = tools.copy("hijacker");
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let status = host.handle().status().await.unwrap();
    let live = status.workers[0].worker_id.clone();
    let grpc = host.grpc_addr().to_string();
    let plain = output(&mut stranger(
        &hijacker,
        &["--grpc", &grpc, "--worker-id", &live],
    ))
    .await;
    assert!(
        plain.starts_with("REFUSED") && plain.contains("PermissionDenied"),
        "{plain}"
    );
    let guessed = output(&mut stranger(
        &hijacker,
        &["--grpc", &grpc, "--worker-id", &live, "--secret", "guess"],
    ))
    .await;
    assert!(guessed.starts_with("REFUSED"), "{guessed}");
    let r = host
        .handle()
        .invoke("echo", text("still mine"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    let s = host.handle().status().await.unwrap();
    assert_eq!(s.refused_streams, 2, "{s:?}");
    assert_eq!(s.protocol_violations, 0, "{s:?}");
    assert_eq!(s.workers[0].worker_id, live, "the worker was not replaced");
    host.shutdown().await;
}

/// The race: the id is on a command line for 2 s before the worker dials;
/// a stranger polling `/proc` dials first with it.
async fn race(worker: &Path, exec: bool) {
    let tools = Tools::new();
    let hijacker = tools.copy("hijacker");
    let wrapper = tools.slow_wrapper(worker, exec);
    let marker = wrapper.display().to_string();
    let attacker = stranger(&hijacker, &["--watch", &marker, "--timeout-ms", "20000"])
        .spawn()
        .expect("the hijacker starts");
    let app = TestApp::new(&wrapper, json!({}));
    let host = app.start(1).await;
    let out = attacker.wait_with_output().await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.starts_with("REFUSED") && said.contains("not from its process"),
        "the stranger was not refused as an impostor: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = host
        .handle()
        .invoke("echo", text("from the real worker"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    assert_eq!(
        r.output.and_then(|d| d.to_bytes()).as_deref(),
        Some(&b"from the real worker"[..])
    );
    let s = host.handle().status().await.unwrap();
    assert_eq!(s.refused_streams, 1, "{s:?}");
    assert_eq!(s.protocol_violations, 0, "{s:?}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_stranger_racing_a_slow_worker_without_a_secret_is_refused() {
    init_logs();
    // The rogue worker (in its well-behaved mode) presents no launch
    // secret, like published workers: the host checks the socket's owner.
    // Started as the wrapper's child, so the descendant check is exercised.
    race(&binary("rogue-worker"), false).await;
}

#[tokio::test]
async fn a_stranger_racing_a_slow_sdk_worker_is_refused() {
    init_logs();
    race(&binary("fnhost-sample-worker"), true).await;
}

#[tokio::test]
async fn keys_reach_neither_user_code_nor_the_event_store() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let seen = api
        .request_with(
            "GET",
            "/api/request?code=query-key-1&x=1",
            "",
            &[("x-functions-key", "header-key-2"), ("x-kept", "yes")],
        )
        .await
        .unwrap();
    assert_eq!(seen.status, 200, "{}", seen.text());
    let text = seen.text();
    assert!(
        !text.contains("query-key-1") && !text.contains("header-key-2"),
        "{text}"
    );
    assert_eq!(seen.json()["query"]["x"], "1", "{text}");
    assert_eq!(seen.json()["headers"]["x-kept"], "yes", "{text}");
    assert!(
        seen.json()["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/request?x=1"),
        "{text}"
    );
    // An admin invoke carries the admin key; the function never sees it.
    let admin = api.invoke("request", "").await.unwrap();
    assert_eq!(admin.status, 200, "{}", admin.text());
    assert!(!admin.text().contains(ADMIN_KEY), "{}", admin.text());
    // Async events keep their input and result in the store: no key there.
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = api
            .request(
                "POST",
                &format!("/admin/functions/request/invoke-async?code={ADMIN_KEY}&n={i}"),
                "body",
                Some(ADMIN_KEY),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json()["requestId"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let path = format!("/admin/async-events/{id}");
        wait_until("the event to finish", Duration::from_secs(20), || async {
            api.admin_get(&path).await.unwrap().json()["status"] == "FINISHED"
        })
        .await;
    }
    let data = app.dir().join(".fnhost-data");
    for file in ["events.db", "events.db-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        let found = bytes
            .windows(ADMIN_KEY.len())
            .any(|w| w == ADMIN_KEY.as_bytes());
        assert!(!found, "{file} holds the admin key");
    }
    host.shutdown().await;
}
