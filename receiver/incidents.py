"""Turn notifications into incidents: one per dedupe key, however often Alertmanager sends.

A firing alert opens an incident, or updates the open one; a resolved alert resolves it;
firing again within the reopen window reopens the same incident without a new approval;
a key rejected within the snooze window is not put to an approver again.
"""

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from .config import IncidentPolicy
from .payload import Alert, Notification
from .store import Store, dumps, rows
from .timefmt import human_duration, iso

_SAFE_FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]+$")  # usable inside a JSON path as is


def dedupe_key(labels: Mapping[str, str], policy: IncidentPolicy) -> str:
    return ",".join(f"{name}={labels.get(name, '')}" for name in policy.dedupe_labels)


@dataclass(frozen=True, slots=True)
class Change:
    incident: int
    kind: str  # opened, reopened, updated, resolved, ignored


async def _event(db: aiosqlite.Connection, incident: int, at: float, kind: str,
                 detail: str = "") -> None:
    await db.execute(
        "INSERT INTO incident_events (incident_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        (incident, at, kind, detail),
    )


async def _enqueue(db: aiosqlite.Connection, incident: int, kind: str, now: float,
                   body: str) -> None:
    await db.execute(
        "INSERT INTO outbox (incident_id, kind, body, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, ?, ?)", (incident, kind, body, now, now))


def _details(previous: str | None, alert: Alert) -> str:
    """The newest labels and annotations of each alert of the incident, by fingerprint."""
    details = json.loads(previous) if previous else {}
    details[alert.fingerprint] = _entry(alert)
    return dumps(details)


def _entry(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at,
        "generator_url": alert.generator_url,
        "status": alert.status,
    }


async def _firing(db: aiosqlite.Connection, alert: Alert, key: str, now: float,
                  policy: IncidentPolicy) -> Change:
    if _SAFE_FINGERPRINT.match(alert.fingerprint):
        # Most notifications repeat an open incident: one statement updates it in place.
        # list(): aiosqlite declares an Iterable; it is fetchall()'s list.
        updated = list(await db.execute_fetchall(  # one round trip to the database thread
            "UPDATE incidents SET last_seen = ?, notifications = notifications + 1,"
            " details = json_set(details, ?, json(?))"
            " WHERE dedupe_key = ? AND state = 'firing' RETURNING id",
            (now, f'$."{alert.fingerprint}"', dumps(_entry(alert)), key),
        ))
        if updated:
            return Change(updated[0][0], "updated")
    found = await rows(db, "SELECT * FROM incidents WHERE dedupe_key = ? ORDER BY id DESC"
                           " LIMIT 1", key)
    latest = found[0] if found else None
    if latest is not None and latest["state"] == "firing":
        await db.execute(
            "UPDATE incidents SET last_seen = ?, notifications = notifications + 1,"
            " details = ? WHERE id = ?",
            (now, _details(latest["details"], alert), latest["id"]),
        )
        return Change(latest["id"], "updated")
    if latest is not None and now - latest["resolved_at"] <= policy.reopen_window:
        await db.execute(
            "UPDATE incidents SET state = 'firing', resolved_at = NULL, duration_seconds = NULL,"
            " last_seen = ?, notifications = notifications + 1, details = ? WHERE id = ?",
            (now, _details(latest["details"], alert), latest["id"]),
        )
        await _event(db, latest["id"], now, "reopened")
        if latest["approval"] == "approved":
            await _enqueue(db, latest["id"], "reopen", now,
                           f"Firing again at {iso(now)}: reopened by fleet-sla.")
        return Change(latest["id"], "reopened")

    approval = "pending" if policy.needs_approval(alert.labels) else "none"
    snoozed = approval == "pending" and await rows(
        db, "SELECT 1 FROM incidents i JOIN incident_events e ON e.incident_id = i.id"
            " WHERE i.dedupe_key = ? AND e.kind = 'rejected' AND e.at >= ? LIMIT 1",
        key, now - policy.reject_snooze,
    )
    if snoozed:
        approval = "rejected"
    labels = {name: alert.labels.get(name, "") for name in policy.dedupe_labels}
    cursor = await db.execute(
        "INSERT INTO incidents (dedupe_key, labels, state, approval, opened_at, last_seen,"
        " notifications, details, asked_at) VALUES (?, ?, 'firing', ?, ?, ?, 1, ?, ?)",
        (key, dumps(labels), approval, alert.starts_at, now, _details(None, alert),
         now if approval == "pending" else None),
    )
    incident = cursor.lastrowid
    assert incident is not None
    await _event(db, incident, now, "opened", "approval snoozed by an earlier rejection"
                 if snoozed else f"approval {approval}")
    return Change(incident, "opened")


async def _resolved(db: aiosqlite.Connection, alert: Alert, key: str, now: float) -> Change:
    found = await rows(db, "SELECT * FROM incidents WHERE dedupe_key = ? AND state = 'firing'",
                       key)
    if not found:
        return Change(0, "ignored")  # already resolved, or never seen: nothing to change
    incident = found[0]
    ended = alert.ends_at if alert.ends_at is not None else now
    await db.execute(
        "UPDATE incidents SET state = 'resolved', resolved_at = ?, duration_seconds = ?,"
        " last_seen = ?, notifications = notifications + 1, details = ? WHERE id = ?",
        (ended, max(0.0, ended - incident["opened_at"]), now,
         _details(incident["details"], alert), incident["id"]),
    )
    lasted = human_duration(ended - incident["opened_at"])
    await _event(db, incident["id"], now, "resolved", f"after {lasted}")
    if incident["approval"] == "approved":
        await _enqueue(db, incident["id"], "resolve", now,
                       f"Recovered at {iso(ended)} after {lasted}.")
    return Change(incident["id"], "resolved")


async def apply(db: aiosqlite.Connection, notification: Notification, body: str, now: float,
                policy: IncidentPolicy) -> list[Change]:
    """Record a notification and its incident changes; call inside one transaction."""
    await db.execute(
        "INSERT INTO notifications (received_at, group_key, status, alerts, body)"
        " VALUES (?, ?, ?, ?, ?)",
        (now, notification.group_key, notification.status, len(notification.alerts), body),
    )
    changes = []
    for alert in notification.alerts:
        key = dedupe_key(alert.labels, policy)
        if alert.status == "firing":
            changes.append(await _firing(db, alert, key, now, policy))
        else:
            changes.append(await _resolved(db, alert, key, now))
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


async def history(store: Store, incident_id: int) -> tuple[dict[str, Any] | None,
                                                        list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """An incident, its events and its ticket work, read as one state."""
    async with store.snapshot() as db:
        found = await rows(db, "SELECT * FROM incidents WHERE id = ?", incident_id)
        events = await rows(db, "SELECT at, kind, detail FROM incident_events"
                                " WHERE incident_id = ? ORDER BY id", incident_id)
        work = await rows(db, "SELECT kind, state, attempts, last_error FROM outbox"
                              " WHERE incident_id = ? ORDER BY id", incident_id)
    return (found[0] if found else None), events, work
