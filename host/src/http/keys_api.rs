//! Key management (admin key only), shaped like Azure's:
//! `GET|PUT|DELETE /admin/functions/<name>/keys[/<keyName>]` and the same
//! under `/admin/host/keys` for host keys. A `PUT` takes
//! `{"value": "..."}` (or an empty body: a value is generated) and answers
//! `{"name", "value"}`, 201 when the key is new.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{error_body, AppState};
use crate::keys::{KeyError, Scope};

fn function_scope(state: &AppState, name: &str) -> Option<Scope> {
    state
        .catalog
        .current()
        .get(name)
        .map(|f| Scope::Function(f.name.clone()))
}

fn unknown_function(name: &str) -> Response {
    error_body(StatusCode::NOT_FOUND, format!("no function '{name}'"))
}

fn listing(state: &AppState, scope: &Scope) -> Response {
    let keys: Vec<_> = state
        .keys
        .list(scope)
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    Json(json!({ "keys": keys })).into_response()
}

fn set(state: &AppState, scope: &Scope, name: &str, body: &Bytes) -> Response {
    let value = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) if !v.is_object() && !v.is_null() => {
                return error_body(
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object like {\"value\": \"...\"}",
                )
            }
            Ok(v) => match v.get("value") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                None | Some(serde_json::Value::Null) => None,
                Some(_) => {
                    return error_body(StatusCode::BAD_REQUEST, "\"value\" must be a string")
                }
            },
            Err(e) => {
                return error_body(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be JSON like {{\"value\": \"...\"}}: {e}"),
                )
            }
        }
    };
    match state.keys.set(scope, name, value) {
        Ok((value, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({"name": name, "value": value}))).into_response()
        }
        Err(e) => key_error(e),
    }
}

fn delete(state: &AppState, scope: &Scope, name: &str) -> Response {
    match state.keys.delete(scope, name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => key_error(e),
    }
}

fn key_error(e: KeyError) -> Response {
    let status = match &e {
        KeyError::NotFound(_) => StatusCode::NOT_FOUND,
        KeyError::Io { .. } => {
            tracing::error!("key store: {e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        KeyError::InvalidName(_) | KeyError::InvalidValue(_) | KeyError::Reserved => {
            StatusCode::BAD_REQUEST
        }
    };
    error_body(status, e.to_string())
}

pub(super) async fn list_function(
    State(state): State<AppState>,
    Path(function): Path<String>,
) -> Response {
    match function_scope(&state, &function) {
        Some(scope) => listing(&state, &scope),
        None => unknown_function(&function),
    }
}

pub(super) async fn put_function(
    State(state): State<AppState>,
    Path((function, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match function_scope(&state, &function) {
        Some(scope) => set(&state, &scope, &name, &body),
        None => unknown_function(&function),
    }
}

pub(super) async fn delete_function(
    State(state): State<AppState>,
    Path((function, name)): Path<(String, String)>,
) -> Response {
    match function_scope(&state, &function) {
        Some(scope) => delete(&state, &scope, &name),
        None => unknown_function(&function),
    }
}

pub(super) async fn list_host(State(state): State<AppState>) -> Response {
    listing(&state, &Scope::Host)
}

pub(super) async fn put_host(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    set(&state, &Scope::Host, &name, &body)
}

pub(super) async fn delete_host(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Response {
    delete(&state, &Scope::Host, &name)
}
