"""Persistent run log and last known vessel state, in SQLite through aiosqlite."""

import dataclasses
import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiosqlite

from . import ledger_db
from .collector import RunResult
from .model import DeviceObservation, VesselObservation
from .sla.hours import Profile, Span
from .sla.ledger import Ledger
from .sla.maintenance import MaintenanceSchedule

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    duration_seconds REAL NOT NULL,
    vessels_ok INTEGER NOT NULL,
    vessels_failed INTEGER NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started_at ON runs (started_at);
CREATE INDEX IF NOT EXISTS runs_result ON runs (result, id);
CREATE TABLE IF NOT EXISTS run_vessels (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    vessel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    duration_seconds REAL NOT NULL,
    response_bytes INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, vessel)
);
CREATE INDEX IF NOT EXISTS run_vessels_vessel ON run_vessels (vessel, run_id);
CREATE TABLE IF NOT EXISTS vessel_state (
    vessel TEXT PRIMARY KEY,
    last_success REAL NOT NULL,
    observation TEXT NOT NULL
);
"""

RUN_COLUMNS = "id, started_at, finished_at, duration_seconds, vessels_ok, vessels_failed, result"


_DEVICE_FIELDS = tuple(f.name for f in dataclasses.fields(DeviceObservation))


def _observation_to_json(observation: VesselObservation,
                         profiles: Mapping[str, Profile]) -> str:
    # Not dataclasses.asdict: its deep copies cost ~0.4 s per 1,000 vessels on the loop.
    # The ledger's profile of each device rides along, so that a restart need not ask the
    # server the 24 h window's edge; a version that does not know it drops it.
    return json.dumps({
        address: {**{name: _plain(getattr(device, name)) for name in _DEVICE_FIELDS},
                  **({"profile": profiles[address].pack()} if address in profiles else {})}
        for address, device in observation.devices.items()
    })


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):  # window label -> Span
        return {k: dataclasses.astuple(v) for k, v in value.items()}
    return value


def _profiles_from_json(text: str) -> dict[str, Profile]:
    profiles = {}
    for address, fields in json.loads(text).items():
        if (profile := Profile.unpack(fields.get("profile"))) is not None:
            profiles[address] = profile
    return profiles


def _observation_from_json(text: str) -> VesselObservation:
    devices = {}
    for address, fields in json.loads(text).items():
        # Fields another version wrote and this one does not know are dropped.
        known = {k: v for k, v in fields.items() if k in _DEVICE_FIELDS}
        # Older versions stored sample counts ("counts"): no "spans", so it is not taken.
        known["spans"] = {str(label): Span(*(float(x) for x in values))
                          for label, values in known["spans"].items()}
        devices[address] = DeviceObservation(**known)
    return VesselObservation(devices=devices)


class RunLog:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._pruned_day = -1

    @property
    def db(self) -> aiosqlite.Connection:
        return self._db

    @classmethod
    async def open(cls, path: Path | str) -> "RunLog":
        folder = Path(path).parent
        if not folder.is_dir():
            # Checked here: a failed connect leaves aiosqlite's worker thread behind.
            raise sqlite3.OperationalError(f"directory {folder} does not exist")
        db = await aiosqlite.connect(path)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.executescript(SCHEMA)
            await ledger_db.create(db)
            await db.commit()
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def record(self, run: RunResult, retention: float, ledger: Ledger | None = None,
                     ledger_retention: float = 0.0) -> int:
        """Store a run with its vessels, the last known states and the ledger's changes, in
        one transaction; prune old runs."""
        day = int(run.finished_at // 86400)
        try:
            run_id = await self._insert(run, retention, ledger)
            if ledger is not None:
                await ledger_db.write(self._db, ledger, run.finished_at, ledger_retention,
                                      prune=day != self._pruned_day)
            await self._db.commit()
        except BaseException:
            await self._db.rollback()  # never leave half a run for the next commit
            raise
        if ledger is not None:
            ledger.dirty.clear()
            ledger.cursors_dirty.clear()
            self._pruned_day = day
        return run_id

    async def record_ledger(self, ledger: Ledger, schedule: MaintenanceSchedule,
                            now: float) -> None:
        """Store the ledger's changes with the windows they were made for, in one
        transaction: a window applied is never applied again, nor forgotten."""
        try:
            await ledger_db.write(self._db, ledger, now, 0.0, prune=False)
            await ledger_db.write_schedule(self._db, schedule)
            await self._db.commit()
        except BaseException:
            await self._db.rollback()
            raise
        ledger.dirty.clear()
        ledger.cursors_dirty.clear()

    async def _insert(self, run: RunResult, retention: float, ledger: Ledger | None) -> int:
        cursor = await self._db.execute(
            "INSERT INTO runs (started_at, finished_at, duration_seconds, vessels_ok,"
            " vessels_failed, result) VALUES (?, ?, ?, ?, ?, ?)",
            (run.started_at, run.finished_at, run.duration, run.ok, run.failed, run.result),
        )
        run_id = cursor.lastrowid
        assert run_id is not None
        await self._db.executemany(
            "INSERT INTO run_vessels (run_id, vessel, status, attempts, duration_seconds,"
            " response_bytes, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    v.vessel,
                    v.status.value,
                    v.attempts,
                    v.duration,
                    v.response_bytes,
                    v.error,
                )
                for v in run.vessels
            ],
        )
        await self._db.executemany(
            "INSERT OR REPLACE INTO vessel_state (vessel, last_success, observation)"
            " VALUES (?, ?, ?)",
            [
                (v.vessel, v.finished_at, _observation_to_json(
                    v.observation, ledger.profiles(v.vessel) if ledger is not None else {}))
                for v in run.vessels
                if v.observation is not None
            ],
        )
        await self._db.execute(
            "DELETE FROM runs WHERE started_at < ?", (run.started_at - retention,)
        )
        return run_id

    async def last_states(
        self,
    ) -> Iterable[tuple[str, float, VesselObservation, dict[str, Profile]]]:
        async with self._db.execute(
            "SELECT vessel, last_success, observation FROM vessel_state"
        ) as cursor:
            rows = await cursor.fetchall()
        states = []
        for row in rows:
            try:
                observation = _observation_from_json(row["observation"])
                profiles = _profiles_from_json(row["observation"])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                log.warning("ignoring unreadable saved state of vessel %s: %r", row["vessel"], exc)
                continue
            states.append((row["vessel"], row["last_success"], observation, profiles))
        return states

    async def last_good_run_at(self) -> float | None:
        """End of the newest run in which any vessel answered."""
        async with self._db.execute(
            "SELECT max(finished_at) FROM runs WHERE result != 'failed'"
        ) as cursor:
            row = await cursor.fetchone()
        return row[0] if row is not None else None

    async def last_results(self) -> list[dict[str, Any]]:
        """Each vessel's outcome in the newest run."""
        async with self._db.execute(
            "SELECT vessel, status, attempts, duration_seconds, response_bytes, error"
            " FROM run_vessels WHERE run_id = (SELECT max(id) FROM runs)"
        ) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def runs(
        self, limit: int, before: int | None = None, result: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the id cursor from the previous page."""
        where: list[str] = []
        args: list[int | str] = []
        if before is not None:
            where.append("id < ?")
            args.append(before)
        if result is not None:
            where.append("result = ?")
            args.append(result)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        async with self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs {clause} ORDER BY id DESC LIMIT ?", (*args, limit)
        ) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def retries(self, run_ids: list[int]) -> dict[int, int]:
        """Attempts beyond the first, summed per run."""
        marks = ",".join("?" * len(run_ids))
        async with self._db.execute(
            f"SELECT run_id, sum(attempts - 1) FROM run_vessels WHERE run_id IN ({marks})"
            " GROUP BY run_id", run_ids
        ) as cursor:
            return {row[0]: row[1] for row in await cursor.fetchall()}

    async def vessel_runs(self, vessel: str, limit: int) -> list[dict[str, Any]]:
        """The vessel's newest collection attempts, newest first."""
        async with self._db.execute(
            "SELECT v.run_id, r.started_at, v.status, v.attempts, v.duration_seconds,"
            " v.response_bytes, v.error FROM run_vessels v JOIN runs r ON r.id = v.run_id"
            " WHERE v.vessel = ? ORDER BY v.run_id DESC LIMIT ?", (vessel, limit)
        ) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def run(self, run_id: int) -> dict[str, Any] | None:
        async with self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        async with self._db.execute(
            "SELECT vessel, status, attempts, duration_seconds, response_bytes, error"
            " FROM run_vessels WHERE run_id = ? ORDER BY vessel",
            (run_id,),
        ) as cursor:
            vessels = [dict(r) for r in await cursor.fetchall()]
        return {**dict(row), "vessels": vessels}
