//! Target `list_query`: arbitrary query strings for
//! `GET /admin/async-events`, split into parameters as the HTTP layer
//! splits them (axum's `Query`), then read by the list parser.
//! - An accepted query has its limit within 0..=100, the order and page
//!   the last `order`/`orderBy`/`limit`/`offset` asked for, every `status`
//!   asked for, and a page key exactly when a cursor was given.
//! - Written back as a query string (percent-encoded), it reads the same.
//! - A refused one names a parameter the query has: "parameter `name`: ...".

use axum::extract::Query;
use axum::http::Uri;
use fnhost::events::{pages, time, EventStatus, ListQuery};
use fnhost::http::{parse_list_query, MAX_LIMIT};

use crate::engine::{label, Target};

pub const TARGET: Target = Target {
    name: "list_query",
    dictionary: &[
        "&",
        "=",
        "&status=",
        "status=FAILED",
        "status=aborted,RUNNING",
        "status=,",
        "order=asc",
        "order=DESC",
        "orderBy=startTime",
        "orderBy=endTime",
        "limit=100",
        "limit=101",
        "limit=-1",
        "offset=",
        "offset=18446744073709551615",
        "function=echo",
        "qualifier=$LATEST",
        "requestId=",
        "invokeType=http,scf",
        "startTimeFrom=",
        "startTimeTo=2026-11-23T04:01:23Z",
        "endTimeFrom=2026-11-23 04:01:23.123",
        "endTimeTo=0",
        "cursor=sd.1.2",
        "cursor=ed.-.5",
        "cursor=sa.-.1",
        "code=key",
        "1970-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:60.999z",
        "%20",
        "%26",
        "%3D",
        "+",
        "%",
        "%zz",
        "%C3%A9",
    ],
    max_len: 2048,
    run,
};

/// `%XX`-encodes all but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pairs_of(query: &str) -> Option<Vec<(String, String)>> {
    let uri: Uri = format!("/admin/async-events?{query}").parse().ok()?;
    Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .ok()
        .map(|q| q.0)
}

/// `q` as query parameters the parser reads back to `q`.
fn written(q: &ListQuery) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut put = |k: &str, v: String| out.push((k.to_string(), v));
    if let Some(f) = &q.function {
        put("function", f.clone());
    }
    if let Some(v) = &q.qualifier {
        put("qualifier", v.clone());
    }
    if let Some(v) = &q.request_id {
        put("requestId", v.to_string());
    }
    if !q.statuses.is_empty() {
        let names: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
        put("status", names.join(","));
    }
    if !q.invoke_types.is_empty() {
        put("invokeType", q.invoke_types.join(","));
    }
    let when = |ms: i64| {
        if ms >= 0 {
            ms.to_string()
        } else {
            time::rfc3339(ms)
        }
    };
    for (k, v) in [
        ("startTimeFrom", q.start_from),
        ("startTimeTo", q.start_to),
        ("endTimeFrom", q.end_from),
        ("endTimeTo", q.end_to),
    ] {
        if let Some(ms) = v {
            put(k, when(ms));
        }
    }
    put("order", if q.ascending { "asc" } else { "desc" }.into());
    put(
        "orderBy",
        if q.order_by_end {
            "endTime"
        } else {
            "startTime"
        }
        .into(),
    );
    put("offset", q.offset.to_string());
    put("limit", q.limit.to_string());
    if let Some(key) = q.after {
        put("cursor", pages::cursor_text(q, key));
    }
    out
}

fn run(input: &[u8]) -> String {
    let query = String::from_utf8_lossy(input);
    let Some(pairs) = pairs_of(&query) else {
        return "rejected-by-http".into();
    };
    let q = match parse_list_query(&pairs) {
        Ok(q) => q,
        Err(msg) => {
            // A name may hold a backtick itself: some parameter of the
            // query must be the one quoted.
            let rest = msg
                .strip_prefix("parameter `")
                .unwrap_or_else(|| panic!("the error names no parameter: {msg}"));
            assert!(
                pairs.iter().any(|(k, _)| rest
                    .strip_prefix(k.as_str())
                    .is_some_and(|r| r.starts_with('`'))),
                "the error names a parameter the query does not have: {msg}"
            );
            return label("err:", &msg);
        }
    };
    assert!(q.limit <= MAX_LIMIT, "{q:?}");
    let last = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(v) = last("limit") {
        assert_eq!(Some(q.limit), v.parse().ok(), "{pairs:?}");
    } else {
        assert_eq!(q.limit, 20, "the default page");
    }
    assert_eq!(
        q.ascending,
        last("order").is_some_and(|o| o.eq_ignore_ascii_case("asc"))
    );
    assert_eq!(q.order_by_end, last("orderBy") == Some("endTime"));
    assert_eq!(q.after.is_some(), last("cursor").is_some(), "{pairs:?}");
    let statuses: Vec<EventStatus> = pairs
        .iter()
        .filter(|(k, _)| k == "status")
        .flat_map(|(_, v)| v.split(',').filter(|s| !s.is_empty()))
        .map(|s| EventStatus::parse(s).expect("accepted statuses are statuses"))
        .collect();
    assert_eq!(q.statuses, statuses);
    let again = written(&q);
    assert_eq!(
        parse_list_query(&again).as_ref(),
        Ok(&q),
        "written back as {again:?}"
    );
    let text: Vec<String> = again
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let text = text.join("&");
    let through_http = pairs_of(&text).unwrap_or_else(|| panic!("{text:?} is not a query"));
    assert_eq!(
        parse_list_query(&through_http).as_ref(),
        Ok(&q),
        "sent as {text:?}"
    );
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    format!("ok:{}", keys.join(","))
}
