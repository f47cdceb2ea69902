"""The durable outbox: ticket work queued in SQLite, done by one background worker.

A queued item survives restarts and is retried with backoff until the ticket system
answers; a permanent error stays on the incident for an approver to see and retry.

Exactly once: before a create or a comment, the item records (committed) what it is about
to do and the marker the ticket or comment will carry. A create whose outcome is unknown
(timeout or reset after sending, an unreadable answer, a crash before the key was stored)
is never repeated: the item only searches for its marker, for as long as it takes, because
JIRA Cloud's search lags and finding nothing proves nothing. Only an approver can say no
ticket was made. A comment whose outcome is unknown is looked for on the issue itself
(a consistent read) before it is posted again.

The retry state is kept in SQLite by hand, not in a retry library: it must survive
kill -9 and be visible on the incident page.
"""

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable

from .config import ReceiverConfig
from .db import Attempt, Database, EventKind, Incident, PastIncident, Work, WorkKind
from .incidents import facts
from .redaction import redacted
from .tickets import TicketError, TicketRequest, Tickets, dedupe_label, is_marker, new_marker
from .timefmt import human_duration, iso

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0
MAX_RETRY_AFTER = 3600.0  # a server asking for longer is waited on for an hour at most
ERROR_PAUSE = 5.0  # after a pass failed outside any one item (the database)


def ticket_request(incident: Incident, config: ReceiverConfig, now: float,
                   earlier: list[PastIncident]) -> TicketRequest:
    labels, details = incident.labels, incident.details
    vessel, component = labels.get("vessel", "?"), labels.get("component", "?")
    known = facts(details, labels, incident.opened_at)
    name = known["vessel_name"] or vessel
    downtime = human_duration(now - known["down_since"])
    summary = f"[{name}] {component} down for {downtime}"
    lines = [f"Vessel: {name} ({vessel})", f"Component: {component}",
             f"Down since: {iso(known['down_since'])} ({downtime})"]
    if known["devices_down"]:
        lines.append(f"Devices down: {known['devices_down']}")
    if known["uptime_24h"]:
        lines.append(f"Uptime, last 24 h: {known['uptime_24h']}")
    lines.append(f"Earlier incidents for this vessel and component: {len(earlier)}")
    for past in earlier[:10]:
        lasted = human_duration(past.duration_seconds or 0)
        lines.append(f"- {iso(past.opened_at)}, lasted {lasted}"
                     + (f", ticket {past.ticket_key}" if past.ticket_key else ""))
    for alert in details.values():
        if alert["annotations"].get("description"):
            lines.append(alert["annotations"]["description"])
        if alert.get("generator_url"):
            lines.append(f"Alert: {alert['generator_url']}")
    grafana = config.links.get("grafana")
    if grafana:
        lines.append(f"Dashboard: {grafana.replace('{vessel}', vessel)}")
    extra = config.jira.labels if config.jira else ()
    return TicketRequest(
        dedupe_key=incident.dedupe_key,
        summary=summary[:255],
        description="\n".join(lines),
        labels=(*extra, dedupe_label(incident.dedupe_key), f"vessel-{vessel}",
                f"component-{component}"),
    )


