"""Config validation through the CLI: each bad input names its key and changes nothing."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import main
from tests.helpers import Metrics
from tests.servers import free_port

EXAMPLE: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent.parent / "deploy" / "fleet.example.yml").read_text(encoding="utf-8")
)
SECRET = "s3cr3t-Pa55"


@pytest.fixture
def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Factory: write a config (from a document or raw text), run --check-config."""
    monkeypatch.setenv("AURORA_USER", "reader")
    monkeypatch.setenv("AURORA_PASS", SECRET)
    monkeypatch.setenv("BOREALIS_TOKEN", SECRET + "-token")
    monkeypatch.setenv("CALEDONIA_TOKEN", SECRET + "-flux")

    def run(document: Any) -> tuple[int, str]:
        path = tmp_path / "fleet.yml"
        text = document if isinstance(document, str) else yaml.safe_dump(document)
        path.write_text(text, encoding="utf-8")
        code = main(["--config", str(path), "--check-config"])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


def edited(**paths: Any) -> dict[str, Any]:
    """The example with keys set by dotted path; the value DELETE removes a key."""
    document = copy.deepcopy(EXAMPLE)
    for dotted, value in paths.items():
        *parents, last = dotted.split("__")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return document


DELETE = object()


class TestValidConfig:
    def test_shipped_example_is_valid(self, check):
        code, output = check(EXAMPLE)
        assert code == 0
        assert "config ok: 3 vessels, 6 devices" in output


