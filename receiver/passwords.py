"""Password hashes for the approval page's users: scrypt from the standard library."""

import base64
import hashlib
import hmac
import os
import re

_N, _R, _P = 2**14, 8, 1
# Checked for names with no password, so an unknown name costs what a known one does
# (else timing tells which names exist). Same parameters as hash_password.
DUMMY_HASH = "$".join(["scrypt", str(_N), str(_R), str(_P),
                       base64.b64encode(b"fleet-sla:nobody").decode(),
                       base64.b64encode(bytes(64)).decode()])
_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return "$".join(["scrypt", str(_N), str(_R), str(_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def is_password_hash(value: object) -> bool:
    return isinstance(value, str) and _FORMAT.match(value) is not None


def verify_password(password: str, hashed: str) -> bool:
    match = _FORMAT.match(hashed)
    if match is None:
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    salt, expected = base64.b64decode(match.group(4)), base64.b64decode(match.group(5))
    try:
        digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                                maxmem=128 * r * n * 2, dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def check_password(password: str, hashed: str | None) -> bool:
    """verify_password that costs one scrypt whether or not there is a hash to check."""
    if hashed is None or not is_password_hash(hashed):
        verify_password(password, DUMMY_HASH)
        return False
    return verify_password(password, hashed)
