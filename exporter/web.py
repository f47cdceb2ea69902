"""The exporter's aiohttp application: app factory, routes and resources."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from . import handlers
from .appkeys import CONFIG, SERVICE
from .backend import Backend
from .collector import Clock
from .config import Config
from .runlog import RunLog
from .service import CollectionService, client_session, default_backend

BackendFactory = Callable[[Config, aiohttp.ClientSession], Backend]


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
) -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    setup_routes(app)

    async def collection(app: web.Application) -> AsyncIterator[None]:
        runlog = await RunLog.open(config.state_path)
        session = client_session(config)
        backend = backend_factory(config, session)
        service = CollectionService(config, backend, runlog, clock=clock)
        await service.restore()
        app[SERVICE] = service
        task = asyncio.create_task(service.loop(), name="collection")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.close()
        await session.close()
        await runlog.close()

    app.cleanup_ctx.append(collection)
    return app
