//! The store of scenarios 8. and 9.: a million ended events written
//! through the library, shaped as the runner would have stored them.

use std::path::Path;

use anyhow::Result;
use fnhost::events::{
    EventRecord, EventStatus, EventStore, InvokeType, SqliteStore, StatusCode, WriteOp,
};
use fnhost_proto::rpc::TypedData;
use prost::Message as _;

/// Rows per transaction when populating the store.
const POPULATE_BATCH: usize = 10_000;
/// Functions the populated events are spread over (`f0`..`f9`).
const POPULATE_FUNCTIONS: u64 = 10;
/// Start times of populated events spread over this many ms before now.
pub const POPULATE_SPAN_MS: i64 = 3 * 24 * 3600 * 1000;

/// A small deterministic generator (SplitMix64); the bench needs spread,
/// not quality.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Event `i` of `rows` as the runner would have stored it: ~10 functions,
/// 90% `FINISHED`, 7% `FAILED`, 3% `ABORTED`, start times rising evenly
/// (with up to 1 s of jitter) over the last 3 days as a live store fills,
/// end times a few ms to seconds later, v7 request ids of the start time
/// (as the runner gives them).
fn populated_event(rng: &mut Rng, now_ms: i64, i: usize, rows: usize) -> EventRecord {
    let function = format!("f{}", rng.below(POPULATE_FUNCTIONS));
    let start_ms = now_ms - POPULATE_SPAN_MS
        + (i as i64 * POPULATE_SPAN_MS) / rows as i64
        + rng.below(1_000) as i64;
    let end_ms = start_ms + 1 + rng.below(2_000) as i64;
    let input = TypedData::string(format!(
        "{{\"order\":{},\"item\":\"sample\"}}",
        rng.below(1_000_000)
    ))
    .encode_to_vec();
    let (status, status_code, attempts, result, error) = match rng.below(100) {
        0..=89 => (
            EventStatus::Finished,
            StatusCode::Finished,
            1,
            Some(b"{\"ok\":true}".to_vec()),
            None,
        ),
        90..=96 => (
            EventStatus::Failed,
            StatusCode::FunctionError,
            3,
            None,
            Some("function error: boom (attempts exhausted: 3 of 3)".to_string()),
        ),
        _ => (
            EventStatus::Aborted,
            StatusCode::TerminatedBeforeRun,
            0,
            None,
            Some("terminated by a user before it ran".to_string()),
        ),
    };
    EventRecord {
        // As the runner names them: a v7 UUID of the time it was accepted.
        request_id: uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (start_ms / 1000) as u64,
            (start_ms % 1000) as u32 * 1_000_000,
        ))
        .to_string()
        .into(),
        function,
        qualifier: "$LATEST".into(),
        invoke_type: InvokeType::Api,
        status,
        status_code: Some(status_code),
        attempts,
        input,
        result,
        error,
        start_ms,
        end_ms: Some(end_ms),
        next_attempt_ms: None,
        owner_host: None,
        lease_token: None,
        trace_parent: None,
        trace_state: None,
    }
}

/// Writes `rows` events to `<dir>/events.db` through the library, in
/// transactions of `POPULATE_BATCH`; returns about 10,000 of their ids.
pub fn populate(dir: &Path, rows: usize, now_ms: i64) -> Result<Vec<String>> {
    let store = SqliteStore::open(&dir.join("events.db"))?;
    let mut rng = Rng(0x5eed);
    let keep_every = (rows / 10_000).max(1);
    let mut sample = Vec::with_capacity(rows / keep_every + 1);
    let mut written = 0;
    while written < rows {
        let n = POPULATE_BATCH.min(rows - written);
        let batch: Vec<WriteOp> = (0..n)
            .map(|i| {
                let event = populated_event(&mut rng, now_ms, written + i, rows);
                if (written + i) % keep_every == 0 {
                    sample.push(event.request_id.to_string());
                }
                WriteOp::Insert {
                    event,
                    idempotency: None,
                }
            })
            .collect();
        store.apply(&batch)?;
        written += n;
    }
    Ok(sample)
}

/// Bytes of `events.db` and its WAL.
pub fn store_bytes(dir: &Path) -> u64 {
    ["events.db", "events.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}
