//! The shared store's schema and retention: a newer schema is refused, a
//! schema 3 database is migrated with its rows in their partitions, and
//! retention drops whole partitions.

use std::process::Command;
use std::time::Duration;

use fnhost_e2e::{binary, wait_until, ADMIN_KEY};
use fnhost_proto::rpc::TypedData;
use prost::Message;
use serde_json::json;

use super::super::async_events::{event, logs};
use super::{cluster_host_json, submit, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_newer_schema_is_refused_with_exit_4() {
    let Some(setup) = Setup::new("a_database_with_a_newer_schema_is_refused") else {
        return;
    };
    // The first host creates the schema and leaves the hosts table on
    // SIGTERM.
    let mut a = setup.node("a").await;
    a.signal("-TERM");
    a.process.0.wait().unwrap();
    assert_eq!(setup.sql("SELECT COUNT(*) FROM fnhost_hosts"), "0");
    setup.sql("UPDATE fnhost_schema SET version = 99");
    let out = Command::new(binary("fnhost"))
        .env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .env("FNHOST_EVENT_STORE", &setup.url)
        .arg("start")
        .arg(setup.app.dir())
        .args(["--port", "0", "--data-dir"])
        .arg(setup.dirs.path().join("b"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "schema version 99, newer than this host's {}",
            fnhost::events::postgres::MIGRATIONS.len()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_event_past_retention_is_pruned_with_its_lines_key_and_count() {
    let mut host_json = cluster_host_json();
    host_json["asyncEvents"]["retention"] = json!("00:00:02");
    host_json["asyncEvents"]["pruneInterval"] = json!("00:00:00.500");
    let Some(setup) = Setup::with_host_json("an_ended_event_past_retention_is_pruned", host_json)
    else {
        return;
    };
    let a = setup.node("a").await;
    let b = setup.node("b").await;
    let (status, first) = submit(&a.api, "echo", "once", Some("order-7")).await;
    assert_eq!(status, 202, "{first}");
    let id = first["requestId"].as_str().unwrap().to_string();
    wait_until("the event to finish", Duration::from_secs(15), || async {
        event(&b.api, &id).await["status"] == "FINISHED"
    })
    .await;
    // Ended events sit in partitions by end time; retention drops the
    // whole table, not the row.
    let partition = setup.sql(&format!(
        "SELECT tableoid::regclass::text FROM fnhost_ended WHERE request_id = '{id}'"
    ));
    let partition = partition.trim().to_string();
    assert!(partition.starts_with("fnhost_ended_p"), "{partition}");
    let lines_partition = setup.sql(&format!(
        "SELECT DISTINCT tableoid::regclass::text FROM fnhost_event_logs WHERE request_id = '{id}'"
    ));
    assert!(
        lines_partition.trim().starts_with("fnhost_event_logs_p"),
        "{lines_partition}"
    );
    wait_until(
        "the event to be pruned",
        Duration::from_secs(20),
        || async { setup.count(&format!("request_id = '{id}'")) == 0 },
    )
    .await;
    assert_eq!(
        setup.sql(&format!("SELECT to_regclass('{partition}') IS NULL")),
        "t",
        "its partition {partition} was dropped"
    );
    assert_eq!(
        setup.sql(
            "SELECT (SELECT COUNT(*) FROM fnhost_ended_default)
                  + (SELECT COUNT(*) FROM fnhost_event_logs_default)"
        ),
        "0",
        "no row missed its partition"
    );
    let r = b
        .api
        .admin_get(&format!("/admin/async-events/{id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        setup.sql(&format!(
            "SELECT COUNT(*) FROM fnhost_event_logs WHERE request_id = '{id}'"
        )),
        "0",
        "its lines went with it"
    );
    setup.assert_counts_match();
    let r = b
        .api
        .admin_get("/admin/async-events?function=echo")
        .await
        .unwrap();
    assert_eq!(r.json()["totalCount"], 0, "{}", r.text());
    // Its idempotency key went with it too: the same key makes a new event.
    let (status, again) = submit(&b.api, "echo", "once", Some("order-7")).await;
    assert_eq!(status, 202, "{again}");
    assert_ne!(again["requestId"], first["requestId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_3_database_is_migrated_with_its_rows_in_their_partitions() {
    let Some(setup) = Setup::new("a_schema_3_database_is_migrated") else {
        return;
    };
    // A database as schema 3 left it: one ended event with a log line and
    // an idempotency key, one waiting.
    for sql in &fnhost::events::postgres::MIGRATIONS[..3] {
        setup.sql(sql);
    }
    let now = fnhost::events::time::now_ms();
    let input: String = TypedData::string("migrated")
        .encode_to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (done, queued) = (now - 7_200_000, now - 3_600_000);
    setup.sql(&format!(
        "CREATE TABLE fnhost_schema (version INTEGER NOT NULL);
         INSERT INTO fnhost_schema VALUES (3);
         INSERT INTO fnhost_events (request_id, function, qualifier, invoke_type, status,
             status_code, attempts, input, start_ms, end_ms, idem_key, idem_digest)
         VALUES ('old-done', 'echo', '$LATEST', 'api', 'FINISHED', 200, 1, '\\x{input}',
                 {done}, {done} + 5, 'k-old', '\\x00'),
                ('old-waiting', 'echo', '$LATEST', 'api', 'QUEUED', NULL, 0, '\\x{input}',
                 {queued}, NULL, NULL, NULL);
         INSERT INTO fnhost_ready (request_id, seq, ready_at)
             SELECT request_id, seq, start_ms FROM fnhost_events WHERE status = 'QUEUED';
         INSERT INTO fnhost_event_logs (request_id, time_ms, line)
             VALUES ('old-done', {done} + 1, 'a line from before the migration');
         INSERT INTO fnhost_event_counts VALUES ('echo', '$LATEST', 'api', 'FINISHED', 1),
             ('echo', '$LATEST', 'api', 'QUEUED', 1);"
    ));
    let a = setup.node("a").await;
    assert_eq!(
        setup.sql("SELECT version FROM fnhost_schema"),
        fnhost::events::postgres::MIGRATIONS.len().to_string()
    );
    // The ended event and its line moved out of the default partitions
    // into partitions of their own, made as the host connected.
    let partition = setup
        .sql("SELECT tableoid::regclass::text FROM fnhost_ended WHERE request_id = 'old-done'");
    assert!(partition.starts_with("fnhost_ended_p"), "{partition}");
    let partition = setup.sql(
        "SELECT tableoid::regclass::text FROM fnhost_event_logs WHERE request_id = 'old-done'",
    );
    assert!(partition.starts_with("fnhost_event_logs_p"), "{partition}");
    let v = event(&a.api, "old-done").await;
    assert_eq!(v["status"], "FINISHED", "{v}");
    let lines = logs(&a.api, "old-done").await;
    assert_eq!(lines, ["a line from before the migration"], "{lines:?}");
    // The waiting one runs.
    wait_until(
        "the migrated waiting event to finish",
        Duration::from_secs(15),
        || async { event(&a.api, "old-waiting").await["status"] == "FINISHED" },
    )
    .await;
    // The key still names the old event.
    let (status, body) = submit(&a.api, "echo", "another body", Some("k-old")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        setup.sql(
            "SELECT (SELECT COUNT(*) FROM fnhost_ended_default)
                  + (SELECT COUNT(*) FROM fnhost_event_logs_default)"
        ),
        "0"
    );
    setup.assert_counts_match();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_merges_live_and_ended_events_in_order_with_filters_and_totals() {
    let Some(setup) = Setup::new("a_list_merges_live_and_ended_events") else {
        return;
    };
    let a = setup.node("a").await;
    // Five ended events (even starts) and five live ones (odd starts, no
    // ready marker: nothing claims them), interleaved in time.
    let t0 = fnhost::events::time::now_ms() - 600_000;
    setup.sql(&format!(
        "INSERT INTO fnhost_ended (seq, request_id, function, qualifier, invoke_type, status,
             status_code, attempts, input, start_ms, end_ms)
         SELECT nextval('fnhost_events_seq_seq'), 'e' || i, 'lister', '$LATEST', 'api',
             'FINISHED', 200, 1, ''::bytea, {t0} + i, {t0} + i + 100
         FROM generate_series(0, 8, 2) AS i;
         INSERT INTO fnhost_events (request_id, function, qualifier, invoke_type, status,
             attempts, input, start_ms)
         SELECT 'l' || i, 'lister', '$LATEST', 'api', 'QUEUED', 0, ''::bytea, {t0} + i
         FROM generate_series(1, 9, 2) AS i;
         INSERT INTO fnhost_event_counts VALUES ('lister', '$LATEST', 'api', 'FINISHED', 5),
             ('lister', '$LATEST', 'api', 'QUEUED', 5);"
    ));
    let page = |q: String| {
        let api = a.api.clone();
        async move {
            let r = api
                .admin_get(&format!("/admin/async-events?function=lister&{q}"))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            let ids: Vec<String> = v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["requestId"].as_str().unwrap().to_string())
                .collect();
            (v["totalCount"].as_u64().unwrap(), ids)
        }
    };
    // Newest first across both tables, the offset counted over both.
    assert_eq!(
        page("limit=3&offset=2".into()).await,
        (10, vec!["l7".into(), "e6".into(), "l5".into()])
    );
    assert_eq!(
        page("order=asc&limit=4&offset=4".into()).await,
        (10, vec!["e4".into(), "l5".into(), "e6".into(), "l7".into()])
    );
    // A status names the table; a start bound counts rows.
    assert_eq!(
        page("status=QUEUED&limit=2".into()).await,
        (5, vec!["l9".into(), "l7".into()])
    );
    let from = t0 + 5;
    assert_eq!(
        page(format!("startTimeFrom={from}&order=asc&limit=2")).await,
        (5, vec!["l5".into(), "e6".into()])
    );
    // An end bound only matches ended events; so does ordering by end
    // time put live ones last.
    let end_from = t0 + 104;
    assert_eq!(
        page(format!("endTimeFrom={end_from}&order=asc")).await,
        (3, vec!["e4".into(), "e6".into(), "e8".into()])
    );
    let (total, ids) = page("orderBy=endTime&order=asc&limit=7".into()).await;
    assert_eq!(total, 10);
    assert_eq!(ids[..5], ["e0", "e2", "e4", "e6", "e8"], "{ids:?}");
    assert!(ids[5..].iter().all(|id| id.starts_with('l')), "{ids:?}");
    // By cursor over both tables, in both orders by end time (live
    // events, which have none, last).
    for order in [
        "orderBy=endTime&order=asc",
        "orderBy=endTime&order=desc",
        "order=desc",
    ] {
        let whole = page(format!("{order}&limit=100")).await.1;
        let mut walked = Vec::new();
        let mut q = format!("{order}&limit=3");
        loop {
            let r = a
                .api
                .admin_get(&format!("/admin/async-events?function=lister&{q}"))
                .await
                .unwrap();
            let v = r.json();
            walked.extend(
                v["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["requestId"].as_str().unwrap().to_string()),
            );
            match v["nextCursor"].as_str() {
                Some(c) => q = format!("{order}&limit=3&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(walked, whole, "{order}");
    }
    // One event by id from either table.
    assert_eq!(event(&a.api, "e2").await["status"], "FINISHED");
    assert_eq!(event(&a.api, "l3").await["status"], "QUEUED");
}
