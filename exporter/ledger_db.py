"""The ledger's tables in the state DB: a row per device per UTC day, 24 packed hours.

A row per hour would cost about 30 bytes of key and record each; a day's 24 hours packed
into one blob of 16 bytes each keep a device-day near 400 bytes on disk. Days written
before hours had flags (15 bytes an hour) are read as they are.

The maintenance windows the ledger was built with are stored too, so a window declared
while the exporter was down is applied at the next start.
"""

import json
import struct
from collections.abc import Iterable
from typing import Any

import aiosqlite

from .sla.hours import HOUR, Carry, Hour
from .sla.ledger import Ledger
from .sla.maintenance import MaintenanceSchedule

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_vessels (
    vessel TEXT PRIMARY KEY,
    frozen_until INTEGER NOT NULL,
    held_from INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_carry (
    vessel TEXT NOT NULL,
    address TEXT NOT NULL,
    last INTEGER,
    last_up INTEGER NOT NULL,
    first INTEGER,
    down_from INTEGER,
    PRIMARY KEY (vessel, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_days (
    vessel TEXT NOT NULL,
    address TEXT NOT NULL,
    day INTEGER NOT NULL,
    hours BLOB NOT NULL,
    PRIMARY KEY (vessel, address, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_replay (
    vessel TEXT PRIMARY KEY,
    replay_from INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_schedule (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    windows TEXT NOT NULL
);
"""

# up, down, maintenance (s), up and down samples, outages started, longest outage (s),
# flags. Seconds of one hour are clamped to 65535: only a sample_interval over 18 h could
# exceed it.
_HOUR = struct.Struct("<HHHHHBIB")
_OLD_HOUR = struct.Struct("<HHHHHBI")  # before flags
_ESTIMATED = 1
_U16, _U8, _U32 = 0xFFFF - 1, 0xFF, 0xFFFFFFFF


def pack_day(hours: list[Hour | None]) -> bytes:
    out = []
    for h in hours:
        if h is None:
            out.append(b"\xff" * _HOUR.size)
            continue
        out.append(_HOUR.pack(min(h.up, _U16), min(h.down, _U16), min(h.maintenance, _U16),
                              min(h.up_samples, _U16), min(h.down_samples, _U16),
                              min(h.outages, _U8), min(h.longest, _U32),
                              _ESTIMATED if h.estimated else 0))
    return b"".join(out)


def unpack_day(blob: Any) -> list[Hour | None]:
    """A stored day; anything but 24 packed hours (another version, damage) is ValueError."""
    if not isinstance(blob, bytes):
        raise ValueError("not a packed day")
    form = next((f for f in (_HOUR, _OLD_HOUR) if len(blob) == 24 * f.size), None)
    if form is None:
        raise ValueError("not a packed day")
    hours: list[Hour | None] = []
    for i in range(24):
        chunk = blob[i * form.size:(i + 1) * form.size]
        if chunk == b"\xff" * form.size:
            hours.append(None)  # an hour the ledger has nothing for
            continue
        up, down, held, up_n, down_n, outages, longest, *flags = form.unpack(chunk)
        hours.append(Hour(up, down, held, up_n, down_n, outages, longest,
                          estimated=bool(flags and flags[0] & _ESTIMATED)))
    return hours


async def create(db: aiosqlite.Connection) -> None:
    await db.executescript(SCHEMA)


async def write(db: aiosqlite.Connection, ledger: Ledger, now: float, retention: float,
                prune: bool) -> None:
    """Write the days and cursors changed since the last write; inside the caller's
    transaction, so a run and its ledger are stored together or not at all."""
    rows = []
    for vessel, address, day in ledger.dirty:
        hours = ledger.day(vessel, address, day)
        if hours is not None:
            rows.append((vessel, address, day, pack_day(hours)))
    await db.executemany("INSERT OR REPLACE INTO ledger_days (vessel, address, day, hours)"
                         " VALUES (?, ?, ?, ?)", rows)
    cursors: list[tuple[str, int, int]] = []
    replays: list[tuple[str, int]] = []
    done: list[tuple[str]] = []
    carries: list[tuple[str, str, int | None, int, int | None, int | None]] = []
    for vid in ledger.cursors_dirty:
        books = ledger.vessels.get(vid)
        if books is None:
            continue
        cursors.append((vid, books.frozen_until, books.held_from))
        if books.replay_from is None:
            done.append((vid,))
        else:
            replays.append((vid, books.replay_from))
        carries.extend((vid, a, b.carry.last, int(b.carry.last_up), b.carry.first,
                        b.carry.down_from) for a, b in books.books.items())
    await db.executemany("INSERT OR REPLACE INTO ledger_vessels (vessel, frozen_until,"
                         " held_from) VALUES (?, ?, ?)", cursors)
    await db.executemany("INSERT OR REPLACE INTO ledger_carry (vessel, address, last, last_up,"
                         " first, down_from) VALUES (?, ?, ?, ?, ?, ?)", carries)
    await db.executemany("DELETE FROM ledger_replay WHERE vessel = ?", done)
    await db.executemany("INSERT OR REPLACE INTO ledger_replay (vessel, replay_from)"
                         " VALUES (?, ?)", replays)
    if prune:  # a full scan: done once a day
        await db.execute("DELETE FROM ledger_days WHERE day < ?",
                         (int((now - retention) // 86400),))


async def restore(db: aiosqlite.Connection, ledger: Ledger, now: float) -> int:
    """Load every vessel's cursor, carry and recent days; returns rows skipped as unreadable."""
    longest = max(w.seconds for w in ledger.windows)
    skipped = 0
    async with db.execute("SELECT vessel, replay_from FROM ledger_replay") as c:
        replays = {v: r for v, r in await c.fetchall() if isinstance(r, int)}
    async with db.execute("SELECT vessel, frozen_until, held_from FROM ledger_vessels") as c:
        vessels = [tuple(r) for r in await c.fetchall()]
    for vessel, frozen_until, held_from in vessels:
        if not (isinstance(frozen_until, int) and isinstance(held_from, int)):
            skipped += 1
            continue
        carries: dict[str, Carry] = {}
        async with db.execute("SELECT address, last, last_up, first, down_from FROM"
                              " ledger_carry WHERE vessel = ?", (vessel,)) as c:
            for address, last, last_up, first, down_from in await c.fetchall():
                values = (last, first, down_from)
                if not all(v is None or isinstance(v, int) for v in values):
                    skipped += 1
                    continue
                carries[address] = Carry(last, bool(last_up), first, down_from)
        since = int(min(now - longest, frozen_until - 2 * 86400) // 86400)
        hours: dict[str, dict[int, Hour]] = {}
        async with db.execute("SELECT address, day, hours FROM ledger_days WHERE vessel = ?"
                              " AND day >= ?", (vessel, since)) as c:
            for address, day, blob in await c.fetchall():
                try:
                    day_hours = unpack_day(blob)
                except ValueError:
                    skipped += 1
                    continue
                book = hours.setdefault(address, {})
                for i, h in enumerate(day_hours):
                    if h is not None:
                        book[day * 24 + i] = h
        ledger.restore(vessel, frozen_until, held_from, carries, hours, replays.get(vessel))
    return skipped


async def load(db: aiosqlite.Connection, ledger: Ledger, vessel: str, day: int) -> None:
    """Bring the vessel's stored days from `day` on into memory, under the hours already
    there (newer), so that hours memory had pruned can be amended and written again."""
    books = ledger.vessels.get(vessel)
    if books is None:
        return
    async with db.execute("SELECT address, day, hours FROM ledger_days WHERE vessel = ?"
                          " AND day >= ?", (vessel, day)) as c:
        rows = await c.fetchall()
    for address, stored, blob in rows:
        book = books.books.get(address)
        try:
            day_hours = unpack_day(blob)
        except ValueError:
            continue
        if book is None:
            continue
        for i, h in enumerate(day_hours):
            if h is not None:
                book.frozen.setdefault(stored * 24 + i, h)


async def read_schedule(db: aiosqlite.Connection) -> MaintenanceSchedule | None:
    """The windows the stored ledger was built with; None when not known (a first start,
    a DB from before they were stored, or a row another version wrote)."""
    async with db.execute("SELECT windows FROM ledger_schedule WHERE id = 0") as c:
        row = await c.fetchone()
    if row is None:
        return None
    try:
        return MaintenanceSchedule.from_definitions(json.loads(row[0]))
    except (ValueError, TypeError, KeyError):
        return None


async def write_schedule(db: aiosqlite.Connection, schedule: MaintenanceSchedule) -> None:
    await db.execute("INSERT OR REPLACE INTO ledger_schedule (id, windows) VALUES (0, ?)",
                     (json.dumps(schedule.definitions(), sort_keys=True),))


async def read(db: aiosqlite.Connection, vessel: str, addresses: Iterable[str], start: int,
               end: int) -> dict[str, dict[int, Hour]]:
    """Stored hours in [start, end) by device address and hour start."""
    found: dict[str, dict[int, Hour]] = {}
    for address in addresses:
        async with db.execute("SELECT day, hours FROM ledger_days WHERE vessel = ? AND"
                              " address = ? AND day >= ? AND day <= ?",
                              (vessel, address, start // 86400, end // 86400)) as c:
            rows = await c.fetchall()
        hours = found.setdefault(address, {})
        for day, blob in rows:
            try:
                day_hours = unpack_day(blob)
            except ValueError:
                continue  # written by another version: shown as not held
            for i, h in enumerate(day_hours):
                at = (day * 24 + i) * HOUR
                if h is not None and start <= at < end:
                    hours[at] = h
    return found


async def hours(db: aiosqlite.Connection, ledger: Ledger, vessel: str,
                addresses: Iterable[str], start: int, end: int) -> dict[str, dict[int, Hour]]:
    """Each device's hours in [start, end), by hour start: stored ones, overlaid by those
    still in memory (recent and open ones, not yet written or still changing)."""
    wanted = list(addresses)
    found = await read(db, vessel, wanted, start, end)
    books = ledger.vessels.get(vessel)
    if books is not None:
        for address in wanted:
            book = books.books.get(address)
            if book is None:
                continue
            into = found.setdefault(address, {})
            for key in {*book.frozen, *book.fresh}:
                at = key * HOUR
                if start <= at < end and (hour := book.hour(key)) is not None:
                    into[at] = hour
    return found
