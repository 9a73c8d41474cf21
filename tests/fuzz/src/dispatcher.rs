//! Target `dispatcher`: a script of worker messages and host commands run
//! against an in-process dispatcher whose worker streams are fakes
//! (`fnhost::fuzzing::FuzzDispatcher`). Worker messages go through the
//! protobuf decoder (`raw <hex>` feeds arbitrary bytes; a decode error
//! ends the stream, as the gRPC layer would). After every line the
//! dispatcher's state must hold together:
//! - every invocation is in exactly one place: queued (once, in the queue),
//!   or running/cancelling on one instance whose in-flight set holds it (a
//!   hook: the instance's hook), and the in-flight sets hold nothing else;
//! - the in-flight count equals the sum of the per-instance in-flight sets,
//!   none over `maxConcurrentInvocations`; slots point at live instances;
//! - every accepted invocation is either held or answered exactly once,
//!   and the dispatcher's outcome count equals the answers (plus those
//!   abandoned by their callers); each is sent to a worker at most once and
//!   cancelled at most once;
//! - cancel and kill answers agree with what is held and what finished.
//!
//! Script lines (unknown ones are skipped): `config concurrency|queue|
//! instances|processes|restarts N`, `config initializer|prestop|indexing`,
//! `attach [w]`, `claim [w]`, `from w`, `init ok|fail [cap...]`,
//! `load *|<function id> ok|fail`, `metadata <name> <raw binding json>`,
//! `metadata fail|default`, `respond <id>|hook|last success|failure|
//! cancelled`, `log <id> <text>`, `status`, `heartbeat`, `raw <hex>`,
//! `close [error]`, `exit [status]`, `invoke <id> [function] [http|deferred]`,
//! `cancel <id>|hook requested|timeout|client|shutdown|lease`, `kill <id>`,
//! `tick [n]`, `shutdown`, `drain`, `statusq`. A worker `w` is `cur`
//! (slot 0's instance), `cur1` (slot 1's), a number (the n-th worker seen)
//! or `stranger`.

use std::collections::{BTreeSet, HashMap, HashSet};

use fnhost::fuzzing::{DispatcherOptions, FuzzDispatcher, InvocationView, Snapshot};
use fnhost::{CancelReason, CancelResponse, InvocationId, InvocationResult, InvokeError, WorkerId};
use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{
    FunctionLoadResponse, FunctionMetadataResponse, InvocationResponse, RpcFunctionMetadata,
    RpcLog, StatusResult, StreamingMessage, WorkerHeartbeat, WorkerInitResponse,
    WorkerStatusResponse,
};
use prost::Message;
use tokio::sync::oneshot;

use crate::engine::Target;

pub const TARGET: Target = Target {
    name: "dispatcher",
    dictionary: &[
        "\nattach cur",
        "\ninit ok cancel",
        "\ninit ok",
        "\ninit fail",
        "\nload * ok",
        "\nload * fail",
        "\ninvoke a",
        "\ninvoke b",
        "\ninvoke c http",
        "\ninvoke d deferred",
        "\nrespond a success",
        "\nrespond b failure",
        "\nrespond a cancelled",
        "\nrespond hook success",
        "\nrespond hook failure",
        "\nrespond last success",
        "\ncancel a requested",
        "\ncancel b timeout",
        "\ncancel a client",
        "\ncancel hook timeout",
        "\nkill a",
        "\nkill b",
        "\ntick",
        "\ntick 3",
        "\nshutdown",
        "\ndrain",
        "\nstatusq",
        "\nclose",
        "\nclose message length too large",
        "\nexit 1",
        "\nstatus",
        "\nheartbeat",
        "\nlog a hello",
        "\nfrom 0",
        "\nfrom 1",
        "\nfrom stranger",
        "\nfrom cur1",
        "\nattach cur1",
        "\nclaim cur",
        "\nmetadata idx {\"type\":\"manualTrigger\",\"direction\":\"in\",\"name\":\"x\"}",
        "\nmetadata fail",
        "\nmetadata default",
        "\ninvoke e idx",
        "\nraw ",
        "\nconfig initializer",
        "\nconfig prestop",
        "\nconfig indexing",
        "\nconfig concurrency 1",
        "\nconfig queue 0",
        "\nconfig instances 2",
        "\nconfig processes 2",
        "\nconfig restarts 0",
        " cancel",
        " status",
        " indexing",
        " httpuri",
        " routeparams",
        " bodyonly",
        "0a",
        "1a02",
        "12",
        "1a",
        "22",
        "32",
        "4a",
        "52",
        "0801",
        "1001",
        "ff",
        "00",
    ],
    max_len: 4096,
    run,
};

