"""Collection and scrape benchmark of the exporter, printed as tables with PASS/FAIL.

1. 66 vessels x 20 devices on a real influxd 1.6 behind a 600 ms RTT latency proxy:
   a cold cycle (new connections) and a warm one (keep-alive).
2. 1,000 and 5,000 vessels x 20 devices on a synthetic /query endpoint that answers
   after 600 ms, concurrency 256.
3. CPU seconds and peak RSS of this process per phase; it runs only exporter code,
   every server (influxd, proxy, synthetic endpoint, scrape client) has its own process.
4. /metrics of the real app for 1,000 vessels x 20 devices, scraped from another process.

Run: ``python bench/collect_bench.py [--quick]``. Exits 0 whatever the verdicts.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from childproc import Helper

from exporter.appkeys import SERVICE
from exporter.collector import RunResult
from exporter.config import VesselConfig, Window, parse_config
from exporter.exposition import Renderer
from exporter.model import Answer, DeviceObservation, VesselObservation
from exporter.service import CollectionService, open_service
from exporter.sla.ledger import Ask
from exporter.web import create_app
from simulator.fleetconfig import fleet_config, unused_loopback_url
from simulator.scenarios import plan_fleet

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KB = 1024
MAX_ANSWER = 4 * KB  # per vessel and cycle, for 20 devices
REAL_CYCLE_TARGET = 2.0  # seconds: one round trip per vessel at 600 ms
SCRAPE_TARGET = 0.100  # seconds
SYNTHETIC_CONCURRENCY = 256
REAL_CONCURRENCY = 66  # one round: every vessel at once


@dataclass(frozen=True)
class Options:
    quick: bool
    rtt: float
    influxd: str
    real_vessels: int = 66
    real_devices: int = 20
    seed_days: float = 1.0
    synthetic_fleets: tuple[int, ...] = (66, 1000, 5000)
    devices: int = 20
    metrics_vessels: int = 1000
    scrapes: int = 20


# --- measuring ----------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseUsage:
    name: str
    wall: float
    user: float
    system: float
    peak_rss_kb: int
    rss_kb: int


def _rss_kb() -> int:
    """Current resident set size; ru_maxrss only ever grows."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() // KB


@contextlib.contextmanager
def measured(name: str, sink: list[PhaseUsage]) -> Iterator[None]:
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    yield
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    sink.append(
        PhaseUsage(
            name=name,
            wall=wall,
            user=after.ru_utime - before.ru_utime,
            system=after.ru_stime - before.ru_stime,
            peak_rss_kb=after.ru_maxrss,
            rss_kb=_rss_kb(),
        )
    )


@dataclass
class Cycle:
    label: str
    vessels: int
    wall: float  # run_once: collect, render, run log
    collect: float  # RunResult.duration
    statuses: Counter[str]
    first_error: str | None
    requests: list[int]  # per vessel, counted by the server side
    body_bytes: list[int]  # VesselResult.response_bytes
    down_bytes: list[int] = field(default_factory=list)  # proxied, headers included
    up_bytes: list[int] = field(default_factory=list)
    connections: int | None = None
    max_in_flight: int | None = None
    render: float = 0.0  # render() alone, timed after the cycle
    record: float = 0.0  # RunLog.record() alone, timed after the cycle
    config_parse: float = 0.0

    @property
    def all_ok(self) -> bool:
        return self.statuses == Counter({"ok": self.vessels})


def _per_vessel(per_db: dict[str, dict[str, int]], ids: Sequence[str], key: str) -> list[int]:
    return [per_db.get(vessel_id, {}).get(key, 0) for vessel_id in ids]


async def _diagnose(service: CollectionService, run: RunResult) -> tuple[float, float]:
    """Time run_once's two steps after the collection on their own, to explain its wall time."""
    collection = service.config.collection
    started = time.perf_counter()
    # A fresh renderer formats every vessel: the cost when none is unchanged.
    await Renderer(collection.windows, collection.interval).render(
        service.fleet.snapshot(), service.reload_state)
    render_s = time.perf_counter() - started
    started = time.perf_counter()
    await service.runlog.record(run, service.config.run_retention)
    return render_s, time.perf_counter() - started


