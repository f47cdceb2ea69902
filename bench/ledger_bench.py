"""The SLA ledger's targets (issue 13), phase by phase.

  seed      66 vessels x 20 devices x 30 days (60 s samples) into a persistent influxd
            data directory, compacted, reused by the phases below (about 10 minutes, once)
  influx    on that data, with the history topped up to now and a live writer:
            bytes per vessel on the wire, influxd CPU per cycle (ledger against the old
            query design), the fleet cycle behind a 600 ms RTT (cold and warm), and a
            vessel's catch-up after 5 days unreachable
  ledger    the state DB alone: size per device-day, RunLog.record at 5,000 vessels x 20
            devices, 30-day range reads for 1,000 vessels (hours, and day totals); and
            Ledger.take for 66 vessels with 24h/7d/30d windows

Run: ``python bench/ledger_bench.py seed|influx|ledger [--data DIR]``.
"""

import argparse
import asyncio
import atexit
import gc
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))  # tests/ holds the influxd fixture

from childproc import Helper  # noqa: E402

from exporter.config import parse_config  # noqa: E402
from exporter.service import open_service  # noqa: E402
from simulator.fleetconfig import fleet_config, unused_loopback_url  # noqa: E402
from simulator.scenarios import OFFSET, plan_fleet  # noqa: E402
from tests.servers import InfluxServer  # noqa: E402

VESSELS = 66
DEVICES = 20
DAYS = 30
INTERVAL = 60  # seconds between samples, the simulator's default
DEFAULT_DATA = Path(tempfile.gettempdir()) / "fleet-ledger-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


# --- influxd on a persistent data directory -------------------------------------------


class KeptInflux(InfluxServer):
    """influxd 1.x whose data outlives it, in `root`; compacts as soon as writes stop, so
    the seeded history is in the compacted shape an older ship's data has."""

    def __init__(self, root: Path, binary: str = "/usr/bin/influxd") -> None:
        super().__init__(binary, startup_timeout=120.0)
        self._root = root

    def workdir(self) -> Path:
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def command(self) -> list[str]:
        command = super().command()
        path = Path(command[-1])
        text = path.read_text(encoding="utf-8").replace(
            "  query-log-enabled = false\n",
            '  query-log-enabled = false\n  compact-full-write-cold-duration = "1m"\n')
        path.write_text(text, encoding="utf-8")
        return command

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu(self) -> float:
        """influxd's CPU seconds so far: utime + stime from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def wait_idle(self, below: float = 0.05, every: float = 10.0, limit: float = 900.0) -> float:
        """Wait until influxd uses less than `below` of a core over `every` seconds."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = self.cpu()
            time.sleep(every)
            share = (self.cpu() - before) / every
            if share < below:
                return share
            progress(f"influxd busy ({share:.0%} of a core), waiting")
        raise RuntimeError("influxd did not go idle")


def anchor_file(data: Path) -> Path:
    return data / "anchor.json"


def seed(args: argparse.Namespace) -> None:
    data: Path = args.data
    now = int(time.time())
    anchor_file(data).unlink(missing_ok=True)
    with KeptInflux(data / "influxd", args.influxd) as influx:
        progress(f"seeding {VESSELS} x {DEVICES} devices x {DAYS} days into {data}")
        started = time.perf_counter()
        import subprocess

        out = subprocess.run(
            [sys.executable, "-m", "simulator.cli", "--influx-url", influx.url,
             "--scenarios", "healthy", "--vessels", str(VESSELS), "--devices-per-vessel",
             str(DEVICES), "--days", str(DAYS), "--interval", str(INTERVAL), "--now", str(now)],
            cwd=REPO, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        progress(out.stdout.strip())
        progress("waiting for compactions")
        influx.wait_idle()
    anchor_file(data).write_text(json.dumps({"anchor": now, "seconds": seconds}))
    print(f"seeded in {seconds:.0f} s; anchor {now}")


# --- the influx phase -------------------------------------------------------------------

RTT = 0.6
ALL_WINDOWS = ["24h", "7d", "30d"]
# Back-to-back cycles with settle 7 min read the points a 5-minute interval (the shipped
# fleet_config's) with the default 2-minute settle reads: the last 420 s.
STEADY_LEDGER = {"backfill": "1h", "settle": "420s"}
BYTES_TARGET = 2 * 1024
CPU_FACTOR = 5.0
WARM_TARGET, COLD_TARGET = 1.0, 1.6


@dataclass
class Cycle:
    wall: float  # run_once: collect, render, run log
    collect: float  # RunResult.duration
    influxd_cpu: float
    statuses: dict[str, int]
    first_error: str | None
    up: list[int]  # per vessel, at the proxy: request head and body
    down: list[int]  # per vessel, at the proxy: answer head and body
    requests: list[int]
    body: list[int]  # VesselResult.response_bytes: the answer body as received
    connections: int | None = None
    influxd_gc: float = 0.0  # influxd CPU of the collection asked for before the cycle


def _per_vessel(traffic: dict, ids: Sequence[str], key: str) -> list[int]:
    return [traffic.get("per_db", {}).get(i, {}).get(key, 0) for i in ids]


async def collect_influxd_garbage(influx: KeptInflux) -> float:
    """Have influxd's Go runtime collect its heap now (net/http/pprof's `gc=1`); returns
    the CPU seconds it took. Here one influxd holds all 66 vessels, a heap of 2.5-5 GB that
    Go collects about once a minute for about a second of CPU on the cores the cycles are
    timed on; a ship's influxd holds one vessel's data, a sixty-sixth of that."""
    cpu = influx.cpu()
    async with (aiohttp.ClientSession() as session,
                session.get(f"{influx.url}/debug/pprof/heap", params={"gc": "1"}) as r):
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"influxd pprof: HTTP {r.status}")
    return influx.cpu() - cpu


