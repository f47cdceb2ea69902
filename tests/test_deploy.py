"""The deployment files agree with each other and with the code they start."""

from pathlib import Path

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
