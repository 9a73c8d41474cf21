//! `fnhost-sample-worker`: a Rust worker with small functions that exercise
//! the host: success, long runs that honour or ignore cancellation, panics,
//! crashes, failures, logging and the trace context a function sees.

use std::time::{Duration, Instant};

use fnhost_worker::{
    AuthLevel, Context, HandlerError, HttpResponse, HttpTrigger, Input, Output, TimerTrigger,
    TraceContext, Worker, WorkerError,
};
use serde_json::Value;

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

/// Describes the HTTP request it was given (method, url, headers, query,
/// params) as JSON: what user code can see of a caller.
async fn request(_ctx: Context, input: Input) -> Result<Output, HandlerError> {
    let http = input
        .http()
        .ok_or_else(|| HandlerError::msg("request expects an HTTP trigger"))?;
    Ok(serde_json::json!({
        "method": http.method,
        "url": http.url,
        "headers": http.headers,
        "query": http.query,
        "params": http.params,
    })
    .into())
}

/// Describes the trace context it was given as JSON:
/// `{"traceParent", "traceState", "attributes"}`, all `null` when the host
/// sent none.
async fn trace(ctx: Context, _input: Input) -> Result<Output, HandlerError> {
    Ok(trace_json(ctx.trace_context()).into())
}

fn trace_json(trace: Option<&TraceContext>) -> Value {
    match trace {
        Some(t) => serde_json::json!({
            "traceParent": t.trace_parent(),
            "traceState": t.trace_state(),
            "attributes": t.attributes(),
        }),
        None => serde_json::json!({"traceParent": null, "traceState": null, "attributes": null}),
    }
}

/// Milliseconds from the input: a plain number, JSON `{"ms": N}` (or a JSON
/// number / numeric string), or for HTTP the `ms` query parameter or the body.
fn millis(input: &Input) -> Result<u64, HandlerError> {
    if let Some(ms) = input.http().and_then(|h| h.query.get("ms")) {
        return parse_ms(ms);
    }
    parse_ms(&input.text()?)
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
async fn sleep(ctx: Context, input: Input) -> Result<String, HandlerError> {
    let ms = millis(&input)?;
    let started = Instant::now();
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(format!("slept {ms} ms")),
        () = ctx.cancelled() => {
            let reason = ctx.cancel_reason().unwrap_or("no reason given");
            ctx.info(format!(
                "sleep cancelled after {} ms ({reason})",
                started.elapsed().as_millis()
            ));
            Err(HandlerError::cancelled())
        }
    }
}

/// Busy-waits on a blocking thread for the requested time, ignoring
/// cancellation entirely.
async fn spin(_ctx: Context, input: Input) -> Result<String, HandlerError> {
    let ms = millis(&input)?;
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
async fn panic(_ctx: Context, input: Input) -> Result<(), HandlerError> {
    let text = input.text().unwrap_or_default();
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
async fn fail(_ctx: Context, input: Input) -> Result<(), HandlerError> {
    let text = input.text().unwrap_or_default();
    Err(HandlerError::msg(format!("failure requested: {text}")))
}

/// Emits one log line at each of info, warn and error.
async fn log(ctx: Context, _input: Input) -> Result<&'static str, HandlerError> {
    ctx.info("info from log function");
    ctx.warn("warning from log function");
    ctx.error("error from log function");
    Ok("logged")
}

/// A timer function: logs the tick it was given (Azure's `TimerInfo`). With
/// `SAMPLE_TICK_WORK_MS` set, it then works that long, stopping early when
/// cancelled and saying why (another host took the schedule over: `lease
/// lost`).
async fn tick(ctx: Context, input: Input) -> Result<String, HandlerError> {
    let info: Value = input.json()?;
    let scheduled = info["ScheduleStatus"]["Next"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let past_due = info["IsPastDue"].as_bool().unwrap_or(false);
    ctx.info(format!("tick {scheduled} (past due: {past_due})"));
    let ms = env_u64("SAMPLE_TICK_WORK_MS");
    if ms > 0 {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            () = ctx.cancelled() => {
                let reason = ctx.cancel_reason().unwrap_or("no reason given");
                ctx.info(format!("tick {scheduled} cancelled ({reason})"));
                return Err(HandlerError::cancelled());
            }
        }
    }
    Ok(format!("ticked {scheduled}"))
}

/// Calls of `flaky` this process has seen.
static FLAKY_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Fails its first N calls in this process (N = the input number), then
/// succeeds: a function for retry tests.
async fn flaky(_ctx: Context, input: Input) -> Result<String, HandlerError> {
    let failures: u64 = input.text()?.trim().parse().map_err(HandlerError::msg)?;
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
        .timer("tick", TimerTrigger::new("0 * * * * *"), tick)
        .http_with("request", http(), request)
        .initializer(initializer)
        .pre_stop(pre_stop)
        // SAMPLE_WORKER_INDEXING=1: the worker reports its own functions.
        .worker_indexing(env_u64("SAMPLE_WORKER_INDEXING") == 1)
        .build()
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

    #[test]
    fn millis_formats() {
        let input = |s: &str| Input::from_typed_data(TypedData::string(s));
        assert_eq!(millis(&input("250")).unwrap(), 250);
        assert_eq!(millis(&input(r#"{"ms": 40}"#)).unwrap(), 40);
        assert!(millis(&input("soon")).is_err());
    }

    #[tokio::test]
    async fn trace_describes_the_trace_context_or_nulls() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::new(parent, "congo=t61rcWkgMzE", [("OperationName", "trace")]);
        let (ctx, _) = Context::for_test_in_trace("i", t);
        let out = trace(ctx, Input::from_typed_data(TypedData::string("")))
            .await
            .unwrap();
        let data = out.typed_data().cloned().expect("a return value");
        assert_eq!(
            Input::from_typed_data(data).json::<Value>().unwrap(),
            serde_json::json!({
                "traceParent": parent,
                "traceState": "congo=t61rcWkgMzE",
                "attributes": {"OperationName": "trace"},
            })
        );
        assert_eq!(
            trace_json(None),
            serde_json::json!({"traceParent": null, "traceState": null, "attributes": null})
        );
    }

    #[tokio::test]
    async fn sleep_observes_cancel() {
        let (ctx, cancel) = Context::for_test("i");
        let task = tokio::spawn(sleep(
            ctx,
            Input::from_typed_data(TypedData::string("60000")),
        ));
        cancel.cancel();
        assert!(task.await.unwrap().unwrap_err().is_cancelled());
    }
}
