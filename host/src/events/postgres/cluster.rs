//! The hosts sharing one database: registration and heartbeats, the rescue
//! of dead hosts' events, and terminates routed to the host that runs the
//! event.
//!
//! - A host is alive while its row's `heartbeat_at` is younger than the
//!   dead time (database clock, so hosts' clocks do not matter).
//! - A heartbeat that finds its row gone or its epoch changed means peers
//!   presumed this host dead and rescued its events: it drops what it
//!   holds, cancels its attempts (their late writes are fenced off by the
//!   lease token anyway), and registers again under a new epoch.
//! - One host at a time (a transaction-scoped advisory lock) rescues: the
//!   dead hosts' running events are charged an attempt and retried, failed
//!   or aborted; their claimed but unstarted events go back to the ready
//!   table.
//! - A terminate of an event another host runs is recorded on its row and
//!   announced with `pg_notify` on one control channel; the owner's
//!   heartbeat also reads recorded terminates, so a lost notification
//!   delays a terminate by at most one heartbeat.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls};

use super::counts::{compact, CountDeltas};
use super::{failed, pool_failed, record_at, writes, COLUMNS};
use crate::events::time::now_ms;
use crate::events::{EventRecord, EventStatus, StatusCode, StoreError};
use crate::ids::RequestId;

/// Advisory lock key of the rescue pass ("rescue" in ASCII).
const RESCUE_LOCK: i64 = 0x7265_7363_7565;

/// The control channel terminates are announced on.
const CHANNEL: &str = "fnhost_control";

/// Events one rescue pass takes over at most (the next pass goes on).
const RESCUE_BATCH: i64 = 1000;

/// How a terminate recorded for another host is to be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoteTermination {
    /// Cancel, escalated to a kill after the grace.
    Graceful,
    /// Kill at once.
    Forced,
}

impl RemoteTermination {
    fn as_str(self) -> &'static str {
        match self {
            Self::Graceful => "graceful",
            Self::Forced => "forced",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "graceful" => Some(Self::Graceful),
            "forced" => Some(Self::Forced),
            _ => None,
        }
    }
}

/// What the cluster tells this host's runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Terminate an event this host runs.
    Terminate {
        /// The event.
        request_id: RequestId,
        /// How.
        termination: RemoteTermination,
    },
}

/// A heartbeat's answer.
#[derive(Debug)]
pub enum Beat {
    /// Still registered; terminates recorded for this host's events.
    Alive(Vec<Delivery>),
    /// Presumed dead by the peers: the row is gone or has a new epoch.
    Lost,
}

/// A host as the hosts table shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHost {
    /// The host's id (the `ownerHost` of the events it runs).
    pub id: String,
    /// Its admin API address.
    pub address: String,
    /// Registrations under this id so far.
    pub epoch: i64,
    /// Its last heartbeat, ms since the Unix epoch (database clock).
    pub heartbeat_ms: i64,
    /// Seconds since that heartbeat.
    pub heartbeat_age_seconds: f64,
    /// It stopped starting attempts (a drain or a shutdown).
    pub draining: bool,
    /// Older than the dead time: its events are rescued.
    pub dead: bool,
}

/// An event rescued from a dead host: its record after the rescue, and
/// whether it failed for good (for the `onFailure` function).
pub struct Rescued {
    /// The event as rescued.
    pub event: EventRecord,
    /// It failed for good.
    pub failed: bool,
}

/// This host's membership of the cluster.
pub struct Cluster {
    pool: Pool,
    url: String,
    id: String,
    address: String,
    epoch: AtomicI64,
    dead_after: Duration,
}

impl Cluster {
    /// Registers the host `id`, reachable at `address`, in the hosts table
    /// (a new epoch if the id was registered before).
    pub async fn join(
        pool: Pool,
        url: &str,
        id: &str,
        address: &str,
        dead_after: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let cluster = Self {
            pool,
            url: url.to_string(),
            id: id.to_string(),
            address: address.to_string(),
            epoch: AtomicI64::new(0),
            dead_after,
        };
        cluster.register().await?;
        Ok(Arc::new(cluster))
    }

