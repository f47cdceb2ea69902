"""Maintenance windows in the exporter's metrics: what is in force, what comes next, and
downtime ages that leave maintenance out, to the second between runs and across reloads."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fake_influx import DeviceFacts
from tests.helpers import Clock, Metrics, Ticks, assert_promtool_clean, scrape, vessel, write_config

T0 = 1_800_000_000.0
DOWN = DeviceFacts(up=1000, result_code=1, loss=100.0, rtt_ms=None,
                   last_sample=int(T0) - 60, last_reply=int(T0) - 3600)
DEVICES = [
    {"address": "10.10.1.5", "component": "access_point", "name": "ap-bridge"},
    {"address": "10.10.1.20", "component": "server", "name": "srv-1"},
    {"address": "10.10.1.21", "component": "server", "name": "srv-2"},
]
SRV1 = {"vessel": "aurora", "component": "server", "device": "srv-1", "address": "10.10.1.20"}
SRV2 = {"vessel": "aurora", "component": "server", "device": "srv-2", "address": "10.10.1.21"}
SERVER = {"vessel": "aurora", "component": "server"}
COLLECTION = {"interval": "5m", "timeout": "2s", "attempts": 1}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(window_id: str, start: float, end: float, **scope: Any) -> dict[str, Any]:
    return {"id": window_id, "vessels": ["aurora"], "start": iso(start), "end": iso(end),
            "reason": "dry dock", **scope}


def ages(metrics: Metrics) -> tuple[float | None, float | None, float | None]:
    return (metrics.get("fleet_device_downtime_age_seconds", **SRV1),
            metrics.get("fleet_device_downtime_age_seconds", **SRV2),
            metrics.get("fleet_component_downtime_age_seconds", **SERVER))


@pytest.fixture
async def fleet(tmp_path: Path, fake_influx, exporter):
    """Factory: an exporter over one vessel whose srv-1 is down since T0 - 3600."""

    async def start(maintenance: list[dict[str, Any]], clock: Clock, srv2: DeviceFacts | None
                    = None, ticks: Ticks | None = None):
        _, url = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DOWN,
                                      "10_10_1_21": srv2 or DeviceFacts()})
        path = write_config(tmp_path / "fleet.yml", [vessel("aurora", url, devices=DEVICES)],
                            collection=COLLECTION, maintenance=maintenance)
        options: dict[str, Any] = {"clock": clock}
        if ticks is not None:
            options["sleep"] = ticks
        return path, url, await exporter(path, **options)

    return start


class TestInForce:
    async def test_a_window_on_a_component_is_shown_and_its_downtime_not_counted(self, fleet):
        clock = Clock(T0)
        drydock = window("aurora-drydock", T0 - 7200, T0 + 86400, components=["server"],
                         reference="OPS-1234")
        _, _, client = await fleet([drydock], clock)
        metrics = await scrape(client)
        label = {"maintenance_window": "aurora-drydock"}
        assert metrics.get("fleet_device_maintenance", **SRV1, **label) == 1
        assert metrics.get("fleet_device_maintenance", **SRV2, **label) == 1
        assert metrics.get("fleet_component_maintenance", **SERVER, **label) == 1
        assert metrics.series("fleet_component_maintenance", component="access_point") == {}
        assert metrics.get("fleet_maintenance_window_info", reason="dry dock",
                           reference="OPS-1234", **label) == 1
        assert ages(metrics) == (0, 0, 0)
        # The outage itself is still a fact.
        assert metrics.get("fleet_device_up", **SRV1) == 0
        assert metrics.get("fleet_device_down_since_timestamp_seconds", **SRV1) == T0 - 3600

    async def test_a_window_on_one_device_leaves_the_others_counted(self, fleet):
        clock = Clock(T0)
        other = DeviceFacts(up=1000, result_code=1, loss=100.0, rtt_ms=None,
                            last_sample=int(T0) - 60, last_reply=int(T0) - 600)
        _, _, client = await fleet([window("srv-1-swap", T0 - 7200, T0 + 3600,
                                           devices=["srv-1"])], clock, srv2=other)
        metrics = await scrape(client)
        assert metrics.get("fleet_device_maintenance", maintenance_window="srv-1-swap",
                           **SRV1) == 1
        assert metrics.series("fleet_device_maintenance", device="srv-2") == {}
        assert metrics.series("fleet_component_maintenance") == {}
        assert ages(metrics) == (0, 600, 600)

    async def test_overlapping_windows_each_show_and_count_as_one(self, fleet):
        clock = Clock(T0)
        _, _, client = await fleet([window("a", T0 - 7200, T0 + 600),
                                    window("b", T0 - 60, T0 + 1200)], clock)
        metrics = await scrape(client)
        assert {dict(k)["maintenance_window"] for k in metrics.series(
            "fleet_component_maintenance", **SERVER)} == {"a", "b"}
        clock.now = T0 + 900  # a is over, b is not
        assert ages(await scrape(client))[0] == 0
        clock.now = T0 + 1500
        assert ages(await scrape(client))[0] == 300  # from the end of b

    async def test_promtool_finds_nothing_to_lint(self, fleet):
        clock = Clock(T0)
        _, _, client = await fleet([window("aurora-drydock", T0 - 60, T0 + 600),
                                    window("later", T0 + 3600, T0 + 7200)], clock)
        text = (await scrape(client)).text
        await asyncio.to_thread(assert_promtool_clean, text)


class TestBetweenRuns:
    async def test_a_device_still_down_when_a_window_ends_counts_from_its_end(self, fleet):
        clock = Clock(T0)
        _, _, client = await fleet([window("aurora-drydock", T0 - 1800, T0 + 600)], clock)
        assert ages(await scrape(client))[0] == 0
        clock.now = T0 + 900  # no run in between: the age still follows the window
        assert ages(await scrape(client)) == (300, 0, 300)

    async def test_a_window_that_starts_between_runs_stops_the_count(self, fleet):
        clock = Clock(T0)
        _, _, client = await fleet([window("aurora-drydock", T0 + 600, T0 + 1200)], clock)
        assert ages(await scrape(client)) == (3600, 0, 3600)
        clock.now = T0 + 600
        assert ages(await scrape(client)) == (0, 0, 0)
        clock.now = T0 + 1260
        # srv-2's reply (T0) is older than stale_after by now: unknown, not up.
        assert ages(await scrape(client)) == (60, None, 60)

    async def test_the_maintenance_families_follow_a_window_between_runs(self, fleet):
        clock = Clock(T0)
        _, _, client = await fleet([window("aurora-drydock", T0 + 600, T0 + 1200)], clock)
        drydock = {**SERVER, "maintenance_window": "aurora-drydock"}
        assert (await scrape(client)).get("fleet_component_maintenance", **drydock) is None
        clock.now = T0 + 600  # no run in between
        assert (await scrape(client)).get("fleet_component_maintenance", **drydock) == 1
        clock.now = T0 + 1200
        assert (await scrape(client)).get("fleet_component_maintenance", **drydock) is None


class TestNext:
    async def test_the_next_window_of_a_component_and_none_for_others(self, fleet):
        clock = Clock(T0)
        _, _, client = await fleet([
            window("far", T0 + 7 * 86400, T0 + 8 * 86400, components=["server"]),
            window("soon", T0 + 3600, T0 + 7200, devices=["srv-2"]),
            window("past", T0 - 7200, T0 - 3600),
        ], clock)
        metrics = await scrape(client)
        soon = {**SERVER, "maintenance_window": "soon"}
        assert metrics.get("fleet_component_maintenance_next_start_timestamp_seconds",
                           **soon) == T0 + 3600
        assert metrics.get("fleet_component_maintenance_next_end_timestamp_seconds",
                           **soon) == T0 + 7200
        assert metrics.series("fleet_component_maintenance_next_start_timestamp_seconds",
                              component="access_point") == {}
        assert metrics.series("fleet_component_maintenance") == {}
        assert ages(metrics)[0] == 3600  # the past window ended before the outage began


class TestReload:
    async def test_a_changed_maintenance_list_takes_effect_at_the_reload(self, fleet):
        clock, ticks = Clock(T0), Ticks()
        path, url, client = await fleet([], clock, ticks=ticks)
        assert ages(await scrape(client))[0] == 3600
        assert (await scrape(client)).series("fleet_device_maintenance") == {}

        def rewrite(maintenance: list[dict[str, Any]]) -> None:
            write_config(path, [vessel("aurora", url, devices=DEVICES)],
                         collection=COLLECTION, maintenance=maintenance)

        rewrite([window("aurora-drydock", T0 - 60, T0 + 86400, components=["server"])])
        assert (await client.post("/-/reload")).status == 200
        metrics = await scrape(client)
        assert metrics.get("fleet_component_maintenance", maintenance_window="aurora-drydock",
                           **SERVER) == 1
        assert ages(metrics) == (0, 0, 0)

        rewrite([window("aurora-drydock", T0 - 60, T0 + 86400, vessels=["atlantis"])])
        response = await client.post("/-/reload")
        assert response.status == 500
        assert "maintenance[0].vessels[0]: unknown vessel 'atlantis'" in \
            (await response.json())["error"]
        assert ages(await scrape(client)) == (0, 0, 0)  # the running config stays

        rewrite([])
        assert (await client.post("/-/reload")).status == 200
        metrics = await scrape(client)
        assert metrics.series("fleet_component_maintenance") == {}
        assert metrics.series("fleet_maintenance_window_info") == {}
        assert ages(metrics) == (3600, 0, 3600)
