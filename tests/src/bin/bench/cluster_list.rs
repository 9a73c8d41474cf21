//! Scenario 14.: `GET /admin/async-events` over a million ended events in
//! the PostgreSQL store, seeded with `generate_series` through psql once a
//! host has migrated the schema; the same query shapes as scenario 8 on
//! SQLite, with `EXPLAIN ANALYZE` of the host's COUNT and page queries as
//! diagnostics.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use fnhost::events::{EventStatus, InvokeType, StatusCode};
use fnhost_e2e::postgres::Postgres;
use fnhost_proto::rpc::TypedData;
use prost::Message as _;
use tokio::task::block_in_place;

use crate::async_events::{async_host_json, time_list, ListSeries};
use crate::nodes::Nodes;
use crate::populate::POPULATE_SPAN_MS;
use crate::report::Row;
use crate::Params;

const DB: &str = "list";

pub struct Listing {
    rows: usize,
    seed: Duration,
    vacuum: Duration,
    lists: Vec<ListSeries>,
    /// `(what, plan summary)` per diagnostic query.
    explains: Vec<(String, String)>,
}

/// Seeds `p.store_rows` ended events, then times the list queries over
/// HTTP, one at a time, on one host.
pub async fn list_reads(pg: &Postgres, worker: &Path, p: &Params) -> Result<Listing> {
    let url = pg.create_database(DB)?;
    let mut nodes = Nodes::new(worker, async_host_json(256))?;
    // The host migrates the schema as it starts.
    let node = nodes.start(Some(&url)).await?;
    let result = async {
        let now_ms = fnhost::events::time::now_ms();
        let t0 = Instant::now();
        block_in_place(|| pg.psql_in(DB, &seed_sql(p.store_rows, now_ms)))?;
        // Rows written behind the host's back: their counts too, as the
        // host's writes would have appended them.
        block_in_place(|| {
            pg.psql_in(
                DB,
                "INSERT INTO fnhost_event_counts (function, qualifier, invoke_type, status, n)
                 SELECT function, qualifier, invoke_type, status, COUNT(*) FROM fnhost_ended
                 GROUP BY function, qualifier, invoke_type, status",
            )
        })?;
        let seed = t0.elapsed();
        // VACUUM as well as ANALYZE: a million fresh inserts would
        // otherwise trigger autovacuum in the middle of the timed series,
        // and until the visibility map is set the COUNT's index-only scan
        // visits the heap for every row.
        let t0 = Instant::now();
        block_in_place(|| pg.psql_in(DB, "VACUUM (ANALYZE) fnhost_ended"))?;
        let vacuum = t0.elapsed();

        let api = node.api.clone();
        let from = now_ms - POPULATE_SPAN_MS / 2;
        let to = from + 3600 * 1000;
        let base = "function=echo&status=FINISHED";
        let mut lists = Vec::new();
        for query in [
            format!("{base}&limit=100"),
            format!("{base}&startTimeFrom={from}&startTimeTo={to}&order=asc&limit=100"),
            // Diagnostics: the COUNT alone, and a narrower count.
            format!("{base}&limit=0"),
            format!("{base}&startTimeFrom={from}&startTimeTo={to}&limit=0"),
        ] {
            let label = query
                .replace(&from.to_string(), "T")
                .replace(&to.to_string(), "T+1h");
            lists.push(time_list(&api, query, label, p.cluster_list_requests).await);
        }

        // The host's own statements (host/src/events/postgres/mod.rs, list).
        let filter = "WHERE function = 'echo' AND status = ANY('{FINISHED}')";
        let mut explains = Vec::new();
        for (what, sql) in [
            (
                "the host's total (kept counts)",
                format!("SELECT COALESCE(SUM(n), 0)::BIGINT FROM fnhost_event_counts {filter}"),
            ),
            (
                "a COUNT(*) over the events (the total with time bounds)",
                format!("SELECT COUNT(*) FROM fnhost_ended {filter}"),
            ),
            (
                "the host's page of 100",
                format!(
                    "SELECT * FROM fnhost_ended {filter} ORDER BY start_ms DESC, seq DESC LIMIT 100"
                ),
            ),
            // The same page with `status = ` instead of `= ANY(...)`: does the
            // array keep the (function, status, start_ms, seq) index from
            // giving the order?
            (
                "page of 100, were it status = 'FINISHED'",
                "SELECT * FROM fnhost_ended WHERE function = 'echo' AND status = 'FINISHED'
                 ORDER BY start_ms DESC, seq DESC LIMIT 100"
                    .to_string(),
            ),
        ] {
            let plan = block_in_place(|| {
                pg.psql_in(DB, &format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"))
            })?;
            explains.push((what.to_string(), plan_summary(&plan)));
        }
        Ok::<_, anyhow::Error>(Listing {
            rows: p.store_rows,
            seed,
            vacuum,
            lists,
            explains,
        })
    }
    .await;
    node.stop().await;
    result
}

/// One `INSERT ... SELECT FROM generate_series` of `rows` events shaped as
/// scenario 8's (`populate.rs`): 10 functions (`echo`, `f1`..`f9`), 90%
/// FINISHED, 7% FAILED, 3% ABORTED, start times rising over the last 3
/// days with up to 1 s of jitter, ends a few ms to 2 s later.
fn seed_sql(rows: usize, now_ms: i64) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let input = hex(&TypedData::string("{\"order\":1,\"item\":\"sample\"}").encode_to_vec());
    let result = hex(b"{\"ok\":true}");
    let (finished, failed, aborted) = (
        EventStatus::Finished.as_str(),
        EventStatus::Failed.as_str(),
        EventStatus::Aborted.as_str(),
    );
    let (ok_code, error_code, aborted_code) = (
        StatusCode::Finished.as_i64(),
        StatusCode::FunctionError.as_i64(),
        StatusCode::TerminatedBeforeRun.as_i64(),
    );
    let api = InvokeType::Api.as_str();
    let span = POPULATE_SPAN_MS;
    format!(
        "INSERT INTO fnhost_ended (seq, request_id, function, qualifier, invoke_type, status,
             status_code, attempts, input, result, error, start_ms, end_ms)
         SELECT nextval('fnhost_events_seq_seq'), md5('fnhost-bench-' || i)::uuid::text,
             CASE WHEN f = 0 THEN 'echo' ELSE 'f' || f END,
             '$LATEST', '{api}',
             CASE WHEN s < 90 THEN '{finished}' WHEN s < 97 THEN '{failed}' ELSE '{aborted}' END,
             CASE WHEN s < 90 THEN {ok_code} WHEN s < 97 THEN {error_code} ELSE {aborted_code} END,
             CASE WHEN s < 90 THEN 1 WHEN s < 97 THEN 3 ELSE 0 END,
             '\\x{input}'::bytea,
             CASE WHEN s < 90 THEN '\\x{result}'::bytea END,
             CASE WHEN s < 90 THEN NULL
                  WHEN s < 97 THEN 'function error: boom (attempts exhausted: 3 of 3)'
                  ELSE 'terminated by a user before it ran' END,
             st, st + 1 + floor(random() * 2000)::bigint
         FROM (SELECT i,
                   floor(random() * 10)::int AS f,
                   floor(random() * 100)::int AS s,
                   {now_ms}::bigint - {span} + i::bigint * {span} / {rows}
                       + floor(random() * 1000)::bigint AS st
               FROM generate_series(0, {rows} - 1) AS i) g"
    )
}

