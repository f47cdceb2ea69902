"""A device's or a component's figures from its tallies: pure arithmetic, the SLA policy's
own functions (exporter/sla/policy.py), so that they are the metrics' definitions."""

from collections.abc import Sequence

from ..config import Unknown
from ..sla import policy
from ..sla.hours import Span
from .model import Cell, CellState, Figures
from .source import Tally


def total(tallies: Sequence[Tally], length: float) -> Tally:
    """Buckets `length` seconds long in all, summed. Unobserved time is taken over the
    whole again: a bucket that got more than its length (an interval change at its edge)
    makes up for the one that got less."""
    out = Tally()
    for t in tallies:
        out.add(t)
    out.unobserved = max(0.0, length - out.up - out.down - out.maintenance - out.unheld)
    return out


def combine(members: Sequence[Tally], length: float, objective: float,
            unknown: Unknown) -> Figures:
    """Figures of devices taken together (one device: its own), each tally `length`
    seconds long: times summed, uptime of the sum, coverage the mean of the devices'."""
    spans = [m.span for m in members]
    whole = sum(spans, Span())
    uptime = policy.uptime(spans, unknown)
    counted = policy.counted(whole, unknown)
    down = policy.downtime(whole, unknown)
    outages = sum(m.outages for m in members)
    cover = (sum(policy.coverage(s, length) for s in spans) / len(spans)) if spans else 0.0
    return Figures(
        up=whole.up, down=whole.down, maintenance=whole.maintenance,
        unobserved=whole.unobserved, unheld=whole.unheld, counted=counted, downtime=down,
        uptime=uptime, coverage=cover, objective=objective,
        met=None if uptime is None else uptime >= objective,
        budget_used=policy.budget_used(down, counted, objective),
        outages=outages, longest=float(max((m.longest for m in members), default=0)),
        time_to_recover=whole.down / outages if outages else None,
        estimated=any(m.estimated for m in members))


def cell(members: Sequence[Tally], start: float, end: float, objective: float,
         unknown: Unknown) -> Cell:
    spans = [m.span for m in members]
    uptime = policy.uptime(spans, unknown)
    length = end - start
    cover = (sum(policy.coverage(s, length) for s in spans) / len(spans)) if spans else 0.0
    if uptime is None:
        held = sum(s.maintenance for s in spans)
        state = CellState.MAINTENANCE if held > 0 else CellState.NO_DATA
    else:
        state = CellState.MET if uptime >= objective else CellState.MISSED
    return Cell(start=start, end=end, uptime=uptime, coverage=cover, state=state)
