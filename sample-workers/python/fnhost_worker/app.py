"""The entry point for function authors: :class:`FunctionApp`.

Example::

    from fnhost_worker import Context, FunctionApp, Input

    app = FunctionApp()

    @app.function()
    async def hello(ctx: Context, input: Input) -> str:
        return f"hello {input.text()}"

    if __name__ == "__main__":
        app.run()
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Callable, Optional, Sequence

from .args import ArgsError, LaunchArgs
from .context import current_context
from .dispatcher import Handler
from .runtime import ConnectError, run

#: Threads for sync (``def``) handlers when neither the constructor nor
#: ``FNHOST_PYTHON_THREADS`` says otherwise.
DEFAULT_SYNC_THREADS = 32


class FunctionApp:
    """A set of functions, registered by decorator, served to one host."""

    def __init__(self, sync_threads: Optional[int] = None) -> None:
        """``sync_threads``: size of the thread pool that runs sync handlers
        (default: ``FNHOST_PYTHON_THREADS`` or 32)."""
        self._functions: dict[str, Handler] = {}
        self._sync_threads = sync_threads

    @property
    def functions(self) -> dict[str, Handler]:
        """Registered handlers by function name."""
        return dict(self._functions)

    def function(self, name: Optional[str] = None) -> Callable[[Handler], Handler]:
        """Registers the decorated handler as function ``name`` (default: the
        Python function's name). The name must match the function's folder
        (its ``function.json``) in the app."""

        def register(handler: Handler) -> Handler:
            fname = name or handler.__name__
            if fname in self._functions:
                raise ValueError(f"function '{fname}' is registered twice")
            self._functions[fname] = handler
            return handler

        return register

    def run(self, argv: Optional[Sequence[str]] = None) -> None:
        """Parses the launch arguments (default ``sys.argv[1:]``), serves the
        host until it lets go, and exits the process.

        Exit codes: 0 after an orderly stop, 2 for bad launch arguments, 1
        when the host cannot be reached or the worker fails.
        """
        _configure_logging()
        code = 0
        try:
            args = LaunchArgs.parse(sys.argv[1:] if argv is None else argv)
            threads = self._sync_threads or int(os.environ.get("FNHOST_PYTHON_THREADS", DEFAULT_SYNC_THREADS))
            asyncio.run(run(self._functions, args, threads))
        except ArgsError as e:
            print(f"fnhost python worker: {e}", file=sys.stderr)
            code = 2
        except ConnectError as e:
            print(f"fnhost python worker: {e}", file=sys.stderr)
            code = 1
        except Exception as e:  # noqa: BLE001 - report, then exit non-zero
            logging.getLogger("fnhost_worker").exception("worker failed: %s", e)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        # Exit now: a normal interpreter exit joins the handler threads, and a
        # sync handler that ignores cancellation could keep it alive forever.
        os._exit(code)


def _configure_logging() -> None:
    """Lets INFO records through to the host bridge (installed by the
    runtime) and writes other WARNING-and-up records (``FNHOST_PYTHON_LOG_LEVEL``)
    to stderr, which the host forwards to its own log. Records made inside an
    invocation already reach the host as ``RpcLog`` and are not repeated."""
    root = logging.getLogger()
    if root.level == logging.WARNING:  # untouched by the app
        root.setLevel(logging.INFO)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(os.environ.get("FNHOST_PYTHON_LOG_LEVEL", "WARNING").upper())
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stderr.addFilter(lambda _record: current_context.get() is None)
    root.addHandler(stderr)