/// The scan lines, heap fetches and execution time of an `EXPLAIN
/// ANALYZE` output, joined with `; `.
fn plan_summary(plan: &str) -> String {
    plan.lines()
        .map(str::trim)
        .filter(|l| {
            l.contains("Scan") || l.starts_with("Heap Fetches") || l.starts_with("Execution Time")
        })
        .map(|l| l.trim_start_matches("->").trim())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Listing {
    pub fn print(&self) {
        println!(
            "[14] seeded {} events with generate_series in {:.1} s, VACUUM (ANALYZE) {:.1} s",
            self.rows,
            self.seed.as_secs_f64(),
            self.vacuum.as_secs_f64()
        );
        for l in &self.lists {
            println!(
                "[14] GET /admin/async-events?{}: p50 {:?} p99 {:?} max {:?} (totalCount {}, {} rows, {} errors)",
                l.label, l.stats.p50, l.stats.p99, l.stats.max, l.total, l.page_len, l.errors
            );
        }
        for (what, plan) in &self.explains {
            println!("[14] EXPLAIN ANALYZE, {what}: {plan}");
        }
    }

    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![Row {
            scenario: format!(
                "14. seed {} ended events (generate_series, psql)",
                self.rows
            ),
            figure: format!(
                "{:.1} s, then VACUUM (ANALYZE) {:.1} s",
                self.seed.as_secs_f64(),
                self.vacuum.as_secs_f64()
            ),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        }];
        for (i, l) in self.lists.iter().enumerate() {
            let name = format!("14{}. PostgreSQL list", (b'a' + i as u8) as char);
            rows.push(l.row(&name));
        }
        rows
    }
}
