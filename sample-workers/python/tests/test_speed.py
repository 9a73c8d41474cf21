"""The pieces that make the worker fast keep its behaviour: the handler
threads, the event-loop choice, the fast paths for trigger metadata and the
lazy parts of ``Context`` and ``Input``."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from fnhost_worker import Context, Input
from fnhost_worker._loop import LoopError, loop_factory, run_on
from fnhost_worker._pool import HandlerThreads
from fnhost_worker._proto import pb
from fnhost_worker.data import to_typed_data, write_typed_data, HttpResponse
from fnhost_worker.dispatcher import _metadata_number
from fnhost_worker.testing import cancel


# -- handler threads -------------------------------------------------------


def test_handler_threads_run_blocking_jobs_side_by_side_up_to_the_limit() -> None:
    threads = HandlerThreads(max_workers=4)
    release = threading.Event()
    running = []
    lock = threading.Lock()
    all_four = threading.Event()

    def job() -> None:
        with lock:
            running.append(threading.current_thread().name)
            if len(running) == 4:
                all_four.set()
        release.wait(10)

    try:
        for _ in range(6):
            threads.run_soon(job)
        assert all_four.wait(5), f"only {len(running)} jobs started"
        time.sleep(0.05)
        assert len(running) == 4, "a fifth job ran beyond max_workers"
        release.set()
        deadline = time.monotonic() + 5
        while len(running) < 6:
            assert time.monotonic() < deadline, "queued jobs did not run after the others finished"
            time.sleep(0.005)
        assert len(set(running)) == 4, running
    finally:
        release.set()
        threads.shutdown(wait=True)


def test_a_job_that_raises_leaves_its_thread_working(capsys: pytest.CaptureFixture[str]) -> None:
    threads = HandlerThreads(max_workers=1)
    done = threading.Event()

    def boom() -> None:
        raise ValueError("from a job")

    try:
        threads.run_soon(boom)
        threads.run_soon(done.set)
        assert done.wait(5), "the only thread died with the job that raised"
    finally:
        threads.shutdown(wait=True)
    assert "ValueError: from a job" in capsys.readouterr().err


def test_handler_threads_reuse_idle_threads() -> None:
    threads = HandlerThreads(max_workers=8)
    names: list[str] = []
    try:
        for _ in range(50):
            done = threading.Event()

            def job() -> None:
                names.append(threading.current_thread().name)
                done.set()

            threads.run_soon(job)
            assert done.wait(5)
            time.sleep(0.001)  # let the thread go idle again
        assert len(set(names)) <= 2, f"sequential jobs started {len(set(names))} threads"
    finally:
        threads.shutdown(wait=True)


def test_handler_threads_are_an_executor_and_refuse_work_after_shutdown() -> None:
    threads = HandlerThreads(max_workers=2)
    assert threads.submit(lambda a, b: a + b, 2, b=3).result(5) == 5
    failing = threads.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(5)
    threads.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="shut down"):
        threads.run_soon(lambda: None)
    threads.shutdown()  # a second shutdown is a no-op
    with pytest.raises(ValueError):
        HandlerThreads(max_workers=0)


def test_a_shutdown_that_cancels_futures_cancels_the_queued_submits() -> None:
    threads = HandlerThreads(max_workers=1)
    started = threading.Event()
    release = threading.Event()

    def block() -> str:
        started.set()
        release.wait(10)
        return "ran"

    try:
        running = threads.submit(block)
        assert started.wait(5)
        queued = [threads.submit(lambda: "never") for _ in range(3)]
        threads.shutdown(wait=False, cancel_futures=True)
        for future in queued:
            # Before the fix these stayed pending for ever.
            assert future.cancelled(), future
    finally:
        release.set()
    assert running.result(5) == "ran", "the running job is not cancelled"


# -- the event loop ---------------------------------------------------------


def test_the_event_loop_choice() -> None:
    assert loop_factory("asyncio") is None
    with pytest.raises(LoopError, match="FNHOST_PYTHON_LOOP is 'trio'"):
        loop_factory("trio")
    try:
        import uvloop
    except ImportError:
        assert loop_factory("auto") is None
        with pytest.raises(LoopError, match="not installed"):
            loop_factory("uvloop")
    else:
        assert loop_factory("auto") is uvloop.new_event_loop
        assert loop_factory(" UVLOOP ") is uvloop.new_event_loop


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert loop_factory("auto") is None
    with pytest.raises(LoopError, match="not installed"):
        loop_factory("uvloop")


@pytest.mark.parametrize("choice", ["asyncio", "auto"])
def test_run_on_runs_the_coroutine_to_its_result(choice: str) -> None:
    async def answer() -> int:
        return 42

    assert run_on(loop_factory(choice), answer()) == 42


# -- trigger metadata, context, input and results ----------------------------


@pytest.mark.parametrize(
    "text", ["0", "1", "1765000000000", "007", "1_0", "\u0661", "12345678901234567890", " 12", "1.5", "-3", "", "true"]
)
def test_metadata_numbers_read_as_the_json_parser_would(text: str) -> None:
    try:
        value = json.loads(text)
        expected = None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)
    except ValueError:
        expected = None
    assert _metadata_number(pb.TypedData(json=text)) == expected


def test_a_cancel_event_made_after_the_cancel_is_already_set() -> None:
    early = Context.for_test()
    cancel(early, "timeout")
    assert early.cancelled and early.cancel_event.is_set() and early.cancel_reason == "timeout"
    late = Context.for_test()
    event = late.cancel_event
    assert not event.is_set() and late.cancel_event is event
    cancel(late)
    assert event.is_set() and late.cancelled and late.cancel_reason is None


def test_contexts_of_one_function_share_its_logger() -> None:
    assert Context.for_test(function_name="f").logger is Context.for_test(function_name="f").logger
    assert Context.for_test(function_name="f").logger.name == "fnhost.function.f"


def test_input_reads_bindings_and_metadata_from_the_request() -> None:
    req = pb.InvocationRequest(
        input_data=[
            pb.ParameterBinding(name="req", data=pb.TypedData(string="trigger")),
            pb.ParameterBinding(name="extra", data=pb.TypedData(json="[1]")),
        ],
        trigger_metadata={"Key": pb.TypedData(string="v")},
    )
    data = Input.from_request(req)
    assert data.text() == "trigger"
    assert data.binding("req") == pb.TypedData(string="trigger")
    assert data.binding("extra") == pb.TypedData(json="[1]")
    assert data.binding("missing") is None
    assert data.trigger_metadata("Key") == pb.TypedData(string="v")
    assert data.trigger_metadata("missing") is None
    assert "missing" not in req.trigger_metadata, "a lookup must not add to the request"
    assert Input.from_request(pb.InvocationRequest()).data is None


@pytest.mark.parametrize(
    "value",
    ["text", b"bytes", bytearray(b"buffer"), memoryview(b"view"), {"a": [1, 2]}, 3,
     HttpResponse(201, body=memoryview(b"body"), headers={"x": "y"}), HttpResponse(body="text body"),
     pb.TypedData(string="ready")],
)
def test_results_written_in_place_match_the_converted_ones(value: object) -> None:
    typed = pb.TypedData()
    write_typed_data(typed, value)
    assert typed == to_typed_data(value)
    if isinstance(value, HttpResponse):
        assert typed.http == value.to_rpc()
        assert typed.http.body.bytes == (value.body.encode() if isinstance(value.body, str) else bytes(value.body))


def test_run_on_without_asyncio_runner_cancels_leftover_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python 3.9/3.10 path (no ``asyncio.Runner``), taken here by
    pretending to be 3.10."""
    import asyncio

    import fnhost_worker._loop as loop_module

    monkeypatch.setattr(loop_module.sys, "version_info", (3, 10, 0))
    cancelled = []

    async def leftover() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> str:
        asyncio.ensure_future(leftover())
        await asyncio.sleep(0)
        return "done"

    assert run_on(asyncio.new_event_loop, main()) == "done"
    assert cancelled == [True]
