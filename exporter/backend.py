"""The backend seam: one call per vessel returns its observation or a CollectError.

InfluxQL over the v1 ``/query`` API is spoken by InfluxDB 1.x, 2.x (v1 compatibility
with a DBRP mapping) and 3.x, so it is the default backend; Flux is in flux_backend.py.
"""

import base64
import json
import zlib
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlencode

import aiohttp

from .config import VesselConfig, Window
from .influxql import Statement, build_statements, parse_answer
from .model import Answer, AuthError, QueryError, TransientError

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # decoded; a bounded query never comes near this


class Backend(Protocol):
    async def query(self, vessel: VesselConfig) -> Answer:
        """Collect one vessel with a single request; raise CollectError on failure."""
        ...

    async def close(self) -> None:
        """Release what the backend holds; it is not used afterwards."""
        ...


class ByApi:
    """Sends each vessel to the backend of its `influx.api`."""

    def __init__(self, backends: dict[str, Backend]) -> None:
        self._backends = backends

    async def query(self, vessel: VesselConfig) -> Answer:
        return await self._backends[vessel.influx.api].query(vessel)

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()


def decode_body(raw: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        if len(raw) > MAX_ANSWER_BYTES:
            raise QueryError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        return raw
    if encoding not in ("gzip", "deflate"):
        raise QueryError(f"unsupported Content-Encoding {encoding!r}")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, MAX_ANSWER_BYTES + 1)
    except zlib.error as exc:
        raise QueryError(f"corrupt {encoding} answer: {exc}") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise QueryError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    if not inflater.eof:
        raise QueryError(f"truncated {encoding} answer")
    return body


async def read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The body, refusing to buffer more than MAX_ANSWER_BYTES of it."""
    if (response.content_length or 0) > MAX_ANSWER_BYTES:
        raise QueryError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise QueryError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


NO_MESSAGE = "no JSON error message"


def error_text(body: bytes) -> str:
    """InfluxDB says why in {"error": ...} (1.x) or {"message": ...} (2.x); anything else is
    summarised, not echoed. Not cut short: the collector redacts secrets, then shortens."""
    try:
        document = json.loads(body)
    except ValueError:
        return NO_MESSAGE
    if isinstance(document, dict):
        for key in ("error", "message"):
            if isinstance(message := document.get(key), str):
                return message
    return NO_MESSAGE


class InfluxQLBackend:
    def __init__(
        self, session: aiohttp.ClientSession, windows: Sequence[Window], lookback: float
    ) -> None:
        self._session = session
        self._windows = tuple(windows)
        self._lookback = lookback
        self._requests: dict[str, tuple[list[Statement], bytes]] = {}

    @staticmethod
    def _headers(vessel: VesselConfig) -> dict[str, str]:
        influx = vessel.influx
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
        if influx.token is not None:
            headers["Authorization"] = f"Token {influx.token.reveal()}"
        elif influx.username is not None and influx.password is not None:
            # Basic auth keeps credentials out of the URL, and so out of error messages.
            pair = f"{influx.username}:{influx.password.reveal()}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return headers

    def _request(self, vessel: VesselConfig) -> tuple[list[Statement], bytes]:
        """Statements and form body depend on the config only: build them once per vessel."""
        cached = self._requests.get(vessel.id)
        if cached is None:
            statements = build_statements(vessel, self._windows, self._lookback)
            form = urlencode({
                "db": vessel.influx.database,
                "epoch": "s",
                "q": ";\n".join(s.text for s in statements),
            }).encode()
            cached = self._requests[vessel.id] = (statements, form)
        return cached

    async def close(self) -> None:
        """The session belongs to the caller."""

    async def query(self, vessel: VesselConfig) -> Answer:
        statements, form = self._request(vessel)
        headers = {**self._headers(vessel), "Content-Type": "application/x-www-form-urlencoded"}
        try:
            async with self._session.post(
                f"{vessel.influx.url}/query", data=form, headers=headers
            ) as response:
                raw = await read_capped(response)
                status = response.status
                ctype = response.content_type
                encoding = response.headers.get("Content-Encoding", "").lower()
        except (aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise TransientError(f"{type(exc).__name__}: {reason}") from None

        if status in (401, 403):
            raise AuthError(f"HTTP {status}: {error_text(decode_body(raw, encoding))}")
        if status >= 500 or status == 429:
            raise TransientError(f"HTTP {status}")
        if status != 200:
            raise QueryError(f"HTTP {status}: {error_text(decode_body(raw, encoding))}")
        if "json" not in ctype:
            raise QueryError(f"expected a JSON answer, got {ctype or 'no content type'}")
        body = decode_body(raw, encoding)
        try:
            document = json.loads(body)
        except json.JSONDecodeError as exc:
            raise QueryError(f"invalid JSON in answer ({len(body)} bytes): {exc.msg}") from None
        except UnicodeDecodeError as exc:  # bytes in no encoding JSON allows
            raise QueryError(f"invalid JSON in answer ({len(body)} bytes): {exc}") from None
        observation = parse_answer(document, statements, vessel, self._windows)
        return Answer(observation=observation, response_bytes=len(raw))
