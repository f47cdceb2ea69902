"""How the SLA counts time: one place for the metrics, the console and the reports.

Maintenance is neither up nor down and is left out of everything. Unobserved time (no
sample) counts as down only under `sla.unknown: down`; time before a vessel's ledger
starts never counts.
"""

from collections.abc import Sequence

from ..config import Unknown
from .hours import Span


def counted(span: Span, unknown: Unknown) -> float:
    """Time that counts for the SLA: up and down, and unobserved under `down`."""
    return span.observed + (span.unobserved if unknown is Unknown.DOWN else 0.0)


def downtime(span: Span, unknown: Unknown) -> float:
    """Time counted against the SLA: down, and unobserved under `down`."""
    return span.down + (span.unobserved if unknown is Unknown.DOWN else 0.0)


def uptime(spans: Sequence[Span], unknown: Unknown) -> float | None:
    """Up over the time that counts, summed over `spans` (a device's, or a component's
    devices'); None when nothing counts (never a made-up 1)."""
    up = sum(s.up for s in spans)
    total = sum(counted(s, unknown) for s in spans)
    return up / total if total > 0 else None


def coverage(span: Span, length: float) -> float:
    """Observed share of a window `length` long; time in maintenance is left out of both."""
    rest = length - span.maintenance
    return min(1.0, span.observed / rest) if rest > 0 else 0.0


def budget_used(down: float, total: float, objective: float) -> float | None:
    """Share of the error budget ((1 - objective) of the counted time) spent by `down`;
    over 1 once the objective is missed. None when nothing counts or there is no budget
    (an objective of 100 %)."""
    budget = (1 - objective) * total
    return down / budget if budget > 0 else None
