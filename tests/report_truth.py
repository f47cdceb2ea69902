"""Ground truth for the report tests: a month of known pings for one vessel, and the SLA
figures computed straight from those points, independently of the ledger.

Each sample stands for the time since the sample before it, at most the sample interval,
ending at its own timestamp; its time is clipped to the period exactly and split by the
maintenance windows. Outages are runs of down samples; one counts in the period its first
down sample falls in, and its length in a period runs from its start to its last down
sample inside the period.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = 3600
CAP = 300  # the vessel's sample_interval: 5 min


@dataclass
class Device:
    name: str
    address: str
    component: str
    points: list[tuple[int, bool]]


@dataclass
class Truth:
    up: float
    down: float
    held: float
    outages: int
    longest: float

    def uptime(self, length: float, unknown: str = "exclude") -> float:
        counted = self.up + self.down
        if unknown == "down":
            counted += self.unobserved(length)
        return self.up / counted

    def unobserved(self, length: float) -> float:
        return length - self.up - self.down - self.held

    def coverage(self, length: float) -> float:
        return (self.up + self.down) / (length - self.held)


def _overlap(lo: float, hi: float, spans: Sequence[tuple[float, float]]) -> float:
    return sum(max(0.0, min(hi, e) - max(lo, s)) for s, e in spans)


def truth(points: Sequence[tuple[int, bool]], held: Sequence[tuple[float, float]],
          start: float, end: float) -> Truth:
    up = down = in_held = 0.0
    prev: int | None = None
    stretch_from: float | None = None
    outages, longest = 0, 0.0
    for t, ok in points:
        d = CAP if prev is None else min(t - prev, CAP)
        lo, hi = max(t - d, start), min(t, end)
        if hi > lo:
            m = _overlap(lo, hi, held)
            in_held += m
            if ok:
                up += hi - lo - m
            else:
                down += hi - lo - m
        contiguous = prev is not None and t - prev <= CAP
        if ok:
            stretch_from = None
        else:
            if stretch_from is None or not contiguous:
                stretch_from = t - d
                if start <= t < end:
                    outages += 1
            if start <= t < end:
                longest = max(longest, t - stretch_from)
        prev = t
    return Truth(up, down, in_held, outages, longest)


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Plan:
    month: str  # YYYY-MM
    start: int
    end: int
    clock: int  # the exporter's clock: 20 h after the month, on a whole hour
    devices: list[Device]
    maintenance: tuple[tuple[float, float], ...]  # the servers' window


def plan(today: float) -> Plan:
    """The month that began about 70 days before `today`, so that the points sit in the
    past of the real influxd (whose now() bounds the reads) but within its lookback."""
    first = month_start(datetime.fromtimestamp(today, UTC) - timedelta(days=70))
    nxt = month_start(first + timedelta(days=32))
    start, end = int(first.timestamp()), int(nxt.timestamp())
    day = 86400
    seed_from, clock = start - 3 * day, end + 20 * HOUR

    def grid(step: int, slow_from: int = clock, slow_until: int = clock) -> list[int]:
        """Every `step` seconds, and every 5 min in [slow_from, slow_until)."""
        out, t = [], seed_from + 30
        while t < clock:
            out.append(t)
            t += 300 if slow_from <= t < slow_until else step
        return out

    def pings(times: list[int], down: list[tuple[int, int]],
              gaps: Sequence[tuple[int, int]] = ()) -> list[tuple[int, bool]]:
        return [(t, not any(a <= t < b for a, b in down)) for t in times
                if not any(a <= t < b for a, b in gaps)]

    srv1 = pings(grid(60), [
        (start - 2 * HOUR, start + 3 * HOUR),  # across the month's start
        (start + 19 * day + HOUR, start + 19 * day + 4 * HOUR),  # partly in maintenance
        (end - HOUR, end + 90 * 60),  # across the month's end
    ])
    # Telegraf goes from 60 s to 5 min, and back a week later.
    change = start + 13 * day + 12 * HOUR
    srv2 = pings(grid(60, change, change + 7 * day), [
        (start + 4 * day + 8 * HOUR, start + 4 * day + 8 * HOUR + 600),
        (change - 2 * HOUR, change + 2 * HOUR),  # across the interval change
    ])
    ap1 = pings(grid(300), [(start + 24 * day + 12 * HOUR,
                                         start + 25 * day + 12 * HOUR)],
                gaps=[(start + 9 * day, start + 9 * day + 6 * HOUR)])  # the link was down
    window = (float(start + 19 * day + 2 * HOUR), float(start + 19 * day + 5 * HOUR + 1800))
    return Plan(
        month=f"{first.year:04d}-{first.month:02d}", start=start, end=end, clock=clock,
        devices=[Device("ap-1", "10.0.0.1", "access_point", ap1),
                 Device("srv-1", "10.0.0.2", "server", srv1),
                 Device("srv-2", "10.0.0.3", "server", srv2)],
        maintenance=(window,))


def lines(devices: Sequence[Device]) -> list[str]:
    out = []
    for d in devices:
        for t, ok in d.points:
            fields = ("result_code=0i,percent_packet_loss=0,average_response_ms=600" if ok
                      else "result_code=1i,percent_packet_loss=100")
            out.append(f"ping,url={d.address} {fields} {t}")
    return out
