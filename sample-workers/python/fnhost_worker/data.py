"""A handler's :class:`Input`, :class:`HttpRequest`, :class:`HttpResponse` and
:class:`TimerInfo`, and the conversion of return values to ``TypedData``.

A handler may return ``None`` (no value), ``str``, ``bytes``, a JSON-able
``dict`` / ``list`` / number / bool (sent as JSON), an :class:`HttpResponse`,
or a ready ``TypedData`` message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from ._proto import pb


@dataclass
class HttpRequest:
    """The HTTP request of an ``httpTrigger`` invocation."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    params: dict[str, str]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """A header's value, matched case-insensitively."""
        lower = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lower), None)


@dataclass
class HttpResponse:
    """An HTTP response for an HTTP-triggered function."""

    status: int = 200
    body: Union[bytes, str] = b""
    headers: dict[str, str] = field(default_factory=dict)

    def to_rpc(self) -> "pb.RpcHttp":
        """The ``RpcHttp`` sent as the invocation's return value."""
        rpc = pb.RpcHttp()
        self._fill(rpc)
        return rpc

    def _fill(self, rpc: "pb.RpcHttp") -> None:
        """Writes the response into ``rpc`` (in place: building a message
        and then assigning it to a field would copy it)."""
        body = self.body
        rpc.status_code = str(self.status)
        if self.headers:
            rpc.headers.update(self.headers)
        # `bytes(b)` of a bytes object is that object; other buffers are copied once.
        rpc.body.bytes = body.encode() if isinstance(body, str) else body if type(body) is bytes else bytes(body)


@dataclass
class TimerInfo:
    """The input of a ``timerTrigger`` invocation: Azure's ``TimerInfo``
    JSON (``{"Schedule": {"AdjustForDST": ...}, "ScheduleStatus": {"Last":
    ..., "Next": ..., "LastUpdated": ...}, "IsPastDue": ...}``). The times are
    the host's RFC 3339 strings (``datetime.fromisoformat`` reads them);
    fields the JSON lacks are ``None`` (``past_due``: ``False``)."""

    next: Optional[str]
    """``ScheduleStatus.Next``: the time this tick was scheduled for."""
    last: Optional[str]
    """``ScheduleStatus.Last``: the previous tick's scheduled time."""
    last_updated: Optional[str]
    """``ScheduleStatus.LastUpdated``: when the schedule status last changed."""
    past_due: bool
    """``IsPastDue``: the tick runs later than scheduled (e.g. missed while
    no host was running)."""
    adjust_for_dst: Optional[bool]
    """``Schedule.AdjustForDST``."""

    @classmethod
    def from_json(cls, value: Any) -> "TimerInfo":
        """A ``TimerInfo`` from the parsed JSON object; ``ValueError`` when
        ``value`` is not an object."""
        if not isinstance(value, dict):
            raise ValueError(f"a TimerInfo is a JSON object, not {type(value).__name__}")
        status = value.get("ScheduleStatus")
        status = status if isinstance(status, dict) else {}
        schedule = value.get("Schedule")
        schedule = schedule if isinstance(schedule, dict) else {}

        def text(v: Any) -> Optional[str]:
            return v if isinstance(v, str) else None

        dst = schedule.get("AdjustForDST")
        return cls(
            next=text(status.get("Next")),
            last=text(status.get("Last")),
            last_updated=text(status.get("LastUpdated")),
            past_due=value.get("IsPastDue") is True,
            adjust_for_dst=dst if isinstance(dst, bool) else None,
        )


def typed_data_bytes(data: Optional["pb.TypedData"]) -> Optional[bytes]:
    """The payload of ``data`` as bytes (an HTTP request's body), or ``None``
    when absent or not representable (collections)."""
    if data is None:
        return None
    kind = data.WhichOneof("data")
    if kind == "string":
        return data.string.encode()
    if kind == "json":
        return data.json.encode()
    if kind == "bytes":
        return data.bytes
    if kind == "stream":
        return data.stream
    if kind == "int":
        return str(data.int).encode()
    if kind == "double":
        return str(data.double).encode()
    if kind == "http":
        return typed_data_bytes(data.http.body if data.http.HasField("body") else None) or b""
    return None


