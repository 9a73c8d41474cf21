//! `fnhost-sample-worker`: a Rust worker with small functions that exercise
//! the host: success, long runs that honour or ignore cancellation, panics,
//! crashes, failures, logging, retries, and what a function sees of its
//! caller, trace, deadline and attempt.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use fnhost_worker::{
    AuthLevel, Context, FromInput, HandlerError, HttpRequest, HttpResponse, HttpTrigger, Input,
    Json, Output, TimerTrigger, TraceContext, Worker, WorkerError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// mimalloc, as the host uses: a worker allocates and frees a few small
/// buffers per invocation on whichever runtime thread polls it, and glibc's
/// malloc spent about a third of this worker's CPU on the HTTP path, a
/// tenth of it waiting on its arena locks (BENCHMARKS.md, "Workers").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the input: HTTP requests get a 200 with the same body and content
/// type; JSON text comes back as JSON, other text as text, anything else as
/// bytes.
async fn echo(_ctx: Context, input: Input) -> Result<Output, HandlerError> {
    if let Some(http) = input.http() {
        let mut resp = HttpResponse::new(200).body(input.bytes());
        if let Some((_, ct)) = http
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            resp = resp.header("content-type", ct.clone());
        }
        return Ok(resp.into());
    }
    if input.data().is_none() {
        return Ok(().into());
    }
    Ok(match input.text() {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(json) => json.into(),
            Err(_) => text.into(),
        },
        Err(_) => input.bytes().into(),
    })
}

/// What `request` answers: the parts of the HTTP request user code sees.
#[derive(Debug, Serialize)]
struct SeenRequest {
    method: String,
    url: String,
    headers: HashMap<String, String>,
    query: HashMap<String, String>,
    params: HashMap<String, String>,
}

/// Describes the HTTP request it was given (method, url, headers, query,
/// params) as JSON: what user code can see of a caller.
async fn request(_ctx: Context, req: HttpRequest) -> Result<Json<SeenRequest>, HandlerError> {
    Ok(Json(SeenRequest {
        method: req.method,
        url: req.url,
        headers: req.headers,
        query: req.query,
        params: req.params,
    }))
}

/// What `trace` answers: the trace context it was given, all `null` when
/// the host sent none.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeenTrace {
    trace_parent: Option<String>,
    trace_state: Option<String>,
    attributes: Option<HashMap<String, String>>,
}

impl From<Option<&TraceContext>> for SeenTrace {
    fn from(trace: Option<&TraceContext>) -> Self {
        Self {
            trace_parent: trace.map(|t| t.trace_parent().to_string()),
            trace_state: trace.map(|t| t.trace_state().to_string()),
            attributes: trace.map(|t| t.attributes().iter().cloned().collect()),
        }
    }
}

/// Describes the trace context it was given as JSON:
/// `{"traceParent", "traceState", "attributes"}`.
async fn trace(ctx: Context, _input: Input) -> Result<Json<SeenTrace>, HandlerError> {
    Ok(Json(ctx.trace_context().into()))
}

/// What `deadline` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeenDeadline {
    attempt: u32,
    /// The deadline in Unix milliseconds, `null` when the host sent none.
    deadline_ms: Option<u128>,
    /// Milliseconds from now to the deadline (0 once it passed).
    remaining_ms: Option<u128>,
}

/// Reports its attempt and deadline as JSON. With input `{"failBefore": N}`
/// it fails its attempts before attempt N: an async event then reports
/// attempt N.
async fn deadline(ctx: Context, input: Input) -> Result<Json<SeenDeadline>, HandlerError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ask {
        #[serde(default)]
        fail_before: u32,
    }
    let ask: Ask = if input.bytes().is_empty() {
        Ask { fail_before: 0 }
    } else {
        input.json()?
    };
    if ctx.attempt() < ask.fail_before {
        return Err(format!("attempt {} failing on purpose", ctx.attempt()).into());
    }
    let now = SystemTime::now();
    Ok(Json(SeenDeadline {
        attempt: ctx.attempt(),
        deadline_ms: ctx.deadline().and_then(|d| {
            d.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis())
        }),
        remaining_ms: ctx
            .deadline()
            .map(|d| d.duration_since(now).unwrap_or(Duration::ZERO).as_millis()),
    }))
}

