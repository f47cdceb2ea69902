"""The approval page: server-rendered, autoescaped, post/redirect/get with CSRF tokens."""

import json
from typing import Any

import jinja2
from aiohttp import web

from fleet_common.ids import parse_id

from . import csrf
from .appkeys import CLOCK, CONFIG, CSRF_SECRET, STORE
from .auth import current_user
from .config import ReceiverConfig, User
from .handlers import retry_ticket_work, take_decision
from .incidents import facts, history
from .store import rows
from .timefmt import human_duration, iso

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("receiver", "templates"),
    autoescape=True,  # alert labels come from anywhere: never trust them as HTML
)


def csrf_token(request: web.Request, user: User) -> str:
    return csrf.issue(request.app[CSRF_SECRET], user.name, request.app[CLOCK]())


def _link(url: str | None) -> str | None:
    """Only http(s) links reach an href: a label could carry javascript:."""
    if url and url.startswith(("http://", "https://")):
        return url
    return None


def _view(row: dict[str, Any], now: float, config: ReceiverConfig) -> dict[str, Any]:
    labels = json.loads(row["labels"])
    details = json.loads(row["details"])
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
    known = facts(details, labels, row["opened_at"])
    return {
        **row,
        **known,
        "vessel": vessel,
        "component": labels.get("component", ""),
        "alertname": labels.get("alertname", ""),
        "since": iso(known["down_since"]),
        "downtime": human_duration(now - known["down_since"]),
        "lasted": human_duration(row["duration_seconds"] or 0),
        "alerts": alerts,
        "grafana": _link(grafana.replace("{vessel}", vessel)) if grafana else None,
    }


def _render(request: web.Request, template: str, user: User, **context: Any) -> web.Response:
    html = TEMPLATES.get_template(template).render(
        user=user, csrf=csrf_token(request, user), **context)
    return web.Response(text=html, content_type="text/html")


async def index(request: web.Request) -> web.Response:
    user = current_user(request)
    config, now = request.app[CONFIG], request.app[CLOCK]()
    async with request.app[STORE].snapshot() as db:
        pending = await rows(
            db, "SELECT i.*, (SELECT min(at) FROM incident_events e WHERE e.incident_id = i.id"
                " AND e.kind IN ('opened', 'reopened')) AS asked_at,"
                " (SELECT count(*) FROM incidents o WHERE o.labels = i.labels AND o.id < i.id)"
                " AS history,"
                " (SELECT count(*) FROM incidents o WHERE o.labels = i.labels AND o.id < i.id"
                " AND o.ticket_key IS NOT NULL) AS tickets"
                " FROM incidents i WHERE state = 'firing' AND approval = 'pending'"
                " ORDER BY i.id")
        ticketed = await rows(db, "SELECT * FROM incidents WHERE state = 'firing'"
                                  " AND ticket_key IS NOT NULL ORDER BY id DESC LIMIT 100")
        resolved = await rows(db, "SELECT * FROM incidents WHERE state = 'resolved'"
                                  " ORDER BY resolved_at DESC LIMIT 20")
    timeout = config.incidents.approval_timeout
    pending_views = []
    for row in pending:
        view = _view(row, now, config)
        view["asked"] = human_duration(now - row["asked_at"])
        view["overdue"] = now - row["asked_at"] > timeout
        pending_views.append(view)
    return _render(request, "index.html", user, pending=pending_views,
                   ticketed=[_view(r, now, config) for r in ticketed],
                   resolved=[_view(r, now, config) for r in resolved])


async def _incident_page(request: web.Request, user: User, incident_id: int,
                         error: str | None = None, status: int = 200) -> web.Response:
    now = request.app[CLOCK]()
    incident, events, work = await history(request.app[STORE], incident_id)
    if incident is None:
        raise web.HTTPNotFound(text=f"incident {incident_id} not found")
    response = _render(request, "incident.html", user,
                       i=_view(incident, now, request.app[CONFIG]), work=work, error=error,
                       events=[{**e, "at": iso(e["at"])} for e in events])
    response.set_status(status)
    return response


def _page_id(request: web.Request) -> int:
    incident_id = parse_id(request.match_info["id"])
    if incident_id is None:
        raise web.HTTPNotFound(text="no such incident")
    return incident_id


async def incident(request: web.Request) -> web.Response:
    return await _incident_page(request, current_user(request), _page_id(request))


async def _checked_form(request: web.Request, user: User) -> Any:
    """The posted form, once its CSRF token and the user's right to act are checked."""
    form = await request.post()
    verdict = csrf.check(request.app[CSRF_SECRET], user.name, str(form.get("csrf", "")),
                         request.app[CLOCK]())
    if verdict is not csrf.Verdict.OK:
        raise web.HTTPForbidden(text=csrf.MESSAGES[verdict].format(user=user.name))
    if not user.can_decide:
        raise web.HTTPForbidden(text=f"{user.name} is a {user.role} and cannot decide")
    return form


async def _decide(request: web.Request, kind: str) -> web.Response:
    user = current_user(request)
    incident_id = _page_id(request)
    form = await _checked_form(request, user)
    try:
        await take_decision(request.app, incident_id, kind, user.name,
                            str(form.get("comment", "")))
    except web.HTTPException as exc:
        if exc.status == 404:
            raise
        message = json.loads(exc.text or "{}").get("error", exc.reason)
        return await _incident_page(request, user, incident_id, error=message,
                                    status=exc.status)
    raise web.HTTPSeeOther(f"/incidents/{incident_id}")  # post/redirect/get


async def retry(request: web.Request) -> web.Response:
    user = current_user(request)
    incident_id = _page_id(request)
    await _checked_form(request, user)
    await retry_ticket_work(request.app, incident_id, user.name)
    raise web.HTTPSeeOther(f"/incidents/{incident_id}")


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, "approve")


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, "reject")


async def audit(request: web.Request) -> web.Response:
    user = current_user(request)
    found = await request.app[STORE].fetch_all(
        "SELECT * FROM decisions ORDER BY id DESC LIMIT 500")
    return _render(request, "audit.html", user,
                   decisions=[{**d, "at": iso(d["at"])} for d in found])
