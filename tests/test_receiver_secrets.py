"""Credentials that JIRA or a proxy echo back never reach a page, the API or the log."""

import base64
import html
import logging
from pathlib import Path

from aiohttp import web

from receiver.config import load_config
from receiver.web import create_app
from tests.fake_jira import FakeJira
from tests.receiver_helpers import TOKEN, alert, fire, signed_in
from tests.receiver_helpers import write_receiver_config as write_config
from tests.test_receiver_jira import API_TOKEN, approve, jira_section, work

USER = "ops-bot@example.com"


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
