"""crash: ends the worker process with exit code 3 mid-invocation."""
import os
import sys

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    sys.stderr.write("crash: exiting with code 3\n")
    sys.stderr.flush()
    os._exit(3)
