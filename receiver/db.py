"""The receiver's state in SQLite (WAL): schema, migrations and every query, with typed rows.

This is the only module that speaks SQL. Every change happens inside `transaction()` or
`write()`, which hold a lock: the one connection is shared by all requests, and their
statements must not interleave. `write()` runs a whole transaction in aiosqlite's thread
(`SyncWriter`), for work of many statements such as ingest. SQLite's errors leave here as
`errors.Unavailable`.

Rows are read into dataclasses. A stored value this version does not know (a state, an
approval, a kind written by another version) is read as `UNKNOWN` with a logged warning,
so one odd row never takes a page down; the row itself is left as it is.
"""

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from .errors import Unavailable

log = logging.getLogger(__name__)

# Each entry moves the schema one version up; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at REAL NOT NULL,
        group_key TEXT NOT NULL,
        status TEXT NOT NULL,
        alerts INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dedupe_key TEXT NOT NULL,
        labels TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
        approval TEXT NOT NULL CHECK (approval IN ('none', 'pending', 'approved', 'rejected')),
        opened_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        resolved_at REAL,
        duration_seconds REAL,
        notifications INTEGER NOT NULL DEFAULT 0,
        details TEXT NOT NULL
    );
    -- At most one open incident per dedupe key, whatever races happen.
    CREATE UNIQUE INDEX incidents_open_key ON incidents (dedupe_key) WHERE state = 'firing';
    CREATE INDEX incidents_key ON incidents (dedupe_key, id);
    CREATE TABLE incident_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX incident_events_incident ON incident_events (incident_id, id);
    """,
    """
    ALTER TABLE incidents ADD COLUMN ticket_key TEXT;
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        user TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('approve', 'reject')),
        comment TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        kind TEXT NOT NULL CHECK (kind IN ('create', 'comment', 'resolve', 'reopen')),
        body TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        created_at REAL NOT NULL,
        done_at REAL
    );
    -- One ticket per incident, however many approvals race.
    CREATE UNIQUE INDEX outbox_one_ticket ON outbox (incident_id) WHERE kind = 'create';
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
    """,
    """
    ALTER TABLE incidents ADD COLUMN asked_at REAL;
    ALTER TABLE incidents ADD COLUMN announced_at REAL;
    ALTER TABLE incidents ADD COLUMN reminded_at REAL;
    UPDATE incidents SET asked_at = last_seen WHERE approval = 'pending';
    """,
    """
    ALTER TABLE incidents ADD COLUMN ticket_status TEXT;
    CREATE INDEX incidents_ticket ON incidents (ticket_key);
    """,
    # Each alert of an incident in its own row, so an alert costs the same however many
    # the incident has seen; the old details column is moved here and emptied.
    """
    CREATE TABLE incident_alerts (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        fingerprint TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
        starts_at REAL NOT NULL,
        ends_at REAL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        generator_url TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL,
        PRIMARY KEY (incident_id, fingerprint)
    ) WITHOUT ROWID;
    CREATE INDEX incident_alerts_status ON incident_alerts (incident_id, status, updated_at);
    INSERT OR IGNORE INTO incident_alerts (incident_id, fingerprint, status, starts_at,
                                           labels, annotations, generator_url, updated_at)
        SELECT i.id, e.key,
               CASE WHEN i.state = 'resolved'
                         OR json_extract(e.value, '$.status') = 'resolved'
                    THEN 'resolved' ELSE 'firing' END,
               coalesce(json_extract(e.value, '$.starts_at'), i.opened_at),
               coalesce(json_extract(e.value, '$.labels'), '{}'),
               coalesce(json_extract(e.value, '$.annotations'), '{}'),
               coalesce(json_extract(e.value, '$.generator_url'), ''),
               i.last_seen
        FROM incidents i,
             json_each(CASE WHEN json_valid(i.details) AND json_type(i.details) = 'object'
                            THEN i.details ELSE '{}' END) e
        WHERE json_type(e.value) = 'object';
    UPDATE incidents SET details = '{}'
    """,
    # 'ask-again' undoes a rejection or a snooze; SQLite cannot alter a CHECK in place.
    """
    CREATE TABLE decisions_v5 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        user TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('approve', 'reject', 'ask-again')),
        comment TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO decisions_v5 (id, incident_id, at, user, kind, comment)
        SELECT id, incident_id, at, user, kind, comment FROM decisions;
    DROP TABLE decisions;
    ALTER TABLE decisions_v5 RENAME TO decisions;
    """,
    # What a piece of ticket work is doing at JIRA, committed before the call: a create or
    # comment found mid-way after a crash may have happened, and is never simply repeated.
    """
    ALTER TABLE outbox ADD COLUMN attempt TEXT NOT NULL DEFAULT 'none'
        CHECK (attempt IN ('none', 'creating', 'commenting', 'uncertain'));
    ALTER TABLE outbox ADD COLUMN marker TEXT;
    ALTER TABLE outbox ADD COLUMN uncertain_since REAL;
    """,
    # A firing alert Alertmanager stopped sending is resolved by the sweeper after
    # incidents.alert_expiry; expired_at tells it from a resolve Alertmanager sent.
    """
    ALTER TABLE incident_alerts ADD COLUMN expired_at REAL;
    CREATE INDEX incident_alerts_unseen ON incident_alerts (status, updated_at);
    """,
)

# Times the pages and tickets can print (as payload.MIN_TIME/MAX_TIME).
_EARLIEST, _LATEST = 0.0, 253402214400.0


# The stored values of these enums are the schema's: never rename one.
class IncidentState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    UNKNOWN = "unknown"  # never stored: a value this version cannot read


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    UNKNOWN = "unknown"


class Approval(StrEnum):
    NONE = "none"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ASK_AGAIN = "ask-again"  # back to pending after a rejection or a snooze
    UNKNOWN = "unknown"


class WorkKind(StrEnum):
    CREATE = "create"
    COMMENT = "comment"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    UNKNOWN = "unknown"


class Attempt(StrEnum):
    """What the outbox last set out to do at JIRA for a piece of work."""
    NONE = "none"
    CREATING = "creating"  # a create call may be under way (or was, when the process died)
    COMMENTING = "commenting"  # a comment may have been posted
    UNCERTAIN = "uncertain"  # a create may have made a ticket: only its marker is searched
    UNKNOWN = "unknown"


class WorkState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"


class EventKind(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    APPROVED = "approved"
    REJECTED = "rejected"
    ASKED_AGAIN = "asked-again"
    ANNOUNCED = "announced"
    REMINDED = "reminded"
    TICKET_CREATE = "ticket-create"
    TICKET_COMMENT = "ticket-comment"
    TICKET_RESOLVE = "ticket-resolve"
    TICKET_REOPEN = "ticket-reopen"
    TICKET_RETRY = "ticket-retry"
    TICKET_ERROR = "ticket-error"
    TICKET_STATUS = "ticket-status"
    TICKET_UNCERTAIN = "ticket-uncertain"
    TICKET_NONE_MADE = "ticket-none-made"
    ALERTS_EXPIRED = "alerts-expired"  # not sent by Alertmanager for alert_expiry
    ALERTS_DROPPED = "alerts-dropped"  # beyond the firing alerts an incident keeps
    UNKNOWN = "unknown"

    @classmethod
    def ticket_done(cls, work: WorkKind) -> "EventKind":
        """The event that records a piece of ticket work done."""
        try:
            return cls(f"ticket-{work}")
        except ValueError:
            return cls.UNKNOWN


E = TypeVar("E", bound=StrEnum)
R = TypeVar("R")
P = ParamSpec("P")


def _enum(kind: type[E], raw: Any, table: str, row_id: Any) -> E:
    try:
        return kind(raw)
    except ValueError:
        log.warning("%s %s: unknown %s %r, read as unknown", table, row_id, kind.__name__, raw)
        return kind("unknown")


def _object(raw: Any, table: str, column: str, row_id: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        log.warning("%s %s: %s is not a JSON object, read as empty", table, row_id, column)
        return {}
    return value


def _clean(value: Any) -> Any:
    """A JSON value with every string valid Unicode: older versions stored lone
    surrogates (as JSON escapes), which no page or ticket can encode."""
    if isinstance(value, str):
        if value.isascii():
            return value
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _strings(raw: Any, table: str, column: str, row_id: Any) -> dict[str, str]:
    """A JSON object of strings, e.g. labels; anything else in it is dropped with a warning."""
    value = _clean(_object(raw, table, column, row_id))
    kept = {k: v for k, v in value.items() if isinstance(v, str)}
    if len(kept) != len(value):
        log.warning("%s %s: %s holds values that are not strings, dropped", table, row_id,
                    column)
    return kept


def _when(raw: Any) -> float | None:
    """A stored time that can be printed, or None."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) \
            and _EARLIEST <= raw <= _LATEST:
        return float(raw)
    return None


