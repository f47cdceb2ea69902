"""A simulated fleet's older history, written straight into the exporter's SLA ledger.

Seeding InfluxDB with a month and more of pings a minute would take minutes; the demo
seeds its last days there and this history, from the start of the previous month to the
first of those days, as the ledger's hours: what the exporter would have counted from the
same pings. Beyond five days every scenario repeats day after day (its outages are all
younger, the flapping device's rhythm divides a day), so one day is worked out per device
and stored for every day.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from exporter import ledger_db
from exporter.config import LedgerConfig, Window
from exporter.sla.hour import HOUR, Hour
from exporter.sla.hours import Carry
from exporter.sla.ledger import Ledger

from .scenarios import DAY, EMPTY_SCENARIOS, OFFSET, Vessel, _rule

STEADY_AGE = 5 * DAY  # older than this, every scenario repeats day after day


def history_start(anchor: int) -> int:
    """The first of the month before the anchor's month, UTC: the history starts there."""
    at = datetime.fromtimestamp(anchor, UTC)
    year, month = (at.year - 1, 12) if at.month == 1 else (at.year, at.month - 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def history_end(anchor: int) -> int:
    """The UTC midnight at or before the steady history's end: from there on the
    simulator's InfluxDB holds the pings (seed it back to here)."""
    return (anchor - STEADY_AGE) // DAY * DAY


def steady_day(vessel: Vessel, anchor: int, interval: int = 60) -> dict[str, list[Hour]]:
    """Each device's 24 hours of a day older than STEADY_AGE, by address."""
    day = history_end(anchor) - DAY
    out: dict[str, list[Hour]] = {}
    for device in vessel.devices:
        rule = _rule(vessel.scenario, device)
        # The pings of the day on the simulator's grid, oldest first.
        newest = anchor - OFFSET
        first_k = (newest - day) // interval  # the oldest sample index inside the day
        states: list[tuple[int, bool]] = []
        for k in range(first_k, -1, -1):
            ts = newest - k * interval
            if ts < day:
                continue
            if ts >= day + DAY:
                break
            state = rule(anchor - ts, k)
            if state is not None:
                states.append((ts, state))
        hours = [[0, 0, 0, 0, 0, 0] for _ in range(24)]  # up, down, n_up, n_down, out, long
        previous = states[-1][1] if states else True  # the day before ends as this one
        stretch = 0
        for ts, up in states:
            hour = hours[(ts - day) // HOUR]
            if up:
                hour[0] += interval
                hour[2] += 1
                stretch = 0
            else:
                hour[1] += interval
                hour[3] += 1
                if previous:
                    hour[4] += 1
                stretch += interval
                hour[5] = max(hour[5], stretch)
            previous = up
        out[device.address] = [Hour(up=h[0], down=h[1], up_samples=h[2], down_samples=h[3],
                                    outages=h[4], longest=h[5]) for h in hours]
    return out


def carry(vessel: Vessel, address: str, anchor: int, interval: int = 60) -> Carry | None:
    """What the exporter keeps of a device's pings before the history's end: its last
    one, the outage it may be in, and its first one after the history's start."""
    [device] = [d for d in vessel.devices if d.address == address]
    rule = _rule(vessel.scenario, device)
    newest = anchor - OFFSET
    start, end = history_start(anchor), history_end(anchor)
    k = -(-(newest - end + 1) // interval)  # the newest sample before the end
    last: tuple[int, bool] | None = None
    down_from: int | None = None
    while newest - k * interval >= start:
        ts = newest - k * interval
        state = rule(anchor - ts, k)
        if state is not None:
            if last is None:
                last = (ts, state)
            if state:
                break
            down_from = ts - interval  # the down stretch goes back at least to here
        k += 1
    if last is None:
        return None
    first = newest - ((newest - start) // interval) * interval
    return Carry(last=last[0], last_up=last[1], first=first,
                 down_from=None if last[1] else down_from)


async def seed_ledger(path: Path, vessels: Sequence[Vessel], anchor: int,
                      interval: int = 60) -> int:
    """Write the fleet's history from `history_start` to `history_end` into the state DB
    at `path` (created if need be), before the exporter first starts; returns the
    device-days written. Written through the ledger's own store (`ledger_db.write`), so it
    is in the form the exporter keeps.

    Each vessel's ledger then starts at the history's start and is frozen up to its end:
    the exporter reads the rest from InfluxDB. A vessel whose InfluxDB does not exist
    (scenario unreachable) gets no ledger, as it never answered.
    """
    start, end = history_start(anchor), history_end(anchor)
    ledger = Ledger(LedgerConfig(), [Window("24h", DAY)])
    written = 0
    for vessel in vessels:
        if vessel.scenario == "unreachable":
            continue
        carries: dict[str, Carry] = {}
        hours: dict[str, dict[int, Hour]] = {}
        if vessel.scenario not in EMPTY_SCENARIOS:  # else it answers, but holds no pings
            for address, day_hours in steady_day(vessel, anchor, interval).items():
                hours[address] = {day * 24 + i: h for day in range(start // DAY, end // DAY)
                                  for i, h in enumerate(day_hours)}
                written += end // DAY - start // DAY
                kept = carry(vessel, address, anchor, interval)
                carries[address] = kept if kept is not None else Carry()
        ledger.restore(vessel.id, end, start, carries, hours)
        ledger.dirty.update((vessel.id, address, day) for address in carries
                            for day in range(start // DAY, end // DAY))
        ledger.cursors_dirty.add(vessel.id)
    async with aiosqlite.connect(path) as db:
        await ledger_db.create(db)
        await ledger_db.write(db, ledger, end, LedgerConfig().retention, prune=False)
        await db.commit()
    return written
