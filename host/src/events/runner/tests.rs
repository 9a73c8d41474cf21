//! The runner's races, each driven on the pure core (`state.rs`) with the
//! time passed in: no tasks, no store, no sleeps. The test plays the shell
//! and the store, answering reads with what a store could hold at that
//! moment.

use std::sync::Arc;
use std::time::Duration;

use super::state::{Cmd, Core, Effect, Next, Termination, TimerId};
use crate::events::{AsyncConfig, EventRecord, EventStatus, InvokeType};
use crate::ids::InvocationId;

/// A terminate's reply, as the test sees it.
type Reply = u32;

const NOW: i64 = 1_000_000_000;

struct Runner {
    core: Core<Reply>,
    now: i64,
    /// Every effect so far, in order.
    log: Vec<Effect<Reply>>,
}

impl Runner {
    /// A core as a host start leaves it, with an empty store: recovery is
    /// done and the first refill and retry load found nothing.
    fn fresh(limit: usize, concurrency: usize) -> Self {
        let mut r = Self::recovered(limit, concurrency);
        r.refilled(&[], true, 0);
        r.send(Cmd::RetriesLoaded {
            events: Vec::new(),
            complete: true,
        });
        assert!(!r.core.stats().backlog_in_store && !r.core.stats().retries_in_store);
        r
    }

    /// A core just after recovery: its first refill and retry load are
    /// under way.
    fn recovered(limit: usize, concurrency: usize) -> Self {
        Self::recovered_with(limit, concurrency, None)
    }

    /// [`Runner::recovered`]; with `shared`, over a store shared with other
    /// hosts, claiming at most that many events ahead.
    fn recovered_with(limit: usize, concurrency: usize, shared: Option<usize>) -> Self {
        let config = AsyncConfig {
            queue_memory_limit: limit,
            max_concurrency: concurrency,
            max_event_age: Duration::from_secs(3600),
            ..AsyncConfig::default()
        };
        let mut n = 0;
        let mut core = Core::new(Arc::new(config), move || {
            n += 1;
            InvocationId::from(format!("invocation-{n}"))
        });
        if let Some(limit) = shared {
            core = core.shared(limit);
        }
        let mut r = Self {
            core,
            now: NOW,
            log: Vec::new(),
        };
        r.send(Cmd::Recovered {
            cursor: 0,
            failed: Vec::new(),
        });
        r
    }

    fn send(&mut self, cmd: Cmd<Reply>) -> Vec<&Effect<Reply>> {
        let from = self.log.len();
        let effects = self.core.handle(cmd, self.now);
        self.log.extend(effects);
        self.log[from..].iter().collect()
    }

    fn accept(&mut self, id: &str, seq: i64) {
        self.send(Cmd::Accepted {
            event: event(id),
            seq,
        });
    }

    /// `id`'s timer fires; the retry load it starts, if any.
    fn fire(&mut self, id: &str) -> Option<usize> {
        let timer = self.timer_of(id);
        let effects = self.send(Cmd::TimerFired {
            id: id.into(),
            timer,
        });
        read_retrying(&effects)
    }

    fn settle(&mut self, id: &str, next: Next) {
        self.send(Cmd::Settled {
            id: id.into(),
            next,
        });
    }

    /// `id`'s attempt ends for good; the refill it starts, if any.
    fn done(&mut self, id: &str) -> Option<(i64, usize, i64)> {
        let effects = self.send(Cmd::Settled {
            id: id.into(),
            next: Next::Done { failed: None },
        });
        read_queued(&effects)
    }

    /// A refill's page of queued `(sequence, id)`; the refill it starts
    /// next, if any.
    fn refilled(
        &mut self,
        page: &[(i64, &str)],
        complete: bool,
        horizon: i64,
    ) -> Option<(i64, usize, i64)> {
        let events = page.iter().map(|(seq, id)| (*seq, event(id))).collect();
        let effects = self.send(Cmd::Refilled {
            events,
            complete,
            horizon,
        });
        read_queued(&effects)
    }

