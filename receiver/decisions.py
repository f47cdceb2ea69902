"""Approvers' decisions: approve queues exactly one ticket, reject snoozes the key,
ask-again undoes a rejection or a snooze."""

from dataclasses import dataclass

from .db import Approval, DecisionKind, EventKind, IncidentState, WorkKind, Writer
from .errors import Conflict, Invalid, NotFound
from .timefmt import iso

_OUTCOME = {DecisionKind.APPROVE: Approval.APPROVED, DecisionKind.REJECT: Approval.REJECTED}


@dataclass(frozen=True, slots=True)
class Outcome:
    incident: int
    approval: Approval
    changed: bool  # False when the same decision had already been taken


async def decide(tx: Writer, incident_id: int, kind: DecisionKind, user: str,
                 comment: str, now: float) -> Outcome:
    """Record an approve or reject; call inside one transaction.

    Raises NotFound, Conflict (resolved, or not waiting for approval) or Invalid (no
    reason to reject).
    """
    incident = await tx.incident(incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    wanted = _OUTCOME[kind]
    if incident.approval is wanted:
        return Outcome(incident_id, wanted, changed=False)  # a double submit
    if incident.state is IncidentState.RESOLVED:
        # A ticket now would be for a problem that is over, and nothing would resolve it.
        ended = incident.resolved_at if incident.resolved_at is not None else incident.last_seen
        raise Conflict(f"incident {incident_id} resolved at {iso(ended)}: a resolved "
                       "incident asks nothing of approvers (it asks again if it fires again)")
    if incident.approval is not Approval.PENDING:
        raise Conflict(f"incident {incident_id} is not waiting for approval "
                       f"(approval: {incident.approval})")
    if kind is DecisionKind.REJECT and not comment.strip():
        raise Invalid("comment", "a reason is required to reject")
    await tx.set_approval(incident_id, wanted)
    await tx.add_decision(incident_id, now, user, kind, comment)
    await tx.append_event(incident_id, now, EventKind(wanted),
                          f"by {user}" + (f": {comment}" if comment else ""))
    if kind is DecisionKind.APPROVE:
        await tx.enqueue(incident_id, WorkKind.CREATE, now)
    return Outcome(incident_id, wanted, changed=True)


async def ask_again(tx: Writer, incident_id: int, user: str, comment: str,
                    now: float) -> Outcome:
    """Put a rejected (or snoozed) firing incident back to approvers; lifts the snooze.

    Raises NotFound, or Conflict when it is resolved or was never rejected.
    """
    incident = await tx.incident(incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    if incident.state is not IncidentState.FIRING:
        raise Conflict(f"incident {incident_id} is resolved: there is nothing to ask again")
    if incident.approval is Approval.PENDING:
        return Outcome(incident_id, Approval.PENDING, changed=False)  # a double submit
    if incident.approval is not Approval.REJECTED:
        raise Conflict(f"incident {incident_id} was not rejected "
                       f"(approval: {incident.approval})")
    await tx.ask_again(incident_id, now)
    await tx.add_decision(incident_id, now, user, DecisionKind.ASK_AGAIN, comment)
    await tx.append_event(incident_id, now, EventKind.ASKED_AGAIN,
                          f"by {user}" + (f": {comment}" if comment else ""))
    return Outcome(incident_id, Approval.PENDING, changed=True)
