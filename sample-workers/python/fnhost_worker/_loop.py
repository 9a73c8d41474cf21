"""Which event loop the worker runs on: uvloop when it is installed (the
``fnhost-worker[speed]`` extra), else asyncio's own. uvloop's loop does the
same work in C (callbacks, futures, the self-pipe wake-ups from handler
threads), which is a good part of the worker's time per invocation.

``FNHOST_PYTHON_LOOP`` (read by :meth:`FunctionApp.run`) picks one:
``uvloop`` (an error when it is not installed), ``asyncio``, or ``auto``
(the default).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Callable, Coroutine, Optional, TypeVar

_T = TypeVar("_T")

LOOPS = ("auto", "uvloop", "asyncio")


class LoopError(ValueError):
    """``FNHOST_PYTHON_LOOP`` names no loop, or one that is not installed."""


def loop_factory(choice: str = "auto") -> Optional[Callable[[], asyncio.AbstractEventLoop]]:
    """The factory of the loop ``choice`` names; ``None`` for asyncio's own."""
    choice = choice.strip().lower() or "auto"
    if choice not in LOOPS:
        raise LoopError(f"FNHOST_PYTHON_LOOP is {choice!r}; expected one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopError(
                "FNHOST_PYTHON_LOOP is uvloop, but uvloop is not installed (pip install 'fnhost-worker[speed]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_on(factory: Optional[Callable[[], asyncio.AbstractEventLoop]], main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on a loop from ``factory`` (asyncio's own when ``None``)."""
    if factory is None:
        return asyncio.run(main)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    # Python 3.9 and 3.10 have no Runner: what asyncio.run does, on our loop.
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
