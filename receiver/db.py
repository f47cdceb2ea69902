"""The receiver's state in SQLite (WAL): schema, migrations and every query, with typed rows.

This is the only module that speaks SQL. Every change happens inside `transaction()`,
which holds a lock: the one connection is shared by all requests, and their statements
must not interleave. SQLite's errors leave here as `errors.Unavailable`.

Rows are read into dataclasses. A stored value this version does not know (a state, an
approval, a kind written by another version) is read as `UNKNOWN` with a logged warning,
so one odd row never takes a page down; the row itself is left as it is.
"""

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

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
    # What a piece of ticket work is doing at JIRA, committed before the call: a create or
    # comment found mid-way after a crash may have happened, and is never simply repeated.
    """
    ALTER TABLE outbox ADD COLUMN attempt TEXT NOT NULL DEFAULT 'none'
        CHECK (attempt IN ('none', 'creating', 'commenting', 'uncertain'));
    ALTER TABLE outbox ADD COLUMN marker TEXT;
    ALTER TABLE outbox ADD COLUMN uncertain_since REAL;
    """,
)


# The stored values of these enums are the schema's: never rename one.
class IncidentState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    UNKNOWN = "unknown"  # never stored: a value this version cannot read


class Approval(StrEnum):
    NONE = "none"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
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
    UNKNOWN = "unknown"

    @classmethod
    def ticket_done(cls, work: WorkKind) -> "EventKind":
        """The event that records a piece of ticket work done."""
        try:
            return cls(f"ticket-{work}")
        except ValueError:
            return cls.UNKNOWN


E = TypeVar("E", bound=StrEnum)


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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Incident":
        rid = row["id"]
        return cls(
            id=rid, dedupe_key=row["dedupe_key"],
            labels=_object(row["labels"], "incident", "labels", rid),
            state=_enum(IncidentState, row["state"], "incident", rid),
            approval=_enum(Approval, row["approval"], "incident", rid),
            opened_at=row["opened_at"], last_seen=row["last_seen"],
            resolved_at=row["resolved_at"], duration_seconds=row["duration_seconds"],
            notifications=row["notifications"],
            details=_object(row["details"], "incident", "details", rid),
            ticket_key=row["ticket_key"], asked_at=row["asked_at"],
            announced_at=row["announced_at"], reminded_at=row["reminded_at"],
            ticket_status=row["ticket_status"])


@dataclass(frozen=True, slots=True)
class PendingIncident:
    """An incident waiting for an approver, with what the approval page shows beside it."""
    incident: Incident
    asked_at: float  # the first time it opened or reopened
    earlier: int  # earlier incidents with the same labels
    earlier_tickets: int  # ... of which had a ticket


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


