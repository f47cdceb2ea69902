"""The ledger's tables in the state DB: a row per device per UTC day, 24 packed hours.

A row per hour would cost about 30 bytes of key and record each; a day's 24 hours packed
into one blob of 15 bytes each keep a device-day near 400 bytes on disk.
"""

import struct
from collections.abc import Iterable
from typing import Any

import aiosqlite

from .sla.hours import HOUR, Carry, Hour
from .sla.ledger import Ledger

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
"""

# up, down, maintenance (s), up and down samples, outages started, longest outage (s).
# Seconds of one hour are clamped to 65535: only a sample_interval over 18 h could exceed it.
_HOUR = struct.Struct("<HHHHHBI")
_EMPTY = b"\xff" * _HOUR.size  # an hour the ledger has nothing for
_U16, _U8, _U32 = 0xFFFF - 1, 0xFF, 0xFFFFFFFF


def pack_day(hours: list[Hour | None]) -> bytes:
    out = []
    for h in hours:
        if h is None:
            out.append(_EMPTY)
            continue
        out.append(_HOUR.pack(min(h.up, _U16), min(h.down, _U16), min(h.maintenance, _U16),
                              min(h.up_samples, _U16), min(h.down_samples, _U16),
                              min(h.outages, _U8), min(h.longest, _U32)))
    return b"".join(out)


def unpack_day(blob: Any) -> list[Hour | None]:
    """A stored day; anything but 24 packed hours (another version, damage) is ValueError."""
    if not isinstance(blob, bytes) or len(blob) != 24 * _HOUR.size:
        raise ValueError("not a packed day")
    hours: list[Hour | None] = []
    for i in range(24):
        chunk = blob[i * _HOUR.size:(i + 1) * _HOUR.size]
        hours.append(None if chunk == _EMPTY else Hour(*_HOUR.unpack(chunk)))
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
    carries: list[tuple[str, str, int | None, int, int | None, int | None]] = []
    for vid in ledger.cursors_dirty:
        books = ledger.vessels.get(vid)
        if books is None:
            continue
        cursors.append((vid, books.frozen_until, books.held_from))
        carries.extend((vid, a, b.carry.last, int(b.carry.last_up), b.carry.first,
                        b.carry.down_from) for a, b in books.books.items())
    await db.executemany("INSERT OR REPLACE INTO ledger_vessels (vessel, frozen_until,"
                         " held_from) VALUES (?, ?, ?)", cursors)
    await db.executemany("INSERT OR REPLACE INTO ledger_carry (vessel, address, last, last_up,"
                         " first, down_from) VALUES (?, ?, ?, ?, ?, ?)", carries)
    if prune:  # a full scan: done once a day
        await db.execute("DELETE FROM ledger_days WHERE day < ?",
                         (int((now - retention) // 86400),))


async def restore(db: aiosqlite.Connection, ledger: Ledger, now: float) -> int:
    """Load every vessel's cursor, carry and recent days; returns rows skipped as unreadable."""
    longest = max(w.seconds for w in ledger.windows)
    skipped = 0
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
        ledger.restore(vessel, frozen_until, held_from, carries, hours)
    return skipped


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
