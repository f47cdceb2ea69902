"""The SLA ledger: per device and UTC hour, time up, down, in maintenance and unobserved.

Filled incrementally, inside the one request per vessel per cycle: each request reads the
raw points after the vessel's frozen cursor (at most `max_catchup` of them, so a long
catch-up or the first backfill is spread over cycles). Points older than `settle` are
frozen into hours, which are written to the state DB and never counted again; the part
after the cursor is recomputed from its points each cycle, which read it again.

A maintenance window declared, changed or removed after its hours were frozen rewinds
the vessel's cursor to the first hour it touches (`amend`): the next requests read those
points again and their hours replace the stored ones, so nothing is counted twice. Hours
older than the vessel keeps, or that the re-read finds empty, keep an estimate instead.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config import LedgerConfig, VesselConfig, Window
from .hours import (
    HOUR,
    Book,
    Carry,
    EdgeCount,
    Hour,
    Hours,
    Maintenance,
    Span,
    estimate,
    fold,
    no_maintenance,
    share,
    window,
)

EDGE_WINDOW = "24h"  # the window whose oldest partial hour the server counts exactly
# A device missing from the edge counts had no sample there: not "weigh by share".
NO_SAMPLES = EdgeCount(0, 0)


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request reads: raw points in (since, until]; until None is the server's
    now(); and the server's counts of the 24 h window's oldest partial hour."""

    since: int
    until: int | None
    edge_end: int  # end of the hour that now - 24h falls in


@dataclass(slots=True)
class VesselBooks:
    frozen_until: int  # points at or before this are in the frozen hours
    held_from: int  # where this vessel's ledger starts
    books: dict[str, Book] = field(default_factory=dict)  # by device address
    # After a rewind: the first hour read again. The points just before it only set up
    # the carries; their hours are kept as they were.
    replay_from: int | None = None


# (vessel, address, day number) -> the day's 24 hours, for the state DB.
DayKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Taken:
    """What one answer changed: window figures per device, and days to write."""

    spans: Mapping[str, Mapping[str, Span]]  # address -> window label -> span
    first: Mapping[str, int]  # address -> oldest sample seen


