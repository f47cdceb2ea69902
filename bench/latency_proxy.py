"""Loopback TCP proxy that behaves like a satellite link, and counts HTTP requests.

Each direction is delayed by RTT/2 with byte order preserved; the first bytes a client
sends on a new connection wait one more RTT, the cost of the TCP handshake over the
link. Requests are attributed to the ``db`` form field of their body, and the answer
bytes that follow on the same connection to that request (clients do not pipeline).

Run: ``python bench/latency_proxy.py --target http://127.0.0.1:8086 --rtt 0.6``
"""

import argparse
import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from childproc import Stats, serve_control

CHUNK = 65536
MAX_HEAD = 65536  # a request head larger than this is not HTTP we understand


@dataclass
class Traffic:
    connections: int = 0
    requests: int = 0
    unparsed_requests: int = 0  # requests whose database could not be read
    per_db: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: {"requests": 0, "up": 0, "down": 0})
    )

    def snapshot(self) -> Stats:
        return {
            "connections": self.connections,
            "requests": self.requests,
            "unparsed_requests": self.unparsed_requests,
            "per_db": dict(self.per_db),
        }


class RequestTap:
    """Splits one connection's client->server bytes into HTTP/1.1 requests."""

    def __init__(self, traffic: Callable[[], Traffic]) -> None:
        # Looked up per request: counters are swapped out between cycles while
        # kept-alive connections carry on.
        self._traffic = traffic
        self._buf = bytearray()
        self._head: bytes | None = None
        self._body_len = 0
        self.current: str | None = None  # database of the latest request

    def feed(self, data: bytes) -> None:
        self._buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume one head or one body; False when more bytes are needed."""
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    self._buf.clear()
                return False
            self._head = bytes(self._buf[: end + 4])
            del self._buf[: end + 4]
            self._body_len = _content_length(self._head)
            return True
        if len(self._buf) < self._body_len:
            return False
        body = bytes(self._buf[: self._body_len])
        del self._buf[: self._body_len]
        self._count(self._head, body)
        self._head = None
        return True

    def _count(self, head: bytes, body: bytes) -> None:
        db = _database(head, body)
        traffic = self._traffic()
        traffic.requests += 1
        if db is None:
            traffic.unparsed_requests += 1
            db = "?"
        entry = traffic.per_db[db]
        entry["requests"] += 1
        entry["up"] += len(head) + len(body)
        self.current = db

    def downstream(self, data: bytes) -> None:
        self._traffic().per_db[self.current or "?"]["down"] += len(data)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0


def _database(head: bytes, body: bytes) -> str | None:
    target = head.split(b"\r\n", 1)[0].split(b" ")
    query = urlsplit(target[1].decode("latin-1")).query if len(target) > 1 else ""
    for text in (body.decode("latin-1"), query):
        values = parse_qs(text).get("db")
        if values:
            return values[0]
    return None


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    first_extra: float,
    observe: Callable[[bytes], None],
) -> None:
    """Forward bytes, each chunk due `delay` after it arrived, never reordering."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        due, extra = 0.0, first_extra
        while True:
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = b""
            due = max(due, loop.time() + delay + extra)
            extra = 0.0
            await queue.put((due, data))
            if not data:
                return
            observe(data)

    async def send() -> None:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                return
            writer.write(data)
            await writer.drain()

    receiver = asyncio.create_task(receive())
    try:
        with contextlib.suppress(OSError):
            await send()
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        writer.close()


class LatencyProxy:
    def __init__(self, host: str, port: int, rtt: float) -> None:
        self._target = (host, port)
        self._rtt = rtt
        self._traffic = Traffic()
        self._connections: set[asyncio.Task[None]] = set()

    def stats(self) -> Stats:
        snapshot = self._traffic.snapshot()
        self._traffic = Traffic()
        return snapshot

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._traffic.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            return
        tap = RequestTap(lambda: self._traffic)
        half = self._rtt / 2
        # The handshake costs the client a full RTT before its first request can leave.
        pumps = asyncio.gather(
            _pump(client_r, server_w, half, self._rtt, tap.feed),
            _pump(server_r, client_w, half, 0.0, tap.downstream),
            return_exceptions=True,
        )
        # Connections still open when the proxy exits are cancelled: not an error.
        with contextlib.suppress(asyncio.CancelledError):
            await pumps


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="http://127.0.0.1:PORT to forward to")
    parser.add_argument("--rtt", type=float, default=0.6, help="round trip time, seconds")
    parser.add_argument("--lifetime", type=float, default=900.0, help="exit after this long")
    args = parser.parse_args()
    target = urlsplit(args.target)
    if target.hostname != "127.0.0.1" or target.port is None:
        parser.error("the target must be http://127.0.0.1:PORT")
    proxy = LatencyProxy(target.hostname, target.port, args.rtt)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, backlog=1024)
    async with server:
        await serve_control(server.sockets[0].getsockname()[1], proxy.stats, args.lifetime)


if __name__ == "__main__":
    asyncio.run(main())
