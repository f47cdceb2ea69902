"""The Flux backend, through the exporter's HTTP interface.

Equivalence: for every simulator scenario, a Flux vessel reports exactly what an InfluxQL
vessel reports from the same samples. No InfluxDB 2 runs here, so the Flux side is a
loopback server speaking InfluxDB 2's wire format over a real influxd's points.
"""

import copy
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.service import Sleep
from simulator.answers import FAKE_NOW
from simulator.fleetconfig import fleet_config, unused_loopback_url
from simulator.flux_csv import error_table, healthy_answer
from simulator.influx import seed
from simulator.scenarios import SCENARIOS, plan_fleet
from tests.fake_flux import FakeFlux, Responder, csv_response, reply
from tests.helpers import Clock, Metrics, Ticks, scrape, vessel, write_config
from tests.hostile import assert_plain
from tests.servers import InfluxServer

TOKEN = "reader:Fl0x-Secret-77"
# Per-run figures that depend on the wire format or the moment, not on the data.
RUN_ONLY = {"fleet_vessel_response_bytes", "fleet_vessel_collect_duration_seconds",
            "fleet_vessel_last_success_timestamp_seconds"}


def flux_influx(url: str, database: str) -> dict[str, Any]:
    return {"url": url, "api": "flux", "org": "-", "bucket": f"{database}/autogen",
            "token": TOKEN}


@pytest.fixture
async def fake_flux(aiohttp_server) -> Callable[..., Awaitable[tuple[FakeFlux, str]]]:
    async def start(influx_url: str = "") -> tuple[FakeFlux, str]:
        fake = FakeFlux(influx_url=influx_url, token=TOKEN)
        server = await aiohttp_server(fake.app())
        return fake, f"http://127.0.0.1:{server.port}"

    return start


def fleet_figures(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: value for key, value in metrics.samples.items()
            if key[0].startswith(("fleet_device_", "fleet_component_", "fleet_vessel_"))
            and key[0] not in RUN_ONLY}


