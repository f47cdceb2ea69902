"""What the report schedule has written, in the state DB: all of its SQL is here.

One row per period, timezone and format: the file written last and the fingerprint of the
figures it holds, so a report is written again only when its figures change. The schedule
keeps its own connection to the state DB: its short writes never land inside a collection
run's transaction on the run log's connection.
"""

from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from . import state_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS report_files (
    period TEXT NOT NULL,
    timezone TEXT NOT NULL,
    format TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    path TEXT NOT NULL,
    written_at REAL NOT NULL,
    versions INTEGER NOT NULL,
    PRIMARY KEY (period, timezone, format)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Written:
    period: str
    timezone: str
    format: str
    fingerprint: str
    path: str
    written_at: float
    versions: int  # how many times this report was written (1: never changed)


class ReportStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> "ReportStore":
        async def setup(db: aiosqlite.Connection) -> None:
            await db.execute("PRAGMA busy_timeout=10000")
            await db.executescript(SCHEMA)

        return cls(await state_db.connect(path, setup))

    async def close(self) -> None:
        await self._db.close()

    async def get(self, period: str, timezone: str, fmt: str) -> Written | None:
        async with self._db.execute(
                "SELECT period, timezone, format, fingerprint, path, written_at, versions"
                " FROM report_files WHERE period = ? AND timezone = ? AND format = ?",
                (period, timezone, fmt)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else Written(*row)

    async def record(self, written: Written) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO report_files (period, timezone, format, fingerprint,"
            " path, written_at, versions) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (written.period, written.timezone, written.format, written.fingerprint,
             written.path, written.written_at, written.versions))
        await self._db.commit()

    async def recent(self, limit: int) -> list[Written]:
        """The files written last, newest first (for the console's report page)."""
        async with self._db.execute(
                "SELECT period, timezone, format, fingerprint, path, written_at, versions"
                " FROM report_files ORDER BY written_at DESC, format LIMIT ?",
                (limit,)) as cursor:
            rows = await cursor.fetchall()
        return [Written(*row) for row in rows]
