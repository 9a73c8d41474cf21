//! The async-event management API under `/admin`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{error_body, trigger_for, AppState};
use crate::events::{
    pages, time, EnqueueError, EnqueueRequest, Enqueued, EventRecord, EventStatus, InvokeType,
    ListQuery, RequestId, TerminateOutcome,
};

/// Largest page a list request may ask for.
pub const MAX_LIMIT: u64 = 100;

pub(super) async fn invoke_async(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(function) = state.catalog.current().get(&name).cloned() else {
        return error_body(
            StatusCode::NOT_FOUND,
            format!("function '{name}' does not exist"),
        );
    };
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k))
            if !k.is_empty() && k.len() <= 256 && k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(k.to_string())
        }
        Some(_) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "header `Idempotency-Key` must be 1 to 256 visible ASCII characters",
            )
        }
    };
    let digest = key.map(|k| (k, Sha256::digest(&body).to_vec()));
    let input = trigger_for(&function, &uri, &headers, body);
    // Refused now rather than accepted and failed at every attempt.
    let size = crate::invocation::InvocationInput::new(input.clone()).least_encoded_len();
    let limit = state.app.host.max_message_bytes;
    if size > limit {
        let e = crate::invocation::InvokeError::TooLarge { size, limit };
        return error_body(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
    }
    let req = EnqueueRequest {
        function: function.name.clone(),
        qualifier: None,
        invoke_type: InvokeType::Api,
        input,
        idempotency: digest,
        trace: crate::trace::TraceContext::from_headers(&headers),
    };
    enqueue_response(state.events.enqueue(req).await)
}

pub(super) fn enqueue_response(r: Result<Enqueued, EnqueueError>) -> Response {
    match r {
        Ok(Enqueued::New(id)) => {
            (StatusCode::ACCEPTED, Json(json!({ "requestId": id }))).into_response()
        }
        Ok(Enqueued::Existing(id)) => (
            StatusCode::ACCEPTED,
            [("x-fnhost-idempotent-replay", "true")],
            Json(json!({ "requestId": id })),
        )
            .into_response(),
        Err(e @ EnqueueError::UnknownFunction(_)) => {
            error_body(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ EnqueueError::Conflict { .. }) => error_body(StatusCode::CONFLICT, e.to_string()),
        Err(EnqueueError::Store(e)) => {
            tracing::error!("async invoke not accepted: {e}");
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the event was not accepted: {e}"),
            )
        }
    }
}

/// Parses list parameters; the error names the offending parameter.
pub fn parse_list_query(params: &[(String, String)]) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: 20,
        ..ListQuery::default()
    };
    let time = |name: &str, v: &str| {
        time::parse(v).ok_or_else(|| {
            format!("parameter `{name}`: \"{v}\" is not a time (RFC 3339 or ms since the epoch)")
        })
    };
    let mut cursor = None;
    for (name, v) in params {
        match name.as_str() {
            "cursor" => cursor = Some(v),
            "function" => q.function = Some(v.clone()),
            "qualifier" => q.qualifier = Some(v.clone()),
            "requestId" => q.request_id = Some(v.as_str().into()),
            "status" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    let st = EventStatus::parse(s).ok_or_else(|| {
                        let all: Vec<&str> = EventStatus::ALL.iter().map(|s| s.as_str()).collect();
                        format!(
                            "parameter `status`: \"{s}\" is not one of {}",
                            all.join(", ")
                        )
                    })?;
                    q.statuses.push(st);
                }
            }
            "invokeType" => q
                .invoke_types
                .extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
            "startTimeFrom" => q.start_from = Some(time(name, v)?),
            "startTimeTo" => q.start_to = Some(time(name, v)?),
            "endTimeFrom" => q.end_from = Some(time(name, v)?),
            "endTimeTo" => q.end_to = Some(time(name, v)?),
            "order" => {
                q.ascending = match v.to_ascii_lowercase().as_str() {
                    "asc" => true,
                    "desc" => false,
                    _ => return Err(format!("parameter `order`: \"{v}\" is not asc or desc")),
                }
            }
            "orderBy" => {
                q.order_by_end = match v.as_str() {
                    "startTime" => false,
                    "endTime" => true,
                    _ => {
                        return Err(format!(
                            "parameter `orderBy`: \"{v}\" is not startTime or endTime"
                        ))
                    }
                }
            }
            "offset" => {
                q.offset = v.parse().map_err(|_| {
                    format!("parameter `offset`: \"{v}\" is not a non-negative integer")
                })?
            }
            "limit" => {
                let n: u64 = v.parse().map_err(|_| {
                    format!("parameter `limit`: \"{v}\" is not a non-negative integer")
                })?;
                if n > MAX_LIMIT {
                    return Err(format!(
                        "parameter `limit`: {n} is over the maximum of {MAX_LIMIT}"
                    ));
                }
                q.limit = n;
            }
            // The admin key, when it comes as a query parameter.
            "code" => {}
            other => return Err(format!("parameter `{other}` is not known")),
        }
    }
    // Read once the order is known, whichever came first.
    if let Some(text) = cursor {
        q.after =
            Some(pages::parse_cursor(&q, text).map_err(|e| format!("parameter `cursor`: {e}"))?);
    }
    Ok(q)
}