    /// A terminate of an event memory does not hold: the shell looks it up
    /// and finds it queued in the store.
    fn terminate_stored(&mut self, id: &str) {
        let effects = self.send(Cmd::Terminate {
            id: id.into(),
            termination: Termination::Forced,
            reply: 1,
        });
        assert!(
            matches!(effects[..], [Effect::LookUp { .. }]),
            "{effects:?}"
        );
        let effects = self.send(Cmd::TerminateStored {
            event: event(id),
            termination: Termination::Forced,
            reply: 1,
        });
        assert!(
            matches!(effects[..], [Effect::WriteAbort { .. }]),
            "{effects:?}"
        );
    }

    /// How many attempts of `id` have started.
    fn starts(&self, id: &str) -> usize {
        self.log
            .iter()
            .filter(|e| matches!(e, Effect::StartAttempt { event, .. } if event.request_id == id))
            .count()
    }

    fn timer_of(&self, id: &str) -> TimerId {
        self.log
            .iter()
            .rev()
            .find_map(|e| match e {
                Effect::StartTimer { timer, id: i, .. } if i == id => Some(*timer),
                _ => None,
            })
            .expect("a timer")
    }
}

fn event(id: &str) -> EventRecord {
    EventRecord::queued(
        id.into(),
        "f".into(),
        "$LATEST".into(),
        InvokeType::Api,
        Vec::new(),
        NOW,
    )
}

fn retrying(id: &str, due_ms: i64) -> EventRecord {
    EventRecord {
        status: EventStatus::Retrying,
        attempts: 1,
        next_attempt_ms: Some(due_ms),
        ..event(id)
    }
}

fn read_queued(effects: &[&Effect<Reply>]) -> Option<(i64, usize, i64)> {
    effects.iter().find_map(|e| match e {
        Effect::ReadQueued {
            after,
            want,
            horizon,
        } => Some((*after, *want, *horizon)),
        _ => None,
    })
}

fn read_retrying(effects: &[&Effect<Reply>]) -> Option<usize> {
    effects.iter().find_map(|e| match e {
        Effect::ReadRetrying { want } => Some(*want),
        _ => None,
    })
}

/// Memory holds at most two queued events and runs one at a time: A runs,
/// B and C are ready, D (sequence 4) is left in the store.
fn with_a_backlog() -> Runner {
    let mut r = Runner::fresh(2, 1);
    for (seq, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
        r.accept(id, seq as i64 + 1);
    }
    assert_eq!(r.starts("a"), 1);
    assert_eq!(r.core.stats().queued_in_memory, 2);
    assert!(r.core.stats().backlog_in_store);
    r
}

#[test]
fn terminate_before_attempt_start_wins() {
    let mut r = with_a_backlog();
    // D is terminated while only in the store; its abort is being written.
    r.terminate_stored("d");
    // A's end starts B and a refill, which reads D before its abort commits.
    assert_eq!(r.done("a"), Some((0, 1, 4)));
    r.done("b");
    r.refilled(&[(4, "d")], false, 4);
    r.done("c");
    assert_eq!(
        r.starts("d"),
        0,
        "an attempt started before the abort was written"
    );
    r.send(Cmd::AbortWritten {
        id: "d".into(),
        failed: None,
    });
    assert_eq!(r.starts("d"), 0);
    assert_eq!(r.core.stats().queued_in_memory, 0);
}

#[test]
fn a_terminate_while_an_attempt_closes_wins_over_its_retry() {
    let mut r = Runner::fresh(10, 10);
    r.accept("a", 1);
    let effects = r.send(Cmd::Terminate {
        id: "a".into(),
        termination: Termination::Graceful,
        reply: 7,
    });
    assert!(matches!(
        effects[..],
        [Effect::Signal {
            termination: Termination::Graceful,
            reply: 7,
            ..
        }]
    ));
    // Its invocation had just ended: the answer waits for the settle.
    let effects = r.send(Cmd::AnswerAfterSettle {
        id: "a".into(),
        reply: 7,
    });
    assert!(effects.is_empty());
    let effects = r.send(Cmd::Settled {
        id: "a".into(),
        next: Next::Retry(retrying("a", NOW + 1000), NOW + 1000),
    });
    assert!(
        matches!(
            effects[..],
            [Effect::WriteAbort { ref replies, .. }] if replies == &[7]
        ),
        "{effects:?}"
    );
}

