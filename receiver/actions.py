"""What approvers do, shared by the JSON API and the approval page; raises domain errors."""

import logging

from aiohttp import web

from . import decisions
from .appkeys import CLOCK, DB, METRICS, WORKER
from .config import User
from .db import DecisionKind, EventKind
from .errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)


def require_decider(user: User, action: str = "decide") -> None:
    if not user.can_decide:
        raise Forbidden(f"{user.name} is a {user.role} and cannot {action}")


async def take_decision(app: web.Application, incident: int, kind: DecisionKind, user: str,
                        comment: str) -> decisions.Outcome:
    """Approve, reject or ask again; raises NotFound, Conflict or Invalid."""
    async with app[DB].transaction() as tx:
        if kind is DecisionKind.ASK_AGAIN:
            outcome = await decisions.ask_again(tx, incident, user, comment, app[CLOCK]())
        else:
            outcome = await decisions.decide(tx, incident, kind, user, comment, app[CLOCK]())
    if outcome.changed:
        app[METRICS].decisions.labels(kind).inc()
        app[WORKER].wake()
        log.info("incident %d %s by %s", incident, outcome.approval, user,
                 extra={"incident": incident})
    return outcome


async def retry_ticket_work(app: web.Application, incident: int, user: str) -> int:
    """Put an incident's failed ticket work back in the queue: how many pieces."""
    now = app[CLOCK]()
    async with app[DB].transaction() as tx:
        retried = await tx.retry_failed_work(incident, now)
        if retried:
            await tx.append_event(incident, now, EventKind.TICKET_RETRY, f"by {user}")
    if retried:
        app[WORKER].wake()
        log.info("incident %d: %s retries ticket work", incident, user,
                 extra={"incident": incident})
    return retried


async def declare_no_ticket(app: web.Application, incident: int, user: str,
                            comment: str) -> None:
    """An approver found no ticket for a create of unknown outcome: let one new create go.

    The receiver never concludes this itself: JIRA's search lags, so not finding the
    ticket proves nothing. Raises NotFound, Conflict (no such create) or Invalid.
    """
    if not comment.strip():
        raise Invalid("comment", "say how you found that JIRA has no ticket")
    now = app[CLOCK]()
    async with app[DB].transaction() as tx:
        if await tx.incident(incident) is None:
            raise NotFound(f"incident {incident} not found")
        if not await tx.declare_no_ticket(incident, now):
            raise Conflict(f"incident {incident} has no ticket creation of unknown outcome")
        await tx.append_event(incident, now, EventKind.TICKET_NONE_MADE, f"by {user}: {comment}")
    app[WORKER].wake()
    log.warning("incident %d: %s says no ticket was made; one new create may go ahead",
                incident, user, extra={"incident": incident})