class TestEquivalence:
    @staticmethod
    def same_figures(results: dict[str, Metrics], vessels) -> None:
        by_scenario = {v.scenario: v.id for v in vessels}
        for metrics in results.values():
            assert {s: metrics.status(v) for s, v in by_scenario.items()} == {
                "healthy": "ok", "flapping": "ok", "down_4d": "ok", "breach": "ok",
                "gap": "ok", "stale": "stale", "no_data": "no_data",
                "unreachable": "unreachable", "dry_dock": "ok", "interval_change": "ok",
                "unreachable_midnight": "ok"}
            down = metrics.series("fleet_device_up", vessel=by_scenario["down_4d"])
            assert sorted(down.values()) == [0, 1, 1, 1]
        expected, got = (fleet_figures(results[n]) for n in ("influxql", "flux"))
        assert len(expected) > 300
        assert any(k[0].endswith("_age_seconds") and v > 0 for k, v in expected.items())
        mismatched = {k: (expected.get(k), got.get(k)) for k in expected.keys() | got.keys()
                      if expected.get(k) != got.get(k)}
        assert mismatched == {}

    async def test_every_scenario_gives_the_same_figures(
        self, influxd: InfluxServer, fake_flux, exporter, tmp_path: Path
    ):
        vessels = plan_fleet(len(SCENARIOS), id_prefix="flx")
        # Anchored 15 s ahead: both collections, within 45 s, see the same window edges.
        await seed(influxd.url, vessels, int(time.time()) + 15, days=5)
        fake, flux_url = await fake_flux(influxd.url)
        dead = unused_loopback_url()
        influxql = fleet_config(vessels, influxd.url, dead, attempts=1, timeout="30s",
                                state_path=str(tmp_path / "influxql.db"))
        flux = copy.deepcopy(influxql)
        flux["state"]["path"] = str(tmp_path / "flux.db")
        for entry in flux["vessels"]:
            url = dead if entry["influx"]["url"] == dead else flux_url
            entry["influx"] = flux_influx(url, entry["influx"]["database"])
        configs = {}
        for name, document in (("influxql", influxql), ("flux", flux)):
            path = tmp_path / f"{name}.yml"
            write_config(path, document.pop("vessels"), **document)
            configs[name] = path

        # InfluxDB's now() is the wall clock's, so the exporter's is too; one frozen reading
        # of it for both makes their downtime ages comparable to the second.
        clock, ticks = Clock(time.time()), Ticks()
        clients = {name: await exporter(path, clock=clock, sleep=ticks)
                   for name, path in configs.items()}
        results = {name: await scrape(client) for name, client in clients.items()}
        assert len(fake.requests) == len(SCENARIOS) - 1  # one per reachable vessel
        self.same_figures(results, vessels)

        # Steady state: the raw points alone, the newest and the window's edge from them.
        clock.now = time.time()
        for client in clients.values():
            await ticks.runs(client)
        steady = fake.requests[len(SCENARIOS) - 1:]
        assert len(steady) == len(SCENARIOS) - 1
        assert all(r["body"]["query"].count("yield(") == 1 for r in steady)
        results = {name: await scrape(client) for name, client in clients.items()}
        self.same_figures(results, vessels)

        # The ledgers too: every closed hour of every device, from the API.
        start = (int(time.time()) - 6 * 86400) // 3600 * 3600
        end = start + 7 * 86400
        closed = 0
        for v in vessels:
            if v.scenario == "unreachable":
                continue
            for d in v.devices:
                query = (f"/api/v1/ledger?vessel={v.id}&component={d.component}"
                         f"&device={d.name}&from={start}&to={end}")
                ledgers = [await (await c.get(query)).json() for c in clients.values()]
                hours = [{h["start"]: h for h in ledger["hours"] if not h["open"]}
                         for ledger in ledgers]
                common = hours[0].keys() & hours[1].keys()
                assert len(common) >= 6 * 24 - 1
                assert {k: hours[0][k] for k in common} == {k: hours[1][k] for k in common}
                closed += sum(1 for k in common if hours[0][k]["up"] + hours[0][k]["down"])
        assert closed > 20 * 5 * 24 - 30  # hours with samples: five days on most devices


@pytest.fixture
async def flux_vessel(tmp_path: Path, fake_flux, exporter):
    """Factory: a one-vessel Flux fleet whose server answers with `responders`."""

    async def start(*responders, attempts: int = 3, interval: str = "1h",
                    sleep: Sleep | None = None, **extra):
        fake, url = await fake_flux()
        fake.script.extend(responders)
        entry = vessel("aurora", url, **extra)
        entry["influx"] = flux_influx(url, "telegraf")
        config = write_config(
            tmp_path / "fleet.yml", [entry],
            collection={"interval": interval, "timeout": "2s", "attempts": attempts,
                        "backoff": "10ms"},
        )
        client = await exporter(config, **({"sleep": sleep} if sleep else {}))
        runs = await (await client.get("/api/v1/runs?limit=1")).json()
        run = await (await client.get(f"/api/v1/runs/{runs['runs'][0]['id']}")).json()
        return fake, client, await scrape(client), run["vessels"][0]

    return start


def healthy(then: str = "") -> Responder:
    """Every device up for a day, newest sample 30 s old; `then` is appended to the CSV."""
    async def respond(request: web.Request) -> web.Response:
        script = (await request.json())["query"]
        return csv_response(healthy_answer(script, FAKE_NOW) + then)
    return respond


