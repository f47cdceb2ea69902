"""The whole chain on loopback: simulator -> InfluxDB -> exporter -> Prometheus -> rules ->
Alertmanager -> webhook, with Debian's prometheus 2.42 and prometheus-alertmanager 0.25."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from exporter.config import parse_config
from exporter.web import create_app
from simulator.fleetconfig import fleet_config, unused_loopback_url
from simulator.influx import seed
from simulator.scenarios import plan_fleet
from tests.helpers import wait_ready
from tests.servers import AlertmanagerServer, Daemon, InfluxServer, PrometheusServer, require_binary

ROOT = Path(__file__).parent.parent
TOKEN = "e2e-webhook-token"


@dataclass
class Webhook:
    """Records what Alertmanager delivers, as the receiver would get it."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization", ""))
        self.payloads.append(await request.json())
        self.arrived.set()
        return web.json_response({"status": "ok"})

    async def wait_for(self, alertname: str, within: float) -> None:
        async with asyncio.timeout(within):
            while not self.groups(alertname):
                self.arrived.clear()
                await self.arrived.wait()

    def groups(self, alertname: str) -> dict[str, list[dict[str, Any]]]:
        """groupKey -> alerts, for the groups of one alert."""
        found: dict[str, list[dict[str, Any]]] = {}
        for payload in self.payloads:
            if payload["groupLabels"].get("alertname") == alertname:
                found.setdefault(payload["groupKey"], []).extend(payload["alerts"])
        return found


def fast_rules(path: Path) -> Path:
    """The real rules, with every `for:` cut to 2 s so the test takes seconds, not hours."""
    text = (ROOT / "rules" / "fleet-sla.rules.yml").read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 2s", text), encoding="utf-8")
    return path


@pytest.fixture
async def started():
    """Factory: start a Daemon without blocking the event loop; stopped at teardown."""
    daemons: list[Daemon] = []

    async def start(daemon: Daemon) -> Daemon:
        daemons.append(daemon)
        await asyncio.to_thread(daemon.start)
        return daemon

    yield start
    for daemon in daemons:
        await asyncio.to_thread(daemon.stop)


class TestAlertChain:
    @pytest.fixture
    async def chain(self, influxd: InfluxServer, tmp_path: Path, aiohttp_server, aiohttp_client,
                    started) -> AsyncIterator[tuple[Webhook, dict[str, str]]]:
        prometheus_bin = require_binary("prometheus", "/usr/bin/prometheus")
        alertmanager_bin = require_binary("prometheus-alertmanager",
                                          "/usr/bin/prometheus-alertmanager")
        vessels = plan_fleet(3, ["healthy", "down_4d", "healthy"], id_prefix="e2e")
        await seed(influxd.url, vessels, now=int(time.time()), days=5)
        config = parse_config(fleet_config(
            vessels, influxd.url, unused_loopback_url(), interval="5s",
            state_path=str(tmp_path / "exporter.db"),
        ))
        exporter = await aiohttp_server(create_app(config))
        await wait_ready(await aiohttp_client(exporter))

        webhook = Webhook()
        sink = web.Application()
        sink.router.add_post("/api/v1/alerts", webhook.handle)
        sink_server = await aiohttp_server(sink)

        alertmanager = await started(AlertmanagerServer(alertmanager_bin, yaml.safe_dump({
            "route": {
                "receiver": "fleet", "group_by": ["alertname", "vessel", "component"],
                "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
            },
            "receivers": [{"name": "fleet", "webhook_configs": [{
                "url": f"http://127.0.0.1:{sink_server.port}/api/v1/alerts",
                "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer",
                                                  "credentials_file": "token"}},
            }]}],
        }), files={"token": TOKEN}))
        await started(PrometheusServer(prometheus_bin, yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(fast_rules(tmp_path / "fleet-sla.rules.yml"))],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]},
            "scrape_configs": [{"job_name": "fleet-exporter", "static_configs": [
                {"targets": [f"127.0.0.1:{exporter.port}"]}]}],
        }), extra=("--rules.alert.resend-delay=1s",)))
        yield webhook, {v.scenario + str(i): v.id for i, v in enumerate(vessels)}

    async def test_four_days_down_delivers_one_ticket_group(self, chain):
        webhook, ids = chain
        down = ids["down_4d1"]
        await webhook.wait_for("FleetComponentDownPersistent", within=90)
        await asyncio.sleep(5)  # room for a duplicate group to show up, if there were one

        groups = webhook.groups("FleetComponentDownPersistent")
        assert len(groups) == 1, groups
        [alerts] = groups.values()
        assert {a["labels"]["vessel"] for a in alerts} == {down}
        alert = alerts[0]
        assert {k: v for k, v in alert["labels"].items() if k not in ("instance",)} == {
            "alertname": "FleetComponentDownPersistent", "vessel": down, "component": "server",
            "severity": "critical", "ticket": "jira", "job": "fleet-exporter",
        }
        assert alert["status"] == "firing"
        assert alert["annotations"]["summary"].startswith("server on MV ")
        assert "has been down for 4d" in alert["annotations"]["summary"]
        assert all(a == f"Bearer {TOKEN}" for a in webhook.authorizations)

        healthy = {ids["healthy0"], ids["healthy2"]}
        delivered = {a["labels"].get("vessel") for p in webhook.payloads for a in p["alerts"]}
        assert not delivered & healthy
