"""A cheap stand-in for InfluxDB 2's ``/api/v2/query``: waits one RTT, then answers gzip CSV.

Every device named in the script is healthy (a day of samples, all up, newest 30 s old),
in InfluxDB 2's annotated CSV. The answer depends only on the script, so its gzip body
is built once per distinct script.

Run: ``python bench/synthetic_flux.py --delay 0.6``
"""

import argparse
import asyncio
import gzip
import json
import time
from collections import Counter

from aiohttp import web
from childproc import Stats, serve_control

from simulator.flux_csv import healthy_answer


class SyntheticFlux:
    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._bodies: dict[bytes, tuple[bytes, int]] = {}
        self._reset()

    def _reset(self) -> None:
        self._requests: Counter[str] = Counter()
        self._body_bytes = 0
        self._csv_bytes = 0

    def stats(self) -> Stats:
        snapshot = {"requests": sum(self._requests.values()), "body_bytes": self._body_bytes,
                    "csv_bytes": self._csv_bytes, "vessels": len(self._requests)}
        self._reset()
        return snapshot

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        cached = self._bodies.get(raw)
        if cached is None:
            script = json.loads(raw)["query"]
            text = healthy_answer(script, int(time.time())).encode()
            cached = self._bodies[raw] = (gzip.compress(text, compresslevel=6), len(text))
        body, size = cached
        self._requests[str(hash(raw))] += 1
        await asyncio.sleep(self._delay)
        self._body_bytes += len(body)
        self._csv_bytes += size
        return web.Response(body=body, headers={"Content-Type": "text/csv; charset=utf-8",
                                                "Content-Encoding": "gzip"})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.6, help="seconds before answering")
    parser.add_argument("--lifetime", type=float, default=900.0, help="exit after this long")
    args = parser.parse_args()
    flux = SyntheticFlux(args.delay)
    app = web.Application()
    app.router.add_post("/api/v2/query", flux.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    try:
        await serve_control(runner.addresses[0][1], flux.stats, args.lifetime)
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
