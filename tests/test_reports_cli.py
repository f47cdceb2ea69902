"""`fleet-exporter report`: bad input exits 2 naming the field and writes nothing; a
vessel without a ledger is reported as incomplete, not as up or down."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.reports.source import Tally, bucket
from exporter.runlog import RunLog
from exporter.sla.hour import HOUR, Hour
from simulator.fleetconfig import write_fleet_config

DEVICES = [{"address": "10.0.0.1", "component": "server", "name": "srv-1"}]


async def _create(path: Path) -> None:
    log = await RunLog.open(path)
    await log.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    state = tmp_path / "exporter.db"
    asyncio.run(_create(state))
    path = tmp_path / "fleet.yml"
    write_fleet_config(path, {
        "state": {"path": str(state)},
        "reports": {"timezone": "Europe/Oslo"},
        "vessels": [{"id": "caledonia", "name": "MV Caledonia",
                     "influx": {"url": "http://127.0.0.1:1", "database": "x"},
                     "devices": DEVICES}],
    })
    return path


@pytest.mark.parametrize(("args", "field"), [
    (["--vessel", "atlantis"], "vessel"),
    (["--period", "2999-01"], "period"),
    (["--timezone", "Europe/Atlantis"], "timezone"),
    (["--period", None, "--from", "2026-11-02T00:00Z", "--to", "2026-11-01T00:00Z"], "to"),
    (["--format", None, "--output", "{out}/report.doc"], "format"),
])
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str | None], field: str):
    out = tmp_path / "out"
    out.mkdir()
    base: dict[str, str | None] = {"--period": "2026-10", "--format": "csv",
                                   "--output": str(out / "report.csv")}
    extra: list[str] = []
    for name, value in zip(args[::2], args[1::2], strict=True):
        assert name is not None
        if name in base:
            base[name] = value.format(out=out) if value is not None else None
        else:
            assert value is not None
            extra += [name, value]
    argv = ["report", "--config", str(config), *extra]
    for name, value in base.items():
        if value is not None:
            argv += [name, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"fleet-exporter report: {field}: " in err
    assert list(out.iterdir()) == []


def test_a_bad_report_timezone_in_the_config_is_a_config_error(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "fleet.yml"
    write_fleet_config(path, {"reports": {"timezone": "Nowhere/Else"}, "vessels": [
        {"id": "a", "influx": {"url": "http://127.0.0.1:1", "database": "x"},
         "devices": DEVICES}]})
    assert main(["report", "--config", str(path)]) == 2
    assert "reports.timezone" in capsys.readouterr().err


def test_a_missing_state_db_exits_1(config: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]):
    (tmp_path / "exporter.db").unlink()
    assert main(["report", "--config", str(config), "--period", "2026-10",
                 "--format", "json"]) == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "exporter.db").exists()  # read-only: not created


def test_a_vessel_without_a_ledger_is_incomplete_and_unknown(config: Path, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "report", "--config", str(config), "--period",
         "2026-10", "--format", "json"], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["header"]["period"]["timezone"] == "Europe/Oslo"
    assert doc["header"]["start_text"] == "2026-10-01T00:00+02:00"
    assert doc["header"]["end_text"] == "2026-11-01T00:00+01:00"
    (gap,) = doc["header"]["gaps"]
    assert gap["reason"] == "starts_later"
    assert "no ledger yet" in gap["text"]
    (component,) = doc["vessels"][0]["components"]
    assert component["figures"]["uptime"] is None
    assert component["figures"]["unheld"] == 31 * 86400 + 3600  # October has 25 h once
    assert doc["summary"]["current"] == {"label": "2026-10", "met": 0, "with_data": 0,
                                         "components": 1, "uptime": None}


class TestBuckets:
    """The ledger's hours summed between cuts, as the source serves them."""

    def test_a_cut_inside_an_hour_weighs_it_by_share(self):
        # Kolkata's midnight is 18:30 UTC: the hour 18:00 is split half and half.
        hours = {0: Hour(up=3000, down=600, up_samples=50, down_samples=10, outages=1,
                         longest=600)}
        before, after = bucket(hours, [-1800.0, 1800.0, 5400.0], held_from=-7200)
        assert (before.up, before.down) == (1500.0, 300.0)
        assert (after.up, after.down) == (1500.0, 300.0)
        # An outage is counted once, in the part holding the hour's middle.
        assert before.outages + after.outages == 1

    def test_an_hour_cut_in_half_by_the_periods_edge_is_counted_in_one_period_only(self):
        """Asia/Kolkata's midnight is 18:30 UTC: a month ends and the next starts in the
        middle of an hour. Its outage belongs to exactly one of them, the same one
        whether that month is the report's or the period before the next report."""
        edge = 20_000 * 86400 + 18 * HOUR + 1800
        hour = Hour(up=1800, down=1800, up_samples=30, down_samples=30, outages=1,
                    longest=1800)
        hours = {edge - 1800: hour}
        (ending,) = bucket(hours, [edge - 30 * 86400, edge], held_from=0)
        before, starting = bucket(hours, [edge - 30 * 86400, edge, edge + 30 * 86400],
                                  held_from=0)
        (alone,) = bucket(hours, [edge, edge + 30 * 86400], held_from=0)
        assert ending.outages == before.outages
        assert starting.outages == alone.outages
        assert ending.outages + alone.outages == 1

    def test_time_without_hours_is_unobserved_or_before_the_ledger(self):
        (t,) = bucket({HOUR: Hour(up=3600)}, [0.0, 4 * HOUR], held_from=HOUR)
        assert t == Tally(up=3600, unobserved=2 * HOUR, unheld=HOUR)

    def test_an_interval_change_does_not_show_as_unobserved(self):
        hours = {0: Hour(up=3360), HOUR: Hour(up=3840)}
        (t,) = bucket(hours, [0.0, 2.0 * HOUR], held_from=0)
        assert (t.up, t.unobserved) == (7200.0, 0.0)


