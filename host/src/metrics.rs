//! Prometheus metrics, named after the OpenTelemetry FaaS conventions
//! (converted to Prometheus: units in the name, counters ending `_total`).
//! Labels hold the function, trigger, outcome, cancel reason and worker
//! language, never an id, so the series stay few.
//!
//! The registry is the process's (`metrics`' global recorder), installed
//! by the first host that starts; hosts in one process (tests) share it.
//! Gauges that describe the present (queue depth, instances) are set when
//! `/metrics` is scraped, from the host's status.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::invocation::{CancelReason, Outcome};
use crate::status::HostStatus;

/// Invocation durations, 5 ms to 10 min.
const INVOKE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

/// Worker start-up and store commit times.
const SHORT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's registry (once); the handle that renders it, or
/// `None` when another recorder was installed first (an embedding program's).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("faas_invoke_duration_seconds".into()),
                    INVOKE_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("faas_init_duration_seconds".into()),
                        SHORT_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("fnhost_store_commit_seconds".into()),
                        SHORT_BUCKETS,
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(e) => {
                    tracing::error!("metrics are off: {e}");
                    return None;
                }
            };
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!("metrics are off: another recorder is installed ({e})");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "faas_invocations_total",
        "Invocations that ended, by function, trigger and outcome."
    );
    describe_histogram!(
        "faas_invoke_duration_seconds",
        Unit::Seconds,
        "Time from dispatch to a worker to the end, by function and trigger."
    );
    describe_histogram!(
        "faas_init_duration_seconds",
        Unit::Seconds,
        "Worker instance start-up, launch to ready, by language."
    );
    describe_counter!(
        "faas_coldstarts_total",
        "Invocations that were a new worker instance's first, by function."
    );
    describe_counter!(
        "faas_timeouts_total",
        "Invocations ended by their function timeout, by function."
    );
    describe_counter!("faas_errors_total", "Invocations that failed, by function.");
    describe_counter!("fnhost_cancels_total", "Cancels, by reason.");
    describe_counter!(
        "fnhost_kills_total",
        "Worker instances killed to end an invocation, by reason."
    );
    describe_gauge!("fnhost_queue_depth", "Invocations waiting for an instance.");
    describe_gauge!("fnhost_inflight", "Invocations running on workers.");
    describe_gauge!("fnhost_worker_instances", "Worker instances, by state.");
    describe_counter!(
        "fnhost_worker_restarts_total",
        "Worker instances restarted after a failure."
    );
    describe_gauge!("fnhost_async_events", "Stored async events, by status.");
    describe_gauge!(
        "fnhost_async_oldest_queued_age_seconds",
        Unit::Seconds,
        "Age of the oldest queued async event (0 when none)."
    );
    describe_counter!(
        "fnhost_async_accepts_total",
        "Async events accepted (durably stored)."
    );
    describe_histogram!(
        "fnhost_store_commit_seconds",
        Unit::Seconds,
        "Time to apply and commit one batch of event store writes."
    );
}

/// The `trigger` label: Azure's FaaS trigger kinds.
pub(crate) fn trigger_label(binding_type: &str) -> &'static str {
    match binding_type.to_ascii_lowercase().as_str() {
        "httptrigger" => "http",
        "timertrigger" => "timer",
        "lifecycletrigger" => "lifecycle",
        _ => "other",
    }
}

/// Per-thread handles of the per-invocation series, so the hot path does
/// not look each one up in the registry by its labels (a hash of every
/// label) at every invocation. Bounded: functions and outcomes are few.
type EndedKey = (Box<str>, &'static str, &'static str);
thread_local! {
    static ENDED: std::cell::RefCell<std::collections::HashMap<EndedKey, (metrics::Counter, metrics::Histogram)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Most cached handles per thread (then they are looked up each time).
const MAX_CACHED: usize = 4096;

/// An invocation ended.
pub(crate) fn invocation_ended(
    function: &str,
    trigger: &'static str,
    outcome: Outcome,
    reason: Option<CancelReason>,
    ran: Option<Duration>,
) {
    let handles = |function: &str| {
        let f = function.to_string();
        (
            counter!("faas_invocations_total", "function" => f.clone(), "trigger" => trigger, "outcome" => outcome.as_str()),
            histogram!("faas_invoke_duration_seconds", "function" => f, "trigger" => trigger),
        )
    };
    let (invocations, duration) = ENDED.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key: EndedKey = (function.into(), trigger, outcome.as_str());
        if let Some(h) = cache.get(&key) {
            return h.clone();
        }
        let h = handles(function);
        if cache.len() < MAX_CACHED {
            cache.insert(key, h.clone());
        }
        h
    });
    invocations.increment(1);
    if let Some(d) = ran {
        duration.record(d.as_secs_f64());
    }
    let function = function.to_string();
    let timed_out = outcome == Outcome::TimedOut
        || (outcome == Outcome::Killed && reason == Some(CancelReason::Timeout));
    if timed_out {
        counter!("faas_timeouts_total", "function" => function.clone()).increment(1);
    }
    if outcome == Outcome::Failed {
        counter!("faas_errors_total", "function" => function).increment(1);
    }
}

/// A new instance's first invocation.
pub(crate) fn coldstart(function: &str) {
    counter!("faas_coldstarts_total", "function" => function.to_string()).increment(1);
}

/// An instance became ready `took` after its launch.
pub(crate) fn instance_ready(language: &str, took: Duration) {
    histogram!("faas_init_duration_seconds", "language" => language.to_string())
        .record(took.as_secs_f64());
}

/// A cancel was handled.
pub(crate) fn cancelled(reason: CancelReason) {
    counter!("fnhost_cancels_total", "reason" => reason.wire()).increment(1);
}

/// An instance was killed to end an invocation.
pub(crate) fn killed(reason: Option<CancelReason>) {
    let reason = reason.map_or("worker failure", CancelReason::wire);
    counter!("fnhost_kills_total", "reason" => reason).increment(1);
}

/// A worker restart after a failure.
pub(crate) fn restarted() {
    counter!("fnhost_worker_restarts_total").increment(1);
}

/// An async event was accepted.
pub(crate) fn async_accepted() {
    counter!("fnhost_async_accepts_total").increment(1);
}

/// A batch of store writes committed in `took`.
pub(crate) fn store_commit(took: Duration) {
    histogram!("fnhost_store_commit_seconds").record(took.as_secs_f64());
}

/// The gauges of the host's present state, set just before a scrape.
pub(crate) fn set_host_gauges(status: &HostStatus) {
    gauge!("fnhost_queue_depth").set(status.queued as f64);
    gauge!("fnhost_inflight").set(status.in_flight as f64);
    let mut states: std::collections::BTreeMap<&str, usize> =
        ["starting", "initializing", "ready", "draining", "stopping"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
    for w in &status.workers {
        *states.entry(w.state.as_str()).or_default() += 1;
    }
    for (state, n) in states {
        gauge!("fnhost_worker_instances", "state" => state.to_string(), "language" => status.language.clone()).set(n as f64);
    }
}

/// The async gauges: stored events by status, and the oldest queued one's
/// age.
pub(crate) fn set_async_gauges(by_status: &[(&'static str, u64)], oldest_queued_age: Duration) {
    for (status, n) in by_status {
        gauge!("fnhost_async_events", "status" => *status).set(*n as f64);
    }
    gauge!("fnhost_async_oldest_queued_age_seconds").set(oldest_queued_age.as_secs_f64());
}
