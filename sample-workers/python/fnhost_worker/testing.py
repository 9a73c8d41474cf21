"""Test helpers for function code: stand in for the host in unit tests.

:meth:`Context.for_test` builds a context outside a worker; :func:`cancel`
cancels it as the host's ``InvocationCancel`` would. Not for handlers: a
handler does not cancel its own invocation (``Context`` has no public
``cancel``)::

    from fnhost_worker import Context
    from fnhost_worker.testing import cancel

    ctx = Context.for_test(function_name="nap")
    cancel(ctx, "timeout")
    assert ctx.cancelled and ctx.cancel_reason == "timeout"
"""

from __future__ import annotations

from typing import Optional

from .context import Context

__all__ = ["cancel"]


def cancel(ctx: Context, reason: Optional[str] = None) -> None:
    """Cancels ``ctx`` with ``reason`` (``"timeout"``, ``"terminate"``, ...),
    as the host does: :attr:`Context.cancel_reason` takes the first reason
    given, then :attr:`Context.cancel_event` is set."""
    ctx._cancel(reason)