class TestAnswers:
    async def test_an_empty_answer_is_no_data(self, flux_vessel):
        _, _, metrics, entry = await flux_vessel(reply(text=""))
        assert metrics.status("aurora") == "no_data"
        assert entry["attempts"] == 1 and entry["error"] is None
        assert metrics.series("fleet_device_up") == {}

    async def test_a_well_formed_answer_is_read(self, flux_vessel):
        _, _, metrics, _ = await flux_vessel(healthy())
        assert metrics.status("aurora") == "ok"
        assert sorted(metrics.series("fleet_device_up").values()) == [1, 1]
        assert sorted(metrics.series("fleet_device_uptime_ratio").values()) == [1, 1]
        newest = metrics.get("fleet_vessel_newest_sample_timestamp_seconds", vessel="aurora")
        assert newest == FAKE_NOW - 30

    async def test_an_error_in_the_middle_of_the_stream(self, flux_vessel):
        broken = healthy(then="\r\n" + error_table("panic: out of memory"))
        fake, _, metrics, entry = await flux_vessel(broken)
        assert metrics.status("aurora") == "query_error"
        assert entry["error"] == "InfluxDB error: panic: out of memory"
        assert len(fake.requests) == 1, "a query error is not retried"
        assert metrics.series("fleet_device_up") == {}, "nothing half-read is claimed"

    @pytest.mark.parametrize("status", [401, 403])
    async def test_auth_errors_are_not_retried(self, flux_vessel, status):
        body = '{"code":"unauthorized","message":"unauthorized access"}'
        fake, _, metrics, entry = await flux_vessel(
            reply(status, body, content_type="application/json"))
        assert metrics.status("aurora") == "auth_error"
        assert entry["error"] == f"HTTP {status}: unauthorized access"
        assert len(fake.requests) == 1

    async def test_a_rejected_query_is_not_retried(self, flux_vessel):
        body = '{"code":"invalid","message":"compilation failed: bucket \\"x\\" not found"}'
        fake, _, metrics, entry = await flux_vessel(
            reply(400, body, content_type="application/json"))
        assert metrics.status("aurora") == "query_error"
        assert entry["error"] == 'HTTP 400: compilation failed: bucket "x" not found'
        assert len(fake.requests) == 1

    async def test_a_gzip_stream_cut_short_is_not_taken_for_no_data(self, flux_vessel):
        """InfluxDB flushes after each result: a cut stream can decode to whole results."""
        async def cut(request: web.Request) -> web.Response:
            text = healthy_answer((await request.json())["query"], FAKE_NOW)
            packer = zlib.compressobj(wbits=31)
            body = packer.compress(text.encode()) + packer.flush(zlib.Z_SYNC_FLUSH)
            return web.Response(body=body[: len(body) // 2], content_type="text/csv",
                                headers={"Content-Encoding": "gzip"})

        fake, _, metrics, entry = await flux_vessel(cut)
        assert metrics.status("aurora") == "query_error"
        assert entry["error"] == "truncated gzip answer"
        assert len(fake.requests) == 1

    async def test_bytes_on_the_wire_are_counted(self, flux_vessel):
        ticks = Ticks()
        _, client, metrics, _ = await flux_vessel(healthy(), healthy(), sleep=ticks)
        # The first request reads a day of raw points: about 350 KB of CSV, gzipped.
        backfill = metrics.get("fleet_vessel_response_bytes", vessel="aurora")
        assert backfill and 5000 < backfill < 50_000
        await ticks.runs(client)
        # Then only the points after the ledger's cursor.
        steady = (await scrape(client)).get("fleet_vessel_response_bytes", vessel="aurora")
        assert steady and steady < 1500

    async def test_a_flux_compile_error_from_influxdb_1_8_keeps_its_reason(self, flux_vessel):
        body = '{"error": "type error 2:4-2:20: missing required argument bucket"}'
        fake, _, metrics, entry = await flux_vessel(
            *[reply(500, body, content_type="application/json")] * 3)
        assert metrics.status("aurora") == "unreachable"
        assert len(fake.requests) == 3
        host = fake.requests[0]["headers"]["Host"]  # 127.0.0.1:port
        assert entry["error"] == (f"HTTP 500 from {host}: type error 2:4-2:20: missing "
                                  "required argument bucket (3 attempts)")

    async def test_influxdb_1_8_without_flux_says_how_to_fix_it(self, flux_vessel):
        body = "Flux query service disabled. Verify flux-enabled=true in the [http] section"
        fake, _, metrics, entry = await flux_vessel(reply(403, body, content_type="text/plain"))
        assert metrics.status("aurora") == "query_error"
        assert "set [http] flux-enabled = true, or use api: influxql" in entry["error"]
        assert len(fake.requests) == 1

    async def test_only_line_breaks_end_a_row(self, flux_vessel):
        text = ("#group,false,false,true,false,false\r\n"
                "#datatype,string,long,string,string,long\r\n#default,edge:total,,,,\r\n"
                ",result,table,url,host,_value\r\n,,0,10.10.1.5,bridge\u2028deck,1440\r\n")
        _, _, metrics, entry = await flux_vessel(reply(text=text))
        assert entry["error"] is None
        assert metrics.status("aurora") == "no_data"  # counts, but no newest sample

    async def test_5xx_is_retried(self, flux_vessel):
        fake, _, metrics, entry = await flux_vessel(*[reply(503, "busy")] * 3)
        assert metrics.status("aurora") == "unreachable"
        host = fake.requests[0]["headers"]["Host"]
        assert entry == {**entry, "attempts": 3, "error": f"HTTP 503 from {host} (3 attempts)"}
        assert len(fake.requests) == 3

    @pytest.mark.parametrize(("text", "message"), [
        pytest.param("#datatype,string,long,string,long\r\n#group,false,false,true,false\r\n"
                     "#default,edge:total,,,\r\n,result,table,url,_value\r\n,,0,10.10.1.5,many\r\n",
                     "column _value: expected long, got 'many'", id="non-numeric"),
        pytest.param(",result,table,url\r\n,,0,10.10.1.5\r\n",
                     "a table without annotations", id="no-annotations"),
        pytest.param("#datatype,string,long,string\r\n#default,nonsense,,\r\n"
                     ",result,table,url\r\n,,0,10.10.1.5\r\n",
                     "unexpected result 'nonsense'", id="unknown-result"),
        pytest.param("#datatype,string,long,long\r\n#default,edge:total,,\r\n"
                     ",result,table,_value\r\n,,0,5\r\n",
                     "result edge:total: column url missing", id="no-device-tag"),
    ])
    async def test_malformed_answers_name_what_is_wrong(self, flux_vessel, text, message):
        fake, _, metrics, entry = await flux_vessel(reply(text=text))
        assert metrics.status("aurora") == "query_error"
        assert message in entry["error"]
        assert len(fake.requests) == 1


class TestRequest:
    async def test_one_gzip_request_with_one_script(self, flux_vessel):
        fake, _, _, _ = await flux_vessel(reply(text=""))
        [request] = fake.requests
        assert request["headers"]["Authorization"] == f"Token {TOKEN}"
        assert "gzip" in request["headers"]["Accept-Encoding"]
        assert request["query"] == {"org": "-"}
        script = request["body"]["query"]
        assert 'from(bucket: "telegraf/autogen")' in script
        assert script.count("yield(") == 5  # 2 edge counts, latest, last reply, raw points
        assert '=~ /^(10\\.10\\.1\\.5|10\\.10\\.1\\.20)$/' in script
        assert request["body"]["dialect"]["annotations"] == ["datatype", "group", "default"]

    async def test_a_secret_in_an_answer_is_redacted(self, flux_vessel):
        body = f'{{"message":"bad token {TOKEN}"}}'
        _, client, metrics, entry = await flux_vessel(
            reply(400, body, content_type="application/json"))
        assert entry["error"] == "HTTP 400: bad token ***"
        # The console's vessel page shows the last error; the overview its status.
        page = await (await client.get("/vessels/aurora")).text()
        assert TOKEN not in page and TOKEN not in metrics.text

    async def test_a_secret_at_the_cut_is_still_redacted(self, flux_vessel):
        body = json.dumps({"message": "x" * 380 + " " + TOKEN})
        _, _, _, entry = await flux_vessel(reply(400, body, content_type="application/json"))
        assert entry["error"].endswith("x ***") and TOKEN[:6] not in entry["error"]

    async def test_addresses_are_escaped_for_every_flux_parser(self, flux_vessel):
        devices = [{"address": "fe80::1", "component": "server", "name": "nav"},
                   {"address": "gw_main.ship/1", "component": "access_point", "name": "gw"}]
        fake, *_ = await flux_vessel(reply(text=""), devices=devices)
        # Rust's regex crate before 1.8 rejects \: and \_; RE2 takes both forms.
        assert "=~ /^(fe80::1|gw_main\\.ship\\/1)$/" in fake.requests[0]["body"]["query"]

    async def test_the_client_is_kept_between_runs(self, flux_vessel):
        ticks = Ticks()
        fake, client, *_ = await flux_vessel(sleep=ticks)
        await ticks.runs(client, 2)
        assert len(fake.requests) == 3
        # The same client keeps its connection: every run arrives on one socket.
        assert len({r["peer"] for r in fake.requests}) == 1


def counts_csv(*rows: tuple[str, str], datatype: str = "long") -> str:
    """An edge:total result with one (address, value) row each."""
    head = (f"#datatype,string,long,string,{datatype}\r\n#group,false,false,true,false\r\n"
            "#default,edge:total,,,\r\n,result,table,url,_value\r\n")
    return head + "".join(f",,{n},{a},{v}\r\n" for n, (a, v) in enumerate(rows))


def latest_csv(rows: int) -> str:
    head = ("#datatype,string,long,string,string,dateTime:RFC3339,double\r\n"
            "#group,false,false,true,true,false,false\r\n#default,latest,,,,,\r\n"
            ",result,table,url,_field,_time,_value\r\n")
    return head + "".join(f",,{n},10.10.1.5,percent_packet_loss,2030-01-01T00:00:00Z,0\r\n"
                          for n in range(rows))


HOSTILE_CSV = [
    pytest.param(reply(text=counts_csv(("10.10.1.5", str(2**70)))),
                 "column _value: expected long, got '1180591620717411303424'",
                 id="long-beyond-64-bits"),
    pytest.param(reply(text=counts_csv(("10.10.1.5", "9" * 5000))),
                 "column _value: expected long, got '9999", id="long-with-5000-digits"),
    pytest.param(reply(text=counts_csv(("10.10.1.5", "1e999"), datatype="double")),
                 "column _value: expected double", id="double-infinite"),
    pytest.param(reply(text=counts_csv(("10.10.1.5", "1"), ("10.9.9.9", "1"))),
                 "result edge:total: device '10.9.9.9' was not asked for",
                 id="unexpected-device"),
    pytest.param(reply(text=latest_csv(100)),
                 "result latest: more than 64 rows for 2 devices", id="too-many-rows"),
    pytest.param(reply(text=latest_csv(1).replace("2030-01-01T00:00:00Z", "99999-01-01")),
                 "column _time: expected dateTime:RFC3339", id="absurd-time"),
    pytest.param(reply(text=latest_csv(1).replace(",0\r\n", ',"' + "x" * 4_000_000 + '"\r\n')),
                 "answer too large: 400", id="over-the-vessel-cap"),
    pytest.param(reply(text=latest_csv(1).replace(",0\r\n", ',"' + "x" * 60_000 + '"\r\n')),
                 "column _value: expected double, got 'xxx", id="huge-cell"),
    pytest.param(reply(400, "[" * 60_000, content_type="application/json"),
                 "HTTP 400: no JSON error message", id="deeply-nested-error"),
]


async def not_utf8(request: web.Request) -> web.Response:
    return web.Response(body=b"#datatype,string\r\n#default,caf\xe9\r\n", content_type="text/csv")


class TestHostileAnswers:
    """Every malformed answer is a query_error that names the problem in words."""

    @pytest.mark.parametrize(("responder", "message"), [
        *HOSTILE_CSV, pytest.param(not_utf8, "answer is not UTF-8", id="not-utf-8")])
    async def test_query_error_names_the_problem(self, flux_vessel, responder, message):
        fake, _, metrics, entry = await flux_vessel(responder)
        assert (entry["status"], metrics.status("aurora")) == ("query_error", "query_error")
        assert message in entry["error"]
        assert_plain(entry["error"])
        assert len(fake.requests) == 1, "a bad answer is not retried"
        assert metrics.series("fleet_device_up") == {}
