//! The Node SDK as the npm package `fnhost-worker`: `npm pack` makes a
//! tarball that installs into an app outside the repository, and the real
//! `fnhost` binary serves that app with it (an HTTP echo, a timeout the
//! handler honours through `context.signal`, `console.warn` as the
//! invocation's Warning line, the deadline and attempt). Also, on the
//! library host with the in-repo sample app: the SDK's console bridge and
//! `context.deadline` / `context.attempt`.
//!
//! Needs Node.js and npm on `PATH` and `sample-workers/node/setup.sh` run
//! (the install prefers npm's cache; what it lacks comes from the registry).
//! The tests fail, never skip, without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fnhost::Outcome;
use fnhost_e2e::{
    binary, copy_dir, init_logs, repo_root, start_host, text, wait_until, Api, HostProcess,
    TempDir, ADMIN_KEY,
};
use serde_json::{json, Value};

use crate::languages::Lang;

/// Runs `npm ARGS` in `dir`; its stdout, or a panic with its stderr.
fn npm(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("`npm` did not run ({e}): install Node.js 18+ with npm"));
    assert!(
        out.status.success(),
        "npm {} in {} failed: {}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("npm prints UTF-8")
}

/// `npm pack` of the SDK into `dest`; the tarball's path, after checking
/// it ships the code, the declarations and the protos, and nothing else.
fn pack_sdk(dest: &Path) -> PathBuf {
    let sdk = repo_root().join("sample-workers/node");
    let dest_arg = dest.to_str().expect("a UTF-8 temporary directory");
    let out = npm(
        &sdk,
        &[
            "pack",
            "--json",
            "--loglevel=error",
            "--pack-destination",
            dest_arg,
        ],
    );
    let report: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("npm pack --json printed no JSON ({e}): {out}"));
    let files: Vec<&str> = report[0]["files"]
        .as_array()
        .expect("npm pack lists its files")
        .iter()
        .map(|f| f["path"].as_str().expect("a file path"))
        .collect();
    for shipped in [
        "package.json",
        "lib/index.js",
        "types/index.d.ts",
        "protos/FunctionRpc.proto",
        "protos/shared/NullableTypes.proto",
        "protos/identity/ClaimsIdentityRpc.proto",
    ] {
        assert!(files.contains(&shipped), "{shipped} is packed: {files:?}");
    }
    assert!(
        files.iter().all(|f| ["lib/", "types/", "protos/"]
            .iter()
            .any(|dir| f.starts_with(dir))
            || ["package.json", "README.md"].contains(f)),
        "only the package's own files are packed: {files:?}"
    );
    dest.join(
        report[0]["filename"]
            .as_str()
            .expect("npm pack names its tarball"),
    )
}

