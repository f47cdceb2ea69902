"""Re-reading the config file on SIGHUP or POST /-/reload, Prometheus's convention."""

import logging

from aiohttp import web

from .appkeys import CONFIG_PATH, REPORTS, SERVICE
from .config import ConfigError, load_config

log = logging.getLogger(__name__)


async def reload_from_signal(app: web.Application) -> None:
    try:
        await reload_config(app)
    except ConfigError as exc:
        log.error("config reload failed, keeping the running config: %s", exc)


async def reload_config(app: web.Application) -> None:
    """Re-read the config file; a ConfigError leaves the running config in place."""
    path = app[CONFIG_PATH]
    if path is None:
        raise ConfigError("", "this exporter was started without a config file to re-read")
    await app[SERVICE].reload(lambda: load_config(path))
    app[REPORTS].wake()  # a changed `reports:` section applies at once
