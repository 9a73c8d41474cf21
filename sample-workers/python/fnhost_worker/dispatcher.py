"""The worker's protocol state, independent of the network.

:meth:`Dispatcher.handle_message` turns one host message into immediate
replies (and starts invocation tasks); everything produced later (log lines,
finished invocations) is put on :attr:`Dispatcher.outbox`. The network loop in
``runtime.py`` only moves messages between the stream and these two, which is
what lets the unit tests drive the dispatcher without a socket.

All methods run on the event loop's thread except a sync handler's job
(:meth:`Dispatcher._run_sync`, on a handler thread) and the logging bridge;
both hand what they produce to the loop thread (:meth:`Dispatcher._post_from_thread`).
This mirrors ``worker-sdk/src/dispatcher.rs``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
import math
import platform
import threading
import traceback
from collections import OrderedDict, deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping, Optional, Union

from ._proto import pb
from ._version import __version__
from ._pool import HandlerThreads
from .context import Context, InvocationCancelled, TraceContext, current_context
from .data import Input, write_typed_data
from .triggers import ManualTrigger, Trigger, function_metadata

#: A function handler: ``def f(ctx, input)`` or ``async def f(ctx, input)``.
Handler = Callable[[Context, Input], Union[Any, Awaitable[Any]]]

#: Grace period (seconds) used when the host (or SIGTERM) gives none.
DEFAULT_GRACE = 5.0
#: How many early cancels / finished ids are remembered.
REMEMBERED_IDS = 10_000
#: Capabilities advertised in ``WorkerInitResponse`` (all with value "true").
CAPABILITIES = (
    "HandlesInvocationCancelMessage",
    "WorkerStatus",
    "RpcHttpBodyOnly",
    "RawHttpBodyBytes",
)
#: Advertised in addition when the worker indexes its own functions.
WORKER_INDEXING = "WorkerIndexing"
#: Lifecycle hooks: loaded by the host from host.json, never listed as
#: invokable functions.
LIFECYCLE_HOOKS = ("initializer", "preStop")
WORKER_VERSION = __version__

_log = logging.getLogger("fnhost_worker")

_STATUS = pb.StatusResult
_LEVELS = (
    (logging.CRITICAL, pb.RpcLog.Critical),
    (logging.ERROR, pb.RpcLog.Error),
    (logging.WARNING, pb.RpcLog.Warning),
    (logging.INFO, pb.RpcLog.Information),
    (logging.DEBUG, pb.RpcLog.Debug),
)


class BoundedSet:
    """The most recent ids, evicting the oldest beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, item: str) -> None:
        items = self._items
        if item in items:
            items.move_to_end(item)
            return
        items[item] = None
        if len(items) > self._capacity:
            items.popitem(last=False)

    def take(self, item: str) -> bool:
        """Removes ``item``, returning whether it was present."""
        return self._items.pop(item, False) is None

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Step:
    """The outcome of handling one host message."""

    #: Messages to send now, in order.
    replies: list["pb.StreamingMessage"] = field(default_factory=list)
    #: Set when the host asked the worker to terminate: the grace in seconds.
    terminate: Optional[float] = None


@dataclass
class _Function:
    """A loaded function: what every invocation of it needs, looked up once."""

    name: str
    handler: Handler
    is_async: bool


class _Invocation:
    """State of an invocation whose result has not been sent yet."""

    __slots__ = ("ctx", "runner", "handler_task")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        #: The task that runs an ``async def`` handler and sends its result
        #: (a sync handler's job reports through the thread bridge instead).
        self.runner: Optional[asyncio.Task[None]] = None
        #: The handler's own task, for ``async def`` handlers once started.
        self.handler_task: Optional[asyncio.Future[Any]] = None


def _succeeded(response: "pb.InvocationResponse", value: Any) -> None:
    """Fills a successful ``response`` with the handler's return ``value``."""
    if value is not None:
        write_typed_data(response.return_value, value)
    response.result.status = _STATUS.Success


def _failed(response: "pb.InvocationResponse", exc: BaseException, ctx: Context) -> None:
    """Fills ``response`` for a handler that raised ``exc``: ``Cancelled``
    once the invocation was cancelled, else a user ``Failure``."""
    response.ClearField("return_value")
    response.result.CopyFrom(status(_STATUS.Cancelled) if ctx.cancelled else user_failure(exc, ctx.function_name))


