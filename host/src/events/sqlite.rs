//! The default event store: an embedded SQLite file in WAL mode. One
//! connection writes (the batching writer calls it from one thread), a small
//! pool of connections reads alongside.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, ToSql};

use super::{
    EventLogLine, EventRecord, EventStatus, EventStore, ListPage, ListQuery, StoreError, WriteOp,
    WriteOutcome, INLINE_INPUT_LIMIT,
};

/// Schema versions, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[&str] = &[
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
];

const READERS: usize = 4;

/// SQLite-backed [`EventStore`].
pub struct SqliteStore {
    writer: Mutex<Writer>,
    readers: Vec<Mutex<Connection>>,
}

/// The writing connection and the last sequence number it gave out.
struct Writer {
    conn: Connection,
    last_seq: i64,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Owner-only from the first byte: SQLite gives its -wal and -shm
        // files the database file's mode, so one 0600 file covers all three.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            crate::data_dir::make_private(Path::new(&name))
                .map_err(|e| StoreError(format!("cannot restrict {}: {e}", path.display())))?;
        }
        {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError(format!("cannot create {}: {e}", path.display()))),
            }
        }
        let open = || -> Result<Connection, StoreError> {
            let c = Connection::open(path)
                .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
            // WAL: readers never block the writer; FULL: a commit is on disk
            // before the accept is answered.
            c.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
            )
            .map_err(err)?;
            Ok(c)
        };
        let mut writer = open()?;
        migrate(&mut writer)?;
        let last_seq = writer
            .query_row(
                "SELECT MAX(value, (SELECT COALESCE(MAX(rowid), 0) FROM events))
                 FROM store_meta WHERE key = 'last_seq'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        let readers = (0..READERS)
            .map(|_| open().map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            writer: Mutex::new(Writer {
                conn: writer,
                last_seq,
            }),
            readers,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // Take the first free reader; wait on one only when all are busy.
        for r in &self.readers {
            if let Ok(conn) = r.try_lock() {
                return f(&conn).map_err(err);
            }
        }
        let conn = self.readers[0]
            .lock()
            .map_err(|_| StoreError("a reader panicked".into()))?;
        f(&conn).map_err(err)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(err)? as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError(format!(
            "the store has schema version {version}, newer than this host's {}; upgrade the host",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

const COLUMNS: &str =
    "request_id, function, qualifier, invoke_type, status, status_code, attempts, input, result, \
                       error, start_ms, end_ms, next_attempt_ms";

fn record(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    let status: String = row.get(4)?;
    Ok(EventRecord {
        request_id: row.get(0)?,
        function: row.get(1)?,
        qualifier: row.get(2)?,
        invoke_type: row.get(3)?,
        status: EventStatus::parse(&status).unwrap_or(EventStatus::Failed),
        status_code: row.get(5)?,
        attempts: row.get(6)?,
        input: row.get(7)?,
        result: row.get(8)?,
        error: row.get(9)?,
        start_ms: row.get(10)?,
        end_ms: row.get(11)?,
        next_attempt_ms: row.get(12)?,
    })
}

fn append_lines(
    tx: &rusqlite::Transaction<'_>,
    request_id: &str,
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
struct CountDeltas(HashMap<(String, String, String, String), i64>);

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

    fn write(self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
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

fn apply_one(
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
                let seen: Option<(String, Vec<u8>)> = tx
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
                     input, result, error, start_ms, end_ms, next_attempt_ms, idem_key, idem_digest, rowid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
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
                seq
            ])?;
            *last_seq = seq;
            counts.add(
                &e.function,
                &e.qualifier,
                &e.invoke_type,
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
        WriteOp::Prune { before_ms } => {
            let mut gone = tx.prepare_cached(
                "SELECT function, qualifier, invoke_type, status, COUNT(*) FROM events
                 WHERE end_ms IS NOT NULL AND end_ms < ?1
                 GROUP BY function, qualifier, invoke_type, status",
            )?;
            let mut rows = gone.query(params![before_ms])?;
            while let Some(r) = rows.next()? {
                let (f, q, t, s): (String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                counts.add(&f, &q, &t, &s, -r.get::<_, i64>(4)?);
            }
            tx.execute(
                "DELETE FROM event_log_lines WHERE request_id IN
                     (SELECT request_id FROM events WHERE end_ms IS NOT NULL AND end_ms < ?1)",
                params![before_ms],
            )?;
            let n = tx.execute(
                "DELETE FROM events WHERE end_ms IS NOT NULL AND end_ms < ?1",
                params![before_ms],
            )?;
            Ok(WriteOutcome::Pruned(n))
        }
    }
}

impl EventStore for SqliteStore {
    fn apply(&self, batch: &[WriteOp]) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| StoreError("the writer panicked".into()))?;
        let Writer { conn, last_seq } = &mut *writer;
        let tx = conn.transaction().map_err(err)?;
        let mut out = Vec::with_capacity(batch.len());
        let mut counts = CountDeltas::default();
        let mut seq = *last_seq;
        for op in batch {
            out.push(apply_one(&tx, op, &mut counts, &mut seq).map_err(err)?);
        }
        counts.write(&tx).map_err(err)?;
        if seq != *last_seq {
            tx.execute(
                "UPDATE store_meta SET value = ?1 WHERE key = 'last_seq'",
                params![seq],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        // Only once committed: a failed batch gives its numbers out again.
        *last_seq = seq;
        Ok(out)
    }

    fn get(&self, request_id: &str) -> Result<Option<EventRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE request_id = ?1"
            ))?
            .query_row(params![request_id], record)
            .optional()
        })
    }

    fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let mut push = |clause: &str, v: Box<dyn ToSql>, clauses: &mut Vec<String>| {
            args.push(v);
            clauses.push(clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(f) = &q.function {
            push("function = ?", Box::new(f.clone()), &mut clauses);
        }
        if let Some(v) = &q.qualifier {
            push("qualifier = ?", Box::new(v.clone()), &mut clauses);
        }
        if let Some(v) = &q.request_id {
            push("request_id = ?", Box::new(v.clone()), &mut clauses);
        }
        if !q.statuses.is_empty() {
            let mut parts = Vec::new();
            for s in &q.statuses {
                let mut c = Vec::new();
                push("?", Box::new(s.as_str()), &mut c);
                parts.extend(c);
            }
            clauses.push(format!("status IN ({})", parts.join(", ")));
        }
        if !q.invoke_types.is_empty() {
            let mut parts = Vec::new();
            for t in &q.invoke_types {
                let mut c = Vec::new();
                push("?", Box::new(t.clone()), &mut c);
                parts.extend(c);
            }
            clauses.push(format!("invoke_type IN ({})", parts.join(", ")));
        }
        if let Some(v) = q.start_from {
            push("start_ms >= ?", Box::new(v), &mut clauses);
        }
        if let Some(v) = q.start_to {
            push("start_ms < ?", Box::new(v), &mut clauses);
        }
        if let Some(v) = q.end_from {
            push("end_ms >= ?", Box::new(v), &mut clauses);
        }
        if let Some(v) = q.end_to {
            push("end_ms < ?", Box::new(v), &mut clauses);
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let column = if q.order_by_end { "end_ms" } else { "start_ms" };
        let dir = if q.ascending { "ASC" } else { "DESC" };
        // Events without an end time sort last whatever the direction. Ties
        // (same millisecond) follow the order the events were accepted in:
        // the implicit rowid grows with every insert, and each index on
        // `events` already ends with it, so the tie-break costs no sort.
        let order = if q.order_by_end {
            format!("end_ms IS NULL, {column} {dir}, rowid {dir}")
        } else {
            format!("{column} {dir}, rowid {dir}")
        };
        // Without time bounds or a request id, every filter is a column of
        // `event_counts` (same names), which holds the total in a few rows.
        let by_columns_only = q.request_id.is_none()
            && q.start_from.is_none()
            && q.start_to.is_none()
            && q.end_from.is_none()
            && q.end_to.is_none();
        let count_sql = if by_columns_only {
            format!("SELECT COALESCE(SUM(n), 0) FROM event_counts {filter}")
        } else {
            format!("SELECT COUNT(*) FROM events {filter}")
        };
        let page_sql = format!(
            "SELECT {COLUMNS} FROM events {filter} ORDER BY {order} LIMIT {} OFFSET {}",
            q.limit, q.offset
        );
        self.read(|c| {
            let total: i64 = c
                .prepare_cached(&count_sql)?
                .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
            let events = if q.limit == 0 {
                Vec::new()
            } else {
                c.prepare_cached(&page_sql)?
                    .query_map(params_from_iter(args.iter()), record)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            Ok(ListPage {
                total: total as u64,
                events,
            })
        })
    }

    fn logs(&self, request_id: &str) -> Result<Vec<EventLogLine>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT time_ms, line FROM event_log_lines WHERE request_id = ?1 ORDER BY id",
            )?
            .query_map(params![request_id], |r| {
                Ok(EventLogLine {
                    time_ms: r.get(0)?,
                    line: r.get(1)?,
                })
            })?
            .collect()
        })
    }

    fn interrupted(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM events WHERE status = 'RUNNING' ORDER BY start_ms, rowid",
                small_input_columns()
            ))?
            .query_map([], record)?
            .collect()
        })
    }

    fn queued(&self, after: i64, limit: usize) -> Result<Vec<(i64, EventRecord)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            // The rowid is the sequence number. NOT INDEXED: walk the table
            // in rowid order from `after` (reads follow the writes closely,
            // so few rows past `after` are not queued) rather than sort
            // every queued event by rowid.
            c.prepare_cached(&format!(
                "SELECT {}, rowid FROM events NOT INDEXED
                 WHERE rowid > ?1 AND status = 'QUEUED' ORDER BY rowid LIMIT ?2",
                small_input_columns()
            ))?
            .query_map(params![after, limit], |r| {
                Ok((r.get::<_, i64>(13)?, record(r)?))
            })?
            .collect()
        })
    }

    fn retrying(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            // Served by the partial index `events_retrying`.
            c.prepare_cached(&format!(
                "SELECT {} FROM events WHERE status = 'RETRYING'
                 ORDER BY next_attempt_ms, rowid LIMIT ?1",
                small_input_columns()
            ))?
            .query_map([limit], record)?
            .collect()
        })
    }

    fn queue_start(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            let oldest: Option<i64> = c.query_row(
                "SELECT MIN(rowid) FROM events WHERE status = 'QUEUED'",
                [],
                |r| r.get(0),
            )?;
            match oldest {
                Some(seq) => Ok(seq - 1),
                None => c.query_row(
                    "SELECT value FROM store_meta WHERE key = 'last_seq'",
                    [],
                    |r| r.get(0),
                ),
            }
        })
    }
}

