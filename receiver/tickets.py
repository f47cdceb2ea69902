"""The narrow interface the receiver needs from a ticket system, and its dry-run form."""

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Protocol

_MARKER = re.compile(r"^fleet-sla-[0-9]{1,18}-[0-9a-f]{32}$")


class TicketError(Exception):
    """A ticket call failed; `retryable` says whether trying again can help.

    `uncertain`: the request may have reached JIRA and taken effect (a timeout or a reset
    after sending, an answer that cannot be read), so a write must not simply be repeated.
    `retry_after`: seconds the ticket system asked us to wait, if it said.
    """

    def __init__(self, message: str, *, retryable: bool, uncertain: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.uncertain = uncertain
        self.retry_after = retry_after


class UnusableAnswer(TicketError):
    """JIRA answered 2xx with something that is not what was asked for; worth retrying."""

    def __init__(self, what: str, *, uncertain: bool = False) -> None:
        super().__init__(f"JIRA answered something unusable: {what}", retryable=True,
                         uncertain=uncertain)


def new_marker(incident_id: int) -> str:
    """A label unique to one attempt at a ticket or comment: how it is found again."""
    return f"fleet-sla-{incident_id}-{uuid.uuid4().hex}"


def is_marker(value: str | None) -> bool:
    """Only markers we made reach JQL: a stored row could hold anything."""
    return value is not None and _MARKER.match(value) is not None


@dataclass(frozen=True, slots=True)
class TicketRequest:
    dedupe_key: str
    summary: str
    description: str
    labels: tuple[str, ...]


def dedupe_label(dedupe_key: str) -> str:
    """A short, stable JIRA label for a dedupe key: how a ticket is found again."""
    return "fleet-sla-" + hashlib.sha256(dedupe_key.encode()).hexdigest()[:12]


class Tickets(Protocol):
    async def find_open(self, request: TicketRequest) -> str | None:
        """Key of an open ticket already raised for this dedupe key, if any."""
        ...

    async def find_marked(self, marker: str) -> str | None:
        """Key of the ticket carrying this marker label, if search shows it yet."""
        ...

    async def create(self, request: TicketRequest, reference: int) -> str:
        ...

    async def comment(self, key: str, text: str) -> None:
        ...

    async def has_comment(self, key: str, marker: str) -> bool:
        """Whether a comment on the ticket carries the marker (read from the issue itself,
        not from search, so it is up to date)."""
        ...

    async def transition(self, key: str, name: str) -> None:
        ...


class DryRunTickets:
    """No JIRA configured: tickets exist only in the receiver, with keys like DRY-1."""

    async def find_open(self, request: TicketRequest) -> str | None:
        return None  # the receiver's own incident -> ticket mapping is all there is

    async def find_marked(self, marker: str) -> str | None:
        return f"DRY-{marker.split('-')[2]}"  # a dry-run create always "made" its ticket

    async def create(self, request: TicketRequest, reference: int) -> str:
        return f"DRY-{reference}"

    async def comment(self, key: str, text: str) -> None:
        return None

    async def has_comment(self, key: str, marker: str) -> bool:
        return False

    async def transition(self, key: str, name: str) -> None:
        return None
