"""fnhost Python worker SDK.

Speaks the host's ``AzureFunctionsRpcMessages.FunctionRpc/EventStream``
protocol like the Rust ``worker-sdk``: launch arguments in both styles,
``StartStream``, a handshake that advertises ``HandlesInvocationCancelMessage``,
functions registered by decorator, concurrent invocations, cancellation that
reaches user code (``asyncio.CancelledError`` for ``async def`` handlers,
:attr:`Context.cancel_event` for sync ones), and :mod:`logging` records sent
to the host as ``RpcLog`` lines of their invocation.

Run ``sample-workers/python/setup.sh`` first: it generates the gRPC code.
"""

from .app import DEFAULT_SYNC_THREADS, FunctionApp
from .args import ArgsError, LaunchArgs
from .context import Context, InvocationCancelled, TraceContext
from .data import HttpRequest, HttpResponse, Input, TimerInfo
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
]
