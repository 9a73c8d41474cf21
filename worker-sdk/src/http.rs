//! [`HttpRequest`] and [`HttpResponse`]: an HTTP trigger's request and the
//! response a function answers it with, and their conversions to and from
//! the protocol's [`RpcHttp`].

use std::collections::HashMap;

use fnhost_proto::rpc::{RpcHttp, TypedData};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::HandlerError;

/// The request of an HTTP-triggered invocation. Take it as a handler's
/// input ([`FromInput`](crate::FromInput)); a trigger that is not HTTP
/// fails the invocation with a message naming the function.
///
/// The host removes the keys callers present (the `x-functions-key`
/// header, the `code` query parameter) before the request reaches the
/// function. Header names are lowercase; repeated headers arrive joined
/// with `", "`.
///
/// ```no_run
/// use fnhost_worker::{Context, HandlerError, HttpRequest, HttpResponse};
///
/// async fn item(_ctx: Context, req: HttpRequest) -> Result<HttpResponse, HandlerError> {
///     let id = req.params.get("id").map_or("?", String::as_str);
///     let verbose = req.query.get("verbose").is_some_and(|v| v == "1");
///     Ok(HttpResponse::new(200).body(format!("{} item {id} (verbose: {verbose})", req.method)))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The full URL as the caller used it, e.g.
    /// `http://127.0.0.1:7071/api/items/7?verbose=1`.
    pub url: String,
    /// Headers by lowercase name.
    pub headers: HashMap<String, String>,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// Route parameters from the function's route template
    /// (`items/{id:int}` gives `id`).
    pub params: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request with the given method and URL, no headers, parameters or
    /// body (for tests).
    ///
    /// ```
    /// use fnhost_worker::HttpRequest;
    ///
    /// let req = HttpRequest::new("POST", "http://127.0.0.1/api/resize")
    ///     .with_header("content-type", "application/json")
    ///     .with_body(r#"{"width": 64}"#);
    /// assert_eq!(req.header("Content-Type"), Some("application/json"));
    /// ```
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            ..Self::default()
        }
    }

    /// Adds a header (the name is lowercased, as the host sends them).
    ///
    /// ```
    /// let req = fnhost_worker::HttpRequest::new("GET", "/").with_header("X-Trace", "1");
    /// assert_eq!(req.headers["x-trace"], "1");
    /// ```
    pub fn with_header(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.as_ref().to_ascii_lowercase(), value.into());
        self
    }

    /// Adds a query parameter.
    ///
    /// ```
    /// let req = fnhost_worker::HttpRequest::new("GET", "/").with_query("ms", "10");
    /// ```
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.insert(name.into(), value.into());
        self
    }

    /// Adds a route parameter.
    ///
    /// ```
    /// let req = fnhost_worker::HttpRequest::new("GET", "/").with_param("id", "7");
    /// ```
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Sets the body.
    ///
    /// ```
    /// let req = fnhost_worker::HttpRequest::new("POST", "/").with_body("hi");
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A header's value, the name matched in any case.
    ///
    /// ```
    /// # let req = fnhost_worker::HttpRequest::new("GET", "/");
    /// let content_type = req.header("Content-Type").unwrap_or("text/plain");
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    ///
    /// ```
    /// let req = fnhost_worker::HttpRequest::new("POST", "/").with_body("hi");
    /// assert_eq!(req.text().unwrap(), "hi");
    /// ```
    pub fn text(&self) -> Result<&str, HandlerError> {
        std::str::from_utf8(&self.body)
            .map_err(|e| HandlerError::msg(format!("the request body is not valid UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`, for a handler that needs the
    /// request's headers or parameters as well as a typed body (otherwise
    /// take [`Json<T>`](crate::Json) as the input).
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Resize { width: u32 }
    ///
    /// let req = fnhost_worker::HttpRequest::new("POST", "/").with_body(r#"{"width": 64}"#);
    /// assert_eq!(req.json::<Resize>().unwrap().width, 64);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HandlerError::msg(format!(
                "the request body is not valid JSON for `{}`: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl From<RpcHttp> for HttpRequest {
    /// Reads the body from `body`, or `rawBody` when `body` is absent.
    fn from(h: RpcHttp) -> Self {
        let body = h
            .body
            .as_deref()
            .or(h.raw_body.as_deref())
            .and_then(TypedData::to_bytes)
            .unwrap_or_default();
        Self {
            method: h.method,
            url: h.url,
            headers: h.headers,
            query: h.query,
            params: h.params,
            body,
        }
    }
}

impl From<HttpRequest> for RpcHttp {
    fn from(r: HttpRequest) -> Self {
        RpcHttp {
            method: r.method,
            url: r.url,
            headers: r.headers,
            query: r.query,
            params: r.params,
            body: Some(Box::new(TypedData::bytes(r.body))),
            ..RpcHttp::default()
        }
    }
}

/// An HTTP response for an HTTP-triggered function: return it from the
/// handler (it is an [`IntoOutput`](crate::IntoOutput)).
///
/// A handler that returns anything else answers `200`: [`Json`](crate::Json)
/// and `serde_json::Value` as `application/json`, text as `text/plain`,
/// bytes as `application/octet-stream`.
///
/// ```no_run
/// use fnhost_worker::{HandlerError, HttpResponse};
///
/// # fn f() -> Result<(), HandlerError> {
/// let created = HttpResponse::new(201)
///     .header("location", "/api/items/7")
///     .json(&serde_json::json!({"id": 7}))?;
/// let gone = HttpResponse::new(404).body("no such item");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers by name.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with the given status code, no headers and an empty body.
    ///
    /// ```no_run
    /// let r = fnhost_worker::HttpResponse::new(204);
    /// ```
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: HashMap::new(),
            body: Vec::new(),
        }
    }

    /// Sets a header (replacing an earlier value of the same name).
    ///
    /// ```no_run
    /// let r = fnhost_worker::HttpResponse::new(200).header("x-a", "1");
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the body.
    ///
    /// ```no_run
    /// let r = fnhost_worker::HttpResponse::new(200).body(b"raw".to_vec());
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON and `content-type` to
    /// `application/json`.
    ///
    /// ```no_run
    /// # fn f() -> Result<(), fnhost_worker::HandlerError> {
    /// let r = fnhost_worker::HttpResponse::new(201).json(&vec![1, 2, 3])?;
    /// # Ok(()) }
    /// ```
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, HandlerError> {
        let body = serde_json::to_vec(value).map_err(|e| {
            HandlerError::msg(format!(
                "the response body `{}` could not be serialized as JSON: {e}",
                std::any::type_name::<T>()
            ))
        })?;
        Ok(self.header("content-type", "application/json").body(body))
    }
}

