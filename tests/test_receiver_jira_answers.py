"""Odd answers from JIRA: every failure backs off, says what JIRA answered, and honours
Retry-After; nothing loops hot."""

from email.utils import formatdate

import pytest

from receiver.appkeys import WORKER
from tests import test_receiver_jira
from tests.helpers import Clock
from tests.outbox_helpers import attempted, next_pass, task
from tests.receiver_helpers import alert, fire
from tests.test_receiver_jira import (
    API_TOKEN,
    approve,
)

jira_chain = test_receiver_jira.jira_chain  # the fixture, shared

ISSUE = "/rest/api/2/issue"


async def nothing_more_until_the_clock_moves(client, fake) -> None:
    before = len(fake.requests)
    assert await client.app[WORKER].process_due() == 0
    assert len(fake.requests) == before


class TestUnusableAnswers:
    @pytest.mark.parametrize(("answer", "said"), [
        ({"issues": [{}]}, "issues[0].key"),
        ({"issues": "x"}, "issues"),
        ({"issues": [{"key": "OPS-1; DROP"}]}, "issues[0].key"),
        (["x"], "search answer"),
    ])
    async def test_an_unusable_search_answer_backs_off(self, jira_chain, answer, said):
        fake, receiver = await jira_chain()
        fake.answers["search"] = (200, answer)
        clock = Clock()
        client = await receiver(clock)
        incident = await fire(client, alert())
        await approve(client, incident)
        item = task(await attempted(client, incident, "create"), "create")
        assert item["state"] == "pending" and item["next_attempt_at"] > clock.now
        assert "JIRA answered something unusable" in item["last_error"]
        assert said in item["last_error"]
        await nothing_more_until_the_clock_moves(client, fake)
        assert fake.posted(ISSUE) == 0  # never created on an answer it could not read

    @pytest.mark.parametrize("answer", [{}, {"key": 5}, {"key": f"x{API_TOKEN}"}])
    async def test_an_unusable_create_answer_is_uncertain_then_found(self, jira_chain,
                                                                     answer):
        fake, receiver = await jira_chain()
        fake.answers["create"] = (201, answer)  # JIRA made it; the answer is no use
        clock = Clock()
        client = await receiver(clock)
        incident = await fire(client, alert())
        await approve(client, incident)
        item = task(await attempted(client, incident, "create"), "create")
        assert item["state"] == "pending" and item["attempt"] == "uncertain"
        assert "JIRA answered something unusable" in item["last_error"]
        assert API_TOKEN not in item["last_error"]
        await nothing_more_until_the_clock_moves(client, fake)
        del fake.answers["create"]
        found = await next_pass(client, clock, incident, "create")
        assert found["ticket_key"] == "OPS-1"
        assert fake.posted(ISSUE) == 1 and len(fake.issues) == 1

    async def test_transitions_without_names_back_off(self, jira_chain):
        fake, receiver = await jira_chain()
        clock = Clock()
        client = await receiver(clock)
        incident = await fire(client, alert())
        await approve(client, incident)
        assert (await attempted(client, incident, "create"))["ticket_key"] == "OPS-1"
        fake.answers["transitions"] = (200, {"transitions": [{"id": "31"}]})
        clock.now += 600
        await fire(client, alert(status="resolved", ends=clock.now))
        item = task(await attempted(client, incident, "resolve"), "resolve")
        assert item["state"] == "pending" and item["next_attempt_at"] > clock.now
        assert "transitions[0].name" in item["last_error"]
        await nothing_more_until_the_clock_moves(client, fake)
        del fake.answers["transitions"]
        found = await next_pass(client, clock, incident, "resolve")
        assert task(found, "resolve")["state"] == "done"
        issue = fake.issues["OPS-1"]
        assert issue["status"] == "Done" and len(issue["comments"]) == 1


class TestRetryAfter:
    @pytest.mark.parametrize(("status", "retry_after", "wait"), [
        (429, "120", 120.0),
        (503, "120", 120.0),
        (503, "date+600", 600.0),
        (429, "86400", 3600.0),  # bounded: at most an hour
        (503, "soon", 2.0),  # unreadable: the usual backoff
    ])
    async def test_retry_after_is_honoured(self, jira_chain, status, retry_after, wait):
        fake, receiver = await jira_chain()
        clock = Clock()
        fake.down, fake.down_status = True, status
        fake.retry_after = (formatdate(clock.now + 600, usegmt=True)
                            if retry_after == "date+600" else retry_after)
        client = await receiver(clock)
        incident = await fire(client, alert())
        await approve(client, incident)
        item = task(await attempted(client, incident, "create"), "create")
        assert item["state"] == "pending" and str(status) in item["last_error"]
        assert item["next_attempt_at"] == clock.now + wait
