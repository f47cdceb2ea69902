"""SLA reports over HTTP: GET /api/v1/reports and the console's /reports page.

Both take the same parameters: `period` (YYYY-MM, YYYY-Qn or YYYY) or `from` and `to`
(RFC 3339 with an offset), `timezone` (an IANA name; the schedule's, or UTC), `vessel`
(repeatable; every vessel when none) and `format`. A bad one is a 400 naming it, and
nothing is built or stored. Reports are built from the ledger and rendered in a thread,
so the event loop keeps serving while a PDF is drawn.
"""

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from ..appkeys import REPORTS, SERVICE
from ..config import Config
from ..reports.build import build_report
from ..reports.formats import MEDIA_TYPES, SHOWS_STRIPS, ReportFormat, filename, render
from ..reports.model import Report
from ..reports.period import Period, ReportError, closed_months, parse_period, zone
from .pages import CONSOLE

MAX_TEXT = 64  # longest period, from, to or timezone taken
SHOWN_FILES = 12  # files the schedule wrote, listed on the page
# Shown inline (viewed); the others are downloads.
INLINE = frozenset({ReportFormat.HTML, ReportFormat.JSON})
ZONES = ("UTC", "Europe/London", "Europe/Oslo", "Europe/Athens", "America/New_York",
         "America/Houston", "Asia/Singapore", "Asia/Kolkata", "Australia/Perth")
_LOCAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")  # a datetime-local field's value


@dataclass(frozen=True, slots=True)
class Ask:
    period: Period
    vessels: tuple[str, ...] | None  # None: every vessel
    format: ReportFormat

    def query(self, fmt: ReportFormat | None = None) -> str:
        """The API's query string for this report, in `fmt`."""
        label = self.period.label
        items: list[tuple[str, str]] = []
        if "/" in label:
            items += [("from", _offset_text(self.period.start, self.period.timezone)),
                      ("to", _offset_text(self.period.end, self.period.timezone))]
        else:
            items.append(("period", label))
        items.append(("timezone", self.period.timezone))
        items += [("vessel", v) for v in self.vessels or ()]
        items.append(("format", (fmt or self.format).value))
        return urlencode(items)


def _offset_text(ts: float, timezone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(timezone)).isoformat(timespec="minutes")


def _text(query: MultiMapping[str], name: str) -> str | None:
    raw = query.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > MAX_TEXT:
        raise ReportError(name, f"at most {MAX_TEXT} characters")
    return raw.strip()


def _local_moment(name: str, raw: str | None, timezone: str) -> str | None:
    """A form's `2026-11-01T00:00` (no offset) taken in the report's timezone."""
    if raw is None or not _LOCAL.fullmatch(raw):
        return raw
    try:
        moment = datetime.fromisoformat(raw).replace(tzinfo=zone(timezone))
    except ValueError:
        raise ReportError(name, f"not a valid time: {raw!r}") from None
    return moment.isoformat(timespec="minutes")


def parse_ask(query: MultiMapping[str], config: Config, now: float,
              default: ReportFormat, local_times: bool = False) -> Ask:
    """The report asked for; ReportError naming the parameter for anything wrong."""
    raw_format = _text(query, "format")
    try:
        fmt = ReportFormat(raw_format) if raw_format is not None else default
    except ValueError:
        raise ReportError("format", f"expected one of {', '.join(ReportFormat)}, "
                                    f"got {raw_format!r}") from None
    timezone = _text(query, "timezone") or config.reports.timezone
    start, end = _text(query, "from"), _text(query, "to")
    if local_times:
        zone(timezone)  # a bad timezone is named before the times that need it
        start = _local_moment("from", start, timezone)
        end = _local_moment("to", end, timezone)
    period = parse_period(period=_text(query, "period"), start=start, end=end,
                          timezone=timezone, now=now)
    known = {v.id for v in config.vessels}
    wanted: list[str] = []
    for raw in query.getall("vessel", []):
        name = raw.strip()
        if not name:
            continue
        if name not in known:
            raise ReportError("vessel", f"unknown vessel {name[:MAX_TEXT]!r}")
        if name not in wanted:
            wanted.append(name)
    return Ask(period, tuple(wanted) or None, fmt)


