//! The shell's one-shot tasks: store writes and reads the core asked for,
//! each handing its answer back as a command; and the helpers that build
//! the runner's writes.

use std::sync::Arc;

use fnhost_proto::rpc::TypedData;
use prost::Message;
use tokio::sync::mpsc;

use super::policy;
use super::state::{Cmd, Termination};
use super::{Msg, TerminateOutcome, TerminateReply};
use crate::events::postgres::Cluster;
use crate::events::time::now_ms;
use crate::events::{
    EventLog, EventLogLine, EventRecord, EventStatus, InvokeType, StoreError, WriteOp,
    WriteOutcome, INLINE_INPUT_LIMIT,
};
use crate::host::HostHandle;
use crate::ids::{InvocationId, RequestId};
use crate::invocation::{CancelReason, CancelResponse};

pub(super) fn platform(line: impl Into<String>) -> EventLogLine {
    EventLogLine {
        time_ms: now_ms(),
        line: format!("[PLATFORM] {}", line.into()),
    }
}

/// The event's current state and `lines` for its log, in one write.
pub(super) fn update_with(e: &EventRecord, lines: Vec<EventLogLine>) -> WriteOp {
    WriteOp::Update {
        lines,
        request_id: e.request_id.clone(),
        status: e.status,
        status_code: e.status_code,
        attempts: e.attempts,
        result: e.result.clone(),
        error: e.error.clone(),
        end_ms: e.end_ms,
        next_attempt_ms: e.next_attempt_ms,
        lease_token: e.lease_token,
    }
}

pub(super) fn shed_large_input(e: &mut EventRecord) {
    if e.input.len() > INLINE_INPUT_LIMIT {
        e.input = Vec::new();
    }
}

/// Inserts an event and, once it is durable, hands it to the core with its
/// sequence number. If the runner is gone (shutdown), recovery runs it.
pub(super) async fn insert_and_hand_over(
    log: EventLog,
    cmds: mpsc::Sender<Msg>,
    mut event: EventRecord,
    idempotency: Option<(String, Vec<u8>)>,
) -> Result<WriteOutcome, StoreError> {
    let op = WriteOp::Insert {
        event: event.clone(),
        idempotency,
    };
    let outcome = log.write(op).await;
    if let Ok(WriteOutcome::Inserted(seq)) = outcome {
        shed_large_input(&mut event);
        let _ = cmds.send(Msg::Core(hand_over(&log, event, seq))).await;
    }
    outcome
}

/// How a stored event reaches this host's runner: directly, or, with a
/// shared store, as a reason to claim (peers may claim it first).
fn hand_over(log: &EventLog, event: EventRecord, seq: i64) -> Cmd<TerminateReply> {
    if log.is_shared() {
        Cmd::Poll
    } else {
        Cmd::Accepted { event, seq }
    }
}

/// Cancels or kills a running event's invocation and answers its
/// terminate, or hands the answer back to the core when the invocation
/// had already ended (or was never submitted: the attempt ended without
/// one), to answer from what its attempt records.
pub(super) async fn signal(
    host: HostHandle,
    cmds: mpsc::Sender<Msg>,
    id: RequestId,
    inv: InvocationId,
    termination: Termination,
    reply: Option<TerminateReply>,
) {
    let r = match termination {
        Termination::Graceful => host.cancel(&inv, CancelReason::Requested).await,
        Termination::Forced => host.kill(&inv).await,
    };
    let graceful = termination == Termination::Graceful;
    tracing::info!(request = %id, invocation = %inv, graceful, response = ?r, "async event terminate");
    let Some(reply) = reply else {
        // Relayed from another host, which answered its caller.
        return;
    };
    if matches!(
        r,
        CancelResponse::AlreadyCompleted | CancelResponse::NotFound
    ) {
        let _ = cmds
            .send(Msg::Core(Cmd::AnswerAfterSettle { id, reply }))
            .await;
    } else {
        let _ = reply.send(Ok(TerminateOutcome::Done));
    }
}

