"""Per-invocation :class:`Context`: identity, cancellation, trace and logging.

Cancellation reaches user code in the two ways Python code is written:

- an ``async def`` handler's task is cancelled, so the ``await`` it is
  suspended in raises :class:`asyncio.CancelledError`;
- a plain ``def`` handler (run on a thread pool) polls :attr:`Context.cancelled`
  or waits on :attr:`Context.cancel_event` (a :class:`threading.Event`) and
  then raises :class:`InvocationCancelled`.

Either way the SDK answers the host with ``StatusResult.Cancelled``.
:attr:`Context.cancel_reason` then says why the host cancelled, when it said.

:attr:`Context.trace_context` is the distributed trace the invocation runs in
(a :class:`TraceContext`, shaped like ``azure.functions``' one).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Mapping, Optional, Tuple

if TYPE_CHECKING:
    from ._proto.FunctionRpc_pb2 import RpcTraceContext


class InvocationCancelled(Exception):
    """Raise this from a handler to report that it stopped because it was
    cancelled. Any exception raised after the cancel also counts as a cancel."""

    def __init__(self, message: str = "invocation cancelled") -> None:
        super().__init__(message)


#: The invocation whose handler is running in the current task or thread;
#: the logging bridge uses it to tie log records to their invocation.
current_context: contextvars.ContextVar[Optional["Context"]] = contextvars.ContextVar(
    "fnhost_worker_current_context", default=None
)


def _hex_id(s: str, length: int) -> bool:
    return len(s) == length and all(c in "0123456789abcdef" for c in s) and s != "0" * length


#: Function name → its :attr:`Context.logger`: ``logging.getLogger`` takes
#: the logging module's lock, which handler threads contend for.
_FUNCTION_LOGGERS: dict[str, logging.Logger] = {}


def _function_logger(function_name: str) -> logging.Logger:
    logger = _FUNCTION_LOGGERS.get(function_name)
    if logger is None:
        logger = _FUNCTION_LOGGERS[function_name] = logging.getLogger(f"fnhost.function.{function_name}")
    return logger


class TraceContext:
    """The W3C trace an invocation runs in, from ``InvocationRequest.trace_context``
    (the attributes of ``azure.functions.TraceContext``).

    :attr:`trace_parent` is a ``traceparent`` (``00-<trace id>-<span id>-<flags>``)
    naming the invocation's span, so spans the handler starts are its children;
    :attr:`trace_state` is the caller's ``tracestate``; :attr:`attributes` holds
    extra properties (the host sets ``OperationName`` to the function name).
    """

    def __init__(
        self, trace_parent: str = "", trace_state: str = "", attributes: Optional[Mapping[str, str]] = None
    ) -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = dict(attributes or {})

    @classmethod
    def from_proto(cls, t: "RpcTraceContext") -> "TraceContext":
        """From an ``RpcTraceContext`` message."""
        return cls(t.trace_parent, t.trace_state, dict(t.attributes))

    @property
    def trace_parent(self) -> str:
        """The W3C ``traceparent`` of the invocation's span, as sent."""
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        """The W3C ``tracestate``, as sent ("" when none)."""
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        """Extra properties; fnhost sends ``OperationName`` (the function name)."""
        return self._attributes

    def _fields(self) -> Optional[Tuple[str, str, int]]:
        parts = self._trace_parent.strip().split("-")
        if len(parts) < 4:
            return None
        version, trace_id, span_id, flags = parts[:4]
        if len(version) != 2 or not all(c in "0123456789abcdefABCDEF" for c in version) or version.lower() == "ff":
            return None
        if version == "00" and len(parts) != 4:
            return None
        if not _hex_id(trace_id, 32) or not _hex_id(span_id, 16) or len(flags) != 2:
            return None
        try:
            return trace_id, span_id, int(flags, 16)
        except ValueError:
            return None

    @property
    def trace_id(self) -> Optional[str]:
        """The trace id (32 lowercase hex digits) of a well-formed
        :attr:`trace_parent`, else ``None``."""
        fields = self._fields()
        return fields[0] if fields else None

    @property
    def span_id(self) -> Optional[str]:
        """The invocation's span id (16 lowercase hex digits) of a well-formed
        :attr:`trace_parent`, else ``None``."""
        fields = self._fields()
        return fields[1] if fields else None

    @property
    def trace_flags(self) -> Optional[int]:
        """The trace flags (bit 0: sampled) of a well-formed :attr:`trace_parent`."""
        fields = self._fields()
        return fields[2] if fields else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceContext):
            return NotImplemented
        return (self._trace_parent, self._trace_state, self._attributes) == (
            other._trace_parent,
            other._trace_state,
            other._attributes,
        )

    def __repr__(self) -> str:
        return (
            f"TraceContext(trace_parent={self._trace_parent!r}, "
            f"trace_state={self._trace_state!r}, attributes={self._attributes!r})"
        )


