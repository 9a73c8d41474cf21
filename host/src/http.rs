//! The HTTP surface: trigger routes `/api/<function>` and the admin API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fnhost_proto::rpc::{typed_data, RpcHttp, TypedData};
use serde_json::json;

use crate::catalog::Catalog;
use crate::config::{AppConfig, FunctionConfig};
use crate::events::AsyncEvents;
use crate::host::{HostHandle, ScfCredentials};
use crate::invocation::{CancelReason, InvocationInput, InvocationResult, InvokeError, Outcome};
use crate::keys::KeyStore;

mod async_api;
mod deadline;
mod guard;
mod keys_api;
pub(crate) mod routes;
mod scf;
mod signatures;
mod stream;
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
    keys: Arc<KeyStore>,
    catalog: Catalog,
    body_limit: usize,
    events: AsyncEvents,
    scf: Option<Arc<scf::ScfState>>,
    worker_client: stream::WorkerClient,
}

pub(crate) fn router(
    host: HostHandle,
    app: Arc<AppConfig>,
    keys: Arc<KeyStore>,
    catalog: Catalog,
    events: AsyncEvents,
    scf: Option<ScfCredentials>,
) -> Router {
    // Leave room for the envelope around the body in the gRPC message.
    let body_limit = app
        .host
        .max_message_bytes
        .saturating_sub(64 * 1024)
        .max(1024);
    let body_read_timeout = app.host.http.body_read_timeout;
    let state = AppState {
        host,
        catalog,
        body_limit,
        app,
        keys,
        events,
        scf: scf.map(|c| Arc::new(scf::ScfState::new(c))),
        worker_client: stream::worker_client(),
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
        .route("/admin/functions/{name}/keys", get(keys_api::list_function))
        .route(
            "/admin/functions/{name}/keys/{key}",
            axum::routing::put(keys_api::put_function).delete(keys_api::delete_function),
        )
        .route("/admin/host/keys", get(keys_api::list_host))
        .route(
            "/admin/host/keys/{key}",
            axum::routing::put(keys_api::put_host).delete(keys_api::delete_host),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_key,
        ));
    Router::new()
        .route("/", post(scf::action))
        .route("/healthz", get(healthz))
        .merge(admin)
        .fallback(http_trigger)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            body_read_timeout,
            deadline::body_deadline,
        ))
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

/// The key a request presents: the `x-functions-key` header, else the
/// `code` query parameter (percent-decoded).
fn presented_key(headers: &HeaderMap, uri: &Uri) -> Option<Vec<u8>> {
    if let Some(v) = headers.get(ADMIN_KEY_HEADER) {
        return Some(v.as_bytes().to_vec());
    }
    let query = uri.query()?;
    query_pairs(query)
        .find(|(name, _)| name == KEY_QUERY_PARAM)
        .map(|(_, value)| value.into_bytes())
}

/// `a=1&b=%20` as decoded pairs.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true), percent_decode(v, true))
    })
}

/// Decodes `%XX` escapes; `+` is a space in a query, itself in a path.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1])
                .zip(hex(bytes[i + 2]))
                .map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One answer for a missing and a wrong key alike: it tells nothing of
/// which keys exist.
fn unauthorized() -> Response {
    error_body(
        StatusCode::UNAUTHORIZED,
        "a valid key is required (x-functions-key header or code query parameter)",
    )
}

async fn require_admin_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match presented_key(req.headers(), req.uri()) {
        Some(k) if state.keys.is_admin(&k) => next.run(req).await,
        _ => unauthorized(),
    }
}

