"""Persistent run log and last known vessel state, in SQLite through aiosqlite."""

import dataclasses
import json
import logging
import math
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import aiosqlite

from . import ledger_db, state_db
from .collector import RunResult, VesselResult
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
_OBSERVED = b"\x01"  # leads an observation stored packed: its format (then zlib)
_HEAD = struct.Struct("<I")  # length of the JSON header (addresses, windows)
_TIMES = ("last_sample", "last_loss", "last_rtt", "last_reply", "first_sample")
_FORMS: dict[tuple[int, int], struct.Struct] = {}
_PER_DEVICE, _PER_WINDOW = struct.calcsize("<5dBd"), struct.calcsize("<5d")
_COUNT = struct.Struct("<q")  # a device's profile: its int64s, then them
_SPANS = attrgetter("spans")


def _form(devices: int, windows: int) -> struct.Struct:
    # Per device: the five optional times (NaN: None), fresh, offset, then each window's
    # up, down, maintenance, unobserved, unheld (NaN: the device has no such window).
    key = (devices, windows)
    form = _FORMS.get(key)
    if form is None:
        form = _FORMS[key] = struct.Struct("<" + ("5dBd" + "5d" * windows) * devices)
    return form


def _pack_state(observation: VesselObservation, profiles: Mapping[str, bytes]) -> bytes:
    """A vessel's last state, packed by hand (and stored by `_stored_observation`):
    5,000 vessels x 20 devices as JSON cost a run about a second of float formatting; as
    doubles, a tenth of that. The ledger's profile of each device follows as int64s (a
    count, then its numbers), so that a restart need not ask the server the 24 h window's
    edge."""
    devices = observation.devices
    # In C: this runs for each of 5,000 vessels in a run's write.
    labels = tuple(dict.fromkeys(chain.from_iterable(map(_SPANS, devices.values()))))
    values: list[float] = []
    add = values.extend
    for d in devices.values():
        # None (not known) as NaN: only these five may be None.
        add((NAN if d.last_sample is None else d.last_sample,
             NAN if d.last_loss is None else d.last_loss,
             NAN if d.last_rtt is None else d.last_rtt,
             NAN if d.last_reply is None else d.last_reply,
             NAN if d.first_sample is None else d.first_sample, d.fresh, d.offset))
        spans = d.spans
        for label in labels:
            span = spans.get(label)
            add(_NO_SPAN if span is None else (
                span.up, span.down, span.maintenance, span.unobserved, span.unheld))
    key = (tuple(devices), labels)
    head = _HEADS.get(key)
    if head is None:
        if len(_HEADS) > 100_000:
            _HEADS.clear()
        text = json.dumps({"devices": list(devices), "windows": list(labels)}).encode()
        head = _HEADS[key] = _HEAD.pack(len(text)) + text
    trailer: list[bytes] = []
    for address in devices:
        profile = profiles.get(address, b"")  # Profile.packed_bytes(): int64s
        trailer.append(_COUNT.pack(len(profile) // 8))
        trailer.append(profile)
    return head + _form(len(devices), len(labels)).pack(*values) + b"".join(trailer)


def _stored_observation(packed: bytes) -> bytes:
    # Compressed: a tenth of the bytes to write each run, for less time than that saves.
    return _OBSERVED + zlib.compress(packed, 1)


def _pack_observation(observation: VesselObservation, profiles: Mapping[str, bytes]) -> bytes:
    """A vessel's last state as stored; `_unpack_observation` reads it."""
    return _stored_observation(_pack_state(observation, profiles))


# The header of each vessel's devices and windows, made once (they seldom change).
_HEADS: dict[tuple[tuple[str, ...], tuple[str, ...]], bytes] = {}
NAN = float("nan")
_NO_SPAN = (NAN,) * 5


def _unpack_observation(blob: bytes) -> tuple[VesselObservation, dict[str, Profile]]:
    if blob[:1] != _OBSERVED:
        raise ValueError(f"unknown observation format {blob[:1]!r}")
    try:
        blob = zlib.decompress(blob[1:])
    except zlib.error as exc:
        raise ValueError("not an observation") from exc
    (length,) = _HEAD.unpack_from(blob)
    try:
        head = json.loads(blob[_HEAD.size:_HEAD.size + length])
    except RecursionError as exc:  # nesting no writer makes
        raise ValueError("not an observation") from exc
    if not isinstance(head, dict):
        raise ValueError("not an observation")
    addresses, labels = head.get("devices"), head.get("windows")
    if (not isinstance(addresses, list) or not isinstance(labels, list)
            or not all(isinstance(x, str) for x in (*addresses, *labels))):
        raise ValueError("not an observation")
    start = _HEAD.size + length
    # Checked before a struct of that size is made: the header is read from disk.
    if len(addresses) * (_PER_DEVICE + _PER_WINDOW * len(labels)) > len(blob) - start:
        raise ValueError("not an observation")
    form = _form(len(addresses), len(labels))
    values = iter(form.unpack(blob[start:start + form.size]))
    rest = blob[start + form.size:]
    if len(rest) % 8:
        raise ValueError("not an observation: a profile is cut short")
    numbers = struct.unpack(f"<{len(rest) // 8}q", rest)
    devices = {}
    for address in addresses:
        sample, loss, rtt, reply, first = (None if math.isnan(t) else t
                                           for t in (next(values) for _ in _TIMES))
        fresh, offset = bool(next(values)), next(values)
        spans = {}
        for label in labels:
            figures = [next(values) for _ in range(5)]
            if not math.isnan(figures[0]):
                spans[label] = Span(*figures)
        devices[address] = DeviceObservation(spans, sample, loss, rtt, reply, first, fresh,
                                             offset)
    profiles: dict[str, Profile] = {}
    at = 0
    for address in addresses:
        if not numbers:
            break  # none saved: the server counts the edge until new ones reach it
        if at >= len(numbers):
            raise ValueError("not an observation: a device has no profile count")
        count = numbers[at]
        if count < 0 or at + 1 + count > len(numbers):
            raise ValueError("not an observation: a profile's count is wrong")
        profile = Profile.unpack(list(numbers[at + 1:at + 1 + count]))
        at += 1 + count
        if profile is not None:
            profiles[address] = profile
    if at != len(numbers):
        raise ValueError("not an observation: numbers after the profiles")
    return VesselObservation(devices=devices), profiles


def _observation_from_json(text: str) -> VesselObservation:
    """A previous version's state, stored as JSON."""
    devices = {}
    for address, fields in json.loads(text).items():
        # Fields another version wrote and this one does not know are dropped.
        known = {k: v for k, v in fields.items() if k in _DEVICE_FIELDS}
        # Older versions stored sample counts ("counts"): no "spans", so it is not taken.
        known["spans"] = {str(label): Span(*(float(x) for x in values))
                          for label, values in known["spans"].items()}
        devices[address] = DeviceObservation(**known)
    return VesselObservation(devices=devices)


async def last_outcomes(db: aiosqlite.Connection) -> tuple[dict[str, Any], dict[str, str]]:
    """Each vessel's newest successful collection and newest run status, for readers that
    open the state DB without a RunLog (reports); the types are the caller's to check."""
    async with db.execute("SELECT vessel, last_success FROM vessel_state") as c:
        success = {str(v): s for v, s in await c.fetchall()}
    async with db.execute("SELECT v.vessel, v.status FROM run_vessels v JOIN"
                          " (SELECT vessel, MAX(run_id) AS run FROM run_vessels GROUP BY vessel)"
                          " n ON v.vessel = n.vessel AND v.run_id = n.run") as c:
        status = {str(v): str(s) for v, s in await c.fetchall()}
    return success, status


@dataclass(frozen=True, slots=True)
class _PackedState:
    """A vessel's state packed when its result came in, and what it was packed from."""

    observation: VesselObservation
    at: float
    stamp: int | None  # of the ledger's books the profiles came from
    packed: bytes

    @classmethod
    def of(cls, observation: VesselObservation, at: float, ledger: Ledger | None,
           vessel: str) -> "_PackedState":
        profiles = ledger.saved_profiles(vessel) if ledger is not None else {}
        return cls(observation, at, _stamp(ledger, vessel), _pack_state(observation, profiles))


def _stamp(ledger: Ledger | None, vessel: str) -> int | None:
    books = ledger.vessels.get(vessel) if ledger is not None else None
    return books.stamp if books is not None else None


class RunLog:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._pruned_day = -1
        # Rows packed as each vessel's answer came in (`prepare`), for the run's write.
        self._states: dict[str, _PackedState] = {}
        self._ledger_rows: dict[str, ledger_db.VesselRows] = {}

    @property
    def db(self) -> aiosqlite.Connection:
        return self._db

    @classmethod
    async def open(cls, path: Path | str) -> "RunLog":
        async def setup(db: aiosqlite.Connection) -> None:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.executescript(SCHEMA)
            await ledger_db.create(db)

        return cls(await state_db.connect(path, setup))

    async def close(self) -> None:
        await self._db.close()

    def prepare(self, result: VesselResult, ledger: Ledger | None = None) -> None:
        """Pack a vessel's rows for the run's write as soon as its result is in, on the
        loop: the write then only compresses and stores them. Packing 5,000 vessels at the
        run's end held the loop for about 0.4 s in one go; a vessel at a time it is about
        50 us each, spread over the cycle. Rows whose source changed before the write are
        packed again there."""
        vessel = result.vessel
        self._states.pop(vessel, None)
        self._ledger_rows.pop(vessel, None)
        if result.observation is None:
            return
        try:
            self._states[vessel] = _PackedState.of(result.observation, result.finished_at,
                                                   ledger, vessel)
            if ledger is not None and (rows := ledger_db.pack_vessel(ledger, vessel)):
                self._ledger_rows[vessel] = rows
        except Exception:
            # Called as each vessel finishes: a fault here must not fail the others'
            # collection. The write packs this vessel again, and reports it there.
            log.exception("cannot pack the rows of vessel %s ahead of the write", vessel)
            self._states.pop(vessel, None)

    def _packed_state(self, result: VesselResult, ledger: Ledger | None) -> bytes:
        assert result.observation is not None
        ready = self._states.get(result.vessel)
        if (ready is not None and ready.observation is result.observation
                and ready.at == result.finished_at
                and ready.stamp == _stamp(ledger, result.vessel)):
            return ready.packed
        return _PackedState.of(result.observation, result.finished_at, ledger,
                               result.vessel).packed

    async def record(self, run: RunResult, retention: float, ledger: Ledger | None = None,
                     ledger_retention: float = 0.0) -> int:
        """Store a run with its vessels, the last known states and the ledger's changes, in
        one transaction; prune old runs."""
        day = int(run.finished_at // 86400)
        try:
            run_id = await self._insert(run, retention, ledger)
            if ledger is not None:
                await ledger_db.write(self._db, ledger, run.finished_at, ledger_retention,
                                      prune=day != self._pruned_day,
                                      packed=self._ledger_rows)
            await self._db.commit()
        except BaseException:
            await self._db.rollback()  # never leave half a run for the next commit
            raise
        finally:
            self._states.clear()  # a run's own: the next run's results are others
        if ledger is not None:
            self._written(ledger)
            self._pruned_day = day
        return run_id

    def _written(self, ledger: Ledger) -> None:
        ledger.dirty.clear()
        ledger.cursors_dirty.clear()
        self._ledger_rows.clear()

    async def record_ledger(self, ledger: Ledger, schedule: MaintenanceSchedule,
                            now: float) -> None:
        """Store the ledger's changes with the windows they were made for, in one
        transaction: a window applied is never applied again, nor forgotten."""
        try:
            await ledger_db.write(self._db, ledger, now, 0.0, prune=False,
                                  packed=self._ledger_rows)
            await ledger_db.write_schedule(self._db, schedule)
            await self._db.commit()
        except BaseException:
            await self._db.rollback()
            raise
        self._written(ledger)

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
        # Compressed in the database's thread, as the rows are taken.
        saved = [(v.vessel, v.finished_at, self._packed_state(v, ledger))
                 for v in run.vessels if v.observation is not None]
        await self._db.executemany(
            "INSERT OR REPLACE INTO vessel_state (vessel, last_success, observation)"
            " VALUES (?, ?, ?)",
            ((vessel, at, _stored_observation(packed)) for vessel, at, packed in saved),
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
            stored = row["observation"]
            try:
                if isinstance(stored, bytes):
                    observation, profiles = _unpack_observation(stored)
                else:  # a previous version's JSON: it kept no profiles
                    observation, profiles = _observation_from_json(stored), {}
            except (ValueError, TypeError, KeyError, AttributeError, struct.error) as exc:
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
