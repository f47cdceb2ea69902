"""The vessel page's 30-day history: hour by hour, from the SLA ledger.

Each hour is one of up, down, gap (unobserved) or maintenance, shown as a cell with its
own symbol as well as its colour, so the strip reads without colour too. A component's
hour is its worst device's: down, then gap, then maintenance, then up. The cells are
made from one string of hour codes per day by the `cells` filter: thousands of them
through a template loop would cost more than the rest of the page.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from markupsafe import Markup

from ..config import VesselConfig
from ..sla.hour import HOUR, Hour

DAYS = 30
DAY = 86400


class HourState(StrEnum):
    UP = "up"
    DOWN = "down"
    GAP = "gap"
    MAINTENANCE = "maintenance"


SYMBOLS = {HourState.UP: "·", HourState.DOWN: "✗", HourState.GAP: "?",
           HourState.MAINTENANCE: "m"}
CODES = {HourState.UP: "u", HourState.DOWN: "d", HourState.GAP: "g",
         HourState.MAINTENANCE: "m"}  # one letter an hour in `DayStrip.hours`
_WORST = (HourState.DOWN, HourState.GAP, HourState.MAINTENANCE, HourState.UP)
_CELL = {CODES[s]: Markup(f'<i class="h-{s}">{SYMBOLS[s]}</i>') for s in HourState}


def cells(hours: str) -> Markup:
    """A day's hour codes as cells: a template filter, one string a day."""
    return Markup("").join(_CELL[c] for c in hours)


def hour_state(hour: Hour | None, span: int = HOUR) -> HourState:
    if hour is None:
        return HourState.GAP
    if hour.down > 0:
        return HourState.DOWN
    if hour.unobserved(span) * 2 > span:
        return HourState.GAP
    if hour.maintenance > 0 and hour.maintenance >= hour.up:
        return HourState.MAINTENANCE
    return HourState.UP


def _worst(states: Sequence[HourState]) -> HourState:
    return min(states, key=_WORST.index) if states else HourState.GAP


@dataclass(frozen=True, slots=True)
class DayStrip:
    day: str  # 2027-01-14
    hours: str  # one code an hour (CODES), oldest first; today's up to the open hour
    summary: str  # "down 3 h, gap 1 h": the day in words

    @property
    def title(self) -> str:
        return f"{self.day}: {self.summary}"


@dataclass(frozen=True, slots=True)
class Strip:
    label: str  # a component, or "device (address)"
    kind: str  # "component" or "device"
    days: tuple[DayStrip, ...]  # oldest first


@dataclass(frozen=True, slots=True)
class History:
    available: bool = False
    strips: tuple[Strip, ...] = ()
    symbols: Mapping[HourState, str] = field(default_factory=lambda: dict(SYMBOLS))


def _days(states: Mapping[int, HourState], first_day: int, days: int) -> tuple[DayStrip, ...]:
    found = []
    for d in range(days):
        start = (first_day + d) * DAY
        hours = [states.get(start + h * HOUR) for h in range(24)]
        known = [s for s in hours if s is not None]
        if not known:
            continue  # a day still to come
        counts = {s: known.count(s) for s in HourState if known.count(s) and s is not HourState.UP}
        summary = ", ".join(f"{s} {n} h" for s, n in counts.items()) or "up"
        found.append(DayStrip(
            datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d"),
            "".join(CODES[s] for s in known), summary))
    return tuple(found)


def build(vessel: VesselConfig, hours: Mapping[str, Mapping[int, Hour]],
          now: float) -> History:
    """The strips of every component and device from `hours` (address -> hour start ->
    Hour), for the DAYS days up to `now`."""
    last_day = int(now) // DAY
    first_day = last_day - DAYS + 1
    start = first_day * DAY
    end = int(now) // HOUR * HOUR + HOUR  # the open hour included
    keys = range(start, end, HOUR)
    by_device: dict[str, dict[int, HourState]] = {}
    for device in vessel.devices:
        mine = hours.get(device.address, {})
        by_device[device.name] = {
            at: hour_state(mine.get(at), int(min(HOUR, now - at))) for at in keys}
    strips = []
    for component in dict.fromkeys(d.component for d in vessel.devices):
        members = [d.name for d in vessel.devices if d.component == component]
        merged = {at: _worst([by_device[m][at] for m in members]) for at in keys}
        strips.append(Strip(component, "component", _days(merged, first_day, DAYS)))
    for device in vessel.devices:
        strips.append(Strip(f"{device.name} ({device.address})", "device",
                            _days(by_device[device.name], first_day, DAYS)))
    return History(available=any(hours.values()), strips=tuple(strips))
