"""A scriptable stand-in for InfluxDB's v1 /query API, for answers a real server won't give.

It understands just enough of the exporter's statements to answer them from a table of
per-device facts, and can be told to answer anything else instead: error pages, broken
JSON, slow replies, auth failures.
"""

import asyncio
import gzip
import json
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DEVICES = re.compile(r'"url" =~ /\^\((.*?)\)\$/')


def _addresses(statement: str) -> list[str]:
    """Device addresses from the statement's anchored regex, unescaped."""
    match = _DEVICES.search(statement)
    assert match, f"no device filter in {statement}"
    return [re.sub(r"\\(.)", r"\1", a) for a in re.split(r"(?<!\\)\|", match.group(1))]


@dataclass
class DeviceFacts:
    total: int = 1440
    up: int = 1440
    last_sample: int = 1_800_000_000
    result_code: int | None = 0
    loss: float | None = 0.0
    rtt_ms: float | None = 20.0
    last_reply: int | None = 1_800_000_000
    first_sample: int = 1_797_000_000


@dataclass
class Recorded:
    headers: dict[str, str]
    query: dict[str, str]  # the URL's query string
    form: dict[str, str]


@dataclass
class FakeInflux:
    devices: dict[str, DeviceFacts] = field(default_factory=dict)
    script: deque[Responder] = field(default_factory=deque)  # used first, one per request
    requests: list[Recorded] = field(default_factory=list)
    gzip: bool = True

    def answer(self, statements: list[str]) -> dict[str, Any]:
        results = []
        for index, text in enumerate(statements):
            series = []
            for address in _addresses(text):
                facts = self.devices.get(address)
                if facts is None:
                    continue
                row = self._row(text, facts)
                if row is not None:
                    columns, values = row
                    series.append({"name": "ping", "tags": {"url": address},
                                   "columns": columns, "values": [values]})
            result: dict[str, Any] = {"statement_id": index}
            if series:
                result["series"] = series
            results.append(result)
        return {"results": results}

    @staticmethod
    def _row(text: str, f: DeviceFacts) -> tuple[list[str], list[Any]] | None:
        if 'count("result_code")' in text:
            return (["time", "count"], [0, f.total]) if f.total else None
        if 'count("percent_packet_loss")' in text:
            return (["time", "count"], [0, f.up]) if f.up else None
        if "ORDER BY time ASC LIMIT 1" in text:
            return ["time", "result_code", "percent_packet_loss"], [f.first_sample, 0, 0.0]
        if "ORDER BY time DESC LIMIT 1" in text:
            return (["time", "result_code", "percent_packet_loss", "average_response_ms"],
                    [f.last_sample, f.result_code, f.loss, f.rtt_ms])
        if "last(" in text:
            return (["time", "last"], [f.last_reply, f.loss]) if f.last_reply else None
        raise AssertionError(f"unexpected statement {text}")

    def json_response(self, document: Any) -> web.Response:
        body = json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        if self.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(Recorded(dict(request.headers), dict(request.query), form))
        if self.script:
            return await self.script.popleft()(request)
        return self.json_response(self.answer(form["q"].split(";\n")))

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
