"""Turn notifications into incidents: one per dedupe key, however often Alertmanager sends.

A firing alert opens an incident, or updates the open one; the incident resolves when
none of its alerts fires any more (alerts are kept per incident and fingerprint: the
MAX_FIRING most recently sent firing ones and the newest KEEP_RESOLVED resolved ones);
a firing alert Alertmanager has not sent for `alert_expiry` counts as gone (`expire`);
firing again within the reopen window reopens the same incident without a new approval;
a key rejected within the snooze window is not put to an approver again.
"""

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .config import IncidentPolicy
from .db import (
    AlertStatus,
    AlertWrite,
    Approval,
    Database,
    Event,
    EventKind,
    GoneAlert,
    Incident,
    IncidentHead,
    IncidentState,
    StoredAlert,
    SyncWriter,
    Work,
    WorkKind,
)
from .payload import MAX_TIME, MIN_TIME, Alert, Notification
from .timefmt import human_duration, iso

KEEP_RESOLVED = 50  # resolved alerts an incident keeps, newest first
# Firing alerts an incident keeps, the most recently sent: one churning group must not
# grow a row set without end. Far above a real group (max_alerts is 500 per notification).
MAX_FIRING = 2000
NAMED = 10  # alerts an event names one by one
EVENTS_PAGE = 200  # events of an incident shown or answered at once, the newest


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


def _write(alert: Alert) -> AlertWrite:
    return AlertWrite(alert.fingerprint, alert.status, alert.starts_at, alert.ends_at,
                      dict(alert.labels), dict(alert.annotations), alert.generator_url)


def _stale(alert: Alert, stored: StoredAlert | None) -> bool:
    """Whether an alert is older news than what is stored of it (HA peers and retries
    deliver out of order): judged by the alert's own startsAt and endsAt."""
    if stored is None:
        return False
    if alert.status == "firing" and stored.expired:
        # Counted gone for want of news (expire): this is news, e.g. an inhibition ended.
        return alert.starts_at < stored.starts_at
    if alert.status == "firing" and stored.status is AlertStatus.RESOLVED:
        # The same firing that already ended; a new firing starts after the end.
        return alert.starts_at <= stored.starts_at or (
            stored.ends_at is not None and alert.starts_at < stored.ends_at)
    return alert.starts_at < stored.starts_at  # an earlier firing of it


def _open(tx: SyncWriter, alert: Alert, key: str, latest: IncidentHead | None,
          now: float, policy: IncidentPolicy) -> Change:
    """No incident fires for the key: reopen the latest within the window, or open one."""
    if (latest is not None and latest.resolved_at is not None
            and now - latest.resolved_at <= policy.reopen_window):
        tx.reopen(latest.id, now)
        tx.append_event(latest.id, now, EventKind.REOPENED)
        if latest.approval is Approval.APPROVED:
            tx.enqueue(latest.id, WorkKind.REOPEN, now,
                       f"Firing again at {iso(now)}: reopened by fleet-sla.")
        return Change(latest.id, ChangeKind.REOPENED)
    approval = Approval.PENDING if policy.needs_approval(alert.labels) else Approval.NONE
    snoozed = approval is Approval.PENDING and tx.rejected_since(
        key, now - policy.reject_snooze)
    if snoozed:
        approval = Approval.REJECTED
    labels = {name: alert.labels.get(name, "") for name in policy.dedupe_labels}
    incident = tx.add_incident(key, labels, approval, alert.starts_at, now, {},
                               now if approval is Approval.PENDING else None)
    tx.append_event(incident, now, EventKind.OPENED,
                    "approval snoozed by an earlier rejection"
                    if snoozed else f"approval {approval}")
    return Change(incident, ChangeKind.OPENED)


def _apply_key(tx: SyncWriter, key: str, alerts: list[Alert], now: float,
               policy: IncidentPolicy) -> Change:
    """All alerts of one notification with one dedupe key, firing ones first."""
    fingerprints = [a.fingerprint for a in alerts]
    head = tx.incident_head(key, firing=True)
    change: Change | None = None
    if head is None:
        latest = tx.incident_head(key, firing=False)
        stored = tx.stored_alerts(latest.id, fingerprints) if latest else {}
        fresh = [a for a in alerts
                 if a.status == "firing" and not _stale(a, stored.get(a.fingerprint))]
        if not fresh:  # resolved alerts, or old news, for an incident not firing
            return Change(0, ChangeKind.IGNORED)
        change = _open(tx, fresh[0], key, latest, now, policy)
        head = tx.incident_head(key, firing=True)
        assert head is not None  # just opened or reopened
        if latest is None or head.id != latest.id:
            stored = {}  # a new incident: nothing of it is stored yet
    else:
        tx.seen(head.id, now)
        stored = tx.stored_alerts(head.id, fingerprints)
    writes = []
    for alert in alerts:
        if not _stale(alert, stored.get(alert.fingerprint)):
            writes.append(_write(alert))
            stored[alert.fingerprint] = StoredAlert(AlertStatus(alert.status),
                                                    alert.starts_at, alert.ends_at)
    tx.put_alerts(head.id, writes, now)
    if any(w.status == "firing" for w in writes):
        dropped = tx.drop_oldest_firing(head.id, MAX_FIRING)
        if dropped:  # the MAX_FIRING kept still fire: the incident does too
            tx.append_event(head.id, now, EventKind.ALERTS_DROPPED, (
                f"{len(dropped)} firing alerts dropped, at most {MAX_FIRING} are kept (the"
                f" most recently sent): {_names(dropped)}"))
    ended = [w for w in writes if w.status == "resolved"]
    if not ended:
        return change or Change(head.id, ChangeKind.UPDATED)
    tx.prune_resolved(head.id, KEEP_RESOLVED)
    if tx.firing_alerts(head.id):
        return change or Change(head.id, ChangeKind.UPDATED)  # another alert still fires
    _resolve(tx, head, max(w.ends_at or now for w in ended), now)
    return Change(head.id, ChangeKind.RESOLVED)


