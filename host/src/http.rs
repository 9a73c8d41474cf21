//! The HTTP surface: trigger routes `/api/<function>` and the admin API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;

use crate::catalog::Catalog;
use crate::config::AppConfig;
use crate::events::AsyncEvents;
use crate::host::{HostHandle, ScfCredentials};
use crate::invocation::{CancelReason, InvocationInput, InvocationResult, InvokeError};
use crate::keys::KeyStore;

mod async_api;
mod console;
mod deadline;
mod guard;
mod keys_api;
pub mod openapi;
mod request;
mod response;
pub(crate) mod routes;
pub(crate) mod scf;
mod signatures;
mod stream;
pub(crate) mod tc3;

pub use async_api::{parse_list_query, MAX_LIMIT};
use guard::CancelOnDrop;
use openapi::Recorder;
pub(crate) use request::percent_decode;
pub use request::KEY_QUERY_PARAM;
use request::{
    presented_key, rpc_http, trigger_data, trigger_for, unauthorized, without_key_param,
};
pub use response::outcome_status;
use response::{invocation_response, invoke_error};

/// Header carrying the invocation's outcome on every invoke response.
pub const OUTCOME_HEADER: &str = "x-fnhost-outcome";
/// Header carrying the invocation id.
pub const INVOCATION_ID_HEADER: &str = "x-fnhost-invocation-id";
/// Header carrying the admin key.
pub const ADMIN_KEY_HEADER: &str = "x-functions-key";

/// What every route's handler reads: one `Arc`, so the per-request clone
/// of axum's `State` is one reference count, not one per field (the
/// dozen clones and drops showed in the HTTP path's profile).
#[derive(Clone)]
struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

struct Shared {
    host: HostHandle,
    app: Arc<AppConfig>,
    keys: Arc<KeyStore>,
    catalog: Catalog,
    body_limit: usize,
    events: AsyncEvents,
    scf: Option<Arc<scf::ScfState>>,
    worker_client: stream::WorkerClient,
    exposure: Exposure,
}

/// What the host shows about itself, and to whom.
#[derive(Clone)]
pub(crate) struct Exposure {
    /// Cleared as the host begins to stop: `/readyz` then answers 503.
    pub(crate) serving: Arc<std::sync::atomic::AtomicBool>,
    /// `GET /metrics` asks for the admin key.
    pub(crate) metrics_key_required: bool,
    /// `GET /admin/openapi.json` is served without the admin key.
    pub(crate) openapi_public: bool,
}

/// The host's HTTP routes, `/metrics` alone (for `--metrics-port`), and
/// the method and path of every fixed route (the app's trigger routes
/// aside).
pub(crate) fn router(
    host: HostHandle,
    app: Arc<AppConfig>,
    keys: Arc<KeyStore>,
    catalog: Catalog,
    events: AsyncEvents,
    scf: Option<ScfCredentials>,
    exposure: Exposure,
) -> (Router, Router, Vec<openapi::RouteKey>) {
    // Leave room for the envelope around the body in the gRPC message.
    let body_limit = app
        .host
        .max_message_bytes
        .saturating_sub(64 * 1024)
        .max(1024);
    let body_read_timeout = app.host.http.body_read_timeout;
    let state = AppState(Arc::new(Shared {
        host,
        catalog,
        body_limit,
        app,
        keys,
        events,
        scf: scf.map(|c| Arc::new(scf::ScfState::new(c))),
        worker_client: stream::worker_client(),
        exposure,
    }));
    let (admin, mut routes) = Recorder::new()
        .post("/admin/functions/{name}/invoke", admin_invoke)
        .post(
            "/admin/functions/{name}/invoke-async",
            async_api::invoke_async,
        )
        .get("/admin/async-events", async_api::list)
        .get("/admin/async-events/{id}", async_api::status)
        .post("/admin/async-events/{id}/terminate", async_api::terminate)
        .get("/admin/async-events/{id}/logs", async_api::logs)
        .get("/admin/async-events/{id}/input", async_api::input)
        .get("/admin/host/status", host_status)
        .post("/admin/host/drain", drain)
        .get("/admin/functions/{name}/keys", keys_api::list_function)
        .put("/admin/functions/{name}/keys/{key}", keys_api::put_function)
        .delete(
            "/admin/functions/{name}/keys/{key}",
            keys_api::delete_function,
        )
        .get("/admin/host/keys", keys_api::list_host)
        .put("/admin/host/keys/{key}", keys_api::put_host)
        .delete("/admin/host/keys/{key}", keys_api::delete_host)
        .finish();
    let admin_key = || middleware::from_fn_with_state(state.clone(), require_admin_key);
    let admin = admin.route_layer(admin_key());
    // The API's description, behind the admin key unless `--openapi-public`.
    let (openapi, more) = Recorder::new()
        .get("/admin/openapi.json", openapi_document)
        .finish();
    routes.extend(more);
    let openapi = if state.exposure.openapi_public {
        openapi
    } else {
        openapi.route_layer(admin_key())
    };
    // `/metrics`, behind the admin key when `--metrics-key-required`.
    let metrics_route = || {
        let (route, more) = Recorder::new().get("/metrics", metrics).finish();
        let route = if state.exposure.metrics_key_required {
            route.route_layer(admin_key())
        } else {
            route
        };
        (route, more)
    };
    let (metrics_main, more) = metrics_route();
    routes.extend(more);
    let metrics_only = metrics_route()
        .0
        .fallback(not_found)
        .with_state(state.clone());
    let (open, more) = Recorder::new()
        .post("/", scf::action)
        .get("/healthz", readyz)
        .get("/readyz", readyz)
        .get("/livez", livez)
        .finish();
    routes.extend(more);
    let main = open
        .merge(metrics_main)
        .merge(openapi)
        .merge(console::router(&mut routes))
        .merge(admin)
        .fallback(http_trigger)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            body_read_timeout,
            deadline::body_deadline,
        ))
        .with_state(state);
    (main, metrics_only, routes)
}

