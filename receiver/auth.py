"""Who is calling: Alertmanager with its bearer token, or a configured user.

Password checks cost one scrypt (tens of ms of CPU) each, so they run in a small thread
pool of their own, behind per-user and per-address lockouts (receiver/throttle.py). A
middleware signs the caller in before the handler runs; handlers ask current_user().
"""

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from .appkeys import CLOCK, CONFIG
from .config import ReceiverConfig, User
from .passwords import check_password
from .throttle import Policy, Throttle

USER_POLICY = Policy(free_failures=5)
# Higher: several people may sign in from one office address.
ADDRESS_POLICY = Policy(free_failures=20)
# A user's lockout spares the addresses they signed in from lately: a guesser elsewhere
# cannot keep an approver out.
REMEMBER_FOR = 30 * 86400.0
MAX_REMEMBERED = 10_000
MAX_WAITING = 64  # password checks queued at once; more get a 429 at once
WORKERS = max(1, (os.cpu_count() or 2) - 1)  # one core stays with the event loop
CHECK_NICENESS = 10
# A locked-out guess is answered only after this long (or its lockout, if shorter):
# a guesser that ignores Retry-After cannot flood the event loop with cheap 429s.
TARPIT_SECONDS = 1.0


def _lower_priority() -> None:
    """Where the OS allows it, a busy CPU serves the event loop before a password check."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICENESS)


class Reason(StrEnum):
    NO_CREDENTIALS = "no-credentials"
    WRONG = "wrong"
    UNKNOWN_PROXY_USER = "unknown-proxy-user"
    LOCKED = "locked"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    retry_after: int = 0


class SignIns:
    """Password checks off the event loop, bounded, and throttled."""

    def __init__(self, clock: Callable[[], float], workers: int = WORKERS) -> None:
        self._clock = clock
        self._users = Throttle(USER_POLICY, clock)
        self._addresses = Throttle(ADDRESS_POLICY, clock)
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="password-check",
                                            initializer=_lower_priority)
        self._waiting = 0

    def _known_address(self, name: str, address: str) -> bool:
        since = self._known.get((name, address))
        return since is not None and self._clock() - since <= REMEMBER_FOR

    def _remember(self, name: str, address: str) -> None:
        self._known.pop((name, address), None)
        self._known[(name, address)] = self._clock()
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)

    async def check(self, config: ReceiverConfig, name: str, password: str,
                    address: str) -> User | Refusal:
        user_wait = 0.0 if self._known_address(name, address) else self._users.wait(name)
        wait = max(user_wait, self._addresses.wait(address))
        if wait > 0:
            delay = min(wait, TARPIT_SECONDS)
            await asyncio.sleep(delay)
            return Refusal(Reason.LOCKED, max(1, math.ceil(wait - delay)))
        if self._waiting >= MAX_WAITING:
            return Refusal(Reason.BUSY, 1)
        # Unknown names are counted too: a 429 for known names only would name them.
        self._users.attempt(name)
        self._addresses.attempt(address)
        user = config.user(name)
        hashed = user.password_hash.reveal() if user is not None else None
        self._waiting += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._executor, check_password, password, hashed or None)
        finally:
            self._waiting -= 1
        if not ok or user is None:
            return Refusal(Reason.WRONG)
        self._users.succeeded(name)
        self._addresses.succeeded(address)
        self._remember(name, address)
        return user

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


SIGN_INS = web.AppKey("sign_ins", SignIns)
SIGNED_IN: web.RequestKey[User | Refusal] = web.RequestKey("signed_in")


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


async def _authenticate(request: web.Request) -> User | Refusal:
    config = request.app[CONFIG]
    if config.trusted_header is not None and _from_proxy(request):
        user = config.user(request.headers.get(config.trusted_header, ""))
        return user if user is not None else Refusal(Reason.UNKNOWN_PROXY_USER)
    # Anyone else, the proxy's header or not, signs in with a password.
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return Refusal(Reason.NO_CREDENTIALS)
    try:
        name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        name, password = "", ""
    return await request.app[SIGN_INS].check(config, name, password, request.remote or "")


@web.middleware
async def sign_in(request: web.Request,
                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    request[SIGNED_IN] = await _authenticate(request)
    return await handler(request)


def install(app: web.Application) -> None:
    """Sign callers in for the app's handlers; needs the app's CLOCK."""
    app[SIGN_INS] = SignIns(app[CLOCK])
    app.middlewares.append(sign_in)

    async def close(app: web.Application) -> None:
        app[SIGN_INS].close()

    app.on_cleanup.append(close)


def current_user(request: web.Request) -> User:
    """The signed-in user; else 401, or 429 while guessing is locked out."""
    outcome = request.get(SIGNED_IN, Refusal(Reason.NO_CREDENTIALS))
    if isinstance(outcome, User):
        return outcome
    if outcome.reason is Reason.UNKNOWN_PROXY_USER:
        raise web.HTTPUnauthorized(text="unknown user")
    if outcome.reason is Reason.LOCKED:
        raise web.HTTPTooManyRequests(
            text=f"too many failed sign-ins; try again in {outcome.retry_after} s",
            headers={"Retry-After": str(outcome.retry_after)})
    if outcome.reason is Reason.BUSY:
        raise web.HTTPTooManyRequests(text="too many sign-ins at once; try again",
                                      headers={"Retry-After": str(outcome.retry_after)})
    raise web.HTTPUnauthorized(text="sign in required",
                               headers={"WWW-Authenticate": 'Basic realm="fleet-sla"'})
