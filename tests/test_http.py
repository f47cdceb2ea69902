"""The exporter's HTTP surface: metrics, health and the run log API (the console: test_console)."""

import asyncio
import gzip
from pathlib import Path

import pytest

from tests.fake_influx import DeviceFacts, reply, slow
from tests.helpers import Clock, Ticks, scrape, vessel, wait_ready, write_config

T0 = 1_800_000_000.0
DOWN = DeviceFacts(up=1000, result_code=1, loss=100.0, rtt_ms=None,
                   last_sample=int(T0) - 60, last_reply=int(T0) - 3600)


@pytest.fixture
async def fleet(tmp_path: Path, fake_influx, exporter):
    """Factory: an exporter over one fake vessel with an ap (up) and a server (down)."""

    async def start(*responders, interval="1h", query_timeout="2s", ready=True, server=DOWN,
                    ap=None, **options):
        fake, url = await fake_influx(**{"10_10_1_5": ap or DeviceFacts(), "10_10_1_20": server})
        fake.script.extend(responders)
        config = write_config(
            tmp_path / "fleet.yml",
            [vessel("aurora", url, name="MV <Aurora> & Co")],
            collection={"interval": interval, "timeout": query_timeout, "attempts": 1},
        )
        return fake, await exporter(config, ready=ready, **options)

    return start


async def runs_page(client, query: str = "") -> dict:
    response = await client.get(f"/api/v1/runs{query}")
    assert response.status == 200
    return await response.json()


class TestMetricsEndpoint:
    async def test_ages_are_computed_at_scrape_time(self, fleet):
        clock = Clock(T0)
        _, client = await fleet(clock=clock)
        first = await scrape(client)
        labels = {"vessel": "aurora", "component": "server", "device": "nav-server",
                  "address": "10.10.1.20"}
        assert first.get("fleet_device_downtime_age_seconds", **labels) == 3600
        clock.now += 600  # no new collection happens in between
        later = await scrape(client)
        assert later.get("fleet_device_downtime_age_seconds", **labels) == 4200
        assert later.get("fleet_component_downtime_age_seconds", vessel="aurora",
                         component="server") == 4200
        assert later.get("fleet_device_down_since_timestamp_seconds", **labels) == T0 - 3600
        assert later.get("fleet_collection_runs_total", result="success") == 1

    async def test_gzip_body_is_the_same_text(self, fleet):
        clock = Clock(T0)
        _, client = await fleet(clock=clock)
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        packed = await client.get("/metrics", headers={"Accept-Encoding": "gzip"},
                                  auto_decompress=False)
        assert packed.headers["Content-Encoding"] == "gzip"
        raw = await packed.read()
        assert int(packed.headers["Content-Length"]) == len(raw)
        text = gzip.decompress(raw).decode()
        assert text == await plain.text()
        assert 'fleet_device_downtime_age_seconds{address="10.10.1.20"' in text

    async def test_content_type_is_prometheus_text(self, fleet):
        _, client = await fleet()
        response = await client.get("/metrics")
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")

    async def test_scrape_never_waits_for_a_vessel(self, fleet):
        _, client = await fleet(slow(1.5), ready=False)
        response = await asyncio.wait_for(client.get("/metrics"), timeout=0.5)
        assert response.status == 200
        metrics = await scrape(client)
        assert metrics.get("fleet_vessel_info", vessel="aurora", name="MV <Aurora> & Co") == 1
        assert metrics.series("fleet_vessel_data_status") == {}


SERVER = {"vessel": "aurora", "component": "server", "device": "nav-server",
          "address": "10.10.1.20"}
AP = {"vessel": "aurora", "component": "access_point", "device": "ap-bridge",
      "address": "10.10.1.5"}


