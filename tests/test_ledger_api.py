"""GET /api/v1/ledger: strict parameters, and hours that agree with the raw points."""

import calendar
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.appkeys import CONFIG_PATH, SERVICE
from simulator.fleetconfig import fleet_config, unused_loopback_url
from simulator.influx import seed
from simulator.scenarios import LINK_CUT, link_up, live_samples, plan_fleet
from tests.fake_influx import DeviceFacts
from tests.helpers import Clock, Ticks, scrape, vessel, write_config
from tests.servers import InfluxServer
from tests.test_http import T0, fleet  # noqa: F401  (the fixture)

HOUR = 3600
SERVER = "vessel=aurora&component=server&device=nav-server"
DAY0 = int(T0) - 86400  # on a whole hour: T0 is


def ledger_url(query: str) -> str:
    return f"/api/v1/ledger?{query}"


class TestParameters:
    @pytest.mark.parametrize(("query", "field"), [
        (f"component=server&device=nav-server&from={DAY0}&to={DAY0 + HOUR}", "vessel"),
        (f"vessel=aurora&device=nav-server&from={DAY0}&to={DAY0 + HOUR}", "component"),
        (f"vessel=aurora&component=server&from={DAY0}&to={DAY0 + HOUR}", "device"),
        (f"{SERVER}&to={DAY0 + HOUR}", "from"),
        (f"{SERVER}&from={DAY0}", "to"),
        (f"{SERVER}&from=yesterday&to={DAY0}", "from"),
        (f"{SERVER}&from={DAY0 + 1}&to={DAY0 + HOUR}", "from"),  # not a whole hour
        (f"{SERVER}&from={DAY0}&to=2027-13-01T00:00:00Z", "to"),
        (f"{SERVER}&from={DAY0}&to={DAY0}", "to"),
        (f"{SERVER}&from={DAY0}&to={DAY0 + 401 * 86400}", "to"),  # over 400 days
        (f"{SERVER}&from={DAY0}&from={DAY0}&to={DAY0 + HOUR}", "from"),
        (f"{SERVER}&from=%C2%B2&to={DAY0 + HOUR}", "from"),
        (f"{SERVER}&from=-3600&to={DAY0 + HOUR}", "from"),
        (f"{SERVER}&from={DAY0}&to={DAY0 + HOUR}&limit=5", "limit"),
        (f"vessel=&component=server&device=nav-server&from={DAY0}&to={DAY0 + HOUR}",
         "vessel"),
    ])
    async def test_a_bad_or_missing_parameter_is_a_400_naming_it(self, fleet, query, field):  # noqa: F811
        _, client = await fleet()
        response = await client.get(ledger_url(query))
        assert response.status == 400
        assert (await response.json())["error"].startswith(f"{field}: ")

    @pytest.mark.parametrize("query", [
        f"vessel=nowhere&component=server&device=nav-server&from={DAY0}&to={DAY0 + HOUR}",
        f"vessel=aurora&component=server&device=ap-bridge&from={DAY0}&to={DAY0 + HOUR}",
    ])
    async def test_an_unknown_vessel_or_device_is_a_404(self, fleet, query):  # noqa: F811
        _, client = await fleet()
        response = await client.get(ledger_url(query))
        assert response.status == 404
        assert "not found" in (await response.json())["error"]

    async def test_hours_of_a_range_by_state(self, fleet):  # noqa: F811
        # A sample a minute, the newest at T0 - 60: the oldest 1000 down, the newest 440 up.
        server = DeviceFacts(up=440, result_code=0, loss=0.0, last_sample=int(T0) - 60,
                             last_reply=int(T0) - 60)
        _, client = await fleet(server=server, clock=Clock(T0))
        response = await client.get(ledger_url(
            f"{SERVER}&from=2027-01-14T08:00:00Z&to={int(T0) + 2 * HOUR}"))
        assert response.status == 200
        body = await response.json()
        hours = body["hours"]
        assert len(hours) == 24  # none from now on
        assert hours[0]["start"] == "2027-01-14T08:00:00Z" == body["from"]
        for h in hours:
            assert h["up"] + h["down"] + h["maintenance"] + h["unobserved"] == HOUR
        # The ledger starts at DAY0 and reads points after it: the first, at DAY0 + 60,
        # stands for one minute; the sample at DAY0 + 3600 counts in the next hour.
        assert [h["down"] for h in hours[:17]] == [3540] + [3600] * 15 + [2400]
        assert [h["up"] for h in hours[16:]] == [1200] + [3600] * 7
        assert hours[0]["unobserved"] == 60
        assert [h["outages"] for h in hours] == [1] + [0] * 23
        assert hours[16]["longest_outage"] == 999 * 60
        assert body["totals"] == {"up": 440 * 60, "down": 999 * 60, "maintenance": 0,
                                  "unobserved": 60, "outages": 1,
                                  "longest_outage": 999 * 60}


