"""exception: raises; the worker reports Failure with "Type: message"."""
import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("published-python exception function failed on purpose")