/// A number of milliseconds: the `ms` query parameter of an HTTP request,
/// or the input (its body) as a plain number, a JSON number or numeric
/// string, or `{"ms": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Millis(u64);

impl FromInput for Millis {
    fn from_input(input: Input, _ctx: &Context) -> Result<Self, HandlerError> {
        if let Some(ms) = input.http().and_then(|h| h.query.get("ms")) {
            return parse_ms(ms).map(Millis);
        }
        parse_ms(&input.text()?).map(Millis)
    }
}

fn parse_ms(text: &str) -> Result<u64, HandlerError> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    let value: Option<Value> = serde_json::from_str(text).ok();
    let number = match value {
        Some(Value::Object(map)) => map.get("ms").cloned(),
        other => other,
    };
    match number {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        HandlerError::msg(format!(
            "expected a number of milliseconds or {{\"ms\": N}}, got {text:?}"
        ))
    })
}

/// Sleeps for the requested time unless cancelled first.
async fn sleep(ctx: Context, Millis(ms): Millis) -> Result<String, HandlerError> {
    let started = Instant::now();
    ctx.until_cancelled(tokio::time::sleep(Duration::from_millis(ms)))
        .await
        .inspect_err(|_| {
            let reason = ctx.cancel_reason().unwrap_or("no reason given");
            ctx.info(format!(
                "sleep cancelled after {} ms ({reason})",
                started.elapsed().as_millis()
            ));
        })?;
    Ok(format!("slept {ms} ms"))
}

/// Busy-waits on a blocking thread for the requested time, ignoring
/// cancellation entirely.
async fn spin(_ctx: Context, Millis(ms): Millis) -> Result<String, HandlerError> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    tokio::task::spawn_blocking(move || {
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .await?;
    Ok(format!("spun {ms} ms"))
}

/// Panics with the input text.
async fn panic(_ctx: Context, text: String) -> Result<(), HandlerError> {
    panic!("panic requested: {text}");
}

/// Logs, then exits the whole worker process with code 3.
async fn crash(ctx: Context, _input: Input) -> Result<(), HandlerError> {
    ctx.error("crash requested: exiting with code 3");
    // Give the log line a moment to reach the host.
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::exit(3);
}

/// Fails with the input text.
async fn fail(_ctx: Context, text: String) -> Result<(), HandlerError> {
    Err(format!("failure requested: {text}").into())
}

/// Emits one log line at each of info, warn and error.
async fn log(ctx: Context, _input: Input) -> Result<&'static str, HandlerError> {
    ctx.info("info from log function");
    ctx.warn("warning from log function");
    ctx.error("error from log function");
    Ok("logged")
}

/// The part of Azure's `TimerInfo` that `tick` reads.
#[derive(Debug, Deserialize)]
struct TimerInfo {
    #[serde(rename = "ScheduleStatus")]
    schedule_status: Option<ScheduleStatus>,
    #[serde(rename = "IsPastDue", default)]
    is_past_due: bool,
}

#[derive(Debug, Deserialize)]
struct ScheduleStatus {
    /// When this tick was scheduled.
    #[serde(rename = "Next")]
    next: Option<String>,
}

/// A timer function: logs the tick it was given (Azure's `TimerInfo`). With
/// `SAMPLE_TICK_WORK_MS` set, it then works that long, stopping early when
/// cancelled and saying why (another host took the schedule over: `lease
/// lost`).
async fn tick(ctx: Context, Json(info): Json<TimerInfo>) -> Result<String, HandlerError> {
    let scheduled = info
        .schedule_status
        .and_then(|s| s.next)
        .unwrap_or_else(|| "?".to_string());
    ctx.info(format!("tick {scheduled} (past due: {})", info.is_past_due));
    let ms = env_u64("SAMPLE_TICK_WORK_MS");
    if ms > 0 {
        ctx.until_cancelled(tokio::time::sleep(Duration::from_millis(ms)))
            .await
            .inspect_err(|_| {
                let reason = ctx.cancel_reason().unwrap_or("no reason given");
                ctx.info(format!("tick {scheduled} cancelled ({reason})"));
            })?;
    }
    Ok(format!("ticked {scheduled}"))
}