def stretches(samples: list[tuple[int, bool]], cap: int) -> dict[int, dict[str, int]]:
    """The hours of `samples`, built from down stretches rather than sample by sample."""
    hours: dict[int, dict[str, int]] = {}
    runs: list[list[tuple[int, int]]] = []  # down stretches: [(time, duration), ...]
    before: tuple[int, bool] | None = None
    for t, up in samples:
        held = cap if before is None else min(t - before[0], cap)
        hour = hours.setdefault(t - t % HOUR, {"up": 0, "down": 0, "outages": 0,
                                                "longest_outage": 0})
        hour["up" if up else "down"] += held
        if not up:
            joined = before is not None and not before[1] and t - before[0] <= cap
            if joined:
                runs[-1].append((t, held))
            else:
                runs.append([(t, held)])
        before = (t, up)
    for run in runs:
        start = run[0][0] - run[0][1]
        hours[run[0][0] - run[0][0] % HOUR]["outages"] += 1
        for t, _ in run:
            hour = hours[t - t % HOUR]
            hour["longest_outage"] = max(hour["longest_outage"], t - start)
    return hours


async def raw_points(url: str, database: str) -> dict[str, list[tuple[int, bool]]]:
    q = ('SELECT "result_code", "percent_packet_loss" FROM "ping" WHERE time > now() - 30d '
         'GROUP BY "url"')
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}/query", params={"db": database, "q": q, "epoch": "s"}) as response:
        document: dict[str, Any] = await response.json()
    return {s["tags"]["url"]: [(t, loss is not None and loss < 100) for t, _, loss in s["values"]]
            for s in document["results"][0].get("series", [])}


class TestAgreement:
    async def test_the_ledger_agrees_with_the_raw_points(
        self, influxd: InfluxServer, exporter, tmp_path: Path
    ):
        vessels = [v for v in plan_fleet(8, id_prefix="agr")
                   if v.scenario not in ("unreachable", "no_data")]
        anchor = int(time.time())
        await seed(influxd.url, vessels, anchor, days=3)
        document = fleet_config(vessels, influxd.url, unused_loopback_url(), attempts=1,
                                timeout="30s", state_path=str(tmp_path / "state.db"))
        path = write_config(tmp_path / "fleet.yml", document.pop("vessels"), **document)
        client = await exporter(path, clock=time.time)
        start = (anchor - 4 * 86400) // HOUR * HOUR
        compared = 0
        for v in vessels:
            points = await raw_points(influxd.url, v.id)
            for d in v.devices:
                expected = stretches(sorted(points.get(d.address, [])), 60)
                response = await client.get(ledger_url(
                    f"vessel={v.id}&component={d.component}&device={d.name}"
                    f"&from={start}&to={(anchor // HOUR + 1) * HOUR}"))
                assert response.status == 200
                for row in (await response.json())["hours"]:
                    key = calendar.timegm(time.strptime(row["start"], "%Y-%m-%dT%H:%M:%SZ"))
                    want = expected.get(key, {"up": 0, "down": 0, "outages": 0,
                                              "longest_outage": 0})
                    got = {k: row[k] for k in want}
                    assert got == want, (v.scenario, d.name, row["start"])
                    compared += 1
        assert compared > 24 * 4 * 20  # every hour of every device


