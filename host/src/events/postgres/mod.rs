//! The shared event store: PostgreSQL, for several hosts that run one
//! app's asynchronous invocations together. Every host is an equal peer:
//! it accepts events into the database, claims ready ones from a small hot
//! table (`FOR UPDATE SKIP LOCKED`), runs them under a lease token that
//! fences every later write about the attempt, heartbeats, and rescues the
//! events of hosts that stopped heartbeating (`cluster.rs`).
//!
//! The [`EventStore`] trait is synchronous (the batching writer calls it
//! from its own thread, reads run on the blocking pool), so each call here
//! runs its queries on the runtime and blocks its caller until they end.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{NoTls, Row};

use super::query::Operand;
use super::{
    EventLogLine, EventRecord, EventStatus, EventStore, InvokeType, ListPage, ListQuery,
    StatusCode, StoreError, TimerStatus, WriteOp, WriteOutcome, INLINE_INPUT_LIMIT,
};
use crate::ids::RequestId;

mod cluster;
mod counts;
mod partitions;
mod schema;
mod writes;

pub use cluster::{Beat, Cluster, ClusterHost, Delivery, RemoteTermination, Rescued};
pub use partitions::Partitioning;
/// The schema versions' SQL, for tests that build an older database.
#[doc(hidden)]
pub use schema::MIGRATIONS;

/// Connections kept by each host.
const POOL_SIZE: usize = 16;

/// How long a call waits for a connection (the database may be down).
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Maps a database error to the store's, saying what the store was doing.
pub(super) fn failed(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::backend(context, DbError(e))
}

