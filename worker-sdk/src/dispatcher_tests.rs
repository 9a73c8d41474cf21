use std::sync::atomic::{AtomicBool, Ordering};

use fnhost_proto::rpc::status_result::Status;
use fnhost_proto::rpc::{
    parameter_binding, FunctionLoadRequestCollection, FunctionsMetadataRequest, InvocationCancel,
    ParameterBinding, RpcFunctionMetadata, TypedData, WorkerInitRequest, WorkerStatusRequest,
};

use super::*;
use crate::{AuthLevel, HandlerError, HttpTrigger, Output, Worker};

fn dispatcher(worker: Worker) -> (Dispatcher, mpsc::UnboundedReceiver<TaskEvent>) {
    let (mut d, rx) = Dispatcher::new(worker.functions, worker.worker_indexing);
    let mut names: Vec<String> = d.functions.keys().cloned().collect();
    names.sort();
    for name in names {
        let step = d.handle_message(load(&format!("id-{name}"), &name));
        assert_eq!(load_status(&step), Status::Success);
    }
    (d, rx)
}

fn msg(content: Content) -> StreamingMessage {
    StreamingMessage::from_content(content)
}

fn load(function_id: &str, name: &str) -> StreamingMessage {
    msg(Content::FunctionLoadRequest(load_req(function_id, name)))
}

fn load_req(function_id: &str, name: &str) -> FunctionLoadRequest {
    FunctionLoadRequest {
        function_id: function_id.into(),
        metadata: Some(RpcFunctionMetadata {
            name: name.into(),
            ..RpcFunctionMetadata::default()
        }),
        ..FunctionLoadRequest::default()
    }
}

fn load_status(step: &Step) -> Status {
    match &step.replies[..] {
        [StreamingMessage {
            content: Some(Content::FunctionLoadResponse(r)),
            ..
        }] => r.result.as_ref().unwrap().status_kind(),
        other => panic!("unexpected {other:?}"),
    }
}

fn invoke(invocation_id: &str, function_id: &str, text: &str) -> StreamingMessage {
    msg(Content::InvocationRequest(InvocationRequest {
        invocation_id: invocation_id.into(),
        function_id: function_id.into(),
        input_data: vec![ParameterBinding {
            name: "req".into(),
            rpc_data: Some(parameter_binding::RpcData::Data(TypedData::string(text))),
        }],
        ..InvocationRequest::default()
    }))
}

fn cancel(invocation_id: &str) -> StreamingMessage {
    msg(Content::InvocationCancel(InvocationCancel {
        invocation_id: invocation_id.into(),
        grace_period: None,
        reason: String::new(),
    }))
}

fn response(m: &StreamingMessage) -> &InvocationResponse {
    match &m.content {
        Some(Content::InvocationResponse(r)) => r,
        other => panic!("expected an invocation response, got {other:?}"),
    }
}

