"""The network side: connect, open the event stream, and shuttle messages
between the stream and the :class:`~fnhost_worker.dispatcher.Dispatcher`.

Runs on ``grpc.aio``. One reader task hands each host message to the
dispatcher; one writer task drains the dispatcher's outbox (so messages are
never written concurrently: gRPC allows one write in flight per call, and
``grpc.aio`` has no way to hand it several at once) and stamps each with
the launch request id. This mirrors ``worker-sdk/src/runtime.rs``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Mapping, Optional

import grpc

from ._proto import pb, pb_grpc
from ._pool import HandlerThreads
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
    threads = HandlerThreads(max_workers=sync_threads, thread_name_prefix="fnhost-handler")
    loop = asyncio.get_running_loop()
    sigterm = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, sigterm.set)

    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_FOR)
        except asyncio.TimeoutError:
            raise ConnectError(f"could not reach the host at {args.target} within {CONNECT_FOR:.0f} s") from None

        dispatcher = Dispatcher(functions, threads, triggers=triggers, worker_indexing=worker_indexing)
        log_handler = dispatcher.log_handler()
        logging.getLogger().addHandler(log_handler)
        outbox = dispatcher.outbox
        outbox.put_nowait(pb.StreamingMessage(start_stream=pb.StartStream(worker_id=args.worker_id)))
        # Reader-writer style (no request iterator): the writer below calls
        # `write` itself, which saves the request iterator's generator and
        # the consumer task gRPC would run it in.
        call: _EventStream = pb_grpc.FunctionRpcStub(channel).EventStream(metadata=launch_metadata())
        _log.debug("event stream open to %s as %s", args.target, args.worker_id)

        writer = asyncio.create_task(_write_all(call, outbox, args.request_id))
        reader = asyncio.create_task(_read_all(call, dispatcher))
        stopper = asyncio.create_task(sigterm.wait())
        try:
            # One wait for the whole stream, not one per message: the reader
            # handles every message itself.
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                grace = reader.result()  # raises what the dispatcher raised
            else:
                _log.debug("SIGTERM; shutting down")
                grace = DEFAULT_GRACE
            if grace is None:
                dispatcher.cancel_all()
                return
            # Cancel in-flight invocations and send their results, then
            # half-close and give the host a moment to close its side, so
            # queued messages reach it before the process exits. After a
            # SIGTERM the reader carries on meanwhile: it answers requests
            # that cross the shutdown with `Cancelled`.
            await dispatcher.drain(grace)
            outbox.put_nowait(_END_OF_STREAM)
            try:
                await asyncio.wait_for(_until_closed(call, reader, writer), CLOSE_WAIT)
            except (asyncio.TimeoutError, grpc.aio.AioRpcError):
                pass
        finally:
            for task in (reader, writer, stopper):
                task.cancel()
            logging.getLogger().removeHandler(log_handler)
            threads.shutdown(wait=False, cancel_futures=True)


#: Put on the outbox to half-close the stream once everything queued before
#: it is written; compared by identity, never sent.
_END_OF_STREAM = pb.StreamingMessage()


async def _write_all(call: _EventStream, outbox: "asyncio.Queue[pb.StreamingMessage]", request_id: str) -> None:
    """The stream's one writer (gRPC allows one write in flight at a time):
    stamps each message with the launch request id and writes it, until
    :data:`_END_OF_STREAM`, then half-closes."""
    try:
        while (msg := await outbox.get()) is not _END_OF_STREAM:
            msg.request_id = request_id
            await call.write(msg)
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
        # The stream is over; the reader sees why and stops the worker.
        _log.debug("event stream closed to writes (%s)", e)


async def _read_all(call: _EventStream, dispatcher: Dispatcher) -> Optional[float]:
    """Hands every host message to the dispatcher until the stream ends
    (``None``) or the host sends ``WorkerTerminate`` (its grace, seconds)."""
    outbox = dispatcher.outbox
    while True:
        try:
            msg = await call.read()
        except grpc.aio.AioRpcError as e:
            _log.debug("event stream failed (%s); stopping", e.code())
            return None
        if not isinstance(msg, pb.StreamingMessage):  # grpc.aio.EOF
            _log.debug("host ended the event stream; stopping")
            return None
        step = dispatcher.handle_message(msg)
        for reply in step.replies:
            outbox.put_nowait(reply)
        if step.terminate is not None:
            _log.debug("worker terminate requested (grace %.1f s)", step.terminate)
            return step.terminate


async def _until_closed(call: _EventStream, reader: "asyncio.Task[Optional[float]]", writer: "asyncio.Task[None]") -> None:
    await writer
    if not reader.done():
        await reader  # after a SIGTERM it reads on until the host closes
    while await call.read() is not grpc.aio.EOF:
        pass
