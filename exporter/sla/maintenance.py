"""Maintenance windows: when a device is in maintenance, neither up nor down.

A window (fleet.yml ``maintenance:``) is either one fixed span (``start``/``end``) or a
weekly one (``weekly: {day, at, duration, timezone}``), over a scope of vessels,
components and devices. Time inside a window, start inclusive and end exclusive, is
maintenance: it counts neither as uptime nor as downtime, and a device that is still
down when a window ends counts its downtime from the window's end.

Weekly windows start at a wall-clock time in their own time zone, so their UTC start
moves with daylight saving time; the duration is elapsed time. A start that does not
exist on the day clocks go forward (02:30 in a skipped hour) is taken with the offset
before the change (PEP 495, fold=0), i.e. one hour later on the new clock; one that
exists twice when clocks go back is the first of the two.

Windows declared or changed after the fact: each window has a fingerprint of what
decides which seconds it covers (id, scope and timing; not reason or reference).
``new.changed_since(old)`` lists the windows whose seconds may differ between two
schedules (added, removed, and both versions of a changed one), so
``MaintenanceSchedule(tuple(new.changed_since(old))).intervals(...)`` are exactly the
seconds that must be recomputed.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

ALL = "*"
WEEK = 7 * 86400.0
Interval = tuple[float, float]


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """As date.weekday(): Monday is 0."""
        return list(Weekday).index(self)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which devices a window covers; None: every component (device) of the vessels."""

    vessels: tuple[str, ...]  # ("*",) for every vessel
    components: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None

    def covers(self, vessel: str, component: str, device: str) -> bool:
        return ((self.vessels == (ALL,) or vessel in self.vessels)
                and (self.components is None or component in self.components)
                and (self.devices is None or device in self.devices))


@dataclass(frozen=True, slots=True)
class Fixed:
    """One span, [start, end) in epoch seconds."""

    start: float
    end: float

    def occurrences(self, start: float, end: float) -> Iterator[Interval]:
        if self.start < end and self.end > start:
            yield self.start, self.end