/// `POST /admin/host/drain`: stop taking work (sync and async), finish
/// in-flight invocations, run pre-stop, stop instances.
async fn drain(State(state): State<AppState>) -> Response {
    state.events.stop_starting_attempts().await;
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

/// Every request no other route takes: an HTTP trigger when the route
/// table has a function for its path, else a 404.
async fn http_trigger(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let functions = state.catalog.current();
    let (name, params, allowed) = match functions.routes().find(method.as_str(), uri.path()) {
        routes::Found::Function { name, params } => (name, params, None),
        routes::Found::WrongMethod { name, allowed } => {
            (name, HashMap::new(), Some(allowed.to_vec()))
        }
        routes::Found::Nothing => return not_found(uri).await,
    };
    let Some(function) = functions.get(name).cloned() else {
        return not_found(uri).await;
    };
    // Authorised before anything else is said about the route.
    let key = presented_key(&headers, &uri);
    let level = function.auth_level();
    if !state.keys.authorizes(level, &function.name, key.as_deref()) {
        return unauthorized();
    }
    if let Some(methods) = allowed {
        return error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "function '{name}' accepts {}",
                methods.join(", ").to_uppercase()
            ),
        );
    }
    // Only the admin key sees a failure's internals on this route.
    let caller = match key {
        Some(k) if state.keys.is_admin(&k) => Caller::Admin,
        _ => Caller::Public,
    };
    let name = function.name.clone();
    let query = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    // Workers that serve HTTP themselves get the body streamed: it stays
    // on the client's connection until it is forwarded.
    let (body, unread) = if state.host.streams_http().await {
        (Bytes::new(), Some(body))
    } else {
        // Read only now, after the key check: a caller without a key never
        // makes the host buffer a body.
        match deadline::read_body(body, state.body_limit).await {
            Ok(b) => (b, None),
            Err((status, message)) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                return error_body(status, message);
            }
        }
    };
    let forward = Forward {
        method: method.clone(),
        uri: uri.clone(),
        headers: headers.clone(),
        deferred: unread.is_some(),
        body: unread.unwrap_or_else(|| body.clone().into()),
    };
    let request = rpc_http(&method, &uri, &headers, query, params, body);
    run_http(
        &state,
        &name,
        InvocationInput::http(request),
        forward,
        caller,
    )
    .await
}

/// What an HTTP trigger forwards to a worker with `HttpUri`.
struct Forward {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
    /// `body` was never read (else it holds the bytes sent in `RpcHttp`).
    deferred: bool,
}

/// Runs an HTTP trigger: as [`run`] for a worker without `HttpUri`; for one
/// with it, forwards the request there and streams its response back.
async fn run_http(
    state: &AppState,
    function: &str,
    input: InvocationInput,
    forward: Forward,
    caller: Caller,
) -> Response {
    let (pending, dispatched) = match state
        .host
        .submit_http(function, input, forward.deferred)
        .await
    {
        Ok(p) => p,
        Err(e) => return invoke_error(e, caller),
    };
    let id = pending.id.clone();
    // If the client goes away, this future (or the streamed body) is
    // dropped and the guard cancels.
    let mut guard = CancelOnDrop::new(
        state.host.clone(),
        id.clone(),
        CancelReason::ClientDisconnected,
    );
    let mut result: stream::ResultFuture = Box::pin(pending.result());
    let http_uri = tokio::select! {
        biased;
        // A dropped sender: the invocation ended before any dispatch.
        d = dispatched => d.ok().and_then(|d| d.http_uri),
        r = &mut result => {
            guard.disarm();
            return invocation_or_error(r, caller);
        }
    };
    let Some(base) = http_uri else {
        let r = result.await;
        guard.disarm();
        return invocation_or_error(r, caller);
    };
    let request = match stream::forwarded_request(
        &base,
        &id,
        &forward.method,
        &forward.uri,
        &forward.headers,
        forward.body,
    ) {
        Ok(r) => r,
        Err(e) => return error_body(StatusCode::BAD_GATEWAY, e),
    };
    let mut sent = state.worker_client.request(request);
    tokio::select! {
        response = &mut sent => match response {
            Ok(response) => stream::streamed_response(response, &id, Some(result), guard),
            Err(e) => {
                // The guard cancels the invocation: its worker will never
                // see the request it waits for.
                tracing::warn!(invocation = %id, "forwarding the request to the worker's HTTP server ({base}) failed: {e}");
                error_body(
                    StatusCode::BAD_GATEWAY,
                    format!("the request could not be forwarded to the function's worker: {e}"),
                )
            }
        },
        r = &mut result => {
            guard.disarm();
            match r {
                // Done before its response head arrived: the head is on its
                // way, or never comes and the result answers.
                Ok(r) if r.is_success() => match sent.await {
                    Ok(response) => stream::streamed_response(response, &id, None, guard),
                    Err(_) => invocation_response(r, caller),
                },
                r => invocation_or_error(r, caller),
            }
        }
    }
}

