//! The SCF-compatible action API (Tencent Cloud SCF API 2018-04-16) on
//! `POST /`: the action in `X-TC-Action`, parameters as a JSON body,
//! requests signed with TC3-HMAC-SHA256 (see [`super::tc3`]) under the
//! host's `--scf-secret-id`/`--scf-secret-key`. Every answer is HTTP 200
//! with `{"Response": {..., "RequestId"}}`; failures carry
//! `Response.Error.{Code, Message}`, as the platform answers.
//!
//! Actions: `Invoke`, `ListAsyncEvents`, `GetAsyncEventStatus`,
//! `TerminateAsyncEvent`. Where the platform's behaviour is not documented:
//! - Only namespace `default` exists (another is `ResourceNotFound.Namespace`);
//!   `Invoke` runs `$LATEST` only (another `Qualifier` is
//!   `ResourceNotFound.Qualifier`); `ListAsyncEvents` filters by `Qualifier`.
//! - A function that fails under `Invoke` (`RequestResponse`) is still a
//!   successful API call: `Result.InvokeResult` is 1, `ErrMsg` says why,
//!   `RetMsg` is empty. `Log` holds the invocation's log lines unless
//!   `LogType` is `None`. `MemUsage` is 0 (not measured).
//! - Async events accepted here have `InvokeType` `scf`. Statuses `QUEUED`
//!   and `RETRYING` show as `RUNNING` (a `RUNNING` filter matches them);
//!   `StatusCode` is 0 until the event has ended; `EndTime` is "" until then.
//! - Parameters the host does not know are ignored (newer SDKs add some).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fnhost_proto::rpc::TypedData;
use serde_json::{json, Map, Value};

use super::guard::CancelOnDrop;
use super::{tc3, trigger_for, AppState};
use crate::events::{time, EnqueueError, EnqueueRequest, Enqueued, EventRecord, EventStatus};
use crate::events::{ListQuery, TerminateOutcome};
use crate::invocation::{CancelReason, InvocationInput, InvocationResult, InvokeError};

/// The one API version served.
pub const VERSION: &str = "2018-04-16";

/// An API error: `Response.Error.{Code, Message}`.
struct ApiError(String, String);

fn err(code: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError(code.into(), message.into())
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    err(format!("InvalidParameterValue.{param}"), message)
}

type ApiResult = Result<Value, ApiError>;

pub(super) async fn action(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = match handle(&state, &method, &uri, &headers, &body).await {
        Ok(v) => v,
        Err(ApiError(code, message)) => json!({"Error": {"Code": code, "Message": message}}),
    };
    response["RequestId"] = json!(uuid::Uuid::new_v4().to_string());
    Json(json!({ "Response": response })).into_response()
}

async fn handle(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult {
    let Some(creds) = state.scf.as_deref() else {
        return Err(err(
            "AuthFailure.SecretIdNotFound",
            "the SCF-compatible API is off: the host was started without \
             --scf-secret-id/--scf-secret-key (FNHOST_SCF_SECRET_ID/FNHOST_SCF_SECRET_KEY)",
        ));
    };
    let req = tc3::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers,
        body,
    };
    let now = time::now_ms().div_euclid(1000);
    tc3::verify(&req, &creds.secret_id, &creds.secret_key, now)
        .map_err(|e| err(e.code(), e.message()))?;
    let header = |name: &str| headers.get(name).map(HeaderValue::to_str);
    let action = match header("x-tc-action") {
        Some(Ok(a)) if !a.is_empty() => a,
        _ => {
            return Err(err(
                "MissingParameter",
                "the X-TC-Action header is required",
            ))
        }
    };
    match header("x-tc-version") {
        Some(Ok(VERSION)) => {}
        None => {
            return Err(err(
                "MissingParameter",
                "the X-TC-Version header is required",
            ))
        }
        Some(v) => {
            return Err(err(
                "NoSuchVersion",
                format!("API version {v:?} is not served; use {VERSION}"),
            ))
        }
    }
    let params: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            err(
                "InvalidParameter",
                format!("the body is not a JSON object: {e}"),
            )
        })?
    };
    let p = Params(&params);
    match action {
        "Invoke" => invoke(state, &p).await,
        "ListAsyncEvents" => list(state, &p).await,
        "GetAsyncEventStatus" => get_status(state, &p).await,
        "TerminateAsyncEvent" => terminate(state, &p).await,
        other => Err(err(
            "InvalidAction",
            format!(
                "action {other:?} does not exist; this host serves Invoke, ListAsyncEvents, \
                 GetAsyncEventStatus and TerminateAsyncEvent"
            ),
        )),
    }
}

