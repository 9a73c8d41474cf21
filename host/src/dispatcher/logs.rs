//! The host's log lines about invocations: a function's own lines at their
//! level, and the execution lines Azure users search their logs for,
//! `Executing 'Functions.<name>' (Reason='...', Id=<id>)` and `Executed
//! 'Functions.<name>' (Succeeded, Id=<id>, Duration=<ms>ms)`.

use std::time::Duration;

use fnhost_proto::rpc::rpc_log;

use crate::config::Binding;
use crate::ids::InvocationId;
use crate::invocation::{CancelReason, Outcome};

/// A function's log line at its own level (Critical as error, None as
/// info), so `FNHOST_LOG=warn` keeps the functions' warnings and errors.
pub(super) fn function_line(
    level: rpc_log::Level,
    id: &InvocationId,
    function: &str,
    message: &str,
) {
    use rpc_log::Level as L;
    macro_rules! line {
        ($mac:ident) => {
            tracing::$mac!(target: "fnhost::function", invocation = %id, function = %function, level = level.as_str_name(), "{}", message)
        };
    }
    match level {
        L::Trace => line!(trace),
        L::Debug => line!(debug),
        L::Information | L::None => line!(info),
        L::Warning => line!(warn),
        L::Error | L::Critical => line!(error),
    }
}

/// Why the function runs, as Azure words it for its trigger.
fn reason(trigger: &Binding) -> String {
    if trigger.binding_type.eq_ignore_ascii_case("timerTrigger") {
        let now = crate::events::time::now_ms();
        format!("Timer fired at {}", crate::events::time::rfc3339(now))
    } else {
        "This function was programmatically called via the host APIs.".into()
    }
}

/// `Executing 'Functions.<name>' (Reason='...', Id=<id>)`, as an invocation
/// goes to its worker.
pub(super) fn executing(id: &InvocationId, function: &str, trigger: &Binding) {
    let reason = reason(trigger);
    tracing::info!(target: "fnhost::execution", invocation = %id, function = %function, "Executing 'Functions.{function}' (Reason='{reason}', Id={id})");
}

/// The word Azure's `Executed` line gives an outcome.
fn outcome_word(outcome: Outcome, reason: Option<CancelReason>) -> &'static str {
    match (outcome, reason) {
        (Outcome::Succeeded, _) => "Succeeded",
        (Outcome::Failed, _) => "Failed",
        (Outcome::TimedOut, _) | (Outcome::Killed, Some(CancelReason::Timeout)) => "Timed out",
        (Outcome::Cancelled, _) => "Cancelled",
        (Outcome::Killed, _) => "Killed",
    }
}

/// `Executed 'Functions.<name>' (<outcome>, Id=<id>, Duration=<ms>ms)`, as
/// an invocation that reached a worker ends; at warning level unless it
/// succeeded.
pub(super) fn executed(
    id: &InvocationId,
    function: &str,
    outcome: Outcome,
    reason: Option<CancelReason>,
    took: Duration,
) {
    let word = outcome_word(outcome, reason);
    let ms = took.as_millis();
    if outcome == Outcome::Succeeded {
        tracing::info!(target: "fnhost::execution", invocation = %id, function = %function, outcome = %outcome, "Executed 'Functions.{function}' ({word}, Id={id}, Duration={ms}ms)");
    } else {
        tracing::warn!(target: "fnhost::execution", invocation = %id, function = %function, outcome = %outcome, "Executed 'Functions.{function}' ({word}, Id={id}, Duration={ms}ms)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_as_azure_words_them() {
        assert_eq!(outcome_word(Outcome::Succeeded, None), "Succeeded");
        assert_eq!(outcome_word(Outcome::Failed, None), "Failed");
        assert_eq!(
            outcome_word(Outcome::TimedOut, Some(CancelReason::Timeout)),
            "Timed out"
        );
        assert_eq!(
            outcome_word(Outcome::Killed, Some(CancelReason::Timeout)),
            "Timed out"
        );
        assert_eq!(
            outcome_word(Outcome::Cancelled, Some(CancelReason::HostShutdown)),
            "Cancelled"
        );
        assert_eq!(
            outcome_word(Outcome::Killed, Some(CancelReason::Requested)),
            "Killed"
        );
    }
}
