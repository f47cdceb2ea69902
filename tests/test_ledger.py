"""The SLA ledger: time-weighted windows against a real InfluxDB 1.6, and its arithmetic."""

import struct
import time
from pathlib import Path

import pytest

from exporter import ledger_db
from exporter.config import parse_config
from exporter.model import DeviceObservation, VesselObservation
from exporter.sla import hour as packed_hour
from exporter.sla.hour import HOUR, Hour
from exporter.sla.hours import (
    MAX_RUNS,
    Book,
    Carry,
    EdgeCount,
    Hours,
    Profile,
    estimate,
    fold,
    window,
)
from exporter.sla.ledger import Ledger
from simulator.fleetconfig import write_fleet_config
from tests.servers import InfluxServer
from tests.test_exporter_influxdb import run_once

SERVER = {"vessel": "mixed", "component": "server", "device": "srv-1", "address": "10.0.0.1"}


class TestIntervalChange:
    """Telegraf went from 60 s to 5 min samples 12 h ago; the server was down 2 h since."""

    def test_uptime_and_coverage_weigh_time(self, influxd: InfluxServer, tmp_path: Path):
        now = int(time.time())
        newest = now - 30
        lines = []
        for k in range(144):  # 5-minute samples over the last 12 h
            down = 48 <= k < 72  # 2 h, from 4 h to 6 h ago
            fields = "result_code=1i,percent_packet_loss=100" if down else \
                "result_code=0i,percent_packet_loss=0"
            lines.append(f"ping,url=10.0.0.1 {fields} {newest - 300 * k}")
        for j in range(1500):  # one a minute before that
            lines.append(f"ping,url=10.0.0.1 result_code=0i,percent_packet_loss=0 "
                         f"{newest - 43200 - 60 * j}")
        influxd.write("mixed", lines)
        path = tmp_path / "fleet.yml"
        write_fleet_config(path, {
            "state": {"path": str(tmp_path / "state.db")},
            "ledger": {"backfill": "2d", "max_catchup": "3d"},
            "defaults": {"sample_interval": "5m"},
            "vessels": [{"id": "mixed", "influx": {"url": influxd.url, "database": "mixed"},
                         "devices": [{"address": "10.0.0.1", "component": "server",
                                      "name": "srv-1"}]}],
        })
        metrics, _ = run_once(path)
        # By samples this read (864 - 24) / 864 = 97.2 %; by time it is 22 h of 24.
        assert metrics.get("fleet_device_uptime_ratio", window="24h", **SERVER) == \
            pytest.approx(22 / 24, abs=1e-9)
        assert metrics.get("fleet_device_coverage_ratio", window="24h", **SERVER) == 1.0
        # A second run reads only the points after the frozen cursor and agrees.
        again, _ = run_once(path)
        assert again.get("fleet_device_uptime_ratio", window="24h", **SERVER) == \
            pytest.approx(22 / 24, abs=1e-4)
        assert again.get("fleet_vessel_response_bytes", vessel="mixed") < 1024


class TestFold:
    def test_a_sample_stands_for_the_time_since_the_one_before_capped(self):
        hours: dict[int, Hour] = {}
        carry = Carry()
        base = 1000 * HOUR
        fold([(base + 60, True), (base + 120, True), (base + 3000, False),
              (base + 3060, False)], carry, 300, hours)
        [hour] = hours.values()
        assert (hour.up, hour.down) == (300 + 60, 300 + 60)  # first and after the gap: cap
        assert hour.unobserved() == 3600 - 720
        assert hour.outages == 1 and carry.last == base + 3060

    def test_a_sample_already_folded_is_not_counted_again(self):
        hours: dict[int, Hour] = {}
        carry = Carry()
        fold([(7200 + 60, True)], carry, 60, hours)
        fold([(7200 + 60, True), (7200 + 120, True)], carry, 60, hours)
        assert hours[2].up == 120 and hours[2].up_samples == 2

    def test_maintenance_is_neither_up_nor_down(self):
        hours: dict[int, Hour] = {}
        fold([(t, False) for t in range(60, 3601, 60)], Carry(last=0), 60, hours,
             [(0.0, 1800.0)])
        assert hours[0].maintenance == 1800 and hours[0].down == 1740

    def test_window_uses_edge_counts_for_its_oldest_partial_hour(self):
        folded: dict[int, Hour] = {}
        fold([(t, True) for t in range(30, 3 * HOUR, 60)], Carry(last=-30), 60, folded)
        book = Book(frozen=Hours(folded))
        span = window(book, 1800.0, 3 * HOUR - 1, held_from=0, edge=EdgeCount(30, 30))
        assert span.up == 30 * 60 + 2 * 3600 and span.down == 0
        unheld = window(book, -HOUR, 3 * HOUR - 1, held_from=0)
        assert unheld.unheld == HOUR


