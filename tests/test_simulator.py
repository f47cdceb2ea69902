"""The fleet simulator through its public API, against a real influxd."""

import asyncio
import itertools
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.cli import main
from simulator.fleetconfig import fleet_config, write_fleet_config
from simulator.influx import SeedError, seed
from simulator.scenarios import (
    EXPECTATIONS,
    INTERVAL_CHANGE_AGE,
    LINK_CUT,
    SCENARIOS,
    SLOW_EVERY,
    Vessel,
    link_up,
    live_samples,
    plan_fleet,
    samples,
)
from tests.servers import InfluxServer, free_port

ROOT = Path(__file__).parent.parent
DAY = 86400
DEMO_VESSELS = 66  # deploy/demo.py's default and deploy/demo/fleet.yml
MARGIN = 0.005  # how far from its objective a scenario's 24 h uptime must stay
COUNT = "SELECT count(result_code) FROM ping WHERE"
UP = "percent_packet_loss < 100"
COUNT_UP = f"SELECT count(percent_packet_loss) FROM ping WHERE {UP} AND"


def influx_query(url: str, database: str, q: str, auth: tuple[str, str] | None = None) -> Any:
    params = {"db": database, "q": q, "epoch": "s"}
    if auth:
        params.update(u=auth[0], p=auth[1])
    with urllib.request.urlopen(f"{url}/query?{urllib.parse.urlencode(params)}", timeout=10) as r:
        result = json.load(r)["results"][0]
    assert "error" not in result, result
    return result.get("series", [])


def scalar(url: str, database: str, q: str) -> Any:
    series = influx_query(url, database, q)
    return series[0]["values"][0][1] if series else None


def databases(url: str) -> set[str]:
    series = influx_query(url, "", "SHOW DATABASES")
    return {row[0] for row in series[0].get("values", [])}


class Fleet:
    def __init__(self, url: str, now: int, points: int) -> None:
        self.url, self.now, self.points = url, now, points
        self.vessels = {v.scenario: v for v in plan_fleet(len(SCENARIOS), id_prefix="sim")}

    def db(self, scenario: str) -> str:
        return self.vessels[scenario].id

    def address(self, scenario: str, device: str) -> str:
        return next(d.address for d in self.vessels[scenario].devices if d.name == device)

    def window(self, seconds: int) -> str:
        return f"time > {self.now - seconds}s AND time <= {self.now}s"


@pytest.fixture(scope="module")
def fleet(influxd: InfluxServer) -> Fleet:
    now = int(time.time())
    vessels = plan_fleet(len(SCENARIOS), id_prefix="sim")
    points = asyncio.run(seed(influxd.url, vessels, now, days=5))
    return Fleet(influxd.url, now, points)


class TestPlan:
    def test_round_robin_over_all_scenarios(self) -> None:
        vessels = plan_fleet(len(SCENARIOS) + 2)
        assert [v.id for v in vessels[:3]] == ["v000", "v001", "v002"]
        assert [v.scenario for v in vessels] == [*SCENARIOS, *SCENARIOS[:2]]
        assert vessels[0].name == "MV Aurora 0"
        assert [(d.name, d.address, d.component) for d in vessels[3].devices] == [
            ("ap-1", "10.3.1.5", "access_point"),
            ("ap-2", "10.3.1.6", "access_point"),
            ("dash-1", "10.3.2.10", "dashboard"),
            ("srv-1", "10.3.3.20", "server"),
        ]

    def test_many_devices_are_unique_and_cycle_components(self) -> None:
        devices = plan_fleet(1, ["healthy"], devices_per_vessel=20)[0].devices
        assert len({d.name for d in devices}) == len({d.address for d in devices}) == 20
        assert [d.component for d in devices[4:7]] == ["access_point", "dashboard", "server"]

    def test_rejects_unknown_scenario(self) -> None:
        with pytest.raises(ValueError, match="unknown scenario"):
            plan_fleet(2, ["healthy", "sinking"])

    def test_samples_are_reproducible_and_typed(self) -> None:
        vessel = plan_fleet(2)[1]
        first = list(samples(vessel, now=1_700_000_000, days=1))
        assert first == list(samples(vessel, now=1_700_000_000, days=1))
        assert first != list(samples(vessel, now=1_700_000_000, days=1, seed=1))
        assert len(first) == 4 * 1440
        assert first[-1].endswith(" 1699999970")
        assert "result_code=0i" in first[0] and "ttl=64i" in first[0]


