"""The ledger's arithmetic: raw samples folded into per-device UTC hours, and windows.

A sample stands for the time since the sample before it, at most the vessel's
`sample_interval` (so a gap is never covered by the sample after it), and the first one
seen stands for `sample_interval`. Its whole time counts in the hour of its own
timestamp, and in a window when its timestamp is inside it: a sample's duration is known
the moment it arrives, so an hour never changes once its samples are in. On a regular
grid every hour gets exactly its own length; when the interval changes, an hour can get a
part of an interval more or less than its length, which its neighbour has less or more.
"""

import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate, islice, pairwise
from typing import TypeVar, overload

from .hour import ALL_HOURS, FORM, HOUR, MASKS, SECTION, Hour, held, put
from .hour import figures as hour_figures
from .hour import get as get_hour

# (vessel id, component, device name, start, end) -> sorted, non-overlapping [s, e)
Maintenance = Callable[[str, str, str, float, float], Sequence[tuple[float, float]]]


def no_maintenance(vessel: str, component: str, device: str, start: float,
                   end: float) -> Sequence[tuple[float, float]]:
    return ()


@dataclass(slots=True)
class Carry:
    """What the next sample of a device needs from those before it."""

    last: int | None = None  # timestamp of the newest sample folded
    last_up: bool = True
    first: int | None = None  # oldest sample the ledger has seen
    down_from: int | None = None  # start of the down stretch in progress

    def copy(self) -> "Carry":
        return Carry(self.last, self.last_up, self.first, self.down_from)


def _overlap(start: int, end: int, intervals: Sequence[tuple[float, float]]) -> int:
    total = 0.0
    for s, e in intervals:
        if e <= start:
            continue
        if s >= end:
            break
        total += min(e, end) - max(s, start)
    return round(total)


def share(intervals: Sequence[tuple[float, float]], start: int, end: int) -> int:
    """Seconds of [start, end) inside `intervals` (sorted, non-overlapping)."""
    return _overlap(start, end, intervals)


def estimate(hour: Hour, delta: int) -> Hour:
    """The hour with `delta` seconds more maintenance (fewer when negative), when its
    points are gone. Added maintenance is taken from down first, then up (a window is
    declared for an outage); removed maintenance goes back to up and down as the hour's
    samples were. Unobserved time stays unobserved: only samples count as maintenance."""
    if delta > 0:
        from_down = min(hour.down, delta)
        from_up = min(hour.up, delta - from_down)
        if not from_down + from_up:
            return hour
        return replace(hour, up=hour.up - from_up, down=hour.down - from_down,
                       maintenance=hour.maintenance + from_down + from_up, estimated=True)
    freed = min(hour.maintenance, -delta)
    samples = hour.up_samples + hour.down_samples
    if not freed or not samples:
        return hour
    to_down = round(freed * hour.down_samples / samples)
    return replace(hour, up=hour.up + freed - to_down, down=hour.down + to_down,
                   maintenance=hour.maintenance - freed, estimated=True)


