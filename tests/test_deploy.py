"""The deployment files agree with each other and with the code they start."""

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).parent.parent


class TestCompose:
    def test_exporter_service_mounts_the_config_it_is_given(self):
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
        service = compose["services"]["exporter"]
        assert (ROOT / service["build"] / "Dockerfile").is_file()
        config_path = service["command"][service["command"].index("--config") + 1]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert config_path in mounts
        assert mounts["/var/lib/fleet-sla"] in compose["volumes"]  # state survives restarts
        assert "/healthz" in " ".join(service["healthcheck"]["test"])

    def test_dockerfile_workdir_holds_the_state(self):
        dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
        assert "WORKDIR /var/lib/fleet-sla" in dockerfile
        assert 'ENTRYPOINT ["fleet-exporter"]' in dockerfile


class TestMonitoringServices:
    def compose(self) -> dict:
        return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))

    def mounts(self, service: str) -> dict[str, str]:
        volumes = self.compose()["services"][service]["volumes"]
        return {v.split(":")[1]: v.split(":")[0] for v in volumes}

    def test_prometheus_gets_its_config_and_the_rules(self):
        mounts = self.mounts("prometheus")
        assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
        assert mounts["/etc/prometheus/rules"] == "./rules"
        config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
        # rule_files are relative to the config file, which sits beside the rules mount.
        assert config["rule_files"] == ["rules/*.rules.yml"]
        targets = {t for job in config["scrape_configs"] for c in job["static_configs"]
                   for t in c["targets"]}
        assert "exporter:9470" in targets and "alertmanager:9093" in {
            t for a in config["alerting"]["alertmanagers"] for c in a["static_configs"]
            for t in c["targets"]}

    def test_alertmanager_token_file_is_mounted_where_the_config_reads_it(self):
        config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
        files = {w["http_config"]["authorization"]["credentials_file"]
                 for r in config["receivers"] for w in r["webhook_configs"]}
        assert files <= set(self.mounts("alertmanager"))


class TestReceiverService:
    def test_alertmanager_webhooks_reach_a_compose_service_on_its_port(self):
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
        config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
        for receiver in config["receivers"]:
            for hook in receiver["webhook_configs"]:
                url = urlsplit(hook["url"])
                assert url.hostname in compose["services"], hook["url"]
                service = compose["services"][url.hostname]
                assert f"{url.port}:{url.port}" in service["ports"]
                assert url.path == "/api/v1/alerts"

    def test_receiver_example_config_is_valid(self, capsys):
        from receiver.cli import main
        from receiver.passwords import hash_password

        env = {"RECEIVER_WEBHOOK_TOKEN": "t", "ALICE_PASSWORD_HASH": hash_password("a"),
               "BOB_PASSWORD_HASH": hash_password("b")}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            assert main(["--config", str(ROOT / "deploy/receiver.example.yml"),
                         "--check-config"]) == 0
        assert "config ok: 2 users, dry-run tickets" in capsys.readouterr().out
