"""The approval page: server-rendered, autoescaped, post/redirect/get with CSRF tokens."""

import asyncio
import dataclasses
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from fleet_common.ids import parse_id

from . import csrf
from .actions import declare_no_ticket, require_decider, retry_ticket_work, take_decision
from .appkeys import CLOCK, CONFIG, CSRF_SECRET, DB
from .auth import current_user
from .config import ReceiverConfig, User
from .db import (
    Approval,
    DecisionKind,
    EventKind,
    Incident,
    IncidentState,
    PendingIncident,
    RejectedIncident,
)
from .errors import Conflict, Forbidden, Invalid, NotFound
from .incidents import facts, history
from .middleware import status_of
from .render import render_off_loop
from .timefmt import human_duration, iso


def csrf_token(request: web.Request, user: User) -> str:
    return csrf.issue(request.app[CSRF_SECRET], user.name, request.app[CLOCK]())


def _link(url: str | None) -> str | None:
    """Only http(s) links reach an href: a label could carry javascript:."""
    if url and url.startswith(("http://", "https://")):
        return url
    return None


# What approvers read instead of stored values and rule names.
APPROVAL_WORDS = {Approval.NONE: "informational, no ticket",
                  Approval.PENDING: "waiting for approval", Approval.APPROVED: "approved",
                  Approval.REJECTED: "rejected", Approval.UNKNOWN: "unknown"}
DECISION_WORDS = {DecisionKind.APPROVE: "approve", DecisionKind.REJECT: "reject",
                  DecisionKind.ASK_AGAIN: "ask again", DecisionKind.UNKNOWN: "unknown"}
ALERT_WORDS = {"FleetComponentDownPersistent": "down over 3 days",
               "FleetVesselUnreachablePersistent": "unreachable over 3 days",
               "FleetComponentSLABreach": "SLA breach",
               "FleetComponentSLAAtRisk": "SLA at risk",
               "FleetVesselUnreachable": "unreachable",
               "FleetVesselDataStale": "stale data",
               "FleetVesselClockSkew": "clock skew"}
# The opening event of older rows says this in the schema's words.
OPENED_WORDS = {f"approval {a}": f"approval: {w}" for a, w in APPROVAL_WORDS.items()}
# Where a decision may send the approver back to: this site's lists and incidents only.
_BACK = re.compile(r"/(#[a-z]+|incidents/[0-9]{1,18}|audit)?")


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
    console = config.links.get("console")
    known = facts(details, labels, incident.opened_at)
    firing = incident.state is IncidentState.FIRING
    shown = [f"Devices down: {known['devices_down']}" if firing and known["devices_down"]
             else "", f"24 h uptime {known['uptime_24h']}" if known["uptime_24h"] else ""]
    alertname = labels.get("alertname", "")
    return {
        "id": incident.id,
        "state": incident.state,
        "approval": incident.approval,
        "ticket_key": incident.ticket_key,
        "ticket_status": incident.ticket_status,
        **known,
        "vessel": vessel,
        "component": labels.get("component", ""),
        "alertname": alertname,
        "kind": ALERT_WORDS.get(alertname, alertname),
        "firing": firing,
        "approval_words": APPROVAL_WORDS[incident.approval],
        "facts": " · ".join(f for f in shown if f),  # no separator before an absent fact
        "summary": alerts[0]["summary"] if alerts else alertname,
        "since": iso(known["down_since"]),
        "downtime": human_duration(now - known["down_since"]),
        "lasted": human_duration(incident.duration_seconds or 0),
        "alerts": alerts,
        "grafana": _link(grafana.replace("{vessel}", vessel)) if grafana else None,
        # The exporter's fleet console, where the vessel's devices and runs are.
        "console": _link(f"{console.rstrip('/')}/vessels/{quote(vessel, safe='')}")
        if console and vessel else None,
    }


def _one_name(views: Iterable[dict[str, Any]]) -> None:
    """Call each vessel by the name any of its incidents gives it, with its id beside."""
    views = list(views)
    names = {v["vessel"]: v["vessel_name"] for v in views
             if v["vessel_name"] and v["vessel_name"] != v["vessel"]}
    for view in views:
        view["vessel_name"] = names.get(view["vessel"], view["vessel_name"] or view["vessel"])
        view["vessel_id"] = view["vessel"] if view["vessel_name"] != view["vessel"] else ""


def _rejected_view(found: RejectedIncident, now: float,
                   config: ReceiverConfig) -> dict[str, Any]:
    view = _view(found.incident, now, config)
    rejection = found.rejection
    view["snoozed"] = found.snoozed
    if rejection is None:
        view["decided"] = "rejected (no decision on record)"
    else:
        where = f" (incident #{rejection.incident_id})" if found.snoozed else ""
        why = f": {rejection.comment}" if rejection.comment else ""
        view["decided"] = f"rejected by {rejection.user} on {iso(rejection.at)}{where}{why}"
    return view