class TestStoredDays:
    """Days wholly inside a bucket are summed from their packed form: the same figures as
    hour by hour, whatever the day holds."""

    async def test_packed_sums_match_the_hours(self, tmp_path: Path):
        import aiosqlite

        from exporter import ledger_db
        from exporter.reports.source import tallies
        from tests.test_ledger import old_pack_day

        day0 = 20_000
        plain = [Hour(up=3600, up_samples=60) for _ in range(24)]
        rough = list(plain)
        rough[3] = Hour(up=3000, down=600, up_samples=50, down_samples=10, outages=2,
                        longest=900)
        rough[7] = Hour(up=1800, maintenance=1800, up_samples=60, estimated=True)
        holed: list[Hour | None] = list(plain)
        holed[5] = None
        days = {day0: plain, day0 + 1: rough, day0 + 2: holed}
        async with aiosqlite.connect(tmp_path / "s.db") as db:
            await ledger_db.create(db)
            await db.executemany("INSERT INTO ledger_days VALUES ('v', 'a', ?, ?)",
                                 [(d, old_pack_day(h)) for d, h in days.items()])
            for cuts in ([day0 * 86400.0, (day0 + 2) * 86400.0],  # packed sums only
                         [day0 * 86400.0, (day0 + 3) * 86400.0],  # a missing hour
                         [day0 * 86400.0 + 5400, (day0 + 2) * 86400.0 + 1800],  # edges
                         # a cut inside an hour of a day: that hour is split by share
                         [day0 * 86400.0, (day0 + 1) * 86400.0 + 3.5 * HOUR,
                          (day0 + 1) * 86400.0 + 7 * HOUR, (day0 + 3) * 86400.0],
                         # cuts on whole hours inside days: the days are summed in parts
                         [day0 * 86400.0 + 7200, (day0 + 1) * 86400.0 + 12 * HOUR,
                          (day0 + 2) * 86400.0 + 5 * HOUR]):
                got = await tallies(db, None, "v", ["a"], cuts, held_from=0)
                hours = {(d * 24 + i) * HOUR: h for d, hs in days.items()
                         for i, h in enumerate(hs) if h is not None}
                assert got["a"] == bucket(hours, cuts, held_from=0)
                assert max(t.longest for t in got["a"]) == 900
                assert any(t.estimated for t in got["a"])
