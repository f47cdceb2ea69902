"""CSRF tokens for the approval forms, bound to the user and to a rotating time bucket.

Basic auth has no session, so a token is an HMAC of the user and the hour it was issued
under a per-process secret. A new one is issued every ROTATE_EVERY; an older one is
accepted for VALID_FOR, so a page left open still works, and not for ever after.
"""

import hashlib
import hmac
from enum import StrEnum

ROTATE_EVERY = 3600
VALID_FOR = 12 * 3600
_BUCKET_DIGITS = 8  # hex, before the 64 of the HMAC


class Verdict(StrEnum):
    OK = "ok"
    MISSING = "missing"
    FOREIGN = "foreign"  # malformed, forged, or issued to someone else
    EXPIRED = "expired"


def _mac(secret: bytes, user: str, bucket: int) -> str:
    message = f"{bucket}\0{user}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def issue(secret: bytes, user: str, now: float) -> str:
    bucket = int(now // ROTATE_EVERY)
    return f"{bucket:0{_BUCKET_DIGITS}x}{_mac(secret, user, bucket)}"


def check(secret: bytes, user: str, token: str, now: float) -> Verdict:
    if not token:
        return Verdict.MISSING
    bucket_hex, mac = token[:_BUCKET_DIGITS], token[_BUCKET_DIGITS:]
    try:
        bucket = int(bucket_hex, 16)
    except ValueError:
        return Verdict.FOREIGN
    if len(bucket_hex) != _BUCKET_DIGITS or not hmac.compare_digest(
            mac.encode(), _mac(secret, user, bucket).encode()):
        return Verdict.FOREIGN
    age = now - bucket * ROTATE_EVERY
    if age < 0 or age > VALID_FOR + ROTATE_EVERY:
        return Verdict.FOREIGN if age < 0 else Verdict.EXPIRED
    return Verdict.OK


MESSAGES = {
    Verdict.MISSING: "missing CSRF token; reload the page",
    Verdict.FOREIGN: "CSRF token was not issued to {user}; reload the page",
    Verdict.EXPIRED: "CSRF token expired; reload the page",
}
