"""What the rules in rules/fleet-sla.rules.yml decide, decided once for the console.

The figures (uptime, coverage, up, down since) come from the same functions as the
metrics; the states here restate each rule's condition on them, and each says which rule
it mirrors. Missing data is never up and never down: it is a state of its own.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .config import VesselConfig, Window
from .fleet import VesselState
from .metrics import component_window
from .model import DeviceObservation, VesselStatus
from .sla.maintenance import MaintenanceSchedule

DAY = 86400.0
SLA_WINDOW = "24h"
PERSISTENT_AFTER = 3 * DAY  # FleetComponentDownPersistent
AT_RISK_SHARE = 0.25  # FleetComponentSLAAtRisk: under a quarter of the budget left


class ComponentState(StrEnum):
    """A component's SLA state, worst first."""

    BREACH = "breach"
    AT_RISK = "at_risk"
    NO_DATA = "no_data"  # no sample in the SLA window: neither up nor down
    UNKNOWN = "unknown"  # figures from an answer that is no longer current
    MAINTENANCE = "maintenance"
    OK = "ok"


class DeviceState(StrEnum):
    DOWN = "down"
    UNKNOWN = "unknown"
    UP = "up"


class DataStatus(StrEnum):
    """A vessel's data status: VesselStatus, plus "pending" before its first collection."""

    UNREACHABLE = "unreachable"
    AUTH_ERROR = "auth_error"
    QUERY_ERROR = "query_error"
    CLOCK_SKEW = "clock_skew"
    STALE = "stale"
    NO_DATA = "no_data"
    PENDING = "pending"
    OK = "ok"


def data_status(state: VesselState) -> DataStatus:
    return DataStatus.PENDING if state.status is None else DataStatus(state.status.value)


def current(state: VesselState) -> bool:
    """The last collection answered with recent samples: its figures describe now."""
    return state.status in (VesselStatus.OK, VesselStatus.CLOCK_SKEW)


def device_state(state: VesselState, observation: DeviceObservation | None) -> DeviceState:
    """Down on the data's word, even if the vessel no longer answers (an old "down" is never
    taken for recovered); up only from a vessel that answered in the last run."""
    known = observation.up if observation is not None else None
    if known is False:
        return DeviceState.DOWN
    if known is True and state.status is not None and state.status.collected:
        return DeviceState.UP
    return DeviceState.UNKNOWN


@dataclass(frozen=True, slots=True)
class WindowFigures:
    label: str
    uptime: float | None  # None: no samples (or a skewed clock), so unknown
    coverage: float | None


@dataclass(frozen=True, slots=True)
class ComponentFigures:
    name: str
    objective: float
    windows: tuple[WindowFigures, ...]
    up: bool | None  # fleet_component_up: False if any device is down, None if unknown
    down_since: float | None  # fleet_component_downtime_age_seconds, as a start time
    devices_up: int
    devices_down: int
    devices_unknown: int
    sla_uptime: float | None = None  # the 24 h window's, asked for by every rule

    def uptime(self, label: str = SLA_WINDOW) -> float | None:
        if label == SLA_WINDOW:
            return self.sla_uptime
        return next((w.uptime for w in self.windows if w.label == label), None)


def sla_window(windows: Sequence[Window]) -> tuple[Window, ...]:
    """The 24 h window alone (the config always has it)."""
    return tuple(w for w in windows if w.label == SLA_WINDOW)


def window_figures(observed: Sequence[DeviceObservation], members: int,
                   windows: Sequence[Window], vessel: VesselConfig,
                   skewed: bool) -> tuple[WindowFigures, ...]:
    out = []
    for window in windows:
        if skewed or not observed:  # the metrics leave these series out
            out.append(WindowFigures(window.label, None, None))
            continue
        uptime, coverage = component_window(observed, members, window, vessel)
        out.append(WindowFigures(window.label, uptime, coverage))
    return tuple(out)


