"""The entry point for function authors: :class:`FunctionApp`.

Example::

    from fnhost_worker import Context, FunctionApp, Input

    app = FunctionApp()

    @app.function()
    async def hello(ctx: Context, input: Input) -> str:
        return f"hello {input.text()}"

    if __name__ == "__main__":
        app.run()

HTTP functions declare their trigger as in Azure's decorator model; with
``worker_indexing=True`` the worker reports it to the host (as
``raw_bindings``), so the app needs no ``function.json``::

    from fnhost_worker import AuthLevel, FunctionApp, HttpResponse, HttpTrigger

    app = FunctionApp(worker_indexing=True)

    @app.route(route="items/{id:int}", methods=["GET"], auth_level=AuthLevel.ANONYMOUS)
    def item(ctx, input):
        return HttpResponse(200, body=f"item {input.http.params['id']}")

    @app.function(trigger=HttpTrigger(methods=["POST"]))   # the same, as an option
    def upload(ctx, input): ...

    @app.function()                                          # manualTrigger
    def job(ctx, input): ...

    @app.timer(schedule="0 */5 * * * *")                     # timerTrigger
    def cleanup(ctx, input):
        ctx.logger.info("due at %s", input.timer().next)
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, Iterable, Optional, Sequence, Union

from ._loop import LoopError, loop_factory, run_on
from .args import ArgsError, LaunchArgs
from .context import current_context
from .dispatcher import Handler
from .runtime import ConnectError, run
from .triggers import AuthLevel, HttpTrigger, ManualTrigger, TimerTrigger, Trigger

#: Threads for sync (``def``) handlers when neither the constructor nor
#: ``FNHOST_PYTHON_THREADS`` says otherwise.
DEFAULT_SYNC_THREADS = 32


class FunctionApp:
    """A set of functions, registered by decorator, served to one host."""

    def __init__(
        self,
        sync_threads: Optional[int] = None,
        *,
        worker_indexing: bool = False,
        http_auth_level: Union[AuthLevel, str] = AuthLevel.FUNCTION,
    ) -> None:
        """``sync_threads``: size of the thread pool that runs sync handlers
        (default: ``FNHOST_PYTHON_THREADS`` or 32).

        ``worker_indexing``: the worker advertises ``WorkerIndexing`` and,
        when the host asks for metadata, lists its functions with their
        triggers; default ``False``, the host reads ``function.json`` files.

        ``http_auth_level``: the auth level of :meth:`route` functions that
        name none (Azure's default, ``function``)."""
        self._functions: dict[str, Handler] = {}
        self._triggers: dict[str, Trigger] = {}
        self._sync_threads = sync_threads
        self._worker_indexing = worker_indexing
        self._http_auth_level = AuthLevel.parse(http_auth_level)

    @property
    def functions(self) -> dict[str, Handler]:
        """Registered handlers by function name."""
        return dict(self._functions)

    @property
    def triggers(self) -> dict[str, Trigger]:
        """Registered triggers by function name."""
        return dict(self._triggers)

    def function(
        self, name: Optional[str] = None, *, trigger: Optional[Trigger] = None
    ) -> Callable[[Handler], Handler]:
        """Registers the decorated handler as function ``name`` (default: the
        Python function's name). Without worker indexing the name must match
        the function's folder (its ``function.json``) in the app, which also
        decides the trigger.

        ``trigger``: what worker indexing reports, an :class:`HttpTrigger`, a
        :class:`TimerTrigger` or (the default) a :class:`ManualTrigger`."""

        def register(handler: Handler) -> Handler:
            fname = name or handler.__name__
            if fname in self._functions:
                raise ValueError(f"function '{fname}' is registered twice")
            self._functions[fname] = handler
            self._triggers[fname] = trigger if trigger is not None else ManualTrigger()
            return handler

        return register

    def route(
        self,
        route: Optional[str] = None,
        *,
        name: Optional[str] = None,
        methods: Optional[Iterable[str]] = None,
        auth_level: Union[AuthLevel, str, None] = None,
    ) -> Callable[[Handler], Handler]:
        """Registers the decorated handler as an HTTP-triggered function, as
        Azure's ``@app.route`` does: ``route`` template (default: served at
        ``/api/<name>``), ``methods`` (default: every method) and
        ``auth_level`` (default: the app's ``http_auth_level``). The handler
        gets the request as ``input.http`` and may return an
        :class:`HttpResponse`."""
        trigger = HttpTrigger(
            route=route,
            methods=methods,
            auth_level=self._http_auth_level if auth_level is None else auth_level,
        )
        return self.function(name, trigger=trigger)

    def timer(
        self,
        name: Optional[str] = None,
        *,
        schedule: str,
        run_on_startup: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Registers the decorated handler as a timer-triggered function
        ``name`` (default: the Python function's name): ``schedule`` is a
        6-field NCRONTAB expression (seconds first) or a TimeSpan such as
        ``"00:05:00"``; ``run_on_startup`` also runs it when the host starts.
        Each tick's input is Azure's ``TimerInfo`` JSON, parsed by
        :meth:`Input.timer`. The same as
        ``function(name, trigger=TimerTrigger(schedule, run_on_startup))``."""
        return self.function(name, trigger=TimerTrigger(schedule, run_on_startup))

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
            factory = loop_factory(os.environ.get("FNHOST_PYTHON_LOOP", "auto"))
            run_on(
                factory,
                run(
                    self._functions,
                    args,
                    threads,
                    triggers=self._triggers,
                    worker_indexing=self._worker_indexing,
                )
            )
        except (ArgsError, LoopError) as e:
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
