"""Typed keys for everything the exporter's web app carries."""

from aiohttp import web

from .config import Config
from .service import CollectionService

CONFIG = web.AppKey("config", Config)
SERVICE = web.AppKey("service", CollectionService)
