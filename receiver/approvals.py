"""Pending approvals over time: announce them, and act when they go overdue; and firing
alerts Alertmanager stopped sending, which count as gone after incidents.alert_expiry.

`on_timeout` decides what an overdue approval becomes: `remind` posts a reminder to
`notify_url` once per timeout period and keeps waiting; `approve` and `reject` take the
decision, recorded as made by the timeout. Posts are best effort: one that fails is tried
again on the next sweep.
"""

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

import aiohttp

from .config import ReceiverConfig
from .db import Database, DecisionKind, EventKind, Incident
from .decisions import decide
from .errors import Conflict, Invalid, NotFound
from .incidents import ChangeKind, expire
from .metrics import ReceiverMetrics
from .timefmt import human_duration

log = logging.getLogger(__name__)
TIMEOUT_USER = "timeout"
BATCH = 100  # incidents read per query when expiring alerts


class Sweeper:
    def __init__(self, db: Database, config: ReceiverConfig, metrics: ReceiverMetrics,
                 clock: Callable[[], float], wake_outbox: Callable[[], None]) -> None:
        self._db = db
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._wake_outbox = wake_outbox

    async def run(self, every: float, session: aiohttp.ClientSession) -> None:
        while True:
            try:
                await self.sweep(session)
            except Exception:
                log.exception("approval sweep failed")
            await asyncio.sleep(every)

    async def expire_unseen(self) -> int:
        """Count firing alerts not sent for alert_expiry as gone: how many incidents
        resolved. One transaction per incident, so webhooks wait for none long."""
        expiry = self._config.incidents.alert_expiry
        resolved = 0
        while True:
            now = self._clock()
            async with self._db.snapshot() as reader:
                found = await reader.unseen_since(now - expiry, BATCH)
            for incident_id in found:
                change = await self._db.write(
                    functools.partial(expire, incident_id=incident_id, now=now, expiry=expiry))
                if change is not None and change.kind is ChangeKind.RESOLVED:
                    resolved += 1
                    log.info("incident %d resolved: its alerts are no longer sent",
                             incident_id, extra={"incident": incident_id})
            if resolved:
                self._wake_outbox()  # a ticket to comment on and transition
            if len(found) < BATCH:
                return resolved

    async def sweep(self, session: aiohttp.ClientSession) -> None:
        await self.expire_unseen()
        policy = self._config.incidents
        now = self._clock()
        async with self._db.snapshot() as reader:
            pending = await reader.pending_approvals()
            depth = await reader.work_waiting()
            by_state = await reader.counts_by_state()
        overdue = [i for i in pending if now - (i.asked_at or now) > policy.approval_timeout]
        self._metrics.set_counts(by_state, len(pending))
        self._metrics.approvals_overdue.set(len(overdue))
        self._metrics.outbox_depth.set(depth)
        for incident in pending:
            if incident.announced_at is None and await self._post(
                    session, incident, f"Approval needed: {_title(incident)}"):
                async with self._db.transaction() as tx:
                    await tx.mark_announced(incident.id, now)
                    await tx.append_event(incident.id, now, EventKind.ANNOUNCED)
        for incident in overdue:
            await self._overdue(session, incident, now)

    async def _overdue(self, session: aiohttp.ClientSession, incident: Incident,
                       now: float) -> None:
        policy = self._config.incidents
        asked = incident.asked_at if incident.asked_at is not None else now
        waited = human_duration(now - asked)
        if policy.on_timeout == "remind":
            last = incident.reminded_at or asked
            if now - last > policy.approval_timeout and await self._post(
                    session, incident, f"Still waiting {waited} for approval: {_title(incident)}"):
                async with self._db.transaction() as tx:
                    await tx.mark_reminded(incident.id, now)
                    await tx.append_event(incident.id, now, EventKind.REMINDED,
                                          f"after {waited}")
            return
        kind = DecisionKind.APPROVE if policy.on_timeout == "approve" else DecisionKind.REJECT
        with contextlib.suppress(NotFound, Conflict, Invalid):  # someone decided meanwhile
            async with self._db.transaction() as tx:
                outcome = await decide(tx, incident.id, kind, TIMEOUT_USER,
                                       f"no decision within {waited}", now)
            if outcome.changed:
                self._metrics.decisions.labels(kind).inc()
                self._wake_outbox()
                log.info("incident %d %s by timeout", incident.id, outcome.approval,
                         extra={"incident": incident.id})

    async def _post(self, session: aiohttp.ClientSession, incident: Incident,
                    text: str) -> bool:
        if self._config.notify_url is None:
            return False
        try:
            async with session.post(self._config.notify_url, json={
                "text": text, "incident": incident.id, "labels": incident.labels,
            }, timeout=aiohttp.ClientTimeout(total=10)) as response:
                ok = response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("notify_url: %s", type(exc).__name__, extra={"incident": incident.id})
            return False
        if not ok:
            log.warning("notify_url answered %d", response.status,
                        extra={"incident": incident.id})
        return ok


def _title(incident: Incident) -> str:
    labels = incident.labels
    return (f"{labels.get('vessel', '?')} {labels.get('component', '?')} "
            f"({labels.get('alertname', '')}), incident {incident.id}")