def _span(raw: Any) -> float | None:
    """A stored duration that can be printed, or None."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) \
            and -_LATEST <= raw <= _LATEST:
        return float(raw)
    return None


def alert_entry(fingerprint: str, status: Any, labels: Any, annotations: Any,
                starts_at: Any, generator_url: Any, where: Any) -> dict[str, Any]:
    """One alert of an incident as pages and tickets read it; an unreadable part says so
    in the alert's summary, where the alert is shown."""
    problems = []
    names = _strings(labels, "incident_alert", "labels", where)
    notes = _strings(annotations, "incident_alert", "annotations", where)
    starts = _when(starts_at)
    if starts is None:
        problems.append(f"starts_at {starts_at!r} out of range")
    if "down_since" in notes:
        try:
            down = float(notes["down_since"])
        except ValueError:
            down = float("nan")
        if not _EARLIEST <= down <= _LATEST:
            problems.append(f"down_since {notes.pop('down_since')!r} out of range")
    if problems:
        log.warning("incident_alert %s: %s", where, "; ".join(problems))
        notes["summary"] = f"unreadable stored alert: {'; '.join(problems)}"
    return {"labels": names, "annotations": notes,
            "starts_at": starts if starts is not None else 0.0,
            "generator_url": _clean(generator_url) if isinstance(generator_url, str) else "",
            "status": _enum(AlertStatus, status, "incident_alert", where)}


