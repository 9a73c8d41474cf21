"""Unit tests for the dispatcher: the cancel paths, failures, logs and state
clean-up, driven through protocol messages without a network."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

import pytest

from fnhost_worker import Context, Input, InvocationCancelled, TraceContext
from fnhost_worker._pool import HandlerThreads
from fnhost_worker._proto import pb
from fnhost_worker.dispatcher import REMEMBERED_IDS, Dispatcher, attempt_of, deadline_of

Status = pb.StatusResult


# -- helpers -------------------------------------------------------------


def load(name: str, function_id: str | None = None) -> pb.StreamingMessage:
    return pb.StreamingMessage(
        function_load_request=pb.FunctionLoadRequest(
            function_id=function_id or f"id-{name}", metadata=pb.RpcFunctionMetadata(name=name)
        )
    )


def invoke(inv_id: str, function: str, text: str = "") -> pb.StreamingMessage:
    return pb.StreamingMessage(
        invocation_request=pb.InvocationRequest(
            invocation_id=inv_id,
            function_id=f"id-{function}",
            input_data=[pb.ParameterBinding(name="input", data=pb.TypedData(string=text))],
        )
    )


def cancel(inv_id: str, reason: str = "") -> pb.StreamingMessage:
    return pb.StreamingMessage(invocation_cancel=pb.InvocationCancel(invocation_id=inv_id, reason=reason))


async def next_response(d: Dispatcher, timeout: float = 5.0) -> pb.InvocationResponse:
    """The next invocation response on the outbox (skipping log lines)."""
    while True:
        msg = await asyncio.wait_for(d.outbox.get(), timeout)
        if msg.WhichOneof("content") == "invocation_response":
            return msg.invocation_response


async def wait_for(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@pytest.fixture(params=["ThreadPoolExecutor", "HandlerThreads"])
def pool(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Every test runs with any executor (``submit``) and with the SDK's own
    handler threads (the worker's fast path)."""
    executor: Executor
    if request.param == "HandlerThreads":
        executor = HandlerThreads(max_workers=32)
    else:
        executor = ThreadPoolExecutor(max_workers=32)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)



async def make(functions: dict, pool: Executor) -> Dispatcher:
    d = Dispatcher(functions, pool)
    for name in functions:
        step = d.handle_message(load(name))
        assert step.replies[0].function_load_response.result.status == Status.Success
    return d


# -- tests ---------------------------------------------------------------


async def test_handshake_advertises_cancel_and_answers_status_and_metadata(pool: Executor) -> None:
    d = Dispatcher({}, pool)
    init = d.handle_message(pb.StreamingMessage(worker_init_request=pb.WorkerInitRequest(host_version="1")))
    caps = init.replies[0].worker_init_response.capabilities
    assert caps["HandlesInvocationCancelMessage"] == "true"
    assert init.replies[0].worker_init_response.result.status == Status.Success
    status = d.handle_message(pb.StreamingMessage(worker_status_request=pb.WorkerStatusRequest()))
    assert status.replies[0].WhichOneof("content") == "worker_status_response"
    meta = d.handle_message(pb.StreamingMessage(functions_metadata_request=pb.FunctionsMetadataRequest()))
    assert meta.replies[0].function_metadata_response.use_default_metadata_indexing is True


async def test_loading_an_unknown_function_fails_naming_it(pool: Executor) -> None:
    d = Dispatcher({"known": lambda ctx, i: None}, pool)
    reply = d.handle_message(load("missing")).replies[0].function_load_response
    assert reply.function_id == "id-missing"
    assert reply.result.status == Status.Failure
    assert "'missing'" in reply.result.exception.message
    assert "known" in reply.result.exception.message


async def test_async_handler_task_is_cancelled_and_answered_cancelled(pool: Executor) -> None:
    seen: list[str] = []

    async def sleeper(ctx: Context, _input: Input) -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("CancelledError")
            raise
        return "slept"

    d = await make({"sleep": sleeper}, pool)
    assert d.handle_message(invoke("i1", "sleep")).replies == []
    await asyncio.sleep(0.01)  # let the handler reach its await
    d.handle_message(cancel("i1"))
    resp = await next_response(d)
    assert resp.invocation_id == "i1"
    assert resp.result.status == Status.Cancelled
    assert seen == ["CancelledError"]


