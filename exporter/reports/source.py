"""The reports' one way into the ledger: each device's time summed into buckets.

Narrow on purpose: a faster store only has to answer `tallies` (per device, the ledger's
hours summed between cuts) and `cover` (how far each vessel's ledger reaches). Today it
reads the stored days itself, one query per vessel, overlaid by the hours still in memory
(as `ledger_db.hours()` does). A day is summed from its packed form in one unpack, in
parts where cuts fall inside it (a local day in Europe/Oslo takes 22 or 23 hours of one
UTC day and the rest of the next); an hour with a cut inside it is split by share; days
with hours in memory are read hour by hour.

A bucket's unobserved time is what its length leaves after up, down, maintenance and the
time before the vessel's ledger starts ("unheld"). A cut that is not on a whole UTC hour
splits its hour by share (the ledger holds no finer time); its outages go to the part
holding most of it.
"""

import asyncio
import bisect
import itertools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from .. import ledger_db
from ..sla.hours import HOUR, Hour, Span
from ..sla.ledger import Ledger

DAY = 86400
# A stored day: 24 hours as ledger_db packs them, unpacked in one call. A missing hour is
# all 0xff bytes; its `up` reads 0xffff, which a real hour never holds (clamped below).
_PACKED_HOUR = struct.Struct("<HHHHHBIB")
_DAY = struct.Struct("<" + _PACKED_HOUR.format[1:] * 24)
_MISSING = 0xFFFF

# A stored day's totals: up, down, maintenance, outages, longest, estimated.
DaySums = tuple[int, int, int, int, int, bool]
Bounds = tuple[int, ...]  # the hours of a UTC day where a bucket's cut falls
_UNSEEN: list[DaySums] = []
_SEEN_MAX = 10_000  # distinct days remembered for one vessel's read


@dataclass(slots=True)
class Tally:
    """A device's time in one bucket, in seconds, and its outages."""

    up: float = 0.0
    down: float = 0.0
    maintenance: float = 0.0
    unobserved: float = 0.0
    unheld: float = 0.0
    outages: int = 0  # outages that started in the bucket
    longest: int = 0  # longest outage in progress in the bucket, whole length
    estimated: bool = False

    @property
    def span(self) -> Span:
        return Span(self.up, self.down, self.maintenance, self.unobserved, self.unheld)

    def add(self, other: "Tally") -> None:
        self.up += other.up
        self.down += other.down
        self.maintenance += other.maintenance
        self.unobserved += other.unobserved
        self.unheld += other.unheld
        self.outages += other.outages
        self.longest = max(self.longest, other.longest)
        self.estimated = self.estimated or other.estimated


@dataclass(frozen=True, slots=True)
class Cover:
    """How far a vessel's ledger reaches, and how its last collection went."""

    held_from: float | None  # the ledger starts here; None: the vessel has no ledger yet
    covered_until: float | None  # points up to here are folded into frozen hours
    status: str | None  # the newest run's status for the vessel
    last_success: float | None  # the newest collection that answered


async def cover(db: aiosqlite.Connection, ledger: Ledger | None,
                vessels: Iterable[str]) -> dict[str, Cover]:
    wanted = list(vessels)
    found: dict[str, Cover] = {}
    async with db.execute("SELECT vessel, frozen_until, held_from FROM ledger_vessels") as c:
        cursors = {str(v): (f, h) for v, f, h in await c.fetchall()}
    async with db.execute("SELECT vessel, last_success FROM vessel_state") as c:
        success = {str(v): s for v, s in await c.fetchall()}
    async with db.execute("SELECT v.vessel, v.status FROM run_vessels v JOIN"
                          " (SELECT vessel, MAX(run_id) AS run FROM run_vessels GROUP BY vessel)"
                          " n ON v.vessel = n.vessel AND v.run_id = n.run") as c:
        status = {str(v): str(s) for v, s in await c.fetchall()}
    for vid in wanted:
        frozen, held = cursors.get(vid, (None, None))
        books = ledger.vessels.get(vid) if ledger is not None else None
        if books is not None:  # memory is newer than the DB
            frozen, held = books.frozen_until, books.held_from
        last = success.get(vid)
        found[vid] = Cover(
            held_from=float(held) if isinstance(held, int | float) else None,
            covered_until=float(frozen) if isinstance(frozen, int | float) else None,
            status=status.get(vid),
            last_success=float(last) if isinstance(last, int | float) else None)
    return found