struct Submission {
    id: InvocationId,
    rx: fnhost::fuzzing::Reply,
    /// Answered (or, abandoned, ended).
    done: bool,
    requests: usize,
    cancels: usize,
}

struct Harness {
    d: FuzzDispatcher,
    opts: DispatcherOptions,
    known: Vec<WorkerId>,
    sender: String,
    subs: Vec<Submission>,
    finished: HashSet<InvocationId>,
    abandoned: HashSet<InvocationId>,
    pending_loads: HashMap<WorkerId, Vec<String>>,
    last_request: HashMap<WorkerId, String>,
    answered: u64,
    violations: u64,
    events: BTreeSet<String>,
}

fn options(script: &str) -> DispatcherOptions {
    let mut o = DispatcherOptions::default();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize, max: usize| {
            words
                .get(i)
                .and_then(|w| w.parse::<usize>().ok())
                .map(|n| n.min(max))
        };
        match words.as_slice() {
            ["config", "concurrency", ..] => o.max_concurrency = n(2, 8).unwrap_or(1).max(1),
            ["config", "queue", ..] => o.max_queue_length = n(2, 8).unwrap_or(0),
            ["config", "instances", ..] => o.max_instances = n(2, 3).unwrap_or(1).max(1),
            ["config", "processes", ..] => o.process_count = n(2, 3).unwrap_or(1).max(1),
            ["config", "restarts", ..] => o.max_restarts = n(2, 5).unwrap_or(0) as u32,
            ["config", "initializer", ..] => o.initializer = true,
            ["config", "prestop", ..] => o.pre_stop = true,
            ["config", "indexing", ..] => o.worker_indexing = true,
            _ => {}
        }
    }
    o
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a paused runtime")
}

