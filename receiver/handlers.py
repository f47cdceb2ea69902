"""JSON handlers: the Alertmanager webhook, the incidents API, and health.

Errors are raised; the error middleware answers them.
"""

import asyncio
import dataclasses
import json
import logging
from typing import Any

from aiohttp import web

from fleet_common.ids import parse_id

from .actions import declare_no_ticket, require_decider, retry_ticket_work, take_decision
from .appkeys import BODY_TIMEOUT, DB, INGEST, METRICS, WORKER
from .auth import check_bearer, current_user
from .db import DecisionKind, Incident, IncidentRows, IncidentState
from .errors import Invalid, NotFound, Unavailable
from .incidents import ChangeKind, history
from .middleware import status_of
from .payload import PayloadError, load_json, parse_notification

log = logging.getLogger(__name__)
STATES = ("firing", "resolved", "pending")


async def receive_alerts(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        response = await _receive(request)
    except Exception as exc:
        metrics.webhook_requests.labels(str(status_of(exc))).inc()
        raise
    metrics.webhook_requests.labels(str(response.status)).inc()
    return response


async def _receive(request: web.Request) -> web.Response:
    check_bearer(request)
    body = await read_text(request)  # over the app's client_max_size: 413
    try:
        notification = parse_notification(load_json(body))
    except PayloadError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None  # it names the field
    try:
        changes = await request.app[INGEST].submit(notification, body)
    except Unavailable:
        # Not stored: a 5xx makes Alertmanager send it again.
        raise Unavailable("could not store the notification") from None
    except Exception:
        raise web.HTTPInternalServerError(text="could not store the notification") from None
    metrics = request.app[METRICS]
    for alert in notification.alerts:
        metrics.alerts_received.labels(alert.status).inc()
    if any(c.kind in (ChangeKind.RESOLVED, ChangeKind.REOPENED) for c in changes):
        request.app[WORKER].wake()  # a ticket may need a comment or a transition
    for change in changes:
        if change.kind is not ChangeKind.UPDATED:
            log.info("incident %d %s", change.incident, change.kind,
                     extra={"incident": change.incident})
    return web.json_response({"status": "stored",
                              "incidents": sorted({c.incident for c in changes if c.incident})})


async def read_text(request: web.Request) -> str:
    """The body as text, read within the app's body timeout (a slow sender is cut off)."""
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="body: not received in time",
                                     headers={"Connection": "close"}) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("body", "not UTF-8") from None


def _incident_json(incident: Incident) -> dict[str, Any]:
    return dataclasses.asdict(incident)


def encode(document: Any) -> str:
    return json.dumps(document)


def _listing(found: IncidentRows) -> str:
    """Up to 500 incidents with all their alerts: CPU work, done beside the loop."""
    return encode({"incidents": [_incident_json(r) for r in found.build()]})


async def list_incidents(request: web.Request) -> web.Response:
    current_user(request)
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise Invalid("state", f"expected one of {', '.join(STATES)}")
    async with request.app[DB].snapshot() as reader:
        if state == "pending":
            found = await reader.incident_rows(pending_only=True)
        else:
            found = await reader.incident_rows(IncidentState(state) if state else None)
    text = await asyncio.to_thread(_listing, found)
    return web.Response(text=text, content_type="application/json")


async def get_incident(request: web.Request) -> web.Response:
    current_user(request)
    incident_id = _incident_id(request)
    before = None
    if "events_before" in request.query:
        before = parse_id(request.query["events_before"])
        if before is None or before < 1:
            raise Invalid("events_before", "expected an event id, from events_next")
    found = await history(request.app[DB], incident_id, before)
    if found.incident is None:
        raise NotFound(f"incident {incident_id} not found")
    events = found.events
    return web.json_response({
        **_incident_json(found.incident),
        "events": [{"id": e.id, "at": e.at, "kind": e.kind, "detail": e.detail}
                   for e in events],
        # The next page, older events; None when these are the oldest.
        "events_next": f"/api/v1/incidents/{incident_id}?events_before={events[0].id}"
                       if found.older else None,
        "ticket_work": [{"kind": w.kind, "state": w.state, "attempts": w.attempts,
                         "next_attempt_at": w.next_attempt_at, "attempt": w.attempt,
                         "last_error": w.last_error} for w in found.work]})


def _incident_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    incident_id = parse_id(raw)
    if incident_id is None:
        raise Invalid("id", f"expected an incident id, got {raw!r}")
    return incident_id


def _require_json(request: web.Request) -> None:
    """A browser sends application/json cross-site only after a CORS preflight, which we
    never grant; so a page elsewhere cannot make a signed-in approver's browser decide."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="Content-Type: expected application/json")


async def _comment(request: web.Request) -> str:
    _require_json(request)
    try:
        document = load_json(await read_text(request))
    except PayloadError as exc:  # it names the field, e.g. "comment: integer too long"
        field, _, message = str(exc).partition(": ")
        raise Invalid(field, message) from None
    if not isinstance(document, dict) or not isinstance(document.get("comment", ""), str):
        raise Invalid("comment", "expected a string")
    comment: str = document.get("comment", "")
    return comment


async def _decide(request: web.Request, kind: DecisionKind) -> web.Response:
    user = current_user(request)
    require_decider(user)
    comment = await _comment(request)
    outcome = await take_decision(request.app, _incident_id(request), kind, user.name,
                                  comment)
    return web.json_response({"incident": outcome.incident, "approval": outcome.approval,
                              "changed": outcome.changed})


async def retry(request: web.Request) -> web.Response:
    user = current_user(request)
    require_decider(user, "retry")
    _require_json(request)
    retried = await retry_ticket_work(request.app, _incident_id(request), user.name)
    return web.json_response({"retried": retried})


async def no_ticket(request: web.Request) -> web.Response:
    """An approver says a create of unknown outcome made no ticket: audited, one new try."""
    user = current_user(request)
    require_decider(user, "declare that no ticket was made")
    incident = _incident_id(request)
    await declare_no_ticket(request.app, incident, user.name, await _comment(request))
    return web.json_response({"incident": incident})


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, DecisionKind.APPROVE)


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, DecisionKind.REJECT)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if DB in request.app:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "starting"}, status=503)
