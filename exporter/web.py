"""The exporter's aiohttp application: app factory, routes and resources."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from . import handlers
from .appkeys import CONFIG, SERVICE
from .collector import Clock
from .config import Config
from .service import BackendFactory, Sleep, default_backend, open_service


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", handlers.status_page)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/api/v1/runs", handlers.list_runs)
    app.router.add_get("/api/v1/runs/{id}", handlers.get_run)


def create_app(
    config: Config,
    *,
    backend_factory: BackendFactory = default_backend,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> web.Application:
    """`sleep` waits between runs; tests pass one they control."""
    app = web.Application()
    app[CONFIG] = config
    setup_routes(app)

    async def collection(app: web.Application) -> AsyncIterator[None]:
        async with open_service(config, backend_factory=backend_factory, clock=clock,
                                sleep=sleep) as service:
            app[SERVICE] = service
            task = asyncio.create_task(service.loop(), name="collection")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(collection)
    return app