fn summary(e: &EventRecord) -> Value {
    let mut v = json!({
        "requestId": e.request_id,
        "function": e.function,
        "qualifier": e.qualifier,
        "invokeType": e.invoke_type,
        "status": e.status,
        "statusCode": e.status_code,
        "startTime": time::rfc3339(e.start_ms),
        "endTime": e.end_ms.map(time::rfc3339),
    });
    // With a store shared by several hosts: the host that claimed it.
    if let Some(owner) = &e.owner_host {
        v["ownerHost"] = json!(owner);
    }
    v
}

pub(super) async fn list(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let q = match parse_list_query(&params) {
        Ok(q) => q,
        Err(msg) => return error_body(StatusCode::BAD_REQUEST, msg),
    };
    let order = ListQuery {
        after: None,
        ..q.clone()
    };
    match state.events.log().list(q).await {
        Ok(page) => {
            // A full page may have more after it.
            let full = order.limit > 0 && page.events.len() as u64 == order.limit;
            let next = page.last.filter(|_| full);
            Json(json!({
                "totalCount": page.total,
                "events": page.events.iter().map(summary).collect::<Vec<_>>(),
                "nextCursor": next.map(|k| pages::cursor_text(&order, k)),
            }))
            .into_response()
        }
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn not_found(id: &RequestId) -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        format!(
            "no async event with request id '{id}' (unknown, or pruned after the retention window)"
        ),
    )
}

