//! OTLP span export: the `fnhost` binary, started with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/gRPC trace receiver in
//! this test (a tonic server of the collector's `TraceService`), exports a
//! span per invocation and per async accept. The ids are the ones the
//! worker was given, and the parent links hold: caller → invocation, and
//! caller → accept → attempt.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fnhost_e2e::{binary, start_host, Api, HostProcess, TestApp, ADMIN_KEY};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// The collector's credential, in `OTEL_EXPORTER_OTLP_HEADERS`.
const COLLECTOR_KEY: &str = "collector-secret-5d1c";

/// A received span with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
}

#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
    /// The `x-collector-key` header of each export call.
    keys: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let key = request
            .metadata()
            .get("x-collector-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.keys.lock().unwrap().push(key);
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Any::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span's attributes as text (numbers and booleans as their JSON text).
fn attrs(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let v = match kv.value.as_ref()?.value.as_ref()? {
                Any::StringValue(s) => s.clone(),
                Any::BoolValue(b) => b.to_string(),
                Any::IntValue(i) => i.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), v))
        })
        .collect()
}

impl Receiver {
    async fn start() -> (Self, std::net::SocketAddr) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (receiver, addr)
    }

    /// The span with this span id, once it arrives.
    async fn span(&self, span_id: &str) -> Received {
        let mut found = None;
        fnhost_e2e::wait_until(
            &format!("span {span_id} to be exported"),
            Duration::from_secs(15),
            || {
                found = self
                    .spans
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|r| hex(&r.span.span_id) == span_id)
                    .cloned();
                std::future::ready(found.is_some())
            },
        )
        .await;
        found.unwrap()
    }

    fn all(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

/// The span id the `trace` function saw as its parent, from its reply.
fn seen_span(r: &fnhost_e2e::HttpReply) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.text());
    let seen: Value = serde_json::from_str(&r.text()).unwrap();
    span_of(&seen)
}

fn span_of(seen: &Value) -> (String, String) {
    let parent = seen["traceParent"].as_str().unwrap_or_default();
    let p: Vec<&str> = parent.split('-').collect();
    assert_eq!(p.len(), 4, "{seen}");
    (p[1].to_string(), p[2].to_string())
}

fn host(app: &TestApp, endpoint: &str, extra_env: &[(&str, &str)]) -> (HostProcess, Api) {
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env_remove("FNHOST_ADMIN_KEY")
        .env("FNHOST_LOG", "warn")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_SERVICE_NAME", "fnhost-otlp-test")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-collector-key={COLLECTOR_KEY}"),
        );
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let (child, addr, _) = start_host(cmd, app.dir(), &["--admin-key", ADMIN_KEY], Stdio::null());
    (child, Api::new(addr))
}

fn app() -> TestApp {
    let app = TestApp::sample(json!({ "functionTimeout": "00:00:02" }));
    app.function("trace", &fnhost_e2e::http_function());
    app.function(
        "fail",
        &json!({ "bindings": [{ "type": "manualTrigger", "direction": "in", "name": "input" }] }),
    );
    app.function(
        "sleep",
        &json!({ "bindings": [{ "type": "manualTrigger", "direction": "in", "name": "input" }] }),
    );
    app
}

