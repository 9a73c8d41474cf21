//! The HTTP surface: trigger routes `/api/<function>` and the admin API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use fnhost_proto::rpc::{typed_data, RpcHttp, TypedData};
use serde_json::json;

use crate::config::{AppConfig, FunctionConfig};
use crate::events::AsyncEvents;
use crate::host::{HostHandle, ScfCredentials};
use crate::invocation::{CancelReason, InvocationInput, InvocationResult, InvokeError, Outcome};

mod async_api;
mod guard;
mod scf;
mod signatures;
mod tc3;

pub use async_api::{parse_list_query, MAX_LIMIT};
use guard::CancelOnDrop;

/// Header carrying the invocation's outcome on every invoke response.
pub const OUTCOME_HEADER: &str = "x-fnhost-outcome";
/// Header carrying the invocation id.
pub const INVOCATION_ID_HEADER: &str = "x-fnhost-invocation-id";
/// Header carrying the admin key.
pub const ADMIN_KEY_HEADER: &str = "x-functions-key";

#[derive(Clone)]
struct AppState {
    host: HostHandle,
    app: Arc<AppConfig>,
    admin_key: Arc<str>,
    events: AsyncEvents,
    scf: Option<Arc<scf::ScfState>>,
}

pub(crate) fn router(
    host: HostHandle,
    app: Arc<AppConfig>,
    admin_key: String,
    events: AsyncEvents,
    scf: Option<ScfCredentials>,
) -> Router {
    // Leave room for the envelope around the body in the gRPC message.
    let body_limit = app
        .host
        .max_message_bytes
        .saturating_sub(64 * 1024)
        .max(1024);
    let state = AppState {
        host,
        app,
        admin_key: Arc::from(admin_key),
        events,
        scf: scf.map(|c| Arc::new(scf::ScfState::new(c))),
    };
    let admin = Router::new()
        .route("/admin/functions/{name}/invoke", post(admin_invoke))
        .route(
            "/admin/functions/{name}/invoke-async",
            post(async_api::invoke_async),
        )
        .route("/admin/async-events", get(async_api::list))
        .route("/admin/async-events/{id}", get(async_api::status))
        .route(
            "/admin/async-events/{id}/terminate",
            post(async_api::terminate),
        )
        .route("/admin/async-events/{id}/logs", get(async_api::logs))
        .route("/admin/host/status", get(host_status))
        .route("/admin/host/drain", post(drain))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_key,
        ));
    Router::new()
        .route("/", post(scf::action))
        .route("/healthz", get(healthz))
        .route("/api/{function}", any(http_trigger))
        .route("/api/{function}/{*rest}", any(http_trigger))
        .merge(admin)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

fn error_body(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "message": message.into() } })),
    )
        .into_response()
}

async fn not_found(uri: Uri) -> Response {
    error_body(StatusCode::NOT_FOUND, format!("no route for {uri}"))
}

