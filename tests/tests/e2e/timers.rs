//! Timer triggers: the cadence of a schedule, a run at start, one past-due
//! run for the ticks missed while the host was down, and bad schedules
//! refused at start.

use std::process::Command;
use std::time::Duration;

use fnhost_e2e::{binary, init_logs, Api, TestApp};
use serde_json::{json, Value};

/// The sample's `echo` as a timer function (the Rust sample worker's echo
/// returns its input, here the `TimerInfo`).
fn timer_app(schedule: &str, run_on_startup: bool) -> TestApp {
    let app = TestApp::sample(json!({}));
    app.function(
        "echo",
        &json!({"bindings": [{
            "type": "timerTrigger", "direction": "in", "name": "timer",
            "schedule": schedule, "runOnStartup": run_on_startup
        }]}),
    );
    app
}

/// The timer's events, oldest first, each as its full record.
async fn ticks(api: &Api) -> Vec<Value> {
    let r = api
        .admin_get("/admin/async-events?function=echo&invokeType=timer&order=asc&limit=100")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut out = Vec::new();
    for e in r.json()["events"].as_array().unwrap() {
        let id = e["requestId"].as_str().unwrap();
        out.push(super::async_events::event(api, id).await);
    }
    out
}

/// The `TimerInfo` an ended tick's function received.
fn timer_info(event: &Value) -> Value {
    let result = event["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{event}"));
    serde_json::from_str(result).unwrap_or_else(|e| panic!("{e}: {result}"))
}

async fn wait_all_finished(api: &Api) -> Vec<Value> {
    fnhost_e2e::wait_until("every tick to finish", Duration::from_secs(15), || async {
        ticks(api).await.iter().all(|e| e["status"] == "FINISHED")
    })
    .await;
    ticks(api).await
}

/// The ticks `app`'s stopped host left, read from a host of the same app
/// with nothing scheduled (`echo` made manual), every one of them ended;
/// that host, to shut down after.
async fn ticks_left(app: &TestApp) -> (fnhost::Host, Vec<Value>) {
    app.manual_function("echo");
    let host = app.start(1).await;
    let events = wait_all_finished(&Api::new(host.http_addr())).await;
    (host, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_schedule_ticks_five_times_in_ten_seconds() {
    init_logs();
    let app = timer_app("*/2 * * * * *", false);
    let host = app.start(1).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    host.shutdown().await;
    let (host, events) = ticks_left(&app).await;
    assert!(
        (4..=6).contains(&events.len()),
        "{} ticks in 10 s of */2: {events:?}",
        events.len()
    );
    let mut scheduled = Vec::new();
    for e in &events {
        let info = timer_info(e);
        assert_eq!(info["IsPastDue"], false, "{info}");
        let next = info["ScheduleStatus"]["Next"].as_str().unwrap().to_string();
        let ms = fnhost::events::time::parse(&next).unwrap();
        assert_eq!(ms % 2000, 0, "ticks fall on even seconds: {next}");
        scheduled.push(ms);
    }
    for pair in scheduled.windows(2) {
        assert_eq!(pair[1] - pair[0], 2000, "one tick every 2 s: {scheduled:?}");
    }
    // Each tick's Last is the tick before it.
    for pair in events.windows(2) {
        assert_eq!(
            timer_info(&pair[1])["ScheduleStatus"]["Last"],
            timer_info(&pair[0])["ScheduleStatus"]["Next"]
        );
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_startup_runs_once_at_each_start() {
    init_logs();
    // Hourly: no scheduled tick falls within the test.
    let app = timer_app("0 0 * * * *", true);
    for starts in 1..=2 {
        let host = app.start(1).await;
        let api = Api::new(host.http_addr());
        fnhost_e2e::wait_until("the run at start", Duration::from_secs(10), || async {
            ticks(&api).await.len() >= starts
        })
        .await;
        let events = wait_all_finished(&api).await;
        assert_eq!(events.len(), starts, "one run per start: {events:?}");
        assert_eq!(timer_info(&events[starts - 1])["IsPastDue"], false);
        host.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_the_host_was_down_run_once_past_due() {
    init_logs();
    let app = timer_app("*/2 * * * * *", false);
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    fnhost_e2e::wait_until("a first tick", Duration::from_secs(10), || async {
        !ticks(&api).await.is_empty()
    })
    .await;
    host.shutdown().await;
    // Down for three ticks or more.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let host = app.start(1).await;
    // Read before the next scheduled tick can join them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.shutdown().await;
    let (host, events) = ticks_left(&app).await;
    let past_due: Vec<&Value> = events
        .iter()
        .filter(|e| timer_info(e)["IsPastDue"] == true)
        .collect();
    assert_eq!(
        past_due.len(),
        1,
        "one past-due run, not one per missed tick: {events:?}"
    );
    host.shutdown().await;
}

#[test]
fn a_bad_schedule_is_a_start_error_naming_the_function_and_field() {
    for (schedule, says) in [
        (json!("* * * * * * *"), "7 fields"),
        (json!("61 * * * * *"), "61"),
        (json!(""), "empty"),
        (json!(5), "must be a string"),
    ] {
        let app = TestApp::sample(json!({}));
        app.function(
            "ticker",
            &json!({"bindings": [{
                "type": "timerTrigger", "direction": "in", "name": "timer", "schedule": schedule
            }]}),
        );
        let out = Command::new(binary("fnhost"))
            .arg("start")
            .arg(app.dir())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{schedule}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("ticker/function.json")
                && err.contains("`bindings[0].schedule`")
                && err.contains(says),
            "{schedule}: {err}"
        );
    }
}

#[test]
fn a_time_zone_that_names_no_zone_is_a_start_error() {
    let app = timer_app("0 0 9 * * *", false);
    std::fs::write(
        app.dir().join("local.settings.json"),
        json!({"IsEncrypted": false, "Values": {"WEBSITE_TIME_ZONE": "Mars/Olympus_Mons"}})
            .to_string(),
    )
    .unwrap();
    let out = Command::new(binary("fnhost"))
        .arg("start")
        .arg(app.dir())
        .env_remove("WEBSITE_TIME_ZONE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`WEBSITE_TIME_ZONE`") && err.contains("Mars/Olympus_Mons"),
        "{err}"
    );
    // A real one starts.
    std::fs::write(
        app.dir().join("local.settings.json"),
        json!({"IsEncrypted": false, "Values": {"WEBSITE_TIME_ZONE": "Europe/Berlin"}}).to_string(),
    )
    .unwrap();
    assert!(app.config().time_zone.name() == "Europe/Berlin");
}
