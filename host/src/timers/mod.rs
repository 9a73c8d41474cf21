//! Timer triggers: each tick of a function's schedule becomes an async
//! event (`invokeType` `timer`) whose idempotency key is the tick's
//! scheduled time, so a tick is accepted once however many hosts schedule
//! it. The schedule status (`TimerInfo.ScheduleStatus`) lives in the event
//! store; after downtime, the missed ticks run once, marked past due.
//! On a shared store one host at a time schedules each timer function: it
//! holds a lease in the store, renewed every `hostHeartbeat` and lost after
//! `hostDeadAfter` unrenewed, when another host takes the schedule over.
//! Schedules read UTC unless the app names a time zone (`zone.rs`).

pub mod schedule;
pub mod zone;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fnhost_proto::rpc::TypedData;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::events::time::{now_ms, rfc3339};
use crate::events::{
    AsyncEvents, EnqueueError, EnqueueRequest, Enqueued, InvokeType, TimerStatus, WriteOp,
};
use schedule::Schedule;
use zone::Zone;

/// How often the scheduler looks for timer functions workers indexed.
const RECONCILE: Duration = Duration::from_secs(1);

/// A function's timer trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTrigger {
    /// When it ticks.
    pub schedule: Schedule,
    /// `runOnStartup`: it also runs once when the host starts.
    pub run_on_startup: bool,
}

/// How long a host's hold on a schedule lasts unrenewed, and how often it
/// renews it: the async settings' `hostDeadAfter` and `hostHeartbeat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeasePlan {
    /// The lease's life.
    pub(crate) ttl: Duration,
    /// Renewed this often.
    pub(crate) renew: Duration,
}

/// One timer function.
struct Timer {
    trigger: TimerTrigger,
    /// This host holds the function's schedule (on a shared store, one host
    /// at a time does), and since when it last renewed that.
    held: bool,
    renewed: Option<Instant>,
    /// The next tick, ms since the epoch, while held; `None` otherwise, or
    /// when the schedule has no further occurrence.
    next_ms: Option<i64>,
    /// `runOnStartup` is spent: it runs at the first hold of this process.
    started: bool,
    /// The schedule status as this host last read or wrote it, while held
    /// (only the holder writes it): the `Last` and `LastUpdated` of the
    /// next tick's `TimerInfo`.
    status: Option<TimerStatus>,
}

/// One tick to accept.
struct Tick {
    /// The scheduled time (the idempotency key).
    scheduled_ms: i64,
    /// Later than scheduled: a tick missed while no host ran it.
    past_due: bool,
    /// Not a scheduled tick: `runOnStartup`.
    startup: bool,
}

/// Starts the scheduler; it runs until `stop` is cancelled, then gives up
/// its leases.
pub(crate) fn spawn(
    events: AsyncEvents,
    catalog: Catalog,
    lease: LeasePlan,
    zone: Zone,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut timers: HashMap<String, Timer> = HashMap::new();
        loop {
            // New timer functions (function.json at start, worker-indexed
            // ones as workers index them).
            for f in catalog.current().iter() {
                if f.disabled || timers.contains_key(&f.name) {
                    continue;
                }
                let Some(trigger) = f.timer() else { continue };
                timers.insert(
                    f.name.clone(),
                    Timer {
                        trigger,
                        held: false,
                        renewed: None,
                        next_ms: None,
                        started: false,
                        status: None,
                    },
                );
            }
            for (name, timer) in timers.iter_mut() {
                hold(&events, name, timer, lease, &zone).await;
            }
            // Ticks that are due.
            let now = now_ms();
            for (name, timer) in timers.iter_mut() {
                let Some(due) = timer.next_ms.filter(|n| *n <= now) else {
                    continue;
                };
                let tick = Tick {
                    scheduled_ms: due,
                    past_due: false,
                    startup: false,
                };
                let next = following(&zone, &timer.trigger.schedule, due, now);
                accept(&events, name, &tick, next, &mut timer.status).await;
                timer.next_ms = next;
            }
            let wake = timers
                .values()
                .filter_map(|t| t.next_ms)
                .min()
                .map_or(RECONCILE, |n| {
                    Duration::from_millis(
                        (n - now_ms()).clamp(0, RECONCILE.as_millis() as i64) as u64
                    )
                });
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wake) => {}
            }
        }
        if let Err(e) = events.log().release_timer_leases().await {
            tracing::warn!(
                "cannot give up the timer leases ({e}); they expire in {:?}",
                lease.ttl
            );
        }
    })
}

/// Takes, renews or loses `timer`'s lease as due. On taking it, the timer
/// starts ([`begin`]); on losing it, it stops ticking here.
async fn hold(events: &AsyncEvents, name: &str, timer: &mut Timer, lease: LeasePlan, zone: &Zone) {
    if timer.renewed.is_some_and(|at| at.elapsed() < lease.renew) {
        return;
    }
    match events.log().timer_lease(name, lease.ttl).await {
        Ok(Some(_)) => {
            timer.renewed = Some(Instant::now());
            if !timer.held {
                timer.held = true;
                let startup = timer.trigger.run_on_startup && !timer.started;
                timer.started = true;
                let (next, status) =
                    begin(events, name, &timer.trigger, zone, startup, now_ms()).await;
                timer.next_ms = next;
                timer.status = status;
            }
        }
        Ok(None) => {
            timer.renewed = Some(Instant::now());
            timer.started = true;
            if timer.held {
                tracing::warn!(function = %name, "another host holds this timer's schedule now; it no longer ticks here");
                timer.held = false;
                timer.next_ms = None;
            }
        }
        Err(e) => {
            tracing::warn!(function = %name, "cannot renew the timer's lease: {e}");
            // Unrenewed past its life, another host may hold it.
            if timer.held && timer.renewed.is_none_or(|at| at.elapsed() >= lease.ttl) {
                tracing::warn!(function = %name, "the timer's lease expired unrenewed; it no longer ticks here");
                timer.held = false;
                timer.next_ms = None;
                timer.renewed = None;
            }
        }
    }
}

