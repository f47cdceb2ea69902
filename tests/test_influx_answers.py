"""Odd InfluxDB answers fail one vessel with a clear error; they never crash a run."""

import base64
import gzip
import json
import logging
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from exporter.config import ConfigError, load_config
from exporter.influxql import device_regex
from simulator.answers import FAKE_NOW, regex_addresses
from tests.fake_influx import DeviceFacts, reply, slow, streamed
from tests.helpers import Clock, Ticks, scrape, vessel, write_config
from tests.hostile import assert_plain

AP, SRV = "10.10.1.5", "10.10.1.20"
# The test vessel's answer cap: 2 devices x (8 KiB + 32 B per raw point), room for twice
# the points of one catch-up (2 d + 120 s settle of 60 s samples, 2882) plus 16.
CAP = 2 * (8192 + 32 * (2 * 2882 + 16))  # 386304
TOKEN = "tok-Very-Secret-42"


async def last_run(client) -> dict:
    runs = await (await client.get("/api/v1/runs?limit=1")).json()
    run = await (await client.get(f"/api/v1/runs/{runs['runs'][0]['id']}")).json()
    return run


@pytest.fixture
async def one_vessel(tmp_path: Path, fake_influx, exporter):
    """Factory: a one-vessel fleet behind a fake InfluxDB scripted with `responders`."""

    async def start(*responders, attempts: int = 3, query_timeout: str = "2s", **influx):
        fake, url = await fake_influx(**{AP.replace(".", "_"): DeviceFacts(),
                                         SRV.replace(".", "_"): DeviceFacts()})
        fake.script.extend(responders)
        config = write_config(
            tmp_path / "fleet.yml", [vessel("aurora", url, influx=influx)],
            collection={"interval": "1h", "timeout": query_timeout, "attempts": attempts,
                        "backoff": "10ms"},
        )
        client = await exporter(config)
        return fake, client, await scrape(client), await last_run(client)

    return start


