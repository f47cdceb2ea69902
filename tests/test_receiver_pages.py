"""The approval page as approvers and viewers use it: forms, CSRF, escaping, audit."""

import asyncio
import re

from tests.helpers import Clock
from tests.receiver_helpers import alert, annotated, fire, signed_in


async def page(client, path: str = "/", user: str = "alice") -> str:
    response = await client.get(path, headers=signed_in(user))
    assert response.status == 200
    return await response.text()


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def submit(client, incident: int, kind: str, token: str | None, comment: str = "",
                 user: str = "alice"):
    form = {"comment": comment} | ({"csrf": token} if token is not None else {})
    return await client.post(f"/incidents/{incident}/{kind}", data=form,
                             headers=signed_in(user), allow_redirects=False)


class TestPage:
    async def test_needs_sign_in(self, receiver):
        client = await receiver()
        assert (await client.get("/")).status == 401
        assert (await client.get("/", headers=signed_in("alice", "wrong"))).status == 401

    async def test_an_auth_proxy_signs_users_in(self, receiver):
        client = await receiver(trusted_header="X-Forwarded-User",
                                trusted_proxies=["127.0.0.1/32"],
                                users=[{"name": "carol", "role": "approver"}])
        response = await client.get("/", headers={"X-Forwarded-User": "carol"})
        assert response.status == 200 and "carol" in await response.text()
        assert (await client.get("/", headers={"X-Forwarded-User": "mallory"})).status == 401

    async def test_the_header_from_anyone_but_the_proxy_is_ignored(self, receiver):
        """Reaching the receiver around the proxy must not make anyone an approver."""
        client = await receiver(trusted_header="X-Forwarded-User",
                                trusted_proxies=["10.9.0.0/16"])
        spoofed = await client.get("/", headers={"X-Forwarded-User": "alice"})
        assert spoofed.status == 401
        assert "Basic" in spoofed.headers["WWW-Authenticate"]
        # Users with a password can still sign in directly.
        assert (await client.get("/", headers=signed_in("alice"))).status == 200

    async def test_pages_cannot_be_framed(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        for path in ("/", f"/incidents/{incident}", "/audit"):
            response = await client.get(path, headers=signed_in())
            assert response.headers["X-Frame-Options"] == "DENY", path
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"

    async def test_pending_approval_with_its_facts(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock, links={
            "grafana": "https://grafana.example/d/fleet-vessel?var-vessel={vessel}"})
        await fire(client, alert())
        html = await page(client)
        pending = html.split("Open incidents with tickets")[0]
        assert "v002 · server" in pending
        assert "Down since 2027-01-11 08:00 UTC (3d 23h so far)" in pending
        assert "0 earlier incident(s), 0 with a ticket" in pending
        assert 'href="https://grafana.example/d/fleet-vessel?var-vessel=v002"' in pending
        assert 'href="http://prometheus:9090/graph?g0.expr=x"' in pending
        assert "Approve ticket" in pending and 'class="card overdue"' not in pending

    async def test_incidents_link_back_to_the_vessel_in_the_console(self, receiver):
        client = await receiver(clock=Clock(), links={"console": "http://console.example/"})
        incident = await fire(client, alert())
        for html in (await page(client), await page(client, f"/incidents/{incident}")):
            assert '<a href="http://console.example/vessels/v002">vessel in the console</a>' \
                in html
        plain = await receiver(clock=Clock())
        await fire(plain, alert())
        assert "vessel in the console" not in await page(plain)

    async def test_facts_the_rules_attach_are_shown(self, receiver):
        client = await receiver(clock=Clock())
        incident = await fire(client, annotated())
        assert "Down since 2027-01-10 08:00 UTC (5d 0h so far)" in await page(client)
        for html in (await page(client), await page(client, f"/incidents/{incident}")):
            assert "MV Aurora · server" in html
            assert "Devices down: srv-1 (10.0.3.20)" in html
            assert "24 h uptime 41.2%" in html

    async def test_viewer_sees_no_forms(self, receiver):
        client = await receiver()
        await fire(client, alert())
        assert "Approve ticket" not in await page(client, user="bob")

    async def test_overdue_approvals_stand_out(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock, incidents={"approval_timeout": "1h"})
        await fire(client, alert())
        clock.now += 2 * 3600
        assert 'class="card overdue"' in await page(client)

    async def test_labels_are_escaped(self, receiver):
        client = await receiver()
        evil = alert(vessel="<script>alert(1)</script>")
        evil["generatorURL"] = "javascript:alert(2)"
        await fire(client, evil)
        html = await page(client)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "javascript:" not in html


class TestDecidingFromThePage:
    async def test_approve_redirects_and_shows_the_ticket(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        token = csrf(await page(client))
        response = await submit(client, incident, "approve", token, "on it")
        assert response.status == 303
        assert response.headers["Location"] == "/"  # no `back`: the list
        async with asyncio.timeout(10):
            while True:
                html = await page(client, f"/incidents/{incident}")
                if f"DRY-{incident}" in html:
                    break
                await asyncio.sleep(0.02)
        assert 'approval <span class="badge approved">' in html
        audit = await page(client, "/audit", user="bob")
        assert "alice" in audit and "approve" in audit and "on it" in audit

    async def test_double_submit_makes_one_ticket(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        token = csrf(await page(client))
        first, second = await asyncio.gather(submit(client, incident, "approve", token),
                                             submit(client, incident, "approve", token))
        assert {first.status, second.status} == {303}
        detail = await (await client.get(f"/api/v1/incidents/{incident}",
                                         headers=signed_in())).json()
        assert [w["kind"] for w in detail["ticket_work"]] == ["create"]

    async def test_missing_or_wrong_csrf_token_is_refused(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        for token in (None, "0" * 64):
            response = await submit(client, incident, "approve", token)
            assert response.status == 403
        # A token is tied to its user: alice's does not sign a decision for bob.
        alices = csrf(await page(client))
        assert (await submit(client, incident, "approve", alices, user="bob")).status == 403
        detail = await (await client.get(f"/api/v1/incidents/{incident}",
                                         headers=signed_in())).json()
        assert detail["approval"] == "pending"

    async def test_reject_without_reason_shows_the_error(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        response = await submit(client, incident, "reject", csrf(await page(client)), "")
        assert response.status == 400
        assert "comment: a reason is required to reject" in await response.text()
