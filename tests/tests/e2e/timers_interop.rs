//! Timer triggers on Azure's own workers: the host's `TimerInfo` (a
//! `TypedData.json`, see host/src/timers) as Azure's Python worker 4.34.0
//! (`func.TimerRequest`, decorator model) and its Node worker 3.9.1 with
//! `@azure/functions` 4.x (`app.timer`, `Timer`) hand it to user code.
//!
//! The apps are `tests/interop/python-timer` and
//! `tests/interop/node-v4-timer`, copied per test; each has one function,
//! `tick`, on an hourly schedule with run-on-startup, so a start gives
//! exactly one run, which logs what the function was given. Needs
//! `../shared/interop` and `tests/interop/setup.sh`, like the other interop
//! tests: they skip with a message where the folder (or `node`) is absent.

use std::path::Path;
use std::time::Duration;

use fnhost_e2e::{copy_dir, repo_root, wait_until, Api};
use serde_json::Value;

use super::async_events::{event, logs};
use super::workers_dir::{
    fnhost, interop, python_build, start, symlink, workers_dir, HostProcess, TempDir,
};

/// A copy of the app `tests/interop/<name>`.
fn app_copy(name: &str) -> TempDir {
    let app = TempDir::new(name);
    copy_dir(&repo_root().join("tests/interop").join(name), app.path())
        .unwrap_or_else(|e| panic!("copy tests/interop/{name}: {e:#}"));
    app
}

/// The ids of `tick`'s timer events, oldest first.
async fn tick_ids(api: &Api) -> Vec<String> {
    let r = api
        .admin_get("/admin/async-events?function=tick&invokeType=timer&order=asc&limit=100")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["requestId"].as_str().unwrap().to_string())
        .collect()
}

/// Waits for the run at start (the test began at `started_ms`) to end and
/// returns its record and log lines; panics, with both and the host's log,
/// unless it FINISHED and is the only tick.
async fn the_startup_tick(host: &HostProcess, api: &Api, started_ms: i64) -> (Value, Vec<String>) {
    wait_until("the run at start", Duration::from_secs(30), || async {
        !tick_ids(api).await.is_empty()
    })
    .await;
    let id = tick_ids(api).await.remove(0);
    let what = format!("timer event {id} to end");
    wait_until(&what, Duration::from_secs(30), || async {
        matches!(
            event(api, &id).await["status"].as_str(),
            Some("FINISHED" | "FAILED" | "TERMINATED")
        )
    })
    .await;
    let record = event(api, &id).await;
    let lines = logs(api, &id).await;
    assert_eq!(
        record["status"],
        "FINISHED",
        "the tick did not finish: {record:#}\nits logs: {lines:#?}\n{}",
        host.log()
    );
    let ids = tick_ids(api).await;
    // (A scheduled tick may join it where the test spans the top of an hour.)
    let hour = 3_600_000;
    if now_ms() / hour == started_ms / hour {
        assert_eq!(ids.len(), 1, "one run at start, no other tick: {ids:?}");
    }
    eprintln!("the tick: {record:#}\nits logs: {lines:#?}");
    (record, lines)
}

/// The one log line holding `prefix`, from where `prefix` starts.
fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    let found: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.find(prefix).map(|at| &l[at..]))
        .collect();
    assert_eq!(found.len(), 1, "one line with {prefix:?}: {lines:#?}");
    found[0]
}