BROKEN_ANSWERS = [
    pytest.param(reply(body="<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
                 "expected a JSON answer, got text/html", id="html-page"),
    pytest.param(reply(body='{"results": [{"statement_id": 0, "series": [{"na'),
                 "invalid JSON in answer", id="truncated-json"),
    # json.loads raises UnicodeDecodeError, a ValueError without the .msg of JSONDecodeError.
    pytest.param(reply(body=b'{"results": "\xff"}'),
                 "answer is not UTF-8 (byte 13)", id="not-utf8"),
    pytest.param(reply(body=json.dumps({"results": [
        {"statement_id": i, "error": "database not found: telegraf"} for i in range(5)]})),
                 "statement 0 (edge:total): database not found: telegraf", id="statement-error"),
    pytest.param(reply(body=json.dumps({"results": [
        {"statement_id": i, "series": [{"name": "ping", "tags": {"url": AP},
                                        "columns": ["time", "count"], "values": []}]}
        for i in range(5)]})),
                 "empty series", id="empty-series"),
    pytest.param(reply(body=json.dumps({"results": []})),
                 "malformed answer: 0 results for 5 statements", id="no-results"),
    pytest.param(reply(body=json.dumps({"results": [
        {"statement_id": i, "series": [{"name": "ping", "tags": {"url": AP},
                                        "columns": ["time", "count"], "values": [[0, "many"]]}]}
        for i in range(5)]})),
                 "expected a number, got 'many'", id="non-numeric"),
    pytest.param(reply(body=json.dumps([1, 2])), "expected a JSON object", id="json-array"),
    pytest.param(reply(body=gzip.compress(b'{"results": []}' * 50)[:40],
                       headers={"Content-Encoding": "gzip"}),
                 "truncated gzip answer", id="truncated-gzip"),
    pytest.param(streamed(b'{"results": [' + b" " * (9 * 1024 * 1024) + b"]}"),
                 f"answer too large: over {CAP} bytes", id="oversized"),
    pytest.param(reply(status=400, body='{"error": "error parsing query: found EOF"}'),
                 "HTTP 400: error parsing query: found EOF", id="bad-query"),
    pytest.param(reply(status=404, body="404 page not found", content_type="text/plain"),
                 "HTTP 404", id="not-found"),
]


class TestBrokenAnswers:
    @pytest.mark.parametrize(("responder", "message"), BROKEN_ANSWERS)
    async def test_query_error_without_retry(self, one_vessel, responder, message):
        fake, _client, metrics, run = await one_vessel(responder)
        assert metrics.status("aurora") == "query_error"
        assert metrics.get("fleet_vessel_up", vessel="aurora") == 0
        assert len(fake.requests) == 1, "a bad answer is not retried"
        assert run["result"] == "failed"
        [entry] = run["vessels"]
        assert entry["status"] == "query_error"
        assert message in entry["error"]
        assert entry["attempts"] == 1
        # Nothing was observed, so nothing is claimed about the devices.
        assert metrics.series("fleet_device_up") == {}

    @pytest.mark.parametrize("status", [401, 403])
    async def test_auth_errors_are_not_retried(self, one_vessel, status):
        fake, _, metrics, run = await one_vessel(
            reply(status=status, body='{"error": "authorization failed"}'), token=TOKEN
        )
        assert metrics.status("aurora") == "auth_error"
        assert len(fake.requests) == 1
        assert run["vessels"][0]["error"] == f"HTTP {status}: authorization failed"

    async def test_secrets_in_an_answer_are_redacted(self, one_vessel):
        echo = reply(status=400, body=json.dumps({"error": f"bad token {TOKEN}"}))
        _, client, metrics, run = await one_vessel(echo, token=TOKEN)
        assert run["vessels"][0]["error"] == "HTTP 400: bad token ***"
        # The console's vessel page shows the last error; the overview its status.
        page = await (await client.get("/vessels/aurora")).text()
        assert TOKEN not in page and TOKEN not in metrics.text
        assert "bad token ***" in page


class TestRetries:
    async def test_5xx_then_success(self, one_vessel):
        fake, _, metrics, run = await one_vessel(reply(status=503, body="busy"))
        assert metrics.status("aurora") == "ok"
        assert metrics.get("fleet_vessel_collect_attempts", vessel="aurora") == 2
        assert len(fake.requests) == 2
        assert run["result"] == "success"

    async def test_persistent_5xx_uses_every_attempt(self, one_vessel):
        fake, _, metrics, run = await one_vessel(*[reply(status=500)] * 3, attempts=3)
        assert metrics.status("aurora") == "unreachable"
        assert len(fake.requests) == 3
        host = fake.requests[0].headers["Host"]  # 127.0.0.1:port
        assert run["vessels"][0] == {**run["vessels"][0], "attempts": 3,
                                     "error": f"HTTP 500 from {host} (3 attempts)"}

    async def test_timeout_is_retried_then_reported(self, one_vessel):
        fake, _, metrics, run = await one_vessel(
            slow(2), slow(2), attempts=2, query_timeout="200ms"
        )
        assert metrics.status("aurora") == "unreachable"
        assert len(fake.requests) == 2
        assert run["vessels"][0]["error"] == "timed out after 0.2s (2 attempts)"
        assert 0.4 <= metrics.get("fleet_vessel_collect_duration_seconds", vessel="aurora") < 1.5


class TestRequest:
    async def test_one_compressed_request_carries_every_statement(self, one_vessel):
        fake, _, metrics, _ = await one_vessel()
        [request] = fake.requests
        assert request.headers["Accept-Encoding"] == "gzip"
        statements = request.form["q"].split(";\n")
        # Nothing known yet: the edge counts (this request folds the 24 h window's oldest
        # hour), the newest sample and reply over the lookback, and the raw points.
        assert [s.split(" FROM")[0] for s in statements] == [
            'SELECT count("result_code")', 'SELECT count("percent_packet_loss")',
            'SELECT "result_code", "percent_packet_loss", "average_response_ms"',
            'SELECT "percent_packet_loss"', 'SELECT "result_code", "percent_packet_loss"']
        # The device regex once, as a bound parameter, its common prefix said once.
        assert json.loads(request.form["params"]) == {"d": {"regex": "^10\\.10\\.1\\.(5|20)$"}}
        assert all('"url" =~ $d' in s for s in statements)
        assert request.form["db"] == "telegraf" and request.form["epoch"] == "s"
        params = request.form["params"]
        wire = len(gzip.compress(json.dumps(fake.answer(statements, params)).encode()))
        assert metrics.get("fleet_vessel_response_bytes", vessel="aurora") == wire

    async def test_steady_state_is_the_points_alone_with_the_regex_once(
            self, tmp_path: Path, fake_influx, exporter):
        """Issue 13: 20 devices, request and answer under 2 KB once the ledger is caught up;
        the device regex travels once."""
        addresses = [f"10.20.1.{n}" for n in range(1, 21)]
        fake, url = await fake_influx(**{a.replace(".", "_"): DeviceFacts() for a in addresses})
        devices = [{"address": a, "component": "server", "name": f"d{n}"}
                   for n, a in enumerate(addresses)]
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", url, devices=devices)])
        clock, ticks = Clock(FAKE_NOW + 60), Ticks()
        client = await exporter(config, clock=clock, sleep=ticks)
        clock.now += 60
        await ticks.runs(client)
        first, steady = fake.requests
        assert len(first.form["q"].split(";\n")) == 5
        [points] = steady.form["q"].split(";\n")
        assert points.startswith('SELECT "result_code", "percent_packet_loss", '
                                 '"average_response_ms" FROM "ping" WHERE time > ')
        regex = "^10\\.20\\.1\\.(" + "|".join(str(n) for n in range(1, 21)) + ")$"
        assert json.loads(steady.form["params"]) == {"d": {"regex": regex}}
        assert "10\\.20" not in steady.form["q"]
        assert steady.wire < 700
        metrics = await scrape(client)
        answer = metrics.get("fleet_vessel_response_bytes", vessel="aurora")
        # influxd's own response headers add about 250 bytes.
        assert steady.wire + answer + 250 < 2048
        assert metrics.status("aurora") == "ok"
        assert len(metrics.series("fleet_device_up", vessel="aurora")) == 20

    async def test_token_auth_header(self, one_vessel):
        fake, *_ = await one_vessel(token=TOKEN)
        assert fake.requests[0].headers["Authorization"] == f"Token {TOKEN}"

    async def test_basic_auth_keeps_credentials_out_of_the_url(self, one_vessel):
        fake, *_ = await one_vessel(username="reader", password=TOKEN)
        [request] = fake.requests
        scheme, _, encoded = request.headers["Authorization"].partition(" ")
        assert scheme == "Basic"
        assert base64.b64decode(encoded).decode() == f"reader:{TOKEN}"
        assert request.query == {}
        assert TOKEN not in json.dumps(request.form)


def results(*series_per_statement: list[dict]) -> dict:
    """A /query answer: the given series for each of the 5 statements (1 window)."""
    return {"results": [{"statement_id": i, "series": s}
                        for i, s in enumerate(series_per_statement)]}


def counted(address: str, count: object = 1) -> dict:
    return {"name": "ping", "tags": {"url": address}, "columns": ["time", "count"],
            "values": [[0, count]]}


def answer_with(first_series: list[dict]) -> str:
    """Statement 0 (total:24h) holds `first_series`; the others hold nothing."""
    return json.dumps(results(first_series, [], [], [], []))


HOSTILE_ANSWERS = [
    pytest.param(reply(body=answer_with([counted(AP, 2**70)])),
                 "statement 0 (edge:total) series 0 column count: number out of range",
                 id="integer-beyond-64-bits"),
    pytest.param(reply(body=answer_with([counted(AP, 10**400)])),
                 "column count: number out of range", id="integer-beyond-float"),
    pytest.param(reply(body=answer_with([counted(AP, 1e300)])),
                 "column count: number out of range", id="float-out-of-range"),
    pytest.param(reply(body='{"results": [' + "9" * 5000 + "]}"),
                 "invalid JSON in answer", id="integer-with-5000-digits"),
    pytest.param(reply(body="[" * 30_000 + "]" * 30_000),
                 "JSON nested too deeply", id="deeply-nested"),
    pytest.param(reply(body=b'{"results": [], "note": "caf\xe9"}'),
                 "answer is not UTF-8", id="not-utf-8"),
    pytest.param(reply(body=answer_with([counted(AP), counted("10.9.9.9")])),
                 "statement 0 (edge:total) series 1: device '10.9.9.9' was not asked for",
                 id="unexpected-device"),
    pytest.param(reply(body=answer_with([counted(AP), counted(AP)])),
                 "statement 0 (edge:total) series 1: device '10.10.1.5' appears twice",
                 id="device-twice"),
    pytest.param(reply(body=answer_with([counted(f"10.0.0.{n}") for n in range(3)])),
                 "statement 0 (edge:total): 3 series for 2 devices", id="too-many-series"),
    pytest.param(reply(body=json.dumps(results(*[[{"tags": {"url": AP}}]] * 5))),
                 "statement 0 (edge:total) series 0: missing columns", id="no-columns"),
    pytest.param(reply(body=json.dumps({"results": "many"})),
                 "no results for 5 statements", id="results-not-a-list"),
    pytest.param(reply(status=400, body="[" * 60_000),
                 "HTTP 400: no JSON error message", id="deeply-nested-error"),
    pytest.param(reply(body=b'{"results": [' + b" " * 500_000 + b"]}"),
                 f"answer too large: 500015 bytes, the cap for 2 devices is {CAP} bytes",
                 id="over-the-vessel-cap"),
    pytest.param(streamed(b'{"results": [' + b"{}," * 200_000 + b"{}]}"),
                 f"answer too large: over {CAP} bytes, the cap for 2 devices is {CAP} bytes",
                 id="over-the-vessel-cap-streamed"),
    pytest.param(reply(body=gzip.compress(b" " * 1_000_000),
                       headers={"Content-Encoding": "gzip"}),
                 f"answer too large: over {CAP} bytes decoded, the cap for 2 devices is {CAP}",
                 id="gzip-bomb"),
]


class TestHostileAnswers:
    """Every malformed answer is a query_error that names the problem in words."""

    @pytest.mark.parametrize(("responder", "message"), HOSTILE_ANSWERS)
    async def test_query_error_names_the_problem(self, one_vessel, responder, message):
        fake, client, metrics, run = await one_vessel(responder)
        [entry] = run["vessels"]
        assert (entry["status"], metrics.status("aurora")) == ("query_error", "query_error")
        assert message in entry["error"]
        assert_plain(entry["error"])
        assert len(fake.requests) == 1, "a bad answer is not retried"
        assert metrics.series("fleet_device_up") == {}
        # The console's vessel page shows the last error; the overview its status.
        page = await (await client.get("/vessels/aurora")).text()
        assert "unexpected error" not in page


class TestEchoedCredentials:
    """A server that echoes the request shows no credential on the page, the API or the log."""

    PASSWORD = "p@ss/w rd+9Secret"

    async def outlets(self, client, run: dict, caplog) -> str:
        # The console's vessel page shows the last error; the overview its status.
        page = await (await client.get("/vessels/aurora")).text()
        metrics = await (await client.get("/metrics")).text()
        return "\n".join([json.dumps(run), page, metrics, caplog.text])

    async def test_every_form_of_the_configured_password_is_redacted(self, one_vessel, caplog):
        caplog.set_level(logging.DEBUG)
        basic = base64.b64encode(f"reader:{self.PASSWORD}".encode()).decode()
        echo = (f"rejected POST /query?u=reader&p={quote(self.PASSWORD, safe='')} "
                f"Authorization: Basic {basic} raw {self.PASSWORD} "
                f"form {quote_plus(self.PASSWORD)}")
        _, client, _, run = await one_vessel(
            reply(status=400, body=json.dumps({"error": echo})),
            username="reader", password=self.PASSWORD)
        shown = await self.outlets(client, run, caplog)
        for form in (self.PASSWORD, quote(self.PASSWORD, safe=""), quote_plus(self.PASSWORD),
                     basic, "9Secret"):
            assert form not in shown, form
        assert run["vessels"][0]["error"] == (
            "HTTP 400: rejected POST /query?u=***&p=*** Authorization: Basic *** raw *** "
            "form ***")

    async def test_credentials_nobody_configured_are_redacted(self, one_vessel, caplog):
        caplog.set_level(logging.DEBUG)
        echo = ("upstream http://bob:hunter2@10.0.0.9:3128 said token=zz-unlisted-1 "
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
        _, client, _, run = await one_vessel(
            reply(status=400, body=json.dumps({"error": echo})), token=TOKEN)
        shown = await self.outlets(client, run, caplog)
        for secret in ("hunter2", "zz-unlisted-1", "eyJhbGciOiJIUzI1NiJ9"):
            assert secret not in shown, secret
        assert run["vessels"][0]["error"] == (
            "HTTP 400: upstream http://***@10.0.0.9:3128 said token=*** "
            "Authorization: Bearer ***")

    async def test_a_short_token_is_refused_by_the_config(self, tmp_path: Path):
        # Redacting "ime" would garble "timed out" and show where it stands.
        config = write_config(tmp_path / "fleet.yml",
                              [vessel("aurora", "http://127.0.0.1:9", influx={"token": "ime"})])
        with pytest.raises(ConfigError, match=r"vessels\[0\]\.influx\.token: too short "
                                              r"\(3 characters\)"):
            load_config(config)


class TestDeviceRegex:
    @pytest.mark.parametrize("addresses", [
        ["10.20.1.1", "10.20.1.2", "10.20.1.17"],
        ["10.0.0.1", "10.0.0.10"],  # one is the other's prefix
        ["nav.bridge-2.local"],
        ["fe80::1", "a/b", "o'brien", "x|y", "10.0.0.1", "(", "a\\b"],
    ])
    def test_matches_exactly_its_addresses(self, addresses):
        regex = device_regex(addresses)
        # RE2 and Python agree on anchors, groups, alternation and escaped punctuation.
        compiled = re.compile(regex)
        assert all(compiled.fullmatch(a) and compiled.match(a) for a in addresses)
        for other in ("10.20.1.100", "10.20.1.1x", "10.0.0.100", "10.0.0.2", "nav", "x",
                      "fe80::10", "10x20x1x1"):
            assert other in addresses or not compiled.match(other), other
        assert regex_addresses(regex) == addresses  # as the fakes read it back

    def test_the_common_prefix_is_said_once(self):
        addresses = [f"10.20.1.{n}" for n in range(1, 21)]
        assert device_regex(addresses) == (
            "^10\\.20\\.1\\.(" + "|".join(str(n) for n in range(1, 21)) + ")$")
