"""Config validation through the CLI: each bad input names its key and changes nothing."""

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.config import load_config, parse_config
from tests.config_fuzz import fails_only_with_config_error, mutations, values
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
        if isinstance(document, bytes):
            path.write_bytes(document)
        else:
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
            (edited(collection__lookback="20000w"),
             "collection.lookback: must be between 1d and 400d"),
            (edited(vessels__0__devices__0__address=DELETE),
             "vessels[0].devices[0].address: required key is missing"),
            (edited(collection__interval="5 minutes"), "collection.interval: expected a duration"),
            (edited(collection__timeout=30), "collection.timeout: expected a duration"),
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
             "vessels[0].influx.token: too short (1 characters): a secret under 8"),
            (edited(vessels__0__influx__token="t" * 8),
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
            ("- just\n- a list\n", "expected a mapping, got a list"),
            (edited(vessels=[]), "vessels: needs at least one vessel"),
            (edited(collection=None), "collection: expected a mapping, got an empty value"),
            (edited(collection__windows=[["24h"]]), "collection.windows[0]: expected one of"),
            (edited(vessels__0__influx__url="http://[::1"),
             "vessels[0].influx.url: expected an http"),
            (edited(listen="0.0.0.0:\u00b2"), "listen: expected host:port"),
            (edited(collection__interval="1" + "0" * 5000 + "s"),
             "collection.interval: expected a duration"),
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


# Each numeric key just outside its range, below and above: (document, message).
LIMITS = [
    (edited(collection__interval="1ms"), "collection.interval: must be between 10ms and 1d"),
    (edited(collection__interval="2d"), "collection.interval: must be between 10ms and 1d"),
    (edited(collection__concurrency=0), "collection.concurrency: must be between 1 and 1024"),
    (edited(collection__concurrency=1025), "collection.concurrency: must be between 1 and 1024"),
    (edited(collection__timeout="1ms"), "collection.timeout: must be between 10ms and 1h"),
    (edited(collection__timeout="100000w"),
     "collection.timeout: must be between 10ms and 1h, got 100000w"),
    (edited(collection__attempts=0), "collection.attempts: must be between 1 and 10, got 0"),
    (edited(collection__attempts=1000000000),
     "collection.attempts: must be between 1 and 10, got 1000000000"),
    (edited(collection__backoff="11m"), "collection.backoff: must be between 1ms and 10m"),
    (edited(collection__stale_after="999ms"), "collection.stale_after: must be between 1s and 30d"),
    (edited(collection__stale_after="31d"), "collection.stale_after: must be between 1s and 30d"),
    (edited(collection__lookback="401d"), "collection.lookback: must be between 1d and 400d"),
    (edited(state__run_retention="59m"), "state.run_retention: must be between 1h and 3650d"),
    (edited(state__run_retention="3651d"), "state.run_retention: must be between 1h and 3650d"),
    (edited(defaults__sample_interval="99ms"),
     "defaults.sample_interval: must be between 100ms and 1d"),
    (edited(vessels__1__sample_interval="2d"),
     "vessels[1].sample_interval: must be between 100ms and 1d"),
]


class TestLimits:
    """Every number has a range no real fleet reaches, so nonsense stops at the check."""

    @pytest.mark.parametrize(("document", "expected"), LIMITS)
    def test_out_of_range_names_key_and_range(self, check, document: Any, expected: str):
        code, output = check(document)
        assert (code, output.startswith("fleet-exporter: config error: ")) == (2, True)
        assert expected in output

    def test_limits_at_the_edges_are_accepted(self, check):
        code, output = check(edited(
            collection={"interval": "10ms", "concurrency": 1024, "timeout": "1h", "attempts": 10,
                        "backoff": "1ms", "stale_after": "30d", "lookback": "400d"},
            state={"run_retention": "3650d"}, defaults__sample_interval="100ms",
            vessels__1__sample_interval="1d"))
        assert code == 0, output

    def test_docs_document_every_range(self):
        doc = (Path(__file__).parent.parent / "docs" / "exporter.md").read_text(encoding="utf-8")
        for _document, expected in LIMITS:
            key, _, rest = expected.partition(": must be between ")
            low, _, high = rest.split(",")[0].partition(" and ")
            key = re.sub(r"vessels\[\d+\]", "vessels[]", key)
            assert re.search(rf"\| `{re.escape(key)}` \|.*\| {low} to {high} \|", doc), key


def _bomb() -> str:
    """A billion laughs: nine levels of nine aliases, a few hundred bytes."""
    lines = ["vessels:", "  - &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  - &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


EXAMPLE_TEXT = yaml.safe_dump(EXAMPLE, sort_keys=False)


class TestHostileFiles:
    """Files that once crashed or hung the check: each is one line and exit 2, at once."""

    @pytest.mark.parametrize(("document", "expected"), [
        (b"vessels:\n  - id: caf\xe9\n", "is not UTF-8: byte 0xe9 at line 2, column 12"),
        (b"\xff\xfe" + "vessels: []".encode("utf-16-le"), "is not UTF-8: byte 0xff at line 1"),
        ("vessels: " + "[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
        ("vessels: " + "[" * 40 + "]" * 40,
         "vessels" + "[0]" * 31 + ": nested deeper than 32 levels, at line 1, column 41"),
        ("vessels:\n" + "".join("  " * i + "- \n" for i in range(1, 1500)),
         "nested deeper than 32 levels"),
        ("vessels: []\nstate: &d {path: " + "[" * 28 + "x" + "]" * 28 + "}\n"
         "defaults: {sample_interval: [[[[*d]]]]}\n",
         "defaults.sample_interval[0][0][0][0]: nested deeper than 32 levels"),
        (_bomb(), "holds more than 200000 values, counting each use of an alias (at line 7"),
        ("vessels: &v [*v]\n", "vessels[0]: an alias inside its own anchor makes an endless"),
        ("vessels: []\nsla: {&k objective: 0.9, *k : 1}\n", "sla: a key must be a plain name"),
        ("vessels: []\nlisten: 0.0.0.0:1\nvessels: []\n", "vessels: duplicate key at line 3"),
        (EXAMPLE_TEXT.replace("  attempts: 3\n", "  attempts: 3\n  attempts: 4\n"),
         "collection.attempts: duplicate key"),
        (EXAMPLE_TEXT.replace("  attempts: 3", "  attempts: !!float abc"),
         "collection.attempts: YAML tags (!!float) are not allowed"),
        (EXAMPLE_TEXT.replace("  attempts: 3", "  attempts: 0x" + "f" * 4000),
         "integer out of range at line"),
        (EXAMPLE_TEXT.replace("  interval: 5m", "  interval: 2001-13-45"),
         "collection.interval: expected a duration like 30s, 5m or 24h, got '2001-13-45'"),
        (EXAMPLE_TEXT.replace("  attempts: 3", "\tattempts: 3"), "a tab character"),
        (EXAMPLE_TEXT + "---\n" + EXAMPLE_TEXT, "more than one YAML document"),
        ("vessels: []\nlisten: \"a\x00b\"\n", "control character U+0000 at line 2, column 11"),
        ("# nothing here\n", "the config file is empty"),
        ("---\n...\n", "the config file is empty"),
        ("#" * (4 * 1024 * 1024 + 1), "is larger than 4 MiB"),
        ("vessels: [" + "1," * 200_001 + "]", "more than 200000 values"),
    ])
    def test_one_line_error(self, check, document: str | bytes, expected: str):
        code, output = check(document)
        assert code == 2
        assert output.startswith("fleet-exporter: config error: ")
        assert expected in output
        assert output.count("\n") == 1, output

    def test_anchors_aliases_and_merge_keys_within_bounds_work(self, check):
        shared = {"url": "http://10.20.0.2:8086", "database": "telegraf"}
        document = edited(vessels__0__influx=shared, vessels__1__influx=shared, collection=DELETE)
        text = yaml.safe_dump(document) + "collection:\n  <<: {timeout: 5s}\n  attempts: 2\n"
        assert "&id001" in text and "*id001" in text  # as safe_dump writes shared values
        code, output = check(text)
        assert code == 0, output

    def test_directory_instead_of_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        assert main(["--config", str(tmp_path), "--check-config"]) == 2
        assert capsys.readouterr().err == (
            f"fleet-exporter: config error: cannot read {tmp_path}: Is a directory\n")

    def test_alias_bomb_is_refused_by_the_command(self, tmp_path: Path):
        path = tmp_path / "bomb.yml"
        path.write_text(_bomb(), encoding="utf-8")
        assert len(path.read_bytes()) < 400
        done = subprocess.run(
            [sys.executable, "-m", "exporter.cli", "--config", str(path), "--check-config"],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2
        assert "counting each use of an alias" in done.stderr
        assert "Traceback" not in done.stderr


_YAMLISH = ":-[]{}&*!|>'\"#%@`,?\t\n \\~.0123456789abeilnstvy\x00\xe9"
_TEXT = st.text(alphabet=st.sampled_from(list(_YAMLISH)), max_size=120)
_VALUES = values(["id", "url", "devices", "interval", "name", "x"],
                 ["1s", "0s", "99999999999w", "${X}", "${", "http://[::1", "24h", "-1"])
_mutated = mutations(EXAMPLE, _VALUES)


# The example's variables are set, so generated documents get past ${...} to validation.
_ENV = {"X": "1", "AURORA_USER": "reader", "AURORA_PASS": SECRET,
        "BOREALIS_TOKEN": SECRET, "CALEDONIA_TOKEN": SECRET}


class TestGeneratedConfigs:
    """Whatever the file holds, the only failure is a ConfigError."""

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(content=_TEXT | st.binary(max_size=80)
                     | st.sampled_from(sorted(EXAMPLE)).flatmap(_mutated).map(yaml.safe_dump))
    def test_files_fail_only_with_config_error(self, tmp_path: Path, content: str | bytes):
        path = tmp_path / "fleet.yml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        fails_only_with_config_error(lambda: load_config(path, env=_ENV))

    @pytest.mark.parametrize("section", sorted(EXAMPLE))
    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(data=st.data())
    def test_documents_fail_only_with_config_error(self, section: str, data: st.DataObject):
        document = data.draw(_mutated(section) | _VALUES)
        fails_only_with_config_error(lambda: parse_config(document, env=_ENV))


class TestObjectivePrecedence:
    """Vessel beats component beats the default, as seen in the exported objective."""

    def test_most_specific_objective_wins(self, tmp_path: Path, capsys):
        dead = f"http://127.0.0.1:{free_port()}"
        devices = EXAMPLE["vessels"][0]["devices"]
        document = edited(
            maintenance=DELETE,  # its windows name vessels replaced here
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
        document = edited(maintenance=DELETE,
                          state={"path": str(tmp_path / "missing" / "state.db")},
                          vessels=[{"id": "aurora", "devices": EXAMPLE["vessels"][0]["devices"],
                                    "influx": {"url": "http://127.0.0.1:1"}}])
        path = tmp_path / "fleet.yml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        assert main(["--config", str(path), "--once"]) == 1
        err = capsys.readouterr().err
        assert f"state database {tmp_path / 'missing' / 'state.db'}" in err
        assert "does not exist" in err and "Traceback" not in err
