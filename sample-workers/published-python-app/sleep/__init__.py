"""sleep: sleeps `ms` milliseconds (query `?ms=`, or the request body), then
answers "slept <ms>". Sync on purpose: the published worker has no cancel
capability, so the host can only end it by killing the worker process."""
import time

import azure.functions as func


def _ms(req: func.HttpRequest) -> int:
    text = req.params.get("ms") or req.get_body().decode("utf-8", "replace").strip()
    try:
        return max(0, int(text or "0"))
    except ValueError:
        return 0


def main(req: func.HttpRequest) -> func.HttpResponse:
    ms = _ms(req)
    time.sleep(ms / 1000.0)
    return func.HttpResponse(f"slept {ms}", status_code=200)
