"""Report periods: months, quarters, years and ranges, in timezones with DST and with
offsets that are not whole hours; and the bad ones, each naming its field."""

import itertools
from datetime import UTC, datetime

import pytest

from exporter.reports.period import (
    Period,
    ReportError,
    hourly,
    local_days,
    parse_period,
    previous,
)

NOW = datetime(2026, 12, 2, 13, 0, tzinfo=UTC).timestamp()


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(("period", "timezone", "start", "end"), [
    ("2026-11", "UTC", "2026-11-01T00:00+00:00", "2026-12-01T00:00+00:00"),
    ("2026-02", "UTC", "2026-02-01T00:00+00:00", "2026-03-01T00:00+00:00"),
    ("2024-02", "UTC", "2024-02-01T00:00+00:00", "2024-03-01T00:00+00:00"),  # leap year
    ("2026-Q1", "UTC", "2026-01-01T00:00+00:00", "2026-04-01T00:00+00:00"),
    ("2026-Q3", "UTC", "2026-07-01T00:00+00:00", "2026-10-01T00:00+00:00"),
    ("2025-Q4", "UTC", "2025-10-01T00:00+00:00", "2026-01-01T00:00+00:00"),
    ("2025", "UTC", "2025-01-01T00:00+00:00", "2026-01-01T00:00+00:00"),
    # Oslo: CET in winter, CEST from the last Sunday of March to the last of October.
    ("2026-03", "Europe/Oslo", "2026-03-01T00:00+01:00", "2026-04-01T00:00+02:00"),
    ("2026-10", "Europe/Oslo", "2026-10-01T00:00+02:00", "2026-11-01T00:00+01:00"),
    # Kolkata is UTC+05:30: its midnights are 18:30 UTC.
    ("2026-11", "Asia/Kolkata", "2026-11-01T00:00+05:30", "2026-12-01T00:00+05:30"),
    ("2026-Q2", "America/St_Johns", "2026-04-01T00:00-02:30", "2026-07-01T00:00-02:30"),
])
def test_named_periods(period: str, timezone: str, start: str, end: str):
    got = parse_period(period=period, start=None, end=None, timezone=timezone, now=NOW)
    assert got == Period(period, at(start), at(end), timezone)


def test_a_dst_month_is_an_hour_short_or_long():
    march = parse_period(period="2026-03", start=None, end=None, timezone="Europe/Oslo",
                         now=NOW)
    october = parse_period(period="2026-10", start=None, end=None, timezone="Europe/Oslo",
                           now=NOW)
    assert march.seconds == 31 * 86400 - 3600
    assert october.seconds == 31 * 86400 + 3600
    assert march.whole_hours() and october.whole_hours()
    cuts = local_days(march)
    assert len(cuts) == 32
    lengths = {b - a for a, b in itertools.pairwise(cuts)}
    assert lengths == {86400, 82800}  # the day the clocks go forward has 23 h


def test_offsets_that_are_not_whole_hours_are_flagged_for_weighing():
    kolkata = parse_period(period="2026-11", start=None, end=None, timezone="Asia/Kolkata",
                           now=NOW)
    assert not kolkata.whole_hours()
    assert kolkata.start % 3600 == 1800


@pytest.mark.parametrize(("timezone", "label", "start"), [
    ("UTC", "2026-11", "2026-11-01T00:00+00:00"),
    ("Pacific/Kiritimati", "2026-11", "2026-11-01T00:00+14:00"),
    # 13:00 UTC on 2 December is already 3 December in Kiritimati, still 2 December in
    # Honolulu: both are in December, so the last full month is November.
    ("Pacific/Honolulu", "2026-11", "2026-11-01T00:00-10:00"),
])
def test_the_default_is_the_last_full_month(timezone: str, label: str, start: str):
    got = parse_period(period=None, start=None, end=None, timezone=timezone, now=NOW)
    assert (got.label, got.start) == (label, at(start))


def test_the_default_on_the_first_of_a_month_in_the_report_timezone():
    # 23:30 UTC on 30 November is 1 December 00:30 in Oslo: November is complete there.
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC).timestamp()
    assert parse_period(period=None, start=None, end=None, timezone="Europe/Oslo",
                        now=now).label == "2026-11"
    assert parse_period(period=None, start=None, end=None, timezone="UTC",
                        now=now).label == "2026-10"