class Ledger:
    def __init__(self, config: LedgerConfig, windows: Sequence[Window],
                 maintenance: Maintenance = no_maintenance) -> None:
        self.config = config
        self.windows = tuple(windows)
        self.maintenance = maintenance
        self.vessels: dict[str, VesselBooks] = {}
        self.dirty: set[DayKey] = set()
        self.cursors_dirty: set[str] = set()

    def reconfigure(self, config: LedgerConfig, windows: Sequence[Window]) -> None:
        """A reload keeps every vessel's books; only the settings change."""
        self.config, self.windows = config, tuple(windows)

    def _vessel(self, vessel: VesselConfig, now: float) -> VesselBooks:
        books = self.vessels.get(vessel.id)
        if books is None:
            start = int(now - self.config.backfill) // HOUR * HOUR
            books = self.vessels[vessel.id] = VesselBooks(frozen_until=start, held_from=start)
        return books

    def ask(self, vessel: VesselConfig, now: float) -> Ask:
        books = self._vessel(vessel, now)
        since = books.frozen_until
        until = None
        if now - self.config.settle - since > self.config.max_catchup:
            until = since + int(self.config.max_catchup)
        edge_end = (int(now - 86400) // HOUR + 1) * HOUR
        return Ask(since=since, until=until, edge_end=edge_end)

    def take(self, vessel: VesselConfig, ask: Ask,
             points: Mapping[str, Sequence[tuple[int, bool]]],
             edges: Mapping[str, EdgeCount], now: float) -> Taken:
        """Fold an answer's points; returns the windows of every device."""
        books = self._vessel(vessel, now)
        if ask.since != books.frozen_until:
            raise ValueError("answer to an old request")  # a reload raced it: drop it
        settled = max(ask.since, int(now - self.config.settle))
        freeze = ask.until if ask.until is not None else settled
        cap = max(1, int(vessel.sample_interval))
        spans: dict[str, dict[str, Span]] = {}
        first: dict[str, int] = {}
        # The counts are of the hour the window started in when asked: an hour may have
        # turned since, and then they are of no use.
        edge_hour = ask.edge_end == (int(now - 86400) // HOUR + 1) * HOUR
        for device in vessel.devices:
            book = books.books.get(device.address)
            if book is None:
                book = books.books[device.address] = Book()
            found = points.get(device.address, ())
            held = self.maintenance(vessel.id, device.component, device.name,
                                    ask.since - cap, max(now, freeze))
            old = [p for p in found if p[0] <= freeze]
            touched: dict[int, Hour] = {}
            fold(old, book.carry, cap, touched, held)
            for key, hour in touched.items():
                if books.replay_from is not None and key * HOUR < books.replay_from:
                    continue
                before = book.frozen.get(key)
                # An hour wholly after the cursor had none of its points frozen: anything
                # held for it is what a rewind left there, and its points replace it.
                fresh_hour = key * HOUR > ask.since
                book.frozen[key] = hour if before is None or fresh_hour else before.add(hour)
                self.dirty.add((vessel.id, device.address, key * HOUR // 86400))
            book.fresh = {}
            fold([p for p in found if p[0] > freeze], book.carry.copy(), cap, book.fresh, held)
            spans[device.address] = {
                w.label: window(book, now - w.seconds, now, books.held_from,
                                edges.get(device.address, NO_SAMPLES)
                                if w.label == EDGE_WINDOW and edge_hour else None)
                for w in self.windows}
            if book.carry.first is not None:
                first[device.address] = book.carry.first
            elif book.fresh:
                first[device.address] = min(p[0] for p in found)
        books.frozen_until = freeze
        if books.replay_from is not None and freeze >= books.replay_from:
            books.replay_from = None
        self.cursors_dirty.add(vessel.id)
        self._prune(vessel.id, books, now)
        return Taken(spans=spans, first=first)

    def _prune(self, vessel: str, books: VesselBooks, now: float) -> None:
        """Memory keeps the longest window, the days a catch-up is still filling, and the
        days not yet written (a backfill longer than the windows would lose them)."""
        longest = max(w.seconds for w in self.windows)
        keep = int(min(now - longest, books.frozen_until - 2 * 86400)) // HOUR - 1
        for address, book in books.books.items():
            if book.frozen and min(book.frozen) < keep:
                # In place: the days still held keep what was derived from them.
                for k in [k for k in book.frozen
                          if k < keep and (vessel, address, k // 24) not in self.dirty]:
                    del book.frozen[k]

    def day(self, vessel: str, address: str, day: int) -> list[Hour | None] | None:
        """The 24 hours of a day held in memory, for writing; None if the vessel is gone."""
        books = self.vessels.get(vessel)
        book = books.books.get(address) if books is not None else None
        if book is None:
            return None
        base = day * 24
        return [book.frozen.get(base + h) for h in range(24)]

    def restore(self, vessel: str, frozen_until: int, held_from: int,
                carries: Mapping[str, Carry], hours: Mapping[str, Mapping[int, Hour]],
                replay_from: int | None = None) -> None:
        self.vessels[vessel] = VesselBooks(
            frozen_until=frozen_until, held_from=held_from,
            books={a: Book(frozen=Hours(hours.get(a, {})), carry=c) for a, c in carries.items()},
            replay_from=replay_from)

    def affected(self, vessel: VesselConfig, changed: Maintenance) -> dict[str, list[int]]:
        """Per device, the frozen hours whose maintenance may differ: those of the samples
        whose time overlaps `changed` (a sample stands for up to `sample_interval` before
        its own timestamp)."""
        books = self.vessels.get(vessel.id)
        if books is None:
            return {}
        cap = max(1, int(vessel.sample_interval))
        end = books.frozen_until
        plan: dict[str, list[int]] = {}
        for device in vessel.devices:
            keys: set[int] = set()
            for s, e in changed(vessel.id, device.component, device.name,
                                books.held_from - cap, end):
                last = min(int(-(-e // 1)) + cap - 1, end)
                keys.update(range(int(s) // HOUR, last // HOUR + 1))
            if keys:
                plan[device.address] = sorted(k for k in keys if k * HOUR < end)
        return plan

    def amend(self, vessel: VesselConfig, plan: Mapping[str, Sequence[int]],
              old: Maintenance, new: Maintenance, kept_from: float) -> None:
        """Apply a changed schedule to the hours in `plan` (from `affected`, loaded in
        memory). Each gets an estimate: its observed time re-split by the change in its
        maintenance share. From the first of them that the vessel still holds points for
        (after `kept_from`) on, the cursor goes back, so those points are read again and
        their exact hours replace the estimates."""
        books = self.vessels.get(vessel.id)
        if books is None:
            return
        cap = max(1, int(vessel.sample_interval))
        for device in vessel.devices:
            book = books.books.get(device.address)
            if book is None:
                continue
            for key in plan.get(device.address, ()):
                hour = book.frozen.get(key)
                if hour is None:
                    continue
                lo, hi = key * HOUR, (key + 1) * HOUR
                names = (vessel.id, device.component, device.name)
                delta = share(new(*names, lo, hi), lo, hi) - share(old(*names, lo, hi), lo, hi)
                guess = estimate(hour, delta)
                if guess is not hour:
                    book.frozen[key] = guess
                    self.dirty.add((vessel.id, device.address, key // 24))
        again = [k * HOUR for keys in plan.values() for k in keys if k * HOUR >= kept_from]
        if not again:
            return
        start = min(again)
        # Read from just before the first hour, so the carries (the sample before, an
        # outage in progress) are as they were when those points were first folded.
        cursor = start - cap - 1
        if cursor >= books.frozen_until:
            return  # not frozen yet: the next request reads those points anyway
        books.frozen_until = cursor
        books.replay_from = start
        for book in books.books.values():
            book.carry = Carry(first=book.carry.first)
        self.cursors_dirty.add(vessel.id)

    def forget(self, keep: set[str]) -> None:
        """Drop the books of vessels no longer configured (their rows stay in the DB)."""
        for vid in [v for v in self.vessels if v not in keep]:
            del self.vessels[vid]
