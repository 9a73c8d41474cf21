//! Offset paging, continued by key where it can be. A client walking a
//! list page by page (`offset` 0, 100, 200, ...) would make the store count
//! past every earlier page on every request. Instead the host remembers,
//! for a short while, where each page it served ended; a request for the
//! same query at the offset where an earlier page ended reads on from that
//! page's last event (keyset paging), which costs the same at any depth.
//! Events accepted or ended between two requests then neither repeat nor
//! skip an event across the pages, as they would with a plain offset.
//! Each host keeps its own; a request it has no entry for is served by
//! offset.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ListQuery, PageKey};

/// Entries kept at most.
const CAPACITY: usize = 1024;

/// How long an entry is used after its page was served.
const KEEP: Duration = Duration::from_secs(60);

/// The query without its page: what two requests of one walk share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Shape(String);

impl Shape {
    pub(crate) fn of(q: &ListQuery) -> Self {
        let page = ListQuery {
            offset: 0,
            limit: 0,
            after: None,
            ..q.clone()
        };
        Self(format!("{page:?}"))
    }
}

/// Where served pages ended: (query, offset) to the key to read on from.
#[derive(Default)]
pub(crate) struct Continuations {
    ends: Mutex<HashMap<(Shape, u64), (PageKey, Instant)>>,
}

impl Continuations {
    /// Turns `q`'s offset into a key when a page of the same query ended
    /// there; true if it did.
    pub(crate) fn resume(&self, shape: &Shape, q: &mut ListQuery) -> bool {
        if q.after.is_some() || q.offset == 0 {
            return false;
        }
        let ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        match ends.get(&(shape.clone(), q.offset)) {
            Some((key, at)) if at.elapsed() < KEEP => {
                q.after = Some(*key);
                q.offset = 0;
                true
            }
            _ => false,
        }
    }

    /// Records that a page of `shape` ended at `offset` with `key`.
    pub(crate) fn remember(&self, shape: Shape, offset: u64, key: PageKey) {
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        if ends.len() >= CAPACITY {
            ends.retain(|_, (_, at)| at.elapsed() < KEEP);
        }
        if ends.len() >= CAPACITY {
            // Still full of live walks: the oldest entry goes.
            let oldest = ends
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                ends.remove(&k);
            }
        }
        ends.insert((shape, offset), (key, Instant::now()));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ends.lock().unwrap().len()
    }
}

/// A page key as the API hands it out (`nextCursor`) and takes it back
/// (`cursor`): opaque to clients, it names the order it belongs to, so a
/// cursor used with another order is refused rather than misread.
pub fn cursor_text(q: &ListQuery, key: PageKey) -> String {
    let value = key.value.map_or("-".to_string(), |v| v.to_string());
    format!("{}.{value}.{}", order_tag(q), key.tie)
}

/// The key of a cursor made by [`cursor_text`] for a query in `q`'s order;
/// the error says what is wrong with it.
pub fn parse_cursor(q: &ListQuery, text: &str) -> Result<PageKey, String> {
    let bad = || format!("\"{text}\" is not a cursor this host made");
    let mut parts = text.split('.');
    let (Some(tag), Some(value), Some(tie), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !["sa", "sd", "ea", "ed"].contains(&tag) {
        return Err(bad());
    }
    if tag != order_tag(q) {
        return Err(format!(
            "\"{text}\" was made for another order than this request's `order` and `orderBy`"
        ));
    }
    let value = match value {
        "-" if q.order_by_end => None,
        v => Some(v.parse().map_err(|_| bad())?),
    };
    Ok(PageKey {
        value,
        tie: tie.parse().map_err(|_| bad())?,
    })
}

fn order_tag(q: &ListQuery) -> &'static str {
    match (q.order_by_end, q.ascending) {
        (false, true) => "sa",
        (false, false) => "sd",
        (true, true) => "ea",
        (true, false) => "ed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tie: i64) -> PageKey {
        PageKey {
            value: Some(tie),
            tie,
        }
    }

    #[test]
    fn a_request_at_the_end_of_a_served_page_reads_on_from_its_key() {
        let c = Continuations::default();
        let q = ListQuery {
            function: Some("f".into()),
            limit: 10,
            ..ListQuery::default()
        };
        let shape = Shape::of(&q);
        c.remember(shape.clone(), 10, key(7));
        let mut next = ListQuery {
            offset: 10,
            ..q.clone()
        };
        assert!(c.resume(&shape, &mut next));
        assert_eq!((next.offset, next.after), (0, Some(key(7))));
        // Another offset, another query, or a caller's own key: by offset.
        let mut other = ListQuery {
            offset: 20,
            ..q.clone()
        };
        assert!(!c.resume(&shape, &mut other));
        let g = ListQuery {
            function: Some("g".into()),
            offset: 10,
            ..q.clone()
        };
        let mut g2 = g.clone();
        assert!(!c.resume(&Shape::of(&g), &mut g2));
        let mut own = ListQuery {
            offset: 10,
            after: Some(key(1)),
            ..q.clone()
        };
        assert!(!c.resume(&shape, &mut own));
        assert_eq!((own.offset, own.after), (10, Some(key(1))));
        // The page size is not part of the query's shape.
        assert_eq!(Shape::of(&ListQuery { limit: 50, ..q }), shape);
    }

    #[test]
    fn a_cursor_names_its_order_and_reads_back_as_its_key() {
        let by_end = ListQuery {
            order_by_end: true,
            ascending: true,
            ..ListQuery::default()
        };
        let live = PageKey {
            value: None,
            tie: 42,
        };
        let text = cursor_text(&by_end, live);
        assert_eq!(text, "ea.-.42");
        assert_eq!(parse_cursor(&by_end, &text), Ok(live));
        let by_start = ListQuery::default();
        assert_eq!(parse_cursor(&by_start, "sd.1000.7"), Ok(key_at(1000, 7)));
        let err = parse_cursor(&by_start, &text).unwrap_err();
        assert!(err.contains("another order"), "{err}");
        for junk in [
            "", "sd", "sd.1.2.3", "xx.1.2", "sd.-.2", "sd.a.2", "sd.1.b", "sd.1.",
        ] {
            let err = parse_cursor(&by_start, junk).unwrap_err();
            assert!(err.contains("not a cursor"), "{junk}: {err}");
        }
    }

    fn key_at(value: i64, tie: i64) -> PageKey {
        PageKey {
            value: Some(value),
            tie,
        }
    }

    #[test]
    fn the_entries_stay_bounded() {
        let c = Continuations::default();
        let shape = Shape::of(&ListQuery::default());
        for i in 0..(CAPACITY as u64 + 10) {
            c.remember(shape.clone(), i + 1, key(i as i64));
        }
        assert_eq!(c.len(), CAPACITY);
    }
}
