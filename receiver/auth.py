"""Who is calling: Alertmanager with its bearer token, or a configured user."""

import base64
import binascii
import hmac
import ipaddress

from aiohttp import web

from .appkeys import CONFIG
from .config import User
from .passwords import verify_password


def check_bearer(request: web.Request) -> None:
    """401 unless the request carries the webhook's bearer token."""
    expected = request.app[CONFIG].bearer_token.reveal().encode()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise web.HTTPUnauthorized(
            text='{"error": "Authorization: a valid bearer token is required"}',
            content_type="application/json", headers={"WWW-Authenticate": "Bearer"})


def _from_proxy(request: web.Request) -> bool:
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    return any(peer in network for network in request.app[CONFIG].trusted_proxies)


def current_user(request: web.Request) -> User:
    """The signed-in user, from the auth proxy's header or HTTP basic auth; else 401."""
    config = request.app[CONFIG]
    if config.trusted_header is not None and _from_proxy(request):
        user = config.user(request.headers.get(config.trusted_header, ""))
        if user is not None:
            return user
        raise web.HTTPUnauthorized(text="unknown user")
    # Anyone else, the proxy's header or not, signs in with a password.
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, password = "", ""
        user = config.user(name)
        if user is not None and verify_password(password, user.password_hash.reveal()):
            return user
    raise web.HTTPUnauthorized(text="sign in required",
                               headers={"WWW-Authenticate": 'Basic realm="fleet-sla"'})
