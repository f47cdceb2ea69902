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
from itertools import count

from ..config import LedgerConfig, VesselConfig, Window
from ..model import DeviceObservation, VesselObservation
from .hour import HOUR, Hour
from .hours import (
    PROFILE_SPAN,
    Book,
    Carry,
    EdgeCount,
    Hours,
    Maintenance,
    Profile,
    Span,
    estimate,
    fold,
    no_maintenance,
    share,
    window,
)
from .unwritten import Unwritten

# Stamps of a vessel's books, unique in the process: rows packed from the books are
# stale once the books carry another stamp (a new object, or a change since).
_stamps = count(1)

EDGE_WINDOW = "24h"  # the window whose oldest partial hour is counted exactly
# A device missing from the edge counts had no sample there: not "weigh by share".
NO_SAMPLES = EdgeCount(0, 0)


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request reads: raw points after `since` (up to `until`, or all of them
    when None); the newest sample and reply over the lookback when `newest`; the server's
    counts of the 24 h window's oldest partial hour when `edges`."""

    since: int
    until: int | None
    edge_end: int  # end of the hour that now - 24h falls in
    newest: bool = True
    edges: bool = True


@dataclass(slots=True)
class VesselBooks:
    frozen_until: int  # points at or before this are in the frozen hours
    held_from: int  # where this vessel's ledger starts
    books: dict[str, Book] = field(default_factory=dict)  # by device address
    # After a rewind: the first hour read again. The points just before it only set up
    # the carries; their hours are kept as they were.
    replay_from: int | None = None
    # By device address: its newest sample and reply as last known, so that a request
    # need not ask them over the whole lookback; the points after the cursor add to them.
    newest: dict[str, DeviceObservation] = field(default_factory=dict)
    # Changed by every Ledger method that changes the hours, carries, profiles or cursor.
    stamp: int = field(default_factory=lambda: next(_stamps))

    def touch(self) -> None:
        self.stamp = next(_stamps)


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
        self.dirty = Unwritten()
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
        # A catch-up's points stop short of now: they cannot tell the newest sample.
        known = until is None and all(d.address in books.newest for d in vessel.devices)
        # The server counts the 24 h window's edge when this request may fold its hour (a
        # catch-up), or a device's profile does not cover it (after a restart, a flapping
        # device): the take counts the edge before it adds this answer to the profiles.
        edges = books.frozen_until < edge_end - 1 or any(
            self._unprofiled(book, now) for d in vessel.devices
            if (book := books.books.get(d.address)) is not None)
        return Ask(since=since, until=until, edge_end=edge_end, newest=not known, edges=edges)

    @staticmethod
    def _unprofiled(book: Book, now: float) -> bool:
        """The 24 h window needs the count of a part of an hour the device's profile does
        not cover."""
        start = now - 86400
        key = int(start // HOUR)
        if start <= key * HOUR or book.hour(key) is None:
            return False
        return not book.profile.covers(key * HOUR, (key + 1) * HOUR)

    def _edge(self, book: Book, ask: Ask, edges: Mapping[str, EdgeCount], address: str,
              now: float) -> EdgeCount | None:
        """The samples of the 24 h window's oldest partial hour: from the profile, else as
        the server counted them, else None (weighed by its share of the hour)."""
        start = now - 86400
        if not self._unprofiled(book, now):
            return book.profile.count(start, (int(start // HOUR) + 1) * HOUR)
        # The counts are of the hour the window started in when asked: an hour may have
        # turned since, and then they are of no use.
        if ask.edges and ask.edge_end == (int(start) // HOUR + 1) * HOUR:
            return edges.get(address, NO_SAMPLES)
        return None

    def newest(self, vessel: VesselConfig, ask: Ask, found: VesselObservation,
               now: float, lookback: float) -> VesselObservation:
        """The newest sample and reply of each device: `found` when the request asked them
        over the lookback, else the newer of what was known and what the points after the
        cursor (`found`) show; none older than the lookback, as it would not see them."""
        books = self._vessel(vessel, now)
        oldest = now - lookback
        merged: dict[str, DeviceObservation] = {}
        for device in vessel.devices:
            address = device.address
            new = found.devices.get(address) or DeviceObservation(spans={})
            old = books.newest.get(address)
            merged[address] = new if ask.newest or old is None else _newer(old, new, oldest)
        books.newest = merged
        return VesselObservation(devices=merged)

    def remember(self, vessel: str, observation: VesselObservation, at: float,
                 profiles: Mapping[str, Profile]) -> None:
        """What a vessel's newest samples were when it was last collected, at `at` (its
        saved state), and its devices' profiles. The newest are taken with the points
        after the cursor, which are read next: together they tell the newest as the
        lookback would. A profile is taken if it ends at the cursor the ledger restored."""
        books = self.vessels.get(vessel)
        if books is None or at < books.frozen_until:
            return
        books.touch()  # the profiles are in a vessel's packed state
        books.newest = {a: _bare(d) for a, d in observation.devices.items()}
        for address, profile in profiles.items():
            book = books.books.get(address)
            if book is not None and profile.through == books.frozen_until:
                book.profile = profile

    def saved_profiles(self, vessel: str) -> dict[str, bytes]:
        """Each device's profile as the state DB keeps it: a copy, taken on the loop."""
        books = self.vessels.get(vessel)
        return {} if books is None else {a: b.profile.packed_bytes()
                                         for a, b in books.books.items()}

    def take(self, vessel: VesselConfig, ask: Ask,
             points: Mapping[str, Sequence[tuple[int, bool]]],
             edges: Mapping[str, EdgeCount], now: float) -> Taken:
        """Fold an answer's points; returns the windows of every device."""
        books = self._vessel(vessel, now)
        if ask.since != books.frozen_until:
            raise ValueError("answer to an old request")  # a reload raced it: drop it
        books.touch()
        settled = max(ask.since, int(now - self.config.settle))
        freeze = ask.until if ask.until is not None else settled
        cap = max(1, int(vessel.sample_interval))
        spans: dict[str, dict[str, Span]] = {}
        first: dict[str, int] = {}
        for device in vessel.devices:
            book = books.books.get(device.address)
            if book is None:
                # Its samples up to the cursor are not in the ledger, nor in the profile.
                book = books.books[device.address] = Book(
                    profile=Profile(since=ask.since, through=ask.since))
            found = points.get(device.address, ())
            if found and found[-1][0] > now:
                # Stamped ahead of our clock: they tell the newest sample and the skew only.
                found = [p for p in found if p[0] <= now]
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
            # Counted before this answer's points join the profile, as the request foresaw.
            edge = self._edge(book, ask, edges, device.address, now)
            book.profile.add(old, freeze)
            book.profile.forget(now - PROFILE_SPAN)
            spans[device.address] = {
                w.label: window(book, now - w.seconds, now, books.held_from,
                                edge if w.label == EDGE_WINDOW else None)
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
            first = book.frozen.first()
            if first is not None and first < keep:
                # In place: the days still held keep what was derived from them.
                for k in book.frozen.before(keep):
                    if (vessel, address, k // 24) not in self.dirty:
                        del book.frozen[k]

    def restore(self, vessel: str, frozen_until: int, held_from: int,
                carries: Mapping[str, Carry], hours: Mapping[str, Hours],
                replay_from: int | None = None) -> None:
        self.vessels[vessel] = VesselBooks(
            frozen_until=frozen_until, held_from=held_from,
            # Empty profiles until remember() brings the saved ones: without them the edge
            # of the 24 h window is asked of the server until new profiles reach it.
            books={a: Book(frozen=hours.get(a) or Hours(), carry=c,
                           profile=Profile(since=frozen_until, through=frozen_until))
                   for a, c in carries.items()},
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
        books.touch()
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
            book.profile.truncate(cursor)
        self.cursors_dirty.add(vessel.id)

    def merge_stored(self, vessel: str, stored: Mapping[str, Hours]) -> None:
        """Stored hours under those in memory (newer), for hours memory had pruned."""
        books = self.vessels.get(vessel)
        if books is None:
            return
        books.touch()
        for address, hours in stored.items():
            book = books.books.get(address)
            if book is not None:
                book.frozen.merge_under(hours)

    def forget(self, keep: set[str]) -> None:
        """Drop the books of vessels no longer configured (their rows stay in the DB)."""
        for vid in [v for v in self.vessels if v not in keep]:
            del self.vessels[vid]


def _bare(device: DeviceObservation) -> DeviceObservation:
    """The newest sample and reply alone: offset, freshness and windows are the
    collection's own."""
    return DeviceObservation(spans={}, last_sample=device.last_sample,
                             last_loss=device.last_loss, last_rtt=device.last_rtt,
                             last_reply=device.last_reply)


def _newer(known: DeviceObservation, found: DeviceObservation,
           oldest: float) -> DeviceObservation:
    # One object built per device and cycle: replace() is slow enough to matter here.
    sample = found if found.last_sample is not None and (
        known.last_sample is None or found.last_sample >= known.last_sample) else known
    reply = known.last_reply
    if found.last_reply is not None and (reply is None or found.last_reply > reply):
        reply = found.last_reply
    if sample.last_sample is not None and sample.last_sample <= oldest:
        sample = DeviceObservation(spans={})
    return DeviceObservation(spans={}, last_sample=sample.last_sample,
                             last_loss=sample.last_loss, last_rtt=sample.last_rtt,
                             last_reply=reply if reply is not None and reply > oldest else None)
