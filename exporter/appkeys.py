"""Typed keys for everything the exporter's web app carries."""

from pathlib import Path

from aiohttp import web

from .report_schedule import ReportScheduler
from .service import CollectionService

SERVICE = web.AppKey("service", CollectionService)
# A union is no class: it goes in the annotation, not the constructor.
CONFIG_PATH: web.AppKey[Path | None] = web.AppKey("config_path")
REPORTS = web.AppKey("reports", ReportScheduler)
