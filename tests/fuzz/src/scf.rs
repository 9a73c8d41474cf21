//! Target `scf`: arbitrary SCF action API request bodies, read as the
//! action handlers read them (`fnhost::fuzzing::scf_request`).
//! - An accepted request, written back as the canonical body (every
//!   parameter the host read, spelled as the SDKs send it), reads the same;
//!   its values are the ones the body gave (`FunctionName`, the limit within
//!   0..=100, `ClientContext` JSON text, ...).
//! - A refusal has a known code; `InvalidParameterValue.<P>` names a
//!   parameter the body has, `MissingParameter` one it lacks (or leaves
//!   empty or null).
//!
//! Input: the action (`X-TC-Action`) on the first line, then the body.

use fnhost::events::{time, EventStatus, ListQuery};
use fnhost::fuzzing::{scf_request, ScfCall};
use serde_json::{json, Map, Value};

use crate::engine::{label, Target};

pub const TARGET: Target = Target {
    name: "scf",
    dictionary: &[
        "Invoke\n",
        "ListAsyncEvents\n",
        "GetAsyncEventStatus\n",
        "TerminateAsyncEvent\n",
        "\"FunctionName\"",
        "\"echo\"",
        "\"Namespace\"",
        "\"default\"",
        "\"other\"",
        "\"Qualifier\"",
        "\"$LATEST\"",
        "\"1\"",
        "\"InvocationType\"",
        "\"Event\"",
        "\"RequestResponse\"",
        "\"event\"",
        "\"LogType\"",
        "\"Tail\"",
        "\"None\"",
        "\"ClientContext\"",
        "\"{\\\"a\\\": 1}\"",
        "\"\\\"boom\\\"\"",
        "\"{\"",
        "\"InvokeType\"",
        "[\"scf\"]",
        "\"InvokeRequestId\"",
        "\"Offset\"",
        "\"Limit\"",
        "\"Order\"",
        "\"ASC\"",
        "\"desc\"",
        "\"Orderby\"",
        "\"EndTime\"",
        "\"StartTime\"",
        "\"Status\"",
        "[\"RUNNING\"]",
        "[\"finished\",\"FAILED\",\"ABORTED\"]",
        "[\"QUEUED\"]",
        "\"StartTimeInterval\"",
        "\"EndTimeInterval\"",
        "{\"Start\": \"2000-01-01 00:00:00\"}",
        "\"End\"",
        "\"Start\"",
        "\"2100-01-02 00:00:00\"",
        "\"2026-11-23 04:01:23.123\"",
        "\"2026-11-23T04:01:23+01:00\"",
        "\"GraceShutdown\"",
        "true",
        "null",
        "\"\"",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "101",
        "-1",
    ],
    max_len: 2048,
    run,
};

const CODES: &[&str] = &[
    "InvalidAction",
    "InvalidParameter",
    "MissingParameter",
    "ResourceNotFound.Namespace",
    "ResourceNotFound.Qualifier",
];

/// A time as written back: ms when not before the epoch (any value reads
/// back), the SCF form otherwise.
fn when(ms: i64) -> Value {
    if ms >= 0 {
        json!(ms.to_string())
    } else {
        json!(time::scf(ms))
    }
}

fn interval(from: Option<i64>, to: Option<i64>) -> Value {
    let mut m = Map::new();
    if let Some(ms) = from {
        m.insert("Start".into(), when(ms));
    }
    if let Some(ms) = to {
        m.insert("End".into(), when(ms));
    }
    Value::Object(m)
}

/// The SCF status names a list of statuses came from.
fn status_names(statuses: &[EventStatus]) -> Vec<&'static str> {
    let mut names = Vec::new();
    let mut rest = statuses;
    while let Some(first) = rest.first() {
        let (name, n) = match first {
            EventStatus::Queued => {
                assert_eq!(
                    rest.get(..3),
                    Some(
                        &[
                            EventStatus::Queued,
                            EventStatus::Running,
                            EventStatus::Retrying
                        ][..]
                    ),
                    "RUNNING is QUEUED, RUNNING and RETRYING: {statuses:?}"
                );
                ("RUNNING", 3)
            }
            EventStatus::Finished => ("FINISHED", 1),
            EventStatus::Failed => ("FAILED", 1),
            EventStatus::Aborted => ("ABORTED", 1),
            other => panic!("status {other:?} is not one SCF names: {statuses:?}"),
        };
        names.push(name);
        rest = &rest[n..];
    }
    names
}

