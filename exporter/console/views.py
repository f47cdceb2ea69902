"""Typed view models of the console's pages, built from the fleet snapshot.

Times are Unix seconds and ratios 0..1, as in the metrics: the templates format them and
the JSON API returns them as they are. States come from exporter.sla_state, which mirrors
the rules.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..config import Config, VesselConfig, Window
from ..fleet import FleetSnapshot, VesselState
from ..sla.hour import Hour
from ..sla_state import (
    ComponentFigures,
    ComponentState,
    DataStatus,
    DeviceState,
    budget_left,
    budget_seconds,
    component_state,
    components,
    current,
    data_status,
    device_state,
    down_persistent,
    sla_window,
    window_figures,
)
from .history import History
from .history import build as build_history

# Worst first: the overview's order and the filter chips' order.
STATE_RANK = {ComponentState.BREACH: 0, ComponentState.AT_RISK: 1,
              ComponentState.NO_DATA: 5, ComponentState.UNKNOWN: 5,
              ComponentState.MAINTENANCE: 7, ComponentState.OK: 8}
STATUS_RANK = {DataStatus.UNREACHABLE: 3, DataStatus.AUTH_ERROR: 3, DataStatus.QUERY_ERROR: 3,
               DataStatus.CLOCK_SKEW: 4, DataStatus.STALE: 4, DataStatus.NO_DATA: 4,
               DataStatus.PENDING: 6, DataStatus.OK: 8}
DOWN_3D_RANK = 2
DOWN_3D = "down_3d"  # a filter beside the component states


class Sort(StrEnum):
    WORST = "worst"
    NAME = "name"


@dataclass(frozen=True, slots=True)
class Tile:
    component: str
    state: ComponentState
    uptime: float | None  # 24 h
    objective: float
    down_3d: bool
    down_since: float | None = field(default=None, compare=False)  # not shown in a row


@dataclass(frozen=True, slots=True)
class VesselRow:
    """Only what the row shows: an unchanged row is not rendered again."""

    id: str
    name: str
    status: DataStatus
    tiles: tuple[Tile, ...]
    error: str | None = None  # of the last collection, in the status's tooltip

    @property
    def rank(self) -> int:
        ranks = [STATE_RANK[t.state] for t in self.tiles]
        ranks += [DOWN_3D_RANK for t in self.tiles if t.down_3d]
        return min([STATUS_RANK[self.status], *ranks])

    def matches(self, state: str | None, data: DataStatus | None, query: str) -> bool:
        if data is not None and self.status is not data:
            return False
        if state == DOWN_3D and not any(t.down_3d for t in self.tiles):
            return False
        if state not in (None, DOWN_3D) and not any(t.state == state for t in self.tiles):
            return False
        return not query or query in self.name.casefold() or query in self.id


@dataclass(frozen=True, slots=True)
class LastRun:
    result: str
    finished_at: float
    duration: float
    ok: int
    failed: int


@dataclass(frozen=True, slots=True)
class Summary:
    components: int
    with_data: int  # components with a 24 h uptime: what compliance is over
    meeting: int  # of those, not in breach (fleet:sla_compliance:ratio)
    states: Mapping[str, int]  # component state (and down_3d) -> components
    statuses: Mapping[str, int]  # data status -> vessels
    last_run: LastRun | None

    @property
    def without_data(self) -> int:
        return self.components - self.with_data


def maintenance_for(state: VesselState, maintenance: Mapping[str, frozenset[str]]
                    ) -> frozenset[str]:
    return maintenance.get(state.config.id, frozenset())


def vessel_row(state: VesselState, windows: Sequence[Window], now: float,
               maintenance: frozenset[str]) -> VesselRow:
    live = current(state)
    tiles = tuple(
        Tile(component=c.name,
             state=component_state(c, live, c.name in maintenance),
             uptime=c.uptime(), objective=c.objective, down_3d=down_persistent(c, now),
             down_since=c.down_since)
        for c in components(state, sla_window(windows)))
    return VesselRow(id=state.config.id, name=state.config.name, status=data_status(state),
                     tiles=tiles, error=state.error)


def summary(rows: Sequence[VesselRow], snap: FleetSnapshot) -> Summary:
    states = dict.fromkeys([*ComponentState, DOWN_3D], 0)
    statuses = dict.fromkeys(DataStatus, 0)
    count = with_data = meeting = 0
    for row in rows:
        statuses[row.status] += 1
        for tile in row.tiles:
            count += 1
            states[tile.state] += 1
            states[DOWN_3D] += tile.down_3d
            if tile.uptime is not None:
                with_data += 1
                meeting += tile.state is not ComponentState.BREACH
    run = snap.last_run
    last = None if run is None else LastRun(run.result, run.finished_at, run.duration, run.ok,
                                            run.failed)
    return Summary(count, with_data, meeting, {str(k): v for k, v in states.items()},
                   {str(k): v for k, v in statuses.items()}, last)


def ordered(rows: Sequence[VesselRow], sort: Sort) -> list[VesselRow]:
    if sort is Sort.NAME:
        return sorted(rows, key=lambda r: (r.name.casefold(), r.id))
    return sorted(rows, key=lambda r: (r.rank, r.name.casefold(), r.id))


# --- one vessel ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowView:
    label: str
    uptime: float | None
    coverage: float | None


@dataclass(frozen=True, slots=True)
class ComponentView:
    name: str
    state: ComponentState
    objective: float
    windows: tuple[WindowView, ...]
    budget: float  # the 24 h error budget, seconds
    budget_left: float | None  # seconds; negative once breached
    down_since: float | None
    down_3d: bool
    devices_up: int
    devices_down: int
    devices_unknown: int
    maintenance: tuple[str, ...] = ()  # the windows in force or next on its devices


@dataclass(frozen=True, slots=True)
class DeviceView:
    name: str
    address: str
    component: str
    state: DeviceState
    down_since: float | None
    rtt: float | None  # seconds
    loss: float | None  # ratio
    uptime: float | None  # 24 h
    coverage: float | None  # 24 h
    last_sample: float | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """This vessel in one collection run, from the run log."""

    run_id: int
    started_at: float
    status: str
    attempts: int
    duration: float
    response_bytes: int
    error: str | None


@dataclass(frozen=True, slots=True)
class VesselPage:
    id: str
    name: str
    status: DataStatus
    last_success: float | None
    newest_sample: float | None
    clock_skew: float | None
    error: str | None
    components: tuple[ComponentView, ...]
    devices: tuple[DeviceView, ...]
    attempts: tuple[Attempt, ...]
    history: History
    links: Mapping[str, str]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _windows_of(config: Config, vessel: VesselConfig, component: str,
                now: float) -> tuple[str, ...]:
    """The maintenance windows in force or next on any device of the component, in words."""
    found: dict[str, str] = {}
    for device in vessel.devices:
        if device.component != component:
            continue
        for w in config.maintenance.active(vessel.id, component, device.name, now):
            found.setdefault(w.id, f"{w.id} ({w.reason}{', ' + w.reference if w.reference else ''})"
                             f" until {_iso(w.end)}")
        upcoming = config.maintenance.next(vessel.id, component, device.name, now)
        if upcoming is not None:
            found.setdefault(upcoming.id, f"{upcoming.id} ({upcoming.reason}) from "
                             f"{_iso(upcoming.start)} to {_iso(upcoming.end)}")
    return tuple(found.values())


def _component_view(c: ComponentFigures, live: bool, now: float,
                    maintenance: frozenset[str],
                    windows: tuple[str, ...] = ()) -> ComponentView:
    return ComponentView(
        maintenance=windows,
        name=c.name, state=component_state(c, live, c.name in maintenance),
        objective=c.objective,
        windows=tuple(WindowView(w.label, w.uptime, w.coverage) for w in c.windows),
        budget=budget_seconds(c.objective), budget_left=budget_left(c),
        down_since=c.down_since, down_3d=down_persistent(c, now),
        devices_up=c.devices_up, devices_down=c.devices_down,
        devices_unknown=c.devices_unknown)


def _links(config: Config, vessel_id: str) -> dict[str, str]:
    return {name: url.replace("{vessel}", vessel_id) for name, url in config.links.items()}


def vessel_page(state: VesselState, config: Config, now: float,
                attempts: Sequence[Mapping[str, Any]],
                maintenance: frozenset[str],
                hours: Mapping[str, Mapping[int, Hour]] | None = None) -> VesselPage:
    windows = config.collection.windows
    live = current(state)
    observed = state.observation.devices if state.observation is not None else {}
    skewed = state.observation is not None and state.observation.skewed
    devices = []
    for device in state.config.devices:
        obs = observed.get(device.address)
        [sla] = window_figures([obs] if obs is not None else [], 1, sla_window(windows),
                               state.config, skewed)
        devices.append(DeviceView(
            name=device.name, address=device.address, component=device.component,
            state=device_state(state, obs),
            down_since=obs.down_since if obs is not None else None,
            rtt=obs.last_rtt if obs is not None else None,
            loss=obs.last_loss if obs is not None else None,
            uptime=sla.uptime, coverage=sla.coverage,
            last_sample=obs.last_sample if obs is not None else None))
    return VesselPage(
        id=state.config.id, name=state.config.name, status=data_status(state),
        last_success=state.last_success,
        newest_sample=state.observation.newest_sample if state.observation else None,
        clock_skew=state.clock_skew, error=state.error,
        components=tuple(_component_view(c, live, now, maintenance,
                                         _windows_of(config, state.config, c.name, now))
                         for c in components(state, windows)),
        devices=tuple(devices),
        attempts=tuple(Attempt(a["run_id"], a["started_at"], a["status"], a["attempts"],
                               a["duration_seconds"], a["response_bytes"], a["error"])
                       for a in attempts),
        history=build_history(state.config, hours or {}, now),
        links=_links(config, state.config.id))


# --- violations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    vessel: str
    vessel_name: str
    component: str
    kinds: tuple[str, ...]  # breach, at_risk, down_3d
    uptime: float | None
    objective: float
    down_since: float | None


def violations(states: Sequence[VesselState], windows: Sequence[Window], now: float,
               maintenance: Mapping[str, frozenset[str]]) -> list[Violation]:
    out = []
    for state in states:
        live = current(state)
        held = maintenance_for(state, maintenance)
        for c in components(state, sla_window(windows)):
            tile = component_state(c, live, c.name in held)
            kinds = [str(tile)] if tile in (ComponentState.BREACH,
                                            ComponentState.AT_RISK) else []
            if down_persistent(c, now):
                kinds.append(DOWN_3D)
            if kinds:
                out.append(Violation(state.config.id, state.config.name, c.name, tuple(kinds),
                                     c.uptime(), c.objective, c.down_since))
    return out
