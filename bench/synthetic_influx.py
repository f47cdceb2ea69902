"""A cheap stand-in for InfluxDB 1.x ``/query``: waits one RTT, then answers gzip JSON.

Every device named in a statement is healthy (all samples up, newest 30 s old). The
answer depends only on the statement text, so its gzip body is built once per distinct
query and the server stays cheap enough to keep hundreds of requests in flight.

Run: ``python bench/synthetic_influx.py --delay 0.6``
"""

import asyncio
import gzip
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from childproc import Stats, endpoint_args, serve_endpoint

from simulator.answers import DeviceFacts, addresses, answer


def healthy_answer(statements: list[str], now: int, params: str | None = None) -> dict[str, Any]:
    """What InfluxDB 1.x returns for a vessel whose devices are all up (epoch=s)."""
    facts = DeviceFacts(last_sample=now - 30, last_reply=now - 30,
                        first_sample=now - 86400 + 30, rtt_ms=35.412)
    return answer(statements, dict.fromkeys(addresses(statements[0], params), facts),
                  params=params)


class SyntheticInflux:
    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._bodies: dict[str, bytes] = {}
        self._forms: dict[bytes, dict[str, str]] = {}
        self._reset()

    def _reset(self) -> None:
        self._requests: Counter[str] = Counter()
        self._body_bytes = 0
        self._in_flight = 0
        self._max_in_flight = 0

    def stats(self) -> Stats:
        snapshot = {
            "requests": sum(self._requests.values()),
            "per_db": {db: {"requests": n} for db, n in self._requests.items()},
            "body_bytes": self._body_bytes,
            "max_in_flight": self._max_in_flight,
            "distinct_queries": len(self._bodies),
        }
        in_flight = self._in_flight
        self._reset()
        self._in_flight = in_flight
        return snapshot

    def _body(self, q: str, params: str | None) -> bytes:
        key = f"{q}\0{params}"
        body = self._bodies.get(key)
        if body is None:
            # Compact separators and default gzip level, as influxd sends them.
            document = healthy_answer(q.split(";\n"), int(time.time()), params)
            text = json.dumps(document, separators=(",", ":"))
            body = self._bodies[key] = gzip.compress(text.encode(), compresslevel=6)
        return body

    async def handle(self, request: web.Request) -> web.Response:
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            # Keyed on the raw form: a vessel sends the same bytes every cycle, and parsing
            # 256 forms at once would make this server, not the exporter, the bottleneck.
            raw = await request.read()
            form = self._forms.get(raw)
            if form is None:
                form = self._forms[raw] = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            self._requests[form.get("db", "?")] += 1
            body = self._body(form.get("q", ""), form.get("params"))
            await asyncio.sleep(self._delay)
        finally:
            self._in_flight -= 1
        self._body_bytes += len(body)
        return web.Response(
            body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )


async def main() -> None:
    args = endpoint_args(__doc__.splitlines()[0])
    influx = SyntheticInflux(args.delay)
    await serve_endpoint("/query", influx.handle, influx.stats, args.lifetime)

if __name__ == "__main__":
    asyncio.run(main())