class Input:
    """The data an invocation was triggered with.

    The trigger is the first input binding; every binding is also available
    by name, and the trigger metadata by key.
    """

    def __init__(
        self,
        trigger: Optional["pb.TypedData"] = None,
        bindings: Optional[Mapping[str, "pb.TypedData"]] = None,
        metadata: Optional[Mapping[str, "pb.TypedData"]] = None,
    ) -> None:
        self._trigger = trigger
        self._bindings: Optional[dict[str, pb.TypedData]] = dict(bindings or {})
        self._metadata: Optional[dict[str, pb.TypedData]] = dict(metadata or {})
        self._request: Optional[pb.InvocationRequest] = None

    @classmethod
    def from_request(cls, req: "pb.InvocationRequest") -> "Input":
        """The input of an ``InvocationRequest``. Bindings and metadata are
        read from the request when first asked for: most handlers read only
        the trigger, and copying the maps costs a wrapper per entry."""
        self = cls.__new__(cls)
        self._trigger = None
        for binding in req.input_data:
            if binding.WhichOneof("rpc_data") == "data":
                self._trigger = binding.data
                break
        self._bindings = None
        self._metadata = None
        self._request = req
        return self

    @classmethod
    def from_text(cls, text: str) -> "Input":
        """An input whose trigger is the string ``text`` (for tests)."""
        return cls(pb.TypedData(string=text))

    @property
    def data(self) -> Optional["pb.TypedData"]:
        """The trigger's raw ``TypedData``, if any."""
        return self._trigger

    def bytes(self) -> bytes:
        """The trigger payload as bytes (the body for HTTP; empty when absent)."""
        return typed_data_bytes(self._trigger) or b""

    def text(self) -> str:
        """The trigger payload as UTF-8 text (the body for HTTP)."""
        return self.bytes().decode("utf-8")

    def json(self) -> Any:
        """The trigger payload parsed as JSON (the body for HTTP)."""
        return json.loads(self.bytes())

    @property
    def http(self) -> Optional[HttpRequest]:
        """The HTTP request, when the trigger is HTTP."""
        if self._trigger is None or self._trigger.WhichOneof("data") != "http":
            return None
        h = self._trigger.http
        return HttpRequest(
            method=h.method,
            url=h.url,
            headers=dict(h.headers),
            query=dict(h.query),
            params=dict(h.params),
            body=self.bytes(),
        )

    def timer(self) -> TimerInfo:
        """The trigger payload as a :class:`TimerInfo` (a ``timerTrigger``
        invocation); ``ValueError`` when it is not a JSON object."""
        return TimerInfo.from_json(self.json())

    def binding(self, name: str) -> Optional["pb.TypedData"]:
        """An input binding by name."""
        bindings = self._bindings
        if bindings is None:
            bindings = self._bindings = {}
            if self._request is not None:
                for b in self._request.input_data:
                    if b.WhichOneof("rpc_data") == "data":  # shared memory is not offered by this host
                        bindings[b.name] = b.data
        return bindings.get(name)

    def trigger_metadata(self, key: str) -> Optional["pb.TypedData"]:
        """A trigger metadata value by key."""
        metadata = self._metadata
        if metadata is None:
            metadata = self._metadata = dict(self._request.trigger_metadata) if self._request is not None else {}
        return metadata.get(key)


def to_typed_data(value: Any) -> Optional["pb.TypedData"]:
    """Converts a handler's return value to ``TypedData`` (``None`` for no value)."""
    if value is None:
        return None
    if isinstance(value, pb.TypedData):
        return value
    typed = pb.TypedData()
    write_typed_data(typed, value)
    return typed


def write_typed_data(typed: "pb.TypedData", value: Any) -> None:
    """Writes a handler's return value (not ``None``) into ``typed`` in place,
    as :func:`to_typed_data` converts it: filling the response's own field
    saves the copy that assigning a finished message makes."""
    if isinstance(value, HttpResponse):
        value._fill(typed.http)
    elif isinstance(value, str):
        typed.string = value
    elif type(value) is bytes:
        typed.bytes = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        typed.bytes = bytes(value)
    elif isinstance(value, pb.TypedData):
        typed.CopyFrom(value)
    else:
        try:
            typed.json = json.dumps(value)
        except TypeError as e:
            raise TypeError(
                f"a handler returned {type(value).__name__}, which is not str, bytes, "
                "HttpResponse, TypedData or JSON-serialisable"
            ) from e