#[tokio::test]
async fn invocation_and_accept_spans_reach_an_otlp_receiver_with_the_ids_the_worker_saw() {
    let (receiver, addr) = Receiver::start().await;
    let app = app();
    let (mut child, api) = host(&app, &format!("http://{addr}"), &[]);

    // A caller's trace: the invocation's span is its child, and the id the
    // worker saw is the exported span's id.
    let r = api
        .request_with(
            "POST",
            "/api/trace",
            String::new(),
            &[("traceparent", PARENT)],
        )
        .await
        .unwrap();
    let invocation_id = r.header("x-fnhost-invocation-id").to_string();
    let (trace_id, span_id) = seen_span(&r);
    assert_eq!(trace_id, TRACE_ID);
    let first = receiver.span(&span_id).await;
    assert_eq!(
        first.service, "fnhost-otlp-test",
        "OTEL_SERVICE_NAME names the resource"
    );
    let s = &first.span;
    assert_eq!(s.name, "trace");
    assert_eq!(hex(&s.trace_id), TRACE_ID);
    assert_eq!(
        hex(&s.parent_span_id),
        CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(
        s.kind,
        SpanKind::Server as i32,
        "an HTTP trigger is a server span"
    );
    assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0);
    let a = attrs(s);
    assert_eq!(a["faas.trigger"], "http", "{a:?}");
    assert_eq!(a["faas.invocation_id"], invocation_id, "{a:?}");
    assert_eq!(a["fnhost.outcome"], "succeeded", "{a:?}");
    assert_eq!(a["fnhost.attempt"], "1", "{a:?}");
    assert_eq!(
        a["faas.coldstart"], "true",
        "the instance's first invocation: {a:?}"
    );
    assert_ne!(
        s.status.as_ref().map_or(0, |st| st.code),
        StatusCode::Error as i32
    );
    // OTEL_EXPORTER_OTLP_HEADERS reach the collector, and not user code:
    // the worker's environment holds the other OTEL_* variables only.
    let keys = receiver.keys.lock().unwrap().clone();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k == COLLECTOR_KEY),
        "{keys:?}"
    );
    let status = api.status().await.unwrap();
    let pid = status["workers"][0]["pid"].as_u64().expect("a worker pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("OTEL_SERVICE_NAME=fnhost-otlp-test"));
    assert!(
        !environ.contains("OTEL_EXPORTER_OTLP_HEADERS") && !environ.contains(COLLECTOR_KEY),
        "the worker inherited the collector's credential"
    );

    // An unsampled caller (flags 00) is followed: nothing is exported for
    // it. A later sampled span arrives after it would have (one queue).
    let unsampled = PARENT.replace("-01", "-00");
    let r = api
        .request_with(
            "POST",
            "/api/trace",
            String::new(),
            &[("traceparent", &unsampled)],
        )
        .await
        .unwrap();
    let (_, unsampled_span) = seen_span(&r);

    // No caller's trace: the invocation is the root of a new trace.
    let r = api.request("POST", "/api/trace", "", None).await.unwrap();
    let (new_trace, root_span) = seen_span(&r);
    assert_ne!(new_trace, TRACE_ID);
    let root = receiver.span(&root_span).await.span;
    assert_eq!(hex(&root.trace_id), new_trace);
    assert!(
        root.parent_span_id.is_empty(),
        "a new trace's span has no parent"
    );
    assert_eq!(attrs(&root)["faas.coldstart"], "false");
    assert!(
        receiver
            .all()
            .iter()
            .all(|r| hex(&r.span.span_id) != unsampled_span),
        "a span of an unsampled trace was exported"
    );

    // A failure is an error span with the message.
    let r = api
        .request(
            "POST",
            "/admin/functions/fail/invoke",
            "boom",
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_ne!(r.status, 200, "{}", r.text());
    let failed_id = r.header("x-fnhost-invocation-id").to_string();
    let mut failed = None;
    fnhost_e2e::wait_until("the failed span", Duration::from_secs(15), || {
        failed = receiver
            .all()
            .into_iter()
            .find(|s| attrs(&s.span).get("faas.invocation_id") == Some(&failed_id));
        std::future::ready(failed.is_some())
    })
    .await;
    let failed = failed.unwrap().span;
    assert_eq!(failed.name, "fail");
    assert_eq!(failed.kind, SpanKind::Internal as i32, "a manual trigger");
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!(status.code, StatusCode::Error as i32, "{failed:?}");
    assert!(!status.message.is_empty(), "{failed:?}");
    assert_eq!(attrs(&failed)["fnhost.outcome"], "failed");

    // A timed-out invocation names its cancel reason.
    let r = api
        .request(
            "POST",
            "/admin/functions/sleep/invoke",
            "10000",
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    let slept_id = r.header("x-fnhost-invocation-id").to_string();
    let mut slept = None;
    fnhost_e2e::wait_until("the timed-out span", Duration::from_secs(15), || {
        slept = receiver
            .all()
            .into_iter()
            .find(|s| attrs(&s.span).get("faas.invocation_id") == Some(&slept_id));
        std::future::ready(slept.is_some())
    })
    .await;
    let slept = attrs(&slept.unwrap().span);
    assert_eq!(slept["fnhost.cancel_reason"], "timeout", "{slept:?}");

    // An async event: an accept span under the caller's, and the attempt
    // under the accept span.
    let r = api
        .request_with(
            "POST",
            "/admin/functions/trace/invoke-async",
            String::new(),
            &[("x-functions-key", ADMIN_KEY), ("traceparent", PARENT)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let request_id = r.json()["requestId"].as_str().unwrap().to_string();
    fnhost_e2e::wait_until("the event to finish", Duration::from_secs(15), || async {
        crate::async_events::event(&api, &request_id).await["status"] == "FINISHED"
    })
    .await;
    let e = crate::async_events::event(&api, &request_id).await;
    let (_, accept_span) = span_of(&json!({ "traceParent": e["traceParent"] }));
    let seen: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    let (attempt_trace, attempt_span) = span_of(&seen);
    assert_eq!(attempt_trace, TRACE_ID);
    let accept = receiver.span(&accept_span).await.span;
    assert_eq!(accept.name, "trace accept");
    assert_eq!(accept.kind, SpanKind::Producer as i32);
    assert_eq!(hex(&accept.parent_span_id), CALLER_SPAN);
    assert_eq!(attrs(&accept)["fnhost.request_id"], request_id);
    let attempt = receiver.span(&attempt_span).await.span;
    assert_eq!(attempt.name, "trace");
    assert_eq!(
        hex(&attempt.parent_span_id),
        accept_span,
        "the attempt's parent is the accept"
    );
    assert_eq!(attempt.kind, SpanKind::Consumer as i32);
    assert_eq!(attrs(&attempt)["fnhost.attempt"], "1");
    // Each attempt is an invocation of its own id.
    assert!(!attrs(&attempt)["faas.invocation_id"].is_empty());

    // What is queued at SIGTERM is still exported: the host flushes before
    // it exits.
    let (_, last_span) = seen_span(&api.request("POST", "/api/trace", "", None).await.unwrap());
    let ok = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = tokio::task::spawn_blocking(move || child.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    receiver.span(&last_span).await;
}

#[test]
fn an_otlp_protocol_the_host_does_not_speak_stops_the_start_naming_it() {
    let app = app();
    let out = Command::new(binary("fnhost"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("FNHOST_LOG", "warn")
        .arg("start")
        .arg(app.dir())
        .args(["--port", "0", "--admin-key", ADMIN_KEY])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && err.contains("http/protobuf"),
        "{err}"
    );
}