/// `call` as the body an SDK sends for it.
fn written(call: &ScfCall) -> (&'static str, Value) {
    match call {
        ScfCall::Invoke {
            function,
            event,
            tail,
            context,
        } => (
            "Invoke",
            json!({
                "FunctionName": function,
                "Namespace": "default",
                "Qualifier": "$LATEST",
                "InvocationType": if *event { "Event" } else { "RequestResponse" },
                "LogType": if *tail { "Tail" } else { "None" },
                "ClientContext": context,
            }),
        ),
        ScfCall::List { query: q } => {
            let mut body = json!({
                "FunctionName": q.function,
                "InvokeType": q.invoke_types,
                "Offset": q.offset,
                "Limit": q.limit,
                "Order": if q.ascending { "ASC" } else { "DESC" },
                "Orderby": if q.order_by_end { "EndTime" } else { "StartTime" },
                "Status": status_names(&q.statuses),
                "StartTimeInterval": interval(q.start_from, q.start_to),
                "EndTimeInterval": interval(q.end_from, q.end_to),
            });
            if let Some(v) = &q.qualifier {
                body["Qualifier"] = json!(v);
            }
            if let Some(id) = &q.request_id {
                body["InvokeRequestId"] = json!(id.to_string());
            }
            ("ListAsyncEvents", body)
        }
        ScfCall::GetStatus { id } => ("GetAsyncEventStatus", json!({ "InvokeRequestId": id })),
        ScfCall::Terminate {
            function,
            id,
            graceful,
        } => (
            "TerminateAsyncEvent",
            json!({"FunctionName": function, "InvokeRequestId": id, "GraceShutdown": graceful}),
        ),
    }
}

/// A string parameter as the body gave it ("" and null: absent).
fn given<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn check_accepted(call: &ScfCall, body: &Value) {
    let function = |f: &str| assert_eq!(Some(f), given(body, "FunctionName"), "{call:?}");
    match call {
        ScfCall::Invoke {
            function: f,
            event,
            context,
            ..
        } => {
            function(f);
            let asked = given(body, "InvocationType");
            assert_eq!(
                *event,
                asked.is_some_and(|t| t.eq_ignore_ascii_case("event"))
            );
            assert!(
                serde_json::from_str::<Value>(context).is_ok(),
                "{context:?}"
            );
        }
        ScfCall::List { query } => check_list(query, body),
        ScfCall::GetStatus { id } => {
            assert_eq!(Some(id.as_str()), given(body, "InvokeRequestId"));
        }
        ScfCall::Terminate {
            function: f,
            id,
            graceful,
        } => {
            function(f);
            assert_eq!(Some(id.as_str()), given(body, "InvokeRequestId"));
            assert_eq!(*graceful, body.get("GraceShutdown") == Some(&json!(true)));
        }
    }
}

fn check_list(q: &ListQuery, body: &Value) {
    assert_eq!(q.function.as_deref(), given(body, "FunctionName"));
    assert!(q.limit <= fnhost::http::MAX_LIMIT, "{q:?}");
    match body.get("Limit").filter(|v| !v.is_null()) {
        Some(v) => assert_eq!(Some(q.limit), v.as_u64(), "{q:?}"),
        None => assert_eq!(q.limit, 20, "the default page"),
    }
    let bound = |interval: &str, key: &str| {
        body.get(interval)
            .and_then(|i| i.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| time::parse(s).expect("an accepted time parses"))
    };
    assert_eq!(
        (q.start_from, q.start_to, q.end_from, q.end_to),
        (
            bound("StartTimeInterval", "Start"),
            bound("StartTimeInterval", "End"),
            bound("EndTimeInterval", "Start"),
            bound("EndTimeInterval", "End"),
        )
    );
    assert!(
        q.after.is_none() && q.offset == body.get("Offset").and_then(Value::as_u64).unwrap_or(0)
    );
}

fn check_refused(code: &str, message: &str, body: &Value, action: &str) {
    assert!(!message.trim().is_empty(), "{code} without a message");
    if let Some(param) = code.strip_prefix("InvalidParameterValue.") {
        assert!(
            body.get(param).is_some_and(|v| !v.is_null()),
            "{code} for a body without `{param}`: {message}"
        );
    } else if code == "MissingParameter" {
        let param = message
            .strip_prefix("the parameter `")
            .and_then(|m| m.split_once('`'))
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("{code} names no parameter: {message}"));
        assert_eq!(given(body, param), None, "`{param}` is there: {message}");
    } else if code == "InvalidAction" {
        assert!(
            ![
                "Invoke",
                "ListAsyncEvents",
                "GetAsyncEventStatus",
                "TerminateAsyncEvent"
            ]
            .contains(&action),
            "{action} is an action"
        );
    } else {
        assert!(CODES.contains(&code), "unknown code {code}: {message}");
    }
}

fn run(input: &[u8]) -> String {
    let split = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let action = String::from_utf8_lossy(&input[..split]);
    let action = action.trim();
    let body = input.get(split + 1..).unwrap_or_default();
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match scf_request(action, body) {
        Ok(call) => {
            assert!(
                value.is_object() || body.iter().all(u8::is_ascii_whitespace),
                "accepted a body that is not an object"
            );
            check_accepted(&call, &value);
            let (name, canonical) = written(&call);
            assert_eq!(name, action);
            let again = scf_request(name, canonical.to_string().as_bytes());
            assert_eq!(again.as_ref(), Ok(&call), "written back as {canonical}");
            format!("ok:{name}")
        }
        Err(e) => {
            check_refused(&e.code, &e.message, &value, action);
            label(&format!("err:{action}:"), &e.code)
        }
    }
}
