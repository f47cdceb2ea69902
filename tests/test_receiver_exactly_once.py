"""Exactly one ticket and one comment per piece of work, whatever answers are lost.

JIRA Cloud's search lags behind a create, so a create whose answer was lost (a timeout,
a reset, a kill -9) must never be repeated on the strength of a search that finds nothing.
"""

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import test_receiver_jira
from tests.fake_jira import FakeJira
from tests.helpers import Clock
from tests.outbox_helpers import attempted, detail, next_pass, task
from tests.receiver_helpers import alert, bearer, body, notification, signed_in
from tests.receiver_helpers import until as until_within
from tests.receiver_helpers import write_receiver_config as write_config
from tests.servers import free_port
from tests.test_receiver_jira import (
    approve,
    jira_section,
)

jira_chain = test_receiver_jira.jira_chain  # the fixture, shared

ISSUE = "/rest/api/2/issue"


def marker_of(fake: FakeJira, key: str, incident: int) -> str:
    [marker] = [label for label in fake.issues[key]["fields"]["labels"]
                if label.startswith(f"fleet-sla-{incident}-")]
    return marker


class TestUncertainCreate:
    @pytest.mark.parametrize("lost", ["timeout", "reset"])
    @pytest.mark.parametrize("lag", [5.0, 20 * 60.0], ids=["seconds", "minutes"])
    async def test_a_lost_create_answer_never_makes_a_second_ticket(self, jira_chain, lost,
                                                                   lag):
        fake, receiver = await jira_chain(cloud=True)
        clock = Clock()
        fake.clock, fake.search_lag_seconds = clock, lag
        fake.on_create = "hold" if lost == "timeout" else "reset"
        client = await receiver(clock, jira_timeout=0.3)
        incident = await fire_one(client)
        await approve(client, incident)
        found = await attempted(client, incident, "create")
        fake.on_create = None
        passes = 0
        while found["ticket_key"] is None and passes < 40:
            found = await next_pass(client, clock, incident, "create")
            passes += 1
        assert found["ticket_key"] == "OPS-1"
        assert len(fake.issues) == 1 and fake.posted(ISSUE) == 1
        assert passes >= 2  # it kept searching while the search lagged
        marker = marker_of(fake, "OPS-1", incident)
        assert sum(marker in jql for jql in fake.searches) == passes
        kinds = [e["kind"] for e in found["events"]]
        assert kinds[-2:] == ["ticket-uncertain", "ticket-create"]

    async def test_the_page_says_what_is_going_on(self, jira_chain):
        fake, receiver = await jira_chain(cloud=True)
        clock = Clock()
        fake.clock, fake.search_lag_seconds = clock, 3600.0
        fake.on_create = "reset"
        client = await receiver(clock)
        incident = await fire_one(client)
        await approve(client, incident)
        found = await attempted(client, incident, "create")
        item = task(found, "create")
        assert item["state"] == "pending" and item["attempt"] == "uncertain"
        assert "JIRA may have made the ticket" in item["last_error"]
        assert "no-ticket" in item["last_error"]
        # The label to look for in JIRA from the first message on, never a placeholder.
        marker = marker_of(fake, "OPS-1", incident)
        assert f"searches for label {marker} " in item["last_error"]
        page = await (await client.get(f"/incidents/{incident}", headers=signed_in())).text()
        assert "JIRA may have made the ticket" in page
        assert marker in page

    async def test_an_approver_declares_that_no_ticket_was_made(self, jira_chain):
        fake, receiver = await jira_chain(cloud=True)
        clock = Clock()
        fake.clock = clock
        fake.on_create = "reset-before"  # the request is lost before JIRA makes anything
        client = await receiver(clock)
        incident = await fire_one(client)
        url = f"/api/v1/incidents/{incident}/no-ticket"
        early = await client.post(url, json={"comment": "x"}, headers=signed_in())
        assert early.status == 409  # nothing uncertain yet
        await approve(client, incident)
        await attempted(client, incident, "create")
        fake.on_create = None
        for _ in range(3):  # searching for ever, never creating again
            found = await next_pass(client, clock, incident, "create")
        assert fake.issues == {} and fake.posted(ISSUE) == 1
        assert task(found, "create")["attempt"] == "uncertain"

        viewer = await client.post(url, json={"comment": "x"}, headers=signed_in("bob"))
        assert viewer.status == 403
        blank = await client.post(url, json={"comment": " "}, headers=signed_in())
        assert blank.status == 400 and "comment" in (await blank.json())["error"]
        said = await client.post(url, json={"comment": "checked OPS by hand"},
                                 headers=signed_in())
        assert said.status == 200 and (await said.json()) == {"incident": incident}
        found = await next_pass(client, clock, incident, "create")
        assert found["ticket_key"] == "OPS-1" and fake.posted(ISSUE) == 2
        assert len(fake.issues) == 1
        [declared] = [e for e in found["events"] if e["kind"] == "ticket-none-made"]
        assert declared["detail"] == "by alice: checked OPS by hand"
        again = await client.post(url, json={"comment": "x"}, headers=signed_in())
        assert again.status == 409


