//! What can go wrong in the event store, with the error underneath kept as
//! the source.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use super::EventStatus;

/// A store failure. Every message starts with "event store" and, where one
/// caused it, ends with the underlying error's. Cloneable (sources are
/// shared), because one failed batch answers every write in it.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// The database or a file of the store failed while doing `context`.
    Backend {
        /// What the store was doing, e.g. "cannot open /data/events.db".
        context: Cow<'static, str>,
        /// The database's or the file system's error.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The file's schema is newer than this host knows.
    NewerSchema {
        /// The file's schema version.
        found: usize,
        /// The newest version this host knows.
        supported: usize,
    },
    /// A thread panicked while it held a connection.
    Poisoned(&'static str),
    /// A task doing store work ended without an answer.
    Task {
        /// Which task, e.g. "read task failed".
        context: &'static str,
        /// How it ended (a panic or a cancel).
        source: Arc<tokio::task::JoinError>,
    },
    /// The event writer has stopped (the host is shutting down), so the
    /// write may not be stored.
    WriterStopped,
    /// The database cannot be reached (a shared store that is down or
    /// restarting); nothing was written.
    Unavailable {
        /// Why no connection could be had.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// A stored value this host cannot read (written by a newer host, or
    /// changed by hand).
    Corrupt(String),
    /// The store holds the event unfinished but the runner does not know
    /// it.
    Inconsistent {
        /// The event.
        request_id: crate::ids::RequestId,
        /// Its status in the store.
        status: EventStatus,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("event store: ")?;
        match self {
            Self::Backend { context, source } => write!(f, "{context}: {source}"),
            Self::NewerSchema { found, supported } => write!(
                f,
                "the store has schema version {found}, newer than this host's {supported}; upgrade the host"
            ),
            Self::Poisoned(holder) => write!(f, "{holder} panicked"),
            Self::Task { context, source } => write!(f, "{context}: {source}"),
            Self::WriterStopped => f.write_str("the event writer has stopped"),
            Self::Corrupt(what) => write!(f, "unreadable stored value: {what}"),
            Self::Unavailable { source } => write!(f, "the database is unreachable: {source}"),
            Self::Inconsistent { request_id, status } => write!(
                f,
                "event {request_id} is {status} in the store but unknown to the runner"
            ),
        }
    }
}

/// By hand rather than derived. The message already ends with the text of
/// the error underneath (the server's logs and HTTP bodies print just
/// this one), so `source()` goes on from the error under *that* one: a
/// chain printer (`{:#}` of anyhow) prints each part once. The wrapped
/// error itself, to downcast (to a `rusqlite::Error`, say), is
/// [`StoreError::cause`].
impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Backend { source, .. } | Self::Unavailable { source } => source.source(),
            Self::Task { source, .. } => source.source(),
            _ => None,
        }
    }
}

impl StoreError {
    /// The database's, file system's or task's error this one wraps (its
    /// text is already the end of this one's message).
    pub fn cause(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match self {
            Self::Backend { source, .. } | Self::Unavailable { source } => Some(&**source),
            Self::Task { source, .. } => Some(&**source),
            _ => None,
        }
    }

    /// The database or file system failed while the store was doing
    /// `context`.
    pub fn backend(
        context: impl Into<Cow<'static, str>>,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// A task's end without an answer; for `map_err`.
    pub(crate) fn task(context: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |e| Self::Task {
            context,
            source: Arc::new(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_error_says_what_failed_and_keeps_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let e = StoreError::backend("cannot open /data/events.db", io);
        assert_eq!(
            e.to_string(),
            "event store: cannot open /data/events.db: permission denied"
        );
        let cause = e.cause().expect("the io error is kept");
        let io = cause.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    }

    /// An error with a source of its own, as a database error wrapping an
    /// io error is.
    #[derive(Debug, thiserror::Error)]
    #[error("disk I/O error")]
    struct Nested(#[source] std::io::Error);

    /// Every part of a chain, as anyhow's `{:#}` joins them.
    fn chain(e: &dyn Error) -> String {
        let mut parts = vec![e.to_string()];
        let mut next = e.source();
        while let Some(s) = next {
            parts.push(s.to_string());
            next = s.source();
        }
        parts.join(": ")
    }

    #[test]
    fn an_error_chain_prints_each_part_once() {
        let io = std::io::Error::other("permission denied");
        let e = StoreError::backend("cannot open /data/events.db", io);
        assert_eq!(
            chain(&e),
            "event store: cannot open /data/events.db: permission denied"
        );

        let nested = Nested(std::io::Error::other("no space left on device"));
        let e = StoreError::backend("cannot write a batch", nested);
        assert_eq!(
            chain(&e),
            "event store: cannot write a batch: disk I/O error: no space left on device"
        );
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "event store: cannot write a batch: disk I/O error: no space left on device"
        );
    }
}
