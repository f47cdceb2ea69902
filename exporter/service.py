"""Runs collections on the interval and keeps the rendered metrics current."""

import asyncio
import logging
import sqlite3
import time

import aiohttp

from .backend import Backend, ByApi, InfluxQLBackend
from .collector import Clock, Collector, RunResult
from .config import Config
from .exposition import MetricsCache, Renderer
from .fleet import Fleet
from .flux_backend import FluxBackend
from .model import VesselStatus
from .runlog import RunLog

log = logging.getLogger(__name__)


def client_session(config: Config) -> aiohttp.ClientSession:
    # Our own decompression lets us count bytes on the wire and cap the decoded size.
    connector = aiohttp.TCPConnector(limit=config.collection.concurrency, limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


def default_backend(config: Config, session: aiohttp.ClientSession) -> Backend:
    """InfluxQL over `session` for most vessels; a Flux client for each `api: flux` one."""
    collection = config.collection
    backends: dict[str, Backend] = {
        "influxql": InfluxQLBackend(session, collection.windows, collection.lookback)}
    flux = [v for v in config.vessels if v.influx.api == "flux"]
    if flux:
        backends["flux"] = FluxBackend(flux, collection.windows, collection.lookback,
                                       collection.timeout)
    return ByApi(backends)


class CollectionService:
    def __init__(
        self, config: Config, backend: Backend, runlog: RunLog, *, clock: Clock = time.time
    ) -> None:
        self.config = config
        self.fleet = Fleet(config.vessels)
        self.runlog = runlog
        self.clock = clock
        self.collector = Collector(config.collection, backend, clock=clock)
        self.renderer = Renderer(config.collection.windows, config.collection.interval)
        self.cache = MetricsCache(b"", [])  # replaced by restore() before serving
        self.ready = asyncio.Event()

    async def restore(self) -> None:
        """Bring back the last known state, so a restart does not forget outages."""
        for vessel, last_success, observation in await self.runlog.last_states():
            self.fleet.restore(vessel, observation, last_success)
        for row in await self.runlog.last_results():
            try:
                status = VesselStatus(row["status"])
            except ValueError:
                continue  # written by another version
            self.fleet.restore_outcome(row["vessel"], status, row["error"], row["attempts"],
                                       row["duration_seconds"], row["response_bytes"])
        self.fleet.restore_good_run(await self.runlog.last_good_run_at())
        self.cache = await self.renderer.render(self.fleet.snapshot())

    async def run_once(self) -> RunResult:
        run = await self.collector.run(self.fleet.configs)
        self.fleet.apply(run)
        self.cache = await self.renderer.render(self.fleet.snapshot())
        self.ready.set()
        try:
            await self.runlog.record(run, self.config.run_retention)
        except (sqlite3.Error, OSError) as exc:
            # The metrics are current; a run log that can't be written must not hide them.
            log.error("cannot record run in %s: %s", self.config.state_path, exc)
        log.info("run %s: %d ok, %d failed in %.2fs", run.result, run.ok, run.failed, run.duration)
        return run

    async def loop(self) -> None:
        interval = self.config.collection.interval
        while True:
            started = time.monotonic()
            try:
                await self.run_once()
            except Exception:
                log.exception("collection run failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