async def run_cycle(service, influx: KeptInflux, proxy: Helper | None) -> Cycle:
    gc_cpu = 0.0
    if proxy is not None:
        # A fleet cycle is timed from a fresh heap, so that influxd's periodic collection
        # of all 66 vessels' data does not land inside it (see collect_influxd_garbage).
        gc_cpu = await collect_influxd_garbage(influx)
        await proxy.stats()
    cpu = influx.cpu()
    started = time.perf_counter()
    run = await service.run_once()
    wall = time.perf_counter() - started
    cpu = influx.cpu() - cpu
    traffic = await proxy.stats() if proxy is not None else {}
    ids = [v.id for v in service.config.vessels]
    statuses: dict[str, int] = {}
    for v in run.vessels:
        statuses[v.status.value] = statuses.get(v.status.value, 0) + 1
    errors = [v.error for v in run.vessels if v.error]
    return Cycle(wall, run.duration, cpu, statuses, errors[0] if errors else None,
                 _per_vessel(traffic, ids, "up"), _per_vessel(traffic, ids, "down"),
                 _per_vessel(traffic, ids, "requests"), [v.response_bytes for v in run.vessels],
                 traffic.get("connections"), gc_cpu)


async def old_cycle(config, url: str, influx: KeptInflux, proxy: Helper | None) -> Cycle:
    """One request per vessel with the old statements, all at once, as the old backend
    sent them (same headers, gzip, form body); the answers are read and checked, not
    parsed into observations."""
    from old_statements import request_form

    windows, lookback = config.collection.windows, config.collection.lookback
    headers = {"Accept": "application/json", "Accept-Encoding": "gzip",
               "Content-Type": "application/x-www-form-urlencoded"}
    forms = {v.id: request_form(v, windows, lookback) for v in config.vessels}
    errors: list[str] = []
    sizes: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=len(forms), limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def one(vid: str) -> None:
            async with session.post(f"{url}/query", data=forms[vid], headers=headers) as r:
                raw = await r.read()
                sizes[vid] = len(raw)
                body = gzip_text(raw) if r.headers.get("Content-Encoding") == "gzip" else raw
                if r.status != 200 or b'"error"' in body:
                    errors.append(f"HTTP {r.status}: {body[:200]!r}")

        if proxy is not None:
            await proxy.stats()
        cpu = influx.cpu()
        started = time.perf_counter()
        await asyncio.gather(*(one(vid) for vid in forms))
        wall = time.perf_counter() - started
        cpu = influx.cpu() - cpu
    traffic = await proxy.stats() if proxy is not None else {}
    ids = list(forms)
    return Cycle(wall, wall, cpu, {"ok": len(ids) - len(errors), "error": len(errors)},
                 errors[0] if errors else None, _per_vessel(traffic, ids, "up"),
                 _per_vessel(traffic, ids, "down"), _per_vessel(traffic, ids, "requests"),
                 [sizes.get(i, 0) for i in ids], traffic.get("connections"))


def gzip_text(raw: bytes) -> bytes:
    import gzip

    return gzip.decompress(raw)


async def top_up(url: str, vessels, anchor: int, after: int = 0) -> int:
    """Write the samples between the seeding's anchor and now, on its grid, from tick
    `after` + 1 on; returns the last tick written."""
    from simulator.scenarios import live_samples

    ticks = int((time.time() - (anchor - OFFSET)) // INTERVAL)
    async with aiohttp.ClientSession() as session:
        for vessel in vessels:
            lines = [line for tick in range(after + 1, ticks + 1)
                     for line in live_samples(vessel, anchor, tick, INTERVAL)]
            for i in range(0, len(lines), 20000):
                data = io.BytesIO("\n".join(lines[i:i + 20000]).encode())
                async with session.post(f"{url}/write", params={"db": vessel.id,
                                        "precision": "s"}, data=data) as r:
                    if r.status != 204:
                        raise RuntimeError(f"top-up write failed: {r.status}")
    return ticks


def make_config(vessels, url: str, state: Path, ledger: dict, windows=("24h",)):
    raw = fleet_config(vessels, url, unused_loopback_url(), concurrency=len(vessels),
                       state_path=str(state), windows=list(windows), ledger=ledger)
    return parse_config(raw)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def kb(n: float) -> str:
    return f"{n / 1024:.2f} KB"


async def influx_phase(args: argparse.Namespace) -> None:
    anchor = json.loads(anchor_file(args.data).read_text())["anchor"]
    vessels = plan_fleet(VESSELS, ["healthy"], DEVICES)
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # state DBs: hundreds of MB
    with KeptInflux(args.data / "influxd", args.influxd) as influx:
        progress("influxd started; waiting for it to settle")
        influx.wait_idle(below=0.10, every=5.0)
        ticks = await top_up(influx.url, vessels, anchor)
        progress(f"topped up {ticks} minutes since the seeding; waiting for influxd to"
                 " compact them")
        # Hours of points written at once are snapshotted and compacted, the whole shard
        # again once its writes have stopped for compact-full-write-cold-duration (1m):
        # seconds of influxd CPU on the cores the cycles are timed on, which a ship's
        # influxd, written a minute at a time, does not spend. So wait until influxd has
        # been idle for longer than that, then write the minutes it took.
        influx.wait_idle(below=0.05, every=75.0)
        await top_up(influx.url, vessels, anchor, ticks)
        follower = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator.cli", "--influx-url", influx.url, "--scenarios",
            "healthy", "--vessels", str(VESSELS), "--devices-per-vessel", str(DEVICES),
            "--interval", str(INTERVAL), "--now", str(anchor), "--no-seed", "--follow",
            cwd=REPO, stdout=asyncio.subprocess.DEVNULL)
        try:
            await measure(args, influx, vessels, tmp)
        finally:
            follower.terminate()
            await follower.wait()


