"""The narrow interface the receiver needs from a ticket system, and its dry-run form."""

import hashlib
from dataclasses import dataclass
from typing import Protocol


class TicketError(Exception):
    """A ticket call failed; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


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

    async def create(self, request: TicketRequest, reference: int) -> str:
        ...

    async def comment(self, key: str, text: str) -> None:
        ...

    async def transition(self, key: str, name: str) -> None:
        ...


class DryRunTickets:
    """No JIRA configured: tickets exist only in the receiver, with keys like DRY-1."""

    async def find_open(self, request: TicketRequest) -> str | None:
        return None  # the receiver's own incident -> ticket mapping is all there is

    async def create(self, request: TicketRequest, reference: int) -> str:
        return f"DRY-{reference}"

    async def comment(self, key: str, text: str) -> None:
        return None

    async def transition(self, key: str, name: str) -> None:
        return None
