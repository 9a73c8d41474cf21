//! The default event store: an embedded SQLite file in WAL mode. One
//! connection writes (the batching writer calls it from one thread), a small
//! pool of connections reads alongside.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};

use crate::ids::RequestId;

use super::query::Operand;
use super::{
    EventLogLine, EventRecord, EventStore, ListPage, ListQuery, StoreError, WriteOp, WriteOutcome,
};
use rows::{record, small_input_columns, COLUMNS};
use writes::{apply_one, CountDeltas};

mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod writes;

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

/// Maps a database error to the store's, saying what the store was doing.
pub(super) fn failed(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

impl SqliteStore {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend(format!("cannot create {}", dir.display()), e))?;
        }
        // Owner-only from the first byte: SQLite gives its -wal and -shm
        // files the database file's mode, so one 0600 file covers all three.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            crate::data_dir::make_private(Path::new(&name)).map_err(|e| {
                StoreError::backend(format!("cannot restrict {}", path.display()), e)
            })?;
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
                Err(e) => {
                    let context = format!("cannot create {}", path.display());
                    return Err(StoreError::backend(context, e));
                }
            }
        }
        let open = || -> Result<Connection, StoreError> {
            let c = Connection::open(path)
                .map_err(|e| StoreError::backend(format!("cannot open {}", path.display()), e))?;
            // WAL: readers never block the writer; FULL: a commit is on disk
            // before the accept is answered.
            c.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
            )
            .map_err(failed("cannot configure a connection"))?;
            Ok(c)
        };
        let mut writer = open()?;
        // Every event touches eight B-trees. The writer's page cache holds
        // their hot pages (16 MiB, not SQLite's 2 MiB, which made commits
        // read pages back from the OS), and a checkpoint runs every 8,000
        // WAL pages, not 1,000: it ran inside the commit of an accept and
        // took a fifth of the writer's time, copying the same hot index
        // pages again each time (BENCHMARKS.md, "Accepts while they run").
        writer
            .execute_batch("PRAGMA cache_size=-16384; PRAGMA wal_autocheckpoint=8000;")
            .map_err(failed("cannot configure the writer"))?;
        schema::migrate(&mut writer)?;
        let last_seq = writer
            .query_row(
                "SELECT MAX(value, (SELECT COALESCE(MAX(rowid), 0) FROM events))
                 FROM store_meta WHERE key = 'last_seq'",
                [],
                |r| r.get(0),
            )
            .map_err(failed("cannot read the last sequence number"))?;
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
                return f(&conn).map_err(failed("read failed"));
            }
        }
        let conn = self.readers[0]
            .lock()
            .map_err(|_| StoreError::Poisoned("a reader"))?;
        f(&conn).map_err(failed("read failed"))
    }
}

