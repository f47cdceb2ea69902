"""A report from the ledger: reads through `source`, arithmetic in `figures`, run off the
event loop one vessel at a time so that a page asking for a report does not stall it."""

import asyncio
from collections.abc import Mapping, Sequence

import aiosqlite

from ..config import Config, Unknown, VesselConfig
from ..sla.ledger import Ledger
from ..sla.maintenance import MaintenanceSchedule, merge
from . import source
from .figures import cell, combine, total
from .model import (
    Comparison,
    ComponentReport,
    DeviceReport,
    Gap,
    Header,
    ObjectiveSource,
    Policy,
    Ranked,
    Reason,
    Report,
    Summary,
    VesselReport,
    WindowApplied,
)
from .period import Period, ReportError, hourly, local_days, local_text, previous

WORST = 10
HOURLY_UP_TO = 3 * 86400.0  # periods this short get an hour-by-hour strip


def choose(config: Config, vessels: Sequence[str] | None) -> tuple[VesselConfig, ...]:
    """The configured vessels asked for, in config order; all when None."""
    if vessels is None:
        return config.vessels
    known = {v.id for v in config.vessels}
    for vid in vessels:
        if vid not in known:
            raise ReportError("vessel", f"unknown vessel {vid[:60]!r}")
    wanted = set(vessels)
    return tuple(v for v in config.vessels if v.id in wanted)


def strip_cuts(period: Period) -> list[float]:
    return hourly(period) if period.seconds <= HOURLY_UP_TO else local_days(period)


async def build_report(db: aiosqlite.Connection, ledger: Ledger | None, config: Config,
                       schedule: MaintenanceSchedule, period: Period,
                       vessels: Sequence[str] | None, now: float,
                       strips: bool = True) -> Report:
    """The report of `period` for `vessels` (None: all); ReportError("vessel", ...) names
    an unknown one. `ledger` is the running exporter's (its recent hours are newer than the
    DB's), or None to read the DB alone. Without `strips` (a format that does not show
    them) the period is one bucket: the same figures, a fraction of the work."""
    chosen = choose(config, vessels)
    before = previous(period)
    cuts = strip_cuts(period) if strips else [period.start, period.end]
    covers = await source.cover(db, ledger, [v.id for v in chosen])
    reports: list[VesselReport] = []
    for vessel in chosen:
        addresses = [d.address for d in vessel.devices]
        held = covers[vessel.id].held_from
        # One read for both periods: the first bucket is the period before.
        both = await source.tallies(db, ledger, vessel.id, addresses, [before.start, *cuts],
                                    held)
        now_t = {a: t[1:] for a, t in both.items()}
        prev_t = {a: t[:1] for a, t in both.items()}
        report = await asyncio.to_thread(vessel_report, vessel, now_t, prev_t, cuts, period,
                                         before, covers[vessel.id], ledger is not None)
        reports.append(report)
    gaps = tuple(g for v in chosen if (g := gap(v, covers[v.id], period, ledger is not None))
                 is not None)
    header = Header(
        period=period, start_text=local_text(period.start, period.timezone),
        end_text=local_text(period.end, period.timezone), generated_at=now,
        generated_text=local_text(now, period.timezone, "seconds"),
        policy=policy(config, chosen, schedule, period), gaps=gaps,
        edges_weighed=not period.whole_hours())
    return Report(header=header, summary=summary(reports, period, before),
                  vessels=tuple(reports))


def vessel_report(vessel: VesselConfig, now_t: Mapping[str, list[source.Tally]],
                  prev_t: Mapping[str, list[source.Tally]], cuts: Sequence[float],
                  period: Period, before: Period, cover: source.Cover,
                  live: bool) -> VesselReport:
    grouped: dict[str, list[int]] = {}
    for i, device in enumerate(vessel.devices):
        grouped.setdefault(device.component, []).append(i)
    components = []
    for name, members in grouped.items():
        objective = vessel.objectives[name]
        devices = [vessel.devices[i] for i in members]
        whole = [total(now_t[d.address], period.seconds) for d in devices]
        device_reports = tuple(
            DeviceReport(d.name, d.address,
                         combine([w], period.seconds, objective, vessel.unknown))
            for d, w in zip(devices, whole, strict=True))
        strip = tuple(
            cell([now_t[d.address][k] for d in devices], cuts[k], cuts[k + 1], objective,
                 vessel.unknown)
            for k in range(len(cuts) - 1)) if len(cuts) > 2 else ()
        prev = combine([total(prev_t[d.address], before.seconds) for d in devices],
                       before.seconds,
                       objective, vessel.unknown)
        components.append(ComponentReport(
            name=name, figures=combine(whole, period.seconds, objective, vessel.unknown),
            previous=prev, devices=device_reports, strip=strip))
    complete = gap(vessel, cover, period, live) is None
    return VesselReport(id=vessel.id, name=vessel.name, unknown=str(vessel.unknown),
                        components=tuple(components), complete=complete)


