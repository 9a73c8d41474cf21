//! A list query in store-neutral terms: the conditions its filters make,
//! whether kept counts can answer its total, and its order. Each store
//! renders them in its own SQL dialect.

use super::{ListQuery, PageKey};

/// What a condition compares its column with.
pub(crate) enum Operand<'a> {
    Text(&'a str),
    /// Any of these (a non-empty list).
    AnyText(Vec<&'a str>),
    Int(i64),
}

/// `column op operand`, `op` being `=`, `>=` or `<` (`=` for `AnyText`).
pub(crate) struct Condition<'a> {
    pub(crate) column: &'static str,
    pub(crate) op: &'static str,
    pub(crate) operand: Operand<'a>,
}

impl ListQuery {
    /// The conditions of the filters, in a fixed order.
    pub(crate) fn conditions(&self) -> Vec<Condition<'_>> {
        let mut out = Vec::new();
        let mut push = |column, op, operand| {
            out.push(Condition {
                column,
                op,
                operand,
            })
        };
        if let Some(f) = &self.function {
            push("function", "=", Operand::Text(f));
        }
        if let Some(v) = &self.qualifier {
            push("qualifier", "=", Operand::Text(v));
        }
        if let Some(v) = &self.request_id {
            push("request_id", "=", Operand::Text(v.as_str()));
        }
        if !self.statuses.is_empty() {
            let names = self.statuses.iter().map(|s| s.as_str()).collect();
            push("status", "=", Operand::AnyText(names));
        }
        if !self.invoke_types.is_empty() {
            let names = self.invoke_types.iter().map(String::as_str).collect();
            push("invoke_type", "=", Operand::AnyText(names));
        }
        for (column, op, bound) in [
            ("start_ms", ">=", self.start_from),
            ("start_ms", "<", self.start_to),
            ("end_ms", ">=", self.end_from),
            ("end_ms", "<", self.end_to),
        ] {
            if let Some(v) = bound {
                push(column, op, Operand::Int(v));
            }
        }
        out
    }

    /// Without time bounds or a request id, every condition is on a column
    /// of the stores' kept counts (same names), which hold the total in a
    /// few rows.
    pub(crate) fn counts_by_columns(&self) -> bool {
        self.request_id.is_none()
            && self.start_from.is_none()
            && self.start_to.is_none()
            && self.end_from.is_none()
            && self.end_to.is_none()
    }

    /// The condition that keeps only events after `after` in the order of
    /// [`Self::order_by`], `?` standing for each of the values in turn.
    /// Events without an end time sort after every event with one.
    pub(crate) fn after_condition(&self, tie: &str) -> Option<(String, Vec<i64>)> {
        let PageKey { value, tie: t } = self.after?;
        let cmp = if self.ascending { ">" } else { "<" };
        Some(match (self.order_by_end, value) {
            (false, value) => (
                format!("(start_ms, {tie}) {cmp} (?, ?)"),
                vec![value.unwrap_or(0), t],
            ),
            (true, Some(v)) => (
                format!("(end_ms IS NULL OR (end_ms, {tie}) {cmp} (?, ?))"),
                vec![v, t],
            ),
            (true, None) => (format!("(end_ms IS NULL AND {tie} {cmp} ?)"), vec![t]),
        })
    }

    /// The key of `e` in this query's order, `tie` being its sequence
    /// number.
    pub(crate) fn key_of(&self, e: &super::EventRecord, tie: i64) -> PageKey {
        let value = if self.order_by_end {
            e.end_ms
        } else {
            Some(e.start_ms)
        };
        PageKey { value, tie }
    }

    /// The `ORDER BY` list. Events without an end time sort last whatever
    /// the direction; ties (same millisecond) follow the order the events
    /// were accepted in, `tie` being the store's acceptance sequence column.
    pub(crate) fn order_by(&self, tie: &str) -> String {
        let dir = if self.ascending { "ASC" } else { "DESC" };
        if self.order_by_end {
            format!("end_ms IS NULL, end_ms {dir}, {tie} {dir}")
        } else {
            format!("start_ms {dir}, {tie} {dir}")
        }
    }
}