def status(kind: "pb.StatusResult.Status", message: str = "") -> "pb.StatusResult":
    """A ``StatusResult``; a non-empty ``message`` becomes its exception."""
    result = pb.StatusResult(status=kind)
    if message:
        result.exception.message = message
    return result


def user_failure(exc: BaseException, function_name: str) -> "pb.StatusResult":
    """``Failure`` for an exception raised by user code, with its traceback."""
    result = pb.StatusResult(status=_STATUS.Failure)
    e = result.exception
    # An exception whose __str__ raises must still become a result: a
    # raise here would leave its invocation without an answer.
    try:
        e.message = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001
        e.message = f"{type(exc).__name__}: (its str() raised)"
    try:
        e.stack_trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # noqa: BLE001
        e.stack_trace = ""
    e.type = f"{type(exc).__module__}.{type(exc).__qualname__}"
    e.source = function_name
    e.is_user_exception = True
    return result


#: Trigger metadata the host adds to every request, which the protocol has
#: no field for: ``TypedData.json`` of a number each.
META_DEADLINE = "FnhostDeadline"
"""Unix milliseconds (UTC) at which the host's function timeout fires."""
META_ATTEMPT = "FnhostAttempt"
"""The attempt of an async event, 1-based (1 for a synchronous invocation)."""


def _metadata_number(data: Optional["pb.TypedData"]) -> Optional[float]:
    """A number sent as ``TypedData.json`` (or ``int`` / ``double``), else ``None``."""
    if data is None:
        return None
    kind = data.WhichOneof("data")
    value: object
    if kind == "json":
        text = data.json
        # What the host sends: a JSON integer, read without the JSON parser
        # (ASCII digits without a leading zero, which JSON would refuse;
        # short enough to be exact as a float).
        if 0 < len(text) <= 15 and text.isdigit() and text.isascii() and (text[0] != "0" or len(text) == 1):
            return float(int(text))
        try:
            value = json.loads(text)
        except ValueError:
            return None
    elif kind in ("int", "double"):
        value = getattr(data, kind)
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def deadline_of(metadata: Mapping[str, "pb.TypedData"]) -> Optional[datetime]:
    """The request's ``FnhostDeadline`` as a UTC ``datetime``; ``None`` when
    absent or not a representable time."""
    ms = _metadata_number(metadata.get(META_DEADLINE))
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def attempt_of(metadata: Mapping[str, "pb.TypedData"]) -> int:
    """The request's ``FnhostAttempt``; 1 when absent or not a whole number >= 1."""
    n = _metadata_number(metadata.get(META_ATTEMPT))
    return int(n) if n is not None and n >= 1 and n == int(n) else 1


def _rpc_level(levelno: int) -> "pb.RpcLog.Level":
    return next((rpc for py, rpc in _LEVELS if levelno >= py), pb.RpcLog.Trace)


