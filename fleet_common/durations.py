"""Prometheus-style durations: "90s", "5m", "1h30m", "7d"."""

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_MAX_LENGTH = 32  # far beyond any real duration; keeps int() of the digits cheap
# Units for showing a duration, largest first, in milliseconds; weeks read worse than days.
_SHOWN = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError for anything that is not a duration."""
    if isinstance(text, str) and len(text) > _MAX_LENGTH:
        raise ValueError(f"expected a duration like 30s, 5m or 24h, got {len(text)} characters")
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


def format_duration(seconds: float) -> str:
    """`seconds` in the largest unit that shows it exactly: 86400 -> "1d", 0.01 -> "10ms"."""
    millis = round(seconds * 1000)
    for unit, size in _SHOWN:
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"