def gap(vessel: VesselConfig, cover: source.Cover, period: Period,
        live: bool) -> Gap | None:
    """Why the vessel's ledger does not cover the whole period; None when it does. A
    running exporter (`live`) holds the hours after its cursor in memory."""
    tz = period.timezone
    reason: Reason | None = None
    if cover.held_from is None:
        reason, text = Reason.STARTS_LATER, "has no ledger yet"
    elif cover.held_from > period.start:
        reason = Reason.STARTS_LATER
        text = f"ledger starts {local_text(cover.held_from, tz)}, after the period's start"
    else:
        until = cover.covered_until if cover.covered_until is not None else cover.held_from
        answered = cover.last_success is not None and cover.last_success >= period.end
        if until < period.end and not (live and answered):
            reason = Reason.BEHIND
            text = f"ledger covers until {local_text(until, tz)}"
    if reason is None:
        return None
    if cover.status is not None and cover.status != "ok":
        since = (f" since {local_text(cover.last_success, tz)}"
                 if cover.last_success is not None else " (never answered)")
        text += f"; {cover.status.replace('_', ' ')}{since}"
    return Gap(vessel=vessel.id, reason=reason, held_from=cover.held_from,
               covered_until=cover.covered_until, status=cover.status,
               last_success=cover.last_success, text=f"{vessel.name}: {text}")


def policy(config: Config, vessels: Sequence[VesselConfig], schedule: MaintenanceSchedule,
           period: Period) -> Policy:
    sources = [ObjectiveSource("sla.objective", config.objective)]
    by_component: dict[str, set[float]] = {}
    for v in vessels:
        for c, o in v.objectives.items():
            by_component.setdefault(c, set()).add(o)
    for c, found in by_component.items():
        if len(found) == 1 and (o := next(iter(found))) != config.objective:
            sources.append(ObjectiveSource(f"sla.components.{c}", o))
        elif len(found) > 1:
            for v in vessels:
                if v.objectives.get(c, config.objective) != config.objective:
                    sources.append(ObjectiveSource(f"vessels[{v.id}].sla.objective ({c})",
                                                   v.objectives[c]))
    unknowns = {v.unknown for v in vessels}
    unknown = str(next(iter(unknowns))) if len(unknowns) == 1 else "mixed"
    if not vessels:
        unknown = str(Unknown.EXCLUDE)
    applied = []
    for w in schedule.windows:
        if not any(w.covers(v.id, d.component, d.name) for v in vessels for d in v.devices):
            continue
        spans = [(max(s, period.start), min(e, period.end))
                 for s, e in w.occurrences(period.start, period.end)]
        spans = [(s, e) for s, e in spans if e > s]
        if spans:
            applied.append(WindowApplied(w.id, w.reason, w.reference, len(spans),
                                         sum(e - s for s, e in merge(spans))))
    return Policy(objectives=tuple(sources), unknown=unknown, maintenance=tuple(applied))


def _comparison(label: str, rows: Sequence[tuple[float | None, float]],
                ups: Sequence[tuple[float, float]]) -> Comparison:
    with_data = [(u, o) for u, o in rows if u is not None]
    up = sum(a for a, _ in ups)
    counted = sum(b for _, b in ups)
    return Comparison(label=label, met=sum(1 for u, o in with_data if u >= o),
                      with_data=len(with_data), components=len(rows),
                      uptime=up / counted if counted > 0 else None)


def summary(vessels: Sequence[VesselReport], period: Period, before: Period) -> Summary:
    now_rows = [(c.figures.uptime, c.figures.objective) for v in vessels for c in v.components]
    prev_rows = [(c.previous.uptime, c.figures.objective) for v in vessels
                 for c in v.components]
    prev_ups = [(c.previous.up, c.previous.counted) for v in vessels for c in v.components]
    ups = [(c.figures.up, c.figures.counted) for v in vessels for c in v.components]
    ranked = sorted(
        (Ranked(v.id, v.name, c.name, c.figures.uptime, c.figures.objective,
                c.figures.budget_used)
         for v in vessels for c in v.components if c.figures.uptime is not None),
        key=lambda r: (r.uptime - r.objective, r.uptime, r.vessel, r.component))
    previous_fleet = _comparison(before.label, prev_rows, prev_ups)
    return Summary(current=_comparison(period.label, now_rows, ups),
                   previous=previous_fleet, worst=tuple(ranked[:WORST]))
