//! The schema: its versions and the migration that brings a store up to
//! the newest.

use rusqlite::Connection;

use super::failed;
use crate::events::StoreError;

/// Schema versions, applied in order; `PRAGMA user_version` records the last.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: events, their logs, and an index for every list filter.
    "CREATE TABLE events (
        request_id      TEXT PRIMARY KEY,
        function        TEXT NOT NULL,
        qualifier       TEXT NOT NULL,
        invoke_type     TEXT NOT NULL,
        status          TEXT NOT NULL,
        status_code     INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        input           BLOB NOT NULL,
        result          BLOB,
        error           TEXT,
        start_ms        INTEGER NOT NULL,
        end_ms          INTEGER,
        next_attempt_ms INTEGER,
        idem_key        TEXT,
        idem_digest     BLOB
    );
    CREATE INDEX events_function_start ON events (function, start_ms);
    CREATE INDEX events_function_end ON events (function, end_ms) WHERE end_ms IS NOT NULL;
    CREATE INDEX events_function_status_start ON events (function, status, start_ms);
    CREATE INDEX events_status_start ON events (status, start_ms);
    CREATE INDEX events_start ON events (start_ms);
    CREATE INDEX events_end ON events (end_ms) WHERE end_ms IS NOT NULL;
    CREATE UNIQUE INDEX events_idempotency ON events (function, idem_key) WHERE idem_key IS NOT NULL;
    CREATE TABLE event_logs (
        request_id TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        time_ms    INTEGER NOT NULL,
        line       TEXT NOT NULL,
        PRIMARY KEY (request_id, seq)
    ) WITHOUT ROWID;",
    // 2: log lines keyed by an increasing rowid, so appending needs no
    // look-up of the last sequence number.
    "CREATE TABLE event_log_lines (
        id         INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        time_ms    INTEGER NOT NULL,
        line       TEXT NOT NULL
    );
    CREATE INDEX event_log_lines_request ON event_log_lines (request_id, id);
    INSERT INTO event_log_lines (request_id, time_ms, line)
        SELECT request_id, time_ms, line FROM event_logs ORDER BY request_id, seq;
    DROP TABLE event_logs;",
    // 3: event counts per function, qualifier, invoke type and status, kept
    // by `apply` (one adjustment per group and transaction), so a list's
    // totalCount without time bounds is a sum over a few rows instead of a
    // count over every matching event.
    "CREATE TABLE event_counts (
        function    TEXT NOT NULL,
        qualifier   TEXT NOT NULL,
        invoke_type TEXT NOT NULL,
        status      TEXT NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (function, status, qualifier, invoke_type)
    ) WITHOUT ROWID;
    INSERT INTO event_counts (function, qualifier, invoke_type, status, n)
        SELECT function, qualifier, invoke_type, status, COUNT(*) FROM events
        GROUP BY function, qualifier, invoke_type, status;",
    // 4: the last sequence number given to an event. Inserts set the rowid
    // from it, so sequence numbers keep growing after pruning deletes the
    // newest rows (SQLite would otherwise hand their rowids out again).
    "CREATE TABLE store_meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO store_meta (key, value)
        SELECT 'last_seq', COALESCE(MAX(rowid), 0) FROM events;",
    // 5: retrying events by their next attempt, for loading retries that
    // did not fit in memory. Partial: only events that failed and wait to
    // retry are in it, so the common path pays nothing for it.
    "CREATE INDEX events_retrying ON events (next_attempt_ms) WHERE status = 'RETRYING';",
    // 6: timer functions' schedule status (`TimerInfo.ScheduleStatus`).
    "CREATE TABLE timer_status (
        function   TEXT PRIMARY KEY,
        last_ms    INTEGER NOT NULL,
        next_ms    INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );",
    // 7: the trace an event's attempts join (W3C traceparent, tracestate).
    "ALTER TABLE events ADD COLUMN trace_parent TEXT;
    ALTER TABLE events ADD COLUMN trace_state TEXT;",
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(failed("cannot read the schema version"))? as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let to = i + 1;
        let failed = |e| StoreError::backend(format!("migration to schema version {to} failed"), e);
        let tx = conn.transaction().map_err(failed)?;
        tx.execute_batch(sql).map_err(failed)?;
        tx.execute_batch(&format!("PRAGMA user_version = {to}"))
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}
