"""Maintenance windows: the schedule's queries, and fleet.yml's `maintenance:` checked
through --check-config (each bad input names its key and changes nothing)."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import main
from exporter.config import parse_config
from exporter.sla.maintenance import (
    Fixed,
    MaintenanceSchedule,
    MaintenanceWindow,
    Occurrence,
    Scope,
    Weekday,
    Weekly,
)

HOUR = 3600.0
DAY = 86400.0


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def fixed(window_id: str, start: str, end: str, **scope: Any) -> MaintenanceWindow:
    return MaintenanceWindow(window_id, Scope(**{"vessels": ("*",), **scope}),
                             Fixed(at(start), at(end)), reason="works")


SUNDAY_PATCHING = MaintenanceWindow(
    "sunday-patching", Scope(("*",), ("server",)),
    Weekly(Weekday.SUNDAY, 2, 0, 2 * HOUR, "Europe/Oslo"), reason="patch window")


class TestIntervals:
    def test_clipped_to_the_range_start_inclusive_end_exclusive(self):
        schedule = MaintenanceSchedule((fixed("w", "2027-03-01T10:00:00", "2027-03-01T12:00:00"),))
        hour = at("2027-03-01T11:00:00")
        assert schedule.intervals("a", "server", "srv-1", hour, hour + HOUR) == \
            ((hour, hour + HOUR),)
        assert schedule.intervals("a", "server", "srv-1", at("2027-03-01T09:00:00"),
                                  at("2027-03-01T10:00:00")) == ()
        assert schedule.intervals("a", "server", "srv-1", at("2027-03-01T12:00:00"),
                                  at("2027-03-01T13:00:00")) == ()
        assert schedule.intervals("a", "server", "srv-1", at("2027-03-01T09:30:00"),
                                  at("2027-03-01T10:30:00")) == \
            ((at("2027-03-01T10:00:00"), at("2027-03-01T10:30:00")),)

    def test_overlapping_windows_merge_and_disjoint_ones_stay_apart(self):
        schedule = MaintenanceSchedule((
            fixed("b", "2027-03-01T11:00:00", "2027-03-01T13:00:00"),
            fixed("a", "2027-03-01T10:00:00", "2027-03-01T12:00:00"),
            fixed("c", "2027-03-01T15:00:00", "2027-03-01T16:00:00"),
        ))
        assert schedule.intervals("x", "server", "d", at("2027-03-01T00:00:00"),
                                  at("2027-03-02T00:00:00")) == (
            (at("2027-03-01T10:00:00"), at("2027-03-01T13:00:00")),
            (at("2027-03-01T15:00:00"), at("2027-03-01T16:00:00")),
        )

    def test_scope_limits_vessels_components_and_devices(self):
        schedule = MaintenanceSchedule((fixed(
            "w", "2027-03-01T00:00:00", "2027-03-02T00:00:00",
            vessels=("caledonia",), components=("server",), devices=("srv-1",)),))
        span = (at("2027-03-01T00:00:00"), at("2027-03-01T01:00:00"))
        assert schedule.intervals("caledonia", "server", "srv-1", *span) == (span,)
        assert schedule.intervals("caledonia", "server", "srv-2", *span) == ()
        assert schedule.intervals("caledonia", "dashboard", "srv-1", *span) == ()
        assert schedule.intervals("aurora", "server", "srv-1", *span) == ()

    def test_weekly_window_follows_the_wall_clock_across_dst(self):
        schedule = MaintenanceSchedule((SUNDAY_PATCHING,))
        found = schedule.intervals("a", "server", "s", at("2027-03-20T00:00:00"),
                                   at("2027-04-05T00:00:00"))
        assert found == (
            # 02:00 CET is 01:00 UTC
            (at("2027-03-21T01:00:00"), at("2027-03-21T03:00:00")),
            # 28 March: clocks jump from 02:00 to 03:00; the missing 02:00 is taken with
            # the offset before the change, 01:00 UTC (03:00 CEST).
            (at("2027-03-28T01:00:00"), at("2027-03-28T03:00:00")),
            # 02:00 CEST is 00:00 UTC
            (at("2027-04-04T00:00:00"), at("2027-04-04T02:00:00")),
        )
        # Back in autumn: 31 October 02:00 exists twice; the first one (CEST) is taken.
        autumn = schedule.intervals("a", "server", "s", at("2027-10-30T00:00:00"),
                                    at("2027-11-08T00:00:00"))
        assert autumn == ((at("2027-10-31T00:00:00"), at("2027-10-31T02:00:00")),
                          (at("2027-11-07T01:00:00"), at("2027-11-07T03:00:00")))

    def test_a_weekly_occurrence_begun_before_the_range_is_found(self):
        schedule = MaintenanceSchedule((SUNDAY_PATCHING,))
        hour = at("2027-04-04T01:00:00")
        assert schedule.intervals("a", "server", "s", hour, hour + HOUR) == \
            ((hour, hour + HOUR),)

    def test_empty_range(self):
        schedule = MaintenanceSchedule((SUNDAY_PATCHING,))
        hour = at("2027-04-04T01:00:00")
        assert schedule.intervals("a", "server", "s", hour, hour) == ()


class TestActiveAndNext:
    schedule = MaintenanceSchedule((
        MaintenanceWindow("drydock", Scope(("caledonia",), ("server",)),
                          Fixed(at("2027-03-01T00:00:00"), at("2027-03-21T00:00:00")),
                          reason="dry dock", reference="OPS-1234"),
        SUNDAY_PATCHING,
    ))

    def test_active_lists_every_window_in_force_with_its_occurrence(self):
        sunday = at("2027-03-07T01:30:00")
        assert self.schedule.active("caledonia", "server", "srv-1", sunday) == (
            Occurrence("drydock", "dry dock", "OPS-1234", at("2027-03-01T00:00:00"),
                       at("2027-03-21T00:00:00")),
            Occurrence("sunday-patching", "patch window", None, at("2027-03-07T01:00:00"),
                       at("2027-03-07T03:00:00")),
        )
        assert self.schedule.active("aurora", "server", "srv-1", sunday)[0].id == \
            "sunday-patching"
        assert self.schedule.active("aurora", "dashboard", "d", sunday) == ()

    def test_end_is_exclusive_and_start_inclusive(self):
        start, end = at("2027-03-01T00:00:00"), at("2027-03-21T00:00:00")
        assert [w.id for w in self.schedule.active("caledonia", "server", "s", start)] == \
            ["drydock"]
        assert self.schedule.active("caledonia", "server", "s", start - 1) == ()
        assert self.schedule.active("caledonia", "server", "s", end) == ()

    def test_next_is_the_first_occurrence_starting_later(self):
        before = at("2027-02-27T12:00:00")  # a Saturday
        found = self.schedule.next("caledonia", "server", "s", before)
        assert found is not None
        assert (found.id, found.start) == ("sunday-patching", at("2027-02-28T01:00:00"))
        found = self.schedule.next("caledonia", "server", "s", at("2027-02-28T05:00:00"))
        assert found is not None and found.id == "drydock"
        assert self.schedule.next("aurora", "dashboard", "d", before) is None


class TestCountedSince:
    schedule = MaintenanceSchedule((fixed("w", "2027-03-02T00:00:00", "2027-03-04T00:00:00"),))
    since = at("2027-03-01T00:00:00")

    def test_an_outage_counts_from_the_window_end_once_the_window_is_over(self):
        assert self.schedule.counted_since("a", "server", "s", self.since,
                                           at("2027-03-01T12:00:00")) == self.since
        assert self.schedule.counted_since("a", "server", "s", self.since,
                                           at("2027-03-03T00:00:00")) is None
        assert self.schedule.counted_since("a", "server", "s", self.since,
                                           at("2027-03-05T00:00:00")) == at("2027-03-04T00:00:00")

    def test_an_outage_begun_after_a_window_is_untouched(self):
        since = at("2027-03-05T00:00:00")
        assert self.schedule.counted_since("a", "server", "s", since, since + DAY) == since

    def test_an_outage_begun_inside_a_window_counts_from_its_end(self):
        since = at("2027-03-03T00:00:00")
        assert self.schedule.counted_since("a", "server", "s", since,
                                           at("2027-03-06T00:00:00")) == at("2027-03-04T00:00:00")


class TestFingerprints:
    def test_stable_and_blind_to_reason_and_reference(self):
        window = fixed("w", "2027-03-01T00:00:00", "2027-03-02T00:00:00")
        same = MaintenanceWindow(window.id, window.scope, window.timing, reason="other",
                                 reference="OPS-9")
        assert window.fingerprint() == same.fingerprint()
        assert len(window.fingerprint()) == 16
        assert SUNDAY_PATCHING.fingerprint() != window.fingerprint()

    def test_changed_since_lists_added_removed_and_both_versions_of_a_change(self):
        kept = fixed("kept", "2027-03-01T00:00:00", "2027-03-02T00:00:00")
        removed = fixed("removed", "2027-03-03T00:00:00", "2027-03-04T00:00:00")
        old = fixed("moved", "2027-03-05T00:00:00", "2027-03-06T00:00:00")
        new = fixed("moved", "2027-03-05T00:00:00", "2027-03-07T00:00:00")
        added = fixed("added", "2027-03-08T00:00:00", "2027-03-09T00:00:00")
        before = MaintenanceSchedule((kept, removed, old))
        after = MaintenanceSchedule((kept, new, added))
        assert after.changed_since(before) == [removed, old, new, added]
        assert after.changed_since(after) == []
        affected = MaintenanceSchedule(tuple(after.changed_since(before)))
        assert affected.intervals("a", "server", "s", at("2027-03-01T00:00:00"),
                                  at("2027-03-10T00:00:00")) == (
            (at("2027-03-03T00:00:00"), at("2027-03-04T00:00:00")),
            (at("2027-03-05T00:00:00"), at("2027-03-07T00:00:00")),
            (at("2027-03-08T00:00:00"), at("2027-03-09T00:00:00")),
        )

    def test_a_stored_definition_comes_back_with_the_same_fingerprint_and_seconds(self):
        # The ledger keeps the windows it was built with as definitions: a removed one's
        # seconds must still be known at the next start.
        window = MaintenanceWindow("w", Scope(("a",), ("server", "ap"), None),
                                   Fixed(at("2027-03-01T00:00:00"), at("2027-03-02T00:00:00")),
                                   reason="r")
        schedule = MaintenanceSchedule((window, SUNDAY_PATCHING))
        back = MaintenanceSchedule.from_definitions(
            json.loads(json.dumps(schedule.definitions())))
        assert back.fingerprints() == schedule.fingerprints()
        span = (at("2027-02-20T00:00:00"), at("2027-03-20T00:00:00"))
        assert back.intervals("a", "server", "s", *span) == \
            schedule.intervals("a", "server", "s", *span)
        with pytest.raises((ValueError, TypeError, KeyError)):
            MaintenanceSchedule.from_definitions([{"id": "x"}])


# --- config -----------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "defaults": {"influx": {"database": "telegraf"}},
    "vessels": [
        {"id": "caledonia", "influx": {"url": "http://10.0.0.1:8086"}, "devices": [
            {"name": "srv-1", "address": "10.1.0.1", "component": "server"},
            {"name": "srv-2", "address": "10.1.0.2", "component": "server"},
            {"name": "ap-1", "address": "10.1.0.3", "component": "access_point"}]},
        {"id": "aurora", "influx": {"url": "http://10.0.0.2:8086"}, "devices": [
            {"name": "nav", "address": "10.2.0.1", "component": "server"}]},
    ],
    "maintenance": [
        {"id": "caledonia-drydock-2027", "vessels": ["caledonia"], "components": ["server"],
         "devices": ["srv-1"], "start": "2027-03-01T00:00:00Z", "end": "2027-03-21T00:00:00Z",
         "reason": "dry dock", "reference": "OPS-1234"},
        {"id": "sunday-patching", "vessels": ["*"], "components": ["server"],
         "weekly": {"day": "sunday", "at": "02:00", "duration": "2h",
                    "timezone": "Europe/Oslo"},
         "reason": "patch window"},
    ],
}


def window(index: int, **changes: Any) -> dict[str, Any]:
    """BASE with maintenance[index] changed; None removes a key."""
    document = copy.deepcopy(BASE)
    item = document["maintenance"][index]
    for key, value in changes.items():
        target, _, sub = key.partition("__")
        if sub and value is None:
            del item[target][sub]
        elif sub:
            item[target][sub] = value
        elif value is None:
            del item[key]
        else:
            item[key] = value
    return document


@pytest.fixture
def check(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    def run(document: Any) -> tuple[int, str]:
        path = tmp_path / "fleet.yml"
        path.write_text(document if isinstance(document, str) else yaml.safe_dump(document),
                        encoding="utf-8")
        code = main(["--config", str(path), "--check-config"])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


class TestConfig:
    def test_the_issue_example_is_read_as_declared(self, check):
        code, output = check(BASE)
        assert (code, output.strip()) == (
            0, "config ok: 2 vessels, 4 devices, 2 maintenance windows")
        schedule = parse_config(copy.deepcopy(BASE)).maintenance
        drydock, patching = schedule.windows
        assert drydock.scope == Scope(("caledonia",), ("server",), ("srv-1",))
        assert drydock.timing == Fixed(at("2027-03-01T00:00:00"), at("2027-03-21T00:00:00"))
        assert drydock.reference == "OPS-1234"
        assert patching.timing == Weekly(Weekday.SUNDAY, 2, 0, 7200.0, "Europe/Oslo")
        assert patching.reference is None

    def test_no_maintenance_is_an_empty_schedule(self):
        document = copy.deepcopy(BASE)
        del document["maintenance"]
        assert not parse_config(document).maintenance

    def test_unquoted_yaml_times_are_read(self, check):
        text = yaml.safe_dump(BASE).replace("'2027-03-01T00:00:00Z'", "2027-03-01T00:00:00Z")
        assert "start: 2027-03-01T00:00:00Z" in text
        assert check(text)[0] == 0

    @pytest.mark.parametrize(("document", "expected"), [
        (window(0, end="2027-02-28T00:00:00Z"),
         "maintenance[0].end: must be after start (2027-03-01T00:00:00Z)"),
        (window(0, end="2027-03-01T00:00:00Z"), "maintenance[0].end: must be after start"),
        (window(0, vessels=["atlantis"]), "maintenance[0].vessels[0]: unknown vessel 'atlantis'"),
        (window(0, vessels=["*", "aurora"]), "maintenance[0].vessels: \"*\" means every vessel"),
        (window(0, vessels=[]), "maintenance[0].vessels: must not be empty"),
        (window(0, components=["router"]),
         "maintenance[0].components[0]: unknown component 'router'"),
        (window(0, devices=["srv-9"]), "maintenance[0].devices[0]: unknown device 'srv-9'"),
        (window(0, devices=["nav"]), "maintenance[0].devices[0]: unknown device 'nav'"),
        (window(0, devices=["ap-1"]), "maintenance[0].devices[0]: unknown device 'ap-1'"),
        (window(1, weekly__timezone="Europe/Olso"),
         "maintenance[1].weekly.timezone: unknown time zone 'Europe/Olso'"),
        (window(1, weekly__timezone="../../etc/passwd"),
         "maintenance[1].weekly.timezone: unknown time zone"),
        (window(1, weekly__day="sundy"), "maintenance[1].weekly.day: expected one of monday,"),
        (window(1, weekly__at="25:00"), "maintenance[1].weekly.at: expected a time of day"),
        (window(1, weekly__at=120), "maintenance[1].weekly.at: expected a time of day like "
                                    "\"02:00\", got '120' (quote it"),
        (window(1, weekly__duration="0h"), "maintenance[1].weekly.duration: must be longer "
                                           "than zero"),
        (window(1, weekly__duration="8d"), "maintenance[1].weekly.duration: must be between "
                                           "1m and 7d, got 8d"),
        (window(1, weekly__timezone=None), "maintenance[1].weekly.timezone: required key"),
        (window(1, id="caledonia-drydock-2027"),
         "maintenance[1].id: duplicate window id 'caledonia-drydock-2027' (also maintenance[0])"),
        (window(0, weekly={"day": "sunday", "at": "02:00", "duration": "2h",
                           "timezone": "UTC"}),
         "maintenance[0].weekly: use either start/end or weekly, not both"),
        (window(1, weekly=None), "maintenance[1]: needs start and end, or weekly"),
        (window(0, end=None), "maintenance[0].end: required key is missing (with start)"),
        (window(0, start="1 March"), "maintenance[0].start: expected a time like"),
        (window(0, start="2027-03-01T00:00:00"), "maintenance[0].start: needs a UTC offset"),
        (window(0, start="2027-03-01T00:00:00.5Z"), "maintenance[0].start: must be to the "
                                                   "second"),
        (window(0, reason=None), "maintenance[0].reason: required key is missing"),
        (window(0, reference="a\nb"), "maintenance[0].reference: "),
        (window(0, id="Dry Dock"), "maintenance[0].id: 'Dry Dock' does not match"),
        (window(0, kind="drydock"), "maintenance[0].kind: unknown key"),
    ])
    def test_bad_input_names_the_key(self, check, document, expected):
        code, output = check(document)
        assert code == 2
        assert len(output.strip().splitlines()) == 1
        assert output.startswith(f"fleet-exporter: config error: {expected}"), output