#[test]
fn a_hand_over_at_or_below_the_cursor_is_dropped() {
    let mut r = Runner::fresh(4, 1);
    for (seq, id) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
        r.accept(id, seq as i64 + 1);
    }
    // G (sequence 7) is stored, but its hand-over is still on its way.
    r.done("a");
    assert_eq!(r.done("b"), Some((0, 2, 6)));
    // Held events are still QUEUED in the store and come first.
    assert_eq!(r.refilled(&[(4, "d"), (5, "e")], false, 6), Some((5, 2, 6)));
    r.refilled(&[(6, "f"), (7, "g")], false, 6);
    r.done("c");
    assert_eq!(r.done("d"), Some((7, 2, 6)));
    r.refilled(&[], true, 6);
    assert!(!r.core.stats().backlog_in_store);
    for id in ["e", "f", "g"] {
        r.done(id);
    }
    assert_eq!(r.starts("g"), 1);
    // The late hand-over of G, which the refill loaded and which has ended.
    r.accept("g", 7);
    assert_eq!(
        r.starts("g"),
        1,
        "a loaded event ran again from its hand-over"
    );
}

#[test]
fn a_settle_during_a_refill_is_not_reloaded() {
    let mut r = with_a_backlog();
    // A's end starts B and a refill; the read sees B still QUEUED.
    assert_eq!(r.done("a"), Some((0, 1, 4)));
    // B ends before the page arrives.
    r.done("b");
    r.refilled(&[(2, "b")], false, 4);
    r.done("c");
    assert_eq!(r.starts("b"), 1, "a stale copy of an ended event ran again");
}

#[test]
fn no_two_attempts_of_one_event() {
    let mut r = with_a_backlog();
    assert_eq!(r.done("a"), Some((0, 1, 4)));
    // The page holds B, which is running now.
    r.refilled(&[(2, "b")], false, 4);
    assert_eq!(r.core.stats().running, 1);
    r.done("b");
    r.done("c");
    assert_eq!(r.starts("b"), 1, "two attempts of one event");
}

#[test]
fn a_terminated_newest_event_does_not_keep_the_backlog_marked() {
    let mut r = Runner::fresh(1, 1);
    r.accept("a", 1);
    r.accept("b", 2);
    r.accept("c", 3);
    // C, the newest event left in the store, is terminated there.
    r.terminate_stored("c");
    r.send(Cmd::AbortWritten {
        id: "c".into(),
        failed: None,
    });
    assert_eq!(r.done("a"), Some((0, 1, 3)));
    // The store holds no queued event any more.
    assert_eq!(r.refilled(&[], true, 3), None, "refills go on");
    assert!(!r.core.stats().backlog_in_store);
}

/// Answers retry loads from `store` (earliest due first) until none is
/// asked for; returns how many loads ran.
fn answer_retry_loads(r: &mut Runner, mut want: Option<usize>, store: &[EventRecord]) -> usize {
    let mut loads = 0;
    while let Some(n) = want {
        loads += 1;
        if loads > 10 {
            break;
        }
        let page: Vec<_> = store.iter().take(n).cloned().collect();
        let complete = page.len() < n;
        let effects = r.send(Cmd::RetriesLoaded {
            events: page,
            complete,
        });
        want = read_retrying(&effects);
    }
    loads
}

