"""fnhost Python worker SDK.

Speaks the host's ``AzureFunctionsRpcMessages.FunctionRpc/EventStream``
protocol like the Rust ``worker-sdk``: launch arguments in both styles,
``StartStream``, a handshake that advertises ``HandlesInvocationCancelMessage``,
functions registered by decorator, concurrent invocations, cancellation that
reaches user code (``asyncio.CancelledError`` for ``async def`` handlers,
:attr:`Context.cancel_event` for sync ones), and :mod:`logging` records sent
to the host as ``RpcLog`` lines of their invocation.

Install the package (``pip install fnhost-worker``, or ``setup.sh`` in a
checkout) and name its ``fnhost-python-worker`` command in the app's
``worker.config.json``; see ``fnhost_worker._cli``.
"""

from .app import DEFAULT_SYNC_THREADS, FunctionApp
from .args import ArgsError, LaunchArgs
from .context import Context, InvocationCancelled, TraceContext
from .data import HttpRequest, HttpResponse, Input, TimerInfo
from ._version import __version__
from .triggers import AuthLevel, HttpTrigger, ManualTrigger, TimerTrigger

__all__ = [
    "ArgsError",
    "AuthLevel",
    "Context",
    "DEFAULT_SYNC_THREADS",
    "FunctionApp",
    "HttpRequest",
    "HttpResponse",
    "HttpTrigger",
    "Input",
    "InvocationCancelled",
    "LaunchArgs",
    "ManualTrigger",
    "TimerInfo",
    "TimerTrigger",
    "TraceContext",
    "__version__",
]
