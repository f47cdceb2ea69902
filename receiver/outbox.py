"""The durable outbox: ticket work queued in SQLite, done by one background worker.

A queued item survives restarts and is retried with backoff until the ticket system
answers; a permanent error stays on the incident for an approver to see and retry.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .config import ReceiverConfig
from .db import Database, EventKind, Incident, PastIncident, Work, WorkKind
from .incidents import facts
from .redaction import redacted
from .tickets import TicketError, TicketRequest, Tickets, dedupe_label
from .timefmt import human_duration, iso

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0


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
            try:
                await self.process_due()
            except Exception:
                log.exception("outbox pass failed")
            async with self._db.snapshot() as reader:
                due = await reader.next_due()
            wait = 60.0 if due is None else max(0.0, min(60.0, due - self._clock()))
            self._wake.clear()
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
        try:
            note = await self._perform(item, incident)
        except TicketError as exc:
            await self._failed(item, str(exc), retryable=exc.retryable)
            return
        if note is None:  # waits for the ticket to exist
            await self._postpone(item, "waiting for the ticket to be created")
            return
        now = self._clock()
        async with self._db.transaction() as tx:
            if item.kind is WorkKind.CREATE:
                await tx.set_ticket_key(incident.id, note)
                note = f"ticket {note}"
            await tx.work_done(item.id, now)
            await tx.append_event(incident.id, now, EventKind.ticket_done(item.kind), note)
        log.info("incident %d: %s done (%s)", incident.id, item.kind, note,
                 extra={"incident": incident.id})

    async def _perform(self, item: Work, incident: Incident) -> str | None:
        jira = self._config.jira
        if item.kind is WorkKind.CREATE:
            if incident.ticket_key:
                return incident.ticket_key  # our own mapping first: JIRA search lags
            async with self._db.snapshot() as reader:
                earlier = await reader.earlier_incidents(incident.id)
            request = ticket_request(incident, self._config, self._clock(), earlier)
            existing = await self._tickets.find_open(request)
            if existing is not None:
                await self._tickets.comment(existing, "Linked to fleet-sla incident "
                                                      f"{incident.id} firing again.")
                return existing
            return await self._tickets.create(request, incident.id)
        key = incident.ticket_key
        if key is None:
            return None
        await self._tickets.comment(key, item.body)
        name = None
        if jira is not None:
            name = jira.resolve_transition if item.kind is WorkKind.RESOLVE \
                else jira.reopen_transition
        if name:
            await self._tickets.transition(key, name)
        return f"{key}: {item.body}"

    async def _failed(self, item: Work, error: str, *, retryable: bool) -> None:
        error = redacted(error, self._config)  # a server may echo our credentials
        attempts = item.attempts + 1
        now = self._clock()
        async with self._db.transaction() as tx:
            if retryable:
                await tx.work_retry_at(item.id, attempts, now + min(MAX_BACKOFF, 2.0 ** attempts),
                                       error)
            else:
                await tx.work_failed(item.id, attempts, error)
                await tx.append_event(item.incident_id, now, EventKind.TICKET_ERROR, error)
        log.warning("incident %d: %s failed (%s): %s", item.incident_id, item.kind,
                    "will retry" if retryable else "permanent", error,
                    extra={"incident": item.incident_id})

    async def _postpone(self, item: Work, reason: str) -> None:
        async with self._db.transaction() as tx:
            await tx.work_postpone(item.id, self._clock() + 5.0, reason)