async def tallies(db: aiosqlite.Connection, ledger: Ledger | None, vessel: str,
                  addresses: Sequence[str], cuts: Sequence[float],
                  held_from: float | None) -> dict[str, list[Tally]]:
    """Per device address, a Tally for each bucket [cuts[i], cuts[i + 1]): stored days
    (one query per vessel), overlaid by the hours a running exporter holds in memory."""
    start, end = cuts[0], cuts[-1]
    first_day, last_day = int(start // DAY), int(-(-end // DAY))
    wanted = set(addresses)
    stored: dict[str, list[tuple[int, bytes]]] = {a: [] for a in addresses}
    async with db.execute("SELECT address, day, hours FROM ledger_days WHERE vessel = ? AND"
                          " day >= ? AND day < ?", (vessel, first_day, last_day)) as c:
        for address, day, blob in await c.fetchall():
            if address in wanted and isinstance(day, int) and isinstance(blob, bytes):
                stored[address].append((day, blob))
    memory = _memory(ledger, vessel, addresses, first_day * 24, last_day * 24)
    held = held_from if held_from is not None else end  # no ledger: nothing is held

    def sums() -> dict[str, list[Tally]]:
        # Identical days (a device up all day on a regular grid) are summed once.
        seen: dict[tuple[bytes, Bounds], list[DaySums] | None] = {}
        layouts: dict[int, Layout] = {}  # the same days for every device
        return {a: _device(stored[a], memory.get(a, {}), cuts, held, seen, layouts)
                for a in addresses}

    return await asyncio.to_thread(sums)  # the arithmetic runs off the event loop


def _memory(ledger: Ledger | None, vessel: str, addresses: Sequence[str], first: int,
            last: int) -> dict[str, dict[int, Hour]]:
    """The hours in memory, by address and hour number: newer than the stored ones."""
    books = ledger.vessels.get(vessel) if ledger is not None else None
    found: dict[str, dict[int, Hour]] = {}
    if books is None:
        return found
    for address in addresses:
        book = books.books.get(address)
        if book is None:
            continue
        keys = [k for k in (*book.frozen, *book.fresh) if first <= k < last]
        hours = {k: h for k in keys if (h := book.hour(k)) is not None}
        if hours:
            found[address] = hours
    return found


# How a UTC day falls into the buckets: where its parts start (hours of the day, after
# the first), and per part its first hour, its bucket (-1: outside the cuts) and whether
# it is one hour split by share (a cut inside the hour).
Layout = tuple[Bounds, tuple[tuple[int, int, bool], ...]]


def _layout(day: int, cuts: Sequence[float]) -> Layout:
    lo, hi = day * DAY, (day + 1) * DAY
    first = bisect.bisect_right(cuts, lo)
    inside = cuts[first:bisect.bisect_left(cuts, hi, first)]  # cuts within the day
    split: set[int] = set()
    bounds: Bounds = ()
    if inside:  # most days have none: a bucket holds them whole
        marks = {int(c - lo) // HOUR for c in inside}
        split = {m for m in marks
                 if any(lo + m * HOUR < c < lo + (m + 1) * HOUR for c in inside)}
        bounds = tuple(sorted(marks | {m + 1 for m in split} - {0, 24}))
    last = len(cuts) - 2
    parts = []
    for a in (0, *bounds):
        i = bisect.bisect_right(cuts, lo + a * HOUR) - 1
        parts.append((a, i if 0 <= i <= last else -1, a in split))
    return bounds, tuple(parts)


def _device(days: list[tuple[int, bytes]], memory: dict[int, Hour], cuts: Sequence[float],
            held_from: float, seen: dict[tuple[bytes, Bounds], list[DaySums] | None],
            layouts: dict[int, Layout]) -> list[Tally]:
    out = [Tally() for _ in cuts[:-1]]
    touched = {k // 24 for k in memory}
    for day, blob in days:
        if day in touched:
            _hours(out, cuts, day, blob, memory)
            continue
        layout = layouts.get(day)
        if layout is None:
            layout = layouts[day] = _layout(day, cuts)
        bounds, layout_parts = layout
        key = (blob, bounds)
        parts = seen.get(key, _UNSEEN)
        if parts is _UNSEEN:
            parts = _day_sums(blob, bounds)
            if len(seen) < _SEEN_MAX:
                seen[key] = parts
        if parts is None:
            _hours(out, cuts, day, blob, memory)
            continue
        for sums, (first_hour, i, split) in zip(parts, layout_parts, strict=True):
            if split:
                _place(out, cuts, day * DAY + first_hour * HOUR, _hour(blob, first_hour))
            elif i >= 0:
                t = out[i]
                t.up += sums[0]
                t.down += sums[1]
                t.maintenance += sums[2]
                t.outages += sums[3]
                if sums[4] > t.longest:
                    t.longest = sums[4]
                t.estimated = t.estimated or sums[5]
    for key_, hour in memory.items():
        _place(out, cuts, key_ * HOUR, hour)
    _finish(out, cuts, held_from)
    return out


def _hours(out: list[Tally], cuts: Sequence[float], day: int, blob: bytes,
           memory: dict[int, Hour]) -> None:
    """A stored day hour by hour, leaving out the hours memory holds (newer)."""
    try:
        hours = ledger_db.unpack_day(blob)
    except ValueError:
        return  # written by another version: shown as not held
    base = day * 24
    for h, hour in enumerate(hours):
        if hour is not None and base + h not in memory:
            _place(out, cuts, (base + h) * HOUR, hour)


def _hour(blob: bytes, index: int) -> Hour:
    """One hour of a stored day in the packed form `_DAY` read (no hour missing)."""
    up, down, held, up_n, down_n, outages, longest, flags = _PACKED_HOUR.unpack_from(
        blob, index * _PACKED_HOUR.size)
    return Hour(up, down, held, up_n, down_n, outages, longest, estimated=bool(flags))


def _day_sums(blob: bytes, bounds: Bounds) -> list[DaySums] | None:
    """A stored day's hours summed from its packed form in one unpack, in the parts that
    `bounds` (hours of the day where a cut falls) make; None when an hour is missing or
    the day is in another form (then it is read hour by hour)."""
    if len(blob) != _DAY.size:
        return None
    values = _DAY.unpack(blob)
    if _MISSING in values[0::8]:
        return None
    out = []
    for a, b in itertools.pairwise((0, *bounds, 24)):
        part = values[a * 8:b * 8]
        out.append((sum(part[0::8]), sum(part[1::8]), sum(part[2::8]), sum(part[5::8]),
                    max(part[6::8], default=0), any(part[7::8])))  # the one flag: estimated
    return out


def bucket(hours: dict[int, Hour], cuts: Sequence[float], held_from: float) -> list[Tally]:
    """A device's hours (by hour start) summed between cuts."""
    out = [Tally() for _ in cuts[:-1]]
    for at, hour in hours.items():
        _place(out, cuts, at, hour)
    _finish(out, cuts, held_from)
    return out


def _place(out: list[Tally], cuts: Sequence[float], at: float, hour: Hour) -> None:
    """Add the hour starting `at` to its bucket, or split by share between the buckets
    it straddles; outside the cuts it is left out."""
    if at + HOUR <= cuts[0] or at >= cuts[-1]:
        return
    i = bisect.bisect_right(cuts, at) - 1
    if i >= 0 and cuts[i + 1] >= at + HOUR:  # the hour is wholly in bucket i
        _add(out[i], hour, 1.0)
        return
    parts = []
    for j in range(max(0, i), len(out)):
        lo, hi = max(at, cuts[j]), min(at + HOUR, cuts[j + 1])
        if lo >= at + HOUR:
            break
        if hi > lo:
            parts.append((j, hi - lo))
    inside = sum(share for _, share in parts)
    most = max(parts, key=lambda p: p[1])[0] if parts else -1
    for j, share in parts:
        _add(out[j], hour, share / HOUR, counts=inside * 2 > HOUR and j == most)


def _finish(out: list[Tally], cuts: Sequence[float], held_from: float) -> None:
    """Unobserved time: what each bucket's length leaves after up, down, maintenance and
    the time before the ledger starts (unheld), taken over the bucket, not hour by hour, so
    the part of an interval that an hour gets more than its length (an interval change)
    makes up for its neighbour's less."""
    for i, t in enumerate(out):
        lo, hi = cuts[i], cuts[i + 1]
        t.unheld = max(0.0, min(hi, held_from) - lo)
        t.unobserved = max(0.0, hi - lo - t.up - t.down - t.maintenance - t.unheld)


def _add(t: Tally, hour: Hour, share: float, counts: bool = True) -> None:
    """Add `share` of an hour, as `hours.window()` weighs a partial hour."""
    t.up += hour.up * share
    t.down += hour.down * share
    t.maintenance += hour.maintenance * share
    if counts:
        t.outages += hour.outages
        t.longest = max(t.longest, hour.longest)
    t.estimated = t.estimated or hour.estimated
