"""The reports' one way into the ledger: each device's time summed into buckets.

Narrow on purpose: `tallies` (per device, the ledger's hours summed between cuts) and
`cover` (how far each vessel's ledger reaches). A UTC day that one bucket holds whole is
read as the ledger's day totals (`ledger_db.days`: no hour is unpacked); a day a cut
falls inside (a month's edge in a zone other than UTC, a local day's midnight) is read
hour by hour (`ledger_db.hours`), and an hour with a cut inside it is split by share.
Both overlay the hours a running exporter still holds in memory.

A bucket's unobserved time is what its length leaves after up, down, maintenance and the
time before the vessel's ledger starts ("unheld"). A cut that is not on a whole UTC hour
splits its hour by share (the ledger holds no finer time); its outages go to the part
holding its middle.
"""

import asyncio
import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from .. import ledger_db, runlog
from ..sla.hour import HOUR, Hour
from ..sla.hours import Span
from ..sla.ledger import Ledger

DAY = 86400


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
    cursors = await ledger_db.cursors(db)
    success, status = await runlog.last_outcomes(db)
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
    """Per device address, a Tally for each bucket [cuts[i], cuts[i + 1]): days that one
    bucket holds whole from the ledger's day totals, the days a cut falls inside hour by
    hour (both overlaid by the hours a running exporter holds in memory)."""
    start, end = cuts[0], cuts[-1]
    first_day, last_day = int(start // DAY), int(-(-end // DAY))
    layouts = {day: _bucket_of(day, cuts) for day in range(first_day, last_day)}
    split = [day for day, i in layouts.items() if i is None]
    # Each bucket's whole days are consecutive: one span each.
    spans: dict[int, tuple[int, int]] = {}
    for day, i in layouts.items():
        if i is not None and i >= 0:
            lo, _ = spans.get(i, (day, day))
            spans[i] = (lo, day + 1)
    order = sorted(spans)
    totals = await ledger_db.span_totals(db, ledger, vessel, addresses,
                                         [spans[i] for i in order])
    hours: dict[str, dict[int, Hour]] = {}
    for lo, hi in ledger_db.runs(split):
        for address, found in (await ledger_db.hours(db, ledger, vessel, addresses,
                                                     lo * DAY, hi * DAY)).items():
            hours.setdefault(address, {}).update(found)
    held = held_from if held_from is not None else end  # no ledger: nothing is held

    def sums() -> dict[str, list[Tally]]:
        out: dict[str, list[Tally]] = {}
        for address in addresses:
            tallies = out[address] = [Tally() for _ in cuts[:-1]]
            for i, total in zip(order, totals.get(address, ()), strict=False):
                if total is not None:
                    tally = tallies[i]
                    tally.up += total.up
                    tally.down += total.down
                    tally.maintenance += total.maintenance
                    tally.outages += total.outages
                    tally.longest = max(tally.longest, total.longest)
                    tally.estimated = tally.estimated or bool(total.estimated)
            for at, hour in hours.get(address, {}).items():
                _place(tallies, cuts, at, hour)
            _finish(tallies, cuts, held)
        return out

    return await asyncio.to_thread(sums)  # the arithmetic runs off the event loop


def _bucket_of(day: int, cuts: Sequence[float]) -> int | None:
    """The bucket holding the whole UTC day, -1 if outside the cuts, None if a cut falls
    inside it."""
    lo, hi = day * DAY, (day + 1) * DAY
    i = bisect.bisect_right(cuts, lo) - 1
    if i + 1 < len(cuts) and cuts[i + 1] < hi:
        return None
    return i if 0 <= i < len(cuts) - 1 else -1


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
    # Its outages go to the bucket holding its middle (a cut there: the later one), so
    # an hour a period's edge halves is counted in one period, whichever report reads it.
    owner = bisect.bisect_right(cuts, at + HOUR / 2) - 1
    for j, share in parts:
        _add(out[j], hour, share / HOUR, counts=j == owner)


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
