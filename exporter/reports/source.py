"""The reports' one way into the ledger: each device's time summed into buckets.

Narrow on purpose: a faster store only has to answer `tallies` (per device, the ledger's
hours summed between cuts) and `cover` (how far each vessel's ledger reaches). Today it
reads `ledger_db.hours()`, stored days overlaid by the hours still in memory.

A bucket's unobserved time is what its length leaves after up, down, maintenance and the
time before the vessel's ledger starts ("unheld"). A cut that is not on a whole UTC hour
splits its hour by share (the ledger holds no finer time); its outages go to the part
holding most of it.
"""

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from .. import ledger_db
from ..sla.hours import HOUR, Hour, Span
from ..sla.ledger import Ledger


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
    """Per device address, a Tally for each bucket [cuts[i], cuts[i + 1])."""
    start, end = cuts[0], cuts[-1]
    first, last = int(start // HOUR) * HOUR, int(-(-end // HOUR)) * HOUR
    if ledger is None:
        hours = await ledger_db.read(db, vessel, addresses, first, last)
    else:
        hours = await ledger_db.hours(db, ledger, vessel, addresses, first, last)
    held = held_from if held_from is not None else end  # no ledger: nothing is held
    return {a: bucket(hours.get(a, {}), cuts, held) for a in addresses}


def bucket(hours: dict[int, Hour], cuts: Sequence[float], held_from: float) -> list[Tally]:
    """A device's hours (by hour start) summed between cuts. Unobserved time is what each
    bucket's length leaves after up, down, maintenance and the time before the ledger
    starts (unheld): taken over the bucket, not hour by hour, so the part of an interval
    that an hour gets more than its length (an interval change) makes up for its
    neighbour's less."""
    out = [Tally() for _ in cuts[:-1]]
    start, end = cuts[0], cuts[-1]
    for at in sorted(hours):
        if at + HOUR <= start or at >= end:
            continue
        hour = hours[at]
        i = bisect.bisect_right(cuts, at) - 1
        if i >= 0 and cuts[i + 1] >= at + HOUR:  # the hour is wholly in bucket i
            _add(out[i], hour, 1.0)
            continue
        # The hour straddles a cut: each part gets its share.
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
    for i, t in enumerate(out):
        lo, hi = cuts[i], cuts[i + 1]
        t.unheld = max(0.0, min(hi, held_from) - lo)
        t.unobserved = max(0.0, hi - lo - t.up - t.down - t.maintenance - t.unheld)
    return out


def _add(t: Tally, hour: Hour, share: float, counts: bool = True) -> None:
    """Add `share` of an hour, as `hours.window()` weighs a partial hour."""
    t.up += hour.up * share
    t.down += hour.down * share
    t.maintenance += hour.maintenance * share
    if counts:
        t.outages += hour.outages
        t.longest = max(t.longest, hour.longest)
    t.estimated = t.estimated or hour.estimated
