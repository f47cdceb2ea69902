"""SLA reports (issue 15): one month from a synthetic ledger in a state DB.

  66 vessels x 20 devices: CSV < 1 s, PDF with the day strips < 15 s
  1,000 vessels x 20 devices: CSV < 5 s

The state DB holds the month and the month before (the report compares them), every hour
of every device: 7 device-days in 10 up all day (identical, as on a regular 60 s grid),
the others each with a different part of one hour down. Times are build_report (reading
the DB through reports/source.py, with no ledger in memory, as the CLI runs) plus render,
the median of `--runs`, with the CPU time of the process (all threads): on shared cores
the wall time follows the neighbours' load, the CPU time does not.

Run: ``python bench/report_bench.py [--vessels 66 1000] [--runs 3] [--data DIR]``.
"""

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from exporter import ledger_db  # noqa: E402
from exporter.config import Config, LedgerConfig, Window, load_config  # noqa: E402
from exporter.reports.build import build_report  # noqa: E402
from exporter.reports.formats import SHOWS_STRIPS, ReportFormat, render  # noqa: E402
from exporter.reports.period import parse_period  # noqa: E402
from exporter.runlog import RunLog  # noqa: E402
from exporter.sla.hour import Hour  # noqa: E402
from exporter.sla.hours import Carry  # noqa: E402
from exporter.sla.ledger import Ledger  # noqa: E402
from simulator.fleetconfig import write_fleet_config  # noqa: E402

DEVICES = 20
COMPONENTS = ("access_point", "dashboard", "server")
MONTH = "2026-10"
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC).timestamp()
FIRST_DAY = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp()) // 86400  # the month before
LAST_DAY = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) // 86400


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


UP_HOUR = Hour(up=3600, up_samples=60)


def rough_day(rng: random.Random) -> list[Hour]:
    """A day with one hour partly down: each one different, as real outages are."""
    hours = [UP_HOUR] * 24
    down = rng.randrange(1, 3600)
    hours[rng.randrange(24)] = Hour(up=3600 - down, down=down, up_samples=60 - down // 60,
                                    down_samples=down // 60 + 1, outages=1, longest=down)
    return hours


async def seed(path: Path, vessels: int) -> None:
    """The ledger as the exporter writes it (`ledger_db.write`), vessel by vessel."""
    log = await RunLog.open(path)
    rng = random.Random(15)
    held = FIRST_DAY * 86400 - 86400
    days = range(FIRST_DAY, LAST_DAY)
    try:
        for v in range(vessels):
            vid = f"v{v:04d}"
            ledger = Ledger(LedgerConfig(), [Window("24h", 86400)])
            addresses = [f"10.0.{d}.1" for d in range(DEVICES)]
            hours = {a: {day * 24 + i: h for day in days for i, h in enumerate(
                         [UP_HOUR] * 24 if rng.random() < 0.7 else rough_day(rng))}
                     for a in addresses}
            ledger.restore(vid, int(NOW) - 600, held, {a: Carry() for a in addresses}, hours)
            ledger.dirty.update((vid, a, day) for a in addresses for day in days)
            ledger.cursors_dirty.add(vid)
            await ledger_db.write(log.db, ledger, NOW, 400 * 86400, prune=False)
            await log.db.commit()
    finally:
        await log.close()


def config(path: Path, state: Path, vessels: int) -> Config:
    write_fleet_config(path, {
        "state": {"path": str(state)},
        "vessels": [{"id": f"v{v:04d}", "name": f"MV {v:04d}",
                     "influx": {"url": "http://127.0.0.1:1", "database": "x"},
                     "devices": [{"address": f"10.0.{d}.1", "name": f"dev-{d}",
                                  "component": COMPONENTS[d % 3]} for d in range(DEVICES)]}
                    for v in range(vessels)],
    })
    return load_config(path)


async def once(cfg: Config, fmt: ReportFormat,
               timezone: str = "UTC") -> tuple[float, float, int, float]:
    period = parse_period(period=MONTH, start=None, end=None, timezone=timezone, now=NOW)
    cpu = time.process_time()  # every thread's: the DB reads and sums run in threads
    started = time.perf_counter()
    uri = f"{cfg.state_path.resolve().as_uri()}?mode=ro"
    async with aiosqlite.connect(uri, uri=True) as db:
        report = await build_report(db, None, cfg, cfg.maintenance, period, None, NOW,
                                    strips=fmt in SHOWS_STRIPS)
    built = time.perf_counter()
    data = await asyncio.to_thread(render, report, fmt)
    return built - started, time.perf_counter() - built, len(data), time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vessels", type=int, nargs="+", default=[66, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timezone", default="UTC", help="the report's (default UTC)")
    parser.add_argument("--data", type=Path,
                        help="keep the seeded state DBs here and reuse them (default: a "
                             "temporary directory, removed after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as scratch:
        tmp = args.data or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for vessels in args.vessels:
            state = Path(tmp) / f"state-{vessels}.db"
            if not state.exists():
                progress(f"seeding {vessels} vessels x {DEVICES} devices x "
                         f"{LAST_DAY - FIRST_DAY} days")
                asyncio.run(seed(state, vessels))
            cfg = config(Path(tmp) / f"fleet-{vessels}.yml", state, vessels)
            formats = [ReportFormat.CSV] + ([ReportFormat.PDF] if vessels <= 100 else [])
            for fmt in formats:
                runs = [asyncio.run(once(cfg, fmt, args.timezone)) for _ in range(args.runs)]
                build = statistics.median(r[0] for r in runs)
                rendered = statistics.median(r[1] for r in runs)
                cpu = statistics.median(r[3] for r in runs)
                print(f"{vessels} vessels x {DEVICES} devices, {MONTH} {args.timezone}, "
                      f"{fmt.value}: "
                      f"{build + rendered:.2f} s (build {build:.2f} s, render "
                      f"{rendered:.2f} s; CPU {cpu:.2f} s; {runs[0][2]:,} bytes; median of "
                      f"{args.runs}; load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
