"""The console's handlers: the pages and their JSON twins.

Read-only and without sign-in, like /metrics. Query parameters are checked: a bad one is
a 400 naming it, an unknown vessel or run a 404.
"""

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from fleet_common.ids import parse_id

from .. import ledger_db
from ..appkeys import SERVICE
from ..config import Window
from ..fleet import RUN_RESULTS, FleetSnapshot, VesselState
from ..service import CollectionService
from ..sla.hour import HOUR
from ..sla_state import PERSISTENT_AFTER, ComponentState, DataStatus, in_maintenance
from . import events as live
from .history import DAY
from .history import DAYS as HISTORY_DAYS
from .maintenance_view import window_views
from .render import SLICE_SECONDS, RowCache, environment
from .views import (
    DOWN_3D,
    Sort,
    Summary,
    VesselRow,
    maintenance_for,
    ordered,
    summary,
    vessel_page,
    vessel_row,
    violations,
)

STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_QUERY = 100
RUNS_PAGE = 50
VESSEL_ATTEMPTS = 20
STATE_FILTERS = (*(str(s) for s in ComponentState), DOWN_3D)


class Console:
    """What the console keeps between requests: templates and rendered rows."""

    def __init__(self) -> None:
        self.env = environment()
        self.rows = RowCache(self.env)
        # Vessel id -> the state, windows and maintenance a row was built from, the time
        # until which it holds (a down component crosses 3 days), and the row.
        self.views: dict[str, tuple[VesselState, tuple[Window, ...], frozenset[str], float,
                                      VesselRow]] = {}

    def row(self, state: VesselState, windows: tuple[Window, ...], now: float,
            held: frozenset[str]) -> VesselRow:
        """The vessel's row; built again only when its state changed (a run, a reload)."""
        cached = self.views.get(state.config.id)
        if (cached is not None and cached[0] is state and cached[1] is windows
                and cached[2] == held and now < cached[3]):
            return cached[4]
        row = vessel_row(state, windows, now, held)
        until = min((t.down_since + PERSISTENT_AFTER for t in row.tiles
                     if t.down_since is not None and t.down_since + PERSISTENT_AFTER > now),
                    default=float("inf"))
        self.views[state.config.id] = (state, windows, held, until, row)
        return row


CONSOLE = web.AppKey("console", Console)


def _bad(name: str, message: str, api: bool) -> web.HTTPBadRequest:
    text = f"{name}: {message}"
    if api:
        return web.HTTPBadRequest(text=json.dumps({"error": text}),
                                  content_type="application/json")
    return web.HTTPBadRequest(text=text + "\n")


def _not_found(what: str, api: bool) -> web.HTTPNotFound:
    if api:
        return web.HTTPNotFound(text=json.dumps({"error": f"{what} not found"}),
                                content_type="application/json")
    return web.HTTPNotFound(text=f"{what} not found\n")


def _choice(request: web.Request, name: str, allowed: type[StrEnum] | tuple[str, ...],
            api: bool) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    values = tuple(str(v) for v in allowed)
    if raw not in values:
        raise _bad(name, f"expected one of {', '.join(values)}, got {raw[:40]!r}", api)
    return raw


def _html(request: web.Request, template: str, **context: Any) -> web.Response:
    html = request.app[CONSOLE].env.get_template(template).render(**context)
    response = web.Response(text=html, content_type="text/html",
                            headers={"Cache-Control": "no-store"})
    response.enable_compression()  # bodies over 4 KiB are compressed off the loop
    return response


def _json(data: Any) -> web.Response:
    response = web.json_response(data, dumps=lambda d: json.dumps(d, separators=(",", ":")))
    response.enable_compression()
    return response


# --- the overview -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Filters:
    state: str | None
    data: DataStatus | None
    q: str
    sort: Sort

    def query(self, **change: str | None) -> str:
        """This view's query string with `change` applied, for links and chips."""
        current = {"state": self.state, "data": self.data, "q": self.q or None,
                   "sort": None if self.sort is Sort.WORST else self.sort.value}
        current.update(change)
        kept = {k: str(v) for k, v in current.items() if v}
        return "?" + "&".join(f"{k}={_quote(v)}" for k, v in kept.items()) if kept else "?"


def _quote(value: str) -> str:
    return quote(value, safe="")


def _filters(request: web.Request, api: bool) -> Filters:
    q = request.query.get("q", "").strip()
    if len(q) > MAX_QUERY:
        raise _bad("q", f"at most {MAX_QUERY} characters", api)
    data = _choice(request, "data", DataStatus, api)
    sort = _choice(request, "sort", Sort, api)
    return Filters(state=_choice(request, "state", STATE_FILTERS, api),
                   data=DataStatus(data) if data else None, q=q.casefold(),
                   sort=Sort(sort) if sort else Sort.WORST)


async def _rows(console: Console, service: CollectionService,
                snap: FleetSnapshot) -> list[VesselRow]:
    """Every vessel's row, built in slices so that other requests get their turn."""
    now = service.clock()
    windows = service.config.collection.windows
    held = in_maintenance(service.config.vessels, service.config.maintenance, now)
    rows = []
    started = time.monotonic()
    for state in snap.vessels:
        rows.append(console.row(state, windows, now, maintenance_for(state, held)))
        if time.monotonic() - started > SLICE_SECONDS:
            await asyncio.sleep(0)
            started = time.monotonic()
    return rows