class TestMaintenanceHours:
    async def test_a_window_is_maintenance_in_the_ledger_and_left_out_of_uptime(
        self, tmp_path: Path, fake_influx, exporter
    ):
        # Down for the whole day; a window covers two of its hours on the server.
        down = DeviceFacts(up=0, result_code=1, loss=100.0, rtt_ms=None,
                           last_sample=int(T0) - 60, last_reply=None)
        _, url = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": down})
        dock = [{"id": "patch", "vessels": ["aurora"], "components": ["server"],
                 "start": "2027-01-14T10:00:00Z", "end": "2027-01-14T12:00:00Z",
                 "reason": "patching"}]
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", url)],
                              maintenance=dock,
                              collection={"interval": "1h", "timeout": "2s", "attempts": 1})
        client = await exporter(config, clock=Clock(T0))
        body = await (await client.get(ledger_url(
            f"{SERVER}&from=2027-01-14T09:00:00Z&to=2027-01-14T13:00:00Z"))).json()
        # Samples on each minute; each stands for the minute before it and counts in its
        # own hour: the 10:00 sample's minute is before the window, the 12:00 one's in it.
        assert [(h["down"], h["maintenance"]) for h in body["hours"]] == [
            (3600, 0), (60, 3540), (0, 3600), (3540, 60)]
        metrics = await scrape(client)
        observed = 1439 * 60 - 2 * HOUR  # a day of samples less the window
        coverage = metrics.get("fleet_device_coverage_ratio", vessel="aurora",
                               component="server", device="nav-server",
                               address="10.10.1.20", window="24h")
        assert coverage == pytest.approx(observed / (86400 - 2 * HOUR))
        assert metrics.get("fleet_device_uptime_ratio", vessel="aurora", component="server",
                           device="nav-server", address="10.10.1.20", window="24h") == 0


PATCH = {"id": "patch", "vessels": ["aurora"], "components": ["server"],
         "start": "2027-01-14T10:00:00Z", "end": "2027-01-14T12:00:00Z",
         "reason": "patching"}
NAV = "10.10.1.20"