/// Waits for the next finished invocation, forwarding logs into `logs`.
async fn next_done(
    d: &mut Dispatcher,
    rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
    logs: &mut Vec<RpcLog>,
) -> InvocationResponse {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("timed out")
            .expect("channel open");
        let m = d.handle_event(event);
        match m.content {
            Some(Content::InvocationResponse(r)) => return r,
            Some(Content::RpcLog(l)) => logs.push(l),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn echo() -> Worker {
    Worker::builder().function("echo", |_ctx, input: Input| async move {
        input.text().map(|t| format!("echo:{t}"))
    })
}

#[tokio::test]
async fn success_returns_value_and_token_map_is_empty_after() {
    let (mut d, mut rx) = dispatcher(echo());
    assert!(d
        .handle_message(invoke("i1", "id-echo", "a"))
        .replies
        .is_empty());
    assert!(d
        .handle_message(invoke("i2", "id-echo", "b"))
        .replies
        .is_empty());
    assert_eq!(d.in_flight(), 2);
    let mut logs = Vec::new();
    let mut got = [
        next_done(&mut d, &mut rx, &mut logs).await,
        next_done(&mut d, &mut rx, &mut logs).await,
    ];
    got.sort_by(|a, b| a.invocation_id.cmp(&b.invocation_id));
    assert!(got[0].result.as_ref().unwrap().is_success());
    assert_eq!(got[0].return_value, Some(TypedData::string("echo:a")));
    assert_eq!(got[1].return_value, Some(TypedData::string("echo:b")));
    assert_eq!(
        d.in_flight(),
        0,
        "tokens must be dropped once results are sent"
    );
}

#[tokio::test]
async fn early_cancel_is_remembered_and_handler_never_runs() {
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = Arc::clone(&ran);
    let (mut d, _rx) = dispatcher(Worker::builder().function("f", move |_c, _i: Input| {
        ran2.store(true, Ordering::SeqCst);
        async { Ok::<_, HandlerError>(()) }
    }));
    assert!(d.handle_message(cancel("early")).replies.is_empty());
    assert_eq!(d.early_cancels.len(), 1);
    let step = d.handle_message(invoke("early", "id-f", ""));
    let r = response(&step.replies[0]);
    assert_eq!(r.invocation_id, "early");
    assert_eq!(r.result.as_ref().unwrap().status_kind(), Status::Cancelled);
    assert_eq!(d.in_flight(), 0);
    assert_eq!(d.early_cancels.len(), 0);
    tokio::task::yield_now().await;
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn cancel_fires_token_and_cancelled_error_maps_to_cancelled() {
    let (mut d, mut rx) = dispatcher(Worker::builder().function(
        "wait",
        |ctx: Context, _i: Input| async move {
            ctx.cancelled().await;
            ctx.info("saw cancel");
            Err::<(), _>(HandlerError::cancelled())
        },
    ));
    d.handle_message(invoke("w1", "id-wait", ""));
    d.handle_message(invoke("w2", "id-wait", ""));
    assert!(d.handle_message(cancel("w1")).replies.is_empty());
    let mut logs = Vec::new();
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(r.invocation_id, "w1");
    assert_eq!(r.result.as_ref().unwrap().status_kind(), Status::Cancelled);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].category, "wait");
    assert_eq!(logs[0].invocation_id, "w1");
    // the sibling is untouched
    assert_eq!(d.in_flight(), 1);
    assert!(!d.in_flight["w2"].0.is_cancelled());
    // a cancel for the finished invocation is a no-op, not remembered
    d.handle_message(cancel("w1"));
    assert_eq!(d.early_cancels.len(), 0);
    // a plain error after cancellation also reads as cancelled
    d.cancel_all();
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(r.result.as_ref().unwrap().status_kind(), Status::Cancelled);
    assert_eq!(d.in_flight(), 0);
    // after cancel_all new requests are answered Cancelled at once
    let step = d.handle_message(invoke("w3", "id-wait", ""));
    assert_eq!(
        response(&step.replies[0])
            .result
            .as_ref()
            .unwrap()
            .status_kind(),
        Status::Cancelled
    );
}

#[tokio::test]
async fn panic_and_error_become_failures() {
    let (mut d, mut rx) = dispatcher(
        Worker::builder()
            .function("boom", |_c, i: Input| async move {
                let t = i.text()?;
                if t == "string" {
                    panic!("formatted {t}");
                }
                panic!("static");
                #[allow(unreachable_code)]
                Ok::<Output, HandlerError>(().into())
            })
            .function("fail", |_c, _i: Input| async {
                Err::<(), _>(HandlerError::msg("nope"))
            }),
    );
    let mut logs = Vec::new();
    for (id, f, text, want) in [
        ("p1", "id-boom", "", "handler panicked: static"),
        (
            "p2",
            "id-boom",
            "string",
            "handler panicked: formatted string",
        ),
        ("f1", "id-fail", "", "nope"),
    ] {
        d.handle_message(invoke(id, f, text));
        let r = next_done(&mut d, &mut rx, &mut logs).await;
        let result = r.result.unwrap();
        assert_eq!(result.status_kind(), Status::Failure);
        assert_eq!(result.error_message(), want);
    }
    assert_eq!(d.in_flight(), 0);
}

#[tokio::test]
async fn unknown_function_id_and_name_fail() {
    let (mut d, _rx) = dispatcher(echo());
    let step = d.handle_message(invoke("x", "nope", ""));
    let result = response(&step.replies[0]).result.clone().unwrap();
    assert_eq!(result.error_message(), "function id nope was not loaded");

    let step = d.handle_message(load("id-missing", "missing"));
    assert_eq!(load_status(&step), Status::Failure);
    let step = d.handle_message(msg(Content::FunctionLoadRequestCollection(
        FunctionLoadRequestCollection {
            function_load_requests: vec![load_req("a", "echo"), load_req("b", "missing")],
        },
    )));
    match &step.replies[0].content {
        Some(Content::FunctionLoadResponseCollection(c)) => {
            let r = &c.function_load_responses;
            assert!(r[0].result.as_ref().unwrap().is_success());
            assert_eq!(
                r[1].result.as_ref().unwrap().error_message(),
                "no handler registered for function 'missing' in this worker (registered: echo)"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn init_metadata_status_and_terminate() {
    let (mut d, _rx) = dispatcher(echo().worker_indexing(true));
    let step = d.handle_message(msg(
        Content::WorkerInitRequest(WorkerInitRequest::default()),
    ));
    match &step.replies[0].content {
        Some(Content::WorkerInitResponse(r)) => {
            assert_eq!(r.capabilities[CAP_HANDLES_INVOCATION_CANCEL], "true");
            assert_eq!(r.capabilities[CAP_WORKER_INDEXING], "true");
            assert_eq!(r.worker_metadata.as_ref().unwrap().runtime_name, "rust");
            assert!(r.result.as_ref().unwrap().is_success());
        }
        other => panic!("unexpected {other:?}"),
    }
    let step = d.handle_message(msg(Content::FunctionsMetadataRequest(
        FunctionsMetadataRequest::default(),
    )));
    match &step.replies[0].content {
        Some(Content::FunctionMetadataResponse(r)) => {
            assert!(!r.use_default_metadata_indexing);
            assert_eq!(r.function_metadata_results[0].name, "echo");
            assert_eq!(r.function_metadata_results[0].function_id, "echo");
        }
        other => panic!("unexpected {other:?}"),
    }
    let step = d.handle_message(msg(Content::WorkerStatusRequest(WorkerStatusRequest {})));
    assert!(matches!(
        step.replies[0].content,
        Some(Content::WorkerStatusResponse(_))
    ));
    let step = d.handle_message(StreamingMessage::worker_terminate(Duration::from_millis(
        1500,
    )));
    assert_eq!(step.terminate, Some(Duration::from_millis(1500)));

    let (mut d, _rx) = dispatcher(echo());
    let step = d.handle_message(msg(Content::FunctionsMetadataRequest(
        FunctionsMetadataRequest::default(),
    )));
    match &step.replies[0].content {
        Some(Content::FunctionMetadataResponse(r)) => {
            assert!(r.use_default_metadata_indexing);
            assert!(r.function_metadata_results.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn metadata_lists_http_routes_and_manual_triggers_as_raw_bindings() {
    let builder = echo()
        .http_with(
            "item",
            HttpTrigger::new()
                .route("items/{id:int}")
                .methods(["GET"])
                .auth_level(AuthLevel::Anonymous),
            |_ctx, _input: Input| async { Ok::<_, HandlerError>("item") },
        )
        .initializer(|_ctx| async { Ok::<_, HandlerError>(()) })
        .worker_indexing(true);
    let (mut d, _rx) = dispatcher(builder);
    let step = d.handle_message(msg(Content::FunctionsMetadataRequest(
        FunctionsMetadataRequest::default(),
    )));
    let Some(Content::FunctionMetadataResponse(r)) = &step.replies[0].content else {
        panic!("unexpected {:?}", step.replies);
    };
    assert!(r.result.as_ref().unwrap().is_success());
    let listed: Vec<(&str, &[String])> = r
        .function_metadata_results
        .iter()
        .map(|m| (m.name.as_str(), m.raw_bindings.as_slice()))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "echo",
                &[r#"{"type":"manualTrigger","direction":"in","name":"input"}"#.to_string()][..]
            ),
            (
                "item",
                &[
                    r#"{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"authLevel":"anonymous","route":"items/{id:int}"}"#.to_string(),
                    r#"{"type":"http","direction":"out","name":"$return"}"#.to_string(),
                ][..]
            ),
        ]
    );
    for m in &r.function_metadata_results {
        assert_eq!(m.function_id, m.name);
        assert_eq!(m.properties["worker_indexed"], "True");
    }
}

#[test]
fn bounded_set_evicts_oldest() {
    let mut s = BoundedSet::new(2);
    s.insert("a".into());
    s.insert("b".into());
    s.insert("c".into());
    assert!(!s.contains("a"));
    assert!(s.take("b"));
    assert!(!s.take("b"));
    assert_eq!(s.len(), 1);
}

#[tokio::test]
async fn the_cancel_reason_reaches_the_handler_and_the_first_one_stands() {
    let (mut d, mut rx) = dispatcher(Worker::builder().function(
        "wait",
        |ctx: Context, _i: Input| async move {
            ctx.cancelled().await;
            ctx.info(format!("reason: {:?}", ctx.cancel_reason()));
            Err::<(), _>(HandlerError::cancelled())
        },
    ));
    d.handle_message(invoke("r1", "id-wait", ""));
    let with_reason = |reason: &str| {
        msg(Content::InvocationCancel(InvocationCancel {
            invocation_id: "r1".into(),
            grace_period: None,
            reason: reason.into(),
        }))
    };
    d.handle_message(with_reason("lease lost"));
    d.handle_message(with_reason("timeout"));
    let mut logs = Vec::new();
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(r.result.as_ref().unwrap().status_kind(), Status::Cancelled);
    assert_eq!(logs[0].message, "reason: Some(\"lease lost\")");
    // A host that sends no reason: none.
    d.handle_message(invoke("r2", "id-wait", ""));
    d.handle_message(cancel("r2"));
    let mut logs = Vec::new();
    next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(logs[0].message, "reason: None");
}

#[tokio::test]
async fn the_handler_sees_the_requests_trace_context_and_none_without_one() {
    let (mut d, mut rx) = dispatcher(Worker::builder().function(
        "trace",
        |ctx: Context, _i: Input| async move {
            Ok::<_, HandlerError>(match ctx.trace_context() {
                Some(t) => format!(
                    "{}|{}|{:?}|{:?}|{:?}|{:?}",
                    t.trace_parent(),
                    t.trace_state(),
                    t.attribute("OperationName"),
                    t.trace_id(),
                    t.span_id(),
                    t.trace_flags(),
                ),
                None => "none".to_string(),
            })
        },
    ));
    let mut request = InvocationRequest {
        invocation_id: "t1".into(),
        function_id: "id-trace".into(),
        trace_context: Some(fnhost_proto::rpc::RpcTraceContext {
            trace_parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            trace_state: "congo=t61rcWkgMzE".into(),
            attributes: HashMap::from([("OperationName".into(), "trace".into())]),
            ..Default::default()
        }),
        ..InvocationRequest::default()
    };
    d.handle_message(msg(Content::InvocationRequest(request.clone())));
    let mut logs = Vec::new();
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(
        r.return_value,
        Some(TypedData::string(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01|congo=t61rcWkgMzE|\
             Some(\"trace\")|Some(\"4bf92f3577b34da6a3ce929d0e0e4736\")|\
             Some(\"00f067aa0ba902b7\")|Some(1)"
        ))
    );

    // A malformed traceparent is passed on as sent, without ids.
    request.invocation_id = "t2".into();
    request.trace_context.as_mut().unwrap().trace_parent = "not-a-traceparent".into();
    d.handle_message(msg(Content::InvocationRequest(request)));
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(
        r.return_value,
        Some(TypedData::string(
            "not-a-traceparent|congo=t61rcWkgMzE|Some(\"trace\")|None|None|None"
        ))
    );

    // No trace context in the request: none for the handler.
    d.handle_message(invoke("t3", "id-trace", ""));
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(r.return_value, Some(TypedData::string("none")));
    assert_eq!(d.in_flight(), 0);
}

fn invoke_with(
    invocation_id: &str,
    function_id: &str,
    data: TypedData,
    metadata: &[(&str, TypedData)],
) -> StreamingMessage {
    msg(Content::InvocationRequest(InvocationRequest {
        invocation_id: invocation_id.into(),
        function_id: function_id.into(),
        input_data: vec![ParameterBinding {
            name: "input".into(),
            rpc_data: Some(parameter_binding::RpcData::Data(data)),
        }],
        trigger_metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..InvocationRequest::default()
    }))
}

#[tokio::test]
async fn the_handler_sees_the_deadline_and_attempt_the_host_sent_or_the_defaults() {
    use fnhost_proto::{META_ATTEMPT, META_DEADLINE};
    let (mut d, mut rx) = dispatcher(Worker::builder().function(
        "when",
        |ctx: Context, _i: Input| async move {
            let ms = ctx
                .deadline()
                .map(|d| d.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis());
            Ok::<_, HandlerError>(format!("{ms:?} {}", ctx.attempt()))
        },
    ));
    let mut logs = Vec::new();
    for (id, metadata, want) in [
        (
            "sent",
            vec![
                (META_DEADLINE, TypedData::json("1733256000123")),
                (META_ATTEMPT, TypedData::json("2")),
            ],
            "Some(1733256000123) 2",
        ),
        ("none", vec![], "None 1"),
        (
            "bad",
            vec![
                (META_DEADLINE, TypedData::json("tomorrow")),
                (META_ATTEMPT, TypedData::json("-3")),
            ],
            "None 1",
        ),
    ] {
        d.handle_message(invoke_with(id, "id-when", TypedData::string(""), &metadata));
        let r = next_done(&mut d, &mut rx, &mut logs).await;
        assert!(r.result.as_ref().unwrap().is_success(), "{id}: {r:?}");
        assert_eq!(r.return_value, Some(TypedData::string(want)), "{id}");
    }
}

#[tokio::test]
async fn typed_json_handlers_answer_json_and_bad_json_fails_naming_the_function() {
    #[derive(serde::Deserialize)]
    struct Resize {
        width: u32,
    }
    #[derive(serde::Serialize)]
    struct Resized {
        width: u32,
    }
    async fn resize(
        _ctx: Context,
        crate::Json(req): crate::Json<Resize>,
    ) -> Result<crate::Json<Resized>, HandlerError> {
        Ok(crate::Json(Resized {
            width: req.width / 2,
        }))
    }
    let (mut d, mut rx) = dispatcher(Worker::builder().function("resize", resize));
    let mut logs = Vec::new();
    d.handle_message(invoke_with(
        "good",
        "id-resize",
        TypedData::json(r#"{"width": 640}"#),
        &[],
    ));
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    assert_eq!(r.return_value, Some(TypedData::json(r#"{"width":320}"#)));

    d.handle_message(invoke_with(
        "bad",
        "id-resize",
        TypedData::json(r#"{"height": 1}"#),
        &[],
    ));
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    let result = r.result.unwrap();
    assert_eq!(result.status_kind(), Status::Failure);
    let message = result.error_message();
    assert!(
        message.starts_with("function 'resize' got input that is not valid JSON for `")
            && message.ends_with("Resize`: missing field `width` at line 1 column 13"),
        "{message}"
    );
    assert!(result.exception.unwrap().is_user_exception);
    assert_eq!(d.in_flight(), 0);
}

#[tokio::test]
async fn a_panic_before_the_handlers_future_is_a_failure_too() {
    let (mut d, mut rx) = dispatcher(Worker::builder().function("eager", |_c, i: Input| {
        // Panics when called, before it returns a future.
        let text = i.text().unwrap();
        assert!(text.is_empty(), "eager panic: {text}");
        async { Ok::<_, HandlerError>(()) }
    }));
    let mut logs = Vec::new();
    d.handle_message(invoke("p", "id-eager", "boom"));
    let r = next_done(&mut d, &mut rx, &mut logs).await;
    let result = r.result.unwrap();
    assert_eq!(result.status_kind(), Status::Failure);
    assert_eq!(
        result.error_message(),
        "handler panicked: eager panic: boom"
    );
}
