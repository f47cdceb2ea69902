"""The maintenance families: which windows are in force and which come next.

Rendered after each collection run, at start-up and reload, and at the first scrape after
a window starts or ends (CollectionService.refresh); the downtime ages (exposition.py)
follow a window to the second.
"""

from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from .config import VesselConfig
from .metrics import COMPONENT_LABELS, DEVICE_LABELS
from .sla.maintenance import MaintenanceSchedule, Occurrence

# Not "window": the uptime families use that label for 24h/7d/30d.
WINDOW_LABEL = "maintenance_window"


class MaintenanceCollector:
    def __init__(self, vessels: Sequence[VesselConfig], schedule: MaintenanceSchedule,
                 now: float) -> None:
        self._vessels = vessels
        self._schedule = schedule
        self._now = now

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "fleet_maintenance_window_info",
            "A declared maintenance window (fleet.yml maintenance:), with its reason and "
            "reference.", labels=[WINDOW_LABEL, "reason", "reference"])
        device = GaugeMetricFamily(
            "fleet_device_maintenance",
            "1 while a maintenance window is in force on the device.",
            labels=[*DEVICE_LABELS, WINDOW_LABEL])
        component = GaugeMetricFamily(
            "fleet_component_maintenance",
            "1 while a maintenance window is in force on every device of the component.",
            labels=[*COMPONENT_LABELS, WINDOW_LABEL])
        next_start = GaugeMetricFamily(
            "fleet_component_maintenance_next_start_timestamp_seconds",
            "Start of the next maintenance window on any device of the component.",
            labels=[*COMPONENT_LABELS, WINDOW_LABEL])
        next_end = GaugeMetricFamily(
            "fleet_component_maintenance_next_end_timestamp_seconds",
            "End of the next maintenance window on any device of the component.",
            labels=[*COMPONENT_LABELS, WINDOW_LABEL])
        schedule, now = self._schedule, self._now
        for w in schedule.windows:
            info.add_metric([w.id, w.reason, w.reference or ""], 1.0)
        if not schedule:
            yield from (info, device, component, next_start, next_end)
            return
        for vessel in self._vessels:
            members: dict[str, list[tuple[str, str]]] = {}
            for d in vessel.devices:
                members.setdefault(d.component, []).append((d.name, d.address))
            for name, devices in members.items():
                upcoming: list[Occurrence] = []
                for device_name, address in devices:
                    for o in schedule.active(vessel.id, name, device_name, now):
                        device.add_metric([vessel.id, name, device_name, address, o.id], 1.0)
                    found = schedule.next(vessel.id, name, device_name, now)
                    if found is not None:
                        upcoming.append(found)
                held = schedule.component_in_force(vessel.id, name,
                                                   [n for n, _ in devices], now)
                for window_id in sorted(held):
                    component.add_metric([vessel.id, name, window_id], 1.0)
                if upcoming:
                    first = min(upcoming, key=lambda o: (o.start, o.id))
                    next_start.add_metric([vessel.id, name, first.id], first.start)
                    next_end.add_metric([vessel.id, name, first.id], first.end)
        yield from (info, device, component, next_start, next_end)
