"""Tickets in JIRA through the `jira` library, run off the event loop.

Cloud and Data Center/Server differ in search: Cloud only has the enhanced search
(`search/jql`), Server the classic `search`. The library says which one it talks to.

Every answer is checked here: what the outbox gets is a valid issue key, a yes/no, or a
TicketError saying what went wrong, whether to retry, and whether a write may have
happened anyway (a timeout or reset after the request was sent).
"""

import asyncio
import email.utils
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import requests
import urllib3.exceptions
from jira import JIRA, JIRAError

from .config import JiraConfig
from .redaction import excerpt, jira_secrets
from .tickets import TicketError, TicketRequest, UnusableAnswer, dedupe_label

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMEOUT = 30.0  # seconds per JIRA call; the outbox retries, the library does not
_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}-[1-9][0-9]{0,17}$")


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from `now`; None if absent
    or unreadable. The caller bounds it."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False only when the request surely never left: the connection was not made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        if isinstance(reason, urllib3.exceptions.NewConnectionError):
            return False
    return True


class JiraTickets:
    def __init__(self, config: JiraConfig, on_call: Callable[[str, str], None] | None = None,
                 *, clock: Callable[[], float] = time.time, timeout: float = TIMEOUT):
        self._config = config
        self._clock = clock
        self._timeout = timeout
        self._client: JIRA | None = None
        self._lock = threading.Lock()
        self._on_call = on_call or (lambda operation, result: None)

    def _connect(self) -> JIRA:
        with self._lock:
            if self._client is None:
                cfg = self._config
                auth: dict[str, Any] = (
                    {"token_auth": cfg.personal_access_token.reveal()}
                    if cfg.personal_access_token is not None
                    # The config requires username + api_token when there is no token.
                    else {"basic_auth": (cfg.username, cfg.api_token.reveal())}  # type: ignore[union-attr]
                )
                self._client = JIRA(server=cfg.url, timeout=self._timeout, max_retries=0,
                                    get_server_info=True, **auth)
            return self._client

    def _brief(self, value: Any) -> str:
        """A short excerpt of an answer for the incident page, without credentials: an
        answer may echo our request (or a proxy's), in any form."""
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            return type(value).__name__
        return excerpt(text, jira_secrets(self._config), 120)

    def _classify(self, exc: Exception) -> TicketError:
        if isinstance(exc, JIRAError):
            status = exc.status_code
            if status is not None and 200 <= status < 300:
                # e.g. a create answering 201 without a key: JIRA may well have made it
                return UnusableAnswer(f"{status} without what was asked for", uncertain=True)
            retryable = status is None or status == 429 or status >= 500
            retry_after = None
            if status in (429, 503) and exc.response is not None:
                retry_after = retry_after_seconds(exc.response.headers.get("Retry-After"),
                                                  self._clock())
            # Masked before it is cut short: half a secret is still a leak.
            text = excerpt(exc.text or "", jira_secrets(self._config), 300).strip()
            # 504: a gateway gave up waiting, JIRA may still have done it.
            return TicketError(f"JIRA answered {status}: {text}", retryable=retryable,
                               uncertain=status is None or status == 504,
                               retry_after=retry_after)
        if isinstance(exc, requests.JSONDecodeError):
            return UnusableAnswer("not JSON", uncertain=True)
        maybe = not isinstance(exc, requests.RequestException) or _maybe_sent(exc)
        return TicketError(f"cannot reach JIRA: {type(exc).__name__}", retryable=True,
                           uncertain=maybe)

    async def _call(self, operation: str, work: Callable[[JIRA], T]) -> T:
        def run() -> T:
            return work(self._connect())

        try:
            result = await asyncio.to_thread(run)
        except TicketError:
            self._on_call(operation, "error")
            raise
        except (JIRAError, requests.RequestException) as exc:
            self._on_call(operation, "error")
            raise self._classify(exc) from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # the library choked on an answer shaped unlike JIRA's
            self._on_call(operation, "error")
            raise UnusableAnswer(f"{operation}: {type(exc).__name__}",
                                 uncertain=operation in ("create", "comment")) from None
        self._on_call(operation, "ok")
        return result

    async def _first_key(self, jql: str) -> str | None:
        def search(client: JIRA) -> Any:
            if client._is_cloud:
                # A dict (json_result=True); jira's @cloud_api decorator erases the type.
                return cast(dict[str, Any], client.enhanced_search_issues(
                    jql, fields=["key"], maxResults=1, json_result=True))
            return client.search_issues(jql, fields="key", maxResults=1, json_result=True)

        found = await self._call("search", search)
        if not isinstance(found, dict):
            raise UnusableAnswer(f"search answer is not an object: {self._brief(found)}")
        issues = found.get("issues")
        if not isinstance(issues, list):
            raise UnusableAnswer(f"issues is not a list: {self._brief(issues)}")
        if not issues:
            return None
        first = issues[0]
        key = first.get("key") if isinstance(first, dict) else None
        if not isinstance(key, str) or not _KEY.match(key):
            raise UnusableAnswer(f"issues[0].key is not an issue key: {self._brief(first)}")
        return key

    async def find_open(self, request: TicketRequest) -> str | None:
        label = dedupe_label(request.dedupe_key)
        return await self._first_key(
            f'project = "{self._config.project}" AND labels = "{label}"'
            " AND statusCategory != Done ORDER BY created DESC")

    async def find_marked(self, marker: str) -> str | None:
        # Open or not: a ticket with this marker is ours whatever happened to it since.
        return await self._first_key(
            f'project = "{self._config.project}" AND labels = "{marker}"')

    async def create(self, request: TicketRequest, reference: int) -> str:
        fields = {
            "project": {"key": self._config.project},
            "issuetype": {"name": self._config.issue_type},
            "summary": request.summary,
            "description": request.description,
            "labels": list(request.labels),
        }
        raw = await self._call("create", functools.partial(_create, fields=fields))
        key = raw.get("key") if isinstance(raw, dict) else None
        if not isinstance(key, str) or not _KEY.match(key):
            raise UnusableAnswer(f"create answered no issue key: {self._brief(raw)}",
                                 uncertain=True)
        return key

    async def comment(self, key: str, text: str) -> None:
        await self._call("comment", lambda client: client.add_comment(key, text))

    async def has_comment(self, key: str, marker: str) -> bool:
        def read(client: JIRA) -> list[Any]:
            return [c.raw for c in client.comments(key)]

        for n, raw in enumerate(await self._call("comments", read)):
            body = raw.get("body") if isinstance(raw, dict) else None
            if not isinstance(body, str):
                raise UnusableAnswer(f"comments[{n}].body is not text: {self._brief(raw)}")
            if marker in body:
                return True
        return False

    async def transition(self, key: str, name: str) -> None:
        def move(client: JIRA) -> None:
            found = client.transitions(key)
            if not isinstance(found, list):
                raise UnusableAnswer(f"transitions is not a list: {self._brief(found)}")
            for n, transition in enumerate(found):
                wanted = transition.get("name") if isinstance(transition, dict) else None
                ident = transition.get("id") if isinstance(transition, dict) else None
                if not isinstance(wanted, str) or not isinstance(ident, str | int):
                    raise UnusableAnswer(f"transitions[{n}].name or id is missing: "
                                         f"{self._brief(transition)}")
                if wanted.lower() == name.lower():
                    client.transition_issue(key, str(ident))
                    return
            log.info("ticket %s has no transition %r now; leaving it", key, name)

        await self._call("transition", move)


def _create(client: JIRA, fields: dict[str, Any]) -> Any:
    return client.create_issue(fields=fields, prefetch=False).raw