async def measure(args, influx: KeptInflux, vessels, tmp: Path) -> None:
    state = tmp / "steady.db"
    windows = args.windows.split(",")
    direct = make_config(vessels, influx.url, state, STEADY_LEDGER, windows)
    # The old design's cost grows with its windows: both the configured and all three.
    old_long = make_config(vessels, influx.url, state, STEADY_LEDGER, ALL_WINDOWS)
    loads = [os.getloadavg()[0]]

    # 1. Catch the ledger up, directly (RTT 0): the points since the backfill's start.
    progress("catching the ledger up")
    async with open_service(direct) as service:
        first = await run_cycle(service, influx, None)
        second = await run_cycle(service, influx, None)
    print(f"catch-up cycles: {first.wall:.2f} s, {second.wall:.2f} s; statuses {second.statuses}"
          f"{'; ' + second.first_error if second.first_error else ''}")

    # 2. Fleet cycle and bytes behind the 600 ms RTT proxy: a fresh exporter restored from
    # the state DB (cold: new TCP connections), then warm cycles on kept-alive connections.
    proxy = await Helper.start(BENCH / "latency_proxy.py", "--target", influx.url,
                               "--rtt", str(RTT))
    colds: list[Cycle] = []
    warms: list[Cycle] = []
    try:
        proxied = make_config(vessels, f"http://127.0.0.1:{proxy.port}", state, STEADY_LEDGER,
                              windows)
        for round_ in range(args.rounds):
            progress(f"proxied round {round_ + 1}: cold and {args.warm} warm cycles")
            async with open_service(proxied) as service:
                colds.append(await run_cycle(service, influx, proxy))
                for _ in range(args.warm):
                    warms.append(await run_cycle(service, influx, proxy))
        loads.append(os.getloadavg()[0])
        progress("old design through the proxy")
        old_proxied = [await old_cycle(proxied, f"http://127.0.0.1:{proxy.port}", influx, proxy)
                       for _ in range(1)]
    finally:
        await proxy.stop()

    # 3. influxd CPU per cycle, ledger and old design alternating, directly (no proxy),
    # with an idle stretch of the same length after each pair.
    progress("influxd CPU: ledger against the old design")
    news: list[Cycle] = []
    olds: list[Cycle] = []
    olds_long: list[Cycle] = []
    idles: list[float] = []
    async with open_service(direct) as service:
        for _ in range(args.cpu_cycles):
            news.append(await run_cycle(service, influx, None))
            olds.append(await old_cycle(direct, influx.url, influx, None))
            if windows != ALL_WINDOWS:
                olds_long.append(await old_cycle(old_long, influx.url, influx, None))
            pause = news[-1].wall
            cpu = influx.cpu()
            await asyncio.sleep(pause)
            idles.append((influx.cpu() - cpu) / pause)
    loads.append(os.getloadavg()[0])

    # 4. A vessel back after 5 days unreachable, default ledger settings.
    progress("catch-up after 5 days")
    catchup = await catch_up(influx, vessels[0], tmp)
    loads.append(os.getloadavg()[0])

    report_influx(windows, colds, warms, old_proxied, news, olds, olds_long, idles, catchup,
                  loads)


@dataclass
class CatchupRequest:
    since: int
    until: int | None
    up: int
    down: int
    body: int
    points: int