async def test_sync_handler_observes_cancel_event_and_is_answered_cancelled(pool: Executor) -> None:
    running = threading.Event()
    observed: list[bool] = []

    def napper(ctx: Context, _input: Input) -> str:
        running.set()
        if ctx.cancel_event.wait(60):
            observed.append(ctx.cancelled)
            raise InvocationCancelled()
        return "napped"

    d = await make({"nap": napper}, pool)
    d.handle_message(invoke("i1", "nap"))
    await wait_for(running.is_set, "the handler to start")
    d.handle_message(cancel("i1"))
    resp = await next_response(d)
    assert resp.result.status == Status.Cancelled
    assert observed == [True]


async def test_cancel_reason_reaches_an_async_handler(pool: Executor) -> None:
    seen: list[object] = []

    async def sleeper(ctx: Context, _input: Input) -> str:
        seen.append(ctx.cancel_reason)  # None before any cancel
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append(ctx.cancel_reason)
            raise
        return "slept"

    d = await make({"sleep": sleeper}, pool)
    d.handle_message(invoke("i1", "sleep"))
    await asyncio.sleep(0.01)  # let the handler reach its await
    d.handle_message(cancel("i1", "lease lost"))
    resp = await next_response(d)
    assert resp.result.status == Status.Cancelled
    assert seen == [None, "lease lost"]


TRACE_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_handlers_see_the_requests_trace_context_and_none_without_one(pool: Executor) -> None:
    seen: list[object] = []

    def sync_handler(ctx: Context, _input: Input) -> str:
        seen.append(ctx.trace_context)
        return "ok"

    async def async_handler(ctx: Context, _input: Input) -> str:
        seen.append(ctx.trace_context)
        return "ok"

    d = await make({"sync": sync_handler, "async": async_handler}, pool)
    for n, name in enumerate(["sync", "async"]):
        msg = invoke(f"t{n}", name)
        t = msg.invocation_request.trace_context
        t.trace_parent = TRACE_PARENT
        t.trace_state = "congo=t61rcWkgMzE"
        t.attributes["OperationName"] = name
        d.handle_message(msg)
        assert (await next_response(d)).result.status == Status.Success
    d.handle_message(invoke("t-none", "sync"))
    assert (await next_response(d)).result.status == Status.Success

    first, second, none = seen
    assert isinstance(first, TraceContext) and isinstance(second, TraceContext)
    assert first.trace_parent == TRACE_PARENT
    assert first.trace_state == "congo=t61rcWkgMzE"
    assert first.attributes == {"OperationName": "sync"}
    assert isinstance(first.attributes, dict)  # a plain dict, not the protobuf map
    assert first.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (first.span_id, first.trace_flags) == ("00f067aa0ba902b7", 1)
    assert second == TraceContext(TRACE_PARENT, "congo=t61rcWkgMzE", {"OperationName": "async"})
    assert none is None
    assert Context.for_test().trace_context is None


def test_a_malformed_traceparent_is_kept_without_ids() -> None:
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
    ]:
        t = TraceContext(bad)
        assert (t.trace_id, t.span_id, t.trace_flags) == (None, None, None), bad
        assert t.trace_parent == bad
    later = TraceContext("01" + TRACE_PARENT[2:] + "-more")
    assert later.span_id == "00f067aa0ba902b7"


