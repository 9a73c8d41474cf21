//! Group commit: one thread drains queued writes into a single transaction,
//! so many concurrent accepts share one fsync and none is answered before
//! its write is on disk.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::ids::RequestId;

use super::pages::{Continuations, Shape};
use super::{
    EventLogLine, EventRecord, EventStore, ListPage, ListQuery, StoreError, WriteOp, WriteOutcome,
};

/// Largest number of writes in one transaction.
const MAX_BATCH: usize = 1024;

struct Pending {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

/// The async face of an [`EventStore`]: batched durable writes, reads on
/// the blocking pool.
#[derive(Clone)]
pub struct EventLog {
    store: Arc<dyn EventStore>,
    writes: mpsc::Sender<Pending>,
    /// Where served list pages ended (see `pages.rs`).
    pages: Arc<Continuations>,
}

impl EventLog {
    /// Starts the writer thread for `store`. It ends when every handle is dropped.
    pub fn start(store: Arc<dyn EventStore>) -> Self {
        let (writes, rx) = mpsc::channel(16 * 1024);
        let s = store.clone();
        std::thread::Builder::new()
            .name("fnhost-event-writer".into())
            .spawn(move || writer(s, rx))
            .expect("spawn the event writer thread");
        Self {
            store,
            writes,
            pages: Arc::default(),
        }
    }

    /// The store is shared by several hosts (see [`EventStore::is_shared`]).
    pub fn is_shared(&self) -> bool {
        self.store.is_shared()
    }

    /// Applies `op` durably (committed before this returns).
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writes
            .send(Pending { op, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn EventStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(StoreError::task("read task failed"))?
    }

    /// One event.
    pub async fn get(&self, request_id: &RequestId) -> Result<Option<EventRecord>, StoreError> {
        let id = request_id.clone();
        self.read(move |s| s.get(&id)).await
    }

    /// A page of events. An offset where this host's last page of the
    /// same query ended reads on from that page's last event instead.
    pub async fn list(&self, mut query: ListQuery) -> Result<ListPage, StoreError> {
        let shape = Shape::of(&query);
        let offset = query.offset;
        let own_key = query.after.is_some();
        self.pages.resume(&shape, &mut query);
        let page = self.read(move |s| s.list(&query)).await?;
        if let (false, Some(last)) = (own_key, page.last) {
            let end = offset.saturating_add(page.events.len() as u64);
            self.pages.remember(shape, end, last);
        }
        Ok(page)
    }

    /// A timer function's schedule status.
    pub async fn timer_status(
        &self,
        function: &str,
    ) -> Result<Option<super::TimerStatus>, StoreError> {
        let function = function.to_string();
        self.read(move |s| s.timer_status(&function)).await
    }

    /// Takes or renews this host's lease on `function`'s schedule (see
    /// [`EventStore::timer_lease`]).
    pub async fn timer_lease(
        &self,
        function: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        let function = function.to_string();
        self.read(move |s| s.timer_lease(&function, ttl)).await
    }

    /// Gives up this host's timer leases.
    pub async fn release_timer_leases(&self) -> Result<(), StoreError> {
        self.read(|s| s.release_timer_leases()).await
    }

    /// An event's log lines.
    pub async fn logs(&self, request_id: &RequestId) -> Result<Vec<EventLogLine>, StoreError> {
        let id = request_id.clone();
        self.read(move |s| s.logs(&id)).await
    }

    /// Up to `limit` retrying events, the earliest due first.
    pub async fn retrying(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.read(move |s| s.retrying(limit)).await
    }

    /// Events an earlier run left running.
    pub async fn interrupted(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|s| s.interrupted()).await
    }

    /// Up to `limit` queued events after sequence number `after`.
    pub async fn queued(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, EventRecord)>, StoreError> {
        self.read(move |s| s.queued(after, limit)).await
    }

    /// Where reading queued events starts after a restart.
    pub async fn queue_start(&self) -> Result<i64, StoreError> {
        self.read(|s| s.queue_start()).await
    }
}

fn writer(store: Arc<dyn EventStore>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<WriteOp>, Vec<_>) =
            batch.drain(..).map(|p| (p.op, p.reply)).unzip();
        let began = std::time::Instant::now();
        let applied = store.apply(&ops);
        crate::metrics::store_commit(began.elapsed());
        match applied {
            Ok(outcomes) => {
                for (reply, o) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(o));
                }
            }
            Err(e @ StoreError::Unavailable { .. }) => {
                // No write of the batch can get through either.
                tracing::error!("event store batch of {} failed: {e}", ops.len());
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                // One bad write must not fail its neighbours: retry each alone.
                tracing::warn!(
                    "event store batch of {} failed ({e}); retrying one by one",
                    ops.len()
                );
                for (op, reply) in ops.iter().zip(replies) {
                    let r = store
                        .apply(std::slice::from_ref(op))
                        .map(|mut v| v.remove(0));
                    if let Err(e) = &r {
                        tracing::error!("event store write failed: {e}");
                    }
                    let _ = reply.send(r);
                }
            }
        }
    }
}
