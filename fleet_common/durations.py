"""Prometheus-style durations: "90s", "5m", "1h30m", "7d"."""

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError for anything that is not a duration."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected a duration like 30s, 5m or 24h, got {text!r}")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or total <= 0:
        raise ValueError(f"expected a duration like 30s, 5m or 24h, got {text!r}")
    return total
