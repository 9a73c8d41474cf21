"""Unit tests of the sample app's handlers (``../python-app/function_app.py``):
its indexed triggers, the ``tick`` timer called directly and through the
dispatcher, and ``trace``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Iterator

import pytest

from fnhost_worker import Context, Input, TraceContext
from fnhost_worker._proto import pb
from fnhost_worker.dispatcher import Dispatcher

APP_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "python-app")

NEXT = "2024-05-01T12:01:00.000Z"


def timer_info(next_: str = NEXT, past_due: bool = False) -> str:
    """The TimerInfo JSON the host sends a timer function."""
    return json.dumps(
        {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {
                "Last": "2024-05-01T12:00:00.000Z",
                "Next": next_,
                "LastUpdated": "2024-05-01T12:00:00.000Z",
            },
            "IsPastDue": past_due,
        }
    )


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_function_app", os.path.join(APP_DIR, "function_app.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sample() -> ModuleType:
    return load_app()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


async def test_the_sample_apps_indexed_bindings_match_its_function_json(
    sample: ModuleType, pool: ThreadPoolExecutor
) -> None:
    d = Dispatcher(sample.app.functions, pool, triggers=sample.app.triggers, worker_indexing=True)
    reply = d.handle_message(pb.StreamingMessage(functions_metadata_request=pb.FunctionsMetadataRequest()))
    results = reply.replies[0].function_metadata_response.function_metadata_results
    indexed = {m.name: [json.loads(b) for b in m.raw_bindings] for m in results}
    folders = sorted(f for f in os.listdir(APP_DIR) if os.path.isfile(os.path.join(APP_DIR, f, "function.json")))
    assert sorted(indexed) == folders
    for name in folders:
        with open(os.path.join(APP_DIR, name, "function.json")) as f:
            assert indexed[name] == json.load(f)["bindings"], name
    assert indexed["tick"] == [
        {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 * * * * *", "runOnStartup": False}
    ]


async def test_tick_logs_the_scheduled_time_and_returns_it(
    sample: ModuleType, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAMPLE_TICK_WORK_MS", raising=False)
    caplog.set_level(logging.INFO)
    result = await sample.tick(Context.for_test(function_name="tick"), Input(pb.TypedData(json=timer_info())))
    assert result == f"ticked {NEXT}"
    assert messages(caplog) == [f"tick {NEXT} (past due: false)"]

    caplog.clear()
    late = Input(pb.TypedData(json=timer_info(past_due=True)))
    assert await sample.tick(Context.for_test(function_name="tick"), late) == f"ticked {NEXT}"
    assert messages(caplog) == [f"tick {NEXT} (past due: true)"]


async def test_tick_works_for_sample_tick_work_ms(
    sample: ModuleType, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMPLE_TICK_WORK_MS", "30")
    caplog.set_level(logging.INFO)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await sample.tick(Context.for_test(function_name="tick"), Input(pb.TypedData(json=timer_info())))
    assert loop.time() - started >= 0.025
    assert result == f"ticked {NEXT}"
    assert messages(caplog) == [f"tick {NEXT} (past due: false)"]


async def test_tick_cancelled_while_working_logs_the_reason(
    sample: ModuleType, pool: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMPLE_TICK_WORK_MS", "60000")
    caplog.set_level(logging.INFO)
    d = Dispatcher(sample.app.functions, pool)
    load = pb.FunctionLoadRequest(function_id="id-tick", metadata=pb.RpcFunctionMetadata(name="tick"))
    loaded = d.handle_message(pb.StreamingMessage(function_load_request=load)).replies[0]
    assert loaded.function_load_response.result.status == pb.StatusResult.Success
    handler = d.log_handler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        request = pb.InvocationRequest(
            invocation_id="t1",
            function_id="id-tick",
            input_data=[pb.ParameterBinding(name="timer", data=pb.TypedData(json=timer_info()))],
        )
        d.handle_message(pb.StreamingMessage(invocation_request=request))
        logs: list[pb.RpcLog] = []

        async def next_message() -> pb.StreamingMessage:
            msg = await asyncio.wait_for(d.outbox.get(), 5)
            if msg.WhichOneof("content") == "rpc_log":
                logs.append(msg.rpc_log)
            return msg

        while not logs:  # the tick has started working
            assert (await next_message()).WhichOneof("content") == "rpc_log"
        cancel = pb.InvocationCancel(invocation_id="t1", reason="lease lost")
        d.handle_message(pb.StreamingMessage(invocation_cancel=cancel))
        while (msg := await next_message()).WhichOneof("content") != "invocation_response":
            pass
    finally:
        root.removeHandler(handler)
    assert msg.invocation_response.result.status == pb.StatusResult.Cancelled
    assert [(log.invocation_id, log.message) for log in logs] == [
        ("t1", f"tick {NEXT} (past due: false)"),
        ("t1", f"tick {NEXT} cancelled (lease lost)"),
    ]


async def test_tick_cancelled_without_a_reason_says_so(
    sample: ModuleType, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMPLE_TICK_WORK_MS", "60000")
    caplog.set_level(logging.INFO)
    input = Input(pb.TypedData(json=timer_info()))
    task = asyncio.ensure_future(sample.tick(Context.for_test(function_name="tick"), input))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert messages(caplog) == [f"tick {NEXT} (past due: false)", f"tick {NEXT} cancelled (no reason given)"]


def test_trace_returns_the_trace_context_it_was_given_or_nulls(sample: ModuleType) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = Context.for_test(
        function_name="trace",
        trace_context=TraceContext(parent, "congo=t61rcWkgMzE", {"OperationName": "trace"}),
    )
    assert sample.trace(ctx, Input(pb.TypedData(string=""))) == {
        "traceParent": parent,
        "traceState": "congo=t61rcWkgMzE",
        "attributes": {"OperationName": "trace"},
    }
    assert sample.trace(Context.for_test(), Input(pb.TypedData(string=""))) == {
        "traceParent": None,
        "traceState": None,
        "attributes": None,
    }


def test_deadline_reports_the_attempt_the_deadline_and_the_time_left(sample: ModuleType) -> None:
    when = (datetime.now(timezone.utc) + timedelta(seconds=30)).replace(microsecond=0)
    ctx = Context.for_test(function_name="deadline", deadline=when, attempt=2)
    result = sample.deadline(ctx, Input(pb.TypedData(string="")))
    assert (result["attempt"], result["deadlineMs"]) == (2, int(when.timestamp()) * 1000)
    assert 28_000 < result["remainingMs"] <= 30_000, result
    past = Context.for_test(deadline=datetime(2020, 1, 1, tzinfo=timezone.utc))
    assert sample.deadline(past, Input())["remainingMs"] == 0
    assert sample.deadline(Context.for_test(), Input()) == {"attempt": 1, "deadlineMs": None, "remainingMs": None}


def test_deadline_fails_the_attempts_before_fail_before(sample: ModuleType) -> None:
    ask = Input(pb.TypedData(json='{"failBefore": 3}'))
    with pytest.raises(RuntimeError, match="attempt 2 failing on purpose"):
        sample.deadline(Context.for_test(attempt=2), ask)
    assert sample.deadline(Context.for_test(attempt=3), ask)["attempt"] == 3
