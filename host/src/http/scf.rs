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
//! - A signature is accepted again only for the action it was first
//!   accepted for ([`super::signatures`]); the SDKs do not sign `X-TC-Action`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fnhost_proto::rpc::TypedData;
use serde_json::{json, Map, Value};
use std::sync::{Mutex, PoisonError};

use super::guard::CancelOnDrop;
use super::signatures::{Admission, SignatureCache, MAX_SIGNATURES};
use super::{tc3, trigger_for, AppState};
use crate::config::FunctionConfig;
use crate::events::{time, EnqueueError, EnqueueRequest, Enqueued, EventRecord, EventStatus};
use crate::events::{InvokeType, ListQuery, RequestId, StatusCode, TerminateOutcome};
use crate::host::ScfCredentials;
use crate::invocation::{CancelReason, InvocationInput, InvocationResult, InvokeError};

/// The one API version served.
pub const VERSION: &str = "2018-04-16";

/// The SCF API's state: the credentials and the signatures accepted so far.
pub(super) struct ScfState {
    credentials: ScfCredentials,
    /// Held only for one O(log n) check-and-record per request, never across
    /// an await, so a plain mutex serialises nothing that matters.
    signatures: Mutex<SignatureCache<Action>>,
}

impl ScfState {
    pub(super) fn new(credentials: ScfCredentials) -> Self {
        Self {
            credentials,
            signatures: Mutex::new(SignatureCache::new(MAX_SIGNATURES)),
        }
    }
}

/// The actions served. Parsed before a signature is recorded, so what a
/// signature is bound to is an operation that exists; names match exactly
/// (case too), so no other spelling reaches an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Invoke,
    ListAsyncEvents,
    GetAsyncEventStatus,
    TerminateAsyncEvent,
}

