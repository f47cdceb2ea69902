"""A small HTML status page: vessels, the last run, and what is failing."""

from collections.abc import Callable
from dataclasses import dataclass

import jinja2

from .fleet import FleetSnapshot, VesselState
from .model import VesselStatus

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("exporter", "templates"),
    autoescape=True,  # vessel names and errors come from config and remote servers
)


@dataclass(frozen=True, slots=True)
class DeviceCounts:
    down: int
    up: int
    unknown: int

    @property
    def total(self) -> int:
        return self.down + self.up + self.unknown


def device_counts(state: VesselState) -> DeviceCounts:
    """Down and up only where the data says so; everything else is unknown.

    A device of a vessel that did not answer is unknown unless its last word was down:
    the old "up" may no longer hold, while an old "down" is never taken for recovered.
    """
    answered = state.status is not None and state.status.collected
    observed = state.observation.devices if state.observation is not None else {}
    down = up = 0
    for device in state.config.devices:
        observation = observed.get(device.address)
        known = observation.up if observation is not None else None
        if known is False:
            down += 1
        elif known is True and answered:
            up += 1
    return DeviceCounts(down=down, up=up, unknown=len(state.config.devices) - down - up)


def status_class(status: VesselStatus | None) -> str:
    """ok when fresh; warn when answered without fresh data or not yet asked; bad otherwise."""
    if status is None:
        return "warn"
    if status is VesselStatus.OK:
        return "ok"
    return "warn" if status.collected else "bad"


def _age(now: float, ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@dataclass(frozen=True, slots=True)
class RunView:
    result: str
    finished: str
    age: str
    duration: str
    ok: int
    failed: int


@dataclass(frozen=True, slots=True)
class VesselRow:
    id: str
    name: str
    status: str
    css: str
    devices: DeviceCounts
    newest: str
    last_success: str


@dataclass(frozen=True, slots=True)
class FailingRow:
    id: str
    status: str
    attempts: int
    error: str


def render_status_page(
    snap: FleetSnapshot, now: float, iso: Callable[[float | None], str | None]
) -> str:
    run = snap.last_run
    run_view = None if run is None else RunView(
        result=run.result,
        finished=iso(run.finished_at) or "",
        age=_age(now, run.finished_at),
        duration=f"{run.duration:.2f}",
        ok=run.ok,
        failed=run.failed,
    )
    vessels = []
    failing = []
    for state in snap.vessels:
        status = state.status.value if state.status is not None else None
        newest = state.observation.newest_sample if state.observation is not None else None
        vessels.append(VesselRow(
            id=state.config.id,
            name=state.config.name,
            status=status or "pending",
            css=status_class(state.status),
            devices=device_counts(state),
            newest=_age(now, newest),
            last_success=_age(now, state.last_success),
        ))
        if state.error:
            failing.append(FailingRow(id=state.config.id, status=status or "",
                                      attempts=state.attempts, error=state.error))
    return TEMPLATES.get_template("status.html").render(
        run=run_view, vessels=vessels, failing=failing
    )
