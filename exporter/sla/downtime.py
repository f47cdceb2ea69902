"""Downtime ages that leave maintenance out.

A device that is down is counted from its last reply, or from the end of the last
maintenance window that interrupted the outage; while it is in a window, not at all.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from .maintenance import MaintenanceSchedule


@dataclass(frozen=True, slots=True)
class Outage:
    """An ongoing outage of one device, as last observed."""

    vessel: str
    component: str
    device: str
    since: float  # the last reply (or the oldest sample)


def downtime_age(schedule: MaintenanceSchedule, outages: Sequence[Outage], now: float) -> float:
    """Seconds of the oldest outage counted outside maintenance; 0 when none counts."""
    starts = [s for o in outages
              if (s := schedule.counted_since(o.vessel, o.component, o.device, o.since, now))
              is not None]
    return max(0.0, now - min(starts)) if starts else 0.0
