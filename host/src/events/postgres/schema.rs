//! The PostgreSQL schema: its versions, and the migration that brings a
//! database up to the newest. Hosts starting together migrate one at a
//! time (a transaction-scoped advisory lock), and a host refuses a schema
//! newer than it knows.

use deadpool_postgres::Client;

use super::{failed, DbError};
use crate::events::StoreError;

/// Advisory lock key the migration holds (an arbitrary constant, "fnhost"
/// in ASCII), so two hosts starting at once do not both migrate.
const MIGRATION_LOCK: i64 = 0x666e_686f_7374;

/// Schema versions, applied in order; `fnhost_schema.version` records the
/// last.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: hosts, events, the hot table of ready events, log lines, and an
    // index for every list filter.
    "CREATE TABLE fnhost_hosts (
        id           TEXT PRIMARY KEY,
        address      TEXT NOT NULL,
        epoch        BIGINT NOT NULL,
        started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        draining     BOOLEAN NOT NULL DEFAULT false
    );
    CREATE TABLE fnhost_events (
        seq                 BIGSERIAL NOT NULL UNIQUE,
        request_id          TEXT PRIMARY KEY,
        function            TEXT NOT NULL,
        qualifier           TEXT NOT NULL,
        invoke_type         TEXT NOT NULL,
        status              TEXT NOT NULL,
        status_code         BIGINT,
        attempts            BIGINT NOT NULL DEFAULT 0,
        input               BYTEA NOT NULL,
        result              BYTEA,
        error               TEXT,
        start_ms            BIGINT NOT NULL,
        end_ms              BIGINT,
        next_attempt_ms     BIGINT,
        owner_host          TEXT,
        lease_token         BIGINT,
        terminate_requested TEXT,
        idem_key            TEXT,
        idem_digest         BYTEA
    );
    CREATE INDEX fnhost_events_start ON fnhost_events (start_ms, seq);
    CREATE INDEX fnhost_events_end ON fnhost_events (end_ms, seq) WHERE end_ms IS NOT NULL;
    CREATE INDEX fnhost_events_function_start ON fnhost_events (function, start_ms, seq);
    CREATE INDEX fnhost_events_function_end ON fnhost_events (function, end_ms, seq)
        WHERE end_ms IS NOT NULL;
    CREATE INDEX fnhost_events_status_start ON fnhost_events (status, start_ms, seq);
    CREATE INDEX fnhost_events_function_status_start
        ON fnhost_events (function, status, start_ms, seq);
    CREATE UNIQUE INDEX fnhost_events_idempotency ON fnhost_events (function, idem_key)
        WHERE idem_key IS NOT NULL;
    CREATE INDEX fnhost_events_owned ON fnhost_events (owner_host)
        WHERE status IN ('QUEUED', 'RUNNING', 'RETRYING');
    CREATE TABLE fnhost_ready (
        request_id TEXT PRIMARY KEY,
        seq        BIGINT NOT NULL,
        ready_at   BIGINT NOT NULL
    );
    CREATE INDEX fnhost_ready_order ON fnhost_ready (ready_at, seq);
    CREATE TABLE fnhost_event_logs (
        id         BIGSERIAL PRIMARY KEY,
        request_id TEXT NOT NULL,
        time_ms    BIGINT NOT NULL,
        line       TEXT NOT NULL
    );
    CREATE INDEX fnhost_event_logs_request ON fnhost_event_logs (request_id, id);
    CREATE SEQUENCE fnhost_lease_tokens;",
    // 2: event counts per group as appended deltas (see `counts.rs`), for
    // list totals without a count over the events.
    "CREATE TABLE fnhost_event_counts (
        function    TEXT NOT NULL,
        qualifier   TEXT NOT NULL,
        invoke_type TEXT NOT NULL,
        status      TEXT NOT NULL,
        n           BIGINT NOT NULL
    );
    CREATE INDEX fnhost_event_counts_group ON fnhost_event_counts (function, status);
    INSERT INTO fnhost_event_counts (function, qualifier, invoke_type, status, n)
        SELECT function, qualifier, invoke_type, status, COUNT(*) FROM fnhost_events
        GROUP BY function, qualifier, invoke_type, status;",
    // 3: which host accepted a ready event, so that host claims its own
    // first.
    "ALTER TABLE fnhost_ready ADD COLUMN accepted_by TEXT;
    CREATE INDEX fnhost_ready_accepted ON fnhost_ready (accepted_by, ready_at, seq);",
];

pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(failed("cannot begin the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed("cannot take the migration lock"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS fnhost_schema (version INTEGER NOT NULL)")
        .await
        .map_err(failed("cannot create the schema version table"))?;
    let version: i32 = tx
        .query_opt("SELECT version FROM fnhost_schema", &[])
        .await
        .map_err(failed("cannot read the schema version"))?
        .map_or(0, |r| r.get(0));
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let to = i + 1;
        let failed = |e| {
            StoreError::backend(
                format!("migration to schema version {to} failed"),
                DbError(e),
            )
        };
        tx.batch_execute(sql).await.map_err(failed)?;
        tx.execute("DELETE FROM fnhost_schema", &[])
            .await
            .map_err(failed)?;
        tx.execute(
            "INSERT INTO fnhost_schema (version) VALUES ($1)",
            &[&(to as i32)],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit()
        .await
        .map_err(failed("cannot commit the migration"))
}