class TestWindowsDeclaredAfterTheFact:
    """A window added or removed for hours the ledger has frozen already."""

    @pytest.fixture
    async def late(self, tmp_path: Path, fake_influx, exporter):
        """Factory: one vessel whose server was down all day, frozen without windows."""

        async def start(clock: Clock, ticks: Ticks, **sections: Any):
            down = DeviceFacts(up=0, result_code=1, loss=100.0, rtt_ms=None,
                               last_sample=int(T0) - 60, last_reply=None)
            fake, url = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": down})
            path = tmp_path / "fleet.yml"

            def configure(*windows: dict[str, Any]) -> None:
                write_config(path, [vessel("aurora", url)], maintenance=list(windows),
                             collection={"interval": "1h", "timeout": "2s", "attempts": 1,
                                         **sections})

            configure()
            client = await exporter(path, clock=clock, sleep=ticks)
            return fake, client, configure

        return start

    @staticmethod
    async def hours(client: Any) -> list[tuple[int, int, int, bool]]:
        body = await (await client.get(ledger_url(
            f"{SERVER}&from=2027-01-14T09:00:00Z&to=2027-01-14T13:00:00Z"))).json()
        return [(h["down"], h["maintenance"], h["up"], h["estimated"]) for h in body["hours"]]

    @staticmethod
    async def reload(client: Any) -> None:
        response = await client.post("/-/reload")
        assert response.status == 200, await response.text()

    async def test_an_added_window_is_read_again_exactly_and_a_removed_one_restores(
        self, late
    ):
        clock, ticks = Clock(T0), Ticks()
        fake, client, configure = await late(clock, ticks)
        before = await self.hours(client)
        assert before == [(3600, 0, 0, False)] * 4
        configure(PATCH)
        await self.reload(client)
        clock.now += 300
        await ticks.runs(client)
        # As if declared from the start: the minute offsets of the samples are exact.
        assert await self.hours(client) == [
            (3600, 0, 0, False), (60, 3540, 0, False), (0, 3600, 0, False),
            (3540, 60, 0, False)]
        # The re-read started just before the window's first hour, not at the backfill.
        since = [int(m[1]) for r in fake.requests
                 if (m := re.search(r"time > (\d+)s", r.form["q"]))]
        assert since[-1] == calendar.timegm((2027, 1, 14, 10, 0, 0)) - 61
        # The rest of the day is as it was: nothing counted twice.
        day = await (await client.get(ledger_url(
            f"{SERVER}&from={DAY0}&to={int(T0)}"))).json()
        assert day["totals"]["down"] + day["totals"]["maintenance"] == 1439 * 60
        assert day["totals"]["outages"] == 1
        configure()
        await self.reload(client)
        clock.now += 300
        await ticks.runs(client)
        assert await self.hours(client) == before

    async def test_points_the_vessel_no_longer_holds_are_estimated_and_flagged(
        self, late
    ):
        clock, ticks = Clock(T0), Ticks()
        fake, client, configure = await late(clock, ticks)
        # The vessel's InfluxDB now keeps only its last ten hours.
        fake.devices[NAV] = dataclasses.replace(fake.devices[NAV], total=600)
        configure(PATCH)
        await self.reload(client)
        clock.now += 300
        await ticks.runs(client)
        # The window's share of each hour moved from down into maintenance.
        assert await self.hours(client) == [
            (3600, 0, 0, False), (0, 3600, 0, True), (0, 3600, 0, True),
            (3600, 0, 0, False)]
        # What the vessel still holds is as it was.
        body = await (await client.get(ledger_url(
            f"{SERVER}&from=2027-01-14T12:00:00Z&to={int(T0)}"))).json()
        assert body["totals"]["down"] == 1200 * 60
        configure()
        await self.reload(client)
        clock.now += 300
        await ticks.runs(client)
        # Given back by the hour's samples, all down: still an estimate.
        assert await self.hours(client) == [
            (3600, 0, 0, False), (3600, 0, 0, True), (3600, 0, 0, True),
            (3600, 0, 0, False)]

    async def test_hours_older_than_the_lookback_are_estimated_without_a_re_read(
        self, late
    ):
        clock, ticks = Clock(T0), Ticks()
        _, client, configure = await late(clock, ticks, lookback="1d")
        clock.now += 6 * HOUR  # the window's hours are now beyond the lookback
        cursor = client.app[SERVICE].ledger.vessels["aurora"].frozen_until
        configure(PATCH)
        await self.reload(client)
        assert client.app[SERVICE].ledger.vessels["aurora"].frozen_until == cursor
        assert await self.hours(client) == [
            (3600, 0, 0, False), (0, 3600, 0, True), (0, 3600, 0, True),
            (3600, 0, 0, False)]

    async def test_an_unchanged_reload_touches_nothing(self, late):
        clock, ticks = Clock(T0), Ticks()
        _, client, configure = await late(clock, ticks)
        configure(PATCH)
        await self.reload(client)
        clock.now += 300
        await ticks.runs(client)
        service = client.app[SERVICE]
        cursor = service.ledger.vessels["aurora"].frozen_until
        before = await self.hours(client)
        configure(PATCH)
        await self.reload(client)
        assert service.ledger.vessels["aurora"].frozen_until == cursor
        assert not service.ledger.dirty
        assert await self.hours(client) == before

    async def test_a_window_added_while_the_exporter_was_down_applies_at_start(
        self, late, exporter
    ):
        clock, ticks = Clock(T0), Ticks()
        _, client, configure = await late(clock, ticks)
        config_path = client.app[CONFIG_PATH]
        await client.close()
        configure(PATCH)
        clock.now += 300
        again = await exporter(config_path, clock=clock, sleep=Ticks())
        assert await self.hours(again) == [
            (3600, 0, 0, False), (60, 3540, 0, False), (0, 3600, 0, False),
            (3540, 60, 0, False)]