/// `GET /admin/openapi.json`: the API's OpenAPI 3.1 description, with the
/// app's functions and trigger routes.
async fn openapi_document(State(state): State<AppState>) -> Response {
    Json(openapi::document(
        &state.catalog.current(),
        &state.app.host.route_prefix,
    ))
    .into_response()
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

/// How long a probe waits for the dispatcher.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /livez`: 200 while the process and its dispatcher answer, degraded
/// or drained included (restarting the process would not help those);
/// 503 when the dispatcher does not answer within 2 s or has stopped.
async fn livez(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(PROBE_WAIT, state.host.status()).await {
        Ok(Some(s)) => Json(json!({"status": "alive", "state": s.state})).into_response(),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "dead", "reason": "the dispatcher has stopped"})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "dead", "reason": "the dispatcher did not answer within 2 s"})),
        )
            .into_response(),
    }
}

/// `GET /metrics`: the Prometheus text format (see `metrics.rs`), the
/// gauges of the present state set just before rendering. Open unless
/// `--metrics-key-required` puts it behind [`require_admin_key`].
async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = crate::metrics::install() else {
        return error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are off in this process: another metrics recorder is installed",
        );
    };
    if let Ok(Some(s)) = tokio::time::timeout(PROBE_WAIT, state.host.status()).await {
        crate::metrics::set_host_gauges(&s);
    }
    if let Some((counts, oldest)) = async_gauges(&state.events).await {
        crate::metrics::set_async_gauges(&counts, oldest);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Stored async events by status (from the kept counts) and the oldest
/// queued one's age; `None` when the store does not answer.
async fn async_gauges(
    events: &AsyncEvents,
) -> Option<(Vec<(&'static str, u64)>, std::time::Duration)> {
    use crate::events::{EventStatus, ListQuery};
    let mut counts = Vec::new();
    for status in EventStatus::ALL {
        let q = ListQuery {
            statuses: vec![status],
            limit: 0,
            ..ListQuery::default()
        };
        counts.push((status.as_str(), events.log().list(q).await.ok()?.total));
    }
    let oldest = ListQuery {
        statuses: vec![EventStatus::Queued],
        ascending: true,
        limit: 1,
        ..ListQuery::default()
    };
    let page = events.log().list(oldest).await.ok()?;
    let age = page
        .events
        .first()
        .map_or(0, |e| (crate::events::time::now_ms() - e.start_ms).max(0));
    Some((counts, std::time::Duration::from_millis(age as u64)))
}

/// `GET /readyz` (and its alias `/healthz`): 200 when the host can serve,
/// 503 (with the reason) when not, or once it has begun to stop.
async fn readyz(State(state): State<AppState>) -> Response {
    if !state
        .exposure
        .serving
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "state": "stopping"})),
        )
            .into_response();
    }
    let status = tokio::time::timeout(PROBE_WAIT, state.host.status())
        .await
        .ok()
        .flatten();
    match status {
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
            // With a shared store: this host's id and every host's heartbeat.
            if let Some(hosts) = state.events.cluster_hosts().await {
                body["cluster"] = match hosts {
                    Ok(hosts) => json!({
                        "hostId": state.events.host_id(),
                        "hosts": hosts,
                    }),
                    Err(e) => json!({
                        "hostId": state.events.host_id(),
                        "error": e.to_string(),
                    }),
                };
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
        let list = methods.join(", ").to_uppercase();
        let mut response = error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("function '{name}' accepts {list}"),
        );
        // RFC 9110: a 405 lists the methods the resource supports.
        if let Ok(v) = axum::http::HeaderValue::from_str(&list) {
            response.headers_mut().insert(axum::http::header::ALLOW, v);
        }
        return response;
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
    let (body, unread) = if state.host.streams_http() {
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
    let trace = crate::trace::TraceContext::for_request(&headers);
    let deferred = unread.is_some();
    let forwarded_body = unread.unwrap_or_else(|| body.clone().into());
    let request = rpc_http(&method, &uri, &headers, query, params, body);
    // Moved, not copied: the request's parts are needed again only if the
    // worker serves HTTP itself.
    let forward = Forward {
        deferred,
        method,
        uri,
        headers,
        body: forwarded_body,
    };
    run_http(
        &state,
        &name,
        InvocationInput::http(request).in_span(trace),
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
    run(
        &state,
        &name,
        InvocationInput::new(trigger).in_span(crate::trace::TraceContext::for_request(&headers)),
        Caller::Admin,
    )
    .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
