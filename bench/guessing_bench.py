"""Webhook latency of fleet-receiver while password guessers hammer the approval page.

The receiver runs as its own process on 127.0.0.1. One sender posts a notification every
20 ms (each latency measured from its scheduled time); meanwhile N guessers GET / with
wrong passwords as fast as they are answered, ignoring Retry-After. Phases:

- no guessers: the baseline;
- one address: every guesser connects from 127.0.0.1, each with its own user name;
- many addresses: each guesser moves to a fresh source address (127.x.y.z) every 20
  guesses and a fresh name every 5, so that lockouts never stop it and every guess
  costs a password check: the worst case, a botnet.

Run: python bench/guessing_bench.py [--guessers 16] [--seconds 10]
"""

import argparse
import asyncio
import base64
import collections
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from receiver_bench import TOKEN, serving_receiver  # noqa: E402

from receiver.passwords import hash_password  # noqa: E402
from tests.receiver_helpers import alert, notification  # noqa: E402

INTERVAL = 0.02  # one notification every 20 ms: 50 /s


async def send(base: str, seconds: float) -> list[float]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        begin = time.perf_counter()
        for n in itertools.count():
            due = begin + n * INTERVAL
            if due - begin > seconds:
                return latencies
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            body = json.dumps(notification(alert(vessel=f"v{n % 300:03d}"))).encode()
            async with session.post(f"{base}/api/v1/alerts", data=body,
                                    headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - due)
    return latencies


def _basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


async def guess(base: str, number: int, spread: bool, stop: asyncio.Event,
                outcomes: collections.Counter[int]) -> None:
    for batch in itertools.count():
        address = f"127.{number + 1}.{batch // 250 % 250}.{batch % 250 + 1}" if spread \
            else "127.0.0.1"
        connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            for attempt in range(20):
                if stop.is_set():
                    return
                name = f"g{number}-{batch}-{attempt // 5}"
                async with session.get(f"{base}/", headers=_basic(name, "wrong")) as response:
                    await response.read()
                    outcomes[response.status] += 1


async def guessing(base: str, guessers: int, spread: bool, seconds: float
                   ) -> collections.Counter[int]:
    stop = asyncio.Event()
    outcomes: collections.Counter[int] = collections.Counter()
    tasks = [asyncio.create_task(guess(base, n, spread, stop, outcomes))
             for n in range(guessers)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return outcomes


def guessing_process(base: str, guessers: int, spread: bool, seconds: float,
                     results: "multiprocessing.Queue[dict[int, int]]") -> None:
    results.put(dict(asyncio.run(guessing(base, guessers, spread, seconds))))


def phase(base: str, guessers: int, spread: bool, seconds: float
          ) -> tuple[list[float], collections.Counter[int]]:
    """Guessers in a process of their own: their client work must not delay the sender."""
    if not guessers:
        return asyncio.run(send(base, seconds)), collections.Counter()
    results: multiprocessing.Queue[dict[int, int]] = multiprocessing.Queue()
    child = multiprocessing.Process(target=guessing_process,
                                    args=(base, guessers, spread, seconds + 1, results))
    child.start()
    time.sleep(1)  # let the guessing start first
    latencies = asyncio.run(send(base, seconds))
    outcomes = collections.Counter(results.get(timeout=60))
    child.join()
    return latencies, outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guessers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"fleet-receiver webhook under password guessing: {args.guessers} guessers, "
          f"{args.seconds:.0f} s per phase, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print(f"{'guessers':>24} | {'webhooks':>8} | {'p50 ms':>7} | {'p99 ms':>7} | "
          f"{'max ms':>7} | guesses answered (by status)")
    phases = [("none", 0, False), ("one address", args.guessers, False),
              ("many addresses", args.guessers, True)]
    for label, guessers, spread in phases:
        with tempfile.TemporaryDirectory(prefix="guessing-bench-") as tmp, serving_receiver(
                tmp, users=[{"name": "alice", "password_hash": hash_password("right"),
                             "role": "approver"}]) as base:
            latencies, outcomes = phase(base, guessers, spread, args.seconds)
        cuts = statistics.quantiles(latencies, n=100)
        answered = ", ".join(f"{status}: {count:,}" for status, count in sorted(outcomes.items()))
        print(f"{label:>24} | {len(latencies):>8,} | {cuts[49] * 1000:>7.1f} | "
              f"{cuts[98] * 1000:>7.1f} | {max(latencies) * 1000:>7.1f} | {answered or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
