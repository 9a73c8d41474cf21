//! Event counts per function, qualifier, invoke type and status, so that a
//! list's `totalCount` without time bounds is a sum over a few rows rather
//! than a count over every matching event. Several hosts write at once, so
//! a counter row per group would serialise every transaction on it:
//! instead each transaction appends its changes as delta rows, and the host
//! holding the rescue lock folds them together every heartbeat.

use std::collections::HashMap;

use deadpool_postgres::Transaction;

/// Changes gathered over one transaction, keyed by (function, qualifier,
/// invoke type, status).
#[derive(Default)]
pub(super) struct CountDeltas(HashMap<(String, String, String, String), i64>);

impl CountDeltas {
    pub(super) fn add(
        &mut self,
        function: &str,
        qualifier: &str,
        invoke_type: &str,
        status: &str,
        n: i64,
    ) {
        let key = (
            function.to_string(),
            qualifier.to_string(),
            invoke_type.to_string(),
            status.to_string(),
        );
        *self.0.entry(key).or_default() += n;
    }

    /// An event of a group that moved from `from` to `to`.
    pub(super) fn moved(
        &mut self,
        function: &str,
        qualifier: &str,
        invoke_type: &str,
        from: &str,
        to: &str,
    ) {
        if from != to {
            self.add(function, qualifier, invoke_type, from, -1);
            self.add(function, qualifier, invoke_type, to, 1);
        }
    }

    /// Appends the non-zero changes, in one statement.
    pub(super) async fn write(self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        let mut columns: [Vec<String>; 4] = Default::default();
        let mut ns = Vec::new();
        for ((f, q, t, s), n) in self.0 {
            if n == 0 {
                continue;
            }
            for (column, value) in columns.iter_mut().zip([f, q, t, s]) {
                column.push(value);
            }
            ns.push(n);
        }
        if ns.is_empty() {
            return Ok(());
        }
        let [f, q, t, s] = &columns;
        tx.execute(
            "INSERT INTO fnhost_event_counts (function, qualifier, invoke_type, status, n)
             SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[])",
            &[f, q, t, s, &ns],
        )
        .await?;
        Ok(())
    }
}

/// Folds the delta rows into one row per group (run by one host at a
/// time). Rows appended meanwhile by other transactions are not in this
/// one's snapshot and stay as they are.
pub(super) async fn compact(tx: &Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "WITH d AS (DELETE FROM fnhost_event_counts RETURNING *)
         INSERT INTO fnhost_event_counts (function, qualifier, invoke_type, status, n)
         SELECT function, qualifier, invoke_type, status, SUM(n) FROM d
         GROUP BY function, qualifier, invoke_type, status HAVING SUM(n) <> 0",
        &[],
    )
    .await
}
