//! Typed handler input and output: [`FromInput`], [`IntoOutput`] and
//! [`Json`].

use std::ops::{Deref, DerefMut};

use fnhost_proto::rpc::{typed_data, TypedData};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Context, HandlerError, HttpRequest, Input, Output};

/// A handler's input type: what an invocation's [`Input`] is turned into
/// before the handler runs.
///
/// Implemented for [`Input`] (everything, untyped), [`Json<T>`] (the
/// trigger payload, or an HTTP body, parsed as JSON), [`HttpRequest`] (an
/// HTTP trigger's request), `String` (UTF-8 text) and `Vec<u8>` (bytes).
/// When it fails, the invocation fails with its error and the handler never
/// runs; the messages of these name the function.
///
/// Implement it for a type of your own to share parsing between functions:
///
/// ```no_run
/// use fnhost_worker::{Context, FromInput, HandlerError, Input, Worker};
///
/// /// A number of milliseconds, given as the input text.
/// struct Millis(u64);
///
/// impl FromInput for Millis {
///     fn from_input(input: Input, ctx: &Context) -> Result<Self, HandlerError> {
///         let text = input.text()?;
///         text.trim().parse().map(Millis).map_err(|e| {
///             HandlerError::msg(format!("function '{}' wants milliseconds: {e}", ctx.function_name()))
///         })
///     }
/// }
///
/// async fn wait(ctx: Context, Millis(ms): Millis) -> Result<String, HandlerError> {
///     ctx.until_cancelled(tokio::time::sleep(std::time::Duration::from_millis(ms))).await?;
///     Ok(format!("waited {ms} ms"))
/// }
///
/// let worker = Worker::builder().function("wait", wait);
/// ```
pub trait FromInput: Sized {
    /// Reads `Self` from the invocation's input; `ctx` is the invocation's
    /// context (for its function name in error messages, its metadata).
    fn from_input(input: Input, ctx: &Context) -> Result<Self, HandlerError>;
}

/// A handler's output type: what it returns inside `Ok`, turned into the
/// invocation's return value.
///
/// Implemented for everything that converts into [`Output`] (`String`,
/// `&str`, `Vec<u8>`, `serde_json::Value`, [`HttpResponse`](crate::HttpResponse),
/// [`TypedData`], `()` for no value, and `Output` itself) and for
/// [`Json<U>`]. For an HTTP trigger, a value that is not an `HttpResponse`
/// answers `200` with it as the body.
///
/// ```no_run
/// use fnhost_worker::{HandlerError, IntoOutput, Json, Output};
///
/// #[derive(serde::Serialize)]
/// struct Resized { width: u32, height: u32 }
///
/// # fn f() -> Result<(), HandlerError> {
/// let out: Output = Json(Resized { width: 64, height: 48 }).into_output()?;
/// # Ok(()) }
/// ```
pub trait IntoOutput {
    /// Converts into the return value; fails when it cannot be encoded.
    fn into_output(self) -> Result<Output, HandlerError>;
}

impl<T: Into<Output>> IntoOutput for T {
    fn into_output(self) -> Result<Output, HandlerError> {
        Ok(self.into())
    }
}

/// JSON in and out: as a handler's input, the trigger payload (an HTTP
/// request's body) parsed into `T`; as its output, `T` serialized and sent
/// as JSON (for an HTTP trigger, a `200` with `content-type:
/// application/json`).
///
/// Input that is not valid JSON for `T` fails the invocation, before the
/// handler runs, with a message naming the function, the type and serde's
/// reason, e.g. ``function 'resize' got input that is not valid JSON for
/// `app::Resize`: missing field `width` at line 1 column 13``.
///
/// ```no_run
/// use fnhost_worker::{Context, HandlerError, Json, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Resize { width: u32, height: u32, scale: f64 }
///
/// #[derive(Serialize)]
/// struct Resized { width: u32, height: u32 }
///
/// async fn resize(_ctx: Context, Json(req): Json<Resize>) -> Result<Json<Resized>, HandlerError> {
///     Ok(Json(Resized {
///         width: (f64::from(req.width) * req.scale) as u32,
///         height: (f64::from(req.height) * req.scale) as u32,
///     }))
/// }
///
/// let worker = Worker::builder().function("resize", resize);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The value inside.
    ///
    /// ```
    /// assert_eq!(fnhost_worker::Json(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Json(value)
    }
}

