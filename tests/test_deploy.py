"""The deployment files agree with each other and with the code they start."""

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).parent.parent


def env_example() -> dict[str, str]:
    """.env.example as compose reads it: KEY=VALUE, single quotes literal."""
    env = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().removeprefix("'").removesuffix("'")
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}; $$ is a literal $."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        assert op != ":?", f"compose needs {name}: {arg}"
        return arg if op == ":-" else ""

    text = re.sub(r"(?<!\$)\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}", one, text)
    return text.replace("$$", "$")


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    return yaml.safe_load(interpolate(text, env_example() if env is None else env))


def mounts(service: str) -> dict[str, str]:
    """Target -> source of a service's volumes, after interpolation with .env.example."""
    found = {}
    for volume in compose()["services"][service].get("volumes", []):
        if isinstance(volume, dict):  # long syntax
            found[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            found[target] = source
    return found


class TestCompose:
    def test_every_mounted_path_exists(self):
        services = compose()["services"]
        named = set(compose()["volumes"])
        for name in services:
            for target, source in mounts(name).items():
                if source.startswith((".", "/")):
                    assert (ROOT / source).exists(), f"{name}: {source} -> {target}"
                else:
                    assert source in named, f"{name}: {source} is not a declared volume"

    def test_every_variable_it_uses_is_in_env_example(self):
        text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
        used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))
        assert used == {"FLEET_CONFIG", "RECEIVER_CONFIG", "RECEIVER_WEBHOOK_TOKEN",
                        "GRAFANA_ADMIN_PASSWORD"}
        assert used <= set(env_example())

    def test_a_missing_secret_stops_compose_with_its_name(self):
        env = {k: v for k, v in env_example().items() if k != "GRAFANA_ADMIN_PASSWORD"}
        with pytest.raises(AssertionError, match=re.escape("set GRAFANA_ADMIN_PASSWORD in .env")):
            compose(env)

    def test_no_secret_is_written_in_the_compose_file(self):
        text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
        for key, value in env_example().items():
            if any(w in key for w in ("TOKEN", "PASSWORD", "HASH")):
                assert value not in text, key

    def test_production_services_and_the_demo_profile(self):
        services = compose()["services"]
        default = {n for n, s in services.items() if not s.get("profiles")}
        assert default == {"exporter", "receiver", "prometheus", "alertmanager", "grafana"}
        assert {n for n, s in services.items() if s.get("profiles") == ["demo"]} == {
            "influxdb", "simulator"}
        assert services["influxdb"]["image"].startswith("influxdb:1.8")

    def test_exporter_and_receiver_mount_the_configs_env_example_names(self):
        env = env_example()
        assert mounts("exporter") == {"/etc/fleet-sla/fleet.yml": env["FLEET_CONFIG"],
                                      "/var/lib/fleet-sla": "exporter-state"}
        assert mounts("receiver") == {"/etc/fleet-sla/receiver.yml": env["RECEIVER_CONFIG"],
                                      "/var/lib/fleet-sla": "receiver-state"}
        for name in ("exporter", "receiver"):
            service = compose()["services"][name]
            assert service["command"] == ["--config", next(iter(mounts(name)))]
            assert "/healthz" in " ".join(service["healthcheck"]["test"])
            # A mistyped config path must fail, not mount an empty directory Docker made.
            [config] = [v for v in service["volumes"] if isinstance(v, dict)]
            assert config["read_only"] and config["bind"] == {"create_host_path": False}

    def test_every_port_is_published_on_loopback_only(self):
        """A trusted_header sign-in must not be reachable around the reverse proxy."""
        published = {}
        for name, service in compose()["services"].items():
            for mapping in service.get("ports", []):
                host, _, ports = mapping.partition(":")
                assert host == "127.0.0.1" and ports.count(":") == 1, (name, mapping)
                published[name] = int(ports.split(":")[0])
        assert published == {"exporter": 9470, "receiver": 9471, "prometheus": 9090,
                             "alertmanager": 9093, "grafana": 3000}

    def test_the_configs_env_example_names_are_valid(self, capsys):
        from exporter.cli import main as exporter_main
        from receiver.cli import main as receiver_main

        env = env_example()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            assert exporter_main(["--config", str(ROOT / env["FLEET_CONFIG"]),
                                  "--check-config"]) == 0
            assert receiver_main(["--config", str(ROOT / env["RECEIVER_CONFIG"]),
                                  "--check-config"]) == 0
        assert "config ok: 1 users, dry-run tickets" in capsys.readouterr().out

    def test_demo_fleet_config_is_what_the_simulator_seeds(self):
        from simulator.fleetconfig import fleet_config
        from simulator.scenarios import plan_fleet

        simulator = compose()["services"]["simulator"]["command"]
        assert "--follow" in simulator  # keeps the demo fleet live, nothing goes stale
        vessels = int(simulator[simulator.index("--vessels") + 1])
        url = simulator[simulator.index("--influx-url") + 1]
        assert urlsplit(url).hostname == "influxdb"
        demo = yaml.safe_load((ROOT / "deploy/demo/fleet.yml").read_text())
        # Unreachable vessels point at a host that does not exist, so they fail for real.
        [offline] = {v["influx"]["url"] for v in demo["vessels"]} - {url}
        assert urlsplit(offline).hostname.endswith(".invalid")
        expected = fleet_config(plan_fleet(vessels), url, offline)
        assert demo["vessels"] == expected["vessels"]
        # The dry-dock vessels are in a maintenance window whenever the demo runs.
        assert demo["maintenance"] == expected["maintenance"]
        [window] = demo["maintenance"]
        assert window["vessels"] == [v.id for v in plan_fleet(vessels)
                                     if v.scenario == "dry_dock"]

    def test_dockerfile_copies_what_exists_and_keeps_state_in_workdir(self):
        dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
        for source in re.findall(r"^COPY (?!--)(.+) \S+$", dockerfile, re.M):
            for path in source.split():
                assert (ROOT / path).exists(), path
        assert "WORKDIR /var/lib/fleet-sla" in dockerfile
        assert 'ENTRYPOINT ["fleet-exporter"]' in dockerfile
        assert ".env" in (ROOT / ".dockerignore").read_text().split()