class TestApprovalRacesResolve:
    @pytest.mark.parametrize("when", ["before", "while"])
    async def test_the_ticket_ends_resolved_with_a_comment(self, jira_chain, when):
        fake, receiver = await jira_chain()
        clock = Clock()
        client = await receiver(clock, jira_timeout=0.3)
        if when == "before":
            fake.down = True  # the create waits for JIRA
        else:
            fake.on_create = "hold"  # the create is under way, its answer never comes
        incident = await fire_one(client)
        await approve(client, incident)
        await attempted(client, incident, "create")
        fake.down, fake.on_create = False, None
        clock.now += 600
        await client.post("/api/v1/alerts", headers=bearer(), data=body(notification(
            alert(status="resolved", ends=clock.now))))
        for _ in range(10):
            found = await detail(client, incident)
            if all(w["state"] == "done" for w in found["ticket_work"]):
                break
            pending = [w["kind"] for w in found["ticket_work"] if w["state"] == "pending"]
            await next_pass(client, clock, incident, pending[0])
        assert [(w["kind"], w["state"]) for w in found["ticket_work"]] == [
            ("create", "done"), ("resolve", "done")]
        [issue] = fake.issues.values()
        assert issue["status"] == "Done"
        assert [c[:13] for c in issue["comments"]] == ["Recovered at "]


class TestCommentsOnce:
    async def test_a_lost_comment_answer_is_not_posted_twice(self, jira_chain):
        fake, receiver = await jira_chain()
        clock = Clock()
        client = await receiver(clock)
        incident = await ticketed_then_resolved_with(fake, client, clock, "reset")
        found = await attempted(client, incident, "resolve")
        assert task(found, "resolve")["state"] == "pending"
        fake.on_comment = None
        found = await next_pass(client, clock, incident, "resolve")
        assert task(found, "resolve")["state"] == "done"
        issue = fake.issues["OPS-1"]
        assert len(issue["comments"]) == 1 and issue["comments"][0].startswith("Recovered at ")
        assert issue["status"] == "Done"


async def fire_one(client) -> int:
    response = await client.post("/api/v1/alerts", data=body(notification(alert())),
                                 headers=bearer())
    assert response.status == 200
    incident: int = (await response.json())["incidents"][0]
    return incident


async def ticketed_then_resolved_with(fake: FakeJira, client, clock: Clock, mode: str) -> int:
    incident = await fire_one(client)
    await approve(client, incident)
    found = await attempted(client, incident, "create")
    assert found["ticket_key"] == "OPS-1"
    fake.on_comment = mode
    clock.now += 600
    await client.post("/api/v1/alerts", headers=bearer(), data=body(notification(
        alert(status="resolved", ends=clock.now))))
    return incident


