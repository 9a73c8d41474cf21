//! The Python SDK as a user installs it: `python -m build` makes an sdist
//! and, from it, a wheel of `sample-workers/python` (with the build backend
//! pinned in the SDK's venv, `--no-isolation`); a fresh virtual environment
//! outside the repository installs the wheel (its dependencies from PyPI or
//! pip's cache, held to the SDK's pins); and the real `fnhost start` serves
//! a copy of `sample-workers/python-app` whose `worker.config.json` names
//! that environment's `fnhost-python-worker` command. Echo answers over
//! HTTP, a timeout's cancel reaches the handler, logs come back, and each
//! invocation sees its attempt and deadline.
//!
//! Needs the SDK's venv: run `sample-workers/python/setup.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnhost_e2e::{binary, init_logs, repo_root, start_host, Api, TempDir, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

use crate::async_events::{logs, submit, wait_status};
use crate::binary::{signal, wait_exit};
use crate::languages::manual_with_timeout;

fn sdk_dir() -> PathBuf {
    repo_root().join("sample-workers/python")
}

/// The SDK venv's interpreter, which has the pinned build backend.
fn dev_python() -> PathBuf {
    let python = sdk_dir().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Python SDK's venv is missing ({}): run sample-workers/python/setup.sh",
        python.display()
    );
    python
}

/// Runs `cmd`, failing with its output unless it succeeds.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one file in `dir` whose name ends with `suffix`.
fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one *{suffix} in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

/// Builds the sdist and the wheel into `dist`; the wheel.
fn build_wheel(dist: &Path) -> PathBuf {
    run(
        "python -m build",
        Command::new(dev_python())
            .args(["-m", "build", "--no-isolation", "--outdir"])
            .arg(dist)
            .arg(sdk_dir()),
    );
    only_file(dist, ".tar.gz");
    only_file(dist, "-py3-none-any.whl")
}

/// A fresh venv at `venv` with `wheel` installed; its `fnhost-python-worker`.
fn install(wheel: &Path, venv: &Path) -> PathBuf {
    run(
        "python -m venv",
        Command::new(dev_python()).args(["-m", "venv"]).arg(venv),
    );
    let python = venv.join("bin/python");
    run(
        "pip install the wheel",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            // The SDK's pins: what its tests ran with, and in pip's cache
            // once setup.sh ran.
            .arg("-c")
            .arg(sdk_dir().join("requirements.txt"))
            .arg(wheel),
    );
    // From a neutral directory, the package is the installed one.
    let file = run(
        "import fnhost_worker",
        Command::new(&python)
            .args(["-c", "import fnhost_worker; print(fnhost_worker.__file__)"])
            .current_dir("/")
            .env_remove("PYTHONPATH"),
    );
    assert!(
        Path::new(file.trim()).starts_with(venv),
        "imported from {file}"
    );
    let command = venv.join("bin/fnhost-python-worker");
    assert!(
        command.is_file(),
        "the wheel installs {}",
        command.display()
    );
    command
}

/// The function timeout of the app, and of `deadline` in it.
const TIMEOUT_MS: u64 = 20_000;

fn host_json() -> Value {
    json!({
        "version": "2.0",
        "functionTimeout": "00:00:20",
        "workers": {"processCount": 1, "cancelGracePeriod": "00:00:05"},
        "asyncEvents": {"maxRetryAttempts": 2, "retryBackoff": "00:00:00.050"}
    })
}

/// Polls until the host's worker is ready; panics with the host's log.
async fn wait_ready(api: &Api, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(status) = api.status().await {
            if status["workers"][0]["state"] == "ready" {
                assert_eq!(status["workers"][0]["loadErrors"], json!({}), "{status}");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the worker was not ready within 20 s; fnhost's log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `remainingMs` is about the function timeout: a little went on dispatch.
fn assert_about_the_timeout_left(seen: &Value) {
    let left = seen["remainingMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("no deadline: {seen}"));
    assert!(
        (TIMEOUT_MS - 5_000..=TIMEOUT_MS).contains(&left),
        "{left} ms left of a {TIMEOUT_MS} ms timeout: {seen}"
    );
}

#[tokio::test]
async fn python_wheel_installed_in_a_fresh_venv_serves_the_sample_app_under_fnhost_start() {
    init_logs();
    let work = TempDir::new("fnhost-python-package").unwrap();
    assert!(
        !work.path().starts_with(repo_root()),
        "outside the repository"
    );
    let started = Instant::now();
    let wheel = build_wheel(&work.path().join("dist"));
    let command = install(&wheel, &work.path().join("venv"));
    eprintln!(
        "python_package: built and installed {} in {:.1} s",
        wheel.file_name().unwrap().to_string_lossy(),
        started.elapsed().as_secs_f64()
    );

    let app = TestApp::copy_of_sample("python-app", host_json(), |w| {
        w["description"]["defaultExecutablePath"] = json!(command.display().to_string());
    });
    manual_with_timeout(&app, "sleep", "00:00:00.500");
    let log = work.path().join("fnhost.log");
    let mut fnhost = Command::new(binary("fnhost"));
    fnhost
        .env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .env("FNHOST_LOG", "warn");
    let (mut host, addr, _) = start_host(
        fnhost,
        app.dir(),
        &[],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let api = Api::new(addr);
    wait_ready(&api, &log).await;

    // The same text back, on the trigger route.
    let r = api
        .request_with(
            "POST",
            "/api/echo",
            "hello from the wheel",
            &[("content-type", "text/plain")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from the wheel");
    assert_eq!(r.header("content-type"), "text/plain");

    // The timeout's cancel reaches the async handler, which stops at once.
    let timed = Instant::now();
    let r = api.invoke("sleep", "30000").await.unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.header("x-fnhost-outcome"), "timed-out");
    let body = r.json();
    assert_eq!(body["error"]["reason"], "timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the worker cancelled it"),
        "{body}"
    );
    assert!(
        timed.elapsed() < Duration::from_secs(4),
        "{:?}",
        timed.elapsed()
    );

    // A synchronous invocation is attempt 1, its deadline the timeout away.
    let r = api.invoke("deadline", "").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["attempt"], 1, "{seen}");
    assert_about_the_timeout_left(&seen);

    // An async event's log lines come back with it.
    let id = submit(&api, "log", "x").await;
    let e = wait_status(&api, &id, "FINISHED").await;
    assert_eq!(e["result"], "logged", "{e}");
    let lines = logs(&api, &id).await;
    for line in ["info from log function", "warning from log function"] {
        assert!(lines.iter().any(|l| l == line), "{line}: {lines:?}");
    }

    // An event that fails its first attempt knows its second is the second.
    let id = submit(&api, "deadline", r#"{"failBefore": 2}"#).await;
    let e = wait_status(&api, &id, "FINISHED").await;
    assert_eq!(e["attempts"], 2, "{e}");
    let seen: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    assert_eq!(seen["attempt"], 2, "{seen}");
    assert_about_the_timeout_left(&seen);

    let status = api.status().await.unwrap();
    assert_eq!(
        status["workers"].as_array().unwrap().len(),
        1,
        "no instance was replaced: {status}"
    );
    signal(&host, "-TERM");
    assert!(wait_exit(&mut host, Duration::from_secs(15)).success());
}
