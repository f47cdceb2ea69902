"""Takes credentials out of text before it is stored, logged or shown. Pure functions,
shared by the exporter and the receiver.

An InfluxDB, a JIRA or a proxy may echo the request in an error body: the configured
secrets, URL-encoded or inside a Basic header, and credentials nobody configured here. Every
configured form is replaced with ***, and so is anything shaped like a credential:
u=/p=/token=... parameters, Authorization headers, user:pass@ in URLs.

Replacing a short secret inside words would garble them ("tim***d out") and show where
the secret occurs, so a secret shorter than WHOLE_TOKEN_BELOW is replaced only where it stands
as a whole token. Longer ones are replaced wherever they occur.
"""

import base64
import binascii
import functools
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
WHOLE_TOKEN_BELOW = 8  # characters; shorter secrets could be parts of ordinary words
_TOKEN_CHARS = r"[A-Za-z0-9_.~+/-]"  # what a secret may be glued to in a token or an encoding

_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9_])((?:u|p|user|username|pass|passwd|password|pwd|token|"
    r"access_token|auth_token|api_key|apikey|secret|client_secret)=)[^&\s\"',;]+")
# "password": "x" in an echoed JSON body
_JSON_FIELD = re.compile(
    r"(?i)(\"(?:password|passwd|token|access_token|auth_token|api_key|secret)\"\s*:\s*\")"
    r"(?:[^\"\\]|\\.)*")
_HEADER = re.compile(r"(?i)(authorization\W{0,3}\s*(?:basic|token|bearer)\s+)[^\s\"',;]+")
_BASIC = re.compile(r"(?i)(\bbasic\s+)([A-Za-z0-9+/]{4,}={0,2})")
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/-]+=*)")
# Up to the last @ before the path: a user name may itself hold an @ (an e-mail address).
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s\"'<>]+@")
# Other headers that carry credentials: X-Auth-Token: xyz, Cookie: a=b
_CREDENTIAL_HEADER = re.compile(
    r"(?i)(\b(?:x-[\w-]*(?:token|key|secret)|cookie|set-cookie)\"?\s*:\s*\"?)[^\r\n\"]+")
# api_token=xyz, "jira_password": "xyz": any key that ends like a credential
_KEY_VALUE = re.compile(
    r"(?i)(\b[\w.-]*(?:token|password|passwd|pwd|secret|api[_-]?key)"
    r"(?:=|\"\s*:\s*\"))[^\s\"'&,;<>}\]]+")


def _basic(match: re.Match[str]) -> str:
    """Basic followed by base64 of user:password; "basic authentication" stays as it is."""
    try:
        decoded = base64.b64decode(match[2], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return match[0]
    return match[1] + MASK if ":" in decoded and decoded.isprintable() else match[0]


def _bearer(match: re.Match[str]) -> str:
    """A bearer token has digits or punctuation, or is long; "Bearer token" is a phrase."""
    value = match[2]
    tokenish = len(value) >= 20 or not value.isalpha()
    return match[1] + MASK if tokenish else match[0]


def _forms(secret: str, username: str | None) -> set[str]:
    """The ways a secret can appear in an echoed request."""
    # surrogatepass: a secret from the environment may hold undecodable bytes.
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {secret, quote(raw, safe=""), quote_plus(raw), base64.b64encode(raw).decode()}
    if username is not None:
        pair = f"{username}:{secret}".encode("utf-8", "surrogatepass")
        forms.add(base64.b64encode(pair).decode())
    return {f for f in forms if f}


@functools.lru_cache(maxsize=4096)
def _secret_pattern(secrets: tuple[str, ...], username: str | None) -> re.Pattern[str] | None:
    forms = set().union(*(_forms(s, username) for s in secrets if s))
    if not forms:
        return None
    alternatives = []
    for form in sorted(forms, key=len, reverse=True):  # the longest form first
        escaped = re.escape(form)
        if len(form) < WHOLE_TOKEN_BELOW:
            escaped = rf"(?<!\w){escaped}(?!\w)"  # a whole token only
        else:
            # With the token around it: "***1" for "hunter2x1" would show where it stood.
            escaped = rf"{_TOKEN_CHARS}*{escaped}{_TOKEN_CHARS}*"
        alternatives.append(escaped)
    return re.compile("|".join(alternatives))


def redact(text: str, secrets: Iterable[str] = (), username: str | None = None) -> str:
    """`text` without the given secrets (in every form) and without credential shapes."""
    pattern = _secret_pattern(tuple(secrets), username)
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _PARAM.sub(rf"\1{MASK}", text)
    text = _KEY_VALUE.sub(rf"\1{MASK}", text)
    text = _CREDENTIAL_HEADER.sub(rf"\1{MASK}", text)
    text = _JSON_FIELD.sub(rf"\1{MASK}", text)
    text = _HEADER.sub(rf"\1{MASK}", text)
    text = _BASIC.sub(_basic, text)
    text = _BEARER.sub(_bearer, text)
    return _USERINFO.sub(rf"\1{MASK}@", text)


def basic_credentials(user: str, password: str) -> str:
    """What an `Authorization: Basic` header carries for user and password."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()
