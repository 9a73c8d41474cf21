//! OTLP export of the host's spans, and the sampling decision every span
//! makes.
//!
//! The spans are the invocations (one per invocation, named after its
//! function, from submission to its end) and the async accepts (one per
//! stored event, the parent of its attempts). Their ids are the ones
//! [`crate::trace::TraceContext`] made and sent to the worker, so a
//! worker's own spans are children of the exported invocation span. The
//! dispatcher's state machine, not a `tracing` span scope, owns an
//! invocation's life, so the finished span is built here as the SDK's
//! `SpanData` and handed to the OTLP exporter by a batching task on the
//! host's runtime (the SDK's own batch processor exports from a thread that
//! has no Tokio reactor, which the tonic exporter needs).
//!
//! Export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, unless `OTEL_SDK_DISABLED`
//! is `true` or `OTEL_TRACES_EXPORTER` is `none`. The exporter reads the
//! standard `OTEL_EXPORTER_OTLP_*` variables (endpoint, headers, timeout,
//! compression); the resource reads `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES`; the batching reads `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and
//! `OTEL_BSP_EXPORT_TIMEOUT`; the sampler reads `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, oneshot};

use crate::invocation::{CancelReason, Outcome};
use crate::trace::TraceContext;

/// Why export could not be set up: a value in the environment names
/// something the host does not do.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// `OTEL_TRACES_EXPORTER` names another exporter.
    #[error("OTEL_TRACES_EXPORTER={0:?} is not supported: fnhost exports traces with \"otlp\" (or \"none\")")]
    Exporter(String),
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names another transport.
    #[error("{var}={value:?} is not supported: fnhost exports OTLP over \"grpc\" only")]
    Protocol {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// A batching variable is not a number.
    #[error("{var}={value:?} is not a non-negative whole number")]
    Number {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// The OTLP exporter refused its configuration (e.g. a malformed
    /// endpoint).
    #[error("the OTLP exporter could not be built: {0}")]
    Build(String),
}

/// The OTLP spans a function's invocation ends with.
const SCOPE: &str = "fnhost";

/// How spans are picked for recording (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    /// Follows a parent's sampled flag; a new trace uses the inner one.
    ParentBased(Root),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    On,
    Off,
    Ratio(f64),
}

impl Sampler {
    /// From the two variables; an unknown or malformed value falls back to
    /// the default, `parentbased_always_on`, as the specification says.
    fn from_env(name: Option<&str>, arg: Option<&str>) -> Result<Self, String> {
        let ratio = || -> Result<f64, String> {
            match arg {
                None => Ok(1.0),
                Some(a) => match a.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(format!(
                        "OTEL_TRACES_SAMPLER_ARG={a:?} is not a ratio between 0 and 1"
                    )),
                },
            }
        };
        Ok(
            match name.map(str::trim).unwrap_or("parentbased_always_on") {
                "always_on" => Self::AlwaysOn,
                "always_off" => Self::AlwaysOff,
                "traceidratio" => Self::Ratio(ratio()?),
                "parentbased_always_on" => Self::ParentBased(Root::On),
                "parentbased_always_off" => Self::ParentBased(Root::Off),
                "parentbased_traceidratio" => Self::ParentBased(Root::Ratio(ratio()?)),
                other => {
                    return Err(format!(
                        "OTEL_TRACES_SAMPLER={other:?} is not a sampler fnhost knows"
                    ))
                }
            },
        )
    }

    fn sampled(self, trace_id: &str, parent_flags: Option<u8>) -> bool {
        let ratio = |r: f64| {
            // The trace id's low 63 bits against the ratio's share of them,
            // so every host decides the same for one trace.
            let low = trace_id
                .get(16..32)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or(0)
                >> 1;
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let bound = (r * (1u64 << 63) as f64) as u64;
            low < bound
        };
        match (self, parent_flags) {
            (Self::AlwaysOn, _) => true,
            (Self::AlwaysOff, _) => false,
            (Self::Ratio(r), _) => ratio(r),
            (Self::ParentBased(_), Some(flags)) => flags & 1 == 1,
            (Self::ParentBased(Root::On), None) => true,
            (Self::ParentBased(Root::Off), None) => false,
            (Self::ParentBased(Root::Ratio(r)), None) => ratio(r),
        }
    }
}

