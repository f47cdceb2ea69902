"""XLSX: a Summary sheet (header, policy, completeness, fleet), a Figures sheet holding
the table's rows (numbers as numbers, full precision) and a Strips sheet."""

import io

import xlsxwriter

from . import text
from .model import Report
from .table import COLUMNS, rows


def render_xlsx(report: Report) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_numbers": False,
                                     "strings_to_formulas": False, "strings_to_urls": False})
    bold = book.add_format({"bold": True})
    h = report.header
    summary = book.add_worksheet("Summary")
    lines: list[tuple[str, object]] = [
        ("SLA report", h.period.label), ("From", h.start_text), ("To", h.end_text),
        ("Timezone", h.period.timezone), ("Generated", h.generated_text),
        ("sla.unknown", h.policy.unknown)]
    lines += [(f"Objective ({s.scope})", s.objective) for s in h.policy.objectives]
    lines += [(f"Maintenance window {w.id}",
               f"{w.reason}; {w.occurrences} occurrence(s), {text.minutes(w.seconds)}")
              for w in h.policy.maintenance]
    lines += [("Incomplete", g.text) for g in h.gaps]
    for p in (report.summary.current, report.summary.previous):
        lines += [(f"{p.label}: components meeting objective", p.met),
                  (f"{p.label}: components with data", p.with_data),
                  (f"{p.label}: components", p.components),
                  (f"{p.label}: fleet uptime", p.uptime if p.uptime is not None else "")]
    for r in report.summary.worst:
        lines.append((f"Worst: {r.vessel} {r.component}", r.uptime))
    for i, (key, value) in enumerate(lines):
        summary.write_string(i, 0, key, bold)
        summary.write(i, 1, value)
    summary.set_column(0, 0, 48)
    summary.set_column(1, 1, 40)

    figures = book.add_worksheet("Figures")
    for j, name in enumerate(COLUMNS):
        figures.write_string(0, j, name, bold)
    for i, row in enumerate(rows(report), start=1):
        for j, name in enumerate(COLUMNS):
            value = row[name]
            if value is None:
                continue
            if isinstance(value, bool):
                figures.write_boolean(i, j, value)
            elif isinstance(value, int | float):
                figures.write_number(i, j, value)
            else:
                figures.write_string(i, j, str(value))
    figures.freeze_panes(1, 0)

    strips = book.add_worksheet("Strips")
    header = ["vessel", "component", "start", "end", "uptime", "coverage", "state"]
    for j, name in enumerate(header):
        strips.write_string(0, j, name, bold)
    i = 1
    for v in report.vessels:
        for c in v.components:
            for cell in c.strip:
                strips.write_string(i, 0, v.id)
                strips.write_string(i, 1, c.name)
                strips.write_number(i, 2, cell.start)
                strips.write_number(i, 3, cell.end)
                if cell.uptime is not None:
                    strips.write_number(i, 4, cell.uptime)
                strips.write_number(i, 5, cell.coverage)
                strips.write_string(i, 6, cell.state.value)
                i += 1
    book.close()
    return out.getvalue()