async def run_cycle(
    label: str, service: CollectionService, counter: Helper, phases: list[PhaseUsage]
) -> Cycle:
    await counter.stats()  # count this cycle only
    with measured(label, phases):
        started = time.perf_counter()
        run = await service.run_once()
        wall = time.perf_counter() - started
    traffic = await counter.stats()
    render_s, record_s = await _diagnose(service, run)
    ids = [v.id for v in service.config.vessels]
    per_db = traffic["per_db"]
    errors = [v.error for v in run.vessels if v.error]
    return Cycle(
        label=label,
        vessels=len(ids),
        wall=wall,
        collect=run.duration,
        statuses=Counter(v.status.value for v in run.vessels),
        first_error=errors[0] if errors else None,
        requests=_per_vessel(per_db, ids, "requests"),
        body_bytes=[v.response_bytes for v in run.vessels],
        down_bytes=_per_vessel(per_db, ids, "down") if "connections" in traffic else [],
        up_bytes=_per_vessel(per_db, ids, "up") if "connections" in traffic else [],
        connections=traffic.get("connections"),
        max_in_flight=traffic.get("max_in_flight"),
        render=render_s,
        record=record_s,
    )


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


# --- phase 1: real influxd behind the latency proxy ---------------------------------


@dataclass(frozen=True)
class Seeding:
    points: int
    seconds: float


async def seed_in_child(url: str, opts: Options, tmp: Path) -> Seeding:
    """Seed through the simulator CLI in its own process, so its memory is not ours."""
    command = [
        *("-m", "simulator.cli", "--influx-url", url, "--scenarios", "healthy"),
        *("--vessels", str(opts.real_vessels), "--devices-per-vessel", str(opts.real_devices)),
        *("--days", str(opts.seed_days), "--config-out", str(tmp / "seeded.yml")),
    ]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 600)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError("seeding took longer than 10 minutes") from None
    if proc.returncode != 0:
        raise RuntimeError(f"seeding failed with exit code {proc.returncode}")
    found = re.search(rb"(\d+) points", out)
    return Seeding(int(found.group(1)) if found else 0, time.perf_counter() - started)


async def proxied_cycles(
    influx_url: str, rtt: float, labels: Sequence[str], opts: Options, tmp: Path,
    phases: list[PhaseUsage],
) -> list[Cycle]:  # fmt: skip
    """Cycles of one service, back to back, through a proxy with the given RTT."""
    vessels = plan_fleet(opts.real_vessels, ["healthy"], opts.real_devices)
    proxy = await Helper.start(
        BENCH / "latency_proxy.py", "--target", influx_url, "--rtt", str(rtt)
    )
    cycles = []
    try:
        url = f"http://127.0.0.1:{proxy.port}"
        state = str(tmp / f"real-{rtt:g}.db")
        raw = fleet_config(
            vessels, url, unused_loopback_url(), concurrency=REAL_CONCURRENCY, state_path=state
        )
        config = parse_config(raw)
        async with open_service(config) as service:
            for label in labels:
                progress(f"real influxd, RTT {rtt:g} s: {label} cycle")
                cycle = await run_cycle(f"real {len(vessels)}: {label}", service, proxy, phases)
                cycle.label = label
                cycles.append(cycle)
    finally:
        await proxy.stop()
    return cycles


async def real_influx_phase(
    opts: Options, tmp: Path, phases: list[PhaseUsage]
) -> tuple[Seeding, list[Cycle], Cycle]:
    sys.path.insert(0, str(REPO))  # tests/ holds the throwaway influxd fixture
    from tests.servers import InfluxServer

    with InfluxServer(opts.influxd) as influx:
        progress(f"seeding influxd: {opts.real_vessels} vessels x {opts.real_devices} devices")
        seeding = await seed_in_child(influx.url, opts, tmp)
        cycles = await proxied_cycles(influx.url, opts.rtt, ["cold", "warm"], opts, tmp, phases)
        # The same cycle without the link delay: what influxd and the exporter cost alone.
        (baseline,) = await proxied_cycles(influx.url, 0.0, ["RTT 0"], opts, tmp, phases)
    return seeding, cycles, baseline


# --- phase 2: synthetic endpoint --------------------------------------------------------


async def synthetic_phase(
    count: int, server: Helper, opts: Options, tmp: Path, phases: list[PhaseUsage]
) -> Cycle:
    progress(f"synthetic endpoint: {count} vessels")
    vessels = plan_fleet(count, ["healthy"], opts.devices)
    raw = fleet_config(
        vessels,
        f"http://127.0.0.1:{server.port}",
        unused_loopback_url(),
        concurrency=SYNTHETIC_CONCURRENCY,
        state_path=str(tmp / f"synthetic-{count}.db"),
    )
    started = time.perf_counter()
    config = parse_config(raw)
    parse_s = time.perf_counter() - started
    async with open_service(config) as service:
        cycle = await run_cycle(f"synthetic {count}", service, server, phases)
    cycle.label = f"{count:,}"
    cycle.config_parse = parse_s
    return cycle