def _by_vessel(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for view in views:
        group = groups.setdefault(view["vessel"], {
            "vessel": view["vessel"], "name": view["vessel_name"], "id": view["vessel_id"],
            "incidents": []})
        group["incidents"].append(view)
    return sorted(groups.values(), key=lambda g: (str(g["name"]).lower(), g["vessel"]))


async def _render(request: web.Request, template: str, user: User, status: int = 200,
                  **context: Any) -> web.Response:
    return await render_off_loop(template, status, user=user,
                                 csrf=csrf_token(request, user), **context)


async def index(request: web.Request) -> web.Response:
    user = current_user(request)
    config, now = request.app[CONFIG], request.app[CLOCK]()
    async with request.app[DB].snapshot() as reader:
        found = _Listed(await reader.pending_with_history(), await reader.rejected_firing(),
                        await reader.informational_firing(), await reader.ticketed_open(),
                        await reader.recently_resolved())
    # Views grow with the fleet's incidents: built beside the loop, like the HTML.
    context = await asyncio.to_thread(_index_context, found, now, config)
    return await _render(request, "index.html", user, **context)


@dataclasses.dataclass(frozen=True, slots=True)
class _Listed:
    pending: list[PendingIncident]
    rejected: list[RejectedIncident]
    informational: list[Incident]
    ticketed: list[Incident]
    resolved: list[Incident]


def _index_context(found: _Listed, now: float, config: ReceiverConfig) -> dict[str, Any]:
    timeout = config.incidents.approval_timeout
    pending_views = []
    for waiting in found.pending:
        view = _view(waiting.incident, now, config)
        view["asked"] = human_duration(now - waiting.asked_at)
        view["overdue"] = now - waiting.asked_at > timeout
        view["history"] = waiting.earlier
        view["tickets"] = waiting.earlier_tickets
        pending_views.append(view)
    rejected_views = [_rejected_view(r, now, config) for r in found.rejected]
    info_views = [_view(r, now, config) for r in found.informational]
    ticketed_views = [_view(r, now, config) for r in found.ticketed]
    resolved_views = [_view(r, now, config) for r in found.resolved]
    _one_name(pending_views + rejected_views + info_views + ticketed_views + resolved_views)
    also: dict[str, int] = {}
    for view in info_views:
        also[view["vessel"]] = also.get(view["vessel"], 0) + 1
    for view in pending_views + rejected_views:
        view["also"] = also.get(view["vessel"], 0)
    return {"pending": pending_views, "rejected": rejected_views,
            "informational": _by_vessel(info_views), "informational_count": len(info_views),
            "ticketed": ticketed_views, "resolved": resolved_views}


async def _incident_page(request: web.Request, user: User, incident_id: int,
                         error: str | None = None, status: int = 200) -> web.Response:
    now = request.app[CLOCK]()
    found = await history(request.app[DB], incident_id)
    if found.incident is None:
        raise NotFound(f"incident {incident_id} not found")
    view = _view(found.incident, now, request.app[CONFIG])
    _one_name([view])
    events = found.events
    older = (f"/api/v1/incidents/{incident_id}?events_before={events[0].id}"
             if found.older else None)
    return await _render(request, "incident.html", user, status, i=view, work=found.work,
                   error=error, older_events=older,
                   events=[{"at": iso(e.at), "kind": e.kind,
                            "detail": OPENED_WORDS.get(e.detail, e.detail)
                            if e.kind is EventKind.OPENED else e.detail} for e in events])


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
    raise web.HTTPSeeOther(_back(form))  # post/redirect/get, to where the approver was


def _back(form: Any) -> str:
    """The list the form came from; anything else (another site, a typo) is the list."""
    back = form.get("back")
    return back if isinstance(back, str) and _BACK.fullmatch(back) else "/"


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


async def ask_again(request: web.Request) -> web.Response:
    return await _decide(request, DecisionKind.ASK_AGAIN)


async def no_ticket(request: web.Request) -> web.Response:
    """An approver found no ticket in JIRA for a create of unknown outcome."""
    user = current_user(request)
    incident_id = _page_id(request)
    form = await _checked_form(request, user)
    try:
        await declare_no_ticket(request.app, incident_id, user.name,
                                str(form.get("comment", "")))
    except (Invalid, Conflict) as exc:
        return await _incident_page(request, user, incident_id, error=str(exc),
                                    status=status_of(exc))
    raise web.HTTPSeeOther(f"/incidents/{incident_id}")


async def audit(request: web.Request) -> web.Response:
    user = current_user(request)
    async with request.app[DB].snapshot() as reader:
        found = await reader.decisions()
    return await _render(request, "audit.html", user,
                   decisions=[{**dataclasses.asdict(d), "at": iso(d.at),
                               "kind": DECISION_WORDS[d.kind]} for d in found])
