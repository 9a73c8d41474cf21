//! Time partitions of ended events (by end time) and log lines (by line
//! time), so retention drops whole tables instead of deleting rows one by
//! one. Live events stay in the small `fnhost_events` table and move into
//! `fnhost_ended` when they end (see `writes.rs`); nothing writes an ended
//! event again, so its partition is written once and read until dropped.
//!
//! Partitions are made ahead of need by the one host holding the prune
//! lock (and by each host as it connects). A row whose partition does not
//! exist (a clock far off, or rows migrated from schema 3) lands in the
//! table's default partition: it moves into its partition when that is
//! made, and the prune clears what is left row by row.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};

use super::failed;
use crate::events::StoreError;

/// One day, in ms: the widest partition.
const DAY_MS: i64 = 86_400_000;

/// The narrowest partition (a test's retention of seconds).
const MIN_WIDTH_MS: i64 = 1_000;

/// Advisory lock key of the prune and of partition upkeep ("prune" in
/// ASCII).
pub(super) const PRUNE_LOCK: i64 = 0x70_7275_6e65;

/// How long the prune waits for a table lock (dropping or making a
/// partition locks its parent briefly) before it gives up until the next
/// round, so a long read never holds every writer up behind it.
const LOCK_TIMEOUT: &str = "2s";

/// The partitioned tables and the column each is partitioned by.
const TABLES: [(&str, &str); 2] = [("fnhost_ended", "end_ms"), ("fnhost_event_logs", "time_ms")];

/// Most partitions made in one pass (a clock jumping far ahead must not
/// make thousands).
const MAX_NEW: usize = 64;

/// How wide partitions are and how far ahead they are made, from the
/// retention window and the prune interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partitioning {
    width_ms: i64,
    ahead_ms: i64,
    /// How far back the first partitions reach: the retention window.
    back_ms: i64,
}

impl Partitioning {
    /// A third of the retention, between a second and a day: with 72 h,
    /// daily partitions, an ended event kept 72 to 96 h. Made two prune
    /// intervals (and at least two partitions) ahead.
    pub fn for_retention(retention: Duration, prune_every: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let width_ms = (ms(retention) / 3).clamp(MIN_WIDTH_MS, DAY_MS);
        let ahead_ms = ms(prune_every).saturating_mul(2).max(2 * width_ms);
        Self {
            width_ms,
            ahead_ms,
            back_ms: ms(retention),
        }
    }

    /// Slack for hosts' clocks when judging which log lines a kept event
    /// may own.
    fn clock_margin_ms(&self) -> i64 {
        self.width_ms.min(3_600_000)
    }
}

/// One partition: `table_p{from}_{to}`, bounds in ms since the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    name: String,
    from: i64,
    to: i64,
}

fn part_name(table: &str, from: i64, to: i64) -> String {
    format!("{table}_p{from}_{to}")
}

fn parse_part(table: &str, name: &str) -> Option<Part> {
    let rest = name.strip_prefix(table)?.strip_prefix("_p")?;
    let (from, to) = rest.split_once('_')?;
    Some(Part {
        name: name.to_string(),
        from: from.parse().ok()?,
        to: to.parse().ok()?,
    })
}

/// The partitions of `table` this module made, oldest first.
async fn parts(c: &impl GenericClient, table: &str) -> Result<Vec<Part>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT c.relname::TEXT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::TEXT::regclass",
            &[&table],
        )
        .await?;
    let mut parts: Vec<Part> = rows
        .iter()
        .filter_map(|r| parse_part(table, &r.get::<_, String>(0)))
        .collect();
    parts.sort_by_key(|p| p.from);
    Ok(parts)
}

/// Makes the partitions from the newest one (or, the first time, from a
/// retention window back) to `ahead` from now; a gap after a long stop is
/// left to the default partition. Rows that already sit in the default
/// partition for a new range (rows migrated from schema 3, or written
/// while the range had no partition) move into it: PostgreSQL refuses a
/// partition whose rows the default one holds.
async fn ensure(tx: &Transaction<'_>, plan: Partitioning, now: i64) -> Result<(), StoreError> {
    let w = plan.width_ms;
    let floor = now.div_euclid(w) * w - w;
    let first = (now - plan.back_ms).div_euclid(w) * w;
    for (table, column) in TABLES {
        let existing = parts(tx, table)
            .await
            .map_err(failed("cannot read the partitions"))?;
        let mut from = existing.last().map_or(first, |p| p.to.max(floor));
        let mut made = 0;
        while from < now + plan.ahead_ms && made < MAX_NEW {
            let to = from.div_euclid(w) * w + w;
            let name = part_name(table, from, to);
            let taken: bool = tx
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {table}_default
                         WHERE {column} >= $1 AND {column} < $2)"
                    ),
                    &[&from, &to],
                )
                .await
                .map_err(failed("cannot read a default partition"))?
                .get(0);
            let sql = if taken {
                format!(
                    "CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS);
                     WITH moved AS (
                         DELETE FROM {table}_default WHERE {column} >= {from} AND {column} < {to}
                         RETURNING *)
                     INSERT INTO {name} SELECT * FROM moved;
                     ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"
                )
            } else {
                format!(
                    "CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})"
                )
            };
            tx.batch_execute(&sql)
                .await
                .map_err(failed("cannot make a partition"))?;
            from = to;
            made += 1;
        }
    }
    Ok(())
}

