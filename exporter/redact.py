"""The credentials of one vessel's InfluxDB, for redaction (fleet_common.redact)."""

from collections.abc import Callable

from fleet_common.redact import redact

from .config import InfluxConfig

Redactor = Callable[[str], str]


def redactor_for(influx: InfluxConfig) -> Redactor:
    """Redacts the credentials of one vessel's InfluxDB."""
    secrets, username = influx.secrets(), influx.username
    return lambda text: redact(text, secrets, username)
