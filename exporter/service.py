"""Runs collections on the interval and keeps the rendered metrics current."""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import aiohttp

from . import ledger_db
from .backend import Backend, ByApi, InfluxQLBackend
from .collector import Clock, Collector, RunResult, VesselResult
from .config import Config, ConfigError
from .console.events import EventHub, EventKind
from .exposition import MetricsCache, Renderer
from .fleet import Fleet
from .flux_backend import FluxBackend
from .metrics import ReloadState
from .model import VesselStatus
from .runlog import RunLog
from .sla.hours import Maintenance
from .sla.ledger import Ledger
from .sla.maintenance import MaintenanceSchedule
from .vessel_log import VesselLog

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
BackendFactory = Callable[[Config, aiohttp.ClientSession], Backend]


def client_session(config: Config) -> aiohttp.ClientSession:
    # Our own decompression lets us count bytes on the wire and cap the decoded size.
    connector = aiohttp.TCPConnector(limit=config.collection.concurrency, limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


def default_backend(config: Config, session: aiohttp.ClientSession) -> Backend:
    """InfluxQL over `session` for most vessels; a Flux client for each `api: flux` one."""
    collection = config.collection
    catchup = config.ledger.max_catchup + config.ledger.settle
    backends: dict[str, Backend] = {
        "influxql": InfluxQLBackend(session, collection.lookback, catchup)}
    flux = [v for v in config.vessels if v.influx.api == "flux"]
    if flux:
        backends["flux"] = FluxBackend(flux, collection.lookback, catchup, collection.timeout)
    return ByApi(backends)


Connect = Callable[[Config], tuple[Backend, Callable[[], Awaitable[None]]]]


def connector(backend_factory: BackendFactory) -> Connect:
    """Opens an HTTP session and a backend for a config; returns the backend and its closer."""

    def connect(config: Config) -> tuple[Backend, Callable[[], Awaitable[None]]]:
        session = client_session(config)
        backend = backend_factory(config, session)

        async def close() -> None:
            try:
                await backend.close()
            finally:
                await session.close()

        return backend, close

    return connect


class CollectionService:
    def __init__(
        self,
        config: Config,
        connect: Connect,
        runlog: RunLog,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        maintenance: Maintenance | None = None,
    ) -> None:
        self.config = config
        self.runlog = runlog
        # Kept across reloads: the ledger is history, not configuration. Its maintenance
        # hours come from the config's windows unless a test passes its own.
        self._own_maintenance = maintenance
        self.ledger = Ledger(config.ledger, config.collection.windows,
                             maintenance or config.maintenance.intervals)
        self.clock = clock
        self._sleep = sleep
        self._connect = connect
        self.fleet = Fleet(config.vessels, config.collection.stale_after)
        backend, self._disconnect = connect(config)
        self.collector = Collector(config.collection, backend, self.ledger, clock=clock)
        self.renderer = Renderer(config.collection.windows, config.collection.interval,
                                 config.maintenance)
        self.cache = MetricsCache(b"", [])  # replaced by restore() before serving
        self.ready = asyncio.Event()
        self.vessel_log = VesselLog()
        self.reload_state = ReloadState(successful=True, last_success=clock())
        self.runs_done = 0
        self.events = EventHub()
        self.last_run_id: int | None = None
        self._run_done = asyncio.Condition()
        self._renders = 0
        self._next_boundary: float | None = None  # a maintenance window starts or ends
        # Held by a run and by a reload: a reload waits for the run in flight.
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._disconnect()

    async def restore(self) -> None:
        """Bring back the last known state, so a restart does not forget outages."""
        skipped = await ledger_db.restore(self.runlog.db, self.ledger, self.clock())
        if skipped:
            log.warning("ignored %d unreadable ledger rows in %s", skipped,
                        self.config.state_path)
        for vessel, last_success, observation, profiles in await self.runlog.last_states():
            self.fleet.restore(vessel, observation, last_success)
            self.ledger.remember(vessel, observation, last_success, profiles)
        for row in await self.runlog.last_results():
            try:
                status = VesselStatus(row["status"])
            except ValueError:
                continue  # written by another version
            self.fleet.restore_outcome(row["vessel"], status, row["error"], row["attempts"],
                                       row["duration_seconds"], row["response_bytes"])
        self.fleet.restore_good_run(await self.runlog.last_good_run_at())
        self.fleet.reassess(self.clock())
        await self._apply_schedule(await ledger_db.read_schedule(self.runlog.db))
        await self._render()

    async def _apply_schedule(self, built: MaintenanceSchedule | None) -> None:
        """Bring the frozen hours in line with the config's windows when they differ from
        those the ledger was built with (`built`, None when not known: taken as equal)."""
        if self._own_maintenance is not None:
            return  # a test's own maintenance: the config's windows are not the ledger's
        new = self.config.maintenance
        if built is not None and built.fingerprints() == new.fingerprints():
            return
        now = self.clock()
        if built is not None:
            changed = MaintenanceSchedule(tuple(new.changed_since(built))).intervals
            # Points older than the lookback may be gone from the vessel's InfluxDB.
            kept_from = now - self.config.collection.lookback
            for vessel in self.config.vessels:
                plan = self.ledger.affected(vessel, changed)
                first = min((k for keys in plan.values() for k in keys), default=None)
                if first is None:
                    continue
                try:
                    await ledger_db.load(self.runlog.db, self.ledger, vessel.id, first // 24)
                except sqlite3.Error as exc:
                    log.error("cannot read the ledger of %s in %s: %s", vessel.id,
                              self.config.state_path, exc)
                    continue
                self.ledger.amend(vessel, plan, built.intervals, new.intervals, kept_from)
                log.info("maintenance windows changed: amending the ledger of %s from %s",
                         vessel.id, first * 3600)
        try:
            await self.runlog.record_ledger(self.ledger, new, now)
        except (sqlite3.Error, OSError) as exc:
            # Memory is amended; the next start compares with the stored windows again.
            log.error("cannot record the ledger in %s: %s", self.config.state_path, exc)

    async def _render(self) -> None:
        self._renders += 1
        started = self._renders
        now = self.clock()
        cache = await self.renderer.render(self.fleet.snapshot(), self.reload_state, now)
        if started == self._renders:  # a render begun meanwhile saw newer state
            self.cache = cache
            self._next_boundary = self.config.maintenance.next_boundary(now)

    async def refresh(self) -> None:
        """Between runs, a newest sample that grows older than stale_after turns its
        device unknown at once, and a maintenance window that starts or ends shows at once:
        re-aged and re-rendered here, with no query to a vessel."""
        now = self.clock()
        window_edge = self._next_boundary is not None and now >= self._next_boundary
        if self.fleet.due(now) or window_edge:
            self.fleet.reassess(now)
            await self._render()

    async def run_once(self) -> RunResult:
        async with self._lock:
            return await self._run()

    async def _run(self) -> RunResult:
        configs = self.fleet.configs
        done = 0
        self.events.publish(EventKind.RUN_STARTED, {"total": len(configs)})

        def collected(result: VesselResult) -> None:
            nonlocal done
            done += 1
            self.runlog.prepare(result, self.ledger)
            self.events.progress({"done": done, "total": len(configs), "vessel": result.vessel,
                                  "status": result.status.value}, final=done == len(configs))

        run = self.fleet.settle(await self.collector.run(configs, collected))
        # Recorded before anything is shown, and shielded: a stop during the write must not
        # leave metrics that the run log and the next start know nothing of.
        write = asyncio.ensure_future(self._record(run))
        cancelled = False
        while not write.done():
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                cancelled = True  # however often: the write finishes first
        if cancelled:
            raise asyncio.CancelledError
        write.result()  # an unexpected error of the write is the run's
        before = self.fleet.snapshot()
        self.fleet.apply(run)
        self.vessel_log.run(before, run)
        await self._render()
        self.ready.set()
        log.info("run %s: %d ok, %d failed in %.2fs", run.result, run.ok, run.failed, run.duration)
        async with self._run_done:
            self.runs_done += 1
            self._run_done.notify_all()
        self.events.publish(EventKind.RUN_FINISHED, {
            "id": self.last_run_id, "result": run.result, "ok": run.ok, "failed": run.failed,
            "duration": round(run.duration, 3)})
        return run

    async def _record(self, run: RunResult) -> None:
        self.last_run_id = None
        try:
            self.last_run_id = await self.runlog.record(run, self.config.run_retention,
                                                        self.ledger,
                                                        self.config.ledger.retention)
        except (sqlite3.Error, OSError) as exc:
            # The metrics stay current; a run log that can't be written must not hide them.
            log.error("cannot record run in %s: %s", self.config.state_path, exc)

    async def reload(self, load: Callable[[], Config]) -> None:
        """Swap in a new config between runs; on any error keep the running one and raise.

        Vessels, devices, objectives and collection settings change from the next run; the
        run in flight finishes first, and the state of kept vessels carries over.
        """
        try:
            config = load()
        except ConfigError:
            self.reload_state = replace(self.reload_state, successful=False)
            await self._render()
            raise
        async with self._lock:
            for key in ("listen_host", "listen_port", "state_path"):
                if getattr(config, key) != getattr(self.config, key):
                    log.warning("config reload: %s changes only on restart", key)
            config = replace(config, listen_host=self.config.listen_host,
                             listen_port=self.config.listen_port,
                             state_path=self.config.state_path)
            backend, disconnect = self._connect(config)
            old_disconnect, self._disconnect = self._disconnect, disconnect
            built = self.config.maintenance
            self.config = config
            self.ledger.reconfigure(config.ledger, config.collection.windows)
            self.ledger.maintenance = self._own_maintenance or config.maintenance.intervals
            self.ledger.forget({v.id for v in config.vessels})
            await self._apply_schedule(built)
            self.collector = Collector(config.collection, backend, self.ledger,
                                      clock=self.clock)
            self.fleet.reconfigure(config.vessels, config.collection.stale_after)
            # Cached blocks carry the old labels and objectives.
            self.renderer = Renderer(config.collection.windows, config.collection.interval,
                                     config.maintenance)
            self.reload_state = ReloadState(successful=True, last_success=self.clock())
            self.fleet.reassess(self.clock())
            await self._render()
            await old_disconnect()
        self.events.publish(EventKind.CONFIG_RELOADED, {"vessels": len(config.vessels)})
        log.info("config reloaded: %d vessels", len(config.vessels))

    async def wait_runs(self, count: int) -> None:
        """Return once `count` runs have finished since the service started."""
        async with self._run_done:
            await self._run_done.wait_for(lambda: self.runs_done >= count)

    async def loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.run_once()
            except Exception:
                log.exception("collection run failed")
            interval = self.config.collection.interval
            await self._sleep(max(0.0, interval - (time.monotonic() - started)))


@contextlib.asynccontextmanager
async def open_service(
    config: Config,
    *,
    backend_factory: BackendFactory = default_backend,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[CollectionService]:
    """The run log, HTTP session and backend of a restored service; all released on exit,
    including when opening or restoring fails half-way."""
    async with contextlib.AsyncExitStack() as stack:
        runlog = await RunLog.open(config.state_path)
        stack.push_async_callback(runlog.close)
        service = CollectionService(config, connector(backend_factory), runlog, clock=clock,
                                    sleep=sleep)
        stack.push_async_callback(service.close)
        await service.restore()
        yield service