def _legacy_details(raw: Any, row_id: Any) -> dict[str, Any]:
    """Alerts still in the details column (older versions, or add_incident's argument)."""
    details = {}
    for fingerprint, entry in _clean(_object(raw, "incident", "details", row_id)).items():
        if not isinstance(entry, dict):
            entry = {}
        details[fingerprint] = alert_entry(
            fingerprint, entry.get("status", "firing"), dumps(entry.get("labels", {})),
            dumps(entry.get("annotations", {})), entry.get("starts_at"),
            entry.get("generator_url", ""), f"{row_id}/{fingerprint}")
    return details


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    dedupe_key: str
    labels: dict[str, str]
    state: IncidentState
    approval: Approval
    opened_at: float
    last_seen: float
    resolved_at: float | None
    duration_seconds: float | None
    notifications: int
    details: dict[str, Any]  # the newest of each alert, by fingerprint
    ticket_key: str | None
    asked_at: float | None
    announced_at: float | None
    reminded_at: float | None
    ticket_status: str | None
    problem: str = ""  # what of the stored row could not be read, if anything

    @classmethod
    def from_row(cls, row: sqlite3.Row, alerts: dict[str, Any] | None = None
                 ) -> "Incident":
        rid = row["id"]
        problems = [f"{column} {row[column]!r} out of range"
                    for column in ("opened_at", "last_seen", "resolved_at")
                    if row[column] is not None and _when(row[column]) is None]
        if row["duration_seconds"] is not None and _span(row["duration_seconds"]) is None:
            problems.append(f"duration_seconds {row['duration_seconds']!r} out of range")
        if problems:
            log.warning("incident %s: %s", rid, "; ".join(problems))
        last_seen = _when(row["last_seen"]) or 0.0
        details = _legacy_details(row["details"], rid)
        details.update(alerts or {})
        return cls(
            id=rid, dedupe_key=_clean(row["dedupe_key"]),
            labels=_strings(row["labels"], "incident", "labels", rid),
            state=_enum(IncidentState, row["state"], "incident", rid),
            approval=_enum(Approval, row["approval"], "incident", rid),
            opened_at=_when(row["opened_at"]) or last_seen, last_seen=last_seen,
            resolved_at=_when(row["resolved_at"]),
            duration_seconds=_span(row["duration_seconds"]),
            notifications=row["notifications"],
            details=details,
            problem="; ".join(problems),
            ticket_key=row["ticket_key"], asked_at=row["asked_at"],
            announced_at=row["announced_at"], reminded_at=row["reminded_at"],
            ticket_status=row["ticket_status"])


@dataclass(frozen=True, slots=True)
class IncidentHead:
    """What ingest needs of an incident, without its alerts."""
    id: int
    state: IncidentState
    approval: Approval
    opened_at: float
    resolved_at: float | None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """What ingest needs of a stored alert to order notifications."""
    status: AlertStatus
    starts_at: float
    ends_at: float | None
    expired: bool = False  # resolved by the sweeper, not by Alertmanager


@dataclass(frozen=True, slots=True)
class GoneAlert:
    """A firing alert the receiver stopped counting: expired or dropped."""
    fingerprint: str
    labels: dict[str, str]
    last_seen: float


@dataclass(frozen=True, slots=True)
class AlertWrite:
    fingerprint: str
    status: str
    starts_at: float
    ends_at: float | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str


@dataclass(frozen=True, slots=True)
class PendingIncident:
    """An incident waiting for an approver, with what the approval page shows beside it."""
    incident: Incident
    asked_at: float  # the first time it opened or reopened
    earlier: int  # earlier incidents with the same labels
    earlier_tickets: int  # ... of which had a ticket


@dataclass(frozen=True, slots=True)
class RejectedIncident:
    """A firing incident an approver turned down, with the rejection that did it.

    `rejection` belongs to an earlier incident of the same key when this one was snoozed,
    and is None when no rejection is on record (a row from an older version).
    """
    incident: Incident
    rejection: "Decision | None"

    @property
    def snoozed(self) -> bool:
        return self.rejection is not None and self.rejection.incident_id != self.incident.id


@dataclass(frozen=True, slots=True)
class PastIncident:
    opened_at: float
    duration_seconds: float | None
    ticket_key: str | None


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    kind: EventKind
    detail: str
    id: int = 0


@dataclass(frozen=True, slots=True)
class IncidentRows:
    """Incidents as read, before they are built: building a long list is CPU work."""
    rows: list[sqlite3.Row]
    alerts: list[sqlite3.Row]

    def build(self) -> list[Incident]:
        by_incident: dict[int, dict[str, Any]] = {r["id"]: {} for r in self.rows}
        for a in self.alerts:
            fingerprint = _clean(a["fingerprint"])
            by_incident[a["incident_id"]][fingerprint] = alert_entry(
                fingerprint, a["status"], a["labels"], a["annotations"], a["starts_at"],
                a["generator_url"], f"{a['incident_id']}/{fingerprint}")
        return [Incident.from_row(r, by_incident[r["id"]]) for r in self.rows]


@dataclass(frozen=True, slots=True)
class Decision:
    id: int
    incident_id: int
    at: float
    user: str
    kind: DecisionKind
    comment: str


@dataclass(frozen=True, slots=True)
class Work:
    """One piece of ticket work in the outbox."""
    id: int
    incident_id: int
    kind: WorkKind
    body: str
    state: WorkState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    done_at: float | None
    attempt: Attempt
    marker: str | None  # carried by the ticket or comment this work makes
    uncertain_since: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Work":
        rid = row["id"]
        return cls(id=rid, incident_id=row["incident_id"],
                   kind=_enum(WorkKind, row["kind"], "outbox", rid), body=row["body"],
                   state=_enum(WorkState, row["state"], "outbox", rid),
                   attempts=row["attempts"], next_attempt_at=row["next_attempt_at"],
                   last_error=row["last_error"], created_at=row["created_at"],
                   done_at=row["done_at"],
                   attempt=_enum(Attempt, row["attempt"], "outbox", rid),
                   marker=row["marker"], uncertain_since=row["uncertain_since"])