/// Typed access to the request parameters; errors name the parameter.
struct Params<'a>(&'a Map<String, Value>);

impl Params<'_> {
    fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(invalid(name, format!("`{name}` must be a string, not {v}"))),
        }
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(err(
                "MissingParameter",
                format!("the parameter `{name}` is required"),
            )),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()),
            Some(v) => Err(invalid(
                name,
                format!("`{name}` must be an array of strings, not {v}"),
            )),
        }
    }

    fn uint(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                invalid(
                    name,
                    format!("`{name}` must be a non-negative integer, not {v}"),
                )
            }),
        }
    }

    /// `{Start, End}` as ms (start inclusive, end exclusive).
    fn interval(&self, name: &str) -> Result<(Option<i64>, Option<i64>), ApiError> {
        let Some(v) = self.0.get(name).filter(|v| !v.is_null()) else {
            return Ok((None, None));
        };
        let obj = v.as_object().ok_or_else(|| {
            invalid(
                name,
                format!("`{name}` must be {{\"Start\", \"End\"}}, not {v}"),
            )
        })?;
        let bound = |key: &str| match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => time::parse(s).map(Some).ok_or_else(|| {
                invalid(
                    name,
                    format!("`{name}.{key}` \"{s}\" is not a time \"YYYY-MM-DD HH:MM:SS\""),
                )
            }),
            Some(other) => Err(invalid(
                name,
                format!("`{name}.{key}` must be a string, not {other}"),
            )),
        };
        Ok((bound("Start")?, bound("End")?))
    }

    /// Checks `Namespace` (only `default` exists).
    fn namespace(&self) -> Result<(), ApiError> {
        match self.str("Namespace")? {
            None | Some("") | Some("default") => Ok(()),
            Some(ns) => Err(err(
                "ResourceNotFound.Namespace",
                format!("namespace \"{ns}\" does not exist; this host has only \"default\""),
            )),
        }
    }

    /// The required `FunctionName`, which must exist.
    fn function<'s>(&'s self, state: &AppState) -> Result<&'s str, ApiError> {
        let name = self.required("FunctionName")?;
        match state.app.function(name) {
            Some(_) => Ok(name),
            None => Err(not_found_function(name)),
        }
    }
}

