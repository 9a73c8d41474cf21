use rusqlite::{params, Connection};

use super::schema::MIGRATIONS;
use super::*;
use crate::events::{EventStatus, InvokeType, StatusCode, INLINE_INPUT_LIMIT};

fn store() -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("fnhost-store-{}", uuid::Uuid::new_v4()));
    (SqliteStore::open(&dir.join("events.db")).unwrap(), dir)
}

fn event(id: &str, function: &str, start: i64, status: EventStatus) -> EventRecord {
    EventRecord {
        request_id: id.into(),
        function: function.into(),
        qualifier: "$LATEST".into(),
        invoke_type: InvokeType::Api,
        status,
        status_code: None,
        attempts: 0,
        input: vec![1, 2],
        result: None,
        error: None,
        start_ms: start,
        end_ms: status.is_final().then_some(start + 10),
        next_attempt_ms: None,
        owner_host: None,
        lease_token: None,
        trace_parent: None,
        trace_state: None,
    }
}

fn insert(s: &SqliteStore, e: EventRecord) {
    s.apply(&[WriteOp::Insert {
        event: e,
        idempotency: None,
    }])
    .unwrap();
}

#[test]
fn filters_order_and_pages() {
    let (s, dir) = store();
    for i in 0..30 {
        let status = if i % 3 == 0 {
            EventStatus::Failed
        } else {
            EventStatus::Finished
        };
        insert(
            &s,
            event(
                &format!("e{i:02}"),
                if i < 20 { "a" } else { "b" },
                1000 + i,
                status,
            ),
        );
    }
    let q = ListQuery {
        function: Some("a".into()),
        limit: 5,
        ..ListQuery::default()
    };
    let page = s.list(&q).unwrap();
    assert_eq!(page.total, 20);
    let ids: Vec<_> = page.events.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, ["e19", "e18", "e17", "e16", "e15"]);
    let q = ListQuery {
        statuses: vec![EventStatus::Failed],
        ascending: true,
        start_from: Some(1003),
        start_to: Some(1009),
        limit: 100,
        ..ListQuery::default()
    };
    let ids: Vec<_> = s
        .list(&q)
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.request_id.into_string())
        .collect();
    assert_eq!(ids, ["e03", "e06"], "start inclusive, end exclusive");
    let q = ListQuery {
        offset: 100,
        limit: 10,
        ..ListQuery::default()
    };
    let page = s.list(&q).unwrap();
    assert_eq!((page.total, page.events.len()), (30, 0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn events_of_the_same_millisecond_list_in_the_order_they_were_accepted() {
    let (s, dir) = store();
    // Random request ids that sort against the acceptance order.
    for id in ["zz", "mm", "aa"] {
        insert(&s, event(id, "a", 1000, EventStatus::Finished));
    }
    let ids = |q: ListQuery| -> Vec<String> {
        let page = s.list(&ListQuery { limit: 10, ..q }).unwrap();
        page.events
            .into_iter()
            .map(|e| e.request_id.into_string())
            .collect()
    };
    let asc = ListQuery {
        ascending: true,
        ..ListQuery::default()
    };
    assert_eq!(ids(asc.clone()), ["zz", "mm", "aa"]);
    assert_eq!(ids(ListQuery::default()), ["aa", "mm", "zz"]);
    let by_end = ListQuery {
        order_by_end: true,
        ..asc
    };
    assert_eq!(ids(by_end), ["zz", "mm", "aa"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn queued_pages_in_acceptance_order_and_interrupted_is_only_running() {
    let (s, dir) = store();
    // Acceptance order differs from the ids' order; two share a millisecond.
    for (id, start) in [("q3", 30), ("q1", 10), ("q2", 10), ("q4", 40)] {
        insert(&s, event(id, "a", start, EventStatus::Queued));
    }
    insert(&s, event("r", "a", 5, EventStatus::Running));
    insert(&s, event("t", "a", 6, EventStatus::Retrying));
    insert(&s, event("f", "a", 1, EventStatus::Finished));
    let mut big = event("q5", "a", 50, EventStatus::Queued);
    big.input = vec![7; INLINE_INPUT_LIMIT + 1];
    insert(&s, big);
    let ids = |v: &[(i64, EventRecord)]| -> Vec<String> {
        v.iter().map(|(_, e)| e.request_id.to_string()).collect()
    };
    // Acceptance order is insertion order.
    let start = s.queue_start().unwrap();
    let page = s.queued(start, 3).unwrap();
    assert_eq!(ids(&page), ["q3", "q1", "q2"]);
    let rest = s.queued(page[2].0, 100).unwrap();
    assert_eq!(ids(&rest), ["q4", "q5"]);
    assert!(
        rest[1].1.input.is_empty(),
        "a large input is left in the store"
    );
    assert_eq!(rest[0].1.input, [1, 2]);
    assert!(s.queued(rest[1].0, 100).unwrap().is_empty());
    let interrupted: Vec<String> = s
        .interrupted()
        .unwrap()
        .into_iter()
        .map(|e| e.request_id.into_string())
        .collect();
    assert_eq!(interrupted, ["r"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn totals_from_the_count_table_match_a_count_of_the_events() {
    let (s, dir) = store();
    let statuses = [
        EventStatus::Queued,
        EventStatus::Running,
        EventStatus::Finished,
    ];
    for i in 0..60i64 {
        let mut e = event(
            &format!("e{i}"),
            ["a", "b", "c"][i as usize % 3],
            i,
            statuses[i as usize % 3],
        );
        e.invoke_type = if i % 4 == 0 {
            InvokeType::Scf
        } else {
            InvokeType::Api
        };
        e.qualifier = if i % 5 == 0 { "v1" } else { "$LATEST" }.into();
        insert(&s, e);
    }
    // Status changes, an update that changes nothing, and a prune.
    for i in (1..60).step_by(3) {
        let op = WriteOp::Update {
            request_id: format!("e{i}").into(),
            status: EventStatus::Failed,
            status_code: Some(StatusCode::FunctionError),
            attempts: 1,
            result: None,
            error: None,
            end_ms: Some(5),
            next_attempt_ms: None,
            lease_token: None,
            lines: Vec::new(),
        };
        s.apply(&[op]).unwrap();
    }
    // In chunks of 4, as the runner prunes: each chunk keeps the counts.
    while s
        .apply(&[WriteOp::Prune {
            before_ms: 20,
            limit: 4,
        }])
        .unwrap()
        == [WriteOutcome::Pruned(4)]
    {}
    let queries = [
        ListQuery::default(),
        ListQuery {
            function: Some("a".into()),
            ..ListQuery::default()
        },
        ListQuery {
            function: Some("b".into()),
            statuses: vec![EventStatus::Failed, EventStatus::Queued],
            ..ListQuery::default()
        },
        ListQuery {
            statuses: vec![EventStatus::Finished],
            ..ListQuery::default()
        },
        ListQuery {
            qualifier: Some("v1".into()),
            invoke_types: vec!["scf".into()],
            ..ListQuery::default()
        },
        ListQuery {
            function: Some("none".into()),
            ..ListQuery::default()
        },
    ];
    for q in queries {
        let direct = SqliteStore::list(
            &s,
            &ListQuery {
                start_from: Some(i64::MIN),
                ..q.clone()
            },
        )
        .unwrap()
        .total;
        assert_eq!(s.list(&q).unwrap().total, direct, "{q:?}");
    }
    let all: i64 = s
        .read(|c| c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(s.list(&ListQuery::default()).unwrap().total, all as u64);
    assert!(all < 60, "the prune removed some");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_v2_store_with_events_migrates_with_its_counts_and_sequence() {
    let dir = std::env::temp_dir().join(format!("fnhost-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");
    {
        let c = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..2] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch("PRAGMA user_version = 2").unwrap();
        for (i, (function, status)) in [
            ("a", "FINISHED"),
            ("a", "QUEUED"),
            ("b", "FINISHED"),
            ("a", "FINISHED"),
        ]
        .into_iter()
        .enumerate()
        {
            c.execute(
                "INSERT INTO events (request_id, function, qualifier, invoke_type, status,
                     input, start_ms) VALUES (?1, ?2, '$LATEST', 'api', ?3, x'', ?4)",
                params![format!("e{i}"), function, status, i as i64],
            )
            .unwrap();
        }
    }
    let s = SqliteStore::open(&path).unwrap();
    let total = |function: &str, status: EventStatus| {
        let q = ListQuery {
            function: Some(function.into()),
            statuses: vec![status],
            ..ListQuery::default()
        };
        s.list(&q).unwrap().total
    };
    assert_eq!(total("a", EventStatus::Finished), 2);
    assert_eq!(total("a", EventStatus::Queued), 1);
    assert_eq!(total("b", EventStatus::Finished), 1);
    assert_eq!(s.list(&ListQuery::default()).unwrap().total, 4);
    let out = s
        .apply(&[WriteOp::Insert {
            event: event("new", "a", 9, EventStatus::Queued),
            idempotency: None,
        }])
        .unwrap();
    assert_eq!(out, [WriteOutcome::Inserted(5)], "after the 4 rows there");
    assert_eq!(s.queue_start().unwrap(), 1, "just below the queued e1");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn retrying_events_come_earliest_due_first() {
    let (s, dir) = store();
    for (id, due) in [("late", 300), ("soon", 100), ("mid", 200)] {
        let mut e = event(id, "a", 1, EventStatus::Retrying);
        e.next_attempt_ms = Some(due);
        insert(&s, e);
    }
    insert(&s, event("q", "a", 1, EventStatus::Queued));
    let ids: Vec<String> = s
        .retrying(2)
        .unwrap()
        .into_iter()
        .map(|e| e.request_id.into_string())
        .collect();
    assert_eq!(ids, ["soon", "mid"]);
    assert_eq!(s.retrying(10).unwrap().len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sequence_numbers_are_never_given_out_again() {
    let (s, dir) = store();
    let ins = |s: &SqliteStore, id: &str| {
        s.apply(&[WriteOp::Insert {
            event: event(id, "a", 100, EventStatus::Finished),
            idempotency: None,
        }])
        .unwrap()
        .remove(0)
    };
    assert_eq!(ins(&s, "a"), WriteOutcome::Inserted(1));
    assert_eq!(ins(&s, "b"), WriteOutcome::Inserted(2));
    // Pruning every row (the newest too) does not rewind the sequence,
    // nor does reopening the store.
    s.apply(&[WriteOp::Prune {
        before_ms: 10_000,
        limit: 1000,
    }])
    .unwrap();
    assert_eq!(ins(&s, "c"), WriteOutcome::Inserted(3));
    s.apply(&[WriteOp::Prune {
        before_ms: 10_000,
        limit: 1000,
    }])
    .unwrap();
    drop(s);
    let s = SqliteStore::open(&dir.join("events.db")).unwrap();
    assert_eq!(ins(&s, "d"), WriteOutcome::Inserted(4));
    assert_eq!(s.queue_start().unwrap(), 4, "none queued: the newest");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn updates_never_change_an_ended_event() {
    let (s, dir) = store();
    insert(&s, event("q", "a", 1, EventStatus::Queued));
    let update = |status: EventStatus, line: &str| WriteOp::Update {
        request_id: "q".into(),
        status,
        status_code: None,
        attempts: 1,
        result: None,
        error: None,
        end_ms: status.is_final().then_some(2),
        next_attempt_ms: None,
        lease_token: None,
        lines: vec![EventLogLine {
            time_ms: 1,
            line: line.into(),
        }],
    };
    let apply = |op| s.apply(&[op]).unwrap().remove(0);
    assert_eq!(
        apply(update(EventStatus::Aborted, "aborted")),
        WriteOutcome::Done
    );
    // An attempt that raced the abort finds the event ended.
    assert_eq!(
        apply(update(EventStatus::Running, "start")),
        WriteOutcome::Unchanged
    );
    assert_eq!(
        apply(update(EventStatus::Finished, "end")),
        WriteOutcome::Unchanged
    );
    let e = s.get(&"q".into()).unwrap().unwrap();
    assert_eq!(e.status, EventStatus::Aborted);
    let lines: Vec<_> = s
        .logs(&"q".into())
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(lines, ["aborted"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idempotency_keys_return_the_first_id_or_a_conflict() {
    let (s, dir) = store();
    let ins = |id: &str, digest: &[u8]| {
        s.apply(&[WriteOp::Insert {
            event: event(id, "a", 1, EventStatus::Queued),
            idempotency: Some(("k".into(), digest.to_vec())),
        }])
        .unwrap()
        .remove(0)
    };
    assert_eq!(ins("x", b"1"), WriteOutcome::Inserted(1));
    assert_eq!(ins("y", b"1"), WriteOutcome::Duplicate("x".into()));
    assert_eq!(ins("z", b"2"), WriteOutcome::Conflict("x".into()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_limited_prune_takes_the_earliest_ended_first() {
    let (s, dir) = store();
    // Accepted newest first, so neither the rowid nor the id gives the
    // order of their ends.
    for (id, start) in [("d", 400), ("b", 200), ("c", 300), ("a", 100)] {
        insert(&s, event(id, "a", start, EventStatus::Finished));
        s.apply(&[WriteOp::Log {
            request_id: id.into(),
            lines: vec![EventLogLine {
                time_ms: start,
                line: id.into(),
            }],
        }])
        .unwrap();
    }
    insert(&s, event("live", "a", 0, EventStatus::Queued));
    let prune = |limit| {
        s.apply(&[WriteOp::Prune {
            before_ms: 1000,
            limit,
        }])
        .unwrap()
    };
    assert_eq!(prune(2), [WriteOutcome::Pruned(2)]);
    let left = |id: &str| s.get(&id.into()).unwrap().is_some();
    assert!(!left("a") && !left("b") && left("c") && left("d"));
    assert!(s.logs(&"a".into()).unwrap().is_empty());
    assert_eq!(s.logs(&"c".into()).unwrap().len(), 1);
    assert_eq!(s.list(&ListQuery::default()).unwrap().total, 3);
    assert_eq!(prune(2), [WriteOutcome::Pruned(2)]);
    assert_eq!(prune(2), [WriteOutcome::Pruned(0)]);
    assert!(left("live"));
    assert_eq!(s.list(&ListQuery::default()).unwrap().total, 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn prune_removes_old_ended_events_and_their_logs() {
    let (s, dir) = store();
    insert(&s, event("old", "a", 100, EventStatus::Finished));
    insert(&s, event("new", "a", 10_000, EventStatus::Finished));
    insert(&s, event("live", "a", 100, EventStatus::Queued));
    let line = EventLogLine {
        time_ms: 1,
        line: "x".into(),
    };
    s.apply(&[WriteOp::Log {
        request_id: "old".into(),
        lines: vec![line.clone(), line],
    }])
    .unwrap();
    assert_eq!(s.logs(&"old".into()).unwrap().len(), 2);
    let out = s
        .apply(&[WriteOp::Prune {
            before_ms: 5000,
            limit: 1000,
        }])
        .unwrap();
    assert_eq!(out, [WriteOutcome::Pruned(1)]);
    assert!(s.get(&"old".into()).unwrap().is_none());
    assert!(s.logs(&"old".into()).unwrap().is_empty());
    assert!(s.get(&"new".into()).unwrap().is_some() && s.get(&"live".into()).unwrap().is_some());
    assert_eq!(s.queued(0, 10).unwrap().len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn invoke_types_and_status_codes_are_stored_as_their_names_and_numbers() {
    let (s, dir) = store();
    let mut e = event("x", "a", 1, EventStatus::Failed);
    e.invoke_type = InvokeType::OnFailure;
    e.status_code = Some(StatusCode::Timeout);
    insert(&s, e.clone());
    let stored: (String, i64) = s
        .read(|c| {
            c.query_row("SELECT invoke_type, status_code FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .unwrap();
    assert_eq!(stored, ("onFailure".to_string(), 433));
    assert_eq!(s.get(&"x".into()).unwrap(), Some(e));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn paging_from_the_last_key_walks_every_order_as_the_offset_does() {
    let (s, dir) = store();
    // Shared milliseconds, and live events (no end time) among ended ones.
    for i in 0..17i64 {
        let status = match i % 4 {
            0 => EventStatus::Queued,
            1 => EventStatus::Failed,
            _ => EventStatus::Finished,
        };
        insert(&s, event(&format!("k{i:02}"), "a", 1000 + i / 3, status));
    }
    let ids = |page: &ListPage| -> Vec<String> {
        page.events
            .iter()
            .map(|e| e.request_id.as_str().to_string())
            .collect()
    };
    for (ascending, order_by_end) in [(false, false), (true, false), (true, true), (false, true)] {
        let base = ListQuery {
            ascending,
            order_by_end,
            limit: 100,
            ..ListQuery::default()
        };
        let whole = ids(&s.list(&base).unwrap());
        assert_eq!(whole.len(), 17);
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let q = ListQuery {
                limit: 3,
                after,
                ..base.clone()
            };
            let page = s.list(&q).unwrap();
            assert_eq!(page.total, 17, "the total ignores the key");
            if page.events.is_empty() {
                break;
            }
            walked.extend(ids(&page));
            after = page.last;
        }
        assert_eq!(
            walked, whole,
            "ascending {ascending}, by end {order_by_end}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