fn invocation_or_error(r: Result<InvocationResult, InvokeError>, caller: Caller) -> Response {
    match r {
        Ok(r) => invocation_response(r, caller),
        Err(e) => invoke_error(e, caller),
    }
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
    let trigger = match state.catalog.current().get(&name) {
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

/// The query parameter that may carry a function or admin key.
pub const KEY_QUERY_PARAM: &str = "code";

/// The request as user code sees it. Keys (the `x-functions-key` header,
/// the `code` query parameter) are removed here, on every route, so they
/// reach neither the worker nor the event store.
fn rpc_http(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    mut query: HashMap<String, String>,
    params: HashMap<String, String>,
    body: Bytes,
) -> RpcHttp {
    query.remove(KEY_QUERY_PARAM);
    let mut hmap: HashMap<String, String> = HashMap::new();
    for (k, v) in headers {
        if k.as_str() == ADMIN_KEY_HEADER {
            continue;
        }
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
        url: format!("http://{host}{}", without_key_param(uri)),
        headers: hmap,
        body: Some(Box::new(body.clone())),
        raw_body: Some(Box::new(body)),
        params,
        query,
        ..RpcHttp::default()
    }
}

/// The path and query of `uri` without any `code` parameter.
fn without_key_param(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            // Decoded as `presented_key` decodes it: `c%6Fde=` is a key too.
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            percent_decode(name, true) != KEY_QUERY_PARAM && !pair.is_empty()
        })
        .collect();
    if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    }
}

/// Who asked for an invocation, which decides how much a failure tells.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// An HTTP trigger's client without the admin key (anonymous, or with
    /// a function or host key): gets the outcome and a generic message;
    /// the error text, worker id and stack trace stay with the operator.
    Public,
    /// An admin-key holder: gets every detail.
    Admin,
}

async fn run(state: &AppState, function: &str, input: InvocationInput, caller: Caller) -> Response {
    let pending = match state.host.submit(function, input).await {
        Ok(p) => p,
        Err(e) => return invoke_error(e, caller),
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
        Err(e) => invoke_error(e, caller),
    }
}

fn invoke_error(e: InvokeError, caller: Caller) -> Response {
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

fn invocation_response(r: InvocationResult, caller: Caller) -> Response {
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
    if let Ok(v) = HeaderValue::from_str(&r.invocation_id) {
        h.insert(INVOCATION_ID_HEADER, v);
    }
    resp
}

/// What a caller without the admin key learns of an outcome.
fn public_message(outcome: Outcome) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_removed_from_what_workers_see() {
        let uri: Uri = "/api/f/x?a=1&code=K1&b=2&code=K2".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(ADMIN_KEY_HEADER, HeaderValue::from_static("K3"));
        headers.insert("x-other", HeaderValue::from_static("v"));
        let query = HashMap::from([("a".into(), "1".into()), ("code".into(), "K2".into())]);
        let r = rpc_http(
            &Method::GET,
            &uri,
            &headers,
            query,
            HashMap::new(),
            Bytes::new(),
        );
        let seen = format!("{r:?}");
        for key in ["K1", "K2", "K3"] {
            assert!(!seen.contains(key), "{key} leaked: {seen}");
        }
        assert_eq!(r.url, "http://127.0.0.1/api/f/x?a=1&b=2");
        assert_eq!(r.headers.get("x-other").map(String::as_str), Some("v"));
        assert_eq!(r.query.get("a").map(String::as_str), Some("1"));
        let bare: Uri = "/api/f?code=K".parse().unwrap();
        assert_eq!(without_key_param(&bare), "/api/f");
        let encoded: Uri = "/api/f?c%6Fde=K1&%63ode=K2&x=1".parse().unwrap();
        assert_eq!(without_key_param(&encoded), "/api/f?x=1");
    }

    #[test]
    fn a_key_is_read_from_the_header_first_then_from_code() {
        let uri: Uri = "/api/f?x=%zz&code=a%2Bb+c%41%e2%82%ac%".parse().unwrap();
        let k = presented_key(&HeaderMap::new(), &uri).unwrap();
        assert_eq!(String::from_utf8(k).unwrap(), "a+b cA\u{20ac}%");
        let mut h = HeaderMap::new();
        h.insert(ADMIN_KEY_HEADER, HeaderValue::from_static("hdr"));
        assert_eq!(presented_key(&h, &uri).unwrap(), b"hdr");
        assert!(presented_key(&HeaderMap::new(), &"/api/f".parse().unwrap()).is_none());
    }
}
