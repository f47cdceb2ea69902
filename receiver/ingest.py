"""Group commit for the webhook: one transaction for all notifications that queued up.

Each request still gets its answer only after its own notification is committed; under
load, many share a commit instead of queueing for the lock one by one.
"""

import asyncio
import logging
from collections.abc import Callable

from . import incidents
from .config import IncidentPolicy
from .db import Database, SyncWriter
from .incidents import Change
from .payload import Notification

log = logging.getLogger(__name__)
MAX_BATCH = 256
MAX_BATCH_ALERTS = 2000
Item = tuple[Notification, str, "asyncio.Future[list[Change]]"]


class Ingest:
    def __init__(self, db: Database, policy: IncidentPolicy, clock: Callable[[], float]):
        self._db = db
        self._policy = policy
        self._clock = clock
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self.taken = 0  # notifications taken into a commit so far

    async def submit(self, notification: Notification, body: str) -> list[Change]:
        """Store a notification and its incident changes; raises Unavailable if not."""
        future: asyncio.Future[list[Change]] = asyncio.get_running_loop().create_future()
        await self._queue.put((notification, body, future))
        return await future

    def waiting(self) -> int:
        """Notifications queued and not yet taken into a commit."""
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            alerts = len(batch[0][0].alerts)
            # Bounded in alerts too, so a waiting request never waits for more than one
            # batch of big notifications.
            while (len(batch) < MAX_BATCH and alerts < MAX_BATCH_ALERTS
                   and not self._queue.empty()):
                batch.append(self._queue.get_nowait())
                alerts += len(batch[-1][0].alerts)
            self.taken += len(batch)
            try:
                await self._write(batch)
            except Exception:  # the writer must outlive any batch
                # One bad notification must not fail the others: write them one by one,
                # so each gets its own answer.
                for item in batch:
                    await self._write_alone(item)

    async def _write_alone(self, item: Item) -> None:
        try:
            await self._write([item])
        except Exception as exc:
            self._fail([item], exc)

    @staticmethod
    def _fail(batch: list[Item], exc: Exception) -> None:
        log.error("cannot store %d notification(s): %r", len(batch), exc)
        for _, _, future in batch:
            if not future.done():
                future.set_exception(exc)

    async def _write(self, batch: list[Item]) -> None:
        now = self._clock()
        policy = self._policy

        def apply_all(tx: SyncWriter) -> list[list[Change]]:  # in the database's thread
            return [incidents.apply(tx, notification, body, now, policy)
                    for notification, body, _ in batch]

        # One hop to the database's thread for the whole commit: awaiting each statement
        # cost a round trip through the event loop per statement, five per dedupe key.
        results = await self._db.write(apply_all)
        for (_, _, future), changes in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(changes)