/// A terminate of an event memory does not hold: answered from the store,
/// or, for an event queued or retrying there only, handed back to the core,
/// as a refill or load may have brought it in meanwhile.
pub(super) async fn look_up(
    log: EventLog,
    cluster: Option<Arc<Cluster>>,
    cmds: mpsc::Sender<Msg>,
    id: RequestId,
    termination: Termination,
    reply: TerminateReply,
) {
    let mut found = log.get(&id).await;
    if let Some(cluster) = &cluster {
        // Running on a host: recorded on its row for the owner. If it
        // stopped running meanwhile, look again (a few times: each miss
        // means the event moved on).
        for _ in 0..3 {
            let Ok(Some(e)) = &found else { break };
            if e.status != EventStatus::Running {
                break;
            }
            match cluster.request_terminate(&id, termination.into()).await {
                Ok(Some(owner)) => {
                    tracing::info!(request = %id, owner = %owner, ?termination, "async event terminate sent to its owner");
                    let _ = reply.send(Ok(TerminateOutcome::Done));
                    return;
                }
                Ok(None) => found = log.get(&id).await,
                Err(e) => found = Err(e),
            }
        }
    }
    let answer = match found {
        Ok(Some(e)) if e.status.is_final() => Ok(TerminateOutcome::AlreadyCompleted(e.status)),
        Ok(Some(event)) if matches!(event.status, EventStatus::Queued | EventStatus::Retrying) => {
            let cmd = Cmd::TerminateStored {
                event,
                termination,
                reply,
            };
            let _ = cmds.send(Msg::Core(cmd)).await;
            return;
        }
        Ok(Some(e)) => Err(StoreError::Inconsistent {
            request_id: id,
            status: e.status,
        }),
        Ok(None) => Ok(TerminateOutcome::NotFound),
        Err(err) => Err(err),
    };
    let _ = reply.send(answer);
}

/// Writes `e` as terminated by a user before it ran again. Answers `done`,
/// or `already-completed` when the event had ended (the write applies only
/// to an unfinished event, so it never overwrites an end); the flag says
/// whether the write failed.
pub(super) async fn write_abort(
    log: &EventLog,
    e: &EventRecord,
) -> (Result<TerminateOutcome, StoreError>, bool) {
    let aborted = policy::aborted(e, now_ms());
    let line = platform("Terminated by a user before it ran again.");
    match log.write(update_with(&aborted, vec![line])).await {
        Ok(WriteOutcome::Unchanged) => {
            let answer = match log.get(&e.request_id).await {
                Ok(Some(r)) => Ok(TerminateOutcome::AlreadyCompleted(r.status)),
                Ok(None) => Ok(TerminateOutcome::NotFound),
                Err(err) => Err(err),
            };
            (answer, false)
        }
        Ok(_) => (Ok(TerminateOutcome::Done), false),
        Err(err) => {
            tracing::error!(request = %e.request_id, "cannot record the terminate: {err}");
            (Err(err), true)
        }
    }
}

/// Answers terminates of an event whose attempt has settled, from its
/// stored record: an event that ended on its own is `already-completed`; one
/// the terminate ended (it raced the attempt's close) is `done`.
pub(super) async fn answer_from_store(log: EventLog, id: RequestId, replies: Vec<TerminateReply>) {
    let answer = match log.get(&id).await {
        Ok(Some(e)) if e.status.is_final() && e.status != EventStatus::Aborted => {
            Ok(TerminateOutcome::AlreadyCompleted(e.status))
        }
        Ok(Some(_)) => Ok(TerminateOutcome::Done),
        Ok(None) => Ok(TerminateOutcome::NotFound),
        Err(err) => Err(err),
    };
    for reply in replies {
        let _ = reply.send(answer.clone());
    }
}

/// Stores an `onFailure` event for `failed` (to run `target`), notes it in
/// the failed event's log, and hands it to the core.
pub(super) async fn send_to_on_failure(
    log: EventLog,
    cmds: mpsc::Sender<Msg>,
    target: String,
    failed: EventRecord,
) {
    let input = TypedData::json(policy::failure_payload(&failed).to_string());
    let mut record = EventRecord::queued(
        RequestId::time_ordered(),
        target,
        failed.qualifier.clone(),
        InvokeType::OnFailure,
        input.encode_to_vec(),
        now_ms(),
    );
    // The onFailure call joins the failed event's trace.
    if let Some(trace) = failed.trace() {
        record = record.with_trace(&trace);
    }
    let id = record.request_id.clone();
    let op = WriteOp::Insert {
        event: record.clone(),
        idempotency: None,
    };
    match log.write(op).await {
        Ok(outcome) => {
            let line = platform(format!("Failed for good; sent to onFailure as event {id}"));
            let op = WriteOp::Log {
                request_id: failed.request_id.clone(),
                lines: vec![line],
            };
            let _ = log.write(op).await;
            if let WriteOutcome::Inserted(seq) = outcome {
                let mut event = record;
                shed_large_input(&mut event);
                let _ = cmds.send(Msg::Core(hand_over(&log, event, seq))).await;
            }
        }
        Err(e) => {
            tracing::error!(request = %failed.request_id, "cannot store the onFailure event: {e}")
        }
    }
}
