//! How an invocation's end becomes an HTTP response: the outcome headers,
//! the function's own HTTP output, and error bodies that show internals to
//! the admin key only.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fnhost_proto::rpc::{typed_data, RpcHttp, TypedData};
use serde_json::json;

use super::{error_body, Caller, INVOCATION_ID_HEADER, OUTCOME_HEADER};
use crate::invocation::{CancelReason, InvocationResult, InvokeError, Outcome};

pub(super) fn invoke_error(e: InvokeError, caller: Caller) -> Response {
    let status = match &e {
        InvokeError::UnknownFunction(_) => StatusCode::NOT_FOUND,
        InvokeError::Disabled(_) | InvokeError::DuplicateId(_) => StatusCode::CONFLICT,
        InvokeError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
        InvokeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        InvokeError::Unavailable { .. } | InvokeError::ShuttingDown | InvokeError::Draining => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let message = match (&e, caller) {
        // The reason names instances and their last errors: the operator's.
        (InvokeError::Unavailable { function, .. }, Caller::Public) => {
            format!("no worker can run function '{function}' now")
        }
        _ => e.to_string(),
    };
    let mut resp = error_body(status, message);
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    resp
}

/// HTTP status for a non-success outcome.
pub fn outcome_status(outcome: Outcome, reason: Option<CancelReason>) -> StatusCode {
    match outcome {
        Outcome::Succeeded => StatusCode::OK,
        Outcome::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        Outcome::TimedOut => StatusCode::GATEWAY_TIMEOUT,
        Outcome::Killed => StatusCode::BAD_GATEWAY,
        Outcome::Cancelled if reason == Some(CancelReason::HostShutdown) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        // 499: the nginx convention for "client closed request".
        Outcome::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::CONFLICT),
    }
}

pub(super) fn invocation_response(r: InvocationResult, caller: Caller) -> Response {
    let mut resp = if r.is_success() {
        output_response(r.output.as_ref())
    } else if caller == Caller::Public {
        // Exception texts and worker ids carry secrets and internals; the
        // log and the admin route keep them.
        let body = json!({
            "error": {
                "outcome": r.outcome,
                "invocationId": r.invocation_id,
                "message": public_message(r.outcome),
            }
        });
        (outcome_status(r.outcome, r.cancel_reason), Json(body)).into_response()
    } else {
        let body = json!({
            "error": {
                "outcome": r.outcome,
                "invocationId": r.invocation_id,
                "function": r.function,
                "reason": r.cancel_reason,
                "workerId": r.worker_id,
                "message": r.error,
                "stackTrace": r.stack_trace.filter(|_| caller == Caller::Admin),
                "elapsedMs": r.elapsed.as_millis() as u64,
            }
        });
        (outcome_status(r.outcome, r.cancel_reason), Json(body)).into_response()
    };
    let h = resp.headers_mut();
    h.insert(OUTCOME_HEADER, HeaderValue::from_static(r.outcome.as_str()));
    if let Ok(v) = HeaderValue::from_str(r.invocation_id.as_str()) {
        h.insert(INVOCATION_ID_HEADER, v);
    }
    resp
}

/// What a caller without the admin key learns of an outcome.
pub(super) fn public_message(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "the function succeeded",
        Outcome::Failed => "the function failed",
        Outcome::TimedOut => "the function timed out",
        Outcome::Cancelled => "the invocation was cancelled",
        Outcome::Killed => "the function's worker instance was stopped",
    }
}

/// Maps a function's output to an HTTP response: an `RpcHttp` output keeps
/// its status, headers and body; other data becomes a 200 body.
pub(super) fn output_response(output: Option<&TypedData>) -> Response {
    let Some(data) = output.and_then(|d| d.data.as_ref()) else {
        return StatusCode::OK.into_response();
    };
    let (content_type, body): (&str, Vec<u8>) = match data {
        typed_data::Data::Http(h) => return http_output(h),
        typed_data::Data::Json(s) => ("application/json", s.clone().into_bytes()),
        typed_data::Data::String(s) => ("text/plain; charset=utf-8", s.clone().into_bytes()),
        typed_data::Data::Int(i) => ("text/plain; charset=utf-8", i.to_string().into_bytes()),
        typed_data::Data::Double(d) => ("text/plain; charset=utf-8", d.to_string().into_bytes()),
        typed_data::Data::Bytes(b) | typed_data::Data::Stream(b) => {
            ("application/octet-stream", b.clone())
        }
        other => {
            let text = format!("{other:?}");
            ("text/plain; charset=utf-8", text.into_bytes())
        }
    };
    ([("content-type", content_type)], body).into_response()
}

pub(super) fn http_output(h: &RpcHttp) -> Response {
    let status = match h.status_code.trim() {
        "" => StatusCode::OK,
        code => match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(s) => s,
            None => {
                return error_body(
                    StatusCode::BAD_GATEWAY,
                    format!("the function returned an invalid HTTP status code \"{code}\""),
                )
            }
        },
    };
    let body = h
        .body
        .as_ref()
        .and_then(|b| b.to_bytes())
        .unwrap_or_default();
    let mut resp = (status, body).into_response();
    for (k, v) in &h.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v))
        {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}
