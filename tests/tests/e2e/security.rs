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

/// Polls `/proc` for the worker's launch line, joins its process group
/// (`setpgid` needs only the same session, not the same user), then runs
/// the hijacker against it.
const JOIN_GROUP_THEN_HIJACK: &str = r#"
import os, sys, time
marker, hijacker = sys.argv[1], sys.argv[2]
deadline = time.time() + 20
while time.time() < deadline:
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            words = [w.decode() for w in open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\0')]
        except OSError:
            continue
        if any(marker in w for w in words) and '--workerId' in words:
            value = lambda flag: words[words.index(flag) + 1]
            os.setpgid(0, int(pid))
            os.execv(hijacker, [hijacker, '--grpc', value('--host') + ':' + value('--port'),
                                '--worker-id', value('--workerId')])
    time.sleep(0.001)
sys.exit('no worker launch line appeared')
"#;

/// How the stranger attacks.
#[derive(Clone, Copy)]
enum Attack {
    /// Dials with the worker id it read from `/proc`.
    Dial,
    /// Joins the worker's process group first, then dials.
    JoinGroup,
}

/// The race: the id is on a command line for 2 s before the worker dials;
/// a stranger polling `/proc` dials first with it.
async fn race(worker: &Path, exec: bool, attack: Attack) {
    let tools = Tools::new();
    let hijacker = tools.copy("hijacker");
    let wrapper = tools.slow_wrapper(worker, exec);
    let marker = wrapper.display().to_string();
    let hijacker_arg = hijacker.display().to_string();
    let mut attacker = match attack {
        Attack::Dial => stranger(&hijacker, &["--watch", &marker, "--timeout-ms", "20000"]),
        Attack::JoinGroup => stranger(
            Path::new("/usr/bin/python3"),
            &["-c", JOIN_GROUP_THEN_HIJACK, &marker, &hijacker_arg],
        ),
    };
    let attacker = attacker.spawn().expect("the hijacker starts");
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
    race(&binary("rogue-worker"), false, Attack::Dial).await;
}

#[tokio::test]
async fn a_stranger_that_joins_the_workers_process_group_is_refused() {
    init_logs();
    // Any process in the host's session may join the worker's process
    // group; the kernel's owner of the socket still tells them apart.
    race(&binary("rogue-worker"), false, Attack::JoinGroup).await;
}

#[tokio::test]
async fn a_stranger_racing_a_slow_sdk_worker_is_refused() {
    init_logs();
    race(&binary("fnhost-sample-worker"), true, Attack::Dial).await;
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

/// The sample app with one HTTP function per auth level: `echo`
/// anonymous, `request` with no `authLevel` (Azure's default: function),
/// `fail` function, `sleep` admin.
fn leveled_app() -> TestApp {
    let app = TestApp::sample(json!({}));
    let http = |level: Option<&str>| {
        let mut trigger = json!({"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get", "post"]});
        if let Some(level) = level {
            trigger["authLevel"] = json!(level);
        }
        json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": "$return"}]})
    };
    app.function("request", &http(None));
    app.function("fail", &http(Some("function")));
    app.function("sleep", &http(Some("admin")));
    app
}

async fn first_key(api: &Api, path: &str) -> String {
    let r = api.admin_get(path).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["keys"][0]["value"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn auth_levels_are_enforced_as_azure_defines_them() {
    init_logs();
    let app = leveled_app();
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let function_key = first_key(&api, "/admin/functions/request/keys").await;
    let fail_key = first_key(&api, "/admin/functions/fail/keys").await;
    let host_key = first_key(&api, "/admin/host/keys").await;
    let status = |path: &'static str, key: Option<String>| {
        let api = api.clone();
        async move {
            let headers: Vec<(&str, &str)> = match &key {
                Some(k) => vec![("x-functions-key", k.as_str())],
                None => vec![],
            };
            let r = api.request_with("GET", path, "", &headers).await.unwrap();
            (r.status, r.text())
        }
    };
    // No key: only the anonymous function answers; missing and wrong keys
    // get the same answer.
    assert_eq!(status("/api/echo", None).await.0, 200);
    let (missing, missing_body) = status("/api/request", None).await;
    let (wrong, wrong_body) = status("/api/request", Some("not-a-key-at-all".into())).await;
    assert_eq!((missing, wrong), (401, 401));
    assert_eq!(missing_body, wrong_body);
    assert_eq!(status("/api/sleep?ms=1", None).await.0, 401);
    // A function key opens its own function only, by header or by ?code=.
    assert_eq!(
        status("/api/request", Some(function_key.clone())).await.0,
        200
    );
    let by_query = api
        .request(
            "GET",
            &format!("/api/request?code={function_key}"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_query.status, 200, "{}", by_query.text());
    assert_eq!(status("/api/fail", Some(function_key.clone())).await.0, 401);
    assert_eq!(
        status("/api/sleep?ms=1", Some(function_key.clone()))
            .await
            .0,
        401
    );
    // A host key opens every function-level function, not admin ones.
    assert_eq!(status("/api/request", Some(host_key.clone())).await.0, 200);
    assert_eq!(status("/api/fail", Some(host_key.clone())).await.0, 500);
    assert_eq!(
        status("/api/sleep?ms=1", Some(host_key.clone())).await.0,
        401
    );
    // The admin key opens everything; no function key opens admin routes.
    assert_eq!(
        status("/api/sleep?ms=1", Some(ADMIN_KEY.into())).await.0,
        200
    );
    assert_eq!(status("/api/request", Some(ADMIN_KEY.into())).await.0, 200);
    let admin_by_fn_key = api
        .request("GET", "/admin/host/status", "", Some(&host_key))
        .await
        .unwrap();
    assert_eq!(admin_by_fn_key.status, 401);
    let admin_by_code = api
        .request(
            "GET",
            &format!("/admin/host/status?code={ADMIN_KEY}"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(admin_by_code.status, 200);
    assert!(fail_key != function_key && fail_key != host_key);
    host.shutdown().await;
}

#[tokio::test]
async fn callers_without_the_admin_key_see_no_internals_of_a_failure() {
    init_logs();
    let app = leveled_app();
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let fail_key = first_key(&api, "/admin/functions/fail/keys").await;
    let public = api
        .request("POST", "/api/fail", "boom-secret-7731", Some(&fail_key))
        .await
        .unwrap();
    assert_eq!(public.status, 500);
    assert_eq!(public.header("x-fnhost-outcome"), "failed");
    let body = public.json();
    assert_eq!(body["error"]["message"], "the function failed", "{body}");
    assert_eq!(body["error"]["outcome"], "failed", "{body}");
    assert!(body["error"]["invocationId"].is_string(), "{body}");
    let text = public.text();
    for internal in ["boom-secret-7731", "workerId", "stackTrace", "panicked"] {
        assert!(!text.contains(internal), "{internal} leaked: {text}");
    }
    // The admin key on the same route, and the admin invoke, get it all.
    let admin = api
        .request("POST", "/api/fail", "boom-secret-7731", Some(ADMIN_KEY))
        .await
        .unwrap();
    assert!(
        admin.text().contains("boom-secret-7731"),
        "{}",
        admin.text()
    );
    assert!(admin.json()["error"]["workerId"].is_string());
    host.shutdown().await;
}

#[tokio::test]
async fn function_and_host_keys_are_managed_through_the_admin_api() {
    init_logs();
    let app = leveled_app();
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let put = |path: String, body: &'static str, key: &'static str| {
        let api = api.clone();
        async move { api.request("PUT", &path, body, Some(key)).await.unwrap() }
    };
    let chosen = put(
        "/admin/functions/request/keys/ci".into(),
        r#"{"value": "chosen-key-value-0001"}"#,
        ADMIN_KEY,
    )
    .await;
    assert_eq!(chosen.status, 201, "{}", chosen.text());
    assert_eq!(chosen.json()["value"], "chosen-key-value-0001");
    let generated = put("/admin/host/keys/deploy".into(), "", ADMIN_KEY).await;
    assert_eq!(generated.status, 201, "{}", generated.text());
    let host_key = generated.json()["value"].as_str().unwrap().to_string();
    assert!(host_key.len() >= 32);
    let listed = api
        .admin_get("/admin/functions/request/keys")
        .await
        .unwrap()
        .json();
    let names: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci", "default"], "{listed}");
    let call = |key: String| {
        let api = api.clone();
        async move { api.get_status("/api/request", Some(&key)).await }
    };
    assert_eq!(call("chosen-key-value-0001".into()).await, 200);
    assert_eq!(call(host_key.clone()).await, 200);
    // Replaced: 200; bad input: 400 naming it; unknown function: 404.
    let again = put(
        "/admin/functions/request/keys/ci".into(),
        r#"{"value": "chosen-key-value-0002"}"#,
        ADMIN_KEY,
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(call("chosen-key-value-0001".into()).await, 401);
    let short = put(
        "/admin/host/keys/x".into(),
        r#"{"value": "short"}"#,
        ADMIN_KEY,
    )
    .await;
    assert_eq!(short.status, 400);
    assert!(short.text().contains("16 characters"), "{}", short.text());
    let master = put("/admin/host/keys/master".into(), "", ADMIN_KEY).await;
    assert_eq!(master.status, 400);
    let unknown = api.admin_get("/admin/functions/nope/keys").await.unwrap();
    assert_eq!(unknown.status, 404);
    // Only the admin key manages keys.
    let by_host_key = api
        .request("GET", "/admin/host/keys", "", Some(&host_key))
        .await
        .unwrap();
    assert_eq!(by_host_key.status, 401);
    // Deleted keys stop working at once; deleting twice is a 404.
    let del = api
        .request("DELETE", "/admin/host/keys/deploy", "", Some(ADMIN_KEY))
        .await
        .unwrap();
    assert_eq!(del.status, 204);
    assert_eq!(call(host_key.clone()).await, 401);
    let del = api
        .request("DELETE", "/admin/host/keys/deploy", "", Some(ADMIN_KEY))
        .await
        .unwrap();
    assert_eq!(del.status, 404);
    // Kept in the data directory, owner-only, and reloaded on restart.
    let store = app.dir().join(".fnhost-data").join("keys.json");
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );
    host.shutdown().await;
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api
        .request("GET", "/api/request", "", Some("chosen-key-value-0002"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    host.shutdown().await;
}

/// POSTs `len` bytes to `/api/echo` on a host whose messages are limited
/// to 1 MiB.
async fn post_big(api: &Api, len: usize) -> fnhost_e2e::HttpReply {
    api.request("POST", "/api/echo", vec![b'a'; len], None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_request_that_would_not_fit_a_worker_message_is_refused_with_413_and_breaks_nothing() {
    init_logs();
    let limits = json!({"workers": {"maxMessageBytes": 1048576, "processCount": 1}});
    // The rogue worker (well-behaved mode) does not advertise
    // RpcHttpBodyOnly, so it is sent the body twice (body and rawBody).
    let app = TestApp::new(&binary("rogue-worker"), limits.clone());
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    for _ in 0..12 {
        let r = post_big(&api, 600 * 1024).await;
        assert_eq!(r.status, 413, "{}", r.text());
        assert!(r.text().contains("maxMessageBytes"), "{}", r.text());
    }
    let ok = post_big(&api, 1024).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let s = host.handle().status().await.unwrap();
    assert_eq!(s.state, fnhost::status::HostState::Running, "{s:?}");
    assert_eq!(s.slots[0].recent_restarts, 0, "no instance broke: {s:?}");
    host.shutdown().await;

    // A worker that reads `body` only is sent it once: the same request fits.
    let app = TestApp::sample(limits);
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = post_big(&api, 600 * 1024).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body.len(), 600 * 1024);
    // Async accepts are checked the same way, before they are stored.
    let r = api
        .request(
            "POST",
            "/admin/functions/echo/invoke-async",
            vec![b'a'; 1000 * 1024],
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    host.shutdown().await;
}

#[tokio::test]
async fn a_body_trickled_in_is_cut_at_the_body_deadline_and_keyless_callers_are_refused_before_it()
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_logs();
    let app = leveled_app();
    app.write(
        "host.json",
        &json!({"http": {"bodyReadTimeout": "00:00:01"}}),
    );
    let host = app.start(1).await;
    let head = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n")
    };
    // An anonymous function: the body must arrive within the deadline.
    let mut conn = tokio::net::TcpStream::connect(host.http_addr())
        .await
        .unwrap();
    conn.write_all(head("/api/echo").as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            n = conn.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                // One byte at a time, never the whole body.
                let _ = conn.write_all(b"x").await;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never cut");
        if String::from_utf8_lossy(&reply).contains("bodyReadTimeout") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A function-level function answers a keyless caller at once, with
    // no body read at all.
    let mut conn = tokio::net::TcpStream::connect(host.http_addr())
        .await
        .unwrap();
    conn.write_all(head("/api/request").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_millis(500), conn.read(&mut buf))
        .await
        .expect("answered before any body byte")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    host.shutdown().await;
}
