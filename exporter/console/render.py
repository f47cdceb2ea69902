"""The console's templates, their filters and words, and the overview's row cache."""

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import jinja2
from markupsafe import Markup

from ..sla_state import ComponentState, DataStatus, DeviceState
from .history import cells
from .views import DOWN_3D, VesselRow

SLICE_SECONDS = 0.005  # longest stretch of work before other requests get a turn

STATE_WORDS = {ComponentState.BREACH: "breach", ComponentState.AT_RISK: "at risk",
               ComponentState.NO_DATA: "no data", ComponentState.UNKNOWN: "unknown",
               ComponentState.MAINTENANCE: "maintenance", ComponentState.OK: "ok",
               DOWN_3D: "down > 3 days"}
# Colour is never alone: each state has an icon and words.
STATE_ICONS = {ComponentState.BREACH: "✗", ComponentState.AT_RISK: "⚠",
               ComponentState.NO_DATA: "○", ComponentState.UNKNOWN: "?",
               ComponentState.MAINTENANCE: "⚒", ComponentState.OK: "✓", DOWN_3D: "⌛"}
STATE_HELP = {
    ComponentState.BREACH: "24 h uptime is below the objective (FleetComponentSLABreach).",
    ComponentState.AT_RISK: "Down now with under a quarter of the 24 h error budget left "
                            "(FleetComponentSLAAtRisk).",
    ComponentState.NO_DATA: "No sample in the last 24 h: neither up nor down.",
    ComponentState.UNKNOWN: "The last figures are from an answer that is no longer current; "
                            "they do not count as uptime now.",
    ComponentState.MAINTENANCE: "In a maintenance window: excluded from the SLA.",
    ComponentState.OK: "24 h uptime meets the objective.",
}
STATUS_WORDS = {DataStatus.OK: "ok", DataStatus.STALE: "stale", DataStatus.NO_DATA: "no data",
                DataStatus.UNREACHABLE: "unreachable", DataStatus.AUTH_ERROR: "auth error",
                DataStatus.QUERY_ERROR: "query error", DataStatus.CLOCK_SKEW: "clock skew",
                DataStatus.PENDING: "pending"}
STATUS_ICONS = {DataStatus.OK: "✓", DataStatus.STALE: "◔", DataStatus.NO_DATA: "○",
                DataStatus.UNREACHABLE: "⇹", DataStatus.AUTH_ERROR: "⊘",
                DataStatus.QUERY_ERROR: "⚠", DataStatus.CLOCK_SKEW: "◷",
                DataStatus.PENDING: "…"}
# What each data status means and what to check: a failed sync is not downtime.
STATUS_HELP = {
    DataStatus.OK: "Collected, with recent samples.",
    DataStatus.STALE: "The vessel's InfluxDB answered, but its newest sample is old: Telegraf "
                      "or the sync from the ship has stopped. Not downtime; check Telegraf "
                      "and the sync on board.",
    DataStatus.NO_DATA: "The InfluxDB answered but holds no samples of these devices. Not "
                        "downtime; check the database, measurement and device tag in the "
                        "config, and Telegraf.",
    DataStatus.UNREACHABLE: "The exporter could not reach the vessel's InfluxDB (network, "
                            "timeout, 5xx). Not downtime: devices keep their last known state. "
                            "Check the link to the ship and its InfluxDB.",
    DataStatus.AUTH_ERROR: "InfluxDB refused the credentials. Check the username and password "
                           "or token in the config.",
    DataStatus.QUERY_ERROR: "InfluxDB rejected the query or answered something unusable. "
                            "Check the error on the vessel page.",
    DataStatus.CLOCK_SKEW: "The vessel's clock runs ahead: uptime windows are hidden, outage "
                           "ages are corrected. Check NTP on board.",
    DataStatus.PENDING: "Not collected yet since the exporter started.",
}
DEVICE_ICONS = {DeviceState.UP: "▲", DeviceState.DOWN: "▼", DeviceState.UNKNOWN: "?"}


def pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def objective(value: float) -> str:
    return f"{value * 100:g} %"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    sign, left = ("-" if seconds < 0 else ""), int(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def iso(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def millis(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms"


def size(count: int) -> str:
    return f"{count / 1024:.1f} KiB" if count >= 1024 else f"{count} B"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("exporter", "templates/console"),
        autoescape=True,  # names come from config, errors from remote servers
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(pct=pct, objective=objective, duration=duration, iso=iso,
                       millis=millis, size=size, cells=cells)
    env.globals.update(STATE_WORDS=STATE_WORDS, STATE_ICONS=STATE_ICONS,
                       STATE_HELP=STATE_HELP, STATUS_WORDS=STATUS_WORDS,
                       STATUS_ICONS=STATUS_ICONS, STATUS_HELP=STATUS_HELP,
                       DEVICE_ICONS=DEVICE_ICONS)
    return env


class RowCache:
    """The overview's rows as HTML, rendered again only when a row's view changes."""

    def __init__(self, env: jinja2.Environment) -> None:
        self._macro = env.get_template("rows.html").module.row  # type: ignore[attr-defined]
        self._rows: dict[str, tuple[VesselRow, Markup]] = {}

    async def render(self, rows: Sequence[VesselRow]) -> list[Markup]:
        out = []
        started = time.monotonic()
        for row in rows:
            cached = self._rows.get(row.id)
            if cached is None or cached[0] != row:
                cached = (row, Markup(self._macro(row)))
                self._rows[row.id] = cached
            out.append(cached[1])
            if time.monotonic() - started > SLICE_SECONDS:
                await asyncio.sleep(0)
                started = time.monotonic()
        return out

    def keep(self, ids: set[str]) -> None:
        """Forget vessels no longer in the config."""
        for gone in self._rows.keys() - ids:
            del self._rows[gone]
