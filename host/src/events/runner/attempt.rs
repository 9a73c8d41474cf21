//! One attempt of an async event, as its own task: it records its start
//! and end durably, in order, through the batching writer, and submits
//! through the same `HostHandle` as any caller. A terminate reaches it
//! through a `watch` channel; what it did goes back to the core as
//! `Cmd::Settled`.

use std::sync::Arc;

use fnhost_proto::rpc::TypedData;
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::policy::{self, Verdict};
use super::state::{Cmd, Next, Termination};
use super::tasks::{platform, shed_large_input, update_with};
use super::Msg;
use crate::events::time::now_ms;
use crate::events::{AsyncConfig, EventLog, EventLogLine, EventRecord, EventStatus, StoreError};
use crate::events::{StatusCode, WriteOutcome};
use crate::host::HostHandle;
use crate::ids::{InvocationId, RequestId};
use crate::invocation::{
    CancelDelivery, CancelReason, InvocationInput, InvocationResult, InvokeError,
};

/// Pause before an attempt whose store write failed runs again.
const STORE_RETRY_MS: i64 = 1000;

pub(super) struct Attempt {
    pub(super) log: EventLog,
    pub(super) host: HostHandle,
    pub(super) config: Arc<AsyncConfig>,
    pub(super) cmds: mpsc::Sender<Msg>,
    pub(super) termination: watch::Receiver<Option<Termination>>,
}

impl Attempt {
    /// Runs `e` as invocation `invocation_id`.
    pub(super) async fn run(self, mut e: EventRecord, invocation_id: InvocationId) {
        let next = match self.execute(&mut e, &invocation_id).await {
            Ok(next) => next,
            Err(err) => {
                // The store failed; the event is not forgotten: it runs
                // again shortly (as recovery would after a restart),
                // uncharged.
                tracing::error!(request = %e.request_id, "async event attempt could not be recorded ({err}); retrying in 1 s");
                e.attempts = (e.attempts - 1).max(0);
                e.status = EventStatus::Retrying;
                let at = now_ms() + STORE_RETRY_MS;
                e.next_attempt_ms = Some(at);
                Next::RetryUnrecorded(e.clone(), at)
            }
        };
        self.settle(e.request_id, next).await;
    }

    /// Ends `e`, which the core found past `maxEventAge`, as `FAILED` 460
    /// instead of running it.
    pub(super) async fn expire(self, mut e: EventRecord) {
        let next = self.record_expiry(&mut e).await;
        self.settle(e.request_id, next).await;
    }

    fn terminated(&self) -> Option<Termination> {
        *self.termination.borrow()
    }

    async fn settle(self, id: RequestId, next: Next) {
        let next = match next {
            Next::Retry(mut e, at) => {
                shed_large_input(&mut e);
                Next::Retry(e, at)
            }
            Next::RetryUnrecorded(mut e, at) => {
                shed_large_input(&mut e);
                Next::RetryUnrecorded(e, at)
            }
            Next::Requeue(mut e) => {
                shed_large_input(&mut e);
                Next::Requeue(e)
            }
            done => done,
        };
        let _ = self.cmds.send(Msg::Core(Cmd::Settled { id, next })).await;
    }

    async fn record_expiry(&self, e: &mut EventRecord) -> Next {
        if self.terminated().is_some() {
            // A terminate reached it first: the core aborts it.
            return Next::RetryUnrecorded(e.clone(), now_ms());
        }
        if e.input.is_empty() {
            // For the onFailure payload; a large input stayed in the store.
            if let Ok(Some(stored)) = self.log.get(&e.request_id).await {
                e.input = stored.input;
            }
        }
        let (ended, error) = policy::expired(&self.config, e, now_ms());
        match self
            .log
            .write(update_with(&ended, vec![platform(error)]))
            .await
        {
            Ok(WriteOutcome::Unchanged) => Next::Skipped,
            Ok(_) => {
                *e = ended;
                Next::Done {
                    failed: Some(e.clone()),
                }
            }
            Err(err) => {
                tracing::error!(request = %e.request_id, "cannot record the expiry of an async event ({err}); retrying in 1 s");
                Next::RetryUnrecorded(e.clone(), now_ms() + STORE_RETRY_MS)
            }
        }
    }