async fn require_admin_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(ADMIN_KEY_HEADER)
        .map(HeaderValue::as_bytes);
    match given {
        Some(k) if constant_time_eq(k, state.admin_key.as_bytes()) => next.run(req).await,
        Some(_) => error_body(
            StatusCode::UNAUTHORIZED,
            "the x-functions-key header does not match the admin key",
        ),
        None => error_body(
            StatusCode::UNAUTHORIZED,
            "admin routes require the x-functions-key header",
        ),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /admin/host/drain`: stop taking work (sync and async), finish
/// in-flight invocations, run pre-stop, stop instances.
async fn drain(State(state): State<AppState>) -> Response {
    state.events.begin_shutdown().await;
    state.host.drain().await;
    (StatusCode::ACCEPTED, Json(json!({"state": "draining"}))).into_response()
}

/// `GET /healthz`: 200 when the host can serve, 503 (with the reason) when not.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.host.status().await {
        Some(s) if s.can_serve() => {
            Json(json!({"status": "healthy", "state": s.state})).into_response()
        }
        Some(s) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "state": s.state})),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "state": "stopping"})),
        )
            .into_response(),
    }
}

async fn host_status(State(state): State<AppState>) -> Response {
    match state.host.status().await {
        Some(s) => {
            let mut body = serde_json::to_value(s).unwrap_or_default();
            if let Some(stats) = state.events.stats().await {
                body["asyncEvents"] = serde_json::to_value(stats).unwrap_or_default();
            }
            Json(body).into_response()
        }
        None => error_body(StatusCode::SERVICE_UNAVAILABLE, "the host is shutting down"),
    }
}

async fn http_trigger(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let name = params.get("function").cloned().unwrap_or_default();
    let Some(function) = state.app.function(&name).filter(|f| f.is_http_triggered()) else {
        return error_body(
            StatusCode::NOT_FOUND,
            format!("no HTTP-triggered function '{name}'"),
        );
    };
    if let Some(methods) = &function.trigger().methods {
        if !methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method.as_str()))
        {
            return error_body(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "function '{name}' accepts {}",
                    methods.join(", ").to_uppercase()
                ),
            );
        }
    }
    let request = rpc_http(&method, &uri, &headers, query, params, body);
    run(
        &state,
        &name,
        InvocationInput::http(request),
        Caller::Public,
    )
    .await
}

async fn admin_invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Worker-indexed functions have no function.json: their input is the
    // body as data, and the dispatcher answers for unknown names.
    let trigger = match state.app.function(&name) {
        Some(function) => trigger_for(function, &uri, &headers, body),
        None => trigger_data(&headers, body),
    };
    run(&state, &name, InvocationInput::new(trigger), Caller::Admin).await
}

/// The trigger data for an admin (sync or async) invoke of `function`: an
/// HTTP request for HTTP-triggered functions, else the body as data.
fn trigger_for(
    function: &FunctionConfig,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> TypedData {
    if function.is_http_triggered() {
        TypedData::http(rpc_http(
            &Method::POST,
            uri,
            headers,
            HashMap::new(),
            HashMap::new(),
            body,
        ))
    } else {
        trigger_data(headers, body)
    }
}

/// A non-HTTP trigger's data from a request body: JSON when it parses as
/// JSON, text when it is UTF-8, bytes otherwise.
fn trigger_data(headers: &HeaderMap, body: Bytes) -> TypedData {
    let is_json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    match String::from_utf8(body.to_vec()) {
        Ok(text) if is_json_type || serde_json::from_str::<serde_json::Value>(&text).is_ok() => {
            TypedData::json(text)
        }
        Ok(text) => TypedData::string(text),
        Err(e) => TypedData::bytes(e.into_bytes()),
    }
}

fn rpc_http(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: HashMap<String, String>,
    params: HashMap<String, String>,
    body: Bytes,
) -> RpcHttp {
    let mut hmap: HashMap<String, String> = HashMap::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        hmap.entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v)
            })
            .or_insert(v);
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let body = TypedData::bytes(body.to_vec());
    RpcHttp {
        method: method.as_str().to_string(),
        url: format!("http://{host}{uri}"),
        headers: hmap,
        body: Some(Box::new(body.clone())),
        raw_body: Some(Box::new(body)),
        params,
        query,
        ..RpcHttp::default()
    }
}

/// Who asked for an invocation, which decides how much a failure tells.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// An HTTP trigger's client (no key): a failure's stack trace, with
    /// its source paths and lines, stays with the operator.
    Public,
    /// An admin-key holder: gets the stack trace too.
    Admin,
}

async fn run(state: &AppState, function: &str, input: InvocationInput, caller: Caller) -> Response {
    let pending = match state.host.submit(function, input).await {
        Ok(p) => p,
        Err(e) => return invoke_error(e),
    };
    // If the client goes away, this future is dropped and the guard cancels.
    let mut guard = CancelOnDrop::new(
        state.host.clone(),
        pending.id.clone(),
        CancelReason::ClientDisconnected,
    );
    let result = pending.result().await;
    guard.disarm();
    match result {
        Ok(r) => invocation_response(r, caller),
        Err(e) => invoke_error(e),
    }
}

fn invoke_error(e: InvokeError) -> Response {
    let status = match &e {
        InvokeError::UnknownFunction(_) => StatusCode::NOT_FOUND,
        InvokeError::Disabled(_) | InvokeError::DuplicateId(_) => StatusCode::CONFLICT,
        InvokeError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
        InvokeError::Unavailable { .. } | InvokeError::ShuttingDown | InvokeError::Draining => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let mut resp = error_body(status, e.to_string());
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

fn invocation_response(r: InvocationResult, caller: Caller) -> Response {
    let mut resp = if r.is_success() {
        output_response(r.output.as_ref())
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
    if let Ok(v) = HeaderValue::from_str(&r.invocation_id) {
        h.insert(INVOCATION_ID_HEADER, v);
    }
    resp
}

/// Maps a function's output to an HTTP response: an `RpcHttp` output keeps
/// its status, headers and body; other data becomes a 200 body.
fn output_response(output: Option<&TypedData>) -> Response {
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

fn http_output(h: &RpcHttp) -> Response {
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
