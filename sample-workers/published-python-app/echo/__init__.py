"""echo: returns the request body unchanged (async, so concurrent calls overlap)."""
import azure.functions as func


async def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(body=req.get_body(), status_code=200,
                             mimetype="application/octet-stream")
