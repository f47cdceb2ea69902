"""The approval page in headless Chromium, driven as an approver would use it."""

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from receiver.config import load_config
from receiver.web import create_app
from tests.receiver_helpers import PASSWORDS, alert, bearer, body, notification
from tests.receiver_helpers import write_receiver_config as write_config
from tests.servers import require_binary

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"]


@pytest.fixture
async def site(tmp_path: Path, aiohttp_server, aiohttp_client):
    """The receiver on a real loopback port, with one incident waiting for approval."""
    config = load_config(write_config(tmp_path / "receiver.yml"))
    server = await aiohttp_server(create_app(config))
    client = await aiohttp_client(server)
    response = await client.post("/api/v1/alerts", data=body(notification(alert())),
                                 headers=bearer())
    assert response.status == 200
    return f"http://127.0.0.1:{server.port}"


class TestApprovalInChromium:
    async def test_sign_in_open_approve_and_see_the_ticket(self, site: str):
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
                await page.wait_for_url(f"{site}/incidents/1")  # post/redirect/get
                async with asyncio.timeout(10):
                    while "DRY-1" not in await page.inner_text("body"):
                        await asyncio.sleep(0.1)
                        await page.reload()
                text = await page.inner_text("body")
                assert "approval approved" in text and "approved in the browser" in text
            finally:
                await browser.close()
