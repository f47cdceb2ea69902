"""PDF (reportlab): the header, the fleet summary, then per vessel its strips as drawings
and its figures as a table; the text is the HTML's (reports/text.py)."""

import io

from .model import Report


def render_pdf(report: Report) -> bytes:
    raise NotImplementedError("PDF reports are not written yet")
    return io.BytesIO().getvalue()
