"""How a function is triggered, and the metadata a worker-indexing worker
reports for it.

With worker indexing on, the host builds its functions from the
``FunctionMetadataResponse`` instead of ``function.json`` files. Each
function's ``raw_bindings`` are the binding objects of a ``function.json``,
serialized the way Azure's language workers send them.
This mirrors ``worker-sdk/src/trigger.rs``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

from ._proto import pb


class AuthLevel(str, enum.Enum):
    """Who may call an HTTP-triggered function (Azure's ``authLevel``)."""

    ANONYMOUS = "anonymous"
    """No key needed."""
    FUNCTION = "function"
    """A function key or a host key (Azure's default)."""
    ADMIN = "admin"
    """The host's master key."""

    @classmethod
    def parse(cls, level: Union["AuthLevel", str]) -> "AuthLevel":
        """``level`` as an :class:`AuthLevel`; strings in any case."""
        if isinstance(level, AuthLevel):
            return level
        try:
            return cls(str(level).lower())
        except ValueError:
            raise ValueError(f"auth_level {level!r} is not one of 'anonymous', 'function', 'admin'") from None


@dataclass(frozen=True)
class HttpTrigger:
    """An HTTP trigger. The defaults are Azure's: no ``route`` (served at
    ``/api/<name>``), every method, and ``AuthLevel.FUNCTION``.

    ``methods`` may be in any case; they are sent lowercase.
    """

    route: Optional[str] = None
    methods: Optional[tuple[str, ...]] = None
    auth_level: AuthLevel = AuthLevel.FUNCTION

    def __init__(
        self,
        route: Optional[str] = None,
        methods: Optional[Iterable[str]] = None,
        auth_level: Union[AuthLevel, str] = AuthLevel.FUNCTION,
    ) -> None:
        if isinstance(methods, str):
            raise TypeError("methods must be a list of method names, not a string")
        object.__setattr__(self, "route", route)
        object.__setattr__(self, "methods", None if methods is None else tuple(m.lower() for m in methods))
        object.__setattr__(self, "auth_level", AuthLevel.parse(auth_level))

    def bindings(self) -> list[dict[str, Any]]:
        """The trigger and its ``$return`` HTTP output, as binding objects."""
        trigger: dict[str, Any] = {"type": "httpTrigger", "direction": "in", "name": "req"}
        if self.methods is not None:
            trigger["methods"] = list(self.methods)
        trigger["authLevel"] = self.auth_level.value
        if self.route is not None:
            trigger["route"] = self.route
        return [trigger, {"type": "http", "direction": "out", "name": "$return"}]


@dataclass(frozen=True)
class ManualTrigger:
    """A ``manualTrigger``: invoked through the admin and async APIs only."""

    def bindings(self) -> list[dict[str, Any]]:
        """The trigger, as a binding object."""
        return [{"type": "manualTrigger", "direction": "in", "name": "input"}]


@dataclass(frozen=True)
class TimerTrigger:
    """A ``timerTrigger``: the host invokes the function on ``schedule``, a
    6-field NCRONTAB expression (seconds first, e.g. ``"0 */5 * * * *"``) or
    a TimeSpan (``"00:05:00"``); ``run_on_startup`` also runs it when the
    host starts. The host checks the schedule when it loads the function.

    The handler's input is Azure's ``TimerInfo`` JSON; :meth:`Input.timer`
    parses it."""

    schedule: str
    run_on_startup: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, str) or not self.schedule.strip():
            raise ValueError("schedule must be a non-empty NCRONTAB expression or TimeSpan")
        if not isinstance(self.run_on_startup, bool):
            raise TypeError("run_on_startup must be a bool")

    def bindings(self) -> list[dict[str, Any]]:
        """The trigger, as a binding object."""
        return [
            {
                "type": "timerTrigger",
                "direction": "in",
                "name": "timer",
                "schedule": self.schedule,
                "runOnStartup": self.run_on_startup,
            }
        ]


#: How a registered function is triggered.
Trigger = Union[HttpTrigger, ManualTrigger, TimerTrigger]

_DIRECTIONS = {"in": pb.BindingInfo.Direction.Value("in"), "out": pb.BindingInfo.Direction.Value("out")}


def function_metadata(name: str, trigger: Trigger) -> "pb.RpcFunctionMetadata":
    """The function's entry in a ``FunctionMetadataResponse``, as Azure's
    workers fill it: the name doubles as the stable ``function_id``."""
    bindings = trigger.bindings()
    return pb.RpcFunctionMetadata(
        name=name,
        function_id=name,
        language="python",
        is_proxy=False,
        raw_bindings=[json.dumps(b, separators=(",", ":")) for b in bindings],
        bindings={b["name"]: pb.BindingInfo(type=b["type"], direction=_DIRECTIONS[b["direction"]]) for b in bindings},
        properties={"worker_indexed": "True"},
        status=pb.StatusResult(status=pb.StatusResult.Success),
    )
