"""Control channel between the benchmark and its helper server processes.

A helper prints ``PORT <n>`` once it listens, answers each ``stats`` line on stdin with
one JSON line (and starts counting afresh), and exits when stdin closes or its lifetime
runs out, so no helper outlives the benchmark.
"""

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

Stats = dict[str, Any]
START_SECONDS = 30.0
REPLY_SECONDS = 30.0
STOP_SECONDS = 10.0
LINE_LIMIT = 64 * 1024 * 1024  # one stats line carries a counter per vessel


async def serve_control(port: int, stats: Callable[[], Stats], lifetime: float) -> None:
    """Child side: announce the port, then answer stats requests until told to stop."""
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(lifetime):
            while line := await reader.readline():
                if line.strip() == b"stats":
                    sys.stdout.write(json.dumps(stats()) + "\n")
                    sys.stdout.flush()


def endpoint_args(description: str) -> argparse.Namespace:
    """A synthetic endpoint's options: how long it waits before answering, and lives."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--delay", type=float, default=0.6, help="seconds before answering")
    parser.add_argument("--lifetime", type=float, default=900.0, help="exit after this long")
    return parser.parse_args()


async def serve_endpoint(path: str, handler: Callable[[web.Request], Awaitable[web.Response]],
                         stats: Callable[[], Stats], lifetime: float) -> None:
    """Child side: serve POST `path` on a free loopback port until told to stop."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # The default backlog of 128 would drop connection bursts from 256 concurrent clients.
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    try:
        await serve_control(runner.addresses[0][1], stats, lifetime)
    finally:
        await runner.cleanup()


class Helper:
    """Parent side: a helper script running in its own process and event loop."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self._proc = proc
        self.port = port

    @classmethod
    async def start(cls, script: Path, *args: str) -> "Helper":
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_SECONDS)
        except TimeoutError:
            line = b""
        if not line.startswith(b"PORT "):
            await cls(proc, 0).stop()
            raise RuntimeError(f"{script.name} did not start (got {line!r})")
        return cls(proc, int(line.split()[1]))

    async def stats(self) -> Stats:
        """Counters since the previous call."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(b"stats\n")
        await self._proc.stdin.drain()
        line = await asyncio.wait_for(self._proc.stdout.readline(), REPLY_SECONDS)
        if not line:
            raise RuntimeError("helper process exited")
        return json.loads(line)

    async def stop(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), STOP_SECONDS)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
