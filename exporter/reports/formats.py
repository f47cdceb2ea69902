"""The report's formats: one renderer each, all from the same Report."""

import re
from collections.abc import Callable, Mapping
from enum import StrEnum

from .csv_format import render_csv
from .json_format import render_json
from .model import Report


class ReportFormat(StrEnum):
    HTML = "html"
    CSV = "csv"
    XLSX = "xlsx"
    PDF = "pdf"
    JSON = "json"


# The formats that show the strips; the others' reports are built without them.
SHOWS_STRIPS = frozenset({ReportFormat.HTML, ReportFormat.PDF, ReportFormat.XLSX,
                          ReportFormat.JSON})

MEDIA_TYPES: Mapping[ReportFormat, str] = {
    ReportFormat.HTML: "text/html; charset=utf-8",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.PDF: "application/pdf",
    ReportFormat.JSON: "application/json",
}


def _html(report: Report) -> bytes:
    from .html_format import render_html
    return render_html(report)


def _xlsx(report: Report) -> bytes:
    from .xlsx_format import render_xlsx
    return render_xlsx(report)


def _pdf(report: Report) -> bytes:
    from .pdf_format import render_pdf
    return render_pdf(report)


_RENDERERS: Mapping[ReportFormat, Callable[[Report], bytes]] = {
    ReportFormat.HTML: _html, ReportFormat.CSV: render_csv, ReportFormat.XLSX: _xlsx,
    ReportFormat.PDF: _pdf, ReportFormat.JSON: render_json,
}


def render(report: Report, fmt: ReportFormat) -> bytes:
    """The report in `fmt`; pure and synchronous (async callers run it in a thread)."""
    return _RENDERERS[fmt](report)


def filename(report: Report, fmt: ReportFormat) -> str:
    """sla-report-2026-11.pdf, with the vessel when the report is of one."""
    label = re.sub(r"[^0-9A-Za-z-]+", "_", report.header.period.label).strip("_")
    vessels = report.vessels
    scope = f"-{re.sub(r'[^0-9A-Za-z_-]+', '_', vessels[0].id)}" if len(vessels) == 1 else ""
    return f"sla-report-{label}{scope}.{fmt.value}"