/// Makes the partitions ahead, waiting for the host that may be doing the
/// same (a host starting up).
pub(super) async fn prepare(
    client: &mut deadpool_postgres::Client,
    plan: Partitioning,
    now: i64,
) -> Result<(), StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(failed("cannot begin partition upkeep"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PRUNE_LOCK])
        .await
        .map_err(failed("cannot take the prune lock"))?;
    ensure(&tx, plan, now).await?;
    tx.commit()
        .await
        .map_err(failed("cannot commit partition upkeep"))
}

/// Drops what retention has passed over, in its own transaction: every
/// partition of ended events whose range ends before `before_ms` (with
/// their counts and idempotency keys), then every partition of log lines
/// that no kept event can own a line in, and the same row by row in the
/// default partitions. Makes the partitions ahead first. The number of
/// events dropped, or `None` when another host holds the prune lock.
pub(super) async fn prune(
    client: &mut deadpool_postgres::Client,
    plan: Partitioning,
    before_ms: i64,
    now: i64,
) -> Result<Option<usize>, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(failed("cannot begin a prune"))?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await
        .map_err(failed("cannot begin a prune"))?;
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
        .await
        .map_err(failed("cannot take the prune lock"))?
        .get(0);
    if !locked {
        return Ok(None);
    }
    ensure(&tx, plan, now).await?;
    let mut pruned = 0i64;
    let ended = parts(&tx, "fnhost_ended")
        .await
        .map_err(failed("cannot read the partitions"))?;
    for part in ended.iter().filter(|p| p.to <= before_ms) {
        let name = &part.name;
        let n: i64 = tx
            .query_one(
                &format!(
                    "WITH counted AS (
                         INSERT INTO fnhost_event_counts (function, qualifier, invoke_type, status, n)
                         SELECT function, qualifier, invoke_type, status, -COUNT(*) FROM {name}
                         GROUP BY function, qualifier, invoke_type, status
                         RETURNING n)
                     , keys AS (
                         DELETE FROM fnhost_idempotency k USING {name} e
                         WHERE k.request_id = e.request_id)
                     SELECT COALESCE(-SUM(n), 0)::BIGINT FROM counted"
                ),
                &[],
            )
            .await
            .map_err(failed("cannot count a partition's events out"))?
            .get(0);
        tx.batch_execute(&format!("DROP TABLE {name}"))
            .await
            .map_err(failed("cannot drop a partition"))?;
        pruned += n;
    }
    // Rows that missed their partition, one by one.
    let n: i64 = tx
        .query_one(
            "WITH gone AS (
                 DELETE FROM fnhost_ended_default WHERE end_ms < $1
                 RETURNING request_id, function, qualifier, invoke_type, status)
             , counted AS (
                 INSERT INTO fnhost_event_counts (function, qualifier, invoke_type, status, n)
                 SELECT function, qualifier, invoke_type, status, -COUNT(*)
                 FROM gone GROUP BY function, qualifier, invoke_type, status)
             , keys AS (
                 DELETE FROM fnhost_idempotency WHERE request_id IN (SELECT request_id FROM gone))
             , lines AS (
                 DELETE FROM fnhost_event_logs WHERE request_id IN (SELECT request_id FROM gone))
             SELECT COUNT(*) FROM gone",
            &[&before_ms],
        )
        .await
        .map_err(failed("cannot prune the default partition"))?
        .get(0);
    pruned += n;
    // A line is written after its event started, so no kept event owns a
    // line older than the oldest kept start (less a margin for clocks).
    let oldest: Option<i64> = tx
        .query_one(
            "SELECT LEAST((SELECT MIN(start_ms) FROM fnhost_events),
                          (SELECT MIN(start_ms) FROM fnhost_ended))",
            &[],
        )
        .await
        .map_err(failed("cannot read the oldest kept event"))?
        .get(0);
    let keep_from = oldest.unwrap_or(now).min(now) - plan.clock_margin_ms();
    let lines = parts(&tx, "fnhost_event_logs")
        .await
        .map_err(failed("cannot read the partitions"))?;
    for part in lines.iter().filter(|p| p.to <= keep_from) {
        tx.batch_execute(&format!("DROP TABLE {}", part.name))
            .await
            .map_err(failed("cannot drop a partition"))?;
    }
    tx.execute(
        "DELETE FROM fnhost_event_logs_default WHERE time_ms < $1",
        &[&keep_from],
    )
    .await
    .map_err(failed("cannot prune the default partition"))?;
    tx.commit().await.map_err(failed("cannot commit a prune"))?;
    Ok(Some(pruned as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_width_is_a_third_of_the_retention_between_a_second_and_a_day() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let p = Partitioning::for_retention(h(72), Duration::from_secs(60));
        assert_eq!(p.width_ms, DAY_MS);
        assert_eq!(p.ahead_ms, 2 * DAY_MS);
        let p = Partitioning::for_retention(h(3), Duration::from_secs(3600));
        assert_eq!(p.width_ms, 3_600_000);
        assert_eq!(p.ahead_ms, 7_200_000);
        let p = Partitioning::for_retention(Duration::from_secs(2), Duration::from_millis(500));
        assert_eq!((p.width_ms, p.ahead_ms), (1_000, 2_000));
        assert_eq!(p.clock_margin_ms(), 1_000);
    }

    #[test]
    fn partition_names_carry_their_bounds() {
        let name = part_name("fnhost_ended", 86_400_000, 172_800_000);
        assert_eq!(name, "fnhost_ended_p86400000_172800000");
        let p = parse_part("fnhost_ended", &name).unwrap();
        assert_eq!((p.from, p.to), (86_400_000, 172_800_000));
        assert_eq!(parse_part("fnhost_ended", "fnhost_ended_default"), None);
        assert_eq!(parse_part("fnhost_event_logs", &name), None);
    }
}
