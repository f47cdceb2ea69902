"""Console page benchmark: the overview for 1,000 vessels x 3 components and a vessel page.

The real app with an instant backend (collect_bench.InstantBackend: 5 % of devices down,
13 % with loss), windows 24h, 7d and 30d. Server-side time is the handler's, measured by a
middleware, from request to response object (gzip runs after, off the loop); the round
trip adds compression and the client. Targets: overview < 100 ms and < 300 KB gzipped,
vessel page < 50 ms.

Run: ``.venv/bin/python bench/console_bench.py [--vessels 1000] [--repeat 20]``.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from collect_bench import InstantBackend, wait_ready

from exporter.config import parse_config
from exporter.web import create_app
from simulator.fleetconfig import fleet_config, unused_loopback_url
from simulator.scenarios import plan_fleet

OVERVIEW_MS, OVERVIEW_KB, VESSEL_MS = 100.0, 300.0, 50.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def timing(sink: dict[str, list[float]]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        sink.setdefault(request.path, []).append(time.perf_counter() - started)
        return response
    return timed


async def bench(vessels: int, repeat: int) -> int:
    plan = plan_fleet(vessels, ["healthy"], 4)  # ap-1, ap-2, dash-1, srv-1: 3 components
    with tempfile.TemporaryDirectory() as tmp:
        raw = fleet_config(plan, unused_loopback_url(), unused_loopback_url(),
                           state_path=str(Path(tmp) / "console.db"))
        raw["collection"]["windows"] = ["24h", "7d", "30d"]
        config = parse_config(raw)
        app = create_app(config, backend_factory=lambda cfg, _s: InstantBackend(
            cfg.collection.windows))
        server_times: dict[str, list[float]] = {}
        app.middlewares.append(timing(server_times))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            await wait_ready(base)
            vessel = plan[len(plan) // 2].id
            trips: dict[str, list[float]] = {}
            sizes: dict[str, tuple[int, int]] = {}
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                for path in ("/", f"/vessels/{vessel}"):
                    for _ in range(repeat + 1):
                        started = time.perf_counter()
                        async with session.get(base + path,
                                               headers={"Accept-Encoding": "gzip"}) as resp:
                            assert resp.status == 200, resp.status
                            packed = await resp.read()
                        trips.setdefault(path, []).append(time.perf_counter() - started)
                    identity = {"Accept-Encoding": "identity"}
                    async with session.get(base + path, headers=identity) as plain:
                        sizes[path] = (len(await plain.read()), len(packed))
        finally:
            await runner.cleanup()
    print(f"console: {vessels} vessels x 3 components (4 devices), windows 24h 7d 30d, "
          f"{repeat} requests each after one cold; Python {sys.version.split()[0]}")
    print(f"{'page':<18}{'cold ms':>9}{'median ms':>11}{'max ms':>9}{'trip ms':>9}"
          f"{'KB':>9}{'KB gz':>8}  verdict")
    failed = 0
    for path, limit in (("/", OVERVIEW_MS), (f"/vessels/{vessel}", VESSEL_MS)):
        cold, *warm = server_times[path]
        trip = statistics.median(trips[path][1:])
        raw_size, packed_size = sizes[path]
        ok = max(warm) * 1000 < limit and (path != "/" or packed_size / 1024 < OVERVIEW_KB)
        failed += not ok
        name = "overview" if path == "/" else "vessel page"
        print(f"{name:<18}{cold * 1000:>9.1f}{statistics.median(warm) * 1000:>11.1f}"
              f"{max(warm) * 1000:>9.1f}{trip * 1000:>9.1f}{raw_size / 1024:>9.0f}"
              f"{packed_size / 1024:>8.0f}  {'PASS' if ok else 'FAIL'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vessels", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    return asyncio.run(bench(args.vessels, args.repeat))


if __name__ == "__main__":
    sys.exit(main())