def _head(r: sqlite3.Row) -> IncidentHead:
    return IncidentHead(r["id"], _enum(IncidentState, r["state"], "incident", r["id"]),
                        _enum(Approval, r["approval"], "incident", r["id"]),
                        _when(r["opened_at"]) or 0.0, _when(r["resolved_at"]))


def _gone(rows: list[sqlite3.Row], incident_id: int) -> list[GoneAlert]:
    return [GoneAlert(_clean(r["fingerprint"]),
                      _strings(r["labels"], "incident_alert", "labels",
                               f"{incident_id}/{r['fingerprint']}"),
                      _when(r["updated_at"]) or 0.0) for r in rows]


class SyncWriter:
    """Reads and writes of one transaction as plain calls on the sqlite3 connection, for
    work of many statements (ingest): run whole in the database's thread by
    `Database.write`, it costs one hop to that thread instead of one per statement.
    Never call it from the event loop's thread."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self._db.execute(sql, args).fetchall()

    def _run(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""
        return self._db.execute(sql, args).rowcount

    def incident_head(self, dedupe_key: str, *, firing: bool) -> IncidentHead | None:
        """The key's firing incident, or (firing=False) its latest; without alerts."""
        only = " AND state = 'firing'" if firing else ""
        found = self._all(
            "SELECT id, state, approval, opened_at, resolved_at FROM incidents"
            f" WHERE dedupe_key = ?{only} ORDER BY id DESC LIMIT 1", dedupe_key)
        return _head(found[0]) if found else None

    def incident_head_by_id(self, incident_id: int) -> IncidentHead | None:
        found = self._all("SELECT id, state, approval, opened_at, resolved_at"
                          " FROM incidents WHERE id = ?", incident_id)
        return _head(found[0]) if found else None

    def stored_alerts(self, incident_id: int, fingerprints: list[str]
                      ) -> dict[str, StoredAlert]:
        found = self._all(
            "SELECT fingerprint, status, starts_at, ends_at, expired_at FROM incident_alerts"
            " WHERE incident_id = ? AND fingerprint IN (SELECT value FROM json_each(?))",
            incident_id, dumps(fingerprints))
        return {r["fingerprint"]: StoredAlert(
            _enum(AlertStatus, r["status"], "incident_alert", r["fingerprint"]),
            _when(r["starts_at"]) or 0.0, _when(r["ends_at"]), r["expired_at"] is not None)
            for r in found}

    def firing_alerts(self, incident_id: int) -> int:
        found = self._all("SELECT count(*) AS n FROM incident_alerts"
                          " WHERE incident_id = ? AND status = 'firing'", incident_id)
        n: int = found[0]["n"]
        return n

    def rejected_since(self, dedupe_key: str, since: float) -> bool:
        """A rejection of the key since `since` that no one has asked again after."""
        return bool(self._all(
            "SELECT 1 FROM incidents i JOIN incident_events e ON e.incident_id = i.id"
            " WHERE i.dedupe_key = ? AND e.kind = 'rejected' AND e.at >= ?"
            " AND NOT EXISTS (SELECT 1 FROM incidents o JOIN incident_events a"
            "  ON a.incident_id = o.id WHERE o.dedupe_key = i.dedupe_key"
            "  AND a.kind = 'asked-again' AND a.id > e.id) LIMIT 1",
            dedupe_key, since))

    def append_event(self, incident_id: int, at: float, kind: EventKind,
                     detail: str = "") -> None:
        self._run("INSERT INTO incident_events (incident_id, at, kind, detail)"
                  " VALUES (?, ?, ?, ?)", incident_id, at, str(kind), detail)

    def add_notification(self, at: float, group_key: str, status: str, alerts: int,
                         body: str) -> None:
        self._run("INSERT INTO notifications (received_at, group_key, status, alerts,"
                  " body) VALUES (?, ?, ?, ?, ?)", at, group_key, status, alerts, body)

    def add_incident(self, dedupe_key: str, labels: dict[str, str], approval: Approval,
                     opened_at: float, now: float, details: dict[str, Any],
                     asked_at: float | None) -> int:
        incident = self._db.execute(
            "INSERT INTO incidents (dedupe_key, labels, state, approval, opened_at,"
            " last_seen, notifications, details, asked_at)"
            " VALUES (?, ?, 'firing', ?, ?, ?, 1, ?, ?)",
            (dedupe_key, dumps(labels), str(approval), opened_at, now, dumps(details),
             asked_at)).lastrowid
        assert incident is not None  # an INSERT has a rowid
        return incident

    def put_alerts(self, incident_id: int, alerts: list[AlertWrite], now: float) -> None:
        """Insert or replace alerts of an incident."""
        self._db.executemany(
            "INSERT INTO incident_alerts (incident_id, fingerprint, status, starts_at, ends_at,"
            " labels, annotations, generator_url, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status = excluded.status,"
            " starts_at = excluded.starts_at, ends_at = excluded.ends_at,"
            " labels = excluded.labels, annotations = excluded.annotations,"
            " generator_url = excluded.generator_url, updated_at = excluded.updated_at,"
            " expired_at = NULL",
            [(incident_id, a.fingerprint, a.status, a.starts_at, a.ends_at, dumps(a.labels),
              dumps(a.annotations), a.generator_url, now) for a in alerts])

    def prune_resolved(self, incident_id: int, keep: int) -> None:
        """Forget all but the `keep` newest resolved alerts of an incident."""
        self._run(
            "DELETE FROM incident_alerts WHERE incident_id = ? AND status = 'resolved'"
            " AND fingerprint NOT IN (SELECT fingerprint FROM incident_alerts"
            " WHERE incident_id = ? AND status = 'resolved'"
            " ORDER BY updated_at DESC LIMIT ?)", incident_id, incident_id, keep)

    def expire_alerts(self, incident_id: int, cutoff: float, now: float) -> list[GoneAlert]:
        """Resolve the incident's firing alerts last sent before `cutoff`: they ended,
        as far as anyone can tell, when they were last sent."""
        where = " WHERE incident_id = ? AND status = 'firing' AND updated_at < ?"
        found = self._all("SELECT fingerprint, labels, updated_at FROM incident_alerts"
                          + where + " ORDER BY updated_at, fingerprint", incident_id, cutoff)
        self._run("UPDATE incident_alerts SET status = 'resolved',"
                  " ends_at = updated_at, expired_at = ?" + where, now, incident_id, cutoff)
        return _gone(found, incident_id)

    def drop_oldest_firing(self, incident_id: int, keep: int) -> list[GoneAlert]:
        """Forget all but the `keep` most recently sent firing alerts of an incident."""
        found = self._all(
            "SELECT fingerprint, labels, updated_at FROM incident_alerts"
            " WHERE incident_id = ? AND status = 'firing'"
            " ORDER BY updated_at DESC, fingerprint DESC LIMIT -1 OFFSET ?", incident_id, keep)
        if found:
            self._run(
                "DELETE FROM incident_alerts WHERE incident_id = ? AND fingerprint IN"
                " (SELECT value FROM json_each(?))",
                incident_id, dumps([r["fingerprint"] for r in found]))
        return _gone(found[::-1], incident_id)

    def seen(self, incident_id: int, now: float) -> None:
        self._run("UPDATE incidents SET last_seen = ?, notifications = notifications + 1"
                  " WHERE id = ?", now, incident_id)

    def reopen(self, incident_id: int, now: float) -> None:
        self._run("UPDATE incidents SET state = 'firing', resolved_at = NULL,"
                  " duration_seconds = NULL, last_seen = ?,"
                  " notifications = notifications + 1 WHERE id = ?", now, incident_id)

    def resolve(self, incident_id: int, ended: float, duration: float) -> None:
        self._run("UPDATE incidents SET state = 'resolved', resolved_at = ?,"
                  " duration_seconds = ? WHERE id = ?", ended, duration, incident_id)

    def enqueue(self, incident_id: int, kind: WorkKind, now: float, body: str = "") -> None:
        if kind is WorkKind.CREATE:
            # The unique index on (incident_id) for 'create' makes a second ticket impossible.
            self._run("INSERT OR IGNORE INTO outbox (incident_id, kind, next_attempt_at,"
                      " created_at) VALUES (?, 'create', ?, ?)", incident_id, now, now)
            return
        self._run("INSERT INTO outbox (incident_id, kind, body, next_attempt_at,"
                  " created_at) VALUES (?, ?, ?, ?, ?)", incident_id, str(kind), body, now, now)