    /// This host's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_failed)
    }

    /// (Re-)registers this host; a row left under its id gets a new epoch.
    pub async fn register(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "INSERT INTO fnhost_hosts (id, address, epoch) VALUES ($1, $2, 1)
                 ON CONFLICT (id) DO UPDATE SET epoch = fnhost_hosts.epoch + 1,
                     address = excluded.address, heartbeat_at = now(), draining = false
                 RETURNING epoch",
                &[&self.id, &self.address],
            )
            .await
            .map_err(failed("cannot register this host"))?;
        self.epoch.store(row.get(0), Ordering::SeqCst);
        Ok(())
    }

    /// Heartbeats, and reads the terminates recorded for this host's
    /// running events.
    pub async fn heartbeat(&self, draining: bool) -> Result<Beat, StoreError> {
        let c = self.client().await?;
        let epoch = self.epoch.load(Ordering::SeqCst);
        let n = c
            .execute(
                "UPDATE fnhost_hosts SET heartbeat_at = now(), draining = $3
                 WHERE id = $1 AND epoch = $2",
                &[&self.id, &epoch, &draining],
            )
            .await
            .map_err(failed("cannot heartbeat"))?;
        if n == 0 {
            return Ok(Beat::Lost);
        }
        let rows = c
            .query(
                "SELECT request_id, terminate_requested FROM fnhost_events
                 WHERE owner_host = $1 AND status = 'RUNNING' AND terminate_requested IS NOT NULL",
                &[&self.id],
            )
            .await
            .map_err(failed("cannot read pending terminates"))?;
        let deliveries = rows
            .iter()
            .filter_map(|r| {
                let mode: String = r.get(1);
                Some(Delivery::Terminate {
                    request_id: r.get::<_, RequestId>(0),
                    termination: RemoteTermination::parse(&mode)?,
                })
            })
            .collect();
        Ok(Beat::Alive(deliveries))
    }

    /// Records a terminate of a running event on its row and tells its
    /// owner. `None` when the event is no longer running (it ended, or
    /// went back to waiting): the caller looks again.
    pub async fn request_terminate(
        &self,
        request_id: &RequestId,
        termination: RemoteTermination,
    ) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        // A forced terminate is never weakened by a later graceful one.
        let row = c
            .query_opt(
                "UPDATE fnhost_events SET terminate_requested =
                     CASE WHEN terminate_requested = 'forced' THEN 'forced' ELSE $2 END
                 WHERE request_id = $1 AND status = 'RUNNING' AND owner_host IS NOT NULL
                 RETURNING owner_host, terminate_requested",
                &[&request_id, &termination.as_str()],
            )
            .await
            .map_err(failed("cannot record a terminate"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (owner, mode): (String, String) = (row.get(0), row.get(1));
        let payload = format!("{owner} {request_id} {mode}");
        if let Err(e) = c
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await
        {
            // The owner's heartbeat reads it from the row.
            tracing::warn!(request = %request_id, "cannot notify the owner of a terminate ({e}); its heartbeat will find it");
        }
        Ok(Some(owner))
    }

    /// Listens on the control channel for terminates of this host's events
    /// until `deliveries` closes, reconnecting after a lost connection.
    pub async fn listen(self: Arc<Self>, deliveries: mpsc::Sender<Delivery>) {
        loop {
            if let Err(e) = self.listen_once(&deliveries).await {
                tracing::warn!("control channel listener stopped ({e}); reconnecting in 1 s");
            }
            if deliveries.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn listen_once(&self, deliveries: &mpsc::Sender<Delivery>) -> Result<(), StoreError> {
        let config = super::parse_url(&self.url)?;
        let (client, mut connection) = config
            .connect(NoTls)
            .await
            .map_err(failed("cannot connect the control channel listener"))?;
        let (tx, mut messages) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = stream.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(failed("cannot listen on the control channel"))?;
        while let Some(payload) = messages.recv().await {
            let mut parts = payload.split(' ');
            let (Some(owner), Some(id), Some(mode)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(termination) = RemoteTermination::parse(mode) else {
                continue;
            };
            if owner != self.id {
                continue;
            }
            let d = Delivery::Terminate {
                request_id: RequestId::from(id),
                termination,
            };
            if deliveries.send(d).await.is_err() {
                break;
            }
        }
        drop(client);
        match driver.await {
            Ok(Err(e)) => Err(StoreError::backend(
                "the control channel connection failed",
                e,
            )),
            _ => Ok(()),
        }
    }

    /// One rescue pass, if no other host is running one: takes over the
    /// unfinished events of hosts that stopped heartbeating (and of ids no
    /// longer registered), and removes the dead hosts. `decide` applies the
    /// retry policy to a running event the dead host lost (it sets the
    /// status and returns the next attempt time, or `None` when it failed
    /// for good).
    pub async fn rescue(
        &self,
        decide: impl Fn(&mut EventRecord, &str) -> Option<i64>,
    ) -> Result<Vec<Rescued>, StoreError> {
        let mut c = self.client().await?;
        let tx = c
            .transaction()
            .await
            .map_err(failed("cannot begin a rescue"))?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RESCUE_LOCK])
            .await
            .map_err(failed("cannot take the rescue lock"))?
            .get(0);
        if !locked {
            return Ok(Vec::new());
        }
        let dead = self.dead_after.as_secs_f64();
        let rows = tx
            .query(
                &format!(
                    "SELECT terminate_requested, {COLUMNS} FROM fnhost_events e
                     WHERE owner_host IS NOT NULL AND status IN ('QUEUED', 'RUNNING', 'RETRYING')
                       AND NOT EXISTS (SELECT 1 FROM fnhost_hosts h WHERE h.id = e.owner_host
                           AND h.heartbeat_at >= now() - make_interval(secs => $1))
                     ORDER BY seq LIMIT $2 FOR UPDATE"
                ),
                &[&dead, &RESCUE_BATCH],
            )
            .await
            .map_err(failed("cannot read dead hosts' events"))?;
        let mut rescued = Vec::new();
        let mut counts = CountDeltas::default();
        for row in &rows {
            let terminate: Option<String> = row.get(0);
            let mut e = record_at(row, 1)?;
            let was = e.status;
            let owner = e.owner_host.clone().unwrap_or_default();
            let now = now_ms();
            let (line, ready_at, failed_for_good) = match e.status {
                EventStatus::Running => {
                    let note = format!(
                        "Host {owner} stopped while attempt {} was running",
                        e.attempts
                    );
                    if terminate.is_some() {
                        e.status = EventStatus::Aborted;
                        e.status_code = Some(StatusCode::UserProcessExit);
                        e.error = Some(format!("terminated by a user: {note}"));
                        e.end_ms = Some(now);
                        e.next_attempt_ms = None;
                        (format!("{note}; terminated as requested"), None, false)
                    } else {
                        match decide(&mut e, &note) {
                            Some(at) => (format!("{note}; retrying"), Some(at), false),
                            None => {
                                let why = e.error.clone().unwrap_or_default();
                                (format!("{note}; {why}"), None, true)
                            }
                        }
                    }
                }
                // Claimed but not started: back in line, unchanged.
                _ => (
                    format!("Host {owner} stopped before the event ran; back in line"),
                    Some(e.next_attempt_ms.unwrap_or(e.start_ms)),
                    false,
                ),
            };
            let code = e.status_code.map(|c| c.as_i64());
            let line = format!("[PLATFORM] {line}");
            if e.status.is_final() {
                // Out of the live table, with its line, as any end is.
                let (times, texts) = (vec![now], vec![line]);
                let args: [&(dyn ToSql + Sync); 12] = [
                    &e.request_id,
                    &e.status.as_str(),
                    &code,
                    &e.attempts,
                    &e.result,
                    &e.error,
                    &e.end_ms,
                    &e.next_attempt_ms,
                    &e.lease_token,
                    &now,
                    &times,
                    &texts,
                ];
                tx.execute(writes::END, &args)
                    .await
                    .map_err(failed("cannot end a rescued event"))?;
            } else {
                tx.execute(
                    "UPDATE fnhost_events SET status = $2, status_code = $3, error = $4,
                         next_attempt_ms = $5, lease_token = NULL, terminate_requested = NULL,
                         owner_host = NULL
                     WHERE request_id = $1",
                    &[
                        &e.request_id,
                        &e.status.as_str(),
                        &code,
                        &e.error,
                        &e.next_attempt_ms,
                    ],
                )
                .await
                .map_err(failed("cannot rescue an event"))?;
                tx.execute(
                    "INSERT INTO fnhost_event_logs (request_id, time_ms, line) VALUES ($1, $2, $3)",
                    &[&e.request_id, &now, &line],
                )
                .await
                .map_err(failed("cannot log a rescue"))?;
            }
            counts.moved(
                &e.function,
                &e.qualifier,
                e.invoke_type.as_str(),
                was.as_str(),
                e.status.as_str(),
            );
            if let Some(at) = ready_at {
                tx.execute(
                    "INSERT INTO fnhost_ready (request_id, seq, ready_at)
                     SELECT request_id, seq, $2 FROM fnhost_events WHERE request_id = $1
                     ON CONFLICT (request_id) DO UPDATE SET ready_at = excluded.ready_at",
                    &[&e.request_id, &at],
                )
                .await
                .map_err(failed("cannot put a rescued event back in line"))?;
            }
            if e.status == EventStatus::Running {
                continue;
            }
            tracing::info!(request = %e.request_id, host = %owner, status = %e.status, "rescued an async event of a dead host");
            rescued.push(Rescued {
                event: e,
                failed: failed_for_good,
            });
        }
        let gone = tx
            .execute(
                "DELETE FROM fnhost_hosts WHERE heartbeat_at < now() - make_interval(secs => $1)",
                &[&dead],
            )
            .await
            .map_err(failed("cannot remove dead hosts"))?;
        if gone > 0 {
            tracing::warn!(hosts = gone, "removed hosts that stopped heartbeating");
        }
        counts
            .write(&tx)
            .await
            .map_err(failed("cannot record the event counts"))?;
        // The lock holder also folds the count deltas together.
        compact(&tx)
            .await
            .map_err(failed("cannot fold the event counts"))?;
        tx.commit()
            .await
            .map_err(failed("cannot commit a rescue"))?;
        Ok(rescued)
    }

    /// At a drain or a shutdown: this host's claimed events that no attempt
    /// runs go back to the ready table for its peers.
    pub async fn release_unstarted(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "WITH r AS (
                     UPDATE fnhost_events SET owner_host = NULL, lease_token = NULL
                     WHERE owner_host = $1 AND status IN ('QUEUED', 'RETRYING')
                     RETURNING request_id, seq, COALESCE(next_attempt_ms, start_ms) AS at)
                 INSERT INTO fnhost_ready (request_id, seq, ready_at)
                 SELECT request_id, seq, at FROM r ON CONFLICT (request_id) DO NOTHING",
                &[&self.id],
            )
            .await
            .map_err(failed("cannot release this host's events"))?;
        Ok(n)
    }

    /// Leaves the cluster at shutdown: unstarted events go back in line,
    /// and the row goes, so peers rescue at once whatever still runs.
    pub async fn leave(&self) -> Result<(), StoreError> {
        self.release_unstarted().await?;
        let c = self.client().await?;
        c.execute("DELETE FROM fnhost_hosts WHERE id = $1", &[&self.id])
            .await
            .map_err(failed("cannot deregister this host"))?;
        Ok(())
    }

    /// The hosts table.
    pub async fn hosts(&self) -> Result<Vec<ClusterHost>, StoreError> {
        let c = self.client().await?;
        let dead = self.dead_after.as_secs_f64();
        let rows = c
            .query(
                "SELECT id, address, epoch,
                     (extract(epoch FROM heartbeat_at) * 1000)::BIGINT,
                     extract(epoch FROM now() - heartbeat_at)::FLOAT8,
                     draining,
                     heartbeat_at < now() - make_interval(secs => $1)
                 FROM fnhost_hosts ORDER BY started_at, id",
                &[&dead],
            )
            .await
            .map_err(failed("cannot read the hosts"))?;
        Ok(rows
            .iter()
            .map(|r| ClusterHost {
                id: r.get(0),
                address: r.get(1),
                epoch: r.get(2),
                heartbeat_ms: r.get(3),
                heartbeat_age_seconds: r.get(4),
                draining: r.get(5),
                dead: r.get(6),
            })
            .collect())
    }
}
