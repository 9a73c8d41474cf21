//! What an attempt's end or a terminate means for an event: pure functions
//! of the event, the configuration and the time, so the rules are read and
//! tested in one place.

use std::time::Duration;

use fnhost_proto::rpc::TypedData;
use prost::Message;

use crate::events::{AsyncConfig, EventRecord, EventStatus, StatusCode};
use crate::invocation::{CancelReason, InvocationResult, Outcome};

/// What an attempt's invocation result means for its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Succeeded: `FINISHED` 200.
    Finished,
    /// The host ended the attempt (shutdown): back to `QUEUED`, uncharged.
    Requeue,
    /// A user's terminate ended it: `ABORTED` with this code.
    Aborted(StatusCode),
    /// The attempt failed with this code; the retry policy decides
    /// (`decide_retry`). `charged` is false when the platform, not the
    /// function, ended it, so the attempt is given back.
    Failed {
        /// The status code of the failed attempt.
        code: StatusCode,
        /// Whether the attempt counts against the event's attempts.
        charged: bool,
    },
}

/// Maps an invocation's result (and whether a user terminated the event
/// while it ran) to what becomes of the event.
pub(super) fn verdict(r: &InvocationResult, terminated: bool) -> Verdict {
    if r.outcome == Outcome::Succeeded {
        return Verdict::Finished;
    }
    if r.cancel_reason == Some(CancelReason::HostShutdown) {
        return Verdict::Requeue;
    }
    if terminated {
        return Verdict::Aborted(match r.outcome {
            Outcome::Cancelled => StatusCode::TerminatedGracefully,
            Outcome::TimedOut => StatusCode::Timeout,
            Outcome::Failed if !r.worker_lost => StatusCode::FunctionError,
            _ => StatusCode::UserProcessExit,
        });
    }
    let code = match r.outcome {
        Outcome::TimedOut => StatusCode::Timeout,
        Outcome::Killed if r.cancel_reason == Some(CancelReason::Timeout) => StatusCode::Timeout,
        Outcome::Killed => StatusCode::UserProcessExit,
        Outcome::Failed if r.worker_lost => StatusCode::UserProcessExit,
        Outcome::Failed => StatusCode::FunctionError,
        _ => StatusCode::PlatformError,
    };
    // Ended by a kill aimed at another invocation: the platform ended it,
    // not its code.
    let charged = !(r.outcome == Outcome::Killed && r.worker_lost);
    Verdict::Failed { code, charged }
}

/// Applies the retry policy after a failed attempt: `Some(next run time)`
/// and `RETRYING`, or `FAILED` when attempts or age are exhausted.
pub(super) fn decide_retry(
    config: &AsyncConfig,
    e: &mut EventRecord,
    code: StatusCode,
    error: &str,
    now_ms: i64,
) -> Option<i64> {
    let max_attempts = i64::from(config.max_retries) + 1;
    e.status_code = Some(code);
    e.error = Some(error.to_string());
    if e.attempts < max_attempts && age(e, now_ms) < config.max_event_age {
        let at = now_ms + config.backoff(e.attempts as u32).as_millis() as i64;
        e.status = EventStatus::Retrying;
        e.next_attempt_ms = Some(at);
        return Some(at);
    }
    e.status = EventStatus::Failed;
    e.end_ms = Some(now_ms);
    e.next_attempt_ms = None;
    if e.attempts >= max_attempts {
        e.error = Some(format!(
            "{error} (attempts exhausted: {} of {max_attempts})",
            e.attempts
        ));
    } else {
        e.status_code = Some(StatusCode::Expired);
        e.error = Some(format!(
            "{error} (maximum event age of {:?} exceeded)",
            config.max_event_age
        ));
    }
    None
}

fn age(e: &EventRecord, now_ms: i64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(e.start_ms).max(0) as u64)
}

/// No attempt starts on an event past `maxEventAge` (it may have waited
/// long in a backlog or for a retry).
pub(super) fn is_expired(config: &AsyncConfig, e: &EventRecord, now_ms: i64) -> bool {
    age(e, now_ms) >= config.max_event_age
}

/// `e` ended as expired before its next attempt could start (`FAILED`
/// 460), and the line for its log.
pub(super) fn expired(config: &AsyncConfig, e: &EventRecord, now_ms: i64) -> (EventRecord, String) {
    let mut ended = e.clone();
    ended.status = EventStatus::Failed;
    ended.status_code = Some(StatusCode::Expired);
    ended.end_ms = Some(now_ms);
    ended.next_attempt_ms = None;
    let error = format!(
        "maximum event age of {:?} exceeded before attempt {} could start",
        config.max_event_age,
        e.attempts + 1
    );
    ended.error = Some(match &e.error {
        Some(last) => format!("{error}; last error: {last}"),
        None => error.clone(),
    });
    (ended, error)
}

