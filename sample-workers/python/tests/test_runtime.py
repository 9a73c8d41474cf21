"""The worker process against a scripted host on 127.0.0.1: the stream
opening, request-id stamping, and the two ways a worker is told to stop
(``WorkerTerminate`` and SIGTERM), which both cancel in-flight work, reply,
and exit 0. Runs the sample app (``../python-app/function_app.py``) as a
script and through the installed ``fnhost-python-worker`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import AsyncIterator, Optional

import grpc
import pytest

from fnhost_worker._proto import pb, pb_grpc

APP_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "python-app")
APP = os.path.join(APP_DIR, "function_app.py")
COMMAND = os.path.join(os.path.dirname(sys.executable), "fnhost-python-worker")
#: How the worker is started: `python function_app.py`, the command naming
#: the script (as the host runs it), or the command alone in the app's
#: directory (it loads function_app.py from there).
LAUNCHERS = {
    "script": ([sys.executable, APP], None),
    "command": ([COMMAND, APP], None),
    "command in the app directory": ([COMMAND], APP_DIR),
}
Status = pb.StatusResult


class ScriptedHost(pb_grpc.FunctionRpcServicer):
    """Accepts one event stream; the test reads ``inbox`` and feeds ``outbox``."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Optional[pb.StreamingMessage]] = asyncio.Queue()
        self.outbox: asyncio.Queue[Optional[pb.StreamingMessage]] = asyncio.Queue()

    async def EventStream(self, request_iterator, context) -> AsyncIterator[pb.StreamingMessage]:  # noqa: N802
        async def pump() -> None:
            async for msg in request_iterator:
                await self.inbox.put(msg)
            await self.inbox.put(None)  # the worker half-closed

        reader = asyncio.create_task(pump())
        while (msg := await self.outbox.get()) is not None:
            yield msg
        await reader

    async def expect_any(self) -> pb.StreamingMessage:
        msg = await asyncio.wait_for(self.inbox.get(), 10)
        assert msg is not None, "the stream closed"
        return msg

    async def expect(self, kind: str) -> pb.StreamingMessage:
        msg = await asyncio.wait_for(self.inbox.get(), 10)
        assert msg is not None, f"the stream closed while waiting for {kind}"
        got = msg.WhichOneof("content")
        assert got == kind, f"expected {kind}, got {got}: {msg}"
        return msg


async def start_worker(
    style: str, launcher: str = "script", env: Optional[dict[str, str]] = None
) -> tuple[grpc.aio.Server, ScriptedHost, asyncio.subprocess.Process]:
    host = ScriptedHost()
    server = grpc.aio.server()
    pb_grpc.add_FunctionRpcServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    if style == "classic":
        args = ["--host", "127.0.0.1", "--port", str(port), "--workerId", "w-1", "--requestId", "r-1",
                "--grpcMaxMessageLength", "2147483647"]
    else:
        args = ["--functions-uri", f"http://127.0.0.1:{port}/", "--functions-worker-id", "w-1",
                "--functions-request-id", "r-1", "--functions-grpc-max-message-length", "2147483647"]
    command, cwd = LAUNCHERS[launcher]
    proc = await asyncio.create_subprocess_exec(*command, *args, cwd=cwd, env={**os.environ, **(env or {})})
    return server, host, proc


async def stop_worker(
    server: grpc.aio.Server, host: ScriptedHost, proc: asyncio.subprocess.Process
) -> None:
    """Undoes :func:`start_worker`: kills the worker if it still runs, ends
    the scripted stream and stops the server."""
    if proc.returncode is None:
        proc.kill()
    await host.outbox.put(None)
    await server.stop(None)


async def handshake_and_start_sleep(host: ScriptedHost) -> list[pb.StreamingMessage]:
    """Runs the handshake, loads `sleep`, starts a 60 s sleep; returns what
    the worker sent."""
    seen = [await host.expect("start_stream")]
    assert seen[0].start_stream.worker_id == "w-1"
    await host.outbox.put(pb.StreamingMessage(worker_init_request=pb.WorkerInitRequest(host_version="test")))
    seen.append(await host.expect("worker_init_response"))
    assert seen[-1].worker_init_response.capabilities["HandlesInvocationCancelMessage"] == "true"
    await host.outbox.put(pb.StreamingMessage(function_load_request=pb.FunctionLoadRequest(
        function_id="f-sleep", metadata=pb.RpcFunctionMetadata(name="sleep"))))
    seen.append(await host.expect("function_load_response"))
    assert seen[-1].function_load_response.result.status == Status.Success
    await host.outbox.put(pb.StreamingMessage(worker_status_request=pb.WorkerStatusRequest()))
    seen.append(await host.expect("worker_status_response"))
    await host.outbox.put(pb.StreamingMessage(invocation_request=pb.InvocationRequest(
        invocation_id="i-1", function_id="f-sleep",
        input_data=[pb.ParameterBinding(name="input", data=pb.TypedData(string="60000"))])))
    return seen