impl<T: DeserializeOwned> FromInput for Json<T> {
    fn from_input(input: Input, ctx: &Context) -> Result<Self, HandlerError> {
        let bytes = payload(input);
        let type_name = std::any::type_name::<T>();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(rejected(
                ctx,
                format!("got no input; it expects JSON for `{type_name}`"),
            ));
        }
        serde_json::from_slice(&bytes).map(Json).map_err(|e| {
            rejected(
                ctx,
                format!("got input that is not valid JSON for `{type_name}`: {e}"),
            )
        })
    }
}

impl<T: Serialize> IntoOutput for Json<T> {
    fn into_output(self) -> Result<Output, HandlerError> {
        serde_json::to_string(&self.0)
            .map(|json| TypedData::json(json).into())
            .map_err(|e| {
                HandlerError::msg(format!(
                    "the return value `{}` could not be serialized as JSON: {e}",
                    std::any::type_name::<T>()
                ))
            })
    }
}

impl FromInput for Input {
    fn from_input(input: Input, _ctx: &Context) -> Result<Self, HandlerError> {
        Ok(input)
    }
}

impl FromInput for HttpRequest {
    fn from_input(input: Input, ctx: &Context) -> Result<Self, HandlerError> {
        match input.into_trigger() {
            Some(TypedData {
                data: Some(typed_data::Data::Http(h)),
            }) => Ok(HttpRequest::from(*h)),
            other => Err(rejected(
                ctx,
                format!(
                    "expects an HTTP trigger, but its input is {}",
                    kind(other.as_ref())
                ),
            )),
        }
    }
}

impl FromInput for String {
    fn from_input(input: Input, ctx: &Context) -> Result<Self, HandlerError> {
        String::from_utf8(payload(input))
            .map_err(|e| rejected(ctx, format!("got input that is not valid UTF-8: {e}")))
    }
}

impl FromInput for Vec<u8> {
    fn from_input(input: Input, _ctx: &Context) -> Result<Self, HandlerError> {
        Ok(payload(input))
    }
}

/// The trigger payload's bytes (an HTTP body); empty when there is none.
fn payload(input: Input) -> Vec<u8> {
    input
        .into_trigger()
        .and_then(|t| t.to_bytes())
        .unwrap_or_default()
}

fn rejected(ctx: &Context, what: String) -> HandlerError {
    HandlerError::msg(format!("function '{}' {what}", ctx.function_name()))
}

/// What kind of data the trigger is, for error messages.
fn kind(data: Option<&TypedData>) -> &'static str {
    match data.and_then(|d| d.data.as_ref()) {
        None => "empty",
        Some(typed_data::Data::String(_)) => "a string",
        Some(typed_data::Data::Json(_)) => "JSON",
        Some(typed_data::Data::Bytes(_) | typed_data::Data::Stream(_)) => "bytes",
        Some(typed_data::Data::Http(_)) => "an HTTP request",
        Some(typed_data::Data::Int(_) | typed_data::Data::Double(_)) => "a number",
        Some(_) => "a collection",
    }
}

#[cfg(test)]
mod tests {
    use fnhost_proto::rpc::RpcHttp;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Resize {
        width: u32,
        height: u32,
    }

    fn ctx() -> Context {
        Context::for_test("i").0
    }

    fn json_input(text: &str) -> Input {
        Input::from_typed_data(TypedData::json(text))
    }