class TestMonitoringServices:
    def test_prometheus_gets_its_config_and_the_rules(self):
        assert mounts("prometheus")["/etc/prometheus/prometheus.yml"] == (
            "./deploy/prometheus/prometheus.yml")
        assert mounts("prometheus")["/etc/prometheus/rules"] == "./rules"
        config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
        # rule_files are relative to the config file, which sits beside the rules mount.
        assert config["rule_files"] == ["rules/*.rules.yml"]
        targets = {t for job in config["scrape_configs"] for c in job["static_configs"]
                   for t in c["targets"]}
        assert {"exporter:9470", "receiver:9471"} <= targets
        assert "alertmanager:9093" in {
            t for a in config["alerting"]["alertmanagers"] for c in a["static_configs"]
            for t in c["targets"]}

    def test_alertmanager_writes_the_token_file_its_config_reads(self):
        assert mounts("alertmanager")["/etc/alertmanager/alertmanager.yml"] == (
            "./deploy/alertmanager/alertmanager.yml")
        config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
        [path] = {w["http_config"]["authorization"]["credentials_file"]
                  for r in config["receivers"] for w in r["webhook_configs"]}
        service = compose()["services"]["alertmanager"]
        script = service["entrypoint"][2]
        assert f'printf %s "$RECEIVER_WEBHOOK_TOKEN" > {path}' in script
        assert "exec env -u RECEIVER_WEBHOOK_TOKEN /bin/alertmanager" in script
        assert service["environment"]["RECEIVER_WEBHOOK_TOKEN"] == (
            env_example()["RECEIVER_WEBHOOK_TOKEN"])
        assert any(t.split(":")[0] == str(Path(path).parent) for t in service["tmpfs"])


class TestReceiverService:
    def test_alertmanager_webhooks_reach_a_compose_service_on_its_port(self):
        services = compose()["services"]
        config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
        for receiver in config["receivers"]:
            for hook in receiver["webhook_configs"]:
                url = urlsplit(hook["url"])
                assert url.hostname in services, hook["url"]
                assert url.hostname == "receiver" and url.path == "/api/v1/alerts"
        listen = yaml.safe_load((ROOT / env_example()["RECEIVER_CONFIG"]).read_text())["listen"]
        assert listen == f"0.0.0.0:{url.port}"  # reachable on the compose network

    def test_receiver_example_config_is_valid(self, capsys):
        from receiver.cli import main
        from receiver.passwords import hash_password

        env = {"RECEIVER_WEBHOOK_TOKEN": "t" * 16, "ALICE_PASSWORD_HASH": hash_password("a"),
               "BOB_PASSWORD_HASH": hash_password("b")}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            assert main(["--config", str(ROOT / "deploy/receiver.example.yml"),
                         "--check-config"]) == 0
        assert "config ok: 2 users, dry-run tickets" in capsys.readouterr().out