    async fn execute(
        &self,
        e: &mut EventRecord,
        invocation_id: &InvocationId,
    ) -> Result<Next, StoreError> {
        // Counted first: a store failure below gives the attempt back
        // (`Attempt::run`), so each failure path must have taken it.
        e.attempts += 1;
        if e.input.is_empty() {
            // A large input was left in the store (`shed_large_input`); read it now.
            e.input = self
                .log
                .get(&e.request_id)
                .await?
                .map(|r| r.input)
                .unwrap_or_default();
        }
        e.status = EventStatus::Running;
        e.next_attempt_ms = None;
        let start = platform(format!(
            "Invoke Start RequestId: {} (attempt {})",
            e.request_id, e.attempts
        ));
        if self.log.write(update_with(e, vec![start])).await? == WriteOutcome::Unchanged {
            // Ended meanwhile: a terminate of it while it waited in the
            // store was written first.
            tracing::info!(request = %e.request_id, "async event ended before its attempt started; not run");
            return Ok(Next::Skipped);
        }

        let input = TypedData::decode(e.input.as_slice()).unwrap_or_default();
        let mut input = InvocationInput::new(input)
            .with_id(invocation_id)
            .attempt(u32::try_from(e.attempts).unwrap_or(u32::MAX));
        // Each attempt is a child span of the event's accept span.
        if let Some(trace) = e.trace() {
            input = input.in_span(trace.child());
        }
        let result = match self.host.submit(&e.function, input).await {
            Ok(pending) => {
                // A terminate that raced the submission found nothing to stop;
                // the dispatcher now holds the invocation, so repeat it.
                match self.terminated() {
                    Some(Termination::Graceful) => drop(
                        self.host
                            .cancel(invocation_id, CancelReason::Requested)
                            .await,
                    ),
                    Some(Termination::Forced) => drop(self.host.kill(invocation_id).await),
                    None => {}
                }
                pending.result().await
            }
            Err(err) => Err(err),
        };
        let terminated = self.terminated().is_some();
        let mut lines = Vec::new();
        let next = match result {
            Ok(r) => {
                lines.extend(result_lines(e, &r, terminated));
                self.judge(e, &r, terminated)
            }
            Err(InvokeError::ShuttingDown | InvokeError::Draining) => {
                policy::requeue(e);
                Next::Requeue(e.clone())
            }
            Err(err) => self.retry_or_fail(e, StatusCode::PlatformError, &err.to_string()),
        };
        lines.push(platform(end_line(e)));
        if self.log.write(update_with(e, lines)).await? == WriteOutcome::Unchanged {
            // Only this attempt ends a running event; something else did.
            tracing::warn!(request = %e.request_id, "async event ended by another writer while its attempt ran; this attempt's end is not recorded");
            return Ok(Next::Done { failed: None });
        }
        Ok(next)
    }

    /// Applies the attempt's verdict to `e`.
    fn judge(&self, e: &mut EventRecord, r: &InvocationResult, terminated: bool) -> Next {
        let error = r.error.clone().unwrap_or_default();
        match policy::verdict(r, terminated) {
            Verdict::Finished => {
                e.status = EventStatus::Finished;
                e.status_code = Some(StatusCode::Finished);
                e.error = None;
                e.result = r.output.as_ref().and_then(TypedData::to_bytes).map(bounded);
                e.end_ms = Some(now_ms());
                Next::Done { failed: None }
            }
            Verdict::Requeue => {
                policy::requeue(e);
                Next::Requeue(e.clone())
            }
            Verdict::Aborted(code) => {
                e.status = EventStatus::Aborted;
                e.status_code = Some(code);
                e.error = Some(format!("terminated by a user: {error}"));
                e.end_ms = Some(now_ms());
                Next::Done { failed: None }
            }
            Verdict::Failed { code, charged } => {
                if !charged {
                    e.attempts = (e.attempts - 1).max(0);
                }
                self.retry_or_fail(e, code, &error)
            }
        }
    }

    fn retry_or_fail(&self, e: &mut EventRecord, code: StatusCode, error: &str) -> Next {
        match policy::decide_retry(&self.config, e, code, error, now_ms()) {
            Some(at) => Next::Retry(e.clone(), at),
            None => Next::Done {
                failed: Some(e.clone()),
            },
        }
    }
}

