"""Approvals over time: announced, reminded, or decided by the timeout."""

import asyncio

import pytest
from aiohttp import web

from tests.helpers import Clock
from tests.receiver_helpers import alert, fire, signed_in, until


@pytest.fixture
async def chat(aiohttp_server):
    """A notify_url endpoint that records what it is sent."""
    posts: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}/hook", posts


async def detail(client, incident: int) -> dict:
    return await (await client.get(f"/api/v1/incidents/{incident}", headers=signed_in())).json()


class TestRemind:
    async def test_announce_then_remind_once_per_timeout(self, receiver, chat):
        url, posts = chat
        clock = Clock()
        client = await receiver(clock=clock, sweep_every=0.02, notify_url=url,
                                incidents={"approval_timeout": "1h"})
        incident = await fire(client, alert())

        async def posted(count: int) -> bool:
            return len(posts) >= count

        await until(lambda: posted(1))
        assert posts[0]["text"].startswith("Approval needed: v002 server")
        assert posts[0]["incident"] == incident
        clock.now += 2 * 3600
        await until(lambda: posted(2))
        assert posts[1]["text"].startswith("Still waiting 2h 0m for approval")
        clock.now += 1800  # half a timeout later: no second reminder yet
        await asyncio.sleep(0.3)
        assert len(posts) == 2
        clock.now += 3600
        await until(lambda: posted(3))
        found = await detail(client, incident)
        assert found["approval"] == "pending"
        assert [e["kind"] for e in found["events"]] == ["opened", "announced", "reminded",
                                                         "reminded"]
        metrics = await (await client.get("/metrics")).text()
        assert "fleet_receiver_approvals_overdue 1.0" in metrics


class TestDecidedByTimeout:
    @pytest.mark.parametrize(("on_timeout", "approval", "tickets"), [
        ("approve", "approved", ["create"]),
        ("reject", "rejected", []),
    ])
    async def test_timeout_decides(self, receiver, on_timeout, approval, tickets):
        clock = Clock()
        client = await receiver(clock=clock, sweep_every=0.02,
                                incidents={"approval_timeout": "1h", "on_timeout": on_timeout})
        incident = await fire(client, alert())
        await asyncio.sleep(0.1)
        assert (await detail(client, incident))["approval"] == "pending"
        clock.now += 3601

        async def decided():
            found = await detail(client, incident)
            return found if found["approval"] != "pending" else None

        found = await until(decided)
        assert found["approval"] == approval
        assert [w["kind"] for w in found["ticket_work"]] == tickets
        audit = await (await client.get("/audit", headers=signed_in("bob"))).text()
        assert "timeout" in audit and "no decision within 1h 0m" in audit
