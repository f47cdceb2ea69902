"""The /maintenance page's view: every declared window, those in force first."""

from dataclasses import dataclass
from datetime import UTC, datetime

from ..sla.maintenance import ALL, Fixed, MaintenanceSchedule, MaintenanceWindow


@dataclass(frozen=True, slots=True)
class WindowView:
    id: str
    reason: str
    reference: str | None
    state: str  # "in force", "next", "over"
    scope: str  # which vessels, components and devices, in words
    timing: str  # the declaration, in words
    now_or_next: str  # the occurrence in force, or the next one; "" when none comes


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _scope(window: MaintenanceWindow) -> str:
    s = window.scope
    vessels = "every vessel" if s.vessels == (ALL,) else ", ".join(s.vessels)
    components = "every component" if s.components is None else ", ".join(s.components)
    devices = "" if s.devices is None else f"; devices {', '.join(s.devices)}"
    return f"{vessels}: {components}{devices}"


def _timing(window: MaintenanceWindow) -> str:
    t = window.timing
    if isinstance(t, Fixed):
        return f"from {_when(t.start)} to {_when(t.end)}"
    hours, minutes = divmod(int(t.duration) // 60, 60)
    length = f"{hours} h {minutes} m" if minutes else f"{hours} h"
    return f"every {t.day.value} at {t.hour:02d}:{t.minute:02d} {t.timezone}, for {length}"


def window_views(schedule: MaintenanceSchedule, now: float) -> list[WindowView]:
    views = []
    for w in schedule.windows:
        current = [span for span in w.occurrences(now, now + 1) if span[0] <= now < span[1]]
        if current:
            state, shown = "in force", f"until {_when(current[0][1])}"
        else:
            later = [span for span in w.occurrences(now, now + 8 * 86400) if span[0] > now]
            if isinstance(w.timing, Fixed) and w.timing.start > now:
                later = [(w.timing.start, w.timing.end)]
            state = "next" if later else "over"
            shown = f"{_when(later[0][0])} to {_when(later[0][1])}" if later else ""
        views.append(WindowView(w.id, w.reason, w.reference, state, _scope(w), _timing(w),
                                shown))
    order = {"in force": 0, "next": 1, "over": 2}
    return sorted(views, key=lambda v: (order[v.state], v.id))