def synthetic_target(count: int, rtt: float) -> float:
    return math.ceil(count / SYNTHETIC_CONCURRENCY) * rtt * 1.3


# --- phase 4: /metrics ------------------------------------------------------------------


class InstantBackend:
    """Answers at once from a fixed mix of device states: only the exporter's cost counts."""

    def __init__(self, windows: Sequence[Window]) -> None:
        self._labels = [w.label for w in windows]

    async def query(self, vessel: VesselConfig, ask: Ask) -> Answer:
        now = time.time()
        devices = {d.address: self._device(vessel.id, d.address, now) for d in vessel.devices}
        # A minute's samples since the ledger's cursor, at most the last two hours: enough
        # to keep the ledger's work in the run without a month of backfill per vessel.
        until = int(now if ask.until is None else ask.until)
        start = max(ask.since, until - 7200)
        points = {address: [(t, obs.last_loss is not None and obs.last_loss < 1.0)
                            for t in range(start - start % 60 + 60, until + 1, 60)]
                  for address, obs in devices.items()}
        return Answer(observation=VesselObservation(devices=devices), response_bytes=1900,
                      points=points)

    async def close(self) -> None:
        """Holds nothing."""

    def _device(self, vessel: str, address: str, now: float) -> DeviceObservation:
        # A stable hash keeps the mix the same from run to run: 5 % down, 13 % with loss.
        roll = zlib.crc32(f"{vessel}/{address}".encode()) % 100
        down = roll < 5
        loss = 1.0 if down else 0.25 if roll < 15 else 0.5 if roll < 18 else 0.0
        return DeviceObservation(
            spans={},  # the ledger fills them in from the points
            last_sample=now - 30,
            last_loss=loss,
            last_rtt=None if down else 0.035 + roll / 10000,
            last_reply=now - 3600 * (1 + roll) if down else now - 30,
            first_sample=now - 30 * 86400,
        )


@dataclass(frozen=True)
class MetricsResult:
    vessels: int
    devices: int
    ready: float
    render: list[float]
    body: list[float]
    scrape: dict


async def wait_ready(base: str, limit: float = 120.0) -> float:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(int(limit / 0.05)):
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return time.perf_counter() - started
            await asyncio.sleep(0.05)
    raise RuntimeError(f"/readyz not 200 within {limit:.0f} s")


async def scrape_in_child(url: str, count: int) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "scrape_client.py"), url, str(count),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError("scrape client took longer than 5 minutes") from None
    if proc.returncode != 0:
        raise RuntimeError(f"scrape client failed with exit code {proc.returncode}")
    return json.loads(out)


def _timed(repeat: int, func: object, *args: object) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func(*args)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


async def metrics_phase(opts: Options, tmp: Path, phases: list[PhaseUsage]) -> MetricsResult:
    progress(f"/metrics: {opts.metrics_vessels} vessels x {opts.devices} devices")
    vessels = plan_fleet(opts.metrics_vessels, ["healthy"], opts.devices)
    raw = fleet_config(
        vessels, unused_loopback_url(), unused_loopback_url(), state_path=str(tmp / "metrics.db")
    )
    config = parse_config(raw)
    app = create_app(
        config, backend_factory=lambda cfg, _session: InstantBackend(cfg.collection.windows)
    )
    with measured(f"/metrics {opts.metrics_vessels}", phases):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            ready = await wait_ready(base)
            service = app[SERVICE]
            windows, interval = config.collection.windows, config.collection.interval
            render_times = []
            for _ in range(3):
                started = time.perf_counter()
                await Renderer(windows, interval).render(service.fleet.snapshot(),
                                                         service.reload_state)
                render_times.append(time.perf_counter() - started)
            body_times = _timed(5, service.cache.gzip_chunks, time.time())
            scrape = await scrape_in_child(f"{base}/metrics", opts.scrapes)
        finally:
            await runner.cleanup()
    return MetricsResult(
        len(vessels), len(vessels) * opts.devices, ready, render_times, body_times, scrape
    )


