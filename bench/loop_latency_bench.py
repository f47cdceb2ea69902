"""How long /metrics and /healthz wait while collections read hostile InfluxDB answers.

A loopback server (own process) answers every vessel with something hostile: 50 MB of
tiny JSON objects, 100k series, a gzip bomb, JSON just under the vessel's cap, a 7 MB
Flux CSV. The exporter (this process, the real app) collects all vessels back to back
while a probe (own process) GETs /metrics and /healthz every 20 ms and records how long
each took. Target: no request waits more than 100 ms.

Run: ``python bench/loop_latency_bench.py [--vessels 120] [--seconds 20]``.
Exits 0 whatever the verdict.
"""

import argparse
import asyncio
import gzip
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from exporter.config import parse_config  # noqa: E402
from exporter.web import create_app  # noqa: E402

TARGET = 0.100  # seconds
DEVICES = 20
KINDS = ("tiny_50mb", "series_100k", "gzip_bomb", "under_cap")


# --- the hostile server (its own process) -------------------------------------------------

def _series(n: int) -> dict[str, Any]:
    return {"name": "ping", "tags": {"url": f"10.0.{n // 250}.{n % 250}"},
            "columns": ["time", "count"], "values": [[0, 1]]}


def hostile_bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    """Body and headers by kind; every one is built once, before serving."""
    json_type = {"Content-Type": "application/json"}
    statement = [{"statement_id": i} for i in range(5)]
    many = {"results": [{"statement_id": 0, "series": [_series(n) for n in range(100_000)]},
                        *statement[1:]]}
    under_cap = b"[" + b"{}," * (60_000 // 3) + b"{}]"  # legal size, slowest JSON to parse
    csv_head = ("#datatype,string,long,string,long\r\n#group,false,false,true,false\r\n"
                "#default,total:24h,,,\r\n,result,table,url,_value\r\n")
    csv = csv_head + ",,0,10.0.0.1,1\r\n" * 500_000
    return {
        "tiny_50mb": (b"[" + b"{}," * (50 * 1024 * 1024 // 3) + b"{}]", json_type),
        "series_100k": (json.dumps(many).encode(), json_type),
        "gzip_bomb": (gzip.compress(b" " * (200 * 1024 * 1024), 1),
                      {**json_type, "Content-Encoding": "gzip"}),
        "under_cap": (under_cap, json_type),
        "flux_long": (csv.encode(), {"Content-Type": "text/csv"}),
    }


async def serve() -> None:
    bodies = hostile_bodies()

    async def stream(request: web.Request, kind: str) -> web.StreamResponse:
        body, headers = bodies[kind]
        # Chunked, no Content-Length: the exporter can only count what it receives.
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for start in range(0, len(body), 1 << 20):
                await response.write(body[start:start + (1 << 20)])
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the exporter stopped reading: that is the point
        return response

    async def query(request: web.Request) -> web.StreamResponse:
        return await stream(request, str((await request.post())["db"]))

    async def flux(request: web.Request) -> web.StreamResponse:
        return await stream(request, "flux_long")

    app = web.Application()
    app.router.add_post("/query", query)
    app.router.add_post("/api/v2/query", flux)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF


# --- the probe (its own process) ----------------------------------------------------------

def probe(base: str, seconds: float) -> None:
    times: dict[str, list[float]] = {"/metrics": [], "/healthz": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path, found in times.items():
            started = time.perf_counter()
            with urllib.request.urlopen(base + path, timeout=30) as response:
                response.read()
            found.append(time.perf_counter() - started)
        time.sleep(0.02)
    print(json.dumps(times), flush=True)


# --- the measured exporter (this process) -------------------------------------------------

def fleet(port: int, vessels: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    devices = [{"address": f"10.0.0.{d}", "component": "server", "name": f"d{d}"}
               for d in range(DEVICES)]
    entries = []
    for n in range(vessels):
        kind = (*KINDS, "flux_long")[n % (len(KINDS) + 1)]
        influx: dict[str, Any] = (
            {"url": url, "api": "flux", "org": "-", "bucket": "b/autogen", "token": "bench-token"}
            if kind == "flux_long" else {"url": url, "database": kind})
        entries.append({"id": f"v{n:04d}-{kind.replace('_', '-')}", "influx": influx,
                        "devices": devices})
    return {"collection": {"interval": "1s", "timeout": "30s", "attempts": 1,
                           "concurrency": 64},
            "vessels": entries}


class StepClock:
    """The longest event-loop step, in CPU and in wall time.

    Wall time includes the time the OS ran other processes (on a shared 2-core machine,
    the hostile server itself); CPU time is the exporter's own work in that step.
    """

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0
        self._run = asyncio.events.Handle._run

    def __enter__(self) -> "StepClock":
        clock, run = self, self._run

        def timed(handle: asyncio.events.Handle) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            run(handle)
            clock.cpu = max(clock.cpu, time.thread_time() - cpu)
            clock.wall = max(clock.wall, time.perf_counter() - wall)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.events.Handle._run = self._run  # type: ignore[method-assign]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    verdict = "PASS" if ordered[-1] <= TARGET else "FAIL"
    return (f"| {name} | {len(ordered)} | {p50 * 1000:.1f} | {p99 * 1000:.1f} | "
            f"{ordered[-1] * 1000:.1f} | {verdict} |")


async def measure(vessels: int, seconds: float) -> None:
    # Before the exporter starts: nothing waits on this loop yet.
    server = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        with tempfile.TemporaryDirectory() as tmp:
            document = fleet(port, vessels)
            document["state"] = {"path": str(Path(tmp) / "exporter.db")}
            config = parse_config(document)
            runner = web.AppRunner(create_app(config), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            exporter_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            probe_proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--probe", f"http://127.0.0.1:{exporter_port}",
                str(seconds), stdout=asyncio.subprocess.PIPE)
            with StepClock() as steps:
                out, _ = await probe_proc.communicate()
            # In a thread: the exporter serving these runs on this event loop.
            base = f"http://127.0.0.1:{exporter_port}/api/v1/runs"
            finished = (await asyncio.to_thread(get_json, f"{base}?limit=1"))["runs"]
            last = finished[0] if finished else {"id": None, "duration_seconds": float("nan")}
            detail = (await asyncio.to_thread(get_json, f"{base}/{last['id']}") if finished
                      else {"vessels": []})
            await runner.cleanup()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    times = json.loads(out)
    print(f"{vessels} vessels x {DEVICES} devices, {seconds:g} s, collections back to back "
          f"(last run: id {last['id']}, {last['duration_seconds']:.2f} s)\n")
    print("| request | count | p50 ms | p99 ms | max ms | max <= 100 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path, found in times.items():
        print(summary(path, found))
    print(f"\nlongest event-loop step: {steps.cpu * 1000:.1f} ms CPU, "
          f"{steps.wall * 1000:.1f} ms wall")
    print("\nerrors by kind (last run):")
    seen: dict[str, str] = {}
    for entry in detail["vessels"]:
        seen.setdefault(entry["vessel"].split("-", 1)[1], entry["error"] or entry["status"])
    for kind, error in sorted(seen.items()):
        print(f"  {kind}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vessels", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
    elif args.probe:
        probe(args.probe[0], float(args.probe[1]))
    else:
        logging.basicConfig(level=logging.ERROR)
        asyncio.run(measure(args.vessels, args.seconds))


if __name__ == "__main__":
    main()
