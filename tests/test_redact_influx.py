"""Redaction of InfluxDB credentials from error text: configured secrets in every form, and
anything shaped like a credential, without damaging ordinary words."""

import base64
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_common.redact import MASK, WHOLE_TOKEN_BELOW, redact

USER, PASSWORD = "reader", "p@ss/w rd+9"


class TestConfiguredSecrets:
    @pytest.mark.parametrize("form", [
        pytest.param(PASSWORD, id="plain"),
        pytest.param(quote(PASSWORD, safe=""), id="url-encoded"),
        pytest.param("p%40ss%2Fw+rd%2B9", id="form-encoded"),
        pytest.param(base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), id="basic-pair"),
        pytest.param(base64.b64encode(PASSWORD.encode()).decode(), id="base64"),
    ])
    def test_every_form_is_replaced(self, form: str):
        assert redact(f"echo [{form}] end", [PASSWORD], USER) == f"echo [{MASK}] end"

    def test_a_short_secret_leaves_words_alone(self):
        for text in ("timed out after 3s", "time limit exceeded", "regime"):
            assert redact(text, ["ime"]) == text
            assert redact(text, ["e"]) == text

    def test_a_short_secret_standing_alone_is_replaced(self):
        assert redact("bad password ime, try again", ["ime"]) == f"bad password {MASK}, try again"
        assert redact('{"error":"e"}', ["e"]) == f'{{"error":"{MASK}"}}'

    def test_a_long_secret_is_replaced_with_the_word_it_stands_in(self):
        assert redact("got xxtok-Very-Secret-42yy", ["tok-Very-Secret-42"]) == f"got {MASK}"

    def test_no_secret_configured(self):
        assert redact("connection refused by 10.0.0.1:8086", []) == \
            "connection refused by 10.0.0.1:8086"


class TestCredentialShapes:
    @pytest.mark.parametrize(("text", "expected"), [
        ("GET /query?u=admin&p=hunter2&db=telegraf", f"GET /query?u={MASK}&p={MASK}&db=telegraf"),
        ("password=hunter2; token=abc", f"password={MASK}; token={MASK}"),
        ("Authorization: Token s3cr3t-token", f"Authorization: Token {MASK}"),
        ("authorization: bearer eyJhbGciOi.x.y", f"authorization: bearer {MASK}"),
        ('"Authorization": "Basic YWRtaW46aHVudGVyMg=="',
         f'"Authorization": "Basic {MASK}"'),
        ("sent Basic YWRtaW46aHVudGVyMg== upstream", f"sent Basic {MASK} upstream"),
        ("proxy http://admin:hunter2@10.0.0.1:8086/query failed",
         f"proxy http://{MASK}@10.0.0.1:8086/query failed"),
        ('{"password": "hunter2", "db": "x"}', f'{{"password": "{MASK}", "db": "x"}}'),
    ])
    def test_unconfigured_credentials_are_replaced(self, text: str, expected: str):
        assert redact(text, []) == expected

    @pytest.mark.parametrize("text", [
        "Basic authentication is not enabled",
        "basic ojoj",  # decodes to bytes with a colon, but not to text
        "Bearer token required",
        "timed out after 30s (3 attempts)",
        "HTTP 503 from 10.20.2.2:8086",
        "error parsing query: found EOF, expected identifier at line 1, char 8",
        "the password was wrong",
        "http://10.0.0.1:8086/query",
    ])
    def test_ordinary_text_is_unchanged(self, text: str):
        assert redact(text, []) == text


WORD = st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1,
               max_size=12)


@given(words=st.lists(WORD, max_size=12), secret=WORD)
def test_a_secret_never_damages_other_words(words: list[str], secret: str):
    """A secret shorter than WHOLE_TOKEN_BELOW is replaced only where it is a whole word."""
    if len(secret) >= WHOLE_TOKEN_BELOW:
        secret = secret[: WHOLE_TOKEN_BELOW - 1]
    text = " ".join(words)
    out = redact(text, [secret]).split(" ")
    assert out == [MASK if w == secret else w for w in words] if words else out == [""]


@given(before=st.text(max_size=30), after=st.text(max_size=30),
       secret=st.text(st.characters(blacklist_characters="*"), min_size=WHOLE_TOKEN_BELOW,
                      max_size=40))
def test_a_long_secret_never_survives(before: str, after: str, secret: str):
    out = redact(before + secret + after, [secret], "user")
    assert secret not in out
    assert MASK in out


@given(secret=st.text(st.characters(whitelist_categories=("L", "N")), min_size=1,
                      max_size=WHOLE_TOKEN_BELOW - 1))
def test_a_short_secret_standing_alone_never_survives(secret: str):
    out = redact(f"rejected: {secret} (check the token)", [secret])
    assert out.split(" ")[1] == MASK
