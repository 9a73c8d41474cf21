"""trace: returns the trace context the worker passed (``context.trace_context``)
as JSON: ``{"traceParent", "traceState", "attributes"}`` (nulls when none), and
``"names"``, the attribute names it was read by.

``azure.functions.TraceContext`` names them ``trace_parent``, ``trace_state``
and ``attributes``; the published worker 1.1.9 passes its own class, which
names them ``Traceparent``, ``Tracestate`` and ``Attributes``. Either is read.
"""
import json

import azure.functions as func

NAMES = (("trace_parent", "Traceparent"), ("trace_state", "Tracestate"), ("attributes", "Attributes"))


def main(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    trace = getattr(context, "trace_context", None)
    values, used = [], []
    for names in NAMES:
        name = next((n for n in names if trace is not None and hasattr(trace, n)), None)
        values.append(getattr(trace, name) if name else None)
        used.append(name)
    parent, state, attributes = values
    body = {
        "traceParent": parent,
        "traceState": state,
        "attributes": dict(attributes) if attributes is not None else None,
        "names": used,
    }
    return func.HttpResponse(body=json.dumps(body), status_code=200, mimetype="application/json")
