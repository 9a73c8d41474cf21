//! What a request becomes: the key it presents, and the trigger data a
//! worker gets (keys removed).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use fnhost_proto::rpc::{RpcHttp, TypedData};

use super::{error_body, ADMIN_KEY_HEADER};
use crate::config::FunctionConfig;

/// The key a request presents: the `x-functions-key` header, else the
/// `code` query parameter (percent-decoded).
pub(super) fn presented_key(headers: &HeaderMap, uri: &Uri) -> Option<Vec<u8>> {
    if let Some(v) = headers.get(ADMIN_KEY_HEADER) {
        return Some(v.as_bytes().to_vec());
    }
    let query = uri.query()?;
    query_pairs(query)
        .find(|(name, _)| name == KEY_QUERY_PARAM)
        .map(|(_, value)| value.into_bytes())
}

/// `a=1&b=%20` as decoded pairs.
pub(super) fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
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
    // Valid UTF-8 (nearly always) becomes the string without a second copy.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One answer for a missing and a wrong key alike: it tells nothing of
/// which keys exist.
pub(super) fn unauthorized() -> Response {
    error_body(
        StatusCode::UNAUTHORIZED,
        "a valid key is required (x-functions-key header or code query parameter)",
    )
}

/// The trigger data for an admin (sync or async) invoke of `function`: an
/// HTTP request for HTTP-triggered functions, else the body as data.
pub(super) fn trigger_for(
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
pub(super) fn trigger_data(headers: &HeaderMap, body: Bytes) -> TypedData {
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
pub(super) fn rpc_http(
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
pub(super) fn without_key_param(uri: &Uri) -> String {
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
