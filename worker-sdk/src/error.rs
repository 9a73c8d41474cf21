//! Errors: [`HandlerError`] for function code, [`WorkerError`] for the runtime.

use std::fmt;

use crate::args::ArgsError;

/// The error a handler returns.
///
/// Any `std::error::Error + Send + Sync + 'static` converts into it, so `?`
/// works on most error types. Return [`HandlerError::cancelled()`] after
/// observing cancellation so the host records the invocation as cancelled
/// rather than failed.
///
/// It deliberately does not implement `std::error::Error` (that would conflict
/// with the blanket conversion).
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
///         return Err(HandlerError::msg("n must be positive"));
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
            Kind::Cancelled => f.write_str("invocation cancelled"),
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

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    /// Uses the error's message followed by its sources, joined with `": "`.
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::msg(message)
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

    #[test]
    fn std_errors_convert_with_their_message() {
        let e: HandlerError = "x".parse::<u32>().unwrap_err().into();
        assert_eq!(e.to_string(), "invalid digit found in string");
        assert!(!e.is_cancelled());
        assert!(HandlerError::cancelled().is_cancelled());
        assert_eq!(
            format!("{:?}", HandlerError::msg("m")),
            "HandlerError::Message(\"m\")"
        );
    }
}