fn run(input: &[u8]) -> String {
    let script = String::from_utf8_lossy(input);
    let opts = options(&script);
    let mut h = Harness {
        d: FuzzDispatcher::new(&opts, runtime()),
        opts,
        known: Vec::new(),
        sender: "cur".into(),
        subs: Vec::new(),
        finished: HashSet::new(),
        abandoned: HashSet::new(),
        pending_loads: HashMap::new(),
        last_request: HashMap::new(),
        answered: 0,
        violations: 0,
        events: BTreeSet::new(),
    };
    h.check("start");
    for line in script.lines().take(200) {
        h.step(line);
        h.check(line);
    }
    h.events.into_iter().collect::<Vec<_>>().join(",")
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn status(word: Option<&&str>) -> StatusResult {
    match word.copied() {
        Some("failure") | Some("fail") => StatusResult::failure("it broke"),
        Some("cancelled") => StatusResult::cancelled(),
        _ => StatusResult::success(),
    }
}

fn reason(word: Option<&&str>) -> CancelReason {
    match word.copied() {
        Some("timeout") => CancelReason::Timeout,
        Some("client") => CancelReason::ClientDisconnected,
        Some("shutdown") => CancelReason::HostShutdown,
        Some("lease") => CancelReason::LeaseLost,
        _ => CancelReason::Requested,
    }
}

impl Harness {
    fn learn_workers(&mut self) {
        let snap = self.d.snapshot();
        let mut ids: Vec<WorkerId> = snap.instances.iter().map(|i| i.worker.clone()).collect();
        ids.sort();
        for w in ids {
            if !self.known.contains(&w) {
                self.known.push(w);
            }
        }
    }

    fn worker(&mut self, word: Option<&str>) -> WorkerId {
        self.learn_workers();
        match word.unwrap_or(self.sender.as_str()) {
            "stranger" => "not-launched".into(),
            w if w.starts_with("cur") => {
                let slot = w[3..].parse().unwrap_or(0);
                self.d
                    .slot_worker(slot)
                    .unwrap_or_else(|| "no-current".into())
            }
            w => match w.parse::<usize>() {
                Ok(n) if !self.known.is_empty() => self.known[n % self.known.len()].clone(),
                _ => self.d.slot_worker(0).unwrap_or_else(|| "no-current".into()),
            },
        }
    }

    fn send(&mut self, content: Content) {
        let w = self.worker(None);
        // Every message crosses the wire format, as it does from a worker.
        let bytes = StreamingMessage::from_content(content).encode_to_vec();
        let msg = StreamingMessage::decode(bytes.as_slice()).expect("our own encoding decodes");
        self.d.from_worker(&w, msg);
    }

    fn hook_of(&mut self, w: &WorkerId) -> Option<InvocationId> {
        let snap = self.d.snapshot();
        snap.instances
            .iter()
            .find(|i| &i.worker == w)
            .and_then(|i| i.hook.clone())
            .or_else(|| {
                snap.invocations
                    .iter()
                    .find(|i| i.hook)
                    .map(|i| i.id.clone())
            })
    }

    fn target_id(&mut self, word: Option<&&str>) -> InvocationId {
        let w = self.worker(None);
        match word.copied() {
            Some("hook") => self.hook_of(&w).unwrap_or_else(|| "no-hook".into()),
            Some("last") => self
                .last_request
                .get(&w)
                .cloned()
                .unwrap_or_default()
                .into(),
            Some(id) => id.into(),
            None => "a".into(),
        }
    }

    fn step(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(op) = words.first().copied() else {
            return;
        };
        self.events.insert(format!("op:{op}"));
        match op {
            "attach" => {
                let w = self.worker(words.get(1).copied());
                let r = self.d.attach(&w);
                self.events.insert(format!("attach:{}", r.is_ok()));
            }
            "claim" => {
                let w = self.worker(words.get(1).copied());
                let r = self.d.claim(&w);
                self.events.insert(format!("claim:{}", r.is_ok()));
            }
            "from" => self.sender = words.get(1).copied().unwrap_or("cur").to_string(),
            "init" => {
                let mut capabilities = HashMap::new();
                for cap in &words[2.min(words.len())..] {
                    let (k, v) = match *cap {
                        "cancel" => (fnhost_proto::CAP_HANDLES_INVOCATION_CANCEL, "true"),
                        "status" => (fnhost_proto::CAP_WORKER_STATUS, "true"),
                        "indexing" => (fnhost_proto::CAP_WORKER_INDEXING, "true"),
                        "httpuri" => (fnhost_proto::CAP_HTTP_URI, "http://127.0.0.1:9"),
                        "routeparams" => (fnhost_proto::CAP_REQUIRES_ROUTE_PARAMETERS, "true"),
                        "bodyonly" => (fnhost_proto::CAP_RPC_HTTP_BODY_ONLY, "true"),
                        other => (other, "true"),
                    };
                    capabilities.insert(k.to_string(), v.to_string());
                }
                self.send(Content::WorkerInitResponse(WorkerInitResponse {
                    capabilities,
                    result: Some(status(words.get(1))),
                    ..WorkerInitResponse::default()
                }));
            }
            "load" => {
                let w = self.worker(None);
                let ids = match words.get(1).copied() {
                    Some("*") | None => self.pending_loads.remove(&w).unwrap_or_default(),
                    Some(id) => vec![id.to_string()],
                };
                for function_id in ids {
                    self.send(Content::FunctionLoadResponse(FunctionLoadResponse {
                        function_id,
                        result: Some(status(words.get(2))),
                        is_dependency_downloaded: false,
                    }));
                }
            }
            "metadata" => {
                let mut r = FunctionMetadataResponse::default();
                match words.get(1).copied() {
                    Some("fail") => r.result = Some(StatusResult::failure("cannot index")),
                    Some("default") => r.use_default_metadata_indexing = true,
                    name => {
                        let raw = words.get(2..).map(|w| w.join(" ")).unwrap_or_default();
                        r.function_metadata_results.push(RpcFunctionMetadata {
                            name: name.unwrap_or("idx").to_string(),
                            function_id: format!("{}-id", name.unwrap_or("idx")),
                            raw_bindings: vec![raw],
                            ..RpcFunctionMetadata::default()
                        });
                        r.result = Some(StatusResult::success());
                    }
                }
                self.send(Content::FunctionMetadataResponse(r));
            }
            "respond" => {
                let id = self.target_id(words.get(1));
                self.send(Content::InvocationResponse(InvocationResponse {
                    invocation_id: id.to_string(),
                    result: Some(status(words.get(2))),
                    ..InvocationResponse::default()
                }));
            }
            "log" => {
                let id = self.target_id(words.get(1));
                self.send(Content::RpcLog(RpcLog {
                    invocation_id: id.to_string(),
                    message: words.get(2..).map(|w| w.join(" ")).unwrap_or_default(),
                    ..RpcLog::default()
                }));
            }
            "status" => self.send(Content::WorkerStatusResponse(WorkerStatusResponse {})),
            "heartbeat" => self.send(Content::WorkerHeartbeat(WorkerHeartbeat {})),
            "raw" => {
                let rest = line.trim_start().strip_prefix("raw").unwrap_or("");
                let bytes = unhex(rest).unwrap_or_else(|| rest.as_bytes().to_vec());
                let w = self.worker(None);
                match StreamingMessage::decode(bytes.as_slice()) {
                    Ok(msg) => {
                        self.events.insert(format!("raw:{}", msg.kind()));
                        self.d.from_worker(&w, msg);
                    }
                    // tonic ends the stream on a message it cannot decode.
                    Err(e) => {
                        self.events.insert("raw:undecodable".into());
                        self.d.stream_closed(&w, Some(e.to_string()));
                    }
                }
            }
            "close" => {
                let w = self.worker(None);
                let error = (words.len() > 1).then(|| words[1..].join(" "));
                self.d.stream_closed(&w, error);
            }
            "exit" => {
                let w = self.worker(None);
                let status = words.get(1).copied().unwrap_or("exit code 1");
                self.d.worker_exited(&w, status);
            }
            "invoke" => {
                let id: InvocationId = words.get(1).copied().unwrap_or("a").into();
                let mut function = "work";
                let mut http = None;
                for w in words.iter().skip(2) {
                    match *w {
                        "http" => http = Some(false),
                        "deferred" => http = Some(true),
                        f => function = f,
                    }
                }
                let live_before = self.live(&self.d.snapshot(), &id);
                let mut rx = self.d.invoke(function, &id, http);
                match rx.try_recv() {
                    Ok(Err(InvokeError::DuplicateId(_))) => {
                        assert!(live_before, "DuplicateId for {id}, which is not held");
                        self.events.insert("invoke:duplicate".into());
                    }
                    Ok(Err(e)) => {
                        self.events
                            .insert(crate::engine::label("invoke:", &e.to_string()));
                    }
                    // Answered already (it failed at dispatch), or waiting.
                    first => {
                        assert!(!live_before, "a second live invocation {id}");
                        self.abandoned.remove(&id);
                        let mut sub = Submission {
                            id,
                            rx,
                            done: false,
                            requests: 0,
                            cancels: 0,
                        };
                        if let Ok(r) = first {
                            self.answer(&mut sub, r);
                        }
                        self.subs.push(sub);
                    }
                }
            }
            "cancel" | "kill" => {
                let id = self.target_id(words.get(1));
                let snap = self.d.snapshot();
                let before = snap.invocations.iter().find(|i| i.id == id).cloned();
                let r = match op {
                    "kill" => self.d.kill(&id),
                    _ => self.d.cancel(&id, reason(words.get(2))),
                };
                self.events.insert(format!("{op}:{r:?}"));
                match (&before, r) {
                    (None, CancelResponse::NotFound) => {}
                    (None, CancelResponse::AlreadyCompleted) => assert!(
                        self.finished.contains(&id),
                        "{op} {id}: AlreadyCompleted, but it never finished"
                    ),
                    (None, r) => panic!("{op} {id}: {r:?} for an invocation not held"),
                    (Some(_), CancelResponse::NotFound | CancelResponse::AlreadyCompleted) => {
                        panic!("{op} {id}: {r:?} for an invocation held")
                    }
                    (Some(b), CancelResponse::AlreadyCancelling) => assert!(
                        matches!(b.state, InvocationView::Cancelling(_)) && op == "cancel",
                        "{op} {id}: AlreadyCancelling from {:?}",
                        b.state
                    ),
                    (Some(_), CancelResponse::Abandoned) => {
                        self.abandoned.insert(id.clone());
                    }
                    (Some(_), _) => {}
                }
            }
            "tick" => {
                let n = words.get(1).and_then(|n| n.parse().ok()).unwrap_or(1usize);
                for _ in 0..n.min(16) {
                    match self.d.fire_next_timer() {
                        Some(t) => {
                            let kind: String =
                                t.chars().take_while(|c| c.is_alphanumeric()).collect();
                            self.events.insert(format!("timer:{kind}"));
                        }
                        None => break,
                    }
                    self.observe();
                }
            }
            "shutdown" => self.d.shutdown(),
            "drain" => self.d.drain(),
            "statusq" => {
                let status = self.d.status_json();
                assert!(status.is_object(), "{status}");
            }
            _ => {}
        }
    }

    fn live(&self, snap: &Snapshot, id: &InvocationId) -> bool {
        snap.invocations.iter().any(|i| &i.id == id && !i.hook)
    }

    fn answer(&mut self, sub: &mut Submission, r: Result<Box<InvocationResult>, InvokeError>) {
        sub.done = true;
        match r {
            Ok(result) => {
                assert_eq!(
                    result.invocation_id, sub.id,
                    "an answer for another invocation"
                );
                self.answered += 1;
                self.finished.insert(sub.id.clone());
                self.events.insert(format!("outcome:{}", result.outcome));
            }
            // Refused at dispatch (too large): ended without an outcome.
            Err(e) => {
                self.events
                    .insert(crate::engine::label("late-error:", &e.to_string()));
            }
        }
    }

    /// Reads what was sent to the workers and the answers delivered; checks
    /// each invocation was sent and cancelled at most once.
    fn observe(&mut self) {
        for sent in self.d.sent() {
            let Some(content) = sent.msg.content else {
                continue;
            };
            self.events.insert(format!(
                "sent:{}{}",
                fnhost_proto::content_kind(&content),
                if sent.urgent { "!" } else { "" }
            ));
            let (id, cancel) = match content {
                Content::FunctionLoadRequest(r) => {
                    self.pending_loads
                        .entry(sent.worker.clone())
                        .or_default()
                        .push(r.function_id);
                    continue;
                }
                Content::InvocationRequest(r) => {
                    self.last_request
                        .insert(sent.worker.clone(), r.invocation_id.clone());
                    (r.invocation_id, false)
                }
                Content::InvocationCancel(c) => (c.invocation_id, true),
                _ => continue,
            };
            assert_eq!(
                !cancel, !sent.urgent,
                "cancels, and only cancels, are urgent"
            );
            // The newest submission of that id is the one it is for.
            if let Some(sub) = self.subs.iter_mut().rev().find(|s| s.id.as_str() == id) {
                if cancel {
                    sub.cancels += 1;
                    assert!(sub.cancels <= 1, "invocation {id} was cancelled twice");
                } else {
                    sub.requests += 1;
                    assert!(sub.requests <= 1, "invocation {id} was sent twice");
                }
            }
        }
        let snap = self.d.snapshot();
        let mut subs = std::mem::take(&mut self.subs);
        for sub in subs.iter_mut().filter(|s| !s.done) {
            match sub.rx.try_recv() {
                Ok(r) => {
                    assert!(
                        !self.live(&snap, &sub.id),
                        "invocation {} was answered but is still held",
                        sub.id
                    );
                    self.answer(sub, r);
                }
                Err(oneshot::error::TryRecvError::Empty) => assert!(
                    self.live(&snap, &sub.id),
                    "invocation {} is neither held nor answered",
                    sub.id
                ),
                Err(oneshot::error::TryRecvError::Closed) => {
                    let abandoned = self.abandoned.contains(&sub.id)
                        || snap
                            .invocations
                            .iter()
                            .any(|i| i.id == sub.id && i.abandoned);
                    assert!(abandoned, "the answer to {} was dropped", sub.id);
                    self.abandoned.insert(sub.id.clone());
                    if !self.live(&snap, &sub.id) {
                        // Abandoned, then ended: counted, answered to no one.
                        sub.done = true;
                        self.answered += 1;
                        self.finished.insert(sub.id.clone());
                    }
                }
            }
        }
        // Answered ones can go, but the newest of each id stays for `sent`.
        let mut seen = HashSet::new();
        for s in subs.into_iter().rev() {
            if !s.done || seen.insert(s.id.clone()) {
                self.subs.push(s);
            }
        }
        self.subs.reverse();
    }

    fn check(&mut self, line: &str) {
        self.observe();
        let snap = self.d.snapshot();
        if let Err(why) = self.consistent(&snap) {
            panic!("after `{line}`: {why}\n{snap:#?}");
        }
        for i in &snap.instances {
            let state: String = i
                .state
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            self.events.insert(format!("instance:{state}"));
        }
    }

    fn consistent(&mut self, snap: &Snapshot) -> Result<(), String> {
        let instances: HashMap<&WorkerId, _> =
            snap.instances.iter().map(|i| (&i.worker, i)).collect();
        let mut queued = HashSet::new();
        for id in &snap.queue {
            if !queued.insert(id) {
                return Err(format!("{id} is queued twice"));
            }
        }
        let mut running = 0;
        for inv in &snap.invocations {
            let id = &inv.id;
            let holders: Vec<&WorkerId> = snap
                .instances
                .iter()
                .filter(|i| i.in_flight.contains(id))
                .map(|i| &i.worker)
                .collect();
            let hook_of: Vec<&WorkerId> = snap
                .instances
                .iter()
                .filter(|i| i.hook.as_ref() == Some(id))
                .map(|i| &i.worker)
                .collect();
            match (&inv.state, inv.hook) {
                (InvocationView::Queued, false) => {
                    if !queued.contains(id) || !holders.is_empty() {
                        return Err(format!(
                            "queued {id} is not (only) in the queue: {holders:?}"
                        ));
                    }
                }
                (InvocationView::Queued, true) => return Err(format!("hook {id} is queued")),
                (InvocationView::Running(w) | InvocationView::Cancelling(w), hook) => {
                    if queued.contains(id) {
                        return Err(format!("{id} runs on {w} and is queued"));
                    }
                    if !instances.contains_key(w) {
                        return Err(format!("{id} runs on {w}, which is gone"));
                    }
                    let (on, other) = if hook {
                        (&hook_of, &holders)
                    } else {
                        (&holders, &hook_of)
                    };
                    if on.as_slice() != [w] || !other.is_empty() {
                        return Err(format!(
                            "{id} (hook: {hook}) runs on {w}, but in-flight sets {holders:?}, hooks {hook_of:?}"
                        ));
                    }
                    running += usize::from(!hook);
                }
            }
        }
        for id in &snap.queue {
            if !snap
                .invocations
                .iter()
                .any(|i| &i.id == id && i.state == InvocationView::Queued)
            {
                return Err(format!(
                    "the queue holds {id}, which is not a queued invocation"
                ));
            }
        }
        let mut in_flight = 0;
        for i in &snap.instances {
            in_flight += i.in_flight.len();
            if i.in_flight.len() > self.opts.max_concurrency {
                return Err(format!("{} runs {} at once", i.worker, i.in_flight.len()));
            }
            for id in &i.in_flight {
                let held = snap.invocations.iter().any(|v| {
                    &v.id == id
                        && matches!(&v.state, InvocationView::Running(w) | InvocationView::Cancelling(w) if *w == i.worker)
                });
                if !held {
                    return Err(format!(
                        "{} holds {id} in flight, which does not run there",
                        i.worker
                    ));
                }
            }
        }
        if in_flight != running {
            return Err(format!(
                "{running} invocations run, in-flight sets hold {in_flight}"
            ));
        }
        let mut current = HashSet::new();
        for (slot, w) in snap.slots.iter().enumerate() {
            let Some(w) = w else { continue };
            match instances.get(w) {
                Some(i) if i.slot == slot => {}
                _ => {
                    return Err(format!(
                        "slot {slot} points at {w}, which is not its instance"
                    ))
                }
            }
            if !current.insert(w) {
                return Err(format!("{w} is current in two slots"));
            }
        }
        if snap.outcomes != self.answered {
            return Err(format!(
                "the dispatcher counts {} outcomes, callers got {} answers",
                snap.outcomes, self.answered
            ));
        }
        if snap.protocol_violations < self.violations {
            return Err("the protocol violation count went down".into());
        }
        if snap.protocol_violations > self.violations {
            self.events.insert("violation".into());
        }
        self.violations = snap.protocol_violations;
        Ok(())
    }
}