fn sampler() -> Sampler {
    static SAMPLER: OnceLock<Sampler> = OnceLock::new();
    *SAMPLER.get_or_init(|| {
        let name = std::env::var("OTEL_TRACES_SAMPLER").ok();
        let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
        Sampler::from_env(name.as_deref(), arg.as_deref()).unwrap_or_else(|e| {
            tracing::warn!("{e}; using parentbased_always_on");
            Sampler::ParentBased(Root::On)
        })
    })
}

/// Whether a new span of `trace_id` is sampled: `parent_flags` are its
/// parent's trace flags, `None` for a new trace.
pub(crate) fn sampled(trace_id: &str, parent_flags: Option<u8>) -> bool {
    sampler().sampled(trace_id, parent_flags)
}

/// A span to export once it ends.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// The span's context: its ids, and its parent's.
    pub trace: TraceContext,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: SpanKind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
    /// Error status with this description, when it failed.
    pub error: Option<String>,
}

impl SpanRecord {
    fn into_span_data(self) -> Option<SpanData> {
        let trace_id = TraceId::from_hex(self.trace.trace_id()).ok()?;
        let span_id = SpanId::from_hex(self.trace.span_id()).ok()?;
        let parent_span_id = self
            .trace
            .parent_span_id()
            .and_then(|p| SpanId::from_hex(p).ok())
            .unwrap_or(SpanId::INVALID);
        let state = self.trace.state().parse::<TraceState>().unwrap_or_default();
        Some(SpanData {
            span_context: SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, state),
            parent_span_id,
            parent_span_is_remote: self.trace.parent_is_remote(),
            span_kind: self.kind,
            name: Cow::Owned(self.name),
            start_time: self.start,
            end_time: self.end.max(self.start),
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match self.error {
                Some(description) => Status::Error {
                    description: Cow::Owned(description),
                },
                None => Status::Unset,
            },
            instrumentation_scope: scope(),
        })
    }
}

fn scope() -> InstrumentationScope {
    static SCOPE_: OnceLock<InstrumentationScope> = OnceLock::new();
    SCOPE_
        .get_or_init(|| {
            InstrumentationScope::builder(SCOPE)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build()
        })
        .clone()
}

// Nearly every message is a span: boxing it would add an allocation to the
// common case to shrink the rare flush.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Span(SpanRecord),
    Flush(oneshot::Sender<()>),
}

struct Export {
    tx: mpsc::Sender<Msg>,
    dropped: AtomicU64,
}

static EXPORT: OnceLock<Export> = OnceLock::new();

/// Whether spans are exported: callers skip building a [`SpanRecord`]
/// when not.
pub fn enabled() -> bool {
    EXPORT.get().is_some()
}

/// Hands an ended span to the exporter. A sampled-out span is not
/// exported; when the queue is full the span is dropped and counted, never
/// waited for.
pub fn record(span: SpanRecord) {
    let Some(export) = EXPORT.get() else {
        return;
    };
    if !span.trace.sampled() {
        return;
    }
    if export.tx.try_send(Msg::Span(span)).is_err() {
        let n = export.dropped.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(
                dropped = n + 1,
                "the OTLP span queue is full; spans dropped"
            );
        }
    }
}

/// The batching settings (`OTEL_BSP_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batching {
    delay: Duration,
    queue: usize,
    batch: usize,
    timeout: Duration,
}