fn not_found_function(name: &str) -> ApiError {
    err(
        "ResourceNotFound.Function",
        format!("function \"{name}\" does not exist"),
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    err("InternalError", e.to_string())
}

async fn invoke(state: &AppState, p: &Params<'_>) -> ApiResult {
    p.namespace()?;
    let name = p.function(state)?;
    let function = state
        .app
        .function(name)
        .ok_or_else(|| not_found_function(name))?;
    if let Some(q) = p
        .str("Qualifier")?
        .filter(|q| !q.is_empty() && *q != "$LATEST")
    {
        return Err(err(
            "ResourceNotFound.Qualifier",
            format!("version or alias \"{q}\" of \"{name}\" does not exist; this host runs $LATEST only"),
        ));
    }
    let event = match p.str("InvocationType")? {
        None | Some("") | Some("RequestResponse") => false,
        Some("Event") => true,
        Some(t) => {
            return Err(invalid(
                "InvocationType",
                format!("`InvocationType` \"{t}\" is not RequestResponse or Event"),
            ))
        }
    };
    let tail = match p.str("LogType")? {
        None | Some("") | Some("Tail") => true,
        Some("None") => false,
        Some(t) => {
            return Err(invalid(
                "LogType",
                format!("`LogType` \"{t}\" is not Tail or None"),
            ))
        }
    };
    let context = p
        .str("ClientContext")?
        .filter(|c| !c.is_empty())
        .unwrap_or("{}");
    if let Err(e) = serde_json::from_str::<Value>(context) {
        return Err(invalid(
            "ClientContext",
            format!("`ClientContext` is not JSON text: {e}"),
        ));
    }
    // The input as the admin invoke builds it from a JSON body.
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let input = trigger_for(
        function,
        &Uri::from_static("/"),
        &headers,
        Bytes::from(context.to_string()),
    );
    if event {
        return enqueue(state, name, input).await;
    }
    let pending = state
        .host
        .submit(name, InvocationInput::new(input))
        .await
        .map_err(invoke_error)?;
    let mut guard = CancelOnDrop::new(
        state.host.clone(),
        pending.id.clone(),
        CancelReason::ClientDisconnected,
    );
    let r = pending.result().await;
    guard.disarm();
    Ok(json!({ "Result": result(r.map_err(invoke_error)?, tail) }))
}

async fn enqueue(state: &AppState, name: &str, input: TypedData) -> ApiResult {
    let req = EnqueueRequest {
        function: name.to_string(),
        qualifier: None,
        invoke_type: "scf".into(),
        input,
        idempotency: None,
    };
    match state.events.enqueue(req).await {
        Ok(Enqueued::New(id) | Enqueued::Existing(id)) => Ok(json!({"Result": {
            "FunctionRequestId": id, "RetMsg": "", "ErrMsg": "", "Log": "",
            "Duration": 0, "BillDuration": 0, "MemUsage": 0, "InvokeResult": 0,
        }})),
        Err(EnqueueError::UnknownFunction(f)) => Err(not_found_function(&f)),
        Err(e) => Err(err(
            "FailedOperation.InvokeFunction",
            format!("the event was not accepted: {e}"),
        )),
    }
}

fn invoke_error(e: InvokeError) -> ApiError {
    match &e {
        InvokeError::UnknownFunction(f) => not_found_function(f),
        InvokeError::Disabled(_) => err("FailedOperation.FunctionStatusError", e.to_string()),
        _ => err("FailedOperation.InvokeFunction", e.to_string()),
    }
}

/// `Result` of a synchronous `Invoke`.
fn result(r: InvocationResult, tail: bool) -> Value {
    let ok = r.is_success();
    let ret = match (&r.output, ok) {
        (Some(out), true) => {
            String::from_utf8_lossy(&out.to_bytes().unwrap_or_default()).into_owned()
        }
        _ => String::new(),
    };
    let err_msg = if ok {
        String::new()
    } else {
        r.error.clone().unwrap_or_else(|| r.outcome.to_string())
    };
    let log = if tail {
        r.logs
            .iter()
            .map(|l| l.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        String::new()
    };
    let ms = r.elapsed.as_secs_f64() * 1000.0;
    json!({
        "FunctionRequestId": r.invocation_id,
        "RetMsg": ret,
        "ErrMsg": err_msg,
        "Log": log,
        "Duration": (ms * 1000.0).round() / 1000.0,
        "BillDuration": ms.ceil() as u64,
        "MemUsage": 0,
        "InvokeResult": if ok { 0 } else { 1 },
    })
}

/// The status as this surface names it.
fn scf_status(s: EventStatus) -> &'static str {
    match s {
        EventStatus::Queued | EventStatus::Running | EventStatus::Retrying => "RUNNING",
        other => other.as_str(),
    }
}

fn status_code(e: &EventRecord) -> i64 {
    e.status_code.filter(|_| e.status.is_final()).unwrap_or(0)
}

async fn list(state: &AppState, p: &Params<'_>) -> ApiResult {
    p.namespace()?;
    let mut q = ListQuery {
        function: Some(p.function(state)?.to_string()),
        qualifier: p
            .str("Qualifier")?
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        invoke_types: p.strings("InvokeType")?,
        request_id: p
            .str("InvokeRequestId")?
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        offset: p.uint("Offset")?.unwrap_or(0),
        limit: p.uint("Limit")?.unwrap_or(20),
        ..ListQuery::default()
    };
    if q.limit > super::MAX_LIMIT {
        return Err(invalid(
            "Limit",
            format!(
                "`Limit` {} is over the maximum of {}",
                q.limit,
                super::MAX_LIMIT
            ),
        ));
    }
    for s in p.strings("Status")? {
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" => q.statuses.extend([
                EventStatus::Queued,
                EventStatus::Running,
                EventStatus::Retrying,
            ]),
            "FINISHED" => q.statuses.push(EventStatus::Finished),
            "FAILED" => q.statuses.push(EventStatus::Failed),
            "ABORTED" => q.statuses.push(EventStatus::Aborted),
            _ => {
                return Err(invalid(
                    "Status",
                    format!("`Status` \"{s}\" is not one of RUNNING, FINISHED, FAILED, ABORTED"),
                ))
            }
        }
    }
    (q.start_from, q.start_to) = p.interval("StartTimeInterval")?;
    (q.end_from, q.end_to) = p.interval("EndTimeInterval")?;
    q.ascending = match p.str("Order")?.map(str::to_ascii_uppercase).as_deref() {
        None | Some("") | Some("DESC") => false,
        Some("ASC") => true,
        Some(o) => {
            return Err(invalid(
                "Order",
                format!("`Order` \"{o}\" is not ASC or DESC"),
            ))
        }
    };
    q.order_by_end = match p.str("Orderby")? {
        None | Some("") | Some("StartTime") => false,
        Some("EndTime") => true,
        Some(o) => {
            return Err(invalid(
                "OrderBy",
                format!("`Orderby` \"{o}\" is not StartTime or EndTime"),
            ))
        }
    };
    let page = state.events.log().list(q).await.map_err(internal)?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| {
            json!({
                "InvokeRequestId": e.request_id,
                "InvokeType": e.invoke_type,
                "Qualifier": e.qualifier,
                "Status": scf_status(e.status),
                "StartTime": time::scf(e.start_ms),
                "EndTime": e.end_ms.map(time::scf).unwrap_or_default(),
            })
        })
        .collect();
    Ok(json!({ "EventList": events, "TotalCount": page.total }))
}

