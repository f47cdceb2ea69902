"""Approvers' decisions through the JSON API, and the tickets they lead to (dry-run)."""

import asyncio

import pytest

from tests.helpers import Clock
from tests.receiver_helpers import alert, fire, signed_in


async def decide(client, incident: int, kind: str, comment: str = "", user: str = "alice"):
    return await client.post(f"/api/v1/incidents/{incident}/{kind}",
                             json={"comment": comment}, headers=signed_in(user))


async def detail(client, incident: int) -> dict:
    response = await client.get(f"/api/v1/incidents/{incident}", headers=signed_in())
    assert response.status == 200
    return await response.json()


async def settled(client, incident: int, kind: str) -> dict:
    """The incident once its ticket work of `kind` is done (the worker runs on its own)."""
    async with asyncio.timeout(10):
        while True:
            found = await detail(client, incident)
            if any(w["kind"] == kind and w["state"] != "pending" for w in found["ticket_work"]):
                return found
            await asyncio.sleep(0.02)


class TestApprove:
    async def test_approve_creates_one_dry_run_ticket(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        response = await decide(client, incident, "approve", "raise it")
        assert response.status == 200
        assert await response.json() == {"incident": incident, "approval": "approved",
                                         "changed": True}
        found = await settled(client, incident, "create")
        assert found["ticket_key"] == f"DRY-{incident}"
        kinds = [e["kind"] for e in found["events"]]
        assert kinds == ["opened", "approved", "ticket-create"]
        assert found["events"][1]["detail"] == "by alice: raise it"

    async def test_concurrent_approves_make_one_ticket(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        answers = await asyncio.gather(*(decide(client, incident, "approve") for _ in range(5)))
        outcomes = [await a.json() for a in answers]
        assert [o["changed"] for o in outcomes].count(True) == 1
        assert {a.status for a in answers} == {200}
        found = await settled(client, incident, "create")
        assert [w["kind"] for w in found["ticket_work"]] == ["create"]
        assert found["ticket_key"] == f"DRY-{incident}"

    async def test_a_viewer_cannot_decide(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        response = await decide(client, incident, "approve", user="bob")
        assert response.status == 403
        assert (await detail(client, incident))["approval"] == "pending"

    async def test_informational_incident_cannot_be_approved(self, receiver):
        client = await receiver()
        incident = await fire(client, alert(alertname="FleetComponentSLABreach", ticket=False))
        response = await decide(client, incident, "approve")
        assert response.status == 409
        assert "not waiting for approval" in (await response.json())["error"]

    @pytest.mark.parametrize("action", ["approve", "reject", "retry"])
    async def test_a_cross_site_form_cannot_decide(self, receiver, action):
        """A page elsewhere can post text/plain with the approver's cached credentials."""
        client = await receiver()
        incident = await fire(client, alert())
        response = await client.post(
            f"/api/v1/incidents/{incident}/{action}", data='{"comment": "x", "p": "=y"}',
            headers={**signed_in(), "Content-Type": "text/plain"})
        assert response.status == 415
        assert (await response.json())["error"] == "Content-Type: expected application/json"
        found = await detail(client, incident)
        assert found["approval"] == "pending" and found["ticket_work"] == []

    @pytest.mark.parametrize(("path", "status"), [("999", 404), ("x", 400)])
    async def test_unknown_incident(self, receiver, path, status):
        client = await receiver()
        response = await client.post(f"/api/v1/incidents/{path}/approve", json={},
                                     headers=signed_in())
        assert response.status == status


class TestReject:
    async def test_reject_needs_a_reason(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        response = await decide(client, incident, "reject", "  ")
        assert response.status == 400
        assert (await response.json())["error"].startswith("comment: ")
        assert (await detail(client, incident))["approval"] == "pending"

    async def test_rejected_key_is_not_asked_again_while_snoozed(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock, incidents={"reopen_window": "1h"})
        incident = await fire(client, alert())
        assert (await decide(client, incident, "reject", "planned dry-dock")).status == 200
        await fire(client, alert(status="resolved", ends=clock.now))
        clock.now += 2 * 86400  # past the reopen window, inside the 7 d snooze
        again = await fire(client, alert(starts=clock.now))
        assert again != incident
        found = await detail(client, again)
        assert found["approval"] == "rejected" and found["ticket_work"] == []
        assert found["events"][0]["detail"] == "approval snoozed by an earlier rejection"


class TestTicketLifecycle:
    async def test_resolve_comments_and_refire_reopens_the_same_ticket(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock)
        incident = await fire(client, alert())
        await decide(client, incident, "approve")
        await settled(client, incident, "create")
        clock.now += 3600
        await fire(client, alert(status="resolved", ends=clock.now))
        found = await settled(client, incident, "resolve")
        resolved = [e for e in found["events"] if e["kind"] == "ticket-resolve"]
        assert resolved[0]["detail"].startswith(f"DRY-{incident}: Recovered at ")
        assert resolved[0]["detail"].endswith("after 4d 1h.")
        clock.now += 86400
        assert await fire(client, alert(starts=clock.now)) == incident
        found = await settled(client, incident, "reopen")
        assert found["ticket_key"] == f"DRY-{incident}"
        assert [w["kind"] for w in found["ticket_work"]] == ["create", "resolve", "reopen"]


class TestResolvedWhileWaiting:
    async def test_a_resolved_incident_cannot_be_approved(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock)
        incident = await fire(client, alert())
        clock.now += 600
        await fire(client, alert(status="resolved", ends=clock.now))
        response = await decide(client, incident, "approve")
        assert response.status == 409
        error = (await response.json())["error"]
        assert "resolved at 2027-01-15 08:10 UTC" in error
        found = await detail(client, incident)
        assert found["ticket_work"] == [] and found["approval"] == "pending"
        page = await client.post(f"/api/v1/incidents/{incident}/reject",
                                 json={"comment": "over"}, headers=signed_in())
        assert page.status == 409
