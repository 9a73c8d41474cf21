//! Writes: a batch in one transaction, its statements pipelined on one
//! connection (sent in order without waiting for each answer), so a batch
//! of a thousand accepts costs about one round trip and one commit.

use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;

use super::counts::CountDeltas;
use super::failed;
use super::partitions::{self, Partitioning};
use crate::events::time::now_ms;
use crate::events::{EventLogLine, StoreError, WriteOp, WriteOutcome};
use crate::ids::RequestId;

/// An insert and its ready marker, in one statement. With an idempotency
/// key seen before, it inserts nothing and returns no row. `{table}` is
/// the live table, or the ended one for an event stored already ended.
const INSERT: &str = "WITH key AS (
        INSERT INTO fnhost_idempotency (function, idem_key, request_id, digest)
        SELECT $2::TEXT, $14::TEXT, $1::TEXT, $15::BYTEA WHERE $14::TEXT IS NOT NULL
        ON CONFLICT (function, idem_key) DO NOTHING
        RETURNING 1)
    , ins AS (
        INSERT INTO {table} (request_id, function, qualifier, invoke_type, status,
            status_code, attempts, input, result, error, start_ms, end_ms, next_attempt_ms, seq,
            trace_parent, trace_state)
        SELECT $1::TEXT, $2::TEXT, $3::TEXT, $4::TEXT, $5::TEXT, $6::BIGINT, $7::BIGINT,
            $8::BYTEA, $9::BYTEA, $10::TEXT, $11::BIGINT, $12::BIGINT, $13::BIGINT,
            nextval('fnhost_events_seq_seq'), $17::TEXT, $18::TEXT
        WHERE $14::TEXT IS NULL OR EXISTS (SELECT 1 FROM key)
        RETURNING request_id, seq, start_ms, status)
    , ready AS (
        INSERT INTO fnhost_ready (request_id, seq, ready_at, accepted_by)
        SELECT request_id, seq, start_ms, $16::TEXT FROM ins WHERE status = 'QUEUED')
    SELECT seq FROM ins";

fn insert_into(table: &str) -> String {
    INSERT.replace("{table}", table)
}

/// A status change to a live status, fenced: it applies only to an event
/// whose lease token is the writer's (none, for an event no host has
/// claimed). An event put back to `QUEUED` loses its owner and joins the
/// ready table. Log lines come in the same statement, and only if the
/// change applied.
const UPDATE: &str = "WITH old AS (
        SELECT request_id, status FROM fnhost_events
        WHERE request_id = $1 AND lease_token IS NOT DISTINCT FROM $9
        FOR UPDATE)
    , u AS (
        UPDATE fnhost_events e SET status = $2, status_code = $3, attempts = $4, result = $5,
            error = $6, end_ms = $7, next_attempt_ms = $8,
            owner_host = CASE WHEN $2 = 'QUEUED' THEN NULL ELSE e.owner_host END,
            lease_token = CASE WHEN $2 = 'QUEUED' THEN NULL ELSE e.lease_token END
        -- `e.request_id = $1` too: a join alone may be planned as a scan.
        FROM old WHERE e.request_id = $1 AND e.request_id = old.request_id
        RETURNING e.request_id, e.seq, e.status, e.function, e.qualifier, e.invoke_type,
            old.status AS old_status)
    , back AS (
        INSERT INTO fnhost_ready (request_id, seq, ready_at)
        SELECT request_id, seq, $10 FROM u WHERE status = 'QUEUED'
        ON CONFLICT (request_id) DO NOTHING)
    , lines AS (
        INSERT INTO fnhost_event_logs (request_id, time_ms, line)
        SELECT $1, t, l FROM unnest($11::BIGINT[], $12::TEXT[]) AS z(t, l)
        WHERE EXISTS (SELECT 1 FROM u))
    SELECT function, qualifier, invoke_type, old_status FROM u";

