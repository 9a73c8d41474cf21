//! Rows read back: the columns selected and the record built from them,
//! and the stored forms of the events' enums.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Row, ToSql};

use crate::events::{EventRecord, EventStatus, InvokeType, StatusCode, INLINE_INPUT_LIMIT};

pub(super) const COLUMNS: &str =
    "request_id, function, qualifier, invoke_type, status, status_code, attempts, input, result, \
                       error, start_ms, end_ms, next_attempt_ms, trace_parent, trace_state";

pub(super) fn record(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
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
        owner_host: None,
        lease_token: None,
        trace_parent: row.get(13)?,
        trace_state: row.get(14)?,
    })
}

/// [`COLUMNS`] with inputs over [`INLINE_INPUT_LIMIT`] left out (read back
/// when the event runs), so loading a backlog does not load its payloads.
pub(super) fn small_input_columns() -> String {
    let inline =
        format!("CASE WHEN length(input) <= {INLINE_INPUT_LIMIT} THEN input ELSE x'' END AS input");
    COLUMNS.replacen("input", &inline, 1)
}

/// Stored as its number.
impl ToSql for StatusCode {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_i64().into())
    }
}

impl FromSql for StatusCode {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let n = i64::column_result(value)?;
        Self::from_i64(n).ok_or(FromSqlError::OutOfRange(n))
    }
}

/// Stored as its name.
impl ToSql for InvokeType {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for InvokeType {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        Self::parse(name)
            .ok_or_else(|| FromSqlError::Other(format!("unknown invoke type \"{name}\"").into()))
    }
}
