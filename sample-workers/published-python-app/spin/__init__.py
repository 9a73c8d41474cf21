"""spin: busy-loops for `ms` milliseconds (query `?ms=` or the body; default
forever), burning CPU without yielding."""
import time

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    text = req.params.get("ms") or req.get_body().decode("utf-8", "replace").strip()
    try:
        ms = int(text)
    except ValueError:
        ms = -1
    deadline = time.monotonic() + ms / 1000.0
    n = 0
    while ms < 0 or time.monotonic() < deadline:
        n += 1
    return func.HttpResponse(f"spun {n}", status_code=200)