    #[test]
    fn json_reads_the_payload_or_an_http_body() {
        let Json(r) =
            Json::<Resize>::from_input(json_input(r#"{"width":4,"height":3}"#), &ctx()).unwrap();
        assert_eq!(
            r,
            Resize {
                width: 4,
                height: 3
            }
        );
        let http = HttpRequest::new("POST", "/api/resize").with_body(r#"{"width":1,"height":2}"#);
        let input = Input::from_typed_data(TypedData::http(http.into()));
        let Json(r) = Json::<Resize>::from_input(input, &ctx()).unwrap();
        assert_eq!(
            r,
            Resize {
                width: 1,
                height: 2
            }
        );
    }

    #[test]
    fn json_that_does_not_fit_names_the_function_the_type_and_the_reason() {
        let e = Json::<Resize>::from_input(json_input(r#"{"width":4}"#), &ctx())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("function 'test' got input that is not valid JSON for `")
                && e.contains("::Resize`: missing field `height` at line 1 column 11"),
            "{e}"
        );
        let e = Json::<Resize>::from_input(Input::from_typed_data(TypedData::string("{")), &ctx())
            .unwrap_err()
            .to_string();
        assert!(e.contains("EOF while parsing an object"), "{e}");
        let e = Json::<u32>::from_input(json_input("\"seven\""), &ctx())
            .unwrap_err()
            .to_string();
        assert!(e.contains("JSON for `u32`: invalid type: string"), "{e}");
    }

    #[test]
    fn json_without_input_says_it_got_none() {
        for input in [Input::default(), json_input(""), json_input("  \n")] {
            let e = Json::<Resize>::from_input(input, &ctx()).unwrap_err();
            assert!(!e.is_cancelled());
            let e = e.to_string();
            assert!(
                e.starts_with("function 'test' got no input; it expects JSON for `"),
                "{e}"
            );
        }
    }

    #[test]
    fn json_output_is_typed_json_and_a_failure_to_serialize_says_so() {
        let out = Json(Resize {
            width: 4,
            height: 3,
        })
        .into_output()
        .unwrap();
        assert_eq!(
            out.typed_data(),
            Some(&TypedData::json(r#"{"width":4,"height":3}"#))
        );
        // JSON object keys must be strings.
        let bad = std::collections::HashMap::from([((1, 2), "x")]);
        let e = Json(bad).into_output().unwrap_err().to_string();
        assert!(
            e.contains("could not be serialized as JSON: key must be a string"),
            "{e}"
        );
        // Everything that converts into an Output is an IntoOutput.
        assert_eq!("hi".into_output().unwrap(), Output::from("hi"));
        assert_eq!(().into_output().unwrap().typed_data(), None);
    }

    #[test]
    fn an_http_request_needs_an_http_trigger() {
        let rpc = RpcHttp {
            method: "GET".into(),
            url: "http://h/api/x".into(),
            ..RpcHttp::default()
        };
        let input = Input::from_typed_data(TypedData::http(rpc));
        let req = HttpRequest::from_input(input, &ctx()).unwrap();
        assert_eq!(
            (req.method.as_str(), req.url.as_str()),
            ("GET", "http://h/api/x")
        );
        let e = HttpRequest::from_input(json_input("{}"), &ctx()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "function 'test' expects an HTTP trigger, but its input is JSON"
        );
        let e = HttpRequest::from_input(Input::default(), &ctx()).unwrap_err();
        assert!(e.to_string().ends_with("its input is empty"), "{e}");
    }

    #[test]
    fn text_and_bytes() {
        let input = || Input::from_typed_data(TypedData::bytes(vec![b'h', b'i']));
        assert_eq!(String::from_input(input(), &ctx()).unwrap(), "hi");
        assert_eq!(Vec::<u8>::from_input(input(), &ctx()).unwrap(), b"hi");
        let bad = Input::from_typed_data(TypedData::bytes(vec![0xff]));
        let e = String::from_input(bad, &ctx()).unwrap_err().to_string();
        assert!(
            e.starts_with("function 'test' got input that is not valid UTF-8"),
            "{e}"
        );
    }
}
