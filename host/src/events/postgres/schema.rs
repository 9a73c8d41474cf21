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
pub const MIGRATIONS: &[&str] = &[
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
    // 4: live events stay in `fnhost_events`; ended ones move to
    // `fnhost_ended`, partitioned by end time, and log lines are
    // partitioned by line time, so retention drops whole partitions (see
    // `partitions.rs`). Idempotency keys get their own table, unique
    // across both. Rows already there go to the default partitions.
    "CREATE TABLE fnhost_idempotency (
        function   TEXT NOT NULL,
        idem_key   TEXT NOT NULL,
        request_id TEXT NOT NULL,
        digest     BYTEA NOT NULL,
        PRIMARY KEY (function, idem_key)
    );
    CREATE INDEX fnhost_idempotency_request ON fnhost_idempotency (request_id);
    INSERT INTO fnhost_idempotency (function, idem_key, request_id, digest)
        SELECT function, idem_key, request_id, COALESCE(idem_digest, ''::bytea)
        FROM fnhost_events WHERE idem_key IS NOT NULL;
    CREATE TABLE fnhost_ended (
        seq             BIGINT NOT NULL,
        request_id      TEXT NOT NULL,
        function        TEXT NOT NULL,
        qualifier       TEXT NOT NULL,
        invoke_type     TEXT NOT NULL,
        status          TEXT NOT NULL,
        status_code     BIGINT,
        attempts        BIGINT NOT NULL,
        input           BYTEA NOT NULL,
        result          BYTEA,
        error           TEXT,
        start_ms        BIGINT NOT NULL,
        end_ms          BIGINT NOT NULL,
        next_attempt_ms BIGINT,
        owner_host      TEXT,
        lease_token     BIGINT
    ) PARTITION BY RANGE (end_ms);
    CREATE TABLE fnhost_ended_default PARTITION OF fnhost_ended DEFAULT;
    CREATE INDEX fnhost_ended_request ON fnhost_ended (request_id);
    CREATE INDEX fnhost_ended_start ON fnhost_ended (start_ms, seq);
    CREATE INDEX fnhost_ended_end ON fnhost_ended (end_ms, seq);
    CREATE INDEX fnhost_ended_function_start ON fnhost_ended (function, start_ms, seq);
    CREATE INDEX fnhost_ended_function_end ON fnhost_ended (function, end_ms, seq);
    CREATE INDEX fnhost_ended_status_start ON fnhost_ended (status, start_ms, seq);
    CREATE INDEX fnhost_ended_function_status_start
        ON fnhost_ended (function, status, start_ms, seq);
    INSERT INTO fnhost_ended (seq, request_id, function, qualifier, invoke_type, status,
            status_code, attempts, input, result, error, start_ms, end_ms, next_attempt_ms,
            owner_host, lease_token)
        SELECT seq, request_id, function, qualifier, invoke_type, status, status_code,
            attempts, input, result, error, start_ms, COALESCE(end_ms, start_ms),
            next_attempt_ms, owner_host, lease_token
        FROM fnhost_events WHERE status IN ('FINISHED', 'FAILED', 'ABORTED');
    DELETE FROM fnhost_ready WHERE request_id IN
        (SELECT request_id FROM fnhost_events WHERE status IN ('FINISHED', 'FAILED', 'ABORTED'));
    DELETE FROM fnhost_events WHERE status IN ('FINISHED', 'FAILED', 'ABORTED');
    DROP INDEX fnhost_events_end, fnhost_events_function_end, fnhost_events_idempotency,
        fnhost_events_function_start, fnhost_events_status_start;
    ALTER TABLE fnhost_events DROP COLUMN idem_key, DROP COLUMN idem_digest;
    ALTER TABLE fnhost_event_logs RENAME TO fnhost_event_logs_v3;
    ALTER SEQUENCE fnhost_event_logs_id_seq RENAME TO fnhost_event_logs_v3_id_seq;
    CREATE TABLE fnhost_event_logs (
        id         BIGSERIAL NOT NULL,
        request_id TEXT NOT NULL,
        time_ms    BIGINT NOT NULL,
        line       TEXT NOT NULL
    ) PARTITION BY RANGE (time_ms);
    CREATE TABLE fnhost_event_logs_default PARTITION OF fnhost_event_logs DEFAULT;
    INSERT INTO fnhost_event_logs (id, request_id, time_ms, line)
        SELECT id, request_id, time_ms, line FROM fnhost_event_logs_v3;
    SELECT setval('fnhost_event_logs_id_seq',
        GREATEST((SELECT MAX(id) FROM fnhost_event_logs_v3), 1));
    DROP TABLE fnhost_event_logs_v3;
    CREATE INDEX fnhost_event_logs_request ON fnhost_event_logs (request_id, id);
    -- Every event, live or ended, for operators' own queries.
    CREATE VIEW fnhost_all_events AS
        SELECT seq, request_id, function, qualifier, invoke_type, status, status_code,
            attempts, input, result, error, start_ms, end_ms, next_attempt_ms, owner_host,
            lease_token FROM fnhost_events
        UNION ALL
        SELECT seq, request_id, function, qualifier, invoke_type, status, status_code,
            attempts, input, result, error, start_ms, end_ms, next_attempt_ms, owner_host,
            lease_token FROM fnhost_ended;",
    // 5: timer functions' schedule status (`TimerInfo.ScheduleStatus`),
    // and the lease that lets one host at a time schedule each.
    "CREATE TABLE fnhost_timer_status (
        function   TEXT PRIMARY KEY,
        last_ms    BIGINT NOT NULL,
        next_ms    BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE fnhost_timer_leases (
        function   TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        token      BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );",
    // 6: the trace an event's attempts join (W3C traceparent, tracestate).
    "ALTER TABLE fnhost_events ADD COLUMN trace_parent TEXT, ADD COLUMN trace_state TEXT;
    ALTER TABLE fnhost_ended ADD COLUMN trace_parent TEXT, ADD COLUMN trace_state TEXT;",
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
