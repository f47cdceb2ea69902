"""Seed a real InfluxDB 1.x with simulated fleet data over its HTTP API."""

import asyncio
import base64
import io
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import aiohttp

from simulator.scenarios import OFFSET, Vessel, live_samples, samples

BATCH_LINES = 5000
# Enough writes in flight to keep influxd busy while the next batch is generated.
MAX_IN_FLIGHT = 8
_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=5)


class SeedError(RuntimeError):
    """InfluxDB could not be reached or refused a request."""


def _batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Influx:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url.rstrip("/")

    async def query(self, q: str) -> None:
        async with self._session.post(f"{self._url}/query", data={"q": q}) as resp:
            body = await resp.text()
            if resp.status // 100 != 2:
                raise SeedError(f"{q!r} failed: HTTP {resp.status}: {body.strip()[:300]}")
        # InfluxQL statement errors come back as 200 with an "error" in the result.
        if '"error"' in body:
            raise SeedError(f"{q!r} failed: {body.strip()[:300]}")

    async def write(self, database: str, lines: list[str]) -> None:
        params = {"db": database, "precision": "s"}
        # A file object is streamed; raw bytes over 1 MiB make aiohttp warn.
        data = io.BytesIO("\n".join(lines).encode())
        async with self._session.post(f"{self._url}/write", params=params, data=data) as resp:
            if resp.status // 100 != 2:
                body = (await resp.text()).strip()[:300]
                raise SeedError(f"write to {database!r} failed: HTTP {resp.status}: {body}")


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _seed(
    influx: _Influx, vessels: Sequence[Vessel], now: int, days: float, interval: int
) -> int:
    # Recreate every planned database so re-seeding never mixes two anchors' data; an
    # unreachable vessel's database is dropped so the server matches the plan.
    for vessel in vessels:
        await influx.query(f"DROP DATABASE {_quote(vessel.id)}")
        if vessel.scenario != "unreachable":
            await influx.query(f"CREATE DATABASE {_quote(vessel.id)}")

    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    written = 0

    async def send(database: str, batch: list[str]) -> None:
        try:
            await influx.write(database, batch)
        finally:
            slots.release()

    try:
        for vessel in vessels:
            for batch in _batches(samples(vessel, now, days, interval), BATCH_LINES):
                await slots.acquire()
                # Fail fast on the first rejected write instead of generating the rest.
                for done in [t for t in tasks if t.done()]:
                    tasks.discard(done)
                    done.result()
                tasks.add(asyncio.create_task(send(vessel.id, batch)))
                written += len(batch)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return written


def _session(username: str | None, password: str | None) -> aiohttp.ClientSession:
    headers: dict[str, str] = {}
    if username is not None:
        # Built by hand: aiohttp.BasicAuth is deprecated in newer releases.
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    return aiohttp.ClientSession(headers=headers, timeout=_TIMEOUT, connector=connector)


def _unreachable(influx_url: str, exc: BaseException) -> SeedError:
    reason = str(exc) or type(exc).__name__
    return SeedError(f"cannot talk to InfluxDB at {influx_url}: {reason}")


async def seed(
    influx_url: str,
    vessels: Sequence[Vessel],
    now: int,
    days: float = 5,
    interval: int = 60,
    username: str | None = None,
    password: str | None = None,
) -> int:
    """Create one database per vessel and write its samples; returns the points written."""
    try:
        async with _session(username, password) as session:
            return await _seed(_Influx(session, influx_url), vessels, now, days, interval)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _unreachable(influx_url, exc) from exc


async def follow(
    influx_url: str,
    vessels: Sequence[Vessel],
    now: int,
    interval: int = 60,
    username: str | None = None,
    password: str | None = None,
    on_error: Callable[[SeedError], None] = lambda exc: None,
) -> None:
    """Write one live sample per device every `interval` seconds, as Telegraf would, on the
    grid of a history seeded at anchor `now`.

    A failed round is reported to `on_error` and the next one tried, so a restarting
    InfluxDB only leaves a gap. Runs until cancelled.
    """
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    start = now - OFFSET
    async with _session(username, password) as session:
        influx = _Influx(session, influx_url)
        # Started late (a restart): go on from the next slot, leaving a gap, as Telegraf would.
        tick = max(1, math.ceil((time.time() - start) / interval))
        while True:
            await asyncio.sleep(max(0.0, start + tick * interval - time.time()))
            writes = [influx.write(v.id, lines) for v in vessels
                      if (lines := live_samples(v, now, tick, interval))]
            results = await asyncio.gather(*writes, return_exceptions=True)
            for result in results:
                if isinstance(result, SeedError):
                    on_error(result)
                elif isinstance(result, aiohttp.ClientError | TimeoutError):
                    on_error(_unreachable(influx_url, result))
                elif isinstance(result, BaseException):
                    raise result
            tick += 1
