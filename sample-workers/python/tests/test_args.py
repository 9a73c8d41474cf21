"""Unit tests for launch-argument parsing (both styles)."""

from __future__ import annotations

import pytest

from fnhost_worker.args import DEFAULT_GRPC_MAX_MESSAGE_LENGTH, ArgsError, LaunchArgs


def test_older_style() -> None:
    a = LaunchArgs.parse(
        ["--host", "127.0.0.1", "--port", "5123", "--workerId", "w-1", "--requestId", "r-1",
         "--grpcMaxMessageLength", "1048576"]
    )
    assert a == LaunchArgs("127.0.0.1:5123", "w-1", "r-1", 1048576)


def test_newer_style_wins_and_unknown_arguments_are_ignored() -> None:
    a = LaunchArgs.parse(
        ["function_app.py", "--host", "10.0.0.1", "--port", "1", "--workerId", "old", "--requestId", "old",
         "--functions-uri", "http://127.0.0.1:5123/", "--verbose", "--functions-worker-id=w-2",
         "--functions-request-id", "r-2", "--functions-grpc-max-message-length", "2048", "--other", "x"]
    )
    assert a == LaunchArgs("127.0.0.1:5123", "w-2", "r-2", 2048)


def test_defaults_and_ipv6() -> None:
    a = LaunchArgs.parse(["--host", "::1", "--port", "1", "--workerId", "w", "--requestId", "r"])
    assert a.target == "[::1]:1"
    assert a.grpc_max_message_length == DEFAULT_GRPC_MAX_MESSAGE_LENGTH


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--host", "h", "--port", "1", "--requestId", "r"], "--workerId"),
        (["--workerId", "w", "--requestId", "r"], "--host"),
        (["--host", "h", "--port", "x", "--workerId", "w", "--requestId", "r"], "--port"),
        (["--functions-uri", "--functions-worker-id", "w"], "--functions-uri"),
        (["--functions-uri=ftp://x", "--functions-worker-id=w", "--functions-request-id=r"], "--functions-uri"),
        (["--functions-uri=http://h:1", "--workerId=w", "--requestId=r", "--grpcMaxMessageLength=-5"],
         "--grpcMaxMessageLength"),
    ],
)
def test_errors_name_the_argument(argv: list[str], named: str) -> None:
    with pytest.raises(ArgsError, match=named):
        LaunchArgs.parse(argv)