/// Calls of `flaky` this process has seen.
static FLAKY_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Fails its first N calls in this process (N = the input number), then
/// succeeds: a function for retry tests.
async fn flaky(_ctx: Context, Json(failures): Json<u64>) -> Result<String, HandlerError> {
    let call = FLAKY_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if call <= failures {
        return Err(HandlerError::msg(format!(
            "flaky call {call} of {failures} failing calls"
        )));
    }
    Ok(format!("succeeded on call {call}"))
}

/// Initializer runs this process has seen.
static INIT_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The instance initializer. Its behaviour is set by the environment, for
/// the host's lifecycle tests: `SAMPLE_INIT_FAILURES=N` fails the first N
/// runs, `SAMPLE_INIT_HANGS=N` makes the first N runs wait until cancelled,
/// `SAMPLE_INIT_MS=N` makes each run take N ms.
async fn initializer(ctx: Context) -> Result<(), HandlerError> {
    let call = INIT_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    ctx.info(format!("initializer run {call}"));
    if call <= env_u64("SAMPLE_INIT_HANGS") {
        ctx.cancelled().await;
        return Err(HandlerError::cancelled());
    }
    tokio::time::sleep(Duration::from_millis(env_u64("SAMPLE_INIT_MS"))).await;
    if call <= env_u64("SAMPLE_INIT_FAILURES") {
        return Err(HandlerError::msg(format!(
            "initializer run {call} failing on purpose"
        )));
    }
    Ok(())
}

/// The pre-stop hook: `SAMPLE_PRESTOP_HANG=1` makes it ignore its timeout.
async fn pre_stop(ctx: Context) -> Result<(), HandlerError> {
    ctx.info("pre-stop running");
    if env_u64("SAMPLE_PRESTOP_HANG") == 1 {
        std::future::pending::<()>().await;
    }
    Ok(())
}

/// `SAMPLE_CRASH_STARTS=N` with `SAMPLE_CRASH_STARTS_FILE=path`: the first N
/// starts (counted in the file) exit with code 4 before connecting.
fn crash_at_start_if_asked() {
    let Ok(path) = std::env::var("SAMPLE_CRASH_STARTS_FILE") else {
        return;
    };
    let seen: u64 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let _ = std::fs::write(&path, (seen + 1).to_string());
    if seen < env_u64("SAMPLE_CRASH_STARTS") {
        eprintln!(
            "fnhost-sample-worker: crashing at start {} on purpose",
            seen + 1
        );
        std::process::exit(4);
    }
}

