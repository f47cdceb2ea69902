"""`fleet-receiver --check-config` refuses configs that would leave the receiver open."""

from pathlib import Path

import pytest

from receiver.cli import main
from tests.receiver_helpers import write_receiver_config

PROXY = {"trusted_header": "X-Forwarded-User"}
OPT_IN = "trust_any_proxy_i_know_this_lets_anyone_sign_in"


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], **sections) -> tuple[int, str]:
    path = write_receiver_config(tmp_path / "receiver.yml", **sections)
    code = main(["--config", str(path), "--check-config"])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(("sections", "expected"), [
    ({"webhook": {"bearer_token": "abc"}},
     "webhook.bearer_token: too short (3 characters); use at least 16"),
    ({"users": []}, "users: needs at least one approver, or nobody could approve"),
    ({"users": [{"name": "carol", "role": "viewer"}], **PROXY,
      "trusted_proxies": ["10.0.0.1"]},
     "users: needs at least one approver, or nobody could approve"),
    ({**PROXY, "trusted_proxies": ["10.0.0.1", "0.0.0.0/0"]},
     f"trusted_proxies[1]: 0.0.0.0/0 is every address, so anyone could sign in as anyone;"
     f" name your auth proxy's addresses (or set {OPT_IN}: true)"),
    ({**PROXY, "trusted_proxies": ["::/0"]}, "trusted_proxies[0]: ::/0 is every address"),
    ({**PROXY, "trusted_proxies": ["10.0.0.1"], OPT_IN: True},
     f"{OPT_IN}: only used when trusted_proxies holds 0.0.0.0/0 or ::/0"),
    ({**PROXY, "trusted_proxies": ["0.0.0.0/0"], OPT_IN: "yes"},
     f"{OPT_IN}: expected true or false"),
])
def test_refused_with_the_key_and_why(tmp_path, capsys, sections, expected):
    code, output = check(tmp_path, capsys, **sections)
    assert code == 2
    assert expected in output


def test_any_proxy_only_with_the_loud_opt_in(tmp_path, capsys):
    code, output = check(tmp_path, capsys, **PROXY, trusted_proxies=["0.0.0.0/0"],
                         **{OPT_IN: True})
    assert code == 0, output


def test_a_long_enough_token_passes(tmp_path, capsys):
    code, output = check(tmp_path, capsys, webhook={"bearer_token": "x" * 16})
    assert code == 0, output
