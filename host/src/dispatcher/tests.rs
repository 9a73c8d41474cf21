//! Races at the dispatcher, driven through its handlers with a fake worker
//! stream (no process, no network).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{
    FunctionLoadResponse, InvocationResponse, StatusResult, StreamingMessage, TypedData,
    WorkerInitResponse,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::*;
use crate::config::{
    ArgumentStyle, Binding, Direction, FunctionConfig, HostConfig, WorkerLaunchConfig,
};
use crate::grpc::outbound_channel;
use crate::invocation::Dispatched;

struct Fake {
    d: Dispatcher,
    worker: WorkerId,
    urgent: mpsc::UnboundedReceiver<StreamingMessage>,
    normal: mpsc::UnboundedReceiver<StreamingMessage>,
}

fn app() -> AppConfig {
    let func = |name: &str| FunctionConfig {
        name: name.into(),
        directory: PathBuf::from("/app").join(name),
        script_file: None,
        entry_point: String::new(),
        bindings: vec![Binding {
            name: "input".into(),
            binding_type: "manualTrigger".into(),
            direction: Direction::In,
            properties: BTreeMap::new(),
            methods: None,
        }],
        raw_bindings: vec![],
        timeout: None,
        disabled: false,
        properties: Default::default(),
    };
    AppConfig {
        app_dir: PathBuf::from("/app"),
        host: HostConfig::default(),
        functions: vec![func("work")],
        worker: WorkerLaunchConfig {
            language: "test".into(),
            executable: PathBuf::from("/bin/true"),
            arguments: vec![],
            worker_path: None,
            worker_arguments: vec![],
            argument_style: ArgumentStyle::Classic,
            environment: BTreeMap::new(),
            directory: PathBuf::from("/app"),
            extensions: vec![],
            worker_indexing: false,
        },
        time_zone: Default::default(),
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<StreamingMessage>) -> Vec<Content> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        out.extend(m.content);
    }
    out
}

/// A dispatcher with one ready instance that handles cancels.
fn ready(handles_cancel: bool) -> Fake {
    ready_with(app(), handles_cancel)
}

/// A dispatcher for `app` that launches no processes, with slot 0's
/// instance launched (not yet attached).
fn launched(app: AppConfig) -> Dispatcher {
    let (commands_tx, _events_rx) = mpsc::channel(16);
    let (results_tx, _) = broadcast::channel(16);
    let (ready_tx, _) = watch::channel(0);
    let mut d = Dispatcher::new(
        Arc::new(app),
        "127.0.0.1:1".parse().unwrap(),
        commands_tx,
        results_tx,
        ready_tx,
    );
    d.launch_processes = false;
    d.launch(0);
    d
}

/// A dispatcher for `app` (no processes) with one ready instance in slot 0.
fn ready_with(app: AppConfig, handles_cancel: bool) -> Fake {
    let mut d = launched(app);
    let worker = d.slots[0].current.clone().unwrap();
    let (urgent, normal) = attach_loaded(&mut d, &worker, handles_cancel);
    assert_eq!(d.instances[&worker].state, InstanceState::Ready);
    Fake {
        d,
        worker,
        urgent,
        normal,
    }
}

type Receivers = (
    mpsc::UnboundedReceiver<StreamingMessage>,
    mpsc::UnboundedReceiver<StreamingMessage>,
);

/// Attaches a fake stream to the launched `worker`, answers its handshake
/// and loads every function.
fn attach_loaded(d: &mut Dispatcher, worker: &WorkerId, handles_cancel: bool) -> Receivers {
    let (outbound, urgent, mut normal) = outbound_channel();
    d.handle_attach(worker, outbound).unwrap();
    let mut caps = std::collections::HashMap::new();
    if handles_cancel {
        caps.insert(
            fnhost_proto::CAP_HANDLES_INVOCATION_CANCEL.to_string(),
            "true".to_string(),
        );
    }
    let init = WorkerInitResponse {
        capabilities: caps,
        result: Some(StatusResult::success()),
        ..WorkerInitResponse::default()
    };
    d.handle_worker_message(
        worker,
        StreamingMessage::from_content(Content::WorkerInitResponse(init)),
    );
    for c in drain(&mut normal) {
        if let Content::FunctionLoadRequest(req) = c {
            let resp = FunctionLoadResponse {
                function_id: req.function_id,
                result: Some(StatusResult::success()),
                is_dependency_downloaded: false,
            };
            d.handle_worker_message(
                worker,
                StreamingMessage::from_content(Content::FunctionLoadResponse(resp)),
            );
        }
    }
    (urgent, normal)
}