/// The tick after `scheduled`; when that is already past (the host was
/// busy or paused past a whole period), the first one after `now`, so
/// ticks are not replayed one by one.
fn following(zone: &Zone, schedule: &Schedule, scheduled: i64, now: i64) -> Option<i64> {
    let next = zone.next_after(schedule, scheduled)?;
    if next > now {
        Some(next)
    } else {
        zone.next_after(schedule, now)
    }
}

/// Sets a timer going on this host, which now holds it: a missed tick
/// (the stored status says one was due while no host ran it) runs once
/// now, past due; otherwise `startup` runs it once (`runOnStartup`). The
/// next tick, and the schedule status now.
async fn begin(
    events: &AsyncEvents,
    name: &str,
    trigger: &TimerTrigger,
    zone: &Zone,
    startup: bool,
    now: i64,
) -> (Option<i64>, Option<TimerStatus>) {
    let mut status = match events.log().timer_status(name).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(function = %name, "cannot read the timer's schedule status ({e}); starting it afresh");
            None
        }
    };
    let next = match (&trigger.schedule, status) {
        // A TimeSpan counts from the last tick.
        (Schedule::Every(d), Some(s)) => Some((s.last_ms + d.as_millis() as i64).max(now + 1)),
        (schedule, _) => zone.next_after(schedule, now),
    };
    if let Some(missed) = status.map(|s| s.next_ms).filter(|n| *n < now) {
        tracing::info!(function = %name, missed = %rfc3339(missed), "a timer tick was missed while no host ran it; running it once, past due");
        let tick = Tick {
            scheduled_ms: missed,
            past_due: true,
            startup: false,
        };
        accept(events, name, &tick, next, &mut status).await;
    } else if startup {
        let tick = Tick {
            scheduled_ms: now,
            past_due: false,
            startup: true,
        };
        accept(events, name, &tick, next, &mut status).await;
    }
    (next, status)
}

/// `TimerInfo`'s time for "never" (.NET's `DateTime.MinValue`).
const NEVER: &str = "0001-01-01T00:00:00Z";

/// Accepts `tick` as an async event, then records it as the last tick in
/// the store and in `status` (the status before it, which its `TimerInfo`
/// shows). The event's idempotency key is the scheduled time, so a tick
/// another host (or this one, before a crash) accepted is not accepted
/// again.
async fn accept(
    events: &AsyncEvents,
    name: &str,
    tick: &Tick,
    next: Option<i64>,
    status: &mut Option<TimerStatus>,
) {
    let now = now_ms();
    let previous = *status;
    let info = json!({
        "Schedule": {"AdjustForDST": true},
        "ScheduleStatus": {
            "Last": previous.map_or(NEVER.to_string(), |s| rfc3339(s.last_ms)),
            // A run at start comes before the schedule's first tick, which
            // it names as Azure's does.
            "Next": rfc3339(if tick.startup { next.unwrap_or(tick.scheduled_ms) } else { tick.scheduled_ms }),
            "LastUpdated": previous.map_or(NEVER.to_string(), |s| rfc3339(s.updated_ms)),
        },
        "IsPastDue": tick.past_due,
    });
    let kind = if tick.startup { "startup" } else { "tick" };
    let key = format!("timer:{kind}:{}", tick.scheduled_ms);
    let req = EnqueueRequest {
        function: name.to_string(),
        qualifier: None,
        invoke_type: InvokeType::Timer,
        input: TypedData::json(info.to_string()),
        idempotency: Some((key, tick.scheduled_ms.to_be_bytes().to_vec())),
        trace: None,
    };
    match events.enqueue(req).await {
        Ok(Enqueued::New(id)) => {
            tracing::info!(function = %name, request = %id, scheduled = %rfc3339(tick.scheduled_ms), past_due = tick.past_due, "timer tick accepted")
        }
        Ok(Enqueued::Existing(id)) => {
            tracing::debug!(function = %name, request = %id, "timer tick already accepted")
        }
        Err(EnqueueError::UnknownFunction(_)) => return,
        Err(e) => {
            // The status is left as it was: the tick counts as missed and
            // runs, past due, when the scheduler next starts.
            tracing::error!(function = %name, scheduled = %rfc3339(tick.scheduled_ms), "timer tick not accepted: {e}");
            return;
        }
    }
    let written = TimerStatus {
        last_ms: tick.scheduled_ms,
        next_ms: next.unwrap_or(i64::MAX),
        updated_ms: now,
    };
    let op = WriteOp::TimerStatus {
        function: name.to_string(),
        status: written,
    };
    match events.log().write(op).await {
        Ok(_) => *status = Some(written),
        Err(e) => {
            tracing::error!(function = %name, "cannot record the timer's schedule status: {e}")
        }
    }
}