async def test_the_first_cancel_reason_stands(pool: Executor) -> None:
    running = threading.Event()
    first_seen = threading.Event()
    go_on = threading.Event()
    seen: list[object] = []
    contexts: list[Context] = []

    def napper(ctx: Context, _input: Input) -> str:
        contexts.append(ctx)
        running.set()
        ctx.cancel_event.wait(60)
        seen.append(ctx.cancel_reason)
        first_seen.set()
        go_on.wait(10)  # the later cancels arrive meanwhile
        seen.append(ctx.cancel_reason)
        raise InvocationCancelled()

    d = await make({"nap": napper}, pool)
    d.handle_message(invoke("i1", "nap"))
    await wait_for(running.is_set, "the handler to start")
    d.handle_message(cancel("i1", "lease lost"))
    await wait_for(first_seen.is_set, "the handler to see the cancel")
    d.handle_message(cancel("i1", "timeout"))
    d.handle_message(cancel("i1"))  # no reason: does not clear it either
    go_on.set()
    resp = await next_response(d)
    assert resp.result.status == Status.Cancelled
    assert seen == ["lease lost", "lease lost"]
    assert contexts[0].cancel_reason == "lease lost"

    # The same rule for a context made for a unit test, cancelled the way
    # the SDK does it.
    ctx = Context.for_test()
    assert ctx.cancel_reason is None
    ctx._cancel("timeout")
    ctx._cancel("duplicate run")
    assert ctx.cancelled and ctx.cancel_reason == "timeout"


async def test_a_cancel_without_a_reason_leaves_cancel_reason_none(pool: Executor) -> None:
    running = threading.Event()
    seen: list[tuple[bool, object]] = []

    def napper(ctx: Context, _input: Input) -> str:
        running.set()
        ctx.cancel_event.wait(60)
        seen.append((ctx.cancelled, ctx.cancel_reason))
        raise InvocationCancelled()

    d = await make({"nap": napper}, pool)
    d.handle_message(invoke("i1", "nap"))
    await wait_for(running.is_set, "the handler to start")
    d.handle_message(cancel("i1"))
    assert (await next_response(d)).result.status == Status.Cancelled
    # A worker shutdown gives no reason either.
    running.clear()
    d.handle_message(invoke("i2", "nap"))
    await wait_for(running.is_set, "the second handler to start")
    d.cancel_all()
    assert (await next_response(d)).result.status == Status.Cancelled
    assert seen == [(True, None), (True, None)]


async def test_any_exception_after_a_cancel_counts_as_cancelled(pool: Executor) -> None:
    running = threading.Event()

    def stops_loudly(ctx: Context, _input: Input) -> None:
        running.set()
        ctx.cancel_event.wait(60)
        raise RuntimeError("stopping")

    d = await make({"f": stops_loudly}, pool)
    d.handle_message(invoke("i1", "f"))
    await wait_for(running.is_set, "the handler to start")
    d.handle_message(cancel("i1"))
    assert (await next_response(d)).result.status == Status.Cancelled


async def test_a_cancel_before_its_request_is_remembered_and_bounded(pool: Executor) -> None:
    calls: list[str] = []

    def f(ctx: Context, _input: Input) -> str:
        calls.append(ctx.invocation_id)
        return "ran"

    d = await make({"f": f}, pool)
    d.handle_message(cancel("early"))
    assert d.remembered_early_cancels == 1
    step = d.handle_message(invoke("early", "f"))
    assert step.replies[0].invocation_response.result.status == Status.Cancelled
    assert calls == [], "the handler never ran"
    assert d.remembered_early_cancels == 0 and d.in_flight == 0

    for n in range(REMEMBERED_IDS + 5):
        d.handle_message(cancel(f"never-{n}"))
    assert d.remembered_early_cancels == REMEMBERED_IDS


async def test_an_exception_is_failure_with_its_traceback(pool: Executor) -> None:
    def boom(ctx: Context, input: Input) -> None:
        raise ValueError(f"bad input {input.text()}")

    async def aboom(ctx: Context, input: Input) -> None:
        raise KeyError("missing")

    d = await make({"boom": boom, "aboom": aboom}, pool)
    d.handle_message(invoke("i1", "boom", "x"))
    resp = await next_response(d)
    e = resp.result.exception
    assert resp.result.status == Status.Failure
    assert e.message == "ValueError: bad input x"
    assert "Traceback (most recent call last)" in e.stack_trace
    assert "in boom" in e.stack_trace and "ValueError: bad input x" in e.stack_trace
    assert e.is_user_exception and e.source == "boom"

    d.handle_message(invoke("i2", "aboom"))
    resp = await next_response(d)
    assert resp.result.status == Status.Failure
    assert resp.result.exception.message == "KeyError: 'missing'"