/// The log lines an attempt's result brings: the signal line of a graceful
/// terminate, the worker's lines, dropped lines, the stack trace.
fn result_lines(e: &EventRecord, r: &InvocationResult, terminated: bool) -> Vec<EventLogLine> {
    let mut lines = Vec::new();
    lines.extend(signal_line(r, terminated));
    lines.extend(r.logs.iter().map(|l| EventLogLine {
        time_ms: now_ms(),
        line: l.message.clone(),
    }));
    if r.logs_dropped > 0 {
        lines.push(platform(format!(
            "{} log lines were dropped (limit per invocation)",
            r.logs_dropped
        )));
    }
    if let Some(trace) = &r.stack_trace {
        lines.push(platform(format!(
            "Stack trace of attempt {}:\n{trace}",
            e.attempts
        )));
    }
    lines
}

/// The `Invoke End` line for where the attempt left `e`.
fn end_line(e: &EventRecord) -> String {
    match e.status {
        EventStatus::Retrying => format!(
            "Invoke End RequestId: {}; attempt {} failed ({}); retrying",
            e.request_id,
            e.attempts,
            e.error.as_deref().unwrap_or("")
        ),
        EventStatus::Queued => format!(
            "Invoke End RequestId: {}; host shutting down, event re-queued",
            e.request_id
        ),
        s => format!(
            "Invoke End RequestId: {}; {s} {}{}",
            e.request_id,
            e.status_code.map_or(0, StatusCode::as_i64),
            e.error
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
    }
}

/// The `[PLATFORM] Signal ...` line for a user's graceful terminate.
fn signal_line(r: &InvocationResult, terminated: bool) -> Option<EventLogLine> {
    if !terminated || r.cancel_reason != Some(CancelReason::Requested) {
        return None;
    }
    match r.cancel_delivery {
        Some(CancelDelivery::Signalled) => Some(platform("Signal received successfully.")),
        Some(CancelDelivery::NotDeliverable) => Some(platform("Signal reception failed.")),
        None => None,
    }
}

/// Results larger than this are cut (the event keeps a bounded record).
const MAX_RESULT_BYTES: usize = 64 * 1024;

fn bounded(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(MAX_RESULT_BYTES);
    bytes
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dispatcher::Command;
    use crate::events::{InvokeType, SqliteStore, WriteOp};

    fn queued(id: &str) -> EventRecord {
        let f = "f".to_string();
        EventRecord::queued(
            id.into(),
            f,
            "$LATEST".into(),
            InvokeType::Api,
            Vec::new(),
            now_ms(),
        )
    }

    /// A terminate that reached the attempt after its RUNNING write but
    /// before the dispatcher held its invocation found nothing to cancel
    /// there: the attempt repeats it once its submission is in.
    #[tokio::test]
    async fn a_terminate_before_the_submission_is_repeated_to_the_dispatcher() {
        let dir = std::env::temp_dir().join(format!("fnhost-attempt-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&dir.join("events.db")).unwrap();
        let log = EventLog::start(Arc::new(store));
        let e = queued("r1");
        log.write(WriteOp::Insert {
            event: e.clone(),
            idempotency: None,
        })
        .await
        .unwrap();
        let (commands, mut dispatcher) = mpsc::channel(8);
        let (cmds, _settled) = mpsc::channel(8);
        let (terminate, termination) = watch::channel(None);
        let attempt = Attempt {
            log,
            host: HostHandle::with_commands(commands),
            config: Arc::new(AsyncConfig::default()),
            cmds,
            termination,
        };
        // Signalled before the dispatcher knows the invocation.
        terminate.send_replace(Some(Termination::Graceful));
        tokio::spawn(attempt.run(e, "inv-1".into()));

        let wait = Duration::from_secs(5);
        let Some(Command::Invoke { id, .. }) =
            tokio::time::timeout(wait, dispatcher.recv()).await.unwrap()
        else {
            panic!("the attempt submits its invocation first");
        };
        assert_eq!(id, "inv-1");
        match tokio::time::timeout(wait, dispatcher.recv()).await {
            Ok(Some(Command::Cancel { id, reason, .. })) => {
                assert_eq!((id.as_str(), reason), ("inv-1", CancelReason::Requested));
            }
            _ => panic!("the terminate is repeated once the invocation is submitted"),
        }
    }
}