def components(state: VesselState, windows: Sequence[Window]) -> tuple[ComponentFigures, ...]:
    """Each configured component of the vessel, in config order."""
    observed = state.observation.devices if state.observation is not None else {}
    skewed = state.observation is not None and state.observation.skewed
    grouped: dict[str, list[DeviceObservation | None]] = {}
    for device in state.config.devices:
        grouped.setdefault(device.component, []).append(observed.get(device.address))
    out = []
    for name, members in grouped.items():
        present = [m for m in members if m is not None]
        ups = [m.up for m in present]
        starts = [s for m in present if (s := m.down_since) is not None]
        counts = {s: 0 for s in DeviceState}
        for m in members:
            counts[device_state(state, m)] += 1
        if state.observation is None:
            up = None
        elif False in ups:
            up = False
        elif len(ups) == len(members) and all(ups):
            up = True
        else:
            up = None
        figures = window_figures(present, len(members), windows, state.config, skewed)
        out.append(ComponentFigures(
            name=name,
            objective=state.config.objectives[name],
            windows=figures,
            sla_uptime=next((w.uptime for w in figures if w.label == SLA_WINDOW), None),
            up=up,
            down_since=min(starts) if starts else None,
            devices_up=counts[DeviceState.UP],
            devices_down=counts[DeviceState.DOWN],
            devices_unknown=counts[DeviceState.UNKNOWN],
        ))
    return tuple(out)


def budget_seconds(objective: float) -> float:
    """The 24 h error budget: (1 - objective) x 24 h."""
    return (1 - objective) * DAY


def budget_left(figures: ComponentFigures) -> float | None:
    """vessel_component:fleet_sla_budget_remaining:seconds: budget minus the observed
    downtime; negative once breached, None without samples."""
    uptime = figures.uptime()
    if uptime is None:
        return None
    return budget_seconds(figures.objective) - (1 - uptime) * DAY


def in_breach(figures: ComponentFigures) -> bool:
    """FleetComponentSLABreach (vessel_component:fleet_sla_breach:bool): 24 h uptime below
    the component's objective."""
    uptime = figures.uptime()
    return uptime is not None and uptime < figures.objective


def at_risk(figures: ComponentFigures) -> bool:
    """FleetComponentSLAAtRisk: down now, under a quarter of the 24 h budget left, and not
    yet in breach."""
    left = budget_left(figures)
    return (figures.up is False and left is not None and not in_breach(figures)
            and left < AT_RISK_SHARE * budget_seconds(figures.objective))


def down_persistent(figures: ComponentFigures, now: float) -> bool:
    """FleetComponentDownPersistent: a device down for over 3 days."""
    return figures.down_since is not None and now - figures.down_since > PERSISTENT_AFTER


def component_state(figures: ComponentFigures, current: bool, maintenance: bool) -> ComponentState:
    """The tile's state. An "ok" from an answer that is no longer current is only unknown:
    old data never counts as uptime now. Breach and at risk stand, as the rules keep them."""
    if maintenance:
        return ComponentState.MAINTENANCE
    if in_breach(figures):
        return ComponentState.BREACH
    if at_risk(figures):
        return ComponentState.AT_RISK
    if figures.uptime() is None:
        return ComponentState.NO_DATA
    return ComponentState.OK if current else ComponentState.UNKNOWN


def in_maintenance(vessels: Sequence[VesselConfig], schedule: MaintenanceSchedule,
                   now: float) -> Mapping[str, frozenset[str]]:
    """Vessel id -> its components under maintenance at `now`: one window in force on
    every device, as `fleet_component_maintenance` says (exporter/maintenance_metrics)."""
    found: dict[str, frozenset[str]] = {}
    if not schedule:
        return found
    for vessel in vessels:
        members: dict[str, list[str]] = {}
        for device in vessel.devices:
            members.setdefault(device.component, []).append(device.name)
        components = frozenset(c for c, names in members.items()
                               if schedule.component_in_force(vessel.id, c, names, now))
        if components:
            found[vessel.id] = components
    return found
