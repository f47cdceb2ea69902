"""PDF (reportlab): the header and fleet summary, then per vessel its strips as drawings
and its figures as a table. The text is the HTML's (reports/text.py)."""

import io
from collections.abc import Sequence
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from . import text
from .model import CellState, ComponentReport, Report, VesselReport

STATE_COLOURS = {CellState.MET: colors.HexColor("#2e7d32"),
                 CellState.MISSED: colors.HexColor("#c62828"),
                 CellState.MAINTENANCE: colors.HexColor("#1565c0"),
                 CellState.NO_DATA: colors.HexColor("#bbbbbb")}
FIGURE_HEADER = ("Component / device", "Address", "Uptime", "Objective", "Met", "Budget used",
                 "Coverage", "Maintenance", "Unobserved", "Outages", "Longest", "Downtime",
                 "Time to recover")
LABEL_WIDTH = 30 * mm
STRIP_WIDTH = 230 * mm
_STYLE = TableStyle([
    ("FONT", (0, 0), (-1, -1), "Helvetica", 7),
    ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
    ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
    ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
])


def _p(content: str, style: str = "BodyText") -> Paragraph:
    return Paragraph(escape(content), getSampleStyleSheet()[style])


def _strips(components: Sequence[ComponentReport]) -> Drawing:
    row = 5 * mm
    drawing = Drawing(LABEL_WIDTH + STRIP_WIDTH, row * len(components))
    for i, c in enumerate(components):
        y = row * (len(components) - 1 - i)
        drawing.add(String(0, y + 1.2 * mm, c.name, fontName="Helvetica", fontSize=7))
        width = STRIP_WIDTH / max(1, len(c.strip))
        for k, cell in enumerate(c.strip):
            box = Rect(LABEL_WIDTH + k * width, y + 0.5 * mm, max(0.1, width - 0.4),
                       row - 1.5 * mm)
            box.fillColor = STATE_COLOURS[cell.state]
            box.strokeColor = None
            drawing.add(box)
    return drawing


def _figures(c: ComponentReport) -> list[list[str]]:
    f = c.figures
    rows = [[c.name, "", text.percent(f.uptime), text.percent(f.objective), text.met(f.met),
             text.percent(f.budget_used), text.percent(f.coverage), text.minutes(f.maintenance),
             text.minutes(f.unobserved), str(f.outages), text.minutes(f.longest),
             text.minutes(f.downtime), text.minutes(f.time_to_recover)]]
    for d in c.devices:
        g = d.figures
        rows.append([f"  {d.name}", d.address, text.percent(g.uptime),
                     text.percent(g.objective), text.met(g.met), text.percent(g.budget_used),
                     text.percent(g.coverage), text.minutes(g.maintenance),
                     text.minutes(g.unobserved), str(g.outages), text.minutes(g.longest),
                     text.minutes(g.downtime), text.minutes(g.time_to_recover)])
    return rows


def _vessel(v: VesselReport) -> list[Flowable]:
    title = f"{v.name} ({v.id}; sla.unknown: {v.unknown}{'' if v.complete else '; incomplete'})"
    table = Table([list(FIGURE_HEADER)] + [r for c in v.components for r in _figures(c)],
                  repeatRows=1)
    table.setStyle(_STYLE)
    return [_p(title, "Heading3"), _strips(v.components), Spacer(1, 2 * mm), table]


def render_pdf(report: Report) -> bytes:
    out = io.BytesIO()
    h = report.header
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm,
                            rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"SLA report {h.period.label}", invariant=True)
    story: list[Flowable] = [
        _p(f"SLA report {h.period.label}", "Title"),
        _p(f"From {h.start_text} to {h.end_text} ({h.period.timezone}); "
           f"generated {h.generated_text}."),
        _p(f"Unobserved time (sla.unknown): {h.policy.unknown}."),
    ]
    if h.edges_weighed:
        story.append(_p("A boundary is not on a whole UTC hour: the ledger's hour there is "
                        "weighed by the share of it inside the period."))
    story += [_p(f"Objective {text.percent(s.objective)} from {s.scope}.")
              for s in h.policy.objectives]
    story += [_p(f"Maintenance window {w.id}: {w.reason}"
                 f"{f' ({w.reference})' if w.reference else ''}, {w.occurrences} "
                 f"occurrence(s), {text.minutes(w.seconds)}.") for w in h.policy.maintenance]
    story += [_p(f"Incomplete: {g.text}.") for g in h.gaps]
    s = report.summary
    summary = Table([["Period", "Components meeting objective", "With data", "Components",
                      "Fleet uptime"]]
                    + [[c.label, str(c.met), str(c.with_data), str(c.components),
                        text.percent(c.uptime)] for c in (s.current, s.previous)])
    summary.setStyle(_STYLE)
    worst = Table([["Vessel", "Component", "Uptime", "Objective", "Budget used"]]
                  + [[r.vessel_name, r.component, text.percent(r.uptime),
                      text.percent(r.objective), text.percent(r.budget_used)]
                     for r in s.worst])
    worst.setStyle(_STYLE)
    story += [_p("Fleet summary", "Heading2"), summary, _p("Worst components", "Heading3"),
              worst]
    for v in report.vessels:
        story += _vessel(v)
    doc.build(story)
    return out.getvalue()