def cap(vessel: Vessel) -> int:
    """The vessel's sample_interval in the generated config, in seconds."""
    [entry] = fleet_config([vessel], "http://a", "http://b")["vessels"]
    return int(entry.get("sample_interval", "60s").removesuffix("s"))


def weighed_24h(vessel: Vessel, by_time: bool = True) -> dict[str, tuple[float, float]]:
    """Each component's (up, observed) over the 24 h before the anchor, from the
    simulator's own line protocol: in seconds as the exporter's ledger counts them (a
    sample stands for the time since the one before, at most the vessel's cap), or in
    samples when not `by_time`."""
    component = {d.address: d.component for d in vessel.devices}
    counts = {c: [0.0, 0.0] for c in component.values()}
    limit = cap(vessel)
    before: dict[str, int] = {}
    for line in samples(vessel, now=1_700_000_000, days=2):
        tags, fields, stamp = line.split(" ")
        address = dict(t.split("=", 1) for t in tags.split(",")[1:])["url"]
        t = int(stamp)
        held = min(t - before.get(address, t - limit), limit) if by_time else 1
        before[address] = t
        if t <= 1_700_000_000 - DAY:
            continue
        values = dict(f.split("=", 1) for f in fields.split(","))
        loss = values.get("percent_packet_loss")
        counts[component[address]][1] += held
        counts[component[address]][0] += held * (loss is not None and float(loss) < 100)
    return {c: (up, seen) for c, (up, seen) in counts.items() if seen}


def uptime_24h(vessel: Vessel, by_time: bool = True) -> dict[str, float]:
    """Each component's 24 h uptime, time-weighted as the exporter computes it."""
    return {c: up / seen for c, (up, seen) in weighed_24h(vessel, by_time).items()}


def objectives() -> dict[str, float]:
    sla = fleet_config([], "http://a", "http://b")["sla"]
    return {c: sla["components"].get(c, sla["objective"])
            for c in ("access_point", "dashboard", "server")}


def uptime_cell(scenario: str) -> str:
    """The README table's 24 h uptime column for `scenario`."""
    if EXPECTATIONS[scenario].in_maintenance:
        return "in maintenance: not counted"
    uptime = uptime_24h(plan_fleet(1, [scenario])[0])
    if not uptime:
        return "no samples"
    below = [f"{c} {100 * u:.1f} %" + (f" (below {100 * objectives()[c]:g} %)"
                                       if u < objectives()[c] else "")
             for c, u in sorted(uptime.items()) if u < 1]
    return ", ".join(below) or "100 %"


