"""The report as rows, one per component and one per device: what CSV and XLSX hold, and
what the JSON's figures are, so the formats carry the same numbers."""

from collections.abc import Iterator
from typing import Any

from .model import Figures, Report

# Seconds are the ledger's (device-seconds for a component); ratios are 0..1.
FIGURE_COLUMNS = ("uptime", "objective", "met", "budget_used", "coverage", "up_seconds",
                  "down_seconds", "maintenance_seconds", "unobserved_seconds",
                  "unheld_seconds", "counted_seconds", "downtime_seconds", "outages",
                  "longest_outage_seconds", "time_to_recover_seconds", "estimated")
COLUMNS = ("level", "vessel", "vessel_name", "component", "device", "address",
           *FIGURE_COLUMNS, "previous_uptime")


def figure_values(f: Figures) -> dict[str, Any]:
    return {"uptime": f.uptime, "objective": f.objective, "met": f.met,
            "budget_used": f.budget_used, "coverage": f.coverage, "up_seconds": f.up,
            "down_seconds": f.down, "maintenance_seconds": f.maintenance,
            "unobserved_seconds": f.unobserved, "unheld_seconds": f.unheld,
            "counted_seconds": f.counted, "downtime_seconds": f.downtime,
            "outages": f.outages, "longest_outage_seconds": f.longest,
            "time_to_recover_seconds": f.time_to_recover, "estimated": f.estimated}


def rows(report: Report) -> Iterator[dict[str, Any]]:
    """A component's row, then its devices' rows; None is an empty cell (unknown)."""
    for v in report.vessels:
        for c in v.components:
            yield {"level": "component", "vessel": v.id, "vessel_name": v.name,
                   "component": c.name, "device": None, "address": None,
                   **figure_values(c.figures), "previous_uptime": c.previous.uptime}
            for d in c.devices:
                yield {"level": "device", "vessel": v.id, "vessel_name": v.name,
                       "component": c.name, "device": d.name, "address": d.address,
                       **figure_values(d.figures), "previous_uptime": None}