class TestUnreachableAcrossMidnight:
    """The link to a vessel is down from 22:00 to 03:00 UTC while Telegraf aboard goes on
    writing; once it answers again the ledger holds every missed hour of both days, once."""

    async def test_the_missed_hours_are_filled_once_on_both_days(
        self, influxd: InfluxServer, exporter, tmp_path: Path
    ):
        [v] = plan_fleet(1, ["unreachable_midnight"], id_prefix="midnight")
        # Over a day back, so every point is in influxd's past whatever the injected clock.
        midnight = (int(time.time()) // 86400 - 1) * 86400
        cut, back = midnight + LINK_CUT[0], midnight + LINK_CUT[1]
        anchor = cut - HOUR  # 21:00: the history ends here, and the exporter starts
        await seed(influxd.url, [v], anchor, days=1)
        dead = unused_loopback_url()
        path = tmp_path / "fleet.yml"

        def configure(at: int) -> None:
            document = fleet_config([v], influxd.url, dead, at=at, attempts=1, timeout="5s",
                                    state_path=str(tmp_path / "state.db"))
            write_config(path, document.pop("vessels"), **document)

        def telegraf(until: int, written: int) -> int:
            """Write the samples Telegraf takes up to `until`; returns the last tick."""
            tick = written
            while anchor - 30 + (tick + 1) * 60 <= until:
                tick += 1
                influxd.write(v.id, live_samples(v, anchor, tick))
            return tick

        configure(anchor)
        clock, ticks = Clock(anchor), Ticks()
        client = await exporter(path, clock=clock, sleep=ticks)
        statuses = [(await scrape(client)).status(v.id)]
        written = 0
        for at in range(anchor + HOUR, back + 2 * HOUR, HOUR):  # 22:00 ... 04:00
            written = telegraf(at, written)
            if link_up(v, at) != link_up(v, at - HOUR):
                configure(at)
                response = await client.post("/-/reload")
                assert response.status == 200, await response.text()
            clock.now = at
            await ticks.runs(client)
            statuses.append((await scrape(client)).status(v.id))
        assert statuses == ["ok"] + ["unreachable"] * 5 + ["ok"] * 2

        # Every hour from the history's last before the cut to the last closed one, on
        # both sides of midnight, agrees with the raw points and holds exactly its hour.
        points = await raw_points(influxd.url, v.id)
        first, last = cut - 2 * HOUR, back + HOUR  # 20:00 to 04:00, the clock at the end
        for d in v.devices:
            expected = stretches(sorted(points[d.address]), 60)
            response = await client.get(ledger_url(
                f"vessel={v.id}&component={d.component}&device={d.name}"
                f"&from={first}&to={last + HOUR}"))
            assert response.status == 200
            rows = {calendar.timegm(time.strptime(r["start"], "%Y-%m-%dT%H:%M:%SZ")): r
                    for r in (await response.json())["hours"]}
            assert set(rows) == set(range(first, last, HOUR))  # none from the clock on
            days = set()
            for key in range(first, last, HOUR):
                row = rows[key]
                assert {k: row[k] for k in expected[key]} == expected[key], (d.name, key)
                assert (row["up"], row["down"], row["unobserved"]) == (HOUR, 0, 0), key
                days.add(key // 86400)
            assert days == {midnight // 86400 - 1, midnight // 86400}
