"""Redaction of secrets and credential-shaped text before it is stored, logged or shown.

Pure functions. A server or proxy may echo back what it was sent (an Authorization
header, a URL with credentials, a token in a query string), so both the configured
secrets and anything shaped like a credential are masked.
"""

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
# A secret this long is masked wherever it appears; a shorter one only where it stands
# as a whole token, so that a secret like "ops" does not garble "operations".
WHOLE_TOKEN_BELOW = 8
_WORD = r"A-Za-z0-9_"
_VALUE = r"[^\s\"'&,;<>}\]]+"

# Authorization: Basic xyz / "Authorization": "Bearer xyz" / authorization=Token xyz
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization\"?\s*[:=]\s*\"?)((?:basic|bearer|token|digest)\s+)?"
    + _VALUE)
# Other headers that carry credentials: X-Auth-Token: xyz, Cookie: a=b
_CREDENTIAL_HEADER = re.compile(
    r"(?i)(\b(?:x-[\w-]*(?:token|key|secret)|cookie|set-cookie)\"?\s*:\s*\"?)[^\r\n\"]+")
# A scheme and credential on their own, e.g. in a sentence: "sent Basic dXNlcjpwdw=="
_BASIC = re.compile(r"\b(Basic\s+)([A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])")
_BEARER = re.compile(r"\b(Bearer\s+)([A-Za-z0-9._~+/-]{6,}=*)")
# token=xyz, password=xyz, "api_token": "xyz"
_KEY_VALUE = re.compile(
    r"(?i)(\b[\w.-]*(?:token|password|passwd|pwd|secret|api[_-]?key)"
    r"(?:=|\"\s*:\s*\"))" + _VALUE)
# scheme://user:password@host
_URL_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s\"'<>]+@")


def basic_credentials(user: str, password: str) -> str:
    """What an `Authorization: Basic` header carries for user and password."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _is_basic_credential(value: str) -> bool:
    try:
        return b":" in base64.b64decode(value, validate=True)
    except ValueError:
        return False


def _bearer_like(value: str) -> bool:
    """A token, not a word: "Bearer tokens are..." must stay readable."""
    return any(c.isdigit() for c in value) or len(value) >= 20


def _mask_secret(text: str, secret: str) -> str:
    if len(secret) >= WHOLE_TOKEN_BELOW:
        return text.replace(secret, MASK)
    pattern = f"(?<![{_WORD}]){re.escape(secret)}(?![{_WORD}])"
    return re.sub(pattern, MASK, text)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret and credential-shaped value replaced by ***."""
    variants: set[str] = set()
    for secret in secrets:
        if secret:
            variants.update({secret, quote(secret, safe="")})
    for secret in sorted(variants, key=len, reverse=True):  # longest first: no fragments
        text = _mask_secret(text, secret)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)
    text = _CREDENTIAL_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _BASIC.sub(lambda m: f"{m.group(1)}{MASK}"
                      if _is_basic_credential(m.group(2)) else m.group(0), text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{MASK}"
                       if _bearer_like(m.group(2)) else m.group(0), text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