class TestEdge:
    def test_a_device_missing_from_the_edge_counts_had_no_sample_there(self):
        config = parse_config({"ledger": {"backfill": "2d", "max_catchup": "3d"}, "vessels": [
            {"id": "v", "influx": {"url": "http://127.0.0.1:1", "database": "d"},
             "devices": [{"address": "10.0.0.1", "component": "server", "name": "s"}]}]})
        [vessel] = config.vessels
        ledger = Ledger(config.ledger, config.collection.windows)
        # The window starts 30 s before an hour ends, and no sample falls in those 30 s.
        now = 100 * HOUR + 86400 + 3570
        points = [(now - 30 - 60 * k, True) for k in range(1500)][::-1]
        ask = ledger.ask(vessel, now)
        taken = ledger.take(vessel, ask, {"10.0.0.1": points}, {}, now)
        span = taken.spans["10.0.0.1"]["24h"]
        assert span.up == 1440 * 60  # not 30 s more for a share of the edge hour


def one_device(**ledger: str):
    config = parse_config({"ledger": {"backfill": "2d", "max_catchup": "3d", **ledger},
                           "vessels": [
        {"id": "v", "influx": {"url": "http://127.0.0.1:1", "database": "d"},
         "devices": [{"address": "10.0.0.1", "component": "server", "name": "s"}]}]})
    [vessel] = config.vessels
    return Ledger(config.ledger, config.collection.windows), vessel


def server_count(points, after: float, before: float) -> EdgeCount:
    """What influxd counts: samples, and those with a reply, in (after, before)."""
    inside = [up for t, up in points if after < t < before]
    return EdgeCount(len(inside), sum(inside))


def flapping(start: int, end: int) -> list[tuple[int, bool]]:
    """A minute grid with a missed sample now and then, an outage, and a stretch at 5 min."""
    points = []
    t = start
    while t <= end:
        k = (t - start) // 60
        if k % 97 != 5:  # a gap
            points.append((t, not (k % 16 == 3 or 400 <= k < 430)))
        t += 300 if 2000 <= k < 2300 else 60
    return points


class TestProfile:
    def test_counts_as_the_server_does_over_any_part(self):
        points = flapping(1000 * HOUR + 17, 1002 * HOUR + 5)
        profile = Profile(since=0)
        profile.add(points[:50], 0)
        profile.add(points[40:], 0)  # those held already are skipped
        for after in range(1000 * HOUR - 100, 1002 * HOUR + 100, 37):
            for before in (after + 1, after + 61, after + 3600, 1003 * HOUR):
                assert profile.count(after, before) == server_count(points, after, before)

    def test_a_steady_grid_is_one_run(self):
        profile = Profile(since=0)
        profile.add([(t, True) for t in range(60, 25 * HOUR, 60)], 25 * HOUR)
        assert len(profile.runs) == 3
        assert profile.count(HOUR + 30, 2 * HOUR) == EdgeCount(59, 59)  # 3660 to 7140

    def test_forget_drops_old_runs_and_the_oldest_beyond_the_cap(self):
        points = [(60 * k, k % 2 == 0) for k in range(1, MAX_RUNS + 11)]  # a run each
        profile = Profile(since=0)
        profile.add(points, points[-1][0])
        profile.forget(0)
        assert len(profile.runs) == 3 * MAX_RUNS and profile.since == 60 * 10
        assert not profile.covers(0, HOUR) and profile.covers(600, 601 + 60)
        profile.forget(60 * 100)
        assert profile.since == 60 * 99
        assert profile.count(60 * 99, 10**9) == server_count(points, 60 * 99, 10**9)

    def test_truncate_forgets_what_a_rewind_reads_again(self):
        points = flapping(0, 3 * HOUR)
        profile = Profile(since=-1)
        profile.add(points, 3 * HOUR)
        profile.truncate(HOUR + 30)
        assert profile.through == HOUR + 30
        assert profile.count(-1, 10**9) == server_count(points, -1, HOUR + 31)
        profile.add(points, 3 * HOUR)
        assert profile.count(-1, 10**9) == server_count(points, -1, 10**9)

    def test_packs_for_the_state_db_and_refuses_anything_else(self):
        profile = Profile(since=5)
        profile.add(flapping(60, 2 * HOUR), 2 * HOUR)
        again = Profile.unpack(profile.pack())
        assert again is not None and again.pack() == profile.pack()
        for junk in (None, "x", [1], [1, 2, 3], [1, 2, 3, 4, 1], [1, 2, 3, 4, "5"],
                     [1, 2, 3, 4, True], [-1, 2, 3, 4, 5], [1, 2] + [3, 4, 5] * (MAX_RUNS + 1)):
            assert Profile.unpack(junk) is None, junk


