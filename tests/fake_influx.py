"""A scriptable stand-in for InfluxDB's v1 /query API, for answers a real server won't give.

It answers the exporter's statements from a table of per-device facts, and can be told to
answer anything else instead: error pages, broken JSON, slow replies, auth failures.
"""

import asyncio
import gzip
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from simulator.answers import DeviceFacts, answer

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    headers: dict[str, str]
    query: dict[str, str]  # the URL's query string
    form: dict[str, str]
    wire: int = 0  # bytes received: request line, headers and body


@dataclass
class FakeInflux:
    devices: dict[str, DeviceFacts] = field(default_factory=dict)
    script: deque[Responder] = field(default_factory=deque)  # used first, one per request
    requests: list[Recorded] = field(default_factory=list)
    gzip: bool = True

    def answer(self, statements: list[str], params: str | None = None) -> dict[str, Any]:
        return answer(statements, self.devices, params=params)

    def json_response(self, document: Any) -> web.Response:
        body = json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        if self.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = {k: str(v) for k, v in (await request.post()).items()}
        head = len(f"{request.method} {request.path_qs} HTTP/1.1\r\n\r\n") + sum(
            len(k) + len(v) + 4 for k, v in request.raw_headers)
        self.requests.append(Recorded(dict(request.headers), dict(request.query), form,
                                      head + len(body)))
        if self.script:
            return await self.script.popleft()(request)
        return self.json_response(self.answer(form["q"].split(";\n"), form.get("params")))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/query", self.handle)
        return app


def reply(status: int = 200, body: bytes | str = b"", content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> Responder:
    async def respond(request: web.Request) -> web.Response:
        data = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=data, content_type=content_type,
                            headers=headers)
    return respond


def slow(seconds: float) -> Responder:
    async def respond(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.Response(status=204)
    return respond


def streamed(body: bytes) -> Responder:
    """Chunked, with no Content-Length, so only the bytes received can be counted."""
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 1 << 20):
            await response.write(body[start:start + (1 << 20)])
        await response.write_eof()
        return response
    return respond