async def _in_thread(db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], R]) -> R:
    """Run `fn` on the sqlite3 connection in aiosqlite's thread, in one hop."""
    # aiosqlite has no public call for this; its own methods run through _execute.
    execute: Callable[[Callable[[], R]], Awaitable[R]] = db._execute
    return await execute(lambda: fn(db._conn))


def _transact(db: sqlite3.Connection, fn: Callable[[SyncWriter], R]) -> R:
    """`fn` as one transaction; in the database's thread."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(SyncWriter(db))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # some errors (a full disk) roll back on their own
            db.execute("ROLLBACK")
        raise
    return result


class Reader:
    """Reads on a connection the caller holds the lock of."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        async with self._db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    async def _rows_with_alerts(self, rows: list[sqlite3.Row]) -> "IncidentRows":
        """Incident rows and their alert rows, in one more query for all of them."""
        ids = dumps([r["id"] for r in rows])
        return IncidentRows(rows, await self._all(
            "SELECT * FROM incident_alerts WHERE incident_id IN"
            " (SELECT value FROM json_each(?)) ORDER BY incident_id, status, updated_at",
            ids))

    async def _with_alerts(self, rows: list[sqlite3.Row]) -> list[Incident]:
        """Incidents read with their alerts."""
        return (await self._rows_with_alerts(rows)).build()

    async def incident(self, incident_id: int) -> Incident | None:
        found = await self._all("SELECT * FROM incidents WHERE id = ?", incident_id)
        return (await self._with_alerts(found))[0] if found else None

    async def unseen_since(self, cutoff: float, limit: int = 100) -> list[int]:
        """Firing incidents with a firing alert last sent before `cutoff`."""
        found = await self._all(
            "SELECT DISTINCT a.incident_id FROM incident_alerts a"
            " JOIN incidents i ON i.id = a.incident_id"
            " WHERE a.status = 'firing' AND a.updated_at < ? AND i.state = 'firing'"
            " ORDER BY a.incident_id LIMIT ?", cutoff, limit)
        return [r["incident_id"] for r in found]

    async def alerts_kept(self, incident_id: int) -> int:
        found = await self._all("SELECT count(*) AS n FROM incident_alerts"
                                " WHERE incident_id = ?", incident_id)
        n: int = found[0]["n"]
        return n

    async def incidents(self, state: IncidentState | None = None, *,
                        pending_only: bool = False, limit: int = 500) -> list[Incident]:
        """Newest first; `pending_only`: firing and waiting for an approver."""
        return (await self.incident_rows(state, pending_only=pending_only,
                                         limit=limit)).build()

    async def incident_rows(self, state: IncidentState | None = None, *,
                            pending_only: bool = False, limit: int = 500) -> "IncidentRows":
        """As `incidents`, unbuilt: a long list is better built beside the event loop."""
        args: tuple[str, ...]
        where, args = "", ()
        if pending_only:
            where = "WHERE state = 'firing' AND approval = 'pending'"
        elif state is not None:
            where, args = "WHERE state = ?", (str(state),)
        found = await self._all(f"SELECT * FROM incidents {where} ORDER BY id DESC LIMIT ?",
                                *args, limit)
        return await self._rows_with_alerts(found)

    async def pending_approvals(self) -> list[Incident]:
        found = await self._all("SELECT * FROM incidents WHERE state = 'firing'"
                                " AND approval = 'pending' ORDER BY id")
        return await self._with_alerts(found)

    async def pending_with_history(self) -> list[PendingIncident]:
        found = await self._all(
            # Asked when it opened, or when an approver asked again since.
            "SELECT i.*, coalesce((SELECT max(at) FROM incident_events e"
            " WHERE e.incident_id = i.id AND e.kind = 'asked-again'),"
            " (SELECT min(at) FROM incident_events e WHERE e.incident_id = i.id"
            " AND e.kind IN ('opened', 'reopened'))) AS first_asked,"
            " (SELECT count(*) FROM incidents o WHERE o.labels = i.labels AND o.id < i.id)"
            " AS earlier,"
            " (SELECT count(*) FROM incidents o WHERE o.labels = i.labels AND o.id < i.id"
            " AND o.ticket_key IS NOT NULL) AS earlier_tickets"
            " FROM incidents i WHERE state = 'firing' AND approval = 'pending'"
            " ORDER BY i.id")
        pending = []
        for row, incident in zip(found, await self._with_alerts(found), strict=True):
            # Every incident has its 'opened' event; one without is read as asked on opening.
            asked = row["first_asked"]
            pending.append(PendingIncident(
                incident, asked if asked is not None else incident.opened_at,
                row["earlier"], row["earlier_tickets"]))
        return pending

    async def ticketed_open(self, limit: int = 100) -> list[Incident]:
        found = await self._all("SELECT * FROM incidents WHERE state = 'firing'"
                                " AND ticket_key IS NOT NULL ORDER BY id DESC LIMIT ?", limit)
        return await self._with_alerts(found)

    async def informational_firing(self, limit: int = 500) -> list[Incident]:
        """Firing incidents that never need an approver, by vessel."""
        found = await self._all("SELECT * FROM incidents WHERE state = 'firing'"
                                " AND approval = 'none'"
                                " ORDER BY json_extract(labels, '$.vessel'), id LIMIT ?", limit)
        return await self._with_alerts(found)

    async def rejected_firing(self, limit: int = 200) -> list[RejectedIncident]:
        """Firing incidents rejected or snoozed, each with the newest rejection of its key."""
        found = await self._all(
            "SELECT i.*, d.id AS d_id, d.incident_id AS d_incident, d.at AS d_at,"
            " d.user AS d_user, d.kind AS d_kind, d.comment AS d_comment"
            " FROM incidents i LEFT JOIN decisions d ON d.id = ("
            "  SELECT max(r.id) FROM decisions r JOIN incidents o ON o.id = r.incident_id"
            "  WHERE o.dedupe_key = i.dedupe_key AND r.kind = 'reject' AND o.id <= i.id)"
            " WHERE i.state = 'firing' AND i.approval = 'rejected' ORDER BY i.id LIMIT ?",
            limit)
        incidents = await self._with_alerts(found)
        return [RejectedIncident(incident, None if r["d_id"] is None else Decision(
            r["d_id"], r["d_incident"], r["d_at"], r["d_user"],
            _enum(DecisionKind, r["d_kind"], "decision", r["d_id"]), r["d_comment"]))
                for incident, r in zip(incidents, found, strict=True)]

    async def last_event_id(self) -> int:
        """Grows with every visible change: each one appends an incident event."""
        found = await self._all("SELECT coalesce(max(id), 0) AS n FROM incident_events")
        n: int = found[0]["n"]
        return n

    async def recently_resolved(self, limit: int = 20) -> list[Incident]:
        found = await self._all("SELECT * FROM incidents WHERE state = 'resolved'"
                                " ORDER BY resolved_at DESC LIMIT ?", limit)
        return await self._with_alerts(found)

    async def earlier_incidents(self, incident_id: int) -> list[PastIncident]:
        """Incidents before this one with the same labels, newest first."""
        found = await self._all(
            "SELECT opened_at, duration_seconds, ticket_key FROM incidents"
            " WHERE labels = (SELECT labels FROM incidents WHERE id = ?) AND id < ?"
            " ORDER BY id DESC", incident_id, incident_id)
        return [PastIncident(_when(r["opened_at"]) or 0.0, _span(r["duration_seconds"]),
                             r["ticket_key"]) for r in found]

    async def counts_by_state(self) -> dict[str, int]:
        found = await self._all("SELECT state, count(*) AS n FROM incidents GROUP BY state")
        return {r["state"]: r["n"] for r in found}

    async def events(self, incident_id: int, *, before: int | None = None,
                     limit: int | None = None) -> list[Event]:
        """Oldest first; with `limit`, the newest `limit` of those before event `before`."""
        found = await self._all(
            "SELECT * FROM (SELECT id, at, kind, detail FROM incident_events"
            " WHERE incident_id = ? AND id < ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            incident_id, before if before is not None else 2**63 - 1,
            limit if limit is not None else -1)
        return [Event(r["at"], _enum(EventKind, r["kind"], "incident_event", r["id"]),
                      r["detail"], r["id"]) for r in found]

    async def work(self, incident_id: int) -> list[Work]:
        found = await self._all("SELECT * FROM outbox WHERE incident_id = ? ORDER BY id",
                                incident_id)
        return [Work.from_row(r) for r in found]

    async def work_item(self, work_id: int) -> Work | None:
        found = await self._all("SELECT * FROM outbox WHERE id = ?", work_id)
        return Work.from_row(found[0]) if found else None

    async def due_work(self, now: float) -> list[Work]:
        found = await self._all("SELECT * FROM outbox WHERE state = 'pending'"
                                " AND next_attempt_at <= ? ORDER BY id", now)
        return [Work.from_row(r) for r in found]

    async def next_due(self) -> float | None:
        found = await self._all("SELECT min(next_attempt_at) AS due FROM outbox"
                                " WHERE state = 'pending'")
        due: float | None = found[0]["due"]
        return due

    async def work_waiting(self) -> int:
        found = await self._all("SELECT count(*) AS n FROM outbox WHERE state = 'pending'")
        n: int = found[0]["n"]
        return n

    async def decisions(self, limit: int = 500) -> list[Decision]:
        found = await self._all("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", limit)
        return [Decision(r["id"], r["incident_id"], r["at"], r["user"],
                         _enum(DecisionKind, r["kind"], "decision", r["id"]), r["comment"])
                for r in found]