/// Checks `next`, the `ScheduleStatus.Next` the worker gave the function
/// for the run at start `record`, is an RFC 3339 time the host could have
/// sent for it: the run's own time (between the test's start and the run's,
/// as fnhost sends it today) or the next scheduled occurrence, the top of
/// the following hour (what Azure's TimerListener gives a first start).
fn check_next(next: &str, started_ms: i64, record: &Value) {
    let ms = fnhost::events::time::parse(next)
        .unwrap_or_else(|| panic!("Next {next:?} is not an RFC 3339 time"));
    let run_ms = record["startTime"]
        .as_str()
        .and_then(fnhost::events::time::parse)
        .unwrap_or_else(|| panic!("no startTime: {record}"));
    let hour = 3_600_000;
    let next_hour = (started_ms / hour + 1) * hour;
    assert!(
        (started_ms..=run_ms).contains(&ms) || ms == next_hour,
        "Next {next} is neither this run's time nor the next hour \
         (the test started at {started_ms} ms, the run at {run_ms} ms)"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `node` on the `PATH`, or a skip message.
fn have_node(test: &str) -> bool {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping {test}: `node` is not on the PATH");
    }
    found
}

#[tokio::test]
async fn azures_python_worker_reads_the_timer_info() {
    let Some(interop) = interop("the Python timer interop test") else {
        return;
    };
    let (build, bin) = python_build();
    let workers = workers_dir(&interop, Some(&build));
    let app = app_copy("python-timer");
    let started = now_ms();
    let (host, api) = start(
        fnhost(Some(&bin)),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    let (record, lines) = the_startup_tick(&host, &api, started).await;

    // func.TimerRequest from the host's TimerInfo JSON.
    let summary = line(&lines, "timer past_due=");
    let next = summary
        .strip_prefix("timer past_due=False next=")
        .unwrap_or_else(|| panic!("past_due is False: {summary:?}"));
    check_next(next, started, &record);
    let full = line(&lines, "timer request ");
    let full: Value = serde_json::from_str(&full["timer request ".len()..])
        .unwrap_or_else(|e| panic!("{e}: {full}"));
    assert_eq!(full["type"], "TimerRequest", "{full}");
    assert_eq!(full["past_due"], false, "{full}");
    assert_eq!(full["schedule"]["AdjustForDST"], true, "{full}");
    let status = &full["schedule_status"];
    assert_eq!(status["Next"], next, "{full}");
    for k in ["Last", "LastUpdated"] {
        assert!(
            status[k]
                .as_str()
                .is_some_and(|t| fnhost::events::time::parse(t).is_some()),
            "{k} is an RFC 3339 time: {full}"
        );
    }
}

#[tokio::test]
async fn azures_node_worker_and_the_v4_library_read_the_timer_info() {
    let test = "the Node timer interop test";
    let Some(interop) = interop(test) else {
        return;
    };
    if !have_node(test) {
        return;
    }
    let modules = repo_root().join("tests/interop/node-v4/node_modules");
    assert!(
        modules.join("@azure/functions/package.json").is_file(),
        "@azure/functions 4.x is not installed ({} is missing): run tests/interop/setup.sh",
        modules.display()
    );
    let workers = workers_dir(&interop, None);
    let app = app_copy("node-v4-timer");
    symlink(&modules, &app.path().join("node_modules"));
    let started = now_ms();
    let (host, api) = start(
        fnhost(None),
        &app,
        &[Path::new("--workers-dir"), workers.path()],
    )
    .await;
    let (record, lines) = the_startup_tick(&host, &api, started).await;

    // The v4 library's Timer: the TimerInfo with its keys camel-cased.
    let summary = line(&lines, "timer isPastDue=");
    let next = summary
        .strip_prefix("timer isPastDue=false next=")
        .unwrap_or_else(|| panic!("isPastDue is false: {summary:?}"));
    check_next(next, started, &record);
    let full = line(&lines, "timer object ");
    let full: Value = serde_json::from_str(&full["timer object ".len()..])
        .unwrap_or_else(|e| panic!("{e}: {full}"));
    assert_eq!(full["isPastDue"], false, "{full}");
    assert_eq!(full["schedule"]["adjustForDST"], true, "{full}");
    let status = &full["scheduleStatus"];
    assert_eq!(status["next"], next, "{full}");
    for k in ["last", "lastUpdated"] {
        assert!(
            status[k]
                .as_str()
                .is_some_and(|t| fnhost::events::time::parse(t).is_some()),
            "{k} is an RFC 3339 time: {full}"
        );
    }
}
