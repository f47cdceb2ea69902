"""JSON error answers: the status tells the caller whether to retry."""

import json

from aiohttp import web


def json_error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")