impl EventStore for SqliteStore {
    fn apply(&self, batch: &[WriteOp]) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| StoreError::Poisoned("the writer"))?;
        let Writer { conn, last_seq } = &mut *writer;
        let tx = conn.transaction().map_err(failed("write failed"))?;
        let mut out = Vec::with_capacity(batch.len());
        let mut counts = CountDeltas::default();
        let mut seq = *last_seq;
        for op in batch {
            out.push(apply_one(&tx, op, &mut counts, &mut seq).map_err(failed("write failed"))?);
        }
        counts
            .write(&tx)
            .map_err(failed("cannot update the event counts"))?;
        if seq != *last_seq {
            tx.execute(
                "UPDATE store_meta SET value = ?1 WHERE key = 'last_seq'",
                params![seq],
            )
            .map_err(failed("cannot record the last sequence number"))?;
        }
        tx.commit().map_err(failed("commit failed"))?;
        // Only once committed: a failed batch gives its numbers out again.
        *last_seq = seq;
        Ok(out)
    }

    fn get(&self, request_id: &RequestId) -> Result<Option<EventRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE request_id = ?1"
            ))?
            .query_row(params![request_id], record)
            .optional()
        })
    }

    fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let mut w = Where::default();
        for c in q.conditions() {
            match c.operand {
                Operand::Text(v) => {
                    w.with(&format!("{} {} ?", c.column, c.op), Box::new(v.to_string()))
                }
                Operand::Int(v) => w.with(&format!("{} {} ?", c.column, c.op), Box::new(v)),
                Operand::AnyText(vs) => w.any_of(
                    c.column,
                    vs.into_iter().map(|v| Box::new(v.to_string()) as _),
                ),
            }
        }
        // The implicit rowid grows with every insert, and each index on
        // `events` already ends with it, so the tie-break costs no sort.
        let filter = w.clause();
        // The count takes the filters' values, which come first.
        let filter_args = w.args.len();
        if let Some((condition, values)) = q.after_condition("rowid") {
            w.with_all(&condition, values.into_iter().map(|v| Box::new(v) as _));
        }
        let page_filter = w.clause();
        let args = w.args;
        let order = q.order_by("rowid");
        let count_sql = if q.counts_by_columns() {
            format!("SELECT COALESCE(SUM(n), 0) FROM event_counts {filter}")
        } else {
            format!("SELECT COUNT(*) FROM events {filter}")
        };
        let page_sql = format!(
            "SELECT {COLUMNS}, rowid FROM events {page_filter} ORDER BY {order} LIMIT {} OFFSET {}",
            q.limit, q.offset
        );
        self.read(|c| {
            let total: i64 = c
                .prepare_cached(&count_sql)?
                .query_row(params_from_iter(args[..filter_args].iter()), |r| r.get(0))?;
            let rows = if q.limit == 0 {
                Vec::new()
            } else {
                // The rowid follows the record's columns.
                let columns = COLUMNS.split(", ").count();
                c.prepare_cached(&page_sql)?
                    .query_map(params_from_iter(args.iter()), |r| {
                        Ok((record(r)?, r.get::<_, i64>(columns)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let last = rows.last().map(|(e, rowid)| q.key_of(e, *rowid));
            Ok(ListPage {
                total: total as u64,
                events: rows.into_iter().map(|(e, _)| e).collect(),
                last,
            })
        })
    }

    fn logs(&self, request_id: &RequestId) -> Result<Vec<EventLogLine>, StoreError> {
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
                Ok((r.get::<_, i64>(COLUMNS.split(", ").count())?, record(r)?))
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

    fn timer_status(
        &self,
        function: &str,
    ) -> Result<Option<crate::events::TimerStatus>, StoreError> {
        let function = function.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT last_ms, next_ms, updated_ms FROM timer_status WHERE function = ?1",
            )?
            .query_row(params![function], |r| {
                Ok(crate::events::TimerStatus {
                    last_ms: r.get(0)?,
                    next_ms: r.get(1)?,
                    updated_ms: r.get(2)?,
                })
            })
            .optional()
        })
    }
}

/// A `WHERE` clause under construction; each condition numbers its own
/// placeholders, in the order of `args`.
#[derive(Default)]
struct Where {
    conditions: Vec<String>,
    args: Vec<Box<dyn ToSql>>,
}

impl Where {
    /// `condition` with its one `?` bound to `value`.
    fn with(&mut self, condition: &str, value: Box<dyn ToSql>) {
        self.with_all(condition, std::iter::once(value));
    }

    /// `condition` with its `?`s bound to `values`, in order.
    fn with_all(&mut self, condition: &str, values: impl Iterator<Item = Box<dyn ToSql>>) {
        let mut parts = condition.split('?');
        let mut marked = parts.next().unwrap_or_default().to_string();
        for (part, v) in parts.zip(values) {
            self.args.push(v);
            marked.push_str(&format!("?{}{part}", self.args.len()));
        }
        self.conditions.push(marked);
    }

    /// `column IN (...)` over `values`; no condition when there are none.
    fn any_of(&mut self, column: &str, values: impl Iterator<Item = Box<dyn ToSql>>) {
        let mut marks = Vec::new();
        for v in values {
            self.args.push(v);
            marks.push(format!("?{}", self.args.len()));
        }
        if !marks.is_empty() {
            self.conditions
                .push(format!("{column} IN ({})", marks.join(", ")));
        }
    }

    /// `WHERE ...`, or nothing without conditions.
    fn clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// A request id is its text in the store.
impl ToSql for RequestId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.as_str().to_sql()
    }
}

impl rusqlite::types::FromSql for RequestId {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(v).map(Self::from)
    }
}
