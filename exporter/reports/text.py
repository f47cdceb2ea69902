"""How figures read in HTML and PDF: one set of helpers, so both show the same text (and
the tests read it back through them)."""

from .model import CellState

NONE = "\u2013"  # an en dash: unknown, nothing counted


def percent(value: float | None) -> str:
    """99.217 %: three decimals, enough to tell 94.999 % from 95 %."""
    return NONE if value is None else f"{value * 100:.3f} %"


def minutes(seconds: float | None) -> str:
    """A duration to the minute: 49 h 03 min."""
    if seconds is None:
        return NONE
    total = round(seconds / 60)
    return f"{total // 60} h {total % 60:02d} min"


def met(value: bool | None) -> str:
    return NONE if value is None else ("met" if value else "missed")


def cell_title(uptime: float | None, state: CellState) -> str:
    return percent(uptime) if uptime is not None else state.value.replace("_", " ")