async def catch_up(influx: KeptInflux, vessel, tmp: Path) -> list[CatchupRequest]:
    from exporter.sla.hour import HOUR
    from exporter.sla.hours import Carry

    proxy = await Helper.start(BENCH / "latency_proxy.py", "--target", influx.url,
                               "--rtt", "0")
    requests: list[CatchupRequest] = []
    try:
        config = make_config([vessel], f"http://127.0.0.1:{proxy.port}", tmp / "catchup.db", {})
        (vcfg,) = config.vessels
        async with open_service(config) as service:
            now = time.time()
            frozen = int(now - 5 * 86400) // HOUR * HOUR
            # Frozen when the link went: the newest sample folded is the grid's before it.
            last = frozen - (frozen - (json.loads(anchor_file(
                influx.root.parent).read_text())["anchor"] - OFFSET)) % INTERVAL
            service.ledger.restore(vcfg.id, frozen, frozen - 25 * 86400,
                                   {d.address: Carry(last, True, frozen - 25 * 86400, None)
                                    for d in vcfg.devices}, {})
            for _ in range(60):
                ask = service.ledger.ask(vcfg, time.time())
                await proxy.stats()
                run = await service.run_once()
                traffic = await proxy.stats()
                entry = traffic["per_db"].get(vcfg.id, {})
                (result,) = run.vessels
                if result.error:
                    raise RuntimeError(f"catch-up request failed: {result.error}")
                requests.append(CatchupRequest(ask.since, ask.until, entry.get("up", 0),
                                               entry.get("down", 0), result.response_bytes,
                                               entry.get("requests", 0)))
                if ask.until is None:
                    break
    finally:
        await proxy.stop()
    return requests


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def report_influx(windows, colds, warms, old_proxied, news, olds, olds_long, idles, catchup,
                  loads) -> None:
    def total(c: Cycle) -> list[int]:
        return [u + d for u, d in zip(c.up, c.down, strict=True)]

    print()
    print(f"load average (1 min) during the phase: {', '.join(f'{x:.2f}' for x in loads)}")
    print(f"windows: {', '.join(windows)}")
    bad = [c for c in [*colds, *warms, *news] if set(c.statuses) != {"ok"}]
    if bad:
        print(f"NOT ALL OK: {bad[0].statuses}: {bad[0].first_error}")
    print("\nSatellite bytes per vessel per cycle (proxy, both directions, HTTP headers "
          "included), 20 devices")
    new_tot = [x for c in warms for x in total(c)]
    new_up = [x for c in warms for x in c.up]
    new_down = [x for c in warms for x in c.down]
    old_tot = [x for c in old_proxied for x in total(c)]
    print(_row(["design", "request mean", "answer mean", "total mean / max", "answer body mean",
                "requests/vessel", "target"]))
    print(_row(["ledger (warm)", f"{statistics.fmean(new_up):,.0f} B",
                f"{statistics.fmean(new_down):,.0f} B",
                f"{statistics.fmean(new_tot):,.0f} / {max(new_tot):,} B",
                f"{statistics.fmean([b for c in warms for b in c.body]):,.0f} B",
                f"{min(x for c in warms for x in c.requests)}-"
                f"{max(x for c in warms for x in c.requests)}",
                f"{'PASS' if max(new_tot) <= BYTES_TARGET else 'FAIL'} (<= 2 KB)"]))
    print(_row(["old design", f"{statistics.fmean([x for c in old_proxied for x in c.up]):,.0f} B",
                f"{statistics.fmean([x for c in old_proxied for x in c.down]):,.0f} B",
                f"{statistics.fmean(old_tot):,.0f} / {max(old_tot):,} B",
                f"{statistics.fmean([b for c in old_proxied for b in c.body]):,.0f} B",
                "1", ""]))

    print("\nFleet cycle, 66 vessels behind a 600 ms RTT (run_once wall; collect in brackets)")
    print(_row(["cycle", "n", "median", "max", "every cycle, in order", "new TCP connections",
                "target"]))
    for name, cycles, target in (("cold", colds, COLD_TARGET), ("warm", warms, WARM_TARGET)):
        walls = [c.wall for c in cycles]
        print(_row([name, str(len(cycles)),
                    f"{median(walls):.2f} s ({median([c.collect for c in cycles]):.2f} s)",
                    f"{max(walls):.2f} s", " ".join(f"{w:.2f}" for w in walls),
                    f"{median([c.connections or 0 for c in cycles]):.0f}",
                    f"{'PASS' if max(walls) < target else 'FAIL'} (< {target} s, every cycle)"]))
    collections = [c.influxd_gc for c in [*colds, *warms]]
    print(f"influxd's heap collected before each of these cycles (collect_influxd_garbage): "
          f"{median(collections):.2f} s of its CPU, median ({min(collections):.2f}-"
          f"{max(collections):.2f} s)")

    print("\ninfluxd CPU per cycle, 66 vessels x 20 devices x 30 days")
    new_cpu = [c.influxd_cpu for c in news]
    idle = [i * c.wall for i, c in zip(idles, news, strict=True)]
    print(_row(["design", "cycles", "influxd CPU median", "min-max", "cycle wall median"]))
    print(_row(["ledger", str(len(news)), f"{median(new_cpu) * 1000:.0f} ms",
                f"{min(new_cpu) * 1000:.0f}-{max(new_cpu) * 1000:.0f} ms",
                f"{median([c.wall for c in news]):.2f} s"]))
    for name, cycles in ((f"old design, {'/'.join(windows)}", olds),
                         (f"old design, {'/'.join(ALL_WINDOWS)}", olds_long)):
        if cycles:
            cpu = [c.influxd_cpu for c in cycles]
            print(_row([name, str(len(cycles)), f"{median(cpu) * 1000:.0f} ms",
                        f"{min(cpu) * 1000:.0f}-{max(cpu) * 1000:.0f} ms",
                        f"{median([c.wall for c in cycles]):.2f} s"]))
    print(_row(["idle, as long as a ledger cycle", str(len(idle)),
                f"{median(idle) * 1000:.0f} ms",
                f"{min(idle) * 1000:.0f}-{max(idle) * 1000:.0f} ms", ""]))
    for name, cycles in ((f"old {'/'.join(windows)}", olds),
                         (f"old {'/'.join(ALL_WINDOWS)}", olds_long)):
        if cycles:
            ratio = median([c.influxd_cpu for c in cycles]) / median(new_cpu)
            print(f"ratio {name} / ledger: {ratio:.1f}x "
                  f"{'PASS' if ratio >= CPU_FACTOR else 'FAIL'} (>= 5x)")

    print("\nCatch-up after 5 days unreachable (default ledger: max_catchup 6h, settle 2m)")
    print(_row(["request", "points from", "to", "request B", "answer B", "answer body B"]))
    for n, r in enumerate(catchup, 1):
        print(_row([str(n), iso(r.since), iso(r.until) if r.until else "now()", f"{r.up:,}",
                    f"{r.down:,}", f"{r.body:,}"]))
    tot = sum(r.up + r.down for r in catchup)
    print(f"{len(catchup)} requests, {tot:,} B in all (both directions)")


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


