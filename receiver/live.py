"""Server-sent events that tell open pages when incidents change.

Every committed transaction wakes the streams; a stream sends `incidents` only when the
newest incident event moved (each visible change appends one), at most once per `gap`
seconds, and a comment now and then so a dead client is noticed. Streams end when the app
shuts down. The pages are complete without it: the script only spares a reload.
"""

import asyncio
import contextlib

from aiohttp import web

from .appkeys import DB
from .auth import current_user


class Changes:
    """A generation counter that waiters can sleep on: no polling, no busy loop."""

    def __init__(self, gap: float = 1.0, keepalive: float = 25.0) -> None:
        self.gap = gap
        self.keepalive = keepalive
        self.generation = 0
        self.closing = False
        self._event = asyncio.Event()

    def changed(self) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()

    def close(self) -> None:
        self.closing = True
        self._event.set()

    async def wait(self, seen: int) -> None:
        """Until the generation moves past `seen` or the app closes."""
        event = self._event
        if self.generation == seen and not self.closing:
            await event.wait()

    async def pause(self, seconds: float) -> None:
        """Sleep between two events, waking early when the app closes."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self.closing:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            event = self._event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)


CHANGES = web.AppKey("changes", Changes)


async def _version(request: web.Request) -> int:
    async with request.app[DB].snapshot() as reader:
        return await reader.last_event_id()


async def events(request: web.Request) -> web.StreamResponse:
    current_user(request)
    changes = request.app[CHANGES]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    generation = changes.generation
    version = await _version(request)
    try:
        await response.write(f"retry: 5000\nevent: hello\ndata: {version}\n\n".encode())
        while not changes.closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(changes.keepalive):
                    await changes.wait(generation)
            if changes.closing:
                break
            if changes.generation == generation:
                await response.write(b": keepalive\n\n")
                continue
            generation = changes.generation
            latest = await _version(request)
            if latest != version:
                version = latest
                await response.write(f"event: incidents\ndata: {version}\n\n".encode())
                await changes.pause(changes.gap)
    except ConnectionResetError:  # the page went away
        return response
    await response.write_eof()
    return response


async def close_streams(app: web.Application) -> None:
    app[CHANGES].close()
