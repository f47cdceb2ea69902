"""HTTP handlers: the Alertmanager webhook, the incidents API, metrics and health."""

import json
import logging
import sqlite3
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import incidents
from .appkeys import CLOCK, CONFIG, METRICS, STORE
from .auth import check_bearer, current_user
from .payload import PayloadError, parse_notification
from .store import rows

log = logging.getLogger(__name__)
STATES = ("firing", "resolved", "pending")


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


async def receive_alerts(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        response = await _receive(request)
    except web.HTTPException as exc:
        metrics.webhook_requests.labels(str(exc.status)).inc()
        raise
    metrics.webhook_requests.labels(str(response.status)).inc()
    return response


async def _receive(request: web.Request) -> web.Response:
    check_bearer(request)
    body = await request.text()  # over the app's client_max_size: 413, before this line
    try:
        notification = parse_notification(json.loads(body))
    except json.JSONDecodeError as exc:
        raise _error(web.HTTPBadRequest, f"body: invalid JSON ({exc.msg})") from None
    except PayloadError as exc:
        raise _error(web.HTTPBadRequest, str(exc)) from None
    store, config = request.app[STORE], request.app[CONFIG]
    now = request.app[CLOCK]()
    try:
        async with store.transaction() as db:
            changes = await incidents.apply(db, notification, body, now, config.incidents)
            counts = await rows(db, "SELECT state, count(*) AS n FROM incidents GROUP BY state")
            pending = await rows(db, "SELECT count(*) AS n FROM incidents"
                                     " WHERE state = 'firing' AND approval = 'pending'")
    except sqlite3.Error:
        # Not stored: a 5xx makes Alertmanager send it again.
        log.exception("cannot store notification %s", notification.group_key)
        raise _error(web.HTTPServiceUnavailable, "could not store the notification") from None
    metrics = request.app[METRICS]
    metrics.set_counts({r["state"]: r["n"] for r in counts}, pending[0]["n"])
    for alert in notification.alerts:
        metrics.alerts_received.labels(alert.status).inc()
    for change in changes:
        if change.kind != "updated":
            log.info("incident %d %s", change.incident, change.kind,
                     extra={"incident": change.incident})
    return web.json_response({"status": "stored",
                              "incidents": sorted({c.incident for c in changes if c.incident})})


def _incident_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "labels": json.loads(row["labels"]), "details": json.loads(row["details"])}


async def list_incidents(request: web.Request) -> web.Response:
    current_user(request)
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise _error(web.HTTPBadRequest, f"state: expected one of {', '.join(STATES)}")
    where, args = "", ()
    if state == "pending":
        where = "WHERE state = 'firing' AND approval = 'pending'"
    elif state is not None:
        where, args = "WHERE state = ?", (state,)
    found = await request.app[STORE].fetch_all(
        f"SELECT * FROM incidents {where} ORDER BY id DESC LIMIT 500", *args)
    return web.json_response({"incidents": [_incident_json(r) for r in found]})


async def get_incident(request: web.Request) -> web.Response:
    current_user(request)
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise _error(web.HTTPBadRequest, f"id: expected an incident id, got {raw!r}")
    store = request.app[STORE]
    incident = await store.fetch_one("SELECT * FROM incidents WHERE id = ?", int(raw))
    if incident is None:
        raise _error(web.HTTPNotFound, f"incident {raw} not found")
    events = await store.fetch_all(
        "SELECT at, kind, detail FROM incident_events WHERE incident_id = ? ORDER BY id",
        int(raw))
    return web.json_response({**_incident_json(incident), "events": events})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if STORE in request.app:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "starting"}, status=503)
