"""Pending approvals over time: announce them, and act when they go overdue.

`on_timeout` decides what an overdue approval becomes: `remind` posts a reminder to
`notify_url` once per timeout period and keeps waiting; `approve` and `reject` take the
decision, recorded as made by the timeout. Posts are best effort: one that fails is tried
again on the next sweep.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from .config import ReceiverConfig
from .decisions import DecisionError, decide
from .metrics import ReceiverMetrics
from .store import Store, rows
from .timefmt import human_duration

log = logging.getLogger(__name__)
TIMEOUT_USER = "timeout"


class Sweeper:
    def __init__(self, store: Store, config: ReceiverConfig, metrics: ReceiverMetrics,
                 clock: Callable[[], float], wake_outbox: Callable[[], None]) -> None:
        self._store = store
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

    async def sweep(self, session: aiohttp.ClientSession) -> None:
        policy = self._config.incidents
        now = self._clock()
        async with self._store.snapshot() as db:
            pending = await rows(db, "SELECT * FROM incidents WHERE state = 'firing'"
                                     " AND approval = 'pending' ORDER BY id")
            depth = await rows(db, "SELECT count(*) AS n FROM outbox WHERE state = 'pending'")
            by_state = await rows(db, "SELECT state, count(*) AS n FROM incidents GROUP BY state")
        overdue = [i for i in pending if now - (i["asked_at"] or now) > policy.approval_timeout]
        self._metrics.set_counts({r["state"]: r["n"] for r in by_state}, len(pending))
        self._metrics.approvals_overdue.set(len(overdue))
        self._metrics.outbox_depth.set(depth[0]["n"])
        for incident in pending:
            if incident["announced_at"] is None and await self._post(
                    session, incident, f"Approval needed: {_title(incident)}"):
                await self._mark(incident["id"], "announced_at", now, "announced", "")
        for incident in overdue:
            await self._overdue(session, incident, now)

    async def _overdue(self, session: aiohttp.ClientSession, incident: dict[str, Any],
                       now: float) -> None:
        policy = self._config.incidents
        waited = human_duration(now - incident["asked_at"])
        if policy.on_timeout == "remind":
            last = incident["reminded_at"] or incident["asked_at"]
            if now - last > policy.approval_timeout and await self._post(
                    session, incident, f"Still waiting {waited} for approval: {_title(incident)}"):
                await self._mark(incident["id"], "reminded_at", now, "reminded",
                                 f"after {waited}")
            return
        kind = "approve" if policy.on_timeout == "approve" else "reject"
        with contextlib.suppress(DecisionError):  # someone decided in the meantime
            async with self._store.transaction() as db:
                outcome = await decide(db, incident["id"], kind, TIMEOUT_USER,
                                       f"no decision within {waited}", now)
            if outcome.changed:
                self._metrics.decisions.labels(kind).inc()
                self._wake_outbox()
                log.info("incident %d %s by timeout", incident["id"], outcome.approval,
                         extra={"incident": incident["id"]})

    async def _post(self, session: aiohttp.ClientSession, incident: dict[str, Any],
                    text: str) -> bool:
        if self._config.notify_url is None:
            return False
        try:
            async with session.post(self._config.notify_url, json={
                "text": text, "incident": incident["id"],
                "labels": json.loads(incident["labels"]),
            }, timeout=aiohttp.ClientTimeout(total=10)) as response:
                ok = response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("notify_url: %s", type(exc).__name__, extra={"incident": incident["id"]})
            return False
        if not ok:
            log.warning("notify_url answered %d", response.status,
                        extra={"incident": incident["id"]})
        return ok

    async def _mark(self, incident: int, column: str, now: float, kind: str,
                    detail: str) -> None:
        async with self._store.transaction() as db:
            await db.execute(f"UPDATE incidents SET {column} = ? WHERE id = ?", (now, incident))
            await db.execute("INSERT INTO incident_events (incident_id, at, kind, detail)"
                             " VALUES (?, ?, ?, ?)", (incident, now, kind, detail))


def _title(incident: dict[str, Any]) -> str:
    labels = json.loads(incident["labels"])
    return (f"{labels.get('vessel', '?')} {labels.get('component', '?')} "
            f"({labels.get('alertname', '')}), incident {incident['id']}")
