"""CSV: the header as `#` comment lines, then a row per component and per device.
Floats are written in full (repr), so reading them back gives the same numbers."""

import csv
import io
from typing import Any

from .model import Report
from .table import COLUMNS, rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def render_csv(report: Report) -> bytes:
    out = io.StringIO()
    h = report.header
    out.write(f"# SLA report {h.period.label}: {h.start_text} to {h.end_text}"
              f" ({h.period.timezone}); generated {h.generated_text}\n")
    out.write(f"# sla.unknown: {h.policy.unknown}\n")
    for gap in h.gaps:
        out.write(f"# incomplete: {gap.text}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows(report):
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    return out.getvalue().encode()