class Reader:
    """Reads on a connection the caller holds the lock of."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        async with self._db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    async def incident(self, incident_id: int) -> Incident | None:
        found = await self._all("SELECT * FROM incidents WHERE id = ?", incident_id)
        return Incident.from_row(found[0]) if found else None

    async def latest_incident(self, dedupe_key: str) -> Incident | None:
        found = await self._all("SELECT * FROM incidents WHERE dedupe_key = ?"
                                " ORDER BY id DESC LIMIT 1", dedupe_key)
        return Incident.from_row(found[0]) if found else None

    async def firing_incident(self, dedupe_key: str) -> Incident | None:
        found = await self._all("SELECT * FROM incidents WHERE dedupe_key = ?"
                                " AND state = 'firing'", dedupe_key)
        return Incident.from_row(found[0]) if found else None

    async def incidents(self, state: IncidentState | None = None, *,
                        pending_only: bool = False, limit: int = 500) -> list[Incident]:
        """Newest first; `pending_only`: firing and waiting for an approver."""
        args: tuple[str, ...]
        where, args = "", ()
        if pending_only:
            where = "WHERE state = 'firing' AND approval = 'pending'"
        elif state is not None:
            where, args = "WHERE state = ?", (str(state),)
        found = await self._all(f"SELECT * FROM incidents {where} ORDER BY id DESC LIMIT ?",
                                *args, limit)
        return [Incident.from_row(r) for r in found]

    async def pending_approvals(self) -> list[Incident]:
        found = await self._all("SELECT * FROM incidents WHERE state = 'firing'"
                                " AND approval = 'pending' ORDER BY id")
        return [Incident.from_row(r) for r in found]

    async def pending_with_history(self) -> list[PendingIncident]:
        found = await self._all(
            "SELECT i.*, (SELECT min(at) FROM incident_events e WHERE e.incident_id = i.id"
            " AND e.kind IN ('opened', 'reopened')) AS first_asked,"
            " (SELECT count(*) FROM incidents o WHERE o.labels = i.labels AND o.id < i.id)"
            " AS earlier,"
            " (SELECT count(*) FROM incidents o WHERE o.labels = i.labels AND o.id < i.id"
            " AND o.ticket_key IS NOT NULL) AS earlier_tickets"
            " FROM incidents i WHERE state = 'firing' AND approval = 'pending'"
            " ORDER BY i.id")
        pending = []
        for row in found:
            incident = Incident.from_row(row)
            # Every incident has its 'opened' event; one without is read as asked on opening.
            asked = row["first_asked"]
            pending.append(PendingIncident(
                incident, asked if asked is not None else incident.opened_at,
                row["earlier"], row["earlier_tickets"]))
        return pending

    async def ticketed_open(self, limit: int = 100) -> list[Incident]:
        found = await self._all("SELECT * FROM incidents WHERE state = 'firing'"
                                " AND ticket_key IS NOT NULL ORDER BY id DESC LIMIT ?", limit)
        return [Incident.from_row(r) for r in found]

    async def recently_resolved(self, limit: int = 20) -> list[Incident]:
        found = await self._all("SELECT * FROM incidents WHERE state = 'resolved'"
                                " ORDER BY resolved_at DESC LIMIT ?", limit)
        return [Incident.from_row(r) for r in found]

    async def earlier_incidents(self, incident_id: int) -> list[PastIncident]:
        """Incidents before this one with the same labels, newest first."""
        found = await self._all(
            "SELECT opened_at, duration_seconds, ticket_key FROM incidents"
            " WHERE labels = (SELECT labels FROM incidents WHERE id = ?) AND id < ?"
            " ORDER BY id DESC", incident_id, incident_id)
        return [PastIncident(r["opened_at"], r["duration_seconds"], r["ticket_key"])
                for r in found]

    async def rejected_since(self, dedupe_key: str, since: float) -> bool:
        return bool(await self._all(
            "SELECT 1 FROM incidents i JOIN incident_events e ON e.incident_id = i.id"
            " WHERE i.dedupe_key = ? AND e.kind = 'rejected' AND e.at >= ? LIMIT 1",
            dedupe_key, since))

    async def counts_by_state(self) -> dict[str, int]:
        found = await self._all("SELECT state, count(*) AS n FROM incidents GROUP BY state")
        return {r["state"]: r["n"] for r in found}

    async def events(self, incident_id: int) -> list[Event]:
        found = await self._all("SELECT id, at, kind, detail FROM incident_events"
                                " WHERE incident_id = ? ORDER BY id", incident_id)
        return [Event(r["at"], _enum(EventKind, r["kind"], "incident_event", r["id"]),
                      r["detail"]) for r in found]

    async def work(self, incident_id: int) -> list[Work]:
        found = await self._all("SELECT * FROM outbox WHERE incident_id = ? ORDER BY id",
                                incident_id)
        return [Work.from_row(r) for r in found]

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

    async def append_event(self, incident_id: int, at: float, kind: EventKind,
                           detail: str = "") -> None:
        await self._run("INSERT INTO incident_events (incident_id, at, kind, detail)"
                        " VALUES (?, ?, ?, ?)", incident_id, at, str(kind), detail)

    async def add_notification(self, at: float, group_key: str, status: str, alerts: int,
                               body: str) -> None:
        await self._run("INSERT INTO notifications (received_at, group_key, status, alerts,"
                        " body) VALUES (?, ?, ?, ?, ?)", at, group_key, status, alerts, body)

    async def add_incident(self, dedupe_key: str, labels: dict[str, str], approval: Approval,
                           opened_at: float, now: float, details: dict[str, Any],
                           asked_at: float | None) -> int:
        async with self._db.execute(
                "INSERT INTO incidents (dedupe_key, labels, state, approval, opened_at,"
                " last_seen, notifications, details, asked_at)"
                " VALUES (?, ?, 'firing', ?, ?, ?, 1, ?, ?)",
                (dedupe_key, dumps(labels), str(approval), opened_at, now, dumps(details),
                 asked_at)) as cursor:
            incident = cursor.lastrowid
        assert incident is not None  # an INSERT has a rowid
        return incident

    async def update_alert(self, dedupe_key: str, fingerprint: str, entry: dict[str, Any],
                           now: float) -> int | None:
        """Update one alert of the key's firing incident in place: its id, or None.

        `fingerprint` must be safe inside a JSON path (letters, digits, _ and -).
        """
        # list(): aiosqlite declares an Iterable; it is fetchall()'s list.
        updated = list(await self._db.execute_fetchall(  # one round trip to the db thread
            "UPDATE incidents SET last_seen = ?, notifications = notifications + 1,"
            " details = json_set(details, ?, json(?))"
            " WHERE dedupe_key = ? AND state = 'firing' RETURNING id",
            (now, f'$."{fingerprint}"', dumps(entry), dedupe_key)))
        return int(updated[0][0]) if updated else None

    async def seen(self, incident_id: int, now: float, details: dict[str, Any]) -> None:
        await self._run("UPDATE incidents SET last_seen = ?, notifications = notifications + 1,"
                        " details = ? WHERE id = ?", now, dumps(details), incident_id)

    async def reopen(self, incident_id: int, now: float, details: dict[str, Any]) -> None:
        await self._run("UPDATE incidents SET state = 'firing', resolved_at = NULL,"
                        " duration_seconds = NULL, last_seen = ?,"
                        " notifications = notifications + 1, details = ? WHERE id = ?",
                        now, dumps(details), incident_id)

    async def resolve(self, incident_id: int, ended: float, duration: float, now: float,
                      details: dict[str, Any]) -> None:
        await self._run("UPDATE incidents SET state = 'resolved', resolved_at = ?,"
                        " duration_seconds = ?, last_seen = ?,"
                        " notifications = notifications + 1, details = ? WHERE id = ?",
                        ended, duration, now, dumps(details), incident_id)

    async def set_approval(self, incident_id: int, approval: Approval) -> None:
        await self._run("UPDATE incidents SET approval = ? WHERE id = ?", str(approval),
                        incident_id)

    async def add_decision(self, incident_id: int, at: float, user: str, kind: DecisionKind,
                           comment: str) -> None:
        await self._run("INSERT INTO decisions (incident_id, at, user, kind, comment)"
                        " VALUES (?, ?, ?, ?, ?)", incident_id, at, user, str(kind), comment)

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

    async def enqueue(self, incident_id: int, kind: WorkKind, now: float,
                      body: str = "") -> None:
        if kind is WorkKind.CREATE:
            # The unique index on (incident_id) for 'create' makes a second ticket impossible.
            await self._run("INSERT OR IGNORE INTO outbox (incident_id, kind, next_attempt_at,"
                            " created_at) VALUES (?, 'create', ?, ?)", incident_id, now, now)
            return
        await self._run("INSERT INTO outbox (incident_id, kind, body, next_attempt_at,"
                        " created_at) VALUES (?, ?, ?, ?, ?)",
                        incident_id, str(kind), body, now, now)

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

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        """Several reads that see one state: no transaction commits in between."""
        async with self._lock:
            with _unavailable():
                yield Reader(self._db)