/// A status change to an ended status, fenced as [`UPDATE`] is: the event
/// leaves the live table (and the ready one) for the ended table's
/// partition of its end time, in one statement. `$10` is the end time
/// when the write names none. Its parameters are [`UPDATE`]'s.
pub(super) const END: &str = "WITH old AS (
        DELETE FROM fnhost_events
        WHERE request_id = $1 AND lease_token IS NOT DISTINCT FROM $9::BIGINT
        RETURNING *)
    , moved AS (
        INSERT INTO fnhost_ended (seq, request_id, function, qualifier, invoke_type, status,
            status_code, attempts, input, result, error, start_ms, end_ms, next_attempt_ms,
            owner_host, lease_token, trace_parent, trace_state)
        SELECT seq, request_id, function, qualifier, invoke_type, $2::TEXT, $3::BIGINT,
            $4::BIGINT, input, $5::BYTEA, $6::TEXT, start_ms, COALESCE($7::BIGINT, $10::BIGINT),
            $8::BIGINT, owner_host, lease_token, trace_parent, trace_state
        FROM old)
    , gone AS (
        DELETE FROM fnhost_ready WHERE request_id = $1 AND EXISTS (SELECT 1 FROM old))
    , lines AS (
        INSERT INTO fnhost_event_logs (request_id, time_ms, line)
        SELECT $1, t, l FROM unnest($11::BIGINT[], $12::TEXT[]) AS z(t, l)
        WHERE EXISTS (SELECT 1 FROM old))
    SELECT function, qualifier, invoke_type, status FROM old";

const LOG: &str = "INSERT INTO fnhost_event_logs (request_id, time_ms, line)
    SELECT $1, t, l FROM unnest($2::BIGINT[], $3::TEXT[]) AS z(t, l)";

fn columns(lines: &[EventLogLine]) -> (Vec<i64>, Vec<String>) {
    lines.iter().map(|l| (l.time_ms, l.line.clone())).unzip()
}

