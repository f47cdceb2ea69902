"""`fleet-exporter --once` against a real InfluxDB 1.6 seeded with every scenario."""

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.fleetconfig import fleet_config, unused_loopback_url, write_fleet_config
from simulator.influx import seed
from simulator.scenarios import SCENARIOS, Vessel, plan_fleet
from tests.helpers import Metrics, assert_promtool_clean
from tests.servers import InfluxServer, require_binary

DAY = 86400
FULL_DAY = 1440  # one sample a minute


def run_cli(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`fleet-exporter --config CONFIG --once` in a new process; it must exit 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(config), "--once"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def run_once(config: Path) -> tuple[Metrics, float]:
    """Run the real CLI; returns its metrics and the time it printed them."""
    return Metrics(run_cli(config).stdout), time.time()


@dataclass
class Seeded:
    metrics: Metrics
    anchor: int  # the simulator's "now": samples sit at anchor - 30 - 60k
    scraped: float
    vessels: dict[str, Vessel]  # by scenario
    stdout: str

    def vid(self, scenario: str) -> str:
        return self.vessels[scenario].id


@pytest.fixture(scope="module")
def seeded(influxd: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    plan = plan_fleet(len(SCENARIOS), list(SCENARIOS))
    anchor = int(time.time())
    asyncio.run(seed(influxd.url, plan, now=anchor, days=5))
    path = tmp_path_factory.mktemp("fleet") / "fleet.yml"
    config = fleet_config(plan, influxd.url, unused_loopback_url(), attempts=1, timeout="5s",
                          windows=["24h", "7d"], state_path=path.parent / "exporter.db")
    write_fleet_config(path, config)
    metrics, scraped = run_once(path)
    return Seeded(metrics, anchor, scraped, {v.scenario: v for v in plan}, metrics.text)


def device(seeded: Seeded, scenario: str, name: str, metric: str, **labels: str) -> float | None:
    return seeded.metrics.get(metric, vessel=seeded.vid(scenario),
                              **{"device": name, **_device_labels(seeded, scenario, name)},
                              **labels)


def _device_labels(seeded: Seeded, scenario: str, name: str) -> dict[str, str]:
    [d] = [d for d in seeded.vessels[scenario].devices if d.name == name]
    return {"component": d.component, "address": d.address}


def component(seeded: Seeded, scenario: str, comp: str, metric: str, **labels: str):
    return seeded.metrics.get(metric, vessel=seeded.vid(scenario), component=comp, **labels)


class TestVesselStatus:
    @pytest.mark.parametrize(("scenario", "status", "up"), [
        ("healthy", "ok", 1), ("flapping", "ok", 1), ("down_4d", "ok", 1), ("breach", "ok", 1),
        ("gap", "ok", 1), ("stale", "stale", 1), ("no_data", "no_data", 1),
        ("unreachable", "unreachable", 0), ("dry_dock", "ok", 1), ("interval_change", "ok", 1),
        ("unreachable_midnight", "ok", 1),
    ])
    def test_status_per_scenario(self, seeded: Seeded, scenario: str, status: str, up: int):
        assert seeded.metrics.status(seeded.vid(scenario)) == status
        assert seeded.metrics.get("fleet_vessel_up", vessel=seeded.vid(scenario)) == up

    def test_stale_vessel_newest_sample(self, seeded: Seeded):
        newest = seeded.metrics.get("fleet_vessel_newest_sample_timestamp_seconds",
                                    vessel=seeded.vid("stale"))
        assert newest == seeded.anchor - 30 - 3 * 3600

    def test_healthy_vessel_newest_sample_is_the_last_minute(self, seeded: Seeded):
        newest = seeded.metrics.get("fleet_vessel_newest_sample_timestamp_seconds",
                                    vessel=seeded.vid("healthy"))
        assert newest == seeded.anchor - 30

    def test_unreachable_and_no_data_claim_nothing_about_devices(self, seeded: Seeded):
        for scenario in ("unreachable", "no_data"):
            assert seeded.metrics.series("fleet_device_up", vessel=seeded.vid(scenario)) == {}
            assert seeded.metrics.series("fleet_device_uptime_ratio",
                                         vessel=seeded.vid(scenario)) == {}
        devices = component(seeded, "no_data", "access_point", "fleet_component_devices",
                            state="unknown")
        assert devices == 2
        assert component(seeded, "no_data", "access_point", "fleet_component_up") is None

    def test_one_failed_vessel_makes_the_run_partial(self, seeded: Seeded):
        runs = "fleet_collection_runs_total"
        assert seeded.metrics.get(runs, result="partial") == 1
        assert seeded.metrics.get(runs, result="success") == 0

    def test_one_request_per_vessel_bounded_by_the_catch_up(self, seeded: Seeded):
        # The first run reads five days of raw points for the ledger (two fields, epoch
        # seconds); later runs read only minutes (tests/test_ledger.py).
        for vessel in seeded.vessels.values():
            vid = vessel.id
            assert seeded.metrics.get("fleet_vessel_collect_attempts", vessel=vid) == 1
            if vessel.scenario != "unreachable":
                assert 0 < seeded.metrics.get("fleet_vessel_response_bytes", vessel=vid) < 200_000


class TestUptime:
    def test_healthy_device(self, seeded: Seeded):
        get = lambda metric, **kw: device(seeded, "healthy", "ap-1", metric, **kw)  # noqa: E731
        assert get("fleet_device_up") == 1
        assert get("fleet_device_uptime_ratio", window="24h") == 1
        assert get("fleet_device_coverage_ratio", window="24h") == 1
        # Five days of data in a seven-day window: the gap shows as coverage, not downtime.
        assert get("fleet_device_uptime_ratio", window="7d") == 1
        assert get("fleet_device_coverage_ratio", window="7d") == pytest.approx(5 / 7)
        assert get("fleet_device_downtime_age_seconds") == 0
        assert get("fleet_device_down_since_timestamp_seconds") is None
        assert get("fleet_device_last_sample_timestamp_seconds") == seeded.anchor - 30
        assert 0.0 <= get("fleet_device_packet_loss_ratio") < 1
        assert 0.005 < get("fleet_device_rtt_seconds") < 0.2

    def test_flapping_device_is_down_a_sixteenth_of_the_time(self, seeded: Seeded):
        ratio = device(seeded, "flapping", "ap-2", "fleet_device_uptime_ratio", window="24h")
        assert ratio == (FULL_DAY - 90) / FULL_DAY
        both = component(seeded, "flapping", "access_point", "fleet_component_uptime_ratio",
                         window="24h")
        assert both == (2 * FULL_DAY - 90) / (2 * FULL_DAY)
        assert device(seeded, "flapping", "ap-2", "fleet_device_up") == 1

    def test_breach_component_below_objective(self, seeded: Seeded):
        ratio = component(seeded, "breach", "dashboard", "fleet_component_uptime_ratio",
                          window="24h")
        assert ratio == (FULL_DAY - 120) / FULL_DAY
        assert ratio < component(seeded, "breach", "dashboard",
                                 "fleet_component_sla_objective_ratio")
        assert component(seeded, "breach", "dashboard", "fleet_component_up") == 1
        assert component(seeded, "breach", "dashboard", "fleet_component_downtime_age_seconds") == 0

    def test_an_interval_change_is_weighed_by_time(self, seeded: Seeded):
        # 5 min samples for the last 9 h, 60 s before: 24 down samples of 1008 would read
        # 97.6 %; by time the dashboard was down 2 h of 24, and every second is covered.
        ratio = component(seeded, "interval_change", "dashboard",
                          "fleet_component_uptime_ratio", window="24h")
        assert ratio == pytest.approx(22 / 24, abs=1e-9)
        assert ratio < component(seeded, "interval_change", "dashboard",
                                 "fleet_component_sla_objective_ratio")
        for d in seeded.vessels["interval_change"].devices:
            coverage = device(seeded, "interval_change", d.name, "fleet_device_coverage_ratio",
                              window="24h")
            assert coverage == 1.0, d.name
        assert device(seeded, "interval_change", "ap-1", "fleet_device_uptime_ratio",
                      window="24h") == 1

    def test_gap_counts_as_coverage_not_downtime(self, seeded: Seeded):
        for d in seeded.vessels["gap"].devices:
            assert device(seeded, "gap", d.name, "fleet_device_uptime_ratio", window="24h") == 1
            coverage = device(seeded, "gap", d.name, "fleet_device_coverage_ratio", window="24h")
            assert coverage == 0.75
        assert component(seeded, "gap", "server", "fleet_component_coverage_ratio",
                         window="24h") == 0.75

    def test_stale_devices_are_unknown_not_up(self, seeded: Seeded):
        # Their newest sample showed a reply, but three hours ago: nobody knows now.
        assert device(seeded, "stale", "srv-1", "fleet_device_up") is None
        assert component(seeded, "stale", "server", "fleet_component_up") is None
        assert component(seeded, "stale", "server", "fleet_component_devices",
                         state="unknown") == 1
        assert component(seeded, "stale", "server", "fleet_component_devices", state="up") == 0
        # What was observed is still reported.
        coverage = device(seeded, "stale", "srv-1", "fleet_device_coverage_ratio", window="24h")
        assert coverage == (FULL_DAY - 180) / FULL_DAY
        assert device(seeded, "stale", "srv-1", "fleet_device_uptime_ratio", window="24h") == 1
        assert device(seeded, "stale", "srv-1", "fleet_device_last_sample_timestamp_seconds") \
            == seeded.anchor - 30 - 3 * 3600


class TestDowntime:
    def test_device_down_four_days(self, seeded: Seeded):
        get = lambda metric, **kw: device(seeded, "down_4d", "srv-1", metric, **kw)  # noqa: E731
        last_reply = seeded.anchor - 30 - 4 * DAY
        assert get("fleet_device_up") == 0
        assert get("fleet_device_down_since_timestamp_seconds") == last_reply
        age = get("fleet_device_downtime_age_seconds")
        assert seeded.anchor - last_reply <= age <= seeded.scraped - last_reply
        assert get("fleet_device_uptime_ratio", window="24h") == 0
        assert get("fleet_device_coverage_ratio", window="24h") == 1
        assert get("fleet_device_packet_loss_ratio") == 1
        assert get("fleet_device_rtt_seconds") is None

    def test_component_age_is_its_oldest_outage(self, seeded: Seeded):
        device_age = device(seeded, "down_4d", "srv-1", "fleet_device_downtime_age_seconds")
        comp = lambda metric, **kw: component(seeded, "down_4d", "server", metric, **kw)  # noqa: E731
        assert comp("fleet_component_downtime_age_seconds") == pytest.approx(device_age, abs=1)
        assert comp("fleet_component_downtime_age_seconds") > 3 * DAY
        assert comp("fleet_component_up") == 0
        assert comp("fleet_component_devices", state="down") == 1
        assert comp("fleet_component_devices", state="up") == 0
        assert component(seeded, "down_4d", "access_point",
                         "fleet_component_downtime_age_seconds") == 0


class TestExposition:
    def test_promtool_finds_nothing_to_lint(self, seeded: Seeded):
        assert_promtool_clean(seeded.stdout)


class TestUnreachableKeepsLastKnownState:
    """A vessel that stops answering keeps its device state, across a restart too."""

    def test_state_survives_an_outage_and_a_restart(self, tmp_path: Path):
        binary = require_binary("influxd", "/usr/bin/influxd")
        [vessel] = plan_fleet(1, ["down_4d"])
        with InfluxServer(binary) as influx:
            anchor = int(time.time())
            asyncio.run(seed(influx.url, [vessel], now=anchor, days=5))
            path = tmp_path / "fleet.yml"
            write_fleet_config(path, fleet_config([vessel], influx.url, unused_loopback_url(),
                                                  attempts=1, timeout="3s",
                                                  state_path=tmp_path / "state.db"))
            before, _ = run_once(path)
        after, scraped = run_once(path)  # a new process, and the vessel's InfluxDB is gone
        vid = vessel.id
        assert before.status(vid) == "ok" and after.status(vid) == "unreachable"
        assert after.get("fleet_vessel_up", vessel=vid) == 0
        for name in ("fleet_device_up", "fleet_device_uptime_ratio",
                     "fleet_device_down_since_timestamp_seconds", "fleet_component_up"):
            assert after.series(name) == before.series(name) != {}
        ages = after.series("fleet_device_downtime_age_seconds", device="srv-1")
        assert next(iter(ages.values())) >= 4 * DAY
        assert after.get("fleet_vessel_last_success_timestamp_seconds", vessel=vid) == \
            before.get("fleet_vessel_last_success_timestamp_seconds", vessel=vid)
        # The run that reached the vessel is remembered too: collection is not "failing".
        good = "fleet_collection_last_success_timestamp_seconds"
        assert after.get(good) == before.get(good) is not None
        assert after.get("fleet_collection_runs_total", result="failed") == 1
        assert scraped > anchor


class TestNewestFromThePoints:
    """After a vessel's first request its newest sample and reply come from the raw points
    after the ledger's cursor and what was known, across restarts too."""

    def test_a_reply_older_than_the_points_read_survives_restarts(
            self, influxd: InfluxServer, tmp_path: Path):
        now = int(time.time())
        lines = []
        for k in range(240):  # four hours of minutes: replies until three hours ago
            fields = ("result_code=0i,percent_packet_loss=0,average_response_ms=12.5"
                      if k >= 180 else "result_code=1i,percent_packet_loss=100")
            lines.append(f"ping,url=10.0.0.1 {fields} {now - 30 - 60 * k}")
        influxd.write("newest", lines)
        last_reply = now - 30 - 60 * 180
        path = tmp_path / "fleet.yml"
        write_fleet_config(path, {
            "state": {"path": str(tmp_path / "state.db")},
            "ledger": {"backfill": "1d", "max_catchup": "2d"},
            "vessels": [{"id": "newest", "influx": {"url": influxd.url, "database": "newest"},
                         "devices": [{"address": "10.0.0.1", "component": "server",
                                      "name": "srv-1"}]}],
        })
        labels = {"vessel": "newest", **SERVER_LABELS}
        first, _ = run_once(path)
        assert first.get("fleet_device_up", **labels) == 0
        assert first.get("fleet_device_down_since_timestamp_seconds", **labels) == last_reply
        # A new process reads only the minutes after the cursor, all without a reply.
        influxd.write("newest", [f"ping,url=10.0.0.1 result_code=1i,percent_packet_loss=100 "
                                 f"{now}"])
        second, _ = run_once(path)
        assert second.get("fleet_device_up", **labels) == 0
        assert second.get("fleet_device_down_since_timestamp_seconds", **labels) == last_reply
        assert second.get("fleet_device_last_sample_timestamp_seconds", **labels) == now
        assert second.get("fleet_vessel_response_bytes", vessel="newest") < 400
        # By time: an hour up, three down, then 30 s more down to the new sample.
        assert first.get("fleet_device_uptime_ratio", window="24h", **labels) == \
            pytest.approx(3600 / 14400)
        assert second.get("fleet_device_uptime_ratio", window="24h", **labels) == \
            pytest.approx(3600 / 14430)
        # A reply: up again, with its round trip.
        influxd.write("newest", [f"ping,url=10.0.0.1 result_code=0i,percent_packet_loss=0,"
                                 f"average_response_ms=7 {now + 1}"])
        third, _ = run_once(path)
        assert third.get("fleet_device_up", **labels) == 1
        assert third.get("fleet_device_rtt_seconds", **labels) == 0.007
        assert third.get("fleet_device_last_sample_timestamp_seconds", **labels) == now + 1


SERVER_LABELS = {"component": "server", "device": "srv-1", "address": "10.0.0.1"}


class TestOddAddresses:
    """Addresses are matched exactly, whatever punctuation they hold."""

    ADDRESSES = ("fe80::1", "nav.bridge-2.local", "a/b", "o'brien", "x|y", "10.0.0.1")

    def test_each_device_gets_its_own_samples(self, influxd: InfluxServer, tmp_path: Path):
        now = int(time.time())
        lines = []
        for n, address in enumerate(self.ADDRESSES):
            for k in range(n + 1):  # device n has n+1 samples, all up
                lines.append(f"ping,url={address} result_code=0i,percent_packet_loss=0,"
                             f"average_response_ms=10 {now - 60 * k - 30}")
        lines.append(f"ping,url=10.0.0.10 result_code=0i,percent_packet_loss=0 {now - 30}")
        influxd.write("odd", lines)
        path = tmp_path / "fleet.yml"
        write_fleet_config(path, {
            "state": {"path": str(tmp_path / "state.db")},
            "ledger": {"backfill": "1d", "max_catchup": "2d"},
            "vessels": [{"id": "odd", "influx": {"url": influxd.url, "database": "odd"},
                         "devices": [{"address": a, "component": "server", "name": f"d{n}"}
                                     for n, a in enumerate(self.ADDRESSES)]}],
        })
        metrics, _ = run_once(path)
        for n, address in enumerate(self.ADDRESSES):
            coverage = metrics.get("fleet_device_coverage_ratio", vessel="odd",
                                   component="server", device=f"d{n}", address=address,
                                   window="24h")
            assert coverage == (n + 1) / FULL_DAY, address
        # 10.0.0.10 is not configured, and the regex is anchored: 10.0.0.1 does not match it.
        assert len(metrics.series("fleet_device_up", vessel="odd")) == len(self.ADDRESSES)


class TestMissingDatabase:
    def test_error_names_the_database(self, influxd: InfluxServer, tmp_path: Path):
        path = tmp_path / "fleet.yml"
        write_fleet_config(path, {
            "state": {"path": str(tmp_path / "state.db")},
            "vessels": [{"id": "lost", "influx": {"url": influxd.url, "database": "nowhere"},
                         "devices": [{"address": "10.0.0.1", "component": "server",
                                      "name": "srv-1"}]}],
        })
        proc = run_cli(path)
        assert Metrics(proc.stdout).status("lost") == "query_error"
        assert "(does database 'nowhere' exist?)" in proc.stderr


class TestAuthentication:
    def test_credentials_from_the_environment(self, influxd_auth: InfluxServer, tmp_path: Path):
        influxd_auth.query("CREATE DATABASE telegraf")
        devices = [{"address": "10.0.0.1", "component": "server", "name": "srv-1"}]
        config = {
            "state": {"path": str(tmp_path / "state.db")},
            "collection": {"attempts": 3, "backoff": "10ms"},
            "defaults": {"influx": {"url": influxd_auth.url, "database": "telegraf"}},
            "vessels": [
                {"id": "good", "devices": devices,
                 "influx": {"username": "${INFLUX_USER}", "password": "${INFLUX_PASS}"}},
                {"id": "wrong", "devices": devices,
                 "influx": {"username": "${INFLUX_USER}", "password": "not-the-password"}},
            ],
        }
        path = tmp_path / "fleet.yml"
        write_fleet_config(path, config)
        env = {**os.environ, "INFLUX_USER": influxd_auth.username,
               "INFLUX_PASS": influxd_auth.password}
        proc = run_cli(path, env)
        metrics = Metrics(proc.stdout)
        assert metrics.status("good") == "no_data", proc.stderr
        assert metrics.status("wrong") == "auth_error"
        assert metrics.get("fleet_vessel_collect_attempts", vessel="wrong") == 1
        assert "auth_error" in proc.stderr
        for secret in (influxd_auth.password, "not-the-password"):
            assert secret not in proc.stdout + proc.stderr


class TestClockSkew:
    """Telegraf's clock runs 2 h ahead of InfluxDB's and ours; the server has been down for
    the last 2 real hours, so every one of its points stamped up to InfluxDB's now() says up."""

    AHEAD = 7200

    def test_the_outage_is_seen_and_the_windows_are_unknown(
        self, influxd: InfluxServer, tmp_path: Path
    ):
        now = int(time.time())
        lines = []
        for k in range(24 * 60):  # one sample a minute, real times now - k minutes
            stamp = now - 60 * k + self.AHEAD
            server = "result_code=0i,percent_packet_loss=0" if k > 120 else \
                "result_code=1i,percent_packet_loss=100"
            lines.append(f"ping,url=10.0.0.1 {server} {stamp}")
            lines.append(f"ping,url=10.0.0.2 result_code=0i,percent_packet_loss=0 {stamp}")
        influxd.write("skewed", lines)
        path = tmp_path / "fleet.yml"
        write_fleet_config(path, {
            "state": {"path": str(tmp_path / "state.db")},
            "vessels": [{"id": "skewed", "influx": {"url": influxd.url, "database": "skewed"},
                         "devices": [
                             {"address": "10.0.0.1", "component": "server", "name": "srv-1"},
                             {"address": "10.0.0.2", "component": "access_point",
                              "name": "ap-1"}]}],
        })
        metrics, scraped = run_once(path)
        assert metrics.status("skewed") == "clock_skew"
        skew = metrics.get("fleet_vessel_clock_skew_seconds", vessel="skewed")
        assert now + self.AHEAD - scraped <= skew <= self.AHEAD
        server = {"vessel": "skewed", "component": "server", "device": "srv-1",
                  "address": "10.0.0.1"}
        assert metrics.get("fleet_device_up", **server) == 0
        # The last reply, 121 real minutes ago, shifted back by the measured skew.
        age = metrics.get("fleet_device_downtime_age_seconds", **server)
        assert 121 * 60 <= age <= 121 * 60 + (scraped - now)
        assert metrics.get("fleet_device_up", vessel="skewed", component="access_point",
                           device="ap-1", address="10.0.0.2") == 1
        assert metrics.series("fleet_device_uptime_ratio", vessel="skewed") == {}
        assert metrics.series("fleet_component_uptime_ratio", vessel="skewed") == {}
