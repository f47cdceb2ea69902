"""Tickets in JIRA through the `jira` library, run off the event loop.

Cloud and Data Center/Server differ in search: Cloud only has the enhanced search
(`search/jql`), Server the classic `search`. The library says which one it talks to.
"""

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import requests
from jira import JIRA, JIRAError

from fleet_common.redact import redact

from .config import JiraConfig
from .redaction import jira_secrets
from .tickets import TicketError, TicketRequest, dedupe_label

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMEOUT = 30.0  # seconds per JIRA call; the outbox retries, the library does not


def _classify(exc: Exception, config: JiraConfig) -> TicketError:
    if isinstance(exc, JIRAError):
        status = exc.status_code
        retryable = status is None or status == 429 or status >= 500
        # Masked before it is cut short: half a secret is still a leak.
        text = redact((exc.text or "")[:65536], jira_secrets(config)).strip()[:300]
        return TicketError(f"JIRA answered {status}: {text}", retryable=retryable)
    return TicketError(f"cannot reach JIRA: {type(exc).__name__}", retryable=True)


class JiraTickets:
    def __init__(self, config: JiraConfig, on_call: Callable[[str, str], None] | None = None):
        self._config = config
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
                self._client = JIRA(server=cfg.url, timeout=TIMEOUT, max_retries=0,
                                    get_server_info=True, **auth)
            return self._client

    async def _call(self, operation: str, work: Callable[[JIRA], T]) -> T:
        def run() -> T:
            return work(self._connect())

        try:
            result = await asyncio.to_thread(run)
        except (JIRAError, requests.RequestException) as exc:
            self._on_call(operation, "error")
            raise _classify(exc, self._config) from None
        self._on_call(operation, "ok")
        return result

    async def find_open(self, request: TicketRequest) -> str | None:
        label = dedupe_label(request.dedupe_key)
        jql = (f'project = "{self._config.project}" AND labels = "{label}"'
               " AND statusCategory != Done ORDER BY created DESC")

        def search(client: JIRA) -> dict[str, Any]:
            if client._is_cloud:
                # A dict (json_result=True); jira's @cloud_api decorator erases the type.
                return cast(dict[str, Any], client.enhanced_search_issues(
                    jql, fields=["key"], maxResults=1, json_result=True))
            return client.search_issues(jql, fields="key", maxResults=1, json_result=True)

        found = await self._call("search", search)
        issues = found.get("issues") or []
        return issues[0]["key"] if issues else None

    async def create(self, request: TicketRequest, reference: int) -> str:
        fields = {
            "project": {"key": self._config.project},
            "issuetype": {"name": self._config.issue_type},
            "summary": request.summary,
            "description": request.description,
            "labels": list(request.labels),
        }
        return await self._call("create", functools.partial(_create, fields=fields))

    async def comment(self, key: str, text: str) -> None:
        await self._call("comment", lambda client: client.add_comment(key, text))

    async def transition(self, key: str, name: str) -> None:
        def move(client: JIRA) -> None:
            for transition in client.transitions(key):
                if transition["name"].lower() == name.lower():
                    client.transition_issue(key, transition["id"])
                    return
            log.info("ticket %s has no transition %r now; leaving it", key, name)

        await self._call("transition", move)


def _create(client: JIRA, fields: dict[str, Any]) -> str:
    return client.create_issue(fields=fields, prefetch=False).key
