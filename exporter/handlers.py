"""HTTP handlers: metrics, health, the run log API and reloads; the console is console/."""

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fleet_common.ids import parse_id

from .appkeys import REPORTS, SERVICE
from .config import ConfigError
from .fleet import RUN_RESULTS
from .ledger_api import BadParameter, parse_query
from .ledger_api import answer as ledger_answer
from .metrics import CONTENT_TYPE
from .reloading import reload_config
from .report_schedule import metrics_text

MAX_PAGE = 500


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _run_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "started_at": _iso(row["started_at"]), "finished_at": _iso(row["finished_at"])}


def _bad_request(field: str, message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": f"{field}: {message}"}),
        content_type="application/json",
    )


def _int_param(
    request: web.Request, name: str, default: int | None, low: int, high: int
) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = parse_id(raw)
    if value is None or not low <= value <= high:
        raise _bad_request(name, f"expected an integer from {low} to {high}, got {raw!r}")
    return value


async def metrics(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    await service.refresh()
    headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
    reports = metrics_text(request.app[REPORTS].counters)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        chunks = service.cache.gzip_chunks(service.clock(), reports)
        headers["Content-Encoding"] = "gzip"
    else:
        chunks = service.cache.chunks(service.clock(), reports)
    # Written in pieces: joining them would copy the whole body on every scrape.
    response = web.StreamResponse(headers=headers)
    response.content_length = sum(len(c) for c in chunks)
    await response.prepare(request)
    for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[SERVICE].ready.is_set():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "waiting for the first collection"}, status=503)


async def list_runs(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 20, 1, MAX_PAGE)
    before = _int_param(request, "before", None, 1, 10**18)
    status = request.query.get("status")
    if status is not None and status not in RUN_RESULTS:
        raise _bad_request("status", f"expected one of {', '.join(RUN_RESULTS)}, got {status!r}")
    assert limit is not None
    rows = await request.app[SERVICE].runlog.runs(limit + 1, before, status)
    page, more = rows[:limit], len(rows) > limit
    next_url = None
    if more:
        query = {"limit": str(limit), "before": str(page[-1]["id"])}
        if status is not None:
            query["status"] = status
        next_url = str(request.rel_url.with_query(query))
    return web.json_response({"runs": [_run_json(r) for r in page], "next": next_url})


async def get_run(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    run_id = parse_id(raw)
    if run_id is None:
        raise _bad_request("id", f"expected a run id, got {raw!r}")
    run = await request.app[SERVICE].runlog.run(run_id)
    if run is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"run {raw} not found"}),
            content_type="application/json",
        )
    return web.json_response(_run_json(run))


async def ledger(request: web.Request) -> web.Response:
    """One device's hours of a range: up, down, maintenance, unobserved, outages."""
    service = request.app[SERVICE]
    try:
        query = parse_query(request.query, {v.id: v for v in service.config.vessels})
    except BadParameter as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}),
                                 content_type="application/json") from None
    body = await ledger_answer(service.runlog.db, service.ledger, query, service.clock())
    return web.Response(body=body, content_type="application/json")


async def reload(request: web.Request) -> web.Response:
    """Prometheus's convention: 200 once reloaded; 500 naming the fault, config unchanged."""
    try:
        await reload_config(request.app)
    except ConfigError as exc:
        return web.json_response({"error": f"failed to reload config: {exc}"}, status=500)
    return web.json_response({"status": "reloaded",
                              "vessels": len(request.app[SERVICE].config.vessels)})