class TestInvalidConfig:
    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            (edited(colection={}), "colection: unknown key"),
            (edited(collection__intervall="5m"), "collection.intervall: unknown key"),
            (edited(vessels__0__influx__urll="http://x"), "vessels[0].influx.urll: unknown key"),
            (edited(defaults__influx__db="x"), "defaults.influx.db: unknown key"),
            (edited(vessels=DELETE), "vessels: required key is missing"),
            (edited(vessels__0__influx__url="ftp://host"),
             "vessels[0].influx.url: expected an http"),
            (edited(vessels__0__influx__url="http://host:99999"),
             "vessels[0].influx.url: invalid port"),
            (edited(vessels__0__id="Aurora"), "vessels[0].id: 'Aurora' does not match"),
            (edited(vessels__0__devices__1__component="router"),
             "vessels[0].devices[1].component: unknown component 'router'"),
            (edited(vessels__0__devices__1__name="ap-bridge"),
             "vessels[0].devices[1].name: duplicate device name"),
            (edited(vessels__0__devices__1__address="10.10.1.5"),
             "vessels[0].devices[1].address: duplicate address"),
            (edited(vessels__0__devices=[]), "vessels[0].devices: a vessel needs at least one"),
            (edited(vessels__0__devices__0__address="10.0.0.1\nx"),
             "vessels[0].devices[0].address: '10.0.0.1\\nx' does not match"),
            (edited(collection__lookback="20000w"), "collection.lookback: must be at most 400d"),
            (edited(vessels__0__devices__0__address=DELETE),
             "vessels[0].devices[0].address: required key is missing"),
            (edited(collection__interval="5 minutes"), "collection.interval: expected a duration"),
            (edited(collection__timeout=30), "collection.timeout: expected a duration"),
            (edited(collection__concurrency=0), "collection.concurrency: must be at least 1"),
            (edited(collection__attempts="3"), "collection.attempts: expected an integer"),
            (edited(collection__windows=["7d"]), "collection.windows: must include 24h"),
            (edited(collection__windows=["24h", "12h"]), "collection.windows[1]: expected one of"),
            (edited(collection__lookback="1d", collection__windows=["24h", "7d"]),
             "collection.lookback: must be at least as long"),
            (edited(sla__objective=95), "sla.objective: must be a ratio in (0, 1]"),
            (edited(sla__components={"router": 0.9}), "sla.components.router: unknown key"),
            (edited(vessels__0__sla__objective=1.5), "vessels[0].sla.objective: must be a ratio"),
            (edited(listen="9470"), "listen: expected host:port"),
            (edited(vessels__0__influx__password=DELETE),
             "vessels[0].influx.password: username and password must be set together"),
            (edited(vessels__0__influx__token="t"),
             "vessels[0].influx.token: use either token or username/password"),
            (edited(vessels__0__influx__database=DELETE, defaults={}),
             "vessels[0].influx.database: required key is missing"),
            (edited(vessels__2__influx__bucket=DELETE),
             "vessels[2].influx.bucket: required key is missing for api flux"),
            (edited(vessels__2__influx__token=DELETE),
             "vessels[2].influx.token: required key is missing for api flux"),
            (edited(vessels__2__influx__org=DELETE),
             "vessels[2].influx.org: required key is missing for api flux"),
            (edited(vessels__2__influx__api="sql"),
             "vessels[2].influx.api: expected one of influxql, flux, got 'sql'"),
            (edited(vessels__2__influx__database="telegraf"),
             "vessels[2].influx.database: not used with api flux; it is for api influxql"),
            (edited(vessels__1__influx__bucket="telegraf"),
             "vessels[1].influx.bucket: not used with api influxql; it is for api flux"),
            (edited(defaults__influx__api="flux"),
             "vessels[0].influx.org: required key is missing for api flux"),
            (edited(components=["access_point", "access_point"]),
             "components: must be a non-empty"),
            ("vessels: [\n  - id: a\n   bad", "is not valid YAML at line"),
            ("", "the config file is empty"),
            ("- just\n- a list\n", "expected a mapping, got list"),
        ],
    )
    def test_error_names_the_key(self, check, document: Any, expected: str):
        code, output = check(document)
        assert code == 2
        assert expected in output
        assert output.startswith("fleet-exporter: config error: ")

    def test_missing_environment_variable(self, check, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.delenv("AURORA_PASS")
        code, output = check(EXAMPLE)
        assert code == 2
        assert "vessels[0].influx.password: environment variable AURORA_PASS is not set" in output

    def test_credentials_in_url_rejected_without_echo(self, check):
        code, output = check(edited(vessels__0__influx__url=f"http://u:{SECRET}@10.0.0.1:8086"))
        assert code == 2
        assert "vessels[0].influx.url: must not contain credentials" in output
        assert SECRET not in output

    @pytest.mark.parametrize("url", [
        f"htp://reader:{SECRET}@10.0.0.1:8086",
        f"http://reader:{SECRET}@",
        f"http://{SECRET}@10.0.0.1:8086",
        "${INFLUX_URL}",
    ])
    def test_mistyped_url_with_credentials_not_echoed(self, check, monkeypatch, url: str):
        monkeypatch.setenv("INFLUX_URL", f"ftp://u:{SECRET}@h")
        code, output = check(edited(vessels__0__influx__url=url))
        assert code == 2
        assert "vessels[0].influx.url: must not contain credentials" in output
        assert SECRET not in output

    def test_bad_reference_inside_a_password_not_echoed(self, check):
        code, output = check(edited(vessels__0__influx__password="pa${ss wo}rd"))
        assert code == 2
        assert "vessels[0].influx.password: invalid environment variable reference" in output
        assert "ss wo" not in output

    def test_malformed_secret_not_echoed(self, check):
        code, output = check(edited(vessels__0__influx__password=[SECRET]))
        assert code == 2
        assert "vessels[0].influx.password: expected a non-empty string" in output
        assert SECRET not in output

    def test_missing_file(self, check, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        code = main(["--config", str(tmp_path / "nope.yml"), "--check-config"])
        assert code == 2
        assert "cannot read" in capsys.readouterr().err


class TestObjectivePrecedence:
    """Vessel beats component beats the default, as seen in the exported objective."""

    def test_most_specific_objective_wins(self, tmp_path: Path, capsys):
        dead = f"http://127.0.0.1:{free_port()}"
        devices = EXAMPLE["vessels"][0]["devices"]
        document = edited(
            state={"path": str(tmp_path / "state.db")},
            collection={"attempts": 1, "timeout": "2s"},
            vessels=[
                {"id": "aurora", "sla": {"objective": 0.97}, "devices": devices,
                 "influx": {"url": dead, "database": "telegraf"}},
                {"id": "borealis", "devices": devices,
                 "influx": {"url": dead, "database": "telegraf"}},
            ],
        )
        path = tmp_path / "fleet.yml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        assert main(["--config", str(path), "--once"]) == 0
        metrics = Metrics(capsys.readouterr().out)
        objective = "fleet_component_sla_objective_ratio"
        assert metrics.get(objective, vessel="aurora", component="server") == 0.97
        assert metrics.get(objective, vessel="aurora", component="access_point") == 0.97
        assert metrics.get(objective, vessel="borealis", component="server") == 0.99
        assert metrics.get(objective, vessel="borealis", component="access_point") == 0.95


class TestStartupErrors:
    def test_state_directory_missing(self, tmp_path: Path, capsys):
        document = edited(state={"path": str(tmp_path / "missing" / "state.db")},
                          vessels=[{"id": "aurora", "devices": EXAMPLE["vessels"][0]["devices"],
                                    "influx": {"url": "http://127.0.0.1:1"}}])
        path = tmp_path / "fleet.yml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        assert main(["--config", str(path), "--once"]) == 1
        err = capsys.readouterr().err
        assert f"state database {tmp_path / 'missing' / 'state.db'}" in err
        assert "does not exist" in err and "Traceback" not in err