def _resolve(tx: SyncWriter, head: IncidentHead, ended: float, now: float,
             why: str = "") -> None:
    tx.resolve(head.id, ended, max(0.0, ended - head.opened_at))
    lasted = human_duration(ended - head.opened_at)
    tx.append_event(head.id, now, EventKind.RESOLVED, f"after {lasted}{why}")
    if head.approval is Approval.APPROVED:
        tx.enqueue(head.id, WorkKind.RESOLVE, now,
                   f"Recovered at {iso(ended)} after {lasted}{why}.")


def _names(alerts: list[GoneAlert]) -> str:
    """Which alerts, as people find them: by device or alert name, and fingerprint."""
    named = [f"{a.labels.get('device') or a.labels.get('alertname', '?')}"
             f" (fingerprint {a.fingerprint}, last sent {iso(a.last_seen)})"
             for a in alerts[:NAMED]]
    more = len(alerts) - len(named)
    return "; ".join(named) + (f"; and {more} more" if more else "")


def expire(tx: SyncWriter, incident_id: int, now: float, expiry: float) -> Change | None:
    """Count the incident's firing alerts not sent for `expiry` as gone, and resolve it
    if none fires any more. Alertmanager sends every firing alert of a group at least
    every repeat_interval, and sends no resolve for one inhibited, silenced, cut by
    max_alerts or forgotten in a restart: only their silence says they are gone.
    Call inside one transaction (`Database.write`)."""
    head = tx.incident_head_by_id(incident_id)
    if head is None or head.state is not IncidentState.FIRING:
        return None
    gone = tx.expire_alerts(incident_id, now - expiry, now)
    if not gone:  # sent again meanwhile
        return None
    tx.append_event(incident_id, now, EventKind.ALERTS_EXPIRED, (
        f"{len(gone)} firing alerts not sent by Alertmanager for {human_duration(expiry)}"
        " (incidents.alert_expiry) count as gone; Alertmanager re-sends firing alerts every"
        " repeat_interval, so these were inhibited, silenced, cut by max_alerts or"
        f" forgotten: {_names(gone)}"))
    tx.prune_resolved(incident_id, KEEP_RESOLVED)
    if tx.firing_alerts(incident_id):
        return Change(incident_id, ChangeKind.UPDATED)
    last = max(a.last_seen for a in gone)  # when it was last known to fire
    _resolve(tx, head, max(last, head.opened_at), now,
             f" (its alerts are no longer sent by Alertmanager; last sent {iso(last)})")
    return Change(incident_id, ChangeKind.RESOLVED)


def apply(tx: SyncWriter, notification: Notification, body: str, now: float,
          policy: IncidentPolicy) -> list[Change]:
    """Record a notification and its incident changes; call inside one transaction
    (`Database.write`, in the database's thread).

    An incident resolves only when none of its alerts fires any more.
    """
    tx.add_notification(now, notification.group_key, notification.status,
                        len(notification.alerts), body)
    by_key: dict[str, list[Alert]] = {}
    # Firing first: [A resolved, B firing] must not resolve and reopen the incident.
    for alert in sorted(notification.alerts, key=lambda a: a.status != "firing"):
        by_key.setdefault(dedupe_key(alert.labels, policy), []).append(alert)
    return [_apply_key(tx, key, alerts, now, policy) for key, alerts in by_key.items()]


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
        with contextlib.suppress(KeyError, ValueError, TypeError):
            since = float(annotations["down_since"])
            if MIN_TIME <= since <= MAX_TIME:  # an older version stored any number
                found["down_since"] = min(found["down_since"], since)
        device = alert["labels"].get("device")
        if device and not found["devices_down"]:
            found["devices_down"] = f"{device} ({alert['labels'].get('address', '')})"
    return found


@dataclass(frozen=True, slots=True)
class History:
    incident: Incident | None
    events: list[Event]  # oldest first: the newest EVENTS_PAGE before the cursor
    work: list[Work]
    older: bool  # whether events before these exist


async def history(db: Database, incident_id: int, events_before: int | None = None
                  ) -> History:
    """An incident, a page of its events and its ticket work, read as one state. An
    incident that flaps gains events for ever: they are read a page at a time."""
    async with db.snapshot() as reader:
        incident = await reader.incident(incident_id)
        events = await reader.events(incident_id, before=events_before,
                                     limit=EVENTS_PAGE + 1)
        work = await reader.work(incident_id)
    older = len(events) > EVENTS_PAGE
    return History(incident, events[1:] if older else events, work, older)
