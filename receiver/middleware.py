"""The one place errors become HTTP answers: JSON for the API, an HTML page for people.

JSON errors are `{"error": "<field>: <message>"}`; the status tells Alertmanager and
other callers whether to retry (5xx) or give up (4xx).
"""

import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from .errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from .render import render

log = logging.getLogger(__name__)

STATUS: dict[type[DomainError], int] = {Invalid: 400, Forbidden: 403, NotFound: 404,
                                        Conflict: 409, Unavailable: 503}
_MACHINE_PATHS = ("/api/", "/metrics", "/healthz", "/readyz")


def status_of(exc: BaseException) -> int:
    """The HTTP status an exception is answered with."""
    if isinstance(exc, web.HTTPException):
        return exc.status
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def _for_machines(request: web.Request) -> bool:
    return request.path.startswith(_MACHINE_PATHS)


def _answer(request: web.Request, status: int, message: str,
            headers: dict[str, str] | None = None) -> web.Response:
    if _for_machines(request):
        return web.json_response({"error": message}, status=status, headers=headers)
    response = render("error.html", status, code=status, message=message,
                      reason=web.Response(status=status).reason)
    response.headers.update(headers or {})
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # a redirect, or an answer already in the JSON shape
        # Keep what the answer says beyond its body (WWW-Authenticate, Allow).
        kept = {name: value for name, value in exc.headers.items()
                if name not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        return _answer(request, exc.status, exc.text or exc.reason, kept)
    except DomainError as exc:
        return _answer(request, status_of(exc), str(exc))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _answer(request, 500, "internal error")