def test_a_range_is_exact_to_the_minute():
    got = parse_period(period=None, start="2026-11-03T06:15:00+01:00",
                       end="2026-11-04T06:15Z", timezone="Europe/Oslo", now=NOW)
    assert (got.start, got.end) == (at("2026-11-03T05:15+00:00"), at("2026-11-04T06:15+00:00"))
    assert got.label == "2026-11-03T06:15+01:00/2026-11-04T07:15+01:00"
    assert not got.whole_hours()


@pytest.mark.parametrize(("label", "before"), [
    ("2026-01", "2025-12"), ("2026-11", "2026-10"), ("2026-Q1", "2025-Q4"),
    ("2026-Q3", "2026-Q2"), ("2025", "2024"),
])
def test_previous(label: str, before: str):
    period = parse_period(period=label, start=None, end=None, timezone="Europe/Oslo", now=NOW)
    got = previous(period)
    assert got.label == before
    assert got.end == period.start
    assert got == parse_period(period=before, start=None, end=None, timezone="Europe/Oslo",
                               now=NOW)


def test_previous_of_a_range_is_as_long_and_ends_where_it_starts():
    period = parse_period(period=None, start="2026-11-10T00:00Z", end="2026-11-12T12:00Z",
                          timezone="UTC", now=NOW)
    got = previous(period)
    assert (got.start, got.end) == (period.start - period.seconds, period.start)


def test_hourly_cuts_fall_on_whole_utc_hours_inside():
    period = Period("x", at("2026-11-01T00:30+00:00"), at("2026-11-01T03:15+00:00"), "UTC")
    assert hourly(period) == [at(f"2026-11-01T{t}+00:00") for t in
                              ("00:30", "01:00", "02:00", "03:00", "03:15")]


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"period": "2027-01"}, "period", "not ended"),
    ({"period": "2026-12"}, "period", "not ended"),  # in progress
    ({"period": "2026-13"}, "period", "no month 13"),
    ({"period": "2026-Q5"}, "period", "YYYY-Qn"),
    ({"period": "Nov 2026"}, "period", "YYYY-MM"),
    ({"period": "1999"}, "period", "before 2000"),
    ({"period": "2026-11", "start": "2026-11-01T00:00Z", "end": "2026-11-02T00:00Z"},
     "period", "not both"),
    ({"start": "2026-11-02T00:00Z", "end": "2026-11-01T00:00Z"}, "to", "after from"),
    ({"start": "2026-11-01T00:00Z", "end": "2026-11-01T00:00Z"}, "to", "after from"),
    ({"start": "2026-11-01T00:00Z"}, "to", "required"),
    ({"end": "2026-11-01T00:00Z"}, "from", "required"),
    ({"start": "2026-11-01", "end": "2026-11-02T00:00Z"}, "from", "RFC 3339"),
    ({"start": "2026-11-01T00:00", "end": "2026-11-02T00:00Z"}, "from", "offset"),
    ({"start": "2026-11-01T00:00:30Z", "end": "2026-11-02T00:00Z"}, "from", "whole minute"),
    ({"start": "2026-11-31T00:00Z", "end": "2026-12-01T00:00Z"}, "from", "not a valid"),
    ({"start": "2026-11-01T00:00Z", "end": "2027-01-01T00:00Z"}, "to", "not ended"),
    ({"period": "2026-11", "timezone": "Mars/Olympus"}, "timezone", "unknown timezone"),
    ({"period": "2026-11", "timezone": "../../etc/passwd"}, "timezone", "unknown timezone"),
    ({"period": "2026-11", "timezone": ""}, "timezone", "IANA"),
])
def test_bad_input_names_its_field(kwargs: dict[str, str], field: str, words: str):
    args = {"period": None, "start": None, "end": None, "timezone": "UTC", **kwargs}
    with pytest.raises(ReportError) as raised:
        parse_period(period=args["period"], start=args["start"], end=args["end"],
                     timezone=args["timezone"], now=NOW)
    assert raised.value.field == field
    assert words in raised.value.message
    assert str(raised.value).startswith(f"{field}: ")