class TestDeviceState:
    async def test_ping_error_is_down(self, fleet):
        # Telegraf writes only result_code=2 on a ping error: no loss, no RTT.
        error = DeviceFacts(result_code=2, loss=None, rtt_ms=None, last_sample=int(T0) - 60,
                            last_reply=int(T0) - 600)
        _, client = await fleet(server=error, clock=Clock(T0))
        metrics = await scrape(client)
        assert metrics.get("fleet_device_up", **SERVER) == 0
        assert metrics.get("fleet_device_packet_loss_ratio", **SERVER) == 1
        assert metrics.get("fleet_device_rtt_seconds", **SERVER) is None
        assert metrics.get("fleet_device_downtime_age_seconds", **SERVER) == 600

    async def test_silent_device_is_unknown_while_its_vessel_reports(self, fleet):
        silent = DeviceFacts(last_sample=int(T0) - 10 * 86400, last_reply=int(T0) - 10 * 86400)
        _, client = await fleet(server=silent, clock=Clock(T0))
        metrics = await scrape(client)
        assert metrics.status("aurora") == "ok"
        assert metrics.get("fleet_device_up", **SERVER) is None
        assert metrics.get("fleet_device_downtime_age_seconds", **SERVER) is None
        server = {"vessel": "aurora", "component": "server"}
        assert metrics.get("fleet_component_up", **server) is None
        assert metrics.get("fleet_component_devices", **server, state="unknown") == 1

    async def test_silent_device_that_was_down_stays_down(self, fleet):
        silent = DeviceFacts(last_sample=int(T0) - 10 * 86400, result_code=1, loss=100.0,
                             rtt_ms=None, last_reply=int(T0) - 11 * 86400)
        _, client = await fleet(server=silent, clock=Clock(T0))
        metrics = await scrape(client)
        assert metrics.get("fleet_device_up", **SERVER) == 0
        assert metrics.get("fleet_device_downtime_age_seconds", **SERVER) == 11 * 86400
        assert metrics.get("fleet_component_up", vessel="aurora", component="server") == 0


    async def test_unreachable_vessel_keeps_last_known_values(self, fleet):
        clock, ticks = Clock(T0), Ticks()
        fake, client = await fleet(clock=clock, sleep=ticks)
        before = await scrape(client)
        fake.script.extend([reply(status=503)] * 3)
        clock.now += 100  # within stale_after (15 min) of the newest sample
        await ticks.runs(client)
        after = await scrape(client)
        assert after.status("aurora") == "unreachable"
        assert after.get("fleet_vessel_up", vessel="aurora") == 0
        for name in ("fleet_device_up", "fleet_device_uptime_ratio", "fleet_component_devices",
                     "fleet_device_down_since_timestamp_seconds",
                     "fleet_vessel_last_success_timestamp_seconds"):
            assert after.series(name) == before.series(name) != {}
        age = "fleet_device_downtime_age_seconds"
        assert after.get(age, **SERVER) == before.get(age, **SERVER) + 100

    async def test_an_old_reply_is_not_up_once_its_vessel_is_unreachable(self, fleet):
        clock, ticks = Clock(T0), Ticks()
        fake, client = await fleet(clock=clock, sleep=ticks)
        assert (await scrape(client)).get("fleet_device_up", **AP) == 1
        fake.script.extend([reply(status=503)] * 3)
        clock.now += 900  # the ap's newest sample (T0) is now exactly stale_after old
        await ticks.runs(client)
        assert (await scrape(client)).get("fleet_device_up", **AP) == 1
        fake.script.extend([reply(status=503)] * 3)
        clock.now += 1
        await ticks.runs(client)
        metrics = await scrape(client)
        assert metrics.status("aurora") == "unreachable"
        assert metrics.get("fleet_device_up", **AP) is None, "an old reply says nothing of now"
        assert metrics.get("fleet_device_downtime_age_seconds", **AP) is None
        ap = {"vessel": "aurora", "component": "access_point"}
        assert metrics.get("fleet_component_up", **ap) is None
        assert metrics.get("fleet_component_devices", **ap, state="unknown") == 1
        # The device that was down stays down, and its outage keeps growing.
        assert metrics.get("fleet_device_up", **SERVER) == 0
        assert metrics.get("fleet_device_downtime_age_seconds", **SERVER) == 3600 + 901

    async def test_an_old_reply_turns_unknown_between_runs(self, fleet):
        clock = Clock(T0)
        _, client = await fleet(clock=clock)  # interval 1h: no run happens below
        assert (await scrape(client)).get("fleet_device_up", **AP) == 1
        clock.now += 900  # the ap's newest sample (T0) is exactly stale_after old
        assert (await scrape(client)).get("fleet_device_up", **AP) == 1
        clock.now += 1
        metrics = await scrape(client)
        assert metrics.get("fleet_device_up", **AP) is None
        assert metrics.get("fleet_component_devices", vessel="aurora",
                           component="access_point", state="unknown") == 1
        assert metrics.get("fleet_device_up", **SERVER) == 0  # a down device stays down
        assert metrics.get("fleet_collection_runs_total", result="success") == 1

    async def test_an_old_reply_is_not_up_after_a_restart(
        self, tmp_path: Path, fake_influx, exporter
    ):
        fake, url = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DOWN})
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", url)],
                              collection={"interval": "1h", "timeout": "2s", "attempts": 1})
        first = await exporter(config, clock=Clock(T0))
        assert (await scrape(first)).get("fleet_device_up", **AP) == 1
        await first.close()
        fake.script.append(slow(1))
        again = await exporter(config, ready=False, clock=Clock(T0 + 3600))
        metrics = await scrape(again)  # restored, before the first collection ends
        assert metrics.get("fleet_device_up", **AP) is None
        assert metrics.get("fleet_device_up", **SERVER) == 0
        assert metrics.get("fleet_device_downtime_age_seconds", **SERVER) == 2 * 3600


