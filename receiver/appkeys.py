"""Typed keys for everything the receiver's web app carries."""

from collections.abc import Callable

from aiohttp import web

from .approvals import Sweeper
from .config import ReceiverConfig
from .db import Database
from .ingest import Ingest
from .metrics import ReceiverMetrics
from .outbox import OutboxWorker

CONFIG = web.AppKey("config", ReceiverConfig)
DB = web.AppKey("db", Database)
METRICS = web.AppKey("metrics", ReceiverMetrics)
# A callable type is no class: it goes in the annotation, not the constructor.
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
WORKER = web.AppKey("worker", OutboxWorker)
CSRF_SECRET = web.AppKey("csrf_secret", bytes)
INGEST = web.AppKey("ingest", Ingest)
SWEEPER = web.AppKey("sweeper", Sweeper)
BODY_TIMEOUT = web.AppKey("body_timeout", float)  # seconds to receive a request body