class OutboxWorker:
    def __init__(self, db: Database, tickets: Tickets, config: ReceiverConfig,
                 clock: Callable[[], float]) -> None:
        self._db = db
        self._tickets = tickets
        self._config = config
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()  # before the pass: a wake during it is not lost
            failed = False
            try:
                await self.process_due()
            except Exception:
                log.exception("outbox pass failed")
                failed = True
            async with self._db.snapshot() as reader:
                due = await reader.next_due()
            wait = 60.0 if due is None else max(0.0, min(60.0, due - self._clock()))
            if failed:
                wait = max(wait, ERROR_PAUSE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def process_due(self) -> int:
        async with self._db.snapshot() as reader:
            items = await reader.due_work(self._clock())
        for item in items:
            await self._process(item)
        return len(items)

    async def _process(self, item: Work) -> None:
        async with self._db.snapshot() as reader:
            incident = await reader.incident(item.incident_id)
        assert incident is not None  # the foreign key keeps it
        if item.kind is WorkKind.CREATE and item.attempt in (Attempt.CREATING,
                                                             Attempt.UNKNOWN):
            # The process stopped between the create call and storing its answer.
            await self._failed(item, TicketError(
                "the receiver stopped during the create call", retryable=True,
                uncertain=True), backoff=False)
            item = dataclasses.replace(item, attempt=Attempt.UNCERTAIN)
        try:
            note = await self._perform(item, incident)
        except TicketError as exc:
            await self._failed(item, exc)
            return
        except Exception as exc:  # a defect must back off too, never spin
            log.warning("incident %d: %s: unexpected %s", incident.id, item.kind,
                        type(exc).__name__, exc_info=True, extra={"incident": incident.id})
            # Not marked uncertain here: a create under way left its mark in the database.
            await self._failed(item, TicketError(f"unexpected error: {type(exc).__name__}",
                                                 retryable=True))
            return
        if note is None:  # waits for the ticket to exist
            await self._postpone(item, "waiting for the ticket to be created")
            return
        now = self._clock()
        async with self._db.transaction() as tx:
            if item.kind is WorkKind.CREATE:
                await tx.set_ticket_key(incident.id, note)
                found = " (found by its marker)" if item.attempt is Attempt.UNCERTAIN else ""
                note = f"ticket {note}{found}"
            await tx.work_done(item.id, now)
            await tx.append_event(incident.id, now, EventKind.ticket_done(item.kind), note)
        log.info("incident %d: %s done (%s)", incident.id, item.kind, note,
                 extra={"incident": incident.id})

    async def _attempt(self, item: Work, attempt: Attempt, marker: str) -> None:
        """Commit what is about to be tried before trying it: a crash leaves it behind."""
        async with self._db.transaction() as tx:
            await tx.work_attempt(item.id, attempt, marker)

    async def _perform(self, item: Work, incident: Incident) -> str | None:
        if item.kind is WorkKind.CREATE:
            return await self._create(item, incident)
        key = incident.ticket_key
        if key is None:
            return None
        await self._comment_once(item, key, item.body)
        jira = self._config.jira
        name = None
        if jira is not None:
            name = jira.resolve_transition if item.kind is WorkKind.RESOLVE \
                else jira.reopen_transition
        if name:
            await self._tickets.transition(key, name)
        return f"{key}: {item.body}"

    async def _create(self, item: Work, incident: Incident) -> str:
        if incident.ticket_key:
            return incident.ticket_key  # our own mapping first: JIRA search lags
        if item.attempt is Attempt.UNCERTAIN:
            if not is_marker(item.marker):
                raise TicketError("no readable marker to search for", retryable=True,
                                  uncertain=True)
            assert item.marker is not None  # is_marker says so
            key = await self._tickets.find_marked(item.marker)
            if key is None:
                raise TicketError("search does not show it yet", retryable=True,
                                  uncertain=True)
            return key
        async with self._db.snapshot() as reader:
            earlier = await reader.earlier_incidents(incident.id)
        request = ticket_request(incident, self._config, self._clock(), earlier)
        existing = await self._tickets.find_open(request)
        if existing is not None:
            await self._comment_once(item, existing, f"Linked to fleet-sla incident "
                                                     f"{incident.id} firing again.")
            return existing
        marker = item.marker if is_marker(item.marker) else new_marker(incident.id)
        assert marker is not None
        await self._attempt(item, Attempt.CREATING, marker)
        request = dataclasses.replace(request, labels=(*request.labels, marker))
        try:
            return await self._tickets.create(request, incident.id)
        except TicketError as exc:
            if not exc.uncertain:  # surely not made: a later create may go ahead
                await self._attempt(item, Attempt.NONE, marker)
            raise

    async def _comment_once(self, item: Work, key: str, text: str) -> None:
        """Post a comment carrying the item's marker, unless an earlier try already did."""
        if item.attempt is not Attempt.NONE and is_marker(item.marker):
            assert item.marker is not None
            if await self._tickets.has_comment(key, item.marker):
                return
        marker = item.marker if is_marker(item.marker) else new_marker(item.incident_id)
        assert marker is not None
        await self._attempt(item, Attempt.COMMENTING, marker)
        await self._tickets.comment(key, f"{text}\n\n({marker})")

    async def _failed(self, item: Work, exc: TicketError, *, backoff: bool = True) -> None:
        attempts = item.attempts + 1 if backoff else item.attempts
        now = self._clock()
        delay = min(MAX_BACKOFF, 2.0 ** attempts) if backoff else 0.0
        if exc.retry_after is not None:
            delay = max(delay, min(MAX_RETRY_AFTER, exc.retry_after))
        reason = redacted(str(exc), self._config)  # a server may echo our credentials
        error = reason
        uncertain = item.kind is WorkKind.CREATE and (
            exc.uncertain or item.attempt is Attempt.UNCERTAIN)
        async with self._db.transaction() as tx:
            if uncertain:
                since = item.uncertain_since if item.uncertain_since is not None else now
                # The item was read before this try stored its marker: read it again.
                stored = await tx.work_item(item.id)
                marker = stored.marker if stored is not None else item.marker
                error = redacted(
                    f"JIRA may have made the ticket ({iso(since)}: the outcome of the "
                    f"create is unknown; now: {reason}). It is not created again: the "
                    f"receiver searches for label {marker or '?'} until JIRA's "
                    "search shows it. If you find no such ticket in JIRA, an approver "
                    "can say no ticket was made (POST /api/v1/incidents/"
                    f"{item.incident_id}/no-ticket).", self._config)
                await tx.work_uncertain(item.id, attempts, now + delay, error, since)
                if item.attempt is not Attempt.UNCERTAIN:
                    await tx.append_event(item.incident_id, now, EventKind.TICKET_UNCERTAIN,
                                          reason)
            elif exc.retryable:
                await tx.work_retry_at(item.id, attempts, now + delay, error)
            else:
                await tx.work_failed(item.id, attempts, error)
                await tx.append_event(item.incident_id, now, EventKind.TICKET_ERROR, error)
        log.warning("incident %d: %s failed (%s): %s", item.incident_id, item.kind,
                    "uncertain" if uncertain else "will retry" if exc.retryable
                    else "permanent", reason, extra={"incident": item.incident_id})

    async def _postpone(self, item: Work, reason: str) -> None:
        async with self._db.transaction() as tx:
            await tx.work_postpone(item.id, self._clock() + 5.0, reason)
