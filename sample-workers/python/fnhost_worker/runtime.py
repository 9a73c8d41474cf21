"""The network side: connect, open the event stream, and shuttle messages
between the stream and the :class:`~fnhost_worker.dispatcher.Dispatcher`.

Runs on ``grpc.aio``. One writer drains an outbound queue (so messages are
never written concurrently) and stamps each with the launch request id.
This mirrors ``worker-sdk/src/runtime.rs``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Mapping, Optional

import grpc

from ._proto import pb, pb_grpc
from .args import LaunchArgs
from .dispatcher import DEFAULT_GRACE, Dispatcher, Handler
from .triggers import Trigger

_log = logging.getLogger("fnhost_worker")

#: How long to keep trying to reach the host's port.
CONNECT_FOR = 5.0
#: How long to wait for the host to close its side after ours is closed.
CLOSE_WAIT = 1.0


#: The worker's side of the host's ``EventStream``.
_EventStream = grpc.aio.StreamStreamCall[pb.StreamingMessage, pb.StreamingMessage]


class ConnectError(RuntimeError):
    """The host's gRPC endpoint could not be reached."""


#: The host puts a per-launch secret here (the environment, never argv);
#: presenting it proves this process is the one the host launched.
LAUNCH_SECRET_ENV = "FNHOST_WORKER_SECRET"
LAUNCH_SECRET_METADATA = "x-fnhost-worker-secret"


def launch_metadata() -> list[tuple[str, str]]:
    """The stream's metadata: the launch secret, when the host gave one."""
    secret = os.environ.get(LAUNCH_SECRET_ENV, "")
    return [(LAUNCH_SECRET_METADATA, secret)] if secret else []


async def run(
    functions: Mapping[str, Handler],
    args: LaunchArgs,
    sync_threads: int,
    *,
    triggers: Optional[Mapping[str, Trigger]] = None,
    worker_indexing: bool = False,
) -> None:
    """Serves ``functions`` to the host described by ``args`` until the host
    ends the stream, sends ``WorkerTerminate``, or the process gets SIGTERM.
    ``triggers`` and ``worker_indexing`` are as for
    :class:`~fnhost_worker.dispatcher.Dispatcher`."""
    options = [
        ("grpc.max_send_message_length", args.grpc_max_message_length),
        ("grpc.max_receive_message_length", args.grpc_max_message_length),
    ]
    executor = ThreadPoolExecutor(max_workers=sync_threads, thread_name_prefix="fnhost-handler")
    loop = asyncio.get_running_loop()
    sigterm = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, sigterm.set)

    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_FOR)
        except asyncio.TimeoutError:
            raise ConnectError(f"could not reach the host at {args.target} within {CONNECT_FOR:.0f} s") from None

        dispatcher = Dispatcher(functions, executor, triggers=triggers, worker_indexing=worker_indexing)
        log_handler = dispatcher.log_handler()
        logging.getLogger().addHandler(log_handler)
        send: asyncio.Queue[Optional[pb.StreamingMessage]] = asyncio.Queue()

        async def outbound() -> AsyncIterator[pb.StreamingMessage]:
            while (msg := await send.get()) is not None:
                msg.request_id = args.request_id
                yield msg

        send.put_nowait(pb.StreamingMessage(start_stream=pb.StartStream(worker_id=args.worker_id)))
        call: _EventStream = pb_grpc.FunctionRpcStub(channel).EventStream(outbound(), metadata=launch_metadata())
        _log.debug("event stream open to %s as %s", args.target, args.worker_id)

        async def forward_outbox() -> None:
            while True:
                send.put_nowait(await dispatcher.outbox.get())

        forwarder = asyncio.create_task(forward_outbox())
        reader = asyncio.ensure_future(call.read())
        stopper = asyncio.create_task(sigterm.wait())
        grace: Optional[float] = None
        try:
            while True:
                waiting: set[asyncio.Future[Any]] = {reader, stopper}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    _log.debug("SIGTERM; shutting down")
                    grace = DEFAULT_GRACE
                    break
                try:
                    msg = reader.result()
                except grpc.aio.AioRpcError as e:
                    _log.debug("event stream failed (%s); stopping", e.code())
                    break
                if not isinstance(msg, pb.StreamingMessage):  # grpc.aio.EOF
                    _log.debug("host ended the event stream; stopping")
                    break
                step = dispatcher.handle_message(msg)
                for reply in step.replies:
                    send.put_nowait(reply)
                if step.terminate is not None:
                    _log.debug("worker terminate requested (grace %.1f s)", step.terminate)
                    grace = step.terminate
                    break
                reader = asyncio.ensure_future(call.read())
            if grace is None:
                dispatcher.cancel_all()
                return
            # Cancel in-flight invocations and send their results, then
            # half-close and give the host a moment to close its side, so
            # queued messages reach it before the process exits.
            await dispatcher.drain(grace)
            await asyncio.sleep(0)  # let the forwarder pick up the last results
            while not dispatcher.outbox.empty():
                send.put_nowait(dispatcher.outbox.get_nowait())
            send.put_nowait(None)
            try:
                await asyncio.wait_for(_until_closed(call, reader), CLOSE_WAIT)
            except (asyncio.TimeoutError, grpc.aio.AioRpcError):
                pass
        finally:
            forwarder.cancel()
            stopper.cancel()
            logging.getLogger().removeHandler(log_handler)
            executor.shutdown(wait=False, cancel_futures=True)


async def _until_closed(call: _EventStream, reader: "asyncio.Future[object]") -> None:
    if not reader.done():
        await reader
    while await call.read() is not grpc.aio.EOF:
        pass
