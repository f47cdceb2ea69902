"""The ledger's tables in the state DB: a row per vessel per UTC day, all its devices.

A run of 5,000 vessels x 20 devices writes every device's day: a row per vessel-day
(5,000 rows, not 100,000) holds the devices' addresses, their day totals once the day is
whole (what period reports read, without the hours), and the hours of all of them, 24 of
16 bytes per device, zlib-compressed (a healthy day packs to a few bytes an hour). Each
device's day is held packed in memory too (`Hours`, in the form of `sla/hour.py`), so a
run copies the days that changed and packs nothing. Carries are one packed row per vessel.

Rows of the previous version (a row per device-day in `ledger_days`, a carry row per
device in `ledger_carry`) are read as they are, under the new rows: they age out with
retention, nothing is converted at start.

The maintenance windows the ledger was built with are stored too, so a window declared
while the exporter was down is applied at the next start.
"""

import asyncio
import functools
import json
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import add
from typing import Any, NamedTuple

import aiosqlite

from .sla.hour import EMPTY, FORM, HOUR, MASKS, SECTION, Hour, pack, put, unpack
from .sla.hours import Carry, Hours
from .sla.ledger import Ledger, VesselBooks
from .sla.maintenance import MaintenanceSchedule

DAY = 86400

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_vessels (
    vessel TEXT PRIMARY KEY,
    frozen_until INTEGER NOT NULL,
    held_from INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_vessel_carries (
    vessel TEXT PRIMARY KEY,
    addresses TEXT NOT NULL,
    carries BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_vessel_days (
    vessel TEXT NOT NULL,
    day INTEGER NOT NULL,
    addresses TEXT NOT NULL,
    sums BLOB,
    hours BLOB NOT NULL,
    PRIMARY KEY (vessel, day)
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
# ledger_vessel_days is a rowid table: its rows are a few KB before compression, too
# long for a WITHOUT ROWID b-tree.

# A device's whole day: up, down, maintenance, unobserved (s), up and down samples,
# outages, longest outage (s), hours held, hours estimated.
_SUM = struct.Struct("<8IBB")
_ROW = b"\x01"  # leads a row's hours: their format
# The previous version's device-day: 24 hours of 16 bytes (15 before flags), 0xff = none.
_OLD_HOUR = struct.Struct("<HHHHHBIB")
_OLDER_HOUR = struct.Struct("<HHHHHBI")
_ESTIMATED = 1
# Per device: last_up, then last, first, down_from (_NULL: None).
_CARRY = struct.Struct("<Bqqq")
_NULL = -(1 << 63)  # no timestamp is that far back
_CARRIES: dict[int, struct.Struct] = {}  # by device count: a vessel's in one call


class DaySum(NamedTuple):
    """A device's UTC day, summed over its hours (seconds, counts)."""

    up: int
    down: int
    maintenance: int
    unobserved: int  # of the day's time up to now: not held, or held without samples
    up_samples: int
    down_samples: int
    outages: int  # down stretches started in the day
    longest: int  # longest down stretch ending in the day
    held: int  # hours the ledger has figures for
    estimated: int  # of them, hours re-split by an estimate (see hours.estimate)


# --- packing ---------------------------------------------------------------------------


def sum_section(section: bytes | bytearray | memoryview, spans: list[int] | None = None) -> DaySum:
    """A packed device-day's totals; `spans` are its hours' lengths (all whole if None)."""
    held, estimated = MASKS.unpack_from(section)
    up, down, kept, up_n, down_n, outages, longest = zip(
        *FORM.iter_unpack(memoryview(section)[MASKS.size:SECTION]), strict=True)
    # Absent hours are zeros: wholly unobserved, as they should be.
    used = list(map(add, map(add, up, down), kept))
    if spans is None and max(used) <= HOUR:
        unobserved = 24 * HOUR - sum(used)
    else:
        unobserved = sum(max(0, s - u) for s, u in zip(spans or repeat(HOUR), used, strict=False))
    return DaySum(sum(up), sum(down), sum(kept), unobserved, sum(up_n), sum(down_n),
                  sum(outages), max(longest), held.bit_count(), estimated.bit_count())


def _old_section(blob: Any) -> bytes:
    """A previous version's device-day as a section; ValueError if it is none."""
    if not isinstance(blob, bytes):
        raise ValueError("not a packed day")
    form = next((f for f in (_OLD_HOUR, _OLDER_HOUR) if len(blob) == 24 * f.size), None)
    if form is None:
        raise ValueError("not a packed day")
    hours: dict[int, Hour] = {}
    for i, values in enumerate(form.iter_unpack(blob)):
        if blob[i * form.size:(i + 1) * form.size] == b"\xff" * form.size:
            continue  # an hour the ledger has nothing for
        up, down, held, up_n, down_n, outages, longest, *flags = values
        hours[i] = Hour(up, down, held, up_n, down_n, outages, longest,
                        estimated=bool(flags and flags[0] & _ESTIMATED))
    return pack(hours, 0)


def unpack_day(blob: Any) -> list[Hour | None]:
    """A previous version's stored device-day; anything else is ValueError."""
    hours = unpack(_old_section(blob), 0)
    return [hours.get(i) for i in range(24)]


class _Row(NamedTuple):
    day: int
    sections: dict[str, memoryview]  # address -> packed device-day
    sums: dict[str, DaySum] | None  # when the row holds the whole day


@functools.lru_cache(maxsize=4096)
def _names(addresses: str) -> tuple[str, ...]:
    """A row's device addresses: the same text on every day of a vessel, parsed once."""
    names = json.loads(addresses)
    if not isinstance(names, list) or not all(isinstance(a, str) for a in names):
        raise ValueError("not a vessel-day")
    return tuple(names)


def _row(day: Any, addresses: Any, sums: Any, hours: Any, wanted: set[str] | None,
         with_hours: bool = True) -> _Row:
    """A stored vessel-day; anything else (another version, damage) is ValueError."""
    if not isinstance(day, int) or not isinstance(addresses, str):
        raise ValueError("not a vessel-day")
    names = _names(addresses)
    totals = None
    if sums is not None:
        if not isinstance(sums, bytes) or len(sums) != len(names) * _SUM.size:
            raise ValueError("not a vessel-day")
        # A month of 1,000 vessels is 1.2 M device-days: made in C (tuple.__new__ through
        # map, not DaySum._make's Python frame per day), filtered after.
        totals = dict(zip(names, map(tuple.__new__, repeat(DaySum), _SUM.iter_unpack(sums)),
                          strict=True))
        if wanted is not None and not wanted.issuperset(names):
            totals = {a: t for a, t in totals.items() if a in wanted}
    sections: dict[str, memoryview] = {}
    if with_hours or totals is None:
        if not isinstance(hours, bytes) or hours[:1] != _ROW:
            raise ValueError("not a vessel-day")
        try:
            raw = memoryview(zlib.decompress(hours[1:]))
        except zlib.error as exc:
            raise ValueError("not a vessel-day") from exc
        if len(raw) != len(names) * SECTION:
            raise ValueError("not a vessel-day")
        sections = {a: raw[n * SECTION:(n + 1) * SECTION] for n, a in enumerate(names)
                    if wanted is None or a in wanted}
    return _Row(day, sections, totals)


async def create(db: aiosqlite.Connection) -> None:
    await db.executescript(SCHEMA)


# --- writing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VesselRows:
    """What a write stores for a vessel, packed from memory as it was at `stamp` (see
    VesselBooks.stamp): its changed days, its cursor and its carries."""

    vessel: str
    stamp: int
    days: list[tuple[int, tuple[str, ...], bytes, bool]]  # day, devices, sections, whole
    frozen_until: int
    held_from: int
    replay_from: int | None
    addresses: tuple[str, ...]  # the carries' devices
    carries: bytes


def pack_vessel(ledger: Ledger, vessel: str,
                stored: Mapping[int, Mapping[str, bytes | bytearray | memoryview]] | None = None
                ) -> VesselRows | None:
    """The vessel's rows, copied from memory (which changes after). None when a changed
    day needs devices only the stored row has (`needs_stored`) and `stored` lacks the day
    (an empty mapping: no row is stored for it)."""
    books = ledger.vessels.get(vessel)
    if books is None:
        return None
    # Memory holds every device's hours from two days before the frozen cursor on
    # (restore and prune keep them): a device that did not change there is written as
    # memory has it. Before that, or while a rewind is replayed, it may have been dropped
    # from memory, and its stored day is kept.
    days: list[tuple[int, tuple[str, ...], bytes, bool]] = []
    for day, changed in ledger.dirty.days(vessel).items():
        sections: dict[str, bytes | bytearray | memoryview]
        if _trusted(books, day):
            sections = {a: s for a, b in books.books.items()
                        if (s := b.frozen.days.get(day)) is not None}
        else:
            sections = {}
            if not changed.issuperset(books.books):
                if stored is None or day not in stored:
                    return None
                sections.update(stored[day])
            for address, book in books.books.items():
                if address in changed:
                    section = book.frozen.days.get(day)
                    if section is None:
                        sections.pop(address, None)  # no hours: not stored
                    else:
                        sections[address] = section
        days.append((day, tuple(sections), b"".join(sections.values()),
                     books.frozen_until >= (day + 1) * DAY))
    carries = [b.carry for b in books.books.values()]
    form = _CARRIES.get(len(carries))
    if form is None:
        form = _CARRIES[len(carries)] = struct.Struct("<" + "Bqqq" * len(carries))
    packed = form.pack(*chain.from_iterable(
        (c.last_up, _NULL if c.last is None else c.last, _NULL if c.first is None else c.first,
         _NULL if c.down_from is None else c.down_from) for c in carries))
    return VesselRows(vessel, books.stamp, days, books.frozen_until, books.held_from,
                      books.replay_from, tuple(books.books), packed)


def _trusted(books: VesselBooks, day: int) -> bool:
    return books.replay_from is None and day > (books.frozen_until - 2 * DAY) // DAY


def needs_stored(ledger: Ledger, vessel: str) -> list[int]:
    """The changed days whose stored rows `pack_vessel` needs."""
    books = ledger.vessels.get(vessel)
    if books is None:
        return []
    return [day for day, changed in ledger.dirty.days(vessel).items()
            if not _trusted(books, day) and not changed.issuperset(books.books)]


async def write(db: aiosqlite.Connection, ledger: Ledger, now: float, retention: float,
                prune: bool, packed: Mapping[str, VesselRows] | None = None) -> None:
    """Write the days and cursors changed since the last write; inside the caller's
    transaction, so a run and its ledger are stored together or not at all. A vessel's
    rows are taken from `packed` while its books have not changed since, else packed
    here; they are summed and compressed in the database's thread."""
    out: list[VesselRows] = []
    for vessel in ledger.dirty.vessels() | ledger.cursors_dirty:
        books = ledger.vessels.get(vessel)
        if books is None:
            continue
        rows = packed.get(vessel) if packed is not None else None
        if rows is None or rows.stamp != books.stamp:
            rows = pack_vessel(ledger, vessel)
        if rows is None:
            stored: dict[int, Mapping[str, memoryview]] = {}
            for day in needs_stored(ledger, vessel):
                stored[day] = {}  # none stored: the day's devices are memory's alone
                for row in await _rows(db, vessel, day, day, None):
                    stored[day] = row.sections
            rows = pack_vessel(ledger, vessel, stored)
            if rows is None:  # only if memory changed while the rows were read
                raise RuntimeError(f"the ledger of {vessel} changed while it was written")
        out.append(rows)

    def day_rows() -> Iterator[tuple[str, int, str, bytes | None, bytes]]:
        for rows in out:
            for day, addresses, sections, whole in rows.days:
                sums = None
                if whole:
                    view = memoryview(sections)
                    sums = b"".join(_SUM.pack(*sum_section(view[n:n + SECTION]))
                                    for n in range(0, len(sections), SECTION))
                yield (rows.vessel, day, _addresses_text(addresses), sums,
                       _ROW + zlib.compress(sections, 1))

    await db.executemany("INSERT OR REPLACE INTO ledger_vessel_days (vessel, day, addresses,"
                         " sums, hours) VALUES (?, ?, ?, ?, ?)", day_rows())
    await db.executemany("INSERT OR REPLACE INTO ledger_vessels (vessel, frozen_until,"
                         " held_from) VALUES (?, ?, ?)",
                         [(r.vessel, r.frozen_until, r.held_from) for r in out])
    await db.executemany("INSERT OR REPLACE INTO ledger_vessel_carries (vessel, addresses,"
                         " carries) VALUES (?, ?, ?)",
                         ((r.vessel, _addresses_text(r.addresses), r.carries) for r in out))
    await db.executemany("DELETE FROM ledger_replay WHERE vessel = ?",
                         [(r.vessel,) for r in out if r.replay_from is None])
    await db.executemany("INSERT OR REPLACE INTO ledger_replay (vessel, replay_from)"
                         " VALUES (?, ?)",
                         [(r.vessel, r.replay_from) for r in out if r.replay_from is not None])
    if prune:  # full scans: done once a day
        oldest = int((now - retention) // DAY)
        await db.execute("DELETE FROM ledger_vessel_days WHERE day < ?", (oldest,))
        await db.execute("DELETE FROM ledger_days WHERE day < ?", (oldest,))
        await db.execute("DELETE FROM ledger_carry WHERE vessel IN"
                         " (SELECT vessel FROM ledger_vessel_carries)")


@functools.lru_cache(maxsize=16384)
def _addresses_text(addresses: tuple[str, ...]) -> str:
    """A row's device addresses as stored: a vessel's are the same run after run, and
    5,000 vessels' JSON twice a run cost a write about 50 ms."""
    return json.dumps(list(addresses))


def _unpack_carries(addresses: Any, blob: Any) -> dict[str, Carry]:
    if not isinstance(addresses, str) or not isinstance(blob, bytes):
        raise ValueError("not packed carries")
    names = json.loads(addresses)
    if (not isinstance(names, list) or not all(isinstance(a, str) for a in names)
            or len(blob) != len(names) * _CARRY.size):
        raise ValueError("not packed carries")
    carries = {}
    for address, (up, last, first, down_from) in zip(names, _CARRY.iter_unpack(blob),
                                                      strict=True):
        carries[address] = Carry(None if last == _NULL else last, bool(up),
                                 None if first == _NULL else first,
                                 None if down_from == _NULL else down_from)
    return carries


# --- reading ---------------------------------------------------------------------------


async def _rows(db: aiosqlite.Connection, vessel: str, first: int, last: int,
                wanted: set[str] | None, with_hours: bool = True) -> list[_Row]:
    """The vessel's stored days in [first, last], oldest first; a previous version's rows
    under this one's (a device-day in both is this one's)."""
    rows, _ = await _read_rows(db, vessel, first, last, wanted, with_hours)
    return rows


async def _read_rows(db: aiosqlite.Connection, vessel: str, first: int, last: int,
                     wanted: set[str] | None, with_hours: bool) -> tuple[list[_Row], int]:
    column = "hours" if with_hours else "CASE WHEN sums IS NULL THEN hours END"
    async with db.execute(f"SELECT day, addresses, sums, {column} FROM ledger_vessel_days"
                          " WHERE vessel = ? AND day >= ? AND day <= ? ORDER BY day",
                          (vessel, first, last)) as c:
        new = await c.fetchall()
    async with db.execute("SELECT day, address, hours FROM ledger_days WHERE vessel = ? AND"
                          " day >= ? AND day <= ?", (vessel, first, last)) as c:
        old = await c.fetchall()
    return await asyncio.to_thread(_decode, new, old, wanted, with_hours)


def _decode(new: Iterable[Any], old: Iterable[Any], wanted: set[str] | None,
            with_hours: bool) -> tuple[list[_Row], int]:
    skipped = 0
    found: dict[int, _Row] = {}
    for day, addresses, sums, blob in new:
        try:
            found[day] = _row(day, addresses, sums, blob, wanted, with_hours)
        except ValueError:
            skipped += 1
    for day, address, blob in old:
        if not isinstance(day, int) or (wanted is not None and address not in wanted):
            continue
        row = found.get(day)
        if row is not None and (address in row.sections or (row.sums or {}).get(address)):
            continue
        try:
            section = memoryview(_old_section(blob))
        except ValueError:
            skipped += 1
            continue
        if row is None:
            row = found[day] = _Row(day, {}, None)
        row.sections[address] = section
    return [found[d] for d in sorted(found)], skipped


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
        carries: dict[str, Carry] | None = None
        async with db.execute("SELECT addresses, carries FROM ledger_vessel_carries WHERE"
                              " vessel = ?", (vessel,)) as c:
            row = await c.fetchone()
        if row is not None:
            try:
                carries = _unpack_carries(row[0], row[1])
            except ValueError:
                skipped += 1
        if carries is None:  # a previous version's rows
            carries = {}
            async with db.execute("SELECT address, last, last_up, first, down_from FROM"
                                  " ledger_carry WHERE vessel = ?", (vessel,)) as c:
                for address, last, last_up, first, down_from in await c.fetchall():
                    values = (last, first, down_from)
                    if not all(v is None or isinstance(v, int) for v in values):
                        skipped += 1
                        continue
                    carries[address] = Carry(last, bool(last_up), first, down_from)
        since = int(min(now - longest, frozen_until - 2 * DAY) // DAY)
        rows, bad = await _read_rows(db, vessel, since, 1 << 40, None, True)
        skipped += bad
        hours = await asyncio.to_thread(_books_hours, rows)
        ledger.restore(vessel, frozen_until, held_from, carries, hours, replays.get(vessel))
    return skipped


def _books_hours(rows: list[_Row]) -> dict[str, Hours]:
    """Each device's hours as a book holds them: the stored days, not unpacked."""
    days: dict[str, dict[int, memoryview]] = {}
    for row in rows:
        for address, section in row.sections.items():
            days.setdefault(address, {})[row.day] = section
    return {address: Hours.from_days(found) for address, found in days.items()}


async def load(db: aiosqlite.Connection, ledger: Ledger, vessel: str, day: int) -> None:
    """Bring the vessel's stored days from `day` on into memory, under the hours already
    there (newer), so that hours memory had pruned can be amended and written again."""
    books = ledger.vessels.get(vessel)
    if books is None:
        return
    rows = await _rows(db, vessel, day, 1 << 40, set(books.books))
    ledger.merge_stored(vessel, await asyncio.to_thread(_books_hours, rows))


async def cursors(db: aiosqlite.Connection) -> dict[str, tuple[Any, Any]]:
    """Each vessel's stored cursor and ledger start (unchecked: callers check the types)."""
    async with db.execute("SELECT vessel, frozen_until, held_from FROM ledger_vessels") as c:
        return {str(v): (f, h) for v, f, h in await c.fetchall()}


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
    wanted = set(addresses)
    rows = await _rows(db, vessel, start // DAY, end // DAY, wanted)
    return await asyncio.to_thread(_hours_in, rows, wanted, start, end)


def _hours_in(rows: list[_Row], wanted: set[str], start: int,
              end: int) -> dict[str, dict[int, Hour]]:
    found: dict[str, dict[int, Hour]] = {a: {} for a in wanted}
    for row in rows:
        for address, section in row.sections.items():
            into = found[address]
            for key, hour in unpack(section, row.day).items():
                if start <= key * HOUR < end:
                    into[key * HOUR] = hour
    return found


def _memory(ledger: Ledger | None, vessel: str, addresses: Iterable[str],
            start: int, end: int) -> dict[str, dict[int, Hour]]:
    """Each device's hours in [start, end) held in memory, by hour start."""
    found: dict[str, dict[int, Hour]] = {}
    books = ledger.vessels.get(vessel) if ledger is not None else None
    if books is None:
        return found
    for address in addresses:
        book = books.books.get(address)
        if book is None:
            continue
        into = found.setdefault(address, {})
        for key in {*book.frozen, *book.fresh}:
            at = key * HOUR
            if start <= at < end and (hour := book.hour(key)) is not None:
                into[at] = hour
    return found


async def hours(db: aiosqlite.Connection, ledger: Ledger | None, vessel: str,
                addresses: Iterable[str], start: int, end: int) -> dict[str, dict[int, Hour]]:
    """Each device's hours in [start, end), by hour start: stored ones, overlaid by those
    still in memory (recent and open ones, not yet written or still changing)."""
    wanted = list(addresses)
    found = await read(db, vessel, wanted, start, end)
    for address, memory in _memory(ledger, vessel, wanted, start, end).items():
        found.setdefault(address, {}).update(memory)
    return found


async def days(db: aiosqlite.Connection, ledger: Ledger | None, vessel: str,
               addresses: Iterable[str], start_day: int, end_day: int,
               now: float | None = None) -> dict[str, dict[int, DaySum]]:
    """Each device's UTC days in [start_day, end_day) (day numbers: epoch seconds // 86400)
    summed, by day number: stored totals of whole days, and days with hours not yet
    written or still open summed from stored hours overlaid by memory, as `hours` does.
    With `now`, the day it falls in counts up to it and later days are left out. A device
    with no hours on a day has no entry for it: the day was wholly unobserved.

    For a range that starts or ends inside a day, read its edge hours with `hours`."""
    wanted = set(addresses)
    if now is not None:
        end_day = min(end_day, int(now // DAY) + 1)
    if end_day <= start_day:
        return {a: {} for a in wanted}
    rows = await _rows(db, vessel, start_day, end_day - 1, wanted, with_hours=False)
    memory: dict[str, dict[int, dict[int, Hour]]] = {}
    books = ledger.vessels.get(vessel) if ledger is not None else None
    for address, day in _open_days(ledger, vessel, wanted):
        if books is not None and start_day <= day < end_day:
            book = books.books[address]
            memory.setdefault(address, {})[day] = {
                k: h for k in range(day * 24, day * 24 + 24) if (h := book.hour(k)) is not None}
    # Stored hours go under memory's on the days both have.
    needed = {d for m in memory.values() for d in m} & {r.day for r in rows}
    stored = {r.day: r for r in await _rows(db, vessel, min(needed), max(needed), wanted)
              } if needed else {}
    return await asyncio.to_thread(_sum_days, rows, stored, memory, wanted, now)


def _open_days(ledger: Ledger | None, vessel: str, wanted: set[str]) -> set[tuple[str, int]]:
    """The (device, day) pairs where memory differs from the stored rows: days not written
    yet (changed hours) and days with open hours."""
    books = ledger.vessels.get(vessel) if ledger is not None else None
    if ledger is None or books is None:
        return set()
    found = {(a, d) for v, a, d in ledger.dirty if v == vessel and a in wanted}
    for address in wanted:
        book = books.books.get(address)
        if book is not None:
            found.update((address, k // 24) for k in book.fresh)
    return found


async def span_totals(db: aiosqlite.Connection, ledger: Ledger | None, vessel: str,
                      addresses: Sequence[str],
                      spans: Sequence[tuple[int, int]]) -> dict[str, list[DaySum | None]]:
    """Each device's days summed over each span [first_day, last_day) of whole UTC days:
    the `days` figures added up (longest the greatest), None where the span holds no
    hours of it. Stored whole days are summed from their packed totals in bulk, with no
    object made per device-day (a month of 1,000 vessels is 1.2 M of them); the days
    `days` treats otherwise (in memory, open, of a previous version) come from it."""
    wanted = list(addresses)
    out: dict[str, list[DaySum | None]] = {a: [None] * len(spans) for a in wanted}
    if not spans:
        return out
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    recent = {day for _, day in _open_days(ledger, vessel, set(wanted))}
    # A previous version's rows may hold devices a newer row lacks: `days` merges them.
    async with db.execute("SELECT DISTINCT day FROM ledger_days WHERE vessel = ? AND"
                          " day >= ? AND day < ?", (vessel, first, last)) as c:
        recent.update(d for (d,) in await c.fetchall() if isinstance(d, int))
    async with db.execute("SELECT day, addresses, sums FROM ledger_vessel_days WHERE"
                          " vessel = ? AND day >= ? AND day < ? AND sums IS NOT NULL",
                          (vessel, first, last)) as c:
        rows = await c.fetchall()
    bulk: dict[int, tuple[tuple[str, ...], bytes]] = {}
    for day, names_text, sums in rows:
        if (isinstance(day, int) and day not in recent and isinstance(names_text, str)
                and isinstance(sums, bytes)):
            try:
                names = _names(names_text)
            except ValueError:
                continue
            if len(sums) == len(names) * _SUM.size:
                bulk[day] = (names, sums)
    rest = sorted(set(range(first, last)) - set(bulk))
    others: dict[str, dict[int, DaySum]] = {a: {} for a in wanted}
    for lo, hi in runs(rest):
        for address, found in (await days(db, ledger, vessel, wanted, lo, hi)).items():
            others[address].update(found)
    return await asyncio.to_thread(_sum_spans, wanted, spans, bulk, others)


def runs(days: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted day numbers as [first, last + 1) runs of consecutive days."""
    out: list[tuple[int, int]] = []
    for day in days:
        if out and out[-1][1] == day:
            out[-1] = (out[-1][0], day + 1)
        else:
            out.append((day, day + 1))
    return out


def _sum_spans(wanted: Sequence[str], spans: Sequence[tuple[int, int]],
               bulk: Mapping[int, tuple[tuple[str, ...], bytes]],
               others: Mapping[str, Mapping[int, DaySum]]) -> dict[str, list[DaySum | None]]:
    out: dict[str, list[DaySum | None]] = {a: [None] * len(spans) for a in wanted}
    for i, (lo, hi) in enumerate(spans):
        # Rows of one device list are unpacked together: device j's totals are every
        # n-th tuple, summed column by column in C.
        groups: dict[tuple[str, ...], list[bytes]] = {}
        for day in range(lo, hi):
            if (row := bulk.get(day)) is not None:
                groups.setdefault(row[0], []).append(row[1])
        found: dict[str, list[tuple[int, ...]]] = {a: [] for a in wanted}
        for names, blobs in groups.items():
            tuples = list(_SUM.iter_unpack(b"".join(blobs)))
            step = len(names)
            for j, address in enumerate(names):
                if address in found:
                    found[address].extend(tuples[j::step])
        for address in wanted:
            parts = found[address]
            parts.extend(s for d, s in others.get(address, {}).items() if lo <= d < hi)
            if not parts:
                continue
            columns = list(zip(*parts, strict=True))
            out[address][i] = DaySum(*(max(c) if n == _LONGEST else sum(c)
                                       for n, c in enumerate(columns)))
    return out


_LONGEST = DaySum._fields.index("longest")


def _sum_days(rows: list[_Row], stored: Mapping[int, _Row],
              memory: Mapping[str, Mapping[int, Mapping[int, Hour]]], wanted: set[str],
              now: float | None) -> dict[str, dict[int, DaySum]]:
    found: dict[str, dict[int, DaySum]] = {a: {} for a in wanted}

    def spans(day: int) -> list[int] | None:
        if now is None or (day + 1) * DAY <= now:
            return None
        return [max(0, min(HOUR, int(now) - (day * 24 + i) * HOUR)) for i in range(24)]

    for row in rows:
        current = spans(row.day)
        for address in wanted:
            total = row.sums.get(address) if row.sums is not None else None
            if total is not None and current is None:
                found[address][row.day] = total
            elif (section := row.sections.get(address)) is not None:
                found[address][row.day] = sum_section(section, current)
    for address, by_day in memory.items():
        for day, hours in by_day.items():
            below = stored.get(day)
            under = below.sections.get(address) if below is not None else None
            merged = bytearray(under if under is not None else EMPTY)
            for key, hour in hours.items():
                put(merged, key % 24, hour)
            if MASKS.unpack_from(merged)[0]:
                found[address][day] = sum_section(merged, spans(day))
    return found
