"""Live updates for open console pages: GET /api/v1/events, server-sent events.

The service publishes run started, vessel collected (progress n/N), run finished and
config reloaded into a short ring. A stream sleeps on one shared asyncio.Event until
something is published, sends what it has not sent (of several progress events only the
newest), and a comment now and then so a dead client is noticed. Progress is published at
most every PROGRESS_EVERY seconds, so a hundred open pages cost a few wake-ups a second.
A reconnecting page sends Last-Event-ID and gets what it missed, or `reset` when the ring
no longer holds it. Streams end when the app shuts down.
"""

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

PROGRESS_EVERY = 0.25  # seconds between two progress events of one run
KEEP = 256  # events a reconnecting page can catch up on


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    VESSEL_COLLECTED = "vessel_collected"
    RUN_FINISHED = "run_finished"
    CONFIG_RELOADED = "config_reloaded"


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: EventKind
    data: str  # JSON

    def frame(self) -> bytes:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {self.data}\n\n".encode()


class EventHub:
    def __init__(self, keep: int = KEEP, keepalive: float = 25.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.keepalive = keepalive
        self.closing = False
        self.last_id = 0
        self._events: deque[Event] = deque(maxlen=keep)
        self._wake = asyncio.Event()
        self._monotonic = monotonic
        self._progress_at = -1e9

    def publish(self, kind: EventKind, data: Mapping[str, Any]) -> None:
        self.last_id += 1
        self._events.append(Event(self.last_id, kind, json.dumps(data, separators=(",", ":"))))
        self._wake.set()
        self._wake = asyncio.Event()

    def progress(self, data: Mapping[str, Any], final: bool) -> None:
        """A vessel collected: published unless one was a moment ago (the last always is)."""
        now = self._monotonic()
        if final or now - self._progress_at >= PROGRESS_EVERY:
            self._progress_at = now
            self.publish(EventKind.VESSEL_COLLECTED, data)

    def since(self, last_id: int) -> list[Event] | None:
        """Events after `last_id`, the newest progress only; None when some were dropped."""
        if last_id >= self.last_id:
            return []
        if not self._events or self._events[0].id > last_id + 1:
            return None
        events = [e for e in self._events if e.id > last_id]
        newest = max((e.id for e in events if e.kind is EventKind.VESSEL_COLLECTED), default=0)
        return [e for e in events if e.kind is not EventKind.VESSEL_COLLECTED or e.id == newest]

    async def wait(self, last_id: int) -> None:
        """Until something after `last_id` is published, the hub closes, or keepalive."""
        wake = self._wake
        if self.last_id == last_id and not self.closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.keepalive):
                    await wake.wait()

    def close(self) -> None:
        self.closing = True
        self._wake.set()


def _last_event_id(request: web.Request) -> int | None:
    # A header from the browser, echoed back: anything but our own ids is ignored.
    raw = request.headers.get("Last-Event-ID", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


async def stream(request: web.Request, hub: EventHub) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    seen = _last_event_id(request)
    try:
        await response.write(f"retry: 3000\nevent: hello\ndata: {hub.last_id}\n\n".encode())
        if seen is None or seen > hub.last_id:  # a new page, or ids of an earlier process
            seen = hub.last_id
        while not hub.closing:
            events = hub.since(seen)
            if events is None:
                await response.write(f"id: {hub.last_id}\nevent: reset\ndata: \n\n".encode())
                seen = hub.last_id
            elif events:
                await response.write(b"".join(e.frame() for e in events))
                seen = events[-1].id
            else:
                await hub.wait(seen)
                if hub.last_id == seen and not hub.closing:
                    await response.write(b": keepalive\n\n")
        await response.write_eof()
    except ConnectionResetError:  # the page went away
        pass
    return response
