"""Per-invocation :class:`Context`: identity, cancellation and logging.

Cancellation reaches user code in the two ways Python code is written:

- an ``async def`` handler's task is cancelled, so the ``await`` it is
  suspended in raises :class:`asyncio.CancelledError`;
- a plain ``def`` handler (run on a thread pool) polls :attr:`Context.cancelled`
  or waits on :attr:`Context.cancel_event` (a :class:`threading.Event`) and
  then raises :class:`InvocationCancelled`.

Either way the SDK answers the host with ``StatusResult.Cancelled``.
:attr:`Context.cancel_reason` then says why the host cancelled, when it said.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Optional


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


class Context:
    """What a handler knows about the invocation it runs."""

    def __init__(self, invocation_id: str, function_name: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._cancel_event = threading.Event()
        self._cancel_reason: Optional[str] = None
        self._reason_lock = threading.Lock()
        #: A logger named after the function; its records reach the host as
        #: ``RpcLog`` lines of this invocation (so does any other logger used
        #: while the handler runs).
        self.logger = logging.getLogger(f"fnhost.function.{function_name}")

    @classmethod
    def for_test(cls, invocation_id: str = "test-invocation", function_name: str = "test") -> "Context":
        """A context for unit-testing a handler outside a worker; call
        :meth:`cancel` to simulate the host cancelling the invocation."""
        return cls(invocation_id, function_name)

    @property
    def invocation_id(self) -> str:
        """The host's id of this invocation."""
        return self._invocation_id

    @property
    def function_name(self) -> str:
        """The name of the function being invoked."""
        return self._function_name

    @property
    def cancelled(self) -> bool:
        """True once the host cancelled this invocation (or the worker is
        shutting down)."""
        return self._cancel_event.is_set()

    @property
    def cancel_event(self) -> threading.Event:
        """Set when the invocation is cancelled; sync handlers can
        ``cancel_event.wait(timeout)`` instead of sleeping."""
        return self._cancel_event

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

    def cancel(self, reason: Optional[str] = None) -> None:
        """Marks the invocation cancelled (the SDK calls this on
        ``InvocationCancel`` with the host's reason; tests may call it
        directly). An empty or missing ``reason`` leaves
        :attr:`cancel_reason` as it is; otherwise the first one stands."""
        if reason:
            with self._reason_lock:
                if self._cancel_reason is None:
                    self._cancel_reason = reason
        self._cancel_event.set()

    def __repr__(self) -> str:
        return (
            f"Context(invocation_id={self._invocation_id!r}, "
            f"function_name={self._function_name!r}, cancelled={self.cancelled}, "
            f"cancel_reason={self._cancel_reason!r})"
        )