class Process:
    """A receiver in a process of its own, to be killed with SIGKILL."""

    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.base = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "receiver", "--config", str(self.config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        async with asyncio.timeout(20):
            while True:
                try:
                    async with session.get(f"{self.base}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert self.proc.returncode is None, "the receiver exited"
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup of any kind
        await self.proc.wait()

    async def incident(self, session: aiohttp.ClientSession, incident: int) -> dict:
        async with session.get(f"{self.base}/api/v1/incidents/{incident}",
                               headers=signed_in()) as response:
            assert response.status == 200
            found: dict = await response.json()
            return found


async def until(check: Any) -> Any:
    """A killed and restarted receiver takes longer than the default wait."""
    return await until_within(check, within=20.0)


@pytest.fixture
async def killable(tmp_path: Path, aiohttp_server):
    """A fake JIRA, and a receiver process pointed at it; the process is stopped after."""
    fake = FakeJira(cloud=True, clock=time.time)
    server = await aiohttp_server(fake.app())
    port = free_port()
    config = write_config(tmp_path / "receiver.yml", listen=f"127.0.0.1:{port}",
                          jira=jira_section(f"http://127.0.0.1:{server.port}"))
    receiver = Process(config, port)
    async with aiohttp.ClientSession() as session:
        try:
            yield fake, receiver, session
        finally:
            if receiver.proc is not None and receiver.proc.returncode is None:
                await receiver.kill()


class TestKill9:
    async def test_killed_between_create_and_commit_makes_one_ticket(self, killable):
        fake, receiver, session = killable
        fake.search_lag_seconds = 1e9  # the new issue stays out of search until we say
        fake.on_create = "hold"
        await receiver.start(session)
        incident = await post_alert(receiver, session, alert())
        async with session.post(f"{receiver.base}/api/v1/incidents/{incident}/approve",
                                json={"comment": "go"}, headers=signed_in()) as response:
            assert response.status == 200
        await asyncio.wait_for(fake.created.wait(), 20)
        await receiver.kill()  # JIRA made the issue; the receiver never stored its key

        fake.on_create = None
        await receiver.start(session)
        labels = fake.issues["OPS-1"]["fields"]["labels"]
        markers = [label for label in labels if label.startswith(f"fleet-sla-{incident}-")]

        async def searched_or_created() -> bool:
            return fake.posted(ISSUE) > 1 or any(m in jql for m in markers
                                                 for jql in fake.searches)

        await until(searched_or_created)
        assert fake.posted(ISSUE) == 1
        found = await receiver.incident(session, incident)
        assert found["ticket_key"] is None
        assert found["ticket_work"][0]["attempt"] == "uncertain"
        fake.search_lag_seconds = 0  # the search catches up
        found = await until(_keyed(receiver, session, incident))
        assert found["ticket_key"] == "OPS-1"
        assert len(fake.issues) == 1 and fake.posted(ISSUE) == 1

    async def test_killed_in_the_middle_of_a_resolve_comment_posts_it_once(self, killable):
        fake, receiver, session = killable
        await receiver.start(session)
        incident = await post_alert(receiver, session, alert(starts=time.time() - 4 * 86400))
        async with session.post(f"{receiver.base}/api/v1/incidents/{incident}/approve",
                                json={"comment": "go"}, headers=signed_in()) as response:
            assert response.status == 200
        found = await until(_keyed(receiver, session, incident))
        assert found["ticket_key"] == "OPS-1"
        fake.on_comment = "hold"
        await post_alert(receiver, session, alert(status="resolved", ends=time.time()))
        await asyncio.wait_for(fake.commented.wait(), 20)
        await receiver.kill()  # the comment is in JIRA; the outbox never heard

        fake.on_comment = None
        await receiver.start(session)

        async def resolved() -> dict | None:
            found = await receiver.incident(session, incident)
            done = [w for w in found["ticket_work"]
                    if w["kind"] == "resolve" and w["state"] == "done"]
            return found if done else None

        await until(resolved)
        issue = fake.issues["OPS-1"]
        assert len(issue["comments"]) == 1 and issue["comments"][0].startswith("Recovered at ")
        assert issue["status"] == "Done"


def _keyed(receiver: Process, session: aiohttp.ClientSession, incident: int):
    async def check() -> dict | None:
        found = await receiver.incident(session, incident)
        return found if found["ticket_key"] else None

    return check


async def post_alert(receiver: Process, session: aiohttp.ClientSession, made: dict) -> int:
    async with session.post(f"{receiver.base}/api/v1/alerts",
                            data=body(notification(made)), headers=bearer()) as response:
        assert response.status == 200
        incident: int = (await response.json())["incidents"][0]
        return incident


class TestUncertainCreateOnThePage:
    async def test_an_approver_says_so_from_the_incident_page(self, jira_chain):
        fake, receiver = await jira_chain(cloud=True)
        clock = Clock()
        fake.clock = clock
        fake.on_create = "reset-before"
        client = await receiver(clock)
        incident = await fire_one(client)
        page_url = f"/incidents/{incident}"
        first = await (await client.get(page_url, headers=signed_in())).text()
        assert "No ticket was made" not in first  # nothing uncertain yet
        await approve(client, incident)
        await attempted(client, incident, "create")
        fake.on_create = None
        html = await (await client.get(page_url, headers=signed_in())).text()
        assert f'action="/incidents/{incident}/no-ticket"' in html
        assert "No ticket was made" in html
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token is not None
        blank = await client.post(f"{page_url}/no-ticket", headers=signed_in(),
                                  data={"csrf": token[1], "comment": ""},
                                  allow_redirects=False)
        assert blank.status == 400 and "comment" in await blank.text()
        said = await client.post(f"{page_url}/no-ticket", headers=signed_in(),
                                 data={"csrf": token[1], "comment": "searched OPS by hand"},
                                 allow_redirects=False)
        assert said.status == 303 and said.headers["Location"] == page_url
        found = await next_pass(client, clock, incident, "create")
        assert found["ticket_key"] == "OPS-1" and len(fake.issues) == 1
        assert "No ticket was made" not in await (
            await client.get(page_url, headers=signed_in())).text()
