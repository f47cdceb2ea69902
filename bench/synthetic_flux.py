"""A cheap stand-in for InfluxDB 2's ``/api/v2/query``: waits one RTT, then answers gzip CSV.

Every device named in the script is healthy (a day of samples, all up, newest 30 s old),
in InfluxDB 2's annotated CSV. The answer depends only on the script, so its gzip body
is built once per distinct script.

Run: ``python bench/synthetic_flux.py --delay 0.6``
"""

import asyncio
import gzip
import json
import time

from aiohttp import web
from childproc import Stats, endpoint_args, serve_endpoint

from simulator.flux_csv import healthy_answer


class SyntheticFlux:
    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._bodies: dict[bytes, bytes] = {}
        self._reset()

    def _reset(self) -> None:
        self._requests = 0
        self._body_bytes = 0

    def stats(self) -> Stats:
        snapshot = {"requests": self._requests, "body_bytes": self._body_bytes}
        self._reset()
        return snapshot

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = self._bodies.get(raw)
        if body is None:
            text = healthy_answer(json.loads(raw)["query"], int(time.time()))
            body = self._bodies[raw] = gzip.compress(text.encode(), compresslevel=6)
        self._requests += 1
        await asyncio.sleep(self._delay)
        self._body_bytes += len(body)
        return web.Response(body=body, headers={"Content-Type": "text/csv; charset=utf-8",
                                                "Content-Encoding": "gzip"})


async def main() -> None:
    args = endpoint_args(__doc__.splitlines()[0])
    flux = SyntheticFlux(args.delay)
    await serve_endpoint("/api/v2/query", flux.handle, flux.stats, args.lifetime)

if __name__ == "__main__":
    asyncio.run(main())
