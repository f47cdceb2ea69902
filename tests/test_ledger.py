"""The SLA ledger: time-weighted windows against a real InfluxDB 1.6, and its arithmetic."""

import struct
import time
from pathlib import Path

import pytest

from exporter import ledger_db
from exporter.config import parse_config
from exporter.sla.hours import HOUR, Book, Carry, EdgeCount, Hour, estimate, fold, window
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
        book = Book()
        fold([(t, True) for t in range(30, 3 * HOUR, 60)], Carry(last=-30), 60, book.frozen)
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


class TestStoredDays:
    def test_a_packed_day_keeps_every_figure_and_the_flag(self):
        hours = {3: Hour(up=10, down=20, maintenance=30, up_samples=1, down_samples=2,
                         outages=1, longest=20, estimated=True),
                 23: Hour(up=3600, up_samples=60)}
        section = ledger_db.pack_section(hours, 0)
        assert len(section) == ledger_db.SECTION
        assert ledger_db.unpack_section(section, 0) == hours
        assert ledger_db.unpack_section(ledger_db.pack_section(hours, 0), 0) == hours
        moved = {k + 24 * 5: h for k, h in hours.items()}
        assert ledger_db.unpack_section(ledger_db.pack_section(moved, 5), 5) == moved

    def test_figures_out_of_range_are_clamped_not_an_error(self):
        hours = {0: Hour(up=70000, longest=1 << 40)}
        [back] = ledger_db.unpack_section(ledger_db.pack_section(hours, 0), 0).values()
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
        total = ledger_db.sum_section(ledger_db.pack_section(hours, 0))
        assert total == ledger_db.DaySum(
            up=7900, down=600, maintenance=1200, unobserved=0 + 0 + 1200 + 21 * 3600,
            up_samples=131, down_samples=10, outages=1, longest=600, held=3, estimated=1)
        # Up to 01:30: hour 1 counts half an hour, later ones nothing.
        spans = [3600, 1800] + [0] * 22
        part = ledger_db.sum_section(ledger_db.pack_section(hours, 0), spans)
        assert part.unobserved == 0


def old_pack_day(hours: list[Hour | None]) -> bytes:
    """A device-day as the previous version stored it (16 bytes an hour, 0xff: none)."""
    form = struct.Struct("<HHHHHBIB")
    return b"".join(b"\xff" * form.size if h is None else form.pack(
        h.up, h.down, h.maintenance, h.up_samples, h.down_samples, h.outages, h.longest,
        1 if h.estimated else 0) for h in hours)
