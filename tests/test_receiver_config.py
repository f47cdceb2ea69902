"""The receiver's CLI: config checks that name the key, and password hashing."""

import io
from pathlib import Path

import pytest
import yaml

from receiver.cli import main
from receiver.passwords import verify_password
from tests.receiver_helpers import write_receiver_config


@pytest.fixture
def check(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Factory: write a receiver config with overrides; run --check-config."""

    def run(drop: tuple[str, ...] = (), **sections) -> tuple[int, str]:
        path = write_receiver_config(tmp_path / "receiver.yml", **sections)
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