class TestRestart:
    async def test_last_outcome_is_served_before_the_first_collection(
        self, tmp_path: Path, fake_influx, exporter
    ):
        fake, url = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DOWN})
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", url)],
                              collection={"interval": "1h", "timeout": "2s", "attempts": 1})
        first = await exporter(config, clock=Clock(T0))
        assert (await scrape(first)).status("aurora") == "ok"
        await first.close()
        fake.script.append(slow(1))  # the restarted exporter's first collection is slow
        again = await exporter(config, ready=False, clock=Clock(T0 + 60))
        metrics = await scrape(again)
        assert (await again.get("/readyz")).status == 503
        assert metrics.status("aurora") == "ok"
        assert metrics.get("fleet_vessel_up", vessel="aurora") == 1
        assert metrics.get("fleet_device_up", **SERVER) == 0


class TestHealth:
    async def test_ready_only_after_the_first_collection(self, fleet):
        _, client = await fleet(slow(0.5), ready=False)
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503
        await wait_ready(client)  # asserts /readyz says 200 once the run is in


class TestRunsApi:
    async def test_pages_newest_first(self, fleet):
        ticks = Ticks()
        _, client = await fleet(sleep=ticks)
        await ticks.runs(client, 4)
        first = await runs_page(client, "?limit=2")
        assert len(first["runs"]) == 2 and first["next"]
        second = await runs_page(client, first["next"].removeprefix("/api/v1/runs"))
        ids = [r["id"] for r in first["runs"] + second["runs"]]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
        run = first["runs"][0]
        assert run["result"] == "success" and run["vessels_ok"] == 1
        assert run["vessels_failed"] == 0 and run["finished_at"].endswith("Z")

    async def test_one_run_with_its_vessels(self, fleet):
        _, client = await fleet(slow(1), query_timeout="200ms")  # the one answer times out
        [summary] = (await runs_page(client))["runs"]
        response = await client.get(f"/api/v1/runs/{summary['id']}")
        run = await response.json()
        assert run["result"] == "failed" and run["vessels_failed"] == 1
        [entry] = run["vessels"]
        assert entry["vessel"] == "aurora" and entry["status"] == "unreachable"
        assert entry["error"] == "timed out after 0.2s" and entry["attempts"] == 1

    async def test_filter_by_status(self, fleet):
        _, client = await fleet(slow(1), query_timeout="200ms")
        assert (await runs_page(client, "?status=success"))["runs"] == []
        assert len((await runs_page(client, "?status=failed"))["runs"]) == 1

    @pytest.mark.parametrize(("query", "field"), [
        ("?limit=0", "limit"), ("?limit=abc", "limit"), ("?limit=501", "limit"),
        ("?before=-1", "before"), ("?status=ok", "status"), ("?limit=%C2%B2", "limit"),
        ("?before=99999999999999999999999", "before"),
    ])
    async def test_bad_parameters_name_the_field(self, fleet, query: str, field: str):
        _, client = await fleet()
        response = await client.get(f"/api/v1/runs{query}")
        assert response.status == 400
        assert (await response.json())["error"].startswith(f"{field}: ")

    async def test_unknown_run(self, fleet):
        _, client = await fleet()
        assert (await client.get("/api/v1/runs/999999")).status == 404
        for bad in ("abc", "%C2%B2", "99999999999999999999999"):
            response = await client.get(f"/api/v1/runs/{bad}")
            assert response.status == 400
            assert (await response.json())["error"].startswith("id: ")

    async def test_runs_older_than_30_days_are_pruned(self, fleet):
        clock, ticks = Clock(T0), Ticks()
        _, client = await fleet(clock=clock, sleep=ticks)
        first_id = (await runs_page(client))["runs"][-1]["id"]
        clock.now += 31 * 86400
        await ticks.runs(client)
        ids = [r["id"] for r in (await runs_page(client, "?limit=500"))["runs"]]
        assert first_id not in ids
        assert (await client.get(f"/api/v1/runs/{first_id}")).status == 404


