//! A handler's untyped [`Input`] and [`Output`].

use std::collections::HashMap;

use fnhost_proto::rpc::{parameter_binding, InvocationRequest, RpcHttp, TypedData};
use serde::de::DeserializeOwned;

use crate::error::HandlerError;
use crate::http::HttpResponse;

/// The data an invocation was triggered with, untyped.
///
/// The trigger is the first input binding; every binding is also available
/// by name, and the trigger metadata by key. A handler that knows its input
/// takes a typed one instead: [`Json<T>`](crate::Json),
/// [`HttpRequest`](crate::HttpRequest), `String` or `Vec<u8>` (see
/// [`FromInput`](crate::FromInput)).
///
/// ```no_run
/// use fnhost_worker::{Context, HandlerError, Input};
///
/// async fn handler(_ctx: Context, input: Input) -> Result<String, HandlerError> {
///     if let Some(http) = input.http() {
///         return Ok(format!("{} {}", http.method, http.url));
///     }
///     input.text()
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Input {
    trigger: Option<TypedData>,
    bindings: HashMap<String, TypedData>,
    metadata: HashMap<String, TypedData>,
}

impl Input {
    /// An input whose trigger data is `data` (for tests).
    ///
    /// ```no_run
    /// use fnhost_worker::{Input, TypedData};
    /// let input = Input::from_typed_data(TypedData::string("hi"));
    /// ```
    pub fn from_typed_data(data: TypedData) -> Self {
        Self {
            trigger: Some(data),
            ..Self::default()
        }
    }

    /// Adds a named binding (for tests); the first one added when there is no
    /// trigger yet also becomes the trigger.
    ///
    /// ```no_run
    /// use fnhost_worker::{Input, TypedData};
    /// let input = Input::default().with_binding("req", TypedData::string("hi"));
    /// ```
    pub fn with_binding(mut self, name: impl Into<String>, data: TypedData) -> Self {
        if self.trigger.is_none() {
            self.trigger = Some(data.clone());
        }
        self.bindings.insert(name.into(), data);
        self
    }

    pub(crate) fn from_request(req: &mut InvocationRequest) -> Self {
        let mut input = Self {
            metadata: std::mem::take(&mut req.trigger_metadata),
            ..Self::default()
        };
        for binding in std::mem::take(&mut req.input_data) {
            match binding.rpc_data {
                Some(parameter_binding::RpcData::Data(data)) => {
                    input = input.with_binding(binding.name, data);
                }
                _ => tracing::debug!(binding = %binding.name, "ignoring non-data input binding"),
            }
        }
        input
    }

    /// The trigger's raw typed data, if any.
    ///
    /// ```no_run
    /// # let input = fnhost_worker::Input::default();
    /// let present = input.data().is_some();
    /// ```
    pub fn data(&self) -> Option<&TypedData> {
        self.trigger.as_ref()
    }

    /// The trigger payload as bytes (the body for HTTP; empty when absent or
    /// a collection).
    ///
    /// ```no_run
    /// # let input = fnhost_worker::Input::default();
    /// let len = input.bytes().len();
    /// ```
    pub fn bytes(&self) -> Vec<u8> {
        self.trigger
            .as_ref()
            .and_then(TypedData::to_bytes)
            .unwrap_or_default()
    }

    /// The trigger payload as UTF-8 text (the body for HTTP).
    ///
    /// ```no_run
    /// # fn f(input: fnhost_worker::Input) -> Result<(), fnhost_worker::HandlerError> {
    /// let name = input.text()?;
    /// # Ok(()) }
    /// ```
    pub fn text(&self) -> Result<String, HandlerError> {
        String::from_utf8(self.bytes())
            .map_err(|e| HandlerError::msg(format!("input is not valid UTF-8: {e}")))
    }