@dataclass(frozen=True, slots=True)
class Weekly:
    """Every week on `day` at `hour`:`minute` in `timezone`, for `duration` seconds."""

    day: Weekday
    hour: int
    minute: int
    duration: float
    timezone: str

    def occurrences(self, start: float, end: float) -> Iterator[Interval]:
        """Every occurrence that overlaps [start, end), oldest first."""
        if end <= start:
            return
        zone = ZoneInfo(self.timezone)
        # An occurrence starts at most `duration` before `start`; a day either side
        # covers any offset from UTC.
        first = datetime.fromtimestamp(start - self.duration, zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end, zone).date() + timedelta(days=1)
        day = first + timedelta(days=(self.day.number - first.weekday()) % 7)
        while day <= last:
            begin = self._start_on(day, zone)
            if begin < end and begin + self.duration > start:
                yield begin, begin + self.duration
            day += timedelta(days=7)

    def _start_on(self, day: date, zone: ZoneInfo) -> float:
        return datetime(day.year, day.month, day.day, self.hour, self.minute,
                        tzinfo=zone).timestamp()

    def first_after(self, after: float) -> Interval:
        """The first occurrence starting after `after`."""
        for begin, finish in self.occurrences(after, after + WEEK + 2 * 86400):
            if begin > after:
                return begin, finish
        raise AssertionError("a weekly window starts at least once in 9 days")


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a window: what is shown wherever the window is."""

    id: str
    reason: str
    reference: str | None
    start: float
    end: float


# A window as it is in force at a given time: the occurrence with its id and reason.
Window = Occurrence


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A window as declared in fleet.yml."""

    id: str
    scope: Scope
    timing: Fixed | Weekly
    reason: str
    reference: str | None = None

    def covers(self, vessel: str, component: str, device: str) -> bool:
        return self.scope.covers(vessel, component, device)

    def occurrences(self, start: float, end: float) -> Iterator[Interval]:
        """Its spans that overlap [start, end), unclipped, oldest first."""
        return self.timing.occurrences(start, end)

    def occurrence(self, span: Interval) -> Occurrence:
        return Occurrence(self.id, self.reason, self.reference, span[0], span[1])

    def definition(self) -> dict[str, object]:
        """What decides which seconds the window covers."""
        timing: dict[str, object]
        if isinstance(self.timing, Fixed):
            timing = {"start": self.timing.start, "end": self.timing.end}
        else:
            t = self.timing
            timing = {"weekly": {"day": t.day.value, "at": f"{t.hour:02d}:{t.minute:02d}",
                                 "duration": t.duration, "timezone": t.timezone}}
        return {"id": self.id, "vessels": list(self.scope.vessels),
                "components": None if self.scope.components is None
                else sorted(self.scope.components),
                "devices": None if self.scope.devices is None else sorted(self.scope.devices),
                **timing}

    @classmethod
    def from_definition(cls, d: dict[str, Any]) -> "MaintenanceWindow":
        """A window from `definition()` (as stored; without reason or reference).
        ValueError, TypeError or KeyError when it is not one."""
        def names(key: str) -> tuple[str, ...] | None:
            value = d[key]
            return None if value is None else tuple(str(v) for v in value)

        vessels = names("vessels")
        if vessels is None:
            raise ValueError("no vessels")
        timing: Fixed | Weekly
        if "weekly" in d:
            w = d["weekly"]
            hour, minute = (int(p) for p in str(w["at"]).split(":"))
            timing = Weekly(Weekday(w["day"]), hour, minute, float(w["duration"]),
                            str(w["timezone"]))
        else:
            timing = Fixed(float(d["start"]), float(d["end"]))
        return cls(str(d["id"]), Scope(vessels, names("components"), names("devices")),
                   timing, reason="")

    def fingerprint(self) -> str:
        """Stable across restarts and versions: changes exactly when its seconds may."""
        text = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def merge(spans: Sequence[Interval]) -> tuple[Interval, ...]:
    """Sorted, with overlapping and touching spans joined."""
    out: list[Interval] = []
    for begin, finish in sorted(spans):
        if out and begin <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], finish))
        else:
            out.append((begin, finish))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MaintenanceSchedule:
    """Every declared window; immutable, part of the config as ``config.maintenance``."""

    windows: tuple[MaintenanceWindow, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.windows)

    def covering(self, vessel: str, component: str, device: str) -> Iterator[MaintenanceWindow]:
        return (w for w in self.windows if w.covers(vessel, component, device))

    def intervals(self, vessel: str, component: str, device: str, start: float,
                  end: float) -> tuple[Interval, ...]:
        """The device's maintenance within [start, end): sorted, merged, clipped, [s, e)."""
        spans = [(max(s, start), min(e, end))
                 for w in self.covering(vessel, component, device)
                 for s, e in w.occurrences(start, end)]
        return merge(spans)

    def active(self, vessel: str, component: str, device: str,
               at: float) -> tuple[Window, ...]:
        """The windows in force on the device at `at`, each with its current occurrence."""
        found = [w.occurrence((s, e)) for w in self.covering(vessel, component, device)
                 for s, e in w.occurrences(at, at + 1) if s <= at < e]
        return tuple(sorted(found, key=lambda o: (o.start, o.id)))

    def component_in_force(self, vessel: str, component: str, devices: Iterable[str],
                           at: float) -> frozenset[str]:
        """Ids of the windows in force at `at` on every one of the component's `devices`:
        what puts the component in maintenance and holds its alerts."""
        common: set[str] | None = None
        for device in devices:
            ids = {o.id for o in self.active(vessel, component, device, at)}
            common = ids if common is None else common & ids
            if not common:
                return frozenset()
        return frozenset(common or ())

    def next(self, vessel: str, component: str, device: str,
             after: float) -> Occurrence | None:
        """The first occurrence on the device that starts after `after`."""
        found: list[Occurrence] = []
        for w in self.covering(vessel, component, device):
            if isinstance(w.timing, Fixed):
                if w.timing.start > after:
                    found.append(w.occurrence((w.timing.start, w.timing.end)))
            else:
                found.append(w.occurrence(w.timing.first_after(after)))
        return min(found, key=lambda o: (o.start, o.id), default=None)

    def counted_since(self, vessel: str, component: str, device: str, since: float,
                      now: float) -> float | None:
        """Where the downtime of a device down since `since` is counted from at `now`.

        The end of the last window that interrupted the outage, or `since` if none did;
        None while the device is in a window (its downtime is not counted then).
        """
        counted = since
        for w in self.covering(vessel, component, device):
            for begin, finish in w.occurrences(since, now + 1):
                if begin <= now < finish:
                    return None
                if since < finish <= now:
                    counted = max(counted, finish)
        return counted

    def next_boundary(self, after: float) -> float | None:
        """The first moment after `after` at which any window starts or ends."""
        found = [edge for w in self.windows
                 for span in w.occurrences(after, after + 8 * 86400)  # a weekly one recurs
                 for edge in span if edge > after]
        return min(found, default=None)

    def definitions(self) -> list[dict[str, object]]:
        return [w.definition() for w in self.windows]

    @classmethod
    def from_definitions(cls, items: Any) -> "MaintenanceSchedule":
        if not isinstance(items, list):
            raise ValueError("not a list of windows")
        return cls(tuple(MaintenanceWindow.from_definition(d) for d in items))

    def fingerprints(self) -> dict[str, str]:
        return {w.id: w.fingerprint() for w in self.windows}

    def changed_since(self, other: "MaintenanceSchedule") -> list[MaintenanceWindow]:
        """Windows whose seconds may differ from `other`: added, removed, and both
        versions of a changed one (removed and old versions first)."""
        mine = {w.fingerprint() for w in self.windows}
        theirs = {w.fingerprint() for w in other.windows}
        return ([w for w in other.windows if w.fingerprint() not in mine]
                + [w for w in self.windows if w.fingerprint() not in theirs])
