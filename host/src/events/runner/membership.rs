//! The runner's side of a shared store: one task that heartbeats, carries
//! out the terminates other hosts recorded for this host, notices when its
//! peers presumed it dead, and runs the rescue pass of dead hosts' events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::state::Cmd;
use super::{policy, Msg};
use crate::events::postgres::{Beat, Cluster, Delivery};
use crate::events::time::now_ms;
use crate::events::{AsyncConfig, StatusCode};

/// The wait before the next poll for ready events: the interval plus up to
/// as much again of jitter, so idle hosts do not poll in step.
pub(super) fn poll_delay(config: &AsyncConfig) -> Duration {
    let base = config.poll_interval;
    let spread = base.as_micros().max(1) as u64;
    let jitter = (uuid::Uuid::new_v4().as_u128() as u64) % spread;
    base + Duration::from_micros(jitter)
}

/// Heartbeats every `hostHeartbeat` until the runner stops.
pub(super) async fn keep(
    cluster: Arc<Cluster>,
    cmds: mpsc::Sender<Msg>,
    config: Arc<AsyncConfig>,
    draining: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(config.host_heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When this host last could not heartbeat. Its peers most likely
    // could not either (the database was down or unreachable), so their
    // heartbeats are as old as its own: it rescues nothing until they have
    // had a dead time to heartbeat again.
    let mut cut_off: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        if cmds.is_closed() {
            return;
        }
        let send = |cmd| cmds.send(Msg::Core(cmd));
        match cluster.heartbeat(draining.load(Ordering::SeqCst)).await {
            Ok(Beat::Alive(deliveries)) => {
                for Delivery::Terminate {
                    request_id,
                    termination,
                } in deliveries
                {
                    let cmd = Cmd::DeliverTerminate {
                        id: request_id,
                        termination: termination.into(),
                    };
                    if send(cmd).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Beat::Lost) => {
                tracing::error!(
                    host = %cluster.id(),
                    "this host was presumed dead by its peers (no heartbeat for {:?}); its async events were taken over, its attempts are cancelled",
                    config.host_dead_after
                );
                if send(Cmd::LeaseLost).await.is_err() {
                    return;
                }
                match cluster.register().await {
                    Ok(()) => tracing::info!(host = %cluster.id(), "registered again"),
                    Err(e) => tracing::error!(
                        "cannot register again ({e}); retrying at the next heartbeat"
                    ),
                }
            }
            Err(e) => {
                tracing::warn!("heartbeat failed ({e})");
                cut_off = Some(tokio::time::Instant::now());
                continue;
            }
        }
        if cut_off.is_some_and(|t| t.elapsed() < config.host_dead_after) {
            continue;
        }
        let decide = |e: &mut _, note: &str| {
            policy::decide_retry(&config, e, StatusCode::UserProcessExit, note, now_ms())
        };
        match cluster.rescue(decide).await {
            Ok(rescued) if !rescued.is_empty() => {
                let failed = rescued
                    .into_iter()
                    .filter(|r| r.failed)
                    .map(|r| r.event)
                    .collect();
                let _ = send(Cmd::FailedElsewhere(failed)).await;
                // Rescued events are ready for whoever has room.
                let _ = send(Cmd::Poll).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("rescue pass failed ({e})"),
        }
    }
}