class TestEdgeFromProfiles:
    """The 24 h window's oldest partial hour, counted by the exporter as influxd would."""

    def steady(self, ledger, vessel, points, now, step=60, cycles=90, profiles=True):
        """Cycles `step` apart, each with the points after the cursor and, when asked,
        what influxd would count for the edge; yields each ask and the 24 h span. Without
        `profiles` the ledger forgets them, so it always asks the server."""
        for _ in range(cycles):
            ask = ledger.ask(vessel, now)
            found = [p for p in points if ask.since < p[0] <= now]
            start = now - 86400
            edges = {"10.0.0.1": server_count(points, start, (int(start) // HOUR + 1) * HOUR)}
            taken = ledger.take(vessel, ask, {"10.0.0.1": found}, edges if ask.edges else {},
                                now)
            if not profiles:
                ledger.vessels["v"].books["10.0.0.1"].profile = Profile()
            yield ask, taken.spans["10.0.0.1"]["24h"]
            now += step

    def test_the_steady_state_asks_no_counts_and_matches_the_server(self):
        now = 1000 * HOUR + 1234
        points = flapping(now - 2 * 86400, now + 100 * 60)
        ledger, vessel = one_device()
        reference, _ = one_device()
        first = ledger.ask(vessel, now)
        assert first.edges  # this request folds the window's oldest hour: the server counts
        # 90 cycles a minute apart: the window's start crosses an hour, gaps and an outage.
        for (ask, span), (asked, expected) in zip(
                self.steady(ledger, vessel, points, now),
                self.steady(reference, vessel, points, now, profiles=False), strict=True):
            assert asked.edges
            if ask.since > first.since:
                assert not ask.edges
            assert span == expected

    def test_after_a_restart_the_saved_profile_or_the_server_counts(self):
        now = 1000 * HOUR + 1234
        points = flapping(now - 2 * 86400, now + 100 * 60)
        ledger, vessel = one_device()
        reference, _ = one_device()
        list(self.steady(ledger, vessel, points, now, cycles=3))
        list(self.steady(reference, vessel, points, now, cycles=3, profiles=False))
        later = now + 3 * 60
        [(_, expected)] = list(self.steady(reference, vessel, points, later, cycles=1,
                                           profiles=False))
        books = ledger.vessels["v"]
        book = books.books["10.0.0.1"]
        saved = Profile.unpack(book.profile.pack())
        assert saved is not None
        # None saved, or one that does not end at the restored cursor: the server counts.
        stale = Profile(since=saved.since, through=saved.through - 60, runs=saved.runs)
        for profiles, edges in (({}, True), ({"10.0.0.1": stale}, True),
                                ({"10.0.0.1": saved}, False)):
            restored, _ = one_device()
            restored.restore("v", books.frozen_until, books.held_from,
                             {"10.0.0.1": book.carry.copy()},
                             {"10.0.0.1": Hours(dict(book.frozen))})
            observation = VesselObservation({"10.0.0.1": DeviceObservation(spans={})})
            restored.remember("v", observation, later, profiles)
            assert restored.ask(vessel, later).edges is edges
            [(ask, span)] = list(self.steady(restored, vessel, points, later, cycles=1))
            assert not ask.newest and span == expected

    def test_points_stamped_ahead_of_the_clock_are_not_folded(self):
        now = 1000 * HOUR + 1234
        points = [(t, True) for t in range(now - 86400 - 1800, now + 7200, 60)]
        spans = []
        for found in (points, [p for p in points if p[0] <= now]):
            ledger, vessel = one_device()
            ask = ledger.ask(vessel, now)
            taken = ledger.take(vessel, ask, {"10.0.0.1": found},
                                {"10.0.0.1": EdgeCount(39, 39)}, now)
            spans.append(taken.spans["10.0.0.1"]["24h"])
            assert ledger.vessels["v"].books["10.0.0.1"].carry.last <= now
        assert spans[0] == spans[1] and spans[0].up == 86400


class TestNewest:
    def test_the_newer_of_what_was_known_and_the_points_within_the_lookback(self):
        ledger, vessel = one_device()
        now = 1000 * HOUR

        def seen(sample=None, loss=None, reply=None):
            return VesselObservation({"10.0.0.1": DeviceObservation(
                spans={}, last_sample=sample, last_loss=loss, last_rtt=None,
                last_reply=reply)})

        ask = ledger.ask(vessel, now)
        assert ask.newest
        ledger.take(vessel, ask, {}, {}, now)
        got = ledger.newest(vessel, ask, seen(now - 60, 1.0, now - 7200), now, 30 * 86400)
        assert got.devices["10.0.0.1"].last_reply == now - 7200
        ask = ledger.ask(vessel, now + 60)
        assert not ask.newest
        ledger.take(vessel, ask, {}, {}, now + 60)
        # The points after the cursor are all down: the reply stays as it was known.
        got = ledger.newest(vessel, ask, seen(now, 1.0), now + 60, 30 * 86400)
        device = got.devices["10.0.0.1"]
        assert (device.last_sample, device.last_loss, device.last_reply) == \
            (now, 1.0, now - 7200)
        # Older than the lookback: the statement would not see it.
        got = ledger.newest(vessel, ask, seen(), now + 60, 7200 + 60)
        assert got.devices["10.0.0.1"].last_reply is None
        assert got.devices["10.0.0.1"].last_sample == now


class TestEstimates:
    """Hours re-split by a window declared after their points are gone."""

    def test_an_added_window_takes_down_time_first_then_up(self):
        hour = Hour(up=1200, down=1800, up_samples=20, down_samples=30)
        assert estimate(hour, 2400) == Hour(up=600, down=0, maintenance=2400, up_samples=20,
                                            down_samples=30, estimated=True)

    def test_unobserved_time_stays_unobserved(self):
        hour = Hour(up=600, up_samples=10)
        assert estimate(hour, 3600) == Hour(maintenance=600, up_samples=10, estimated=True)

    def test_a_removed_window_gives_time_back_as_the_samples_were(self):
        hour = Hour(up=0, down=0, maintenance=3600, up_samples=15, down_samples=45)
        assert estimate(hour, -3600) == Hour(up=900, down=2700, up_samples=15,
                                             down_samples=45, estimated=True)

    def test_no_change_is_the_hour_itself(self):
        hour = Hour(up=3600, up_samples=60)
        assert estimate(hour, 0) is hour
        assert estimate(hour, -600) is hour  # no maintenance to give back


class TestPackedHours:
    """A book's hours as it keeps them: a packed section per UTC day."""

    def test_a_damaged_mask_holds_no_phantom_hours(self):
        section = bytearray(packed_hour.pack({5: Hour(up=3600, up_samples=60)}, 0))
        packed_hour.MASKS.pack_into(section, 0, 1 << 5 | 1 << 27, 1 << 29)
        hours = Hours.from_days({10: bytes(section)})
        assert list(hours) == [245] and len(hours) == 1 and hours.first() == 245
        assert hours[245] == Hour(up=3600, up_samples=60)
        assert packed_hour.MASKS.unpack_from(hours.days[10]) == (1 << 5, 0)
        only_beyond = bytearray(packed_hour.EMPTY)
        packed_hour.MASKS.pack_into(only_beyond, 0, 1 << 30, 0)
        empty = Hours.from_days({10: bytes(only_beyond)})
        assert not empty and len(empty) == 0 and empty.first() is None and not empty.days

    def test_stored_hours_go_under_those_held(self):
        mine = Hours({49: Hour(up=7, up_samples=1)})
        assert mine.totals(48, 80)[0] == 7  # totals made, to be made again after
        stored = Hours({49: Hour(up=3600, up_samples=60), 50: Hour(maintenance=3600,
                        estimated=True), 75: Hour(down=60, down_samples=1)})
        mine.merge_under(stored)
        assert dict(mine) == {49: Hour(up=7, up_samples=1), 50: Hour(maintenance=3600,
                              estimated=True), 75: Hour(down=60, down_samples=1)}
        assert len(mine) == 3 and mine.totals(48, 80)[:3] == (7, 60, 3600)

    def test_an_hour_that_cannot_be_packed_changes_nothing(self):
        hours = Hours({49: Hour(up=1, up_samples=1)})
        for key in (50, 100):  # a day held, and a new one
            with pytest.raises(struct.error):
                hours[key] = Hour(up=1.5)  # type: ignore[arg-type]
        assert dict(hours) == {49: Hour(up=1, up_samples=1)} and len(hours) == 1
        assert list(hours.days) == [2] and hours.first() == 49


class TestStoredDays:
    def test_a_packed_day_keeps_every_figure_and_the_flag(self):
        hours = {3: Hour(up=10, down=20, maintenance=30, up_samples=1, down_samples=2,
                         outages=1, longest=20, estimated=True),
                 23: Hour(up=3600, up_samples=60)}
        section = packed_hour.pack(hours, 0)
        assert len(section) == packed_hour.SECTION
        assert packed_hour.unpack(section, 0) == hours
        assert packed_hour.unpack(packed_hour.pack(hours, 0), 0) == hours
        moved = {k + 24 * 5: h for k, h in hours.items()}
        assert packed_hour.unpack(packed_hour.pack(moved, 5), 5) == moved

    def test_figures_out_of_range_are_clamped_not_an_error(self):
        hours = {0: Hour(up=70000, longest=1 << 40)}
        [back] = packed_hour.unpack(packed_hour.pack(hours, 0), 0).values()
        assert (back.up, back.longest) == (0xFFFF, 0xFFFFFFFF)

    def test_days_of_the_previous_versions_are_still_read(self):
        day: list[Hour | None] = [None] * 24
        day[3] = Hour(up=10, down=20, maintenance=30, up_samples=1, down_samples=2,
                      outages=1, longest=20, estimated=True)
        assert ledger_db.unpack_day(old_pack_day(day)) == day
        old = struct.Struct("<HHHHHBI")
        blob = b"".join(b"\xff" * old.size if i != 3 else old.pack(10, 20, 30, 1, 2, 1, 20)
                        for i in range(24))
        day[3] = Hour(up=10, down=20, maintenance=30, up_samples=1, down_samples=2,
                      outages=1, longest=20)
        assert ledger_db.unpack_day(blob) == day
        with pytest.raises(ValueError):
            ledger_db.unpack_day(blob[:-1])

    def test_a_days_sum_is_the_sum_of_its_hours(self):
        hours = {0: Hour(up=3000, down=600, up_samples=50, down_samples=10, outages=1,
                         longest=600),
                 1: Hour(up=3700, up_samples=61),  # an interval change gave it more
                 5: Hour(maintenance=1200, up=1200, up_samples=20, estimated=True)}
        total = ledger_db.sum_section(packed_hour.pack(hours, 0))
        assert total == ledger_db.DaySum(
            up=7900, down=600, maintenance=1200, unobserved=0 + 0 + 1200 + 21 * 3600,
            up_samples=131, down_samples=10, outages=1, longest=600, held=3, estimated=1)
        # Up to 01:30: hour 1 counts half an hour, later ones nothing.
        spans = [3600, 1800] + [0] * 22
        part = ledger_db.sum_section(packed_hour.pack(hours, 0), spans)
        assert part.unobserved == 0


def old_pack_day(hours: list[Hour | None]) -> bytes:
    """A device-day as the previous version stored it (16 bytes an hour, 0xff: none)."""
    form = struct.Struct("<HHHHHBIB")
    return b"".join(b"\xff" * form.size if h is None else form.pack(
        h.up, h.down, h.maintenance, h.up_samples, h.down_samples, h.outages, h.longest,
        1 if h.estimated else 0) for h in hours)
