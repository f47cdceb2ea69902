"""Logs what changes, not what repeats: a line when a vessel's status changes, and a
periodic summary of the vessels still failing."""

import logging

from .collector import RunResult
from .fleet import FleetSnapshot
from .model import VesselStatus

log = logging.getLogger("exporter.vessels")

SUMMARY_EVERY = 3600.0  # seconds between summaries of the vessels still failing
SUMMARY_NAMES = 10  # vessels named in a summary; the rest are counted


class VesselLog:
    def __init__(self, summary_every: float = SUMMARY_EVERY) -> None:
        self._summary_every = summary_every
        self._last_summary: float | None = None

    def run(self, before: FleetSnapshot, run: RunResult) -> None:
        was = {s.config.id: s.status for s in before.vessels}
        failing: list[str] = []
        for result in run.vessels:
            old, new = was.get(result.vessel), result.status
            if new is not VesselStatus.OK:
                failing.append(f"{result.vessel} ({new})")
            if new is old or (old is None and new is VesselStatus.OK):
                continue  # the first ok is in the run's summary line
            detail = f": {result.error}" if result.error else ""
            if new is VesselStatus.OK:
                log.info("vessel %s: ok (was %s)", result.vessel, old or "not collected")
            else:
                log.warning("vessel %s: %s (was %s)%s", result.vessel, new,
                            old or "not collected", detail)
        now = run.finished_at
        if not failing:
            self._last_summary = None  # the next failure starts a new cycle of summaries
            return
        if self._last_summary is None:
            self._last_summary = now  # the transitions were just logged
        elif now - self._last_summary >= self._summary_every:
            self._last_summary = now
            named = ", ".join(failing[:SUMMARY_NAMES])
            more = len(failing) - SUMMARY_NAMES
            log.warning("%d vessel(s) not ok: %s%s", len(failing), named,
                        f" and {more} more" if more > 0 else "")