/// Exit codes: 0 after an orderly stop, 2 for bad launch arguments, 1 for
/// other failures (e.g. the host is unreachable).
#[tokio::main]
async fn main() {
    crash_at_start_if_asked();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    // The HTTP functions' triggers match their function.json in
    // sample-workers/rust-app (and the e2e tests' apps), so a worker-indexed
    // run serves the same functions at the same URLs.
    let http = || {
        HttpTrigger::new()
            .methods(["GET", "POST"])
            .auth_level(AuthLevel::Anonymous)
    };
    let result = Worker::builder()
        .http_with("echo", http(), echo)
        .http_with("trace", http(), trace)
        .http_with("sleep", http(), sleep)
        .function("spin", spin)
        .function("panic", panic)
        .function("crash", crash)
        .function("fail", fail)
        .function("log", log)
        .function("flaky", flaky)
        .function("deadline", deadline)
        .timer("tick", TimerTrigger::new("0 * * * * *"), tick)
        .http_with("request", http(), request)
        .initializer(initializer)
        .pre_stop(pre_stop)
        // SAMPLE_WORKER_INDEXING=1: the worker reports its own functions.
        .worker_indexing(env_u64("SAMPLE_WORKER_INDEXING") == 1)
        .run()
        .await;
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            let code = if matches!(e, WorkerError::Args(_)) {
                2
            } else {
                1
            };
            eprintln!("fnhost-sample-worker: {:#}", anyhow::Error::from(e));
            code
        }
    };
    // Exit now: returning from main would drop the runtime, which waits for
    // blocking tasks (a `spin` that ignores cancellation) without limit.
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnhost_worker::TypedData;

    fn text(s: &str) -> Input {
        Input::from_typed_data(TypedData::string(s))
    }

    fn ctx() -> Context {
        Context::for_test("i").0
    }

    #[test]
    fn millis_formats() {
        let ms = |input| Millis::from_input(input, &ctx()).map(|Millis(ms)| ms);
        assert_eq!(ms(text("250")).unwrap(), 250);
        assert_eq!(ms(text(r#"{"ms": 40}"#)).unwrap(), 40);
        assert_eq!(ms(text("\"7\"")).unwrap(), 7);
        let http = HttpRequest::new("GET", "http://h/api/sleep?ms=30").with_query("ms", "30");
        assert_eq!(
            ms(Input::from_typed_data(TypedData::http(http.into()))).unwrap(),
            30
        );
        assert!(ms(text("soon")).is_err());
    }

    #[tokio::test]
    async fn trace_describes_the_trace_context_or_nulls() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::new(parent, "congo=t61rcWkgMzE", [("OperationName", "trace")]);
        let (ctx, _) = Context::for_test_in_trace("i", t);
        let Json(seen) = trace(ctx, text("")).await.unwrap();
        assert_eq!(
            serde_json::to_value(seen).unwrap(),
            serde_json::json!({
                "traceParent": parent,
                "traceState": "congo=t61rcWkgMzE",
                "attributes": {"OperationName": "trace"},
            })
        );
        assert_eq!(
            serde_json::to_value(SeenTrace::from(None)).unwrap(),
            serde_json::json!({"traceParent": null, "traceState": null, "attributes": null})
        );
    }

    #[tokio::test]
    async fn sleep_observes_cancel() {
        let (ctx, cancel) = Context::for_test("i");
        let task = tokio::spawn(sleep(ctx, Millis(60_000)));
        cancel.cancel();
        assert!(task.await.unwrap().unwrap_err().is_cancelled());
    }

    #[tokio::test]
    async fn deadline_reports_the_attempt_and_time_left_and_fails_early_attempts() {
        let at = SystemTime::now() + Duration::from_secs(30);
        let Json(seen) = deadline(ctx().with_attempt(2).with_deadline(at), text(""))
            .await
            .unwrap();
        assert_eq!(seen.attempt, 2);
        let ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert_eq!(seen.deadline_ms, Some(ms));
        assert!(
            (29_000..=30_000).contains(&seen.remaining_ms.unwrap()),
            "{seen:?}"
        );
        let Json(none) = deadline(ctx(), text("")).await.unwrap();
        assert_eq!(
            (none.attempt, none.deadline_ms, none.remaining_ms),
            (1, None, None)
        );

        let ask = || text(r#"{"failBefore": 2}"#);
        let e = deadline(ctx(), ask()).await.unwrap_err();
        assert_eq!(e.to_string(), "attempt 1 failing on purpose");
        assert_eq!(
            deadline(ctx().with_attempt(2), ask())
                .await
                .unwrap()
                .attempt,
            2
        );
    }

    #[tokio::test]
    async fn tick_reads_the_timer_info() {
        let info = r#"{"ScheduleStatus": {"Next": "2025-01-01T00:00:00Z"}, "IsPastDue": false}"#;
        let info: TimerInfo = serde_json::from_str(info).unwrap();
        assert_eq!(
            tick(ctx(), Json(info)).await.unwrap(),
            "ticked 2025-01-01T00:00:00Z"
        );
    }
}