async def _build(request: web.Request, ask: Ask) -> Report:
    service = request.app[SERVICE]
    config = service.config
    return await build_report(service.runlog.db, service.ledger, config, config.maintenance,
                              ask.period, ask.vessels, service.clock(),
                              strips=ask.format in SHOWS_STRIPS)


def _json_error(exc: ReportError) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": str(exc), "field": exc.field}),
        content_type="application/json")


async def report_api(request: web.Request) -> web.Response:
    """GET /api/v1/reports: the report in `format` (json by default)."""
    service = request.app[SERVICE]
    try:
        ask = parse_ask(request.query, service.config, service.clock(), ReportFormat.JSON)
        report = await _build(request, ask)
    except ReportError as exc:
        raise _json_error(exc) from None
    body = await asyncio.to_thread(render, report, ask.format)
    disposition = "inline" if ask.format in INLINE else "attachment"
    return web.Response(body=body, headers={
        "Content-Type": MEDIA_TYPES[ask.format],
        "Content-Disposition": f'{disposition}; filename="{filename(report, ask.format)}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })


# --- the page -----------------------------------------------------------------------


def period_choices(now: float, timezone: str) -> list[tuple[str, list[str]]]:
    """The closed months, quarters and years the form offers, newest first."""
    tz = ZoneInfo(timezone)
    months = [label for label, _ in islice(closed_months(now, tz), 13)]
    local = datetime.fromtimestamp(now, tz)
    quarter, year = (local.month - 1) // 3 + 1, local.year
    quarters = []
    for _ in range(4):
        year, quarter = (year - 1, 4) if quarter == 1 else (year, quarter - 1)
        quarters.append(f"{year:04d}-Q{quarter}")
    years = [f"{local.year - 1:04d}", f"{local.year - 2:04d}"]
    return [("month", months), ("quarter", quarters), ("year", years)]


def _field_values(query: MultiMapping[str]) -> dict[str, Any]:
    return {"period": query.get("period", ""), "from": query.get("from", ""),
            "to": query.get("to", ""), "timezone": query.get("timezone", ""),
            "vessels": set(query.getall("vessel", [])), "format": query.get("format", "html")}


def _local_input(ts: float, timezone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(timezone)).strftime("%Y-%m-%dT%H:%M")


async def reports_page(request: web.Request) -> web.StreamResponse:
    """GET /reports: the form, and the report asked for (last month when nothing is)."""
    service = request.app[SERVICE]
    config = service.config
    now = service.clock()
    query = request.query
    values = _field_values(query)
    error: ReportError | None = None
    ask: Ask | None = None
    try:
        ask = parse_ask(query, config, now, ReportFormat.HTML, local_times=True)
    except ReportError as exc:
        error = exc
    if ask is not None and ask.format is not ReportFormat.HTML:
        # A download asked for through the form: the API serves it.
        raise web.HTTPSeeOther(f"/api/v1/reports?{ask.query()}")
    timezone = ask.period.timezone if ask is not None else config.reports.timezone
    try:
        choices = period_choices(now, timezone)
    except (ValueError, OSError):
        choices = period_choices(now, "UTC")
    if ask is not None:
        if "/" in ask.period.label:
            values.update({"period": "", "from": _local_input(ask.period.start, timezone),
                           "to": _local_input(ask.period.end, timezone)})
        else:
            values.update({"period": ask.period.label, "from": "", "to": ""})
        values["timezone"] = timezone
    elif not values["timezone"]:
        values["timezone"] = config.reports.timezone
    written = await request.app[REPORTS].recent(SHOWN_FILES)
    downloads = ([(f.value, f"/api/v1/reports?{ask.query(f)}") for f in ReportFormat]
                 if ask is not None else [])
    html = request.app[CONSOLE].env.get_template("reports.html").render(
        page="reports", ask=ask, error=error, values=values, choices=choices,
        vessels=config.vessels, zones=ZONES, formats=list(ReportFormat),
        view=f"/api/v1/reports?{ask.query(ReportFormat.HTML)}" if ask is not None else None,
        downloads=downloads, written=written,
        schedule=config.reports if config.reports.dir is not None else None)
    response = web.Response(text=html, content_type="text/html", status=400 if error else 200,
                            headers={"Cache-Control": "no-store"})
    response.enable_compression()
    return response


def setup_reports(app: web.Application) -> None:
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/api/v1/reports", report_api)
