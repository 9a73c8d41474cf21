//! The `fnhost` binary: configuration errors, the admin key, signals.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnhost_e2e::{binary, process_running, start_host, Api, HostProcess, TestApp, ADMIN_KEY};
use serde_json::json;

fn fnhost() -> Command {
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env_remove("FNHOST_ADMIN_KEY").env("FNHOST_LOG", "warn");
    cmd
}

/// Starts `fnhost start` and reads its HTTP address from stdout.
fn start(app: &TestApp, extra: &[&str]) -> (HostProcess, std::net::SocketAddr, Vec<String>) {
    start_with(fnhost(), app, extra)
}

/// [`start`] with a prepared command (e.g. one under a shell's `ulimit`).
fn start_with(
    cmd: Command,
    app: &TestApp,
    extra: &[&str],
) -> (HostProcess, std::net::SocketAddr, Vec<String>) {
    start_host(cmd, app.dir(), extra, Stdio::null())
}

/// The process ids of the host's workers, from its status.
async fn worker_pids(api: &Api) -> Vec<u64> {
    let status = api.status().await.unwrap();
    status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["pid"].as_u64())
        .collect()
}

/// The host's exit status, within `limit`.
pub(super) fn wait_exit(child: &mut HostProcess, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "fnhost did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` (`-TERM`, `-INT`, ...) to the host.
pub(super) fn signal(child: &HostProcess, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn bad_configuration_is_named_and_exits_non_zero() {
    let app = TestApp::sample(json!({"functionTimeout": "five minutes"}));
    let out = fnhost().arg("start").arg(app.dir()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host.json") && err.contains("`functionTimeout`"),
        "{err}"
    );

    let app = TestApp::sample(json!({}));
    app.function(
        "echo",
        &json!({"bindings": [{"type": "httpTrigger", "direction": "in"}]}),
    );
    let out = fnhost().arg("start").arg(app.dir()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("echo/function.json") && err.contains("`bindings[0].name`"),
        "{err}"
    );

    // A field of the wrong type is named as such, not as missing.
    let app = TestApp::sample(json!({}));
    app.function("echo", &json!({"bindings": "x"}));
    let out = fnhost().arg("start").arg(app.dir()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("echo/function.json")
            && err.contains("`bindings`")
            && err.contains("must be an array")
            && !err.contains("missing"),
        "{err}"
    );

    let app = TestApp::new(std::path::Path::new("./no-such-worker"), json!({}));
    let out = fnhost().arg("start").arg(app.dir()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("worker.config.json") && err.contains("defaultExecutablePath"),
        "{err}"
    );

    let out = fnhost().args(["start", "/no/such/app"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/app"));
}

#[test]
fn an_event_store_that_cannot_be_opened_exits_4_naming_the_store_before_any_worker_starts() {
    let app = TestApp::sample(json!({}));
    let as_directory = app.dir().join("data-dir");
    std::fs::create_dir_all(as_directory.join("events.db")).unwrap();
    let not_a_database = app.dir().join("data-garbage");
    std::fs::create_dir_all(&not_a_database).unwrap();
    std::fs::write(
        not_a_database.join("events.db"),
        "this is not an SQLite file, not even close".repeat(100),
    )
    .unwrap();
    for data in [as_directory, not_a_database] {
        let out = fnhost()
            .env("FNHOST_LOG", "info")
            .arg("start")
            .arg(app.dir())
            .args(["--port", "0", "--admin-key", ADMIN_KEY, "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{}: {err}", data.display());
        let db = data.join("events.db").display().to_string();
        assert!(
            err.contains("async event store") && err.contains(&db),
            "{}: {err}",
            data.display()
        );
        assert!(!err.contains("worker launched"), "{err}");
    }
}

#[test]
fn on_a_store_that_cannot_grow_the_host_starts_sync_works_and_async_accepts_answer_503() {
    let app = TestApp::sample(json!({}));
    let data = app.dir().join("data");
    let data_arg = data.display().to_string();
    let args = ["--data-dir", data_arg.as_str(), "--admin-key", ADMIN_KEY];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let accept = |api: &Api, body: &'static str| {
        let api = api.clone();
        rt.block_on(async move {
            api.request(
                "POST",
                "/admin/functions/echo/invoke-async",
                body,
                Some(ADMIN_KEY),
            )
            .await
            .unwrap()
        })
    };
    let (mut child, addr, _) = start(&app, &args);
    let api = Api::new(addr);
    let before = accept(&api, "before").json()["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/admin/async-events/{before}");
    rt.block_on(fnhost_e2e::wait_until(
        "the event to finish",
        Duration::from_secs(10),
        || async { api.admin_get(&path).await.unwrap().json()["status"] == "FINISHED" },
    ));
    let workers = rt.block_on(worker_pids(&api));
    // Killed, not stopped: a clean close checkpoints the WAL into events.db
    // and deletes it and the shared-memory file, and a fresh WAL would have
    // room to grow under the limit below. Nothing is left to recover.
    signal(&child, "-KILL");
    wait_exit(&mut child, Duration::from_secs(5));
    rt.block_on(fnhost_e2e::wait_until(
        "the killed host's workers to exit",
        Duration::from_secs(10),
        || async { !workers.iter().any(|&p| process_running(p)) },
    ));

    // RLIMIT_FSIZE at the largest file's size: no store file can grow (the
    // WAL is not reused before a checkpoint, which SQLite runs only at 1000
    // pages), as on a full disk; SIGXFSZ ignored, so a write fails (EFBIG)
    // instead of killing the host.
    assert!(data.join("events.db-wal").is_file());
    let limit = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "trap '' XFSZ; exec prlimit --fsize=\"$0\" \"$@\""])
        .arg(limit.to_string())
        .arg(binary("fnhost"))
        .env_remove("FNHOST_ADMIN_KEY")
        .env("FNHOST_LOG", "warn");
    let (mut child, addr, _) = start_with(cmd, &app, &args);
    let api = Api::new(addr);
    let refused = accept(&api, "after");
    assert_eq!(refused.status, 503, "{}", refused.text());
    let message = refused.json()["error"]["message"].to_string();
    assert!(
        message.contains("not accepted") && message.contains("event store"),
        "{message}"
    );
    let sync = rt.block_on(api.invoke("echo", "sync")).unwrap();
    assert_eq!((sync.status, sync.text()), (200, "sync".to_string()));
    // Reads still answer: the event accepted before is listed.
    let list = rt
        .block_on(api.admin_get("/admin/async-events"))
        .unwrap()
        .json();
    assert_eq!(list["totalCount"], 1, "{list}");
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn the_admin_key_is_generated_once_stored_owner_only_and_printed_once() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::sample(json!({}));
    let data = app.dir().join("data");
    let data_arg = data.display().to_string();
    let (mut child, _, lines) = start(&app, &["--data-dir", &data_arg]);
    let printed = lines
        .iter()
        .find(|l| l.contains("generated an admin key"))
        .expect("key printed");
    let key = std::fs::read_to_string(data.join("admin.key")).unwrap();
    assert!(printed.ends_with(key.trim()), "{printed}");
    let mode = std::fs::metadata(data.join("admin.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());

    let (mut child, _, lines) = start(&app, &["--data-dir", &data_arg]);
    assert!(!lines.iter().any(|l| l.contains("generated")), "{lines:?}");
    signal(&child, "-INT");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn sigterm_with_invocations_in_flight_ends_them_and_exits_zero_within_the_bound() {
    let app = TestApp::sample(json!({
        "workers": {"cancelGracePeriod": "00:00:01", "terminateGracePeriod": "00:00:01"}
    }));
    let (mut child, addr, _) = start(&app, &["--admin-key", ADMIN_KEY]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(addr);
    let (sleep, spin, pids) = rt.block_on(async {
        let sleep = tokio::spawn({
            let api = api.clone();
            async move { api.invoke("sleep", "60000").await.unwrap() }
        });
        let spin = tokio::spawn({
            let api = api.clone();
            async move { api.invoke("spin", "60000").await.unwrap() }
        });
        fnhost_e2e::wait_until(
            "two invocations in flight",
            Duration::from_secs(10),
            || async { api.status().await.unwrap()["inFlight"] == 2 },
        )
        .await;
        (sleep, spin, worker_pids(&api).await)
    });
    let started = Instant::now();
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(8));
    assert!(status.success(), "{status:?}");
    // Cancel grace (1 s) + terminate grace (1 s) + margin.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let (sleep, spin) = rt.block_on(async { (sleep.await.unwrap(), spin.await.unwrap()) });
    assert_eq!(
        sleep.header("x-fnhost-outcome"),
        "cancelled",
        "{}",
        sleep.text()
    );
    assert_eq!(sleep.status, 503);
    assert_eq!(sleep.json()["error"]["reason"], "host-shutdown");
    assert_eq!(spin.header("x-fnhost-outcome"), "killed", "{}", spin.text());
    assert!(!pids.is_empty());
    for pid in pids {
        assert!(!process_running(pid), "worker {pid} is still running");
    }
}

fn cli(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    fnhost()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

#[test]
fn the_cli_invokes_and_manages_async_events_on_a_running_host() {
    let app = TestApp::sample(json!({}));
    let data = app.dir().join("data");
    let data_arg = data.display().to_string();
    let (mut child, _, _) = start(&app, &["--data-dir", &data_arg]);

    let out = cli(&data, &["invoke", "echo", "--data", "hello"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");

    let out = cli(&data, &["invoke", "fail", "--data", "x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failed"),
        "{out:?}"
    );

    let out = cli(&data, &["invoke", "echo", "--async", "--data", "later"]);
    assert!(out.status.success(), "{out:?}");
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cli(&data, &["events", "status", &id, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["status"] == "FINISHED" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = cli(&data, &["events", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&id) && table.contains("FINISHED"), "{table}");
    let out = cli(&data, &["events", "logs", &id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Invoke Start"),
        "{out:?}"
    );
    let out = cli(&data, &["events", "terminate", &id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already completed"),
        "{out:?}"
    );
    let out = cli(&data, &["events", "list", "--limit", "101"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`limit`"),
        "{out:?}"
    );

    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn kill_9_loses_no_event_and_a_restart_accounts_for_every_one() {
    let app = TestApp::sample(
        json!({"asyncEvents": {"maxConcurrency": 1, "retryBackoff": "00:00:00.050"}}),
    );
    let data = app.dir().join("data");
    let data_arg = data.display().to_string();
    let args = ["--data-dir", data_arg.as_str(), "--admin-key", ADMIN_KEY];
    let (mut child, addr, _) = start(&app, &args);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(addr);
    let (ids, worker_pids) = rt.block_on(async {
        let mut ids = Vec::new();
        // The first event must still run when the host is killed, however
        // slowly the other three are accepted: it sleeps far longer.
        for ms in ["3000", "400", "400", "400"] {
            let r = api
                .request(
                    "POST",
                    "/admin/functions/sleep/invoke-async",
                    ms,
                    Some(ADMIN_KEY),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 202);
            ids.push(r.json()["requestId"].as_str().unwrap().to_string());
        }
        let first = format!("/admin/async-events/{}", ids[0]);
        fnhost_e2e::wait_until(
            "the first event running",
            Duration::from_secs(10),
            || async {
                api.status().await.unwrap()["inFlight"] == 1
                    && api.admin_get(&first).await.unwrap().json()["status"] == "RUNNING"
            },
        )
        .await;
        (ids, worker_pids(&api).await)
    });
    signal(&child, "-KILL");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(!status.success());
    // Its workers see their stream end and exit; wait for that before the restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker_pids.iter().any(|&p| process_running(p)) {
        assert!(Instant::now() < deadline, "orphaned workers did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (mut child, addr, _) = start(&app, &args);
    let api = Api::new(addr);
    rt.block_on(async {
        for id in &ids {
            let path = format!("/admin/async-events/{id}");
            fnhost_e2e::wait_until(
                "every event to finish after the restart",
                Duration::from_secs(20),
                || async { api.admin_get(&path).await.unwrap().json()["status"] == "FINISHED" },
            )
            .await;
        }
        let first = api
            .admin_get(&format!("/admin/async-events/{}/logs", ids[0]))
            .await
            .unwrap()
            .text();
        assert!(
            first.contains("Host restarted while attempt 1 was running"),
            "{first}"
        );
        let e = api
            .admin_get(&format!("/admin/async-events/{}", ids[0]))
            .await
            .unwrap()
            .json();
        assert_eq!(e["attempts"], 2, "{e}");
    });
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_owner_only() {
    let app = TestApp::sample(json!({}));
    let data = app.dir().join("data");
    let data_arg = data.display().to_string();
    let (mut child, addr, _) = start(&app, &["--data-dir", &data_arg]);
    let key = std::fs::read_to_string(data.join("admin.key")).unwrap();
    let api = Api::new(addr);
    let r = api
        .request(
            "POST",
            "/admin/functions/echo/invoke-async",
            "x",
            Some(key.trim()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(mode_of(&data), 0o700);
    for file in [
        "admin.key",
        "endpoint",
        "events.db",
        "events.db-wal",
        "events.db-shm",
    ] {
        assert_eq!(mode_of(&data.join(file)), 0o600, "{file}");
    }
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn a_data_directory_other_users_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::sample(json!({}));
    let data = app.dir().join("shared-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = fnhost()
        .arg("start")
        .arg(app.dir())
        .args(["--port", "0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("writable by other users"), "{err}");
    assert!(
        std::fs::read_dir(&data).unwrap().next().is_none(),
        "nothing was written into it"
    );
}

/// Starts `fnhost start` with its log going to a file; returns the file.
fn start_logged(
    app: &TestApp,
    extra: &[&str],
) -> (HostProcess, std::net::SocketAddr, std::path::PathBuf) {
    let log = app.dir().join(format!("host-{}.log", uuid::Uuid::new_v4()));
    let child = fnhost()
        .arg("start")
        .arg(app.dir())
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = HostProcess(child);
    let lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("fnhost: listening on http://") {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (child, addr, log);
        }
    }
    panic!(
        "fnhost exited before listening: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[tokio::test]
async fn the_admin_key_comes_from_a_file_and_a_key_on_the_command_line_is_warned_about() {
    let app = TestApp::sample(json!({}));
    let key_file = app.dir().join("operator.key");
    std::fs::write(&key_file, "from-a-file\n").unwrap();
    let file_arg = key_file.display().to_string();
    let (mut child, addr, log) = start_logged(&app, &["--admin-key-file", &file_arg]);
    let api = Api::new(addr);
    let ok = api
        .request("GET", "/admin/host/status", "", Some("from-a-file"))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains("readable by every local user"), "{said}");

    let (mut child, _, log) = start_logged(&app, &["--admin-key", "on-argv"]);
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("--admin-key") && said.contains("readable by every local user"),
        "{said}"
    );
}

/// CPU time (user + system) process `pid` has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test]
async fn with_file_descriptors_exhausted_the_host_backs_off_and_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const FD_LIMIT: usize = 128;
    let app = TestApp::sample(json!({
        "http": {"headerReadTimeout": "00:01:00"},
        "workers": {"handshakeTimeout": "00:01:00", "maxPendingConnections": 1000}
    }));
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\"")])
        .arg(binary("fnhost"))
        .env_remove("FNHOST_ADMIN_KEY")
        .env("FNHOST_LOG", "error");
    let (mut child, http, lines) = start_with(cmd, &app, &[]);
    let grpc: std::net::SocketAddr = lines
        .last()
        .and_then(|l| l.split("(workers on ").nth(1))
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .expect("the listening line names the gRPC address");
    let pid = child.0.id();
    let api = Api::new(http);
    fnhost_e2e::wait_until("a ready worker", Duration::from_secs(20), || async {
        api.request("GET", "/healthz", "", None)
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    // Opened before the flood: the host holds its descriptor already.
    let mut probe = tokio::net::TcpStream::connect(http).await.unwrap();

    // More connections to both ports than the host has descriptors (it
    // uses about 30 of its 128 itself); the kernel completes those it
    // cannot accept into the listen backlogs (128 deep, so not many more).
    let mut flood = Vec::new();
    for addr in [http, grpc] {
        for _ in 0..100 {
            flood.push(std::net::TcpStream::connect(addr).unwrap());
        }
    }
    fnhost_e2e::wait_until(
        "the host to run out of descriptors",
        Duration::from_secs(10),
        || async { open_fds(pid) >= FD_LIMIT - 1 },
    )
    .await;
    // Accept now fails with EMFILE on every try; a loop that retried at
    // once would use a whole core.
    let before = cpu_time(pid);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time(pid) - before;
    let share = used.as_secs_f64() / window.elapsed().as_secs_f64();
    assert!(
        share < 0.25,
        "the host used {used:?} of CPU in {:?} with descriptors exhausted",
        window.elapsed()
    );
    eprintln!(
        "fds exhausted: host used {used:?} CPU over {:?} ({} fds open)",
        window.elapsed(),
        open_fds(pid)
    );

    // An open HTTP connection is served, and the invocation runs on the
    // worker over its admitted stream.
    probe
        .write_all(b"GET /api/echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    probe.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Once descriptors free up, new connections are accepted again.
    drop(flood);
    fnhost_e2e::wait_until(
        "a new connection to be served",
        Duration::from_secs(10),
        || async {
            api.request("GET", "/healthz", "", None)
                .await
                .is_ok_and(|r| r.status == 200)
        },
    )
    .await;
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[tokio::test]
async fn the_cli_manages_function_and_host_keys() {
    let app = TestApp::sample(json!({}));
    // `request` keeps Azure's default level: function.
    app.function(
        "request",
        &json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get"]},
            {"type": "http", "direction": "out", "name": "$return"}
        ]}),
    );
    let data = app.dir().join("data");
    let data_arg = data.display().to_string();
    let (mut child, addr, _) = start(&app, &["--data-dir", &data_arg]);
    let api = Api::new(addr);
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let out = cli(&data, &["keys", "list", "--function", "request"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("default"), "{}", text(&out));
    let out = cli(
        &data,
        &[
            "keys",
            "set",
            "ci",
            "--function",
            "request",
            "--value",
            "cli-chosen-value-01",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let status = |key: String| {
        let api = api.clone();
        async move { api.get_status("/api/request", Some(&key)).await }
    };
    assert_eq!(status("cli-chosen-value-01".into()).await, 200);
    let out = cli(&data, &["keys", "set", "deploy", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host_key = generated["value"].as_str().unwrap().to_string();
    assert_eq!(status(host_key.clone()).await, 200);
    let out = cli(&data, &["keys", "delete", "deploy"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status(host_key).await, 401);
    let out = cli(&data, &["keys", "delete", "deploy"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no key named"),
        "{out:?}"
    );
    let out = cli(&data, &["keys", "set", "x", "--value", "short"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("16 characters"),
        "{out:?}"
    );
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn bad_routes_and_missing_default_script_files_stop_the_start_with_exit_2() {
    let start_err = |app: &TestApp| {
        let out = fnhost().arg("start").arg(app.dir()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let http = |route: &str| {
        json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "route": route},
            {"type": "http", "direction": "out", "name": "$return"}
        ]})
    };
    // An unsupported constraint names the function and the constraint.
    let app = TestApp::sample(json!({}));
    app.function("request", &http("x/{id:regex(^a+$)}"));
    let err = start_err(&app);
    assert!(
        err.contains("request/function.json")
            && err.contains("regex")
            && err.contains("not supported"),
        "{err}"
    );
    // Two functions on one route and method.
    let app = TestApp::sample(json!({}));
    app.function("request", &http("same/{a}"));
    app.function("echo", &http("same/{b}"));
    let err = start_err(&app);
    assert!(err.contains("'echo' and 'request' both serve"), "{err}");
    // A Python function without scriptFile and without __init__.py fails
    // at start, not at its first call.
    let app = TestApp::new(std::path::Path::new("/usr/bin/python3"), json!({}));
    app.write(
        "worker.config.json",
        &json!({"description": {"language": "python", "defaultExecutablePath": "/usr/bin/python3",
                                 "extensions": [".py"]}}),
    );
    let err = start_err(&app);
    assert!(
        err.contains("scriptFile") && err.contains("__init__.py"),
        "{err}"
    );
}

#[test]
fn a_second_host_on_one_data_directory_is_refused_until_the_first_is_gone() {
    let app = TestApp::sample(json!({}));
    let data = app.dir().join("data");
    let data = data.to_str().unwrap();
    let (mut first, _, _) = start(&app, &["--data-dir", data]);
    let out = fnhost()
        .arg("start")
        .arg(app.dir())
        .args(["--port", "0", "--data-dir", data])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another fnhost")
            && err.contains(&format!("pid {}", first.0.id())),
        "{err}"
    );
    // However the first one ends (here SIGKILL), the directory is free.
    signal(&first, "-KILL");
    first.0.wait().unwrap();
    let (second, _, _) = start(&app, &["--data-dir", data]);
    drop(second);
}

/// Runs the sample app's `log` and `echo` through a host whose stderr goes
/// to a file, with `env` added; the file's text once the host stopped.
fn host_log(env: &[(&str, &str)]) -> String {
    let app = TestApp::sample(json!({}));
    let dir = fnhost_e2e::TempDir::new("fnhost-log").unwrap();
    let path = dir.path().join("stderr.log");
    let mut cmd = fnhost();
    cmd.env("FNHOST_ADMIN_KEY", fnhost_e2e::ADMIN_KEY);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stderr = Stdio::from(std::fs::File::create(&path).unwrap());
    let (host, addr, _) = start_host(cmd, app.dir(), &[], stderr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api::new(addr);
        fnhost_e2e::wait_until("a ready worker", Duration::from_secs(20), || async {
            !worker_pids(&api).await.is_empty()
        })
        .await;
        assert_eq!(api.invoke("log", "").await.unwrap().status, 200);
        assert_eq!(api.invoke("echo", "hi").await.unwrap().status, 200);
    });
    signal(&host, "-TERM");
    let mut host = host;
    host.0.wait().unwrap();
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn function_lines_keep_their_level_and_a_file_gets_no_colour() {
    let log = host_log(&[("FNHOST_LOG", "warn")]);
    assert!(!log.contains('\u{1b}'), "no ANSI escapes in a file: {log}");
    assert!(log.contains("warning from log function"), "{log}");
    assert!(log.contains("error from log function"), "{log}");
    assert!(
        !log.contains("info from log function"),
        "an info line is below warn: {log}"
    );
    // Azure's execution lines, at info.
    let log = host_log(&[("FNHOST_LOG", "info")]);
    let executing = log
        .lines()
        .find(|l| l.contains("Executing 'Functions.echo'"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        executing.contains("Reason='This function was programmatically called via the host APIs.'"),
        "{executing}"
    );
    let executed = log
        .lines()
        .find(|l| l.contains("Executed 'Functions.echo' (Succeeded, Id="))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        executed.contains("Duration=") && executed.contains("ms)"),
        "{executed}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_their_fields() {
    let log = host_log(&[("FNHOST_LOG", "info"), ("FNHOST_LOG_FORMAT", "json")]);
    let mut function_lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{v}");
        if v["target"] == "fnhost::function" {
            function_lines += 1;
            assert_eq!(v["function"], "log", "{v}");
            assert!(v["invocation"].is_string(), "{v}");
        }
    }
    assert_eq!(function_lines, 3, "{log}");
    let r = fnhost()
        .args(["--log-format", "yaml", "start"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("yaml"));
}

#[test]
fn on_sigterm_readiness_goes_first_and_the_host_serves_on_for_the_delay() {
    let app = TestApp::sample(json!({"shutdown": {"readinessDelay": "00:00:02"}}));
    let (mut host, addr, _) = start(&app, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api::new(addr);
        let get = |path: &'static str| {
            let api = api.clone();
            async move { api.request("GET", path, "", None).await.map(|r| r.status) }
        };
        fnhost_e2e::wait_until("ready", Duration::from_secs(20), || async {
            get("/readyz").await.ok() == Some(200)
        })
        .await;
        assert_eq!(get("/livez").await.unwrap(), 200);
        assert_eq!(get("/healthz").await.unwrap(), 200);
        let stopped_at = Instant::now();
        signal(&host, "-TERM");
        fnhost_e2e::wait_until("not ready", Duration::from_secs(2), || async {
            get("/readyz").await.ok() == Some(503)
        })
        .await;
        // Within the delay: not ready, but alive and serving.
        assert_eq!(get("/livez").await.unwrap(), 200);
        let r = api
            .request("POST", "/api/echo", "still here", None)
            .await
            .unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "still here"));
        assert!(
            stopped_at.elapsed() < Duration::from_secs(2),
            "checked within the delay"
        );
    });
    let status = host.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn sd_notify_says_ready_pings_the_watchdog_and_says_stopping() {
    use std::os::unix::net::UnixDatagram;
    let app = TestApp::sample(json!({}));
    let dir = fnhost_e2e::TempDir::new("fnhost-notify").unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut cmd = fnhost();
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000");
    let (mut host, _, _) = start_with(cmd, &app, &[]);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let mut next = |seen: &mut Vec<String>| {
        let n = socket.recv(&mut buf).expect("a notification");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(m.clone());
        m
    };
    while next(&mut seen) != "READY=1" {}
    while next(&mut seen) != "WATCHDOG=1" {}
    signal(&host, "-TERM");
    while next(&mut seen) != "STOPPING=1" {}
    assert!(host.0.wait().unwrap().success());
    assert_eq!(
        seen.iter().filter(|m| *m == "READY=1").count(),
        1,
        "{seen:?}"
    );
}

#[test]
fn the_http_listener_binds_the_address_given_and_refuses_one_that_is_not() {
    let app = TestApp::sample(json!({}));
    // Another loopback address: the listener is there, and only there.
    let (host, addr, _) = start(&app, &["--bind", "127.0.0.2"]);
    assert_eq!(addr.ip().to_string(), "127.0.0.2");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = Api::new(addr)
            .request("GET", "/livez", "", None)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let other = std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()));
        assert!(
            tokio::net::TcpStream::connect(other).await.is_err(),
            "not on 127.0.0.1"
        );
    });
    drop(host);
    let out = fnhost()
        .arg("start")
        .arg(app.dir())
        .args(["--bind", "everywhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bind"));
}

/// The processes whose parent is `pid`, with their state letter.
fn children_of(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let (Some(state), Some(ppid)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        if ppid.parse::<u32>().ok() == Some(pid) {
            let child = head
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            out.push((child, state.chars().next().unwrap_or('?')));
        }
    }
    out
}

#[test]
fn as_pid_1_the_host_reaps_the_orphans_its_workers_leave() {
    // A new PID namespace, where the host is process 1.
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: `unshare --pid --fork` is not available to this user");
        return;
    }
    let app = TestApp::sample(json!({}));
    // A worker wrapper that leaves an orphan behind at every start.
    let wrapper = app.dir().join("orphaning-worker.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n( sleep 0.2 & )\nexec {} \"$@\"\n",
            binary("fnhost-sample-worker").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    app.write(
        "worker.config.json",
        &fnhost_e2e::rust_worker_config(&wrapper, json!({})),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(binary("fnhost"))
        .env_remove("FNHOST_ADMIN_KEY")
        .env("FNHOST_LOG", "warn");
    let (mut unshare, addr, _) = start_host(cmd, app.dir(), &[], Stdio::null());
    // unshare's child is the host as PID 1 (the init); the host proper is its child.
    let init = children_of(unshare.0.id())
        .first()
        .map(|(p, _)| *p)
        .expect("unshare's child");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api::new(addr);
        let r = api
            .request("POST", "/api/echo", "pid 1", None)
            .await
            .unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "pid 1"));
    });
    // The orphaned sleeps ended a while ago: none is left a zombie.
    std::thread::sleep(Duration::from_secs(2));
    let zombies: Vec<_> = children_of(init)
        .into_iter()
        .filter(|(_, s)| *s == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombies under PID 1: {zombies:?}");
    // SIGTERM to PID 1 reaches the host, which stops in order; its status
    // is PID 1's.
    let ok = Command::new("kill")
        .args(["-TERM", &init.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = unshare.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