impl Batching {
    fn from_env(get: impl Fn(&'static str) -> Option<String>) -> Result<Self, OtelError> {
        let num = |var: &'static str, default: u64| -> Result<u64, OtelError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| OtelError::Number { var, value: v }),
            }
        };
        let queue =
            usize::try_from(num("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?.max(1)).unwrap_or(usize::MAX);
        let batch = usize::try_from(num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?.max(1))
            .unwrap_or(usize::MAX);
        Ok(Self {
            delay: Duration::from_millis(num("OTEL_BSP_SCHEDULE_DELAY", 5000)?),
            queue,
            // The specification: a batch is never larger than the queue.
            batch: batch.min(queue),
            timeout: Duration::from_millis(num("OTEL_BSP_EXPORT_TIMEOUT", 30_000)?),
        })
    }
}

/// The running export: flushed and shut down by [`Exporting::shutdown`].
#[derive(Debug)]
pub struct Exporting {
    task: tokio::task::JoinHandle<()>,
    endpoint: String,
}

impl Exporting {
    /// Where spans go (for the startup log).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Exports what is queued, waiting at most `bound`, then stops the
    /// exporter.
    pub async fn shutdown(self, bound: Duration) {
        if let Some(export) = EXPORT.get() {
            let (tx, rx) = oneshot::channel();
            if export.tx.send(Msg::Flush(tx)).await.is_ok()
                && tokio::time::timeout(bound, rx).await.is_err()
            {
                tracing::warn!(?bound, "the last OTLP spans were not exported in time");
            }
        }
        self.task.abort();
    }
}

fn env(var: &'static str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Starts exporting when the environment asks for it (see the module
/// docs): `Ok(None)` when it does not. Call once per process, inside the
/// host's runtime; a second call is refused with `Ok(None)`.
pub fn install() -> Result<Option<Exporting>, OtelError> {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match env("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => return Err(OtelError::Exporter(other.to_string())),
    }
    let endpoint = match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    {
        Some(e) => e,
        None => return Ok(None),
    };
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = env(var) {
            if value.trim() != "grpc" {
                return Err(OtelError::Protocol { var, value });
            }
            break;
        }
    }
    let batching = Batching::from_env(env)?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| OtelError::Build(e.to_string()))?;
    exporter.set_resource(&resource());
    let (tx, rx) = mpsc::channel(batching.queue);
    if EXPORT
        .set(Export {
            tx,
            dropped: AtomicU64::new(0),
        })
        .is_err()
    {
        return Ok(None);
    }
    let task = tokio::spawn(run(exporter, rx, batching));
    Ok(Some(Exporting { task, endpoint }))
}

/// `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, else service `fnhost`.
fn resource() -> Resource {
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| {
            a.split(',').any(|kv| {
                kv.split('=')
                    .next()
                    .is_some_and(|k| k.trim() == "service.name")
            })
        });
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(SCOPE).build()
    }
}

async fn run(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<Msg>,
    batching: Batching,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(batching.batch);
    let mut tick = tokio::time::interval(batching.delay.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush = tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Span(span)) => {
                    if let Some(data) = span.into_span_data() {
                        batch.push(data);
                    }
                    if batch.len() < batching.batch {
                        continue;
                    }
                    None
                }
                Some(Msg::Flush(done)) => {
                    // Everything queued before the flush goes with it.
                    while let Ok(Msg::Span(span)) = rx.try_recv() {
                        batch.extend(span.into_span_data());
                    }
                    Some(done)
                }
                None => return,
            },
            _ = tick.tick() => None,
        };
        while !batch.is_empty() {
            let take = batch.len().min(batching.batch);
            let chunk: Vec<SpanData> = batch.drain(..take).collect();
            let n = chunk.len();
            match tokio::time::timeout(batching.timeout, exporter.export(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(spans = n, "OTLP export failed: {e}"),
                Err(_) => {
                    tracing::warn!(spans = n, timeout = ?batching.timeout, "OTLP export timed out")
                }
            }
        }
        if let Some(done) = flush {
            let _ = done.send(());
        }
    }
}

/// The attributes of an invocation's span.
pub(crate) struct InvocationAttrs<'a> {
    pub id: &'a str,
    pub trigger: &'static str,
    pub coldstart: bool,
    pub outcome: Outcome,
    pub cancel_reason: Option<CancelReason>,
    pub attempt: u32,
}

impl InvocationAttrs<'_> {
    pub(crate) fn into_attributes(self) -> Vec<KeyValue> {
        let mut a = vec![
            KeyValue::new("faas.trigger", self.trigger),
            KeyValue::new("faas.invocation_id", self.id.to_string()),
            KeyValue::new("faas.coldstart", self.coldstart),
            KeyValue::new("fnhost.outcome", self.outcome.to_string()),
            KeyValue::new("fnhost.attempt", i64::from(self.attempt)),
        ];
        if let Some(r) = self.cancel_reason {
            a.push(KeyValue::new("fnhost.cancel_reason", r.wire()));
        }
        a
    }
}