#[test]
fn a_retry_load_never_loops_without_progress() {
    let mut r = Runner::recovered(4, 1);
    r.refilled(&[], true, 0);
    let store: Vec<_> = (1..=6)
        .map(|i| retrying(&format!("r{i}"), NOW + i * 1000))
        .collect();
    let first = read_retrying(&r.log.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(answer_retry_loads(&mut r, Some(first), &store), 1);
    assert_eq!(r.core.stats().waiting, 4);
    // R1 runs and R2 is due while it does; both are still RETRYING in the
    // store and come first in its order.
    r.now = NOW + 2000;
    r.fire("r1");
    let want = r.fire("r2");
    assert!(want.is_some());
    let loads = answer_retry_loads(&mut r, want, &store);
    assert_eq!(loads, 1, "retry loads went on without bringing anything");
    assert_eq!(r.core.stats().waiting, 4, "r5 and r6 are loaded");
}

#[test]
fn a_retry_load_stops_at_the_memory_limit() {
    let mut r = Runner::recovered(2, 1);
    let store: Vec<_> = (1..=5)
        .map(|i| retrying(&format!("r{i}"), NOW + i * 1000))
        .collect();
    let effects = r.send(Cmd::RetriesLoaded {
        events: store.clone(),
        complete: true,
    });
    assert!(read_retrying(&effects).is_none());
    assert_eq!(r.core.stats().waiting, 2);
    assert!(r.core.stats().retries_in_store);
}

#[test]
fn a_stale_retry_copy_never_runs_early() {
    let mut r = Runner::recovered(2, 1);
    r.refilled(&[], true, 0);
    r.send(Cmd::RetriesLoaded {
        events: vec![retrying("e", NOW), retrying("f", NOW + 10_000)],
        complete: false,
    });
    // E is due: it runs, and a load starts that reads it still RETRYING,
    // due now.
    assert_eq!(r.fire("e"), Some(3));
    assert_eq!(r.starts("e"), 1);
    // E fails again before the page arrives: its next retry is in 5 s,
    // recorded in the store only (retries are in the store already).
    r.settle("e", Next::Retry(retrying("e", NOW + 5000), NOW + 5000));
    r.send(Cmd::RetriesLoaded {
        events: vec![
            retrying("e", NOW),
            retrying("f", NOW + 10_000),
            retrying("g", NOW + 20_000),
        ],
        complete: false,
    });
    let timers_of_e = r
        .log
        .iter()
        .filter(|e| matches!(e, Effect::StartTimer { id, .. } if id == "e"))
        .count();
    assert_eq!(timers_of_e, 1, "a stale copy of e was held to run early");
    assert_eq!(r.core.stats().waiting, 2, "f and g wait; e is in the store");
}

#[test]
fn an_expired_event_never_starts() {
    let mut r = Runner::fresh(10, 10);
    let old = EventRecord {
        start_ms: NOW - 3_600_000,
        ..event("old")
    };
    let effects = r.send(Cmd::Accepted { event: old, seq: 1 });
    assert!(
        matches!(effects[..], [Effect::Expire { ref event }] if event.request_id == "old"),
        "{effects:?}"
    );
    assert_eq!(r.starts("old"), 0);
    // An event that grows too old while it waits for its retry.
    r.accept("young", 2);
    assert_eq!(r.starts("young"), 1);
    r.settle(
        "young",
        Next::Retry(retrying("young", NOW + 1000), NOW + 1000),
    );
    r.now = NOW + 3_600_000;
    let effects = r.send(Cmd::TimerFired {
        id: "young".into(),
        timer: r.timer_of("young"),
    });
    assert!(
        matches!(effects[..], [Effect::Expire { .. }]),
        "{effects:?}"
    );
    assert_eq!(r.starts("young"), 1);
}

#[test]
fn a_terminate_of_a_stored_event_that_a_refill_loaded_ends_it_where_it_is() {
    let mut r = with_a_backlog();
    // The terminate looks D up in the store ...
    let effects = r.send(Cmd::Terminate {
        id: "d".into(),
        termination: Termination::Forced,
        reply: 1,
    });
    assert!(matches!(effects[..], [Effect::LookUp { .. }]));
    // ... while a refill loads D and it starts.
    assert_eq!(r.done("a"), Some((0, 1, 4)));
    r.done("b");
    r.refilled(&[(4, "d")], false, 4);
    r.done("c");
    assert_eq!(r.starts("d"), 1);
    let effects = r.send(Cmd::TerminateStored {
        event: event("d"),
        termination: Termination::Forced,
        reply: 1,
    });
    assert!(
        matches!(
            effects[..],
            [Effect::Signal {
                termination: Termination::Forced,
                ..
            }]
        ),
        "a running event must be killed, not written off: {effects:?}"
    );
}

#[test]
fn a_failed_abort_write_holds_the_event_again() {
    let mut r = Runner::fresh(10, 1);
    r.accept("a", 1);
    r.accept("b", 2);
    let effects = r.send(Cmd::Terminate {
        id: "b".into(),
        termination: Termination::Forced,
        reply: 1,
    });
    assert!(matches!(effects[..], [Effect::WriteAbort { .. }]));
    r.send(Cmd::AbortWritten {
        id: "b".into(),
        failed: Some(event("b")),
    });
    assert_eq!(r.core.stats().waiting, 1);
    r.done("a");
    r.now += 1000;
    r.fire("b");
    assert_eq!(r.starts("b"), 1);
}

#[test]
fn a_stale_timer_never_starts_an_event() {
    let mut r = Runner::fresh(10, 1);
    r.accept("a", 1);
    r.settle("a", Next::Retry(retrying("a", NOW + 1000), NOW + 1000));
    let first = r.timer_of("a");
    // Terminated while waiting; the abort write fails, so A waits again,
    // on a new timer.
    r.send(Cmd::Terminate {
        id: "a".into(),
        termination: Termination::Graceful,
        reply: 1,
    });
    assert!(matches!(r.log.last(), Some(Effect::WriteAbort { .. })));
    r.send(Cmd::AbortWritten {
        id: "a".into(),
        failed: Some(retrying("a", NOW + 1000)),
    });
    assert_ne!(r.timer_of("a"), first);
    // The first timer was cancelled, but its fire was already on its way.
    r.now += 1000;
    r.send(Cmd::TimerFired {
        id: "a".into(),
        timer: first,
    });
    assert_eq!(r.starts("a"), 1, "a stale timer started the event early");
}

/// A core over a store shared with other hosts: nothing is handed over at
/// accept; it claims when polled.
fn shared(concurrency: usize) -> Runner {
    let mut r = Runner::recovered_with(
        AsyncConfig::default().queue_memory_limit,
        concurrency,
        Some(concurrency),
    );
    r.refilled(&[], true, 0);
    r.send(Cmd::RetriesLoaded {
        events: Vec::new(),
        complete: true,
    });
    r
}

#[test]
fn a_shared_core_claims_only_what_it_can_start_soon() {
    let mut r = shared(4);
    let effects = r.send(Cmd::Poll);
    assert_eq!(read_queued(&effects).map(|(_, want, _)| want), Some(4));
}

#[test]
fn a_poll_during_a_claim_keeps_the_backlog_marked() {
    let mut r = shared(4);
    assert!(read_queued(&r.send(Cmd::Poll)).is_some());
    // An accept (on this host or a peer) lands while the claim runs; the
    // claim may have missed it.
    assert!(
        read_queued(&r.send(Cmd::Poll)).is_none(),
        "one claim at a time"
    );
    let next = r.refilled(&[], true, 0);
    assert!(
        next.is_some(),
        "the poll that came during the claim was lost: no claim follows"
    );
    // Without a poll meanwhile, a short page ends the backlog.
    assert!(r.refilled(&[], true, 0).is_none());
    assert!(!r.core.stats().backlog_in_store);
}

#[test]
fn a_lost_lease_drops_held_events_and_abandons_running_ones() {
    let mut r = shared(1);
    r.send(Cmd::Poll);
    r.refilled(&[(1, "a"), (2, "b")], true, 0);
    assert_eq!((r.starts("a"), r.core.stats().queued_in_memory), (1, 1));
    let effects = r.send(Cmd::LeaseLost);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Abandon { id, .. } if id == "a")),
        "{effects:?}"
    );
    assert!(
        read_queued(&effects).is_some(),
        "claims start again from the store"
    );
    assert_eq!(r.core.stats().queued_in_memory, 0, "b was dropped");
    // A's attempt settles later; its write was fenced off.
    r.settle("a", Next::Done { failed: None });
    r.refilled(&[], true, 0);
    assert_eq!(r.starts("b"), 0, "a dropped event never starts here");
    assert_eq!(r.core.stats().running, 0);
}

