//! The host's two TCP accept loops and their limits: the gRPC port admits
//! worker streams under a handshake deadline and a cap on connections not
//! yet admitted; the HTTP port caps open connections and cuts clients that
//! are slow to send a request's headers. Both back off on accept errors
//! instead of retrying in a loop.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod http;
mod worker;

pub(crate) use http::serve_http;
pub(crate) use worker::{worker_incoming, WorkerConnInfo, WorkerConnLimits};

/// How long to wait before the next `accept` after an error that is not
/// about one connection.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How often a repeated warning (accept errors, refusals) is logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Whether an accept error concerns only the connection being accepted
/// (it was reset before we took it), so the next accept may succeed at once.
/// Anything else (EMFILE/ENFILE when file descriptors run out, ENOBUFS,
/// ENOMEM) fails again on an immediate retry, and accepting in a loop would
/// spin a core while the listener's backlog holds the descriptor-less
/// connections.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Handles one accept error: logs it (rate-limited) and, unless it was
/// about the one connection, waits [`ACCEPT_BACKOFF`] before returning.
async fn after_accept_error(port: &'static str, e: io::Error, log: &LogThrottle) {
    if is_connection_error(&e) {
        return;
    }
    if let Some(skipped) = log.due() {
        tracing::warn!(
            "{port} port: accept failed: {e}; retrying every {ACCEPT_BACKOFF:?} \
             ({skipped} more failures since the last report)"
        );
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Lets one line through per [`WARN_EVERY`] and counts the ones it held back.
#[derive(Default)]
pub(crate) struct LogThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    next: Option<Instant>,
    skipped: u64,
}

impl LogThrottle {
    /// `Some(lines held back since the last one)` when a line is due.
    pub(crate) fn due(&self) -> Option<u64> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match s.next {
            Some(next) if now < next => {
                s.skipped += 1;
                None
            }
            _ => {
                s.next = Some(now + WARN_EVERY);
                Some(std::mem::take(&mut s.skipped))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_log_lets_one_line_through_and_counts_the_rest() {
        let log = LogThrottle::default();
        assert_eq!(log.due(), Some(0));
        assert_eq!(log.due(), None);
        assert_eq!(log.due(), None);
        log.state.lock().unwrap().next = Some(Instant::now());
        assert_eq!(log.due(), Some(2));
    }

    #[test]
    fn only_per_connection_accept_errors_skip_the_backoff() {
        assert!(is_connection_error(
            &io::ErrorKind::ConnectionAborted.into()
        ));
        let emfile = io::Error::from_raw_os_error(24); // EMFILE on Linux
        assert!(!is_connection_error(&emfile));
    }
}
