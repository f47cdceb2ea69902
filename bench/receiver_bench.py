"""Webhook ingest of fleet-receiver: throughput and latency with 100 concurrent senders.

The receiver runs as its own process (python -m receiver) on 127.0.0.1 with a fresh
SQLite database; this process only sends. Each phase first opens its 500 incidents
(one notification each, not measured), then measures. After each phase the receiver is killed with
SIGKILL and started again, and every acknowledged alert must be in its database.

Run: python bench/receiver_bench.py [--quick]
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from receiver.passwords import hash_password  # noqa: E402
from tests.receiver_helpers import alert, notification  # noqa: E402
from tests.servers import free_port  # noqa: E402

TOKEN = "bench-token-0123456789"  # the receiver wants 16 characters or more
SENDERS = 100
KEYS = 500  # distinct vessel/component pairs: most notifications are repeats, as in life


def receiver_config(tmp: str, port: int, **sections: Any) -> Path:
    """A receiver config in `tmp` on 127.0.0.1:`port`, with `sections` added; one
    approver unless `users` is given, as the receiver wants someone who can approve."""
    sections.setdefault("users", [{"name": "bench", "password_hash": hash_password("bench"),
                                   "role": "approver"}])
    config = Path(tmp) / "receiver.yml"
    config.write_text(yaml.safe_dump({
        "listen": f"127.0.0.1:{port}", "database": f"{tmp}/receiver.db",
        "webhook": {"bearer_token": TOKEN}, **sections}))
    return config


@contextlib.contextmanager
def serving_receiver(tmp: str, **sections: Any) -> Iterator[str]:
    """A receiver process for the block, on a free port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_receiver(receiver_config(tmp, port, **sections), base)
    try:
        yield base
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait()


def start_receiver(config: Path, base: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "receiver", "--config", str(config),
                             "--log-level", "warning"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            import urllib.request

            with urllib.request.urlopen(f"{base}/readyz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the receiver did not start")


def payloads(count: int, alerts_each: int) -> list[bytes]:
    bodies = []
    for n in range(count):
        group = [alert(vessel=f"v{(n * alerts_each + i) % KEYS // 3:03d}",
                       component=("access_point", "dashboard", "server")[(n + i) % 3])
                 for i in range(alerts_each)]
        bodies.append(json.dumps(notification(*group, group_key=f"g{n % 50}")).encode())
    return bodies


async def send_all(base: str, bodies: list[bytes], rate: float | None = None
                   ) -> tuple[float, list[float], int]:
    """Send every body with SENDERS concurrent senders, as fast as they can, or paced
    to `rate` notifications per second in all (latency is then measured from each
    notification's scheduled time, so a slow receiver cannot hide its queue)."""
    latencies: list[float] = []
    acknowledged = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=SENDERS)
    async with aiohttp.ClientSession(connector=connector) as session:

        sequence = iter(range(len(bodies)))

        async def sender() -> None:
            nonlocal acknowledged
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                if rate is not None:
                    started = begin + next(sequence) / rate
                    await asyncio.sleep(max(0.0, started - time.perf_counter()))
                async with session.post(f"{base}/api/v1/alerts", data=body,
                                        headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        acknowledged += json.loads(body)["alerts"].__len__()
                latencies.append(time.perf_counter() - started)

        begin = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        return time.perf_counter() - begin, latencies, acknowledged


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time a process's threads have run and have waited for a CPU (Linux). The first
    hardly depends on what else the shared machine runs; the second says how much it did."""
    ran = waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            on_cpu, queued, _ = (task / "schedstat").read_text().split()
            ran, waited = ran + int(on_cpu), waited + int(queued)
    return ran / 1e9, waited / 1e9


def stored_alerts(database: Path) -> int:
    """Alerts in the stored notifications, read after the receiver was killed and restarted."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute("SELECT coalesce(sum(alerts), 0) FROM notifications").fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer notifications")
    args = parser.parse_args()
    scale = 5 if args.quick else 1
    # (alerts per notification, notifications, offered rate or None for flat out)
    phases = [(1, 6000 // scale, None), (1, 6000 // scale, 500.0),
              (50, 1000 // scale, None), (50, 600 // scale, 30.0)]
    print(f"fleet-receiver webhook benchmark: {SENDERS} concurrent senders, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'alerts per notification':>24} | {'offered /s':>10} | {'notifications':>13} | "
          f"{'per second':>10} | "
          f"{'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | {'CPU ms':>6} | "
          f"{'CPU wait':>8} | durable after kill -9")
    for alerts_each, count, rate in phases:
        with tempfile.TemporaryDirectory(prefix="receiver-bench-") as tmp:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            config = receiver_config(tmp, port)
            proc = start_receiver(config, base)
            try:
                # Open every incident first, unmeasured: in service most notifications
                # repeat open incidents, and first sightings are rare.
                _, _, warmed = asyncio.run(send_all(base, payloads(KEYS, 1)))
                bodies = payloads(count, alerts_each)
                ran, waited = cpu_seconds(proc.pid)
                elapsed, latencies, acknowledged = asyncio.run(send_all(base, bodies, rate))
                ran, waited = (now - before for now, before
                               in zip(cpu_seconds(proc.pid), (ran, waited), strict=True))
                acknowledged += warmed
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            proc = start_receiver(config, base)  # recovers the WAL as a restart would
            proc.terminate()
            proc.wait()
            stored = stored_alerts(Path(tmp) / "receiver.db")
        cuts = statistics.quantiles(latencies, n=100)
        durable = "yes" if stored == acknowledged else f"NO: {stored} of {acknowledged}"
        offered = "max" if rate is None else f"{rate:,.0f}"
        print(f"{alerts_each:>24} | {offered:>10} | {count:>13,} | {count / elapsed:>10,.0f} | "
              f"{cuts[49] * 1000:>7.1f} | {cuts[98] * 1000:>7.1f} | "
              f"{max(latencies) * 1000:>7.1f} | {ran / count * 1000:>6.2f} | "
              f"{waited / elapsed:>7.0%} | {durable} ({acknowledged:,} alerts)")
    print("CPU ms: the receiver's CPU time (all threads) per measured notification;"
          " CPU wait: the time its threads waited for a CPU, as a share of the phase"
          " (the shared machine's other load)")
    print("targets: >= 500 notifications/s with p99 < 100 ms, every acknowledged alert stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