fn event_not_found(id: &str) -> ApiError {
    err(
        "ResourceNotFound.AsyncEvent",
        format!("no async event with InvokeRequestId \"{id}\" (unknown, or pruned after the retention window)"),
    )
}

async fn get_status(state: &AppState, p: &Params<'_>) -> ApiResult {
    let id = p.required("InvokeRequestId")?;
    let e = state
        .events
        .log()
        .get(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| event_not_found(id))?;
    Ok(json!({"Result": {
        "Status": scf_status(e.status),
        "StatusCode": status_code(&e),
        "InvokeRequestId": e.request_id,
    }}))
}

/// Terminates a running (or still queued) event. An event that has already
/// ended is `FailedOperation.AsyncEventStatus` ("the current async event
/// status does not support this operation"), the code the platform lists for
/// this action; an event of another function is `ResourceNotFound.AsyncEvent`.
async fn terminate(state: &AppState, p: &Params<'_>) -> ApiResult {
    p.namespace()?;
    let name = p.function(state)?;
    let id = p.required("InvokeRequestId")?;
    let graceful = match p.0.get("GraceShutdown") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(invalid(
                "GraceShutdown",
                format!("`GraceShutdown` must be true or false, not {v}"),
            ))
        }
    };
    match state.events.log().get(id).await.map_err(internal)? {
        Some(e) if e.function == name => {}
        _ => return Err(event_not_found(id)),
    }
    match state.events.terminate(id, graceful).await.map_err(internal)? {
        TerminateOutcome::Done => Ok(json!({})),
        TerminateOutcome::AlreadyCompleted(s) => Err(err(
            "FailedOperation.AsyncEventStatus",
            format!("async event \"{id}\" has already ended ({}); only running events can be terminated", scf_status(s)),
        )),
        TerminateOutcome::NotFound => Err(event_not_found(id)),
    }
}
