"""Turn notifications into incidents: one per dedupe key, however often Alertmanager sends.

A firing alert opens an incident, or updates the open one; a resolved alert resolves it;
firing again within the reopen window reopens the same incident without a new approval;
a key rejected within the snooze window is not put to an approver again.
"""

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .config import IncidentPolicy
from .db import (
    Approval,
    Database,
    Event,
    EventKind,
    Incident,
    IncidentState,
    Work,
    WorkKind,
    Writer,
)
from .payload import Alert, Notification
from .timefmt import human_duration, iso

_SAFE_FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]+$")  # usable inside a JSON path as is


def dedupe_key(labels: Mapping[str, str], policy: IncidentPolicy) -> str:
    return ",".join(f"{name}={labels.get(name, '')}" for name in policy.dedupe_labels)


class ChangeKind(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    UPDATED = "updated"
    RESOLVED = "resolved"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Change:
    incident: int
    kind: ChangeKind


def _details(previous: dict[str, Any] | None, alert: Alert) -> dict[str, Any]:
    """The newest labels and annotations of each alert of the incident, by fingerprint."""
    details = dict(previous) if previous else {}
    details[alert.fingerprint] = _entry(alert)
    return details


def _entry(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at,
        "generator_url": alert.generator_url,
        "status": alert.status,
    }


async def _firing(tx: Writer, alert: Alert, key: str, now: float,
                  policy: IncidentPolicy) -> Change:
    if _SAFE_FINGERPRINT.match(alert.fingerprint):
        # Most notifications repeat an open incident: one statement updates it in place.
        updated = await tx.update_alert(key, alert.fingerprint, _entry(alert), now)
        if updated is not None:
            return Change(updated, ChangeKind.UPDATED)
    latest = await tx.latest_incident(key)
    if latest is not None and latest.state is IncidentState.FIRING:
        await tx.seen(latest.id, now, _details(latest.details, alert))
        return Change(latest.id, ChangeKind.UPDATED)
    if (latest is not None and latest.resolved_at is not None
            and now - latest.resolved_at <= policy.reopen_window):
        await tx.reopen(latest.id, now, _details(latest.details, alert))
        await tx.append_event(latest.id, now, EventKind.REOPENED)
        if latest.approval is Approval.APPROVED:
            await tx.enqueue(latest.id, WorkKind.REOPEN, now,
                             f"Firing again at {iso(now)}: reopened by fleet-sla.")
        return Change(latest.id, ChangeKind.REOPENED)

    approval = Approval.PENDING if policy.needs_approval(alert.labels) else Approval.NONE
    snoozed = approval is Approval.PENDING and await tx.rejected_since(
        key, now - policy.reject_snooze)
    if snoozed:
        approval = Approval.REJECTED
    labels = {name: alert.labels.get(name, "") for name in policy.dedupe_labels}
    incident = await tx.add_incident(key, labels, approval, alert.starts_at, now,
                                     _details(None, alert),
                                     now if approval is Approval.PENDING else None)
    await tx.append_event(incident, now, EventKind.OPENED,
                          "approval snoozed by an earlier rejection"
                          if snoozed else f"approval {approval}")
    return Change(incident, ChangeKind.OPENED)


async def _resolved(tx: Writer, alert: Alert, key: str, now: float) -> Change:
    incident = await tx.firing_incident(key)
    if incident is None:
        # already resolved, or never seen: nothing to change
        return Change(0, ChangeKind.IGNORED)
    ended = alert.ends_at if alert.ends_at is not None else now
    await tx.resolve(incident.id, ended, max(0.0, ended - incident.opened_at), now,
                     _details(incident.details, alert))
    lasted = human_duration(ended - incident.opened_at)
    await tx.append_event(incident.id, now, EventKind.RESOLVED, f"after {lasted}")
    if incident.approval is Approval.APPROVED:
        await tx.enqueue(incident.id, WorkKind.RESOLVE, now,
                         f"Recovered at {iso(ended)} after {lasted}.")
    return Change(incident.id, ChangeKind.RESOLVED)


async def apply(tx: Writer, notification: Notification, body: str, now: float,
                policy: IncidentPolicy) -> list[Change]:
    """Record a notification and its incident changes; call inside one transaction."""
    await tx.add_notification(now, notification.group_key, notification.status,
                              len(notification.alerts), body)
    changes = []
    for alert in notification.alerts:
        key = dedupe_key(alert.labels, policy)
        if alert.status == "firing":
            changes.append(await _firing(tx, alert, key, now, policy))
        else:
            changes.append(await _resolved(tx, alert, key, now))
    return changes


def facts(details: Mapping[str, Any], labels: Mapping[str, str], opened_at: float
          ) -> dict[str, Any]:
    """What the alerts say: vessel name, 24 h uptime, devices down, and since when.

    The alert starts when the rule fires; a component down for 4 days says when it went
    down in its down_since annotation, which is the time people need.
    """
    found: dict[str, Any] = {"vessel_name": labels.get("vessel", ""), "uptime_24h": "",
                             "devices_down": "", "down_since": opened_at}
    for alert in details.values():
        annotations = alert["annotations"]
        for key in ("vessel_name", "uptime_24h", "devices_down"):
            if annotations.get(key):
                found[key] = annotations[key]
        with contextlib.suppress(KeyError, ValueError):
            found["down_since"] = min(found["down_since"], float(annotations["down_since"]))
        device = alert["labels"].get("device")
        if device and not found["devices_down"]:
            found["devices_down"] = f"{device} ({alert['labels'].get('address', '')})"
    return found


async def history(db: Database, incident_id: int
                  ) -> tuple[Incident | None, list[Event], list[Work]]:
    """An incident, its events and its ticket work, read as one state."""
    async with db.snapshot() as reader:
        incident = await reader.incident(incident_id)
        events = await reader.events(incident_id)
        work = await reader.work(incident_id)
    return incident, events, work
