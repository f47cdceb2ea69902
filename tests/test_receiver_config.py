"""The receiver's CLI: config checks that name the key, and password hashing."""

import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_common.durations import format_duration
from receiver.cli import main
from receiver.config import (
    DURATION_RANGES,
    MAX_BODY_RANGE,
    load_config,
    parse_config,
)
from receiver.passwords import hash_password, verify_password
from tests.config_fuzz import fails_only_with_config_error, mutations, values
from tests.receiver_helpers import write_receiver_config


@pytest.fixture
def check(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Factory: write a receiver config with overrides; run --check-config."""

    def run(drop: tuple[str, ...] = (), raw: str | bytes | None = None,
            **sections) -> tuple[int, str]:
        path = write_receiver_config(tmp_path / "receiver.yml", **sections)
        if raw is not None:
            path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
        if drop:
            document = yaml.safe_load(path.read_text())
            for key in drop:
                del document[key]
            path.write_text(yaml.safe_dump(document))
        code = main(["--config", str(path), "--check-config"])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


class TestReceiverConfig:
    def test_valid(self, check):
        code, output = check()
        assert code == 0 and "config ok: 2 users, dry-run tickets" in output

    @pytest.mark.parametrize(("sections", "expected"), [
        ({"webhok": {}}, "webhok: unknown key"),
        ({"users": [{"name": "carol", "password_hash": "hunter2", "role": "approver"}]},
         "users[0].password_hash: not a hash from `fleet-receiver hash-password`"),
        ({"users": [{"name": "carol", "role": "admin"}]}, "users[0].role: expected one of"),
        ({"users": [{"name": "carol", "role": "viewer"}]},
         "users[0].password_hash: required unless trusted_header"),
        ({"incidents": {"on_timeout": "escalate"}}, "incidents.on_timeout: expected one of"),
        ({"incidents": {"reopen_window": "a week"}},
         "incidents.reopen_window: expected a duration"),
        ({"incidents": {"dedupe_labels": ["vessel-name"]}}, "incidents.dedupe_labels[0]:"),
        ({"jira": {"url": "https://jira.example", "project": "OPS", "username": "bot"}},
         "jira.api_token: username and api_token must be set together"),
        ({"jira": {"url": "https://jira.example", "project": "OPS"}},
         "jira: set username + api_token (Cloud) or personal_access_token"),
        ({"notify_url": "chat.example/hook"}, "notify_url: expected an http:// or https:// URL"),
        ({"trusted_header": "X-Forwarded-User"},
         "trusted_proxies: required with trusted_header"),
        ({"trusted_proxies": ["127.0.0.1"]}, "trusted_proxies: only used with trusted_header"),
        ({"trusted_header": "X-Forwarded-User", "trusted_proxies": ["10.0.0.0/33"]},
         "trusted_proxies[0]: expected an IP address or network, got '10.0.0.0/33'"),
        ({"trusted_header": "X-Forwarded-User", "trusted_proxies": []},
         "trusted_proxies: must name at least one address"),
    ])
    def test_error_names_the_key(self, check, sections, expected):
        code, output = check(**sections)
        assert code == 2
        assert expected in output

    def test_webhook_token_is_required(self, check):
        code, output = check(drop=("webhook",))
        assert code == 2 and "webhook: required key is missing" in output

    def test_users_may_come_from_an_auth_proxy(self, check):
        code, output = check(trusted_header="X-Forwarded-User", trusted_proxies=["172.18.0.1"],
                             users=[{"name": "carol", "role": "approver"}])
        assert code == 0, output


    @pytest.mark.parametrize(("sections", "expected"), [
        ({"incidents": {"approval_timeout": "59s"}},
         "incidents.approval_timeout: must be between 1m and 90d, got 59s"),
        ({"incidents": {"approval_timeout": "100000w"}},
         "incidents.approval_timeout: must be between 1m and 90d, got 100000w"),
        ({"incidents": {"reopen_window": "59s"}},
         "incidents.reopen_window: must be between 1m and 400d"),
        ({"incidents": {"reopen_window": "401d"}},
         "incidents.reopen_window: must be between 1m and 400d"),
        ({"incidents": {"alert_expiry": "59m"}},
         "incidents.alert_expiry: must be between 1h and 90d"),
        ({"incidents": {"alert_expiry": "91d"}},
         "incidents.alert_expiry: must be between 1h and 90d"),
        ({"incidents": {"reject_snooze": "59s"}},
         "incidents.reject_snooze: must be between 1m and 400d"),
        ({"incidents": {"reject_snooze": "401d"}},
         "incidents.reject_snooze: must be between 1m and 400d"),
        ({"max_body_bytes": 1023}, "max_body_bytes: must be between 1024 and 67108864, got 1023"),
        ({"max_body_bytes": 10**12},
         "max_body_bytes: must be between 1024 and 67108864, got 1000000000000"),
        ({"max_body_bytes": "1MB"}, "max_body_bytes: expected an integer, got '1MB'"),
    ])
    def test_out_of_range_names_key_and_range(self, check, sections, expected):
        code, output = check(**sections)
        assert code == 2
        assert output.startswith("fleet-receiver: config error: ")
        assert expected in output

    def test_check_config_explains_the_alert_expiry(self, check):
        code, output = check(incidents={"alert_expiry": "36h"})
        assert code == 0, output
        assert "incidents.alert_expiry 36h: a firing alert Alertmanager has not sent" \
            in output
        assert "must exceed Alertmanager's repeat_interval" in output
        code, output = check()
        assert "incidents.alert_expiry 3d:" in output  # 3 x the shipped 24h

    def test_docs_document_every_range(self):
        doc = (Path(__file__).parent.parent / "docs" / "receiver.md").read_text(encoding="utf-8")
        ranges = {key: f"{format_duration(low)} to {format_duration(high)}"
                  for key, (low, high) in DURATION_RANGES.items()}
        ranges["max_body_bytes"] = "{} to {}".format(*MAX_BODY_RANGE)
        for key, shown in ranges.items():
            row = next(line for line in doc.splitlines() if line.startswith(f"| `{key}` |"))
            assert f"| {shown}" in row, key

    def test_limits_at_the_edges_are_accepted(self, check):
        code, output = check(max_body_bytes=64 * 1024 * 1024, incidents={
            "approval_timeout": "90d", "reopen_window": "1m", "reject_snooze": "400d"})
        assert code == 0, output

    @pytest.mark.parametrize(("raw", "expected"), [
        (b"webhook: {bearer_token: t\xe9}\n", "is not UTF-8: byte 0xe9 at line 1, column 26"),
        ("webhook: {bearer_token: t}\nlinks: " + "{a: " * 3000 + "}" * 3000,
         "nested deeper than 32 levels"),
        ("webhook: {bearer_token: t}\nusers:\n  - &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
         + "".join(f"  - &{n} [{','.join(['*' + p] * 9)}]\n"
                   for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
         "holds more than 200000 values, counting each use of an alias"),
        ("webhook: &w {bearer_token: *w}\n", "webhook.bearer_token: an alias inside its own"),
        ("webhook: {bearer_token: t, bearer_token: u}\n",
         "webhook.bearer_token: duplicate key at line 1"),
        ("webhook: {bearer_token: t}\n---\nwebhook: {bearer_token: t}\n",
         "more than one YAML document"),
        ("webhook:\n\tbearer_token: t\n", "a tab character"),
        ("", "the config file is empty"),
    ])
    def test_hostile_file_is_one_line(self, check, raw, expected):
        code, output = check(raw=raw)
        assert code == 2
        assert output.startswith("fleet-receiver: config error: ")
        assert expected in output
        assert output.count("\n") == 1, output

    def test_directory_instead_of_file(self, tmp_path: Path, capsys):
        assert main(["--config", str(tmp_path), "--check-config"]) == 2
        assert capsys.readouterr().err == (
            f"fleet-receiver: config error: cannot read {tmp_path}: Is a directory\n")


_EXAMPLE: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent.parent / "deploy" / "receiver.example.yml").read_text(encoding="utf-8")
)
_EXAMPLE["jira"] = {"url": "https://jira.example", "project": "OPS", "username": "bot",
                    "api_token": "${X}", "labels": ["a"]}
_VALUES = values(["name", "role", "url", "bearer_token", "x"],
                 ["1s", "99999999999w", "${X}", "${", "http://[::1", "approver", "-1"])
_mutated = mutations(_EXAMPLE, _VALUES)


# The example's variables are set, so generated documents get past ${...} to validation.
_ENV = {"X": "1", "RECEIVER_WEBHOOK_TOKEN": "token", "ALICE_PASSWORD_HASH": hash_password("a"),
        "BOB_PASSWORD_HASH": hash_password("b")}


class TestGeneratedConfigs:
    """Whatever the file holds, the only failure is a ConfigError."""

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(content=st.binary(max_size=80)
                     | st.sampled_from(sorted(_EXAMPLE)).flatmap(_mutated).map(yaml.safe_dump))
    def test_files_fail_only_with_config_error(self, tmp_path: Path, content: str | bytes):
        path = tmp_path / "receiver.yml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        fails_only_with_config_error(lambda: load_config(path, env=_ENV))

    @pytest.mark.parametrize("section", sorted(_EXAMPLE))
    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(data=st.data())
    def test_documents_fail_only_with_config_error(self, section: str, data: st.DataObject):
        document = data.draw(_mutated(section) | _VALUES)
        fails_only_with_config_error(lambda: parse_config(document, env=_ENV))


class TestHashPassword:
    def test_hash_verifies_the_password_only(self, monkeypatch, capsys):
        monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
        assert main(["hash-password"]) == 0
        hashed = capsys.readouterr().out.strip()
        assert "correct horse" not in hashed
        assert verify_password("correct horse", hashed)
        assert not verify_password("correct horse ", hashed)

    def test_empty_password_is_refused(self, monkeypatch, capsys):
        monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
        assert main(["hash-password"]) == 2