/// [`COLUMNS`] with inputs over [`INLINE_INPUT_LIMIT`] left out (read back
/// when the event runs), so loading a backlog does not load its payloads.
fn small_input_columns() -> String {
    let inline =
        format!("CASE WHEN length(input) <= {INLINE_INPUT_LIMIT} THEN input ELSE x'' END AS input");
    COLUMNS.replacen("input", &inline, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fnhost-store-{}", uuid::Uuid::new_v4()));
        (SqliteStore::open(&dir.join("events.db")).unwrap(), dir)
    }

    fn event(id: &str, function: &str, start: i64, status: EventStatus) -> EventRecord {
        EventRecord {
            request_id: id.into(),
            function: function.into(),
            qualifier: "$LATEST".into(),
            invoke_type: "api".into(),
            status,
            status_code: None,
            attempts: 0,
            input: vec![1, 2],
            result: None,
            error: None,
            start_ms: start,
            end_ms: status.is_final().then_some(start + 10),
            next_attempt_ms: None,
        }
    }

    fn insert(s: &SqliteStore, e: EventRecord) {
        s.apply(&[WriteOp::Insert {
            event: e,
            idempotency: None,
        }])
        .unwrap();
    }

    #[test]
    fn filters_order_and_pages() {
        let (s, dir) = store();
        for i in 0..30 {
            let status = if i % 3 == 0 {
                EventStatus::Failed
            } else {
                EventStatus::Finished
            };
            insert(
                &s,
                event(
                    &format!("e{i:02}"),
                    if i < 20 { "a" } else { "b" },
                    1000 + i,
                    status,
                ),
            );
        }
        let q = ListQuery {
            function: Some("a".into()),
            limit: 5,
            ..ListQuery::default()
        };
        let page = s.list(&q).unwrap();
        assert_eq!(page.total, 20);
        let ids: Vec<_> = page.events.iter().map(|e| e.request_id.as_str()).collect();
        assert_eq!(ids, ["e19", "e18", "e17", "e16", "e15"]);
        let q = ListQuery {
            statuses: vec![EventStatus::Failed],
            ascending: true,
            start_from: Some(1003),
            start_to: Some(1009),
            limit: 100,
            ..ListQuery::default()
        };
        let ids: Vec<_> = s
            .list(&q)
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.request_id)
            .collect();
        assert_eq!(ids, ["e03", "e06"], "start inclusive, end exclusive");
        let q = ListQuery {
            offset: 100,
            limit: 10,
            ..ListQuery::default()
        };
        let page = s.list(&q).unwrap();
        assert_eq!((page.total, page.events.len()), (30, 0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn events_of_the_same_millisecond_list_in_the_order_they_were_accepted() {
        let (s, dir) = store();
        // Random request ids that sort against the acceptance order.
        for id in ["zz", "mm", "aa"] {
            insert(&s, event(id, "a", 1000, EventStatus::Finished));
        }
        let ids = |q: ListQuery| -> Vec<String> {
            let page = s.list(&ListQuery { limit: 10, ..q }).unwrap();
            page.events.into_iter().map(|e| e.request_id).collect()
        };
        let asc = ListQuery {
            ascending: true,
            ..ListQuery::default()
        };
        assert_eq!(ids(asc.clone()), ["zz", "mm", "aa"]);
        assert_eq!(ids(ListQuery::default()), ["aa", "mm", "zz"]);
        let by_end = ListQuery {
            order_by_end: true,
            ..asc
        };
        assert_eq!(ids(by_end), ["zz", "mm", "aa"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn queued_pages_in_acceptance_order_and_interrupted_is_only_running() {
        let (s, dir) = store();
        // Acceptance order differs from the ids' order; two share a millisecond.
        for (id, start) in [("q3", 30), ("q1", 10), ("q2", 10), ("q4", 40)] {
            insert(&s, event(id, "a", start, EventStatus::Queued));
        }
        insert(&s, event("r", "a", 5, EventStatus::Running));
        insert(&s, event("t", "a", 6, EventStatus::Retrying));
        insert(&s, event("f", "a", 1, EventStatus::Finished));
        let mut big = event("q5", "a", 50, EventStatus::Queued);
        big.input = vec![7; INLINE_INPUT_LIMIT + 1];
        insert(&s, big);
        let ids = |v: &[(i64, EventRecord)]| -> Vec<String> {
            v.iter().map(|(_, e)| e.request_id.clone()).collect()
        };
        // Acceptance order is insertion order.
        let start = s.queue_start().unwrap();
        let page = s.queued(start, 3).unwrap();
        assert_eq!(ids(&page), ["q3", "q1", "q2"]);
        let rest = s.queued(page[2].0, 100).unwrap();
        assert_eq!(ids(&rest), ["q4", "q5"]);
        assert!(
            rest[1].1.input.is_empty(),
            "a large input is left in the store"
        );
        assert_eq!(rest[0].1.input, [1, 2]);
        assert!(s.queued(rest[1].0, 100).unwrap().is_empty());
        let interrupted: Vec<String> = s
            .interrupted()
            .unwrap()
            .into_iter()
            .map(|e| e.request_id)
            .collect();
        assert_eq!(interrupted, ["r"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn totals_from_the_count_table_match_a_count_of_the_events() {
        let (s, dir) = store();
        let statuses = [
            EventStatus::Queued,
            EventStatus::Running,
            EventStatus::Finished,
        ];
        for i in 0..60i64 {
            let mut e = event(
                &format!("e{i}"),
                ["a", "b", "c"][i as usize % 3],
                i,
                statuses[i as usize % 3],
            );
            e.invoke_type = if i % 4 == 0 { "http" } else { "api" }.into();
            e.qualifier = if i % 5 == 0 { "v1" } else { "$LATEST" }.into();
            insert(&s, e);
        }
        // Status changes, an update that changes nothing, and a prune.
        for i in (1..60).step_by(3) {
            let op = WriteOp::Update {
                request_id: format!("e{i}"),
                status: EventStatus::Failed,
                status_code: Some(430),
                attempts: 1,
                result: None,
                error: None,
                end_ms: Some(5),
                next_attempt_ms: None,
                lines: Vec::new(),
            };
            s.apply(&[op]).unwrap();
        }
        s.apply(&[WriteOp::Prune { before_ms: 20 }]).unwrap();
        let queries = [
            ListQuery::default(),
            ListQuery {
                function: Some("a".into()),
                ..ListQuery::default()
            },
            ListQuery {
                function: Some("b".into()),
                statuses: vec![EventStatus::Failed, EventStatus::Queued],
                ..ListQuery::default()
            },
            ListQuery {
                statuses: vec![EventStatus::Finished],
                ..ListQuery::default()
            },
            ListQuery {
                qualifier: Some("v1".into()),
                invoke_types: vec!["http".into()],
                ..ListQuery::default()
            },
            ListQuery {
                function: Some("none".into()),
                ..ListQuery::default()
            },
        ];
        for q in queries {
            let direct = SqliteStore::list(
                &s,
                &ListQuery {
                    start_from: Some(i64::MIN),
                    ..q.clone()
                },
            )
            .unwrap()
            .total;
            assert_eq!(s.list(&q).unwrap().total, direct, "{q:?}");
        }
        let all: i64 = s
            .read(|c| c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(s.list(&ListQuery::default()).unwrap().total, all as u64);
        assert!(all < 60, "the prune removed some");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_v2_store_with_events_migrates_with_its_counts_and_sequence() {
        let dir = std::env::temp_dir().join(format!("fnhost-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.db");
        {
            let c = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..2] {
                c.execute_batch(sql).unwrap();
            }
            c.execute_batch("PRAGMA user_version = 2").unwrap();
            for (i, (function, status)) in [
                ("a", "FINISHED"),
                ("a", "QUEUED"),
                ("b", "FINISHED"),
                ("a", "FINISHED"),
            ]
            .into_iter()
            .enumerate()
            {
                c.execute(
                    "INSERT INTO events (request_id, function, qualifier, invoke_type, status,
                         input, start_ms) VALUES (?1, ?2, '$LATEST', 'api', ?3, x'', ?4)",
                    params![format!("e{i}"), function, status, i as i64],
                )
                .unwrap();
            }
        }
        let s = SqliteStore::open(&path).unwrap();
        let total = |function: &str, status: EventStatus| {
            let q = ListQuery {
                function: Some(function.into()),
                statuses: vec![status],
                ..ListQuery::default()
            };
            s.list(&q).unwrap().total
        };
        assert_eq!(total("a", EventStatus::Finished), 2);
        assert_eq!(total("a", EventStatus::Queued), 1);
        assert_eq!(total("b", EventStatus::Finished), 1);
        assert_eq!(s.list(&ListQuery::default()).unwrap().total, 4);
        let out = s
            .apply(&[WriteOp::Insert {
                event: event("new", "a", 9, EventStatus::Queued),
                idempotency: None,
            }])
            .unwrap();
        assert_eq!(out, [WriteOutcome::Inserted(5)], "after the 4 rows there");
        assert_eq!(s.queue_start().unwrap(), 1, "just below the queued e1");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn retrying_events_come_earliest_due_first() {
        let (s, dir) = store();
        for (id, due) in [("late", 300), ("soon", 100), ("mid", 200)] {
            let mut e = event(id, "a", 1, EventStatus::Retrying);
            e.next_attempt_ms = Some(due);
            insert(&s, e);
        }
        insert(&s, event("q", "a", 1, EventStatus::Queued));
        let ids: Vec<String> = s
            .retrying(2)
            .unwrap()
            .into_iter()
            .map(|e| e.request_id)
            .collect();
        assert_eq!(ids, ["soon", "mid"]);
        assert_eq!(s.retrying(10).unwrap().len(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sequence_numbers_are_never_given_out_again() {
        let (s, dir) = store();
        let ins = |s: &SqliteStore, id: &str| {
            s.apply(&[WriteOp::Insert {
                event: event(id, "a", 100, EventStatus::Finished),
                idempotency: None,
            }])
            .unwrap()
            .remove(0)
        };
        assert_eq!(ins(&s, "a"), WriteOutcome::Inserted(1));
        assert_eq!(ins(&s, "b"), WriteOutcome::Inserted(2));
        // Pruning every row (the newest too) does not rewind the sequence,
        // nor does reopening the store.
        s.apply(&[WriteOp::Prune { before_ms: 10_000 }]).unwrap();
        assert_eq!(ins(&s, "c"), WriteOutcome::Inserted(3));
        s.apply(&[WriteOp::Prune { before_ms: 10_000 }]).unwrap();
        drop(s);
        let s = SqliteStore::open(&dir.join("events.db")).unwrap();
        assert_eq!(ins(&s, "d"), WriteOutcome::Inserted(4));
        assert_eq!(s.queue_start().unwrap(), 4, "none queued: the newest");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn updates_never_change_an_ended_event() {
        let (s, dir) = store();
        insert(&s, event("q", "a", 1, EventStatus::Queued));
        let update = |status: EventStatus, line: &str| WriteOp::Update {
            request_id: "q".into(),
            status,
            status_code: None,
            attempts: 1,
            result: None,
            error: None,
            end_ms: status.is_final().then_some(2),
            next_attempt_ms: None,
            lines: vec![EventLogLine {
                time_ms: 1,
                line: line.into(),
            }],
        };
        let apply = |op| s.apply(&[op]).unwrap().remove(0);
        assert_eq!(
            apply(update(EventStatus::Aborted, "aborted")),
            WriteOutcome::Done
        );
        // An attempt that raced the abort finds the event ended.
        assert_eq!(
            apply(update(EventStatus::Running, "start")),
            WriteOutcome::Unchanged
        );
        assert_eq!(
            apply(update(EventStatus::Finished, "end")),
            WriteOutcome::Unchanged
        );
        let e = s.get("q").unwrap().unwrap();
        assert_eq!(e.status, EventStatus::Aborted);
        let lines: Vec<_> = s.logs("q").unwrap().into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["aborted"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn idempotency_keys_return_the_first_id_or_a_conflict() {
        let (s, dir) = store();
        let ins = |id: &str, digest: &[u8]| {
            s.apply(&[WriteOp::Insert {
                event: event(id, "a", 1, EventStatus::Queued),
                idempotency: Some(("k".into(), digest.to_vec())),
            }])
            .unwrap()
            .remove(0)
        };
        assert_eq!(ins("x", b"1"), WriteOutcome::Inserted(1));
        assert_eq!(ins("y", b"1"), WriteOutcome::Duplicate("x".into()));
        assert_eq!(ins("z", b"2"), WriteOutcome::Conflict("x".into()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn prune_removes_old_ended_events_and_their_logs() {
        let (s, dir) = store();
        insert(&s, event("old", "a", 100, EventStatus::Finished));
        insert(&s, event("new", "a", 10_000, EventStatus::Finished));
        insert(&s, event("live", "a", 100, EventStatus::Queued));
        let line = EventLogLine {
            time_ms: 1,
            line: "x".into(),
        };
        s.apply(&[WriteOp::Log {
            request_id: "old".into(),
            lines: vec![line.clone(), line],
        }])
        .unwrap();
        assert_eq!(s.logs("old").unwrap().len(), 2);
        let out = s.apply(&[WriteOp::Prune { before_ms: 5000 }]).unwrap();
        assert_eq!(out, [WriteOutcome::Pruned(1)]);
        assert!(s.get("old").unwrap().is_none());
        assert!(s.logs("old").unwrap().is_empty());
        assert!(s.get("new").unwrap().is_some() && s.get("live").unwrap().is_some());
        assert_eq!(s.queued(0, 10).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
