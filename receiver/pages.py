"""The approval page: server-rendered, autoescaped, post/redirect/get with CSRF tokens."""

import dataclasses
from typing import Any

from aiohttp import web

from fleet_common.ids import parse_id

from . import csrf
from .actions import require_decider, retry_ticket_work, take_decision
from .appkeys import CLOCK, CONFIG, CSRF_SECRET, DB
from .auth import current_user
from .config import ReceiverConfig, User
from .db import DecisionKind, Incident
from .errors import Conflict, Forbidden, Invalid, NotFound
from .incidents import facts, history
from .middleware import status_of
from .render import render
from .timefmt import human_duration, iso


def csrf_token(request: web.Request, user: User) -> str:
    return csrf.issue(request.app[CSRF_SECRET], user.name, request.app[CLOCK]())


def _link(url: str | None) -> str | None:
    """Only http(s) links reach an href: a label could carry javascript:."""
    if url and url.startswith(("http://", "https://")):
        return url
    return None


def _view(incident: Incident, now: float, config: ReceiverConfig) -> dict[str, Any]:
    labels, details = incident.labels, incident.details
    vessel = labels.get("vessel", "")
    alerts = []
    for alert in details.values():
        alert_labels = alert["labels"]
        device = alert_labels.get("device")
        alerts.append({
            "summary": alert["annotations"].get("summary") or alert_labels.get("alertname", ""),
            "devices": f"{device} ({alert_labels.get('address', '')})" if device else "",
            "generator_url": _link(alert.get("generator_url")),
        })
    grafana = config.links.get("grafana")
    known = facts(details, labels, incident.opened_at)
    return {
        "id": incident.id,
        "state": incident.state,
        "approval": incident.approval,
        "ticket_key": incident.ticket_key,
        "ticket_status": incident.ticket_status,
        **known,
        "vessel": vessel,
        "component": labels.get("component", ""),
        "alertname": labels.get("alertname", ""),
        "since": iso(known["down_since"]),
        "downtime": human_duration(now - known["down_since"]),
        "lasted": human_duration(incident.duration_seconds or 0),
        "alerts": alerts,
        "grafana": _link(grafana.replace("{vessel}", vessel)) if grafana else None,
    }


def _render(request: web.Request, template: str, user: User, status: int = 200,
            **context: Any) -> web.Response:
    return render(template, status, user=user, csrf=csrf_token(request, user), **context)


async def index(request: web.Request) -> web.Response:
    user = current_user(request)
    config, now = request.app[CONFIG], request.app[CLOCK]()
    async with request.app[DB].snapshot() as reader:
        pending = await reader.pending_with_history()
        ticketed = await reader.ticketed_open()
        resolved = await reader.recently_resolved()
    timeout = config.incidents.approval_timeout
    pending_views = []
    for waiting in pending:
        view = _view(waiting.incident, now, config)
        view["asked"] = human_duration(now - waiting.asked_at)
        view["overdue"] = now - waiting.asked_at > timeout
        view["history"] = waiting.earlier
        view["tickets"] = waiting.earlier_tickets
        pending_views.append(view)
    return _render(request, "index.html", user, pending=pending_views,
                   ticketed=[_view(r, now, config) for r in ticketed],
                   resolved=[_view(r, now, config) for r in resolved])


async def _incident_page(request: web.Request, user: User, incident_id: int,
                         error: str | None = None, status: int = 200) -> web.Response:
    now = request.app[CLOCK]()
    incident, events, work = await history(request.app[DB], incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return _render(request, "incident.html", user, status,
                   i=_view(incident, now, request.app[CONFIG]), work=work, error=error,
                   events=[{"at": iso(e.at), "kind": e.kind, "detail": e.detail}
                           for e in events])


def _page_id(request: web.Request) -> int:
    incident_id = parse_id(request.match_info["id"])
    if incident_id is None:
        raise NotFound("no such incident")
    return incident_id


async def incident(request: web.Request) -> web.Response:
    return await _incident_page(request, current_user(request), _page_id(request))


async def _checked_form(request: web.Request, user: User) -> Any:
    """The posted form, once its CSRF token and the user's right to act are checked."""
    form = await request.post()
    verdict = csrf.check(request.app[CSRF_SECRET], user.name, str(form.get("csrf", "")),
                         request.app[CLOCK]())
    if verdict is not csrf.Verdict.OK:
        raise Forbidden(csrf.MESSAGES[verdict].format(user=user.name))
    require_decider(user)
    return form


async def _decide(request: web.Request, kind: DecisionKind) -> web.Response:
    user = current_user(request)
    incident_id = _page_id(request)
    form = await _checked_form(request, user)
    try:
        await take_decision(request.app, incident_id, kind, user.name,
                            str(form.get("comment", "")))
    except (Invalid, Conflict) as exc:  # said on the page itself, above its forms
        return await _incident_page(request, user, incident_id, error=str(exc),
                                    status=status_of(exc))
    raise web.HTTPSeeOther(f"/incidents/{incident_id}")  # post/redirect/get


async def retry(request: web.Request) -> web.Response:
    user = current_user(request)
    incident_id = _page_id(request)
    await _checked_form(request, user)
    await retry_ticket_work(request.app, incident_id, user.name)
    raise web.HTTPSeeOther(f"/incidents/{incident_id}")


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, DecisionKind.APPROVE)


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, DecisionKind.REJECT)


async def audit(request: web.Request) -> web.Response:
    user = current_user(request)
    async with request.app[DB].snapshot() as reader:
        found = await reader.decisions()
    return _render(request, "audit.html", user,
                   decisions=[{**dataclasses.asdict(d), "at": iso(d.at)} for d in found])