async def test_an_exception_whose_str_raises_is_still_a_failure(pool: Executor) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    def boom(ctx: Context, input: Input) -> None:
        raise Unprintable()

    def ok(ctx: Context, input: Input) -> str:
        return "fine"

    d = await make({"boom": boom, "ok": ok}, pool)
    d.handle_message(invoke("i1", "boom"))
    resp = await next_response(d)
    assert resp.result.status == Status.Failure
    assert resp.result.exception.message == "Unprintable: (its str() raised)"
    d.handle_message(invoke("i2", "ok"))
    resp = await next_response(d)
    assert resp.result.status == Status.Success


async def test_state_is_removed_when_the_result_is_sent_and_late_cancels_are_ignored(
    pool: Executor,
) -> None:
    async def quick(ctx: Context, input: Input) -> dict:
        return {"got": input.text()}

    d = await make({"quick": quick}, pool)
    d.handle_message(invoke("i1", "quick", "hi"))
    assert d.in_flight == 1
    resp = await next_response(d)
    assert resp.result.status == Status.Success
    assert resp.return_value.json == '{"got": "hi"}'
    assert d.in_flight == 0
    # A cancel for a finished invocation is neither applied nor remembered.
    d.handle_message(cancel("i1"))
    assert d.remembered_early_cancels == 0


async def test_duplicate_requests_and_unloaded_functions(pool: Executor) -> None:
    async def slow(ctx: Context, _input: Input) -> str:
        await asyncio.sleep(0.05)
        return "ok"

    d = await make({"slow": slow}, pool)
    d.handle_message(invoke("i1", "slow"))
    assert d.handle_message(invoke("i1", "slow")).replies == [], "duplicate ignored"
    assert (await next_response(d)).result.status == Status.Success
    with pytest.raises(asyncio.TimeoutError):
        await next_response(d, timeout=0.2)
    step = d.handle_message(invoke("i2", "nope"))
    assert step.replies[0].invocation_response.result.status == Status.Failure


async def test_concurrent_sync_invocations_do_not_serialise(pool: Executor) -> None:
    def nap(ctx: Context, _input: Input) -> str:
        time.sleep(0.2)
        return "ok"

    d = await make({"nap": nap}, pool)
    started_at = time.monotonic()
    for n in range(20):
        d.handle_message(invoke(f"i{n}", "nap"))
    results = [await next_response(d) for _ in range(20)]
    elapsed = time.monotonic() - started_at
    assert all(r.result.status == Status.Success for r in results)
    assert elapsed < 2.0, f"20 x 200 ms took {elapsed:.2f} s"


async def test_logs_reach_the_host_tied_to_their_invocation(pool: Executor) -> None:
    def sync_logs(ctx: Context, _input: Input) -> str:
        logging.getLogger("user").warning("from a thread")
        return "ok"

    async def async_logs(ctx: Context, _input: Input) -> str:
        ctx.logger.error("from a task")
        return "ok"

    d = await make({"s": sync_logs, "a": async_logs}, pool)
    handler = d.log_handler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        d.handle_message(invoke("i-sync", "s"))
        d.handle_message(invoke("i-async", "a"))
        logs: dict[str, pb.RpcLog] = {}
        done = 0
        while done < 2:
            msg = await asyncio.wait_for(d.outbox.get(), 5)
            if msg.WhichOneof("content") == "rpc_log":
                logs[msg.rpc_log.message] = msg.rpc_log
            else:
                # Each log line is queued before its invocation's response.
                inv = msg.invocation_response.invocation_id
                assert any(l.invocation_id == inv for l in logs.values()), inv
                done += 1
    finally:
        root.removeHandler(handler)
    assert logs["from a thread"].invocation_id == "i-sync"
    assert logs["from a thread"].level == pb.RpcLog.Warning
    assert logs["from a task"].invocation_id == "i-async"
    assert logs["from a task"].level == pb.RpcLog.Error
    assert logs["from a task"].category == "fnhost.function.a"


