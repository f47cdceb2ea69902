"""The receiver's state in SQLite (WAL), with a versioned schema.

Every change happens inside `transaction()`, which holds a lock: the one connection is
shared by all requests, and their statements must not interleave.
"""

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite

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
)


class Store:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> "Store":
        folder = Path(path).parent
        if not folder.is_dir():
            # Checked here: a failed connect leaves aiosqlite's worker thread behind.
            raise OSError(f"directory {folder} does not exist")
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a committed transaction survives the process being killed; only a
            # power cut can take the last ones.
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            # Checkpoints run beside the writer (checkpoint_forever): one inside a commit
            # stalls every waiting webhook for its fsync.
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
            await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self.db.close()

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
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several reads that see one state: no transaction commits in between."""
        async with self._lock:
            yield self.db

    async def fetch_all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Read outside any transaction (the lock keeps half-done writes out of sight)."""
        async with self._lock:
            return await rows(self.db, sql, *args)

    async def fetch_one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        found = await self.fetch_all(sql, *args)
        return found[0] if found else None


async def rows(db: aiosqlite.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with db.execute(sql, args) as cursor:
        return [dict(row) for row in await cursor.fetchall()]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
