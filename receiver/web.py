"""The receiver's aiohttp application: app factory, routes and resources."""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from . import auth, handlers, jira_webhook, live, middleware, pages
from .appkeys import (
    BODY_TIMEOUT,
    CLOCK,
    CONFIG,
    CSRF_SECRET,
    DB,
    INGEST,
    METRICS,
    SWEEPER,
    WORKER,
)
from .approvals import Sweeper
from .config import ReceiverConfig
from .db import Database
from .ingest import Ingest
from .jira_tickets import JiraTickets
from .metrics import ReceiverMetrics
from .outbox import OutboxWorker
from .tickets import DryRunTickets, Tickets

# aiohttp closes a connection whose request headers are not complete this long after it
# opened or after its last answer (its keep-alive timer); a trickled body is cut off by
# BODY_TIMEOUT in the handlers. Together they bound what a slow client holds.
HEADER_TIMEOUT = 15.0
BODY_TIMEOUT_SECONDS = 30.0


def make_runner(app: web.Application, header_timeout: float = HEADER_TIMEOUT
                ) -> web.AppRunner:
    """A runner for the app with the slow-client limits (fleet-receiver's run_app too)."""
    # lingering_time: after an early answer (401, 408, 413) aiohttp reads and drops the
    # rest of a body for this long before closing; its default 10 s is long for a trickle.
    return web.AppRunner(app, access_log=None, keepalive_timeout=header_timeout,
                         lingering_time=min(2.0, header_timeout))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", pages.index)
    app.router.add_get("/audit", pages.audit)
    app.router.add_get("/incidents/{id}", pages.incident)
    app.router.add_get("/events", live.events)
    app.router.add_static("/static/", Path(__file__).parent / "static")
    app.router.add_post("/incidents/{id}/approve", pages.approve)
    app.router.add_post("/incidents/{id}/reject", pages.reject)
    app.router.add_post("/incidents/{id}/ask-again", pages.ask_again)
    app.router.add_post("/incidents/{id}/retry", pages.retry)
    app.router.add_post("/incidents/{id}/no-ticket", pages.no_ticket)
    app.router.add_post("/api/v1/alerts", handlers.receive_alerts)
    app.router.add_get("/api/v1/incidents", handlers.list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", handlers.get_incident)
    app.router.add_post("/api/v1/incidents/{id}/approve", handlers.approve)
    app.router.add_post("/api/v1/incidents/{id}/reject", handlers.reject)
    app.router.add_post("/api/v1/incidents/{id}/retry", handlers.retry)
    app.router.add_post("/api/v1/incidents/{id}/no-ticket", handlers.no_ticket)
    app.router.add_post("/api/v1/jira/webhook", jira_webhook.receive)
    # Uncompressed, as before: the page is small and compressing it would hold the loop.
    app.router.add_get("/metrics", make_aiohttp_handler(app[METRICS].registry,
                                                        disable_compression=True))
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)


# The approval page must not be framed (clickjacking an Approve button) or sniffed.
SECURITY_HEADERS = {"X-Frame-Options": "DENY",
                    "Content-Security-Policy": "frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin"}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def _tickets(config: ReceiverConfig, metrics: ReceiverMetrics,
             clock: Callable[[], float]) -> Tickets:
    if config.jira is None:
        return DryRunTickets()
    return JiraTickets(config.jira, on_call=lambda operation, result:
                       metrics.jira_calls.labels(operation, result).inc(), clock=clock)


def create_app(config: ReceiverConfig, *, clock: Callable[[], float] = time.time,
               tickets: Tickets | None = None, sweep_every: float = 30.0,
               body_timeout: float = BODY_TIMEOUT_SECONDS) -> web.Application:
    app = web.Application(client_max_size=config.max_body_bytes,
                          middlewares=[middleware.errors])
    app[BODY_TIMEOUT] = body_timeout
    app[CONFIG] = config
    app[CLOCK] = clock
    app[CSRF_SECRET] = os.urandom(32)  # tokens die with the process: reload the page
    app[METRICS] = ReceiverMetrics()
    auth.install(app)
    app[live.CHANGES] = live.Changes()
    setup_routes(app)
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(live.close_streams)  # else shutdown waits for open pages

    async def database(app: web.Application) -> AsyncIterator[None]:
        app[DB] = await Database.open(config.database)
        app[DB].on_commit(app[live.CHANGES].changed)
        app[WORKER] = OutboxWorker(app[DB], tickets or _tickets(config, app[METRICS], clock),
                                   config, clock)
        sweeper = app[SWEEPER] = Sweeper(app[DB], config, app[METRICS], clock,
                                         app[WORKER].wake)
        session = aiohttp.ClientSession()
        app[INGEST] = Ingest(app[DB], config.incidents, clock)
        tasks = [asyncio.create_task(app[INGEST].run(), name="ingest"),
                 asyncio.create_task(app[WORKER].run(), name="outbox"),
                 asyncio.create_task(sweeper.run(sweep_every, session), name="approvals"),
                 asyncio.create_task(app[DB].checkpoint_forever(config.database),
                                     name="checkpoint")]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await session.close()
        await app[DB].close()

    app.cleanup_ctx.append(database)
    return app