class Dispatcher:
    """Turns host messages into replies and runs invocations."""

    def __init__(
        self,
        functions: Mapping[str, Handler],
        executor: Executor,
        *,
        triggers: Optional[Mapping[str, Trigger]] = None,
        worker_indexing: bool = False,
    ) -> None:
        """``functions`` maps function names to handlers; sync handlers run on
        ``executor``. With ``worker_indexing`` the worker lists its functions
        when the host asks for metadata, each with its trigger from
        ``triggers`` (a manual trigger when absent). Must be created on the
        running event loop."""
        self._functions = dict(functions)
        self._triggers = dict(triggers or {})
        self._worker_indexing = worker_indexing
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        #: Messages produced asynchronously (logs, invocation responses).
        self.outbox: asyncio.Queue[pb.StreamingMessage] = asyncio.Queue()
        #: function_id → the loaded function.
        self._loaded: dict[str, _Function] = {}
        #: invocation_id → state of every invocation whose result is not sent.
        self._in_flight: dict[str, _Invocation] = {}
        self._early_cancels = BoundedSet(REMEMBERED_IDS)
        self._finished = BoundedSet(REMEMBERED_IDS)
        self._closing = False
        #: Resolved when the last in-flight invocation finishes (set by drain).
        self._idle: Optional[asyncio.Future[None]] = None
        #: The fast path for sync handlers, when the executor is the SDK's own.
        self._threads = executor if isinstance(executor, HandlerThreads) else None
        #: Calls posted by other threads (:meth:`_post_from_thread`).
        self._from_threads: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._wake_pending = False
        #: Held by a posting thread from its check of ``_wake_pending`` until
        #: the wake-up it schedules is queued (see :meth:`_post_from_thread`).
        #: Re-entrant: ``call_soon_threadsafe`` runs Python code, so a garbage
        #: collection inside it can run a finalizer that logs, and the log
        #: handler posts again from the same thread.
        self._wake_lock = threading.RLock()

    # -- queries ---------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Number of invocations whose result has not been sent yet."""
        return len(self._in_flight)

    @property
    def remembered_early_cancels(self) -> int:
        """Number of cancels remembered for requests not seen yet."""
        return len(self._early_cancels)

    # -- host messages ---------------------------------------------------

    def handle_message(self, msg: "pb.StreamingMessage") -> Step:
        """Handles one message from the host."""
        kind = msg.WhichOneof("content")
        # The two messages of every invocation first.
        if kind == "invocation_request":
            response = self._invoke(msg.invocation_request)
            return _reply(invocation_response=response) if response is not None else Step()
        if kind == "invocation_cancel":
            c = msg.invocation_cancel
            self._cancel(c.invocation_id, c.reason)
            return Step()
        if kind == "worker_init_request":
            return _reply(worker_init_response=self._init_response())
        if kind == "function_load_request":
            return _reply(function_load_response=self._load(msg.function_load_request))
        if kind == "function_load_request_collection":
            responses = [self._load(r) for r in msg.function_load_request_collection.function_load_requests]
            return _reply(
                function_load_response_collection=pb.FunctionLoadResponseCollection(
                    function_load_responses=responses
                )
            )
        if kind == "functions_metadata_request":
            return _reply(function_metadata_response=self._metadata_response())
        if kind == "worker_status_request":
            return _reply(worker_status_response=pb.WorkerStatusResponse())
        if kind == "worker_terminate":
            t = msg.worker_terminate
            grace = t.grace_period.ToTimedelta().total_seconds() if t.HasField("grace_period") else DEFAULT_GRACE
            return Step(terminate=grace)
        _log.debug("ignoring message %s", kind)
        return Step()

    def _init_response(self) -> "pb.WorkerInitResponse":
        capabilities = {c: "true" for c in CAPABILITIES}
        if self._worker_indexing:
            capabilities[WORKER_INDEXING] = "true"
        return pb.WorkerInitResponse(
            worker_version=WORKER_VERSION,
            capabilities=capabilities,
            result=status(_STATUS.Success),
            worker_metadata=pb.WorkerMetadata(
                runtime_name="python",
                runtime_version=platform.python_version(),
                worker_version=WORKER_VERSION,
                worker_bitness=platform.machine(),
            ),
        )

    def _metadata_response(self) -> "pb.FunctionMetadataResponse":
        if not self._worker_indexing:
            # Functions are described by function.json files (host indexing).
            return pb.FunctionMetadataResponse(use_default_metadata_indexing=True, result=status(_STATUS.Success))
        return pb.FunctionMetadataResponse(
            function_metadata_results=[
                function_metadata(name, self._triggers.get(name, ManualTrigger()))
                for name in sorted(self._functions)
                if name not in LIFECYCLE_HOOKS
            ],
            result=status(_STATUS.Success),
            use_default_metadata_indexing=False,
        )

    def _load(self, req: "pb.FunctionLoadRequest") -> "pb.FunctionLoadResponse":
        name = req.metadata.name
        if name in self._functions:
            handler = self._functions[name]
            self._loaded[req.function_id] = _Function(name, handler, inspect.iscoroutinefunction(handler))
            _log.debug("loaded %s as %s", name, req.function_id)
            result = status(_STATUS.Success)
        else:
            registered = ", ".join(sorted(self._functions))
            result = status(
                _STATUS.Failure,
                f"no handler registered for function '{name}' in this worker (registered: {registered})",
            )
        return pb.FunctionLoadResponse(function_id=req.function_id, result=result)

    # -- invocations -----------------------------------------------------

    def _invoke(self, req: "pb.InvocationRequest") -> Optional["pb.InvocationResponse"]:
        """Starts an invocation, or answers it at once when it cannot run."""
        inv_id = req.invocation_id
        if inv_id in self._in_flight:
            _log.warning("ignoring duplicate invocation request %s", inv_id)
            return None
        if self._early_cancels.take(inv_id) or self._closing:
            _log.debug("invocation %s cancelled before it started", inv_id)
            return pb.InvocationResponse(invocation_id=inv_id, result=status(_STATUS.Cancelled))
        function = self._loaded.get(req.function_id)
        if function is None:
            return pb.InvocationResponse(
                invocation_id=inv_id,
                result=status(_STATUS.Failure, f"function id {req.function_id} was not loaded"),
            )
        trace = TraceContext.from_proto(req.trace_context) if req.HasField("trace_context") else None
        meta = req.trigger_metadata
        ctx = Context(inv_id, function.name, trace, deadline=deadline_of(meta), attempt=attempt_of(meta))
        inv = _Invocation(ctx)
        data = Input.from_request(req)
        # The handler runs in a context that carries `current_context`, so
        # log records it makes (in its task or its pool thread) name the
        # invocation. A task copies the context it is created in
        # (create_task's `context=` needs Python 3.11).
        run_ctx = contextvars.copy_context()
        run_ctx.run(current_context.set, ctx)
        self._in_flight[inv_id] = inv
        if function.is_async:
            inv.runner = run_ctx.run(self._loop.create_task, self._run(inv, function.handler, data))
            return None
        job = functools.partial(self._run_sync, run_ctx, ctx, function.handler, data)
        try:
            if self._threads is not None:
                self._threads.run_soon(job)
            else:
                self._executor.submit(job)
        except RuntimeError as exc:  # the pool is shut down: the worker is stopping
            self._in_flight.pop(inv_id, None)
            return pb.InvocationResponse(invocation_id=inv_id, result=status(_STATUS.Failure, str(exc)))
        return None

    async def _run(self, inv: _Invocation, handler: Handler, data: Input) -> None:
        """Runs an ``async def`` handler in its own task (so a cancel
        reaches it as ``CancelledError``) and queues its result."""
        ctx = inv.ctx
        msg = pb.StreamingMessage()
        response = msg.invocation_response
        response.invocation_id = ctx.invocation_id
        try:
            if ctx.cancelled:  # cancelled between the request and this task's start
                raise InvocationCancelled()
            inv.handler_task = asyncio.ensure_future(handler(ctx, data))
            value = await inv.handler_task
            _succeeded(response, value)
        except (asyncio.CancelledError, InvocationCancelled):
            response.ClearField("return_value")
            response.result.status = _STATUS.Cancelled
        except BaseException as exc:  # noqa: BLE001 - every user error becomes a result
            _failed(response, exc, ctx)
        self._finish(msg)

    def _run_sync(
        self, run_ctx: contextvars.Context, ctx: Context, handler: Handler, data: Input
    ) -> None:
        """Runs a sync handler on a pool thread, builds its result there and
        hands it to the loop thread (:meth:`_post_from_thread`)."""
        msg = pb.StreamingMessage()
        response = msg.invocation_response
        response.invocation_id = ctx.invocation_id
        try:
            if ctx.cancelled:  # cancelled while queued for a thread
                raise InvocationCancelled()
            _succeeded(response, run_ctx.run(handler, ctx, data))
        except (asyncio.CancelledError, InvocationCancelled):
            response.ClearField("return_value")
            response.result.status = _STATUS.Cancelled
        except BaseException as exc:  # noqa: BLE001 - every user error becomes a result
            _failed(response, exc, ctx)
        self._post_from_thread(self._finish, msg)

    def _finish(self, msg: "pb.StreamingMessage") -> None:
        """Drops the invocation's state just as its response is queued."""
        inv_id = msg.invocation_response.invocation_id
        self._in_flight.pop(inv_id, None)
        self._finished.add(inv_id)
        self.outbox.put_nowait(msg)
        if not self._in_flight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _cancel(self, inv_id: str, reason: str = "") -> None:
        """Cancels an invocation; a non-empty ``reason`` becomes its
        :attr:`Context.cancel_reason` unless an earlier cancel gave one."""
        inv = self._in_flight.get(inv_id)
        if inv is not None:
            _log.debug("cancelling %s (reason %r)", inv_id, reason)
            self._cancel_invocation(inv, reason)
        elif inv_id in self._finished:
            _log.debug("cancel for finished invocation %s ignored", inv_id)
        else:
            _log.debug("cancel before request %s; remembered", inv_id)
            self._early_cancels.add(inv_id)

    @staticmethod
    def _cancel_invocation(inv: _Invocation, reason: str = "") -> None:
        # The reason is recorded before the event is set and the task is
        # cancelled, so a woken handler reads it.
        inv.ctx._cancel(reason or None)
        if inv.handler_task is not None:
            inv.handler_task.cancel()

    def cancel_all(self) -> None:
        """Cancels every in-flight invocation and answers later requests with
        ``Cancelled``."""
        self._closing = True
        for inv in list(self._in_flight.values()):
            self._cancel_invocation(inv)

    async def drain(self, grace: float) -> None:
        """Cancels everything and waits up to ``grace`` seconds for the
        results (which land on :attr:`outbox`)."""
        self.cancel_all()
        if self._in_flight:
            self._idle = self._loop.create_future()
            await asyncio.wait([self._idle], timeout=grace)
        if self._in_flight:
            _log.warning("grace period ended with %d invocation(s) still running", len(self._in_flight))

    # -- from other threads ----------------------------------------------

    def _post_from_thread(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Calls ``fn(arg)`` on the loop thread, after everything posted
        before it. Posts made while the loop is busy share one wake-up
        (``call_soon_threadsafe`` writes to the loop's self-pipe each time),
        which under load is most of them."""
        # Under the lock, a post that finds the flag set knows the wake-up
        # that will run it is queued on the loop already, ahead of anything
        # this thread schedules later (a `to_thread` result, say, which ends
        # the handler). Setting the flag before scheduling without the lock
        # left a window where a log line could reach the host after its
        # invocation's result. A post re-entered from inside the call below
        # finds the flag set and its line is carried by the wake-up being
        # queued. The loop clears the flag without the lock,
        # before it empties the queue, so a post is never left behind; a
        # stale read costs at most one extra wake-up.
        with self._wake_lock:
            self._from_threads.append((fn, arg))
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    self._loop.call_soon_threadsafe(self._run_posted)
                except RuntimeError:
                    pass  # the loop is closed: the worker is exiting

    def _run_posted(self) -> None:
        self._wake_pending = False
        posted = self._from_threads
        while posted:
            fn, arg = posted.popleft()
            fn(arg)

    # -- logging bridge --------------------------------------------------

    def post(self, msg: "pb.StreamingMessage") -> None:
        """Queues ``msg`` for the host; safe to call from any thread."""
        if threading.get_ident() == self._loop_thread:
            self.outbox.put_nowait(msg)
        else:
            self._post_from_thread(self.outbox.put_nowait, msg)

    def log_handler(self) -> logging.Handler:
        """A :mod:`logging` handler that sends records to the host as ``RpcLog``."""
        return RpcLogHandler(self)


class RpcLogHandler(logging.Handler):
    """Forwards log records to the host.

    Records made while a handler runs (in its task, or its pool thread) are
    user logs tied to that invocation and forwarded at any level the logger
    lets through; other records are worker (system) logs and forwarded from
    ``WARNING`` up only, so the SDK's and gRPC's debug chatter stays local.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__(logging.NOTSET)
        self._dispatcher = dispatcher

    def createLock(self) -> None:  # noqa: N802 - logging.Handler's name
        """No handler lock: :meth:`emit` is safe from any thread, and a lock
        here taken in the other order than the dispatcher's wake-up lock (a
        finalizer logging while a post holds it) could deadlock two threads."""
        self.lock = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            ctx = current_context.get()
            if ctx is None and record.levelno < logging.WARNING:
                return
            log = pb.RpcLog(
                invocation_id=ctx.invocation_id if ctx else "",
                category=record.name,
                level=_rpc_level(record.levelno),
                message=record.getMessage(),
                log_category=pb.RpcLog.User if ctx else pb.RpcLog.System,
            )
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                log.exception.message = f"{type(exc).__name__}: {exc}"
                log.exception.stack_trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self._dispatcher.post(pb.StreamingMessage(rpc_log=log))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _reply(**content: Any) -> Step:
    return Step(replies=[pb.StreamingMessage(**content)])