type Reply = crate::dispatcher::ReplyRx;

fn invoke(f: &mut Fake, id: &str) -> Reply {
    let (reply, rx) = oneshot::channel();
    f.d.handle_command(Command::Invoke {
        function: "work".into(),
        id: id.into(),
        input: InvocationInput::new(TypedData::string("x")),
        reply,
        http: None,
    });
    rx
}

fn respond(f: &mut Fake, worker: &WorkerId, id: &str, result: StatusResult) {
    let resp = InvocationResponse {
        invocation_id: id.into(),
        result: Some(result),
        ..InvocationResponse::default()
    };
    f.d.handle_worker_message(
        worker,
        StreamingMessage::from_content(Content::InvocationResponse(resp)),
    );
}

fn cancels(f: &mut Fake) -> usize {
    drain(&mut f.urgent)
        .into_iter()
        .filter(|c| matches!(c, Content::InvocationCancel(_)))
        .count()
}

#[tokio::test(start_paused = true)]
async fn cancel_after_completion_is_a_no_op() {
    let mut f = ready(true);
    let mut rx = invoke(&mut f, "a");
    let w = f.worker.clone();
    respond(&mut f, &w, "a", StatusResult::success());
    assert_eq!(rx.try_recv().unwrap().unwrap().outcome, Outcome::Succeeded);
    assert_eq!(
        f.d.handle_cancel(&"a".into(), CancelReason::Requested),
        CancelResponse::AlreadyCompleted
    );
    assert_eq!(cancels(&mut f), 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_cancel_sends_nothing_more() {
    let mut f = ready(true);
    let _rx = invoke(&mut f, "a");
    assert_eq!(
        f.d.handle_cancel(&"a".into(), CancelReason::Requested),
        CancelResponse::Done
    );
    assert_eq!(
        f.d.handle_cancel(&"a".into(), CancelReason::Timeout),
        CancelResponse::AlreadyCancelling
    );
    assert_eq!(cancels(&mut f), 1);
}

#[tokio::test(start_paused = true)]
async fn a_result_after_a_kill_is_a_logged_no_op() {
    let mut f = ready(true);
    let mut rx = invoke(&mut f, "a");
    let mut neighbour = invoke(&mut f, "b");
    f.d.handle_cancel(&"a".into(), CancelReason::Timeout);
    // The grace period ends without an answer: the instance is killed.
    f.d.handle_timer(Timer::CancelGrace("a".into()));
    let killed = rx.try_recv().unwrap().unwrap();
    assert_eq!(killed.outcome, Outcome::Killed);
    let n = neighbour.try_recv().unwrap().unwrap();
    assert_eq!(n.outcome, Outcome::Killed);
    assert!(
        n.error.unwrap().contains(f.worker.as_str()),
        "the neighbour's error names the instance"
    );
    // A late answer from the killed instance changes nothing.
    let before = f.d.protocol_violations;
    let w = f.worker.clone();
    respond(&mut f, &w, "a", StatusResult::success());
    assert_eq!(f.d.protocol_violations, before + 1);
    assert_eq!(f.d.outcome_counts[&Outcome::Killed], 2);
    assert!(!f.d.outcome_counts.contains_key(&Outcome::Succeeded));
    // A replacement was launched in the slot.
    assert_ne!(f.d.slots[0].current.as_ref(), Some(&w));
}

#[tokio::test(start_paused = true)]
async fn a_result_from_another_worker_is_ignored() {
    let mut f = ready(true);
    let mut rx = invoke(&mut f, "a");
    respond(&mut f, &"someone-else".into(), "a", StatusResult::success());
    assert!(rx.try_recv().is_err(), "still running");
    assert_eq!(f.d.protocol_violations, 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_during_shutdown_is_answered_and_workers_are_terminated_after() {
    let mut f = ready(true);
    let mut rx = invoke(&mut f, "a");
    drain(&mut f.normal);
    let (done, _done_rx) = oneshot::channel();
    f.d.handle_command(Command::Shutdown { reply: done });
    assert_eq!(cancels(&mut f), 1);
    assert_eq!(
        f.d.handle_cancel(&"a".into(), CancelReason::Requested),
        CancelResponse::AlreadyCancelling
    );
    // No new work is taken.
    let mut late = invoke(&mut f, "b");
    assert_eq!(
        late.try_recv().unwrap().unwrap_err(),
        InvokeError::ShuttingDown
    );
    let w = f.worker.clone();
    respond(&mut f, &w, "a", StatusResult::cancelled());
    let r = rx.try_recv().unwrap().unwrap();
    assert_eq!(
        (r.outcome, r.cancel_reason),
        (Outcome::Cancelled, Some(CancelReason::HostShutdown))
    );
    let terminate = drain(&mut f.normal)
        .into_iter()
        .any(|c| matches!(c, Content::WorkerTerminate(_)));
    assert!(
        terminate,
        "WorkerTerminate follows once nothing is in flight"
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_without_the_capability_is_killed_instead_of_signalled() {
    let mut f = ready(false);
    let mut rx = invoke(&mut f, "a");
    assert_eq!(
        f.d.handle_cancel(&"a".into(), CancelReason::Requested),
        CancelResponse::Forced
    );
    assert_eq!(cancels(&mut f), 0);
    let r = rx.try_recv().unwrap().unwrap();
    assert_eq!(r.outcome, Outcome::Killed);
    assert!(r.error.unwrap().contains("cannot receive InvocationCancel"));
}

#[tokio::test(start_paused = true)]
async fn a_queued_invocation_cancelled_never_reaches_a_worker() {
    let mut f = ready(true);
    f.d.instances.get_mut(&f.worker).unwrap().state = InstanceState::Loading {
        indexing: false,
        pending: Default::default(),
    };
    let mut rx = invoke(&mut f, "q");
    assert_eq!(f.d.queue.len(), 1);
    assert_eq!(
        f.d.handle_cancel(&"q".into(), CancelReason::Requested),
        CancelResponse::Done
    );
    assert_eq!(rx.try_recv().unwrap().unwrap().outcome, Outcome::Cancelled);
    assert!(f.d.queue.is_empty());
    let requests = drain(&mut f.normal)
        .into_iter()
        .filter(|c| matches!(c, Content::InvocationRequest(_)))
        .count();
    assert_eq!(requests, 0);
}

#[tokio::test(start_paused = true)]
async fn the_function_timeout_sends_a_cancel_with_the_grace() {
    let mut f = ready(true);
    let _rx = invoke(&mut f, "a");
    f.d.handle_timer(Timer::Timeout("a".into()));
    let sent = drain(&mut f.urgent);
    match sent.as_slice() {
        [Content::InvocationCancel(c)] => {
            assert_eq!(c.invocation_id, "a");
            let grace = fnhost_proto::duration_from_proto(c.grace_period.as_ref().unwrap());
            assert_eq!(grace, f.d.app.host.cancel_grace);
        }
        other => panic!("expected one cancel, got {other:?}"),
    }
}

#[test]
fn long_stack_traces_keep_their_head_and_say_how_much_was_cut() {
    use super::invocations::{bounded_trace, STACK_TRACE_LIMIT};
    assert_eq!(bounded_trace("short"), "short");
    // A multi-byte character straddles the limit: the cut moves before it.
    let long = format!("{}é{}", "a".repeat(STACK_TRACE_LIMIT - 1), "b".repeat(100));
    let cut = bounded_trace(&long);
    assert!(cut.starts_with(&"a".repeat(STACK_TRACE_LIMIT - 1)));
    assert!(
        cut.ends_with("\n... (102 more bytes cut)"),
        "{}",
        &cut[cut.len() - 40..]
    );
}

#[tokio::test(start_paused = true)]
async fn claims_by_strangers_count_as_refused_not_as_violations() {
    let mut f = ready(true);
    let w = f.worker.clone();
    assert!(f.d.handle_claim(&"not-launched".into()).is_err());
    // The live instance already has its stream.
    assert!(f.d.handle_claim(&w).is_err());
    f.d.handle_command(Command::Refused);
    assert_eq!(f.d.refused_streams, 3);
    assert_eq!(f.d.protocol_violations, 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_leaving_a_worker_that_cannot_be_signalled_abandons_only_its_invocation() {
    let mut f = ready(false);
    let mut left = invoke(&mut f, "a");
    let mut neighbour = invoke(&mut f, "b");
    assert_eq!(
        f.d.handle_cancel(&"a".into(), CancelReason::ClientDisconnected),
        CancelResponse::Abandoned
    );
    let w = f.worker.clone();
    assert_eq!(
        f.d.slots[0].current.as_deref(),
        Some(w.as_str()),
        "not killed"
    );
    assert_eq!(f.d.instances[&w].state, InstanceState::Ready);
    assert!(
        left.try_recv().is_err(),
        "no answer goes to a client that left"
    );
    // Both run on; the abandoned one's result is dropped, the other's delivered.
    respond(&mut f, &w, "a", StatusResult::success());
    respond(&mut f, &w, "b", StatusResult::success());
    assert_eq!(
        neighbour.try_recv().unwrap().unwrap().outcome,
        Outcome::Succeeded
    );
    assert_eq!(f.d.outcome_counts[&Outcome::Succeeded], 2);
    assert!(!f.d.outcome_counts.contains_key(&Outcome::Killed));
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_invocation_is_still_ended_by_its_timeout() {
    let mut f = ready(false);
    let _left = invoke(&mut f, "a");
    let mut neighbour = invoke(&mut f, "b");
    f.d.handle_cancel(&"a".into(), CancelReason::ClientDisconnected);
    let w = f.worker.clone();
    f.d.handle_timer(Timer::Timeout("a".into()));
    // The timeout may kill: the instance goes, and its neighbour with it.
    assert_ne!(f.d.slots[0].current.as_ref(), Some(&w));
    assert_eq!(
        neighbour.try_recv().unwrap().unwrap().outcome,
        Outcome::Killed
    );
}

/// Crashes the slot's current instance and runs the restart timer.
fn crash_and_restart(f: &mut Fake) -> WorkerId {
    let w = f.d.slots[0].current.clone().unwrap();
    f.d.handle_worker_exited(&w, "exit code 1");
    f.d.handle_timer(Timer::Restart(0));
    f.d.slots[0].current.clone().unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn the_restart_budget_window_moves_with_the_clock() {
    let mut cfg = app();
    cfg.host.max_restarts = 2;
    cfg.host.restart_window = Duration::from_secs(10);
    let mut f = ready_with(cfg, true);
    crash_and_restart(&mut f);
    crash_and_restart(&mut f);
    // The third crash in the window exhausts the budget: the slot stays
    // down until its restart timer (due when the window has passed) fires.
    let w = f.d.slots[0].current.clone().unwrap();
    f.d.handle_worker_exited(&w, "exit code 1");
    assert!(f.d.slots[0].current.is_none());
    assert!(f.d.status().slots[0].budget_exhausted);
    // Once the window has passed, the slot comes back and the old restarts
    // no longer count.
    tokio::time::advance(Duration::from_secs(11)).await;
    f.d.handle_timer(Timer::Restart(0));
    let w = f.d.slots[0]
        .current
        .clone()
        .expect("relaunched after the window");
    let _streams = attach_loaded(&mut f.d, &w, true);
    assert!(!f.d.status().slots[0].budget_exhausted);
    crash_and_restart(&mut f);
    let slot = &f.d.status().slots[0];
    assert_eq!(slot.recent_restarts, 1, "{slot:?}");
    assert!(!slot.budget_exhausted);
}

/// Fails the hook invocation the worker was sent last.
fn fail_hook(
    d: &mut Dispatcher,
    worker: &WorkerId,
    normal: &mut mpsc::UnboundedReceiver<StreamingMessage>,
) {
    let id = drain(normal)
        .into_iter()
        .find_map(|c| match c {
            Content::InvocationRequest(r) => Some(r.invocation_id),
            _ => None,
        })
        .expect("the initializer was sent");
    let resp = InvocationResponse {
        invocation_id: id,
        result: Some(StatusResult::failure("not yet")),
        ..InvocationResponse::default()
    };
    d.handle_worker_message(
        worker,
        StreamingMessage::from_content(Content::InvocationResponse(resp)),
    );
}

#[tokio::test(start_paused = true)]
async fn initializer_retries_back_off_doubling_from_the_configured_wait() {
    let mut cfg = app();
    cfg.host.lifecycle.initializer = Some(crate::config::HookConfig {
        function: "work".into(),
        timeout: Duration::from_secs(60),
        max_attempts: 4,
        retry_backoff: Duration::from_millis(200),
    });
    let mut d = launched(cfg);
    let w = d.slots[0].current.clone().unwrap();
    let (_urgent, mut normal) = attach_loaded(&mut d, &w, true);
    let mut waits = Vec::new();
    for _ in 0..3 {
        fail_hook(&mut d, &w, &mut normal);
        let failed_at = tokio::time::Instant::now();
        // The next timer to fire is the retry (start-up and hook timeouts
        // are far later); paused time jumps straight to it.
        let fired = d.timers.next().await.expect("a timer").into_inner();
        assert_eq!(fired, Timer::HookRetry(w.clone()));
        waits.push(failed_at.elapsed().as_millis());
        d.handle_timer(fired);
    }
    assert_eq!(waits, [200, 400, 800]);
    assert_eq!(d.lifecycle.initializer_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn idle_instances_above_the_process_count_are_retired_after_the_idle_timeout() {
    let mut cfg = app();
    cfg.host.process_count = 1;
    cfg.host.max_instances = 2;
    cfg.host.idle_timeout = Duration::from_secs(30);
    let mut f = ready_with(cfg, true);
    f.d.launch(1);
    let second = f.d.slots[1].current.clone().unwrap();
    let _streams = attach_loaded(&mut f.d, &second, true);
    tokio::time::advance(Duration::from_secs(29)).await;
    f.d.handle_timer(Timer::IdleCheck);
    assert_eq!(f.d.lifecycle.scale_ins, 0, "not idle long enough yet");
    tokio::time::advance(Duration::from_secs(2)).await;
    f.d.handle_timer(Timer::IdleCheck);
    assert_eq!(f.d.lifecycle.scale_ins, 1);
    let active =
        f.d.instances
            .values()
            .filter(|i| i.state == InstanceState::Ready)
            .count();
    assert_eq!(active, 1, "down to processCount");
}

#[tokio::test(start_paused = true)]
async fn an_oversized_message_is_uncharged_only_from_a_serving_instance_with_work() {
    let too_large = || Some("Error, decoded message length too large: found 9 bytes".to_string());
    let mut f = ready(true);
    let _a = invoke(&mut f, "a");
    let w = f.worker.clone();
    f.d.handle_command(Command::StreamClosed {
        worker_id: w,
        error: too_large(),
    });
    assert_eq!(
        f.d.status().slots[0].recent_restarts,
        0,
        "a function's output"
    );
    // The replacement breaks the same way before it serves: a crash.
    f.d.handle_timer(Timer::Restart(0));
    let starting = f.d.slots[0].current.clone().expect("replaced");
    f.d.handle_command(Command::StreamClosed {
        worker_id: starting,
        error: too_large(),
    });
    assert_eq!(f.d.status().slots[0].recent_restarts, 1, "charged");
}

#[test]
fn a_launch_secret_never_shows_in_debug_output() {
    let inst = Instance::new("w".into(), 0);
    let shown = format!("{inst:?}");
    assert!(!shown.contains(inst.launch_secret.expose()), "{shown}");
}

/// Submits `work` as an HTTP trigger with route value `id=7` and body `abc`.
fn invoke_http(
    f: &mut Fake,
    id: &str,
    body_deferred: bool,
) -> (Reply, oneshot::Receiver<Dispatched>) {
    let (reply, rx) = oneshot::channel();
    let (notify, dispatched) = oneshot::channel();
    let request = fnhost_proto::rpc::RpcHttp {
        method: "POST".into(),
        params: [("id".to_string(), "7".to_string())].into(),
        headers: [("x-other".to_string(), "v".to_string())].into(),
        body: Some(Box::new(TypedData::bytes(b"abc".to_vec()))),
        ..Default::default()
    };
    f.d.handle_command(Command::Invoke {
        function: "work".into(),
        id: id.into(),
        input: InvocationInput::http(request),
        reply,
        http: Some(HttpDispatch {
            notify,
            body_deferred,
        }),
    });
    (rx, dispatched)
}

fn sent_request(f: &mut Fake) -> Option<fnhost_proto::rpc::InvocationRequest> {
    drain(&mut f.normal).into_iter().find_map(|c| match c {
        Content::InvocationRequest(r) => Some(r),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn an_http_uri_instance_gets_route_values_as_metadata_and_no_body() {
    let mut f = ready(false);
    assert!(!f.d.streams_http());
    let uri = "http://127.0.0.1:55000";
    f.d.instances
        .get_mut(&f.worker)
        .unwrap()
        .capabilities
        .insert(fnhost_proto::CAP_HTTP_URI.to_string(), uri.to_string());
    assert!(f.d.streams_http());
    // What the HTTP listener reads instead of asking the dispatcher.
    assert!(!f.d.streams_http.load(std::sync::atomic::Ordering::Relaxed));
    f.d.publish_streams_http();
    assert!(f.d.streams_http.load(std::sync::atomic::Ordering::Relaxed));
    let (_rx, mut dispatched) = invoke_http(&mut f, "a", true);
    let d = dispatched.try_recv().unwrap();
    assert_eq!(
        (d.worker, d.http_uri.as_deref()),
        (f.worker.clone(), Some(uri))
    );
    let req = sent_request(&mut f).expect("the InvocationRequest is sent as usual");
    let meta = &req.trigger_metadata;
    assert_eq!(meta["id"], TypedData::string("7"));
    assert_eq!(meta["Headers"], TypedData::json(r#"{"x-other":"v"}"#));
    let Some(fnhost_proto::rpc::typed_data::Data::Http(h)) =
        req.input_data[0].rpc_data.as_ref().and_then(|d| match d {
            fnhost_proto::rpc::parameter_binding::RpcData::Data(d) => d.data.clone(),
            _ => None,
        })
    else {
        panic!("an RpcHttp trigger: {req:?}");
    };
    assert!(h.body.is_none() && h.raw_body.is_none(), "{h:?}");
    // A body read before the instance was known goes over HTTP as well.
    let (_rx, mut dispatched) = invoke_http(&mut f, "b", false);
    assert_eq!(
        dispatched.try_recv().unwrap().http_uri.as_deref(),
        Some(uri)
    );
    let req = format!("{:?}", sent_request(&mut f).unwrap());
    assert!(!req.contains("[97, 98, 99]"), "no body in {req}");
}

#[tokio::test(start_paused = true)]
async fn a_deferred_body_never_goes_to_an_instance_without_http_uri() {
    let mut f = ready(false);
    let (mut rx, mut dispatched) = invoke_http(&mut f, "a", true);
    let r = rx.try_recv().unwrap().unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.error.unwrap().contains("HttpUri"));
    assert!(dispatched.try_recv().is_err(), "no dispatch to report");
    assert!(sent_request(&mut f).is_none());
    assert!(f.d.instances[&f.worker].in_flight.is_empty());
    // A read body goes as before, and the dispatch is reported.
    let (_rx, mut dispatched) = invoke_http(&mut f, "b", false);
    assert_eq!(dispatched.try_recv().unwrap().http_uri, None);
    let req = sent_request(&mut f).unwrap();
    // No headers, query or route values for a worker that reads the
    // request itself; the deadline and attempt always go.
    let mut keys: Vec<&str> = req.trigger_metadata.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["FnhostAttempt", "FnhostDeadline"], "{req:?}");
    let number = |k: &str| match &req.trigger_metadata[k].data {
        Some(fnhost_proto::rpc::typed_data::Data::Json(j)) => j.parse::<u128>().unwrap(),
        other => panic!("{k} is JSON: {other:?}"),
    };
    assert_eq!(number("FnhostAttempt"), 1, "a synchronous invocation");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let timeout = f.d.registry.get("work").unwrap().timeout.as_millis();
    let deadline = number("FnhostDeadline");
    assert!(
        deadline + 5_000 >= now + timeout && deadline <= now + timeout,
        "the deadline is the function timeout from dispatch: {deadline} vs {now} + {timeout}"
    );
    assert!(
        format!("{req:?}").contains("[97, 98, 99]"),
        "the body: {req:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_status_json_shows_worker_ids_as_plain_strings() {
    let f = ready(true);
    let json = serde_json::to_value(f.d.status()).unwrap();
    let id = serde_json::Value::String(f.worker.to_string());
    assert_eq!(json["workers"][0]["workerId"], id, "{json}");
    assert_eq!(json["slots"][0]["workerId"], id, "{json}");
}