class Writer(Reader):
    """Reads and writes inside one transaction."""

    async def _run(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""
        async with self._db.execute(sql, args) as cursor:
            return cursor.rowcount

    async def _sync(self, method: Callable[Concatenate[SyncWriter, P], R],
                    *args: P.args, **kwargs: P.kwargs) -> R:
        """A SyncWriter statement, in one hop to the database's thread."""
        return await _in_thread(self._db, lambda conn: method(SyncWriter(conn), *args,
                                                              **kwargs))

    async def append_event(self, incident_id: int, at: float, kind: EventKind,
                           detail: str = "") -> None:
        await self._sync(SyncWriter.append_event, incident_id, at, kind, detail)

    async def add_incident(self, dedupe_key: str, labels: dict[str, str], approval: Approval,
                           opened_at: float, now: float, details: dict[str, Any],
                           asked_at: float | None) -> int:
        return await self._sync(SyncWriter.add_incident, dedupe_key, labels, approval,
                                opened_at, now, details, asked_at)

    async def enqueue(self, incident_id: int, kind: WorkKind, now: float,
                      body: str = "") -> None:
        await self._sync(SyncWriter.enqueue, incident_id, kind, now, body)

    async def set_approval(self, incident_id: int, approval: Approval) -> None:
        await self._run("UPDATE incidents SET approval = ? WHERE id = ?", str(approval),
                        incident_id)

    async def add_decision(self, incident_id: int, at: float, user: str, kind: DecisionKind,
                           comment: str) -> None:
        await self._run("INSERT INTO decisions (incident_id, at, user, kind, comment)"
                        " VALUES (?, ?, ?, ?, ?)", incident_id, at, user, str(kind), comment)

    async def ask_again(self, incident_id: int, now: float) -> None:
        """Back to pending: asked, announced and reminded afresh."""
        await self._run("UPDATE incidents SET approval = 'pending', asked_at = ?,"
                        " announced_at = NULL, reminded_at = NULL WHERE id = ?",
                        now, incident_id)

    async def mark_announced(self, incident_id: int, at: float) -> None:
        await self._run("UPDATE incidents SET announced_at = ? WHERE id = ?", at, incident_id)

    async def mark_reminded(self, incident_id: int, at: float) -> None:
        await self._run("UPDATE incidents SET reminded_at = ? WHERE id = ?", at, incident_id)

    async def set_ticket_key(self, incident_id: int, key: str) -> None:
        await self._run("UPDATE incidents SET ticket_key = ? WHERE id = ?", key, incident_id)

    async def set_ticket_status(self, key: str, status: str) -> list[int]:
        """Record a ticket's status on its incidents: their ids."""
        found = await self._all("SELECT id FROM incidents WHERE ticket_key = ? ORDER BY id",
                                key)
        await self._run("UPDATE incidents SET ticket_status = ? WHERE ticket_key = ?",
                        status, key)
        return [r["id"] for r in found]

    async def work_done(self, work_id: int, now: float) -> None:
        await self._run("UPDATE outbox SET state = 'done', done_at = ?, attempts = attempts + 1,"
                        " last_error = NULL, attempt = 'none' WHERE id = ?", now, work_id)

    async def work_attempt(self, work_id: int, attempt: Attempt, marker: str | None) -> None:
        """Record what is about to be tried at JIRA (or that nothing is under way)."""
        await self._run("UPDATE outbox SET attempt = ?, marker = ? WHERE id = ?",
                        str(attempt), marker, work_id)

    async def work_uncertain(self, work_id: int, attempts: int, at: float, error: str,
                             since: float) -> None:
        await self._run("UPDATE outbox SET attempt = 'uncertain', attempts = ?,"
                        " next_attempt_at = ?, last_error = ?,"
                        " uncertain_since = coalesce(uncertain_since, ?) WHERE id = ?",
                        attempts, at, error, since, work_id)

    async def declare_no_ticket(self, incident_id: int, now: float) -> bool:
        """Let one new create go ahead after a human found no ticket: whether one waited."""
        return bool(await self._run(
            "UPDATE outbox SET state = 'pending', attempt = 'none', marker = NULL,"
            " uncertain_since = NULL, attempts = 0, next_attempt_at = ?, last_error = NULL"
            " WHERE incident_id = ? AND kind = 'create' AND state IN ('pending', 'failed')"
            " AND attempt = 'uncertain'", now, incident_id))

    async def work_retry_at(self, work_id: int, attempts: int, at: float, error: str) -> None:
        await self._run("UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                        " WHERE id = ?", attempts, at, error, work_id)

    async def work_failed(self, work_id: int, attempts: int, error: str) -> None:
        await self._run("UPDATE outbox SET state = 'failed', attempts = ?, last_error = ?"
                        " WHERE id = ?", attempts, error, work_id)

    async def work_postpone(self, work_id: int, at: float, reason: str) -> None:
        await self._run("UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                        at, reason, work_id)

    async def retry_failed_work(self, incident_id: int, now: float) -> int:
        """Put an incident's failed ticket work back in the queue: how many pieces."""
        return await self._run("UPDATE outbox SET state = 'pending', next_attempt_at = ?,"
                               " attempts = 0 WHERE incident_id = ? AND state = 'failed'",
                               now, incident_id)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise Unavailable(f"database: {exc}") from exc


class Database:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._on_commit: list[Callable[[], None]] = []

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each committed transaction (the live page listens)."""
        self._on_commit.append(listener)

    @classmethod
    async def open(cls, path: Path | str) -> "Database":
        folder = Path(path).parent
        if not folder.is_dir():
            # Checked here: a failed connect leaves aiosqlite's worker thread behind.
            raise OSError(f"directory {folder} does not exist")
        with _unavailable():
            db = await aiosqlite.connect(path, isolation_level=None)
        try:
            with _unavailable():
                db.row_factory = aiosqlite.Row
                await db.execute("PRAGMA journal_mode=WAL")
                # NORMAL: a committed transaction survives the process being killed; only
                # a power cut can take the last ones.
                await db.execute("PRAGMA synchronous=NORMAL")
                await db.execute("PRAGMA foreign_keys=ON")
                await db.execute("PRAGMA busy_timeout=5000")
                # Checkpoints run beside the writer (checkpoint_forever): one inside a
                # commit stalls every waiting webhook for its fsync.
                await db.execute("PRAGMA wal_autocheckpoint=0")
                await cls._migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    @staticmethod
    async def _migrate(db: aiosqlite.Connection) -> None:
        row = await (await db.execute("PRAGMA user_version")).fetchone()
        assert row is not None  # PRAGMA user_version always answers one row
        version = row[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema {version} is newer than this receiver")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            log.info("database schema migrated to version %d", number)

    async def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # the next start checkpoints anyway
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._db.close()

    async def checkpoint_forever(self, path: Path | str, every: float = 2.0) -> None:
        """Copy the WAL into the database from a second connection, off the write path."""
        db = await aiosqlite.connect(path)
        try:
            while True:
                await asyncio.sleep(every)
                try:
                    await db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    log.warning("checkpoint failed: %s", exc)
        finally:
            await db.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Writer]:
        """All or nothing; a database error leaves as `Unavailable`."""
        async with self._lock:
            with _unavailable():
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield Writer(self._db)
                except BaseException:
                    await self._db.execute("ROLLBACK")
                    raise
                await self._db.execute("COMMIT")
        for listener in self._on_commit:
            listener()

    async def write(self, fn: Callable[[SyncWriter], R]) -> R:
        """`fn` as one transaction, all or nothing, run whole in the database's thread:
        one hop for all its statements, and the event loop stays free meanwhile. A
        database error leaves as `Unavailable`."""
        async with self._lock:
            with _unavailable():
                # Cancelled, it still runs to its end in the thread; aiosqlite runs calls
                # in order, so nothing queued after it can interleave.
                result = await _in_thread(self._db, lambda db: _transact(db, fn))
        for listener in self._on_commit:
            listener()
        return result

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        """Several reads that see one state: no transaction commits in between."""
        async with self._lock:
            with _unavailable():
                yield Reader(self._db)
