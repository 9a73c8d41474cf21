"""fnhost sample Python app: the same functions as the Rust sample
(``sample-workers/rust-worker``), written with the Python SDK.

- ``echo``  returns its input (HTTP: 200 with the same body and content type).
- ``sleep`` waits for the requested milliseconds unless cancelled (async:
  cancellation arrives as ``asyncio.CancelledError``), then logs
  ``sleep cancelled after N ms (<reason>)``.
- ``nap``   the same as a sync handler that waits on ``ctx.cancel_event``.
- ``spin``  busy-waits on a pool thread, ignoring cancellation entirely.
- ``panic`` raises an exception.
- ``crash`` logs, then exits the whole worker process with code 3.
- ``fail``  raises an exception with the input text.
- ``log``   logs one line at each of info, warning and error.
- ``tick``  a timer (every minute): logs ``tick <Next> (past due: <bool>)``
  from its ``TimerInfo``; with ``SAMPLE_TICK_WORK_MS`` > 0 it then works that
  long, and when cancelled logs ``tick <Next> cancelled (<reason>)``.
  Returns ``ticked <Next>``.
- ``trace`` returns the trace context it was given as JSON:
  ``{"traceParent", "traceState", "attributes"}`` (all ``null`` when none).
- ``deadline`` returns its attempt and deadline as JSON, as the Rust
  sample does: ``{"attempt": N, "deadlineMs": <Unix ms>, "remainingMs": N}``
  (``null`` when the host sent no deadline); with input ``{"failBefore": N}``
  it fails its attempts before attempt N, so an async event reports N.

``echo``, ``sleep`` and ``trace`` are HTTP functions (GET and POST, anonymous), ``tick``
a timer, the others manual: the same as their ``function.json`` files, which
the host reads unless ``SAMPLE_WORKER_INDEXING=1`` makes the worker report its
functions itself.

The host starts it as ``fnhost-python-worker function_app.py <launch
arguments>``, the command of the installed ``fnhost-worker`` package (see
``worker.config.json``: ``../python/setup.sh`` installs it into
``../python/.venv``); ``python function_app.py <launch arguments>`` works too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import datetime, timezone
from typing import Any, Union

from fnhost_worker import AuthLevel, Context, FunctionApp, HttpResponse, Input, InvocationCancelled

# SAMPLE_WORKER_INDEXING=1: the worker reports its own functions.
app = FunctionApp(worker_indexing=os.environ.get("SAMPLE_WORKER_INDEXING") == "1")
log = logging.getLogger("sample")


def millis(input: Input) -> int:
    """Milliseconds from the input: a plain number, JSON ``{"ms": N}`` (or a
    JSON number / numeric string), or for HTTP the ``ms`` query parameter or
    the body."""
    http = input.http
    text = http.query["ms"] if http is not None and "ms" in http.query else input.text()
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        value = value.get("ms")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ValueError(f'expected a number of milliseconds or {{"ms": N}}, got {text!r}')


@app.route(methods=["GET", "POST"], auth_level=AuthLevel.ANONYMOUS)
def echo(ctx: Context, input: Input) -> Union[HttpResponse, str, bytes, Any, None]:
    """Returns the input: HTTP requests get a 200 with the same body and
    content type; JSON text comes back as JSON, other text as text, anything
    else as bytes."""
    http = input.http
    if http is not None:
        content_type = http.header("content-type")
        headers = {"content-type": content_type} if content_type else {}
        return HttpResponse(200, body=http.body, headers=headers)
    if input.data is None:
        return None
    try:
        text = input.text()
    except UnicodeDecodeError:
        return input.bytes()
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.route(methods=["GET", "POST"], auth_level=AuthLevel.ANONYMOUS)
def trace(ctx: Context, input: Input) -> dict[str, Any]:
    """Describes the trace context it was given: ``{"traceParent",
    "traceState", "attributes"}``, all ``None`` when the host sent none."""
    t = ctx.trace_context
    if t is None:
        return {"traceParent": None, "traceState": None, "attributes": None}
    return {"traceParent": t.trace_parent, "traceState": t.trace_state, "attributes": dict(t.attributes)}


@app.route(methods=["GET", "POST"], auth_level=AuthLevel.ANONYMOUS)
async def sleep(ctx: Context, input: Input) -> str:
    """Sleeps for the requested time unless cancelled first."""
    ms = millis(input)
    started = time.monotonic()
    try:
        await asyncio.sleep(ms / 1000)
    except asyncio.CancelledError:
        log.info(
            "sleep cancelled after %d ms (%s)",
            (time.monotonic() - started) * 1000,
            ctx.cancel_reason or "no reason given",
        )
        raise
    return f"slept {ms} ms"


@app.function()
def nap(ctx: Context, input: Input) -> str:
    """Like ``sleep``, as a sync handler that watches ``ctx.cancel_event``."""
    ms = millis(input)
    if ctx.cancel_event.wait(ms / 1000):
        log.info("nap cancelled")
        raise InvocationCancelled()
    return f"napped {ms} ms"


@app.function()
def spin(ctx: Context, input: Input) -> str:
    """Busy-waits for the requested time, ignoring cancellation entirely."""
    ms = millis(input)
    deadline = time.monotonic() + ms / 1000
    while time.monotonic() < deadline:
        time.sleep(0.001)
    return f"spun {ms} ms"


@app.function()
def panic(ctx: Context, input: Input) -> None:
    """Raises an exception with the input text."""
    raise RuntimeError(f"panic requested: {input.text()}")


@app.function()
async def crash(ctx: Context, input: Input) -> None:
    """Logs, then exits the whole worker process with code 3."""
    log.error("crash requested: exiting with code 3")
    # Give the log line a moment to reach the host.
    await asyncio.sleep(0.1)
    os._exit(3)


@app.function()
def fail(ctx: Context, input: Input) -> None:
    """Fails with the input text."""
    raise ValueError(f"failure requested: {input.text()}")


@app.function(name="log")
def log_lines(ctx: Context, input: Input) -> str:
    """Emits one log line at each of info, warning and error."""
    ctx.logger.info("info from log function")
    ctx.logger.warning("warning from log function")
    ctx.logger.error("error from log function")
    return "logged"


@app.function()
def deadline(ctx: Context, input: Input) -> dict[str, Any]:
    """Reports ``ctx.attempt`` and ``ctx.deadline``; fails the attempts
    before ``failBefore``."""
    ask = input.json() if input.bytes().strip() else {}
    fail_before = ask.get("failBefore", 0) if isinstance(ask, dict) else 0
    if ctx.attempt < fail_before:
        raise RuntimeError(f"attempt {ctx.attempt} failing on purpose")
    when = ctx.deadline
    if when is None:
        return {"attempt": ctx.attempt, "deadlineMs": None, "remainingMs": None}
    left = when - datetime.now(timezone.utc)
    return {
        "attempt": ctx.attempt,
        "deadlineMs": int(when.timestamp() * 1000),
        "remainingMs": max(0, int(left.total_seconds() * 1000)),
    }


def env_ms(name: str) -> int:
    """A non-negative integer from the environment; 0 when unset or not one."""
    value = os.environ.get(name, "")
    return int(value) if value.isascii() and value.isdigit() else 0


@app.timer(schedule="0 * * * * *", run_on_startup=False)
async def tick(ctx: Context, input: Input) -> str:
    """A timer function: logs the tick it was given (Azure's ``TimerInfo``).
    With ``SAMPLE_TICK_WORK_MS`` set, it then works that long, stopping early
    when cancelled and saying why (another host took the schedule over:
    ``lease lost``)."""
    timer = input.timer()
    scheduled = timer.next if timer.next is not None else "?"
    log.info("tick %s (past due: %s)", scheduled, "true" if timer.past_due else "false")
    ms = env_ms("SAMPLE_TICK_WORK_MS")
    if ms > 0:
        try:
            await asyncio.sleep(ms / 1000)
        except asyncio.CancelledError:
            log.info("tick %s cancelled (%s)", scheduled, ctx.cancel_reason or "no reason given")
            raise
    return f"ticked {scheduled}"


if __name__ == "__main__":
    app.run()
