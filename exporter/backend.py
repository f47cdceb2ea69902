"""The backend seam: one call per vessel returns its observation or a CollectError.

InfluxQL over the v1 ``/query`` API is spoken by InfluxDB 1.x, 2.x (v1 compatibility
with a DBRP mapping) and 3.x, so it is the default backend; Flux is in flux_backend.py.
"""

import asyncio
import base64
import contextlib
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import quote_plus

import aiohttp

from .config import VesselConfig
from .influxql import Statement, build_statements, params, parse_answer
from .model import Answer, AuthError, QueryError
from .sla.ledger import Ask
from .transport_errors import http_status_error, transport_error

MAX_ANSWER_BYTES = 32 * 1024 * 1024  # decoded; a bounded query never comes near this
# A legitimate answer holds a few short series per device plus its raw points. The cap
# bounds the time one parse holds the event loop (about 3 ms per 100 KiB of the worst JSON
# on a busy core); max_catchup bounds the points.
ANSWER_BYTES_PER_DEVICE = 8 * 1024
MIN_ANSWER_CAP = 64 * 1024
# A raw row is `[1700000000,0,0]` or `[1700000000,1,100]` with a comma: at most 32 bytes;
# a device may sample twice as often as its sample_interval says.
BYTES_PER_POINT = 32


# A sample_interval over a minute may be an interval that grew: the points from before the
# change, a minute apart, are read too (a backfill, a catch-up).
SLOWEST_ASSUMED_INTERVAL = 60.0


def points_per_device(vessel: VesselConfig, span: float) -> int:
    """The most raw points one device can legitimately bring over `span`."""
    interval = min(vessel.sample_interval, SLOWEST_ASSUMED_INTERVAL)
    return 2 * int(span / max(1.0, interval)) + 16


@dataclass(frozen=True, slots=True)
class AnswerCap:
    """The largest answer, decoded, that a vessel's query can legitimately get."""

    bytes: int
    devices: int

    @classmethod
    def of(cls, vessel: VesselConfig, span: float = 0.0,
           per_point: int = BYTES_PER_POINT) -> "AnswerCap":
        """`span`: the longest stretch of raw points one request reads; `per_point`: the
        most bytes one of them takes in the answer's format."""
        devices = len(vessel.devices)
        points = points_per_device(vessel, span)
        size = max(MIN_ANSWER_CAP,
                   (ANSWER_BYTES_PER_DEVICE + per_point * points) * devices)
        return cls(bytes=min(size, MAX_ANSWER_BYTES), devices=devices)

    def refuse(self, size: int | None = None, what: str = "") -> QueryError:
        """`size` None: more than the cap arrived, and reading stopped there."""
        got = f"over {self.bytes}" if size is None else str(size)
        noun = "device" if self.devices == 1 else "devices"
        return QueryError(f"answer too large: {got} bytes{what}, the cap for {self.devices} "
                          f"{noun} is {self.bytes} bytes")


class Backend(Protocol):
    async def query(self, vessel: VesselConfig, ask: Ask) -> Answer:
        """Collect one vessel with a single request; raise CollectError on failure."""
        ...

    async def close(self) -> None:
        """Release what the backend holds; it is not used afterwards."""
        ...


class ByApi:
    """Sends each vessel to the backend of its `influx.api`."""

    def __init__(self, backends: dict[str, Backend]) -> None:
        self._backends = backends

    async def query(self, vessel: VesselConfig, ask: Ask) -> Answer:
        return await self._backends[vessel.influx.api].query(vessel, ask)

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()


