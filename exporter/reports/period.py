"""A report's period: a month, a quarter, a year or a range, in the report's timezone.

Boundaries are exact to the minute in that timezone. The ledger holds whole UTC hours, so
a boundary that is not on a whole UTC hour (Asia/Kolkata's midnight is 18:30 UTC) is
served by weighing its hour by the share of it inside the period: see docs/reports.md.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HOUR = 3600

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_YEAR = re.compile(r"(\d{4})")


class ReportError(ValueError):
    """Bad input for a report: `field` names what was wrong (a CLI option, a parameter)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Period:
    label: str  # "2026-11", "2026-Q4", "2026" or "<from>/<to>" as given
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive
    timezone: str  # an IANA name, e.g. "UTC" or "Europe/Oslo"

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def whole_hours(self) -> bool:
        """Both boundaries fall on whole UTC hours: the ledger serves them exactly."""
        return self.start % HOUR == 0 and self.end % HOUR == 0


def zone(timezone: str) -> ZoneInfo:
    if not timezone or len(timezone) > 64:
        raise ReportError("timezone", "expected an IANA timezone name such as Europe/Oslo")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError("timezone", f"unknown timezone {timezone[:64]!r}") from None


def _local(year: int, month: int, tz: ZoneInfo) -> float:
    return datetime(year, month, 1, tzinfo=tz).timestamp()


def closed_months(now: float, tz: ZoneInfo) -> Iterator[tuple[str, float]]:
    """The months closed by `now` in `tz`, newest first, with when each ended:
    ("2026-11", 2026-12-01T00:00 local), then ("2026-10", ...), without end."""
    local = datetime.fromtimestamp(now, tz)
    year, month = local.year, local.month
    while True:
        end = _local(year, month, tz)
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        yield f"{year:04d}-{month:02d}", end


def _months(year: int, month: int, count: int, tz: ZoneInfo) -> tuple[float, float]:
    """[first of month, first of the month `count` months later) in `tz`."""
    later = month - 1 + count
    return _local(year, month, tz), _local(year + later // 12, later % 12 + 1, tz)


def _named(period: str, tz: ZoneInfo) -> tuple[float, float]:
    if m := _MONTH.fullmatch(period):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise ReportError("period", f"no month {month:02d} in {period!r}")
        return _months(year, month, 1, tz)
    if m := _QUARTER.fullmatch(period):
        return _months(int(m[1]), 3 * (int(m[2]) - 1) + 1, 3, tz)
    if m := _YEAR.fullmatch(period):
        return _months(int(m[1]), 1, 12, tz)
    raise ReportError("period", f"expected YYYY-MM, YYYY-Qn or YYYY, got {period[:40]!r}")


def _moment(name: str, raw: str) -> float:
    """RFC 3339 with an offset (Z or ±HH:MM), on a whole minute."""
    text = raw.strip()
    if len(text) > 40 or not re.fullmatch(
            r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:\d\d)", text):
        raise ReportError(name, "expected RFC 3339 with an offset, such as "
                                f"2026-11-01T00:00:00+01:00, got {raw[:40]!r}")
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(name, f"not a valid time: {raw[:40]!r}") from None
    if moment.second or moment.microsecond:
        raise ReportError(name, "must be on a whole minute")
    return moment.timestamp()


def _iso(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="minutes")


def last_full_month(now: float, tz: ZoneInfo) -> str:
    local = datetime.fromtimestamp(now, tz)
    first = local.replace(day=1)
    before = first - timedelta(days=1)
    return f"{before.year:04d}-{before.month:02d}"


def parse_period(*, period: str | None, start: str | None, end: str | None, timezone: str,
                 now: float) -> Period:
    """The period asked for; ReportError naming the field for anything wrong. No period
    and no range is the last full month in `timezone`."""
    tz = zone(timezone)
    if period is not None and (start is not None or end is not None):
        raise ReportError("period", "give a period or --from and --to, not both")
    if period is None and (start is None) != (end is None):
        raise ReportError("to" if end is None else "from",
                          "required with " + ("--from" if end is None else "--to"))
    if start is not None and end is not None:
        lo, hi = _moment("from", start), _moment("to", end)
        if hi <= lo:
            raise ReportError("to", f"must be after from ({start[:40]})")
        label = f"{_iso(lo, tz)}/{_iso(hi, tz)}"
        field = "to"
    else:
        label = period.strip() if period is not None else last_full_month(now, tz)
        lo, hi = _named(label, tz)
        field = "period"
    if hi > now:
        raise ReportError(field, f"{label} has not ended yet: it ends {_iso(hi, tz)}, "
                                 f"it is now {_iso(now, tz)}")
    if lo < datetime(2000, 1, 1, tzinfo=UTC).timestamp():
        raise ReportError(field, f"{label} is before 2000")
    return Period(label=label, start=lo, end=hi, timezone=timezone)


def previous(period: Period) -> Period:
    """The period before: the month, quarter or year before, or a range of the same
    length ending where this one starts."""
    tz = zone(period.timezone)
    label = period.label
    if m := _MONTH.fullmatch(label):
        year, month = int(m[1]), int(m[2]) - 1
        if month == 0:
            year, month = year - 1, 12
        new = f"{year:04d}-{month:02d}"
    elif m := _QUARTER.fullmatch(label):
        year, quarter = int(m[1]), int(m[2]) - 1
        if quarter == 0:
            year, quarter = year - 1, 4
        new = f"{year:04d}-Q{quarter}"
    elif _YEAR.fullmatch(label):
        new = f"{int(label) - 1:04d}"
    else:
        lo = period.start - period.seconds
        return Period(f"{_iso(lo, tz)}/{_iso(period.start, tz)}", lo, period.start,
                      period.timezone)
    lo, hi = _named(new, tz)
    return Period(new, lo, hi, period.timezone)


def local_days(period: Period) -> list[float]:
    """Cuts at each local midnight inside the period, with its start and end: the strip's
    days (23 or 25 hours long across a DST change)."""
    tz = zone(period.timezone)
    cuts = [period.start]
    day = datetime.fromtimestamp(period.start, tz).date() + timedelta(days=1)
    while True:
        at = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        if at >= period.end:
            break
        cuts.append(at)
        day += timedelta(days=1)
    cuts.append(period.end)
    return cuts


def hourly(period: Period) -> list[float]:
    """Cuts at each whole UTC hour inside the period, with its start and end."""
    first = int(period.start // HOUR + 1) * HOUR
    return [period.start, *range(first, int(-(-period.end // HOUR)) * HOUR, HOUR),
            period.end] if first < period.end else [period.start, period.end]


def local_text(ts: float, timezone: str, spec: str = "minutes") -> str:
    return datetime.fromtimestamp(ts, zone(timezone)).isoformat(timespec=spec)