def log_line(text: str) -> pb.StreamingMessage:
    msg = pb.StreamingMessage()
    msg.rpc_log.message = text
    return msg


async def test_a_log_line_from_any_thread_reaches_the_host_before_what_that_thread_does_next() -> None:
    """A thread's post is queued on the loop before anything the thread
    schedules after it, even when another thread is part-way through
    scheduling the wake-up that will carry it."""
    d = Dispatcher({}, HandlerThreads(max_workers=1))
    loop = asyncio.get_running_loop()
    inside = threading.Event()
    release = threading.Event()

    class StallingLoop:
        """The real loop, but the thread named "stalled" pauses in
        ``call_soon_threadsafe``: it has claimed the wake-up and not yet
        queued it."""

        def __getattr__(self, name: str) -> object:
            return getattr(loop, name)

        def call_soon_threadsafe(self, *args: object) -> object:
            if threading.current_thread().name == "stalled":
                inside.set()
                release.wait(5)
            return loop.call_soon_threadsafe(*args)  # type: ignore[arg-type]

    d._loop = StallingLoop()  # type: ignore[assignment]
    first, line, result = log_line("first"), log_line("line"), log_line("result")
    stalled = threading.Thread(target=d.post, args=(first,), name="stalled")
    stalled.start()
    assert inside.wait(5)

    def handler_thread() -> None:
        d.post(line)
        # What finishing the invocation amounts to: the loop is told, the
        # way `asyncio.to_thread` tells it its function returned.
        loop.call_soon_threadsafe(d.outbox.put_nowait, result)

    other = threading.Thread(target=handler_thread)
    other.start()
    other.join(0.2)  # before the fix it ran through here, ahead of "first"
    release.set()
    stalled.join(5)
    other.join(5)
    got = [(await asyncio.wait_for(d.outbox.get(), 5)).rpc_log.message for _ in range(3)]
    assert got.index("line") < got.index("result"), got


async def test_a_post_made_on_the_same_thread_inside_a_post_neither_hangs_nor_is_lost() -> None:
    """What a finalizer that logs does when a garbage collection runs
    inside ``call_soon_threadsafe``: it posts again from the thread that
    holds the wake-up lock."""
    d = Dispatcher({}, HandlerThreads(max_workers=1))
    loop = asyncio.get_running_loop()
    reentered: list[bool] = []

    class ReenteringLoop:
        def __getattr__(self, name: str) -> object:
            return getattr(loop, name)

        def call_soon_threadsafe(self, *args: object) -> object:
            if not reentered:
                reentered.append(True)
                d.post(log_line("nested"))
            return loop.call_soon_threadsafe(*args)  # type: ignore[arg-type]

    d._loop = ReenteringLoop()  # type: ignore[assignment]
    poster = threading.Thread(target=d.post, args=(log_line("outer"),), daemon=True)
    poster.start()
    poster.join(5)
    assert not poster.is_alive(), "the re-entered post deadlocked on the wake-up lock"
    got = [(await asyncio.wait_for(d.outbox.get(), 5)).rpc_log.message for _ in range(2)]
    assert got == ["outer", "nested"]


