"""Flux against InfluxQL: collection time, CPU and memory for the same fleet.

Each (backend, fleet size) runs in its own process, so its memory figures are its own:
RSS once the backend is made (for Flux, one InfluxDBClientAsync per vessel), then two
collection runs against a synthetic endpoint that answers healthy vessels after a round
trip (cold: new connections; warm: kept alive).

    .venv/bin/python bench/flux_bench.py            # 66, 1,000 and 5,000 vessels, ~2 min
    .venv/bin/python bench/flux_bench.py --quick    # 66 and 1,000
"""

import argparse
import asyncio
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from childproc import Helper

from exporter.config import parse_config
from exporter.service import open_service
from simulator.fleetconfig import fleet_config, unused_loopback_url
from simulator.scenarios import plan_fleet

HERE = Path(__file__).parent
SERVERS = {"influxql": "synthetic_influx.py", "flux": "synthetic_flux.py"}
CONCURRENCY = 256
DEVICES = 20


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def phase(api: str, count: int, rtt: float, tmp: Path) -> dict[str, float | str]:
    """One backend, one fleet size: what the exporter process spends."""
    server = await Helper.start(HERE / SERVERS[api], "--delay", str(rtt))
    try:
        url = f"http://127.0.0.1:{server.port}"
        raw = fleet_config(plan_fleet(count, ["healthy"], DEVICES), url, unused_loopback_url(),
                           concurrency=CONCURRENCY, state_path=str(tmp / f"{api}.db"))
        if api == "flux":
            for entry in raw["vessels"]:
                database = entry["influx"].pop("database")
                entry["influx"].update(api="flux", org="-", bucket=f"{database}/autogen",
                                       token="bench:bench")
        config = parse_config(raw)
        figures: dict[str, float | str] = {"rss_start": rss_mb()}
        async with open_service(config) as service:
            figures["rss_backend"] = rss_mb()
            for label in ("cold", "warm"):
                await server.stats()
                before = cpu()
                run = await service.run_once()
                traffic = await server.stats()
                bad = [v for v in run.vessels if not v.status.collected]
                if bad:
                    raise RuntimeError(f"{len(bad)} vessels failed: {bad[0].error}")
                figures[f"collect_{label}"] = run.duration
                figures[f"cpu_{label}"] = cpu() - before
            figures["wire_per_vessel"] = traffic["body_bytes"] / count
            figures["bytes_metric_per_vessel"] = (
                sum(v.response_bytes for v in run.vessels) / count)
        figures["rss_end"] = rss_mb()
        figures["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return figures
    finally:
        await server.stop()


def run_phase_in_child(api: str, count: int, rtt: float) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, "--phase", api, str(count),
                             "--rtt", str(rtt)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{api} {count}: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="66 and 1,000 vessels only")
    parser.add_argument("--rtt", type=float, default=0.6, help="endpoint delay (default 0.6)")
    parser.add_argument("--phase", nargs=2, metavar=("API", "VESSELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.phase:
        api, count = args.phase[0], int(args.phase[1])
        with tempfile.TemporaryDirectory() as tmp:
            figures = asyncio.run(phase(api, count, args.rtt, Path(tmp)))
        print(json.dumps(figures))
        return 0

    fleets = (66, 1000) if args.quick else (66, 1000, 5000)
    print(f"Synthetic endpoints answering after {args.rtt * 1000:.0f} ms, {DEVICES} devices "
          f"per vessel, concurrency {CONCURRENCY}; each row its own process.\n")
    print("| vessels | backend | RSS of the backend | collect cold / warm | exporter CPU "
          "cold / warm | answer per vessel: gzip / metric | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for count in fleets:
        for api in SERVERS:
            started = time.perf_counter()
            f = run_phase_in_child(api, count, args.rtt)
            print(f"| {count:,} | {api} | {f['rss_backend'] - f['rss_start']:.1f} MB "
                  f"| {f['collect_cold']:.2f} s / {f['collect_warm']:.2f} s "
                  f"| {f['cpu_cold']:.2f} s / {f['cpu_warm']:.2f} s "
                  f"| {f['wire_per_vessel']:,.0f} B / {f['bytes_metric_per_vessel']:,.0f} B "
                  f"| {f['peak_rss']:.0f} MB |", flush=True)
            print(f"<!-- {api} {count}: {time.perf_counter() - started:.0f} s -->",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