#[test]
fn a_relayed_terminate_is_carried_out_once_and_only_on_a_running_event() {
    let mut r = shared(1);
    r.send(Cmd::Poll);
    r.refilled(&[(1, "a"), (2, "b")], true, 0);
    let relay = |r: &mut Runner, id: &str, termination| {
        let effects = r.send(Cmd::DeliverTerminate {
            id: id.into(),
            termination,
        });
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Relay { .. }))
            .count()
    };
    assert_eq!(relay(&mut r, "a", Termination::Graceful), 1);
    assert_eq!(relay(&mut r, "a", Termination::Graceful), 0, "a repeat");
    assert_eq!(relay(&mut r, "a", Termination::Forced), 1, "escalated");
    assert_eq!(
        relay(&mut r, "a", Termination::Graceful),
        0,
        "never weakened"
    );
    assert_eq!(
        relay(&mut r, "b", Termination::Forced),
        0,
        "not running here"
    );
    assert_eq!(relay(&mut r, "z", Termination::Forced), 0, "unknown here");
}

/// The replies of every `AnswerFromStore` among `effects`, with their ids.
fn answered_from_store<'a>(
    effects: impl IntoIterator<Item = &'a Effect<Reply>>,
) -> Vec<(String, Reply)> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::AnswerFromStore { id, replies } => Some((id, replies)),
            _ => None,
        })
        .flat_map(|(id, replies)| replies.iter().map(move |r| (id.to_string(), *r)))
        .collect()
}