async def test_terminate_drains_in_flight_invocations_as_cancelled(pool: Executor) -> None:
    async def sleeper(ctx: Context, _input: Input) -> str:
        await asyncio.sleep(60)
        return "slept"

    def napper(ctx: Context, _input: Input) -> str:
        ctx.cancel_event.wait(60)
        ctx.raise_if_cancelled()
        return "napped"

    d = await make({"sleep": sleeper, "nap": napper}, pool)
    d.handle_message(invoke("a", "sleep"))
    d.handle_message(invoke("s", "nap"))
    await asyncio.sleep(0.01)
    step = d.handle_message(
        pb.StreamingMessage(worker_terminate=pb.WorkerTerminate(grace_period={"seconds": 2}))
    )
    assert step.terminate == 2.0
    await d.drain(step.terminate)
    assert d.in_flight == 0
    statuses = {}
    while not d.outbox.empty():
        r = d.outbox.get_nowait().invocation_response
        statuses[r.invocation_id] = r.result.status
    assert statuses == {"a": Status.Cancelled, "s": Status.Cancelled}
    # After terminate, new requests are answered Cancelled at once.
    late = d.handle_message(invoke("late", "sleep")).replies[0].invocation_response
    assert late.result.status == Status.Cancelled


def invoke_with_metadata(inv_id: str, function: str, **metadata: pb.TypedData) -> pb.StreamingMessage:
    msg = invoke(inv_id, function)
    for key, value in metadata.items():
        msg.invocation_request.trigger_metadata[key].CopyFrom(value)
    return msg


async def test_handlers_see_the_deadline_and_attempt_the_host_sends(pool: Executor) -> None:
    seen: list[tuple[object, int]] = []

    def sync_handler(ctx: Context, _input: Input) -> str:
        seen.append((ctx.deadline, ctx.attempt))
        return "ok"

    async def async_handler(ctx: Context, _input: Input) -> str:
        seen.append((ctx.deadline, ctx.attempt))
        return "ok"

    d = await make({"sync": sync_handler, "async": async_handler}, pool)
    # 2026-01-01T00:00:00.250Z, as the host sends it: JSON numbers.
    meta = {"FnhostDeadline": pb.TypedData(json="1767225600250"), "FnhostAttempt": pb.TypedData(json="3")}
    for n, name in enumerate(["sync", "async"]):
        d.handle_message(invoke_with_metadata(f"m{n}", name, **meta))
        assert (await next_response(d)).result.status == Status.Success
    d.handle_message(invoke("m-none", "sync"))  # an older host: neither key
    assert (await next_response(d)).result.status == Status.Success

    when = datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=timezone.utc)
    assert seen == [(when, 3), (when, 3), (None, 1)]
    first = seen[0][0]
    assert isinstance(first, datetime) and first.utcoffset() == timedelta(0)


def test_a_malformed_deadline_is_none_and_a_malformed_attempt_is_1() -> None:
    for bad in ['"soon"', "true", "null", "[1]", "not json", "1e400", "-1e300"]:
        assert deadline_of({"FnhostDeadline": pb.TypedData(json=bad)}) is None, bad
    assert deadline_of({"FnhostDeadline": pb.TypedData(string="1767225600000")}) is None
    assert deadline_of({"FnhostDeadline": pb.TypedData(int=0)}) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    for bad in ["0", "-2", "2.5", '"2"', "true", "null"]:
        assert attempt_of({"FnhostAttempt": pb.TypedData(json=bad)}) == 1, bad
    assert attempt_of({"FnhostAttempt": pb.TypedData(json="2.0")}) == 2
    assert attempt_of({"FnhostAttempt": pb.TypedData(int=4)}) == 4
    assert attempt_of({}) == 1 and deadline_of({}) is None


def test_a_context_has_no_public_way_to_cancel_itself() -> None:
    public = {name for name in dir(Context) if not name.startswith("_")}
    assert not {name for name in public if "cancel" in name} - {
        "cancelled",
        "cancel_event",
        "cancel_reason",
        "raise_if_cancelled",
    }, public
    ctx = Context.for_test(deadline=datetime(2026, 1, 1, tzinfo=timezone.utc), attempt=2)
    assert (ctx.deadline, ctx.attempt, ctx.cancelled) == (datetime(2026, 1, 1, tzinfo=timezone.utc), 2, False)
    assert (Context.for_test().deadline, Context.for_test().attempt) == (None, 1)
    ctx._cancel("timeout")  # what the SDK does on InvocationCancel
    assert ctx.cancelled and ctx.cancel_event.is_set() and ctx.cancel_reason == "timeout"
