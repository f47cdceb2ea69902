"""The fleet console through HTTP: overview, vessel page, run log pages, JSON API, SSE."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from exporter.appkeys import SERVICE
from exporter.config import ConfigError, load_config
from tests.fake_influx import DeviceFacts, reply, slow
from tests.helpers import Clock, Ticks, vessel, write_config
from tests.html_tree import Element, parse

T0 = 1_800_000_000.0
DAY = 86400
DOWN = DeviceFacts(up=1000, result_code=1, loss=100.0, rtt_ms=None,
                   last_sample=int(T0) - 60, last_reply=int(T0) - 3600)
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
async def fleet(tmp_path: Path, fake_influx, exporter):
    """Factory: an exporter over one fake vessel, MV <Aurora> & Co, with an access point
    (up) and a server (down for an hour, 24 h uptime 69.5 % by time: in breach)."""

    async def start(*responders, server=DOWN, ap=None, ready=True, query_timeout="2s",
                    devices=None, links=None, maintenance=None, **options):
        fake, url = await fake_influx(**{"10_10_1_5": ap or DeviceFacts(), "10_10_1_20": server})
        fake.script.extend(responders)
        extra = {"devices": devices} if devices else {}
        sections: dict[str, Any] = {"links": links} if links else {}
        if maintenance:
            sections["maintenance"] = maintenance
        config = write_config(
            tmp_path / "fleet.yml", [vessel("aurora", url, name="MV <Aurora> & Co", **extra)],
            collection={"interval": "1h", "timeout": query_timeout, "attempts": 1}, **sections)
        return fake, await exporter(config, ready=ready, **options)

    return start


async def page(client, path: str) -> Element:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/html")
    return parse(await response.text())


def rows(doc: Element) -> dict[str, Element]:
    return {li.one("a", "name").attrs["href"].rsplit("/", 1)[1]: li
            for li in doc.all("li", "vessel")}


def tiles(row: Element) -> dict[str, str]:
    return {t.one("b").text: t.text for t in row.all("a", "tile")}


def devices(doc: Element) -> dict[str, dict[str, str]]:
    return {r["name"]: r for r in doc.one("table", "devices").table()}


class TestOverview:
    async def test_a_breach_tile_and_the_summary(self, fleet):
        _, client = await fleet()
        doc = await page(client, "/")
        row = rows(doc)["aurora"]
        assert "MV <Aurora> & Co" in row.text  # parsed back: it was escaped on the page
        assert row.one(cls="status").text == "✓ ok"
        shown = tiles(row)
        assert shown["server"] == "server ✗ breach 69.54 %"
        assert shown["access_point"] == "access_point ✓ ok 100.00 %"
        [server] = [t for t in row.all("a", "tile") if t.one("b").text == "server"]
        assert "t-breach" in server.classes and "below the objective" in server.attrs["title"]
        summary = doc.by_id("summary").text
        assert "1 of 2 components with data meet their objective; 0 without data" in summary
        assert "1 breach" in summary and "0 at risk" in summary
        assert "Last run: success" in summary and "1 vessels answered, 0 failed" in summary

    async def test_a_component_in_dry_dock_is_maintenance_not_breach(self, fleet):
        dock = [{"id": "aurora-dock", "vessels": ["aurora"], "components": ["server"],
                 "start": "2027-01-15T00:00:00Z", "end": "2027-02-15T00:00:00Z",
                 "reason": "dry dock", "reference": "OPS-1"}]
        clock = Clock(T0 + 60)
        _, client = await fleet(maintenance=dock, clock=clock)
        row = rows(await page(client, "/"))["aurora"]
        [server] = [t for t in row.all("a", "tile") if t.one("b").text == "server"]
        assert "t-maintenance" in server.classes and "maintenance" in server.text
        summary = (await page(client, "/")).by_id("summary").text
        assert "0 breach" in summary and "1 maintenance" in summary
        assert (await (await client.get("/api/v1/violations")).json())["violations"] == []
        vessel_page = (await page(client, "/vessels/aurora")).text
        assert "aurora-dock (dry dock, OPS-1) until 2027-02-15 00:00 UTC" in vessel_page
        clock.now = 1_802_649_600.0 + 60  # the window ended on 2027-02-15
        row = rows(await page(client, "/"))["aurora"]
        [server] = [t for t in row.all("a", "tile") if t.one("b").text == "server"]
        assert "t-breach" in server.classes

    async def test_rows_follow_runs_and_the_clock(self, fleet):
        clock, ticks = Clock(T0 + 60), Ticks()
        fake, client = await fleet(clock=clock, sleep=ticks)
        assert "0 down > 3 days" in (await page(client, "/")).by_id("summary").text
        clock.now += 3 * DAY  # no run: the outage crosses 3 days by the clock alone
        assert "1 down > 3 days" in (await page(client, "/")).by_id("summary").text
        fake.devices["10.10.1.20"] = DeviceFacts(last_sample=int(clock.now) - 30,
                                                 last_reply=int(clock.now) - 30)
        await ticks.runs(client, 2)  # the ledger catches up 2 d a request (max_catchup)
        row = rows(await page(client, "/"))["aurora"]
        assert tiles(row)["server"] == "server ✓ ok 100.00 %"

    async def test_names_are_escaped(self, fleet):
        _, client = await fleet()
        html = await (await client.get("/")).text()
        assert "MV &lt;Aurora&gt; &amp; Co" in html and "<Aurora>" not in html

    async def test_a_vessel_without_data_is_grey_and_never_down(
            self, tmp_path: Path, fake_influx, exporter):
        _, url = await fake_influx()  # answers, but holds nothing about either device
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", url)])
        client = await exporter(config)
        row = rows(await page(client, "/"))["aurora"]
        status = row.one(cls="status")
        assert status.text == "○ no data" and "s-no_data" in status.classes
        assert "Not downtime" in status.attrs["title"]
        assert set(tiles(row).values()) == {"access_point ○ no data —", "server ○ no data —"}
        assert "down" not in row.text
        vessel_page = await page(client, "/vessels/aurora")
        assert {d["state"] for d in devices(vessel_page).values()} == {"? unknown"}

    async def test_worst_first_filters_and_search(self, tmp_path: Path, fake_influx, exporter):
        _, empty = await fake_influx()
        _, bad = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DOWN})
        _, fine = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DeviceFacts()})
        config = write_config(tmp_path / "fleet.yml", [
            vessel("alpha", fine, name="MV Alpha"), vessel("bravo", empty, name="MV Bravo"),
            vessel("charlie", bad, name="MV Charlie")])
        client = await exporter(config)
        assert list(rows(await page(client, "/"))) == ["charlie", "bravo", "alpha"]
        assert list(rows(await page(client, "/?sort=name"))) == ["alpha", "bravo", "charlie"]
        assert list(rows(await page(client, "/?state=breach"))) == ["charlie"]
        assert list(rows(await page(client, "/?data=no_data"))) == ["bravo"]
        assert list(rows(await page(client, "/?q=alp"))) == ["alpha"]
        assert list(rows(await page(client, "/?q=ALPHA&state=breach"))) == []
        chips = (await page(client, "/?q=x")).one("nav", "chips")
        assert chips.all("a")[1].attrs["href"] == "/?state=breach&q=x"

    @pytest.mark.parametrize(("query", "name"), [
        ("state=down", "state"), ("data=fine", "data"), ("sort=best", "sort"),
        ("q=" + "x" * 101, "q"), ("state=%3Cb%3E", "state"),
    ])
    async def test_a_bad_parameter_is_a_400_naming_it(self, fleet, query: str, name: str):
        _, client = await fleet()
        response = await client.get(f"/?{query}")
        assert response.status == 400
        # Plain text: a value echoed back is never markup.
        assert response.headers["Content-Type"].startswith("text/plain")
        assert (await response.text()).startswith(f"{name}: ")
        api = await client.get(f"/api/v1/fleet?{query}")
        assert api.status == 400 and (await api.json())["error"].startswith(f"{name}: ")

    async def test_compressed_when_asked(self, fleet):
        _, client = await fleet()
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
        assert response.headers.get("Content-Encoding") == "gzip"
        assert "fleet-sla console" in await response.text()


class TestVesselPage:
    async def test_header_components_devices_and_attempts(self, fleet):
        ticks = Ticks()
        fake, client = await fleet(sleep=ticks, clock=Clock(T0 + 60))
        fake.script.append(reply(status=503, body="InfluxDB is <down>"))
        await ticks.runs(client)
        doc = await page(client, "/vessels/aurora")
        assert doc.one("h1").text == "MV <Aurora> & Co aurora"
        assert "⇹ unreachable" in doc.one("p", "header").text
        facts = doc.one("dl", "facts").text
        assert "last success 2027-01-15 08:01:00Z" in facts
        components = {r["component"]: r for r in doc.one("table", "components").table()}
        server = components["server"]
        assert server["state"] == "✗ breach" and server["24h uptime"] == "69.54 %"
        assert server["objective"] == "95 %" and server["down for"].startswith("1h 1m")
        assert server["24 h budget left"] == "-6h 6m of 1h 12m"
        # The vessel did not answer: the up access point is unknown now, its ok only so.
        assert components["access_point"]["state"] == "? unknown"
        table = devices(doc)
        assert table["nav-server"]["IP address"] == "10.10.1.20"
        assert table["nav-server"]["state"] == "▼ down"
        assert table["nav-server"]["down since"] == "2027-01-15 07:00:00Z"
        assert table["ap-bridge"]["state"] == "? unknown"
        assert table["ap-bridge"]["IP address"] == "10.10.1.5"
        attempts = doc.by_id("attempts").one("table").table()
        assert [a["status"] for a in attempts] == ["⇹ unreachable", "✓ ok"]
        assert attempts[0]["error"].startswith("HTTP 503 from 127.0.0.1:")
        assert doc.one("dl", "facts").text.endswith(attempts[0]["error"])
        history = doc.by_id("history")
        assert "one cell an hour" in history.text
        strips = {d.one("summary").text: d for d in history.all("details", "component")}
        assert set(strips) == {"access_point", "server"}
        assert "✗" in strips["server"].text and "down" in strips["server"].text
        assert "✗" not in strips["access_point"].text
        status = rows(await page(client, "/"))["aurora"].one(cls="status")
        assert status.text == "⇹ unreachable" and "Not downtime" in status.attrs["title"]
        assert status.attrs["title"].endswith(f"Last error: {attempts[0]['error']}")

    async def test_devices_of_an_answering_vessel(self, fleet):
        _, client = await fleet()
        table = devices(await page(client, "/vessels/aurora"))
        assert table["ap-bridge"]["state"] == "▲ up"
        assert table["ap-bridge"]["RTT"] == "20.0 ms" and table["ap-bridge"]["loss"] == "0 %"
        assert table["ap-bridge"]["24 h uptime"] == "100.00 %"
        assert table["nav-server"]["state"] == "▼ down"

    async def test_stale_vessel_keeps_down_and_forgets_up(
            self, tmp_path: Path, fake_influx, exporter):
        old = int(T0) - DAY
        _, url = await fake_influx(**{
            "10_10_1_5": DeviceFacts(last_sample=old, last_reply=old),
            "10_10_1_20": DeviceFacts(result_code=1, loss=100.0, rtt_ms=None,
                                      last_sample=old, last_reply=old - 3600),
        })
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", url)])
        client = await exporter(config, clock=Clock(T0))
        doc = await page(client, "/vessels/aurora")
        assert "◔ stale" in doc.one("p", "header").text
        table = devices(doc)
        assert table["ap-bridge"]["state"] == "? unknown"
        assert table["nav-server"]["state"] == "▼ down"

    async def test_pending_vessel(self, fleet):
        _, client = await fleet(slow(2), query_timeout="5s", ready=False)
        doc = await page(client, "/vessels/aurora")
        assert "… pending" in doc.one("p", "header").text
        assert {d["state"] for d in devices(doc).values()} == {"? unknown"}

    async def test_hostile_device_names_are_escaped(self, fleet):
        hostile = [{"address": "10.10.1.5", "component": "access_point", "name": HOSTILE},
                   {"address": "10.10.1.20", "component": "server", "name": "srv"}]
        _, client = await fleet(devices=hostile)
        html = await (await client.get("/vessels/aurora")).text()
        assert HOSTILE not in html and "&lt;script&gt;" in html

    async def test_unknown_vessel_is_a_404(self, fleet):
        _, client = await fleet()
        for path in ("/vessels/nope", "/vessels/%3Cb%3E"):
            response = await client.get(path)
            assert response.status == 404
            assert response.headers["Content-Type"].startswith("text/plain")
        api = await client.get("/api/v1/vessels/nope")
        assert api.status == 404 and "not found" in (await api.json())["error"]

    async def test_links_to_the_receiver_and_grafana(self, fleet):
        _, client = await fleet(links={
            "receiver": "http://receiver.example:9471/",
            "grafana": "http://grafana.example/d/fleet-vessel?var-vessel={vessel}"})
        links = {a.text: a.attrs["href"] for a in
                 (await page(client, "/vessels/aurora")).one("p", "links").all("a")}
        assert links == {"incidents on the receiver": "http://receiver.example:9471/",
                         "Grafana dashboard": "http://grafana.example/d/fleet-vessel?"
                                              "var-vessel=aurora"}

    @pytest.mark.parametrize("url", ["javascript:alert(1)", "http://user:pw@host/", "http:/x"])
    def test_a_link_must_be_http(self, tmp_path: Path, url: str):
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", "http://127.0.0.1:1")],
                              links={"grafana": url})
        with pytest.raises(ConfigError, match=r"links\.grafana"):
            load_config(config)


class TestApi:
    async def test_fleet(self, fleet):
        _, client = await fleet()
        body = await (await client.get("/api/v1/fleet")).json()
        assert body["summary"]["with_data"] == 2 and body["summary"]["meeting"] == 1
        assert body["summary"]["states"]["breach"] == 1
        [row] = body["vessels"]
        assert row["id"] == "aurora" and row["status"] == "ok" and row["rank"] == 0
        server = next(t for t in row["tiles"] if t["component"] == "server")
        # By time: 1,000 minutes up of the 1,438 observed (the last two are not yet seen).
        assert server["state"] == "breach" and server["uptime"] == pytest.approx(1000 / 1438)

    async def test_vessel(self, fleet):
        _, client = await fleet()
        body = await (await client.get("/api/v1/vessels/aurora")).json()
        assert body["name"] == "MV <Aurora> & Co"
        server = next(d for d in body["devices"] if d["name"] == "nav-server")
        assert server["address"] == "10.10.1.20" and server["state"] == "down"
        assert server["down_since"] == T0 - 3600
        history = body["history"]
        assert history["available"] is True
        strips = {s["label"]: s for s in history["strips"]}
        assert set(strips) == {"access_point", "server", "ap-bridge (10.10.1.5)",
                               "nav-server (10.10.1.20)"}
        today = strips["server"]["days"][-1]
        assert set(today["hours"]) <= set("udgm") and len(today["hours"]) == 9  # to 08:00

    async def test_violations(self, fleet):
        gone = DeviceFacts(up=1440 - 60, result_code=1, loss=100.0, rtt_ms=None,
                           last_sample=int(T0) - 60, last_reply=int(T0) - 4 * DAY)
        _, client = await fleet(server=gone)
        body = await (await client.get("/api/v1/violations")).json()
        assert body == {"violations": [{
            "vessel": "aurora", "vessel_name": "MV <Aurora> & Co", "component": "server",
            "kinds": ["at_risk", "down_3d"], "uptime": pytest.approx(1380 / 1438),
            "objective": 0.95, "down_since": T0 - 4 * DAY}]}


class TestRunPages:
    async def test_runs_and_one_run(self, fleet):
        _, client = await fleet(slow(1), query_timeout="200ms")
        doc = await page(client, "/runs")
        [run] = doc.one("table").table()
        assert run["result"] == "failed" and run["failed"] == "1" and run["retries"] == "0"
        run_id = run["run"].lstrip("#")
        detail = (await page(client, f"/runs/{run_id}")).one("table").table()
        assert detail == [{"vessel": "MV <Aurora> & Co aurora", "status": "⇹ unreachable",
                           "attempts": "1", "duration": detail[0]["duration"], "bytes": "0 B",
                           "error": "timed out after 0.2s"}]
        none = (await page(client, "/runs?result=success")).one("tbody").text
        assert none == "No runs with result success."

    @pytest.mark.parametrize(("path", "status", "start"), [
        ("/runs?result=ok", 400, "result: "), ("/runs?before=x", 400, "before: "),
        ("/runs/abc", 400, "id: "), ("/runs/99999", 404, "run 99999 not found"),
    ])
    async def test_bad_input(self, fleet, path: str, status: int, start: str):
        _, client = await fleet()
        response = await client.get(path)
        assert response.status == status and (await response.text()).startswith(start)


async def read_events(response, count: int) -> list[tuple[str, str, dict]]:
    """The next `count` events of a stream: (id, kind, data)."""
    events: list[tuple[str, str, dict]] = []
    fields: dict[str, str] = {}
    while len(events) < count:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode().rstrip("\n")
        if line == "":
            if "event" in fields:
                data = json.loads(fields["data"]) if fields.get("data", "").strip() else {}
                events.append((fields.get("id", ""), fields["event"], data))
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value
    return events


class TestEvents:
    async def test_a_run_and_its_progress_arrive(self, fleet):
        ticks = Ticks()
        _, client = await fleet(sleep=ticks)
        response = await client.get("/api/v1/events")
        assert response.headers["Content-Type"] == "text/event-stream"
        [(_, hello, _)] = await read_events(response, 1)
        assert hello == "hello"
        await ticks.runs(client)
        got = await read_events(response, 3)
        assert [kind for _, kind, _ in got] == ["run_started", "vessel_collected",
                                                "run_finished"]
        assert got[1][2] == {"done": 1, "total": 1, "vessel": "aurora", "status": "ok"}
        assert got[2][2]["result"] == "success" and got[2][2]["id"] == 2
        response.close()

    async def test_a_reconnect_gets_what_it_missed(self, fleet):
        ticks = Ticks()
        _, client = await fleet(sleep=ticks)
        hub = client.app[SERVICE].events
        seen = hub.last_id
        await ticks.runs(client)
        response = await client.get("/api/v1/events", headers={"Last-Event-ID": str(seen)})
        got = await read_events(response, 4)
        assert [kind for _, kind, _ in got] == ["hello", "run_started", "vessel_collected",
                                                "run_finished"]
        assert got[-1][0] == str(hub.last_id)
        response.close()

    async def test_reload_is_announced(self, fleet):
        _, client = await fleet()
        response = await client.get("/api/v1/events")
        await read_events(response, 1)
        assert (await client.post("/-/reload")).status == 200
        [(_, kind, data)] = await read_events(response, 1)
        assert kind == "config_reloaded" and data == {"vessels": 1}
        response.close()

    async def test_streams_close_on_shutdown(self, fleet):
        _, client = await fleet()
        responses = [await client.get("/api/v1/events") for _ in range(100)]
        for response in responses:
            await read_events(response, 1)
        await client.app.shutdown()  # what the server does first when it stops
        for response in responses:
            assert await asyncio.wait_for(response.content.read(), 5) == b""


class TestMaintenancePage:
    async def test_windows_in_force_first_with_what_they_cover(self, fleet):
        windows = [
            {"id": "later-refit", "vessels": ["aurora"], "components": ["server"],
             "start": "2027-03-01T00:00:00Z", "end": "2027-03-21T00:00:00Z",
             "reason": "refit", "reference": "OPS-9"},
            {"id": "aurora-dock", "vessels": ["aurora"], "devices": ["nav-server"],
             "start": "2027-01-15T00:00:00Z", "end": "2027-02-15T00:00:00Z",
             "reason": "dry <dock>"},
            {"id": "sunday-patching", "vessels": ["*"], "components": ["server"],
             "weekly": {"day": "sunday", "at": "02:00", "duration": "2h",
                        "timezone": "Europe/Oslo"}, "reason": "patch window"},
            {"id": "old", "vessels": ["aurora"], "start": "2026-01-01T00:00:00Z",
             "end": "2026-01-02T00:00:00Z", "reason": "gone"},
        ]
        _, client = await fleet(maintenance=windows, clock=Clock(T0 + 60))
        doc = await page(client, "/maintenance")
        table = doc.one("section").one("table").table()
        assert [r["window"] for r in table] == ["aurora-dock", "later-refit",
                                                 "sunday-patching", "old"]
        dock, refit, sunday, old = table
        assert dock["state"] == "in force" and dock["now or next"] == "until 2027-02-15 00:00 UTC"
        assert dock["reason"] == "dry <dock>"  # escaped on the page, read back as text
        assert dock["covers"] == "aurora: every component; devices nav-server"
        assert refit["state"] == "next" and refit["reference"] == "OPS-9"
        assert refit["now or next"] == "2027-03-01 00:00 UTC to 2027-03-21 00:00 UTC"
        assert sunday["covers"] == "every vessel: server"
        assert sunday["declared as"] == "every sunday at 02:00 Europe/Oslo, for 2 h"
        assert sunday["now or next"] == "2027-01-17 01:00 UTC to 2027-01-17 03:00 UTC"
        assert old["state"] == "over" and old["now or next"] == ""

    async def test_no_windows_says_so(self, fleet):
        _, client = await fleet()
        assert "No maintenance window is declared." in (await page(client, "/maintenance")).text