/// `e` ended as terminated by a user before it ran again (`ABORTED` 437).
pub(super) fn aborted(e: &EventRecord, now_ms: i64) -> EventRecord {
    let mut aborted = e.clone();
    aborted.status = EventStatus::Aborted;
    aborted.status_code = Some(StatusCode::TerminatedBeforeRun);
    aborted.end_ms = Some(now_ms);
    aborted.next_attempt_ms = None;
    aborted.error = Some("terminated by a user before it ran again".into());
    aborted
}

/// Back to the queue: the host, not the function, ended this attempt, so
/// it does not count against the event's attempts.
pub(super) fn requeue(e: &mut EventRecord) {
    e.status = EventStatus::Queued;
    e.next_attempt_ms = None;
    e.attempts = (e.attempts - 1).max(0);
}

/// The JSON an `onFailure` function receives.
pub(super) fn failure_payload(e: &EventRecord) -> serde_json::Value {
    let input = TypedData::decode(e.input.as_slice())
        .ok()
        .and_then(|d| d.to_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    serde_json::json!({
        "requestId": e.request_id,
        "function": e.function,
        "qualifier": e.qualifier,
        "status": e.status,
        "statusCode": e.status_code,
        "attempts": e.attempts,
        "error": e.error,
        "input": input,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::InvokeType;

    /// The code numbered `n`, so the tables below read as the README's.
    fn code(n: i64) -> StatusCode {
        StatusCode::from_i64(n).unwrap()
    }

    fn event(attempts: i64, start_ms: i64) -> EventRecord {
        let queued = EventRecord::queued(
            "r".into(),
            "f".into(),
            "$LATEST".into(),
            InvokeType::Api,
            Vec::new(),
            start_ms,
        );
        EventRecord {
            status: EventStatus::Running,
            attempts,
            ..queued
        }
    }

    fn result(outcome: Outcome) -> InvocationResult {
        InvocationResult {
            invocation_id: "i".into(),
            function: "f".into(),
            outcome,
            cancel_reason: None,
            error: None,
            stack_trace: None,
            output: None,
            worker_id: None,
            logs: Vec::new(),
            logs_dropped: 0,
            elapsed: Duration::ZERO,
            worker_lost: false,
            cancel_delivery: None,
        }
    }

    #[test]
    fn a_failed_attempt_retries_after_the_backoff_until_attempts_run_out() {
        let config = AsyncConfig::default();
        let mut e = event(1, 0);
        assert_eq!(
            decide_retry(&config, &mut e, code(430), "boom", 10),
            Some(1010)
        );
        assert_eq!(e.status, EventStatus::Retrying);
        let mut e = event(3, 0);
        assert_eq!(decide_retry(&config, &mut e, code(430), "boom", 10), None);
        assert_eq!(
            (e.status, e.status_code),
            (EventStatus::Failed, Some(code(430)))
        );
        assert!(e.error.unwrap().contains("attempts exhausted: 3 of 3"));
    }

    #[test]
    fn a_failed_attempt_past_the_maximum_age_fails_expired() {
        let config = AsyncConfig::default();
        let mut e = event(1, 0);
        let now = config.max_event_age.as_millis() as i64;
        assert_eq!(decide_retry(&config, &mut e, code(430), "boom", now), None);
        assert_eq!(e.status_code, Some(StatusCode::Expired));
        assert!(is_expired(&config, &e, now) && !is_expired(&config, &e, now - 1));
    }

    #[test]
    fn outcomes_map_to_statuses_codes_and_charges() {
        let mut lost = result(Outcome::Killed);
        lost.worker_lost = true;
        let mut shutdown = result(Outcome::Cancelled);
        shutdown.cancel_reason = Some(CancelReason::HostShutdown);
        let mut killed_by_timeout = result(Outcome::Killed);
        killed_by_timeout.cancel_reason = Some(CancelReason::Timeout);
        let cases = [
            (result(Outcome::Succeeded), false, Verdict::Finished),
            (shutdown.clone(), true, Verdict::Requeue),
            (
                result(Outcome::Cancelled),
                true,
                Verdict::Aborted(code(438)),
            ),
            (result(Outcome::Failed), true, Verdict::Aborted(code(430))),
            (result(Outcome::Killed), true, Verdict::Aborted(code(439))),
            (result(Outcome::TimedOut), true, Verdict::Aborted(code(433))),
            (
                lost,
                false,
                Verdict::Failed {
                    code: code(439),
                    charged: false,
                },
            ),
            (
                killed_by_timeout,
                false,
                Verdict::Failed {
                    code: code(433),
                    charged: true,
                },
            ),
            (
                result(Outcome::Failed),
                false,
                Verdict::Failed {
                    code: code(430),
                    charged: true,
                },
            ),
            (
                result(Outcome::Cancelled),
                false,
                Verdict::Failed {
                    code: code(500),
                    charged: true,
                },
            ),
        ];
        for (r, terminated, want) in cases {
            assert_eq!(verdict(&r, terminated), want, "{:?}", r.outcome);
        }
    }
}