class ParseTurns:
    """At most one answer is parsed per event-loop turn, so requests are served between.

    Answers that arrive together would otherwise all be parsed in one turn: 32 vessels
    of 5 ms each hold /metrics for 160 ms. json.loads holds the GIL, so a thread would not
    help; the cap keeps each turn short.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        async with self._lock:
            await asyncio.sleep(0)  # the parse runs in a later turn than the one that asked
            yield


def decode_body(raw: bytes, encoding: str, cap: AnswerCap) -> bytes:
    if encoding in ("", "identity"):
        if len(raw) > cap.bytes:
            raise cap.refuse(len(raw))
        return raw
    if encoding not in ("gzip", "deflate"):
        raise QueryError(f"unsupported Content-Encoding {encoding[:40]!r}")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, cap.bytes + 1)
    except zlib.error:
        raise QueryError(f"corrupt {encoding} answer") from None
    if len(body) > cap.bytes:
        raise cap.refuse(None, " decoded")
    if not inflater.eof:
        raise QueryError(f"truncated {encoding} answer")
    return body


async def read_capped(response: aiohttp.ClientResponse, cap: AnswerCap) -> bytes:
    """The body, refusing to buffer more than the cap of it (compressed can't be larger)."""
    if (response.content_length or 0) > cap.bytes:
        raise cap.refuse(response.content_length)
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap.bytes:
            raise cap.refuse(None)
        chunks.append(chunk)
    return b"".join(chunks)


def load_json(body: bytes) -> Any:
    """The decoded document; a body json.loads chokes on is a QueryError that says why."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError(f"answer is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise QueryError(f"invalid JSON in answer ({len(body)} bytes): {exc.msg} "
                         f"at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise QueryError(f"JSON nested too deeply in answer ({len(body)} bytes)") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise QueryError(f"invalid JSON in answer ({len(body)} bytes): "
                         "a number with too many digits") from None


NO_MESSAGE = "no JSON error message"


def error_text(body: bytes) -> str:
    """InfluxDB says why in {"error": ...} (1.x) or {"message": ...} (2.x); anything else is
    summarised, not echoed. Not cut short: the collector redacts secrets, then shortens."""
    try:
        document = load_json(body)
    except QueryError:
        return NO_MESSAGE
    if isinstance(document, dict):
        for key in ("error", "message"):
            if isinstance(message := document.get(key), str):
                return message
    return NO_MESSAGE


# Go's form parser (influxd) splits on & and ;, and decodes %XX and +; it takes any other
# byte as it is, as do Python's and Rust's. So only those, space and # are escaped: the
# statements' quotes, parentheses and regex backslashes travel as one byte, not three.
_FORM_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) not in "%&;+#")


def form_body(fields: dict[str, str]) -> bytes:
    return "&".join(f"{k}={quote_plus(v, safe=_FORM_SAFE)}" for k, v in fields.items()).encode()


# aiohttp's own User-Agent and Accept: */* are bytes over the satellite for nothing.
SKIPPED_HEADERS = ("User-Agent", "Accept")


class InfluxQLBackend:
    def __init__(
        self, session: aiohttp.ClientSession, lookback: float, catchup: float
    ) -> None:
        self._session = session
        self._lookback = lookback
        self._catchup = catchup  # the longest stretch of raw points one request reads
        self._turns = ParseTurns()

    @staticmethod
    def _headers(vessel: VesselConfig) -> dict[str, str]:
        influx = vessel.influx
        headers = {"Accept-Encoding": "gzip"}
        if influx.token is not None:
            headers["Authorization"] = f"Token {influx.token.reveal()}"
        elif influx.username is not None and influx.password is not None:
            # Basic auth keeps credentials out of the URL, and so out of error messages.
            pair = f"{influx.username}:{influx.password.reveal()}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return headers

    def _request(self, vessel: VesselConfig, ask: Ask) -> tuple[list[Statement], bytes]:
        statements = build_statements(vessel, ask, self._lookback)
        form = form_body({
            "db": vessel.influx.database,
            "epoch": "s",
            "params": params(vessel),
            "q": ";\n".join(s.text for s in statements),
        })
        return statements, form

    async def close(self) -> None:
        """The session belongs to the caller."""

    async def query(self, vessel: VesselConfig, ask: Ask) -> Answer:
        statements, form = self._request(vessel, ask)
        headers = {**self._headers(vessel), "Content-Type": "application/x-www-form-urlencoded"}
        cap = AnswerCap.of(vessel, self._catchup)
        try:
            async with self._session.post(
                f"{vessel.influx.url}/query", data=form, headers=headers,
                skip_auto_headers=SKIPPED_HEADERS,
            ) as response:
                raw = await read_capped(response, cap)
                status = response.status
                ctype = response.content_type
                encoding = response.headers.get("Content-Encoding", "").lower()
        except (aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, vessel) from None

        if status in (401, 403):
            raise AuthError(f"HTTP {status}: {error_text(decode_body(raw, encoding, cap))}")
        if status >= 500 or status == 429:
            raise http_status_error(status, vessel)
        if status != 200:
            raise QueryError(f"HTTP {status}: {error_text(decode_body(raw, encoding, cap))}")
        if "json" not in ctype:
            raise QueryError(f"expected a JSON answer, got {ctype[:60] or 'no content type'}")
        async with self._turns.turn():
            document = load_json(decode_body(raw, encoding, cap))
            answer = parse_answer(document, statements, vessel)
        return replace(answer, response_bytes=len(raw))