/// A database error whose text is the server's message (tokio-postgres
/// prints only "db error" for those), with its detail and hint.
#[derive(Debug)]
pub(super) struct DbError(pub(super) tokio_postgres::Error);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(db) = self.0.as_db_error() else {
            return write!(f, "{}", self.0);
        };
        write!(f, "{} ({})", db.message(), db.code().code())?;
        if let Some(detail) = db.detail() {
            write!(f, "; {detail}")?;
        }
        if let Some(hint) = db.hint() {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn pool_failed(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable {
        source: std::sync::Arc::new(e),
    }
}

/// How many columns [`COLUMNS`] names.
const RECORD_COLUMNS: usize = 17;

const COLUMNS: &str = "request_id, function, qualifier, invoke_type, status, status_code, \
    attempts, input, result, error, start_ms, end_ms, next_attempt_ms, owner_host, lease_token, \
    trace_parent, trace_state";

/// [`COLUMNS`] with inputs over [`INLINE_INPUT_LIMIT`] left out (read back
/// when the event runs), so loading a backlog does not load its payloads.
fn small_input_columns(table: &str) -> String {
    let inline = format!(
        "CASE WHEN length({table}input) <= {INLINE_INPUT_LIMIT} THEN {table}input ELSE ''::bytea END AS input"
    );
    COLUMNS
        .split(", ")
        .map(|c| {
            if c == "input" {
                inline.clone()
            } else {
                format!("{table}{c}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn record(row: &Row) -> Result<EventRecord, StoreError> {
    record_at(row, 0)
}

/// Stored as text.
impl ToSql for RequestId {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.as_str().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for RequestId {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        String::from_sql(ty, raw).map(Self::from)
    }

    fn accepts(ty: &Type) -> bool {
        <String as FromSql>::accepts(ty)
    }
}

/// PostgreSQL-backed [`EventStore`], shared by every host on the database.
pub struct PgStore {
    pool: Pool,
    rt: Handle,
    /// This host's id: claims make it the owner.
    host_id: String,
    /// How ended events and log lines are partitioned for retention.
    plan: Partitioning,
}

/// A connection URL that could not be used.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    tokio_postgres::Config::from_str(url).map_err(|e| {
        StoreError::backend(
            "the event store URL is not a valid PostgreSQL connection string",
            e,
        )
    })
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or libpq's
    /// `key=value` form, `host=/socket/dir` included), migrates it, makes
    /// the partitions `plan` calls for, and makes `host_id` the owner of
    /// what this store claims.
    pub async fn connect(url: &str, host_id: &str, plan: Partitioning) -> Result<Self, StoreError> {
        let mut config = parse_url(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_WAIT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(|e| StoreError::backend("cannot create the connection pool", e))?;
        let mut client = pool.get().await.map_err(pool_failed)?;
        schema::migrate(&mut client).await?;
        partitions::prepare(&mut client, plan, super::time::now_ms()).await?;
        drop(client);
        Ok(Self {
            pool,
            rt: Handle::current(),
            host_id: host_id.to_string(),
            plan,
        })
    }

    /// The pool, for the cluster's own queries.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    fn block<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.rt.block_on(f)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_failed)
    }

    async fn records(
        &self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<EventRecord>, StoreError> {
        let c = self.client().await?;
        let rows = c.query(sql, args).await.map_err(failed("read failed"))?;
        rows.iter().map(record).collect()
    }
}

impl EventStore for PgStore {
    fn apply(&self, batch: &[WriteOp]) -> Result<Vec<WriteOutcome>, StoreError> {
        self.block(async {
            let mut c = self.client().await?;
            writes::apply(&mut c, &self.host_id, self.plan, batch).await
        })
    }

    fn get(&self, request_id: &RequestId) -> Result<Option<EventRecord>, StoreError> {
        self.block(async {
            // One statement, one snapshot: an event moving from the live
            // table to the ended one is seen in exactly one of them.
            let sql = format!(
                "SELECT {COLUMNS} FROM fnhost_events WHERE request_id = $1
                 UNION ALL SELECT {COLUMNS} FROM fnhost_ended WHERE request_id = $1"
            );
            Ok(self.records(&sql, &[&request_id]).await?.pop())
        })
    }

    /// A page over the live table and the ended one, each read in the
    /// page's order up to its end and merged; a status filter or an end
    /// time bound leaves out the table that cannot match. Totals come from
    /// the kept counts when the filters allow.
    fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let mut w = Where::default();
        // The ended table's rows end after they start, which lets a start
        // bound skip its older partitions.
        let mut ended_extra = None;
        for c in q.conditions() {
            let condition = format!("{} {} ?", c.column, c.op);
            match c.operand {
                Operand::Text(v) => w.with(&condition, Box::new(v.to_string())),
                Operand::Int(v) => {
                    w.with(&condition, Box::new(v));
                    if (c.column, c.op) == ("start_ms", ">=") {
                        ended_extra = Some(format!("end_ms >= ${}", w.values.len()));
                    }
                }
                Operand::AnyText(vs) => {
                    let vs: Vec<String> = vs.into_iter().map(str::to_string).collect();
                    w.with(&format!("{} = ANY(?)", c.column), Box::new(vs))
                }
            }
        }
        // The filters' values come first: the count takes only those.
        let filter_args = w.values.len();
        let after = q.after_condition("seq").map(|(condition, values)| {
            let values = values.into_iter().map(|v| Box::new(v) as _).collect();
            w.mark(&condition, values)
        });
        let statuses = &q.statuses;
        let live = (statuses.is_empty() || statuses.iter().any(|s| !s.is_final()))
            && q.end_from.is_none()
            && q.end_to.is_none();
        let ended = statuses.is_empty() || statuses.iter().any(|s| s.is_final());
        let ended_bound: Vec<&str> = ended_extra.as_deref().into_iter().collect();
        let key: Vec<&str> = after.as_deref().into_iter().collect();
        let live_filter = w.clause(&key);
        let ended_filter = w.clause(&[ended_bound.as_slice(), &key].concat());
        let live_count = w.clause(&[]);
        let ended_count = w.clause(&ended_bound);
        let order = q.order_by("seq");
        // (table, page filter, count filter)
        let mut branches = Vec::new();
        if live {
            branches.push(("fnhost_events", &live_filter, &live_count));
        }
        if ended {
            branches.push(("fnhost_ended", &ended_filter, &ended_count));
        }
        let count_sql = if q.counts_by_columns() {
            format!("SELECT COALESCE(SUM(n), 0)::BIGINT FROM fnhost_event_counts {live_count}")
        } else if branches.is_empty() {
            "SELECT 0::BIGINT".to_string()
        } else {
            let parts: Vec<String> = branches
                .iter()
                .map(|(t, _, f)| format!("(SELECT COUNT(*) FROM {t} {f})"))
                .collect();
            format!("SELECT {}", parts.join(" + "))
        };
        let page_sql = match branches.as_slice() {
            [] => None,
            [(table, filter, _)] => Some(format!(
                "SELECT {COLUMNS}, seq FROM {table} {filter} ORDER BY {order} LIMIT {} OFFSET {}",
                q.limit, q.offset
            )),
            _ => {
                let depth = q.offset.saturating_add(q.limit);
                let parts: Vec<String> = branches
                    .iter()
                    .map(|(t, f, _)| {
                        format!(
                            "(SELECT {COLUMNS}, seq FROM {t} {f} ORDER BY {order} LIMIT {depth})"
                        )
                    })
                    .collect();
                Some(format!(
                    "SELECT {COLUMNS}, seq FROM ({}) u ORDER BY {order} LIMIT {} OFFSET {}",
                    parts.join(" UNION ALL "),
                    q.limit,
                    q.offset
                ))
            }
        };
        self.block(async {
            let c = self.client().await?;
            let args = w.args();
            let total: i64 = c
                .query_one(&count_sql, &args[..filter_args])
                .await
                .map_err(failed("read failed"))?
                .get(0);
            let rows = match page_sql {
                Some(sql) if q.limit > 0 => {
                    c.query(&sql, &args).await.map_err(failed("read failed"))?
                }
                _ => Vec::new(),
            };
            let events = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
            // The sequence number follows the record's columns.
            let last = rows
                .last()
                .zip(events.last())
                .map(|(row, e)| q.key_of(e, row.get(RECORD_COLUMNS)));
            Ok(ListPage {
                total: total as u64,
                events,
                last,
            })
        })
    }

    fn logs(&self, request_id: &RequestId) -> Result<Vec<EventLogLine>, StoreError> {
        self.block(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT time_ms, line FROM fnhost_event_logs WHERE request_id = $1 ORDER BY id",
                    &[&request_id],
                )
                .await
                .map_err(failed("read failed"))?;
            Ok(rows
                .iter()
                .map(|r| EventLogLine {
                    time_ms: r.get(0),
                    line: r.get(1),
                })
                .collect())
        })
    }

    /// Nothing: a host that stopped while attempts ran is rescued by its
    /// peers (or by itself, once restarted), as any dead host is.
    fn interrupted(&self) -> Result<Vec<EventRecord>, StoreError> {
        Ok(Vec::new())
    }

    /// This host's own `RETRYING` events that did not fit in memory.
    fn retrying(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block(async {
            let sql = format!(
                "SELECT {} FROM fnhost_events WHERE owner_host = $1 AND status = 'RETRYING'
                 ORDER BY next_attempt_ms, seq LIMIT $2",
                small_input_columns("")
            );
            self.records(&sql, &[&self.host_id, &limit]).await
        })
    }

    /// Claims up to `limit` ready events, the ones this host accepted
    /// first, then anyone's, oldest ready first within each: each leaves
    /// the hot table and gets this host as its owner and a fresh lease
    /// token, in one statement, so no two hosts claim one event. `after`
    /// does not apply: claimed events leave the table.
    fn queued(&self, _after: i64, limit: usize) -> Result<Vec<(i64, EventRecord)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let now = super::time::now_ms();
        self.block(async {
            let sql = format!(
                "WITH mine AS (
                     SELECT request_id, ready_at, seq FROM fnhost_ready
                     WHERE accepted_by = $3 AND ready_at <= $1
                     ORDER BY ready_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED),
                 anyone AS (
                     SELECT request_id, ready_at, seq FROM fnhost_ready
                     WHERE ready_at <= $1 AND request_id <> ALL(ARRAY(SELECT request_id FROM mine))
                     ORDER BY ready_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED),
                 -- This host's own accepts first, then anyone's, oldest
                 -- first within each.
                 picked AS (
                     SELECT request_id FROM (
                         SELECT 0 AS rank, * FROM mine
                         UNION ALL SELECT 1 AS rank, * FROM anyone) c
                     ORDER BY rank, ready_at, seq LIMIT $2),
                 -- `= ANY(ARRAY(...))` rather than joins, which the planner
                 -- may turn into scans of the whole table.
                 gone AS (
                     DELETE FROM fnhost_ready
                     WHERE request_id = ANY(ARRAY(SELECT request_id FROM picked))
                     RETURNING request_id)
                 UPDATE fnhost_events e
                 SET owner_host = $3, lease_token = nextval('fnhost_lease_tokens')
                 WHERE e.request_id = ANY(ARRAY(SELECT request_id FROM gone))
                     AND e.status IN ('QUEUED', 'RETRYING')
                 RETURNING e.seq, {}",
                small_input_columns("e.")
            );
            let c = self.client().await?;
            let rows = c
                .query(&sql, &[&now, &limit, &self.host_id])
                .await
                .map_err(failed("cannot claim ready events"))?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in &rows {
                let seq: i64 = row.get(0);
                // The record's columns follow the sequence number.
                let e = record_at(row, 1)?;
                claimed.push((seq, e));
            }
            claimed.sort_by_key(|(seq, e)| (e.next_attempt_ms.unwrap_or(e.start_ms), *seq));
            Ok(claimed)
        })
    }

    fn queue_start(&self) -> Result<i64, StoreError> {
        Ok(0)
    }

    /// Held while this host's row has not expired (database clock); a
    /// renewal keeps the token, a takeover gets a new one.
    fn timer_lease(&self, function: &str, ttl: Duration) -> Result<Option<i64>, StoreError> {
        let ttl = ttl.as_secs_f64();
        self.block(async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "INSERT INTO fnhost_timer_leases (function, owner, token, expires_at)
                     VALUES ($1, $2, nextval('fnhost_lease_tokens'), now() + make_interval(secs => $3))
                     ON CONFLICT (function) DO UPDATE SET
                         owner = excluded.owner,
                         token = CASE WHEN fnhost_timer_leases.owner = excluded.owner
                             THEN fnhost_timer_leases.token ELSE excluded.token END,
                         expires_at = excluded.expires_at
                     WHERE fnhost_timer_leases.owner = excluded.owner
                         OR fnhost_timer_leases.expires_at < now()
                     RETURNING token",
                    &[&function, &self.host_id, &ttl],
                )
                .await
                .map_err(failed("cannot take a timer lease"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn release_timer_leases(&self) -> Result<(), StoreError> {
        self.block(async {
            let c = self.client().await?;
            c.execute(
                "DELETE FROM fnhost_timer_leases WHERE owner = $1",
                &[&self.host_id],
            )
            .await
            .map_err(failed("cannot release the timer leases"))?;
            Ok(())
        })
    }

    fn timer_status(&self, function: &str) -> Result<Option<TimerStatus>, StoreError> {
        self.block(async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "SELECT last_ms, next_ms, updated_ms FROM fnhost_timer_status
                     WHERE function = $1",
                    &[&function],
                )
                .await
                .map_err(failed("read failed"))?;
            Ok(row.map(|r| TimerStatus {
                last_ms: r.get(0),
                next_ms: r.get(1),
                updated_ms: r.get(2),
            }))
        })
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// [`record`] for a row whose record columns start at `offset`.
fn record_at(row: &Row, offset: usize) -> Result<EventRecord, StoreError> {
    let bad = |what: String| StoreError::Corrupt(what);
    let i = |n: usize| n + offset;
    let status: String = row.get(i(4));
    let invoke_type: String = row.get(i(3));
    let code: Option<i64> = row.get(i(5));
    Ok(EventRecord {
        request_id: row.get(i(0)),
        function: row.get(i(1)),
        qualifier: row.get(i(2)),
        invoke_type: InvokeType::parse(&invoke_type)
            .ok_or_else(|| bad(format!("unknown invoke type \"{invoke_type}\"")))?,
        status: EventStatus::parse(&status)
            .ok_or_else(|| bad(format!("unknown status \"{status}\"")))?,
        status_code: match code {
            Some(n) => Some(
                StatusCode::from_i64(n).ok_or_else(|| bad(format!("unknown status code {n}")))?,
            ),
            None => None,
        },
        attempts: row.get(i(6)),
        input: row.get(i(7)),
        result: row.get(i(8)),
        error: row.get(i(9)),
        start_ms: row.get(i(10)),
        end_ms: row.get(i(11)),
        next_attempt_ms: row.get(i(12)),
        owner_host: row.get(i(13)),
        lease_token: row.get(i(14)),
        trace_parent: row.get(i(15)),
        trace_state: row.get(i(16)),
    })
}

/// A `WHERE` clause under construction; each condition numbers its own
/// placeholder, in the order of its argument.
#[derive(Default)]
struct Where {
    conditions: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    /// `condition` with its one `?` bound to `value`.
    fn with(&mut self, condition: &str, value: Box<dyn ToSql + Sync + Send>) {
        let marked = self.mark(condition, vec![value]);
        self.conditions.push(marked);
    }

    /// `condition` with its `?`s numbered for `values`, which are bound
    /// (in order); the condition is the caller's to place.
    fn mark(&mut self, condition: &str, values: Vec<Box<dyn ToSql + Sync + Send>>) -> String {
        let mut parts = condition.split('?');
        let mut out = parts.next().unwrap_or_default().to_string();
        for (part, v) in parts.zip(values) {
            self.values.push(v);
            out.push_str(&format!("${}{part}", self.values.len()));
        }
        out
    }

    fn args(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| &**v as &(dyn ToSql + Sync))
            .collect()
    }

    /// `WHERE ...` with `extra` too, or nothing without conditions.
    fn clause(&self, extra: &[&str]) -> String {
        let all: Vec<&str> = self
            .conditions
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        }
    }
}