/// The span kind of an invocation by its trigger: a server span for HTTP,
/// a consumer span for what a queue or schedule delivered.
pub(crate) fn invocation_kind(trigger: &str, attempt: Option<u32>) -> SpanKind {
    if attempt.is_some() || trigger == "timer" {
        SpanKind::Consumer
    } else if trigger == "http" {
        SpanKind::Server
    } else {
        SpanKind::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_read_from_the_environment() {
        assert_eq!(
            Sampler::from_env(None, None),
            Ok(Sampler::ParentBased(Root::On))
        );
        assert_eq!(
            Sampler::from_env(Some("always_off"), None),
            Ok(Sampler::AlwaysOff)
        );
        assert_eq!(
            Sampler::from_env(Some("parentbased_traceidratio"), Some("0.25")),
            Ok(Sampler::ParentBased(Root::Ratio(0.25)))
        );
        let e = Sampler::from_env(Some("traceidratio"), Some("2")).unwrap_err();
        assert!(e.contains("OTEL_TRACES_SAMPLER_ARG"), "{e}");
        let e = Sampler::from_env(Some("jaeger_remote"), None).unwrap_err();
        assert!(e.contains("jaeger_remote"), "{e}");
    }

    #[test]
    fn a_parent_based_sampler_follows_the_parent_and_a_ratio_follows_the_trace_id() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        let on = Sampler::ParentBased(Root::On);
        assert!(on.sampled(t, None));
        assert!(on.sampled(t, Some(1)));
        assert!(!on.sampled(t, Some(0)));
        assert!(Sampler::AlwaysOn.sampled(t, Some(0)));
        assert!(!Sampler::Ratio(0.0).sampled(t, None));
        assert!(Sampler::Ratio(1.0).sampled(t, None));
        // The low half decides: 0 is always in, all ones never under 1.0.
        let low = "4bf92f3577b34da60000000000000000";
        let high = "4bf92f3577b34da6ffffffffffffffff";
        assert!(Sampler::Ratio(0.5).sampled(low, None));
        assert!(!Sampler::Ratio(0.5).sampled(high, None));
        // Over many trace ids a ratio keeps about its share.
        let kept = (0..2000u64)
            .filter(|i| {
                let id = format!("{:016x}{:016x}", i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                Sampler::Ratio(0.25).sampled(&id, None)
            })
            .count();
        assert!((400..600).contains(&kept), "{kept}");
    }

    #[test]
    fn batching_reads_its_variables_and_names_a_bad_one() {
        let none = |_: &'static str| None;
        let b = Batching::from_env(none).unwrap();
        assert_eq!(
            b,
            Batching {
                delay: Duration::from_secs(5),
                queue: 2048,
                batch: 512,
                timeout: Duration::from_secs(30),
            }
        );
        let small = |v: &'static str| match v {
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("10".to_string()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("100".to_string()),
            _ => None,
        };
        let b = Batching::from_env(small).unwrap();
        assert_eq!(
            (b.queue, b.batch, b.delay),
            (10, 10, Duration::from_millis(100))
        );
        let bad = |v: &'static str| (v == "OTEL_BSP_EXPORT_TIMEOUT").then(|| "soon".to_string());
        let e = Batching::from_env(bad).unwrap_err().to_string();
        assert!(
            e.contains("OTEL_BSP_EXPORT_TIMEOUT") && e.contains("soon"),
            "{e}"
        );
    }

    #[test]
    fn a_record_becomes_span_data_with_its_ids_parent_and_status() {
        let caller = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("a=b"),
        )
        .unwrap();
        let span = caller.remote_child();
        let start = SystemTime::now();
        let data = SpanRecord {
            trace: span.clone(),
            name: "echo".into(),
            kind: SpanKind::Server,
            start,
            end: start - Duration::from_secs(1),
            attributes: vec![KeyValue::new("faas.trigger", "http")],
            error: Some("boom".into()),
        }
        .into_span_data()
        .unwrap();
        assert_eq!(data.span_context.trace_id().to_string(), caller.trace_id());
        assert_eq!(data.span_context.span_id().to_string(), span.span_id());
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(data.parent_span_is_remote);
        assert_eq!(data.end_time, start, "an end before the start is clamped");
        assert_eq!(data.span_context.trace_state().header(), "a=b");
        assert!(matches!(data.status, Status::Error { ref description } if description == "boom"));
        assert_eq!(data.name, "echo");
    }
}