# --- report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    print(line(headers))
    print("  " + "-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    print()


def mean_max(values: Sequence[int]) -> str:
    return f"{statistics.fmean(values):,.0f} / {max(values):,}" if values else "-"


def min_max(values: Sequence[int]) -> str:
    return f"{min(values)}-{max(values)}" if values else "-"


def statuses(cycle: Cycle) -> str:
    return ", ".join(f"{n} {status}" for status, n in cycle.statuses.most_common())


def check(value: str, ok: bool) -> str:
    return f"{value} {verdict(ok)}"


def print_errors(cycles: Sequence[Cycle]) -> None:
    for cycle in cycles:
        if cycle.first_error:
            print(f"  {cycle.label}: first vessel error: {cycle.first_error}")


def report_real(opts: Options, seeding: Seeding, cycles: list[Cycle], baseline: Cycle) -> None:
    print(
        f"1. Real InfluxDB 1.6 behind the latency proxy (RTT {opts.rtt * 1000:.0f} ms): "
        f"{opts.real_vessels} vessels x {opts.real_devices} devices, concurrency {REAL_CONCURRENCY}"
    )
    print(f"   seeding (outside every cycle): {seeding.points:,} points in {seeding.seconds:.1f} s")
    headers = [
        "cycle", "cycle s", "collect s", "render s", "run log s", "new TCP conns",
        "requests/vessel", "body B/vessel mean/max", "proxied down B mean/max",
        "proxied up B mean/max", "statuses",
    ]  # fmt: skip
    rows = [
        [
            c.label, f"{c.wall:.2f}", f"{c.collect:.2f}", f"{c.render:.3f}", f"{c.record:.3f}",
            str(c.connections), min_max(c.requests), mean_max(c.body_bytes),
            mean_max(c.down_bytes), mean_max(c.up_bytes), statuses(c),
        ]
        for c in [*cycles, baseline]
    ]  # fmt: skip
    print_table(headers, rows)
    print(
        "   RTT 0 (no target): one more cycle through the proxy without delay: the cost of one\n"
        "   local influxd serving every vessel on the benchmark's cores, plus the exporter's.\n"
    )
    both = [[a + b for a, b in zip(c.up_bytes, c.down_bytes, strict=True)] for c in cycles]
    targets = [
        ["cycle < 2 s", *(check(f"{c.wall:.2f} s", c.wall < REAL_CYCLE_TARGET) for c in cycles)],
        ["<= 1 request per vessel", *(check(str(max(c.requests)), max(c.requests) <= 1)
                                      for c in cycles)],
        ["answer <= 4 KB per vessel (body on the wire)",
         *(check(f"{max(c.body_bytes):,} B", max(c.body_bytes) <= MAX_ANSWER) for c in cycles)],
        ["answer <= 4 KB per vessel (proxied, with headers)",
         *(check(f"{max(c.down_bytes):,} B", max(c.down_bytes) <= MAX_ANSWER) for c in cycles)],
        ["request + answer <= 4 KB per vessel (proxied)",
         *(check(f"{max(b):,} B", max(b) <= MAX_ANSWER) for b in both)],
        ["every vessel ok", *(check(statuses(c), c.all_ok) for c in cycles)],
    ]  # fmt: skip
    print_table(["target", *(c.label for c in cycles)], targets)
    print_errors(cycles)


def report_synthetic(opts: Options, cycles: list[Cycle]) -> None:
    print(
        f"2. Synthetic /query endpoint answering after {opts.rtt * 1000:.0f} ms: "
        f"{opts.devices} devices per vessel, concurrency {SYNTHETIC_CONCURRENCY}"
    )
    headers = [
        "vessels", "config parse s", "cycle s", "collect s", "render s", "run log s",
        "max in flight", "requests/vessel", "body B/vessel mean/max", "statuses",
    ]  # fmt: skip
    rows = [
        [
            c.label, f"{c.config_parse:.2f}", f"{c.wall:.2f}", f"{c.collect:.2f}",
            f"{c.render:.2f}", f"{c.record:.2f}", str(c.max_in_flight), min_max(c.requests),
            mean_max(c.body_bytes), statuses(c),
        ]
        for c in cycles
    ]  # fmt: skip
    print_table(headers, rows)
    targets = []
    for c in cycles:
        limit = synthetic_target(c.vessels, opts.rtt)
        targets.append([
            c.label,
            check(f"{c.wall:.2f} s <= {limit:.2f} s", c.wall <= limit),
            check(f"{c.collect:.2f} s <= {limit:.2f} s", c.collect <= limit),
            check(str(max(c.requests)), max(c.requests) <= 1),
            check(f"{max(c.body_bytes):,} B", max(c.body_bytes) <= MAX_ANSWER),
            check(statuses(c), c.all_ok),
        ])  # fmt: skip
    headers = [
        "vessels", "cycle <= ceil(N/256) x RTT x 1.3", "collect only (info)",
        "<= 1 request/vessel", "body <= 4 KB/vessel", "every vessel ok",
    ]  # fmt: skip
    print_table(headers, targets)
    print_errors(cycles)


def report_usage(phases: list[PhaseUsage]) -> None:
    print("3. CPU and memory of the exporter process (servers run in other processes)")
    headers = [
        "phase", "wall s", "CPU user s", "CPU sys s", "CPU total s", "CPU/wall",
        "peak RSS MB", "RSS after MB",
    ]  # fmt: skip
    rows = [
        [
            p.name, f"{p.wall:.2f}", f"{p.user:.2f}", f"{p.system:.2f}",
            f"{p.user + p.system:.2f}", f"{(p.user + p.system) / p.wall:.0%}",
            f"{p.peak_rss_kb / KB:.0f}", f"{p.rss_kb / KB:.0f}",
        ]
        for p in phases
    ]  # fmt: skip
    print_table(headers, rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report_metrics(result: MetricsResult) -> None:
    print(
        f"4. /metrics of the real app: {result.vessels:,} vessels x "
        f"{result.devices // result.vessels} devices ({result.devices:,} devices)"
    )
    scrape = result.scrape
    times = sorted(scrape["seconds"])
    median = statistics.median(times)
    p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
    rows = [
        ["first collection until /readyz 200", f"{result.ready:.2f} s", ""],
        ["render() of one collection, median of 3", _ms(statistics.median(result.render)), ""],
        ["cache.gzip_chunks() per scrape, median of 5", _ms(statistics.median(result.body)), ""],
        [f"GET /metrics served, median of {len(times)}", _ms(median),
         verdict(median < SCRAPE_TARGET) + " (< 100 ms)"],
        [f"GET /metrics served, p95 of {len(times)}", _ms(p95),
         verdict(p95 < SCRAPE_TARGET) + " (< 100 ms)"],
        ["body size", f"{scrape['body_bytes']:,} B", ""],
        ["bytes on the wire (Accept-Encoding: gzip)",
         f"{scrape['wire_bytes']:,} B ({scrape['encoding']})", ""],
        ["samples", f"{scrape['samples']:,}", ""],
    ]  # fmt: skip
    print_table(["measure", "value", "target"], rows)


# --- main -------------------------------------------------------------------------------


async def bench(opts: Options) -> None:
    phases: list[PhaseUsage] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as name:
        tmp = Path(name)
        seeding, real, baseline = await real_influx_phase(opts, tmp, phases)
        server = await Helper.start(BENCH / "synthetic_influx.py", "--delay", str(opts.rtt))
        try:
            *smaller, largest = opts.synthetic_fleets
            synthetic = [await synthetic_phase(n, server, opts, tmp, phases) for n in smaller]
            # /metrics before the largest fleet, so its peak RSS is its own.
            metrics = await metrics_phase(opts, tmp, phases)
            synthetic.append(await synthetic_phase(largest, server, opts, tmp, phases))
        finally:
            await server.stop()
    print()
    report_real(opts, seeding, real, baseline)
    report_synthetic(opts, synthetic)
    report_usage(phases)
    report_metrics(metrics)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="66 vessels x 4 devices, 1,000 synthetic only"
    )
    parser.add_argument("--rtt", type=float, default=0.6, help="round trip, seconds")
    parser.add_argument("--influxd", default="/usr/bin/influxd", help="influxd 1.x binary")
    args = parser.parse_args(argv)
    opts = Options(quick=args.quick, rtt=args.rtt, influxd=args.influxd)
    if args.quick:
        return Options(
            quick=True, rtt=args.rtt, influxd=args.influxd, real_devices=4,
            synthetic_fleets=(66, 1000), scrapes=5,
        )  # fmt: skip
    return opts


def main() -> int:
    opts = parse_options()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(
        f"fleet-sla collection benchmark: Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, {len(os.sched_getaffinity(0))} CPUs"
        f"{', --quick' if opts.quick else ''}",
        flush=True,
    )
    asyncio.run(bench(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
