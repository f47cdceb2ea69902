"""The whole chain on loopback: simulator -> InfluxDB -> exporter -> Prometheus -> rules ->
Alertmanager -> receiver, with Debian's prometheus 2.42 and prometheus-alertmanager 0.25."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import parse_config
from exporter.web import create_app
from receiver.config import load_config as load_receiver_config
from receiver.web import create_app as create_receiver_app
from simulator.fleetconfig import fleet_config, unused_loopback_url
from simulator.influx import seed
from simulator.scenarios import plan_fleet
from tests.fake_jira import FakeJira
from tests.helpers import wait_ready
from tests.receiver_helpers import TOKEN, signed_in, write_receiver_config
from tests.servers import AlertmanagerServer, Daemon, InfluxServer, PrometheusServer, require_binary

ROOT = Path(__file__).parent.parent


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


def deploy_alertmanager_config(receiver_url: str) -> str:
    """The shipped Alertmanager config, pointed at the test's receiver, with short waits."""
    config = yaml.safe_load(
        (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{receiver_url}/api/v1/alerts"
            hook["http_config"]["authorization"]["credentials_file"] = "token"
    return yaml.safe_dump(config)


class TestAlertChain:
    """The real Alertmanager delivers to the real receiver, with the shipped routing."""

    @pytest.fixture
    async def chain(self, influxd: InfluxServer, tmp_path: Path, aiohttp_server, aiohttp_client,
                    started) -> AsyncIterator[tuple[Any, dict[str, str]]]:
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

        jira = FakeJira()
        jira_server = await aiohttp_server(jira.app())
        receiver_config = load_receiver_config(write_receiver_config(
            tmp_path / "receiver.yml",
            jira={"url": f"http://127.0.0.1:{jira_server.port}", "project": "OPS",
                  "username": "ops-bot@example.com", "api_token": "token"}))
        receiver = await aiohttp_server(create_receiver_app(receiver_config))
        alertmanager = await started(AlertmanagerServer(
            alertmanager_bin, deploy_alertmanager_config(f"http://127.0.0.1:{receiver.port}"),
            files={"token": TOKEN}))
        await started(PrometheusServer(prometheus_bin, yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(fast_rules(tmp_path / "fleet-sla.rules.yml"))],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]},
            "scrape_configs": [{"job_name": "fleet-exporter", "static_configs": [
                {"targets": [f"127.0.0.1:{exporter.port}"]}]}],
        }), extra=("--rules.alert.resend-delay=1s",)))
        yield await aiohttp_client(receiver), jira, {v.scenario + str(i): v.id
                                                      for i, v in enumerate(vessels)}

    async def test_four_days_down_becomes_one_incident_and_one_ticket(self, chain):
        receiver, jira, ids = chain
        down = ids["down_4d1"]
        key = f"alertname=FleetComponentDownPersistent,vessel={down},component=server"

        async def incidents() -> list[dict]:
            response = await receiver.get("/api/v1/incidents", headers=signed_in())
            return (await response.json())["incidents"]

        async with asyncio.timeout(90):
            while True:
                if any(i["dedupe_key"] == key for i in await incidents()):
                    break
                await asyncio.sleep(0.5)
        await asyncio.sleep(5)  # room for repeats and a second incident, if there were one

        found = await incidents()
        persistent = [i for i in found if i["dedupe_key"] == key]
        assert len(persistent) == 1, found
        [incident] = persistent
        assert incident["approval"] == "pending" and incident["state"] == "firing"
        [details] = incident["details"].values()
        assert {k: v for k, v in details["labels"].items() if k != "instance"} == {
            "alertname": "FleetComponentDownPersistent", "vessel": down, "component": "server",
            "severity": "critical", "ticket": "jira", "job": "fleet-exporter",
        }
        assert "has been down for 4d" in details["annotations"]["summary"]
        # The SLA breach of the same component is recorded, without asking for approval.
        breach = [i for i in found if i["labels"]["alertname"] == "FleetComponentSLABreach"]
        assert [i["approval"] for i in breach] == ["none"]

        healthy = {ids["healthy0"], ids["healthy2"]}
        assert not {i["labels"]["vessel"] for i in found} & healthy
        metrics = await receiver.get("/metrics")
        assert 'fleet_receiver_webhook_requests_total{code="200"}' in await metrics.text()

        # An approver approves (twice, as a double click would): one ticket in JIRA.
        for _ in range(2):
            response = await receiver.post(f"/api/v1/incidents/{incident['id']}/approve",
                                           json={"comment": "e2e"}, headers=signed_in())
            assert response.status == 200
        async with asyncio.timeout(30):
            while True:
                detail = await (await receiver.get(f"/api/v1/incidents/{incident['id']}",
                                                   headers=signed_in())).json()
                if detail["ticket_key"]:
                    break
                await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # Alertmanager keeps sending: still one ticket after that
        [issue] = jira.issues.values()
        # The rules' annotations give the vessel's name and when the server went down.
        assert issue["fields"]["summary"].startswith("[MV Borealis 1] server down for 4d ")
        assert "Devices down: srv-1 (10.1.3.20)" in issue["fields"]["description"]
        assert detail["ticket_key"] == issue["key"]
