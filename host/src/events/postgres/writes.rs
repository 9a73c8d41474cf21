//! Writes: a batch in one transaction, its statements pipelined on one
//! connection (sent in order without waiting for each answer), so a batch
//! of a thousand accepts costs about one round trip and one commit.

use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;

use super::counts::CountDeltas;
use super::failed;
use crate::events::time::now_ms;
use crate::events::{EventLogLine, StoreError, WriteOp, WriteOutcome};
use crate::ids::RequestId;

/// An insert and its ready marker, in one statement. With an idempotency
/// key seen before, it inserts nothing and returns no row.
const INSERT: &str = "WITH ins AS (
        INSERT INTO fnhost_events (request_id, function, qualifier, invoke_type, status,
            status_code, attempts, input, result, error, start_ms, end_ms, next_attempt_ms,
            idem_key, idem_digest)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        ON CONFLICT (function, idem_key) WHERE idem_key IS NOT NULL DO NOTHING
        RETURNING request_id, seq, start_ms, status)
    , ready AS (
        INSERT INTO fnhost_ready (request_id, seq, ready_at, accepted_by)
        SELECT request_id, seq, start_ms, $16 FROM ins WHERE status = 'QUEUED')
    SELECT seq FROM ins";

/// A status change, fenced: it applies only to an unfinished event whose
/// lease token is the writer's (none, for an event no host has claimed).
/// An event put back to `QUEUED` loses its owner and joins the ready
/// table; an ended one leaves it. Log lines come in the same statement,
/// and only if the change applied.
const UPDATE: &str = "WITH old AS (
        SELECT request_id, status FROM fnhost_events
        WHERE request_id = $1 AND status IN ('QUEUED', 'RUNNING', 'RETRYING')
            AND lease_token IS NOT DISTINCT FROM $9
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
    , gone AS (
        DELETE FROM fnhost_ready WHERE request_id IN
            (SELECT request_id FROM u WHERE status IN ('FINISHED', 'FAILED', 'ABORTED')))
    , lines AS (
        INSERT INTO fnhost_event_logs (request_id, time_ms, line)
        SELECT $1, t, l FROM unnest($11::BIGINT[], $12::TEXT[]) AS z(t, l)
        WHERE EXISTS (SELECT 1 FROM u))
    SELECT function, qualifier, invoke_type, old_status FROM u";

/// Advisory lock key of the prune ("prune" in ASCII).
const PRUNE_LOCK: i64 = 0x70_7275_6e65;

const LOG: &str = "INSERT INTO fnhost_event_logs (request_id, time_ms, line)
    SELECT $1, t, l FROM unnest($2::BIGINT[], $3::TEXT[]) AS z(t, l)";

fn columns(lines: &[EventLogLine]) -> (Vec<i64>, Vec<String>) {
    lines.iter().map(|l| (l.time_ms, l.line.clone())).unzip()
}

/// Applies `batch` in one transaction; one outcome per op, in order.
pub(super) async fn apply(
    client: &mut deadpool_postgres::Client,
    host_id: &str,
    batch: &[WriteOp],
) -> Result<Vec<WriteOutcome>, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(failed("cannot begin a write"))?;
    let insert = tx
        .prepare_cached(INSERT)
        .await
        .map_err(failed("write failed"))?;
    let update = tx
        .prepare_cached(UPDATE)
        .await
        .map_err(failed("write failed"))?;
    let now = now_ms();
    // Shared by the pipelined statements, which run one after another on
    // the connection but are awaited together.
    let moves = std::sync::Mutex::new(CountDeltas::default());
    // Every op's statement is sent before any answer is awaited.
    let first = batch.iter().map(|op| {
        let (tx, insert, update, moves) = (&tx, &insert, &update, &moves);
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
                    let args: [&(dyn ToSql + Sync); 16] = [
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
                    ];
                    let row = tx.query_opt(insert, &args).await?;
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
                    Ok(match tx.query_opt(update, &args).await? {
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
                WriteOp::Prune { before_ms } => {
                    // Every host prunes on its own timer; one at a time
                    // does the work, the others skip this round.
                    let locked: bool = tx
                        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
                        .await?
                        .get(0);
                    if !locked {
                        return Ok(WriteOutcome::Pruned(0));
                    }
                    tx.execute(
                        "DELETE FROM fnhost_event_logs WHERE request_id IN
                             (SELECT request_id FROM fnhost_events
                              WHERE end_ms IS NOT NULL AND end_ms < $1)",
                        &[before_ms],
                    )
                    .await?;
                    let n: i64 = tx
                        .query_one(
                            "WITH gone AS (
                                 DELETE FROM fnhost_events WHERE end_ms IS NOT NULL AND end_ms < $1
                                 RETURNING function, qualifier, invoke_type, status)
                             , counted AS (
                                 INSERT INTO fnhost_event_counts
                                     (function, qualifier, invoke_type, status, n)
                                 SELECT function, qualifier, invoke_type, status, -COUNT(*)
                                 FROM gone GROUP BY function, qualifier, invoke_type, status)
                             SELECT COUNT(*) FROM gone",
                            &[before_ms],
                        )
                        .await?
                        .get(0);
                    Ok(WriteOutcome::Pruned(n as usize))
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
                "SELECT request_id, idem_digest FROM fnhost_events
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
    Ok(out)
}
