"""The durable outbox: ticket work queued in SQLite, done by one background worker.

A queued item survives restarts and is retried with backoff until the ticket system
answers; a permanent error stays on the incident for an approver to see and retry.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from .config import ReceiverConfig
from .incidents import facts
from .redaction import redacted
from .store import Store
from .tickets import TicketError, TicketRequest, Tickets, dedupe_label
from .timefmt import human_duration, iso

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0


def ticket_request(incident: dict[str, Any], config: ReceiverConfig, now: float,
                   earlier: list[dict[str, Any]]) -> TicketRequest:
    labels = json.loads(incident["labels"])
    details = json.loads(incident["details"])
    vessel, component = labels.get("vessel", "?"), labels.get("component", "?")
    known = facts(details, labels, incident["opened_at"])
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
        lasted = human_duration(past["duration_seconds"] or 0)
        lines.append(f"- {iso(past['opened_at'])}, lasted {lasted}"
                     + (f", ticket {past['ticket_key']}" if past["ticket_key"] else ""))
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
        dedupe_key=incident["dedupe_key"],
        summary=summary[:255],
        description="\n".join(lines),
        labels=(*extra, dedupe_label(incident["dedupe_key"]), f"vessel-{vessel}",
                f"component-{component}"),
    )


class OutboxWorker:
    def __init__(self, store: Store, tickets: Tickets, config: ReceiverConfig,
                 clock: Callable[[], float]) -> None:
        self._store = store
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
            pending = await self._store.fetch_one(
                "SELECT min(next_attempt_at) AS due FROM outbox WHERE state = 'pending'")
            due = pending["due"] if pending and pending["due"] is not None else None
            wait = 60.0 if due is None else max(0.0, min(60.0, due - self._clock()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def process_due(self) -> int:
        items = await self._store.fetch_all(
            "SELECT * FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY id", self._clock())
        for item in items:
            await self._process(item)
        return len(items)

    async def _process(self, item: dict[str, Any]) -> None:
        incident = await self._store.fetch_one("SELECT * FROM incidents WHERE id = ?",
                                               item["incident_id"])
        assert incident is not None
        try:
            note = await self._perform(item, incident)
        except TicketError as exc:
            await self._failed(item, str(exc), retryable=exc.retryable)
            return
        if note is None:  # waits for the ticket to exist
            await self._postpone(item, "waiting for the ticket to be created")
            return
        now = self._clock()
        async with self._store.transaction() as db:
            if item["kind"] == "create":
                await db.execute("UPDATE incidents SET ticket_key = ? WHERE id = ?",
                                 (note, incident["id"]))
                note = f"ticket {note}"
            await db.execute("UPDATE outbox SET state = 'done', done_at = ?, attempts ="
                             " attempts + 1, last_error = NULL WHERE id = ?", (now, item["id"]))
            await db.execute("INSERT INTO incident_events (incident_id, at, kind, detail)"
                             " VALUES (?, ?, ?, ?)",
                             (incident["id"], now, f"ticket-{item['kind']}", note))
        log.info("incident %d: %s done (%s)", incident["id"], item["kind"], note,
                 extra={"incident": incident["id"]})

    async def _perform(self, item: dict[str, Any], incident: dict[str, Any]) -> str | None:
        jira = self._config.jira
        if item["kind"] == "create":
            if incident["ticket_key"]:
                return str(incident["ticket_key"])  # our own mapping first: JIRA search lags
            earlier = await self._store.fetch_all(
                "SELECT opened_at, duration_seconds, ticket_key FROM incidents"
                " WHERE labels = ? AND id < ? ORDER BY id DESC", incident["labels"],
                incident["id"])
            request = ticket_request(incident, self._config, self._clock(), earlier)
            existing = await self._tickets.find_open(request)
            if existing is not None:
                await self._tickets.comment(existing, "Linked to fleet-sla incident "
                                                      f"{incident['id']} firing again.")
                return existing
            return await self._tickets.create(request, incident["id"])
        key = incident["ticket_key"]
        if key is None:
            return None
        await self._tickets.comment(key, item["body"])
        name = None
        if jira is not None:
            name = jira.resolve_transition if item["kind"] == "resolve" else jira.reopen_transition
        if name:
            await self._tickets.transition(key, name)
        return f"{key}: {item['body']}"

    async def _failed(self, item: dict[str, Any], error: str, *, retryable: bool) -> None:
        error = redacted(error, self._config)  # a server may echo our credentials
        attempts = item["attempts"] + 1
        now = self._clock()
        async with self._store.transaction() as db:
            if retryable:
                await db.execute(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                    " WHERE id = ?",
                    (attempts, now + min(MAX_BACKOFF, 2.0 ** attempts), error, item["id"]))
            else:
                await db.execute("UPDATE outbox SET state = 'failed', attempts = ?,"
                                 " last_error = ? WHERE id = ?", (attempts, error, item["id"]))
                await db.execute("INSERT INTO incident_events (incident_id, at, kind, detail)"
                                 " VALUES (?, ?, 'ticket-error', ?)",
                                 (item["incident_id"], now, error))
        log.warning("incident %d: %s failed (%s): %s", item["incident_id"], item["kind"],
                    "will retry" if retryable else "permanent", error,
                    extra={"incident": item["incident_id"]})

    async def _postpone(self, item: dict[str, Any], reason: str) -> None:
        async with self._store.transaction() as db:
            await db.execute("UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                             (self._clock() + 5.0, reason, item["id"]))

