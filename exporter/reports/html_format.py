"""HTML: one self-contained page from templates/reports/report.html."""

from functools import cache

import jinja2

from . import text
from .model import CellState, Report


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("exporter", "templates/reports"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.filters.update(percent=text.percent, minutes=text.minutes, met=text.met)
    env.globals.update(cell_title=text.cell_title, states=CellState)
    return env


def render_html(report: Report) -> bytes:
    return _env().get_template("report.html").render(report=report).encode()