class Context:
    """What a handler knows about the invocation it runs.

    User code reads it; only the SDK cancels it (when the host says so), so
    a handler cannot cancel its own invocation through the host's token."""

    def __init__(
        self,
        invocation_id: str,
        function_name: str,
        trace_context: Optional[TraceContext] = None,
        *,
        deadline: Optional[datetime] = None,
        attempt: int = 1,
    ) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._trace_context = trace_context
        self._deadline = deadline
        self._attempt = attempt
        self._cancelled = False
        self._cancel_reason: Optional[str] = None
        #: Made on first use: most handlers never wait on it, and a
        #: ``threading.Event`` (a ``Condition`` and its lock) is a good part
        #: of what an invocation allocates.
        self._cancel_event: Optional[threading.Event] = None
        #: Guards the three fields above, which the loop thread writes
        #: (a cancel) while a handler thread may be reading them.
        self._lock = threading.Lock()
        #: A logger named after the function; its records reach the host as
        #: ``RpcLog`` lines of this invocation (so does any other logger used
        #: while the handler runs).
        self.logger = _function_logger(function_name)

    @classmethod
    def for_test(
        cls,
        invocation_id: str = "test-invocation",
        function_name: str = "test",
        trace_context: Optional[TraceContext] = None,
        *,
        deadline: Optional[datetime] = None,
        attempt: int = 1,
    ) -> "Context":
        """A context for unit-testing a handler outside a worker."""
        return cls(invocation_id, function_name, trace_context, deadline=deadline, attempt=attempt)

    @property
    def invocation_id(self) -> str:
        """The host's id of this invocation."""
        return self._invocation_id

    @property
    def function_name(self) -> str:
        """The name of the function being invoked."""
        return self._function_name

    @property
    def trace_context(self) -> Optional[TraceContext]:
        """The distributed trace this invocation runs in, from the request's
        ``trace_context``: its ``trace_parent`` names the invocation's span,
        with the caller's ``trace_state`` and the ``attributes`` the host adds
        (``OperationName``). ``None`` when the host sent none."""
        return self._trace_context

    @property
    def deadline(self) -> Optional[datetime]:
        """When the host's function timeout fires for this invocation (a
        timezone-aware UTC ``datetime``, from the request's
        ``FnhostDeadline`` metadata); ``None`` when the host sent none. The
        host cancels the invocation then (``cancel_reason`` ``"timeout"``)."""
        return self._deadline

    @property
    def attempt(self) -> int:
        """Which run of its async event this invocation is: 1 for the first
        (and for every synchronous invocation), 2 for the first retry, and so
        on (the request's ``FnhostAttempt`` metadata; 1 when absent)."""
        return self._attempt

    @property
    def cancelled(self) -> bool:
        """True once the host cancelled this invocation (or the worker is
        shutting down)."""
        return self._cancelled

    @property
    def cancel_event(self) -> threading.Event:
        """Set when the invocation is cancelled; sync handlers can
        ``cancel_event.wait(timeout)`` instead of sleeping."""
        event = self._cancel_event
        if event is None:
            with self._lock:
                event = self._cancel_event
                if event is None:
                    event = threading.Event()
                    if self._cancelled:
                        event.set()
                    self._cancel_event = event
        return event

    @property
    def cancel_reason(self) -> Optional[str]:
        """Why the host cancelled this invocation, once it did and said so:
        ``"timeout"``, ``"host shutdown"``, ``"client disconnect"``,
        ``"terminate"`` or ``"lease lost"`` (another host took the event
        over, so this run is a duplicate). ``None`` before a
        cancel, for a worker shutdown, and from hosts that send no reason.
        The first reason stands: a later cancel does not change it.

        It is set before :attr:`cancel_event` is set and before an
        ``async def`` handler's task is cancelled, so a handler woken by the
        cancel always sees it."""
        return self._cancel_reason

    def raise_if_cancelled(self) -> None:
        """Raises :class:`InvocationCancelled` when the invocation was cancelled."""
        if self.cancelled:
            raise InvocationCancelled()

    def _cancel(self, reason: Optional[str] = None) -> None:
        """Marks the invocation cancelled: the SDK calls this on the host's
        ``InvocationCancel`` (with its reason) and at shutdown; the SDK's own
        tests call it to stand in for the host. Private, since a handler
        must not cancel its own invocation. An empty or missing ``reason``
        leaves :attr:`cancel_reason` as it is; otherwise the first one
        stands."""
        with self._lock:
            if reason and self._cancel_reason is None:
                self._cancel_reason = reason
            self._cancelled = True
            event = self._cancel_event
        if event is not None:
            event.set()

    def __repr__(self) -> str:
        return (
            f"Context(invocation_id={self._invocation_id!r}, "
            f"function_name={self._function_name!r}, attempt={self._attempt}, "
            f"cancelled={self.cancelled}, "
            f"cancel_reason={self._cancel_reason!r})"
        )
