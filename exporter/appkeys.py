"""Typed keys for everything the exporter's web app carries."""

from pathlib import Path

from aiohttp import web

from .config import Config
from .service import CollectionService

CONFIG = web.AppKey("config", Config)  # as started; SERVICE.config is the one in force
SERVICE = web.AppKey("service", CollectionService)
# A union is no class: it goes in the annotation, not the constructor.
CONFIG_PATH: web.AppKey[Path | None] = web.AppKey("config_path")
