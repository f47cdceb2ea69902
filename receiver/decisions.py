"""Approvers' decisions: approve queues exactly one ticket, reject snoozes the key."""

from dataclasses import dataclass

import aiosqlite

from .store import rows


class DecisionError(Exception):
    """The decision cannot be taken; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Outcome:
    incident: int
    approval: str
    changed: bool  # False when the same decision had already been taken


async def decide(db: aiosqlite.Connection, incident_id: int, kind: str, user: str,
                 comment: str, now: float) -> Outcome:
    """Record an approve or reject; call inside one transaction."""
    found = await rows(db, "SELECT id, approval FROM incidents WHERE id = ?", incident_id)
    if not found:
        raise DecisionError(404, f"incident {incident_id} not found")
    approval = found[0]["approval"]
    wanted = "approved" if kind == "approve" else "rejected"
    if approval == wanted:
        return Outcome(incident_id, approval, changed=False)  # a double submit
    if approval != "pending":
        raise DecisionError(409, f"incident {incident_id} is not waiting for approval "
                                 f"(approval: {approval})")
    if kind == "reject" and not comment.strip():
        raise DecisionError(400, "comment: a reason is required to reject")
    await db.execute("UPDATE incidents SET approval = ? WHERE id = ?", (wanted, incident_id))
    await db.execute(
        "INSERT INTO decisions (incident_id, at, user, kind, comment) VALUES (?, ?, ?, ?, ?)",
        (incident_id, now, user, kind, comment),
    )
    await db.execute(
        "INSERT INTO incident_events (incident_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        (incident_id, now, wanted, f"by {user}" + (f": {comment}" if comment else "")),
    )
    if kind == "approve":
        # The unique index on (incident_id) for 'create' makes a second ticket impossible.
        await db.execute(
            "INSERT OR IGNORE INTO outbox (incident_id, kind, next_attempt_at, created_at)"
            " VALUES (?, 'create', ?, ?)",
            (incident_id, now, now),
        )
    return Outcome(incident_id, wanted, changed=True)
