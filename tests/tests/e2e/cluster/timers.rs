//! Timer triggers on several hosts: one host at a time holds a timer's
//! schedule, so each tick runs once in total; a host paused past its lease
//! while a tick runs loses it, and its run is cancelled with reason
//! `lease lost`.

use std::collections::BTreeSet;
use std::time::Duration;

use fnhost_e2e::{binary, wait_until, Api, TestApp};
use serde_json::{json, Value};

use super::super::async_events::event;
use super::super::languages::Lang;
use super::{cluster_host_json, quick_rescue, Setup};

/// The app with a `tick` timer function (the sample worker's), which works
/// `work_ms` per tick.
fn timer_app(host_json: Value, schedule: &str, run_on_startup: bool, work_ms: u64) -> TestApp {
    let app = TestApp::with_env(
        &binary("fnhost-sample-worker"),
        host_json,
        json!({"SAMPLE_TICK_WORK_MS": work_ms.to_string()}),
    );
    app.function(
        "tick",
        &json!({"bindings": [{
            "type": "timerTrigger", "direction": "in", "name": "timer", "schedule": schedule,
            "runOnStartup": run_on_startup
        }]}),
    );
    app
}

/// Every tick event accepted before `until_ms`, oldest first, with its
/// scheduled time.
async fn ticks(api: &Api, until_ms: i64) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    let base = format!("function=tick&invokeType=timer&order=asc&limit=100&startTimeTo={until_ms}");
    let mut q = base.clone();
    loop {
        let r = api
            .admin_get(&format!("/admin/async-events?{q}"))
            .await
            .unwrap();
        let v = r.json();
        for e in v["events"].as_array().unwrap() {
            let id = e["requestId"].as_str().unwrap();
            let full = event(api, id).await;
            out.push(full);
        }
        match v["nextCursor"].as_str() {
            Some(c) => q = format!("{base}&cursor={c}"),
            None => break,
        }
    }
    out.into_iter().map(|e| (scheduled(&e), e)).collect()
}

/// The scheduled time a tick event's input named (`ScheduleStatus.Next`),
/// read from the `ticked <time>` result of a finished run.
fn scheduled(e: &Value) -> i64 {
    let result = e["result"].as_str().unwrap_or_default();
    let text = result.trim_matches('"');
    let at = text.strip_prefix("ticked ").unwrap_or("");
    fnhost::events::time::parse(at).unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_run_every_second_of_a_one_second_timer_once_in_total() {
    let Some(setup) = Setup::with_app(
        "two_hosts_run_every_second_once",
        timer_app(cluster_host_json(), "* * * * * *", false, 0),
    ) else {
        return;
    };
    let a = setup.node("a").await;
    let b = setup.node("b").await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    // The timer ticks on: the ticks accepted in these 20 s.
    let until = fnhost::events::time::now_ms();
    wait_until("every tick to finish", Duration::from_secs(15), || async {
        ticks(&a.api, until)
            .await
            .iter()
            .all(|(_, e)| e["status"] == "FINISHED")
    })
    .await;
    let from_a = ticks(&a.api, until).await;
    let from_b: Vec<i64> = ticks(&b.api, until).await.iter().map(|(s, _)| *s).collect();
    let seconds: Vec<i64> = from_a.iter().map(|(s, _)| *s).collect();
    assert_eq!(seconds, from_b, "both hosts list the same ticks");
    let unique: BTreeSet<i64> = seconds.iter().copied().collect();
    assert_eq!(unique.len(), seconds.len(), "no tick twice: {seconds:?}");
    let (first, last) = (*unique.first().unwrap(), *unique.last().unwrap());
    let every: BTreeSet<i64> = (first / 1000..=last / 1000).map(|s| s * 1000).collect();
    assert_eq!(
        unique, every,
        "every second between the first and last tick ran"
    );
    assert!(seconds.len() >= 15, "{} ticks in 20 s", seconds.len());
    // One host holds the schedule.
    let holders = setup.sql("SELECT COUNT(DISTINCT owner) FROM fnhost_timer_leases");
    assert_eq!(holders, "1");
}

/// `app` (one language's sample, made with [`quick_rescue`]: hosts dead,
/// and leases lost, after 2 s) with its `tick` run at start and then
/// hourly, working 10 s per run.
fn paused_holder_app(app: TestApp) -> TestApp {
    app.function(
        "tick",
        &json!({"bindings": [{
            "type": "timerTrigger", "direction": "in", "name": "timer",
            "schedule": "0 0 * * * *", "runOnStartup": true
        }]}),
    );
    app.write(
        "local.settings.json",
        &json!({"IsEncrypted": false, "Values": {"SAMPLE_TICK_WORK_MS": "10000"}}),
    );
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_holder_loses_the_schedule_and_its_run_is_cancelled_with_lease_lost() {
    let app = timer_app(quick_rescue(), "0 0 * * * *", true, 10_000);
    paused_holder("a_paused_holder_loses_the_schedule", app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_a_paused_holders_run_is_cancelled_with_lease_lost() {
    let app = paused_holder_app(Lang::Python.app(quick_rescue()));
    paused_holder("python_a_paused_holder", app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_a_paused_holders_run_is_cancelled_with_lease_lost() {
    let app = paused_holder_app(Lang::Node.app(quick_rescue()));
    paused_holder("node_a_paused_holder", app).await;
}

/// Pauses the holder of `app`'s `tick` schedule during its run at start,
/// past its lease: the other host takes the schedule and the run over, and
/// the paused host, resumed, cancels its run with reason `lease lost`,
/// which the function's own log shows.
async fn paused_holder(test: &str, app: TestApp) {
    let Some(setup) = Setup::with_app(test, app) else {
        return;
    };
    let a = setup.node("a").await;
    // The run at start, on the schedule's holder, inside the function (the
    // worker may still be starting when the tick is accepted).
    wait_until("a tick to run", Duration::from_secs(20), || async {
        a.log_text().contains("(past due: false)")
    })
    .await;
    assert_eq!(setup.count("function = 'tick' AND status = 'RUNNING'"), 1);
    let b = setup.node("b").await;
    let id = setup.sql("SELECT request_id FROM fnhost_events WHERE function = 'tick'");
    a.signal("-STOP");
    wait_until(
        "the other host to take the schedule and the tick over",
        Duration::from_secs(20),
        || async {
            setup.sql(&format!(
                "SELECT COUNT(*) FROM fnhost_events WHERE request_id = '{id}'
                 AND owner_host = '{}' AND attempts = 2",
                b.id
            )) == "1"
                && setup.sql("SELECT owner FROM fnhost_timer_leases") == b.id
        },
    )
    .await;
    a.signal("-CONT");
    // The paused host's run is cancelled, and its user code hears why.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !a.log_text().contains("cancelled (lease lost)") {
        assert!(
            std::time::Instant::now() < deadline,
            "the paused host's run was not cancelled with reason lease lost; its log:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("the tick to finish", Duration::from_secs(30), || async {
        event(&b.api, &id).await["status"] == "FINISHED"
    })
    .await;
    let e = event(&b.api, &id).await;
    assert_eq!(e["attempts"], 2, "{e}");
    let lines = super::logs(&b.api, &id).await;
    assert!(
        lines
            .iter()
            .any(|l| l == "[PLATFORM] Run cancelled: another host holds the schedule"),
        "{lines:#?}"
    );
    let ends = lines
        .iter()
        .filter(|l| l.starts_with("[PLATFORM] Invoke End"))
        .count();
    assert_eq!(ends, 1, "one run counts: {lines:#?}");
}