def readme_scenarios() -> dict[str, list[str]]:
    """The scenario table of README.md's demo section, by scenario."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The demo", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert header[0] == "scenario", header
    return {row[0].strip("`"): row[1:] for row in rows if not set(row[0]) <= {"-"}}


class TestScenarios:
    """Each scenario's 24 h uptime, computed from what the simulator writes, sits clearly
    on the side of its objective that EXPECTATIONS and the README say."""

    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_uptime_is_clearly_on_its_side_of_the_objective(self, scenario: str) -> None:
        expected = EXPECTATIONS[scenario]
        uptime = uptime_24h(plan_fleet(1, [scenario])[0])
        if expected.in_maintenance:  # neither up nor down: no objective to be near
            assert not expected.below_objective and not expected.alerts
            assert uptime["server"] == 0  # what would alert without the window
            return
        for component, ratio in uptime.items():
            objective = objectives()[component]
            if component in expected.below_objective:
                assert ratio <= objective - MARGIN, (component, ratio)
                assert f"FleetComponentSLABreach ({component})" in expected.alerts
            else:
                assert ratio >= objective + MARGIN, (component, ratio)
                assert f"FleetComponentSLABreach ({component})" not in expected.alerts
                # FleetComponentSLAAtRisk fires while a component is down with under a
                # quarter of its budget left: a flapping device must not get there.
                assert 1 - ratio < 0.75 * (1 - objective), (component, ratio)
        assert set(expected.below_objective) <= set(uptime)

    def test_interval_change_breaches_by_time_though_not_by_samples(self) -> None:
        vessel = plan_fleet(1, ["interval_change"])[0]
        assert cap(vessel) == SLOW_EVERY * 60  # one 5 min sample stands for 5 min
        by_time = weighed_24h(vessel)
        assert by_time["dashboard"] == (22 * 3600, DAY)  # coverage 1.0, 22 h of 24 up
        assert by_time["access_point"] == (2 * DAY, 2 * DAY)  # two devices
        assert by_time["server"] == (DAY, DAY)
        # Counted sample by sample, the 24 down samples of 1008 would hide the breach.
        by_samples = uptime_24h(vessel, by_time=False)["dashboard"]
        assert by_samples == pytest.approx(1 - 24 / 1008)
        assert round(100 * by_samples, 1) == 97.6 > 100 * objectives()["dashboard"]

    def test_interval_change_spans_the_24h_window(self) -> None:
        lines = list(samples(plan_fleet(1, ["interval_change"])[0], now=1_700_000_000, days=1))
        stamps = sorted({int(line.rsplit(" ", 1)[1]) for line in lines})
        steps = {b - a for a, b in itertools.pairwise(stamps)}
        assert steps == {60, 300}
        assert 0 < INTERVAL_CHANGE_AGE < DAY
        assert len(lines) == 4 * (DAY - INTERVAL_CHANGE_AGE) // 60 + \
            4 * INTERVAL_CHANGE_AGE // 300

    def test_interval_change_goes_on_every_5_min_when_live(self) -> None:
        vessel = plan_fleet(1, ["interval_change"])[0]
        written = [tick for tick in range(1, 11) if live_samples(vessel, 1_700_000_000, tick)]
        assert written == [5, 10]
        assert len(live_samples(vessel, 1_700_000_000, 5)) == 4

    def test_the_link_is_cut_across_a_utc_midnight(self) -> None:
        midnight = 1_700_006_400  # 2023-11-15T00:00:00Z
        start, end = LINK_CUT
        assert start < 0 < end  # before and after midnight
        vessel = plan_fleet(1, ["unreachable_midnight"])[0]
        assert link_up(vessel, midnight + start - 1)
        assert not link_up(vessel, midnight + start)
        assert not link_up(vessel, midnight)
        assert not link_up(vessel, midnight + end - 1)
        assert link_up(vessel, midnight + end)
        assert not link_up(plan_fleet(8)[7], midnight + 12 * 3600)  # unreachable: never
        assert link_up(plan_fleet(1)[0], midnight)
        # Its InfluxDB holds what Telegraf aboard wrote: every device replies all along.
        assert uptime_24h(vessel) == dict.fromkeys(("access_point", "dashboard", "server"),
                                                   1.0)

    def test_flapping_is_amber_on_the_overview(self) -> None:
        # Meets the objective but has used over half of its budget: the overview's amber.
        ratio = uptime_24h(plan_fleet(1, ["flapping"])[0])["access_point"]
        objective = objectives()["access_point"]
        assert objective < ratio < (1 + objective) / 2

    def test_readme_table_says_what_each_scenario_does(self) -> None:
        demo = plan_fleet(DEMO_VESSELS)
        shipped = yaml.safe_load((ROOT / "deploy/demo/fleet.yml").read_text(encoding="utf-8"))
        assert len(shipped["vessels"]) == DEMO_VESSELS
        expected = {}
        for scenario, what in EXPECTATIONS.items():
            ids = [v.id for v in demo if v.scenario == scenario]
            expected[scenario] = [f"{ids[0]}, {ids[1]}, … {ids[-1]}", what.writes,
                                  uptime_cell(scenario), ", ".join(what.alerts) or "none"]
        assert readme_scenarios() == expected
        assert set(EXPECTATIONS) == set(SCENARIOS)


class TestSeed:
    def test_flapping_device_is_down_one_sample_in_sixteen(self, fleet: Fleet) -> None:
        where = f"url = '{fleet.address('flapping', 'ap-2')}' AND {fleet.window(DAY)}"
        db = fleet.db("flapping")
        assert scalar(fleet.url, db, f"{COUNT} {where}") == 1440
        assert scalar(fleet.url, db, f"{COUNT_UP} {where}") == 1440 - 90

    def test_relative_window_sees_exactly_one_day(self, fleet: Fleet) -> None:
        url = fleet.address("healthy", "ap-1")
        q = f"SELECT count(result_code) FROM ping WHERE url = '{url}' AND time > now() - 24h"
        assert scalar(fleet.url, fleet.db("healthy"), q) == 1440

    def test_ping_error_point_has_only_result_code(self, fleet: Fleet) -> None:
        series = influx_query(
            fleet.url, fleet.db("flapping"), "SELECT * FROM ping WHERE result_code = 2 LIMIT 1"
        )
        # SELECT * returns tags as columns too; "host" is the vessel id.
        row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
        assert row.pop("host") == fleet.db("flapping")
        fields = {k: v for k, v in row.items() if v is not None and k not in {"time", "url"}}
        assert fields == {"result_code": 2}

    def test_lost_packets_with_result_code_zero(self, fleet: Fleet) -> None:
        q = f"{COUNT} result_code = 0 AND percent_packet_loss = 100"
        assert scalar(fleet.url, fleet.db("breach"), q) > 0

    def test_interval_change_samples_every_5_min_for_its_last_hours(self, fleet: Fleet) -> None:
        db = fleet.db("interval_change")
        where = f"url = '{fleet.address('interval_change', 'dash-1')}' AND {fleet.window(DAY)}"
        slow = INTERVAL_CHANGE_AGE // 300
        assert scalar(fleet.url, db, f"{COUNT} {where}") == (DAY - INTERVAL_CHANGE_AGE) // 60 + slow
        assert scalar(fleet.url, db, f"{COUNT_UP} {where}") == \
            (DAY - INTERVAL_CHANGE_AGE) // 60 + slow - 24

    def test_breach_device_uptime(self, fleet: Fleet) -> None:
        where = f"url = '{fleet.address('breach', 'dash-1')}' AND {fleet.window(DAY)}"
        assert scalar(fleet.url, fleet.db("breach"), f"{COUNT_UP} {where}") == 1320

    def test_down_4d_last_reply(self, fleet: Fleet) -> None:
        url = fleet.address("down_4d", "srv-1")
        q = f"SELECT last(percent_packet_loss) FROM ping WHERE url = '{url}' AND {UP}"
        series = influx_query(fleet.url, fleet.db("down_4d"), q)
        assert series[0]["values"][0][0] == fleet.now - 4 * DAY - 30

    def test_gap_coverage(self, fleet: Fleet) -> None:
        where = f"url = '{fleet.address('gap', 'ap-1')}' AND {fleet.window(DAY)}"
        assert scalar(fleet.url, fleet.db("gap"), f"{COUNT} {where}") == 1080

    def test_stale_has_nothing_recent(self, fleet: Fleet) -> None:
        series = influx_query(fleet.url, fleet.db("stale"), "SELECT last(result_code) FROM ping")
        assert series[0]["values"][0][0] == fleet.now - 3 * 3600 - 30

    def test_empty_and_missing_databases(self, fleet: Fleet) -> None:
        names = databases(fleet.url)
        assert fleet.db("no_data") in names
        assert fleet.db("unreachable") not in names
        assert influx_query(fleet.url, fleet.db("no_data"), "SELECT * FROM ping") == []

    def test_reseeding_replaces_data(self, influxd: InfluxServer) -> None:
        vessel = plan_fleet(1, ["healthy"], id_prefix="reseed")
        for now in (1_700_000_000, 1_700_000_600):
            assert asyncio.run(seed(influxd.url, vessel, now, days=0.5)) == 4 * 720
        assert scalar(influxd.url, "reseed000", "SELECT count(result_code) FROM ping") == 4 * 720

    def test_unreachable_influx_raises(self) -> None:
        with pytest.raises(SeedError, match="cannot talk to InfluxDB"):
            asyncio.run(seed(f"http://127.0.0.1:{free_port()}", plan_fleet(1), 1_700_000_000))

    def test_auth(self, influxd_auth: InfluxServer) -> None:
        vessels = plan_fleet(1, ["healthy"], id_prefix="auth")
        with pytest.raises(SeedError, match="401"):
            asyncio.run(seed(influxd_auth.url, vessels, 1_700_000_000, days=0.1))
        user, password = influxd_auth.username, influxd_auth.password
        written = asyncio.run(
            seed(influxd_auth.url, vessels, 1_700_000_000, 0.1, username=user, password=password)
        )
        assert written == 4 * 144


class TestConfig:
    def test_overrides(self, tmp_path: Path) -> None:
        vessels = plan_fleet(8)
        config = fleet_config(
            vessels, "http://a", "http://b", timeout="2s", attempts=1, state_path="x.db"
        )
        assert config["collection"]["timeout"] == "2s"
        assert config["collection"]["attempts"] == 1
        assert config["state"] == {"path": "x.db"}
        assert config["vessels"][7]["influx"] == {"url": "http://b", "database": "v007"}
        write_fleet_config(tmp_path / "f.yml", config)
        assert yaml.safe_load((tmp_path / "f.yml").read_text()) == config
        with pytest.raises(TypeError, match="unknown collection"):
            fleet_config(vessels, "http://a", "http://b", timeuot="2s")

    def test_interval_change_vessels_may_sample_every_5_min(self) -> None:
        vessels = plan_fleet(len(SCENARIOS))
        for base, slow in ((60, "300s"), ("60s", "300s"), ("2m", "600s"), (1, "5s")):
            config = fleet_config(vessels, "http://a", "http://b", sample_interval=base)
            caps = {v.scenario: e.get("sample_interval")
                    for v, e in zip(vessels, config["vessels"], strict=True)}
            assert caps.pop("interval_change") == slow
            assert set(caps.values()) == {None}  # the others keep the default

    def test_a_cut_link_points_the_vessel_nowhere(self) -> None:
        vessels = plan_fleet(len(SCENARIOS))
        midnight = 1_700_006_400

        def urls(at: int | None) -> dict[str, str]:
            config = fleet_config(vessels, "http://a", "http://b", at=at)
            return {v.scenario: e["influx"]["url"]
                    for v, e in zip(vessels, config["vessels"], strict=True)}

        assert urls(None)["unreachable_midnight"] == urls(midnight - 86400 // 2)[
            "unreachable_midnight"] == "http://a"
        cut = urls(midnight)
        assert cut.pop("unreachable_midnight") == cut.pop("unreachable") == "http://b"
        assert set(cut.values()) == {"http://a"}


class TestCli:
    def test_seeds_and_writes_config(
        self, influxd: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "fleet.yml"
        args = ["--influx-url", influxd.url, "--vessels", "3", "--days", "1", "--id-prefix", "cli"]
        assert main([*args, "--scenarios", "healthy,unreachable", "--config-out", str(out)]) == 0
        assert "3 vessels" in capsys.readouterr().out
        config = yaml.safe_load(out.read_text())
        assert [v["id"] for v in config["vessels"]] == ["cli000", "cli001", "cli002"]
        assert config["vessels"][0]["influx"]["url"] == influxd.url
        assert config["vessels"][1]["influx"]["url"] != influxd.url
        assert config["defaults"]["sample_interval"] == "60s"

    def test_unreachable_influx_exits_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        assert main(["--influx-url", url, "--config-out", str(tmp_path / "f.yml")]) == 1
        assert "cannot talk to InfluxDB" in capsys.readouterr().err
        assert not (tmp_path / "f.yml").exists()


class TestFollow:
    """`--follow` keeps the seeded fleet live, each device in its scenario's state."""

    def test_live_samples_continue_each_scenario(self, influxd: InfluxServer) -> None:
        anchor = int(time.time())
        vessels = {v.scenario: v.id for v in plan_fleet(8, id_prefix="live")}
        args = ["--influx-url", influxd.url, "--vessels", "8", "--id-prefix", "live",
                "--days", "0.01", "--interval", "1", "--now", str(anchor), "--follow"]
        proc = subprocess.Popen([sys.executable, "-m", "simulator.cli", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        newer = f"time > {anchor}s"
        try:
            assert proc.stdout and proc.stdout.readline().startswith("seeded 8 vessels")
            assert proc.stdout.readline() == "following: one sample per device every 1 s\n"
            deadline = time.monotonic() + 30
            # Sixteen rounds: the flapping device's one-in-sixteen comes round once.
            while (scalar(influxd.url, vessels["healthy"], f"{COUNT} {newer}") or 0) < 64:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no live samples within 30 s"
                time.sleep(0.5)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err  # SIGTERM stops it cleanly

        def live(scenario: str, where: str = "") -> int:
            q = f"{COUNT} {newer}{where}"
            return scalar(influxd.url, vessels[scenario], q) or 0

        healthy = live("healthy")
        assert healthy >= 64 and healthy % 4 == 0  # every device, every round
        assert live("healthy", f" AND {UP}") == healthy
        srv = f" AND url = '{plan_fleet(8)[2].devices[3].address}'"
        assert live("down_4d", srv) == healthy // 4
        assert live("down_4d", f" AND {UP}") == 3 * healthy // 4  # srv-1 is still down
        assert live("stale") == 0  # a stale vessel stays stale
        assert live("no_data") == 0
        # Live samples sit on the seeded grid (anchor - 30 s + k s) and the flapping device
        # keeps its phase: down at k = 13 mod 16, as the history's k = -3 mod 16, so every
        # 24 h window keeps exactly one sample in sixteen down.
        ap2 = plan_fleet(8)[1].devices[1].address
        rows = influx_query(influxd.url, vessels["flapping"],
                            f"SELECT result_code, percent_packet_loss FROM ping WHERE {newer}"
                            f" AND url = '{ap2}'")[0]["values"]
        steps = [t - (anchor - 30) for t, _, _ in rows]
        assert steps == list(range(steps[0], steps[0] + len(steps)))
        down = [k for k, (_, _, loss) in zip(steps, rows, strict=True)
                if loss is None or loss >= 100]
        assert down and {k % 16 for k in down} == {13}