def fold(points: Iterable[tuple[int, bool]], carry: Carry, cap: int, hours: dict[int, Hour],
         maintenance: Sequence[tuple[float, float]] = ()) -> None:
    """Add time-ordered (timestamp, up) samples to `hours` (keyed by hour number), in place,
    updating `carry`. A sample at or before the carry's newest was counted already."""
    for t, up in points:
        last = carry.last
        if last is not None and t <= last:
            continue
        d = cap if last is None else min(t - last, cap)
        hour = hours.get(t // HOUR)
        if hour is None:
            hour = hours[t // HOUR] = Hour()
        held = _overlap(t - d, t, maintenance) if maintenance else 0
        d -= held
        hour.maintenance += held
        contiguous = last is not None and t - last <= cap
        if up:
            hour.up += d
            hour.up_samples += 1
            carry.down_from = None
        else:
            hour.down += d
            hour.down_samples += 1
            if carry.down_from is None or not contiguous or carry.last_up:
                carry.down_from = t - d
                hour.outages += 1
            hour.longest = max(hour.longest, t - carry.down_from)
        carry.last, carry.last_up = t, up
        if carry.first is None:
            carry.first = t


@dataclass(frozen=True, slots=True)
class Span:
    """A window's time, in seconds: up, down, in maintenance, unobserved within what the
    ledger holds, and not held at all (before the ledger starts)."""

    up: float = 0.0
    down: float = 0.0
    maintenance: float = 0.0
    unobserved: float = 0.0
    unheld: float = 0.0

    def __add__(self, other: "Span") -> "Span":
        return Span(self.up + other.up, self.down + other.down,
                    self.maintenance + other.maintenance, self.unobserved + other.unobserved,
                    self.unheld + other.unheld)

    @property
    def observed(self) -> float:
        return self.up + self.down

    @property
    def length(self) -> float:
        return self.observed + self.maintenance + self.unobserved + self.unheld


@dataclass(frozen=True, slots=True)
class EdgeCount:
    """Samples and samples with a reply from the window's start to the end of its hour,
    counted by the vessel's InfluxDB: a part of an hour the ledger holds only as a whole."""

    samples: int
    up: int


_BOUNDS = struct.Struct("<qq")  # a packed profile's since and through
PROFILE_SPAN = 25 * HOUR  # the 24 h window's oldest hour, and the one it is leaving
# Runs a profile holds: a device that misses one ping in 16 makes ~190 in 25 h. One that
# changes state more often loses its oldest runs, and the server counts its edge instead.
MAX_RUNS = 256


@dataclass(slots=True)
class Profile:
    """When a device's frozen samples were taken and whether they had a reply, as runs of
    evenly spaced samples in one state: the 24 h window's oldest partial hour is counted
    from this, as the server would, instead of asking the server.

    `runs` holds three numbers a run: first timestamp, step, count * 2 + up. On a steady
    grid that is one run: about 230 bytes a device, object included; at most MAX_RUNS
    runs (24 bytes each), about 6.7 KB."""

    since: int = 2**62  # every frozen sample in (since, through] is in `runs`
    through: int = 0
    runs: "array[int]" = field(default_factory=lambda: array("q"))

    def add(self, points: Sequence[tuple[int, bool]], through: int) -> None:
        """Time-ordered samples, all frozen up to `through`; those at or before the newest
        held are held already."""
        runs = self.runs
        # The open run in locals: this runs for every point of a catch-up.
        first = step = count = state = 0
        last = self.since
        if runs:
            first, step, packed = runs[-3], runs[-2], runs[-1]
            del runs[-3:]
            count, state = packed >> 1, packed & 1
            last = first + step * (count - 1)
        for t, up in points:
            if t <= last:
                continue
            if count and state == up and (count == 1 or t - last == step):
                if count == 1:
                    step = t - first
                count += 1
            else:
                if count:
                    runs.extend((first, step, count * 2 + state))
                first, step, count, state = t, 0, 1, int(up)
            last = t
        if count:
            runs.extend((first, step, count * 2 + state))
        self.through = max(self.through, through)

    def count(self, after: float, before: float) -> EdgeCount:
        """Samples, and those with a reply, in (after, before)."""
        samples = up = 0
        runs = self.runs
        for i in range(0, len(runs), 3):
            first, step, packed = runs[i], runs[i + 1], runs[i + 2]
            if step == 0:
                n = 1 if after < first < before else 0
            else:
                lo = max(0, int((after - first) // step) + 1)
                hi = min((packed >> 1) - 1, -int((first - before) // step) - 1)
                n = max(0, hi - lo + 1)
            samples += n
            up += n if packed & 1 else 0
        return EdgeCount(samples, up)

    def covers(self, start: int, end: int) -> bool:
        """Every frozen sample in (start, end) is held: all a window starting after
        `start` counts of the hour [start, end)."""
        return self.since <= start and self.through >= end - 1

    def forget(self, before: float) -> None:
        """Drop runs that end before `before`, and the oldest beyond MAX_RUNS."""
        runs = self.runs
        drop = 0
        while drop < len(runs):
            first, step, packed = runs[drop], runs[drop + 1], runs[drop + 2]
            last = first + step * ((packed >> 1) - 1)
            if last >= before and (len(runs) - drop) // 3 <= MAX_RUNS:
                break
            self.since = max(self.since, last)
            drop += 3
        if drop:
            del runs[:drop]

    def pack(self) -> list[int]:
        """For the state DB: since, through, then the runs."""
        return [self.since, self.through, *self.runs]

    def packed_bytes(self) -> bytes:
        """`pack()` as little-endian int64s, made in C: a run copies 100,000 of these on
        the event loop."""
        if sys.byteorder == "little":
            return _BOUNDS.pack(self.since, self.through) + self.runs.tobytes()
        numbers = array("q", (self.since, self.through))
        numbers.extend(self.runs)
        numbers.byteswap()
        return numbers.tobytes()

    @classmethod
    def unpack(cls, values: object) -> "Profile | None":
        """A packed profile, or None if it is not one (then the server counts the edge)."""
        if (not isinstance(values, list) or len(values) < 2 or len(values) % 3 != 2
                or len(values) > 2 + 3 * MAX_RUNS
                or not all(type(v) is int and 0 <= v < 2**62 for v in values)):
            return None
        runs = array("q", values[2:])
        if any(runs[i + 2] < 2 for i in range(0, len(runs), 3)):  # a run has a sample
            return None
        return cls(since=values[0], through=values[1], runs=runs)

    def truncate(self, after: int) -> None:
        """Forget the samples after `after` (a rewind reads them again)."""
        runs = self.runs
        while runs and runs[-3] > after:
            del runs[-3:]
        if runs and runs[-2]:
            first, step, packed = runs[-3], runs[-2], runs[-1]
            count = min(packed >> 1, (after - first) // step + 1)
            runs[-1] = count * 2 + (packed & 1)
        self.since = min(self.since, after)
        self.through = min(self.through, after)


# An hour's figures, as packed (see hour.py FORM): up, down, maintenance, up and down
# samples, then (when packed) outages and longest.
Figures = tuple[int, ...]

# Whole hours a window must hold before their running totals are kept: a 24 h window
# walks its hours, which costs less than keeping totals for every device.
RUN = 48
_T = TypeVar("_T")


class Hours(MutableMapping[int, Hour]):
    """A book's frozen hours by hour number, kept packed a day at a time (see hour.py):
    `days` maps a UTC day number to its packed section, which the state DB stores as it
    is. Changes are noted so that the running totals for the longer windows are brought up
    to date instead of recomputed."""

    __slots__ = ("_base", "_built", "_count", "_count_at", "_down", "_held", "_low", "_rest",
                 "_top", "_up", "days")

    def __init__(self, hours: Mapping[int, Hour] | None = None) -> None:
        self.days: dict[int, bytearray] = {}
        self._count = 0
        self._base = self._top = 0
        self._built = 0  # totals known, from _base on; 0: none yet
        self._low = 0  # the totals hold for ranges from here on (see _dropped)
        # Totals of the hours before _base + i, at index i (array: 8 bytes a number).
        self._up, self._down, self._held = array("q"), array("q"), array("q")
        self._rest, self._count_at = array("q"), array("q")
        if hours:
            for key, hour in hours.items():
                self[key] = hour

    @classmethod
    def from_days(cls, days: Mapping[int, bytes | bytearray | memoryview]) -> "Hours":
        """Hours from packed days as the state DB holds them (their length checked by the
        reader); mask bits past hour 23, which only damage sets, are dropped."""
        new = cls()
        for day, section in days.items():
            mask, estimated = MASKS.unpack_from(section)
            mask &= ALL_HOURS
            if mask:
                new.days[day] = copy = bytearray(section)
                MASKS.pack_into(copy, 0, mask, estimated & mask)
                new._count += mask.bit_count()
        return new

    def merge_under(self, other: "Hours") -> None:
        """Take the hours of `other` that this one does not hold (those it holds are
        newer): whole days copied, the rest hour by hour as packed."""
        for day, theirs in other.days.items():
            mine = self.days.get(day)
            if mine is None:
                self.days[day] = bytearray(theirs)
                self._count += held(theirs).bit_count()
                continue
            have, estimated = MASKS.unpack_from(mine)
            take, their_estimated = MASKS.unpack_from(theirs)
            take &= ~have
            for i in range(24):
                if take >> i & 1:
                    at = MASKS.size + i * FORM.size
                    mine[at:at + FORM.size] = theirs[at:at + FORM.size]
            MASKS.pack_into(mine, 0, have | take, estimated | their_estimated & take)
            self._count += take.bit_count()
        self._built = 0  # hours added anywhere: the running totals are made again

    def first(self) -> int | None:
        """The oldest hour held."""
        if not self.days:
            return None
        day = min(self.days)
        mask = held(self.days[day])
        return day * 24 + (mask & -mask).bit_length() - 1

    def before(self, key: int) -> list[int]:
        """The hours held before hour `key`, oldest first, reading only their days."""
        found: list[int] = []
        for day in sorted(d for d in self.days if d * 24 < key):
            mask = held(self.days[day])
            found.extend(k for i in range(24) if mask >> i & 1 and (k := day * 24 + i) < key)
        return found

    def figures(self, key: int) -> Figures | None:
        """An hour's packed figures (up, down, maintenance, up and down samples, outages,
        longest), or None when it is not held."""
        section = self.days.get(key // 24)
        return None if section is None else hour_figures(section, key % 24)

    @overload
    def get(self, key: int, /) -> Hour | None: ...

    @overload
    def get(self, key: int, /, default: Hour | _T) -> Hour | _T: ...

    def get(self, key: int, /, default: object = None) -> object:
        section = self.days.get(key // 24)
        if section is None:
            return default
        found = get_hour(section, key % 24)
        return default if found is None else found

    def __getitem__(self, key: int) -> Hour:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        section = self.days.get(key // 24)
        return section is not None and bool(held(section) >> key % 24 & 1)

    def __iter__(self) -> Iterator[int]:
        for day, section in list(self.days.items()):
            mask = held(section)
            yield from (day * 24 + i for i in range(24) if mask >> i & 1)

    def __len__(self) -> int:
        return self._count

    def __setitem__(self, key: int, hour: Hour) -> None:
        day, i = divmod(key, 24)
        section = self.days.get(day)
        new = section is None
        if section is None:
            section = bytearray(SECTION)
        was = held(section) >> i & 1
        put(section, i, hour)  # first: a figure it cannot pack leaves the book as it was
        if new:
            self.days[day] = section
        self._count += 1 - was
        self._changed(key)

    def __delitem__(self, key: int) -> None:
        day, i = divmod(key, 24)
        section = self.days.get(day)
        if section is None or not held(section) >> i & 1:
            raise KeyError(key)
        put(section, i, None)
        self._count -= 1
        if not held(section):
            del self.days[day]
        self._dropped(key)

    def clear(self) -> None:
        self.days.clear()
        self._count = 0
        self._built = self._low = 0

    def _changed(self, key: int) -> None:
        if self._built:
            if key < self._base:
                self._built = 0
            else:
                self._built = min(self._built, key - self._base + 1)
                self._top = max(self._top, key)

    def _dropped(self, key: int) -> None:
        # Totals over hours after a dropped one differ from those before it by the same,
        # so they still hold for any range above it; pruning drops the oldest hours.
        self._low = max(self._low, key + 1)

    def totals(self, lo: int, hi: int) -> tuple[int, int, int, int, int]:
        """Up, down, maintenance, unobserved in held hours, and hours held, over the hour
        numbers in [lo, hi); a change re-adds only the totals after it."""
        if not self or hi <= lo:
            return (0, 0, 0, 0, 0)
        if lo < self._low:
            self._built = self._low = 0
        if not self._built:
            self._base = min(self.days) * 24
            self._top = max(self.days) * 24 + 23
            for a in (self._up, self._down, self._held, self._rest, self._count_at):
                del a[:]
                a.append(0)
            self._built = 1
        below, upto = self._at(lo), self._at(hi)
        return (upto[0] - below[0], upto[1] - below[1], upto[2] - below[2],
                upto[3] - below[3], upto[4] - below[4])

    def _at(self, key: int) -> tuple[int, int, int, int, int]:
        i = min(max(key - self._base, 0), self._top - self._base + 1)
        arrays = (self._up, self._down, self._held, self._rest, self._count_at)
        if i >= self._built:
            for a in arrays:
                del a[self._built:]
            hours = self.figures_in(self._base + self._built - 1, self._base + i)
            ups = [0 if h is None else h[0] for h in hours]
            downs = [0 if h is None else h[1] for h in hours]
            helds = [0 if h is None else h[2] for h in hours]
            rests = [0 if h is None else max(0, HOUR - h[0] - h[1] - h[2]) for h in hours]
            counts = [0 if h is None else 1 for h in hours]
            for a, values in zip(arrays, (ups, downs, helds, rests, counts), strict=True):
                a.extend(islice(accumulate(values, initial=a[-1]), 1, None))
            self._built = i + 1
        return (self._up[i], self._down[i], self._held[i], self._rest[i], self._count_at[i])

    def figures_in(self, lo: int, hi: int) -> list[Figures | None]:
        """Each hour in [lo, hi) as its packed figures (see `figures`), None where none is
        held: a day's hours are unpacked together, with no Hour made."""
        found: list[Figures | None] = []
        for day in range(lo // 24, (hi - 1) // 24 + 1):
            first, last = max(lo, day * 24), min(hi, day * 24 + 24)
            section = self.days.get(day)
            if section is None:
                found.extend([None] * (last - first))
                continue
            mask = held(section)
            rows = list(FORM.iter_unpack(memoryview(section)[MASKS.size:]))
            found.extend(rows[k - day * 24] if mask >> (k - day * 24) & 1 else None
                         for k in range(first, last))
        return found


@dataclass(slots=True)
class Book:
    """One device's hours: frozen ones and the recomputed part after them."""

    frozen: Hours = field(default_factory=Hours)
    fresh: dict[int, Hour] = field(default_factory=dict)  # hours after the frozen cursor
    carry: Carry = field(default_factory=Carry)
    profile: Profile = field(default_factory=Profile)

    def __post_init__(self) -> None:
        # Given plain hours (a test, a restore), they become Hours here, once, so the
        # window sums and the state DB's packing can count on what Hours keeps.
        if not isinstance(self.frozen, Hours):
            self.frozen = Hours(self.frozen)

    def hour(self, key: int) -> Hour | None:
        frozen, fresh = self.frozen.get(key), self.fresh.get(key)
        if frozen is None or fresh is None:
            return frozen or fresh
        return frozen.add(fresh)



def window(book: Book, start: float, now: float, held_from: float,
           edge: EdgeCount | None = None) -> Span:
    """The time of (start, now] by state. Whole hours come from the book; the hour the
    window starts in is weighed by `edge` when given, else by the share of it inside."""
    first, last = int(start // HOUR), int(now // HOUR)
    total, walk = _runs(book, first, last, held_from)
    # Summed in locals, in the order Span.__add__ would: this runs for every hour of
    # every device's 24 h window each cycle.
    up, down, held, unobserved, not_held = (total.up, total.down, total.maintenance,
                                            total.unobserved, total.unheld)
    # A short window's hours are unpacked a day at a time, a long one's few one by one.
    stored = book.frozen.figures_in(first, last + 1) if len(walk) == last - first + 1 else None
    fresh = book.fresh
    for key in walk:
        lo, hi = max(key * HOUR, start), min((key + 1) * HOUR, now)
        span = hi - lo
        if span <= 0:
            continue
        unheld = max(0.0, min(hi, held_from) - lo)
        hour = stored[key - first] if stored is not None else book.frozen.figures(key)
        if fresh and (recent := fresh.get(key)) is not None:
            hour = _plus(hour, recent)
        if hour is None:
            unobserved += span - unheld
            not_held += unheld
            continue
        if key == first and lo > key * HOUR:
            p_up, p_down, p_held = _edge(hour, span, edge)
        else:
            p_up, p_down, p_held = hour[0], hour[1], hour[2]
        rest = max(0.0, span - p_up - p_down - p_held)
        held_rest = max(0.0, rest - unheld)
        up += p_up
        down += p_down
        held += p_held
        unobserved += held_rest
        not_held += rest - held_rest
    return Span(up, down, held, unobserved, not_held)


def _runs(book: Book, first: int, last: int, held_from: float) -> tuple[Span, list[int]]:
    """The whole hours strictly between `first` and `last` summed from the book's running
    totals, and the hours left to walk one by one: the first and last, those with fresh
    figures, and the one the ledger starts within. A short window walks all its hours."""
    if last - first - 1 < RUN:
        return Span(), list(range(first, last + 1))
    walk = sorted({first, last} | {k for k in book.fresh if first < k < last}
                  | ({int(held_from // HOUR)} if held_from % HOUR else set()))
    walk = [k for k in walk if first <= k <= last]
    # Hours before this one end before the ledger starts: their time is not held.
    split = int(-(-held_from // HOUR))
    total = Span()
    for lo, stop in pairwise(walk):
        total += _whole(book.frozen, lo + 1, min(stop, split), unheld=True)
        total += _whole(book.frozen, max(lo + 1, split), stop, unheld=False)
    return total, walk


def _whole(frozen: Hours, lo: int, hi: int, unheld: bool) -> Span:
    if hi <= lo:
        return Span()
    up, down, held, rest, count = frozen.totals(lo, hi)
    rest += (hi - lo - count) * HOUR
    return Span(up, down, held, 0 if unheld else rest, rest if unheld else 0)


def _plus(frozen: Figures | None, fresh: Hour) -> Figures:
    """A frozen hour's figures with the fresh part of it: the first five, as window()
    reads them."""
    added = (fresh.up, fresh.down, fresh.maintenance, fresh.up_samples, fresh.down_samples)
    if frozen is None:
        return added
    return (frozen[0] + added[0], frozen[1] + added[1], frozen[2] + added[2],
            frozen[3] + added[3], frozen[4] + added[4])


def _edge(hour: Figures, span: float, edge: EdgeCount | None) -> tuple[float, float, float]:
    """Up, down and maintenance of the part of a frozen hour inside the window."""
    up, down, held, up_samples, down_samples = hour[:5]
    share = span / HOUR
    if edge is None:
        return (up * share, down * share, held * share)
    # Each sample counted by the server weighs what the hour's samples weighed on average.
    up_each = up / up_samples if up_samples else 0.0
    down_each = down / down_samples if down_samples else 0.0
    down_counted = max(0, edge.samples - edge.up)
    return (min(edge.up, up_samples) * up_each,
            min(down_counted, down_samples) * down_each, held * share)


def hours_of(books: Mapping[str, Book], key: int) -> dict[str, Hour]:
    return {address: h for address, book in books.items() if (h := book.hour(key)) is not None}