/// Applies `batch` in one transaction; one outcome per op, in order.
/// A prune runs after the batch commits, in a transaction of its own (see
/// `partitions.rs`).
pub(super) async fn apply(
    client: &mut deadpool_postgres::Client,
    host_id: &str,
    plan: Partitioning,
    batch: &[WriteOp],
) -> Result<Vec<WriteOutcome>, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(failed("cannot begin a write"))?;
    let txr = &tx;
    let prepare = |sql: String| async move { txr.prepare_cached(&sql).await };
    let (insert, insert_ended, update, end) = futures_util::try_join!(
        prepare(insert_into("fnhost_events")),
        prepare(insert_into("fnhost_ended")),
        prepare(UPDATE.to_string()),
        prepare(END.to_string()),
    )
    .map_err(failed("write failed"))?;
    let now = now_ms();
    // Shared by the pipelined statements, which run one after another on
    // the connection but are awaited together.
    let moves = std::sync::Mutex::new(CountDeltas::default());
    // Every op's statement is sent before any answer is awaited.
    let first =
        batch.iter().map(|op| {
            let (tx, moves) = (&tx, &moves);
            let (insert, insert_ended, update, end) = (&insert, &insert_ended, &update, &end);
            async move {
                match op {
                    WriteOp::Insert {
                        event: e,
                        idempotency,
                    } => {
                        let (key, digest) = match idempotency {
                            Some((k, d)) => (Some(k.as_str()), Some(d.as_slice())),
                            None => (None, None),
                        };
                        let status = e.status.as_str();
                        let code = e.status_code.map(|c| c.as_i64());
                        let args: [&(dyn ToSql + Sync); 18] = [
                            &e.request_id,
                            &e.function,
                            &e.qualifier,
                            &e.invoke_type.as_str(),
                            &status,
                            &code,
                            &e.attempts,
                            &e.input,
                            &e.result,
                            &e.error,
                            &e.start_ms,
                            &e.end_ms,
                            &e.next_attempt_ms,
                            &key,
                            &digest,
                            &host_id,
                            &e.trace_parent,
                            &e.trace_state,
                        ];
                        let statement = if e.status.is_final() {
                            insert_ended
                        } else {
                            insert
                        };
                        let row = tx.query_opt(statement, &args).await?;
                        Ok(match row {
                            Some(r) => {
                                let t = e.invoke_type.as_str();
                                moves.lock().expect("counts").add(
                                    &e.function,
                                    &e.qualifier,
                                    t,
                                    status,
                                    1,
                                );
                                WriteOutcome::Inserted(r.get(0))
                            }
                            // Decided below, once the whole batch is sent.
                            None => WriteOutcome::Unchanged,
                        })
                    }
                    WriteOp::Update {
                        request_id,
                        status,
                        status_code,
                        attempts,
                        result,
                        error,
                        end_ms,
                        next_attempt_ms,
                        lines,
                        lease_token,
                    } => {
                        let (times, texts) = columns(lines);
                        let statement = if status.is_final() { end } else { update };
                        let status = status.as_str();
                        let code = status_code.map(|c| c.as_i64());
                        let ready_at = next_attempt_ms.unwrap_or(now);
                        let args: [&(dyn ToSql + Sync); 12] = [
                            request_id,
                            &status,
                            &code,
                            attempts,
                            result,
                            error,
                            end_ms,
                            next_attempt_ms,
                            lease_token,
                            &ready_at,
                            &times,
                            &texts,
                        ];
                        Ok(match tx.query_opt(statement, &args).await? {
                            Some(row) => {
                                let (f, q, t, old): (String, String, String, String) =
                                    (row.get(0), row.get(1), row.get(2), row.get(3));
                                moves
                                    .lock()
                                    .expect("counts")
                                    .moved(&f, &q, &t, &old, status);
                                WriteOutcome::Done
                            }
                            None => WriteOutcome::Unchanged,
                        })
                    }
                    WriteOp::Log { request_id, lines } => {
                        let (times, texts) = columns(lines);
                        tx.execute(LOG, &[request_id, &times, &texts]).await?;
                        Ok(WriteOutcome::Done)
                    }
                    // After the commit, below.
                    WriteOp::Prune { .. } => Ok(WriteOutcome::Pruned(0)),
                    WriteOp::TimerStatus { function, status } => {
                        tx.execute(
                        "INSERT INTO fnhost_timer_status (function, last_ms, next_ms, updated_ms)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (function) DO UPDATE SET last_ms = excluded.last_ms,
                             next_ms = excluded.next_ms, updated_ms = excluded.updated_ms",
                        &[function, &status.last_ms, &status.next_ms, &status.updated_ms],
                    )
                    .await?;
                        Ok(WriteOutcome::Done)
                    }
                }
            }
        });
    let mut out: Vec<WriteOutcome> = try_join_all(first).await.map_err(failed("write failed"))?;
    // Inserts that found their idempotency key taken: the first request's
    // id, and whether its body was the same.
    for (op, outcome) in batch.iter().zip(out.iter_mut()) {
        let WriteOp::Insert {
            event,
            idempotency: Some((key, digest)),
        } = op
        else {
            continue;
        };
        if *outcome != WriteOutcome::Unchanged {
            continue;
        }
        let row = tx
            .query_one(
                "SELECT request_id, digest FROM fnhost_idempotency
                 WHERE function = $1 AND idem_key = $2",
                &[&event.function, key],
            )
            .await
            .map_err(failed("cannot read an idempotency key"))?;
        let (id, seen): (RequestId, Vec<u8>) = (row.get(0), row.get(1));
        *outcome = if &seen == digest {
            WriteOutcome::Duplicate(id)
        } else {
            WriteOutcome::Conflict(id)
        };
    }
    moves
        .into_inner()
        .unwrap_or_default()
        .write(&tx)
        .await
        .map_err(failed("cannot record the event counts"))?;
    tx.commit().await.map_err(failed("commit failed"))?;
    for (op, outcome) in batch.iter().zip(out.iter_mut()) {
        if let WriteOp::Prune { before_ms, .. } = op {
            // The batch's other writes are committed: a failed prune must
            // not report them failed, so it is logged here and tried again
            // next round. `None`: another host is pruning this round.
            let n = match partitions::prune(client, plan, *before_ms, now_ms()).await {
                Ok(n) => n.unwrap_or(0),
                Err(e) => {
                    tracing::error!("pruning async events failed ({e:#}); trying again next round");
                    0
                }
            };
            *outcome = WriteOutcome::Pruned(n);
        }
    }
    Ok(out)
}