async def statements_phase(args: argparse.Namespace) -> None:
    """influxd CPU of each statement alone, for 66 vessels at once: what a cycle's cost is
    made of. Steady state: the points of the last 420 s."""
    from urllib.parse import urlencode

    from old_statements import build_statements as old_build

    from exporter.backend import form_body
    from exporter.influxql import build_statements, params
    from exporter.sla.ledger import Ask

    vessels = plan_fleet(VESSELS, ["healthy"], DEVICES)
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # state DBs: hundreds of MB
    with KeptInflux(args.data / "influxd", args.influxd) as influx:
        influx.wait_idle(below=0.10, every=5.0)
        anchor = json.loads(anchor_file(args.data).read_text())["anchor"]
        await top_up(influx.url, vessels, anchor)
        config = make_config(vessels, influx.url, tmp / "s.db", STEADY_LEDGER)
        now = time.time()
        # Every statement the ledger can send; in steady state it sends the points alone.
        ask = Ask(since=int(now) - 420, until=None, edge_end=(int(now - 86400) // 3600 + 1) * 3600,
                  newest=True, edges=True)
        steady = Ask(since=ask.since, until=None, edge_end=ask.edge_end, newest=False,
                     edges=False)
        kinds = {f"ledger {purpose}": {v.id: st.text for v in config.vessels
                                          for st in build_statements(v, ask, 30 * 86400)
                                          if st.purpose == purpose}
                 for purpose in ("edge:total", "edge:up", "latest", "last_reply", "points")}
        # The steady-state request: the points alone, with the RTT of the newest.
        kinds["ledger points:rtt (steady state)"] = {
            v.id: st.text for v in config.vessels
            for st in build_statements(v, steady, 30 * 86400)}
        for purpose in ("total:24h", "up:24h", "latest", "last_reply", "first"):
            kinds[f"old {purpose}"] = {v.id: st.text for v in config.vessels
                                       for st in old_build(v, config.collection.windows,
                                                           30 * 86400)
                                       if st.purpose == purpose}
        bound = {v.id: params(v) for v in config.vessels}
        print(f"params (the device regex, sent once per request): "
              f"{len(form_body({'params': bound['v000']})) - 7:,} B form-encoded")
        headers = {"Accept-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"}
        print(_row(["statement", "influxd CPU per cycle (66 vessels), median of 3",
                    "statement bytes (form-encoded)"]))
        async with aiohttp.ClientSession() as session:
            for name, texts in kinds.items():
                ledger = name.startswith("ledger")

                async def one(vid: str, texts=texts, name=name, ledger=ledger) -> None:
                    # The ledger's statements as the exporter sends them: the device regex
                    # bound once in `params`; the old ones as they were sent.
                    form = (form_body({"db": vid, "epoch": "s", "params": bound[vid],
                                       "q": texts[vid]}) if ledger else
                            urlencode({"db": vid, "epoch": "s", "q": texts[vid]}).encode())
                    async with session.post(f"{influx.url}/query", data=form,
                                            headers=headers) as r:
                        body = await r.read()
                        if r.status != 200 or b'"error"' in body:
                            raise RuntimeError(f"{name}: {r.status} {body[:200]!r}")

                cpus = []
                for _ in range(3):
                    cpu = influx.cpu()
                    await asyncio.gather(*(one(v.id) for v in config.vessels))
                    cpus.append(influx.cpu() - cpu)
                size = (len(form_body({"q": texts["v000"]})) if ledger
                        else len(urlencode({"q": texts["v000"]}))) - 2
                print(_row([name, f"{median(cpus) * 1000:.0f} ms", f"{size:,} B"]), flush=True)


# --- the ledger phase -------------------------------------------------------------------

SIZE_TARGET = 512  # bytes per device per day
RECORD_TARGET = 1.0  # seconds


def full_day(seed: int) -> list:
    """24 hours of a healthy device sampled every minute, with an outage now and then."""
    from exporter.sla.hour import Hour

    hours = []
    for h in range(24):
        down = 120 if (seed + h) % 37 == 0 else 0
        hours.append(Hour(up=3600 - down, down=down, up_samples=60 - down // 60,
                          down_samples=down // 60, outages=1 if down else 0, longest=down))
    return hours


async def fill_days(db, vessels, days: Sequence[int]) -> int:
    """Every device's day, day by day, through the exporter's own write."""
    from exporter import ledger_db
    from exporter.config import LedgerConfig, Window
    from exporter.sla.hours import Book, Hours
    from exporter.sla.ledger import Ledger, VesselBooks

    rows = 0
    for day in days:
        ledger = Ledger(LedgerConfig(), [Window("24h", 86400.0)])
        for v in vessels:
            ledger.vessels[v.id] = VesselBooks(
                frozen_until=(day + 1) * 86400, held_from=days[0] * 86400,
                books={d.address: Book(frozen=Hours(
                    {day * 24 + h: hour for h, hour in enumerate(full_day(n + day))}))
                    for n, d in enumerate(v.devices)})
            ledger.dirty.update((v.id, d.address, day) for d in v.devices)
        await ledger_db.write(db, ledger, (day + 1) * 86400, 400 * 86400, prune=False)
        await db.commit()
        rows += sum(len(v.devices) for v in vessels)
    return rows


async def store_cursors(db, vessels, frozen_until: int, held_from: int) -> None:
    """Each vessel's cursor and carries, as a running exporter stores them: the next start
    restores the stored days from two days before the cursor into memory."""
    from exporter import ledger_db
    from exporter.config import LedgerConfig, Window
    from exporter.sla.hours import Book, Carry
    from exporter.sla.ledger import Ledger, VesselBooks

    ledger = Ledger(LedgerConfig(), [Window("24h", 86400.0)])
    for v in vessels:
        ledger.vessels[v.id] = VesselBooks(
            frozen_until=frozen_until, held_from=held_from,
            books={d.address: Book(carry=Carry(last=frozen_until - frozen_until % INTERVAL,
                                               first=held_from)) for d in v.devices})
        ledger.cursors_dirty.add(v.id)
    await ledger_db.write(db, ledger, frozen_until, 400 * 86400, prune=False)
    await db.commit()


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def size_and_reads(args, tmp: Path) -> dict:
    from exporter import ledger_db
    from exporter.config import LedgerConfig, Window
    from exporter.runlog import RunLog
    from exporter.sla.hour import HOUR
    from exporter.sla.ledger import Ledger

    vessels = plan_fleet(args.read_vessels, ["healthy"], DEVICES)
    path = tmp / "ledger-read.db"
    runlog = await RunLog.open(path)
    today = int(time.time() // 86400)
    days = range(today - args.days + 1, today + 1)
    try:
        progress(f"writing {args.read_vessels} vessels x {DEVICES} devices x {args.days} days")
        started = time.perf_counter()
        rows = await fill_days(runlog.db, vessels, days)
        fill_s = time.perf_counter() - started
        await runlog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db_bytes(path)
        async with runlog.db.execute("SELECT sum(length(vessel) + 8 + length(addresses)"
                                     " + length(sums) + length(hours))"
                                     " FROM ledger_vessel_days") as c:
            (payload,) = await c.fetchone()
        # 30 days up to the current hour, as the console's history asks.
        end = int(time.time()) // HOUR * HOUR
        start = end - 30 * 86400
        ledger = Ledger(LedgerConfig(), [Window("24h", 86400.0), Window("30d", 30 * 86400.0)])
        progress(f"reading 30 days for {args.read_vessels} vessels through ledger_db.hours")
        times: list[float] = []
        hours = 0
        started = time.perf_counter()
        for v in vessels:
            t = time.perf_counter()
            found = await ledger_db.hours(runlog.db, ledger, v.id, [d.address for d in v.devices],
                                          start, end)
            times.append(time.perf_counter() - t)
            hours += sum(len(h) for h in found.values())
        read_s = time.perf_counter() - started
        # The same 30 whole days summed per device and day, as a period report reads them.
        progress(f"reading 30 days for {args.read_vessels} vessels through ledger_db.days")
        day_times: list[float] = []
        summed = 0
        started = time.perf_counter()
        for v in vessels:
            t = time.perf_counter()
            found_days = await ledger_db.days(runlog.db, ledger, v.id,
                                              [d.address for d in v.devices],
                                              today - 29, today + 1)
            day_times.append(time.perf_counter() - t)
            summed += sum(len(d) for d in found_days.values())
        days_s = time.perf_counter() - started
    finally:
        await runlog.close()
    return {"rows": rows, "fill_s": fill_s, "size": size, "payload": payload,
            "read_s": read_s, "read_times": times, "hours": hours, "days_s": days_s,
            "day_times": day_times, "days": summed}


async def take_time(args) -> dict:
    """Ledger.take for 66 vessels x 20 devices holding 30 days of hours, windows
    24h/7d/30d, a 5-minute answer a cycle; whole hours summed from running totals, and
    walked hour by hour as before them (hours.RUN beyond any window)."""
    from exporter.config import Window
    from exporter.sla import hours as hours_module
    from exporter.sla.hour import HOUR
    from exporter.sla.hours import Carry
    from exporter.sla.ledger import Ledger

    vessels = plan_fleet(VESSELS, ["healthy"], DEVICES)
    raw = fleet_config(vessels, unused_loopback_url(), unused_loopback_url(),
                       windows=["24h", "7d", "30d"])
    config = parse_config(raw)
    windows = [Window("24h", 86400.0), Window("7d", 7 * 86400.0), Window("30d", 30 * 86400.0)]
    results = {}
    real_run = hours_module.RUN
    for name, run in (("running totals", real_run), ("every hour (before)", 1 << 40)):
        hours_module.RUN = run
        start = int(time.time()) // 86400 * 86400 - 31 * 86400
        now = float(start + 31 * 86400 + 7)
        ledger = Ledger(config.ledger, windows)
        for v in config.vessels:
            book_hours = {d.address: {(start // HOUR) + k: h for day in range(31)
                                      for k, h in enumerate(full_day(n + day), day * 24)}
                          for n, d in enumerate(v.devices)}
            frozen_until = int(now) - 600
            ledger.restore(v.id, frozen_until, start,
                           {d.address: Carry(frozen_until, True, start, None)
                            for d in v.devices}, book_hours)
        cycles = []
        try:
            for _ in range(args.take_cycles):
                now += 300
                t = time.perf_counter()
                for v in config.vessels:
                    ask = ledger.ask(v, now)
                    grid = [(t_, True) for t_ in range(ask.since + 60 - ask.since % 60,
                                                       int(now) + 1, 60)]
                    ledger.take(v, ask, {d.address: grid for d in v.devices}, {}, now)
                cycles.append(time.perf_counter() - t)
        finally:
            hours_module.RUN = real_run
        results[name] = cycles
    return results


class InstantLedgerBackend:
    """Answers at once as influxd would: 20 healthy devices sampled every minute up to the
    (fake) clock, the points the ledger asks for and no further back than 10 minutes."""

    def __init__(self, clock) -> None:
        self._clock = clock

    async def query(self, vessel, ask):
        from exporter.model import Answer, DeviceObservation, VesselObservation

        now = self._clock()
        last = int(now) // INTERVAL * INTERVAL
        since = max(ask.since, last - 600)
        until = ask.until if ask.until is not None else now
        grid = [(t, True) for t in range(since - since % INTERVAL + INTERVAL, int(until) + 1,
                                         INTERVAL)]
        devices = {d.address: DeviceObservation(spans={}, last_sample=last, last_loss=0.0,
                                                last_rtt=0.04, last_reply=last)
                   for d in vessel.devices}
        return Answer(observation=VesselObservation(devices=devices), response_bytes=1500,
                      points={d.address: grid for d in vessel.devices})

    async def close(self) -> None:
        """Holds nothing."""


async def record_time(args, tmp: Path) -> dict:
    """RunLog.record of real runs of 5,000 vessels on an instant backend, after a start
    that restored the stored days a running exporter holds (windows 24h and 7d: a week);
    the clock moves 5 minutes a run, so every device freezes new samples into its hours
    each run."""
    from exporter import ledger_db
    from exporter import runlog as runlog_module
    from exporter.runlog import RunLog

    vessels = plan_fleet(args.write_vessels, ["healthy"], DEVICES)
    path = tmp / "ledger-write.db"
    now = [float(int(time.time()) // 300 * 300 - 3600 + 7)]

    def clock() -> float:
        return now[0]

    # Days before today, already stored, as a running exporter has them.
    today = int(now[0] // 86400)
    progress(f"storing {args.history_days} earlier days for {args.write_vessels} vessels")
    runlog = await RunLog.open(path)
    try:
        await fill_days(runlog.db, vessels, range(today - args.history_days, today))
        # The cursors five minutes back: the start restores the stored days it keeps, and
        # each run freezes five minutes of every device into its current hour.
        await store_cursors(runlog.db, vessels, int(now[0]) - 300,
                            (today - args.history_days) * 86400)
    finally:
        await runlog.close()
    raw = fleet_config(vessels, unused_loopback_url(), unused_loopback_url(),
                       concurrency=256, state_path=str(path), windows=["24h", "7d"],
                       ledger={"backfill": "1h"})
    config = parse_config(raw)
    records: list[dict] = []
    writes: list[float] = []
    real_write = ledger_db.write

    async def timed_write(*a, **k):
        t = time.perf_counter()
        await real_write(*a, **k)
        writes.append(time.perf_counter() - t)

    runlog_module.ledger_db.write = timed_write  # type: ignore[assignment]
    gc.collect()
    start_rss = resident_bytes()
    try:
        async with open_service(config, backend_factory=lambda cfg, s: InstantLedgerBackend(
                clock), clock=clock) as service:
            # What the start restored: the objects Python's garbage collector walks in a
            # full collection, what one takes, and the process's resident memory.
            tracked, rss = len(gc.get_objects()), resident_bytes()
            started = time.perf_counter()
            gc.collect()
            collection = time.perf_counter() - started
            hours = sum(len(b.frozen) for v in service.ledger.vessels.values()
                        for b in v.books.values())
            # As the exporter does once started (exporter/web.py): what the start restored
            # lives as long as the process, out of the garbage collector's scans.
            gc.freeze()
            real_record = service.runlog.record

            async def timed_record(run, retention, ledger=None, ledger_retention=0.0):
                dirty, cursors = len(ledger.dirty), len(ledger.cursors_dirty)
                pruned = int(run.finished_at // 86400) != service.runlog._pruned_day
                t = time.perf_counter()
                result = await real_record(run, retention, ledger, ledger_retention)
                records.append({"seconds": time.perf_counter() - t, "days": dirty,
                                "cursors": cursors, "prune": pruned})
                return result

            service.runlog.record = timed_record  # type: ignore[method-assign]
            # Each vessel's rows are packed as its result comes in, on the loop: what
            # that costs over a run, and the longest it holds the loop for one vessel.
            real_prepare = service.runlog.prepare
            packing: list[float] = []

            def timed_prepare(result, ledger=None):
                t = time.perf_counter()
                real_prepare(result, ledger)
                packing.append(time.perf_counter() - t)

            service.runlog.prepare = timed_prepare  # type: ignore[method-assign]
            writes.clear()  # the start's (it stores the maintenance windows), not a run's
            for n in range(args.write_runs):
                now[0] += 300
                progress(f"run {n + 1} of {args.write_vessels} vessels")
                packing.clear()
                run = await service.run_once()
                if run.failed:
                    raise RuntimeError(f"{run.failed} vessels failed")
                records[-1].update(packing=sum(packing), packing_max=max(packing))
    finally:
        runlog_module.ledger_db.write = real_write
    for r, w in zip(records, writes, strict=True):
        r["ledger_write"] = w
    return {"records": records, "size": db_bytes(path), "tracked": tracked, "rss": rss,
            "start_rss": start_rss, "collection": collection, "hours": hours}


def resident_bytes() -> int:
    """This process's resident memory (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def ledger_phase(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # state DBs: hundreds of MB
    loads = [os.getloadavg()[0]]
    size = await size_and_reads(args, tmp)
    loads.append(os.getloadavg()[0])
    record = await record_time(args, tmp)
    loads.append(os.getloadavg()[0])
    takes = await take_time(args)
    loads.append(os.getloadavg()[0])
    print()
    print(f"load average (1 min) during the phase: {', '.join(f'{x:.2f}' for x in loads)}")
    per = size["size"] / size["rows"]
    print(f"\nState DB: {size['rows']:,} device-days ({args.read_vessels} vessels x {DEVICES}"
          f" devices x {args.days} days), written in {size['fill_s']:.1f} s")
    print(_row(["measure", "value", "target"]))
    print(_row(["file size (after a WAL checkpoint)", f"{size['size'] / 1e6:.1f} MB", ""]))
    print(_row(["per device per day", f"{per:.0f} B",
                f"{'PASS' if per <= SIZE_TARGET else 'FAIL'} (<= 0.5 KB)"]))
    print(_row(["of which key and blob", f"{size['payload'] / size['rows']:.0f} B", ""]))
    times = sorted(size["read_times"])
    print(_row([f"30-day read, {args.read_vessels} vessels x {DEVICES} devices "
                "(ledger_db.hours, one call per vessel)", f"{size['read_s']:.2f} s", ""]))
    print(_row(["per vessel median / p95 / max",
                f"{median(times) * 1000:.1f} / {times[int(0.95 * len(times))] * 1000:.1f} / "
                f"{times[-1] * 1000:.1f} ms", ""]))
    print(_row(["hours returned", f"{size['hours']:,}", ""]))
    times = sorted(size["day_times"])
    print(_row([f"30-day read, {args.read_vessels} vessels x {DEVICES} devices, day totals "
                "(ledger_db.days, one call per vessel)", f"{size['days_s']:.2f} s",
                f"{'PASS' if size['days_s'] < 5 else 'FAIL'} (well under 5 s)"]))
    print(_row(["per vessel median / p95 / max",
                f"{median(times) * 1000:.1f} / {times[int(0.95 * len(times))] * 1000:.1f} / "
                f"{times[-1] * 1000:.1f} ms", ""]))
    print(_row(["device-days returned", f"{size['days']:,}", ""]))
    print(f"\nRunLog.record, {args.write_vessels:,} vessels x {DEVICES} devices, "
          f"{args.history_days} earlier days stored")
    print(_row(["run", "days written", "cursors", "prune", "record", "of which ledger_db.write",
                "target", "packed as results came in: sum / longest"]))
    for n, r in enumerate(record["records"], 1):
        print(_row([str(n), f"{r['days']:,}", f"{r['cursors']:,}", "yes" if r["prune"] else "no",
                    f"{r['seconds']:.2f} s", f"{r['ledger_write']:.2f} s",
                    f"{'PASS' if r['seconds'] < RECORD_TARGET else 'FAIL'} (< 1 s)",
                    f"{r['packing']:.2f} s / {r['packing_max'] * 1e6:.0f} us"]))
    print(f"state DB after the runs: {record['size'] / 1e6:.0f} MB")
    print(f"after the start: {record['hours']:,} hours held, {record['tracked']:,} objects"
          f" tracked by the garbage collector, {record['rss'] / 1e6:.0f} MB resident"
          f" ({record['start_rss'] / 1e6:.0f} MB before it); a full collection"
          f" {record['collection'] * 1000:.0f} ms")
    print(f"\nLedger.take, {VESSELS} vessels x {DEVICES} devices, 30 days held, windows "
          f"24h/7d/30d, {args.take_cycles} cycles")
    print(_row(["whole hours", "first cycle", "median of the rest", "max of the rest"]))
    for name, cycles in takes.items():
        rest = cycles[1:] or cycles
        print(_row([name, f"{cycles[0]:.3f} s", f"{median(rest):.3f} s",
                    f"{max(rest):.3f} s"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["seed", "influx", "statements", "ledger"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"influxd data directory (default {DEFAULT_DATA})")
    parser.add_argument("--influxd", default="/usr/bin/influxd")
    parser.add_argument("--rounds", type=int, default=3, help="fresh exporters (cold cycles)")
    parser.add_argument("--warm", type=int, default=3, help="warm cycles per fresh exporter")
    parser.add_argument("--windows", default="24h",
                        help="influx: collection.windows, comma-separated (default 24h)")
    parser.add_argument("--days", type=int, default=30, help="ledger: days stored for reads")
    parser.add_argument("--read-vessels", type=int, default=1000)
    parser.add_argument("--write-vessels", type=int, default=5000)
    parser.add_argument("--history-days", type=int, default=7,
                        help="ledger: earlier days stored before the timed runs")
    parser.add_argument("--write-runs", type=int, default=4)
    parser.add_argument("--take-cycles", type=int, default=5,
                        help="ledger: Ledger.take cycles with 24h/7d/30d windows")
    parser.add_argument("--cpu-cycles", type=int, default=5, help="cycles of each design")
    args = parser.parse_args()
    print(f"fleet-sla ledger benchmark, {args.phase}: Python {platform.python_version()}, "
          f"{len(os.sched_getaffinity(0))} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.phase == "seed":
        seed(args)
    elif args.phase == "statements":
        asyncio.run(statements_phase(args))
    elif args.phase == "influx":
        asyncio.run(influx_phase(args))
    else:
        asyncio.run(ledger_phase(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
