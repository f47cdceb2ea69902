"""What a report holds: header, fleet summary, vessels, components, devices, strips.

Times are seconds (floats); ratios are 0..1; None is "unknown" (nothing counted), never a
made-up 1 or 0. Every format renders this tree and nothing else, so they carry the same
numbers.
"""

from dataclasses import dataclass
from enum import StrEnum

from .period import Period


@dataclass(frozen=True, slots=True)
class Figures:
    """SLA figures over the period, of one device or of a component's devices combined.

    For a component, times are sums over its devices (device-seconds), as the metrics
    combine them: uptime is the up time of all devices over their counted time."""

    up: float
    down: float
    maintenance: float  # excluded from the SLA
    unobserved: float  # no sample, within what the ledger holds
    unheld: float  # before the vessel's ledger starts
    counted: float  # time that counts: up + down, + unobserved under sla.unknown=down
    downtime: float  # counted against the SLA: down, + unobserved under sla.unknown=down
    uptime: float | None  # up / counted; None when nothing counts
    coverage: float  # observed share of the period outside maintenance (mean over devices)
    objective: float
    met: bool | None  # uptime >= objective; None without uptime
    budget_used: float | None  # downtime / ((1 - objective) x counted)
    outages: int  # outages that started in the period
    longest: float  # the longest outage in progress in the period, whole length
    time_to_recover: float | None  # mean outage duration: down / outages
    estimated: bool  # some hour was re-split by a window declared after its points were gone


@dataclass(frozen=True, slots=True)
class DeviceReport:
    name: str
    address: str
    figures: Figures


class CellState(StrEnum):
    """A strip cell, from the component's figures over that day (or hour)."""

    MET = "met"
    MISSED = "missed"
    MAINTENANCE = "maintenance"  # nothing counted but maintenance
    NO_DATA = "no_data"  # nothing counted


@dataclass(frozen=True, slots=True)
class Cell:
    start: float
    end: float
    uptime: float | None
    coverage: float
    state: CellState


@dataclass(frozen=True, slots=True)
class ComponentReport:
    name: str
    figures: Figures
    previous: Figures  # over the period before
    devices: tuple[DeviceReport, ...]
    strip: tuple[Cell, ...]


class Reason(StrEnum):
    """Why a vessel's ledger does not cover the whole period."""

    STARTS_LATER = "starts_later"  # its ledger starts after the period's start
    BEHIND = "behind"  # its ledger has not caught up to the period's end


@dataclass(frozen=True, slots=True)
class Gap:
    vessel: str
    reason: Reason
    held_from: float | None  # where the vessel's ledger starts; None: no ledger at all
    covered_until: float | None  # the ledger's frozen cursor
    status: str | None  # the last collection's status, e.g. "unreachable"
    last_success: float | None  # the last collection that answered: "unreachable since"
    text: str  # a sentence saying all that


@dataclass(frozen=True, slots=True)
class VesselReport:
    id: str
    name: str
    unknown: str  # sla.unknown in force for the vessel
    components: tuple[ComponentReport, ...]
    complete: bool


@dataclass(frozen=True, slots=True)
class WindowApplied:
    """A maintenance window with an occurrence in the period on a reported vessel."""

    id: str
    reason: str
    reference: str | None
    occurrences: int
    seconds: float  # the occurrences' length inside the period (wall time, not per device)


@dataclass(frozen=True, slots=True)
class ObjectiveSource:
    """Where an objective comes from: sla.objective, sla.components.<c>, a vessel's."""

    scope: str  # "sla.objective", "sla.components.server", "vessels[mv-1].sla.objective"
    objective: float


@dataclass(frozen=True, slots=True)
class Policy:
    objectives: tuple[ObjectiveSource, ...]
    unknown: str  # "exclude", "down", or "mixed" (vessels differ: each vessel says)
    maintenance: tuple[WindowApplied, ...]


@dataclass(frozen=True, slots=True)
class Header:
    period: Period
    start_text: str  # the boundaries in the report's timezone, to the minute
    end_text: str
    generated_at: float
    generated_text: str
    policy: Policy
    gaps: tuple[Gap, ...]  # completeness: vessels not covered for the whole period
    edges_weighed: bool  # a boundary is not on a whole UTC hour: its hour is weighed


@dataclass(frozen=True, slots=True)
class Ranked:
    vessel: str
    vessel_name: str
    component: str
    uptime: float
    objective: float
    budget_used: float | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The fleet over one period: components meeting their objective, of those with data,
    and the fleet's uptime (all devices' up time over their counted time)."""

    label: str
    met: int
    with_data: int
    components: int
    uptime: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    current: Comparison
    previous: Comparison
    worst: tuple[Ranked, ...]  # at most ten, worst first


@dataclass(frozen=True, slots=True)
class Report:
    header: Header
    summary: Summary
    vessels: tuple[VesselReport, ...]
