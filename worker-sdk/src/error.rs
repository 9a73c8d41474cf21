//! Errors: [`HandlerError`] for function code, [`WorkerError`] for the runtime.

use std::error::Error as StdError;
use std::fmt;

use crate::args::ArgsError;

/// The error a handler returns.
///
/// `?` converts into it from anything that converts into
/// `Box<dyn Error + Send + Sync>`: every `std::error::Error + Send + Sync +
/// 'static` type, `Box<dyn Error + Send + Sync>` itself, `String` and
/// `&str`, and `anyhow::Error` (anyhow provides that conversion, so this
/// needs no feature). The message is the error's own followed by its
/// [`source`](std::error::Error::source) chain, joined with `": "`.
///
/// Return [`HandlerError::cancelled()`] after observing cancellation so the
/// host records the invocation as cancelled rather than failed.
///
/// `HandlerError` deliberately does not implement `std::error::Error`: its
/// blanket `From` would then include `From<HandlerError>`, overlapping the
/// standard `impl From<T> for T`. (The blanket is over
/// `Into<Box<dyn Error + Send + Sync>>` rather than `Error` because a blanket
/// over `Error` rules out `From<anyhow::Error>` and
/// `From<Box<dyn Error + Send + Sync>>`: the compiler must assume their
/// crates may one day implement `Error` for them.) With the `anyhow`
/// feature, `HandlerError` converts into `anyhow::Error`, so helpers that
/// return `anyhow::Result` can call SDK functions with `?`.
///
/// ```no_run
/// use fnhost_worker::{Context, HandlerError, Input};
///
/// async fn handler(ctx: Context, input: Input) -> Result<String, HandlerError> {
///     if ctx.is_cancelled() {
///         return Err(HandlerError::cancelled());
///     }
///     let n: u64 = input.text()?.trim().parse()?; // ParseIntError converts
///     if n == 0 {
///         return Err("n must be positive".into());
///     }
///     Ok(format!("{n}"))
/// }
/// ```
pub struct HandlerError {
    kind: Kind,
}

enum Kind {
    Cancelled,
    Message(String),
}

/// Stands for [`HandlerError::cancelled()`] inside a boxed error chain (an
/// `anyhow::Error` made from one), so it converts back as cancelled.
#[derive(Debug)]
struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invocation cancelled")
    }
}

impl StdError for Cancelled {}

impl HandlerError {
    /// A failure with the given message (sent as the exception message).
    ///
    /// ```no_run
    /// let e = fnhost_worker::HandlerError::msg("bad input");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            kind: Kind::Message(message.to_string()),
        }
    }

    /// The invocation stopped because it was cancelled; reported to the host
    /// as `Cancelled`.
    ///
    /// ```no_run
    /// let e = fnhost_worker::HandlerError::cancelled();
    /// assert!(e.is_cancelled());
    /// ```
    pub fn cancelled() -> Self {
        Self {
            kind: Kind::Cancelled,
        }
    }

    /// True for [`HandlerError::cancelled()`].
    ///
    /// ```no_run
    /// assert!(!fnhost_worker::HandlerError::msg("x").is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, Kind::Cancelled)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cancelled => fmt::Display::fmt(&Cancelled, f),
            Kind::Message(m) => f.write_str(m),
        }
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cancelled => f.write_str("HandlerError::Cancelled"),
            Kind::Message(m) => f.debug_tuple("HandlerError::Message").field(m).finish(),
        }
    }
}

impl<E> From<E> for HandlerError
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    /// Uses the error's message followed by its sources, joined with `": "`.
    fn from(e: E) -> Self {
        let e: Box<dyn StdError + Send + Sync> = e.into();
        let mut message = e.to_string();
        let mut source = e.source();
        let mut cancelled = e.is::<Cancelled>();
        while let Some(s) = source {
            cancelled |= s.is::<Cancelled>();
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        if cancelled {
            Self::cancelled()
        } else {
            Self::msg(message)
        }
    }
}

#[cfg(feature = "anyhow")]
impl From<HandlerError> for anyhow::Error {
    /// A cancelled error stays cancelled when it converts back.
    fn from(e: HandlerError) -> Self {
        match e.kind {
            Kind::Cancelled => anyhow::Error::new(Cancelled),
            Kind::Message(m) => anyhow::Error::msg(m),
        }
    }
}

/// Why [`Worker::run`](crate::Worker::run) returned an error.
///
/// The message names the failing step; the cause is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The launch arguments are missing or malformed.
    #[error("invalid launch arguments")]
    Args(#[from] ArgsError),
    /// The host URI is not a valid endpoint.
    #[error("invalid host uri {uri:?}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// The parse error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The host could not be reached within the connect timeout.
    #[error("could not connect to the host at {uri}")]
    Connect {
        /// The URI dialled.
        uri: String,
        /// The last connection error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The host refused to open the event stream.
    #[error("the host rejected the event stream")]
    Stream(#[from] tonic::Status),
    /// Installing the signal handler failed.
    #[error("could not install the SIGTERM handler")]
    Signal(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not load the model")]
    struct Load(#[source] std::io::Error);

    #[test]
    fn std_errors_convert_with_their_source_chain() {
        let e: HandlerError = "x".parse::<u32>().unwrap_err().into();
        assert_eq!(e.to_string(), "invalid digit found in string");
        assert!(!e.is_cancelled());
        let e = HandlerError::from(Load(std::io::Error::other("disk gone")));
        assert_eq!(e.to_string(), "could not load the model: disk gone");
        assert!(HandlerError::cancelled().is_cancelled());
        assert_eq!(
            format!("{:?}", HandlerError::msg("m")),
            "HandlerError::Message(\"m\")"
        );
    }

    #[test]
    fn boxed_errors_and_strings_convert() {
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(Load(std::io::Error::other("eof")));
        assert_eq!(
            HandlerError::from(boxed).to_string(),
            "could not load the model: eof"
        );
        let from_str: HandlerError = "n must be positive".into();
        assert_eq!(from_str.to_string(), "n must be positive");
        let from_string = HandlerError::from(format!("{} left", 3));
        assert_eq!(from_string.to_string(), "3 left");
    }

    #[test]
    fn anyhow_errors_convert_with_their_context_chain() {
        fn question_mark() -> Result<(), HandlerError> {
            let root = anyhow::anyhow!("connection refused");
            Err(root.context("fetching the image").context("resizing"))?;
            Ok(())
        }
        assert_eq!(
            question_mark().unwrap_err().to_string(),
            "resizing: fetching the image: connection refused"
        );
    }

    #[cfg(feature = "anyhow")]
    #[test]
    fn a_handler_error_round_trips_through_anyhow() {
        let cancelled = anyhow::Error::from(HandlerError::cancelled()).context("while waiting");
        assert!(HandlerError::from(cancelled).is_cancelled());
        let failed = anyhow::Error::from(HandlerError::msg("bad input"));
        let back = HandlerError::from(failed);
        assert!(!back.is_cancelled());
        assert_eq!(back.to_string(), "bad input");
    }
}