pub(super) async fn status(State(state): State<AppState>, Path(id): Path<RequestId>) -> Response {
    match state.events.log().get(&id).await {
        Ok(Some(e)) => {
            let mut v = summary(&e);
            v["attempts"] = json!(e.attempts);
            v["error"] = json!(e.error);
            v["nextAttemptTime"] = json!(e.next_attempt_ms.map(time::rfc3339));
            v["result"] = json!(e.result.map(|r| String::from_utf8_lossy(&r).into_owned()));
            v["traceParent"] = json!(e.trace_parent);
            Json(v).into_response()
        }
        Ok(None) => not_found(&id),
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<RequestId>,
    body: Bytes,
) -> Response {
    let graceful = if body.is_empty() {
        false
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if !v.is_object() && !v.is_null() => {
                return error_body(
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object like {\"graceShutdown\": true}",
                )
            }
            Ok(v) => match v.get("graceShutdown") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return error_body(
                        StatusCode::BAD_REQUEST,
                        "field `graceShutdown` must be true or false",
                    )
                }
            },
            Err(e) => {
                return error_body(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not JSON: {e}"),
                )
            }
        }
    };
    match state.events.terminate(&id, graceful).await {
        Ok(TerminateOutcome::Done) => {
            Json(json!({"requestId": id, "outcome": "done"})).into_response()
        }
        Ok(TerminateOutcome::AlreadyCompleted(s)) => {
            Json(json!({"requestId": id, "outcome": "already-completed", "status": s}))
                .into_response()
        }
        Ok(TerminateOutcome::NotFound) => not_found(&id),
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) async fn logs(State(state): State<AppState>, Path(id): Path<RequestId>) -> Response {
    match state.events.log().get(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(&id),
        Err(e) => return error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
    match state.events.log().logs(&id).await {
        Ok(lines) => {
            let lines: Vec<Value> = lines
                .iter()
                .map(|l| json!({"time": time::rfc3339(l.time_ms), "line": l.line}))
                .collect();
            Json(json!({"requestId": id, "lines": lines})).into_response()
        }
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /admin/async-events/{id}/input`: the input the event was accepted
/// with, as the body it arrived as: a text or JSON input with its content
/// type, bytes as `application/octet-stream`, an HTTP-triggered function's
/// request as its body with the request's `content-type`. Posting it back
/// to `invoke-async` with that content type makes the same input (the
/// console's re-run). Any other kind of data (none is accepted today) is
/// its protobuf `TypedData` as `application/x-protobuf`. `x-fnhost-input-kind`
/// says which: `string`, `json`, `bytes`, `http`, `none` or `protobuf`.
pub(super) async fn input(State(state): State<AppState>, Path(id): Path<RequestId>) -> Response {
    let event = match state.events.log().get(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(&id),
        Err(e) => return error_body(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let data =
        match <fnhost_proto::rpc::TypedData as prost::Message>::decode(event.input.as_slice()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(event = %id, "the stored input cannot be decoded: {e}");
                return error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the stored input of event '{id}' cannot be decoded: {e}"),
                );
            }
        };
    let (kind, content_type, body) = input_body(data, &event.input);
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        "x-fnhost-input-kind",
        axum::http::HeaderValue::from_static(kind),
    );
    // An input is whatever the caller sent: never rendered by a browser
    // that follows a link to it.
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment"),
    );
    response
}

/// The kind, content type and bytes of a stored input (`encoded`, its
/// protobuf form, for kinds with no body of their own).
fn input_body(
    data: fnhost_proto::rpc::TypedData,
    encoded: &[u8],
) -> (&'static str, String, Vec<u8>) {
    use fnhost_proto::rpc::typed_data::Data;
    match data.data {
        Some(Data::String(s)) => ("string", "text/plain; charset=utf-8".into(), s.into_bytes()),
        Some(Data::Json(s)) => ("json", "application/json".into(), s.into_bytes()),
        Some(Data::Bytes(b)) | Some(Data::Stream(b)) => {
            ("bytes", "application/octet-stream".into(), b)
        }
        Some(Data::Http(h)) => {
            let content_type = h
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map_or_else(
                    || "application/octet-stream".to_string(),
                    |(_, v)| v.clone(),
                );
            let body = h.raw_body.or(h.body).map(|b| match b.data {
                Some(Data::String(s) | Data::Json(s)) => s.into_bytes(),
                Some(Data::Bytes(b) | Data::Stream(b)) => b,
                _ => Vec::new(),
            });
            ("http", content_type, body.unwrap_or_default())
        }
        None => ("none", "application/octet-stream".into(), Vec::new()),
        Some(_) => (
            "protobuf",
            "application/x-protobuf".into(),
            encoded.to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Result<ListQuery, String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        parse_list_query(&v)
    }

    #[test]
    fn list_parameters_parse_and_errors_name_the_parameter() {
        let q = p(&[
            ("status", "FAILED"),
            ("status", "aborted,RUNNING"),
            ("order", "asc"),
            ("limit", "100"),
        ])
        .unwrap();
        assert_eq!(
            q.statuses,
            [
                EventStatus::Failed,
                EventStatus::Aborted,
                EventStatus::Running
            ]
        );
        assert!(q.ascending);
        assert_eq!(q.limit, 100);
        assert_eq!(p(&[]).unwrap().limit, 20);
        assert!(p(&[("limit", "101")]).unwrap_err().contains("`limit`"));
        assert!(p(&[("limit", "-1")]).unwrap_err().contains("`limit`"));
        assert!(p(&[("status", "DONE")]).unwrap_err().contains("`status`"));
        assert!(p(&[("orderBy", "x")]).unwrap_err().contains("`orderBy`"));
        assert!(p(&[("startTimeFrom", "soon")])
            .unwrap_err()
            .contains("`startTimeFrom`"));
        assert!(p(&[("colour", "red")]).unwrap_err().contains("`colour`"));
    }
}
