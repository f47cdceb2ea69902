"""Large incidents: does an unrelated webhook wait while big notifications churn?

The receiver runs as its own process on 127.0.0.1 with a fresh database. Four senders
post 500-alert notifications for one dedupe key, each with 250 new fingerprints firing
and the previous 250 resolved (per-device alerts coming and going), as fast as they are
answered. Meanwhile a probe posts a one-alert notification for another key and GETs
/healthz every 100 ms. Targets: both answer within 1 s throughout.

Run: python bench/receiver_churn_bench.py [--seconds N]
"""

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.receiver_bench import TOKEN, serving_receiver  # noqa: E402
from tests.receiver_helpers import alert, notification  # noqa: E402

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def churn(round_: int) -> bytes:
    def device(name: str, status: str) -> dict:
        made = alert(status=status, ends=time.time() if status == "resolved" else None)
        made["labels"]["device"] = name
        made["fingerprint"] = f"fp-{name}"
        return made

    firing = [device(f"r{round_}-{i}", "firing") for i in range(250)]
    resolved = [device(f"r{round_ - 1}-{i}", "resolved") for i in range(250)]
    return json.dumps(notification(*firing, *resolved, group_key="big")).encode()


async def run(base: str, seconds: float) -> tuple[int, list[float], list[float], list[float]]:
    big: list[float] = []
    webhook: list[float] = []
    health: list[float] = []
    stop = time.perf_counter() + seconds
    rounds = iter(range(1, 1_000_000))
    async with aiohttp.ClientSession() as session:

        async def sender() -> None:
            while time.perf_counter() < stop:
                body = churn(next(rounds))
                started = time.perf_counter()
                async with session.post(f"{base}/api/v1/alerts", data=body,
                                        headers=HEADERS) as response:
                    await response.read()
                    assert response.status == 200, response.status
                big.append(time.perf_counter() - started)

        async def probe() -> None:
            n = 0
            while time.perf_counter() < stop:
                n += 1
                body = json.dumps(notification(alert(vessel=f"p{n % 50:03d}"),
                                               group_key="probe")).encode()
                started = time.perf_counter()
                async with session.post(f"{base}/api/v1/alerts", data=body,
                                        headers=HEADERS) as response:
                    await response.read()
                    assert response.status == 200, response.status
                webhook.append(time.perf_counter() - started)
                started = time.perf_counter()
                async with session.get(f"{base}/healthz") as response:
                    await response.read()
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.1)

        await asyncio.gather(*(sender() for _ in range(4)), probe())
    return len(big), big, webhook, health


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="receiver-churn-") as tmp:
        with serving_receiver(tmp) as base:
            count, big, webhook, health = asyncio.run(run(base, args.seconds))
        with sqlite3.connect(f"{tmp}/receiver.db") as db:
            kept = db.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM incident_alerts"
                              " GROUP BY incident_id)").fetchone()[0]
    print(f"fleet-receiver churn benchmark: {args.seconds:.0f} s, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print(f"500-alert notifications stored: {count} ({count * 500 / args.seconds:,.0f} alerts/s)"
          f", alert rows kept by the big incident at the end: {kept}")
    for name, figures in (("500-alert notification", big), ("unrelated webhook", webhook),
                          ("/healthz", health)):
        cuts = statistics.quantiles(figures, n=100)
        print(f"{name:>24}: p50 {cuts[49] * 1000:7.1f} ms  p99 {cuts[98] * 1000:7.1f} ms"
              f"  max {max(figures) * 1000:7.1f} ms  ({len(figures)} requests)")
    print("target: the unrelated webhook and /healthz within 1 s throughout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