/// The dispatcher says AlreadyCompleted or NotFound when a terminate
/// reaches an invocation that has just ended; the attempt may not have
/// written the event's final record yet. The answer waits for the settle,
/// whichever of the two the core hears first.
#[test]
fn a_terminate_that_finds_the_invocation_ended_is_answered_once_the_attempt_settles() {
    let mut r = Runner::fresh(10, 10);
    r.accept("a", 1);
    r.accept("b", 2);
    assert_eq!((r.starts("a"), r.starts("b")), (1, 1));
    for (id, reply) in [("a", 1), ("b", 2)] {
        let effects = r.send(Cmd::Terminate {
            id: id.into(),
            termination: Termination::Forced,
            reply,
        });
        assert!(
            matches!(effects[..], [Effect::Signal { reply: sent, .. }] if *sent == reply),
            "{effects:?}"
        );
    }
    // A: the shell's word comes while the attempt is still closing; its
    // record may still say RUNNING, so an answer now would be wrong.
    let effects = r.send(Cmd::AnswerAfterSettle {
        id: "a".into(),
        reply: 1,
    });
    assert!(
        effects.is_empty(),
        "answered before the attempt settled: {effects:?}"
    );
    let effects = r.send(Cmd::Settled {
        id: "a".into(),
        next: Next::Done { failed: None },
    });
    assert_eq!(
        answered_from_store(effects),
        [("a".to_string(), 1)],
        "the settle answers the waiting terminate"
    );
    // B: the attempt settles first; the shell's word then finds its final
    // record written and is answered from it at once.
    let effects = r.send(Cmd::Settled {
        id: "b".into(),
        next: Next::Done { failed: None },
    });
    assert!(answered_from_store(effects).is_empty(), "no one waits yet");
    let effects = r.send(Cmd::AnswerAfterSettle {
        id: "b".into(),
        reply: 2,
    });
    assert_eq!(answered_from_store(effects), [("b".to_string(), 2)]);
    // Each terminate was answered once, and neither event ran again.
    assert_eq!(
        answered_from_store(&r.log),
        [("a".to_string(), 1), ("b".to_string(), 2)]
    );
    assert!(
        !r.log.iter().any(|e| matches!(e, Effect::WriteAbort { .. })),
        "an ended event is not aborted"
    );
    assert_eq!((r.starts("a"), r.starts("b")), (1, 1));
    assert_eq!(r.core.stats().running, 0);
}
