//! Writes: one op of a batch inside the batch's transaction, and the
//! per-group count adjustments the transaction gathers.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use crate::events::{EventLogLine, RequestId, WriteOp, WriteOutcome};

fn append_lines(
    tx: &rusqlite::Transaction<'_>,
    request_id: &RequestId,
    lines: &[EventLogLine],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO event_log_lines (request_id, time_ms, line) VALUES (?1, ?2, ?3)",
    )?;
    for l in lines {
        stmt.execute(params![request_id, l.time_ms, l.line])?;
    }
    Ok(())
}

/// Changes to `event_counts` gathered over one transaction, keyed by
/// (function, qualifier, invoke type, status): a batch of a thousand
/// inserts for one function becomes one counter update.
#[derive(Default)]
pub(super) struct CountDeltas(HashMap<(String, String, String, String), i64>);

impl CountDeltas {
    fn add(&mut self, function: &str, qualifier: &str, invoke_type: &str, status: &str, n: i64) {
        let key = (
            function.to_string(),
            qualifier.to_string(),
            invoke_type.to_string(),
            status.to_string(),
        );
        *self.0.entry(key).or_default() += n;
    }

    pub(super) fn write(self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO event_counts (function, qualifier, invoke_type, status, n)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET n = n + excluded.n",
        )?;
        for ((function, qualifier, invoke_type, status), n) in self.0 {
            if n != 0 {
                stmt.execute(params![function, qualifier, invoke_type, status, n])?;
            }
        }
        Ok(())
    }
}

pub(super) fn apply_one(
    tx: &rusqlite::Transaction<'_>,
    op: &WriteOp,
    counts: &mut CountDeltas,
    last_seq: &mut i64,
) -> rusqlite::Result<WriteOutcome> {
    match op {
        WriteOp::Insert {
            event: e,
            idempotency,
        } => {
            if let Some((key, digest)) = idempotency {
                let seen: Option<(RequestId, Vec<u8>)> = tx
                    .query_row(
                        "SELECT request_id, idem_digest FROM events WHERE function = ?1 AND idem_key = ?2",
                        params![e.function, key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((id, d)) = seen {
                    return Ok(if &d == digest {
                        WriteOutcome::Duplicate(id)
                    } else {
                        WriteOutcome::Conflict(id)
                    });
                }
            }
            let (key, digest) = match idempotency {
                Some((k, d)) => (Some(k.as_str()), Some(d.as_slice())),
                None => (None, None),
            };
            let seq = *last_seq + 1;
            tx.prepare_cached(
                "INSERT INTO events (request_id, function, qualifier, invoke_type, status, status_code, attempts,
                     input, result, error, start_ms, end_ms, next_attempt_ms, idem_key, idem_digest, rowid,
                     trace_parent, trace_state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?
            .execute(params![
                e.request_id,
                e.function,
                e.qualifier,
                e.invoke_type,
                e.status.as_str(),
                e.status_code,
                e.attempts,
                e.input,
                e.result,
                e.error,
                e.start_ms,
                e.end_ms,
                e.next_attempt_ms,
                key,
                digest,
                seq,
                e.trace_parent,
                e.trace_state
            ])?;
            *last_seq = seq;
            counts.add(
                &e.function,
                &e.qualifier,
                e.invoke_type.as_str(),
                e.status.as_str(),
                1,
            );
            Ok(WriteOutcome::Inserted(seq))
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
            // One host owns every event of an embedded store.
            lease_token: _,
        } => {
            let before: Option<(String, String, String, String)> = tx
                .prepare_cached(
                    "SELECT function, qualifier, invoke_type, status FROM events
                     WHERE request_id = ?1 AND status IN ('QUEUED', 'RUNNING', 'RETRYING')",
                )?
                .query_row(params![request_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let Some((function, qualifier, invoke_type, old_status)) = before else {
                return Ok(WriteOutcome::Unchanged);
            };
            tx.prepare_cached(
                "UPDATE events SET status = ?2, status_code = ?3, attempts = ?4, result = ?5,
                     error = ?6, end_ms = ?7, next_attempt_ms = ?8
                 WHERE request_id = ?1",
            )?
            .execute(params![
                request_id,
                status.as_str(),
                status_code,
                attempts,
                result,
                error,
                end_ms,
                next_attempt_ms
            ])?;
            if old_status != status.as_str() {
                counts.add(&function, &qualifier, &invoke_type, &old_status, -1);
                counts.add(&function, &qualifier, &invoke_type, status.as_str(), 1);
            }
            append_lines(tx, request_id, lines)?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::Log { request_id, lines } => {
            append_lines(tx, request_id, lines)?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::Prune { before_ms, limit } => {
            // The same rows for all three statements: the earliest ended
            // first, in the order of the `events_end` index.
            const DOOMED: &str = "SELECT rowid FROM events WHERE end_ms IS NOT NULL AND end_ms < ?1
                                  ORDER BY end_ms, rowid LIMIT ?2";
            let limit = i64::try_from((*limit).max(1)).unwrap_or(i64::MAX);
            let mut gone = tx.prepare_cached(&format!(
                "SELECT function, qualifier, invoke_type, status, COUNT(*) FROM events
                 WHERE rowid IN ({DOOMED})
                 GROUP BY function, qualifier, invoke_type, status"
            ))?;
            let mut rows = gone.query(params![before_ms, limit])?;
            while let Some(r) = rows.next()? {
                let (f, q, t, s): (String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                counts.add(&f, &q, &t, &s, -r.get::<_, i64>(4)?);
            }
            tx.prepare_cached(&format!(
                "DELETE FROM event_log_lines WHERE request_id IN
                     (SELECT request_id FROM events WHERE rowid IN ({DOOMED}))"
            ))?
            .execute(params![before_ms, limit])?;
            let n = tx
                .prepare_cached(&format!("DELETE FROM events WHERE rowid IN ({DOOMED})"))?
                .execute(params![before_ms, limit])?;
            Ok(WriteOutcome::Pruned(n))
        }
        WriteOp::TimerStatus { function, status } => {
            tx.prepare_cached(
                "INSERT INTO timer_status (function, last_ms, next_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (function) DO UPDATE SET last_ms = excluded.last_ms,
                     next_ms = excluded.next_ms, updated_ms = excluded.updated_ms",
            )?
            .execute(params![
                function,
                status.last_ms,
                status.next_ms,
                status.updated_ms
            ])?;
            Ok(WriteOutcome::Done)
        }
    }
}