async def _overview(request: web.Request, api: bool) -> tuple[Filters, Summary,
                                                              list[VesselRow], FleetSnapshot]:
    filters = _filters(request, api)
    service = request.app[SERVICE]
    await service.refresh()  # a sample gone stale since the run is unknown now
    snap = service.fleet.snapshot()
    rows = await _rows(request.app[CONSOLE], service, snap)
    shown = [r for r in rows if r.matches(filters.state, filters.data, filters.q)]
    return filters, summary(rows, snap), ordered(shown, filters.sort), snap


async def overview(request: web.Request) -> web.Response:
    filters, totals, rows, snap = await _overview(request, api=False)
    console = request.app[CONSOLE]
    ids = {v.id for v in request.app[SERVICE].config.vessels}
    console.rows.keep(ids)
    for gone in console.views.keys() - ids:
        del console.views[gone]
    html_rows = await console.rows.render(rows)
    return _html(request, "overview.html", page="fleet", summary=totals, rows=html_rows,
                 shown=len(rows), total=len(snap.vessels), filters=filters,
                 state_filters=STATE_FILTERS, statuses=list(DataStatus))


async def fleet_api(request: web.Request) -> web.Response:
    _, totals, rows, _ = await _overview(request, api=True)
    return _json({"summary": {**dataclasses.asdict(totals), "without_data": totals.without_data},
                  "vessels": [{**dataclasses.asdict(r), "rank": r.rank} for r in rows]})


# --- one vessel ---------------------------------------------------------------------


async def _vessel(request: web.Request, api: bool) -> Any:
    service = request.app[SERVICE]
    await service.refresh()
    vessel_id = request.match_info["id"]
    state = next((s for s in service.fleet.snapshot().vessels if s.config.id == vessel_id),
                 None)
    if state is None:
        raise _not_found(f"vessel {vessel_id[:60]!r}", api)
    attempts = await service.runlog.vessel_runs(vessel_id, VESSEL_ATTEMPTS)
    now = service.clock()
    held = in_maintenance(service.config.vessels, service.config.maintenance, now)
    start = (int(now) // DAY - HISTORY_DAYS + 1) * DAY
    hours = await ledger_db.hours(service.runlog.db, service.ledger, vessel_id,
                                  [d.address for d in state.config.devices], start,
                                  int(now) + HOUR)
    # Thousands of cells: built beside the loop.
    view = await asyncio.to_thread(vessel_page, state, service.config, now, attempts,
                                   maintenance_for(state, held), hours)
    return view, now


async def vessel(request: web.Request) -> web.Response:
    view, now = await _vessel(request, api=False)
    return _html(request, "vessel.html", page="vessel", v=view, now=now)


async def vessel_api(request: web.Request) -> web.Response:
    view, _ = await _vessel(request, api=True)
    return _json(dataclasses.asdict(view))


async def violations_api(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    await service.refresh()
    now = service.clock()
    found = violations(service.fleet.snapshot().vessels, service.config.collection.windows,
                       now, in_maintenance(service.config.vessels, service.config.maintenance, now))
    return _json({"violations": [dataclasses.asdict(v) for v in found]})


# --- the run log --------------------------------------------------------------------


async def maintenance(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return _html(request, "maintenance.html", page="maintenance",
                 windows=window_views(service.config.maintenance, service.clock()))


async def runs(request: web.Request) -> web.Response:
    result = _choice(request, "result", RUN_RESULTS, api=False)
    raw = request.query.get("before")
    before = None
    if raw is not None:
        before = parse_id(raw)
        if before is None:
            raise _bad("before", f"expected a run id, got {raw[:40]!r}", api=False)
    runlog = request.app[SERVICE].runlog
    rows = await runlog.runs(RUNS_PAGE + 1, before, result)
    page, more = rows[:RUNS_PAGE], len(rows) > RUNS_PAGE
    retries = await runlog.retries([r["id"] for r in page]) if page else {}
    older = None
    if more:
        older = f"?before={page[-1]['id']}" + (f"&result={result}" if result else "")
    return _html(request, "runs.html", page="runs", runs=page, retries=retries,
                 result=result, results=RUN_RESULTS, older=older)


async def run(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    run_id = parse_id(raw)
    if run_id is None:
        raise _bad("id", f"expected a run id, got {raw[:40]!r}", api=False)
    found: Mapping[str, Any] | None = await request.app[SERVICE].runlog.run(run_id)
    if found is None:
        raise _not_found(f"run {run_id}", api=False)
    names = {v.id: v.name for v in request.app[SERVICE].config.vessels}
    return _html(request, "run.html", page="runs", run=found, names=names)


async def events(request: web.Request) -> web.StreamResponse:
    return await live.stream(request, request.app[SERVICE].events)


async def close_streams(app: web.Application) -> None:
    app[SERVICE].events.close()


def setup_console(app: web.Application) -> None:
    app[CONSOLE] = Console()
    app.router.add_get("/", overview)
    app.router.add_get("/vessels/{id}", vessel)
    app.router.add_get("/runs", runs)
    app.router.add_get("/runs/{id}", run)
    app.router.add_get("/maintenance", maintenance)
    app.router.add_get("/api/v1/fleet", fleet_api)
    app.router.add_get("/api/v1/vessels/{id}", vessel_api)
    app.router.add_get("/api/v1/violations", violations_api)
    app.router.add_get("/api/v1/events", events)
    app.router.add_static("/static", STATIC)
    app.on_shutdown.append(close_streams)

