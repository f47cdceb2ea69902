"""Credentials that JIRA or a proxy echo back never reach a page, the API or the log."""

import base64
import html
import logging
from pathlib import Path

import pytest
from aiohttp import web

from receiver.config import load_config
from receiver.web import create_app
from tests import test_receiver_jira
from tests.fake_jira import FakeJira
from tests.helpers import Clock
from tests.outbox_helpers import attempted, next_pass, task
from tests.receiver_helpers import TOKEN, alert, fire, signed_in
from tests.receiver_helpers import write_receiver_config as write_config
from tests.test_receiver_jira import API_TOKEN, approve, jira_section, work

USER = "ops-bot@example.com"
jira_chain = test_receiver_jira.jira_chain  # the fixture, shared


class EchoingJira(FakeJira):
    """A JIRA (or a proxy before it) whose error repeats what it was sent."""

    async def create(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        encoded = base64.b64encode(f"{USER}:{API_TOKEN}".encode()).decode()
        return web.json_response({"errorMessages": [
            f"rejected Authorization: {header}",
            f"api token {API_TOKEN} is not valid; credentials {encoded}",
            f"also saw bearer {TOKEN} at https://{USER}:{API_TOKEN}@jira.example/x",
            "hint: retry with password=hunter2 or ?token=abc123",
        ], "errors": {}}, status=400)


def _secrets() -> list[str]:
    encoded = base64.b64encode(f"{USER}:{API_TOKEN}".encode()).decode()
    return [API_TOKEN, TOKEN, encoded, "hunter2", "abc123"]


async def test_echoed_credentials_are_redacted_everywhere(tmp_path: Path, aiohttp_server,
                                                          aiohttp_client, caplog):
    caplog.set_level(logging.DEBUG)
    fake = EchoingJira()
    server = await aiohttp_server(fake.app())
    path = write_config(tmp_path / "receiver.yml",
                        jira=jira_section(f"http://127.0.0.1:{server.port}"))
    client = await aiohttp_client(create_app(load_config(path)))
    incident = await fire(client, alert())
    await approve(client, incident)
    found = await work(client, incident, "create", state="failed")
    [task] = found["ticket_work"]
    assert task["state"] == "failed"
    assert "JIRA answered 400" in task["last_error"]
    assert "rejected Authorization: Basic ***" in task["last_error"]
    assert "https://***@jira.example/x" in task["last_error"]

    api = await (await client.get(f"/api/v1/incidents/{incident}",
                                  headers=signed_in("bob"))).text()
    listing = await (await client.get("/api/v1/incidents", headers=signed_in("bob"))).text()
    page = html.unescape(await (await client.get(f"/incidents/{incident}",
                                                 headers=signed_in("bob"))).text())
    assert "JIRA answered 400" in page
    for where, text in (("api", api), ("listing", listing), ("page", page),
                        ("log", caplog.text)):
        for secret in _secrets():
            assert secret not in text, (where, secret)


ENCODED = base64.b64encode(f"{USER}:{API_TOKEN}".encode()).decode()
ECHO = {"echo": f"Authorization: Basic {ENCODED}", "p": "password=hunter2"}


async def _shown_everywhere(client, incident: int, caplog) -> list[tuple[str, str]]:
    """What the API, the incident page (as a viewer) and the DEBUG log say."""
    api = await (await client.get(f"/api/v1/incidents/{incident}",
                                  headers=signed_in("bob"))).text()
    listing = await (await client.get("/api/v1/incidents", headers=signed_in("bob"))).text()
    page = html.unescape(await (await client.get(f"/incidents/{incident}",
                                                 headers=signed_in("bob"))).text())
    # The database's own log repeats every statement with its values.
    assert any(r.name == "aiosqlite" for r in caplog.records)
    return [("api", api), ("listing", listing), ("page", page), ("log", caplog.text)]


def _assert_no_secret(places: list[tuple[str, str]], *more: str) -> None:
    for where, text in places:
        for secret in (API_TOKEN, ENCODED, "hunter2", *more):
            assert secret not in text, (where, secret)


async def test_an_echo_in_a_search_after_an_uncertain_create_is_redacted(jira_chain, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aiosqlite")
    fake, receiver = await jira_chain(cloud=True)
    clock = Clock()
    fake.clock, fake.search_lag_seconds = clock, 3600.0
    fake.on_create = "reset"  # the create's outcome is unknown: only its marker is searched
    client = await receiver(clock, jira_timeout=0.3)
    incident = await fire(client, alert())
    await approve(client, incident)
    await attempted(client, incident, "create")
    fake.on_create = None
    fake.answers["search"] = (200, {"issues": [{"key": 1, **ECHO}]})
    found = await next_pass(client, clock, incident, "create")
    error = task(found, "create")["last_error"]
    assert "JIRA may have made the ticket" in error
    assert "issues[0].key is not an issue key" in error
    assert "Basic ***" in error and "password=***" in error
    _assert_no_secret(await _shown_everywhere(client, incident, caplog))


@pytest.mark.parametrize("answer", [
    {"key": 1, **ECHO},
    # The token would straddle the excerpt's cut: half a secret is still a leak.
    {"key": 1, "pad": "x" * 81, "t": API_TOKEN},
], ids=["echo", "cut"])
async def test_an_echo_in_an_odd_create_answer_is_redacted(jira_chain, caplog, answer):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aiosqlite")
    fake, receiver = await jira_chain(cloud=True)
    clock = Clock()
    fake.clock, fake.search_lag_seconds = clock, 3600.0
    fake.answers["create"] = (201, answer)  # a 2xx with no usable key: JIRA may have made it
    client = await receiver(clock)
    incident = await fire(client, alert())
    await approve(client, incident)
    found = await attempted(client, incident, "create")
    error = task(found, "create")["last_error"]
    assert "create answered no issue key" in error
    _assert_no_secret(await _shown_everywhere(client, incident, caplog), API_TOKEN[:8])
