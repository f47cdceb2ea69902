"""Rules and deployment configs, checked by promtool and amtool themselves."""

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.servers import require_binary

ROOT = Path(__file__).parent.parent
RULES = ROOT / "rules"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def run(*command: str) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool", "/usr/bin/promtool")


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binary("amtool", "/usr/bin/amtool")


class TestPromtool:
    def test_rules_are_valid(self, promtool: str):
        assert "SUCCESS: 21 rules found" in run(promtool, "check", "rules",
                                                str(RULES / "fleet-sla.rules.yml"))

    def test_rule_unit_tests_pass(self, promtool: str):
        files = sorted(str(p) for p in (RULES / "tests").glob("*.test.yml"))
        assert len(files) >= 2
        output = run(promtool, "test", "rules", *files)
        assert output.count("SUCCESS") == len(files)

    def test_prometheus_config_loads_the_rules(self, promtool: str):
        output = run(promtool, "check", "config",
                     str(ROOT / "deploy" / "prometheus" / "prometheus.yml"))
        assert "SUCCESS: 1 rule files found" in output


class TestAlertmanagerConfig:
    def test_config_is_valid(self, amtool: str):
        assert "SUCCESS" in run(amtool, "check-config", str(ALERTMANAGER_CONFIG))

    @pytest.mark.parametrize(("labels", "receiver"), [
        (["ticket=jira", "alertname=FleetComponentDownPersistent", "vessel=v002"], "fleet-jira"),
        (["ticket=jira", "alertname=FleetVesselUnreachablePersistent", "vessel=aurora"],
         "fleet-jira"),
        (["alertname=FleetComponentSLABreach", "vessel=v002", "component=server"],
         "fleet-record"),
        (["alertname=FleetExporterDown"], "fleet-record"),
        (["alertname=FleetVesselClockSkew", "vessel=aurora", "status=clock_skew"],
         "fleet-record"),
    ])
    def test_routing(self, amtool: str, labels: list[str], receiver: str):
        output = run(amtool, "config", "routes", "test",
                     f"--config.file={ALERTMANAGER_CONFIG}", *labels)
        assert output.split("Warning:")[0].strip() == receiver  # amtool adds a warning after it


class TestAlertContract:
    """Every alert carries what the receiver and the people reading it rely on."""

    def alerts(self) -> list[dict]:
        document = yaml.safe_load((RULES / "fleet-sla.rules.yml").read_text(encoding="utf-8"))
        return [r for g in document["groups"] for r in g["rules"] if "alert" in r]

    def test_annotations_and_runbook_sections(self):
        runbook = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
        sections = {line[3:].strip().lower() for line in runbook.splitlines()
                    if line.startswith("## ")}
        alerts = self.alerts()
        assert len(alerts) == 9
        for alert in alerts:
            name = alert["alert"]
            annotations = alert["annotations"]
            expected = {"summary", "description", "runbook_url", "dashboard_url"}
            if name.startswith("FleetVessel"):
                expected |= {"vessel_name"}
            if name.startswith("FleetComponent"):  # what the receiver shows and tickets
                expected |= {"vessel_name", "uptime_24h", "devices_down"}
            if name == "FleetComponentDownPersistent":
                expected |= {"down_since"}
            assert set(annotations) == expected, name
            assert annotations["runbook_url"].endswith(f"runbooks.md#{name.lower()}"), name
            assert name.lower() in sections, f"docs/runbooks.md has no section for {name}"

    def test_tickets_only_for_persistent_problems(self):
        ticketed = {a["alert"] for a in self.alerts() if a["labels"].get("ticket") == "jira"}
        assert ticketed == {"FleetComponentDownPersistent", "FleetVesselUnreachablePersistent"}