class TestClockSkew:
    """A vessel whose clock runs 2 h ahead: its server has been down for those 2 hours."""

    AHEAD = 7200

    async def test_a_fast_clock_shows_the_outage_and_hides_the_windows(self, fleet):
        ahead = int(T0) + self.AHEAD
        down = DeviceFacts(up=1000, result_code=1, loss=100.0, rtt_ms=None,
                           last_sample=ahead, last_reply=int(T0))
        _, client = await fleet(server=down, clock=Clock(T0 + 60),
                                ap=DeviceFacts(last_sample=ahead, last_reply=ahead))
        metrics = await scrape(client)
        assert metrics.status("aurora") == "clock_skew"
        assert metrics.get("fleet_vessel_up", vessel="aurora") == 1
        assert metrics.get("fleet_vessel_clock_skew_seconds", vessel="aurora") == self.AHEAD - 60
        assert metrics.get("fleet_device_up", **SERVER) == 0
        assert metrics.get("fleet_device_up", **AP) == 1
        # The last reply was stamped T0, 2 h ahead of the truth: down for 2 h, not 60 s.
        assert metrics.get("fleet_device_downtime_age_seconds", **SERVER) == self.AHEAD
        assert metrics.get("fleet_component_downtime_age_seconds", vessel="aurora",
                           component="server") == self.AHEAD
        for name in ("fleet_device_uptime_ratio", "fleet_device_coverage_ratio",
                     "fleet_component_uptime_ratio", "fleet_component_coverage_ratio"):
            assert metrics.series(name, vessel="aurora") == {}, name

    async def test_a_fast_clock_whose_telegraf_stops_goes_unknown(self, fleet):
        ahead = int(T0) + self.AHEAD
        clock, ticks = Clock(T0 + 60), Ticks()
        _, client = await fleet(server=DeviceFacts(last_sample=ahead, last_reply=ahead),
                                ap=DeviceFacts(last_sample=ahead, last_reply=ahead),
                                clock=clock, sleep=ticks)
        assert (await scrape(client)).get("fleet_device_up", **AP) == 1
        clock.now += 1200  # 20 minutes on, nothing newer has been written
        await ticks.runs(client)
        metrics = await scrape(client)
        assert metrics.status("aurora") == "clock_skew"
        assert metrics.get("fleet_vessel_clock_skew_seconds",
                           vessel="aurora") == self.AHEAD - 60 - 1200
        assert metrics.get("fleet_device_up", **AP) is None, "a stopped Telegraf is not up"

    async def test_a_clock_ahead_within_tolerance_is_ok(self, fleet):
        _, client = await fleet(server=DeviceFacts(last_sample=int(T0) + 240),
                                clock=Clock(T0))
        metrics = await scrape(client)
        assert metrics.status("aurora") == "ok"
        assert metrics.get("fleet_vessel_clock_skew_seconds", vessel="aurora") == 240
        assert metrics.series("fleet_device_uptime_ratio", vessel="aurora") != {}

    async def test_a_clock_behind_measures_no_skew(self, fleet):
        _, client = await fleet(clock=Clock(T0 + 60))
        metrics = await scrape(client)
        assert metrics.status("aurora") == "ok"
        assert metrics.get("fleet_vessel_clock_skew_seconds", vessel="aurora") == 0
