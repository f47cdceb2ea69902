"""Tickets in a fake JIRA through the real `jira` library: Server and Cloud, failures."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from receiver.config import load_config
from receiver.jira_tickets import JiraTickets
from receiver.tickets import dedupe_label
from receiver.web import create_app
from tests.fake_jira import FakeJira
from tests.helpers import Clock
from tests.receiver_helpers import alert, annotated, fire, signed_in
from tests.receiver_helpers import write_receiver_config as write_config

KEY = "alertname=FleetComponentDownPersistent,vessel=v002,component=server"
API_TOKEN = "jira-api-token-xyz"


def jira_section(url: str, **extra) -> dict:
    section = {"url": url, "project": "OPS", "username": "ops-bot@example.com",
               "api_token": API_TOKEN, "labels": ["fleet-sla"], "resolve_transition": "Done",
               **extra}
    return {k: v for k, v in section.items() if v is not None}


@pytest.fixture
async def jira_chain(tmp_path: Path, aiohttp_server, aiohttp_client):
    """Factory: a fake JIRA, and a receiver factory pointed at it (same database)."""

    async def start(cloud: bool = False, **jira):
        fake = FakeJira(cloud=cloud)
        server = await aiohttp_server(fake.app())
        url = f"http://127.0.0.1:{server.port}"
        path = write_config(tmp_path / "receiver.yml", jira=jira_section(url, **jira))

        async def receiver(clock=None, jira_timeout=None):
            config = load_config(path)
            options = {"clock": clock} if clock is not None else {}
            if jira_timeout is not None:  # a short read timeout, to lose create answers
                options["tickets"] = JiraTickets(config.jira, clock=clock or time.time,
                                                 timeout=jira_timeout)
            return await aiohttp_client(create_app(config, **options))

        return fake, receiver

    return start


async def approve(client, incident: int) -> None:
    response = await client.post(f"/api/v1/incidents/{incident}/approve",
                                 json={"comment": "go"}, headers=signed_in())
    assert response.status == 200


async def ticketed_then_resolved(client, clock: Clock) -> int:
    """An incident approved, ticketed, and resolved 10 minutes later."""
    incident = await fire(client, alert())
    await approve(client, incident)
    await work(client, incident, "create")
    clock.now += 600
    await fire(client, alert(status="resolved", ends=clock.now))
    return incident


async def work(client, incident: int, kind: str, state: str = "done") -> dict:
    """The incident once its `kind` ticket work reached `state` (or failed)."""
    async with asyncio.timeout(15):
        while True:
            response = await client.get(f"/api/v1/incidents/{incident}", headers=signed_in())
            found = await response.json()
            if any(w["kind"] == kind and w["state"] in (state, "failed")
                   for w in found["ticket_work"]):
                return found
            await asyncio.sleep(0.05)


class TestServer:
    async def test_approval_creates_one_ticket_with_its_labels(self, jira_chain):
        fake, receiver = await jira_chain()
        client = await receiver()
        incident = await fire(client, annotated())
        await approve(client, incident)
        found = await work(client, incident, "create")
        assert found["ticket_key"] == "OPS-1"
        [issue] = fake.issues.values()
        fields = issue["fields"]
        assert fields["summary"].startswith("[MV Aurora] server down for ")
        for line in ("Vessel: MV Aurora (v002)", "Devices down: srv-1 (10.0.3.20)",
                     "Uptime, last 24 h: 41.2%",
                     "Earlier incidents for this vessel and component: 0"):
            assert line in fields["description"]
        assert len(fields["summary"]) <= 255
        assert fields["issuetype"] == {"name": "Task"}
        markers = {label for label in fields["labels"]
                   if label.startswith(f"fleet-sla-{incident}-")}  # this attempt's own
        assert len(markers) == 1
        assert set(fields["labels"]) == {"fleet-sla", dedupe_label(KEY), "vessel-v002",
                                         "component-server", *markers}
        basic = base64.b64encode(f"ops-bot@example.com:{API_TOKEN}".encode()).decode()
        assert set(fake.authorizations) == {f"Basic {basic}"}
        assert fake.searches and "statusCategory != Done" in fake.searches[0]

    async def test_resolve_comments_and_runs_the_transition(self, jira_chain):
        fake, receiver = await jira_chain()
        clock = Clock()
        client = await receiver(clock)
        incident = await ticketed_then_resolved(client, clock)
        await work(client, incident, "resolve")
        issue = fake.issues["OPS-1"]
        assert issue["status"] == "Done"
        assert issue["comments"][0].startswith("Recovered at ")

    async def test_open_ticket_with_the_dedupe_label_is_linked_not_duplicated(self, jira_chain):
        fake, receiver = await jira_chain()
        fake.add_issue({"summary": "raised by hand", "labels": [dedupe_label(KEY)]})
        client = await receiver()
        incident = await fire(client, alert())
        await approve(client, incident)
        found = await work(client, incident, "create")
        assert found["ticket_key"] == "OPS-1" and len(fake.issues) == 1
        [comment] = fake.issues["OPS-1"]["comments"]
        assert comment.startswith(f"Linked to fleet-sla incident {incident} firing again.")

    async def test_permanent_error_is_shown_and_an_approver_retries_it(self, jira_chain):
        fake, receiver = await jira_chain(project="NOPE")
        client = await receiver()
        incident = await fire(client, alert())
        await approve(client, incident)
        found = await work(client, incident, "create", state="failed")
        [task] = found["ticket_work"]
        assert task["state"] == "failed"
        assert "JIRA answered 400" in task["last_error"] and "project" in task["last_error"]
        assert found["ticket_key"] is None and fake.issues == {}
        # JIRA gets fixed; a viewer may not retry, an approver may.
        fake.project = "NOPE"
        viewer = await client.post(f"/api/v1/incidents/{incident}/retry", json={},
                                   headers=signed_in("bob"))
        assert viewer.status == 403
        retried = await client.post(f"/api/v1/incidents/{incident}/retry", json={},
                                    headers=signed_in())
        assert (await retried.json()) == {"retried": 1}
        found = await work(client, incident, "create")
        assert found["ticket_key"] == "NOPE-1" and len(fake.issues) == 1
        assert "ticket-retry" in [e["kind"] for e in found["events"]]

    async def test_jira_down_retries_and_survives_a_restart(self, jira_chain):
        fake, receiver = await jira_chain()
        fake.down = True
        clock = Clock()
        client = await receiver(clock)
        incident = await fire(client, alert())
        await approve(client, incident)
        async with asyncio.timeout(10):
            while True:
                response = await client.get(f"/api/v1/incidents/{incident}",
                                            headers=signed_in())
                [task] = (await response.json())["ticket_work"]
                if task["attempts"] >= 1:
                    break
                await asyncio.sleep(0.05)
        assert task["state"] == "pending" and "503" in task["last_error"]
        await client.close()  # the receiver stops with the ticket still owed

        fake.down = False
        clock.now += 3600  # past any backoff
        again = await receiver(clock)
        found = await work(again, incident, "create")
        assert found["ticket_key"] == "OPS-1" and len(fake.issues) == 1
        metrics = await (await again.get("/metrics")).text()
        assert 'fleet_receiver_jira_calls_total{operation="create",result="ok"} 1.0' in metrics


class TestCloud:
    async def test_cloud_uses_the_enhanced_search(self, jira_chain):
        fake, receiver = await jira_chain(cloud=True)
        fake.add_issue({"summary": "older", "labels": [dedupe_label(KEY)]})
        client = await receiver()
        incident = await fire(client, alert())
        await approve(client, incident)
        found = await work(client, incident, "create")
        assert found["ticket_key"] == "OPS-1" and len(fake.issues) == 1  # found, linked

    async def test_refire_uses_our_own_mapping_while_search_lags(self, jira_chain):
        fake, receiver = await jira_chain(cloud=True)
        fake.search_lag = 5  # a new issue stays invisible to the next 5 searches
        clock = Clock()
        client = await receiver(clock)
        incident = await ticketed_then_resolved(client, clock)
        clock.now += 3600
        assert await fire(client, alert(starts=clock.now)) == incident  # within the window
        found = await work(client, incident, "reopen")
        assert found["ticket_key"] == "OPS-1" and len(fake.issues) == 1
        assert fake.issues["OPS-1"]["comments"][-1].startswith("Firing again at ")
        assert len(fake.searches) == 1  # only before the first creation

    async def test_personal_access_token(self, jira_chain):
        fake, receiver = await jira_chain(username=None, api_token=None,
                                          personal_access_token="pat-123")
        client = await receiver()
        incident = await fire(client, alert())
        await approve(client, incident)
        await work(client, incident, "create")
        assert set(fake.authorizations) == {"Bearer pat-123"}


class TestJiraWebhook:
    SECRET = "jira-webhook-secret"

    def signed(self, document: dict) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(document).encode()
        digest = hmac.new(self.SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return raw, {"X-Hub-Signature": f"sha256={digest}",
                     "Content-Type": "application/json"}

    async def test_status_change_reaches_the_incident(self, jira_chain):
        _, receiver = await jira_chain(webhook_secret=self.SECRET)
        client = await receiver()
        incident = await fire(client, alert())
        await approve(client, incident)
        await work(client, incident, "create")
        update = {"webhookEvent": "jira:issue_updated",
                  "issue": {"key": "OPS-1", "fields": {"status": {"name": "In Progress"}}}}
        raw, headers = self.signed(update)
        response = await client.post("/api/v1/jira/webhook", data=raw, headers=headers)
        assert response.status == 200 and (await response.json())["incidents"] == 1
        page = await (await client.get(f"/incidents/{incident}", headers=signed_in())).text()
        assert "OPS-1</b> (In Progress in JIRA)" in page
        # Data Center cannot sign: the secret rides in the URL instead.
        update["issue"]["fields"]["status"]["name"] = "Done"
        response = await client.post(f"/api/v1/jira/webhook?secret={self.SECRET}", json=update)
        assert response.status == 200
        found = await (await client.get(f"/api/v1/incidents/{incident}",
                                        headers=signed_in())).json()
        assert found["ticket_status"] == "Done"

    async def test_wrong_secret_or_bad_body(self, jira_chain):
        _, receiver = await jira_chain(webhook_secret=self.SECRET)
        client = await receiver()
        update = {"issue": {"key": "OPS-1", "fields": {"status": {"name": "Done"}}}}
        raw, headers = self.signed(update)
        headers["X-Hub-Signature"] = "sha256=" + "0" * 64
        assert (await client.post("/api/v1/jira/webhook", data=raw,
                                  headers=headers)).status == 401
        assert (await client.post("/api/v1/jira/webhook?secret=nope",
                                  json=update)).status == 401
        raw, headers = self.signed({"issue": {"key": "OPS-1"}})
        response = await client.post("/api/v1/jira/webhook", data=raw, headers=headers)
        assert response.status == 400
