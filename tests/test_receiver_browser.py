"""The approval page in headless Chromium, driven as an approver would use it."""

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from receiver.config import load_config
from receiver.tickets import DryRunTickets, TicketRequest
from receiver.web import create_app
from tests.receiver_helpers import (
    PASSWORDS,
    alert,
    annotated,
    bearer,
    body,
    notification,
    signed_in,
)
from tests.receiver_helpers import write_receiver_config as write_config
from tests.servers import require_binary

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"]


class GatedTickets(DryRunTickets):
    """Dry-run tickets made only once the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def create(self, request: TicketRequest, reference: int) -> str:
        await self.gate.wait()
        return await super().create(request, reference)


@pytest.fixture
def tickets() -> GatedTickets:
    return GatedTickets()


@pytest.fixture
async def site(tmp_path: Path, aiohttp_server, aiohttp_client, tickets: GatedTickets):
    """The receiver on a real loopback port, with one incident waiting for approval."""
    config = load_config(write_config(tmp_path / "receiver.yml"))
    server = await aiohttp_server(create_app(config, tickets=tickets))
    client = await aiohttp_client(server)
    response = await client.post("/api/v1/alerts", data=body(notification(alert())),
                                 headers=bearer())
    assert response.status == 200
    return f"http://127.0.0.1:{server.port}"


class TestApprovalInChromium:
    async def test_sign_in_open_approve_and_see_the_ticket(self, site: str,
                                                           tickets: GatedTickets):
        chromium = require_binary("chromium", "/usr/bin/chromium")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium,
                                                       args=CHROMIUM_FLAGS)
            try:
                context = await browser.new_context(http_credentials={
                    "username": "alice", "password": PASSWORDS["alice"]})
                page = await context.new_page()
                await page.goto(f"{site}/")
                assert "Pending approvals (1)" in await page.inner_text("h2")
                await page.click("text=v002 · server")
                await page.wait_for_url(f"{site}/incidents/1")
                await page.fill("form[action='/incidents/1/approve'] input[name=comment]",
                                "approved in the browser")
                await page.click("text=Approve ticket")
                await page.wait_for_url(f"{site}/#pending")  # back to the list
                await page.wait_for_selector("html[data-live=on]")
                assert "DRY-1" not in await page.inner_text("body")
                # The ticket is made now: the list shows its key when the receiver's
                # event says so, without a reload.
                tickets.gate.set()
                await page.wait_for_selector("#ticketed >> text=DRY-1", timeout=10_000)
                assert "Nothing waits for a decision." in await page.inner_text("#pending")
                await page.click("#ticketed >> text=#1")
                await page.wait_for_url(f"{site}/incidents/1")
                assert "✓ approved" in await page.locator(".status .badge").all_inner_texts()
                assert "approved in the browser" in await page.inner_text("body")
            finally:
                await browser.close()


@pytest.fixture
async def busy_site(tmp_path: Path, aiohttp_server, aiohttp_client):
    """The receiver with one of each: pending, rejected, informational, a long summary."""
    config = load_config(write_config(tmp_path / "receiver.yml"))
    server = await aiohttp_server(create_app(config))
    client = await aiohttp_client(server)
    breach = alert(vessel="v002", alertname="FleetComponentSLABreach", ticket=False)
    breach["annotations"].update(vessel_name="MV Aurora", uptime_24h="91.0%")
    rejected = alert(vessel="v003", component="firewall")
    rejected["annotations"]["summary"] = "firewall-" + "x" * 120  # must wrap, not scroll
    for made in (annotated(vessel="v002"), breach, rejected):
        response = await client.post("/api/v1/alerts", data=body(notification(made)),
                                     headers=bearer())
        assert response.status == 200
    response = await client.post("/api/v1/incidents/3/reject", json={"comment": "refit"},
                                 headers=signed_in())
    assert response.status == 200
    return f"http://127.0.0.1:{server.port}"


SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 740}}


class TestWhatApproversSee:
    async def test_list_incident_and_audit_at_desktop_and_phone_width(self, busy_site: str,
                                                                       tmp_path: Path):
        chromium = require_binary("chromium", "/usr/bin/chromium")
        shots = tmp_path / "screenshots"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium,
                                                       args=CHROMIUM_FLAGS)
            try:
                for size, viewport in SIZES.items():
                    context = await browser.new_context(viewport=viewport, http_credentials={
                        "username": "alice", "password": PASSWORDS["alice"]})
                    page = await context.new_page()
                    for name, path in (("list", "/"), ("incident", "/incidents/1"),
                                       ("audit", "/audit")):
                        await page.goto(f"{busy_site}{path}")
                        shot = shots / f"{name}-{size}.png"
                        await page.screenshot(path=str(shot), full_page=True)
                        assert shot.stat().st_size > 5_000, shot
                        assert await page.evaluate(
                            "document.documentElement.scrollWidth <= window.innerWidth"), \
                            f"{name} scrolls sideways at {size} width"
                        # The stylesheet applied: a state is a word beside its icon.
                        for badge in await page.locator(".badge").all_inner_texts():
                            assert re.search(r"[a-z]{3}", badge), badge
                        await check(page, name)
                    await context.close()
            finally:
                await browser.close()
        assert sorted(p.name for p in shots.iterdir()) == sorted(
            f"{n}-{s}.png" for n in ("list", "incident", "audit") for s in SIZES)


async def check(page, name: str) -> None:
    headings = await page.locator("h2").all_inner_texts()
    if name == "list":
        assert headings == ["Pending approvals (1)", "Rejected or snoozed, still firing (1)",
                            "Informational, no ticket (1)", "Open incidents with tickets",
                            "Recently resolved"]
        assert "✗ rejected" in await page.inner_text("#decided .badge")
        assert "MV Aurora v002" in await page.inner_text("#informational h3")
        assert "refit" in await page.inner_text("#decided")
        assert await page.locator("link[rel=stylesheet]").count() == 1
        colour = await page.evaluate(
            "getComputedStyle(document.querySelector('#decided .badge')).color")
        assert colour != "rgb(0, 0, 0)"  # the style came from /static/style.css
    elif name == "incident":
        assert headings[0].startswith("Incident #1: MV Aurora · server")
        status = await page.locator(".status .badge").all_inner_texts()
        assert status == ["● firing", "? waiting for approval"]
    else:
        assert headings == ["Decisions"]
        assert "reject" in await page.inner_text("#audit tbody")
