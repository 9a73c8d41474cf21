"""Launch arguments the host passes to a worker process.

Two spellings exist and both are accepted, in any order, as ``--flag value``
or ``--flag=value``:

- older: ``--host 127.0.0.1 --port P --workerId ID --requestId ID --grpcMaxMessageLength N``
- newer: ``--functions-uri http://127.0.0.1:P/ --functions-worker-id ID
  --functions-request-id ID --functions-grpc-max-message-length N``

When both spellings of one setting are given, the newer one wins. Unknown
arguments are ignored. This mirrors ``worker-sdk/src/args.rs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

#: Message size limit used when the host passes none (``i32::MAX``, the host's default).
DEFAULT_GRPC_MAX_MESSAGE_LENGTH = 2**31 - 1

_KNOWN = {
    "host",
    "port",
    "workerId",
    "requestId",
    "grpcMaxMessageLength",
    "functions-uri",
    "functions-worker-id",
    "functions-request-id",
    "functions-grpc-max-message-length",
}


class ArgsError(ValueError):
    """A launch argument is missing or malformed; the message names it."""


@dataclass(frozen=True)
class LaunchArgs:
    """The connection settings a worker is launched with."""

    #: ``host:port`` of the host's gRPC server (a gRPC target, no scheme).
    target: str
    #: The worker id to announce in ``StartStream``.
    worker_id: str
    #: The request id stamped on every message the worker sends.
    request_id: str
    #: Maximum gRPC message size in bytes, both directions.
    grpc_max_message_length: int = DEFAULT_GRPC_MAX_MESSAGE_LENGTH

    @classmethod
    def parse(cls, argv: Iterable[str]) -> "LaunchArgs":
        """Parses launch arguments (without the program name)."""
        tokens = list(argv)
        values: dict[str, str] = {}
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if not token.startswith("--"):
                continue  # stray positional value: ignored
            name, eq, inline = token[2:].partition("=")
            if name not in _KNOWN:
                continue
            if eq:
                value = inline
            elif i < len(tokens) and not tokens[i].startswith("--"):
                value = tokens[i]
                i += 1
            else:
                raise ArgsError(f"launch argument --{name} has no value")
            values[name] = value
        return cls._finish(values)

    @classmethod
    def _finish(cls, v: dict[str, str]) -> "LaunchArgs":
        if "functions-uri" in v:
            target = _parse_uri(v["functions-uri"])
        elif "host" in v and "port" in v:
            target = _host_port(v["host"], v["port"])
        elif "host" in v:
            raise ArgsError("missing required launch argument --port (or --functions-uri)")
        else:
            raise ArgsError("missing required launch argument --host/--port (or --functions-uri)")
        worker_id = _pick(v, "functions-worker-id", "workerId")
        if worker_id is None:
            raise ArgsError("missing required launch argument --workerId (or --functions-worker-id)")
        request_id = _pick(v, "functions-request-id", "requestId")
        if request_id is None:
            raise ArgsError("missing required launch argument --requestId (or --functions-request-id)")
        max_len = DEFAULT_GRPC_MAX_MESSAGE_LENGTH
        for flag in ("functions-grpc-max-message-length", "grpcMaxMessageLength"):
            if flag in v:
                try:
                    max_len = int(v[flag])
                except ValueError:
                    max_len = 0
                if max_len <= 0:
                    raise ArgsError(
                        f"launch argument --{flag} has invalid value {v[flag]!r}: "
                        "expected a positive number of bytes"
                    )
                break
        # grpc-core takes an int32 for the message size options.
        max_len = min(max_len, DEFAULT_GRPC_MAX_MESSAGE_LENGTH)
        return cls(target, worker_id, request_id, max_len)


def _pick(values: dict[str, str], newer: str, older: str) -> Optional[str]:
    return values.get(newer, values.get(older))


def _host_port(host: str, port: str) -> str:
    if not port.isdigit() or int(port) > 65535:
        raise ArgsError(f"launch argument --port has invalid value {port!r}: expected a port number 0-65535")
    if not host:
        raise ArgsError("launch argument --host has invalid value '': host name is empty")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{int(port)}"


def _parse_uri(uri: str) -> str:
    rest = uri.rstrip("/")
    for scheme in ("http://", "https://"):
        if rest.startswith(scheme):
            rest = rest[len(scheme):]
            break
    else:
        rest = ""
    if not rest or "/" in rest:
        raise ArgsError(f"launch argument --functions-uri has invalid value {uri!r}: expected http://host:port/")
    return rest