impl From<HttpResponse> for RpcHttp {
    fn from(r: HttpResponse) -> Self {
        RpcHttp {
            status_code: r.status.to_string(),
            headers: r.headers,
            body: Some(Box::new(TypedData::bytes(r.body))),
            ..RpcHttp::default()
        }
    }
}

/// An [`RpcHttp`] whose `status_code` is not an HTTP status code, so it is
/// no [`HttpResponse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RpcHttp status code {status_code:?} is not an HTTP status code (100-999)")]
pub struct InvalidStatusCode {
    /// The `status_code` as given.
    pub status_code: String,
}

impl TryFrom<RpcHttp> for HttpResponse {
    type Error = InvalidStatusCode;

    /// An empty `status_code` is `200`, as the host reads it.
    ///
    /// ```
    /// use fnhost_worker::{HttpResponse, RpcHttp};
    ///
    /// let rpc = RpcHttp::from(HttpResponse::new(201).body("made"));
    /// assert_eq!(HttpResponse::try_from(rpc).unwrap().status, 201);
    /// ```
    fn try_from(h: RpcHttp) -> Result<Self, Self::Error> {
        let status = match h.status_code.trim() {
            "" => 200,
            code => code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..1000).contains(c))
                .ok_or_else(|| InvalidStatusCode {
                    status_code: h.status_code.clone(),
                })?,
        };
        let body = h
            .body
            .as_deref()
            .and_then(TypedData::to_bytes)
            .unwrap_or_default();
        Ok(Self {
            status,
            headers: h.headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_converts_from_and_to_rpc_http() {
        let rpc = RpcHttp {
            method: "POST".into(),
            url: "http://127.0.0.1/api/items/7?x=1".into(),
            headers: HashMap::from([("content-type".into(), "text/plain".into())]),
            query: HashMap::from([("x".into(), "1".into())]),
            params: HashMap::from([("id".into(), "7".into())]),
            body: Some(Box::new(TypedData::bytes(b"hi".to_vec()))),
            ..RpcHttp::default()
        };
        let req = HttpRequest::from(rpc.clone());
        assert_eq!(
            req,
            HttpRequest::new("POST", "http://127.0.0.1/api/items/7?x=1")
                .with_header("Content-Type", "text/plain")
                .with_query("x", "1")
                .with_param("id", "7")
                .with_body("hi")
        );
        assert_eq!(req.header("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(req.text().unwrap(), "hi");
        assert_eq!(RpcHttp::from(req), rpc);
    }

    #[test]
    fn a_request_without_body_reads_raw_body_or_nothing() {
        let raw = RpcHttp {
            raw_body: Some(Box::new(TypedData::string("raw"))),
            ..RpcHttp::default()
        };
        assert_eq!(HttpRequest::from(raw).body, b"raw");
        assert!(HttpRequest::from(RpcHttp::default()).body.is_empty());
    }

    #[test]
    fn a_request_body_that_is_not_the_json_expected_says_so() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Resize {
            width: u32,
        }
        let req = HttpRequest::new("POST", "/").with_body(r#"{"height": 1}"#);
        let e = req.json::<Resize>().unwrap_err().to_string();
        assert!(
            e.starts_with("the request body is not valid JSON for `")
                && e.contains("Resize`: missing field `width`"),
            "{e}"
        );
        let bad_utf8 = HttpRequest::new("POST", "/").with_body(vec![0xff]);
        assert!(bad_utf8.text().is_err());
    }

    #[test]
    fn a_response_converts_to_and_from_rpc_http() {
        let resp = HttpResponse::new(201)
            .header("location", "/api/items/7")
            .json(&serde_json::json!({"id": 7}))
            .unwrap();
        let rpc = RpcHttp::from(resp.clone());
        assert_eq!(rpc.status_code, "201");
        assert_eq!(rpc.headers["content-type"], "application/json");
        assert_eq!(rpc.headers["location"], "/api/items/7");
        assert_eq!(
            rpc.body.as_deref(),
            Some(&TypedData::bytes(b"{\"id\":7}".to_vec()))
        );
        assert_eq!(HttpResponse::try_from(rpc).unwrap(), resp);
    }

    #[test]
    fn a_response_status_is_200_when_empty_and_an_error_when_not_a_code() {
        let empty = RpcHttp::default();
        assert_eq!(HttpResponse::try_from(empty).unwrap().status, 200);
        for bad in ["abc", "42", "1000", "-1"] {
            let rpc = RpcHttp {
                status_code: bad.into(),
                ..RpcHttp::default()
            };
            let e = HttpResponse::try_from(rpc).unwrap_err();
            assert_eq!(e.status_code, bad);
        }
    }
}
