"""The receiver's aiohttp application: app factory, routes and resources."""

import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from . import handlers
from .appkeys import CLOCK, CONFIG, METRICS, STORE
from .config import ReceiverConfig
from .metrics import ReceiverMetrics
from .store import Store


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/alerts", handlers.receive_alerts)
    app.router.add_get("/api/v1/incidents", handlers.list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", handlers.get_incident)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)


def create_app(config: ReceiverConfig, *, clock: Callable[[], float] = time.time
               ) -> web.Application:
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[METRICS] = ReceiverMetrics()
    setup_routes(app)

    async def store(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = await Store.open(config.database)
        yield
        await app[STORE].close()

    app.cleanup_ctx.append(store)
    return app