/// A copy of `sample-workers/node-app` in a temporary directory outside the
/// repository, with `host_json`, and `fnhost-worker` installed from
/// `tarball` as a user installs it. The sample's own `package.json` links the
/// SDK in the repository, so the copy gets a fresh one, as `npm init` makes.
fn installed_app(tarball: &Path, host_json: &Value) -> TempDir {
    let app = TempDir::new("fnhost-node-package-app").expect("create the app dir");
    assert!(
        !app.path().starts_with(repo_root()),
        "{} is outside the repository",
        app.path().display()
    );
    copy_dir(&repo_root().join("sample-workers/node-app"), app.path()).expect("copy the sample");
    for linked in ["package.json", "package-lock.json"] {
        std::fs::remove_file(app.path().join(linked)).expect("the sample has it");
    }
    // The every-minute timer would add an invocation to a run that crosses a minute.
    std::fs::remove_dir_all(app.path().join("tick")).expect("the sample has a timer");
    app.write(
        "package.json",
        &json!({"name": "installed-node-app", "version": "1.0.0", "private": true}),
    )
    .unwrap();
    app.write("host.json", host_json).unwrap();
    npm(
        app.path(),
        &[
            "install",
            tarball.to_str().expect("a UTF-8 tarball path"),
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
    );
    let installed = app.path().join("node_modules/fnhost-worker");
    let meta = std::fs::symlink_metadata(&installed).expect("fnhost-worker is installed");
    assert!(
        meta.is_dir(),
        "an unpacked copy, not a link into the repository"
    );
    assert!(installed.join("protos/FunctionRpc.proto").is_file());
    app
}

/// Sends SIGTERM to the host and waits (10 s at most) for it to exit 0.
fn stop(mut host: HostProcess) {
    let ok = Command::new("kill")
        .args(["-TERM", &host.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = host.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "fnhost did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "fnhost exited with {status}");
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

#[tokio::test]
async fn the_packed_sdk_installed_outside_the_repository_serves_the_sample_app_on_fnhost_start() {
    init_logs();
    let scratch = TempDir::new("fnhost-node-package").unwrap();
    let tarball = pack_sdk(scratch.path());
    let app = installed_app(
        &tarball,
        &json!({
            "version": "2.0",
            "functionTimeout": "00:00:01",
            "workers": {"processCount": 1, "cancelGracePeriod": "00:00:05"}
        }),
    );
    // The app's worker.config.json stays as shipped: `node` from PATH.
    let log = scratch.path().join("fnhost.stderr");
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .env("FNHOST_LOG", "warn");
    let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
    let (host, addr, _) = start_host(cmd, app.path(), &[], stderr);
    let api = Api::new(addr);
    wait_until("a worker instance", Duration::from_secs(20), || async {
        api.status()
            .await
            .is_ok_and(|s| s["workers"].as_array().is_some_and(|w| !w.is_empty()))
    })
    .await;

    let r = api
        .request("POST", "/api/echo", "hello from the package", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from the package");

    // The timeout's cancel reaches the handler through context.signal.
    let started = Instant::now();
    let r = api.invoke("sleep", "30000").await.unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "timed-out");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("the worker cancelled it"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let r = api.invoke("console", "").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "logged"));
    let id = r.header("x-fnhost-invocation-id").to_string();
    let warn_line = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .find(|l| l.contains("console.warn from console function"))
            .map(str::to_string)
    };
    wait_until(
        "the console.warn line in the host's log",
        Duration::from_secs(5),
        || {
            let found = warn_line().is_some();
            async move { found }
        },
    )
    .await;
    let line = warn_line().unwrap();
    assert!(
        line.contains(" WARN fnhost::function:")
            && line.contains(&format!("invocation={id}"))
            && line.contains("function=console"),
        "{line}"
    );

    let before = now_ms();
    let r = api.invoke("deadline", "").await.unwrap();
    let after = now_ms();
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["attempt"], 1, "{body}");
    let deadline = body["deadline"].as_u64().expect("a deadline");
    assert!(
        (before + 1000..=after + 1000).contains(&deadline),
        "deadline {deadline} is the 1 s timeout from dispatch, within [{before}, {after}] + 1000"
    );

    stop(host);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains("console.log from console function"),
        "an Information line is below FNHOST_LOG=warn: {log}"
    );
}

#[tokio::test]
async fn node_console_calls_in_a_handler_are_its_log_lines_at_their_levels() {
    init_logs();
    let app = Lang::Node.app(json!({}));
    let host = app.start(1).await;
    let r = host.handle().invoke("console", text("")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let lines: Vec<(&str, &str)> = r
        .logs
        .iter()
        .map(|l| (l.level.as_str(), l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("Information", "console.log from console function"),
            ("Debug", "console.debug from console function"),
            ("Warning", "console.warn from console function"),
            ("Error", "console.error from console function"),
        ]
    );
    assert!(
        r.logs.iter().all(|l| l.category == "console"),
        "{:?}",
        r.logs
    );
    host.shutdown().await;
}

#[tokio::test]
async fn node_context_has_the_deadline_and_attempt_the_host_sent() {
    init_logs();
    let app = Lang::Node.app(json!({"functionTimeout": "00:00:10"}));
    let host = app.start(1).await;
    let h = host.handle();
    let result = |r: fnhost::InvocationResult| -> Value {
        assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
        let bytes = r.output.and_then(|o| o.to_bytes()).expect("an output");
        serde_json::from_slice(&bytes).expect("JSON output")
    };
    let before = now_ms();
    let first = result(h.invoke("deadline", text("")).await.unwrap());
    let after = now_ms();
    assert_eq!(first["attempt"], 1, "{first}");
    let deadline = first["deadline"].as_u64().expect("a deadline");
    assert!(
        (before + 10_000..=after + 10_000).contains(&deadline),
        "deadline {deadline} is the 10 s timeout from dispatch, within [{before}, {after}] + 10000"
    );
    let retry = result(h.invoke("deadline", text("").attempt(3)).await.unwrap());
    assert_eq!(retry["attempt"], 3, "{retry}");
    host.shutdown().await;
}