    /// The trigger payload parsed as JSON into `T` (the body for HTTP).
    ///
    /// ```no_run
    /// # fn f(input: fnhost_worker::Input) -> Result<(), fnhost_worker::HandlerError> {
    /// let value: serde_json::Value = input.json()?;
    /// # Ok(()) }
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_slice(&self.bytes()).map_err(|e| {
            HandlerError::msg(format!(
                "input is not valid JSON for `{}`: {e}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The HTTP request as the protocol has it, when the trigger is HTTP
    /// (take [`HttpRequest`](crate::HttpRequest) as the input for the typed
    /// form).
    ///
    /// ```no_run
    /// # let input = fnhost_worker::Input::default();
    /// if let Some(req) = input.http() { println!("{}", req.method); }
    /// ```
    pub fn http(&self) -> Option<&RpcHttp> {
        self.trigger.as_ref()?.as_http()
    }

    /// An input binding by name.
    ///
    /// ```no_run
    /// # let input = fnhost_worker::Input::default();
    /// let req = input.binding("req");
    /// ```
    pub fn binding(&self, name: &str) -> Option<&TypedData> {
        self.bindings.get(name)
    }

    /// A trigger metadata value by key.
    ///
    /// ```no_run
    /// # let input = fnhost_worker::Input::default();
    /// let query = input.trigger_metadata("Query");
    /// ```
    pub fn trigger_metadata(&self, key: &str) -> Option<&TypedData> {
        self.metadata.get(key)
    }

    pub(crate) fn into_trigger(self) -> Option<TypedData> {
        self.trigger
    }
}

/// What a handler returns, untyped; sent as the invocation's return value.
///
/// Build it with `.into()` from a `String`, `&str`, `Vec<u8>`,
/// `serde_json::Value`, [`HttpResponse`], [`TypedData`] or `()` (no value).
/// A handler may return any of those, or [`Json<U>`](crate::Json), directly
/// (see [`IntoOutput`](crate::IntoOutput)).
///
/// ```no_run
/// use fnhost_worker::Output;
/// let text: Output = "hello".into();
/// let json: Output = serde_json::json!({"ok": true}).into();
/// let nothing: Output = ().into();
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    value: Option<TypedData>,
}

impl Output {
    /// The typed data sent as `InvocationResponse.return_value`.
    ///
    /// ```no_run
    /// let out: fnhost_worker::Output = "x".into();
    /// assert!(out.typed_data().is_some());
    /// ```
    pub fn typed_data(&self) -> Option<&TypedData> {
        self.value.as_ref()
    }

    pub(crate) fn into_typed_data(self) -> Option<TypedData> {
        self.value
    }
}

impl From<TypedData> for Output {
    fn from(v: TypedData) -> Self {
        Self { value: Some(v) }
    }
}

impl From<String> for Output {
    fn from(v: String) -> Self {
        TypedData::string(v).into()
    }
}

impl From<&str> for Output {
    fn from(v: &str) -> Self {
        TypedData::string(v).into()
    }
}

impl From<Vec<u8>> for Output {
    fn from(v: Vec<u8>) -> Self {
        TypedData::bytes(v).into()
    }
}

impl From<serde_json::Value> for Output {
    fn from(v: serde_json::Value) -> Self {
        TypedData::json(v.to_string()).into()
    }
}

impl From<()> for Output {
    fn from((): ()) -> Self {
        Self { value: None }
    }
}

impl From<HttpResponse> for Output {
    fn from(v: HttpResponse) -> Self {
        TypedData::http(v.into()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_input_reads_the_body() {
        let http = RpcHttp {
            method: "POST".into(),
            body: Some(Box::new(TypedData::bytes(b"{\"a\":1}".to_vec()))),
            ..RpcHttp::default()
        };
        let input = Input::from_typed_data(TypedData::http(http));
        assert_eq!(input.http().unwrap().method, "POST");
        assert_eq!(input.text().unwrap(), "{\"a\":1}");
        let v: serde_json::Value = input.json().unwrap();
        assert_eq!(v["a"], 1);
    }

    #[test]
    fn request_bindings_and_trigger() {
        let mut req = InvocationRequest {
            input_data: vec![
                fnhost_proto::rpc::ParameterBinding {
                    name: "first".into(),
                    rpc_data: Some(parameter_binding::RpcData::Data(TypedData::string("1"))),
                },
                fnhost_proto::rpc::ParameterBinding {
                    name: "second".into(),
                    rpc_data: Some(parameter_binding::RpcData::Data(TypedData::string("2"))),
                },
            ],
            ..InvocationRequest::default()
        };
        req.trigger_metadata
            .insert("k".into(), TypedData::string("v"));
        let input = Input::from_request(&mut req);
        assert_eq!(input.text().unwrap(), "1");
        assert_eq!(input.binding("second"), Some(&TypedData::string("2")));
        assert_eq!(input.trigger_metadata("k"), Some(&TypedData::string("v")));
        assert!(Input::default().text().unwrap().is_empty());
    }

    #[test]
    fn outputs() {
        assert_eq!(Output::from(()).typed_data(), None);
        assert_eq!(
            Output::from(serde_json::json!({"x": 1})).typed_data(),
            Some(&TypedData::json("{\"x\":1}"))
        );
        let out = Output::from(HttpResponse::new(200).header("h", "v").body("b"));
        let http = out.typed_data().unwrap().as_http().unwrap();
        assert_eq!(http.status_code, "200");
        assert_eq!(http.headers["h"], "v");
        assert_eq!(http.body.as_deref(), Some(&TypedData::bytes(b"b".to_vec())));
    }
}