impl Action {
    const ALL: [Action; 4] = [
        Action::Invoke,
        Action::ListAsyncEvents,
        Action::GetAsyncEventStatus,
        Action::TerminateAsyncEvent,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Invoke => "Invoke",
            Action::ListAsyncEvents => "ListAsyncEvents",
            Action::GetAsyncEventStatus => "GetAsyncEventStatus",
            Action::TerminateAsyncEvent => "TerminateAsyncEvent",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// An API error: `Response.Error.{Code, Message}`.
pub(crate) struct ApiError(pub(crate) String, pub(crate) String);

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
    let Some(scf) = state.scf.as_deref() else {
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
    let creds = &scf.credentials;
    let verified = tc3::verify(&req, &creds.secret_id, &creds.secret_key, now)
        .map_err(|e| err(e.code(), e.message()))?;
    let header = |name: &str| headers.get(name).map(HeaderValue::to_str);
    let action = match header("x-tc-action") {
        Some(Ok(a)) if !a.is_empty() => Action::parse(a).ok_or_else(|| {
            err(
                "InvalidAction",
                format!(
                    "action {a:?} does not exist; this host serves Invoke, ListAsyncEvents, \
                     GetAsyncEventStatus and TerminateAsyncEvent"
                ),
            )
        })?,
        _ => {
            return Err(err(
                "MissingParameter",
                "the X-TC-Action header is required",
            ))
        }
    };
    admit(scf, &verified, action, now)?;
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
        Action::Invoke => invoke(state, &p).await,
        Action::ListAsyncEvents => list(state, &p).await,
        Action::GetAsyncEventStatus => get_status(state, &p).await,
        Action::TerminateAsyncEvent => terminate(state, &p).await,
    }
}

/// Refuses a signature already accepted for another action (the SDKs do
/// not sign `X-TC-Action`, so the same signed request could otherwise be
/// resent as another operation); see [`super::signatures`].
fn admit(
    scf: &ScfState,
    verified: &tc3::Verified,
    action: Action,
    now: i64,
) -> Result<(), ApiError> {
    let admission = scf
        .signatures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(verified.signature, action, verified.valid_until, now);
    let short: String = verified.signature[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match admission {
        Admission::First | Admission::Repeat => Ok(()),
        Admission::Retargeted { first } => {
            tracing::warn!(
                signature = %format!("{short}…"),
                first = first.as_str(),
                attempted = action.as_str(),
                "SCF API: refused a signature replayed under another action"
            );
            Err(err(
                "AuthFailure.SignatureFailure",
                format!(
                    "this signature was already accepted for action {}, and is accepted again \
                     only for that action; sign each request anew (or include x-tc-action in \
                     SignedHeaders) to send {}",
                    first.as_str(),
                    action.as_str()
                ),
            ))
        }
        Admission::Full { newly } => {
            if newly {
                tracing::warn!(
                    "SCF API: {MAX_SIGNATURES} signatures accepted within the last 5 minutes; \
                     refusing new ones until the oldest expire"
                );
            }
            Err(err(
                "RequestLimitExceeded",
                format!(
                    "the host remembers at most {MAX_SIGNATURES} signed requests per 5-minute \
                     window, to refuse replays under another action, and has that many; \
                     retry when older ones expire"
                ),
            ))
        }
    }
}

/// Typed access to the request parameters; errors name the parameter.
pub(crate) struct Params<'a>(pub(crate) &'a Map<String, Value>);

impl Params<'_> {
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string parameter; "" counts as absent.
    pub(crate) fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
            Some(v) => Err(invalid(name, format!("`{name}` must be a string, not {v}"))),
        }
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.str(name)?.ok_or_else(|| {
            err(
                "MissingParameter",
                format!("the parameter `{name}` is required"),
            )
        })
    }

    /// Which of `options` (case-insensitive) a string parameter is.
    pub(crate) fn choice(&self, name: &str, options: &[&str]) -> Result<Option<usize>, ApiError> {
        let Some(v) = self.str(name)? else {
            return Ok(None);
        };
        match options.iter().position(|o| o.eq_ignore_ascii_case(v)) {
            Some(i) => Ok(Some(i)),
            None => Err(invalid(
                name,
                format!("`{name}` \"{v}\" is not one of {}", options.join(", ")),
            )),
        }
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let v = self.get(name).cloned().unwrap_or(json!([]));
        serde_json::from_value(v.clone()).map_err(|_| {
            invalid(
                name,
                format!("`{name}` must be an array of strings, not {v}"),
            )
        })
    }

    pub(crate) fn uint(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    invalid(
                        name,
                        format!("`{name}` must be a non-negative integer, not {v}"),
                    )
                })
            })
            .transpose()
    }

    /// `{Start, End}` as ms (start inclusive, end exclusive).
    pub(crate) fn interval(&self, name: &str) -> Result<(Option<i64>, Option<i64>), ApiError> {
        let v = self.get(name).cloned().unwrap_or(json!({}));
        let bounds: Map<String, Value> = serde_json::from_value(v.clone()).map_err(|_| {
            invalid(
                name,
                format!("`{name}` must be {{\"Start\", \"End\"}}, not {v}"),
            )
        })?;
        let bound = |key: &str| match Params(&bounds).str(key) {
            Ok(None) => Ok(None),
            Ok(Some(s)) => time::parse(s).map(Some).ok_or_else(|| {
                invalid(
                    name,
                    format!("`{name}.{key}` \"{s}\" is not a time \"YYYY-MM-DD HH:MM:SS\""),
                )
            }),
            Err(ApiError(_, m)) => Err(invalid(name, format!("`{name}`: {m}"))),
        };
        Ok((bound("Start")?, bound("End")?))
    }

    /// Checks `Namespace` (only `default` exists).
    pub(crate) fn namespace(&self) -> Result<(), ApiError> {
        match self.str("Namespace")? {
            None | Some("default") => Ok(()),
            Some(ns) => Err(err(
                "ResourceNotFound.Namespace",
                format!("namespace \"{ns}\" does not exist; this host has only \"default\""),
            )),
        }
    }

    /// The required `FunctionName`, which must exist.
    fn function(&self, state: &AppState) -> Result<std::sync::Arc<FunctionConfig>, ApiError> {
        let name = self.required("FunctionName")?;
        state
            .catalog
            .current()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found_function(name))
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
    let function = p.function(state)?;
    let name = function.name.as_str();
    if let Some(q) = p.str("Qualifier")?.filter(|q| *q != "$LATEST") {
        return Err(err(
            "ResourceNotFound.Qualifier",
            format!("version or alias \"{q}\" of \"{name}\" does not exist; this host runs $LATEST only"),
        ));
    }
    let event = p.choice("InvocationType", &["RequestResponse", "Event"])? == Some(1);
    let tail = p.choice("LogType", &["Tail", "None"])? != Some(1);
    let context = p.str("ClientContext")?.unwrap_or("{}");
    if let Err(e) = serde_json::from_str::<Value>(context) {
        return Err(invalid(
            "ClientContext",
            format!("`ClientContext` is not JSON text: {e}"),
        ));
    }
    // The input as the admin invoke builds it from a JSON body.
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let body = Bytes::from(context.to_string());
    let input = trigger_for(&function, &Uri::from_static("/"), &headers, body);
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
        invoke_type: InvokeType::Scf,
        input,
        idempotency: None,
        trace: None,
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
    let text =
        |d: &TypedData| String::from_utf8_lossy(&d.to_bytes().unwrap_or_default()).into_owned();
    let ret = r
        .output
        .as_ref()
        .filter(|_| ok)
        .map(text)
        .unwrap_or_default();
    let err_msg = match ok {
        true => String::new(),
        false => r.error.clone().unwrap_or_else(|| r.outcome.to_string()),
    };
    let lines: Vec<&str> = r
        .logs
        .iter()
        .filter(|_| tail)
        .map(|l| l.message.as_str())
        .collect();
    let ms = r.elapsed.as_secs_f64() * 1000.0;
    json!({
        "FunctionRequestId": r.invocation_id,
        "RetMsg": ret,
        "ErrMsg": err_msg,
        "Log": lines.join("\n"),
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
    e.status_code
        .filter(|_| e.status.is_final())
        .map_or(0, StatusCode::as_i64)
}

async fn list(state: &AppState, p: &Params<'_>) -> ApiResult {
    p.namespace()?;
    let mut q = ListQuery {
        function: Some(p.function(state)?.name.clone()),
        qualifier: p.str("Qualifier")?.map(str::to_string),
        invoke_types: p.strings("InvokeType")?,
        request_id: p.str("InvokeRequestId")?.map(RequestId::from),
        offset: p.uint("Offset")?.unwrap_or(0),
        limit: p.uint("Limit")?.unwrap_or(20),
        ascending: p.choice("Order", &["DESC", "ASC"])? == Some(1),
        order_by_end: p.choice("Orderby", &["StartTime", "EndTime"])? == Some(1),
        ..ListQuery::default()
    };
    if q.limit > super::MAX_LIMIT {
        let max = super::MAX_LIMIT;
        return Err(invalid(
            "Limit",
            format!("`Limit` {} is over the maximum of {max}", q.limit),
        ));
    }
    let statuses = ["RUNNING", "FINISHED", "FAILED", "ABORTED"];
    for s in p.strings("Status")? {
        q.statuses.extend_from_slice(
            match statuses.iter().position(|o| o.eq_ignore_ascii_case(&s)) {
                Some(0) => &[
                    EventStatus::Queued,
                    EventStatus::Running,
                    EventStatus::Retrying,
                ],
                Some(1) => &[EventStatus::Finished],
                Some(2) => &[EventStatus::Failed],
                Some(_) => &[EventStatus::Aborted],
                None => {
                    return Err(invalid(
                        "Status",
                        format!("`Status` \"{s}\" is not one of {}", statuses.join(", ")),
                    ))
                }
            },
        );
    }
    (q.start_from, q.start_to) = p.interval("StartTimeInterval")?;
    (q.end_from, q.end_to) = p.interval("EndTimeInterval")?;
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

fn event_not_found(id: &RequestId) -> ApiError {
    err(
        "ResourceNotFound.AsyncEvent",
        format!("no async event with InvokeRequestId \"{id}\" (unknown, or pruned after the retention window)"),
    )
}

async fn get_status(state: &AppState, p: &Params<'_>) -> ApiResult {
    let id = &RequestId::from(p.required("InvokeRequestId")?);
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
    let name = &p.function(state)?.name;
    let id = &RequestId::from(p.required("InvokeRequestId")?);
    let graceful = match p.get("GraceShutdown") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(invalid(
                "GraceShutdown",
                format!("`GraceShutdown` must be true or false, not {v}"),
            ))
        }
    };
    match state.events.log().get(id).await.map_err(internal)? {
        Some(e) if &e.function == name => {}
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