async def collect_until_response(host: ScriptedHost, seen: list[pb.StreamingMessage]) -> pb.InvocationResponse:
    while True:
        msg = await asyncio.wait_for(host.inbox.get(), 10)
        assert msg is not None, "the stream closed before the invocation was answered"
        seen.append(msg)
        if msg.WhichOneof("content") == "invocation_response":
            return msg.invocation_response


@pytest.mark.parametrize(
    "style, launcher",
    [("classic", "script"), ("functions", "script"), ("classic", "command"), ("functions", "command in the app directory")],
)
async def test_worker_terminate_cancels_in_flight_replies_and_exits(style: str, launcher: str) -> None:
    server, host, proc = await start_worker(style, launcher)
    try:
        seen = await handshake_and_start_sleep(host)
        await asyncio.sleep(0.2)  # let the sleep start
        await host.outbox.put(pb.StreamingMessage(worker_terminate=pb.WorkerTerminate(grace_period={"seconds": 3})))
        resp = await collect_until_response(host, seen)
        assert resp.invocation_id == "i-1"
        assert resp.result.status == Status.Cancelled
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert all(m.request_id == "r-1" for m in seen), "every message carries --requestId"
        logs = [m.rpc_log for m in seen if m.WhichOneof("content") == "rpc_log"]
        assert any(l.invocation_id == "i-1" and l.message.startswith("sleep cancelled") for l in logs), logs
    finally:
        await stop_worker(server, host, proc)


@pytest.mark.parametrize("launcher", ["script", "command"])
async def test_sigterm_cancels_in_flight_replies_and_exits(launcher: str) -> None:
    server, host, proc = await start_worker("classic", launcher)
    try:
        seen = await handshake_and_start_sleep(host)
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        resp = await collect_until_response(host, seen)
        assert resp.result.status == Status.Cancelled
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        await stop_worker(server, host, proc)


async def test_bad_launch_arguments_exit_2() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, APP, "--host", "127.0.0.1", "--port", "1", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 2
    assert b"--workerId" in err


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_sync_handlers_answer_and_cancel_on_either_event_loop(loop: str) -> None:
    """The sync path end to end (the SDK's handler threads, results handed
    back to the loop) on both loops: many concurrent echoes, then a nap
    cancelled by the host, then terminate."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    server, host, proc = await start_worker("classic", env={"FNHOST_PYTHON_LOOP": loop})
    try:
        await host.expect("start_stream")
        await host.outbox.put(pb.StreamingMessage(worker_init_request=pb.WorkerInitRequest(host_version="test")))
        await host.expect("worker_init_response")
        for name in ("echo", "nap"):
            await host.outbox.put(pb.StreamingMessage(function_load_request=pb.FunctionLoadRequest(
                function_id=f"f-{name}", metadata=pb.RpcFunctionMetadata(name=name))))
            assert (await host.expect("function_load_response")).function_load_response.result.status == Status.Success
        n = 200
        for i in range(n):
            await host.outbox.put(pb.StreamingMessage(invocation_request=pb.InvocationRequest(
                invocation_id=f"e-{i}", function_id="f-echo",
                input_data=[pb.ParameterBinding(name="input", data=pb.TypedData(string=f"text {i}"))])))
        answers = {}
        while len(answers) < n:
            r = (await host.expect("invocation_response")).invocation_response
            answers[r.invocation_id] = r
        assert all(answers[f"e-{i}"].return_value.string == f"text {i}" for i in range(n))
        assert all(r.result.status == Status.Success for r in answers.values())
        await host.outbox.put(pb.StreamingMessage(invocation_request=pb.InvocationRequest(
            invocation_id="nap-1", function_id="f-nap",
            input_data=[pb.ParameterBinding(name="input", data=pb.TypedData(string="60000"))])))
        await asyncio.sleep(0.2)
        await host.outbox.put(pb.StreamingMessage(invocation_cancel=pb.InvocationCancel(invocation_id="nap-1")))
        while (msg := await host.expect_any()).WhichOneof("content") != "invocation_response":
            pass
        assert msg.invocation_response.invocation_id == "nap-1"
        assert msg.invocation_response.result.status == Status.Cancelled
        await host.outbox.put(pb.StreamingMessage(worker_terminate=pb.WorkerTerminate(grace_period={"seconds": 1})))
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        await stop_worker(server, host, proc)


async def test_an_unknown_event_loop_exits_2() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, APP, "--host", "127.0.0.1", "--port", "1", "--workerId", "w", "--requestId", "r",
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "FNHOST_PYTHON_LOOP": "trio"},
    )
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 2
    assert b"FNHOST_PYTHON_LOOP is 'trio'" in err
