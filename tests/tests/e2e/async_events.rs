//! Asynchronous invocations: accept, run, retry, terminate, list, prune.

use std::time::Duration;

use fnhost_e2e::{binary, init_logs, wait_until, Api, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

/// Accepts an async event of `function` with `body`; its request id.
pub(super) async fn submit(api: &Api, function: &str, body: &str) -> String {
    let r = api
        .request(
            "POST",
            &format!("/admin/functions/{function}/invoke-async"),
            body.to_string(),
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["requestId"].as_str().unwrap().to_string()
}

pub(super) async fn event(api: &Api, id: &str) -> Value {
    let r = api
        .admin_get(&format!("/admin/async-events/{id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits (20 s at most) for event `id` to reach `status`; the event.
pub(super) async fn wait_status(api: &Api, id: &str, status: &str) -> Value {
    let what = format!("event {id} to be {status}");
    wait_until(&what, Duration::from_secs(20), || async {
        event(api, id).await["status"] == status
    })
    .await;
    event(api, id).await
}

/// Waits until event `id`, the only one, is RUNNING and its invocation is
/// on the worker (the store says RUNNING just before the attempt submits).
async fn wait_on_worker(api: &Api, id: &str) {
    wait_status(api, id, "RUNNING").await;
    wait_until(
        "its invocation on the worker",
        Duration::from_secs(10),
        || async { api.status().await.unwrap()["inFlight"] == 1 },
    )
    .await;
}

pub(super) async fn logs(api: &Api, id: &str) -> Vec<String> {
    let r = api
        .admin_get(&format!("/admin/async-events/{id}/logs"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect()
}

/// The request ids a list query answers, in its order.
async fn listed_ids(api: &Api, q: &str) -> Vec<String> {
    list(api, q).await.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["requestId"].as_str().unwrap().to_string())
        .collect()
}

/// `GET /admin/async-events?<q>`.
async fn list(api: &Api, q: &str) -> fnhost_e2e::HttpReply {
    api.admin_get(&format!("/admin/async-events?{q}"))
        .await
        .unwrap()
}

pub(super) async fn terminate(api: &Api, id: &str, graceful: bool) -> (u16, Value) {
    let body = json!({ "graceShutdown": graceful }).to_string();
    let r = api
        .request(
            "POST",
            &format!("/admin/async-events/{id}/terminate"),
            body,
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    (r.status, r.json())
}

fn fast_retries(extra: Value) -> Value {
    let mut v = json!({"asyncEvents": {"maxRetryAttempts": 2, "retryBackoff": "00:00:00.050"}});
    if let (Some(a), Some(b)) = (v["asyncEvents"].as_object_mut(), extra.as_object()) {
        a.extend(b.clone());
    }
    v
}

#[tokio::test]
async fn an_accepted_event_runs_to_finished_with_its_log() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let id = submit(&api, "log", "x").await;
    let e = wait_status(&api, &id, "FINISHED").await;
    assert_eq!(e["statusCode"], 200);
    assert_eq!(e["attempts"], 1);
    assert_eq!(e["result"], "logged");
    assert!(e["endTime"].is_string());
    let lines = logs(&api, &id).await;
    assert!(
        lines[0].starts_with("[PLATFORM] Invoke Start RequestId: "),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "info from log function"),
        "the function's own lines: {lines:?}"
    );
    assert!(lines.last().unwrap().contains("FINISHED 200"), "{lines:?}");
    let r = api.admin_get("/admin/async-events/nope").await.unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("nope"));
    let r = api
        .request(
            "POST",
            "/admin/functions/nope/invoke-async",
            "",
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    host.shutdown().await;
}

#[tokio::test]
async fn failures_retry_then_succeed_or_exhaust_their_attempts() {
    init_logs();
    let app = TestApp::sample(fast_retries(json!({})));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let flaky = submit(&api, "flaky", "2").await;
    let e = wait_status(&api, &flaky, "FINISHED").await;
    assert_eq!(
        (e["attempts"].as_i64(), e["result"].as_str()),
        (Some(3), Some("succeeded on call 3"))
    );
    let lines = logs(&api, &flaky).await;
    assert_eq!(
        lines.iter().filter(|l| l.contains("retrying")).count(),
        2,
        "{lines:?}"
    );

    let fail = submit(&api, "fail", "always").await;
    let e = wait_status(&api, &fail, "FAILED").await;
    assert_eq!(e["statusCode"], 430);
    assert_eq!(e["attempts"], 3);
    assert!(
        e["error"].as_str().unwrap().contains("attempts exhausted"),
        "{e}"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_timeout_fails_with_433_and_a_crash_with_439() {
    init_logs();
    let app = TestApp::sample(
        json!({"functionTimeout": "00:00:00.300", "asyncEvents": {"maxRetryAttempts": 0}}),
    );
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let slow = submit(&api, "sleep", "5000").await;
    let e = wait_status(&api, &slow, "FAILED").await;
    assert_eq!(e["statusCode"], 433, "{e}");
    let crash = submit(&api, "crash", "x").await;
    let e = wait_status(&api, &crash, "FAILED").await;
    assert_eq!(e["statusCode"], 439, "{e}");
    host.shutdown().await;
}

#[tokio::test]
async fn forced_terminate_aborts_with_439_and_retries_the_neighbour() {
    init_logs();
    let app = TestApp::sample(fast_retries(json!({})));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let target = submit(&api, "sleep", "60000").await;
    // Long enough to still run when the kill lands on a loaded machine.
    let neighbour = submit(&api, "sleep", "4000").await;
    wait_until("both on the worker", Duration::from_secs(10), || async {
        api.status().await.unwrap()["inFlight"] == 2
    })
    .await;
    let (code, body) = terminate(&api, &target, false).await;
    assert_eq!(
        (code, body["outcome"].as_str()),
        (200, Some("done")),
        "{body}"
    );
    let e = wait_status(&api, &target, "ABORTED").await;
    assert_eq!(e["statusCode"], 439);
    let n = wait_status(&api, &neighbour, "FINISHED").await;
    assert_eq!(
        n["attempts"], 1,
        "a platform-ended attempt is not charged: {n}"
    );
    let lines = logs(&api, &neighbour).await;
    let starts = lines.iter().filter(|l| l.contains("Invoke Start")).count();
    assert_eq!(
        starts, 2,
        "the platform ended it, so it ran again: {lines:?}"
    );
    assert!(
        n["error"].is_null(),
        "a finished event carries no stale error: {n}"
    );
    let (code, body) = terminate(&api, &target, false).await;
    assert_eq!(code, 200);
    assert_eq!(
        (body["outcome"].as_str(), body["status"].as_str()),
        (Some("already-completed"), Some("ABORTED"))
    );
    let (code, _) = terminate(&api, "no-such-event", true).await;
    assert_eq!(code, 404);
    host.shutdown().await;
}

#[tokio::test]
async fn graceful_terminate_records_whether_the_signal_arrived() {
    init_logs();
    let app = TestApp::sample(json!({"workers": {"cancelGracePeriod": "00:00:00.500"}}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    // A handler that honours the cancel stops: ABORTED, 438.
    let honours = submit(&api, "sleep", "60000").await;
    wait_on_worker(&api, &honours).await;
    assert_eq!(terminate(&api, &honours, true).await.0, 200);
    let e = wait_status(&api, &honours, "ABORTED").await;
    assert_eq!(e["statusCode"], 438, "{e}");
    let lines = logs(&api, &honours).await;
    assert!(
        lines.contains(&"[PLATFORM] Signal received successfully.".to_string()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sleep cancelled") && l.contains("(terminate)")),
        "the handler saw it, and why: {lines:?}"
    );

    // A handler that ignores it is killed after the grace: ABORTED, 439.
    let ignores = submit(&api, "spin", "60000").await;
    wait_on_worker(&api, &ignores).await;
    assert_eq!(terminate(&api, &ignores, true).await.0, 200);
    let e = wait_status(&api, &ignores, "ABORTED").await;
    assert_eq!(e["statusCode"], 439, "{e}");
    assert!(logs(&api, &ignores)
        .await
        .contains(&"[PLATFORM] Signal received successfully.".to_string()));

    // Terminating a finished event changes nothing.
    let done = submit(&api, "echo", "x").await;
    wait_status(&api, &done, "FINISHED").await;
    let (_, body) = terminate(&api, &done, true).await;
    assert_eq!(body["outcome"], "already-completed");
    host.shutdown().await;
}

#[tokio::test]
async fn graceful_terminate_of_a_worker_without_the_capability_fails_the_signal() {
    init_logs();
    let app = TestApp::with_env(
        &binary("rogue-worker"),
        json!({}),
        json!({"ROGUE_MODE": "no-cancel"}),
    );
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let id = submit(&api, "sleep", "60000").await;
    wait_status(&api, &id, "RUNNING").await;
    assert_eq!(terminate(&api, &id, true).await.0, 200);
    let e = wait_status(&api, &id, "ABORTED").await;
    assert_eq!(e["statusCode"], 439);
    let lines = logs(&api, &id).await;
    assert!(
        lines.contains(&"[PLATFORM] Signal reception failed.".to_string()),
        "{lines:?}"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_id_or_a_conflict() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let send = |body: &'static str| {
        let api = api.clone();
        async move {
            let headers = [
                ("x-functions-key", ADMIN_KEY),
                ("idempotency-key", "order-42"),
            ];
            let r = api
                .request_with("POST", "/admin/functions/echo/invoke-async", body, &headers)
                .await
                .unwrap();
            let replay = !r.header("x-fnhost-idempotent-replay").is_empty();
            (r.status, replay, r.json())
        }
    };
    let (s1, r1, b1) = send("same").await;
    let (s2, r2, b2) = send("same").await;
    let (s3, _, b3) = send("different").await;
    assert_eq!((s1, r1, s2, r2), (202, false, 202, true));
    assert_eq!(b1["requestId"], b2["requestId"]);
    assert_eq!(s3, 409, "{b3}");
    assert!(b3.to_string().contains("order-42"));
    host.shutdown().await;
}

#[tokio::test]
async fn list_filters_order_and_pages() {
    init_logs();
    let app = TestApp::sample(json!({"asyncEvents": {"maxRetryAttempts": 0}}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let mut echo_ids = Vec::new();
    for i in 0..5 {
        echo_ids.push(submit(&api, "echo", &format!("e{i}")).await);
    }
    for id in &echo_ids {
        wait_status(&api, id, "FINISHED").await;
    }
    // Submitted only once the echoes ended, so it is both the newest event and
    // the last to end (the echoes run side by side and end in any order).
    let fail_id = submit(&api, "fail", "x").await;
    wait_status(&api, &fail_id, "FAILED").await;
    let all = list(&api, "").await.json();
    assert_eq!(all["totalCount"], 6);
    let first = all["events"][0]["requestId"].as_str().unwrap();
    assert_eq!(first, fail_id, "newest first by default");
    assert_eq!(listed_ids(&api, "order=asc&function=echo").await, echo_ids);
    let failed = list(&api, "status=FAILED&status=ABORTED").await.json();
    assert_eq!(failed["totalCount"], 1);
    assert_eq!(failed["events"][0]["statusCode"], 430);
    let page = list(&api, "function=echo&limit=2&offset=4&order=asc")
        .await
        .json();
    assert_eq!(
        (
            page["totalCount"].as_u64(),
            page["events"].as_array().unwrap().len()
        ),
        (Some(5), 1)
    );
    let past = list(&api, "offset=100").await.json();
    assert_eq!(
        (
            past["totalCount"].as_u64(),
            past["events"].as_array().unwrap().len()
        ),
        (Some(6), 0)
    );
    let zero = list(&api, "limit=0").await.json();
    assert_eq!(
        (
            zero["totalCount"].as_u64(),
            zero["events"].as_array().unwrap().len()
        ),
        (Some(6), 0)
    );
    assert_eq!(list(&api, "limit=100").await.status, 200);
    let over = list(&api, "limit=101").await;
    assert_eq!(over.status, 400);
    assert!(over.text().contains("`limit`"), "{}", over.text());
    assert_eq!(
        list(&api, "invokeType=api&invokeType=http").await.json()["totalCount"],
        6
    );
    assert_eq!(list(&api, "invokeType=http").await.json()["totalCount"], 0);
    assert_eq!(
        list(&api, &format!("requestId={fail_id}")).await.json()["totalCount"],
        1
    );
    let future = list(&api, "startTimeFrom=2100-01-01T00:00:00Z")
        .await
        .json();
    assert_eq!(future["totalCount"], 0);
    let by_end = list(&api, "orderBy=endTime&order=desc&limit=1")
        .await
        .json();
    assert_eq!(by_end["events"][0]["requestId"], fail_id.as_str());
    let bad = list(&api, "status=DONE").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("`status`"));
    let bad = list(&api, "since=yesterday").await;
    assert!(bad.status == 400 && bad.text().contains("`since`"));
    host.shutdown().await;
}

#[tokio::test]
async fn a_backlog_beyond_the_memory_limit_waits_in_the_store_and_runs_in_order() {
    init_logs();
    let app = TestApp::sample(json!({"asyncEvents": {"maxConcurrency": 1, "queueMemoryLimit": 2}}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    // The holder keeps the one slot busy while the backlog builds up.
    let holder = submit(&api, "sleep", "60000").await;
    wait_on_worker(&api, &holder).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(submit(&api, "echo", &format!("e{i}")).await);
    }
    let stats = api.status().await.unwrap()["asyncEvents"].clone();
    assert_eq!(
        (
            stats["queuedInMemory"].as_u64(),
            stats["backlogInStore"].as_bool()
        ),
        (Some(2), Some(true)),
        "{stats}"
    );
    // The newest, waiting only in the store, is terminated: it never runs,
    // and the backlog still ends once the rest are loaded.
    let (code, body) = terminate(&api, &ids[9], false).await;
    assert_eq!(
        (code, body["outcome"].as_str()),
        (200, Some("done")),
        "{body}"
    );
    let dropped = ids.remove(9);
    // Then the holder goes, and the rest run one by one, oldest first.
    assert_eq!(terminate(&api, &holder, false).await.0, 200);
    for id in &ids {
        wait_status(&api, id, "FINISHED").await;
    }
    let e = wait_status(&api, &dropped, "ABORTED").await;
    assert!(
        !logs(&api, &dropped)
            .await
            .iter()
            .any(|l| l.contains("Invoke Start")),
        "a terminated queued event never starts: {e}"
    );
    let ran = listed_ids(
        &api,
        "function=echo&status=FINISHED&orderBy=endTime&order=asc",
    )
    .await;
    assert_eq!(ran, ids);
    // The last refill finds the store drained.
    wait_until("an empty backlog", Duration::from_secs(10), || async {
        let stats = api.status().await.unwrap()["asyncEvents"].clone();
        stats["queuedInMemory"] == 0 && stats["backlogInStore"] == false
    })
    .await;
    host.shutdown().await;
}

#[tokio::test]
async fn retries_beyond_the_memory_limit_wait_in_the_store_and_all_run() {
    init_logs();
    let app = TestApp::sample(json!({"asyncEvents": {
        "maxConcurrency": 6, "queueMemoryLimit": 2,
        "maxRetryAttempts": 1, "retryBackoff": "00:00:01"
    }}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(submit(&api, "fail", &format!("f{i}")).await);
    }
    // Six retries pending, two held: the rest wait in the store.
    wait_until(
        "retries left in the store",
        Duration::from_secs(10),
        || async {
            let stats = api.status().await.unwrap()["asyncEvents"].clone();
            stats["retriesInStore"] == true && stats["waiting"] == 2
        },
    )
    .await;
    for id in &ids {
        let e = wait_status(&api, id, "FAILED").await;
        assert_eq!(
            (e["attempts"].as_i64(), e["statusCode"].as_i64()),
            (Some(2), Some(430)),
            "{e}"
        );
    }
    wait_until("no retries left", Duration::from_secs(10), || async {
        let stats = api.status().await.unwrap()["asyncEvents"].clone();
        stats["retriesInStore"] == false && stats["waiting"] == 0
    })
    .await;
    host.shutdown().await;
}

#[tokio::test]
async fn an_event_past_its_maximum_age_never_starts() {
    init_logs();
    let app = TestApp::sample(
        json!({"asyncEvents": {"maxConcurrency": 1, "maxEventAge": "00:00:00.300"}}),
    );
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    // The one slot is busy well past the second event's age.
    let holder = submit(&api, "sleep", "800").await;
    wait_on_worker(&api, &holder).await;
    let late = submit(&api, "echo", "too late").await;
    let e = wait_status(&api, &late, "FAILED").await;
    assert_eq!(
        (e["statusCode"].as_i64(), e["attempts"].as_i64()),
        (Some(460), Some(0)),
        "{e}"
    );
    assert!(
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("maximum event age"),
        "{e}"
    );
    let lines = logs(&api, &late).await;
    assert!(
        !lines.iter().any(|l| l.contains("Invoke Start")),
        "{lines:?}"
    );
    assert_eq!(
        wait_status(&api, &holder, "FINISHED").await["statusCode"],
        200
    );
    host.shutdown().await;
}

#[tokio::test]
async fn ended_events_are_pruned_after_the_retention_window() {
    init_logs();
    let app = TestApp::sample(
        json!({"asyncEvents": {"retention": "00:00:01", "pruneInterval": "00:00:00.100"}}),
    );
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let id = submit(&api, "echo", "x").await;
    // Only the 404 is awaited: the event may finish and be pruned between
    // two polls on a slow machine.
    wait_until(
        "the event to be pruned",
        Duration::from_secs(10),
        || async {
            api.admin_get(&format!("/admin/async-events/{id}"))
                .await
                .unwrap()
                .status
                == 404
        },
    )
    .await;
    // It ran to the end first: only ended events are pruned.
    let outcomes = api.status().await.unwrap()["outcomes"].clone();
    assert_eq!(outcomes["succeeded"], 1, "{outcomes}");
    host.shutdown().await;
}

/// An `echo` event that finished at `end_ms`, as a store insert.
fn ended_event(id: String, end_ms: i64) -> fnhost::events::WriteOp {
    use fnhost::events::{EventRecord, EventStatus, InvokeType, WriteOp};
    let mut event = EventRecord::queued(
        id.into(),
        "echo".into(),
        "$LATEST".into(),
        InvokeType::Api,
        Vec::new(),
        end_ms - 5,
    );
    event.status = EventStatus::Finished;
    event.attempts = 1;
    event.end_ms = Some(end_ms);
    WriteOp::Insert {
        event,
        idempotency: None,
    }
}

/// Starts a host of `app` on the store already written in `data_dir`.
async fn start_on_data_dir(app: &TestApp, data_dir: std::path::PathBuf) -> fnhost::Host {
    let opts = fnhost::HostOptions {
        data_dir,
        ..fnhost::HostOptions::loopback(app.config(), ADMIN_KEY)
    };
    fnhost::Host::start(opts).await.unwrap()
}

/// The store's `totalCount` of events.
async fn total_events(api: &Api) -> u64 {
    list(api, "limit=0").await.json()["totalCount"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn one_prune_round_deletes_a_backlog_larger_than_a_chunk() {
    use fnhost::events::{EventStore, SqliteStore, WriteOp};
    init_logs();
    // The interval's first tick comes at start and the next an hour
    // later: only the first round can delete them, so it must go on past
    // its first chunk (250) until the backlog is gone.
    let app = TestApp::sample(
        json!({"asyncEvents": {"retention": "00:01:00", "pruneInterval": "01:00:00"}}),
    );
    let data_dir = app.dir().join("data");
    let now = fnhost::events::time::now_ms();
    {
        let store = SqliteStore::open(&data_dir.join("events.db")).unwrap();
        let old: Vec<WriteOp> = (0..2_500)
            .map(|i| ended_event(format!("old-{i}"), now - 3_600_000))
            .collect();
        store.apply(&old).unwrap();
        store.apply(&[ended_event("old-9999".into(), now)]).unwrap();
    }
    let host = start_on_data_dir(&app, data_dir).await;
    let api = Api::new(host.http_addr());
    wait_until(
        "the backlog to be pruned",
        Duration::from_secs(20),
        || async { total_events(&api).await == 1 },
    )
    .await;
    let kept = api.admin_get("/admin/async-events/old-9999").await.unwrap();
    assert_eq!(kept.status, 200, "the event inside the window stays");
    host.shutdown().await;
}

#[tokio::test]
async fn a_prune_under_way_stops_at_shutdown_and_the_store_is_left_alone() {
    use fnhost::events::{EventStore, ListQuery, SqliteStore, WriteOp};
    init_logs();
    // Enough ended events for seconds of chunks: shutdown comes first.
    let app = TestApp::sample(json!({"asyncEvents": {"retention": "00:01:00"}}));
    let data_dir = app.dir().join("data");
    let db = data_dir.join("events.db");
    let ended_at = fnhost::events::time::now_ms() - 3_600_000;
    {
        let store = SqliteStore::open(&db).unwrap();
        for chunk in 0..20 {
            let batch: Vec<WriteOp> = (0..5_000)
                .map(|i| ended_event(format!("old-{chunk}-{i}"), ended_at))
                .collect();
            store.apply(&batch).unwrap();
        }
    }
    let host = start_on_data_dir(&app, data_dir).await;
    let api = Api::new(host.http_addr());
    wait_until("the prune to begin", Duration::from_secs(10), || async {
        total_events(&api).await < 100_000
    })
    .await;
    host.shutdown().await;
    // Nothing writes to the store once shutdown has returned.
    let count = || {
        let store = SqliteStore::open(&db).unwrap();
        store.list(&ListQuery::default()).unwrap().total
    };
    let left = count();
    assert!(
        left > 0,
        "the whole backlog went before shutdown; make it larger"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(),
        left,
        "a prune went on writing after shutdown returned"
    );
}

#[tokio::test]
async fn graceful_shutdown_leaves_events_queued_and_a_restart_runs_them() {
    init_logs();
    // A memory limit below the backlog: the restart loads it page by page.
    let app = TestApp::sample(json!({"asyncEvents": {"maxConcurrency": 1, "queueMemoryLimit": 2}}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let mut ids = vec![submit(&api, "sleep", "800").await];
    for _ in 0..5 {
        ids.push(submit(&api, "sleep", "20").await);
    }
    wait_status(&api, &ids[0], "RUNNING").await;
    host.shutdown().await;

    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    for id in &ids {
        let e = wait_status(&api, id, "FINISHED").await;
        assert_eq!(e["statusCode"], 200);
    }
    let first = logs(&api, &ids[0]).await;
    assert!(first.iter().any(|l| l.contains("re-queued")), "{first:?}");
    // One at a time, in the order they were accepted.
    assert_eq!(listed_ids(&api, "orderBy=endTime&order=asc").await, ids);
    host.shutdown().await;
}

#[tokio::test]
async fn an_event_that_fails_for_good_is_sent_to_on_failure() {
    init_logs();
    let app = TestApp::sample(json!({"asyncEvents": {"maxRetryAttempts": 0, "onFailure": "echo"}}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let failed = submit(&api, "fail", "bad").await;
    wait_status(&api, &failed, "FAILED").await;
    wait_until(
        "the onFailure event to finish",
        Duration::from_secs(10),
        || async {
            list(&api, "invokeType=onFailure&status=FINISHED")
                .await
                .json()["totalCount"]
                == 1
        },
    )
    .await;
    let page = list(&api, "invokeType=onFailure").await.json();
    let id = page["events"][0]["requestId"].as_str().unwrap().to_string();
    let e = event(&api, &id).await;
    assert_eq!(e["function"], "echo");
    // echo returns what it got: the failed event as JSON.
    let payload: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    assert_eq!(payload["requestId"], failed.as_str());
    assert_eq!(payload["status"], "FAILED");
    assert_eq!(payload["statusCode"], 430);
    assert_eq!(payload["input"], "bad");
    assert!(logs(&api, &failed)
        .await
        .iter()
        .any(|l| l.contains("sent to onFailure")));
    host.shutdown().await;
}

#[tokio::test]
async fn a_large_input_is_read_back_from_the_store_when_the_event_runs() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let body = "y".repeat(10 * 1024);
    let r = api
        .request(
            "POST",
            "/admin/functions/echo/invoke-async",
            body.clone(),
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let id = r.json()["requestId"].as_str().unwrap().to_string();
    let e = wait_status(&api, &id, "FINISHED").await;
    assert_eq!(e["result"].as_str().map(str::len), Some(body.len()));
    host.shutdown().await;
}

#[tokio::test]
async fn pages_read_on_by_cursor_and_an_offset_walk_does_not_shift_under_new_events() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    for i in 0..12 {
        submit(&api, "echo", &format!("c{i}")).await;
    }
    let whole = listed_ids(&api, "function=echo&limit=100").await;
    assert_eq!(whole.len(), 12);
    // By cursor: each full page hands out the next one's.
    let mut walked = Vec::new();
    let mut q = "function=echo&limit=5".to_string();
    loop {
        let page = list(&api, &q).await.json();
        let ids: Vec<String> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["requestId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(page["totalCount"], 12, "{page}");
        walked.extend(ids);
        match page["nextCursor"].as_str() {
            Some(c) => q = format!("function=echo&limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, whole);
    // By offset, with newer events accepted between the pages: the second
    // page goes on from the first one's last event (newest first, so a plain
    // offset would repeat the first page's last three).
    let first = listed_ids(&api, "function=echo&limit=5").await;
    assert_eq!(first, whole[..5]);
    for i in 0..3 {
        submit(&api, "echo", &format!("late{i}")).await;
    }
    let second = list(&api, "function=echo&limit=5&offset=5").await.json();
    let ids: Vec<&str> = second["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["requestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, whole[5..10], "{second}");
    assert_eq!(second["totalCount"], 15, "the total is current");
    // A cursor is checked: junk, or one of another order, is refused.
    let r = list(&api, "cursor=sd.x.1").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("`cursor`"), "{}", r.text());
    let r = list(&api, "order=asc&cursor=sd.1.1").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("another order"), "{}", r.text());
    host.shutdown().await;
}

/// `GET /admin/async-events/{id}`'s input route: the body as it arrived,
/// with its content type and kind; posted back to `invoke-async` it makes
/// the same input (the console's re-run).
#[tokio::test]
async fn an_events_input_reads_back_as_it_arrived_and_reruns_the_same() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let accept = |function: &'static str, body: &'static str, content_type: &'static str| {
        let api = &api;
        async move {
            let r = api
                .request_with(
                    "POST",
                    &format!("/admin/functions/{function}/invoke-async"),
                    body,
                    &[
                        ("x-functions-key", ADMIN_KEY),
                        ("content-type", content_type),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["requestId"].as_str().unwrap().to_string()
        }
    };
    let input = |id: String| {
        let api = &api;
        async move {
            api.admin_get(&format!("/admin/async-events/{id}/input"))
                .await
                .unwrap()
        }
    };
    // A manual trigger's JSON and text inputs; echo's HTTP request.
    let cases = [
        (
            "log",
            r#"{"a": [1, "<b>"]}"#,
            "application/json",
            "json",
            "application/json",
        ),
        (
            "log",
            "plain words",
            "text/plain",
            "string",
            "text/plain; charset=utf-8",
        ),
        (
            "echo",
            "hello body",
            "text/x-custom",
            "http",
            "text/x-custom",
        ),
    ];
    for (function, body, sent_type, kind, content_type) in cases {
        let id = accept(function, body, sent_type).await;
        let r = input(id.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), body, "{function}: {kind}");
        assert_eq!(r.header("x-fnhost-input-kind"), kind);
        assert_eq!(r.header("content-type"), content_type);
        assert_eq!(r.header("x-content-type-options"), "nosniff");
        assert_eq!(r.header("content-disposition"), "attachment");
        // Posted back with its content type: the same input again.
        let again = accept(function, body, sent_type).await;
        assert_ne!(again, id);
        let r2 = input(again).await;
        assert_eq!(
            (r2.text(), r2.header("x-fnhost-input-kind")),
            (body.to_string(), kind)
        );
    }
    let r = api
        .admin_get("/admin/async-events/nope/input")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("nope"), "{}", r.text());
    let id = accept("log", "secret input", "text/plain").await;
    assert_eq!(
        api.get_status(&format!("/admin/async-events/{id}/input"), None)
            .await,
        401
    );
    assert_eq!(
        api.get_status(
            &format!("/admin/async-events/{id}/input"),
            Some("wrong-key")
        )
        .await,
        401
    );
    host.shutdown().await;
}
