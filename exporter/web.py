"""The exporter's aiohttp application: app factory, routes and resources."""

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from . import handlers
from .appkeys import CONFIG_PATH, REPORTS, SERVICE
from .collector import Clock
from .config import Config
from .console.pages import setup_console
from .console.reports import setup_reports
from .reloading import reload_from_signal
from .report_schedule import ReportScheduler
from .report_store import ReportStore
from .service import BackendFactory, Sleep, default_backend, open_service


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/api/v1/runs", handlers.list_runs)
    app.router.add_get("/api/v1/runs/{id}", handlers.get_run)
    app.router.add_get("/api/v1/ledger", handlers.ledger)
    app.router.add_post("/-/reload", handlers.reload)
    app.router.add_put("/-/reload", handlers.reload)


def create_app(
    config: Config,
    *,
    config_path: Path | None = None,
    backend_factory: BackendFactory = default_backend,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    report_sleep: Sleep = asyncio.sleep,
) -> web.Application:
    """`config_path` is re-read on SIGHUP and POST /-/reload; `sleep` waits between runs
    and `report_sleep` between the report schedule's checks, and tests pass ones they
    control."""
    app = web.Application()
    app[CONFIG_PATH] = config_path
    setup_routes(app)
    setup_console(app)
    setup_reports(app)

    async def collection(app: web.Application) -> AsyncIterator[None]:
        async with open_service(config, backend_factory=backend_factory, clock=clock,
                                sleep=sleep) as service:
            app[SERVICE] = service
            # What exists now (config, restored state, libraries) lives as long as the
            # process: out of the collector's sight, a full collection no longer scans it,
            # which took up to 300 ms on the loop with thousands of vessels.
            gc.freeze()
            task = asyncio.create_task(service.loop(), name="collection")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def report_schedule(app: web.Application) -> AsyncIterator[None]:
        service = app[SERVICE]
        store = await ReportStore.open(service.config.state_path)
        try:
            app[REPORTS] = ReportScheduler(service, store, clock=clock, sleep=report_sleep)
            task = asyncio.create_task(app[REPORTS].loop(), name="reports")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await store.close()

    async def on_sighup(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def hangup() -> None:
            task = asyncio.create_task(reload_from_signal(app))
            pending.add(task)
            task.add_done_callback(pending.discard)

        try:
            loop.add_signal_handler(signal.SIGHUP, hangup)
        except (NotImplementedError, RuntimeError):
            yield  # not the main thread (tests), or no signals here: /-/reload still works
            return
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        for task in pending:
            task.cancel()

    app.cleanup_ctx.append(collection)
    app.cleanup_ctx.append(report_schedule)
    if config_path is not None:
        app.cleanup_ctx.append(on_sighup)
    return app
