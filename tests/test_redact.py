"""Redaction of secrets and credential-shaped text: pure functions."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_common.redact import MASK, basic_credentials, redact

TOKEN = "jira-api-token-xyz"


@pytest.mark.parametrize(("text", "expected"), [
    (f"bad token {TOKEN} given", f"bad token {MASK} given"),
    (f"glued{TOKEN}glued", MASK),  # a long secret goes with the token it stands in
    ("Authorization: Basic b3BzLWJvdDpzM2NyZXQ=", f"Authorization: Basic {MASK}"),
    ("authorization=Bearer abc.def.ghi", f"authorization=Bearer {MASK}"),
    ("Authorization: Token 0123", f"Authorization: Token {MASK}"),
    ('{"Authorization": "Bearer 0123"}', f'{{"Authorization": "Bearer {MASK}"}}'),
    ("sent Basic b3BzLWJvdDpzM2NyZXQ= twice", f"sent Basic {MASK} twice"),
    ("sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.x1 twice", f"sent Bearer {MASK} twice"),
    ("https://ops-bot:s3cret@jira.example/rest", f"https://{MASK}@jira.example/rest"),
    ("GET /hook?token=abc123&x=1", f"GET /hook?token={MASK}&x=1"),
    # user= is masked too: InfluxDB takes its user name as u= or user=
    ("password=hunter2; user=bob", f"password={MASK}; user={MASK}"),
    ('{"api_token": "abc", "n": 1}', f'{{"api_token": "{MASK}", "n": 1}}'),
    ("X-Auth-Token: abc123", f"X-Auth-Token: {MASK}"),
])
def test_credential_shaped_text(text: str, expected: str) -> None:
    assert redact(text, [TOKEN]) == expected


@pytest.mark.parametrize("text", [
    "project is required",
    "Basic authentication is disabled for this site",
    "the token expired; password reset needed",
    "Bearer tokens are not accepted here",
    "see https://jira.example/browse/OPS-1 for details",
])
def test_ordinary_words_are_left_alone(text: str) -> None:
    assert redact(text, ["abc", "site"]) == text.replace(" site", f" {MASK}")


def test_a_short_secret_goes_only_where_it_stands_as_a_token() -> None:
    assert redact("abc: abcdef xabc abc.", ["abc"]) == f"{MASK}: abcdef xabc {MASK}."


def test_basic_credentials_of_user_and_token() -> None:
    encoded = base64.b64encode(f"ops-bot:{TOKEN}".encode()).decode()
    assert basic_credentials("ops-bot", TOKEN) == encoded
    assert redact(f"auth was {encoded}", [basic_credentials("ops-bot", TOKEN)]) == \
        f"auth was {MASK}"


def test_empty_secrets_are_ignored() -> None:
    assert redact("nothing here", [""]) == "nothing here"


SECRETS = st.text(st.characters(exclude_characters="*", exclude_categories=("Cs",)),
                  min_size=8, max_size=40)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)


@given(before=TEXT, secret=SECRETS, after=TEXT)
def test_a_long_secret_never_survives(before: str, secret: str, after: str) -> None:
    assert secret not in redact(before + secret + after, [secret])


@given(text=TEXT, secret=SECRETS)
def test_redacting_twice_changes_nothing_more(text: str, secret: str) -> None:
    once = redact(text, [secret])
    assert redact(once, [secret]) == once


@given(words=st.lists(st.from_regex(r"[a-z]{4,12}", fullmatch=True), max_size=10),
       secret=st.from_regex(r"[a-z]{1,7}", fullmatch=True))
def test_a_short_secret_never_garbles_longer_words(words: list[str], secret: str) -> None:
    text = " ".join(w for w in words if w != secret)
    assert redact(text, [secret]) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("hunter2x1 was refused", f"{MASK} was refused"),
    ("xabcdefghy", MASK),
    ("key=abcdefgh&next=1", f"key={MASK}&next=1"),
    ('{"t": "abcdefgh"}', f'{{"t": "{MASK}"}}'),
])
def test_a_long_secret_takes_its_whole_token_with_it(text: str, expected: str) -> None:
    # Masking only the secret would show where in the token it stood.
    assert redact(text, ["hunter2x", "abcdefgh"]) == expected
